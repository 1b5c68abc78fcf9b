//! The OpenAPI schemas of every served kind, from k8s-openapi's `schemars`
//! implementations, with the extensions Kubernetes adds: the kind's
//! group/version/kind, and each list field's patch strategy and merge key.
//!
//! The same definitions drive `kubectl explain`, client validation and the
//! server's strategic merge patch, so a field merges the way kubectl
//! expects.

use std::sync::OnceLock;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, Patch, Status};
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

/// `(schema, field, strategy, merge key)`, after the `patchStrategy` and
/// `patchMergeKey` tags of Kubernetes' Go types.
const PATCH_STRATEGIES: &[(&str, &str, &str, Option<&str>)] = &[
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "finalizers",
        "merge",
        None,
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
        "merge",
        Some("uid"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "containers",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "initContainers",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "ephemeralContainers",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "volumes",
        "merge,retainKeys",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "imagePullSecrets",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "hostAliases",
        "merge",
        Some("ip"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "topologySpreadConstraints",
        "merge",
        Some("topologyKey"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "resourceClaims",
        "merge,retainKeys",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "schedulingGates",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.Container",
        "ports",
        "merge",
        Some("containerPort"),
    ),
    ("io.k8s.api.core.v1.Container", "env", "merge", Some("name")),
    (
        "io.k8s.api.core.v1.Container",
        "volumeMounts",
        "merge",
        Some("mountPath"),
    ),
    (
        "io.k8s.api.core.v1.Container",
        "volumeDevices",
        "merge",
        Some("devicePath"),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "ports",
        "merge",
        Some("containerPort"),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "env",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeMounts",
        "merge",
        Some("mountPath"),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "podIPs",
        "merge",
        Some("ip"),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "hostIPs",
        "merge",
        Some("ip"),
    ),
    (
        "io.k8s.api.core.v1.NodeStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.NodeStatus",
        "addresses",
        "merge",
        Some("type"),
    ),
    ("io.k8s.api.core.v1.NodeSpec", "podCIDRs", "merge", None),
    (
        "io.k8s.api.core.v1.NamespaceStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "ports",
        "merge",
        Some("port"),
    ),
    (
        "io.k8s.api.core.v1.ServiceAccount",
        "secrets",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PersistentVolumeClaimStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.apps.v1.DeploymentSpec",
        "strategy",
        "retainKeys",
        None,
    ),
    (
        "io.k8s.api.apps.v1.DeploymentStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.apps.v1.ReplicaSetStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.apps.v1.StatefulSetStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.apps.v1.DaemonSetSpec",
        "updateStrategy",
        "retainKeys",
        None,
    ),
    (
        "io.k8s.api.apps.v1.DaemonSetStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.batch.v1.JobStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
];

/// `(schema, group, version, kind)` of the API's own types that are not
/// resources (every resource's come from its descriptor).
/// Structs that are one value to server-side apply (`+structType=atomic`
/// in Kubernetes' types): an applier owns them whole.
const ATOMIC_STRUCTS: &[&str] = &[
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    "io.k8s.api.core.v1.ObjectReference",
    "io.k8s.api.core.v1.LocalObjectReference",
    "io.k8s.api.core.v1.TypedLocalObjectReference",
    "io.k8s.api.core.v1.ConfigMapKeySelector",
    "io.k8s.api.core.v1.SecretKeySelector",
    "io.k8s.api.core.v1.ObjectFieldSelector",
    "io.k8s.api.core.v1.ResourceFieldSelector",
    "io.k8s.api.core.v1.NodeSelector",
];

const API_TYPES: &[(&str, &str, &str, &str)] = &[
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
        "",
        "v1",
        "Status",
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
        "",
        "v1",
        "DeleteOptions",
    ),
    ("io.k8s.api.policy.v1.Eviction", "policy", "v1", "Eviction"),
    (
        "io.k8s.api.authentication.v1.TokenRequest",
        "authentication.k8s.io",
        "v1",
        "TokenRequest",
    ),
];

/// Every definition, by schema name, with Kubernetes' extensions.
pub fn definitions() -> &'static Map<String, Value> {
    static DEFINITIONS: OnceLock<Map<String, Value>> = OnceLock::new();
    DEFINITIONS.get_or_init(build)
}

fn build() -> Map<String, Value> {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let resources = crate::registry::kinds::all();
    for resource in &resources {
        (resource.hooks.typed.schema)(&mut generator);
    }
    generator.subschema_for::<Status>();
    generator.subschema_for::<DeleteOptions>();
    generator.subschema_for::<k8s_openapi::api::policy::v1::Eviction>();
    generator.subschema_for::<k8s_openapi::api::authentication::v1::TokenRequest>();
    generator.subschema_for::<Patch>();
    let mut definitions = generator.take_definitions(true);
    let kinds = resources
        .iter()
        .map(|r| (r.schema, r.group, r.version, r.kind))
        .chain(API_TYPES.iter().copied());
    for (schema, group, version, kind) in kinds {
        if let Some(definition) = definitions.get_mut(schema).and_then(Value::as_object_mut) {
            definition.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": group, "version": version, "kind": kind}]),
            );
        }
    }
    // The Rust types hold `metadata` as a plain field, so their schemas
    // require it; Kubernetes' own never do (the server names what is
    // missing, kubectl's validation must not refuse it first).
    for definition in definitions.values_mut() {
        if let Some(required) = definition.get_mut("required").and_then(Value::as_array_mut) {
            required.retain(|field| field != "metadata");
            if required.is_empty() {
                definition
                    .as_object_mut()
                    .expect("a definition with fields is an object")
                    .remove("required");
            }
        }
    }
    for name in ATOMIC_STRUCTS {
        if let Some(definition) = definitions.get_mut(*name).and_then(Value::as_object_mut) {
            definition.insert("x-kubernetes-map-type".into(), json!("atomic"));
        }
    }
    for (schema, field, strategy, key) in PATCH_STRATEGIES {
        let property = definitions
            .get_mut(*schema)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(*field))
            .and_then(Value::as_object_mut);
        if let Some(property) = property {
            property.insert("x-kubernetes-patch-strategy".into(), json!(strategy));
            if let Some(key) = key {
                property.insert("x-kubernetes-patch-merge-key".into(), json!(key));
            }
        }
    }
    definitions
}

