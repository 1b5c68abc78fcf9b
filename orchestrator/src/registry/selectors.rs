//! Label and field selectors, with Kubernetes' syntax and errors.

use std::collections::BTreeMap;

use crate::registry::metadata::At;
use serde_json::Value;

/// One label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    /// `key>N` / `key<N`: the label's integer value compared.
    Greater(String, i64),
    Less(String, i64),
}

/// The selector of a workload at `pointer` as a `metav1.LabelSelector`: a
/// ReplicationController's plain label map becomes its `matchLabels`.
pub fn workload_selector(object: &Value, pointer: &str) -> Option<Value> {
    let selector = object.at(pointer)?;
    Some(
        if object.get("kind").and_then(Value::as_str) == Some("ReplicationController") {
            serde_json::json!({"matchLabels": selector})
        } else {
            selector.clone()
        },
    )
}

/// A `metav1.LabelSelector` object as selector text (`app=web,tier in
/// (a,b),!canary`), as kubectl prints it; `empty` when it selects all.
pub fn format_selector(selector: Option<&Value>, empty: &str) -> String {
    let mut parts = Vec::new();
    let Some(selector) = selector else {
        return empty.to_string();
    };
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (key, value) in labels {
            parts.push(format!("{key}={}", value.as_str().unwrap_or_default()));
        }
    }
    let expressions = selector.get("matchExpressions").and_then(Value::as_array);
    for expression in expressions.into_iter().flatten() {
        let key = expression.get("key").and_then(Value::as_str).unwrap_or("");
        let values: Vec<&str> = expression
            .get("values")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let op = expression
            .get("operator")
            .and_then(Value::as_str)
            .unwrap_or("");
        parts.push(match op {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other} ({})", values.join(",")),
        });
    }
    if parts.is_empty() {
        empty.to_string()
    } else {
        parts.join(",")
    }
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    /// Parses `app=web,tier in (a,b),!canary`.
    pub fn parse(text: &str) -> Result<LabelSelector, String> {
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            requirements.push(
                parse_requirement(part).map_err(|e| format!("unable to parse requirement: {e}"))?,
            );
        }
        Ok(LabelSelector(requirements))
    }

    /// A selector from `matchLabels`-style pairs.
    pub fn from_map(labels: &BTreeMap<String, String>) -> LabelSelector {
        LabelSelector(
            labels
                .iter()
                .map(|(k, v)| Requirement::In(k.clone(), vec![v.clone()]))
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A selector from a `metav1.LabelSelector` object (`matchLabels` and
    /// `matchExpressions`); `None` or `{}` selects everything.
    pub fn from_object(selector: Option<&Value>) -> Result<LabelSelector, String> {
        LabelSelector::parse(&format_selector(selector, ""))
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.at("/metadata/labels").and_then(Value::as_object);
        self.matches_labels(|key| labels.and_then(|l| l.get(key)).and_then(Value::as_str))
    }

    /// Whether the labels `get` looks up satisfy every requirement.
    pub fn matches_labels<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
            Requirement::In(k, values) => get(k).is_some_and(|v| values.iter().any(|x| x == v)),
            Requirement::NotIn(k, values) => get(k).is_none_or(|v| !values.iter().any(|x| x == v)),
            Requirement::Greater(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            Requirement::Less(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        })
    }
}

/// Splits on commas outside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn check_key(key: &str) -> Result<String, String> {
    let key = key.trim();
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let prefix_ok = prefix.is_none_or(|p| !p.is_empty() && p.len() <= 253);
    if name_ok && prefix_ok {
        Ok(key.to_string())
    } else {
        Err(format!(
            "{key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', \
             and must start and end with an alphanumeric character"
        ))
    }
}

