//! The Deployment controller: one ReplicaSet per distinct pod template
//! (named `<deployment>-<pod-template-hash>`), rolled from old to new by
//! the strategy (RollingUpdate within maxSurge/maxUnavailable, or
//! Recreate), with revisions for `kubectl rollout history/undo`, old sets
//! kept up to revisionHistoryLimit, and status and conditions as
//! `kubectl rollout status` reads them.

use std::time::Duration;

use serde_json::{Value, json};

use super::driver::{self, Reconciler};
use super::edit;
use super::owners::{adopt, controller_ref, controller_uid, deleting};
use crate::events::{EventType, Recorder};
use crate::registry::kinds::scaled_value;
use crate::registry::metadata::{now, text};
use crate::registry::{
    DeleteOptions, Error, LabelSelector, ListOptions, Registry, Resource, Result, WriteOptions,
};

const MANAGER: &str = "deployment-controller";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
const DESIRED: &str = "deployment.kubernetes.io/desired-replicas";
const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const HASH_LABEL: &str = "pod-template-hash";

struct Deployments {
    registry: Registry,
    deployments: Resource,
    replica_sets: Resource,
    pods: Resource,
    events: Recorder,
    retries: driver::Retries,
}

/// Runs until `stop` turns true.
pub async fn run(registry: Registry, stop: tokio::sync::watch::Receiver<bool>) {
    let deployments = registry.resource("apps", "Deployment");
    let replica_sets = registry.resource("apps", "ReplicaSet");
    let reconciler = Deployments {
        events: Recorder::new(registry.clone(), MANAGER, None),
        retries: driver::Retries::new(&registry, MANAGER),
        registry: registry.clone(),
        deployments: deployments.clone(),
        replica_sets: replica_sets.clone(),
        pods: registry.resource("", "Pod"),
    };
    driver::run(
        registry,
        MANAGER,
        vec![deployments.into(), replica_sets.into()],
        driver::Pace::WORKLOADS,
        reconciler,
        stop,
    )
    .await;
}

impl Reconciler for Deployments {
    async fn reconcile(&self, namespace: &str) -> Result<Option<Duration>> {
        let all = ListOptions::default();
        let deployments = self
            .registry
            .list(&self.deployments, Some(namespace), &all)?
            .items;
        if deployments.is_empty() {
            return Ok(None);
        }
        let sets = self
            .registry
            .list(&self.replica_sets, Some(namespace), &all)?
            .items;
        let mut again = driver::Again::new(&self.retries);
        for deployment in deployments.iter().filter(|d| !deleting(d)) {
            again.note(deployment, self.sync(deployment, &sets).await);
        }
        Ok(again.when())
    }
}

/// The pod-template-hash of a template: FNV-1a over its JSON (keys
/// sorted, without the hash label), spelled in Kubernetes' safe alphabet.
pub fn template_hash(template: &Value, collisions: i64) -> String {
    let mut template = template.clone();
    strip_hash_label(&mut template);
    let mut text = template.to_string();
    if collisions > 0 {
        text.push_str(&collisions.to_string());
    }
    super::safe_hash(&text)
}

/// Drops what typed Kubernetes objects cannot tell from an absent field:
/// nulls, empty objects and lists, and zero values (`""`, `false`, `0`,
/// the zero time). Templates arrive both ways: `kubectl create deployment`
/// sends every zero value (protobuf), `kubectl rollout undo` writes
/// `creationTimestamp: null` and leaves zeros out.
fn normalize(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for v in map.values_mut() {
                normalize(v);
            }
            map.retain(|_, v| !is_empty(v));
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => true,
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::String(text) => text.is_empty() || text == "1970-01-01T00:00:00Z",
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Bool(true) => false,
    }
}

fn strip_hash_label(template: &mut Value) {
    normalize(template);
    if let Some(labels) = template
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH_LABEL);
        if labels.is_empty() {
            template["metadata"]
                .as_object_mut()
                .expect("labels live in metadata")
                .remove("labels");
        }
    }
    if let Some(meta) = template.get("metadata").and_then(Value::as_object)
        && meta.is_empty()
    {
        template
            .as_object_mut()
            .expect("an object")
            .remove("metadata");
    }
}

/// Whether two templates are the same apart from the hash label.
pub fn same_template(a: Option<&Value>, b: Option<&Value>) -> bool {
    let mut a = a.cloned().unwrap_or(Value::Null);
    let mut b = b.cloned().unwrap_or(Value::Null);
    strip_hash_label(&mut a);
    strip_hash_label(&mut b);
    a == b
}

