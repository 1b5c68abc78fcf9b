//! The namespace controller: a namespace being deleted has everything in it
//! deleted, then its `kubernetes` finalizer removed, which ends it.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::registry::{ListOptions, Registry, Result, WriteOptions};

const NAME: &str = "namespace-controller";

/// Runs until `stop` turns true.
pub async fn run(registry: Registry, mut stop: watch::Receiver<bool>) {
    let namespaces = registry.resource("", "Namespace");
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut watch = registry
        .watch(&namespaces, None, registry.store().revision())
        .ok();
    loop {
        match registry.list(&namespaces, None, &ListOptions::default()) {
            Ok(listed) => {
                for ns in listed
                    .items
                    .iter()
                    .filter(|n| n.pointer("/metadata/deletionTimestamp").is_some())
                {
                    if let Err(e) = reconcile(&registry, ns).await {
                        tracing::debug!("namespace cleanup: {e}");
                    }
                }
            }
            Err(e) => tracing::warn!("listing namespaces: {e}"),
        }
        tokio::select! {
            event = async { match watch.as_mut() { Some(w) => w.next().await, None => std::future::pending().await } } => {
                // A watch that failed or ended is made again from now
                // (the pass above lists everything anyway).
                if !matches!(event, Some(Ok(_))) {
                    watch = registry.watch(&namespaces, None, registry.store().revision()).ok();
                }
            }
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
    }
}

/// Deletes what is left in a terminating namespace; finalizes it once empty.
async fn reconcile(registry: &Registry, namespace: &Value) -> Result<()> {
    let name = namespace
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut remaining = 0;
    for resource in registry.resources().all().iter().filter(|r| r.namespaced) {
        remaining += registry.delete_all(resource, Some(name)).await?;
    }
    if remaining > 0 {
        return Ok(());
    }
    let namespaces = registry.resource("", "Namespace");
    registry
        .update_with(
            &namespaces,
            None,
            name,
            Some("finalize"),
            &WriteOptions::manager(NAME),
            |current| {
                let mut next = current.clone();
                next["spec"]["finalizers"] = json!([]);
                Ok(next)
            },
        )
        .await?;
    Ok(())
}
