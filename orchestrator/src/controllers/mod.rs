//! Controllers: level-triggered loops that converge the cluster toward what
//! its objects ask for.

pub mod cronjob;
pub mod deployment;
pub mod driver;
pub mod endpoints;
pub mod garbage;
pub mod job;
pub mod namespace;
pub mod owners;
pub mod replicaset;

use serde_json::Value;

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
            None,
            |current| {
                let mut next = current.clone();
                change(&mut next);
                Ok(next)
            },
        )
        .await?;
    Ok(written.object)
}
