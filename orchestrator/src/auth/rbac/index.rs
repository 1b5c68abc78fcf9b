//! Who is bound to what: every binding filed under each subject it names,
//! with its role, built from the RBAC caches after each RBAC write, so a
//! decision looks up its user's own bindings rather than reading them all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::{subject_key, user_keys};
use crate::auth::User;
use crate::registry::kinds::RBAC_GROUP;
use crate::registry::metadata::text;
use crate::registry::{Cache, LabelSelector, Registry, Result};
use crate::store::Revision;

/// A binding and the role it refers to (`None` while that role is missing).
#[derive(Debug)]
struct Grant {
    binding: Arc<Value>,
    role: Option<Arc<Value>>,
}

/// The bindings of every subject, as of a revision.
#[derive(Debug, Default)]
pub struct Index {
    revision: Revision,
    /// ClusterRoleBindings by subject key.
    cluster: HashMap<String, Vec<Arc<Grant>>>,
    /// RoleBindings by namespace, then subject key.
    namespaced: HashMap<String, HashMap<String, Vec<Arc<Grant>>>>,
}

/// The caches of the four RBAC kinds.
fn caches(registry: &Registry) -> [Arc<Cache>; 4] {
    ["ClusterRoleBinding", "RoleBinding", "ClusterRole", "Role"]
        .map(|kind| registry.cache(&registry.resource(RBAC_GROUP, kind)))
}

impl Index {
    /// The index of what the RBAC caches hold now, which is at least as
    /// of `revision` (a reader that needs it fresh waits for them first,
    /// as [`Authorizer::index`] does).
    pub fn build(registry: &Registry, revision: Revision) -> Index {
        let everything = LabelSelector::default();
        let [cluster_bindings, bindings, cluster_roles, roles] = caches(registry);
        let mut index = Index {
            revision,
            ..Index::default()
        };
        let all = cluster_bindings
            .list_held(None, &everything)
            .into_iter()
            .chain(bindings.list_held(None, &everything));
        for binding in all {
            let namespace = text(&binding, "/metadata/namespace").to_string();
            let name = text(&binding, "/roleRef/name");
            let role = match text(&binding, "/roleRef/kind") {
                "ClusterRole" => cluster_roles.get_held(None, name),
                "Role" => roles.get_held(Some(&namespace), name),
                _ => None,
            };
            let mut keys: Vec<String> = binding
                .get("subjects")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|subject| subject_key(subject, &namespace))
                .collect();
            keys.sort();
            keys.dedup();
            let grant = Arc::new(Grant {
                binding: Arc::clone(&binding),
                role,
            });
            let filed = if namespace.is_empty() {
                &mut index.cluster
            } else {
                index.namespaced.entry(namespace).or_default()
            };
            for key in keys {
                filed.entry(key).or_default().push(Arc::clone(&grant));
            }
        }
        index
    }

    /// Calls `visit` with each rule that applies to `user` in `namespace`
    /// (cluster-wide rules, then the namespace's) and the binding that
    /// grants it, until it returns false.
    pub fn visit_rules(
        &self,
        user: &User,
        namespace: &str,
        mut visit: impl FnMut(&Value, &Value) -> bool,
    ) {
        let keys = user_keys(user);
        let scopes = std::iter::once(Some(&self.cluster)).chain(
            std::iter::once(self.namespaced.get(namespace)).filter(|_| !namespace.is_empty()),
        );
        let mut seen: Vec<*const Grant> = Vec::new();
        for filed in scopes.flatten() {
            for grant in keys.iter().filter_map(|key| filed.get(key)).flatten() {
                // A binding naming the user twice (by name and by a group)
                // counts once.
                if seen.contains(&Arc::as_ptr(grant)) {
                    continue;
                }
                seen.push(Arc::as_ptr(grant));
                let Some(role) = &grant.role else { continue };
                for rule in role
                    .get("rules")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if !visit(&grant.binding, rule) {
                        return;
                    }
                }
            }
        }
    }
}

/// The index the API's requests are judged by, rebuilt when RBAC objects
/// have changed since it was built.
#[derive(Debug, Default)]
pub struct Authorizer {
    index: Mutex<Option<Arc<Index>>>,
}

impl Authorizer {
    /// An index holding every RBAC write made so far.
    pub async fn index(&self, registry: &Registry) -> Result<Arc<Index>> {
        let wanted = registry.rbac_written();
        {
            let held = self.index.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(index) = held.as_ref()
                && index.revision >= wanted
            {
                return Ok(Arc::clone(index));
            }
        }
        for cache in caches(registry) {
            cache.caught_up_to(wanted).await?;
        }
        let index = Arc::new(Index::build(registry, wanted));
        let mut held = self.index.lock().unwrap_or_else(|e| e.into_inner());
        if held.as_ref().is_none_or(|h| h.revision <= index.revision) {
            *held = Some(Arc::clone(&index));
        }
        Ok(index)
    }
}
