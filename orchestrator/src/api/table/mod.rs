//! `meta.k8s.io/v1` Table answers: the columns kubectl prints for each kind,
//! computed as kubectl's own printers compute them.

mod apps;
mod autoscaling;
mod batch;
mod config;
mod metrics;
mod network;
mod quota;
mod rbac;
mod scheduling;

use serde_json::{Value, json};

use crate::registry::Resource;

/// How much of each object a row carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(text: Option<&str>) -> IncludeObject {
        match text {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

fn column(name: &str, kind: &str, priority: u8, description: &str) -> Value {
    json!({
        "name": name,
        "type": kind,
        "format": if name == "Name" { "name" } else { "" },
        "description": description,
        "priority": priority,
    })
}

/// kubectl's `CREATED AT` column (kinds printed with a date, not an age).
fn created_at_column() -> Value {
    json!({
        "name": "Created At",
        "type": "date",
        "format": "",
        "description": "CreationTimestamp is a timestamp representing the server time when this object was created.",
        "priority": 0,
    })
}

fn name_column() -> Value {
    column(
        "Name",
        "string",
        0,
        "Name must be unique within a namespace.",
    )
}

/// A group of kinds' columns (given the Name and Age columns) and cells.
type Printer = (
    fn(&str, Value, Value) -> Option<Vec<Value>>,
    fn(&str, &Value) -> Option<Vec<Value>>,
);

/// The kinds printed by a module of their own.
const GROUPS: [Printer; 9] = [
    (network::columns, network::cells),
    (apps::columns, apps::cells),
    (batch::columns, batch::cells),
    (scheduling::columns, scheduling::cells),
    (config::columns, config::cells),
    (rbac::columns, rbac::cells),
    (quota::columns, quota::cells),
    (metrics::columns, metrics::cells),
    (autoscaling::columns, autoscaling::cells),
];

fn columns(kind: &str) -> Vec<Value> {
    let name = name_column();
    let age = column(
        "Age",
        "string",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    );
    for (group_columns, _) in GROUPS {
        if let Some(columns) = group_columns(kind, name.clone(), age.clone()) {
            return columns;
        }
    }
    match kind {
        "Pod" => vec![
            name,
            column(
                "Ready",
                "string",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            column(
                "Status",
                "string",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            column(
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            age,
            column(
                "IP",
                "string",
                1,
                "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
            ),
            column(
                "Node",
                "string",
                1,
                "NodeName is a request to schedule this pod onto a specific node.",
            ),
            column(
                "Nominated Node",
                "string",
                1,
                "nominatedNodeName is set when this pod preempts other pods on the node.",
            ),
            column(
                "Readiness Gates",
                "string",
                1,
                "If specified, all readiness gates will be evaluated for pod readiness.",
            ),
        ],
        "Node" => vec![
            name,
            column("Status", "string", 0, "The status of the node"),
            column("Roles", "string", 0, "The roles of the node"),
            age,
            column(
                "Version",
                "string",
                0,
                "Kubelet Version reported by the node.",
            ),
            column(
                "Internal-IP",
                "string",
                1,
                "List of addresses reachable to the node. Queried from cloud provider, if available.",
            ),
            column(
                "External-IP",
                "string",
                1,
                "List of addresses reachable to the node. Queried from cloud provider, if available.",
            ),
            column(
                "OS-Image",
                "string",
                1,
                "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
            ),
            column(
                "Kernel-Version",
                "string",
                1,
                "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
            ),
            column(
                "Container-Runtime",
                "string",
                1,
                "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
            ),
        ],
        "Namespace" => vec![
            name,
            column("Status", "string", 0, "The status of the namespace"),
            age,
        ],
        "CustomResourceDefinition" => vec![
            name,
            column(
                "Created At",
                "date",
                0,
                "CreationTimestamp is a timestamp representing the server time when this object was created.",
            ),
        ],
        "Event" => vec![
            column(
                "Last Seen",
                "string",
                0,
                "Time when last occurrence of this event was recorded.",
            ),
            column(
                "Type",
                "string",
                0,
                "Type of this event (Normal, Warning), new types could be added in the future.",
            ),
            column(
                "Reason",
                "string",
                0,
                "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
            ),
            column(
                "Object",
                "string",
                0,
                "The object that this event is about.",
            ),
            column(
                "Subobject",
                "string",
                1,
                "The field of the object that this event is about.",
            ),
            column("Source", "string", 1, "The component reporting this event."),
            column(
                "Message",
                "string",
                0,
                "A human-readable description of the status of this operation.",
            ),
            column(
                "First Seen",
                "string",
                1,
                "The time at which the event was first recorded.",
            ),
            column(
                "Count",
                "string",
                1,
                "The number of times this event has occurred.",
            ),
            column(
                "Name",
                "string",
                1,
                "Name must be unique within a namespace.",
            ),
        ],
        _ => vec![name, age],
    }
}

/// Kubernetes' short human durations: `5s`, `2m10s`, `3h`, `2d5h`, `3y`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let seconds = seconds.max(0);
    let minutes = seconds / 60;
    let hours = seconds / 3600;
    if seconds < 120 {
        format!("{seconds}s")
    } else if minutes < 10 {
        if seconds % 60 == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{}s", seconds % 60)
        }
    } else if minutes < 180 {
        format!("{minutes}m")
    } else if hours < 8 {
        if minutes % 60 == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{}m", minutes % 60)
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        if hours % 24 == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{}h", hours / 24, hours % 24)
        }
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let days = hours / 24;
        if days % 365 == 0 {
            format!("{}y", days / 365)
        } else {
            format!("{}y{}d", days / 365, days % 365)
        }
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

/// The AGE cell of an object.
fn age_cell(object: &Value) -> Value {
    json!(age_of(
        object
            .pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
    ))
}

pub(crate) fn age_of(timestamp: Option<&str>) -> String {
    match timestamp.and_then(|t| t.parse::<jiff::Timestamp>().ok()) {
        Some(t) => human_duration(jiff::Timestamp::now().as_second() - t.as_second()),
        None => "<unknown>".into(),
    }
}

fn s<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn or_none(text: &str) -> String {
    if text.is_empty() {
        "<none>".into()
    } else {
        text.into()
    }
}

/// The STATUS column of a pod, as kubectl's printer derives it.
pub fn pod_status(pod: &Value) -> String {
    let mut reason = s(pod, "/status/phase").to_string();
    if !s(pod, "/status/reason").is_empty() {
        reason = s(pod, "/status/reason").to_string();
    }
    let empty = Vec::new();
    let conditions = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    for condition in conditions {
        if s(condition, "/type") == "PodScheduled" && s(condition, "/reason") == "SchedulingGated" {
            reason = "SchedulingGated".into();
        }
    }
    let init_specs = pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let init_statuses = pod
        .pointer("/status/initContainerStatuses")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let mut initializing = false;
    for (i, status) in init_statuses.iter().enumerate() {
        if let Some(t) = status.pointer("/state/terminated") {
            if t.get("exitCode").and_then(Value::as_i64) == Some(0) {
                continue;
            }
            initializing = true;
            reason = if !s(t, "/reason").is_empty() {
                format!("Init:{}", s(t, "/reason"))
            } else if t.get("signal").and_then(Value::as_i64).unwrap_or(0) != 0 {
                format!("Init:Signal:{}", t["signal"])
            } else {
                format!(
                    "Init:ExitCode:{}",
                    t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                )
            };
        } else if let Some(w) = status.pointer("/state/waiting")
            && !s(w, "/reason").is_empty()
            && s(w, "/reason") != "PodInitializing"
        {
            initializing = true;
            reason = format!("Init:{}", s(w, "/reason"));
        } else {
            initializing = true;
            reason = format!("Init:{i}/{init_specs}");
        }
        break;
    }
    let initialized = conditions
        .iter()
        .any(|c| s(c, "/type") == "Initialized" && s(c, "/status") == "True");
    if !initializing || initialized {
        let statuses = pod
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .unwrap_or(&empty);
        let mut has_running = false;
        for status in statuses.iter().rev() {
            if let Some(w) = status.pointer("/state/waiting")
                && !s(w, "/reason").is_empty()
            {
                reason = s(w, "/reason").into();
            } else if let Some(t) = status.pointer("/state/terminated") {
                reason = if !s(t, "/reason").is_empty() {
                    s(t, "/reason").into()
                } else if t.get("signal").and_then(Value::as_i64).unwrap_or(0) != 0 {
                    format!("Signal:{}", t["signal"])
                } else {
                    format!(
                        "ExitCode:{}",
                        t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                    )
                };
            } else if status.get("ready").and_then(Value::as_bool) == Some(true)
                && status.pointer("/state/running").is_some()
            {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            let ready = conditions
                .iter()
                .any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True");
            reason = if ready {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        if s(pod, "/status/reason") == "NodeLost" {
            reason = "Unknown".into();
        } else {
            reason = "Terminating".into();
        }
    }
    if reason.is_empty() {
        "Pending".into()
    } else {
        reason
    }
}

fn pod_cells(pod: &Value) -> Vec<Value> {
    let empty = Vec::new();
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let statuses = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let ready = statuses
        .iter()
        .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
        .count();
    let mut restarts = 0;
    let mut last_restart: Option<jiff::Timestamp> = None;
    for status in statuses.iter().chain(
        pod.pointer("/status/initContainerStatuses")
            .and_then(Value::as_array)
            .unwrap_or(&empty),
    ) {
        restarts += status
            .get("restartCount")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if let Some(finished) = status
            .pointer("/lastState/terminated/finishedAt")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        {
            last_restart = Some(last_restart.map_or(finished, |l| l.max(finished)));
        }
    }
    let restarts = match last_restart {
        Some(t) if restarts > 0 => format!(
            "{restarts} ({} ago)",
            human_duration(jiff::Timestamp::now().as_second() - t.as_second())
        ),
        _ => restarts.to_string(),
    };
    vec![
        json!(s(pod, "/metadata/name")),
        json!(format!("{ready}/{containers}")),
        json!(pod_status(pod)),
        json!(restarts),
        json!(age_of(
            pod.pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
        )),
        json!(or_none(s(pod, "/status/podIP"))),
        json!(or_none(s(pod, "/spec/nodeName"))),
        json!(or_none(s(pod, "/status/nominatedNodeName"))),
        json!("<none>"),
    ]
}

fn node_cells(node: &Value) -> Vec<Value> {
    let empty = Vec::new();
    let conditions = node
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let mut status = match conditions.iter().find(|c| s(c, "/type") == "Ready") {
        Some(c) if s(c, "/status") == "True" => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    let mut roles: Vec<&str> = node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                .filter(|r| !r.is_empty())
                .collect()
        })
        .unwrap_or_default();
    roles.sort();
    let address = |kind: &str| {
        node.pointer("/status/addresses")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|x| s(x, "/type") == kind))
            .map(|a| s(a, "/address").to_string())
            .unwrap_or_else(|| "<none>".into())
    };
    vec![
        json!(s(node, "/metadata/name")),
        json!(status),
        json!(if roles.is_empty() {
            "<none>".to_string()
        } else {
            roles.join(",")
        }),
        json!(age_of(
            node.pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
        )),
        json!(s(node, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(or_none(s(node, "/status/nodeInfo/osImage"))),
        json!(or_none(s(node, "/status/nodeInfo/kernelVersion"))),
        json!(or_none(s(node, "/status/nodeInfo/containerRuntimeVersion"))),
    ]
}

fn event_cells(event: &Value) -> Vec<Value> {
    let last = [
        "/series/lastObservedTime",
        "/lastTimestamp",
        "/eventTime",
        "/metadata/creationTimestamp",
    ]
    .iter()
    .map(|p| s(event, p))
    .find(|t| !t.is_empty());
    let first = [
        "/firstTimestamp",
        "/eventTime",
        "/metadata/creationTimestamp",
    ]
    .iter()
    .map(|p| s(event, p))
    .find(|t| !t.is_empty());
    let object = format!(
        "{}/{}",
        s(event, "/involvedObject/kind").to_lowercase(),
        s(event, "/involvedObject/name")
    );
    let source = if s(event, "/source/component").is_empty() {
        s(event, "/reportingComponent").to_string()
    } else if s(event, "/source/host").is_empty() {
        s(event, "/source/component").to_string()
    } else {
        format!(
            "{}, {}",
            s(event, "/source/component"),
            s(event, "/source/host")
        )
    };
    vec![
        json!(age_of(last)),
        json!(s(event, "/type")),
        json!(s(event, "/reason")),
        json!(object),
        json!(s(event, "/involvedObject/fieldPath")),
        json!(source),
        json!(s(event, "/message").trim()),
        json!(age_of(first)),
        json!(event.get("count").and_then(Value::as_i64).unwrap_or(1)),
        json!(s(event, "/metadata/name")),
    ]
}

fn cells(kind: &str, object: &Value) -> Vec<Value> {
    for (_, group_cells) in GROUPS {
        if let Some(cells) = group_cells(kind, object) {
            return cells;
        }
    }
    match kind {
        "Pod" => pod_cells(object),
        "Node" => node_cells(object),
        "Event" => event_cells(object),
        "Namespace" => vec![
            json!(s(object, "/metadata/name")),
            json!(match s(object, "/status/phase") {
                "" => "Active",
                phase => phase,
            }),
            age_cell(object),
        ],
        "CustomResourceDefinition" => vec![
            json!(s(object, "/metadata/name")),
            json!(s(object, "/metadata/creationTimestamp")),
        ],
        _ => vec![json!(s(object, "/metadata/name")), age_cell(object)],
    }
}

/// A Table of `objects`.
pub fn table(
    resource: &Resource,
    objects: &[&Value],
    include: IncludeObject,
    resource_version: &str,
    continue_token: Option<&str>,
) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let cells = match &resource.custom {
                Some(custom) => std::iter::once(json!(s(object, "/metadata/name")))
                    .chain(custom.columns.iter().map(|c| c.cell(object)))
                    .collect(),
                None => cells(resource.kind, object),
            };
            let mut row = json!({"cells": cells});
            match include {
                IncludeObject::None => {}
                IncludeObject::Object => row["object"] = (*object).clone(),
                IncludeObject::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": object.get("metadata").cloned().unwrap_or(json!({})),
                    })
                }
            }
            row
        })
        .collect();
    let mut metadata = json!({"resourceVersion": resource_version});
    if let Some(token) = continue_token {
        metadata["continue"] = json!(token);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": match &resource.custom {
            Some(custom) => std::iter::once(name_column())
                .chain(custom.columns.iter().map(|c| c.definition()))
                .collect(),
            None => columns(resource.kind),
        },
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_kubernetes() {
        for (seconds, text) in [
            (5, "5s"),
            (119, "119s"),
            (130, "2m10s"),
            (600, "10m"),
            (3 * 3600 + 120, "3h2m"),
            (10 * 3600, "10h"),
            (50 * 3600, "2d2h"),
            (10 * 86400, "10d"),
            (800 * 86400, "2y70d"),
        ] {
            assert_eq!(human_duration(seconds), text, "{seconds}");
        }
    }

    #[test]
    fn pod_status_follows_kubectl() {
        let waiting = json!({"status": {"phase": "Pending", "containerStatuses": [
            {"name": "c", "ready": false, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        assert_eq!(pod_status(&waiting), "CrashLoopBackOff");
        let done = json!({"status": {"phase": "Succeeded", "containerStatuses": [
            {"name": "c", "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}]}});
        assert_eq!(pod_status(&done), "Completed");
        let init = json!({"spec": {"initContainers": [{"name": "i"}, {"name": "j"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
            {"name": "i", "state": {"terminated": {"exitCode": 0}}},
            {"name": "j", "state": {"running": {}}}]}});
        assert_eq!(pod_status(&init), "Init:1/2");
        let deleting = json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Running"}});
        assert_eq!(pod_status(&deleting), "Terminating");
        let oom = json!({"status": {"phase": "Running", "containerStatuses": [
            {"name": "c", "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}});
        assert_eq!(pod_status(&oom), "OOMKilled");
    }
}
