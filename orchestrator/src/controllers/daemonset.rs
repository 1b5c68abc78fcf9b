//! The DaemonSet controller: one pod of the template on every node the
//! template may run on (its node selector, node affinity and tolerations
//! against the node's labels and taints), none elsewhere. Each pod is
//! pinned to its node by node affinity (`matchFields metadata.name`) and
//! left to the scheduler, and tolerates the node conditions a daemon must
//! outlive. A template change rolls out as a new revision (see
//! [`super::history`]): with `RollingUpdate`, old pods are replaced with
//! at most `maxUnavailable` nodes short of an available pod, or with up to
//! `maxSurge` new pods started beside the old; with `OnDelete`, as pods
//! are deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::driver::{self, Reconciler};
use super::history::{self, History};
use super::owners::{claim, controller_kind, controller_ref, deleting};
use super::replicaset::available;
use crate::events::{EventType, Recorder};
use crate::registry::kinds::scaled_value;
use crate::registry::metadata::text;
use crate::registry::{
    Cache, DeleteOptions, Error, LabelSelector, Registry, Resource, Result, WriteOptions,
};
use crate::scheduler::placement;

const MANAGER: &str = "daemonset-controller";
/// The label carrying the revision hash, on pods and revisions alike.
pub const HASH_LABEL: &str = "controller-revision-hash";
const GENERATION_LABEL: &str = "pod-template-generation";

/// Node conditions (as taints) a daemon pod tolerates.
const TOLERATED: [(&str, &str); 6] = [
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
];

struct DaemonSets {
    registry: Registry,
    sets: Resource,
    pods: Resource,
    cached_sets: Arc<Cache>,
    cached_pods: Arc<Cache>,
    cached_nodes: Arc<Cache>,
    history: History,
    events: Recorder,
    retries: driver::Retries,
}

/// Runs until `stop` turns true.
pub async fn run(registry: Registry, stop: tokio::sync::watch::Receiver<bool>) {
    let sets = registry.resource("apps", "DaemonSet");
    let pods = registry.resource("", "Pod");
    let nodes = registry.resource("", "Node");
    let reconciler = DaemonSets {
        events: Recorder::new(registry.clone(), MANAGER, None),
        retries: driver::Retries::new(&registry, MANAGER),
        history: History::new(registry.clone(), MANAGER, "DaemonSet", HASH_LABEL),
        cached_sets: registry.cache(&sets),
        cached_pods: registry.cache(&pods),
        cached_nodes: registry.cache(&nodes),
        registry: registry.clone(),
        sets: sets.clone(),
        pods: pods.clone(),
    };
    driver::run(
        registry,
        MANAGER,
        vec![
            sets.into(),
            driver::Watched {
                resource: pods,
                relevant: |pod| matches!(controller_kind(pod), None | Some("DaemonSet")),
            },
            driver::Watched {
                resource: nodes,
                // Labels, taints and schedulability decide where daemons
                // run; heartbeats do not.
                relevant: |_| false,
            },
        ],
        driver::Pace::WORKLOADS,
        reconciler,
        stop,
    )
    .await;
}

impl Reconciler for DaemonSets {
    async fn reconcile(&self, namespace: &str) -> Result<Option<Duration>> {
        let all = LabelSelector::default();
        let sets = self.cached_sets.list(Some(namespace), &all).await?;
        if sets.is_empty() {
            return Ok(None);
        }
        let pods = self.cached_pods.list(Some(namespace), &all).await?;
        let nodes = self.cached_nodes.list(None, &all).await?;
        let mut again = driver::Again::new(&self.retries);
        for set in sets.iter().filter(|s| !deleting(s)) {
            again.note(set, self.sync(set, &pods, &nodes).await);
        }
        Ok(again.when())
    }
}

