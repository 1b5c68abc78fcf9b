//! The registry: the object semantics of the Kubernetes API over the store.
//!
//! Creating, updating, patching, deleting and listing objects, with
//! Kubernetes' rules for metadata (uid, generation, managedFields),
//! optimistic concurrency, status subresources, graceful deletion and
//! finalizers, dry runs and field validation. The HTTP layer ([`crate::api`])
//! and the in-process components (kubelet, scheduler, controllers) both use
//! it, so every write follows the same rules.

pub mod allocator;
pub mod cache;
mod error;
mod eviction;
pub mod kinds;
mod limit_ranges;
pub mod managed;
pub mod metadata;
mod namespaces;
mod pod_security;
mod priority;
mod quota;
pub mod resources;
pub mod scale;
pub mod selectors;
mod service_accounts;

use std::sync::{Arc, RwLock};

use serde_json::{Value, json};

use self::allocator::{Allocators, Reservation, ServiceAllocator, ServiceNetwork};
use self::cache::Caches;
pub use self::cache::{Cache, Kept};
pub use self::error::{Error, Result};
use self::managed::{Managers, Operation, Scope, Shape, Writer};
use self::metadata::{metadata_mut, now, str_at};
pub use self::namespaces::SYSTEM_NAMESPACES;
use self::namespaces::{Namespace, Namespaces};
pub use self::quota::MANAGER as QUOTA_MANAGER;
pub use self::resources::{Resource, Resources};
pub use self::selectors::{FieldSelector, LabelSelector};
pub use self::service_accounts::{ROOT_CA_CONFIG_MAP, TOKEN_MOUNT_PATH};
use crate::patch::{self, PatchKind};
use crate::store::{self, Preconditions, Revision, Store, Watch, Write};

/// How a write treats fields the schema does not know.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    /// Accepts, and warns about each unknown field.
    #[default]
    Warn,
    /// Rejects the write.
    Strict,
}

impl FieldValidation {
    pub fn parse(text: Option<&str>) -> Result<FieldValidation> {
        match text {
            None | Some("") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(Error::BadRequest(format!(
                "fieldValidation must be one of Ignore, Warn or Strict, not {other:?}"
            ))),
        }
    }
}

/// Options every write takes.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Validate and answer as if written, but write nothing.
    pub dry_run: bool,
    /// Who is writing, for `managedFields`.
    pub field_manager: Option<String>,
    pub validation: FieldValidation,
    /// Server-side apply: take over conflicting fields.
    pub force: bool,
    /// A server-side apply: the manager owns exactly what it applies
    /// (operation `Apply`).
    pub(crate) apply: bool,
    /// The user writing, when a client is: a Role or binding it writes may
    /// grant only what it holds itself (RBAC's escalation check).
    pub user: Option<std::sync::Arc<crate::auth::User>>,
}

impl WriteOptions {
    /// Options for a component of the server itself.
    pub fn manager(name: &str) -> WriteOptions {
        WriteOptions {
            field_manager: Some(name.into()),
            ..WriteOptions::default()
        }
    }

    fn manager_name(&self) -> &str {
        self.field_manager.as_deref().unwrap_or("unknown")
    }

    /// Who writes, for `managedFields`.
    fn writer<'a>(&'a self, api_version: &'a str, subresource: Option<&'a str>) -> Writer<'a> {
        Writer {
            manager: self.manager_name(),
            operation: if self.apply {
                Operation::Apply
            } else {
                Operation::Update
            },
            api_version,
            subresource,
        }
    }
}

/// What of an object a write through `subresource` may own.
fn scope(resource: &Resource, subresource: Option<&str>) -> Scope {
    match subresource {
        Some("status") => Scope::Status,
        _ if resource.status_subresource => Scope::Spec,
        _ => Scope::Object,
    }
}

/// The result of a write.
#[derive(Debug, Clone)]
pub struct Written {
    pub object: Value,
    /// `Warning` headers for the client (unknown fields under Warn).
    pub warnings: Vec<String>,
    /// Whether the write created the object (server-side apply).
    pub created: bool,
}

/// How a delete proceeds.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub preconditions: Preconditions,
    pub dry_run: bool,
}

/// What a delete did.
#[derive(Debug, Clone)]
pub enum Deleted {
    /// The object is gone; this was its last state.
    Gone(Value),
    /// The object is being deleted (graceful termination or finalizers).
    Pending(Value),
}

/// What a list asks for.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: usize,
    pub continue_token: Option<String>,
    /// `resourceVersion` with `resourceVersionMatch=Exact`: the list must be
    /// at that revision.
    pub exact: Option<Revision>,
    /// `resourceVersion` otherwise: the list must be at least that new.
    pub not_older_than: Option<Revision>,
}

/// A list's answer.
#[derive(Debug, Clone)]
pub struct Listed {
    pub items: Vec<Value>,
    pub revision: Revision,
    pub continue_token: Option<String>,
}

