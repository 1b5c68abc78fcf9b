//! The disruption controller: for every PodDisruptionBudget, how many of
//! its pods are expected, how many must stay healthy, how many are, and so
//! how many may be evicted now (`status.disruptionsAllowed`), which the
//! `pods/eviction` subresource spends. An evicted pod counts as disrupted
//! (not healthy) for two minutes or until it is gone.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::driver::{self, Reconciler};
use super::edit;
use super::owners::deleting;
use super::replicaset::is_ready;
use crate::registry::kinds::scaled_value;
use crate::registry::metadata::{now, text};
use crate::registry::{Cache, LabelSelector, ListOptions, Registry, Resource, Result};

const MANAGER: &str = "disruption-controller";
/// How long an evicted pod is counted as disrupted while it goes.
pub const DISRUPTED_FOR: Duration = Duration::from_secs(120);

struct Disruption {
    registry: Registry,
    budgets: Resource,
    cached_pods: Arc<Cache>,
    retries: driver::Retries,
}

/// Runs until `stop` turns true.
pub async fn run(registry: Registry, stop: tokio::sync::watch::Receiver<bool>) {
    let budgets = registry.resource("policy", "PodDisruptionBudget");
    let pods = registry.resource("", "Pod");
    let reconciler = Disruption {
        cached_pods: registry.cache(&pods),
        registry: registry.clone(),
        budgets: budgets.clone(),
        retries: driver::Retries::new(&registry, MANAGER),
    };
    driver::run(
        registry,
        MANAGER,
        vec![budgets.into(), pods.into()],
        driver::Pace {
            resync: Duration::from_secs(30),
            batch: Duration::from_millis(50),
        },
        reconciler,
        stop,
    )
    .await;
}

impl Reconciler for Disruption {
    async fn reconcile(&self, namespace: &str) -> Result<Option<Duration>> {
        let budgets = self
            .registry
            .list(&self.budgets, Some(namespace), &ListOptions::default())?
            .items;
        if budgets.is_empty() {
            return Ok(None);
        }
        let pods = self
            .cached_pods
            .list(Some(namespace), &LabelSelector::default())
            .await?;
        let mut again = driver::Again::new(&self.retries);
        for budget in budgets.iter().filter(|b| !deleting(b)) {
            again.note(budget, self.sync(budget, &pods).await);
        }
        Ok(again.when())
    }
}

/// The pods a budget's selector picks: none without a selector, all with
/// an empty one (policy/v1).
pub fn selects(budget: &Value, pod: &Value) -> bool {
    match budget.pointer("/spec/selector") {
        None | Some(Value::Null) => false,
        selector => LabelSelector::from_object(selector).is_ok_and(|s| s.matches(pod)),
    }
}

