//! Kubernetes' protobuf encoding of request bodies, decoded into the JSON
//! objects the rest of the server works with.
//!
//! kubectl's typed commands (`create namespace`, `create configmap`,
//! `create deployment`, ...) send `application/vnd.kubernetes.protobuf`: the
//! magic `k8s\0`, then a `runtime.Unknown` whose `raw` bytes are the object's
//! message. Field numbers come from `fields.tsv` (Kubernetes'
//! `generated.proto`, see `scripts/gen-protobuf-fields.py`); JSON field names
//! from the OpenAPI schema, so the result is the object kubectl would have
//! sent as JSON.

use std::collections::HashMap;
use std::sync::OnceLock;

use base64::Engine;
use serde_json::{Map, Value, json};

const MAGIC: &[u8] = b"k8s\0";
const UNKNOWN: &str = "io.k8s.apimachinery.pkg.runtime.Unknown";

/// How a field is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Bytes,
    Int32,
    Int64,
    Bool,
    Double,
    Message,
    MapString,
    MapBytes,
    MapMessage,
}

#[derive(Debug)]
struct Field {
    tag: u64,
    /// The Rust (snake_case) name, matched against the schema's JSON names.
    rust_name: String,
    kind: Kind,
    repeated: bool,
    /// The schema name of a message (or map value) type.
    message: Option<String>,
}

/// Fields by lower-cased schema name (prost spells `HTTPGetAction` as
/// `HttpGetAction`, so names are compared case-insensitively).
fn table() -> &'static HashMap<String, Vec<Field>> {
    static TABLE: OnceLock<HashMap<String, Vec<Field>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table: HashMap<String, Vec<Field>> = HashMap::new();
        for line in include_str!("fields.tsv")
            .lines()
            .filter(|l| !l.starts_with('#'))
        {
            let parts: Vec<&str> = line.split('\t').collect();
            let [schema, tag, name, kind, repeated, message] = parts[..] else {
                continue;
            };
            let kind = match kind {
                "string" => Kind::String,
                "bytes" => Kind::Bytes,
                "int32" => Kind::Int32,
                "int64" => Kind::Int64,
                "bool" => Kind::Bool,
                "double" => Kind::Double,
                "message" => Kind::Message,
                "map_string" => Kind::MapString,
                "map_bytes" => Kind::MapBytes,
                "map_message" => Kind::MapMessage,
                _ => continue,
            };
            table.entry(schema.to_lowercase()).or_default().push(Field {
                tag: tag.parse().unwrap_or(0),
                rust_name: name.to_string(),
                kind,
                repeated: repeated == "1",
                message: (message != "-").then(|| message.to_string()),
            });
        }
        table
    })
}

/// Schema definitions by lower-cased name.
fn schemas() -> &'static HashMap<String, &'static Value> {
    static SCHEMAS: OnceLock<HashMap<String, &'static Value>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        crate::schema::definitions()
            .iter()
            .map(|(name, schema)| (name.to_lowercase(), schema))
            .collect()
    })
}

/// `podIPs` -> `pod_i_ps`, as prost names fields.
fn snake(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, c) in chars.iter().enumerate() {
        if c.is_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                out.push('_');
            }
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// `binary_data` -> `binaryData`, when no schema names the field.
fn camel(name: &str) -> String {
    let mut out = String::new();
    for (i, part) in name.split('_').enumerate() {
        if i == 0 {
            out.push_str(part);
        } else {
            let mut chars = part.chars();
            if let Some(first) = chars.next() {
                out.extend(first.to_uppercase());
                out.push_str(chars.as_str());
            }
        }
    }
    out
}

/// The JSON name of a field of `schema`.
fn json_name(schema: &str, rust_name: &str) -> String {
    property(schema, rust_name).unwrap_or_else(|| camel(rust_name.trim_start_matches("r#")))
}

/// The JSON property of `schema` a field is, if the schema is known and
/// has it.
fn property(schema: &str, rust_name: &str) -> Option<String> {
    let rust_name = rust_name.trim_start_matches("r#");
    schemas()
        .get(&schema.to_lowercase())
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
        .and_then(|props| props.keys().find(|p| snake(p) == rust_name).cloned())
}

/// Whether a message field is an embedded Go struct whose fields JSON
/// inlines into the parent (a `ConfigMapKeySelector`'s
/// `LocalObjectReference`, a `Volume`'s `VolumeSource`): the parent's
/// schema is known and has no property of that name.
fn inlined(schema: &str, rust_name: &str) -> bool {
    schemas().contains_key(&schema.to_lowercase()) && property(schema, rust_name).is_none()
}