/// The object machinery; cheap to clone.
#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn Store>,
    /// What is served now; replaced whole as custom resources change.
    resources: Arc<RwLock<Arc<Resources>>>,
    /// The id of what is served, for those who follow it.
    served: Arc<tokio::sync::watch::Sender<u64>>,
    namespaces: Arc<Namespaces>,
    allocators: Arc<Allocators>,
    caches: Arc<Caches>,
    /// The store's revision after the last write to an RBAC object: the
    /// authorizer's caches need to be that fresh, no fresher.
    rbac_written: Arc<std::sync::atomic::AtomicU64>,
    /// The CA the API is served under, once it is served over HTTPS: pods
    /// then get the credentials to reach it (`kube-api-access-…`).
    cluster_ca: Arc<std::sync::OnceLock<String>>,
    /// Per namespace: held while its quotas are charged for an object
    /// until the object is written, and while they are recounted.
    quota_locks:
        Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// The work queues of the controllers running on this registry, for
    /// `/metrics` (until the controllers have a context of their own).
    work_queues: Arc<crate::metrics::workqueue::WorkQueues>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

/// How many times an update retries after losing a race.
const UPDATE_ATTEMPTS: usize = 16;

/// The kinds whose updates can use more quota (a Service made a
/// LoadBalancer, a claim grown), as (group, plural).
const QUOTA_ON_UPDATE: [(&str, &str); 2] = [("", "services"), ("", "persistentvolumeclaims")];

impl Registry {
    pub fn new(store: Arc<dyn Store>, resources: Resources) -> Registry {
        Registry::with_service_network(store, resources, ServiceNetwork::default())
    }

    /// A registry whose Services take their addresses from `network`.
    pub fn with_service_network(
        store: Arc<dyn Store>,
        resources: Resources,
        network: ServiceNetwork,
    ) -> Registry {
        let services = ServiceAllocator::new(Arc::clone(&store), network);
        // What the store held before this registry counts as written.
        let rbac_written = Arc::new(std::sync::atomic::AtomicU64::new(store.revision()));
        Registry {
            store,
            served: Arc::new(tokio::sync::watch::Sender::new(resources.id())),
            resources: Arc::new(RwLock::new(Arc::new(resources))),
            namespaces: Arc::default(),
            allocators: Arc::new(Allocators { services }),
            caches: Arc::default(),
            rbac_written,
            cluster_ca: Arc::default(),
            quota_locks: Arc::default(),
            work_queues: Arc::default(),
        }
    }

    /// The work queues' metrics of the controllers on this registry.
    pub fn work_queues(&self) -> &crate::metrics::workqueue::WorkQueues {
        &self.work_queues
    }

    /// The API is served over HTTPS under the CA `pem`.
    pub fn set_cluster_ca(&self, pem: &str) {
        let _ = self.cluster_ca.set(pem.to_string());
    }

    /// The CA the API is served under; `None` while it is not served over
    /// HTTPS (no API listener, or plain HTTP).
    pub fn cluster_ca(&self) -> Option<&str> {
        self.cluster_ca.get().map(String::as_str)
    }

