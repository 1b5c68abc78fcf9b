//! The ServiceAccounts controller: every active namespace has a `default`
//! ServiceAccount, made with the namespace and made again if deleted, as
//! Kubernetes' controller keeps it.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::registry::kinds::DEFAULT_SERVICE_ACCOUNT;
use crate::registry::{Error, ListOptions, Registry, WriteOptions};

const NAME: &str = "service-account-controller";

/// Runs until `stop` turns true.
pub async fn run(registry: Registry, mut stop: watch::Receiver<bool>) {
    let namespaces = registry.resource("", "Namespace");
    let accounts = registry.resource("", "ServiceAccount");
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let revision = registry.store().revision();
    let mut namespace_watch = registry.watch(&namespaces, None, revision).ok();
    let mut account_watch = registry.watch(&accounts, None, revision).ok();
    loop {
        match registry.list(&namespaces, None, &ListOptions::default()) {
            Ok(listed) => {
                for ns in listed
                    .items
                    .iter()
                    .filter(|n| n.pointer("/metadata/deletionTimestamp").is_none())
                {
                    let name = ns["metadata"]["name"].as_str().unwrap_or_default();
                    if let Err(e) = ensure_default(&registry, name).await {
                        tracing::warn!("the default ServiceAccount of {name}: {e}");
                    }
                }
            }
            Err(e) => tracing::warn!("listing namespaces: {e}"),
        }
        tokio::select! {
            _ = async { match namespace_watch.as_mut() { Some(w) => { w.next().await; } None => std::future::pending().await } } => {}
            _ = async { match account_watch.as_mut() { Some(w) => { w.next().await; } None => std::future::pending().await } } => {}
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
    }
}

/// Creates `namespace`'s `default` ServiceAccount unless it exists.
async fn ensure_default(registry: &Registry, namespace: &str) -> Result<(), Error> {
    let accounts = registry.resource("", "ServiceAccount");
    if registry
        .find(&accounts, Some(namespace), DEFAULT_SERVICE_ACCOUNT)?
        .is_some()
    {
        return Ok(());
    }
    let account: Value = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": DEFAULT_SERVICE_ACCOUNT}});
    match registry
        .create(
            &accounts,
            Some(namespace),
            account,
            &WriteOptions::manager(NAME),
        )
        .await
    {
        // Made meanwhile, or the namespace began terminating.
        Ok(_) | Err(Error::AlreadyExists { .. } | Error::Refused { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
