//! How `definitions.json` is made: k8s-openapi's `schemars`
//! implementations of every served kind, with the extensions Kubernetes
//! adds (the kind's group/version/kind, each list field's patch strategy
//! and merge key, atomic structs).
//!
//! Only the tests build it: the shipped binary carries the generated file
//! (compressed) instead of the schema code of every Kubernetes type, which
//! was about a quarter of its size. `cargo test -p wasmkube --lib schema::`
//! fails when the file differs from what the types generate, and writes it
//! anew with `WASMKUBE_WRITE_SCHEMAS=1`.

use std::collections::BTreeSet;
use std::path::Path;

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

/// Every definition, by schema name, as the types generate it.
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

/// The committed definitions, as `build.rs` compresses them into the binary.
const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/schema/definitions.json");

#[test]
fn the_shipped_definitions_are_what_the_types_generate() {
    let generated = build();
    if std::env::var_os("WASMKUBE_WRITE_SCHEMAS").is_some() {
        let mut text = serde_json::to_string_pretty(&generated).expect("JSON values serialise");
        text.push('\n');
        std::fs::write(FILE, text).expect("writing src/schema/definitions.json");
        return;
    }
    let shipped: Map<String, Value> = serde_json::from_str(
        &std::fs::read_to_string(Path::new(FILE))
            .expect("src/schema/definitions.json is in the tree"),
    )
    .expect("src/schema/definitions.json is JSON");
    let stale: BTreeSet<&String> = generated
        .keys()
        .chain(shipped.keys())
        .filter(|name| generated.get(*name) != shipped.get(*name))
        .collect();
    assert!(
        stale.is_empty(),
        "src/schema/definitions.json differs from what the types generate in {} definitions \
         (first: {:?}); write it anew with \
         WASMKUBE_WRITE_SCHEMAS=1 cargo test -p wasmkube --lib schema::",
        stale.len(),
        stale.first()
    );
}
