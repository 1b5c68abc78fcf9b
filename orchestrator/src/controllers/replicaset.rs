//! The ReplicaSet controller: keeps `spec.replicas` pods of the template
//! alive for every ReplicaSet, named `<replicaset>-<5 chars>` and owned by
//! it; adopts orphans its selector matches; deletes the surplus, least
//! useful first; reports replicas, ready and available pods in status.
//!
//! The same controller runs ReplicationControllers, whose selector is a
//! plain label map (as Kubernetes' replication manager shares the
//! ReplicaSet controller's code).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::driver::{self, Reconciler};
use super::owners::{claim, controller_kind, controller_ref, deleting};
use crate::events::{EventType, Recorder};
use crate::registry::metadata::{At, text};
use crate::registry::{
    Cache, DeleteOptions, Error, LabelSelector, Registry, Resource, Result, WriteOptions,
};

/// What differs between the kinds the controller runs.
#[derive(Clone, Copy)]
pub struct Flavor {
    group: &'static str,
    kind: &'static str,
    api_version: &'static str,
    manager: &'static str,
    /// Pods it may own: its own, and orphans it might adopt.
    relevant: fn(&Value) -> bool,
    /// The set's selector; `None` selects nothing.
    selector: fn(&Value) -> Option<LabelSelector>,
}

pub const REPLICA_SETS: Flavor = Flavor {
    group: "apps",
    kind: "ReplicaSet",
    api_version: "apps/v1",
    manager: "replicaset-controller",
    relevant: |pod| matches!(controller_kind(pod), None | Some("ReplicaSet")),
    selector: |rs| LabelSelector::from_object(rs.at("/spec/selector")).ok(),
};

pub const REPLICATION_CONTROLLERS: Flavor = Flavor {
    group: "",
    kind: "ReplicationController",
    api_version: "v1",
    manager: "replication-controller",
    relevant: |pod| matches!(controller_kind(pod), None | Some("ReplicationController")),
    selector: |rc| {
        let labels = rc.at("/spec/selector")?.as_object()?;
        let labels = labels
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        Some(LabelSelector::from_map(&labels))
    },
};
/// How many pods one pass creates or deletes at once.
const BURST: usize = 250;

struct ReplicaSets {
    flavor: Flavor,
    retries: driver::Retries,
    registry: Registry,
    pods: Resource,
    events: Recorder,
    replica_sets: Resource,
    cached_sets: Arc<Cache>,
    cached_pods: Arc<Cache>,
}

/// Runs the controller of `flavor` until `stop` turns true.
pub async fn run(flavor: Flavor, registry: Registry, stop: tokio::sync::watch::Receiver<bool>) {
    let replica_sets = registry.resource(flavor.group, flavor.kind);
    let pods = registry.resource("", "Pod");
    let reconciler = ReplicaSets {
        flavor,
        retries: driver::Retries::new(&registry, flavor.manager),
        events: Recorder::new(registry.clone(), flavor.manager, None),
        registry: registry.clone(),
        cached_sets: registry.cache(&replica_sets),
        cached_pods: registry.cache(&pods),
        replica_sets: replica_sets.clone(),
        pods: pods.clone(),
    };
    driver::run(
        registry,
        flavor.manager,
        vec![
            replica_sets.into(),
            driver::Watched {
                resource: pods,
                relevant: flavor.relevant,
            },
        ],
        driver::Pace::WORKLOADS,
        reconciler,
        stop,
    )
    .await;
}

impl Reconciler for ReplicaSets {
    async fn reconcile(&self, namespace: &str) -> Result<Option<Duration>> {
        let all = LabelSelector::default();
        let sets = self.cached_sets.list(Some(namespace), &all).await?;
        if sets.is_empty() {
            return Ok(None);
        }
        let pods = self.cached_pods.list(Some(namespace), &all).await?;
        let mut again = driver::Again::new(&self.retries);
        for rs in sets.iter().filter(|rs| !deleting(rs)) {
            again.note(rs, self.sync(rs, &pods).await);
        }
        Ok(again.when())
    }
}

/// Whether a pod still counts toward its set: not being deleted, not done.
pub fn active(pod: &Value) -> bool {
    !deleting(pod) && !matches!(text(pod, "/status/phase"), "Succeeded" | "Failed")
}

/// The pod's Ready condition, if it is True.
fn ready_condition(pod: &Value) -> Option<&Value> {
    let conditions = pod.get("status")?.get("conditions")?.as_array()?;
    let ready = conditions
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))?;
    (ready.get("status").and_then(Value::as_str) == Some("True")).then_some(ready)
}

