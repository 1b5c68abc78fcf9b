//! Reading manifests: multi-document YAML (or JSON) into Kubernetes
//! objects, with errors that name the document and the field, and unknown
//! fields refused as `kubectl`'s strict field validation refuses them.

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// A manifest that cannot be used: which document, and what is wrong
/// (for a field, `Pod "name": spec.containers[0].image: ...`).
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: document {doc}: {message}")]
pub struct Error {
    /// File name (or `-`).
    pub source_name: String,
    /// 1-based document index.
    pub doc: usize,
    /// What is wrong, naming the field where there is one.
    pub message: String,
}

/// One object of a manifest, typed where wasmkube knows the kind.
#[derive(Debug)]
pub enum Object {
    /// A core/v1 Pod.
    Pod(Box<Pod>),
    /// Any other kind, kept as it was written.
    Other {
        /// `apiVersion`.
        api_version: String,
        /// `kind`.
        kind: String,
        /// `metadata.name`, if any.
        name: Option<String>,
    },
}

/// Splits a manifest into its documents and types each one.
pub fn parse(source_name: &str, text: &str) -> Result<Vec<Object>, Error> {
    let mut objects = Vec::new();
    for (idx, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let doc = idx + 1;
        let value = serde_yaml::Value::deserialize(document).map_err(|e| Error {
            source_name: source_name.to_string(),
            doc,
            message: format!("invalid YAML: {e}"),
        })?;
        if value.is_null() {
            continue; // an empty document, as between `---` lines
        }
        let shape = |message: &str| Error {
            source_name: source_name.to_string(),
            doc,
            message: message.to_string(),
        };
        let field_str = |key: &str| value.get(key).and_then(|v| v.as_str()).map(str::to_string);
        let api_version = field_str("apiVersion").ok_or_else(|| shape("apiVersion is not set"))?;
        let kind = field_str("kind").ok_or_else(|| shape("kind is not set"))?;
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .map(str::to_string);
        let typed = match (api_version.as_str(), kind.as_str()) {
            ("v1", "Pod") => Object::Pod(Box::new(typed(
                source_name,
                doc,
                &kind,
                name.as_deref(),
                value,
            )?)),
            _ => Object::Other {
                api_version,
                kind,
                name,
            },
        };
        objects.push(typed);
    }
    Ok(objects)
}

/// Deserialises `value` as `T`, reporting the first type error or unknown
/// field with its path.
fn typed<T: DeserializeOwned>(
    source_name: &str,
    doc: usize,
    kind: &str,
    name: Option<&str>,
    value: serde_yaml::Value,
) -> Result<T, Error> {
    let fail = |message: String| Error {
        source_name: source_name.to_string(),
        doc,
        message: format!(
            "{kind} {}: {message}",
            name.map(|n| format!("{n:?}"))
                .unwrap_or_else(|| "(unnamed)".into())
        ),
    };
    // Decoded as the API server decodes a body (one decoding of each type
    // in the binary, not a second one from YAML).
    let value = serde_json::to_value(&value).map_err(|e| fail(e.to_string()))?;
    let unknown = crate::registry::kinds::decode::<T>(&value).map_err(fail)?;
    if let Some(field) = unknown.into_iter().next() {
        let (parent, leaf) = match field.rsplit_once('.') {
            Some((p, l)) => (p.to_string(), l.to_string()),
            None => (String::new(), field.clone()),
        };
        let at = if parent.is_empty() {
            String::new()
        } else {
            format!(" in {parent}")
        };
        return Err(fail(format!(
            "{field}: unknown field {leaf:?}{at} (strict decoding)"
        )));
    }
    serde_json::from_value(value).map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: toolbox\n";

    #[test]
    fn documents_are_split_and_typed() {
        let text =
            format!("---\n{POD}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: s\n---\n");
        let objects = parse("f.yaml", &text).unwrap();
        assert_eq!(objects.len(), 2);
        assert!(matches!(&objects[0], Object::Pod(p) if p.metadata.name.as_deref() == Some("p")));
        assert!(matches!(&objects[1], Object::Other { kind, .. } if kind == "Service"));
    }

    #[test]
    fn unknown_fields_are_named() {
        let text = POD.replace("image: toolbox", "imagee: toolbox");
        let err = parse("f.yaml", &text).unwrap_err().to_string();
        assert!(err.contains("spec.containers[0].imagee"), "{err}");
        assert!(err.contains("unknown field \"imagee\""), "{err}");
    }

    #[test]
    fn type_errors_are_named() {
        let text = POD.replace("containers:", "containers: 5\n  x:");
        let err = parse("f.yaml", &text).unwrap_err().to_string();
        assert!(
            err.contains("document 1: Pod \"p\": spec.containers"),
            "{err}"
        );
        let text = POD.replace(
            "  - name: c",
            "  - name: c\n    ports:\n    - containerPort: eighty",
        );
        let err = parse("f.yaml", &text).unwrap_err().to_string();
        assert!(
            err.contains("spec.containers[0].ports[0].containerPort"),
            "{err}"
        );
    }

    #[test]
    fn missing_kind_is_an_error() {
        let err = parse("f.yaml", "apiVersion: v1\nmetadata: {}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("kind is not set"), "{err}");
        let err = parse("f.yaml", "a: [\n").unwrap_err().to_string();
        assert!(err.contains("invalid YAML"), "{err}");
    }
}
