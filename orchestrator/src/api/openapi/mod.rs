//! OpenAPI v3: the index at `/openapi/v3` and one document per group
//! version, with the operations, extensions and parameters kubectl looks
//! for before it validates (`fieldValidation`) or explains a kind.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::registry::{Resource, Resources};

pub mod v2;

/// One rendered group-version document.
#[derive(Debug)]
pub struct Document {
    pub body: Bytes,
    /// Content hash, for `?hash=` URLs clients may cache forever.
    pub hash: String,
}

/// What was rendered from the last few sets of resources (one per set:
/// the built-in set all servers share, and the latest set custom
/// resources made; each is megabytes).
pub(crate) struct Rendered<T>(Mutex<Vec<(u64, Arc<T>)>>);

/// How many sets' renderings are kept.
const KEPT: usize = 2;

impl<T> Rendered<T> {
    pub(crate) const fn new() -> Rendered<T> {
        Rendered(Mutex::new(Vec::new()))
    }

    /// What `render` makes of `resources`, rendered once per set.
    pub(crate) fn get(&self, resources: &Resources, render: impl FnOnce() -> T) -> Arc<T> {
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, rendered)) = kept.iter().find(|(id, _)| *id == resources.id()) {
            return Arc::clone(rendered);
        }
        let rendered = Arc::new(render());
        if kept.len() == KEPT {
            kept.remove(0);
        }
        kept.push((resources.id(), Arc::clone(&rendered)));
        rendered
    }
}

/// All documents, rendered once per set of resources: `api/v1`,
/// `apis/<group>/<version>`.
pub fn documents(resources: &Resources) -> Arc<BTreeMap<String, Document>> {
    static DOCUMENTS: Rendered<BTreeMap<String, Document>> = Rendered::new();
    DOCUMENTS.get(resources, || {
        let definitions = definitions(resources);
        resources
            .group_versions()
            .into_iter()
            .map(|(group, version)| {
                let path = if group.is_empty() {
                    format!("api/{version}")
                } else {
                    format!("apis/{group}/{version}")
                };
                let body = serde_json::to_vec(&document(resources, &definitions, group, version))
                    .expect("serialisable");
                let hash = hex::encode_upper(&Sha256::digest(&body)[..16]);
                let body = Bytes::from(body);
                (path, Document { body, hash })
            })
            .collect()
    })
}

/// The `/openapi/v3` index.
pub fn index(resources: &Resources) -> Value {
    let paths: serde_json::Map<String, Value> = documents(resources)
        .iter()
        .map(|(path, doc)| {
            (
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", doc.hash)}),
            )
        })
        .collect();
    json!({"paths": paths})
}

fn query(name: &str, kind: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": kind, "uniqueItems": true}})
}

fn write_parameters() -> Vec<Value> {
    vec![
        query(
            "dryRun",
            "string",
            "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed",
        ),
        query(
            "fieldManager",
            "string",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ),
        query(
            "fieldValidation",
            "string",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn (the default) and Strict.",
        ),
    ]
}

fn operation(action: &str, gvk: &Value, reference: &Value, kind: &str) -> Value {
    let ok = json!({"description": "OK", "content": {"application/json": {"schema": reference}}});
    let mut op = json!({
        "operationId": format!("{action}{kind}"),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
        "responses": {"200": ok},
    });
    match action {
        "post" | "put" => {
            op["parameters"] = json!(write_parameters());
            op["requestBody"] =
                json!({"content": {"*/*": {"schema": reference}}, "required": true});
            if action == "post" {
                op["responses"]["201"] = json!({"description": "Created", "content": {"application/json": {"schema": reference}}});
            }
        }
        "patch" => {
            let mut parameters = write_parameters();
            parameters.push(query(
                "force",
                "boolean",
                "Force is going to \"force\" Apply requests.",
            ));
            op["parameters"] = json!(parameters);
            let patch =
                json!({"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"});
            op["requestBody"] = json!({
                "content": {
                    "application/apply-patch+yaml": {"schema": patch},
                    "application/json-patch+json": {"schema": patch},
                    "application/merge-patch+json": {"schema": patch},
                    "application/strategic-merge-patch+json": {"schema": patch},
                },
                "required": true,
            });
        }
        "delete" | "deletecollection" => {
            op["parameters"] = json!([
                query(
                    "dryRun",
                    "string",
                    "When present, indicates that modifications should not be persisted."
                ),
                query(
                    "gracePeriodSeconds",
                    "integer",
                    "The duration in seconds before the object should be deleted."
                ),
                query(
                    "propagationPolicy",
                    "string",
                    "Whether and how garbage collection will be performed."
                )
            ]);
        }
        _ => {}
    }
    op
}

