//! The structural schema of one version of a custom resource (a CRD's
//! `openAPIV3Schema`), and the three things the API server does with it to
//! every object it stores: prune the fields the schema does not name,
//! apply the schema's defaults, and validate, with the API server's field
//! paths and wording (`spec.replicas: Invalid value: "string":
//! spec.replicas in body must be of type integer: "string"`).
//!
//! A schema is parsed once into [`Structural`]; objects are then walked
//! alongside it. Value-validation keywords inside `allOf`, `anyOf`,
//! `oneOf` and `not` are checked too; they never add fields, as the
//! structural rules require.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::admission::FieldError;

/// Why a schema cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SchemaError {
    /// Where in `openAPIV3Schema` (`openAPIV3Schema.properties[spec].pattern`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// A parsed schema, ready to prune, default and validate objects.
#[derive(Debug, Clone)]
pub struct Structural {
    root: Node,
}

/// One node of the schema.
#[derive(Debug, Clone, Default)]
struct Node {
    /// `object`, `array`, `string`, `integer`, `number` or `boolean`;
    /// `None` only under `x-kubernetes-preserve-unknown-fields` or
    /// `x-kubernetes-int-or-string`.
    kind: Option<String>,
    int_or_string: bool,
    nullable: bool,
    /// Keeps fields no property names (and stops pruning below).
    preserve_unknown: bool,
    /// An object that is a whole Kubernetes object: `apiVersion`, `kind`
    /// and `metadata` are kept.
    embedded_resource: bool,
    properties: BTreeMap<String, Node>,
    /// `additionalProperties` as a schema (maps).
    additional: Option<Box<Node>>,
    items: Option<Box<Node>>,
    default: Option<Value>,
    /// `x-kubernetes-list-type` (`atomic`, `set`, `map`) and the keys of a
    /// `map` list.
    list_type: Option<String>,
    list_map_keys: Vec<String>,
    checks: Checks,
}

/// The value-validation keywords of a node (also of `allOf` and the like).
#[derive(Debug, Clone, Default)]
struct Checks {
    required: Vec<String>,
    enumerated: Option<Vec<Value>>,
    maximum: Option<f64>,
    exclusive_maximum: bool,
    minimum: Option<f64>,
    exclusive_minimum: bool,
    multiple_of: Option<f64>,
    max_length: Option<u64>,
    min_length: Option<u64>,
    pattern: Option<(String, regex::Regex)>,
    max_items: Option<u64>,
    min_items: Option<u64>,
    unique_items: bool,
    max_properties: Option<u64>,
    min_properties: Option<u64>,
    all_of: Vec<Checks>,
    any_of: Vec<Checks>,
    one_of: Vec<Checks>,
    not: Option<Box<Checks>>,
}

impl Structural {
    /// Parses a CRD version's `openAPIV3Schema`.
    pub fn new(schema: &Value) -> Result<Structural, SchemaError> {
        match schema.get("type").and_then(Value::as_str) {
            Some("object") => {}
            None => {
                return Err(schema_error(
                    "openAPIV3Schema.type",
                    "Required value: must not be empty at the root",
                ));
            }
            Some(other) => {
                return Err(schema_error(
                    "openAPIV3Schema.type",
                    format!("Invalid value: {other:?}: must be object at the root"),
                ));
            }
        }
        let root = Node::parse(schema, "openAPIV3Schema")?;
        Ok(Structural { root })
    }

    /// Removes every field the schema does not name (except under
    /// `x-kubernetes-preserve-unknown-fields`), and nulls where a field is
    /// not nullable; `apiVersion`, `kind` and `metadata` of the object stay.
    /// Returns the removed fields' paths, for `fieldValidation` warnings.
    pub fn prune(&self, object: &mut Value) -> Vec<String> {
        let mut removed = Vec::new();
        if let Value::Object(fields) = object {
            prune_object(&self.root, fields, "", true, &mut removed);
        }
        removed
    }

    /// Fills absent fields that have a `default`, from the root down (a
    /// defaulted object gets its own fields' defaults too).
    pub fn apply_defaults(&self, object: &mut Value) {
        apply_defaults(&self.root, object);
    }

