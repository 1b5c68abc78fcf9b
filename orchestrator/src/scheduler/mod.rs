//! The scheduler: binds each pending pod, most important first, to a node
//! it fits on by labels and taints ([`placement`]) and by requests
//! ([`room`]), or says why none fits (`0/1 nodes are available: 1
//! Insufficient cpu.`); a pod that fits nowhere may preempt pods of lower
//! priority ([`preemption`]).
//!
//! Level-triggered: every change to pods or nodes (and a periodic tick)
//! re-examines all unbound pods, so a pod that did not fit is bound as soon
//! as room frees up.

pub mod placement;
mod preemption;
mod room;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::events::{EventType, Recorder};
use crate::registry::metadata::{At, now, text};
use crate::registry::{DeleteOptions, LabelSelector, Registry, WriteOptions};
use preemption::priority;
use room::Room;

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
        .at("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty();
    let gone = event.event_type == crate::store::EventType::Deleted
        || pod.at("/metadata/deletionTimestamp").is_some()
        || !is_active(pod);
    (unbound && !gone) || (waiting && gone)
}

fn is_active(pod: &Value) -> bool {
    !matches!(
        pod.at("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

/// How many bindings are written at once.
const BIND_AT_ONCE: usize = 128;

/// A pod waiting for a node in this pass, and room held for it.
struct Held<'a> {
    node: usize,
    priority: i64,
    room: Room,
    uid: &'a str,
}

/// Binds what fits, most important pods first; a pod that fits nowhere
/// may preempt pods of lower priority. `Ok(true)` when pods are left
/// waiting for room.
async fn schedule_pending(
    registry: &Registry,
    recorder: &Recorder,
) -> Result<bool, crate::registry::Error> {
    let everything = LabelSelector::default();
    let all = registry
        .cache(&registry.resource("", "Pod"))
        .list(None, &everything)
        .await?;
    let mut pending: Vec<&Value> = all
        .iter()
        .map(|p| &**p)
        .filter(|p| {
            text(p, "/spec/nodeName").is_empty()
                && p.at("/metadata/deletionTimestamp").is_none()
                && p.at("/spec/schedulerName")
                    .and_then(Value::as_str)
                    .unwrap_or(NAME)
                    == NAME
                && is_active(p)
        })
        .collect();
    if pending.is_empty() {
        return Ok(false);
    }
    // As the scheduling queue orders them: higher priority, then older.
    pending.sort_by(|a, b| {
        priority(b).cmp(&priority(a)).then_with(|| {
            text(a, "/metadata/creationTimestamp").cmp(text(b, "/metadata/creationTimestamp"))
        })
    });
    let node_list = registry
        .cache(&registry.resource("", "Node"))
        .list(None, &everything)
        .await?;
    // What each node has left, and the pods on it.
    let mut nodes: Vec<preemption::Node> = node_list
        .iter()
        .map(|n| preemption::Node {
            object: n,
            left: Room::allocatable(n),
            pods: Vec::new(),
        })
        .collect();
    let index_of = |nodes: &[preemption::Node], name: &str| {
        nodes
            .iter()
            .position(|n| !name.is_empty() && text(n.object, "/metadata/name") == name)
    };
    for pod in all.iter().filter(|p| is_active(p)) {
        if let Some(i) = index_of(&nodes, text(pod, "/spec/nodeName")) {
            nodes[i].left.take(Room::requested_by(pod));
            nodes[i].pods.push(pod);
        }
    }
    // Room held for pods that preempted on a node, against pods of no
    // higher priority.
    let mut held: Vec<Held> = pending
        .iter()
        .filter_map(|p| {
            Some(Held {
                node: index_of(&nodes, text(p, "/status/nominatedNodeName"))?,
                priority: priority(p),
                room: Room::requested_by(p),
                uid: text(p, "/metadata/uid"),
            })
        })
        .collect();
    let mut budgets: Option<Vec<Arc<Value>>> = None;
    let mut left_waiting = false;
    let mut placed: Vec<(&Value, String)> = Vec::new();
    for pod in pending {
        let wanted = Room::requested_by(pod);
        let (mine, uid) = (priority(pod), text(pod, "/metadata/uid"));
        let left_for = |nodes: &[preemption::Node], held: &[Held], i: usize| {
            let mut left = nodes[i].left;
            for h in held
                .iter()
                .filter(|h| h.node == i && h.priority >= mine && h.uid != uid)
            {
                left.take(h.room);
            }
            left
        };
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        let mut chosen = None;
        let mut unresolvable = 0;
        for (i, node) in nodes.iter().enumerate() {
            if let Err(misfit) = placement::check(pod, node.object) {
                *reasons.entry(misfit.reason()).or_default() += 1;
                unresolvable += 1;
                continue;
            }
            let short = left_for(&nodes, &held, i).shortfalls(wanted);
            if short.is_empty() {
                chosen = Some(i);
                break;
            }
            for reason in short {
                *reasons.entry(reason.into()).or_default() += 1;
            }
        }
        if let Some(i) = chosen {
            // Room is taken now; the bindings are written together below.
            nodes[i].left.take(wanted);
            nodes[i].pods.push(pod);
            held.retain(|h| h.uid != uid);
            placed.push((pod, text(nodes[i].object, "/metadata/name").to_string()));
            continue;
        }
        left_waiting = true;
        let count = nodes.len();
        let parts: Vec<String> = reasons.iter().map(|(r, n)| format!(" {n} {r}")).collect();
        let mut message = format!("0/{count} nodes are available:{}.", parts.join(","));
        let nominated = index_of(&nodes, text(pod, "/status/nominatedNodeName"));
        let preempting = nominated.is_some_and(|i| {
            nodes[i]
                .pods
                .iter()
                .any(|p| priority(p) < mine && p.at("/metadata/deletionTimestamp").is_some())
        });
        let postfilter = if count == 0 {
            None
        } else if let Some(why) = preemption::ineligible(pod) {
            Some(format!("preemption: {why}"))
        } else if preempting {
            Some("preemption: not eligible due to a terminating pod on the nominated node.".into())
        } else {
            if budgets.is_none() {
                let resource = registry.resource("policy", "PodDisruptionBudget");
                budgets = Some(registry.cache(&resource).list(None, &everything).await?);
            }
            let budgets: Vec<&Value> = budgets.iter().flatten().map(|b| &**b).collect();
            let views: Vec<preemption::Node> = (0..count)
                .map(|i| preemption::Node {
                    object: nodes[i].object,
                    left: left_for(&nodes, &held, i),
                    pods: nodes[i].pods.clone(),
                })
                .collect();
            match preemption::choose(pod, &views, &budgets) {
                Some(choice) => {
                    let node = text(nodes[choice.node].object, "/metadata/name");
                    preempt(registry, recorder, pod, node, &choice.victims).await?;
                    held.push(Held {
                        node: choice.node,
                        priority: mine,
                        room: wanted,
                        uid,
                    });
                    None
                }
                None => {
                    let mut why = BTreeMap::new();
                    if unresolvable > 0 {
                        why.insert("Preemption is not helpful for scheduling", unresolvable);
                    }
                    if count > unresolvable {
                        why.insert(
                            "No preemption victims found for incoming pod",
                            count - unresolvable,
                        );
                    }
                    let parts: Vec<String> = why.iter().map(|(r, n)| format!("{n} {r}")).collect();
                    Some(format!(
                        "preemption: 0/{count} nodes are available: {}.",
                        parts.join(", ")
                    ))
                }
            }
        };
        if let Some(postfilter) = postfilter {
            message.push(' ');
            message.push_str(&postfilter);
        }
        if mark_unschedulable(registry, pod, &message).await? {
            recorder
                .record(pod, EventType::Warning, "FailedScheduling", &message, None)
                .await;
        }
    }
    for chunk in placed.chunks(BIND_AT_ONCE) {
        let binds = chunk.iter().map(|(pod, node)| async move {
            // The event goes first so it precedes the kubelet's, which
            // start the moment the binding lands.
            let namespace = text(pod, "/metadata/namespace");
            let name = text(pod, "/metadata/name");
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

/// Evicts `victims` for `pod` and nominates the pod to `node`: each
/// victim gets a `Preempted` event and the DisruptionTarget condition,
/// then is deleted gracefully; the pod binds once they are gone.
async fn preempt(
    registry: &Registry,
    recorder: &Recorder,
    pod: &Value,
    node: &str,
    victims: &[&Value],
) -> Result<(), crate::registry::Error> {
    let message = format!(
        "Preempted by pod {} on node {node}",
        text(pod, "/metadata/uid")
    );
    let disrupted = json!({"type": "DisruptionTarget", "status": "True", "lastProbeTime": null,
        "lastTransitionTime": now(), "reason": "PreemptionByScheduler",
        "message": format!("{NAME}: preempting to accommodate a higher priority pod")});
    for victim in victims {
        recorder
            .record(victim, EventType::Normal, "Preempted", &message, None)
            .await;
        write_status(registry, victim, |next| {
            set_condition(next, disrupted.clone())
        })
        .await?;
        let deleted = registry
            .delete(
                &registry.resource("", "Pod"),
                Some(text(victim, "/metadata/namespace")),
                text(victim, "/metadata/name"),
                &DeleteOptions::default(),
            )
            .await;
        match deleted {
            Ok(_) | Err(crate::registry::Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    write_status(registry, pod, |next| {
        next["status"]["nominatedNodeName"] = json!(node);
    })
    .await
    .map(drop)
}

/// Changes `pod`'s status as the scheduler; false if the pod is gone.
async fn write_status(
    registry: &Registry,
    pod: &Value,
    change: impl Fn(&mut Value),
) -> Result<bool, crate::registry::Error> {
    let result = registry
        .update_with(
            &registry.resource("", "Pod"),
            Some(text(pod, "/metadata/namespace")),
            text(pod, "/metadata/name"),
            Some("status"),
            &WriteOptions::manager(NAME),
            |current| {
                let mut next = current.clone();
                if !next.get("status").is_some_and(Value::is_object) {
                    next["status"] = json!({});
                }
                change(&mut next);
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

/// Binds `pod` to `node`; false if the pod changed or went meanwhile.
async fn bind(
    registry: &Registry,
    pod: &Value,
    node: &str,
) -> Result<bool, crate::registry::Error> {
    let pods = registry.resource("", "Pod");
    let namespace = pod.at("/metadata/namespace").and_then(Value::as_str);
    let name = pod
        .at("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let result = registry
        .update_with(&pods, namespace, name, Some("binding"), &WriteOptions::manager(NAME), |current| {
            let mut next = current.clone();
            if !next.at("/spec/nodeName").and_then(Value::as_str).unwrap_or("").is_empty() {
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
        .at("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled"))
        .is_some_and(|c| c["message"] == message);
    if already {
        return Ok(false);
    }
    let condition = json!({"type": "PodScheduled", "status": "False", "lastProbeTime": null,
        "lastTransitionTime": now(), "reason": "Unschedulable", "message": message});
    write_status(registry, pod, |next| set_condition(next, condition.clone())).await
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
