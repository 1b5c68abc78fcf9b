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
//!
//! Lists are matched through hash maps keyed by each item's identity (its
//! merge key, or the value itself), so the work grows with the size of the
//! lists, not with their product: a patch of a hundred thousand items is
//! as cheap to refuse or apply as to read.

use std::collections::{HashMap, HashSet};

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
        let keys: HashSet<String> = string_list(keys, RETAIN_KEYS)?.into_iter().collect();
        original.retain(|k, _| keys.contains(k));
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
                let remove: HashSet<String> = remove.iter().map(identity).collect();
                items.retain(|item| !remove.contains(&identity(item)));
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
            let text = |key: &str| schema.and_then(|s| s.get(key)).and_then(Value::as_str);
            // A list type (a custom resource's schema) merges as the patch
            // strategy that means the same: a set, or a map by its key.
            let list_type = text("x-kubernetes-list-type");
            let list_key = schema
                .and_then(|s| s.get("x-kubernetes-list-map-keys"))
                .and_then(|k| k.get(0))
                .and_then(Value::as_str);
            let strategy = match (text("x-kubernetes-patch-strategy"), list_type) {
                (Some(strategy), _) => strategy,
                (None, Some("set" | "map")) => "merge",
                (None, _) => "",
            };
            let item_schema = schema.and_then(|s| schema::resolve(s).get("items"));
            if !strategy.split(',').any(|s| s == "merge") {
                return Ok(Some(Value::Array(
                    items
                        .iter()
                        .map(|i| clean(i, item_schema))
                        .collect::<Result<_, _>>()?,
                )));
            }
            let merge_key = text("x-kubernetes-patch-merge-key").or(list_key);
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
    let Some(key) = merge_key else {
        // A set of primitives: union, in order.
        let mut result = original.cloned().unwrap_or_default();
        let mut seen: HashSet<String> = result.iter().map(identity).collect();
        for item in patch {
            if item.is_object() {
                return Err(format!(
                    "cannot merge {item} into a list of primitive values"
                ));
            }
            if seen.insert(identity(item)) {
                result.push(item.clone());
            }
        }
        return Ok(result);
    };
    // Items in their places (`None` once deleted), and where each merge
    // key stands.
    let mut slots: Vec<Option<Value>> = original
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(Some)
        .collect();
    let mut places: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, item) in slots.iter().enumerate() {
        if let Some(id) = item.as_ref().and_then(|item| item.get(key)) {
            places.entry(identity(id)).or_default().push(i);
        }
    }
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
        let id = identity(id);
        if object.get(PATCH).and_then(Value::as_str) == Some("delete") {
            for i in places.remove(&id).unwrap_or_default() {
                slots[i] = None;
            }
            continue;
        }
        match places.get(&id).and_then(|at| at.first()) {
            Some(&i) => {
                let base = slots[i]
                    .take()
                    .and_then(|v| match v {
                        Value::Object(map) => Some(map),
                        _ => None,
                    })
                    .unwrap_or_default();
                slots[i] = Some(Value::Object(merge_map(base, object, item_schema)?));
            }
            None => {
                places.entry(id).or_default().push(slots.len());
                slots.push(Some(Value::Object(merge_map(
                    Map::new(),
                    object,
                    item_schema,
                )?)));
            }
        }
    }
    Ok(slots.into_iter().flatten().collect())
}

/// What an item is known by in a list: its merge key's value, or the item
/// itself, as text (JSON values do not hash).
fn identity(value: &Value) -> String {
    value.to_string()
}

/// Orders `items` as `order` lists them (by merge key, or by value for
/// primitives); items `order` does not name keep their relative order after.
fn reorder(items: &mut [Value], order: &[Value], merge_key: Option<&str>) {
    let known_by = |item: &Value| -> String {
        match merge_key {
            Some(key) => item
                .get(key)
                .map_or_else(|| identity(&Value::Null), identity),
            None => identity(item),
        }
    };
    let mut rank: HashMap<String, usize> = HashMap::new();
    for (i, wanted) in order.iter().enumerate() {
        rank.entry(known_by(wanted)).or_insert(i);
    }
    // A stable sort: items `order` does not name keep their order, last.
    items.sort_by_cached_key(|item| rank.get(&known_by(item)).copied().unwrap_or(usize::MAX));
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
