//! What the API serves: each resource's names, scope, verbs, subresources
//! and the behaviour that differs between kinds.
//!
//! Everything generic (storage, metadata, preconditions, watches, tables)
//! works from these descriptors, so a new resource is one entry here plus
//! its hooks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(test)]
use schemars::SchemaGenerator;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::allocator::{Allocators, Reservation};
use super::{Error, Registry};
use crate::admission::Invalid;
use crate::custom::CustomKind;
use crate::schema::Described;

/// The verbs of a resource that supports all of them.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// A subresource such as `pods/status` or `pods/log`.
#[derive(Debug, Clone, Copy)]
pub struct Subresource {
    pub name: &'static str,
    pub kind: &'static str,
    /// `(group, version)` of the kind when it differs from the parent's.
    pub group_version: Option<(&'static str, &'static str)>,
    pub verbs: &'static [&'static str],
}

/// Kind-specific behaviour. Defaults do nothing.
#[derive(Clone, Copy)]
pub struct Hooks {
    /// Fills defaults (as Kubernetes' defaulting functions) on create and
    /// update.
    pub defaults: fn(&mut Value),
    /// Sets the status a new object starts with.
    pub initial_status: fn(&mut Value),
    /// Checks a new object (`old` is `None`) or an update.
    pub validate: fn(&Value, Option<&Value>) -> Result<(), Invalid>,
    /// The kind's Rust type: its decoding and its OpenAPI schema.
    pub typed: Typed,
    /// Hands out what the object needs from a shared pool (a Service's
    /// cluster IP and node ports) on create (`old` is `None`) and update;
    /// what it reserves is held until the write is done.
    pub allocate: fn(&Allocators, &mut Value, Option<&Value>) -> Result<Reservation, Invalid>,
    /// Admission that reads other objects (a pod's PriorityClass) on
    /// create (`old` is `None`) and update, after defaults.
    pub admit: fn(&Registry, &mut Value, Option<&Value>) -> Result<(), Error>,
}

/// An `admit` hook for kinds with no admission of their own.
pub fn admit_nothing(_: &Registry, _: &mut Value, _: Option<&Value>) -> Result<(), Error> {
    Ok(())
}

/// What a kind's Rust type gives: a checked decode and (in the tests, which
/// generate the definitions) its OpenAPI schema.
#[derive(Clone, Copy)]
pub struct Typed {
    /// Decodes into the typed object: type errors as `Err`, unknown field
    /// paths in the `Ok` list.
    pub decode: fn(&Value) -> Result<Vec<String>, String>,
    /// Adds the type's schema (and every schema it refers to) to the
    /// generator's definitions (`schema::generate`, in the tests only).
    #[cfg(test)]
    pub schema: fn(&mut SchemaGenerator),
}

impl Typed {
    /// A kind with no Rust type (a custom resource: its schema decides).
    pub fn untyped() -> Self {
        Typed {
            decode: |_| Ok(Vec::new()),
            #[cfg(test)]
            schema: |_| {},
        }
    }

    pub fn of<T: DeserializeOwned + Described>() -> Self {
        Typed {
            decode: super::kinds::decode::<T>,
            #[cfg(test)]
            schema: |generator| {
                generator.subschema_for::<T>();
            },
        }
    }
}

/// An `allocate` hook for kinds that take nothing from a pool.
pub fn allocate_nothing(
    _: &Allocators,
    _: &mut Value,
    _: Option<&Value>,
) -> Result<Reservation, Invalid> {
    Ok(Reservation::default())
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hooks")
    }
}

/// One API resource.
#[derive(Debug, Clone)]
pub struct Resource {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// The path segment: `pods`.
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub verbs: &'static [&'static str],
    pub subresources: &'static [Subresource],
    /// Whether `status` is written only through `/status` (and ignored on
    /// the main resource), as for pods and nodes.
    pub status_subresource: bool,
    /// Field selectors beyond `metadata.name` and `metadata.namespace`.
    pub field_selectors: &'static [&'static str],
    /// The OpenAPI schema name of the kind.
    pub schema: &'static str,
    /// Whether a DELETE that removes the object answers with the object
    /// (pods, Services, volumes, claims, storage classes, namespaces)
    /// rather than a success Status, as the API server's storage for the
    /// kind does (its OpenAPI names the object as DELETE's answer).
    pub returns_deleted: bool,
    pub hooks: Hooks,
    /// What a CustomResourceDefinition says of this version: its schema,
    /// printer columns and scale paths (`None` for built-in kinds).
    pub custom: Option<Arc<CustomKind>>,
}

