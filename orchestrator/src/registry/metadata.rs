//! Metadata the server owns: uid, timestamps, generated names, generation
//! (`managedFields` are [`super::managed`]'s).

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

/// The value at the JSON pointer `pointer`, as `Value::pointer` finds it
/// but without the two strings that makes for every step: controllers
/// read a few fields of every pod on each pass.
pub fn at<'a>(object: &'a Value, pointer: &str) -> Option<&'a Value> {
    if pointer.contains('~') {
        // Escaped steps (`~0`, `~1`) are rare: serde_json decodes them.
        return object.pointer(pointer);
    }
    if pointer.is_empty() {
        return Some(object);
    }
    pointer
        .strip_prefix('/')?
        .split('/')
        .try_fold(object, |value, step| match value {
            Value::Object(map) => map.get(step),
            Value::Array(items) => index(step).and_then(|i| items.get(i)),
            _ => None,
        })
}

/// [`at`] as a method, to call where `Value::pointer` would be.
pub trait At {
    fn at(&self, pointer: &str) -> Option<&Value>;
}

impl At for Value {
    fn at(&self, pointer: &str) -> Option<&Value> {
        at(self, pointer)
    }
}

/// An array index as a JSON pointer writes it: digits, no sign, no
/// leading zero.
fn index(step: &str) -> Option<usize> {
    if step.starts_with('+') || (step.starts_with('0') && step.len() > 1) {
        return None;
    }
    step.parse().ok()
}

pub fn str_at<'a>(object: &'a Value, pointer: &str) -> Option<&'a str> {
    at(object, pointer).and_then(Value::as_str)
}

/// The string at `pointer`, empty when absent or not a string.
pub fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    str_at(object, pointer).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_finds_what_a_json_pointer_names() {
        let object = json!({"a": {"b": [10, {"c": "x"}], "d/e": 1, "f~g": 2, "": 3}});
        for pointer in [
            "",
            "/a",
            "/a/b",
            "/a/b/0",
            "/a/b/1/c",
            "/a/b/01",
            "/a/b/+1",
            "/a/b/2",
            "/a/b/x",
            "/a/d~1e",
            "/a/f~0g",
            "/a/",
            "/a/b/1/c/z",
            "a",
            "/missing",
        ] {
            assert_eq!(at(&object, pointer), object.pointer(pointer), "{pointer}");
        }
    }

    #[test]
    fn generated_names_have_five_characters() {
        let name = generate_name("web-");
        assert_eq!(name.len(), 9);
        assert!(name.starts_with("web-"));
    }
}