fn revision(rs: &Value) -> i64 {
    rs.pointer("/metadata/annotations")
        .and_then(|a| a.get(REVISION))
        .and_then(Value::as_str)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn replicas(object: &Value) -> i64 {
    object
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

fn status_count(object: &Value, field: &str) -> i64 {
    object
        .pointer(&format!("/status/{field}"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// The Deployment's maxSurge and maxUnavailable as pod counts (at least
/// one of them non-zero, as Kubernetes ensures).
fn surge_and_unavailable(deployment: &Value) -> (i64, i64) {
    let wanted = replicas(deployment);
    let rolling = deployment.pointer("/spec/strategy/rollingUpdate");
    let field = |name: &str| rolling.and_then(|r| r.get(name));
    let surge = scaled_value(field("maxSurge"), wanted, true)
        .unwrap_or(0)
        .max(0);
    let unavailable = scaled_value(field("maxUnavailable"), wanted, false)
        .unwrap_or(0)
        .max(0);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable.min(wanted))
    }
}

impl Deployments {
    async fn sync(&self, deployment: &Value, sets: &[Value]) -> Result<Option<Duration>> {
        let uid = text(deployment, "/metadata/uid");
        let selector = match LabelSelector::from_object(deployment.pointer("/spec/selector")) {
            Ok(s) if !s.is_empty() => s,
            _ => return Ok(None),
        };
        let mut owned: Vec<Value> = Vec::new();
        for rs in sets {
            match controller_uid(rs) {
                Some(owner) if owner == uid => owned.push(rs.clone()),
                None if !deleting(rs) && selector.matches(rs) => {
                    let reference = controller_ref(deployment, "apps/v1", "Deployment");
                    let adopted =
                        adopt(&self.registry, &self.replica_sets, rs, &reference, MANAGER).await?;
                    if controller_uid(&adopted) == Some(uid) {
                        owned.push(adopted);
                    }
                }
                _ => {}
            }
        }
        let template = deployment.pointer("/spec/template");
        let paused = deployment.pointer("/spec/paused").and_then(Value::as_bool) == Some(true);
        let max_revision = owned.iter().map(revision).max().unwrap_or(0);
        let mut new_rs = owned
            .iter()
            .position(|rs| same_template(rs.pointer("/spec/template"), template))
            .map(|i| owned.remove(i));
        let mut old: Vec<Value> = owned;
        old.sort_by_key(|rs| {
            (
                revision(rs),
                text(rs, "/metadata/creationTimestamp").to_string(),
            )
        });
        let mut created = false;
        if !paused {
            match &new_rs {
                None => {
                    new_rs = Some(self.create_new(deployment, &old, max_revision).await?);
                    created = true;
                }
                Some(rs) if revision(rs) < max_revision || revision(rs) == 0 => {
                    // `rollout undo` brought an old template back: it is
                    // the newest revision now.
                    let next = max_revision.max(revision(rs)) + 1;
                    new_rs = Some(self.annotate_revision(rs, next).await?);
                }
                Some(_) => {}
            }
        }
        let mut waiting = None;
        if paused {
            self.scale_paused(deployment, new_rs.as_ref(), &mut old)
                .await?;
        } else if let Some(new_rs) = new_rs.as_mut() {
            let recreate = text(deployment, "/spec/strategy/type") == "Recreate";
            if recreate {
                waiting = self.recreate(deployment, new_rs, &mut old).await?;
            } else {
                self.roll(deployment, new_rs, &mut old).await?;
            }
        }
        self.clean_up(deployment, &old).await;
        let again = self
            .write_status(deployment, new_rs.as_ref(), &old, created, paused)
            .await?;
        Ok(match (again, waiting) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    async fn create_new(
        &self,
        deployment: &Value,
        old: &[Value],
        max_revision: i64,
    ) -> Result<Value> {
        let namespace = text(deployment, "/metadata/namespace");
        let mut template = deployment
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(json!({}));
        let collisions = deployment
            .pointer("/status/collisionCount")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let hash = template_hash(&template, collisions);
        template["metadata"]["labels"][HASH_LABEL] = json!(hash);
        let mut selector = deployment
            .pointer("/spec/selector")
            .cloned()
            .unwrap_or(json!({}));
        selector["matchLabels"][HASH_LABEL] = json!(hash);
        let wanted = replicas(deployment);
        // The first step of the rollout: as many as the surge allows now.
        let (surge, _) = surge_and_unavailable(deployment);
        let start = if text(deployment, "/spec/strategy/type") == "Recreate" {
            0
        } else {
            let current: i64 = old.iter().map(replicas).sum();
            (wanted + surge - current).clamp(0, wanted)
        };
        let name = format!("{}-{hash}", text(deployment, "/metadata/name"));
        let mut labels = template
            .pointer("/metadata/labels")
            .cloned()
            .unwrap_or(json!({}));
        labels[HASH_LABEL] = json!(hash);
        let rs = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": labels,
                "annotations": {
                    REVISION: (max_revision + 1).to_string(),
                    DESIRED: wanted.to_string(),
                    MAX_REPLICAS: (wanted + surge).to_string(),
                },
                "ownerReferences": [controller_ref(deployment, "apps/v1", "Deployment")],
            },
            "spec": {
                "replicas": start,
                "minReadySeconds": deployment.pointer("/spec/minReadySeconds").cloned().unwrap_or(json!(0)),
                "selector": selector,
                "template": template,
            },
        });
        let written = self
            .registry
            .create(
                &self.replica_sets,
                Some(namespace),
                rs,
                &WriteOptions::manager(MANAGER),
            )
            .await;
        let written = match written {
            Ok(w) => w.object,
            Err(Error::AlreadyExists { .. }) => {
                // Someone else's set has this name (a hash collision):
                // count it, and the next pass hashes differently.
                edit(
                    &self.registry,
                    &self.deployments,
                    deployment,
                    Some("status"),
                    MANAGER,
                    |next| {
                        next["status"]["collisionCount"] = json!(collisions + 1);
                    },
                )
                .await?;
                return Err(Error::Conflict {
                    resource: "replicasets".into(),
                    group: "apps".into(),
                    name,
                    why: "pod-template-hash collision".into(),
                });
            }
            Err(e) => return Err(e),
        };
        if start > 0 {
            self.scaled_event(deployment, &written, 0, start).await;
        }
        Ok(written)
    }

    async fn annotate_revision(&self, rs: &Value, revision: i64) -> Result<Value> {
        edit(
            &self.registry,
            &self.replica_sets,
            rs,
            None,
            MANAGER,
            |next| {
                next["metadata"]["annotations"][REVISION] = json!(revision.to_string());
            },
        )
        .await
    }

    /// Sets a ReplicaSet's replicas (and the deployment's annotations on
    /// it); records "Scaled up/down replica set X to N".
    async fn scale(&self, deployment: &Value, rs: &mut Value, to: i64) -> Result<()> {
        let from = replicas(rs);
        let wanted = replicas(deployment);
        let (surge, _) = surge_and_unavailable(deployment);
        let annotations_current = rs
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(DESIRED))
            .and_then(Value::as_str)
            == Some(wanted.to_string().as_str());
        if from == to && annotations_current {
            return Ok(());
        }
        *rs = edit(
            &self.registry,
            &self.replica_sets,
            rs,
            None,
            MANAGER,
            |next| {
                next["spec"]["replicas"] = json!(to);
                next["metadata"]["annotations"][DESIRED] = json!(wanted.to_string());
                next["metadata"]["annotations"][MAX_REPLICAS] = json!((wanted + surge).to_string());
            },
        )
        .await?;
        if from != to {
            self.scaled_event(deployment, rs, from, to).await;
        }
        Ok(())
    }

    async fn scaled_event(&self, deployment: &Value, rs: &Value, from: i64, to: i64) {
        let direction = if to > from { "up" } else { "down" };
        let message = format!(
            "Scaled {direction} replica set {} to {to}",
            text(rs, "/metadata/name")
        );
        self.events
            .record(
                deployment,
                EventType::Normal,
                "ScalingReplicaSet",
                &message,
                None,
            )
            .await;
    }

    /// RollingUpdate: scale the new set up within maxSurge, then the old
    /// ones down as far as maxUnavailable allows, unhealthy pods first.
    async fn roll(&self, deployment: &Value, new_rs: &mut Value, old: &mut [Value]) -> Result<()> {
        let wanted = replicas(deployment);
        let (surge, unavailable) = surge_and_unavailable(deployment);
        // Scale the new set up (or down, if it has too many). A set counts
        // the pods it still has as well as the ones it wants, so pods not
        // yet deleted never take the total past maxSurge.
        let pods_of = |rs: &Value| replicas(rs).max(status_count(rs, "replicas"));
        let total: i64 = old.iter().map(pods_of).sum::<i64>() + pods_of(new_rs);
        let new_count = replicas(new_rs);
        let target = if new_count > wanted {
            wanted
        } else {
            let room = wanted + surge - total;
            (new_count + room.max(0)).min(wanted)
        };
        self.scale(deployment, new_rs, target).await?;
        // Scale the old ones down.
        let all_pods: i64 = old.iter().map(replicas).sum::<i64>() + replicas(new_rs);
        let min_available = wanted - unavailable;
        let new_unavailable = replicas(new_rs) - status_count(new_rs, "availableReplicas");
        let mut budget = all_pods - min_available - new_unavailable.max(0);
        if budget <= 0 {
            return Ok(());
        }
        // Pods of old sets that are not available go first, freely.
        for rs in old.iter_mut() {
            if budget <= 0 {
                break;
            }
            let unhealthy = replicas(rs) - status_count(rs, "availableReplicas");
            if unhealthy <= 0 {
                continue;
            }
            let down = unhealthy.min(budget);
            let to = replicas(rs) - down;
            self.scale(deployment, rs, to).await?;
            budget -= down;
        }
        // Then available ones, as long as enough stay available.
        let available: i64 = old
            .iter()
            .map(|rs| status_count(rs, "availableReplicas").min(replicas(rs)))
            .sum::<i64>()
            + status_count(new_rs, "availableReplicas");
        let mut down_left = budget.min(available - min_available);
        for rs in old.iter_mut() {
            if down_left <= 0 {
                break;
            }
            let count = replicas(rs);
            if count == 0 {
                continue;
            }
            let down = count.min(down_left);
            self.scale(deployment, rs, count - down).await?;
            down_left -= down;
        }
        // Old sets already at zero still carry the current annotations.
        Ok(())
    }

    /// Recreate: every old pod goes first; the new set scales up once
    /// none is left.
    async fn recreate(
        &self,
        deployment: &Value,
        new_rs: &mut Value,
        old: &mut [Value],
    ) -> Result<Option<Duration>> {
        for rs in old.iter_mut() {
            if replicas(rs) > 0 {
                self.scale(deployment, rs, 0).await?;
            }
        }
        // Old pods still terminating count as running: Recreate never has
        // old and new pods at once.
        let old_uids: Vec<&str> = old.iter().map(|rs| text(rs, "/metadata/uid")).collect();
        let pods = self
            .registry
            .list(
                &self.pods,
                Some(text(deployment, "/metadata/namespace")),
                &ListOptions::default(),
            )?
            .items;
        let old_running = pods.iter().any(|pod| {
            controller_uid(pod).is_some_and(|uid| old_uids.contains(&uid))
                && !matches!(text(pod, "/status/phase"), "Succeeded" | "Failed")
        });
        if old_running {
            return Ok(Some(Duration::from_millis(250)));
        }
        self.scale(deployment, new_rs, replicas(deployment)).await?;
        Ok(None)
    }

    /// Paused: no rollout, but the replica count still follows the spec,
    /// on the newest active set.
    async fn scale_paused(
        &self,
        deployment: &Value,
        new_rs: Option<&Value>,
        old: &mut [Value],
    ) -> Result<()> {
        let total: i64 = old.iter().map(replicas).sum::<i64>() + new_rs.map_or(0, replicas);
        let wanted = replicas(deployment);
        if total == wanted {
            return Ok(());
        }
        if let Some(rs) = new_rs {
            let mut rs = rs.clone();
            let to = (replicas(&rs) + wanted - total).max(0);
            return self.scale(deployment, &mut rs, to).await;
        }
        if let Some(rs) = old.iter_mut().rev().find(|rs| replicas(rs) > 0) {
            let to = (replicas(rs) + wanted - total).max(0);
            self.scale(deployment, rs, to).await?;
        }
        Ok(())
    }

    /// Deletes old sets at zero beyond revisionHistoryLimit, oldest first.
    async fn clean_up(&self, deployment: &Value, old: &[Value]) {
        let limit = deployment
            .pointer("/spec/revisionHistoryLimit")
            .and_then(Value::as_i64)
            .unwrap_or(10)
            .max(0) as usize;
        let idle: Vec<&Value> = old
            .iter()
            .filter(|rs| replicas(rs) == 0 && status_count(rs, "replicas") == 0 && !deleting(rs))
            .collect();
        if idle.len() <= limit {
            return;
        }
        for rs in &idle[..idle.len() - limit] {
            let result = self
                .registry
                .delete(
                    &self.replica_sets,
                    Some(text(rs, "/metadata/namespace")),
                    text(rs, "/metadata/name"),
                    &DeleteOptions::default(),
                )
                .await;
            if let Err(e) = result {
                tracing::debug!("cleaning up replica set: {e}");
            }
        }
    }

    async fn write_status(
        &self,
        deployment: &Value,
        new_rs: Option<&Value>,
        old: &[Value],
        created: bool,
        paused: bool,
    ) -> Result<Option<Duration>> {
        let all: Vec<&Value> = old.iter().chain(new_rs).collect();
        let sum = |field: &str| all.iter().map(|rs| status_count(rs, field)).sum::<i64>();
        let wanted = replicas(deployment);
        let total = sum("replicas");
        let available = sum("availableReplicas");
        let updated = new_rs.map_or(0, |rs| status_count(rs, "replicas"));
        let (_, max_unavailable) = surge_and_unavailable(deployment);
        let new_name = new_rs.map(|rs| text(rs, "/metadata/name")).unwrap_or("");
        let complete = new_rs.is_some()
            && updated == wanted
            && total == wanted
            && available >= wanted
            && new_rs.is_some_and(|rs| replicas(rs) == wanted)
            && old.iter().all(|rs| replicas(rs) == 0);
        let previous = deployment.get("status").cloned().unwrap_or(json!({}));
        let stamp = now();
        let available_condition = if available >= wanted - max_unavailable {
            condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        } else {
            condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        };
        let old_progressing = find_condition(&previous, "Progressing");
        let progress_made = created
            || previous
                .get("updatedReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                != updated
            || previous
                .get("availableReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                != available
            || previous
                .get("replicas")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                != total
            || deployment.pointer("/metadata/generation") != previous.get("observedGeneration");
        let deadline = deployment
            .pointer("/spec/progressDeadlineSeconds")
            .and_then(Value::as_i64);
        let mut again = None;
        let progressing = if paused {
            condition(
                "Progressing",
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused",
            )
        } else if complete {
            condition(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                &format!("ReplicaSet \"{new_name}\" has successfully progressed."),
            )
        } else if created {
            condition(
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                &format!("Created new replica set \"{new_name}\""),
            )
        } else if progress_made
            || old_progressing.is_none_or(|c| text(c, "/reason") == "DeploymentPaused")
        {
            condition(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                &format!("ReplicaSet \"{new_name}\" is progressing."),
            )
        } else {
            // No progress this pass: keep the last condition, unless the
            // deadline has passed since it was last updated.
            let last = old_progressing.cloned().unwrap_or(json!({}));
            let updated_at: Option<jiff::Timestamp> = text(&last, "/lastUpdateTime").parse().ok();
            match (deadline, updated_at) {
                (Some(seconds), Some(at))
                    if text(&last, "/reason") != "ProgressDeadlineExceeded" =>
                {
                    let expires = at
                        .checked_add(jiff::SignedDuration::from_secs(seconds))
                        .unwrap_or(at);
                    let now_ts = jiff::Timestamp::now();
                    if expires <= now_ts {
                        condition(
                            "Progressing",
                            "False",
                            "ProgressDeadlineExceeded",
                            &format!("ReplicaSet \"{new_name}\" has timed out progressing."),
                        )
                    } else {
                        let left = expires.duration_since(now_ts).as_millis().max(0) as u64;
                        again = Some(Duration::from_millis(left + 50));
                        last
                    }
                }
                _ => last,
            }
        };
        let conditions = vec![
            merge_condition(
                find_condition(&previous, "Available"),
                available_condition,
                &stamp,
                false,
            ),
            merge_condition(
                old_progressing,
                progressing,
                &stamp,
                progress_made || created,
            ),
        ];
        let mut status = json!({
            "observedGeneration": deployment.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": sum("readyReplicas"),
            "availableReplicas": available,
            "unavailableReplicas": (wanted - available).max(0),
            "conditions": conditions,
        });
        if let Some(collisions) = previous.get("collisionCount") {
            status["collisionCount"] = collisions.clone();
        }
        if !super::same_status(&status, &previous) {
            edit(
                &self.registry,
                &self.deployments,
                deployment,
                Some("status"),
                MANAGER,
                |next| {
                    next["status"] = status.clone();
                },
            )
            .await?;
        }
        if let Some(rs) = new_rs {
            // A no-op when the revision is already the set's.
            self.set_revision(deployment, revision(rs)).await?;
        }
        Ok(again)
    }

    /// Puts the new set's revision on the deployment, where `kubectl
    /// rollout history` and `describe` look for it.
    async fn set_revision(&self, deployment: &Value, revision: i64) -> Result<()> {
        let current = deployment
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(REVISION))
            .and_then(Value::as_str);
        if current == Some(revision.to_string().as_str()) || revision == 0 {
            return Ok(());
        }
        edit(
            &self.registry,
            &self.deployments,
            deployment,
            None,
            MANAGER,
            |next| {
                next["metadata"]["annotations"][REVISION] = json!(revision.to_string());
            },
        )
        .await?;
        Ok(())
    }
}

fn condition(kind: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": kind, "status": status, "reason": reason, "message": message})
}

fn find_condition<'a>(status: &'a Value, kind: &str) -> Option<&'a Value> {
    status
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| text(c, "/type") == kind)
}