fn check_value(value: &str) -> Result<String, String> {
    let value = value.trim();
    let ok = value.is_empty()
        || (value.len() <= 63
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()));
    if ok {
        Ok(value.to_string())
    } else {
        Err(format!(
            "{value:?}: a valid label must be an empty string or consist of alphanumeric \
             characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ))
    }
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::NotExists(check_key(key)?));
    }
    for (op, negate) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((key, value)) = part.split_once(op) {
            let key = check_key(key)?;
            let value = check_value(value)?;
            return Ok(if negate {
                Requirement::NotIn(key, vec![value])
            } else {
                Requirement::In(key, vec![value])
            });
        }
    }
    for (op, greater) in [(">", true), ("<", false)] {
        if let Some((key, value)) = part.split_once(op) {
            let key = check_key(key)?;
            let n = value.trim().parse::<i64>().map_err(|_| {
                format!("for 'Gt', 'Lt' operators, the value must be an integer: {value:?}")
            })?;
            return Ok(if greater {
                Requirement::Greater(key, n)
            } else {
                Requirement::Less(key, n)
            });
        }
    }
    let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
    if words.len() == 2 {
        let key = check_key(words[0])?;
        let rest = words[1].trim();
        for (op, negate) in [("notin", true), ("in", false)] {
            if let Some(set) = rest.strip_prefix(op) {
                let set = set.trim();
                let inner = set
                    .strip_prefix('(')
                    .and_then(|s| s.strip_suffix(')'))
                    .ok_or_else(|| format!("found '{set}', expected: '('"))?;
                let values = inner
                    .split(',')
                    .map(check_value)
                    .collect::<Result<Vec<_>, _>>()?;
                if values.iter().all(String::is_empty) {
                    return Err(format!(
                        "{part:?}: for 'in', 'notin' operators, values set can't be empty"
                    ));
                }
                return Ok(if negate {
                    Requirement::NotIn(key, values)
                } else {
                    Requirement::In(key, values)
                });
            }
        }
        return Err(format!(
            "found '{rest}', expected: in, notin, =, ==, !=, gt, lt"
        ));
    }
    Ok(Requirement::Exists(check_key(part)?))
}

/// A parsed field selector: `metadata.name=x,status.phase!=Running`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses and checks every field against what the resource supports.
    pub fn parse(text: &str, supported: &[&str]) -> Result<FieldSelector, String> {
        let mut terms = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{text}'; can't understand '{part}'"
                ));
            };
            let field = field.trim();
            if !["metadata.name", "metadata.namespace"].contains(&field)
                && !supported.contains(&field)
            {
                return Err(format!("field label not supported: {field}"));
            }
            terms.push((field.to_string(), equal, value.trim().to_string()));
        }
        Ok(FieldSelector(terms))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether every term holds; a field the object lacks reads as "".
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let actual = field_value(object, field);
            (actual == *value) == *equal
        })
    }

    /// Whether `object` meets the terms on fields no change can alter (its
    /// name and namespace): one that does not was never selected.
    pub fn matches_identity(&self, object: &Value) -> bool {
        self.0
            .iter()
            .filter(|(field, _, _)| {
                matches!(field.as_str(), "metadata.name" | "metadata.namespace")
            })
            .all(|(field, equal, value)| (field_value(object, field) == *value) == *equal)
    }

    /// The value a term requires of `field`, if the selector pins it.
    pub fn required(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, equal, _)| f == field && *equal)
            .map(|(_, _, v)| v.as_str())
    }
}

/// The string value of a dotted field path, as Kubernetes' field sets
/// present it.
fn field_value(object: &Value, field: &str) -> String {
    let path = match field {
        "source" => "source.component",
        other => other,
    };
    let pointer = format!("/{}", path.replace('.', "/"));
    match object.at(&pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn labelled(labels: Value) -> Value {
        json!({"metadata": {"labels": labels}})
    }

    #[test]
    fn label_selector_syntax() {
        let web = labelled(json!({"app": "web", "tier": "front"}));
        let db = labelled(json!({"app": "db"}));
        let cases = [
            ("app=web", true, false),
            ("app==web", true, false),
            ("app!=web", false, true),
            ("app in (web, db)", true, true),
            ("app notin (web)", false, true),
            ("tier", true, false),
            ("!tier", false, true),
            ("app in (web),tier=front", true, false),
            ("", true, true),
        ];
        for (text, on_web, on_db) in cases {
            let selector = LabelSelector::parse(text).unwrap();
            assert_eq!(selector.matches(&web), on_web, "{text} on web");
            assert_eq!(selector.matches(&db), on_db, "{text} on db");
        }
    }

    #[test]
    fn bad_label_selectors_say_why() {
        for text in ["app in web", "a b", "-x=y", "app=in valid"] {
            let err = LabelSelector::parse(text).unwrap_err();
            assert!(
                err.starts_with("unable to parse requirement"),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn field_selectors() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let supported = ["spec.nodeName", "status.phase"];
        let s = FieldSelector::parse("metadata.name=p,status.phase!=Failed", &supported).unwrap();
        assert!(s.matches(&pod));
        let s = FieldSelector::parse("spec.nodeName=", &supported).unwrap();
        assert!(!s.matches(&pod));
        let err = FieldSelector::parse("spec.host=x", &supported).unwrap_err();
        assert_eq!(err, "field label not supported: spec.host");
    }
}
