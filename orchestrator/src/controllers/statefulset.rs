//! The StatefulSet controller: pods with a stable identity, `<set>-<n>` for
//! each ordinal, each with its own claims (`<template>-<set>-<n>`, made
//! from `volumeClaimTemplates` and kept across restarts), its hostname and
//! the Service's subdomain.
//!
//! `OrderedReady` sets make one change at a time: pods are created in
//! ordinal order, each once the one before is running and ready, and
//! removed from the highest ordinal down; `Parallel` sets create and
//! remove all at once. A template change rolls out as a new revision
//! (see [`super::history`]): with `RollingUpdate`, from the highest
//! ordinal down to the `partition`, one pod at a time, each replaced once
//! the others are running and ready; with `OnDelete`, as pods are deleted.
//! Claims stay when pods and sets go, unless the
//! `persistentVolumeClaimRetentionPolicy` says Delete.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::driver::{self, Reconciler};
use super::history::{self, History};
use super::owners::{claim, controller_kind, controller_ref, deleting};
use super::replicaset::{active, available};
use crate::events::{EventType, Recorder};
use crate::registry::metadata::text;
use crate::registry::{
    Cache, DeleteOptions, Error, LabelSelector, Registry, Resource, Result, WriteOptions,
};

const MANAGER: &str = "statefulset-controller";
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
pub const REVISION_LABEL: &str = "controller-revision-hash";

struct StatefulSets {
    registry: Registry,
    sets: Resource,
    pods: Resource,
    claims: Resource,
    cached_sets: Arc<Cache>,
    cached_pods: Arc<Cache>,
    history: History,
    events: Recorder,
    retries: driver::Retries,
}

/// Runs until `stop` turns true.
pub async fn run(registry: Registry, stop: tokio::sync::watch::Receiver<bool>) {
    let sets = registry.resource("apps", "StatefulSet");
    let pods = registry.resource("", "Pod");
    let reconciler = StatefulSets {
        events: Recorder::new(registry.clone(), MANAGER, None),
        retries: driver::Retries::new(&registry, MANAGER),
        history: History::new(
            registry.clone(),
            MANAGER,
            "StatefulSet",
            "controller.kubernetes.io/hash",
        ),
        cached_sets: registry.cache(&sets),
        cached_pods: registry.cache(&pods),
        claims: registry.resource("", "PersistentVolumeClaim"),
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
                relevant: |pod| matches!(controller_kind(pod), None | Some("StatefulSet")),
            },
        ],
        driver::Pace::WORKLOADS,
        reconciler,
        stop,
    )
    .await;
}

impl Reconciler for StatefulSets {
    async fn reconcile(&self, namespace: &str) -> Result<Option<Duration>> {
        let all = LabelSelector::default();
        let sets = self.cached_sets.list(Some(namespace), &all).await?;
        if sets.is_empty() {
            return Ok(None);
        }
        let pods = self.cached_pods.list(Some(namespace), &all).await?;
        let mut again = driver::Again::new(&self.retries);
        for set in sets.iter().filter(|s| !deleting(s)) {
            again.note(set, self.sync(set, &pods).await);
        }
        Ok(again.when())
    }
}

/// The ordinal of a pod named `<set>-<n>`, if it is one of the set's.
fn ordinal(set_name: &str, pod: &Value) -> Option<i64> {
    let name = text(pod, "/metadata/name");
    let n = name.strip_prefix(set_name)?.strip_prefix('-')?;
    if n.is_empty() || (n.len() > 1 && n.starts_with('0')) {
        return None;
    }
    n.parse().ok()
}

fn int(object: &Value, pointer: &str, default: i64) -> i64 {
    object
        .pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or(default)
}

/// Running, ready, and not being deleted: a pod an ordered set may move
/// past.
fn healthy(pod: &Value) -> bool {
    !deleting(pod) && text(pod, "/status/phase") == "Running" && super::replicaset::is_ready(pod)
}

fn failed(pod: &Value) -> bool {
    matches!(text(pod, "/status/phase"), "Failed" | "Succeeded")
}

/// What one pass does to a set's pods, in the order it decides it.
#[derive(Debug, PartialEq)]
enum Step {
    /// Create the pod of this ordinal.
    Create(i64),
    /// Delete this pod (failed, condemned or outdated).
    Delete(String),
}

