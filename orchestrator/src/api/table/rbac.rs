//! Columns of Roles, ClusterRoles, RoleBindings and ClusterRoleBindings, as
//! kubectl's printers show them.

use serde_json::{Value, json};

use super::{age_cell, column, created_at_column, s};

pub(super) fn columns(kind: &str, name: Value, age: Value) -> Option<Vec<Value>> {
    let text = |title: &str, priority: u8, description: &str| {
        column(title, "string", priority, description)
    };
    Some(match kind {
        "Role" | "ClusterRole" => vec![name, created_at_column()],
        "RoleBinding" | "ClusterRoleBinding" => vec![
            name,
            text(
                "Role",
                0,
                "RoleRef can only reference the current namespace. It can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable.",
            ),
            age,
            text("Users", 1, "Users in the binding"),
            text("Groups", 1, "Groups in the binding"),
            text("ServiceAccounts", 1, "ServiceAccounts in the binding"),
        ],
        _ => return None,
    })
}

pub(super) fn cells(kind: &str, object: &Value) -> Option<Vec<Value>> {
    let name = json!(s(object, "/metadata/name"));
    Some(match kind {
        "Role" | "ClusterRole" => vec![name, json!(s(object, "/metadata/creationTimestamp"))],
        "RoleBinding" | "ClusterRoleBinding" => {
            let subjects = object
                .get("subjects")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let of = |wanted: &str| {
                subjects
                    .iter()
                    .filter(|subject| s(subject, "/kind") == wanted)
                    .map(|subject| match (wanted, s(subject, "/namespace")) {
                        ("ServiceAccount", namespace) => {
                            format!("{namespace}/{}", s(subject, "/name"))
                        }
                        _ => s(subject, "/name").to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    s(object, "/roleRef/kind"),
                    s(object, "/roleRef/name")
                )),
                age_cell(object),
                json!(of("User")),
                json!(of("Group")),
                json!(of("ServiceAccount")),
            ]
        }
        _ => return None,
    })
}