    /// Checks the object against the schema: the API server's field errors.
    pub fn validate(&self, object: &Value) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Value::Object(fields) = object {
            self.root.checks.check_object(fields, "", &mut errors);
            // The object's metadata is checked as every kind's is; the
            // schema speaks only of the rest.
            for (name, value) in fields {
                if matches!(name.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                if let Some(node) = self.root.properties.get(name) {
                    node.validate(value, name, &mut errors);
                }
            }
        }
        errors
    }
}

fn schema_error(field: &str, message: impl Into<String>) -> SchemaError {
    SchemaError {
        field: field.to_string(),
        message: message.into(),
    }
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

impl Node {
    fn parse(schema: &Value, at: &str) -> Result<Node, SchemaError> {
        let Some(fields) = schema.as_object() else {
            return Err(schema_error(at, "must be an object"));
        };
        let flag = |name: &str| fields.get(name).and_then(Value::as_bool).unwrap_or(false);
        let kind = fields
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(kind) = &kind
            && !matches!(
                kind.as_str(),
                "object" | "array" | "string" | "integer" | "number" | "boolean"
            )
        {
            return Err(schema_error(
                &format!("{at}.type"),
                format!(
                    "Unsupported value: {kind:?}: supported values: \"array\", \"boolean\", \"integer\", \"number\", \"object\", \"string\""
                ),
            ));
        }
        if kind.is_none()
            && !flag("x-kubernetes-int-or-string")
            && !flag("x-kubernetes-preserve-unknown-fields")
        {
            return Err(schema_error(
                &format!("{at}.type"),
                "Required value: must not be empty for specified object fields",
            ));
        }
        let mut properties = BTreeMap::new();
        if let Some(Value::Object(props)) = fields.get("properties") {
            for (name, sub) in props {
                properties.insert(
                    name.clone(),
                    Node::parse(sub, &format!("{at}.properties[{name}]"))?,
                );
            }
        }
        let additional = match fields.get("additionalProperties") {
            Some(sub @ Value::Object(_)) => Some(Box::new(Node::parse(
                sub,
                &format!("{at}.additionalProperties"),
            )?)),
            _ => None,
        };
        let items = match fields.get("items") {
            Some(sub @ Value::Object(_)) => {
                Some(Box::new(Node::parse(sub, &format!("{at}.items"))?))
            }
            _ => None,
        };
        Ok(Node {
            kind,
            int_or_string: flag("x-kubernetes-int-or-string"),
            nullable: flag("nullable"),
            preserve_unknown: flag("x-kubernetes-preserve-unknown-fields"),
            embedded_resource: flag("x-kubernetes-embedded-resource"),
            properties,
            additional,
            items,
            default: fields.get("default").cloned(),
            list_type: fields
                .get("x-kubernetes-list-type")
                .and_then(Value::as_str)
                .map(str::to_string),
            list_map_keys: fields
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|keys| {
                    keys.iter()
                        .filter_map(|k| k.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            checks: Checks::parse(fields, at)?,
        })
    }

    /// The schema of the value at `name` within an object of this node.
    fn field(&self, name: &str) -> Option<&Node> {
        self.properties.get(name).or(self.additional.as_deref())
    }

    fn validate(&self, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
        if value.is_null() {
            if !self.nullable && (self.kind.is_some() || self.int_or_string) {
                let expected = self.type_name();
                errors.push(type_invalid(path, &expected, "null"));
            }
            return;
        }
        if !self.type_matches(value) {
            errors.push(type_invalid(path, &self.type_name(), json_type(value)));
            return;
        }
        match value {
            Value::Object(fields) => {
                self.checks.check_object(fields, path, errors);
                for (name, sub) in fields {
                    // An embedded object's identity is checked as an
                    // object's, not by the schema.
                    if self.embedded_resource
                        && matches!(name.as_str(), "apiVersion" | "kind" | "metadata")
                    {
                        continue;
                    }
                    if let Some(node) = self.field(name) {
                        node.validate(sub, &child(path, name), errors);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(node) = &self.items {
                    for (i, item) in items.iter().enumerate() {
                        node.validate(item, &format!("{path}[{i}]"), errors);
                    }
                }
                self.check_list_type(items, path, errors);
            }
            _ => {}
        }
        self.checks.check_beyond_object(value, path, errors);
    }

    fn type_name(&self) -> String {
        if self.int_or_string {
            "integer,string".into()
        } else {
            self.kind.clone().unwrap_or_default()
        }
    }

    fn type_matches(&self, value: &Value) -> bool {
        if self.int_or_string {
            return value.is_string() || is_integer(value);
        }
        match self.kind.as_deref() {
            None => true,
            Some("object") => value.is_object(),
            Some("array") => value.is_array(),
            Some("string") => value.is_string(),
            Some("boolean") => value.is_boolean(),
            Some("integer") => is_integer(value),
            Some("number") => value.is_number(),
            Some(_) => false,
        }
    }

    /// `x-kubernetes-list-type: set` items are unique; `map` items are
    /// unique by their keys.
    fn check_list_type(&self, items: &[Value], path: &str, errors: &mut Vec<FieldError>) {
        match self.list_type.as_deref() {
            Some("set") => {
                for (i, item) in items.iter().enumerate() {
                    if items[..i].contains(item) {
                        errors.push(field_error(
                            format!("{path}[{i}]"),
                            format!("Duplicate value: {}", show(item)),
                        ));
                    }
                }
            }
            Some("map") => {
                let key = |item: &Value| -> Vec<Value> {
                    self.list_map_keys
                        .iter()
                        .map(|k| item.get(k).cloned().unwrap_or(Value::Null))
                        .collect()
                };
                for (i, item) in items.iter().enumerate() {
                    let mine = key(item);
                    if items[..i].iter().any(|other| key(other) == mine) {
                        let shown: Map<String, Value> = self
                            .list_map_keys
                            .iter()
                            .cloned()
                            .zip(mine)
                            .filter(|(_, v)| !v.is_null())
                            .collect();
                        errors.push(field_error(
                            format!("{path}[{i}]"),
                            format!("Duplicate value: {}", Value::Object(shown)),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
}

impl Checks {
    fn parse(fields: &Map<String, Value>, at: &str) -> Result<Checks, SchemaError> {
        let number = |name: &str| fields.get(name).and_then(Value::as_f64);
        let count = |name: &str| fields.get(name).and_then(Value::as_u64);
        let pattern = match fields.get("pattern").and_then(Value::as_str) {
            None => None,
            Some(text) => match regex::Regex::new(text) {
                Ok(compiled) => Some((text.to_string(), compiled)),
                Err(e) => {
                    return Err(schema_error(
                        &format!("{at}.pattern"),
                        format!(
                            "Invalid value: {text:?}: must be a valid regular expression, but isn't: {e}"
                        ),
                    ));
                }
            },
        };
        let list = |name: &str| -> Result<Vec<Checks>, SchemaError> {
            match fields.get(name).and_then(Value::as_array) {
                None => Ok(Vec::new()),
                Some(schemas) => schemas
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let at = format!("{at}.{name}[{i}]");
                        match s.as_object() {
                            Some(s) => Checks::parse(s, &at),
                            None => Err(schema_error(&at, "must be an object")),
                        }
                    })
                    .collect(),
            }
        };
        Ok(Checks {
            required: fields
                .get("required")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(|n| n.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            enumerated: fields.get("enum").and_then(Value::as_array).cloned(),
            maximum: number("maximum"),
            exclusive_maximum: fields
                .get("exclusiveMaximum")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            minimum: number("minimum"),
            exclusive_minimum: fields
                .get("exclusiveMinimum")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            multiple_of: number("multipleOf"),
            max_length: count("maxLength"),
            min_length: count("minLength"),
            pattern,
            max_items: count("maxItems"),
            min_items: count("minItems"),
            unique_items: fields
                .get("uniqueItems")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            max_properties: count("maxProperties"),
            min_properties: count("minProperties"),
            all_of: list("allOf")?,
            any_of: list("anyOf")?,
            one_of: list("oneOf")?,
            not: match fields.get("not").and_then(Value::as_object) {
                Some(s) => Some(Box::new(Checks::parse(s, &format!("{at}.not"))?)),
                None => None,
            },
        })
    }

    /// The keywords that apply to `value` (its type already checked).
    fn check(&self, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
        if let Value::Object(fields) = value {
            self.check_object(fields, path, errors);
        }
        self.check_beyond_object(value, path, errors);
    }

    /// Every keyword but the object's own (`required`, property counts),
    /// which the API server checks before an object's fields.
    fn check_beyond_object(&self, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
        match value {
            Value::Object(_) => {}
            Value::Array(items) => {
                let n = items.len() as u64;
                if let Some(max) = self.max_items
                    && n > max
                {
                    errors.push(field_error(
                        path,
                        format!("Too many: {n}: must have at most {max} items"),
                    ));
                }
                if let Some(min) = self.min_items
                    && n < min
                {
                    errors.push(invalid(
                        path,
                        value,
                        format!("{path} in body should have at least {min} items"),
                    ));
                }
                if self.unique_items
                    && items
                        .iter()
                        .enumerate()
                        .any(|(i, item)| items[..i].contains(item))
                {
                    errors.push(invalid(
                        path,
                        value,
                        format!("{path} in body shouldn't contain duplicates"),
                    ));
                }
            }
            Value::String(text) => {
                let n = text.chars().count() as u64;
                if let Some(max) = self.max_length
                    && n > max
                {
                    let unit = if max == 1 { "byte" } else { "bytes" };
                    errors.push(field_error(
                        path,
                        format!("Too long: may not be more than {max} {unit}"),
                    ));
                }
                if let Some(min) = self.min_length
                    && n < min
                {
                    errors.push(invalid(
                        path,
                        value,
                        format!("{path} in body should be at least {min} chars long"),
                    ));
                }
                if let Some((source, pattern)) = &self.pattern
                    && !pattern.is_match(text)
                {
                    errors.push(invalid(
                        path,
                        value,
                        format!("{path} in body should match '{source}'"),
                    ));
                }
            }
            Value::Number(number) => {
                let x = number.as_f64().unwrap_or(0.0);
                if let Some(factor) = self.multiple_of
                    && factor > 0.0
                    && (x / factor).fract().abs() > 1e-9
                {
                    errors.push(invalid(
                        path,
                        value,
                        format!(
                            "{path} in body should be a multiple of {}",
                            show_number(factor)
                        ),
                    ));
                }
                if let Some(max) = self.maximum
                    && (x > max || (self.exclusive_maximum && x == max))
                {
                    let relation = if self.exclusive_maximum {
                        "less than"
                    } else {
                        "less than or equal to"
                    };
                    errors.push(invalid(
                        path,
                        value,
                        format!("{path} in body should be {relation} {}", show_number(max)),
                    ));
                }
                if let Some(min) = self.minimum
                    && (x < min || (self.exclusive_minimum && x == min))
                {
                    let relation = if self.exclusive_minimum {
                        "greater than"
                    } else {
                        "greater than or equal to"
                    };
                    errors.push(invalid(
                        path,
                        value,
                        format!("{path} in body should be {relation} {}", show_number(min)),
                    ));
                }
            }
            _ => {}
        }
        if let Some(allowed) = &self.enumerated
            && !allowed.contains(value)
        {
            let supported: Vec<String> = allowed
                .iter()
                .map(|v| match v {
                    Value::String(s) => format!("{s:?}"),
                    other => format!("{:?}", other.to_string()),
                })
                .collect();
            errors.push(field_error(
                path,
                format!(
                    "Unsupported value: {}: supported values: {}",
                    show(value),
                    supported.join(", ")
                ),
            ));
        }
        self.check_composition(value, path, errors);
    }

    /// `allOf`, `anyOf`, `oneOf` and `not`: their failures are reported
    /// at no field (`<nil>`), as the API server reports them, followed by
    /// the errors of the alternative that came closest.
    fn check_composition(&self, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
        let composite =
            |message: String| field_error("<nil>", format!("Invalid value: \"\": {message}"));
        if !self.all_of.is_empty() {
            let results: Vec<Vec<FieldError>> = self
                .all_of
                .iter()
                .map(|c| c.errors_of(value, path))
                .collect();
            let valid = results.iter().filter(|r| r.is_empty()).count();
            for result in results {
                errors.extend(result);
            }
            if valid != self.all_of.len() {
                let none = if valid == 0 { ". None validated" } else { "" };
                errors.push(composite(format!(
                    "{path:?} must validate all the schemas (allOf){none}"
                )));
            }
        }
        if !self.any_of.is_empty() {
            let results: Vec<Vec<FieldError>> = self
                .any_of
                .iter()
                .map(|c| c.errors_of(value, path))
                .collect();
            if !results.iter().any(Vec::is_empty) {
                errors.push(composite(format!(
                    "{path:?} must validate at least one schema (anyOf)"
                )));
                errors.extend(closest(results));
            }
        }
        if !self.one_of.is_empty() {
            let results: Vec<Vec<FieldError>> = self
                .one_of
                .iter()
                .map(|c| c.errors_of(value, path))
                .collect();
            let valid = results.iter().filter(|r| r.is_empty()).count();
            if valid != 1 {
                let found = if valid == 0 {
                    "Found none valid".to_string()
                } else {
                    format!("Found {valid} valid alternatives")
                };
                errors.push(composite(format!(
                    "{path:?} must validate one and only one schema (oneOf). {found}"
                )));
                if valid == 0 {
                    errors.extend(closest(results));
                }
            }
        }
        if let Some(not) = &self.not
            && not.errors_of(value, path).is_empty()
        {
            errors.push(composite(format!(
                "{path:?} must not validate the schema (not)"
            )));
        }
    }

    fn errors_of(&self, value: &Value, path: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        self.check(value, path, &mut errors);
        errors
    }

    fn check_object(&self, fields: &Map<String, Value>, path: &str, errors: &mut Vec<FieldError>) {
        for name in &self.required {
            if !fields.contains_key(name) {
                errors.push(field_error(child(path, name), "Required value"));
            }
        }
        let n = fields.len() as u64;
        if let Some(max) = self.max_properties
            && n > max
        {
            errors.push(field_error(
                path,
                format!("Too many: {n}: must have at most {max} items"),
            ));
        }
        if let Some(min) = self.min_properties
            && n < min
        {
            errors.push(field_error(
                path,
                format!("Invalid value: {n}: {path} in body should have at least {min} properties"),
            ));
        }
    }
}

/// The errors of the alternative with the fewest.
fn closest(results: Vec<Vec<FieldError>>) -> Vec<FieldError> {
    results.into_iter().min_by_key(Vec::len).unwrap_or_default()
}

fn is_integer(value: &Value) -> bool {
    match value {
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A wrong type, as the API server words it: the value shown is the type
/// the object has.
fn type_invalid(path: &str, expected: &str, found: &str) -> FieldError {
    field_error(
        path,
        format!("Invalid value: {found:?}: {path} in body must be of type {expected}: {found:?}"),
    )
}

fn invalid(path: &str, value: &Value, why: String) -> FieldError {
    field_error(path, format!("Invalid value: {}: {why}", show(value)))
}

fn field_error(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// A value in an error: strings quoted, numbers and booleans as written,
/// the rest as JSON.
fn show(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn show_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        x.to_string()
    }
}

/// Prunes `fields` of an object whose schema is `node`; `root` keeps the
/// object's `apiVersion`, `kind` and `metadata`.
fn prune_object(
    node: &Node,
    fields: &mut Map<String, Value>,
    path: &str,
    root: bool,
    removed: &mut Vec<String>,
) {
    let keeps_identity = root || node.embedded_resource;
    fields.retain(|name, value| {
        if keeps_identity && matches!(name.as_str(), "apiVersion" | "kind" | "metadata") {
            return true;
        }
        let Some(sub) = node.field(name) else {
            if node.preserve_unknown {
                return true;
            }
            removed.push(child(path, name));
            return false;
        };
        // A null where null is not allowed is dropped, so a default can
        // take its place.
        if value.is_null() && !sub.nullable && sub.default.is_some() {
            return false;
        }
        prune_value(sub, value, &child(path, name), removed);
        true
    });
}

fn prune_value(node: &Node, value: &mut Value, path: &str, removed: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            if node.properties.is_empty() && node.additional.is_none() {
                if !node.preserve_unknown && node.kind.as_deref() == Some("object") {
                    removed.extend(fields.keys().map(|k| child(path, k)));
                    fields.clear();
                }
                return;
            }
            prune_object(node, fields, path, false, removed);
        }
        Value::Array(items) => {
            if let Some(item) = &node.items {
                for (i, value) in items.iter_mut().enumerate() {
                    prune_value(item, value, &format!("{path}[{i}]"), removed);
                }
            }
        }
        _ => {}
    }
}

fn apply_defaults(node: &Node, value: &mut Value) {
    match value {
        Value::Object(fields) => {
            for (name, sub) in &node.properties {
                if let Some(default) = &sub.default
                    && !fields.contains_key(name)
                {
                    fields.insert(name.clone(), default.clone());
                }
            }
            for (name, sub) in fields.iter_mut() {
                if let Some(node) = node.field(name) {
                    apply_defaults(node, sub);
                }
            }
        }
        Value::Array(items) => {
            if let Some(node) = &node.items {
                for item in items {
                    apply_defaults(node, item);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
