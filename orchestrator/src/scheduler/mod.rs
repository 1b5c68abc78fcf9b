//! The scheduler: binds each pending pod to a node its requests fit on, or
//! says why none fits (`0/1 nodes are available: 1 Insufficient cpu.`).
//!
//! Level-triggered: every change to pods or nodes (and a periodic tick)
//! re-examines all unbound pods, so a pod that did not fit is bound as soon
//! as room frees up.

pub mod placement;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::events::{EventType, Recorder};
use crate::quantity::Quantity;
use crate::registry::metadata::now;
use crate::registry::{LabelSelector, Registry, WriteOptions};

const NAME: &str = "default-scheduler";
/// How often unbound pods are retried without a change.
const RETRY_EVERY: Duration = Duration::from_secs(5);

/// Runs until `stop` turns true.
pub async fn run(registry: Registry, mut stop: watch::Receiver<bool>) {
    let recorder = Recorder::new(registry.clone(), NAME, None);
    let pods = registry.resource("", "Pod");
    let mut watch = match registry.watch(&pods, None, registry.store().revision()) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!("scheduler cannot watch pods: {e}");
            return;
        }
    };
    let mut tick = tokio::time::interval(RETRY_EVERY);
    // A pass lists every pod: it runs when a change can give it work (a
    // new unbound pod, or room freed while pods wait), once for all the
    // changes that came meanwhile.
    let mut pass = true;
    let mut waiting = false;
    loop {
        if std::mem::take(&mut pass) {
            match schedule_pending(&registry, &recorder).await {
                Ok(left) => waiting = left,
                Err(e) => {
                    tracing::warn!("scheduling: {e}");
                    waiting = true;
                }
            }
        }
        tokio::select! {
            event = watch.next() => {
                let mut events = vec![event];
                events.extend(std::iter::from_fn(|| watch.try_next().map(Some)));
                for event in events {
                    match event {
                        Some(Ok(event)) => pass |= gives_work(&event, waiting),
                        _ => {
                            pass = true;
                            match registry.watch(&pods, None, registry.store().revision()) {
                                Ok(w) => watch = w,
                                Err(e) => tracing::warn!("scheduler cannot watch pods: {e}"),
                            }
                            break;
                        }
                    }
                }
            }
            _ = tick.tick() => pass = true,
            _ = stop.changed() => return,
        }
    }
}

/// Whether a change to a pod can give the scheduler something to do.
fn gives_work(event: &crate::store::WatchEvent, waiting: bool) -> bool {
    let pod = &event.object;
    let unbound = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty();
    let gone = event.event_type == crate::store::EventType::Deleted
        || pod.pointer("/metadata/deletionTimestamp").is_some()
        || !is_active(pod);
    (unbound && !gone) || (waiting && gone)
}

/// Requests of a pod: the sum of its containers' (init containers: the
/// largest), as the scheduler counts them.
fn requests(pod: &Value) -> BTreeMap<&'static str, i128> {
    let mut totals = BTreeMap::new();
    let read = |c: &Value, r: &str| amount(c, &format!("/resources/requests/{r}"), r);
    for resource in ["cpu", "memory"] {
        let containers: i128 = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .map(|cs| cs.iter().map(|c| read(c, resource)).sum())
            .unwrap_or(0);
        let init: i128 = pod
            .pointer("/spec/initContainers")
            .and_then(Value::as_array)
            .map(|cs| cs.iter().map(|c| read(c, resource)).max().unwrap_or(0))
            .unwrap_or(0);
        totals.insert(resource, containers.max(init));
    }
    totals
}

fn allocatable(node: &Value, resource: &str) -> i128 {
    amount(node, &format!("/status/allocatable/{resource}"), resource)
}