fn resource_paths(resource: &Resource, paths: &mut serde_json::Map<String, Value>) {
    let base = if resource.group.is_empty() {
        format!("/api/{}", resource.version)
    } else {
        format!("/apis/{}/{}", resource.group, resource.version)
    };
    let scope = if resource.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", resource.plural)
    } else {
        format!("{base}/{}", resource.plural)
    };
    let gvk = json!({"group": resource.group, "version": resource.version, "kind": resource.kind});
    let reference = json!({"$ref": format!("#/components/schemas/{}", resource.schema)});
    let kind = resource.kind;
    let mut item = serde_json::Map::new();
    let mut collection = serde_json::Map::new();
    for verb in resource.verbs {
        let (target, method, action) = match *verb {
            "get" => (&mut item, "get", "get"),
            "update" => (&mut item, "put", "put"),
            "patch" => (&mut item, "patch", "patch"),
            "delete" => (&mut item, "delete", "delete"),
            "create" => (&mut collection, "post", "post"),
            "list" => (&mut collection, "get", "list"),
            "deletecollection" => (&mut collection, "delete", "deletecollection"),
            _ => continue,
        };
        target.insert(method.into(), operation(action, &gvk, &reference, kind));
    }
    let name_parameter =
        json!([{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}]);
    item.insert("parameters".into(), name_parameter);
    paths.insert(format!("{scope}/{{name}}"), Value::Object(item));
    paths.insert(scope, Value::Object(collection));
}

fn document(
    resources: &Resources,
    definitions: &serde_json::Map<String, Value>,
    group: &str,
    version: &str,
) -> Value {
    let mut paths = serde_json::Map::new();
    for resource in resources.in_version(group, version) {
        resource_paths(&resource, &mut paths);
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": definitions},
    })
}

/// Every definition the documents refer to: the built-in kinds' and each
/// custom resource's.
fn definitions(resources: &Resources) -> Cow<'static, serde_json::Map<String, Value>> {
    let builtin = crate::schema::definitions();
    if resources.custom().next().is_none() {
        return Cow::Borrowed(builtin);
    }
    let mut all = builtin.clone();
    for resource in resources.custom() {
        if let Some(custom) = &resource.custom {
            all.insert(
                resource.schema.into(),
                custom_definition(resource, &custom.openapi),
            );
        }
    }
    Cow::Owned(all)
}

/// A custom resource's schema as the API server publishes it: the
/// version's `openAPIV3Schema` with `apiVersion`, `kind` and `metadata`
/// described, and the kind it is of.
fn custom_definition(resource: &Resource, schema: &Value) -> Value {
    let mut schema = schema.clone();
    let properties = schema
        .as_object_mut()
        .expect("a structural schema is an object")
        .entry("properties")
        .or_insert(json!({}));
    if let Some(properties) = properties.as_object_mut() {
        properties.insert("apiVersion".into(), json!({
            "type": "string",
            "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values.",
        }));
        properties.insert("kind".into(), json!({
            "type": "string",
            "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase.",
        }));
        properties.insert("metadata".into(), json!({
            "allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}],
            "description": "Standard object's metadata.",
        }));
    }
    schema["x-kubernetes-group-version-kind"] =
        json!([{"group": resource.group, "version": resource.version, "kind": resource.kind}]);
    schema
}
