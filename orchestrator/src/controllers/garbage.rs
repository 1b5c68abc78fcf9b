//! The garbage collector: objects whose owners (by `ownerReferences`) are
//! all gone are deleted, in the background; references to owners that are
//! gone are dropped where other owners remain. An owner deleted with
//! `propagationPolicy: Orphan` carries the `orphan` finalizer until its
//! dependents no longer point at it; with `Foreground`, the
//! `foregroundDeletion` finalizer until its dependents are gone.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::driver::{self, Reconciler};
use super::edit;
use super::owners::{deleting, finalizers};
use crate::registry::metadata::{At, text};
use crate::registry::{Cache, DeleteOptions, Error, LabelSelector, Registry, Resource, Result};

const MANAGER: &str = "garbage-collector";
pub const ORPHAN: &str = "orphan";
pub const FOREGROUND: &str = "foregroundDeletion";

struct Collector {
    registry: Registry,
    /// Every namespaced resource that can hold dependents, with its cache.
    kinds: Vec<(Resource, Arc<Cache>)>,
}

/// Runs until `stop` turns true; starts again over every resource served
/// whenever custom resources come or go.
pub async fn run(registry: Registry, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut served = registry.resources_changed();
    loop {
        served.mark_unchanged();
        let (restart, restarted) = tokio::sync::watch::channel(false);
        let collecting = collect(registry.clone(), restarted);
        tokio::pin!(collecting);
        let again = tokio::select! {
            _ = &mut collecting => return,
            _ = stop.changed() => false,
            changed = served.changed() => changed.is_ok(),
        };
        let _ = restart.send(true);
        collecting.await;
        if !again {
            return;
        }
    }
}

/// Collects over the resources served now, until `stop` turns true.
async fn collect(registry: Registry, stop: tokio::sync::watch::Receiver<bool>) {
    let mut prefixes = Vec::new();
    let watched: Vec<driver::Watched> = registry
        .resources()
        .all()
        .iter()
        .filter(|r| r.namespaced && r.kind != "Event")
        // A custom resource's versions share their objects.
        .filter(|r| {
            let fresh = !prefixes.contains(&r.prefix());
            prefixes.push(r.prefix());
            fresh
        })
        .map(|r| driver::Watched {
            resource: r.clone(),
            // Dependents (they have references) and owners being deleted
            // (with a policy finalizer); deletions always count.
            relevant: |o| {
                o.at("/metadata/ownerReferences").is_some()
                    || o.at("/metadata/deletionTimestamp").is_some()
            },
        })
        .collect();
    let collector = Collector {
        kinds: watched
            .iter()
            .map(|w| (w.resource.clone(), registry.cache(&w.resource)))
            .collect(),
        registry: registry.clone(),
    };
    driver::run(
        registry,
        MANAGER,
        watched,
        driver::Pace {
            resync: Duration::from_secs(30),
            batch: Duration::from_millis(500),
        },
        collector,
        stop,
    )
    .await;
}