/// The node a daemon pod is for: where it runs, or where its affinity
/// pins it.
fn node_of(pod: &Value) -> &str {
    let bound = text(pod, "/spec/nodeName");
    if !bound.is_empty() {
        return bound;
    }
    pod.pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchFields/0/values/0")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn hash_of(pod: &Value) -> &str {
    pod.pointer("/metadata/labels")
        .and_then(|l| l.get(HASH_LABEL))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn failed(pod: &Value) -> bool {
    matches!(text(pod, "/status/phase"), "Failed" | "Succeeded")
}

/// The pod spec of `template` for `node`: pinned to it, tolerating what
/// daemons tolerate.
fn pod_spec(template: &Value, node: &str) -> Value {
    let mut spec = template.get("spec").cloned().unwrap_or(json!({}));
    let term =
        json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]});
    if !spec.get("affinity").is_some_and(Value::is_object) {
        spec["affinity"] = json!({});
    }
    if !spec["affinity"]
        .get("nodeAffinity")
        .is_some_and(Value::is_object)
    {
        spec["affinity"]["nodeAffinity"] = json!({});
    }
    spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] =
        json!({"nodeSelectorTerms": [term]});
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    if !spec.get("tolerations").is_some_and(Value::is_array) {
        spec["tolerations"] = json!([]);
    }
    let tolerations = spec["tolerations"].as_array_mut().expect("made an array");
    let network = ("node.kubernetes.io/network-unavailable", "NoSchedule");
    for (key, effect) in TOLERATED.into_iter().chain(host_network.then_some(network)) {
        let present = tolerations
            .iter()
            .any(|t| text(t, "/key") == key && text(t, "/effect") == effect);
        if !present {
            tolerations.push(json!({"key": key, "operator": "Exists", "effect": effect}));
        }
    }
    spec
}

/// A node's pods of one set, and what the set wants there.
#[derive(Default)]
struct OnNode<'a> {
    should_run: bool,
    pods: Vec<&'a Value>,
}

