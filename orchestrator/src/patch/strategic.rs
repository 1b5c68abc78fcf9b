//! Strategic merge patch, as the Kubernetes API server applies it.
//!
//! A JSON merge patch, except that lists whose schema says
//! `x-kubernetes-patch-strategy: merge` are merged element by element
//! (by `x-kubernetes-patch-merge-key`, or as a set for primitive lists),
//! and the directives kubectl sends are honoured:
//!
//! - `$patch: replace | delete | merge` on a map or list element;
//! - `$retainKeys: [..]` keeps only the listed keys of the original map;
//! - `$deleteFromPrimitiveList/<field>: [..]` removes values from a set;
//! - `$setElementOrder/<field>: [..]` orders the merged list.
//!
//! Which lists merge comes from the OpenAPI schema ([`crate::schema`]), so
//! the rules are Kubernetes' own for each field.

use serde_json::{Map, Value};

use crate::schema;

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

/// Applies `patch` to `original`; `schema` is the original's kind schema
/// (without one, every list is replaced, as a merge patch does).
pub fn strategic_merge(
    original: &Value,
    patch: &Value,
    schema: Option<&Value>,
) -> Result<Value, String> {
    let Value::Object(patch) = patch else {
        return Err("a strategic merge patch must be a JSON object".into());
    };
    let base = original.as_object().cloned().unwrap_or_default();
    Ok(Value::Object(merge_map(base, patch, schema)?))
}

fn merge_map(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    schema: Option<&Value>,
) -> Result<Map<String, Value>, String> {
    match patch.get(PATCH).map(|d| d.as_str()) {
        None | Some(Some("merge")) => {}
        Some(Some("replace")) => {
            let mut replaced = Map::new();
            return merge_map_into(&mut replaced, patch, schema).map(|()| replaced);
        }
        Some(Some("delete")) => return Ok(Map::new()),
        Some(other) => {
            return Err(format!(
                "Unknown patch type: {}",
                other.unwrap_or("(not a string)")
            ));
        }
    }
    if let Some(keys) = patch.get(RETAIN_KEYS) {
        let keys = string_list(keys, RETAIN_KEYS)?;
        original.retain(|k, _| keys.iter().any(|x| x == k));
    }
    merge_map_into(&mut original, patch, schema)?;
    Ok(original)
}

/// Merges every non-directive key of `patch` into `target`, then applies
/// the list directives.
fn merge_map_into(
    target: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    schema: Option<&Value>,
) -> Result<(), String> {
    for (key, value) in patch {
        if key == PATCH || key == RETAIN_KEYS || key.starts_with(SET_ELEMENT_ORDER) {
            continue;
        }
        if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let remove = value
                .as_array()
                .ok_or_else(|| format!("{key} must be a list"))?;
            if let Some(Value::Array(items)) = target.get_mut(field) {
                items.retain(|item| !remove.contains(item));
            }
            continue;
        }
        if value.is_null() {
            target.remove(key);
            continue;
        }
        let field_schema = schema.and_then(|s| schema::field(s, key));
        match merge_value(target.get(key), value, field_schema)? {
            Some(merged) => {
                target.insert(key.clone(), merged);
            }
            None => {
                target.remove(key);
            }
        }
    }
    for (key, order) in patch {
        if let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) {
            let order = order
                .as_array()
                .ok_or_else(|| format!("{key} must be a list"))?;
            let merge_key = schema
                .and_then(|s| schema::field(s, field))
                .and_then(|f| f.get("x-kubernetes-patch-merge-key"))
                .and_then(Value::as_str);
            if let Some(Value::Array(items)) = target.get_mut(field) {
                reorder(items, order, merge_key);
            }
        }
    }
    Ok(())
}

