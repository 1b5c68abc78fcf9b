//! ClusterRole aggregation: a ClusterRole with an `aggregationRule` has
//! the rules of every ClusterRole its selectors match (admin, edit and view
//! gather the `aggregate-to-*` roles, and a custom resource's roles that
//! carry the labels), kept current as they change.

use std::time::Duration;

use serde_json::{Value, json};

use crate::registry::kinds::RBAC_GROUP;
use crate::registry::metadata::text;
use crate::registry::{LabelSelector, ListOptions, Registry, Resource, Result};

const NAME: &str = "clusterrole-aggregation-controller";
/// A full pass this often, whatever changed.
const RESYNC: Duration = Duration::from_secs(30);

/// Runs until `stop` turns true.
pub async fn run(registry: Registry, mut stop: tokio::sync::watch::Receiver<bool>) {
    let roles = registry.resource(RBAC_GROUP, "ClusterRole");
    loop {
        let revision = registry.store().revision();
        if let Err(e) = aggregate(&registry, &roles).await {
            tracing::warn!("{NAME}: {e}; retrying");
        }
        let changed = async {
            match registry.watch(&roles, None, revision) {
                Ok(mut watch) => {
                    watch.next().await;
                }
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        };
        tokio::select! {
            () = changed => {}
            () = tokio::time::sleep(RESYNC) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

/// One pass: each aggregated ClusterRole's rules made those of the roles
/// it selects (in name order, each rule once).
async fn aggregate(registry: &Registry, roles: &Resource) -> Result<()> {
    let all = registry.list(roles, None, &ListOptions::default())?.items;
    for role in &all {
        let Some(rule) = role.get("aggregationRule").filter(|r| !r.is_null()) else {
            continue;
        };
        let selectors: Vec<LabelSelector> = rule
            .get("clusterRoleSelectors")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| LabelSelector::from_object(Some(s)).ok())
            .collect();
        let name = text(role, "/metadata/name");
        let mut rules: Vec<Value> = Vec::new();
        for other in &all {
            if text(other, "/metadata/name") == name
                || !selectors.iter().any(|s| !s.is_empty() && s.matches(other))
            {
                continue;
            }
            for rule in other
                .get("rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if !rules.contains(rule) {
                    rules.push(rule.clone());
                }
            }
        }
        let current = role.get("rules").cloned().unwrap_or(json!([]));
        if current == json!(rules) || (current.is_null() && rules.is_empty()) {
            continue;
        }
        super::edit(registry, roles, role, None, NAME, |next| {
            next["rules"] = json!(rules);
        })
        .await?;
    }
    Ok(())
}