/// A protobuf reader over one message.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.bytes.get(self.at).ok_or("truncated varint")?;
            self.at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint too long".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or("truncated field")?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn skip(&mut self, wire: u64) -> Result<(), String> {
        match wire {
            0 => self.varint().map(drop),
            1 => self.take(8).map(drop),
            2 => {
                let n = self.varint()? as usize;
                self.take(n).map(drop)
            }
            5 => self.take(4).map(drop),
            other => Err(format!("unsupported wire type {other}")),
        }
    }

    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }
}

/// Decodes a protobuf request body for a resource whose kind has OpenAPI
/// schema `schema`.
pub fn decode(body: &[u8], schema: &str) -> Result<Value, String> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or("the body does not start with the Kubernetes protobuf magic number")?;
    let unknown = message(envelope, UNKNOWN, 0)?;
    let raw = unknown
        .get("raw")
        .and_then(Value::as_str)
        .ok_or("the protobuf envelope has no object")?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .map_err(|e| e.to_string())?;
    let mut object = message(&raw, schema, 0)?;
    if let Some(type_meta) = unknown.get("typeMeta") {
        for key in ["apiVersion", "kind"] {
            if let Some(value) = type_meta
                .get(key)
                .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
            {
                object[key] = value.clone();
            }
        }
    }
    Ok(object)
}

fn time(seconds: i64, nanos: i64, micro: bool) -> Value {
    let t = jiff::Timestamp::new(seconds, nanos as i32).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    if micro {
        json!(format!("{}", t.strftime("%Y-%m-%dT%H:%M:%S.%6fZ")))
    } else {
        json!(
            jiff::Timestamp::from_second(seconds)
                .unwrap_or(t)
                .to_string()
        )
    }
}

/// Go's `time.Duration` string of a number of nanoseconds (`1h2m3s`).
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    let (h, m) = (n / 3_600_000_000_000, (n / 60_000_000_000) % 60);
    let s = (n % 60_000_000_000) as f64 / 1e9;
    let mut out = sign.to_string();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{s}s"));
    out
}

fn message(bytes: &[u8], schema: &str, depth: usize) -> Result<Value, String> {
    if depth > 64 {
        return Err("protobuf message nested too deeply".into());
    }
    let short = schema.rsplit('.').next().unwrap_or(schema);
    let plain = plain_message(bytes, schema, depth)?;
    // Types whose JSON form is not an object.
    Ok(match (schema, short) {
        ("io.k8s.apimachinery.pkg.api.resource.Quantity", _) => {
            plain.get("string").cloned().unwrap_or(json!("0"))
        }
        ("io.k8s.apimachinery.pkg.util.intstr.IntOrString", _) => {
            if plain.get("type").and_then(Value::as_i64) == Some(1) {
                plain.get("strVal").cloned().unwrap_or(json!(""))
            } else {
                plain.get("intVal").cloned().unwrap_or(json!(0))
            }
        }
        (_, "Time" | "MicroTime")
            if schema.starts_with("io.k8s.apimachinery.pkg.apis.meta.v1.") =>
        {
            time(
                plain.get("seconds").and_then(Value::as_i64).unwrap_or(0),
                plain.get("nanos").and_then(Value::as_i64).unwrap_or(0),
                short == "MicroTime",
            )
        }
        ("io.k8s.apimachinery.pkg.apis.meta.v1.Duration", _) => {
            json!(go_duration(
                plain.get("duration").and_then(Value::as_i64).unwrap_or(0)
            ))
        }
        ("io.k8s.apimachinery.pkg.runtime.RawExtension", _) => {
            let raw = plain.get("raw").and_then(Value::as_str).unwrap_or("");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(raw)
                .unwrap_or_default();
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        }
        _ => plain,
    })
}