/// The pods a set has, by ordinal, and what its spec asks.
struct Plan<'a> {
    start: i64,
    replicas: i64,
    ordered: bool,
    rolling: bool,
    partition: i64,
    update: &'a str,
    by_ordinal: BTreeMap<i64, &'a Value>,
}

impl Plan<'_> {
    /// What to do now: Kubernetes' StatefulSet update, pass by pass.
    fn steps(&self) -> Vec<Step> {
        let mut steps = Vec::new();
        let end = self.start + self.replicas;
        // Replicas, lowest ordinal first.
        for ordinal in self.start..end {
            match self.by_ordinal.get(&ordinal) {
                None => {
                    steps.push(Step::Create(ordinal));
                    if self.ordered {
                        return steps;
                    }
                }
                Some(pod) if failed(pod) && !deleting(pod) => {
                    steps.push(Step::Delete(text(pod, "/metadata/name").into()));
                    if self.ordered {
                        return steps;
                    }
                }
                Some(pod) if self.ordered && !healthy(pod) => return steps,
                Some(_) => {}
            }
        }
        // Condemned pods, highest ordinal first.
        let condemned: Vec<&&Value> = self
            .by_ordinal
            .iter()
            .rev()
            .filter(|(o, _)| **o < self.start || **o >= end)
            .map(|(_, p)| p)
            .collect();
        for pod in &condemned {
            if deleting(pod) {
                if self.ordered {
                    return steps;
                }
                continue;
            }
            steps.push(Step::Delete(text(pod, "/metadata/name").into()));
            if self.ordered {
                return steps;
            }
        }
        if !condemned.is_empty() || !steps.is_empty() || !self.rolling {
            return steps;
        }
        // A rolling update: the highest outdated ordinal at or above the
        // partition, once every replica is healthy.
        let replicas: Vec<(i64, &Value)> = (self.start..end)
            .filter_map(|o| Some((o, *self.by_ordinal.get(&o)?)))
            .collect();
        if replicas.iter().any(|(_, p)| !healthy(p)) {
            return steps;
        }
        let outdated = replicas
            .iter()
            .rev()
            .find(|(o, p)| o - self.start >= self.partition && revision_of(p) != self.update);
        if let Some((_, pod)) = outdated {
            steps.push(Step::Delete(text(pod, "/metadata/name").into()));
        }
        steps
    }
}

