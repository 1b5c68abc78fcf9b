//! The `pods/eviction` subresource: a pod is deleted if its
//! PodDisruptionBudget allows one more disruption now (which is spent, and
//! the pod noted as disrupted in the budget's status); otherwise 429, as
//! the API server answers `kubectl drain`.

use serde_json::{Value, json};

use super::metadata::{now, text};
use super::{DeleteOptions, Error, ListOptions, Registry, Result, WriteOptions};
use crate::controllers::disruption::selects;

const BLOCKED: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

impl Registry {
    /// Evicts pod `name` of `namespace` with `options` for its deletion.
    pub async fn evict(&self, namespace: &str, name: &str, options: &DeleteOptions) -> Result<()> {
        let pods = self.resource("", "Pod");
        let pod = self.get(&pods, Some(namespace), name)?;
        // A pod going, done or not yet running disrupts nothing.
        let ignores_budgets = pod.pointer("/metadata/deletionTimestamp").is_some()
            || matches!(
                text(&pod, "/status/phase"),
                "Succeeded" | "Failed" | "Pending"
            );
        if !ignores_budgets {
            self.spend_disruption(namespace, &pod, options.dry_run)
                .await?;
        }
        self.delete(&pods, Some(namespace), name, options).await?;
        Ok(())
    }

    /// Takes one disruption from the budget that covers `pod`, if any.
    async fn spend_disruption(&self, namespace: &str, pod: &Value, dry_run: bool) -> Result<()> {
        let budgets = self.resource("policy", "PodDisruptionBudget");
        let covering: Vec<Value> = self
            .list(&budgets, Some(namespace), &ListOptions::default())?
            .items
            .into_iter()
            .filter(|b| selects(b, pod))
            .collect();
        let budget = match covering.as_slice() {
            [] => return Ok(()),
            [budget] => budget,
            _ => {
                return Err(Error::Internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.".into(),
                ));
            }
        };
        let budget_name = text(budget, "/metadata/name").to_string();
        let blocked = |why: String| Error::TooManyRequests {
            message: BLOCKED.into(),
            causes: vec![("DisruptionBudget".into(), why)],
        };
        let observed = budget
            .pointer("/status/observedGeneration")
            .and_then(Value::as_i64);
        let generation = budget
            .pointer("/metadata/generation")
            .and_then(Value::as_i64);
        if observed.is_none() || observed < generation {
            return Err(blocked(format!(
                "The disruption budget {budget_name} is still being processed by the server."
            )));
        }
        let number = |field: &str| {
            budget
                .pointer(&format!("/status/{field}"))
                .and_then(Value::as_i64)
                .unwrap_or(0)
        };
        if number("disruptionsAllowed") <= 0 {
            return Err(blocked(format!(
                "The disruption budget {budget_name} needs {} healthy pods and has {} currently",
                number("desiredHealthy"),
                number("currentHealthy")
            )));
        }
        if dry_run {
            return Ok(());
        }
        // Spent in a write conditional on the budget as read: two evictions
        // at once cannot both spend the last disruption.
        let pod_name = text(pod, "/metadata/name").to_string();
        let revision = text(budget, "/metadata/resourceVersion").to_string();
        self.update_with(
            &budgets,
            Some(namespace),
            &budget_name,
            Some("status"),
            &WriteOptions::manager("eviction"),
            |current| {
                let mut next = current.clone();
                next["metadata"]["resourceVersion"] = json!(revision);
                let allowed = next
                    .pointer("/status/disruptionsAllowed")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                next["status"]["disruptionsAllowed"] = json!(allowed - 1);
                if !next["status"]["disruptedPods"].is_object() {
                    next["status"]["disruptedPods"] = json!({});
                }
                next["status"]["disruptedPods"][&pod_name] = json!(now());
                Ok(next)
            },
        )
        .await
        .map_err(|e| match e {
            Error::Conflict { .. } => blocked(format!(
                "The disruption budget {budget_name} changed while the eviction was decided; try again."
            )),
            other => other,
        })?;
        Ok(())
    }
}