    /// The store's revision after the last write to a Role, ClusterRole or
    /// binding (0 before any): what authorization decided by then is
    /// decided by caches at least that fresh.
    pub fn rbac_written(&self) -> Revision {
        self.rbac_written.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Where Services get their addresses from.
    pub fn service_network(&self) -> &ServiceNetwork {
        self.allocators.services.network()
    }

    /// What is served now.
    pub fn resources(&self) -> Arc<Resources> {
        Arc::clone(&self.resources.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Serves `resources` from now on (CustomResourceDefinitions changed).
    pub fn set_resources(&self, resources: Resources) {
        let id = resources.id();
        *self.resources.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(resources);
        self.served.send_replace(id);
    }

    /// Changes whenever what is served does (for those who follow every
    /// resource, such as the garbage collector).
    pub fn resources_changed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.served.subscribe()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The shared in-memory copy of a resource's objects, for in-process
    /// readers that look at all of them often (controllers); started on
    /// first use, which must be within a tokio runtime.
    pub fn cache(&self, resource: &Resource) -> Arc<Cache> {
        self.caches.get(&self.store, resource)
    }

    /// The same, keeping only what `T` keeps of each object.
    pub fn cache_of<T: Kept>(&self, resource: &Resource) -> Arc<Cache<T>> {
        self.caches.get(&self.store, resource)
    }

    /// Stops following the store in every cache (the server is stopping).
    pub fn stop_caches(&self) {
        self.caches.stop();
    }

    /// The resource of a built-in kind; panics on an unknown one, which is
    /// a programming error.
    pub fn resource(&self, group: &str, kind: &str) -> Resource {
        self.resources()
            .by_kind(group, kind)
            .unwrap_or_else(|| panic!("no resource for kind {kind} in group {group:?}"))
            .clone()
    }

    fn not_found(resource: &Resource, name: &str) -> Error {
        Error::NotFound {
            resource: resource.plural.into(),
            group: resource.group.into(),
            name: name.into(),
        }
    }

    pub fn get(&self, resource: &Resource, namespace: Option<&str>, name: &str) -> Result<Value> {
        self.find(resource, namespace, name)?
            .ok_or_else(|| Self::not_found(resource, name))
    }

    /// Like [`Registry::get`], but `None` when absent.
    pub fn find(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>> {
        let mut found = self.store.get(&resource.key(namespace, name))?;
        if let Some(object) = &mut found {
            resource.served_as(object);
        }
        Ok(found)
    }

    /// Writes to the store: a custom resource's object stored at its
    /// storage version, and answered at the version asked for.
    async fn write(&self, resource: &Resource, mut write: Write) -> store::Result<Value> {
        if let Write::Create { object, .. } | Write::Update { object, .. } = &mut write {
            resource.stored_as(object);
        }
        let mut written = self.store.write(write).await?;
        if resource.group == kinds::RBAC_GROUP {
            self.rbac_written
                .fetch_max(self.store.revision(), std::sync::atomic::Ordering::AcqRel);
        }
        resource.served_as(&mut written);
        Ok(written)
    }

    pub fn list(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<Listed> {
        let prefix = resource.namespace_prefix(namespace);
        // Every page of a list reads the revision its first page read.
        let (mut start, mut revision) = match &options.continue_token {
            Some(token) => {
                let (start, revision) = decode_continue(token, &prefix)?;
                (Some(start), revision)
            }
            None => (None, options.exact),
        };
        let mut items = Vec::new();
        loop {
            let want = if options.limit == 0 {
                0
            } else {
                options.limit - items.len()
            };
            let page = match self
                .store
                .list_at(&prefix, start.as_deref(), want, revision)
            {
                Err(store::Error::Released { revision: gone }) => {
                    return Err(if options.continue_token.is_some() {
                        Error::ContinueExpired {
                            inconsistent: encode_continue(
                                start.as_deref().unwrap_or(&prefix),
                                None,
                            ),
                        }
                    } else {
                        Error::Gone(format!(
                            "too old resource version: {gone} ({})",
                            self.store.revision()
                        ))
                    });
                }
                other => other?,
            };
            if let Some(wanted) = options.not_older_than
                && wanted > page.revision
            {
                return Err(Error::TooLargeResourceVersion {
                    wanted,
                    current: page.revision,
                });
            }
            revision.get_or_insert(page.revision);
            let filtered = page
                .items
                .into_iter()
                .filter(|o| options.labels.matches(o) && options.fields.matches(o))
                .map(|mut o| {
                    resource.served_as(&mut o);
                    o
                });
            items.extend(filtered);
            match page.continue_after {
                Some(after) if options.limit != 0 && items.len() < options.limit => {
                    start = Some(after);
                }
                Some(after) => {
                    return Ok(Listed {
                        items,
                        revision: revision.unwrap_or(0),
                        continue_token: Some(encode_continue(&after, revision)),
                    });
                }
                None => {
                    return Ok(Listed {
                        items,
                        revision: revision.unwrap_or(0),
                        continue_token: None,
                    });
                }
            }
        }
    }

    /// Changes to a resource (in a namespace) after `after`.
    pub fn watch(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        after: Revision,
    ) -> Result<Watch> {
        Ok(self
            .store
            .watch(&resource.namespace_prefix(namespace), after)?)
    }

    /// Checks what is common to every incoming object: a JSON object whose
    /// kind and apiVersion (filled in when missing) are the resource's.
    fn check_body(&self, resource: &Resource, body: &mut Value) -> Result<()> {
        let Some(object) = body.as_object_mut() else {
            return Err(Error::BadRequest(format!(
                "the body of the request was not a {} object",
                resource.kind
            )));
        };
        let api_version = resource.api_version();
        match object.get("apiVersion").and_then(Value::as_str) {
            None | Some("") => {
                object.insert("apiVersion".into(), json!(api_version));
            }
            Some(v) if v == api_version => {}
            Some(v) => {
                return Err(Error::BadRequest(format!(
                    "the API version in the data ({v}) does not match the expected API version ({api_version})"
                )));
            }
        }
        match object.get("kind").and_then(Value::as_str) {
            None | Some("") => {
                object.insert("kind".into(), json!(resource.kind));
            }
            Some(k) if k == resource.kind => {}
            Some(k) => {
                return Err(Error::BadRequest(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    resource.kind
                )));
            }
        }
        Ok(())
    }

    /// Decodes into the typed object (a custom resource: prunes what its
    /// schema does not name); unknown fields per `validation`.
    fn check_fields(
        &self,
        resource: &Resource,
        body: &mut Value,
        validation: FieldValidation,
    ) -> Result<Vec<String>> {
        let unknown = match &resource.custom {
            Some(custom) => custom.schema.prune(body),
            None => (resource.hooks.typed.decode)(body).map_err(|e| {
                Error::BadRequest(format!(
                    "{} in version \"{}\" cannot be handled as a {}: {e}",
                    resource.kind, resource.version, resource.kind
                ))
            })?,
        };
        let unknown: Vec<String> = unknown
            .into_iter()
            .filter(|f| f != "metadata.managedFields" && !f.starts_with("metadata.managedFields"))
            .collect();
        match validation {
            FieldValidation::Ignore => Ok(Vec::new()),
            FieldValidation::Warn => Ok(unknown
                .iter()
                .map(|f| format!("unknown field {f:?}"))
                .collect()),
            FieldValidation::Strict if unknown.is_empty() => Ok(Vec::new()),
            FieldValidation::Strict => Err(Error::BadRequest(format!(
                "strict decoding error: {}",
                unknown
                    .iter()
                    .map(|f| format!("unknown field {f:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Namespaced objects go into an existing, live namespace.
    fn check_namespace(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<()> {
        if !resource.namespaced {
            return Ok(());
        }
        let Some(namespace) = namespace else {
            return Err(Error::BadRequest(
                "a namespaced object needs a namespace".into(),
            ));
        };
        let namespaces = self.resource("", "Namespace");
        let state = match self.namespaces.state(&self.store, namespace) {
            Some(state) => state,
            None => match self.find(&namespaces, None, namespace)? {
                None => Namespace::Missing,
                Some(ns) if ns.pointer("/metadata/deletionTimestamp").is_some() => {
                    Namespace::Terminating
                }
                Some(_) => Namespace::Active,
            },
        };
        match state {
            Namespace::Active => Ok(()),
            Namespace::Missing => Err(Self::not_found(&namespaces, namespace)),
            Namespace::Terminating => Err(Error::Refused {
                resource: resource.plural.into(),
                group: resource.group.into(),
                name: name.into(),
                why: format!(
                    "unable to create new content in namespace {namespace} because it is being terminated"
                ),
            }),
        }
    }

    pub async fn create(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        mut body: Value,
        options: &WriteOptions,
    ) -> Result<Written> {
        self.check_body(resource, &mut body)?;
        let mut warnings = self.check_fields(resource, &mut body, options.validation)?;
        let api_version = resource.api_version();
        let writer = options.writer(&api_version, None);
        let (shape, scope) = (Shape::of_resource(resource), scope(resource, None));
        // An applier owns what it applied; an updating creator what it
        // sent with the defaults, below.
        let mut managers = if options.apply {
            Managers::applied(&body, shape, scope, &writer)
        } else {
            Managers::for_update(&json!({}), &body, None)
        };
        let meta = metadata_mut(&mut body);
        if resource.namespaced {
            let namespace = namespace.unwrap_or("default");
            match meta.get("namespace").and_then(Value::as_str) {
                Some(ns) if !ns.is_empty() && ns != namespace => {
                    return Err(Error::BadRequest(
                        "the namespace of the provided object does not match the namespace sent on the request".into(),
                    ));
                }
                _ => {
                    meta.insert("namespace".into(), json!(namespace));
                }
            }
        } else {
            meta.remove("namespace");
        }
        let name = match meta.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => match meta.get("generateName").and_then(Value::as_str) {
                Some(base) if !base.is_empty() => {
                    let name = metadata::generate_name(base);
                    meta.insert("name".into(), json!(name));
                    name
                }
                _ => String::new(),
            },
        };
        if let Ok(Some(_)) = precondition(meta.get("resourceVersion").and_then(Value::as_str)) {
            // The API server's words and code: a version copied from another
            // object is most likely a mistake.
            return Err(Error::Unclassified(
                "resourceVersion should not be set on objects to be created".into(),
            ));
        }
        for owned in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(owned);
        }
        // Zero values a protobuf client sends for fields it did not set.
        meta.retain(|_, v| !(v.is_null() || v.as_str() == Some("")));
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(now()));
        meta.insert("generation".into(), json!(1));
        let namespace = body
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        apply_defaults(resource, &mut body);
        if !options.apply {
            managers.update(&json!({}), &body, shape, scope, &writer);
        }
        if resource.status_subresource {
            (resource.hooks.initial_status)(&mut body);
        }
        if name.is_empty() {
            return Err(Error::Invalid(
                crate::admission::Invalid {
                    kind: resource.kind.into(),
                    name: String::new(),
                    errors: vec![crate::admission::FieldError {
                        field: "metadata.name".into(),
                        message: "Required value: name or generateName is required".into(),
                    }],
                },
                resource.group.into(),
            ));
        }
        validate(resource, &body, None)?;
        self.check_namespace(resource, namespace.as_deref(), &name)?;
        (resource.hooks.admit)(self, &mut body, None)?;
        crate::auth::rbac::check_escalation(self, resource, &body, options)?;
        let _reservation = (resource.hooks.allocate)(&self.allocators, &mut body, None)
            .map_err(|i| Error::Invalid(i, resource.group.into()))?;
        managers.write_to(&mut body);
        warnings.extend(self.admit_pod_security(resource, &body)?);
        let _quotas = self.charge_quotas(resource, &body, None, options).await?;
        if options.dry_run {
            return Ok(Written {
                object: body,
                warnings,
                created: true,
            });
        }
        let key = resource.key(namespace.as_deref(), &name);
        let object = self
            .write(resource, Write::Create { key, object: body })
            .await
            .map_err(|e| Error::from_store(e, resource.plural, resource.group, &name))?;
        Ok(Written {
            object,
            warnings,
            created: true,
        })
    }

    /// Replaces an object (PUT), or its status with `subresource = "status"`.
    pub async fn update(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        name: &str,
        mut body: Value,
        subresource: Option<&str>,
        options: &WriteOptions,
    ) -> Result<Written> {
        self.check_body(resource, &mut body)?;
        let warnings = self.check_fields(resource, &mut body, options.validation)?;
        match str_at(&body, "/metadata/name") {
            Some(n) if n == name => {}
            None | Some("") => {
                metadata_mut(&mut body).insert("name".into(), json!(name));
            }
            Some(n) => {
                return Err(Error::BadRequest(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
        }
        let mut written = self
            .update_with(resource, namespace, name, subresource, options, |_| {
                Ok(body.clone())
            })
            .await?;
        written.warnings = warnings;
        Ok(written)
    }

    /// Applies a patch of `kind` to the object (or its status).
    #[allow(clippy::too_many_arguments)]
    pub async fn patch(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        name: &str,
        kind: PatchKind,
        patch_body: &[u8],
        subresource: Option<&str>,
        options: &WriteOptions,
    ) -> Result<Written> {
        let patch_value = patch::parse(kind, patch_body)?;
        let applied = WriteOptions {
            apply: kind == PatchKind::Apply,
            ..options.clone()
        };
        let options = &applied;
        if kind == PatchKind::Apply && patch_value.pointer("/metadata/managedFields").is_some() {
            return Err(Error::BadRequest(
                "metadata.managedFields must be nil".into(),
            ));
        }
        if kind == PatchKind::Apply && self.find(resource, namespace, name)?.is_none() {
            // Server-side apply creates what does not exist.
            let mut body = patch_value;
            metadata_mut(&mut body).insert("name".into(), json!(name));
            let mut written = self.create(resource, namespace, body, options).await?;
            written.created = true;
            return Ok(written);
        }
        let mut warnings = Vec::new();
        let schema = match &resource.custom {
            Some(custom) => Some(custom.shape),
            None => crate::schema::named(resource.schema),
        };
        let api_version = resource.api_version();
        let writer = options.writer(&api_version, subresource);
        let written = self
            .update_with(resource, namespace, name, subresource, options, |current| {
                let mut patched = patch::apply_with(kind, current, &patch_value, schema)?;
                if options.apply {
                    patched = self.apply_ownership(
                        resource,
                        current,
                        patched,
                        &patch_value,
                        subresource,
                        &writer,
                        options.force,
                    )?;
                }
                self.check_body(resource, &mut patched)?;
                check_identity(&patched, name, namespace)?;
                warnings = self.check_fields(resource, &mut patched, options.validation)?;
                Ok(patched)
            })
            .await;
        match written {
            Ok(mut written) => {
                written.warnings = warnings;
                Ok(written)
            }
            Err(e) => Err(e),
        }
    }

    /// The ownership of a server-side apply of `config` (merged into
    /// `merged`) over `current`: conflicts refused unless forced, fields
    /// the applier no longer applies removed, the managers recorded.
    #[allow(clippy::too_many_arguments)]
    fn apply_ownership(
        &self,
        resource: &Resource,
        current: &Value,
        merged: Value,
        config: &Value,
        subresource: Option<&str>,
        writer: &Writer,
        force: bool,
    ) -> Result<Value> {
        let shape = Shape::of_resource(resource);
        let mut managers = Managers::of(current);
        // kubectl moving from client-side to server-side apply takes over
        // what its client-side applies set, without a conflict.
        let kubectl = writer.manager == "kubectl";
        let allowed = || {
            kubectl
                .then(|| managed::applied_by_kubectl(current, shape))
                .flatten()
        };
        let mut next = managers
            .apply(
                current,
                merged,
                config,
                shape,
                scope(resource, subresource),
                writer,
                force,
                allowed,
            )
            .map_err(|conflicts| Error::ApplyConflict {
                message: conflicts.message,
                fields: conflicts.fields,
            })?;
        if kubectl {
            managed::keep_last_applied(&mut next, config);
        }
        managers.write_to(&mut next);
        Ok(next)
    }

    /// Read-modify-write with retries: `change` gets the current object and
    /// returns the desired one. A desired object naming a `resourceVersion`
    /// (other than "0") is written only if the object is still at that
    /// revision, as the API server's updates and patches are; one that
    /// names none, or "0", is an unconditional update.
    #[allow(clippy::too_many_arguments)]
    pub async fn update_with(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        options: &WriteOptions,
        mut change: impl FnMut(&Value) -> Result<Value>,
    ) -> Result<Written> {
        let key = resource.key(namespace, name);
        for _ in 0..UPDATE_ATTEMPTS {
            let current = self.get(resource, namespace, name)?;
            let revision = revision_of(&current);
            let desired = change(&current)?;
            if precondition(str_at(&desired, "/metadata/resourceVersion"))?
                .is_some_and(|wanted| wanted != revision)
            {
                return Err(Error::from_store(
                    store::Error::Conflict {
                        key,
                        reason: String::new(),
                    },
                    resource.plural,
                    resource.group,
                    name,
                ));
            }
            let (next, _reservation) =
                self.prepare_update(resource, &current, desired, subresource, options)?;
            if strip_volatile(&next) == strip_volatile(&current) {
                return Ok(Written {
                    object: current,
                    warnings: Vec::new(),
                    created: false,
                });
            }
            let _quotas = if subresource.is_none()
                && QUOTA_ON_UPDATE.contains(&(resource.group, resource.plural))
            {
                self.charge_quotas(resource, &next, Some(&current), options)
                    .await?
            } else {
                None
            };
            if options.dry_run {
                return Ok(Written {
                    object: next,
                    warnings: Vec::new(),
                    created: false,
                });
            }
            let empty = |pointer: &str| {
                next.pointer(pointer)
                    .and_then(Value::as_array)
                    .is_none_or(Vec::is_empty)
            };
            let finished = next.pointer("/metadata/deletionTimestamp").is_some()
                && empty("/metadata/finalizers")
                && (resource.kind != "Namespace" || empty("/spec/finalizers"))
                // A pod on a node goes once its kubelet has let it go
                // (a grace period of 0).
                && !(resource.kind == "Pod"
                    && next.pointer("/spec/nodeName").is_some()
                    && next
                        .pointer("/metadata/deletionGracePeriodSeconds")
                        .and_then(Value::as_i64)
                        != Some(0));
            let preconditions = Preconditions {
                revision: Some(revision),
                uid: None,
            };
            let write = if finished {
                Write::Delete {
                    key: key.clone(),
                    preconditions,
                }
            } else {
                Write::Update {
                    key: key.clone(),
                    object: next,
                    preconditions,
                }
            };
            match self.write(resource, write).await {
                Ok(object) => {
                    return Ok(Written {
                        object,
                        warnings: Vec::new(),
                        created: false,
                    });
                }
                // Another writer came first: the change is made again on
                // what it wrote (a precondition then fails above).
                Err(store::Error::Conflict { .. }) => continue,
                Err(e) => return Err(Error::from_store(e, resource.plural, resource.group, name)),
            }
        }
        Err(Error::Conflict {
            resource: resource.plural.into(),
            group: resource.group.into(),
            name: name.into(),
            why: "too many concurrent writers; try again".into(),
        })
    }

    /// The object an update stores: immutable metadata kept, status or spec
    /// taken from the right place, generation bumped on a spec change.
    fn prepare_update(
        &self,
        resource: &Resource,
        current: &Value,
        mut desired: Value,
        subresource: Option<&str>,
        options: &WriteOptions,
    ) -> Result<(Value, Reservation)> {
        let mut reservation = Reservation::default();
        // An apply has recorded its managers; an update starts from the
        // live object's, or those it sets itself.
        let mut managers = if options.apply {
            Managers::of(&desired)
        } else {
            Managers::for_update(current, &desired, subresource)
        };
        let mut next = if subresource == Some("status") {
            let mut next = current.clone();
            next["status"] = desired.get("status").cloned().unwrap_or(json!({}));
            next
        } else if subresource == Some("finalize") {
            let mut next = current.clone();
            next["spec"]["finalizers"] = desired
                .pointer("/spec/finalizers")
                .cloned()
                .unwrap_or(json!([]));
            next
        } else if subresource == Some("binding") {
            // The scheduler's binding: trusted, in-process only.
            desired
        } else if subresource == Some("ephemeralcontainers") {
            // Only the ephemeral containers change here (`kubectl debug`).
            let mut next = current.clone();
            next["spec"]["ephemeralContainers"] = desired
                .pointer("/spec/ephemeralContainers")
                .cloned()
                .unwrap_or(json!([]));
            next
        } else {
            if resource.status_subresource {
                match current.get("status") {
                    Some(status) => desired["status"] = status.clone(),
                    None => {
                        if let Some(o) = desired.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
            }
            desired
        };
        let current_meta = current.get("metadata").cloned().unwrap_or(json!({}));
        let meta = metadata_mut(&mut next);
        for owned in [
            "uid",
            "creationTimestamp",
            "namespace",
            "name",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "managedFields",
        ] {
            match current_meta.get(owned) {
                Some(v) => {
                    meta.insert(owned.into(), v.clone());
                }
                None => {
                    meta.remove(owned);
                }
            }
        }
        meta.remove("resourceVersion");
        if !matches!(subresource, Some("status" | "finalize" | "binding")) {
            if resource.kind == "Pod" && subresource != Some("ephemeralcontainers") {
                // Ephemeral containers change only through their
                // subresource: an update of the pod keeps them as they are.
                match current.pointer("/spec/ephemeralContainers") {
                    Some(list) => next["spec"]["ephemeralContainers"] = list.clone(),
                    None => {
                        if let Some(spec) = next.get_mut("spec").and_then(Value::as_object_mut) {
                            spec.remove("ephemeralContainers");
                        }
                    }
                }
            }
            if resource.kind == "Pod" {
                // Only a binding sets a pod's node; an update that leaves it
                // out (kubectl replace of the original manifest) keeps it.
                let unset = next
                    .pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .is_empty();
                if let (true, Some(node), Some(spec)) = (
                    unset,
                    current.pointer("/spec/nodeName").cloned(),
                    next.get_mut("spec").and_then(Value::as_object_mut),
                ) {
                    spec.insert("nodeName".into(), node);
                }
            }
            apply_defaults(resource, &mut next);
            if next.get("spec") != current.get("spec") {
                let generation = current
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                metadata_mut(&mut next).insert("generation".into(), json!(generation + 1));
            }
            if current.pointer("/metadata/deletionTimestamp").is_some() {
                // A deleting object may only lose finalizers.
                let added = next
                    .pointer("/metadata/finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|f| {
                        let before = current
                            .pointer("/metadata/finalizers")
                            .and_then(Value::as_array);
                        f.iter().any(|x| before.is_none_or(|b| !b.contains(x)))
                    });
                if added {
                    return Err(Error::Forbidden(
                        "no new finalizers can be added if the object is being deleted".into(),
                    ));
                }
            }
            (resource.hooks.admit)(self, &mut next, Some(current))?;
            validate(resource, &next, Some(current))?;
            crate::auth::rbac::check_escalation(self, resource, &next, options)?;
            reservation = (resource.hooks.allocate)(&self.allocators, &mut next, Some(current))
                .map_err(|i| Error::Invalid(i, resource.group.into()))?;
        } else if subresource == Some("status") && resource.custom.is_some() {
            // A custom resource's status is checked by its schema too.
            validate(resource, &next, Some(current))?;
        }
        if !options.apply {
            let api_version = resource.api_version();
            managers.update(
                current,
                &next,
                Shape::of_resource(resource),
                scope(resource, subresource),
                &options.writer(&api_version, subresource),
            );
        }
        managers.write_to(&mut next);
        Ok((next, reservation))
    }

    /// Deletes every object of a resource in a namespace (every namespace
    /// with `None`), as each one's own delete does; returns how many there
    /// were (those still being deleted count).
    pub async fn delete_all(&self, resource: &Resource, namespace: Option<&str>) -> Result<usize> {
        let listed = self.list(resource, namespace, &ListOptions::default())?;
        for object in &listed.items {
            let namespace = str_at(object, "/metadata/namespace").filter(|n| !n.is_empty());
            let name = str_at(object, "/metadata/name").unwrap_or_default();
            match self
                .delete(resource, namespace, name, &DeleteOptions::default())
                .await
            {
                Ok(_) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(listed.items.len())
    }

    /// Deletes an object: at once, or gracefully (pods on a node) or once
    /// its finalizers are gone.
    pub async fn delete(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Deleted> {
        if resource.kind == "Namespace" && SYSTEM_NAMESPACES.contains(&name) {
            return Err(Error::Refused {
                resource: resource.plural.into(),
                group: String::new(),
                name: name.into(),
                why: "this namespace may not be deleted".into(),
            });
        }
        let current = self.get(resource, namespace, name)?;
        if let Some(uid) = &options.preconditions.uid
            && str_at(&current, "/metadata/uid") != Some(uid.as_str())
        {
            return Err(Error::Conflict {
                resource: resource.plural.into(),
                group: resource.group.into(),
                name: name.into(),
                why: format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    str_at(&current, "/metadata/uid").unwrap_or_default()
                ),
            });
        }
        if let Some(rv) = options.preconditions.revision
            && rv != revision_of(&current)
        {
            return Err(Error::Conflict {
                resource: resource.plural.into(),
                group: resource.group.into(),
                name: name.into(),
                why: format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    revision_of(&current)
                ),
            });
        }
        let deleting = current.pointer("/metadata/deletionTimestamp").is_some();
        // Orphan and Foreground deletion hold the owner with a finalizer
        // until the garbage collector has dealt with its dependents.
        let policy_finalizer = match options.propagation_policy.as_deref() {
            None | Some("" | "Background") => None,
            Some("Orphan") => Some("orphan"),
            Some("Foreground") => Some("foregroundDeletion"),
            Some(other) => {
                return Err(Error::BadRequest(format!(
                    "DeleteOptions.PropagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
                )));
            }
        };
        let mut current = current;
        if let Some(finalizer) = policy_finalizer
            && !deleting
            && resource.kind != "Namespace"
        {
            let list = metadata_mut(&mut current)
                .entry("finalizers")
                .or_insert_with(|| json!([]));
            if let Some(list) = list.as_array_mut()
                && !list.iter().any(|f| f == finalizer)
            {
                list.push(json!(finalizer));
            }
        }
        let has_finalizers = current
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
            || (resource.kind == "Namespace"
                && current
                    .pointer("/spec/finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|f| !f.is_empty()));
        let grace = if resource.kind == "Pod" {
            let spec_grace = current
                .pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(30);
            let scheduled = current.pointer("/spec/nodeName").is_some();
            let finished = matches!(
                str_at(&current, "/status/phase"),
                Some("Succeeded" | "Failed")
            );
            if !scheduled || finished {
                0
            } else {
                options.grace_period_seconds.unwrap_or(spec_grace).max(0)
            }
        } else {
            0
        };
        if grace > 0 || has_finalizers {
            if deleting && grace > 0 {
                // Already terminating: a shorter grace period may be asked for.
                let existing = current
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(i64::MAX);
                if grace >= existing {
                    return Ok(Deleted::Pending(current));
                }
            }
            let recorded_grace = current
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64);
            // Deleting with grace 0 again only records the 0 (a kubelet
            // done with a pod that finalizers still hold).
            if !(deleting && grace == 0 && has_finalizers && recorded_grace == Some(0)) {
                let mut next = current.clone();
                let meta = metadata_mut(&mut next);
                let at = jiff::Timestamp::now()
                    .checked_add(jiff::SignedDuration::from_secs(grace))
                    .unwrap_or(jiff::Timestamp::now());
                let at = jiff::Timestamp::from_second(at.as_second())
                    .expect("in range")
                    .to_string();
                if !deleting || grace > 0 {
                    meta.insert("deletionTimestamp".into(), json!(at));
                }
                meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
                if resource.kind == "Namespace" {
                    next["status"] = json!({"phase": "Terminating"});
                }
                if options.dry_run {
                    return Ok(Deleted::Pending(next));
                }
                let object = self
                    .write(
                        resource,
                        Write::Update {
                            key: resource.key(namespace, name),
                            object: next,
                            preconditions: Preconditions {
                                revision: Some(revision_of(&current)),
                                uid: None,
                            },
                        },
                    )
                    .await
                    .map_err(|e| Error::from_store(e, resource.plural, resource.group, name))?;
                return Ok(Deleted::Pending(object));
            }
            return Ok(Deleted::Pending(current));
        }
        if options.dry_run {
            return Ok(Deleted::Gone(current));
        }
        let object = self
            .write(
                resource,
                Write::Delete {
                    key: resource.key(namespace, name),
                    preconditions: Preconditions {
                        revision: None,
                        uid: str_at(&current, "/metadata/uid").map(str::to_string),
                    },
                },
            )
            .await
            .map_err(|e| Error::from_store(e, resource.plural, resource.group, name))?;
        Ok(Deleted::Gone(object))
    }
}

/// The revision an update is conditional on: the desired object's
/// `resourceVersion`, unless it is empty or "0" (unconditional).
fn precondition(resource_version: Option<&str>) -> Result<Option<Revision>> {
    match resource_version {
        None | Some("") => Ok(None),
        Some(rv) => match rv.parse::<Revision>() {
            Ok(0) => Ok(None),
            Ok(revision) => Ok(Some(revision)),
            Err(_) => Err(Error::BadRequest(format!(
                "metadata.resourceVersion: Invalid value: {rv:?}: must be a resource version the server gave"
            ))),
        },
    }
}

/// An object's `resourceVersion` as a revision (0 when absent).
pub fn revision_of(object: &Value) -> Revision {
    str_at(object, "/metadata/resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Fills the kind's defaults (a custom resource: its schema's).
fn apply_defaults(resource: &Resource, object: &mut Value) {
    (resource.hooks.defaults)(object);
    if let Some(custom) = &resource.custom {
        custom.schema.apply_defaults(object);
    }
}

/// Checks an object about to be written: the metadata every kind shares,
/// then the kind's own rules (a custom resource's schema); all problems
/// are reported together.
fn validate(resource: &Resource, object: &Value, old: Option<&Value>) -> Result<()> {
    let mut errors = crate::admission::Errors::default();
    crate::admission::metadata::check(&mut errors, object);
    if let Some(custom) = &resource.custom {
        for error in custom.schema.validate(object) {
            errors.push(error.field, error.message);
        }
    }
    let name = str_at(object, "/metadata/name").unwrap_or_default();
    let common = errors.into_result(resource.kind, name);
    let kind = (resource.hooks.validate)(object, old);
    let invalid = match (common, kind) {
        (Ok(()), Ok(())) => return Ok(()),
        (Err(invalid), Ok(())) | (Ok(()), Err(invalid)) => invalid,
        (Err(mut common), Err(kind)) => {
            common.errors.extend(kind.errors);
            common
        }
    };
    Err(Error::Invalid(invalid, resource.group.into()))
}

/// A patched object must still be the object the URL names: a patch that
/// renames it or removes its metadata is refused, as the API server's
/// name check refuses it (nothing is silently put back).
fn check_identity(object: &Value, name: &str, namespace: Option<&str>) -> Result<()> {
    let found = str_at(object, "/metadata/name").unwrap_or("");
    if found != name {
        return Err(Error::BadRequest(format!(
            "the name of the object ({found}) does not match the name on the URL ({name})"
        )));
    }
    if let (Some(namespace), Some(found)) = (namespace, str_at(object, "/metadata/namespace"))
        && !found.is_empty()
        && found != namespace
    {
        return Err(Error::BadRequest(format!(
            "the namespace of the object ({found}) does not match the namespace on the URL ({namespace})"
        )));
    }
    Ok(())
}

/// The object without what changes on every write, to detect no-ops.
fn strip_volatile(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    object
}

/// A continue token, shaped as the API server's: the key to go on after
/// and the revision the pages read (none: the latest, an inconsistent
/// list).
fn encode_continue(after: &str, revision: Option<Revision>) -> String {
    use base64::Engine;
    let token =
        json!({"v": "meta.k8s.io/v1", "rv": revision.map_or(-1, |r| r as i64), "start": after});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str, prefix: &str) -> Result<(String, Option<Revision>)> {
    use base64::Engine;
    let bad = || Error::BadRequest(format!("invalid continue token {token:?}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let start = value.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    if !start.starts_with(prefix) {
        return Err(bad());
    }
    let revision = value
        .get("rv")
        .and_then(Value::as_i64)
        .and_then(|rv| Revision::try_from(rv).ok())
        .filter(|rv| *rv > 0);
    Ok((start.to_string(), revision))
}