fn plain_message(bytes: &[u8], schema: &str, depth: usize) -> Result<Value, String> {
    let fields = table()
        .get(&schema.to_lowercase())
        .ok_or_else(|| format!("no protobuf description of {schema}"))?;
    let mut object = Map::new();
    let mut reader = Reader { bytes, at: 0 };
    while !reader.done() {
        let key = reader.varint()?;
        let (tag, wire) = (key >> 3, key & 7);
        let Some(field) = fields.iter().find(|f| f.tag == tag) else {
            reader.skip(wire)?;
            continue;
        };
        let name = json_name(schema, &field.rust_name);
        let mut values = Vec::new();
        match (field.kind, wire) {
            (Kind::String, 2) => {
                let n = reader.varint()? as usize;
                let text = std::str::from_utf8(reader.take(n)?)
                    .map_err(|_| format!("{name}: not UTF-8"))?;
                values.push(json!(text));
            }
            (Kind::Bytes, 2) => {
                let n = reader.varint()? as usize;
                values.push(json!(
                    base64::engine::general_purpose::STANDARD.encode(reader.take(n)?)
                ));
            }
            (Kind::Int32 | Kind::Int64 | Kind::Bool, 0) => {
                values.push(scalar(field.kind, reader.varint()?))
            }
            (Kind::Int32 | Kind::Int64 | Kind::Bool, 2) => {
                // Packed repeated scalars.
                let n = reader.varint()? as usize;
                let mut packed = Reader {
                    bytes: reader.take(n)?,
                    at: 0,
                };
                while !packed.done() {
                    values.push(scalar(field.kind, packed.varint()?));
                }
            }
            (Kind::Double, 1) => {
                let raw: [u8; 8] = reader.take(8)?.try_into().expect("8 bytes");
                values.push(json!(f64::from_le_bytes(raw)));
            }
            (Kind::Message, 2) => {
                let n = reader.varint()? as usize;
                let target = field.message.as_deref().unwrap_or_default();
                let value = message(reader.take(n)?, target, depth + 1)?;
                if !field.repeated
                    && inlined(schema, &field.rust_name)
                    && let Value::Object(fields) = value
                {
                    object.extend(fields);
                    continue;
                }
                values.push(value);
            }
            (Kind::MapString | Kind::MapBytes | Kind::MapMessage, 2) => {
                let n = reader.varint()? as usize;
                let mut entry = Reader {
                    bytes: reader.take(n)?,
                    at: 0,
                };
                let (mut key, mut value) = (String::new(), Value::Null);
                while !entry.done() {
                    let k = entry.varint()?;
                    match (k >> 3, k & 7) {
                        (1, 2) => {
                            let n = entry.varint()? as usize;
                            key = String::from_utf8_lossy(entry.take(n)?).into_owned();
                        }
                        (2, 2) => {
                            let n = entry.varint()? as usize;
                            let raw = entry.take(n)?;
                            value = match field.kind {
                                Kind::MapString => json!(String::from_utf8_lossy(raw)),
                                Kind::MapBytes => {
                                    json!(base64::engine::general_purpose::STANDARD.encode(raw))
                                }
                                _ => message(
                                    raw,
                                    field.message.as_deref().unwrap_or_default(),
                                    depth + 1,
                                )?,
                            };
                        }
                        (_, w) => entry.skip(w)?,
                    }
                }
                if value.is_null() {
                    value = match field.kind {
                        Kind::MapMessage => json!({}),
                        _ => json!(""),
                    };
                }
                let map = object.entry(name).or_insert_with(|| json!({}));
                map[key] = value;
                continue;
            }
            (_, w) => {
                reader.skip(w)?;
                continue;
            }
        }
        if field.repeated {
            let list = object.entry(name).or_insert_with(|| json!([]));
            if let Some(list) = list.as_array_mut() {
                list.extend(values);
            }
        } else if let Some(value) = values.pop()
            && !go_zero(schema, field, &name, &value)
        {
            object.insert(name, value);
        }
    }
    Ok(Value::Object(object))
}

/// Whether `value` is the zero value of a plain (non-pointer) Go field,
/// which protobuf clients always send and JSON leaves out: an unset
/// field, not a choice. Empty strings; ObjectMeta's zero generation and
/// creation time; the plain booleans of containers, pod and Service specs.
/// Pointer fields set to zero (`replicas: 0`, `suspend: false`) are kept.
fn go_zero(schema: &str, field: &Field, name: &str, value: &Value) -> bool {
    match (field.kind, value) {
        (Kind::String, Value::String(text)) => text.is_empty(),
        _ => match schema.rsplit('.').next().unwrap_or(schema) {
            "ObjectMeta" => match name {
                "generation" => value == &json!(0),
                "creationTimestamp" => value == &json!("1970-01-01T00:00:00Z"),
                _ => false,
            },
            "Container" | "EphemeralContainer" => {
                matches!(name, "stdin" | "stdinOnce" | "tty") && value == &json!(false)
            }
            "PodSpec" => {
                matches!(name, "hostNetwork" | "hostPID" | "hostIPC") && value == &json!(false)
            }
            "ServiceSpec" => name == "publishNotReadyAddresses" && value == &json!(false),
            _ => false,
        },
    }
}