fn revision_of(pod: &Value) -> &str {
    pod.pointer("/metadata/labels")
        .and_then(|l| l.get(REVISION_LABEL))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

impl StatefulSets {
    async fn sync(&self, set: &Value, pods: &[Arc<Value>]) -> Result<Option<Duration>> {
        let selector = match LabelSelector::from_object(set.pointer("/spec/selector")) {
            Ok(s) if !s.is_empty() => s,
            _ => return Ok(None),
        };
        let name = text(set, "/metadata/name");
        let reference = controller_ref(set, "apps/v1", "StatefulSet");
        let mine = claim(
            &self.registry,
            &self.pods,
            set,
            &reference,
            MANAGER,
            pods,
            |pod| active(pod) && selector.matches(pod) && ordinal(name, pod).is_some(),
        )
        .await?;
        let revisions = self.history.sync(set).await?;
        let (current, update) = (&revisions.current, &revisions.update);
        let update_name = text(update, "/metadata/name");
        let by_ordinal: BTreeMap<i64, &Value> = mine
            .iter()
            .filter_map(|p| Some((ordinal(name, p)?, &**p)))
            .collect();
        let strategy = text(set, "/spec/updateStrategy/type");
        let plan = Plan {
            start: int(set, "/spec/ordinals/start", 0),
            replicas: int(set, "/spec/replicas", 1).max(0),
            ordered: text(set, "/spec/podManagementPolicy") != "Parallel",
            rolling: strategy != "OnDelete",
            partition: int(set, "/spec/updateStrategy/rollingUpdate/partition", 0),
            update: update_name,
            by_ordinal,
        };
        for step in plan.steps() {
            match step {
                Step::Create(ordinal) => {
                    // Below the partition, new pods keep the current
                    // revision; a rolling update moves them later.
                    let revision = if plan.rolling && ordinal - plan.start < plan.partition {
                        current
                    } else {
                        update
                    };
                    self.create_pod(set, revision, ordinal).await?;
                }
                Step::Delete(pod) => {
                    let pod = plan
                        .by_ordinal
                        .values()
                        .find(|p| text(p, "/metadata/name") == pod)
                        .expect("steps name the set's pods");
                    let condemned = ordinal(name, pod)
                        .is_some_and(|o| o < plan.start || o >= plan.start + plan.replicas);
                    self.delete_pod(set, pod, condemned).await?;
                }
            }
        }
        let again = self.write_status(set, &mine, &revisions).await?;
        let mut live: BTreeSet<&str> = mine.iter().map(|p| revision_of(p)).collect();
        live.insert(text(current, "/metadata/name"));
        live.insert(update_name);
        self.history.truncate(set, &revisions.owned, &live).await?;
        Ok(again)
    }

    /// The claims of the pod of `ordinal`, as `(template name, claim name)`.
    fn claims_of(set: &Value, ordinal: i64) -> Vec<(&str, String)> {
        let name = text(set, "/metadata/name");
        set.pointer("/spec/volumeClaimTemplates")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|t| {
                let template = text(t, "/metadata/name");
                (template, format!("{template}-{name}-{ordinal}"))
            })
            .collect()
    }

    async fn create_pod(&self, set: &Value, revision: &Value, ordinal: i64) -> Result<()> {
        let namespace = text(set, "/metadata/namespace");
        let name = format!("{}-{ordinal}", text(set, "/metadata/name"));
        self.create_claims(set, ordinal).await?;
        let template = history::template_of(revision);
        let mut metadata = super::from_template(
            json!({
                "name": name,
                "ownerReferences": [controller_ref(set, "apps/v1", "StatefulSet")],
            }),
            &template,
        );
        let labels = metadata
            .as_object_mut()
            .expect("built as an object")
            .entry("labels")
            .or_insert_with(|| json!({}));
        labels[POD_NAME_LABEL] = json!(name);
        labels[POD_INDEX_LABEL] = json!(ordinal.to_string());
        labels[REVISION_LABEL] = json!(text(revision, "/metadata/name"));
        let mut spec = template.get("spec").cloned().unwrap_or(json!({}));
        spec["hostname"] = json!(name);
        let service = text(set, "/spec/serviceName");
        if !service.is_empty() {
            spec["subdomain"] = json!(service);
        }
        let claims = Self::claims_of(set, ordinal);
        if !claims.is_empty() {
            let volumes = spec
                .as_object_mut()
                .expect("a pod spec")
                .entry("volumes")
                .or_insert_with(|| json!([]));
            if let Some(volumes) = volumes.as_array_mut() {
                for (volume, claim) in claims {
                    volumes.retain(|v| text(v, "/name") != volume);
                    volumes.push(
                        json!({"name": volume, "persistentVolumeClaim": {"claimName": claim}}),
                    );
                }
            }
        }
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec});
        let result = self
            .registry
            .create(
                &self.pods,
                Some(namespace),
                pod,
                &WriteOptions::manager(MANAGER),
            )
            .await;
        match result {
            Ok(_) => {
                let message = format!(
                    "create Pod {name} in StatefulSet {} successful",
                    text(set, "/metadata/name")
                );
                self.events
                    .record(set, EventType::Normal, "SuccessfulCreate", &message, None)
                    .await;
                Ok(())
            }
            Err(e) => {
                let message = format!(
                    "create Pod {name} in StatefulSet {} failed error: {e}",
                    text(set, "/metadata/name")
                );
                self.events
                    .record(set, EventType::Warning, "FailedCreate", &message, None)
                    .await;
                Err(e)
            }
        }
    }

    /// Creates the claims of the pod of `ordinal` that do not exist yet.
    async fn create_claims(&self, set: &Value, ordinal: i64) -> Result<()> {
        let namespace = text(set, "/metadata/namespace");
        let set_name = text(set, "/metadata/name");
        let templates = set
            .pointer("/spec/volumeClaimTemplates")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for template in templates {
            let claim_name = format!("{}-{set_name}-{ordinal}", text(&template, "/metadata/name"));
            match self
                .registry
                .get(&self.claims, Some(namespace), &claim_name)
            {
                Ok(_) => continue,
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
            let mut labels = template
                .pointer("/metadata/labels")
                .cloned()
                .unwrap_or(json!({}));
            for (k, v) in set
                .pointer("/spec/selector/matchLabels")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                labels[k] = v.clone();
            }
            let mut metadata = json!({"name": claim_name, "labels": labels});
            if let Some(annotations) = template.pointer("/metadata/annotations") {
                metadata["annotations"] = annotations.clone();
            }
            if text(
                set,
                "/spec/persistentVolumeClaimRetentionPolicy/whenDeleted",
            ) == "Delete"
            {
                metadata["ownerReferences"] = json!([owner_ref(set, "apps/v1", "StatefulSet")]);
            }
            let claim = json!({
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": metadata,
                "spec": template.get("spec").cloned().unwrap_or(json!({})),
            });
            let created = self
                .registry
                .create(
                    &self.claims,
                    Some(namespace),
                    claim,
                    &WriteOptions::manager(MANAGER),
                )
                .await;
            let pod = format!("{set_name}-{ordinal}");
            match created {
                Ok(_) | Err(Error::AlreadyExists { .. }) => {
                    let message = format!(
                        "create Claim {claim_name} Pod {pod} in StatefulSet {set_name} success"
                    );
                    self.events
                        .record(set, EventType::Normal, "SuccessfulCreate", &message, None)
                        .await;
                }
                Err(e) => {
                    let message = format!(
                        "create Claim {claim_name} for Pod {pod} in StatefulSet {set_name} failed error: {e}"
                    );
                    self.events
                        .record(set, EventType::Warning, "FailedCreate", &message, None)
                        .await;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Deletes one of the set's pods; a pod removed by scaling down hands
    /// its claims to the garbage collector first when `whenScaled` is
    /// Delete.
    async fn delete_pod(&self, set: &Value, pod: &Value, condemned: bool) -> Result<()> {
        let namespace = text(pod, "/metadata/namespace");
        let name = text(pod, "/metadata/name");
        let set_name = text(set, "/metadata/name");
        if condemned
            && text(set, "/spec/persistentVolumeClaimRetentionPolicy/whenScaled") == "Delete"
            && let Some(ordinal) = ordinal(set_name, pod)
        {
            for (_, claim) in Self::claims_of(set, ordinal) {
                let claim = match self.registry.get(&self.claims, Some(namespace), &claim) {
                    Ok(claim) => claim,
                    Err(Error::NotFound { .. }) => continue,
                    Err(e) => return Err(e),
                };
                let reference = owner_ref(pod, "v1", "Pod");
                super::edit(
                    &self.registry,
                    &self.claims,
                    &claim,
                    None,
                    MANAGER,
                    |next| {
                        let refs = next["metadata"]
                            .as_object_mut()
                            .expect("stored objects have metadata")
                            .entry("ownerReferences")
                            .or_insert_with(|| json!([]));
                        if let Some(refs) = refs.as_array_mut()
                            && !refs.iter().any(|r| r.get("uid") == reference.get("uid"))
                        {
                            refs.push(reference.clone());
                        }
                    },
                )
                .await?;
            }
        }
        match self
            .registry
            .delete(&self.pods, Some(namespace), name, &DeleteOptions::default())
            .await
        {
            Ok(_) => {
                let message = format!("delete Pod {name} in StatefulSet {set_name} successful");
                self.events
                    .record(set, EventType::Normal, "SuccessfulDelete", &message, None)
                    .await;
                Ok(())
            }
            Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => {
                let message =
                    format!("delete Pod {name} in StatefulSet {set_name} failed error: {e}");
                self.events
                    .record(set, EventType::Warning, "FailedDelete", &message, None)
                    .await;
                Err(e)
            }
        }
    }

    /// Status from the pods seen: counts, and the current revision moving
    /// to the update revision once a rolling update is complete.
    async fn write_status(
        &self,
        set: &Value,
        pods: &[Arc<Value>],
        revisions: &history::Revisions,
    ) -> Result<Option<Duration>> {
        let current_name = text(&revisions.current, "/metadata/name");
        let update_name = text(&revisions.update, "/metadata/name");
        let min_ready = int(set, "/spec/minReadySeconds", 0);
        let now = jiff::Timestamp::now();
        let (mut replicas, mut ready, mut available_now, mut current, mut updated) =
            (0, 0, 0, 0, 0);
        let mut again: Option<Duration> = None;
        for pod in pods.iter().filter(|p| !failed(p)) {
            replicas += 1;
            if text(pod, "/status/phase") == "Running" {
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
            if !deleting(pod) {
                let revision = revision_of(pod);
                current += i64::from(revision == current_name);
                updated += i64::from(revision == update_name);
            }
        }
        let mut current_revision = current_name;
        let rolling = text(set, "/spec/updateStrategy/type") != "OnDelete";
        if rolling && updated == replicas && ready == replicas {
            current_revision = update_name;
            current = updated;
        }
        let status = json!({
            "observedGeneration": set.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
            "replicas": replicas,
            "readyReplicas": ready,
            "currentReplicas": current,
            "updatedReplicas": updated,
            "availableReplicas": available_now,
            "currentRevision": current_revision,
            "updateRevision": update_name,
            "collisionCount": 0,
        });
        super::merge_status(&self.registry, &self.sets, set, MANAGER, &status).await?;
        Ok(again.map(|d| d + Duration::from_millis(50)))
    }
}

/// An owner reference that does not make its owner the controller (claims
/// belong to a set or a pod only for the garbage collector).
fn owner_ref(owner: &Value, api_version: &str, kind: &str) -> Value {
    let mut reference = controller_ref(owner, api_version, kind);
    reference["controller"] = json!(false);
    reference
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, revision: &str, phase: &str, ready: bool) -> Value {
        let mut pod = json!({"metadata": {"name": name, "labels": {REVISION_LABEL: revision}},
            "status": {"phase": phase}});
        if ready {
            pod["status"]["conditions"] = json!([{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]);
        }
        pod
    }

    fn plan<'a>(pods: &'a [Value], replicas: i64, ordered: bool, partition: i64) -> Plan<'a> {
        Plan {
            start: 0,
            replicas,
            ordered,
            rolling: true,
            partition,
            update: "web-2",
            by_ordinal: pods
                .iter()
                .map(|p| (ordinal("web", p).unwrap(), p))
                .collect(),
        }
    }

    #[test]
    fn ordinals_are_the_sets_own() {
        let named = |n: &str| json!({"metadata": {"name": n}});
        assert_eq!(ordinal("web", &named("web-0")), Some(0));
        assert_eq!(ordinal("web", &named("web-12")), Some(12));
        assert_eq!(ordinal("web", &named("web-01")), None);
        assert_eq!(ordinal("web", &named("webby-1")), None);
        assert_eq!(ordinal("web", &named("web-")), None);
    }

    #[test]
    fn ordered_sets_wait_for_each_pod_and_parallel_ones_do_not() {
        let pods = [
            pod("web-0", "web-2", "Running", true),
            pod("web-1", "web-2", "Pending", false),
        ];
        assert_eq!(plan(&pods, 4, true, 0).steps(), []);
        assert_eq!(
            plan(&pods, 4, false, 0).steps(),
            [Step::Create(2), Step::Create(3)]
        );
        let pods = [
            pod("web-0", "web-2", "Running", true),
            pod("web-1", "web-2", "Running", true),
        ];
        assert_eq!(plan(&pods, 4, true, 0).steps(), [Step::Create(2)]);
        // Scaling down: the highest ordinal first, one at a time.
        let pods = [
            pod("web-0", "web-2", "Running", true),
            pod("web-1", "web-2", "Running", true),
            pod("web-2", "web-2", "Running", true),
        ];
        assert_eq!(
            plan(&pods, 1, true, 0).steps(),
            [Step::Delete("web-2".into())]
        );
        assert_eq!(
            plan(&pods, 1, false, 0).steps(),
            [Step::Delete("web-2".into()), Step::Delete("web-1".into())]
        );
    }

    #[test]
    fn rolling_updates_go_down_to_the_partition() {
        let pods = [
            pod("web-0", "web-1", "Running", true),
            pod("web-1", "web-1", "Running", true),
            pod("web-2", "web-2", "Running", true),
        ];
        assert_eq!(
            plan(&pods, 3, true, 0).steps(),
            [Step::Delete("web-1".into())]
        );
        assert_eq!(plan(&pods, 3, true, 2).steps(), []);
        // Nothing is replaced while a pod is unhealthy.
        let pods = [
            pod("web-0", "web-1", "Running", true),
            pod("web-1", "web-1", "Running", false),
            pod("web-2", "web-2", "Running", true),
        ];
        assert_eq!(plan(&pods, 3, false, 0).steps(), []);
    }
}
