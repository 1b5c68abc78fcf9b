//! Controllers: level-triggered loops that converge the cluster toward what
//! its objects ask for.

pub mod cluster_roles;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod driver;
pub mod endpoints;
pub mod garbage;
pub mod history;
pub mod hpa;
pub mod job;
pub mod namespace;
pub mod owners;
pub mod replicaset;
pub mod resource_quota;
pub mod root_ca;
pub mod service_accounts;
pub mod statefulset;
pub mod volumes;

use serde_json::{Value, json};

use crate::registry::metadata::text;
use crate::registry::{Registry, Resource, Result, WriteOptions};

/// Read-modify-write of `object` (or its `subresource`) as `manager`:
/// `change` edits the current stored state; returns what was written.
pub async fn edit(
    registry: &Registry,
    resource: &Resource,
    object: &Value,
    subresource: Option<&str>,
    manager: &str,
    change: impl Fn(&mut Value),
) -> Result<Value> {
    let namespace = Some(text(object, "/metadata/namespace")).filter(|ns| !ns.is_empty());
    let written = registry
        .update_with(
            resource,
            namespace,
            text(object, "/metadata/name"),
            subresource,
            &WriteOptions::manager(manager),
            |current| {
                let mut next = current.clone();
                change(&mut next);
                Ok(next)
            },
        )
        .await?;
    Ok(written.object)
}

/// Whether two statuses say the same: zero counts and nulls count as
/// absent (as Kubernetes omits them), and conditions compare without their
/// times.
pub fn same_status(a: &Value, b: &Value) -> bool {
    fn essential(status: &Value) -> Value {
        let mut out = serde_json::Map::new();
        for (k, v) in status.as_object().into_iter().flatten() {
            if v == &json!(0) || v.is_null() {
                continue;
            }
            let mut v = v.clone();
            if k == "conditions" {
                for c in v.as_array_mut().into_iter().flatten() {
                    if let Some(c) = c.as_object_mut() {
                        c.remove("lastUpdateTime");
                        c.remove("lastTransitionTime");
                    }
                }
            }
            out.insert(k.clone(), v);
        }
        Value::Object(out)
    }
    essential(a) == essential(b)
}

/// Writes the fields of `status` into `object`'s status (a null removes
/// its field) unless they already say the same; other status fields stay.
pub async fn merge_status(
    registry: &Registry,
    resource: &Resource,
    object: &Value,
    manager: &str,
    status: &Value,
) -> Result<()> {
    if same_status(status, object.get("status").unwrap_or(&Value::Null)) {
        return Ok(());
    }
    edit(
        registry,
        resource,
        object,
        Some("status"),
        manager,
        |next| {
            let mut merged = next.get("status").cloned().unwrap_or(json!({}));
            if let (Some(merged), Some(status)) = (merged.as_object_mut(), status.as_object()) {
                for (k, v) in status {
                    if v.is_null() {
                        merged.remove(k);
                    } else {
                        merged.insert(k.clone(), v.clone());
                    }
                }
            }
            next["status"] = merged;
        },
    )
    .await
    .map(drop)
}

/// Metadata for an object made from `template` (a pod from a pod
/// template, a Job from a CronJob's): `metadata` with the template's
/// labels and annotations.
pub fn from_template(mut metadata: Value, template: &Value) -> Value {
    for field in ["labels", "annotations"] {
        if let Some(map) = template
            .pointer(&format!("/metadata/{field}"))
            .filter(|v| v.is_object())
        {
            metadata[field] = map.clone();
        }
    }
    metadata
}

/// A name-safe hash of `text`: FNV-1a, its decimal digits spelled in
/// Kubernetes' safe alphabet (no vowels, no look-alikes), as the
/// controllers name what they make from a template.
pub fn safe_hash(text: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in text.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    hash.to_string()
        .bytes()
        .map(|d| ALPHABET[usize::from(d - b'0') % ALPHABET.len()] as char)
        .collect()
}