fn owner_refs(object: &Value) -> &[Value] {
    object
        .at("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// One object of the namespace, with its resource.
struct Object<'a> {
    resource: &'a Resource,
    value: Arc<Value>,
}

impl Reconciler for Collector {
    async fn reconcile(&self, namespace: &str) -> Result<Option<Duration>> {
        let mut objects = Vec::new();
        let all = LabelSelector::default();
        for (resource, cache) in &self.kinds {
            for value in cache.list(Some(namespace), &all).await? {
                objects.push(Object { resource, value });
            }
        }
        let by_uid: HashMap<&str, &Object> = objects
            .iter()
            .map(|o| (text(&o.value, "/metadata/uid"), o))
            .collect();
        let mut again = None;
        // Dependents of owners that are gone, or going with a policy.
        for object in objects.iter().filter(|o| !deleting(&o.value)) {
            let refs = owner_refs(&object.value);
            if refs.is_empty() {
                continue;
            }
            let mut gone = Vec::new();
            let mut orphaned_by = Vec::new();
            let mut foreground = false;
            for reference in refs {
                let uid = text(reference, "/uid");
                match by_uid.get(uid) {
                    Some(owner)
                        if deleting(&owner.value) && finalizers(&owner.value).contains(&ORPHAN) =>
                    {
                        orphaned_by.push(uid.to_string());
                    }
                    Some(owner)
                        if deleting(&owner.value)
                            && finalizers(&owner.value).contains(&FOREGROUND) =>
                    {
                        foreground = true;
                    }
                    Some(_) => {}
                    None => {
                        if !self.owner_exists(reference, namespace)? {
                            gone.push(uid.to_string());
                        }
                    }
                }
            }
            let remaining = refs.len() - gone.len() - orphaned_by.len();
            if (remaining == 0 && !gone.is_empty()) || foreground {
                let policy = if foreground {
                    "Foreground"
                } else {
                    "Background"
                };
                self.delete(object, policy).await?;
                again = Some(Duration::from_millis(200));
            } else if !gone.is_empty() || !orphaned_by.is_empty() {
                let drop: Vec<String> = gone.into_iter().chain(orphaned_by).collect();
                self.drop_refs(object, &drop).await?;
                again = Some(Duration::from_millis(200));
            }
        }
        // Owners whose policy finalizer is done.
        for owner in objects.iter().filter(|o| deleting(&o.value)) {
            let held = finalizers(&owner.value);
            let policy = [ORPHAN, FOREGROUND].into_iter().find(|f| held.contains(f));
            let Some(policy) = policy else { continue };
            let uid = text(&owner.value, "/metadata/uid");
            let dependents = objects
                .iter()
                .filter(|o| owner_refs(&o.value).iter().any(|r| text(r, "/uid") == uid))
                .count();
            if dependents == 0 {
                self.finish(owner, policy).await?;
            } else {
                again = Some(Duration::from_millis(200));
            }
        }
        Ok(again)
    }
}

impl Collector {
    /// Whether the owner a reference names still exists (same uid). An
    /// owner of a kind this server does not serve counts as gone.
    fn owner_exists(&self, reference: &Value, namespace: &str) -> Result<bool> {
        let api_version = text(reference, "/apiVersion");
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let Some(resource) = self
            .registry
            .resources()
            .by_kind(group, text(reference, "/kind"))
            .cloned()
        else {
            return Ok(false);
        };
        let ns = resource.namespaced.then_some(namespace);
        let found = self
            .registry
            .find(&resource, ns, text(reference, "/name"))?;
        Ok(found.is_some_and(|o| text(&o, "/metadata/uid") == text(reference, "/uid")))
    }

    async fn delete(&self, object: &Object<'_>, policy: &str) -> Result<()> {
        let options = DeleteOptions {
            propagation_policy: Some(policy.to_string()),
            ..DeleteOptions::default()
        };
        let result = self
            .registry
            .delete(
                object.resource,
                Some(text(&object.value, "/metadata/namespace")),
                text(&object.value, "/metadata/name"),
                &options,
            )
            .await;
        gone_is_done(result)
    }

    async fn drop_refs(&self, object: &Object<'_>, uids: &[String]) -> Result<()> {
        let result = edit(
            &self.registry,
            object.resource,
            &object.value,
            None,
            MANAGER,
            |next| {
                let kept: Vec<Value> = owner_refs(next)
                    .iter()
                    .filter(|r| !uids.iter().any(|u| u == text(r, "/uid")))
                    .cloned()
                    .collect();
                let meta = next["metadata"].as_object_mut().expect("metadata");
                if kept.is_empty() {
                    meta.remove("ownerReferences");
                } else {
                    meta.insert("ownerReferences".into(), json!(kept));
                }
            },
        )
        .await;
        gone_is_done(result)
    }

    async fn finish(&self, owner: &Object<'_>, finalizer: &str) -> Result<()> {
        let result = edit(
            &self.registry,
            owner.resource,
            &owner.value,
            None,
            MANAGER,
            |next| {
                let kept: Vec<String> = finalizers(next)
                    .into_iter()
                    .filter(|f| *f != finalizer)
                    .map(str::to_string)
                    .collect();
                next["metadata"]["finalizers"] = json!(kept);
            },
        )
        .await;
        gone_is_done(result)
    }
}

/// An object that is already gone needs nothing more.
fn gone_is_done<T>(result: Result<T>) -> Result<()> {
    match result {
        Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
