//! OpenAPI v2 (Swagger 2.0) at `/openapi/v2`, for kubectl 1.27 and 1.28:
//! they read it (as protobuf) before `apply`, `create` and `explain`.
//!
//! The document is derived from the v3 documents, so both describe the
//! same paths and schemas. It is served as JSON, or as the protobuf
//! encoding of gnostic's `openapi.v2.Document` that client-go asks for.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{definitions, document};
use crate::registry::Resources;

/// The media types client-go asks for (the first), and the one the API
/// server answers with (Go's media type parser refuses the `@`).
pub const PROTOBUF: [&str; 2] = [
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
];

/// The rendered document.
#[derive(Debug)]
pub struct Rendered {
    pub json: Bytes,
    pub protobuf: Bytes,
    pub hash: String,
}

/// The v2 document, rendered once per set of resources.
pub fn rendered(resources: &Resources) -> Arc<Rendered> {
    static RENDERED: super::Rendered<Rendered> = super::Rendered::new();
    RENDERED.get(resources, || {
        let swagger = swagger(resources);
        let json = serde_json::to_vec(&swagger).expect("serialisable");
        let hash = hex::encode_upper(Sha256::digest(&json));
        let mut protobuf = Vec::new();
        encode_document(&mut protobuf, &swagger);
        Rendered {
            json: Bytes::from(json),
            protobuf: Bytes::from(protobuf),
            hash,
        }
    })
}

/// The Swagger 2.0 document of every group version's v3 document.
fn swagger(resources: &Resources) -> Value {
    let definitions = definitions(resources);
    let mut paths = Map::new();
    for (group, version) in resources.group_versions() {
        let v3 = document(resources, &definitions, group, version);
        for (path, item) in v3["paths"].as_object().into_iter().flatten() {
            paths.insert(path.clone(), path_item(item));
        }
    }
    let definitions: Map<String, Value> = definitions
        .iter()
        .map(|(name, schema)| (name.clone(), schema_v2(schema)))
        .collect();
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "definitions": definitions,
    })
}

fn path_item(item: &Value) -> Value {
    let mut out = Map::new();
    for (key, value) in item.as_object().into_iter().flatten() {
        let converted = match key.as_str() {
            "parameters" => Value::Array(
                value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(parameter)
                    .collect(),
            ),
            _ => operation(value),
        };
        out.insert(key.clone(), converted);
    }
    Value::Object(out)
}

fn operation(op: &Value) -> Value {
    let mut out = Map::new();
    let mut parameters: Vec<Value> = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(parameter)
        .collect();
    if let Some(body) = op.get("requestBody") {
        let content = body["content"].as_object();
        let schema = content
            .and_then(|c| c.values().next())
            .map(|media| schema_v2(&media["schema"]))
            .unwrap_or_else(|| json!({}));
        parameters.insert(
            0,
            json!({"name": "body", "in": "body", "required": true, "schema": schema}),
        );
        let consumes: Vec<&String> = content.into_iter().flat_map(|c| c.keys()).collect();
        out.insert("consumes".into(), json!(consumes));
    }
    out.insert(
        "produces".into(),
        json!(["application/json", "application/yaml"]),
    );
    out.insert("schemes".into(), json!(["https"]));
    if !parameters.is_empty() {
        out.insert("parameters".into(), Value::Array(parameters));
    }
    let mut responses = Map::new();
    for (code, response) in op["responses"].as_object().into_iter().flatten() {
        let mut converted = json!({"description": response["description"]});
        if let Some(media) = response["content"]
            .as_object()
            .and_then(|c| c.values().next())
        {
            converted["schema"] = schema_v2(&media["schema"]);
        }
        responses.insert(code.clone(), converted);
    }
    out.insert("responses".into(), Value::Object(responses));
    for (key, value) in op.as_object().into_iter().flatten() {
        if key == "operationId" || key == "description" || key.starts_with("x-") {
            out.insert(key.clone(), value.clone());
        }
    }
    Value::Object(out)
}

/// A v3 parameter (its type under `schema`) as v2 has it (inline).
fn parameter(p: &Value) -> Value {
    let mut out = Map::new();
    for (key, value) in p.as_object().into_iter().flatten() {
        if key == "schema" {
            for (k, v) in value.as_object().into_iter().flatten() {
                out.insert(k.clone(), v.clone());
            }
        } else {
            out.insert(key.clone(), value.clone());
        }
    }
    Value::Object(out)
}