/// Whether the pod is Ready.
pub(super) fn is_ready(pod: &Value) -> bool {
    ready_condition(pod).is_some()
}

/// When the pod turned Ready, if it is.
fn ready_since(pod: &Value) -> Option<jiff::Timestamp> {
    let ready = ready_condition(pod)?;
    text(ready, "/lastTransitionTime")
        .parse()
        .ok()
        .or(Some(jiff::Timestamp::UNIX_EPOCH))
}

/// Whether a ready pod has been ready `min_ready` seconds; otherwise how
/// long until it will have been (`Err`), or `None` if it is not ready.
pub fn available(
    pod: &Value,
    min_ready: i64,
    now: jiff::Timestamp,
) -> Option<Result<(), Duration>> {
    if min_ready <= 0 {
        // Available as soon as ready: no time to read.
        return is_ready(pod).then_some(Ok(()));
    }
    let since = ready_since(pod)?;
    let until = since
        .checked_add(jiff::SignedDuration::from_secs(min_ready))
        .unwrap_or(since);
    if until <= now {
        Some(Ok(()))
    } else {
        let left = until.duration_since(now);
        Some(Err(Duration::from_millis(left.as_millis().max(0) as u64)))
    }
}

/// How readily a pod is given up when there are too many: not yet
/// scheduled first, then pending, then not ready, then the newest.
fn deletion_rank(pod: &Value) -> (u8, u8, u8, std::cmp::Reverse<String>) {
    let scheduled = u8::from(pod.at("/spec/nodeName").is_some());
    let running = u8::from(text(pod, "/status/phase") == "Running");
    let ready = u8::from(is_ready(pod));
    let created = text(pod, "/metadata/creationTimestamp").to_string();
    (scheduled, running, ready, std::cmp::Reverse(created))
}

impl ReplicaSets {
    async fn sync(&self, rs: &Value, pods: &[Arc<Value>]) -> Result<Option<Duration>> {
        let selector = match (self.flavor.selector)(rs) {
            Some(s) if !s.is_empty() => s,
            _ => return Ok(None),
        };
        let (kind, api_version, manager) = (
            self.flavor.kind,
            self.flavor.api_version,
            self.flavor.manager,
        );
        let reference = controller_ref(rs, api_version, kind);
        let mine = claim(
            &self.registry,
            &self.pods,
            rs,
            &reference,
            manager,
            pods,
            |pod| active(pod) && selector.matches(pod),
        )
        .await?;
        // The pods that count (what was seen, before the changes below),
        // judged in one look at each: at ten thousand pods a pass is the
        // time spent fetching each pod's fields.
        let min_ready = rs
            .at("/spec/minReadySeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let now = jiff::Timestamp::now();
        let template_labels = rs
            .at("/spec/template/metadata/labels")
            .and_then(Value::as_object);
        let mut counted: Vec<&Value> = Vec::with_capacity(mine.len());
        let (mut fully_labeled, mut ready, mut available_now) = (0, 0, 0);
        let mut again: Option<Duration> = None;
        for pod in mine.iter().map(|p| &**p).filter(|p| active(p)) {
            counted.push(pod);
            let labels = pod.get("metadata").and_then(|m| m.get("labels"));
            let labeled = template_labels.is_none_or(|wanted| {
                wanted
                    .iter()
                    .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
            });
            fully_labeled += usize::from(labeled);
            match available(pod, min_ready, now) {
                Some(Ok(())) => {
                    ready += 1;
                    available_now += 1;
                }
                Some(Err(left)) => {
                    ready += 1;
                    again = Some(again.map_or(left, |a| a.min(left)));
                }
                None => {}
            }
        }
        let wanted = rs
            .at("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .max(0) as usize;
        if counted.len() < wanted {
            self.create_pods(rs, wanted - counted.len()).await;
        } else if counted.len() > wanted {
            let mut live = counted.clone();
            live.sort_by_cached_key(|p| deletion_rank(p));
            live.truncate(counted.len() - wanted);
            self.delete_pods(rs, &live).await;
        }
        // Status from what was seen; the writes above bring another pass.
        let status = json!({
            "replicas": counted.len(),
            "fullyLabeledReplicas": fully_labeled,
            "readyReplicas": ready,
            "availableReplicas": available_now,
            "observedGeneration": rs.at("/metadata/generation").cloned().unwrap_or(json!(1)),
        });
        super::merge_status(&self.registry, &self.replica_sets, rs, manager, &status).await?;
        Ok(again.map(|d| d + Duration::from_millis(50)))
    }

    async fn create_pods(&self, rs: &Value, count: usize) {
        let namespace = text(rs, "/metadata/namespace");
        let template = rs.at("/spec/template").cloned().unwrap_or(json!({}));
        let metadata = super::from_template(
            json!({
                "generateName": format!("{}-", text(rs, "/metadata/name")),
                "ownerReferences": [controller_ref(rs, self.flavor.api_version, self.flavor.kind)],
            }),
            &template,
        );
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": metadata,
            "spec": template.get("spec").cloned().unwrap_or(json!({})),
        });
        let options = WriteOptions::manager(self.flavor.manager);
        let mut left = count;
        while left > 0 {
            let batch = left.min(BURST);
            left -= batch;
            let creates = (0..batch).map(|_| {
                self.registry
                    .create(&self.pods, Some(namespace), pod.clone(), &options)
            });
            // Events are written together, so their commits are shared.
            let mut created = Vec::new();
            let mut failure = None;
            for result in futures::future::join_all(creates).await {
                match result {
                    Ok(written) => created.push(format!(
                        "Created pod: {}",
                        text(&written.object, "/metadata/name")
                    )),
                    Err(e) => failure = Some(format!("Error creating: {e}")),
                }
            }
            futures::future::join_all(created.iter().map(|message| {
                self.events
                    .record(rs, EventType::Normal, "SuccessfulCreate", message, None)
            }))
            .await;
            if let Some(message) = failure {
                self.events
                    .record(rs, EventType::Warning, "FailedCreate", &message, None)
                    .await;
                return;
            }
        }
    }

