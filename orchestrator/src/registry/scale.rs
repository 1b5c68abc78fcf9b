//! The `scale` subresource of Deployments, ReplicaSets,
//! ReplicationControllers and custom resources that declare one: an
//! autoscaling/v1 Scale made from the object (`spec.replicas`, and the
//! replicas and selector its status reports; a custom resource's paths),
//! written back as a change of the replicas only. `kubectl scale` patches
//! it.

use serde_json::{Value, json};

use crate::admission::Errors;
use crate::patch::{self, PatchKind};
use crate::registry::metadata::text;
use crate::registry::selectors::{format_selector, workload_selector};
use crate::registry::{Error, Registry, Resource, Result, WriteOptions};

const SCALE_SCHEMA: &str = "io.k8s.api.autoscaling.v1.Scale";

/// Where a resource keeps its desired replicas.
fn spec_replicas(resource: &Resource) -> &str {
    match &resource.custom {
        Some(custom) => custom
            .scale
            .as_ref()
            .map_or("/spec/replicas", |s| s.spec_replicas.as_str()),
        None => "/spec/replicas",
    }
}

/// The Scale of `object`.
pub fn of(resource: &Resource, object: &Value) -> Value {
    let scale = resource.custom.as_ref().and_then(|c| c.scale.as_ref());
    let (status_replicas, selector) = match scale {
        Some(paths) => (
            paths.status_replicas.as_str(),
            paths
                .label_selector
                .as_deref()
                .map(|p| json!(text(object, p)))
                .unwrap_or(json!("")),
        ),
        None => (
            "/status/replicas",
            json!(format_selector(
                workload_selector(object, "/spec/selector").as_ref(),
                ""
            )),
        ),
    };
    let mut metadata = json!({});
    for field in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(value) = object.pointer(&format!("/metadata/{field}")) {
            metadata[field] = value.clone();
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": object.pointer(spec_replicas(resource)).cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": object.pointer(status_replicas).cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

/// How a write to the scale subresource arrives.
pub enum Change<'a> {
    /// PUT of a whole Scale.
    Replace(Value),
    /// PATCH of the Scale.
    Patch(PatchKind, &'a [u8]),
}

/// Applies `change` to the Scale of the object and stores the replica
/// count it asks for; returns the new Scale.
pub async fn write(
    registry: &Registry,
    resource: &Resource,
    namespace: Option<&str>,
    name: &str,
    change: Change<'_>,
    options: &WriteOptions,
) -> Result<Value> {
    let current = registry.get(resource, namespace, name)?;
    let scale = of(resource, &current);
    let wanted = match change {
        Change::Replace(body) => body,
        Change::Patch(kind, body) => {
            let parsed = patch::parse(kind, body)?;
            patch::apply(kind, &scale, &parsed, SCALE_SCHEMA)?
        }
    };
    let replicas = match wanted.pointer("/spec/replicas") {
        None | Some(Value::Null) => 0,
        Some(value) => value.as_i64().ok_or_else(|| {
            Error::BadRequest(format!(
                "spec.replicas: Invalid value: {value}: must be an integer"
            ))
        })?,
    };
    if replicas < 0 {
        let mut errors = Errors::default();
        errors.push(
            "spec.replicas",
            format!("Invalid value: {replicas}: must be greater than or equal to 0"),
        );
        let invalid = errors
            .into_result("Scale", name)
            .expect_err("an error was pushed");
        return Err(Error::Invalid(invalid, "autoscaling".into()));
    }
    // A Scale that names a resourceVersion is a precondition on the object,
    // checked in the same write.
    let precondition = text(&wanted, "/metadata/resourceVersion").to_string();
    let written = registry
        .update_with(
            resource,
            namespace,
            name,
            Some("scale"),
            options,
            |object| {
                let mut next = object.clone();
                set_at(&mut next, spec_replicas(resource), json!(replicas));
                if !precondition.is_empty() {
                    next["metadata"]["resourceVersion"] = json!(precondition);
                }
                Ok(next)
            },
        )
        .await?;
    Ok(of(resource, &written.object))
}

/// Sets the value at a JSON pointer, making the objects on the way.
fn set_at(object: &mut Value, pointer: &str, value: Value) {
    let mut at = object;
    let mut fields = pointer.trim_start_matches('/').split('/').peekable();
    while let Some(field) = fields.next() {
        if !at.is_object() {
            *at = json!({});
        }
        let map = at.as_object_mut().expect("made an object");
        if fields.peek().is_none() {
            map.insert(field.to_string(), value);
            return;
        }
        at = map.entry(field.to_string()).or_insert(json!({}));
    }
}
