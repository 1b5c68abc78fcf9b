//! Objects serialised by the caller, with a hole for `resourceVersion`.
//!
//! The writer thread is the one serial part of the store, so it should only
//! copy bytes: the caller serialises the object without
//! `metadata.resourceVersion` and remembers where it goes; the writer, which
//! alone knows the revision, splices it in.

use serde::Serialize;
use serde_json::{Map, Value};

use super::Revision;

/// An object's JSON with the place of `metadata.resourceVersion` marked.
#[derive(Debug, Clone)]
pub(super) struct Encoded {
    json: Vec<u8>,
    hole: Option<Hole>,
}

/// Where `"resourceVersion":"N"` goes inside the `metadata` object.
#[derive(Debug, Clone, Copy)]
struct Hole {
    at: usize,
    /// A metadata entry precedes the hole (so the fragment leads with `,`).
    after_entry: bool,
    /// A metadata entry follows the hole.
    before_entry: bool,
}

impl Encoded {
    /// Serialises `object`; any `metadata.resourceVersion` in it is left out,
    /// since the writer sets it. An object without a `metadata` map has no
    /// hole and is stored as it is.
    pub(super) fn new(object: &Value) -> serde_json::Result<Encoded> {
        let Some(top) = object.as_object() else {
            return Ok(Encoded {
                json: serde_json::to_vec(object)?,
                hole: None,
            });
        };
        let mut json = Vec::with_capacity(1024);
        let mut hole = None;
        json.push(b'{');
        for (i, (key, value)) in top.iter().enumerate() {
            if i > 0 {
                json.push(b',');
            }
            write_key(&mut json, key)?;
            match value {
                Value::Object(metadata) if key == "metadata" => {
                    hole = Some(write_metadata(&mut json, metadata)?);
                }
                other => serde_json::to_writer(&mut json, other)?,
            }
        }
        json.push(b'}');
        Ok(Encoded { json, hole })
    }

    /// Appends `prefix`, then the JSON with `revision` in place, to `out`.
    pub(super) fn write_with_revision(&self, out: &mut Vec<u8>, revision: Revision) {
        let Some(hole) = self.hole else {
            out.extend_from_slice(&self.json);
            return;
        };
        out.extend_from_slice(&self.json[..hole.at]);
        if hole.after_entry {
            out.push(b',');
        }
        out.extend_from_slice(b"\"resourceVersion\":\"");
        out.extend_from_slice(revision.to_string().as_bytes());
        out.push(b'"');
        if hole.before_entry && !hole.after_entry {
            out.push(b',');
        }
        out.extend_from_slice(&self.json[hole.at..]);
    }

    /// The length of the JSON once a revision is in place (an upper bound).
    pub(super) fn len_with_revision(&self) -> usize {
        self.json.len() + 40
    }
}

fn write_key(json: &mut Vec<u8>, key: &str) -> serde_json::Result<()> {
    key.serialize(&mut serde_json::Serializer::new(&mut *json))?;
    json.push(b':');
    Ok(())
}

/// Writes the metadata map without `resourceVersion`, returning where it goes
/// (in key order when the map is sorted; anywhere is valid JSON).
fn write_metadata(json: &mut Vec<u8>, metadata: &Map<String, Value>) -> serde_json::Result<Hole> {
    json.push(b'{');
    let mut hole: Option<Hole> = None;
    let mut written = 0usize;
    for (key, value) in metadata {
        if key == "resourceVersion" {
            continue;
        }
        if hole.is_none() && key.as_str() > "resourceVersion" {
            hole = Some(Hole {
                at: json.len(),
                after_entry: written > 0,
                before_entry: true,
            });
        }
        if written > 0 {
            json.push(b',');
        }
        write_key(json, key)?;
        serde_json::to_writer(&mut *json, value)?;
        written += 1;
    }
    let hole = hole.unwrap_or(Hole {
        at: json.len(),
        after_entry: written > 0,
        before_entry: false,
    });
    json.push(b'}');
    Ok(hole)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spliced(object: &Value, revision: Revision) -> Value {
        let encoded = Encoded::new(object).unwrap();
        let mut out = Vec::new();
        encoded.write_with_revision(&mut out, revision);
        serde_json::from_slice(&out).unwrap()
    }

    fn stamped(object: &Value, revision: Revision) -> Value {
        let mut object = object.clone();
        super::super::stamp_revision(&mut object, revision);
        object
    }

    #[test]
    fn the_revision_lands_in_metadata_wherever_it_sorts() {
        for object in [
            json!({"metadata": {}}),
            json!({"metadata": {"name": "a"}}),
            json!({"metadata": {"uid": "u"}}),
            json!({"metadata": {"name": "a", "uid": "u"}}),
            json!({"metadata": {"name": "a", "resourceVersion": "7", "uid": "u"}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"annotations": {"resourceVersion": "x"}, "name": "p"}, "spec": {"resourceVersion": ""}}),
        ] {
            assert_eq!(spliced(&object, 42), stamped(&object, 42), "{object}");
        }
    }

    #[test]
    fn objects_without_metadata_are_stored_as_they_are() {
        for object in [
            json!({"kind": "X"}),
            json!({"metadata": "odd"}),
            json!([1, 2]),
        ] {
            assert_eq!(spliced(&object, 9), object);
        }
    }

    #[test]
    fn strings_are_escaped_as_serde_json_does() {
        let object = json!({"metadata": {"name": "q\"uote\n", "labels": {"a\\b": "é"}}});
        assert_eq!(spliced(&object, 1), stamped(&object, 1));
    }
}
