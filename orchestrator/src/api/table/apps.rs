//! Columns of the apps workloads (Deployments, ReplicaSets,
//! ReplicationControllers, DaemonSets, StatefulSets, ControllerRevisions),
//! as kubectl's printers show them.

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
        "DaemonSet" => [
            name,
            column("Desired", "integer", 0, "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod)."),
            column("Current", "integer", 0, "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
            column("Ready", "integer", 0, "Total number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition."),
            column("Up-to-date", "integer", 0, "The total number of nodes that are running updated daemon pod"),
            column("Available", "integer", 0, "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)"),
            column("Node Selector", "string", 0, "NodeSelector is a selector which must be true for the pod to fit on a node."),
            age,
        ]
        .into_iter()
        .chain(wide)
        .collect(),
        "StatefulSet" => [
            name,
            column("Ready", "string", 0, "Number of the pod with ready state"),
            age,
            wide[0].clone(),
            wide[1].clone(),
        ]
        .into(),
        "ControllerRevision" => [
            name,
            column("Controller", "string", 0, "Controller of the object"),
            column("Revision", "integer", 0, "Revision indicates the revision of the state represented by Data."),
            age,
        ]
        .into(),
        _ => return None,
    })
}

/// The template's node selector as labels print: `k=v,…` or `<none>`.
fn node_selector(object: &Value) -> String {
    let pairs: Vec<String> = object
        .pointer("/spec/template/spec/nodeSelector")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    if pairs.is_empty() {
        "<none>".into()
    } else {
        pairs.join(",")
    }
}

/// The controlling owner as `kind.group/name` (`statefulset.apps/web`).
fn controller_of(object: &Value) -> String {
    let owner = object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|refs| {
            refs.iter()
                .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        });
    let Some(owner) = owner else {
        return "<none>".into();
    };
    let kind = s(owner, "/kind").to_lowercase();
    let name = s(owner, "/name");
    match s(owner, "/apiVersion").split_once('/') {
        Some((group, _)) => format!("{kind}.{group}/{name}"),
        None => format!("{kind}/{name}"),
    }
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
        "DaemonSet" => [
            name,
            json!(count(object, "/status/desiredNumberScheduled")),
            json!(count(object, "/status/currentNumberScheduled")),
            json!(count(object, "/status/numberReady")),
            json!(count(object, "/status/updatedNumberScheduled")),
            json!(count(object, "/status/numberAvailable")),
            json!(node_selector(object)),
            age_cell(object),
        ]
        .into_iter()
        .chain(template_cells(object))
        .collect(),
        "StatefulSet" => {
            let [containers, images, _] = template_cells(object);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    count(object, "/status/readyReplicas"),
                    count(object, "/spec/replicas")
                )),
                age_cell(object),
                containers,
                images,
            ]
        }
        "ControllerRevision" => vec![
            name,
            json!(controller_of(object)),
            json!(count(object, "/revision")),
            age_cell(object),
        ],
        _ => return None,
    })
}
