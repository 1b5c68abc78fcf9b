//! What every object's metadata must be, whatever its kind: label keys
//! and values, annotation keys and their total size, with the API server's
//! rules and wording.

use serde_json::Value;

use super::{DNS_SUBDOMAIN_MSG, Errors, label_ok};

/// The most bytes all of an object's annotations (keys and values) take.
pub const MAX_ANNOTATION_BYTES: usize = 256 * 1024;

const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const SUBDOMAIN_REGEX: &str = "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*'";

/// Checks `metadata.labels` and `metadata.annotations` of `object`.
pub(crate) fn check(errors: &mut Errors, object: &Value) {
    let entries = |field: &str| {
        object
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
    };
    for (key, value) in entries("labels") {
        for why in qualified_name(key) {
            errors.invalid("metadata.labels", key, &why);
        }
        let value = value.as_str().unwrap_or_default();
        for why in label_value(value) {
            errors.invalid("metadata.labels", value, why);
        }
    }
    let mut size = 0;
    for (key, value) in entries("annotations") {
        // Annotation keys are qualified names in any case.
        for why in qualified_name(&key.to_lowercase()) {
            errors.invalid("metadata.annotations", key, &why);
        }
        size += key.len() + value.as_str().map_or(0, str::len);
    }
    if size > MAX_ANNOTATION_BYTES {
        errors.push(
            "metadata.annotations",
            format!("Too long: must have at most {MAX_ANNOTATION_BYTES} bytes"),
        );
    }
}

/// What is wrong with `text` as a qualified name (`[prefix/]name`: label
/// and annotation keys, provisioners), each a sentence of the API server's.
pub(crate) fn qualified_name(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let parts: Vec<&str> = text.split('/').collect();
    let name = match parts[..] {
        [name] => name,
        [prefix, name] => {
            if prefix.is_empty() {
                problems.push("prefix part must be non-empty".to_string());
            } else {
                if prefix.len() > 253 {
                    problems.push("prefix part must be no more than 253 characters".into());
                }
                if !prefix.split('.').all(label_ok) {
                    problems.push(format!(
                        "prefix part {}, {SUBDOMAIN_REGEX})",
                        DNS_SUBDOMAIN_MSG.trim_end_matches(')')
                    ));
                }
            }
            name
        }
        _ => {
            return vec![format!(
                "a qualified name {QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )];
        }
    };
    if name.is_empty() {
        problems.push("name part must be non-empty".into());
    } else if name.len() > 63 {
        problems.push("name part must be no more than 63 characters".into());
    }
    if !name_ok(name) {
        problems.push(format!("name part {QUALIFIED_NAME_MSG}"));
    }
    problems
}

/// What is wrong with `value` as a label value.
fn label_value(value: &str) -> Vec<&'static str> {
    let mut problems = Vec::new();
    if value.len() > 63 {
        problems.push("must be no more than 63 characters");
    }
    if !value.is_empty() && !name_ok(value) {
        problems.push(LABEL_VALUE_MSG);
    }
    problems
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
fn name_ok(name: &str) -> bool {
    name.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(object: Value) -> Vec<String> {
        let mut errors = Errors::default();
        check(&mut errors, &object);
        match errors.into_result("ConfigMap", "x") {
            Ok(()) => Vec::new(),
            Err(invalid) => invalid.errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn good_labels_and_annotations_pass() {
        assert!(
            problems(json!({"metadata": {
                "labels": {"app": "web", "app.kubernetes.io/name": "My_App.1", "empty": ""},
                "annotations": {"Example.COM/Note": "anything at all: spaces, too"},
            }}))
            .is_empty()
        );
    }

    #[test]
    fn bad_label_keys_and_values_are_named() {
        let found = problems(json!({"metadata": {"labels": {
            "a b": "ok",
            "key": "bad value",
            "x/y/z": "v",
            "Example.com/k": "v",
            "/k": "v",
            "long": "v".repeat(64),
        }}}));
        let expect = [
            "metadata.labels: Invalid value: \"a b\": name part must consist of alphanumeric characters",
            "metadata.labels: Invalid value: \"bad value\": a valid label must be an empty string",
            "metadata.labels: Invalid value: \"x/y/z\": a qualified name must consist",
            "metadata.labels: Invalid value: \"Example.com/k\": prefix part a lowercase RFC 1123 subdomain",
            "metadata.labels: Invalid value: \"/k\": prefix part must be non-empty",
            "must be no more than 63 characters",
        ];
        for e in expect {
            assert!(
                found.iter().any(|f| f.contains(e)),
                "{e:?} not among {found:#?}"
            );
        }
        assert_eq!(found.len(), 6, "{found:#?}");
    }

    #[test]
    fn annotations_total_at_most_256_kib() {
        let big = "x".repeat(MAX_ANNOTATION_BYTES);
        assert_eq!(
            problems(json!({"metadata": {"annotations": {"a": big}}})),
            ["metadata.annotations: Too long: must have at most 262144 bytes"]
        );
        let fits = "x".repeat(MAX_ANNOTATION_BYTES - 1);
        assert!(problems(json!({"metadata": {"annotations": {"a": fits}}})).is_empty());
    }
}
