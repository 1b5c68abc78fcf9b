//! Controller references: who owns an object, making an owner reference,
//! and adopting orphans that match a selector.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::registry::metadata::{At, text};
use crate::registry::{Registry, Resource, Result, WriteOptions};

/// The object's controlling owner reference, if it has one.
fn controller(object: &Value) -> Option<&Value> {
    object
        .at("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
}

/// The uid of the object's controlling owner, if it has one.
pub fn controller_uid(object: &Value) -> Option<&str> {
    controller(object)?.get("uid")?.as_str()
}

/// The kind of the object's controlling owner, if it has one.
pub fn controller_kind(object: &Value) -> Option<&str> {
    controller(object)?.get("kind")?.as_str()
}

/// A controller reference to `owner` (of `kind` in `api_version`).
pub fn controller_ref(owner: &Value, api_version: &str, kind: &str) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": text(owner, "/metadata/name"),
        "uid": text(owner, "/metadata/uid"),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The object's finalizers.
pub fn finalizers(object: &Value) -> Vec<&str> {
    object
        .at("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Takes `finalizer` off the object's finalizers.
pub fn remove_finalizer(object: &mut Value, finalizer: &str) {
    if let Some(list) = object
        .pointer_mut("/metadata/finalizers")
        .and_then(Value::as_array_mut)
    {
        list.retain(|f| f != finalizer);
    }
}

/// Whether the object is being deleted.
pub fn deleting(object: &Value) -> bool {
    object.at("/metadata/deletionTimestamp").is_some()
}

/// Makes `owner` the controller of the orphan `object`, unless someone
/// else took it first; returns the object as written.
pub async fn adopt(
    registry: &Registry,
    resource: &Resource,
    object: &Value,
    reference: &Value,
    manager: &str,
) -> Result<Value> {
    let namespace = text(object, "/metadata/namespace").to_string();
    let name = text(object, "/metadata/name").to_string();
    let written = registry
        .update_with(
            resource,
            Some(&namespace),
            &name,
            None,
            &WriteOptions::manager(manager),
            |current| {
                let mut next = current.clone();
                if controller_uid(current).is_some() || deleting(current) {
                    return Ok(next);
                }
                let refs = next["metadata"]
                    .as_object_mut()
                    .expect("stored objects have metadata")
                    .entry("ownerReferences")
                    .or_insert_with(|| json!([]));
                if let Some(refs) = refs.as_array_mut() {
                    refs.push(reference.clone());
                }
                Ok(next)
            },
        )
        .await?;
    Ok(written.object)
}

/// The pods `owner` controls, adopting the orphans `may_adopt` picks (those
/// its selector matches, as each controller decides): Kubernetes'
/// ControllerRefManager claim.
pub async fn claim(
    registry: &Registry,
    pods: &Resource,
    owner: &Value,
    reference: &Value,
    manager: &str,
    candidates: &[Arc<Value>],
    may_adopt: impl Fn(&Value) -> bool,
) -> Result<Vec<Arc<Value>>> {
    let uid = text(owner, "/metadata/uid");
    let mut mine = Vec::new();
    for pod in candidates {
        match controller_uid(pod) {
            Some(owner) if owner == uid => mine.push(Arc::clone(pod)),
            None if may_adopt(pod) => {
                let adopted = adopt(registry, pods, pod, reference, manager).await?;
                if controller_uid(&adopted) == Some(uid) {
                    mine.push(Arc::new(adopted));
                }
            }
            _ => {}
        }
    }
    Ok(mine)
}