/// The quantity at `pointer`, in millicores for cpu and units (bytes,
/// pods) otherwise; 0 when absent or malformed.
fn amount(object: &Value, pointer: &str, resource: &str) -> i128 {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .and_then(|q| Quantity::parse(q).ok())
        .map(|q| {
            if resource == "cpu" {
                q.ceil_millis()
            } else {
                q.ceil_units()
            }
        })
        .unwrap_or(0)
}

fn is_active(pod: &Value) -> bool {
    !matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

/// How many bindings are written at once.
const BIND_AT_ONCE: usize = 128;

/// Binds what fits; `Ok(true)` when pods are left waiting for room.
async fn schedule_pending(
    registry: &Registry,
    recorder: &Recorder,
) -> Result<bool, crate::registry::Error> {
    let everything = LabelSelector::default();
    let all = registry
        .cache(&registry.resource("", "Pod"))
        .list(None, &everything)
        .await?;
    let pending: Vec<&Value> = all
        .iter()
        .map(|p| &**p)
        .filter(|p| {
            p.pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
                && p.pointer("/metadata/deletionTimestamp").is_none()
                && p.pointer("/spec/schedulerName")
                    .and_then(Value::as_str)
                    .unwrap_or(NAME)
                    == NAME
                && is_active(p)
        })
        .collect();
    if pending.is_empty() {
        return Ok(false);
    }
    let mut left_waiting = false;
    let mut placed: Vec<(&Value, String)> = Vec::new();
    let node_list = registry
        .cache(&registry.resource("", "Node"))
        .list(None, &everything)
        .await?;
    // What each node has left.
    let mut free: Vec<(String, BTreeMap<&'static str, i128>, i128, &Value)> = node_list
        .iter()
        .filter(|n| n.pointer("/spec/unschedulable").and_then(Value::as_bool) != Some(true))
        .map(|n| {
            let name = n
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let mut left = BTreeMap::new();
            left.insert("cpu", allocatable(n, "cpu"));
            left.insert("memory", allocatable(n, "memory"));
            (name, left, allocatable(n, "pods"), &**n)
        })
        .collect();
    for pod in all.iter().filter(|p| is_active(p)) {
        let Some(node) = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        else {
            continue;
        };
        if let Some((_, left, slots, _)) = free.iter_mut().find(|(n, ..)| n == node) {
            for (resource, amount) in requests(pod) {
                *left.entry(resource).or_insert(0) -= amount;
            }
            *slots -= 1;
        }
    }
    for pod in pending {
        let wanted = requests(pod);
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        let mut chosen = None;
        for (index, (_, left, slots, node)) in free.iter().enumerate() {
            if let Err(misfit) = placement::check(pod, node) {
                *reasons.entry(misfit.reason()).or_default() += 1;
                continue;
            }
            let mut fits = true;
            if *slots <= 0 {
                *reasons.entry("Too many pods".into()).or_default() += 1;
                fits = false;
            }
            for (resource, amount) in &wanted {
                if *amount > 0 && left.get(resource).copied().unwrap_or(0) < *amount {
                    let reason = if *resource == "cpu" {
                        "Insufficient cpu"
                    } else {
                        "Insufficient memory"
                    };
                    *reasons.entry(reason.into()).or_default() += 1;
                    fits = false;
                }
            }
            if fits {
                chosen = Some(index);
                break;
            }
        }
        match chosen {
            Some(index) => {
                // Room is taken now; the bindings are written together below.
                for (resource, amount) in &wanted {
                    *free[index].1.entry(resource).or_insert(0) -= amount;
                }
                free[index].2 -= 1;
                placed.push((pod, free[index].0.clone()));
            }
            None => {
                left_waiting = true;
                let mut message = format!("0/{} nodes are available:", free.len());
                let parts: Vec<String> = reasons.iter().map(|(r, n)| format!(" {n} {r}")).collect();
                message.push_str(&parts.join(","));
                message.push('.');
                if !free.is_empty() {
                    // Evicting pods frees room, never labels or taints.
                    let room = reasons.keys().any(|r| !r.starts_with("node(s)"));
                    message.push_str(&format!(
                        " preemption: 0/{n} nodes are available: {n} {}.",
                        if room {
                            "No preemption victims found for incoming pod"
                        } else {
                            "Preemption is not helpful for scheduling"
                        },
                        n = free.len()
                    ));
                }
                if mark_unschedulable(registry, pod, &message).await? {
                    recorder
                        .record(pod, EventType::Warning, "FailedScheduling", &message, None)
                        .await;
                }
            }
        }
    }
    for chunk in placed.chunks(BIND_AT_ONCE) {
        let binds = chunk.iter().map(|(pod, node)| async move {
            // The event goes first so it precedes the kubelet's, which
            // start the moment the binding lands.
            let namespace = pod
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("");
            let name = pod
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            recorder
                .record(
                    pod,
                    EventType::Normal,
                    "Scheduled",
                    &format!("Successfully assigned {namespace}/{name} to {node}"),
                    None,
                )
                .await;
            bind(registry, pod, node).await
        });
        for result in futures::future::join_all(binds).await {
            result?;
        }
    }
    Ok(left_waiting)
}

/// Binds `pod` to `node`; false if the pod changed or went meanwhile.
async fn bind(
    registry: &Registry,
    pod: &Value,
    node: &str,
) -> Result<bool, crate::registry::Error> {
    let pods = registry.resource("", "Pod");
    let namespace = pod.pointer("/metadata/namespace").and_then(Value::as_str);
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let result = registry
        .update_with(&pods, namespace, name, Some("binding"), &WriteOptions::manager(NAME), |current| {
            let mut next = current.clone();
            if !next.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("").is_empty() {
                return Err(crate::registry::Error::Conflict {
                    resource: "pods".into(),
                    group: String::new(),
                    name: name.into(),
                    why: format!("pod {name} is already assigned to a node"),
                });
            }
            next["spec"]["nodeName"] = json!(node);
            set_condition(&mut next, json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now()}));
            Ok(next)
        })
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(crate::registry::Error::NotFound { .. } | crate::registry::Error::Conflict { .. }) => {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Sets PodScheduled=False; true if the message is new (worth an event).
async fn mark_unschedulable(
    registry: &Registry,
    pod: &Value,
    message: &str,
) -> Result<bool, crate::registry::Error> {
    let already = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled"))
        .is_some_and(|c| c["message"] == message);
    if already {
        return Ok(false);
    }
    let pods = registry.resource("", "Pod");
    let namespace = pod.pointer("/metadata/namespace").and_then(Value::as_str);
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let condition = json!({"type": "PodScheduled", "status": "False", "lastProbeTime": null,
        "lastTransitionTime": now(), "reason": "Unschedulable", "message": message});
    let result = registry
        .update_with(
            &pods,
            namespace,
            name,
            Some("status"),
            &WriteOptions::manager(NAME),
            |current| {
                let mut next = current.clone();
                set_condition(&mut next, condition.clone());
                Ok(next)
            },
        )
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(crate::registry::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Replaces (or adds) the condition of the same type in `status.conditions`.
pub fn set_condition(pod: &mut Value, condition: Value) {
    if !pod.get("status").is_some_and(Value::is_object) {
        pod["status"] = json!({});
    }
    let status = pod["status"].as_object_mut().expect("object");
    let conditions = status.entry("conditions").or_insert_with(|| json!([]));
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let list = conditions.as_array_mut().expect("array");
    match list.iter_mut().find(|c| c["type"] == condition["type"]) {
        Some(existing) => {
            if existing["status"] == condition["status"]
                && let Some(t) = existing.get("lastTransitionTime").cloned()
            {
                let mut condition = condition;
                condition["lastTransitionTime"] = t;
                *existing = condition;
                return;
            }
            *existing = condition;
        }
        None => list.push(condition),
    }
}
