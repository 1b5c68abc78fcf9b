//! A pod's status as the API shows it, from the runtime's view of its
//! containers: phase, conditions, containerStatuses.

use std::collections::HashMap;

use serde_json::{Value, json};
use wasmkube_runtime::pod::{ContainerState, ContainerStatus, PodStatus};
use wasmkube_runtime::{ExitStatus, RestartPolicy};

use crate::scheduler::set_condition;

pub(super) fn time(t: jiff::Timestamp) -> String {
    jiff::Timestamp::from_second(t.as_second())
        .unwrap_or(t)
        .to_string()
}

fn container_id(uid: &str, name: &str, restart: u32) -> String {
    format!("wasmkube://{uid}/{name}/{restart}")
}

fn terminated(exit: &ExitStatus, id: &str) -> Value {
    let mut state = json!({
        "exitCode": exit.exit_code,
        "reason": exit.reason.as_str(),
        "startedAt": time(exit.started_at),
        "finishedAt": time(exit.finished_at),
        "containerID": id,
    });
    if let Some(message) = &exit.message {
        state["message"] = json!(message);
    }
    json!({"terminated": state})
}

fn container_status(uid: &str, c: &ContainerStatus, image: &str, image_id: &str) -> Value {
    let id = container_id(uid, &c.name, c.restart_count);
    let state = match &c.state {
        ContainerState::Waiting { reason, message } => {
            let mut waiting = json!({"reason": reason});
            if let Some(m) = message {
                waiting["message"] = json!(m);
            }
            json!({"waiting": waiting})
        }
        ContainerState::Running { started_at } => {
            json!({"running": {"startedAt": time(*started_at)}})
        }
        ContainerState::Terminated(exit) => terminated(exit, &id),
    };
    let last = match &c.last_termination {
        Some(exit) => terminated(
            exit,
            &container_id(uid, &c.name, c.restart_count.saturating_sub(1)),
        ),
        None => json!({}),
    };
    let running = matches!(c.state, ContainerState::Running { .. });
    let mut status = json!({
        "name": c.name,
        "state": state,
        "lastState": last,
        "ready": running && c.ready,
        "restartCount": c.restart_count,
        "image": image,
        "imageID": image_id,
        "started": running && c.started,
    });
    if c.log_path.is_some() {
        status["containerID"] = json!(id);
    }
    status
}

/// The phase Kubernetes gives a pod in this state.
fn phase(status: &PodStatus, policy: RestartPolicy) -> &'static str {
    let ever_ran = |c: &ContainerStatus| {
        c.restart_count > 0
            || c.last_termination.is_some()
            || matches!(
                c.state,
                ContainerState::Running { .. } | ContainerState::Terminated(_)
            )
    };
    if status.finished
        || (policy == RestartPolicy::Never
            && status.containers.iter().all(|c| c.terminated().is_some()))
    {
        let all_ok = status
            .containers
            .iter()
            .all(|c| c.terminated().is_some_and(ExitStatus::success));
        return if all_ok { "Succeeded" } else { "Failed" };
    }
    if status.containers.iter().any(ever_ran) {
        "Running"
    } else {
        "Pending"
    }
}

/// Fills `pod.status` from the runtime's status.
pub fn apply(
    pod: &mut Value,
    status: &PodStatus,
    policy: RestartPolicy,
    images: &HashMap<String, (String, String)>,
    start_time: &str,
) {
    let uid = pod
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let phase = phase(status, policy);
    let to_json = |list: &[ContainerStatus]| -> Vec<Value> {
        list.iter()
            .map(|c| {
                let (image, id) = images.get(&c.name).cloned().unwrap_or_default();
                container_status(&uid, c, &image, &id)
            })
            .collect()
    };
    let statuses = to_json(&status.containers);
    let init_statuses = to_json(&status.init_containers);
    let incomplete: Vec<String> = status
        .init_containers
        .iter()
        .filter(|c| !c.terminated().is_some_and(ExitStatus::success))
        .map(|c| c.name.clone())
        .collect();
    let all_ready = statuses.iter().all(|s| s["ready"] == true) && !statuses.is_empty();
    let now = crate::registry::metadata::now();
    if !pod.get("status").is_some_and(Value::is_object) {
        pod["status"] = json!({});
    }
    pod["status"]["phase"] = json!(phase);
    pod["status"]["containerStatuses"] = json!(statuses);
    if !init_statuses.is_empty() {
        pod["status"]["initContainerStatuses"] = json!(init_statuses);
    }
    pod["status"]["startTime"] = json!(start_time);
    pod["status"]["hostIP"] = json!("127.0.0.1");
    pod["status"]["hostIPs"] = json!([{"ip": "127.0.0.1"}]);
    let completed = matches!(phase, "Succeeded" | "Failed");
    let ready_condition = |kind: &str| {
        if all_ready {
            json!({"type": kind, "status": "True", "lastProbeTime": null, "lastTransitionTime": now})
        } else if completed {
            json!({"type": kind, "status": "False", "lastProbeTime": null, "lastTransitionTime": now, "reason": "PodCompleted"})
        } else {
            let not_ready: Vec<String> = status
                .containers
                .iter()
                .filter(|c| !matches!(c.state, ContainerState::Running { .. }))
                .map(|c| c.name.clone())
                .collect();
            json!({"type": kind, "status": "False", "lastProbeTime": null, "lastTransitionTime": now,
                "reason": "ContainersNotReady",
                "message": format!("containers with unready status: [{}]", not_ready.join(" "))})
        }
    };
    let ready_to_start = if completed { "False" } else { "True" };
    set_condition(
        pod,
        json!({"type": "PodReadyToStartContainers", "status": ready_to_start, "lastProbeTime": null, "lastTransitionTime": now}),
    );
    let initialized = if incomplete.is_empty() {
        json!({"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": now})
    } else {
        json!({"type": "Initialized", "status": "False", "lastProbeTime": null, "lastTransitionTime": now,
            "reason": "ContainersNotInitialized",
            "message": format!("containers with incomplete status: [{}]", incomplete.join(" "))})
    };
    set_condition(pod, initialized);
    set_condition(pod, ready_condition("Ready"));
    set_condition(pod, ready_condition("ContainersReady"));
    sort_conditions(pod);
}

/// Kubernetes' order of pod conditions.
fn sort_conditions(pod: &mut Value) {
    const ORDER: &[&str] = &[
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ];
    if let Some(list) = pod
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    {
        list.sort_by_key(|c| {
            ORDER
                .iter()
                .position(|o| c["type"] == *o)
                .unwrap_or(ORDER.len())
        });
    }
}
