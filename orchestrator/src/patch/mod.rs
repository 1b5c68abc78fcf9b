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

/// The most operations one JSON patch may hold, as the API server allows.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// The most bytes the `copy` operations of one JSON patch may copy in all,
/// as the API server allows (its request body limit): each copy can
/// double the document, so without a bound a few hundred bytes of patch
/// outgrow any memory.
pub const MAX_JSON_PATCH_COPY_BYTES: usize = 3 * 1024 * 1024;

/// Why a patch was not applied.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The body is not a patch of its type.
    #[error("{0}")]
    Decode(String),
    /// More operations than [`MAX_JSON_PATCH_OPERATIONS`].
    #[error(
        "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {0}"
    )]
    TooManyOperations(usize),
    /// The copies would add more than [`MAX_JSON_PATCH_COPY_BYTES`].
    #[error(
        "the JSON patch's copy operations would copy more than {MAX_JSON_PATCH_COPY_BYTES} bytes in all (operation {operation} is where the limit was passed)"
    )]
    CopyLimit { operation: usize },
    /// The patch does not apply to the object (a failed `test`, a path
    /// that is not there, a strategic merge directive that does not fit).
    #[error("{0}")]
    Apply(String),
}

/// Reads a patch body (YAML for apply, JSON otherwise).
pub fn parse(kind: PatchKind, body: &[u8]) -> Result<Value, Error> {
    let value: Value = match kind {
        PatchKind::Apply => crate::yaml::from_slice_bounded(body, crate::yaml::budget_for(body))
            .map_err(|e| Error::Decode(format!("error decoding YAML: {e}")))?,
        _ => serde_json::from_slice(body)
            .map_err(|e| Error::Decode(format!("error decoding patch: {e}")))?,
    };
    match (kind, &value) {
        (PatchKind::Json, Value::Array(operations))
            if operations.len() > MAX_JSON_PATCH_OPERATIONS =>
        {
            Err(Error::TooManyOperations(operations.len()))
        }
        (PatchKind::Json, Value::Array(_)) => Ok(value),
        (PatchKind::Json, _) => Err(Error::Decode(
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch".into(),
        )),
        (_, Value::Object(_)) => Ok(value),
        _ => Err(Error::Decode("patch body must be a JSON object".into())),
    }
}

/// Applies a parsed patch to `current`, whose kind has OpenAPI schema
/// `schema` (used by strategic merge and apply).
pub fn apply(
    kind: PatchKind,
    current: &Value,
    patch: &Value,
    schema: &str,
) -> Result<Value, Error> {
    apply_with(kind, current, patch, crate::schema::named(schema))
}

/// [`apply`] with the object's schema itself (a custom resource's).
pub fn apply_with(
    kind: PatchKind,
    current: &Value,
    patch: &Value,
    schema: Option<&Value>,
) -> Result<Value, Error> {
    match kind {
        PatchKind::Json => {
            let operations: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| Error::Decode(format!("invalid JSON patch: {e}")))?;
            json_patch(current, &operations)
        }
        PatchKind::Merge => {
            let mut doc = current.clone();
            json_patch::merge(&mut doc, patch);
            Ok(doc)
        }
        PatchKind::Strategic | PatchKind::Apply => {
            strategic_merge(current, patch, schema).map_err(Error::Apply)
        }
    }
}

/// Applies JSON patch operations one at a time to a copy of `current`,
/// counting what `copy` operations copy; the copy is dropped on failure,
/// so a patch applies whole or not at all.
fn json_patch(current: &Value, operations: &[json_patch::PatchOperation]) -> Result<Value, Error> {
    use json_patch::PatchOperation;
    let mut doc = current.clone();
    let mut copied = 0;
    for (i, operation) in operations.iter().enumerate() {
        if let PatchOperation::Copy(copy) = operation
            && let Some(from) = doc.pointer(copy.from.as_str())
        {
            copied += json_size(from, MAX_JSON_PATCH_COPY_BYTES - copied + 1);
            if copied > MAX_JSON_PATCH_COPY_BYTES {
                return Err(Error::CopyLimit { operation: i });
            }
        }
        json_patch::patch_unsafe(&mut doc, std::slice::from_ref(operation)).map_err(|e| {
            Error::Apply(format!(
                "operation {i} ({}) failed at path '{}': {}",
                operation_name(operation),
                e.path,
                e.kind
            ))
        })?;
    }
    Ok(doc)
}

fn operation_name(operation: &json_patch::PatchOperation) -> &'static str {
    use json_patch::PatchOperation;
    match operation {
        PatchOperation::Add(_) => "add",
        PatchOperation::Remove(_) => "remove",
        PatchOperation::Replace(_) => "replace",
        PatchOperation::Move(_) => "move",
        PatchOperation::Copy(_) => "copy",
        PatchOperation::Test(_) => "test",
    }
}

/// The length of `value` as compact JSON, counted up to `cap` (past it the
/// count stops: the caller only needs to know it is too much).
fn json_size(value: &Value, cap: usize) -> usize {
    struct Counter {
        count: usize,
        cap: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.count += bytes.len();
            if self.count >= self.cap {
                return Err(std::io::Error::other("enough"));
            }
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter { count: 0, cap };
    let _ = serde_json::to_writer(&mut counter, value);
    counter.count.min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json_ops(operations: Value) -> Result<Value, Error> {
        let body = serde_json::to_vec(&operations).unwrap();
        let patch = parse(PatchKind::Json, &body)?;
        apply(
            PatchKind::Json,
            &json!({"metadata": {"name": "pt"}, "data": {"a": "b"}}),
            &patch,
            "",
        )
    }

    /// Regression: 40 `copy` operations, each doubling the document, took
    /// the server past 23 GB; the copies are now counted and refused.
    #[test]
    fn a_doubling_copy_chain_is_refused_before_it_grows() {
        let operations: Vec<Value> = (0..40)
            .map(|i| json!({"op": "copy", "from": "/metadata", "path": format!("/metadata/x{i}")}))
            .collect();
        let Err(Error::CopyLimit { operation }) = json_ops(json!(operations)) else {
            panic!("the copy bomb must be refused");
        };
        // Each copy doubles /metadata: the limit is passed near 2^17 bytes.
        assert!((15..25).contains(&operation), "refused at {operation}");
    }

    #[test]
    fn small_copies_apply() {
        let patched = json_ops(json!([
            {"op": "copy", "from": "/data/a", "path": "/data/c"},
            {"op": "test", "path": "/data/c", "value": "b"},
        ]))
        .unwrap();
        assert_eq!(patched["data"], json!({"a": "b", "c": "b"}));
    }

    #[test]
    fn too_many_operations_are_refused() {
        let operations: Vec<Value> = (0..MAX_JSON_PATCH_OPERATIONS + 1)
            .map(|_| json!({"op": "test", "path": "/data/a", "value": "b"}))
            .collect();
        assert!(matches!(
            json_ops(json!(operations)),
            Err(Error::TooManyOperations(10_001))
        ));
    }

    #[test]
    fn a_failing_operation_names_itself_and_changes_nothing() {
        let Err(Error::Apply(message)) = json_ops(json!([
            {"op": "add", "path": "/data/z", "value": "1"},
            {"op": "test", "path": "/data/a", "value": "not b"},
        ])) else {
            panic!("a failed test must fail the patch");
        };
        assert_eq!(
            message,
            "operation 1 (test) failed at path '/data/a': value did not match"
        );
    }
}