impl DaemonSets {
    async fn sync(
        &self,
        set: &Value,
        pods: &[Arc<Value>],
        nodes: &[Arc<Value>],
    ) -> Result<Option<Duration>> {
        let selector = match LabelSelector::from_object(set.pointer("/spec/selector")) {
            Ok(s) if !s.is_empty() => s,
            _ => return Ok(None),
        };
        let reference = controller_ref(set, "apps/v1", "DaemonSet");
        let mine = claim(
            &self.registry,
            &self.pods,
            set,
            &reference,
            MANAGER,
            pods,
            |pod| !deleting(pod) && !failed(pod) && selector.matches(pod),
        )
        .await?;
        let revisions = self.history.sync(set).await?;
        let hash = self.history.hash(&revisions.update).to_string();
        let template = history::template_of(&revisions.update);
        let mut by_node: BTreeMap<&str, OnNode> = BTreeMap::new();
        for node in nodes {
            let probe = json!({"spec": pod_spec(&template, text(node, "/metadata/name"))});
            by_node
                .entry(text(node, "/metadata/name"))
                .or_default()
                .should_run = placement::check(&probe, node).is_ok();
        }
        for pod in mine.iter().filter(|p| !deleting(p)) {
            by_node.entry(node_of(pod)).or_default().pods.push(pod);
        }
        let rolling = text(set, "/spec/updateStrategy/type") != "OnDelete";
        let desired = by_node.values().filter(|n| n.should_run).count() as i64;
        let rolling_update = set.pointer("/spec/updateStrategy/rollingUpdate");
        let field = |name: &str| rolling_update.and_then(|r| r.get(name));
        let max_surge = scaled_value(field("maxSurge"), desired, true)
            .unwrap_or(0)
            .max(0);
        let max_unavailable = scaled_value(field("maxUnavailable"), desired, true)
            .unwrap_or(1)
            .max(if max_surge == 0 { 1 } else { 0 });
        let min_ready = set
            .pointer("/spec/minReadySeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let now = jiff::Timestamp::now();
        let is_available = |pod: &Value| matches!(available(pod, min_ready, now), Some(Ok(())));
        let mut create: Vec<&str> = Vec::new();
        let mut delete: Vec<&Value> = Vec::new();
        // Nodes short of an available pod, and old pods that could go.
        let mut unavailable = 0;
        let mut replaceable: Vec<(bool, &Value)> = Vec::new();
        let mut surge_candidates: Vec<&str> = Vec::new();
        for (node, on) in &by_node {
            if !on.should_run || node.is_empty() {
                delete.extend(&on.pods);
                continue;
            }
            let (dead, live): (Vec<&Value>, Vec<&Value>) =
                on.pods.iter().copied().partition(|p| failed(p));
            delete.extend(dead);
            let (new, old): (Vec<&Value>, Vec<&Value>) =
                live.into_iter().partition(|p| hash_of(p) == hash);
            if new.is_empty() && old.is_empty() {
                create.push(node);
                unavailable += 1;
                continue;
            }
            // More than one pod of a revision: the oldest stays.
            for group in [&new, &old] {
                let mut extra = group.clone();
                extra.sort_by_key(|p| text(p, "/metadata/creationTimestamp").to_string());
                delete.extend(extra.iter().skip(1));
            }
            let available_here = new.iter().chain(&old).any(|p| is_available(p));
            if !available_here {
                unavailable += 1;
            }
            if !rolling {
                continue;
            }
            match (new.first(), old.first()) {
                (Some(new), Some(old)) if is_available(new) => delete.push(old),
                (Some(_), Some(_)) => {}
                (None, Some(old)) if max_surge > 0 => {
                    if is_available(old) {
                        surge_candidates.push(node);
                    } else {
                        delete.push(old);
                    }
                }
                (None, Some(old)) => replaceable.push((is_available(old), old)),
                _ => {}
            }
        }
        // Old pods that are down go first; available ones while the
        // budget of unavailable nodes allows.
        replaceable.sort_by_key(|(up, _)| *up);
        let mut budget = max_unavailable - unavailable;
        for (up, old) in replaceable {
            if up {
                if budget <= 0 {
                    break;
                }
                budget -= 1;
            }
            delete.push(old);
        }
        let surging = by_node
            .values()
            .filter(|on| {
                on.pods.iter().any(|p| hash_of(p) == hash)
                    && on.pods.iter().any(|p| hash_of(p) != hash)
            })
            .count() as i64;
        create.extend(
            surge_candidates
                .into_iter()
                .take((max_surge - surging).max(0) as usize),
        );
        for node in create {
            self.create_pod(set, &template, &hash, node).await?;
        }
        for pod in delete {
            self.delete_pod(set, pod).await?;
        }
        let again = self.write_status(set, &by_node, &hash, min_ready).await?;
        let mut live: BTreeSet<&str> = BTreeSet::new();
        let hashes: BTreeSet<&str> = mine.iter().map(|p| hash_of(p)).collect();
        for revision in &revisions.owned {
            if hashes.contains(self.history.hash(revision)) {
                live.insert(text(revision, "/metadata/name"));
            }
        }
        live.insert(text(&revisions.update, "/metadata/name"));
        self.history.truncate(set, &revisions.owned, &live).await?;
        Ok(again)
    }

    async fn create_pod(
        &self,
        set: &Value,
        template: &Value,
        hash: &str,
        node: &str,
    ) -> Result<()> {
        let name = text(set, "/metadata/name");
        let mut metadata = super::from_template(
            json!({
                "generateName": format!("{name}-"),
                "ownerReferences": [controller_ref(set, "apps/v1", "DaemonSet")],
            }),
            template,
        );
        let labels = metadata
            .as_object_mut()
            .expect("built as an object")
            .entry("labels")
            .or_insert_with(|| json!({}));
        labels[HASH_LABEL] = json!(hash);
        labels[GENERATION_LABEL] = json!(
            set.pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1)
                .to_string()
        );
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "spec": pod_spec(template, node)});
        let created = self
            .registry
            .create(
                &self.pods,
                Some(text(set, "/metadata/namespace")),
                pod,
                &WriteOptions::manager(MANAGER),
            )
            .await;
        match created {
            Ok(written) => {
                let message = format!("Created pod: {}", text(&written.object, "/metadata/name"));
                self.events
                    .record(set, EventType::Normal, "SuccessfulCreate", &message, None)
                    .await;
                Ok(())
            }
            Err(e) => {
                let message = format!("Error creating: {e}");
                self.events
                    .record(set, EventType::Warning, "FailedCreate", &message, None)
                    .await;
                Err(e)
            }
        }
    }

    async fn delete_pod(&self, set: &Value, pod: &Value) -> Result<()> {
        let name = text(pod, "/metadata/name");
        let deleted = self
            .registry
            .delete(
                &self.pods,
                Some(text(pod, "/metadata/namespace")),
                name,
                &DeleteOptions::default(),
            )
            .await;
        match deleted {
            Ok(_) => {
                let message = format!("Deleted pod: {name}");
                self.events
                    .record(set, EventType::Normal, "SuccessfulDelete", &message, None)
                    .await;
                Ok(())
            }
            Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => {
                let message = format!("Error deleting: {e}");
                self.events
                    .record(set, EventType::Warning, "FailedDelete", &message, None)
                    .await;
                Err(e)
            }
        }
    }

    /// Status counts nodes: those that should run the daemon, those that
    /// do (scheduled there), with a ready, available or updated pod, and
    /// those that run it but should not.
    async fn write_status(
        &self,
        set: &Value,
        by_node: &BTreeMap<&str, OnNode<'_>>,
        hash: &str,
        min_ready: i64,
    ) -> Result<Option<Duration>> {
        let now = jiff::Timestamp::now();
        let mut again: Option<Duration> = None;
        let (mut desired, mut current, mut misscheduled) = (0, 0, 0);
        let (mut ready, mut available_nodes, mut updated) = (0, 0, 0);
        for on in by_node.values() {
            let scheduled: Vec<&Value> = on
                .pods
                .iter()
                .copied()
                .filter(|p| !text(p, "/spec/nodeName").is_empty())
                .collect();
            if !on.should_run {
                misscheduled += i64::from(!scheduled.is_empty());
                continue;
            }
            desired += 1;
            if scheduled.is_empty() {
                continue;
            }
            current += 1;
            updated += i64::from(scheduled.iter().any(|p| hash_of(p) == hash));
            let mut is_ready = false;
            let mut is_available = false;
            for pod in &scheduled {
                match available(pod, min_ready, now) {
                    Some(Ok(())) => {
                        is_ready = true;
                        is_available = true;
                    }
                    Some(Err(left)) => {
                        is_ready = true;
                        again = Some(again.map_or(left, |a| a.min(left)));
                    }
                    None => {}
                }
            }
            ready += i64::from(is_ready);
            available_nodes += i64::from(is_available);
        }
        let status = json!({
            "observedGeneration": set.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
            "desiredNumberScheduled": desired,
            "currentNumberScheduled": current,
            "numberMisscheduled": misscheduled,
            "numberReady": ready,
            "updatedNumberScheduled": updated,
            "numberAvailable": available_nodes,
            // Omitted when none, as the DaemonSet controller leaves it.
            "numberUnavailable": (desired > available_nodes).then_some(desired - available_nodes),
        });
        super::merge_status(&self.registry, &self.sets, set, MANAGER, &status).await?;
        Ok(again.map(|d| d + Duration::from_millis(50)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_pods_are_pinned_and_tolerate_node_conditions() {
        let template = json!({"spec": {"containers": [{"name": "c", "image": "toolbox"}],
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}}}});
        let spec = pod_spec(&template, "edge-1");
        let pod = json!({"spec": spec});
        assert_eq!(node_of(&pod), "edge-1");
        let tolerations = pod["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(tolerations.len(), 6, "{tolerations:?}");
        let node = |name: &str| {
            json!({"metadata": {"name": name}, "spec": {"taints": [
            {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]}})
        };
        assert_eq!(placement::check(&pod, &node("edge-1")), Ok(()));
        assert_eq!(
            placement::check(&pod, &node("edge-2")),
            Err(placement::Misfit::Affinity)
        );
    }
}
