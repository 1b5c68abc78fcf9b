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

pub fn str_at<'a>(object: &'a Value, pointer: &str) -> Option<&'a str> {
    object.pointer(pointer).and_then(Value::as_str)
}

/// The string at `pointer`, empty when absent or not a string.
pub fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    str_at(object, pointer).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_have_five_characters() {
        let name = generate_name("web-");
        assert_eq!(name.len(), 9);
        assert!(name.starts_with("web-"));
    }
}
