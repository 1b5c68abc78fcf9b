//! Metadata the server owns: uid, timestamps, generated names, generation
//! and `managedFields`.

use serde_json::{Map, Value, json};

/// Now as Kubernetes writes times: RFC 3339, seconds, UTC.
pub fn now() -> String {
    timestamp(jiff::Timestamp::now())
}

/// `t` as Kubernetes writes times: RFC 3339 in whole seconds.
pub fn timestamp(t: jiff::Timestamp) -> String {
    jiff::Timestamp::from_second(t.as_second())
        .expect("in range")
        .to_string()
}

/// `generateName` plus five random characters from Kubernetes' alphabet.
pub fn generate_name(base: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let random = uuid::Uuid::new_v4();
    let suffix: String = random.as_bytes()[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    let base = &base[..base.len().min(58)];
    format!("{base}{suffix}")
}

pub fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

pub fn str_at<'a>(object: &'a Value, pointer: &str) -> Option<&'a str> {
    object.pointer(pointer).and_then(Value::as_str)
}

/// The string at `pointer`, empty when absent or not a string.
pub fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    str_at(object, pointer).unwrap_or("")
}

/// The `fieldsV1` set of everything in `value` (for a manager that wrote
/// all of it), skipping what the server owns.
pub fn fields_of(value: &Value) -> Value {
    let mut root = fields(value);
    if let Some(meta) = root.get_mut("f:metadata").and_then(Value::as_object_mut) {
        for owned in [
            "f:uid",
            "f:resourceVersion",
            "f:creationTimestamp",
            "f:generation",
            "f:managedFields",
            "f:namespace",
            "f:name",
            "f:deletionTimestamp",
            "f:deletionGracePeriodSeconds",
        ] {
            meta.remove(owned);
        }
        if meta.is_empty() {
            root.as_object_mut().expect("object").remove("f:metadata");
        }
    }
    if let Some(root) = root.as_object_mut() {
        root.remove("f:apiVersion");
        root.remove("f:kind");
    }
    root
}

/// The fields that differ between `old` and `new` (present in `new`).
pub fn changed_fields(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut out = Map::new();
            for (key, value) in new {
                match old.get(key) {
                    Some(previous) if previous == value => {}
                    Some(previous) if previous.is_object() && value.is_object() => {
                        let inner = changed_fields(previous, value);
                        if inner.as_object().is_some_and(|m| !m.is_empty()) {
                            out.insert(format!("f:{key}"), inner);
                        }
                    }
                    _ => {
                        out.insert(format!("f:{key}"), fields(value));
                    }
                }
            }
            Value::Object(out)
        }
        _ => fields(new),
    }
}

fn fields(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (format!("f:{k}"), fields(v)))
                .collect(),
        ),
        Value::Array(items) => {
            let mut out = Map::new();
            for item in items {
                match item_key(item) {
                    Some(key) => {
                        let mut entry = fields(item);
                        if let Some(entry) = entry.as_object_mut() {
                            entry.insert(".".into(), json!({}));
                        }
                        out.insert(key, entry);
                    }
                    None => {
                        if let Some(v) = item.as_str() {
                            out.insert(format!("v:{}", Value::String(v.into())), json!({}));
                        }
                    }
                }
            }
            Value::Object(out)
        }
        _ => json!({}),
    }
}

/// `k:{"name":"c"}` for list items with a merge key.
fn item_key(item: &Value) -> Option<String> {
    let object = item.as_object()?;
    for key in [
        "name",
        "mountPath",
        "containerPort",
        "port",
        "uid",
        "type",
        "ip",
    ] {
        if let Some(value) = object.get(key) {
            let mut keyed = Map::new();
            keyed.insert(key.into(), value.clone());
            if (key == "containerPort" || key == "port")
                && let Some(protocol) = object.get("protocol")
            {
                keyed.insert("protocol".into(), protocol.clone());
            }
            return Some(format!("k:{}", Value::Object(keyed)));
        }
    }
    None
}

/// Deep union of two `fieldsV1` sets.
fn union(into: &mut Value, other: &Value) {
    if let (Some(into), Some(other)) = (into.as_object_mut(), other.as_object()) {
        for (key, value) in other {
            match into.get_mut(key) {
                Some(existing) => union(existing, value),
                None => {
                    into.insert(key.clone(), value.clone());
                }
            }
        }
    }
}

/// Records that `manager` wrote `fields` by `operation` (`Update` or
/// `Apply`), on `subresource` when it is one.
pub fn record_manager(
    object: &mut Value,
    manager: &str,
    operation: &str,
    subresource: Option<&str>,
    api_version: &str,
    fields: Value,
) {
    let empty = fields.as_object().is_none_or(Map::is_empty);
    let metadata = metadata_mut(object);
    let entries = metadata.entry("managedFields").or_insert_with(|| json!([]));
    if !entries.is_array() {
        *entries = json!([]);
    }
    let entries = entries.as_array_mut().expect("array");
    let position = entries.iter().position(|e| {
        e.get("manager").and_then(Value::as_str) == Some(manager)
            && e.get("operation").and_then(Value::as_str) == Some(operation)
            && e.get("subresource").and_then(Value::as_str) == subresource
    });
    let mut entry = json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": now(),
        "fieldsType": "FieldsV1",
    });
    if let Some(sub) = subresource {
        entry["subresource"] = json!(sub);
    }
    match position {
        Some(i) => {
            let mut merged = entries[i].get("fieldsV1").cloned().unwrap_or(json!({}));
            if operation == "Apply" {
                merged = fields;
            } else {
                union(&mut merged, &fields);
            }
            entry["fieldsV1"] = merged;
            entries[i] = entry;
        }
        None if !empty => {
            entry["fieldsV1"] = fields;
            entries.push(entry);
        }
        None => {}
    }
    if entries.is_empty() {
        metadata.remove("managedFields");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_name_list_items_by_key() {
        let pod = json!({"metadata": {"name": "p", "labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let f = fields_of(&pod);
        assert_eq!(
            f,
            json!({"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:name": {}, "f:image": {}}}}})
        );
    }

    #[test]
    fn managers_accumulate() {
        let mut pod = json!({"metadata": {"name": "p"}});
        record_manager(
            &mut pod,
            "kubectl",
            "Update",
            None,
            "v1",
            json!({"f:spec": {}}),
        );
        record_manager(
            &mut pod,
            "kubelet",
            "Update",
            Some("status"),
            "v1",
            json!({"f:status": {}}),
        );
        record_manager(
            &mut pod,
            "kubectl",
            "Update",
            None,
            "v1",
            json!({"f:metadata": {}}),
        );
        let entries = pod["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0]["fieldsV1"],
            json!({"f:spec": {}, "f:metadata": {}})
        );
        assert_eq!(entries[1]["subresource"], "status");
    }

    #[test]
    fn generated_names_have_five_characters() {
        let name = generate_name("web-");
        assert_eq!(name.len(), 9);
        assert!(name.starts_with("web-"));
    }
}
