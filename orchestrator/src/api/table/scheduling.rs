//! Columns of PodTemplates, PriorityClasses, Leases and
//! PodDisruptionBudgets, as kubectl's printers show them.

use serde_json::{Value, json};

use super::{age_cell, column, s};

pub(super) fn columns(kind: &str, name: Value, age: Value) -> Option<Vec<Value>> {
    let text = |title: &str, description: &str| column(title, "string", 0, description);
    Some(match kind {
        "PodTemplate" => vec![
            name,
            text("Containers", "Names of each container in the template."),
            text(
                "Images",
                "Images referenced by each container in the template.",
            ),
            text("Pod Labels", "The labels for the pod template."),
        ],
        "PriorityClass" => vec![
            name,
            column(
                "Value",
                "integer",
                0,
                "value represents the integer value of this priority class.",
            ),
            column(
                "Global-Default",
                "boolean",
                0,
                "globalDefault specifies whether this PriorityClass should be considered as the default priority.",
            ),
            age,
            text(
                "PreemptionPolicy",
                "preemptionPolicy is the Policy for preempting pods with lower priority.",
            ),
        ],
        "Lease" => vec![
            name,
            text(
                "Holder",
                "holderIdentity contains the identity of the holder of a current lease.",
            ),
            age,
        ],
        "PodDisruptionBudget" => vec![
            name,
            text(
                "Min Available",
                "The minimum number of pods that must be available simultaneously. This can be either an integer or a string specifying a percentage, e.g. \"28%\".",
            ),
            text(
                "Max Unavailable",
                "The maximum number of pods that may be unavailable simultaneously. This can be either an integer or a string specifying a percentage, e.g. \"28%\".",
            ),
            column(
                "Allowed Disruptions",
                "integer",
                0,
                "Number of pod disruptions that are currently allowed.",
            ),
            age,
        ],
        _ => return None,
    })
}

pub(super) fn cells(kind: &str, object: &Value) -> Option<Vec<Value>> {
    let name = json!(s(object, "/metadata/name"));
    Some(match kind {
        "PodTemplate" => {
            let containers = object
                .pointer("/template/spec/containers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let names: Vec<&str> = containers.iter().map(|c| s(c, "/name")).collect();
            let images: Vec<&str> = containers.iter().map(|c| s(c, "/image")).collect();
            let labels: Vec<String> = object
                .pointer("/template/metadata/labels")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            let labels = if labels.is_empty() {
                "<none>".to_string()
            } else {
                labels.join(",")
            };
            vec![
                name,
                json!(names.join(",")),
                json!(images.join(",")),
                json!(labels),
            ]
        }
        "PriorityClass" => vec![
            name,
            json!(object.get("value").and_then(Value::as_i64).unwrap_or(0)),
            json!(
                object
                    .get("globalDefault")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
            age_cell(object),
            json!(s(object, "/preemptionPolicy")),
        ],
        "Lease" => vec![
            name,
            json!(s(object, "/spec/holderIdentity")),
            age_cell(object),
        ],
        "PodDisruptionBudget" => {
            let budget = |field: &str| match object.pointer(&format!("/spec/{field}")) {
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::String(text)) => text.clone(),
                _ => "N/A".into(),
            };
            vec![
                name,
                json!(budget("minAvailable")),
                json!(budget("maxUnavailable")),
                json!(
                    object
                        .pointer("/status/disruptionsAllowed")
                        .and_then(Value::as_i64)
                        .unwrap_or(0)
                ),
                age_cell(object),
            ]
        }
        _ => return None,
    })
}