fn scalar(kind: Kind, raw: u64) -> Value {
    match kind {
        Kind::Bool => json!(raw != 0),
        Kind::Int32 => json!(raw as i64 as i32),
        _ => json!(raw as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn field(tag: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(tag << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    #[test]
    fn a_namespace_as_kubectl_create_namespace_sends_it() {
        let mut meta = Vec::new();
        field(1, b"scratch", &mut meta);
        let mut label = Vec::new();
        field(1, b"team", &mut label);
        field(2, b"edge", &mut label);
        field(11, &label, &mut meta);
        let mut namespace = Vec::new();
        field(1, &meta, &mut namespace);
        let mut type_meta = Vec::new();
        field(1, b"v1", &mut type_meta);
        field(2, b"Namespace", &mut type_meta);
        let mut unknown = Vec::new();
        field(1, &type_meta, &mut unknown);
        field(2, &namespace, &mut unknown);
        let mut body = MAGIC.to_vec();
        body.extend(unknown);
        let object = decode(&body, "io.k8s.api.core.v1.Namespace").unwrap();
        assert_eq!(
            object,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "scratch", "labels": {"team": "edge"}}})
        );
    }

    #[test]
    fn names_and_special_types() {
        assert_eq!(snake("podIPs"), "pod_i_ps");
        assert_eq!(snake("hostIP"), "host_ip");
        assert_eq!(snake("apiVersion"), "api_version");
        assert_eq!(camel("binary_data"), "binaryData");
        assert_eq!(go_duration(3_723_000_000_000), "1h2m3s");
        assert_eq!(
            json_name("io.k8s.api.core.v1.PodStatus", "pod_i_ps"),
            "podIPs"
        );
        // IntOrString as a string.
        let mut ios = Vec::new();
        varint(1 << 3, &mut ios);
        varint(1, &mut ios);
        field(3, b"http", &mut ios);
        assert_eq!(
            message(&ios, "io.k8s.apimachinery.pkg.util.intstr.IntOrString", 0).unwrap(),
            json!("http")
        );
    }

    /// A map of quantities (a quota's `hard`, a container's limits), as
    /// `kubectl create quota` sends one.
    #[test]
    fn maps_of_quantities() {
        let mut quantity = Vec::new();
        field(1, b"5", &mut quantity);
        let mut entry = Vec::new();
        field(1, b"pods", &mut entry);
        field(2, &quantity, &mut entry);
        let mut spec = Vec::new();
        field(1, &entry, &mut spec);
        field(2, b"BestEffort", &mut spec);
        assert_eq!(
            message(&spec, "io.k8s.api.core.v1.ResourceQuotaSpec", 0).unwrap(),
            json!({"hard": {"pods": "5"}, "scopes": ["BestEffort"]})
        );
    }

    /// Go structs embedded in others are fields of their own in protobuf and
    /// inlined in JSON: kubectl debug's pod copy sends them.
    #[test]
    fn embedded_structs_are_inlined() {
        let mut reference = Vec::new();
        field(1, b"cfg", &mut reference);
        let mut selector = Vec::new();
        field(1, &reference, &mut selector);
        field(2, b"a", &mut selector);
        assert_eq!(
            message(&selector, "io.k8s.api.core.v1.ConfigMapKeySelector", 0).unwrap(),
            json!({"name": "cfg", "key": "a"})
        );
        let mut source = Vec::new();
        field(2, &[], &mut source);
        let mut volume = Vec::new();
        field(1, b"data", &mut volume);
        field(2, &source, &mut volume);
        assert_eq!(
            message(&volume, "io.k8s.api.core.v1.Volume", 0).unwrap(),
            json!({"name": "data", "emptyDir": {}})
        );
    }

    #[test]
    fn plain_zero_values_are_unset_pointer_zeros_are_kept() {
        // ObjectMeta{name: "", generateName: "", generation: 0}.
        let mut meta = Vec::new();
        field(1, b"", &mut meta);
        field(2, b"", &mut meta);
        varint(7 << 3, &mut meta);
        varint(0, &mut meta);
        assert_eq!(
            message(&meta, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", 0).unwrap(),
            json!({})
        );
        // Container{name: "c", workingDir: "", stdin: false}, then a DeploymentSpec whose
        // pointer `replicas: 0` is a choice.
        let mut container = Vec::new();
        field(1, b"c", &mut container);
        field(5, b"", &mut container);
        varint(16 << 3, &mut container);
        varint(0, &mut container);
        assert_eq!(
            message(&container, "io.k8s.api.core.v1.Container", 0).unwrap(),
            json!({"name": "c"})
        );
        let mut spec = Vec::new();
        varint(1 << 3, &mut spec);
        varint(0, &mut spec);
        assert_eq!(
            message(&spec, "io.k8s.api.apps.v1.DeploymentSpec", 0).unwrap(),
            json!({"replicas": 0})
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(b"not protobuf", "io.k8s.api.core.v1.Namespace").is_err());
        assert!(decode(b"k8s\0\x0a\xff", "io.k8s.api.core.v1.Namespace").is_err());
    }
}
