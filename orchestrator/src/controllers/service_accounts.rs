//! The ServiceAccounts controller: every active namespace has a `default`
//! ServiceAccount, made with the namespace and made again if deleted, as
//! Kubernetes' controller keeps it.

use std::time::Duration;

use serde_json::json;

use super::driver::{self, Reconciler};
use crate::registry::kinds::DEFAULT_SERVICE_ACCOUNT;
use crate::registry::{Error, Registry, Resource, Result, WriteOptions};

const NAME: &str = "service-account-controller";

struct ServiceAccounts {
    registry: Registry,
    namespaces: Resource,
    accounts: Resource,
}

/// Runs until `stop` turns true.
pub async fn run(registry: Registry, stop: tokio::sync::watch::Receiver<bool>) {
    let reconciler = ServiceAccounts {
        namespaces: registry.resource("", "Namespace"),
        accounts: registry.resource("", "ServiceAccount"),
        registry: registry.clone(),
    };
    // A namespace's change makes every namespace a candidate; a
    // ServiceAccount's, its own.
    let watched = vec![
        reconciler.namespaces.clone().into(),
        reconciler.accounts.clone().into(),
    ];
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

impl Reconciler for ServiceAccounts {
    /// Creates `namespace`'s `default` ServiceAccount unless it exists or
    /// the namespace is going.
    async fn reconcile(&self, namespace: &str) -> Result<Option<Duration>> {
        let active = self
            .registry
            .find(&self.namespaces, None, namespace)?
            .is_some_and(|ns| ns.pointer("/metadata/deletionTimestamp").is_none());
        if !active
            || self
                .registry
                .find(&self.accounts, Some(namespace), DEFAULT_SERVICE_ACCOUNT)?
                .is_some()
        {
            return Ok(None);
        }
        let account = json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": DEFAULT_SERVICE_ACCOUNT}});
        let options = WriteOptions::manager(NAME);
        match self
            .registry
            .create(&self.accounts, Some(namespace), account, &options)
            .await
        {
            // Made meanwhile, or the namespace began terminating.
            Ok(_) | Err(Error::AlreadyExists { .. } | Error::Refused { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
