//! The four patch types of the Kubernetes API: JSON patch (RFC 6902), JSON
//! merge patch (RFC 7396), strategic merge patch and server-side apply.

mod strategic;

use serde_json::Value;

pub use strategic::strategic_merge;

/// A patch's `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    /// Server-side apply (`application/apply-patch+yaml`).
    Apply,
}

impl PatchKind {
    /// The patch type of a `Content-Type` header (parameters ignored).
    pub fn from_content_type(content_type: &str) -> Option<PatchKind> {
        match content_type.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchKind::Apply)
            }
            _ => None,
        }
    }
}

/// Reads a patch body (YAML for apply, JSON otherwise).
pub fn parse(kind: PatchKind, body: &[u8]) -> Result<Value, String> {
    let value: Value = match kind {
        PatchKind::Apply => {
            serde_yaml::from_slice(body).map_err(|e| format!("error decoding YAML: {e}"))?
        }
        _ => serde_json::from_slice(body).map_err(|e| format!("error decoding patch: {e}"))?,
    };
    match (kind, &value) {
        (PatchKind::Json, Value::Array(_)) => Ok(value),
        (PatchKind::Json, _) => {
            Err("json: cannot unmarshal object into Go value of type jsonpatch.Patch".into())
        }
        (_, Value::Object(_)) => Ok(value),
        _ => Err("patch body must be a JSON object".into()),
    }
}

/// Applies a parsed patch to `current`, whose kind has OpenAPI schema
/// `schema` (used by strategic merge and apply).
pub fn apply(
    kind: PatchKind,
    current: &Value,
    patch: &Value,
    schema: &str,
) -> Result<Value, String> {
    match kind {
        PatchKind::Json => {
            let operations: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| format!("invalid JSON patch: {e}"))?;
            let mut doc = current.clone();
            json_patch::patch(&mut doc, &operations).map_err(|e| e.to_string())?;
            Ok(doc)
        }
        PatchKind::Merge => {
            let mut doc = current.clone();
            json_patch::merge(&mut doc, patch);
            Ok(doc)
        }
        PatchKind::Strategic | PatchKind::Apply => {
            let schema = crate::schema::named(schema);
            strategic_merge(current, patch, schema)
        }
    }
}
