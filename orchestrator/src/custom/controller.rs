//! The definitions' controller, doing what the API server's naming,
//! establishing and finalizing controllers do:
//!
//! - a definition whose names no other resource of its group uses has
//!   them accepted (`NamesAccepted`), is served (discovery, OpenAPI, its
//!   objects' paths) and then marked `Established`, so a client that waits
//!   for the condition can use the resource at once;
//! - a definition holds the cleanup finalizer while it lives; once deleted
//!   (`Terminating`) its objects are deleted, and then it goes.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use super::definition::{self, CLEANUP, GROUP, KIND};
use crate::controllers::{edit, same_status};
use crate::registry::metadata::{now, text};
use crate::registry::{ListOptions, Registry, Resource, Resources, Result};

const NAME: &str = "apiextensions-controller";

/// Why a definition's names are not accepted: the condition's reason
/// and message.
struct Conflict {
    reason: &'static str,
    message: String,
}

/// What the served set was built from: each served definition's uid and
/// generation.
type Fingerprint = Vec<(String, i64)>;

/// Serves what the stored definitions define: called once before the API
/// is served, so their objects are reachable from the first request.
pub fn load(registry: &Registry) -> Result<()> {
    let crds = registry.resource(GROUP, KIND);
    let listed = registry.list(&crds, None, &ListOptions::default())?;
    let accepted = accepted(registry, &listed.items);
    serve(registry, &accepted, &mut None);
    Ok(())
}

/// Runs until `stop` turns true.
pub async fn run(registry: Registry, mut stop: watch::Receiver<bool>) {
    let crds = registry.resource(GROUP, KIND);
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut watch = registry
        .watch(&crds, None, registry.store().revision())
        .ok();
    let mut served = None;
    loop {
        if let Err(e) = pass(&registry, &crds, &mut served).await {
            tracing::debug!("{NAME}: {e}");
        }
        tokio::select! {
            event = async { match watch.as_mut() { Some(w) => w.next().await, None => std::future::pending().await } } => {
                // A watch that failed or ended is made again from now
                // (the pass above lists everything anyway).
                if !matches!(event, Some(Ok(_))) {
                    watch = registry.watch(&crds, None, registry.store().revision()).ok();
                }
            }
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
    }
}

async fn pass(
    registry: &Registry,
    crds: &Resource,
    served: &mut Option<Fingerprint>,
) -> Result<()> {
    let listed = registry.list(crds, None, &ListOptions::default())?;
    // The finalizer first, so no object can be made that a deletion of
    // the definition would leave behind.
    for crd in &listed.items {
        let deleting = crd.pointer("/metadata/deletionTimestamp").is_some();
        if !deleting && !has_cleanup(crd) {
            edit(registry, crds, crd, None, NAME, |next| {
                if !has_cleanup(next) {
                    let finalizers = next["metadata"]
                        .as_object_mut()
                        .expect("an object has metadata")
                        .entry("finalizers")
                        .or_insert(json!([]));
                    if let Some(list) = finalizers.as_array_mut() {
                        list.push(json!(CLEANUP));
                    }
                }
            })
            .await?;
        }
    }
    let listed = registry.list(crds, None, &ListOptions::default())?;
    let accepted = accepted(registry, &listed.items);
    serve(registry, &accepted, served);
    for (crd, conflict) in &accepted {
        let wanted = status(crd, conflict.as_ref());
        if !same_status(crd.get("status").unwrap_or(&Value::Null), &wanted) {
            edit(registry, crds, crd, Some("status"), NAME, |next| {
                next["status"] = status(next, conflict.as_ref());
            })
            .await?;
        }
        if crd.pointer("/metadata/deletionTimestamp").is_some() {
            clean_up(registry, crds, crd).await?;
        }
    }
    Ok(())
}

fn has_cleanup(crd: &Value) -> bool {
    crd.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|x| x == CLEANUP))
}

