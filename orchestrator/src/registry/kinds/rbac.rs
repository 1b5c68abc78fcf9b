//! rbac.authorization.k8s.io: Roles and ClusterRoles (what may be done),
//! RoleBindings and ClusterRoleBindings (who may do it). `crate::auth::rbac`
//! decides requests by them.

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde_json::Value;

use super::{Hooks, kind_of, name_of, plain_hooks};
use crate::admission::{Errors, Invalid, check_path_segment};
use crate::registry::resources::{ALL_VERBS, Resource};

pub const GROUP: &str = "rbac.authorization.k8s.io";

fn resource(
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    hooks: Hooks,
) -> Resource {
    Resource {
        group: GROUP,
        version: "v1",
        kind,
        plural,
        singular,
        namespaced,
        short_names: &[],
        categories: &[],
        verbs: ALL_VERBS,
        subresources: &[],
        status_subresource: false,
        field_selectors: &[],
        schema: match kind {
            "Role" => "io.k8s.api.rbac.v1.Role",
            "ClusterRole" => "io.k8s.api.rbac.v1.ClusterRole",
            "RoleBinding" => "io.k8s.api.rbac.v1.RoleBinding",
            _ => "io.k8s.api.rbac.v1.ClusterRoleBinding",
        },
        returns_deleted: false,
        custom: None,
        hooks,
    }
}

pub(super) fn roles() -> Resource {
    resource(
        "Role",
        "roles",
        "role",
        true,
        Hooks {
            validate: validate_name,
            ..plain_hooks::<Role>()
        },
    )
}

pub(super) fn cluster_roles() -> Resource {
    resource(
        "ClusterRole",
        "clusterroles",
        "clusterrole",
        false,
        Hooks {
            validate: validate_name,
            ..plain_hooks::<ClusterRole>()
        },
    )
}

/// RBAC objects' names need only be path segments (`system:basic-user`).
fn validate_name(object: &Value, _old: Option<&Value>) -> Result<(), Invalid> {
    let mut errors = Errors::default();
    check_path_segment(&mut errors, "metadata.name", name_of(object));
    errors.into_result(kind_of(object), name_of(object))
}

pub(super) fn role_bindings() -> Resource {
    resource(
        "RoleBinding",
        "rolebindings",
        "rolebinding",
        true,
        Hooks {
            defaults: default_subjects,
            validate: validate_binding,
            ..plain_hooks::<RoleBinding>()
        },
    )
}

pub(super) fn cluster_role_bindings() -> Resource {
    resource(
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        false,
        Hooks {
            defaults: default_subjects,
            validate: validate_binding,
            ..plain_hooks::<ClusterRoleBinding>()
        },
    )
}

/// A subject's `apiGroup`, when left out: RBAC's for users and groups.
fn default_subjects(binding: &mut Value) {
    let Some(subjects) = binding.get_mut("subjects").and_then(Value::as_array_mut) else {
        return;
    };
    for subject in subjects.iter_mut().filter_map(Value::as_object_mut) {
        let kind = subject.get("kind").and_then(Value::as_str).unwrap_or("");
        let group = subject
            .get("apiGroup")
            .and_then(Value::as_str)
            .unwrap_or("");
        if group.is_empty() && matches!(kind, "User" | "Group") {
            subject.insert("apiGroup".into(), Value::from(GROUP));
        }
    }
}

/// A binding's role reference and subjects, as the API server checks them;
/// its role reference never changes.
fn validate_binding(binding: &Value, old: Option<&Value>) -> Result<(), Invalid> {
    validate_name(binding, old)?;
    let kind = binding.get("kind").and_then(Value::as_str).unwrap_or("");
    let cluster = kind == "ClusterRoleBinding";
    let mut errors = Errors::default();
    let text = |value: &Value, field: &str| {
        value
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let role_ref = binding.get("roleRef").cloned().unwrap_or_default();
    let role_kind = text(&role_ref, "kind");
    let supported: &[&str] = if cluster {
        &["ClusterRole"]
    } else {
        &["Role", "ClusterRole"]
    };
    if !supported.contains(&role_kind.as_str()) {
        errors.unsupported("roleRef.kind", &role_kind, supported);
    }
    if text(&role_ref, "apiGroup") != GROUP {
        errors.unsupported("roleRef.apiGroup", &text(&role_ref, "apiGroup"), &[GROUP]);
    }
    if text(&role_ref, "name").is_empty() {
        errors.required("roleRef.name");
    }
    if let Some(old) = old
        && old.get("roleRef") != binding.get("roleRef")
    {
        let old_ref = old.get("roleRef").cloned().unwrap_or_default();
        errors.push(
            "roleRef",
            format!(
                "Invalid value: rbac.RoleRef{{APIGroup:{:?}, Kind:{:?}, Name:{:?}}}: cannot change roleRef",
                text(&old_ref, "apiGroup"),
                text(&old_ref, "kind"),
                text(&old_ref, "name"),
            ),
        );
    }
    let subjects = binding
        .get("subjects")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, subject) in subjects.iter().enumerate() {
        let field = |name: &str| format!("subjects[{i}].{name}");
        let subject_kind = text(subject, "kind");
        if text(subject, "name").is_empty() {
            errors.required(field("name"));
        }
        match subject_kind.as_str() {
            "ServiceAccount" => {
                let group = text(subject, "apiGroup");
                if !group.is_empty() {
                    errors.unsupported(field("apiGroup"), &group, &[""]);
                }
                if cluster && text(subject, "namespace").is_empty() {
                    errors.required(field("namespace"));
                }
            }
            "User" | "Group" => {
                let group = text(subject, "apiGroup");
                if group != GROUP {
                    errors.unsupported(field("apiGroup"), &group, &[GROUP]);
                }
            }
            other => errors.unsupported(field("kind"), other, &["ServiceAccount", "User", "Group"]),
        }
    }
    errors.into_result(kind, name_of(binding))
}
