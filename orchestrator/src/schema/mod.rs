//! The OpenAPI schemas of every served kind, with the extensions Kubernetes
//! adds: the kind's group/version/kind, and each list field's patch
//! strategy and merge key.
//!
//! The same definitions drive `kubectl explain`, client validation and the
//! server's strategic merge patch, so a field merges the way kubectl
//! expects. They are generated from the Rust types by the tests
//! (`generate.rs`) into `definitions.json`, which the binary carries
//! compressed and reads on first use.

use std::io::Read;
use std::sync::OnceLock;

use serde_json::{Map, Value};

#[cfg(test)]
mod generate;

/// `definitions.json`, gzip-compressed by `build.rs`.
const COMPRESSED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/definitions.json.gz"));

/// What a served kind's Rust type must be beyond decodable: in the tests,
/// which generate the definitions, a type schemars describes; in the
/// binary, anything (it carries the generated definitions, not the code
/// that makes them).
#[cfg(test)]
pub trait Described: schemars::JsonSchema {}
#[cfg(test)]
impl<T: schemars::JsonSchema> Described for T {}
#[cfg(not(test))]
pub trait Described {}
#[cfg(not(test))]
impl<T> Described for T {}

/// Every definition, by schema name, with Kubernetes' extensions.
pub fn definitions() -> &'static Map<String, Value> {
    static DEFINITIONS: OnceLock<Map<String, Value>> = OnceLock::new();
    DEFINITIONS.get_or_init(|| {
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(COMPRESSED)
            .read_to_end(&mut text)
            .expect("the definitions built into the binary decompress");
        serde_json::from_slice(&text).expect("the definitions built into the binary are JSON")
    })
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
    use serde_json::json;

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