/// A v3 schema as v2 has it: references into `#/definitions/`, a lone
/// `allOf` reference as the reference itself, int-or-string as Kubernetes'
/// v2 spells it.
fn schema_v2(schema: &Value) -> Value {
    let Some(object) = schema.as_object() else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (key, value) in object {
        match key.as_str() {
            "$ref" => {
                let name = value.as_str().unwrap_or_default().rsplit('/').next();
                out.insert(
                    "$ref".into(),
                    json!(format!("#/definitions/{}", name.unwrap_or_default())),
                );
            }
            "allOf" if value.as_array().is_some_and(|a| a.len() == 1) => {
                for (k, v) in schema_v2(&value[0]).as_object().into_iter().flatten() {
                    out.insert(k.clone(), v.clone());
                }
            }
            "properties" => {
                let properties: Map<String, Value> = value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, property)| (name.clone(), schema_v2(property)))
                    .collect();
                out.insert(key.clone(), Value::Object(properties));
            }
            "items" | "additionalProperties" if value.is_object() => {
                out.insert(key.clone(), schema_v2(value));
            }
            "nullable" => {}
            "x-kubernetes-int-or-string" => {
                out.insert("type".into(), json!("string"));
                out.insert("format".into(), json!("int-or-string"));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(out)
}

/// Protobuf writing: length-delimited fields and varints.
struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn varint(&mut self, mut value: u64) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                self.0.push(byte);
                return;
            }
            self.0.push(byte | 0x80);
        }
    }

    fn bytes(&mut self, tag: u64, bytes: &[u8]) {
        self.varint(tag << 3 | 2);
        self.varint(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    fn string(&mut self, tag: u64, value: &Value) {
        if let Some(text) = value.as_str().filter(|t| !t.is_empty()) {
            self.bytes(tag, text.as_bytes());
        }
    }

    fn strings(&mut self, tag: u64, value: &Value) {
        for item in value.as_array().into_iter().flatten() {
            if let Some(text) = item.as_str() {
                self.bytes(tag, text.as_bytes());
            }
        }
    }

    fn boolean(&mut self, tag: u64, value: &Value) {
        if value.as_bool() == Some(true) {
            self.varint(tag << 3);
            self.varint(1);
        }
    }

    fn double(&mut self, tag: u64, value: &Value) {
        if let Some(number) = value.as_f64() {
            self.varint(tag << 3 | 1);
            self.0.extend_from_slice(&number.to_le_bytes());
        }
    }

    fn int(&mut self, tag: u64, value: &Value) {
        if let Some(number) = value.as_i64() {
            self.varint(tag << 3);
            self.varint(number as u64);
        }
    }

    /// A nested message written by `write`.
    fn message(&mut self, tag: u64, write: impl FnOnce(&mut Writer<'_>)) {
        let mut inner = Vec::new();
        write(&mut Writer(&mut inner));
        self.bytes(tag, &inner);
    }

    /// A `(name, value)` pair message (gnostic's maps): name 1, value 2.
    fn named(&mut self, tag: u64, name: &str, write: impl FnOnce(&mut Writer<'_>)) {
        self.message(tag, |pair| {
            pair.bytes(1, name.as_bytes());
            pair.message(2, write);
        });
    }

    /// An `Any`: the value as YAML text (JSON is YAML).
    fn any(&mut self, tag: u64, value: &Value) {
        self.message(tag, |any| any.bytes(2, value.to_string().as_bytes()));
    }

    /// Every `x-` key of `object` as `NamedAny` vendor extensions.
    fn extensions(&mut self, tag: u64, object: &Value) {
        for (key, value) in object.as_object().into_iter().flatten() {
            if key.starts_with("x-") {
                self.message(tag, |pair| {
                    pair.bytes(1, key.as_bytes());
                    pair.any(2, value);
                });
            }
        }
    }
}

fn encode_document(out: &mut Vec<u8>, doc: &Value) {
    let mut w = Writer(out);
    w.string(1, &doc["swagger"]);
    w.message(2, |info| {
        info.string(1, &doc["info"]["title"]);
        info.string(2, &doc["info"]["version"]);
    });
    w.message(8, |paths| {
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            paths.named(2, path, |w| encode_path_item(w, item));
        }
    });
    w.message(9, |definitions| {
        for (name, schema) in doc["definitions"].as_object().into_iter().flatten() {
            definitions.named(1, name, |w| encode_schema(w, schema));
        }
    });
}

fn encode_path_item(w: &mut Writer<'_>, item: &Value) {
    for (method, tag) in [
        ("get", 2),
        ("put", 3),
        ("post", 4),
        ("delete", 5),
        ("patch", 8),
    ] {
        if let Some(op) = item.get(method) {
            w.message(tag, |w| encode_operation(w, op));
        }
    }
    for p in item["parameters"].as_array().into_iter().flatten() {
        w.message(9, |w| encode_parameter(w, p));
    }
}

fn encode_operation(w: &mut Writer<'_>, op: &Value) {
    w.string(3, &op["description"]);
    w.string(5, &op["operationId"]);
    w.strings(6, &op["produces"]);
    w.strings(7, &op["consumes"]);
    for p in op["parameters"].as_array().into_iter().flatten() {
        w.message(8, |w| encode_parameter(w, p));
    }
    w.message(9, |responses| {
        for (code, response) in op["responses"].as_object().into_iter().flatten() {
            // NamedResponseValue { name, ResponseValue { response: Response } }
            responses.named(1, code, |value| {
                value.message(1, |r| {
                    r.string(1, &response["description"]);
                    if let Some(schema) = response.get("schema") {
                        r.message(2, |item| item.message(1, |s| encode_schema(s, schema)));
                    }
                });
            });
        }
    });
    w.strings(10, &op["schemes"]);
    w.extensions(13, op);
}

/// A `ParametersItem` holding a `Parameter`.
fn encode_parameter(w: &mut Writer<'_>, p: &Value) {
    w.message(1, |parameter| {
        if p["in"] == "body" {
            parameter.message(1, |body| {
                body.string(1, &p["description"]);
                body.string(2, &p["name"]);
                body.string(3, &p["in"]);
                body.boolean(4, &p["required"]);
                body.message(5, |s| encode_schema(s, &p["schema"]));
            });
            return;
        }
        // NonBodyParameter: query (3) and path (4) sub-schemas differ only
        // in where `type` and `uniqueItems` sit.
        let (which, type_tag, unique_tag) = if p["in"] == "path" {
            (4, 5, 19)
        } else {
            (3, 6, 20)
        };
        parameter.message(2, |non_body| {
            non_body.message(which, |q| {
                q.boolean(1, &p["required"]);
                q.string(2, &p["in"]);
                q.string(3, &p["description"]);
                q.string(4, &p["name"]);
                q.string(type_tag, &p["type"]);
                q.boolean(unique_tag, &p["uniqueItems"]);
            });
        });
    });
}

fn encode_schema(w: &mut Writer<'_>, schema: &Value) {
    w.string(1, &schema["$ref"]);
    w.string(2, &schema["format"]);
    w.string(3, &schema["title"]);
    w.string(4, &schema["description"]);
    if let Some(default) = schema.get("default") {
        w.any(5, default);
    }
    w.double(7, &schema["maximum"]);
    w.double(9, &schema["minimum"]);
    w.int(11, &schema["maxLength"]);
    w.int(12, &schema["minLength"]);
    w.string(13, &schema["pattern"]);
    w.strings(19, &schema["required"]);
    for value in schema["enum"].as_array().into_iter().flatten() {
        w.any(20, value);
    }
    match schema.get("additionalProperties") {
        Some(Value::Bool(allowed)) => w.message(21, |a| {
            a.varint(2 << 3);
            a.varint(u64::from(*allowed));
        }),
        Some(inner @ Value::Object(_)) => {
            w.message(21, |a| a.message(1, |s| encode_schema(s, inner)))
        }
        _ => {}
    }
    match &schema["type"] {
        Value::String(_) => w.message(22, |t| t.string(1, &schema["type"])),
        Value::Array(_) => w.message(22, |t| t.strings(1, &schema["type"])),
        _ => {}
    }
    if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
        w.message(23, |i| i.message(1, |s| encode_schema(s, items)));
    }
    for inner in schema["allOf"].as_array().into_iter().flatten() {
        w.message(24, |s| encode_schema(s, inner));
    }
    if let Some(properties) = schema["properties"].as_object() {
        w.message(25, |p| {
            for (name, property) in properties {
                p.named(1, name, |s| encode_schema(s, property));
            }
        });
    }
    w.extensions(31, schema);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_become_v2() {
        let v3 = json!({
            "description": "d",
            "properties": {
                "spec": {"allOf": [{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}], "description": "s"},
                "port": {"x-kubernetes-int-or-string": true},
                "tags": {"type": "array", "items": {"$ref": "#/components/schemas/T"}}
            },
            "type": "object"
        });
        assert_eq!(
            schema_v2(&v3),
            json!({
                "description": "d",
                "properties": {
                    "spec": {"$ref": "#/definitions/io.k8s.api.core.v1.PodSpec", "description": "s"},
                    "port": {"type": "string", "format": "int-or-string"},
                    "tags": {"type": "array", "items": {"$ref": "#/definitions/T"}}
                },
                "type": "object"
            })
        );
    }
}
