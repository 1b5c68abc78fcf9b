//! Columns of Deployments and ReplicaSets, as kubectl's printers show them.

use serde_json::{Value, json};

use super::{age_cell, column, s};
use crate::registry::selectors::{format_selector, workload_selector};

/// The wide columns of workloads: CONTAINERS, IMAGES, SELECTOR.
pub(super) fn wide_columns() -> [Value; 3] {
    [
        column(
            "Containers",
            "string",
            1,
            "Names of each container in the template.",
        ),
        column(
            "Images",
            "string",
            1,
            "Images referenced by each container in the template.",
        ),
        column(
            "Selector",
            "string",
            1,
            "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
        ),
    ]
}

pub(super) fn columns(kind: &str, name: Value, age: Value) -> Option<Vec<Value>> {
    let wide = wide_columns();
    Some(match kind {
        "Deployment" => [
            name,
            column("Ready", "string", 0, "Number of the pod with ready state"),
            column("Up-to-date", "string", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
            column("Available", "string", 0, "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
            age,
        ]
        .into_iter()
        .chain(wide)
        .collect(),
        "ReplicaSet" | "ReplicationController" => [
            name,
            column("Desired", "integer", 0, "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1."),
            column("Current", "integer", 0, "Replicas is the most recently observed number of replicas."),
            column("Ready", "integer", 0, "readyReplicas is the number of pods targeted by this ReplicaSet with a Ready Condition."),
            age,
        ]
        .into_iter()
        .chain(wide)
        .collect(),
        _ => return None,
    })
}

fn count(object: &Value, pointer: &str) -> i64 {
    object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// The template's container names and images, comma-separated, and the
/// selector, of the workload spec at `spec` (`/spec` or a CronJob's
/// `/spec/jobTemplate/spec`).
pub(super) fn template_cells_at(object: &Value, spec: &str) -> [Value; 3] {
    let containers = object
        .pointer(&format!("{spec}/template/spec/containers"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = containers.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| s(c, "/image")).collect();
    [
        json!(names.join(",")),
        json!(images.join(",")),
        json!(format_selector(
            workload_selector(object, &format!("{spec}/selector")).as_ref(),
            "<none>"
        )),
    ]
}

fn template_cells(object: &Value) -> [Value; 3] {
    template_cells_at(object, "/spec")
}

pub(super) fn cells(kind: &str, object: &Value) -> Option<Vec<Value>> {
    let name = json!(s(object, "/metadata/name"));
    Some(match kind {
        "Deployment" => [
            name,
            json!(format!(
                "{}/{}",
                count(object, "/status/readyReplicas"),
                count(object, "/spec/replicas")
            )),
            json!(count(object, "/status/updatedReplicas")),
            json!(count(object, "/status/availableReplicas")),
            age_cell(object),
        ]
        .into_iter()
        .chain(template_cells(object))
        .collect(),
        "ReplicaSet" | "ReplicationController" => [
            name,
            json!(count(object, "/spec/replicas")),
            json!(count(object, "/status/replicas")),
            json!(count(object, "/status/readyReplicas")),
            age_cell(object),
        ]
        .into_iter()
        .chain(template_cells(object))
        .collect(),
        _ => return None,
    })
}