    async fn delete_pods(&self, rs: &Value, pods: &[&Value]) {
        for chunk in pods.chunks(BURST) {
            let deletes = chunk.iter().map(|pod| async move {
                let name = text(pod, "/metadata/name");
                let namespace = text(pod, "/metadata/namespace");
                let result = self
                    .registry
                    .delete(&self.pods, Some(namespace), name, &DeleteOptions::default())
                    .await;
                (name, result)
            });
            let mut notes = Vec::new();
            for (name, result) in futures::future::join_all(deletes).await {
                match result {
                    Ok(_) => notes.push((
                        EventType::Normal,
                        "SuccessfulDelete",
                        format!("Deleted pod: {name}"),
                    )),
                    Err(Error::NotFound { .. }) => {}
                    Err(e) => notes.push((
                        EventType::Warning,
                        "FailedDelete",
                        format!("Error deleting: {e}"),
                    )),
                }
            }
            futures::future::join_all(notes.iter().map(|(kind, reason, message)| {
                self.events.record(rs, *kind, reason, message, None)
            }))
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surplus_pods_go_unscheduled_then_pending_then_unready_then_newest() {
        let pod = |name: &str, node: bool, phase: &str, ready: bool, created: &str| {
            let mut p = json!({"metadata": {"name": name, "creationTimestamp": created},
                "spec": {}, "status": {"phase": phase}});
            if node {
                p["spec"]["nodeName"] = json!("n");
            }
            if ready {
                p["status"]["conditions"] =
                    json!([{"type": "Ready", "status": "True", "lastTransitionTime": created}]);
            }
            p
        };
        let mut pods = [
            pod("old-ready", true, "Running", true, "2026-01-01T00:00:00Z"),
            pod("new-ready", true, "Running", true, "2026-01-02T00:00:00Z"),
            pod("unready", true, "Running", false, "2026-01-01T00:00:00Z"),
            pod("pending", true, "Pending", false, "2026-01-01T00:00:00Z"),
            pod(
                "unscheduled",
                false,
                "Pending",
                false,
                "2026-01-01T00:00:00Z",
            ),
        ];
        pods.sort_by_key(deletion_rank);
        let order: Vec<&str> = pods.iter().map(|p| text(p, "/metadata/name")).collect();
        assert_eq!(
            order,
            [
                "unscheduled",
                "pending",
                "unready",
                "new-ready",
                "old-ready"
            ]
        );
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let now: jiff::Timestamp = "2026-01-01T00:00:10Z".parse().unwrap();
        let pod = json!({"status": {"conditions": [{"type": "Ready", "status": "True",
            "lastTransitionTime": "2026-01-01T00:00:05Z"}]}});
        assert_eq!(available(&pod, 0, now), Some(Ok(())));
        assert_eq!(available(&pod, 5, now), Some(Ok(())));
        assert_eq!(available(&pod, 8, now), Some(Err(Duration::from_secs(3))));
        assert_eq!(available(&json!({}), 0, now), None);
    }
}
