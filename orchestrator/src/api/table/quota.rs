//! Columns of ResourceQuotas and LimitRanges, as kubectl's printers show
//! them: a quota's use of each resource against its hard limit, requests
//! and counts apart from limits.

use serde_json::{Value, json};

use super::{column, created_at_column, s};
use crate::quota::amounts_of;

pub(super) fn columns(kind: &str, name: Value, age: Value) -> Option<Vec<Value>> {
    Some(match kind {
        "ResourceQuota" => vec![
            name,
            age,
            column(
                "Request",
                "string",
                0,
                "Request represents a minimum amount of cpu/memory that a container may consume.",
            ),
            column(
                "Limit",
                "string",
                0,
                "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
            ),
        ],
        "LimitRange" => vec![name, created_at_column()],
        _ => return None,
    })
}

pub(super) fn cells(kind: &str, object: &Value) -> Option<Vec<Value>> {
    let name = json!(s(object, "/metadata/name"));
    Some(match kind {
        "ResourceQuota" => {
            let hard = amounts_of(object.pointer("/status/hard"));
            let used = amounts_of(object.pointer("/status/used"));
            let (mut requests, mut limits) = (Vec::new(), Vec::new());
            for (resource, limit) in &hard {
                let used = used
                    .get(resource)
                    .map(|u| u.text())
                    .unwrap_or_else(|| "0".into());
                let cell = format!("{resource}: {used}/{}", limit.text());
                if resource.starts_with("limits.") {
                    limits.push(cell);
                } else {
                    requests.push(cell);
                }
            }
            vec![
                name,
                super::age_cell(object),
                json!(requests.join(", ")),
                json!(limits.join(", ")),
            ]
        }
        "LimitRange" => vec![name, json!(s(object, "/metadata/creationTimestamp"))],
        _ => return None,
    })
}
