//! PodTemplates, scheduling.k8s.io PriorityClasses and coordination.k8s.io
//! Leases: kinds kubectl and controllers expect to find, with Kubernetes'
//! defaults and checks.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::PodTemplate;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use serde_json::{Value, json};

use super::pod::{self, set_default};
use super::{name_of, plain_hooks, validate_metadata};
use crate::admission::{Errors, Invalid};
use crate::registry::resources::{ALL_VERBS, Hooks, Resource, Typed, allocate_nothing};

/// The highest priority a user's PriorityClass may have; above it are the
/// system classes.
pub const HIGHEST_USER_PRIORITY: i64 = 1_000_000_000;

/// The PriorityClasses every cluster has: `(name, value, description)`.
pub const SYSTEM_PRIORITY_CLASSES: &[(&str, i64, &str)] = &[
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

pub(super) fn pod_templates() -> Resource {
    Resource {
        group: "",
        version: "v1",
        kind: "PodTemplate",
        plural: "podtemplates",
        singular: "podtemplate",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: ALL_VERBS,
        subresources: &[],
        status_subresource: false,
        field_selectors: &[],
        schema: "io.k8s.api.core.v1.PodTemplate",
        returns_deleted: true,
        custom: None,
        hooks: Hooks {
            defaults: |template| {
                if let Some(inner) = template.get_mut("template") {
                    pod::defaults(inner);
                }
            },
            ..plain_hooks::<PodTemplate>()
        },
    }
}

pub(super) fn priority_classes() -> Resource {
    Resource {
        group: "scheduling.k8s.io",
        version: "v1",
        kind: "PriorityClass",
        plural: "priorityclasses",
        singular: "priorityclass",
        namespaced: false,
        short_names: &["pc"],
        categories: &[],
        verbs: ALL_VERBS,
        subresources: &[],
        status_subresource: false,
        field_selectors: &[],
        schema: "io.k8s.api.scheduling.v1.PriorityClass",
        returns_deleted: false,
        custom: None,
        hooks: Hooks {
            defaults: |class| {
                if let Some(class) = class.as_object_mut() {
                    set_default(class, "preemptionPolicy", json!("PreemptLowerPriority"));
                }
            },
            initial_status: |_| {},
            validate: validate_priority_class,
            typed: Typed::of::<PriorityClass>(),
            allocate: allocate_nothing,
            admit: crate::registry::priority::admit_priority_class,
        },
    }
}

fn validate_priority_class(class: &Value, old: Option<&Value>) -> Result<(), Invalid> {
    validate_metadata(class, old)?;
    let mut errors = Errors::default();
    let name = name_of(class);
    let value = class.get("value").and_then(Value::as_i64);
    let system = SYSTEM_PRIORITY_CLASSES
        .iter()
        .find(|(system, _, _)| *system == name);
    match (value, system) {
        (None, _) => errors.required("value"),
        (Some(value), Some((_, wanted, _))) if value != *wanted => errors.push(
            "metadata.name",
            format!("Invalid value: {name:?}: name is reserved for system priority classes with value {wanted}"),
        ),
        (Some(_), Some(_)) => {}
        (Some(value), None) => {
            if name.starts_with("system-") {
                errors.push(
                    "metadata.name",
                    format!("Invalid value: {name:?}: priority class names with 'system-' prefix are reserved"),
                );
            }
            if value > HIGHEST_USER_PRIORITY {
                errors.push(
                    "value",
                    format!("Forbidden: maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"),
                );
            }
        }
    }
    if let Some(old) = old
        && old.get("value") != class.get("value")
    {
        errors.push(
            "value",
            "Forbidden: may not be changed in an update.".into(),
        );
    }
    if let Some(policy) = class.get("preemptionPolicy").and_then(Value::as_str)
        && !matches!(policy, "PreemptLowerPriority" | "Never")
    {
        errors.unsupported(
            "preemptionPolicy",
            policy,
            &["Never", "PreemptLowerPriority"],
        );
    }
    errors.into_result("PriorityClass", name)
}

pub(super) fn leases() -> Resource {
    Resource {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        singular: "lease",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: ALL_VERBS,
        subresources: &[],
        status_subresource: false,
        field_selectors: &[],
        schema: "io.k8s.api.coordination.v1.Lease",
        returns_deleted: false,
        custom: None,
        hooks: Hooks {
            validate: validate_lease,
            ..plain_hooks::<Lease>()
        },
    }
}

fn validate_lease(lease: &Value, old: Option<&Value>) -> Result<(), Invalid> {
    validate_metadata(lease, old)?;
    let mut errors = Errors::default();
    let number = |field: &str| {
        lease
            .pointer(&format!("/spec/{field}"))
            .and_then(Value::as_i64)
    };
    if let Some(duration) = number("leaseDurationSeconds")
        && duration <= 0
    {
        errors.push(
            "spec.leaseDurationSeconds",
            format!("Invalid value: {duration}: must be greater than 0"),
        );
    }
    if let Some(transitions) = number("leaseTransitions")
        && transitions < 0
    {
        errors.push(
            "spec.leaseTransitions",
            format!("Invalid value: {transitions}: must be greater than or equal to 0"),
        );
    }
    errors.into_result("Lease", name_of(lease))
}