/// The merged value of one field, `None` to delete it.
fn merge_value(
    original: Option<&Value>,
    patch: &Value,
    schema: Option<&Value>,
) -> Result<Option<Value>, String> {
    match patch {
        Value::Object(p) => {
            if p.get(PATCH).and_then(Value::as_str) == Some("delete") {
                return Ok(None);
            }
            let base = original
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            Ok(Some(Value::Object(merge_map(base, p, schema)?)))
        }
        Value::Array(items) => {
            let strategy = schema
                .and_then(|s| s.get("x-kubernetes-patch-strategy"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let item_schema = schema.and_then(|s| schema::resolve(s).get("items"));
            if !strategy.split(',').any(|s| s == "merge") {
                return Ok(Some(Value::Array(
                    items
                        .iter()
                        .map(|i| clean(i, item_schema))
                        .collect::<Result<_, _>>()?,
                )));
            }
            let merge_key = schema
                .and_then(|s| s.get("x-kubernetes-patch-merge-key"))
                .and_then(Value::as_str);
            let original = original.and_then(Value::as_array);
            Ok(Some(Value::Array(merge_list(
                original,
                items,
                merge_key,
                item_schema,
            )?)))
        }
        other => Ok(Some(other.clone())),
    }
}

/// A patch value placed where nothing was: its directives resolved.
fn clean(value: &Value, schema: Option<&Value>) -> Result<Value, String> {
    match value {
        Value::Object(map) => Ok(Value::Object(merge_map(Map::new(), map, schema)?)),
        other => Ok(other.clone()),
    }
}

fn merge_list(
    original: Option<&Vec<Value>>,
    patch: &[Value],
    merge_key: Option<&str>,
    item_schema: Option<&Value>,
) -> Result<Vec<Value>, String> {
    let is_replace = |item: &Value| item.get(PATCH).and_then(Value::as_str) == Some("replace");
    if patch.iter().any(is_replace) {
        return patch
            .iter()
            .filter(|i| !is_replace(i))
            .map(|i| clean(i, item_schema))
            .collect();
    }
    let mut result = original.cloned().unwrap_or_default();
    let Some(key) = merge_key else {
        // A set of primitives: union, in order.
        for item in patch {
            if item.is_object() {
                return Err(format!(
                    "cannot merge {item} into a list of primitive values"
                ));
            }
            if !result.contains(item) {
                result.push(item.clone());
            }
        }
        return Ok(result);
    };
    for item in patch {
        let Some(object) = item.as_object() else {
            return Err(format!(
                "list items must be objects with merge key {key:?}, got {item}"
            ));
        };
        let Some(id) = object.get(key) else {
            return Err(format!(
                "map: {item} does not contain declared merge key: {key}"
            ));
        };
        let position = result.iter().position(|r| r.get(key) == Some(id));
        if object.get(PATCH).and_then(Value::as_str) == Some("delete") {
            result.retain(|r| r.get(key) != Some(id));
            continue;
        }
        match position {
            Some(i) => {
                let base = result[i].as_object().cloned().unwrap_or_default();
                result[i] = Value::Object(merge_map(base, object, item_schema)?);
            }
            None => result.push(Value::Object(merge_map(Map::new(), object, item_schema)?)),
        }
    }
    Ok(result)
}

/// Orders `items` as `order` lists them (by merge key, or by value for
/// primitives); items `order` does not name keep their relative order after.
fn reorder(items: &mut [Value], order: &[Value], merge_key: Option<&str>) {
    let identity = |item: &Value| -> Value {
        match merge_key {
            Some(key) => item.get(key).cloned().unwrap_or(Value::Null),
            None => item.clone(),
        }
    };
    let wanted: Vec<Value> = order.iter().map(&identity).collect();
    let rank = |item: &Value| {
        wanted
            .iter()
            .position(|w| *w == identity(item))
            .unwrap_or(usize::MAX)
    };
    items.sort_by_key(|item| rank(item));
}

fn string_list(value: &Value, directive: &str) -> Result<Vec<String>, String> {
    value
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect()
        })
        .ok_or_else(|| format!("{directive} must be a list of strings"))
}

#[cfg(test)]
mod tests;
