//! The ResourceQuota controller: each quota's `status.hard` follows its
//! `spec.hard`, and `status.used` is recounted from the namespace's
//! objects whenever they change, so what admission charged for an object
//! is given back when the object goes or finishes.

use std::time::Duration;

use serde_json::{Value, json};

use super::driver::{self, Reconciler};
use super::owners::deleting;
use crate::quota::{amounts_of, to_value};
use crate::registry::metadata::text;
use crate::registry::{ListOptions, Registry, Resource, Result, WriteOptions};

/// Admission charges quotas under the same name.
use crate::registry::QUOTA_MANAGER as NAME;

struct Quotas {
    registry: Registry,
    quotas: Resource,
    retries: driver::Retries,
}

/// The kinds whose changes can change a quota's usage, as (group, kind):
/// those with usage of their own and the common object counts. Counts of
/// other kinds are recounted on the periodic pass.
const COUNTED: [(&str, &str); 12] = [
    ("", "Pod"),
    ("", "Service"),
    ("", "PersistentVolumeClaim"),
    ("", "ConfigMap"),
    ("", "Secret"),
    ("", "ReplicationController"),
    ("apps", "Deployment"),
    ("apps", "ReplicaSet"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("batch", "Job"),
    ("batch", "CronJob"),
];

/// Runs until `stop` turns true.
pub async fn run(registry: Registry, stop: tokio::sync::watch::Receiver<bool>) {
    let quotas = registry.resource("", "ResourceQuota");
    let mut watched: Vec<driver::Watched> = vec![quotas.clone().into()];
    watched.extend(
        COUNTED
            .iter()
            .map(|(group, kind)| registry.resource(group, kind).into()),
    );
    let reconciler = Quotas {
        registry: registry.clone(),
        quotas,
        retries: driver::Retries::new(&registry, NAME),
    };
    driver::run(
        registry,
        NAME,
        watched,
        driver::Pace::WORKLOADS,
        reconciler,
        stop,
    )
    .await;
}

impl Reconciler for Quotas {
    async fn reconcile(&self, namespace: &str) -> Result<Option<Duration>> {
        let quotas = self
            .registry
            .list(&self.quotas, Some(namespace), &ListOptions::default())?
            .items;
        let mut again = driver::Again::new(&self.retries);
        for quota in quotas.iter().filter(|q| !deleting(q)) {
            again.note(quota, self.sync(quota).await);
        }
        Ok(again.when())
    }
}

impl Quotas {
    /// Writes a quota's hard limits and recounted usage if either changed.
    async fn sync(&self, quota: &Value) -> Result<Option<Duration>> {
        let namespace = text(quota, "/metadata/namespace");
        // No charge is between its quota write and its object's meanwhile:
        // the count below sees every object charged for.
        let _held = self.registry.lock_quotas(namespace).await;
        let Some(quota) =
            self.registry
                .find(&self.quotas, Some(namespace), text(quota, "/metadata/name"))?
        else {
            return Ok(None);
        };
        let quota = &quota;
        let hard = amounts_of(quota.pointer("/spec/hard"));
        let used = self.registry.quota_usage(quota)?;
        let status = json!({"hard": to_value(&hard), "used": to_value(&used)});
        if quota.get("status") == Some(&status) {
            return Ok(None);
        }
        let mut next = quota.clone();
        next["status"] = status;
        self.registry
            .update(
                &self.quotas,
                Some(text(quota, "/metadata/namespace")),
                text(quota, "/metadata/name"),
                next,
                Some("status"),
                &WriteOptions::manager(NAME),
            )
            .await?;
        Ok(None)
    }
}