/// The new condition with its times: lastTransitionTime moves when the
/// status flips, lastUpdateTime when anything about it changes (or on
/// progress, for Progressing).
fn merge_condition(old: Option<&Value>, mut new: Value, stamp: &str, touched: bool) -> Value {
    let same_status = old.is_some_and(|o| o.get("status") == new.get("status"));
    let same_all = same_status
        && old.is_some_and(|o| {
            o.get("reason") == new.get("reason") && o.get("message") == new.get("message")
        });
    let transition = match old {
        Some(o) if same_status => o.get("lastTransitionTime").cloned().unwrap_or(json!(stamp)),
        _ => json!(stamp),
    };
    let update = match old {
        Some(o) if same_all && !touched => o.get("lastUpdateTime").cloned().unwrap_or(json!(stamp)),
        _ => json!(stamp),
    };
    new["lastTransitionTime"] = transition;
    new["lastUpdateTime"] = update;
    new
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_hash_ignores_its_own_label_and_uses_the_safe_alphabet() {
        let template = json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "echo-hostname:1.0.1"}]}});
        let hash = template_hash(&template, 0);
        assert!(hash.len() >= 8 && hash.len() <= 10, "{hash}");
        assert!(
            hash.chars()
                .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
            "{hash}"
        );
        let mut labelled = template.clone();
        labelled["metadata"]["labels"][HASH_LABEL] = json!(hash.clone());
        assert_eq!(template_hash(&labelled, 0), hash);
        assert!(same_template(Some(&template), Some(&labelled)));
        let mut other = template.clone();
        other["spec"]["containers"][0]["image"] = json!("echo-hostname:1.0.2");
        assert_ne!(template_hash(&other, 0), hash);
        assert!(!same_template(Some(&template), Some(&other)));
        assert_ne!(
            template_hash(&template, 1),
            hash,
            "a collision count changes it"
        );
    }

    #[test]
    fn a_template_written_back_by_rollout_undo_is_the_same() {
        let stored = json!({"metadata": {"labels": {"app": "web", HASH_LABEL: "abc"}},
            "spec": {"containers": [{"name": "c", "image": "x", "resources": {}}]}});
        let undone = json!({"metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "x"}]}});
        assert!(same_template(Some(&stored), Some(&undone)));
        assert_eq!(template_hash(&stored, 0), template_hash(&undone, 0));
        let from_protobuf = json!({"metadata": {"creationTimestamp": "1970-01-01T00:00:00Z",
                "generateName": "", "generation": 0, "labels": {"app": "web"}},
            "spec": {"hostIPC": false, "containers": [{"name": "c", "image": "x", "stdin": false,
                "workingDir": "", "resources": {}}]}});
        assert!(same_template(Some(&from_protobuf), Some(&undone)));
    }

    #[test]
    fn surge_rounds_up_and_unavailable_down() {
        let d = |surge: Value, unavailable: Value, n: i64| json!({"spec": {"replicas": n, "strategy": {"rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}}});
        assert_eq!(
            surge_and_unavailable(&d(json!("25%"), json!("25%"), 3)),
            (1, 0)
        );
        assert_eq!(
            surge_and_unavailable(&d(json!("25%"), json!("25%"), 10)),
            (3, 2)
        );
        assert_eq!(surge_and_unavailable(&d(json!(0), json!(0), 10)), (0, 1));
        assert_eq!(surge_and_unavailable(&d(json!(1), json!(1), 3)), (1, 1));
    }
}