/// Each definition with the conflict that keeps its names from being
/// accepted, if any: a resource of the same group already using its
/// plural or kind (built in, an established definition, or an older one).
fn accepted(registry: &Registry, crds: &[Value]) -> Vec<(Value, Option<Conflict>)> {
    let mut crds = crds.to_vec();
    crds.sort_by_cached_key(|o| {
        let established = o
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|c| {
                c.iter()
                    .any(|c| text(c, "/type") == "Established" && text(c, "/status") == "True")
            });
        (
            !established,
            text(o, "/metadata/creationTimestamp").to_string(),
            text(o, "/metadata/name").to_string(),
        )
    });
    let mut taken: Vec<(String, String, String)> = registry
        .resources()
        .all()
        .iter()
        .filter(|r| r.custom.is_none())
        .map(|r| {
            (
                r.group.to_string(),
                r.plural.to_string(),
                r.kind.to_string(),
            )
        })
        .collect();
    crds.into_iter()
        .map(|crd| {
            let group = text(&crd, "/spec/group").to_string();
            let plural = text(&crd, "/spec/names/plural").to_string();
            let kind = text(&crd, "/spec/names/kind").to_string();
            let conflict = taken.iter().find_map(|(g, p, k)| {
                if *g != group {
                    None
                } else if *p == plural {
                    Some(Conflict {
                        reason: "PluralConflict",
                        message: format!("{plural:?} is already in use"),
                    })
                } else if *k == kind {
                    Some(Conflict {
                        reason: "KindConflict",
                        message: format!("{kind:?} is already in use"),
                    })
                } else {
                    None
                }
            });
            if conflict.is_none() {
                taken.push((group, plural, kind));
            }
            (crd, conflict)
        })
        .collect()
}

/// Serves the accepted definitions' resources, if they changed.
fn serve(
    registry: &Registry,
    accepted: &[(Value, Option<Conflict>)],
    served: &mut Option<Fingerprint>,
) {
    let serving: Vec<&Value> = accepted
        .iter()
        .filter(|(_, conflict)| conflict.is_none())
        .map(|(crd, _)| crd)
        .collect();
    let fingerprint: Fingerprint = serving
        .iter()
        .map(|crd| {
            (
                text(crd, "/metadata/uid").to_string(),
                crd.pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(0),
            )
        })
        .collect();
    if served.as_ref() == Some(&fingerprint) {
        return;
    }
    let custom = serving
        .iter()
        .flat_map(|crd| definition::served(crd))
        .collect();
    registry.set_resources(Resources::with_custom(custom));
    *served = Some(fingerprint);
}

/// The status a definition should have.
fn status(crd: &Value, conflict: Option<&Conflict>) -> Value {
    let mut status = crd.get("status").cloned().unwrap_or(json!({}));
    let old_conditions: Vec<Value> = status
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let condition = |kind: &str, state: bool, reason: &str, message: &str| {
        let state = if state { "True" } else { "False" };
        let since = old_conditions
            .iter()
            .find(|c| text(c, "/type") == kind && text(c, "/status") == state)
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(now()));
        json!({"type": kind, "status": state, "lastTransitionTime": since,
               "reason": reason, "message": message})
    };
    let mut conditions = Vec::new();
    match conflict {
        None => {
            conditions.push(condition(
                "NamesAccepted",
                true,
                "NoConflicts",
                "no conflicts found",
            ));
            conditions.push(condition(
                "Established",
                true,
                "InitialNamesAccepted",
                "the initial names have been accepted",
            ));
            status["acceptedNames"] = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
        }
        Some(conflict) => {
            conditions.push(condition(
                "NamesAccepted",
                false,
                conflict.reason,
                &conflict.message,
            ));
            conditions.push(condition(
                "Established",
                false,
                "NotAccepted",
                "not all names are accepted",
            ));
        }
    }
    if crd.pointer("/metadata/deletionTimestamp").is_some() {
        conditions.push(condition(
            "Terminating",
            true,
            "InstanceDeletionInProgress",
            "CustomResource deletion is in progress",
        ));
    }
    status["conditions"] = json!(conditions);
    // Every version objects were ever stored at stays listed.
    let mut stored: Vec<Value> = status
        .get("storedVersions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let storage = definition::storage_version(crd).map(|v| json!(text(v, "/name")));
    if let Some(storage) = storage
        && !stored.contains(&storage)
    {
        stored.push(storage);
    }
    status["storedVersions"] = json!(stored);
    status
}

/// Deletes a deleted definition's objects; once none is left, removes the
/// finalizer, which ends the definition.
async fn clean_up(registry: &Registry, crds: &Resource, crd: &Value) -> Result<()> {
    if let Some(resource) = definition::stored(crd)
        && registry.delete_all(&resource, None).await? > 0
    {
        return Ok(());
    }
    edit(registry, crds, crd, None, NAME, |next| {
        if let Some(list) = next
            .pointer_mut("/metadata/finalizers")
            .and_then(Value::as_array_mut)
        {
            list.retain(|f| f != CLEANUP);
        }
    })
    .await?;
    Ok(())
}