impl Disruption {
    async fn sync(&self, budget: &Value, pods: &[Arc<Value>]) -> Result<Option<Duration>> {
        let mine: Vec<&Value> = pods
            .iter()
            .map(|p| &**p)
            .filter(|p| selects(budget, p))
            .collect();
        let (expected, desired) = self.budget(budget, &mine)?;
        // Pods evicted lately still count as disrupted while they go.
        let now_t = jiff::Timestamp::now();
        let present: HashSet<&str> = mine
            .iter()
            .filter(|p| !deleting(p))
            .map(|p| text(p, "/metadata/name"))
            .collect();
        let mut disrupted = Map::new();
        let mut again: Option<Duration> = None;
        for (pod, at) in budget
            .pointer("/status/disruptedPods")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let Ok(at) = at.as_str().unwrap_or_default().parse::<jiff::Timestamp>() else {
                continue;
            };
            let age = now_t.duration_since(at).as_secs().max(0) as u64;
            let left = DISRUPTED_FOR.as_secs().saturating_sub(age);
            if present.contains(pod.as_str()) && left > 0 {
                disrupted.insert(pod.clone(), json!(at.to_string()));
                let wait = Duration::from_secs(left);
                again = Some(again.map_or(wait, |a| a.min(wait)));
            }
        }
        let healthy = mine
            .iter()
            .filter(|p| {
                !deleting(p) && is_ready(p) && !disrupted.contains_key(text(p, "/metadata/name"))
            })
            .count() as i64;
        let allowed = (healthy - desired).max(0);
        let generation = budget
            .pointer("/metadata/generation")
            .cloned()
            .unwrap_or(json!(1));
        let (condition, reason) = if allowed > 0 {
            ("True", "SufficientPods")
        } else {
            ("False", "InsufficientPods")
        };
        let mut status = json!({
            "observedGeneration": generation,
            "disruptionsAllowed": allowed,
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "expectedPods": expected,
            "conditions": [{
                "type": "DisruptionAllowed",
                "status": condition,
                "reason": reason,
                "message": "",
                "observedGeneration": generation,
                "lastTransitionTime": now(),
            }],
        });
        if !disrupted.is_empty() {
            status["disruptedPods"] = Value::Object(disrupted);
        }
        let current = budget.get("status").cloned().unwrap_or(json!({}));
        let unchanged = super::same_status(&status, &current)
            && status.get("disruptedPods") == current.get("disruptedPods");
        if !unchanged {
            let previous = current
                .pointer("/conditions/0")
                .filter(|c| c.get("status").and_then(Value::as_str) == Some(condition))
                .and_then(|c| c.get("lastTransitionTime"))
                .cloned();
            if let Some(previous) = previous {
                status["conditions"][0]["lastTransitionTime"] = previous;
            }
            edit(
                &self.registry,
                &self.budgets,
                budget,
                Some("status"),
                MANAGER,
                |next| next["status"] = status.clone(),
            )
            .await?;
        }
        Ok(again)
    }

    /// `(expected pods, pods that must stay healthy)`: a count in
    /// `minAvailable` is of the pods there are; a percentage, or
    /// `maxUnavailable`, is of the replicas their controllers want.
    fn budget(&self, budget: &Value, mine: &[&Value]) -> Result<(i64, i64)> {
        let min = budget
            .pointer("/spec/minAvailable")
            .filter(|v| !v.is_null());
        let max = budget
            .pointer("/spec/maxUnavailable")
            .filter(|v| !v.is_null());
        match (min, max) {
            (Some(Value::Number(n)), _) => return Ok((mine.len() as i64, n.as_i64().unwrap_or(0))),
            // No budget: every pod may go.
            (None, None) => return Ok((mine.len() as i64, 0)),
            _ => {}
        }
        let expected = self.expected(mine)?;
        let desired = match (min, max) {
            (Some(min), _) => scaled_value(Some(min), expected, true).unwrap_or(0),
            (None, max) => expected - scaled_value(max, expected, true).unwrap_or(0),
        };
        Ok((expected, desired.max(0)))
    }

    /// The replicas the pods' controllers want: a ReplicaSet's owning
    /// Deployment's, a ReplicaSet's, a ReplicationController's; a pod
    /// without a controller counts for itself.
    fn expected(&self, mine: &[&Value]) -> Result<i64> {
        let mut seen = HashSet::new();
        let mut total = 0;
        for pod in mine {
            let namespace = Some(text(pod, "/metadata/namespace"));
            let Some(controller) = self.top_controller(pod, namespace)? else {
                total += 1;
                continue;
            };
            if seen.insert(text(&controller, "/metadata/uid").to_string()) {
                total += controller
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
            }
        }
        Ok(total)
    }

    /// The controller that scales `object`: its controller, or that
    /// controller's Deployment for a ReplicaSet a Deployment owns.
    fn top_controller(&self, object: &Value, namespace: Option<&str>) -> Result<Option<Value>> {
        let Some(owner) = controller_of(object) else {
            return Ok(None);
        };
        let (group, kind) = match text(owner, "/kind") {
            "ReplicaSet" => ("apps", "ReplicaSet"),
            "ReplicationController" => ("", "ReplicationController"),
            "Deployment" => ("apps", "Deployment"),
            _ => return Ok(None),
        };
        let resource = self.registry.resource(group, kind);
        let Some(controller) = self
            .registry
            .find(&resource, namespace, text(owner, "/name"))?
        else {
            return Ok(None);
        };
        if kind == "ReplicaSet"
            && controller_of(&controller).is_some_and(|o| text(o, "/kind") == "Deployment")
            && let Some(deployment) = self.top_controller(&controller, namespace)?
        {
            return Ok(Some(deployment));
        }
        Ok(Some(controller))
    }
}

fn controller_of(object: &Value) -> Option<&Value> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("controller") == Some(&json!(true)))
}