/// Follows `$ref` (directly or through a one-element `allOf`).
pub fn resolve(schema: &Value) -> &Value {
    let mut current = schema;
    for _ in 0..8 {
        let reference = current.get("$ref").and_then(Value::as_str).or_else(|| {
            current
                .get("allOf")
                .and_then(Value::as_array)
                .filter(|a| a.len() == 1)
                .and_then(|a| a[0].get("$ref"))
                .and_then(Value::as_str)
        });
        let Some(reference) = reference else {
            return current;
        };
        let name = reference.rsplit('/').next().unwrap_or(reference);
        match definitions().get(name) {
            Some(next) => current = next,
            None => return current,
        }
    }
    current
}

/// The schema of a named definition.
pub fn named(name: &str) -> Option<&'static Value> {
    definitions().get(name)
}

/// The schema of field `field` of an object schema (`additionalProperties`
/// for maps), with its patch extensions.
pub fn field<'a>(schema: &'a Value, name: &str) -> Option<&'a Value> {
    let schema = resolve(schema);
    schema
        .get("properties")
        .and_then(|p| p.get(name))
        .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_carry_their_gvk_and_lists_their_strategy() {
        let pod = named("io.k8s.api.core.v1.Pod").unwrap();
        assert_eq!(
            pod["x-kubernetes-group-version-kind"],
            json!([{"group": "", "version": "v1", "kind": "Pod"}])
        );
        let spec = field(pod, "spec").unwrap();
        let containers = field(spec, "containers").unwrap();
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        let volumes = field(spec, "volumes").unwrap();
        assert_eq!(volumes["x-kubernetes-patch-strategy"], "merge,retainKeys");
        let env = field(resolve(&containers["items"]), "env").unwrap();
        assert_eq!(env["x-kubernetes-patch-merge-key"], "name");
    }

    #[test]
    fn every_served_kind_has_its_schema() {
        for resource in crate::registry::kinds::all() {
            let schema =
                named(resource.schema).unwrap_or_else(|| panic!("no schema for {}", resource.kind));
            assert_eq!(
                schema["x-kubernetes-group-version-kind"][0]["kind"], resource.kind,
                "{}",
                resource.schema
            );
        }
        let deployment = named("io.k8s.api.apps.v1.Deployment").unwrap();
        let template = field(field(deployment, "spec").unwrap(), "template").unwrap();
        let containers = field(field(template, "spec").unwrap(), "containers").unwrap();
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    }
}
