//! `additionalPrinterColumns`: the Table columns a custom resource's
//! version declares, each a JSONPath into the object, and the cells
//! read with them (as the API server's table converter: a `date` column
//! shows an age, a path that finds nothing an empty cell).

use serde_json::{Value, json};

use crate::registry::metadata::text;

/// One declared column.
#[derive(Debug, Clone)]
pub struct PrinterColumn {
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub kind: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    path: Vec<Step>,
}

/// One step of a JSONPath.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
    /// `[?(@.key=="value")]`: the items whose field equals the text.
    Filter(Vec<String>, String),
}

impl PrinterColumn {
    /// Reads one entry of `additionalPrinterColumns`; `Err` says what is
    /// wrong with its JSONPath.
    pub fn parse(entry: &Value) -> Result<PrinterColumn, String> {
        Ok(PrinterColumn {
            name: text(entry, "/name").to_string(),
            kind: text(entry, "/type").to_string(),
            format: text(entry, "/format").to_string(),
            description: text(entry, "/description").to_string(),
            priority: entry.get("priority").and_then(Value::as_i64).unwrap_or(0),
            path: parse_path(text(entry, "/jsonPath"))?,
        })
    }

    /// The columns of a version with none declared: its age.
    pub fn age() -> PrinterColumn {
        PrinterColumn {
            name: "Age".into(),
            kind: "date".into(),
            format: String::new(),
            description: "CreationTimestamp is a timestamp representing the server time when this object was created.".into(),
            priority: 0,
            path: parse_path(".metadata.creationTimestamp").expect("a valid path"),
        }
    }

    /// The column's Table definition.
    pub fn definition(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }

    /// The column's cell for `object`.
    pub fn cell(&self, object: &Value) -> Value {
        let mut found = vec![object];
        for step in &self.path {
            found = found.into_iter().flat_map(|v| step.apply(v)).collect();
        }
        let value = match found.as_slice() {
            [] => return Value::Null,
            [one] => (*one).clone(),
            many => Value::Array(many.iter().map(|v| (*v).clone()).collect()),
        };
        match (self.kind.as_str(), &value) {
            ("date", Value::String(time)) => {
                json!(crate::api::table::age_of(Some(time)))
            }
            ("string", Value::String(_)) | (_, Value::Null) => value,
            ("string", other) => json!(other.to_string()),
            _ => value,
        }
    }
}

impl Step {
    fn apply<'a>(&self, value: &'a Value) -> Vec<&'a Value> {
        match (self, value) {
            (Step::Field(name), Value::Object(fields)) => fields.get(name).into_iter().collect(),
            (Step::Index(i), Value::Array(items)) => items.get(*i).into_iter().collect(),
            (Step::All, Value::Array(items)) => items.iter().collect(),
            (Step::All, Value::Object(fields)) => fields.values().collect(),
            (Step::Filter(key, wanted), Value::Array(items)) => items
                .iter()
                .filter(|item| {
                    let mut at = Some(*item);
                    for field in key {
                        at = at.and_then(|v| v.get(field));
                    }
                    match at {
                        Some(Value::String(s)) => s == wanted,
                        Some(other) => wanted.as_str() == other.to_string().as_str(),
                        None => false,
                    }
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Parses the JSONPath subset CRDs use: `.a.b`, `.a[0]`, `.a[*].b`,
/// `.a[?(@.type=="Ready")].status`, optionally inside `{...}`.
fn parse_path(path: &str) -> Result<Vec<Step>, String> {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path);
    if !path.starts_with('.') && !path.starts_with('[') {
        return Err(format!(
            "{path:?} must be a simple json path starting with ."
        ));
    }
    let mut steps = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let end = after
                .find(']')
                .ok_or_else(|| format!("unclosed [ in {path:?}"))?;
            let inside = &after[..end];
            steps.push(
                bracket(inside).ok_or_else(|| format!("unsupported [{inside}] in {path:?}"))?,
            );
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return Err(format!("empty field name in {path:?}"));
            }
            steps.push(Step::Field(after[..end].to_string()));
            rest = &after[end..];
        } else {
            return Err(format!("unexpected {rest:?} in {path:?}"));
        }
    }
    Ok(steps)
}

fn bracket(inside: &str) -> Option<Step> {
    if inside == "*" {
        return Some(Step::All);
    }
    if let Ok(index) = inside.parse() {
        return Some(Step::Index(index));
    }
    if let Some(quoted) = inside.strip_prefix('\'').and_then(|q| q.strip_suffix('\'')) {
        return Some(Step::Field(quoted.to_string()));
    }
    let filter = inside.strip_prefix("?(@.")?.strip_suffix(')')?;
    let (key, wanted) = filter.split_once("==")?;
    let wanted = wanted.trim();
    let wanted = wanted
        .strip_prefix('"')
        .and_then(|w| w.strip_suffix('"'))
        .or_else(|| wanted.strip_prefix('\'').and_then(|w| w.strip_suffix('\'')))
        .unwrap_or(wanted);
    Some(Step::Filter(
        key.trim().split('.').map(str::to_string).collect(),
        wanted.to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(kind: &str, path: &str) -> PrinterColumn {
        PrinterColumn::parse(&json!({"name": "C", "type": kind, "jsonPath": path})).unwrap()
    }

    #[test]
    fn paths_read_fields_items_and_filtered_conditions() {
        let object = json!({
            "spec": {"replicas": 3, "hosts": ["a", "b"]},
            "status": {"conditions": [
                {"type": "Synced", "status": "False"},
                {"type": "Ready", "status": "True"},
            ]},
        });
        assert_eq!(column("integer", ".spec.replicas").cell(&object), json!(3));
        assert_eq!(column("string", ".spec.hosts[1]").cell(&object), json!("b"));
        assert_eq!(
            column("string", ".status.conditions[?(@.type==\"Ready\")].status").cell(&object),
            json!("True")
        );
        assert_eq!(column("string", ".spec.missing").cell(&object), Value::Null);
        assert_eq!(column("string", ".spec.replicas").cell(&object), json!("3"));
    }

    #[test]
    fn a_path_not_starting_with_a_dot_is_refused() {
        assert!(
            PrinterColumn::parse(&json!({"name": "C", "type": "string", "jsonPath": "spec"}))
                .is_err()
        );
    }
}