impl Resource {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods` or `deployments.apps`, as error messages name it.
    pub fn qualified_name(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The store key prefix of all objects of this resource.
    pub fn prefix(&self) -> String {
        let group = if self.group.is_empty() {
            "core"
        } else {
            self.group
        };
        format!("/{group}/{}/", self.plural)
    }

    /// The key prefix of one namespace's objects (or of all when `None`).
    pub fn namespace_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/", self.prefix()),
            _ => self.prefix(),
        }
    }

    /// The store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.namespace_prefix(namespace))
    }

    /// A stored object as this version serves it: a custom resource's
    /// versions differ only in `apiVersion` (conversion `None`).
    pub fn served_as(&self, object: &mut Value) {
        if self.custom.is_some()
            && let Some(fields) = object.as_object_mut()
        {
            fields.insert("apiVersion".into(), Value::String(self.api_version()));
        }
    }

    /// An object as it is stored: a custom resource's at its definition's
    /// storage version.
    pub fn stored_as(&self, object: &mut Value) {
        if let (Some(custom), Some(fields)) = (&self.custom, object.as_object_mut()) {
            fields.insert(
                "apiVersion".into(),
                Value::String(format!("{}/{}", self.group, custom.storage_version)),
            );
        }
    }

    pub fn subresource(&self, name: &str) -> Option<&Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }
}

/// An other group version served for a kind (an old one, so old
/// manifests run unchanged, or a second one such as autoscaling/v1): its
/// objects are stored and validated as the current version's, converted
/// when the versions differ in shape, and every answer carries the
/// version's deprecation warning if it has one.
#[derive(Debug, Clone, Copy)]
pub struct Alias {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// The group of the current version.
    pub current_group: &'static str,
    /// Kubernetes' own deprecation notice for it; none when empty.
    pub warning: &'static str,
    /// How objects change between this version and the current one, when
    /// more than their `apiVersion` does.
    pub conversion: Option<Conversion>,
}

/// Converters of an object (or a merge patch of one) between an alias's
/// version and the current one.
#[derive(Debug, Clone, Copy)]
pub struct Conversion {
    pub to_current: fn(&mut Value),
    pub from_current: fn(&mut Value),
}

fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Alias {
    /// `extensions/v1beta1`.
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }
}

/// Every resource the server serves. A server's set changes only as
/// CustomResourceDefinitions come and go, each time as a new `Resources`.
#[derive(Debug, Clone)]
pub struct Resources {
    all: Vec<Resource>,
    aliases: Vec<Alias>,
    id: u64,
}

impl Resources {
    pub fn new(all: Vec<Resource>) -> Resources {
        Resources {
            all,
            aliases: Vec::new(),
            id: next_id(),
        }
    }

    /// The built-in resources, with the old versions they are served at.
    pub fn builtin() -> Resources {
        Resources {
            all: super::kinds::all(),
            aliases: super::kinds::aliases(),
            // Every built-in set is the same, so documents rendered from
            // one serve them all.
            id: 0,
        }
    }

    /// The built-in resources and the custom ones.
    pub fn with_custom(custom: Vec<Resource>) -> Resources {
        if custom.is_empty() {
            return Resources::builtin();
        }
        let mut resources = Resources::builtin();
        resources.all.extend(custom);
        resources.id = next_id();
        resources
    }

    /// Tells this set from every other of the process (equal sets may
    /// share one), for what is rendered from it once.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The custom resources.
    pub fn custom(&self) -> impl Iterator<Item = &Resource> {
        self.all.iter().filter(|r| r.custom.is_some())
    }

    /// The resource served at `group/version/plural`, current or by an
    /// old version (then with that alias).
    pub fn find_served(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<(&Resource, Option<&Alias>)> {
        if let Some(resource) = self.find(group, version, plural) {
            return Some((resource, None));
        }
        self.aliases
            .iter()
            .filter(|a| a.group == group && a.version == version)
            .find_map(|alias| {
                let resource = self.by_kind(alias.current_group, alias.kind)?;
                (resource.plural == plural).then_some((resource, Some(alias)))
            })
    }

    /// The resources discovery lists under `group/version`, old versions
    /// included (as copies naming that version).
    pub fn in_version(&self, group: &str, version: &str) -> Vec<Resource> {
        let mut out: Vec<Resource> = self
            .all
            .iter()
            .filter(|r| r.group == group && r.version == version)
            .cloned()
            .collect();
        for alias in self
            .aliases
            .iter()
            .filter(|a| a.group == group && a.version == version)
        {
            if let Some(resource) = self.by_kind(alias.current_group, alias.kind) {
                let mut view = resource.clone();
                view.group = alias.group;
                view.version = alias.version;
                // Short names and `all` belong to the current version only,
                // or kubectl would list deployments once per version.
                view.short_names = &[];
                view.categories = &[];
                out.push(view);
            }
        }
        out
    }

    pub fn all(&self) -> &[Resource] {
        &self.all
    }

    /// The resource served at `group/version/plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&Resource> {
        self.all
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    /// The resource of a kind.
    pub fn by_kind(&self, group: &str, kind: &str) -> Option<&Resource> {
        self.all.iter().find(|r| r.group == group && r.kind == kind)
    }

    /// `(group, version)` pairs in the order discovery lists them; the core
    /// group first.
    pub fn group_versions(&self) -> Vec<(&'static str, &'static str)> {
        let mut out: Vec<(&'static str, &'static str)> = Vec::new();
        let current = self.all.iter().map(|r| (r.group, r.version));
        let old = self.aliases.iter().map(|a| (a.group, a.version));
        for pair in current.chain(old) {
            if !out.contains(&pair) {
                out.push(pair);
            }
        }
        out
    }
}
