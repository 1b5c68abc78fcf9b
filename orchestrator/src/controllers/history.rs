//! Template history for DaemonSets and StatefulSets: each distinct pod
//! template a set has had is a ControllerRevision `<set>-<hash>` owned by
//! the set, numbered in the order the templates were last used, whose
//! `data` is the strategic merge patch that puts the template back (as
//! `kubectl rollout undo` applies it). Old revisions no pod runs are kept
//! up to the set's `revisionHistoryLimit`.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::edit;
use super::owners::{controller_ref, controller_uid};
use crate::registry::metadata::text;
use std::sync::Arc;

use crate::registry::{
    Cache, DeleteOptions, Error, LabelSelector, Registry, Resource, Result, WriteOptions,
};

/// The ControllerRevisions of one kind of set.
pub struct History {
    registry: Registry,
    revisions: Resource,
    /// Read through the watch-fed cache: every pass of every set reads
    /// its revisions.
    cached: Arc<Cache>,
    manager: &'static str,
    kind: &'static str,
    /// The label that carries a revision's hash.
    hash_label: &'static str,
}

/// A set's revisions: the one its pods are at, the one its template asks
/// for, and all it owns (oldest first).
pub struct Revisions {
    pub current: Value,
    pub update: Value,
    pub owned: Vec<Value>,
}

/// The data of the revision for `set`'s template.
pub fn data_of(set: &Value) -> Value {
    let mut template = set.pointer("/spec/template").cloned().unwrap_or(json!({}));
    template["$patch"] = json!("replace");
    json!({"spec": {"template": template}})
}

/// The pod template a revision records.
pub fn template_of(revision: &Value) -> Value {
    let mut template = revision
        .pointer("/data/spec/template")
        .cloned()
        .unwrap_or(json!({}));
    if let Some(map) = template.as_object_mut() {
        map.remove("$patch");
    }
    template
}

/// A revision's number.
pub fn number(revision: &Value) -> i64 {
    revision
        .get("revision")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

impl History {
    pub fn new(
        registry: Registry,
        manager: &'static str,
        kind: &'static str,
        hash_label: &'static str,
    ) -> History {
        let revisions = registry.resource("apps", "ControllerRevision");
        let cached = registry.cache(&revisions);
        History {
            revisions,
            cached,
            registry,
            manager,
            kind,
            hash_label,
        }
    }

    /// The revision hash of `revision`, as its label carries it.
    pub fn hash<'a>(&self, revision: &'a Value) -> &'a str {
        revision
            .pointer("/metadata/labels")
            .and_then(|l| l.get(self.hash_label))
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// Finds or records the revision of `set`'s template; an older
    /// revision with the same template becomes the newest again.
    pub async fn sync(&self, set: &Value) -> Result<Revisions> {
        let namespace = text(set, "/metadata/namespace");
        let uid = text(set, "/metadata/uid");
        let mut owned: Vec<Value> = self
            .cached
            .list(Some(namespace), &LabelSelector::default())
            .await?
            .iter()
            .filter(|r| controller_uid(r) == Some(uid))
            .map(|r| Value::clone(r))
            .collect();
        owned.sort_by_key(number);
        let data = data_of(set);
        let newest = owned.last().map(number).unwrap_or(0);
        let update = match owned.iter().position(|r| r.get("data") == Some(&data)) {
            Some(i) if i + 1 == owned.len() => owned[i].clone(),
            Some(i) => {
                let renumbered = edit(
                    &self.registry,
                    &self.revisions,
                    &owned[i],
                    None,
                    self.manager,
                    |next| next["revision"] = json!(newest + 1),
                )
                .await?;
                owned.remove(i);
                owned.push(renumbered.clone());
                renumbered
            }
            None => {
                let created = self.create(set, &data, newest + 1).await?;
                owned.push(created.clone());
                created
            }
        };
        let current_name = text(set, "/status/currentRevision");
        let current = owned
            .iter()
            .find(|r| !current_name.is_empty() && text(r, "/metadata/name") == current_name)
            .cloned()
            .unwrap_or_else(|| update.clone());
        Ok(Revisions {
            current,
            update,
            owned,
        })
    }

    async fn create(&self, set: &Value, data: &Value, revision: i64) -> Result<Value> {
        let namespace = text(set, "/metadata/namespace");
        let name = text(set, "/metadata/name");
        let mut labels = set
            .pointer("/spec/template/metadata/labels")
            .cloned()
            .unwrap_or(json!({}));
        // A name taken by another template is a collision: the hash of
        // the data with a count appended is tried next.
        for collisions in 0..5 {
            let mut seed = data.to_string();
            if collisions > 0 {
                seed.push_str(&collisions.to_string());
            }
            let hash = super::safe_hash(&seed);
            labels[self.hash_label] = json!(hash);
            let mut metadata = json!({
                "name": format!("{name}-{hash}"),
                "labels": labels,
                "ownerReferences": [controller_ref(set, "apps/v1", self.kind)],
            });
            if let Some(annotations) = set.pointer("/metadata/annotations") {
                metadata["annotations"] = annotations.clone();
            }
            let revision = json!({
                "apiVersion": "apps/v1",
                "kind": "ControllerRevision",
                "metadata": metadata,
                "data": data,
                "revision": revision,
            });
            match self
                .registry
                .create(
                    &self.revisions,
                    Some(namespace),
                    revision,
                    &WriteOptions::manager(self.manager),
                )
                .await
            {
                Ok(written) => return Ok(written.object),
                Err(Error::AlreadyExists { .. }) => {
                    let existing = self.registry.get(
                        &self.revisions,
                        Some(namespace),
                        &format!("{name}-{hash}"),
                    )?;
                    let ours = controller_uid(&existing) == Some(text(set, "/metadata/uid"));
                    if ours && existing.get("data") == Some(data) {
                        return Ok(existing);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Internal(format!(
            "{}: no free ControllerRevision name for {namespace}/{name}",
            self.manager
        )))
    }

    /// Deletes the oldest revisions no one uses (not `live`) beyond the
    /// set's `revisionHistoryLimit`.
    pub async fn truncate(
        &self,
        set: &Value,
        owned: &[Value],
        live: &BTreeSet<&str>,
    ) -> Result<()> {
        let limit = set
            .pointer("/spec/revisionHistoryLimit")
            .and_then(Value::as_i64)
            .unwrap_or(10)
            .max(0) as usize;
        let old: Vec<&Value> = owned
            .iter()
            .filter(|r| !live.contains(text(r, "/metadata/name")))
            .collect();
        for revision in old.iter().take(old.len().saturating_sub(limit)) {
            match self
                .registry
                .delete(
                    &self.revisions,
                    Some(text(revision, "/metadata/namespace")),
                    text(revision, "/metadata/name"),
                    &DeleteOptions::default(),
                )
                .await
            {
                Ok(_) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_data_puts_the_template_back_whole() {
        let set = json!({"spec": {"template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "toolbox"}]}}}});
        let data = data_of(&set);
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        let revision = json!({"data": data, "revision": 3});
        assert_eq!(template_of(&revision), set["spec"]["template"]);
        assert_eq!(number(&revision), 3);
    }
}
