//! Pulling images from (and pushing them to) OCI registries, through
//! `oci-client` (Distribution API v2).
//!
//! Two packagings of WebAssembly are understood:
//!
//! 1. the CNCF wasm artifact: config `application/vnd.wasm.config.v0+json`
//!    and one `application/wasm` layer, the component itself;
//! 2. standard OCI and Docker schema-2 images (and indexes, of which the
//!    `wasi/wasm` entry is taken): tar layers unpacked into the image's
//!    tree ([`super::layers`]), every WebAssembly file in it found by its
//!    magic bytes, and the entrypoint naming which one runs.
//!
//! Blobs stream to files under the store's `tmp/`, capped at the size the
//! manifest declares and checked against their digest (by `oci-client`)
//! before anything reads them; the record naming the image is written
//! last. Pulls of one reference with the same credentials share one
//! download, and at most [`RegistryConfig::max_parallel_pulls`] run at once.

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;

use super::credentials::{Keyring, Login};
use super::layers::{self, Compression};
use super::{ImageConfig, ImageRecord, ImageRef, ImageStore, digest_of};

/// Media type of the CNCF wasm artifact's config.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// Media type of a wasm layer (a component or core module).
pub const WASM_LAYER: &str = "application/wasm";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const ACCEPTED: &[&str] = &[OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

/// How the node reaches registries.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// `host:port`s spoken to over plain HTTP (`--insecure-registry`);
    /// every other registry over TLS.
    pub insecure: Vec<String>,
    /// PEM certificates trusted besides the system's roots (`--registry-ca`).
    pub ca_certificates: Vec<Vec<u8>>,
    /// Node-wide credentials (`--registry-config`), tried after a pod's own.
    pub keyring: Keyring,
    /// Pulls downloading at once; more wait.
    pub max_parallel_pulls: usize,
    /// Limits on one image's files.
    pub budget: layers::Budget,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            insecure: Vec::new(),
            ca_certificates: Vec::new(),
            keyring: Keyring::default(),
            max_parallel_pulls: 3,
            budget: layers::Budget::default(),
        }
    }
}

/// Why a pull failed, in words a person can act on (the kubelet puts them
/// in `ErrImagePull` events).
#[derive(Debug, Clone, thiserror::Error)]
pub enum PullError {
    /// The registry wants credentials it was not given, or refused them.
    #[error(
        "failed to authorize: {registry} answered 401 Unauthorized{}; give the pod an imagePullSecret for {registry} or the node --registry-config",
        if *.had_credentials { " to the credentials given" } else { " (no credentials for it)" }
    )]
    Unauthorized {
        /// The registry.
        registry: String,
        /// Whether credentials were sent.
        had_credentials: bool,
    },
    /// The image is not in the store and the policy forbids pulling it.
    #[error("Container image {reference:?} is not present with pull policy of Never")]
    NeverPull {
        /// The reference.
        reference: String,
    },
    /// The registry has no such repository, tag or digest.
    #[error("failed to resolve reference {reference:?}: {reference}: not found")]
    NotFound {
        /// The reference.
        reference: String,
    },
    /// The image holds nothing a WASI runtime can run.
    #[error(
        "{reference} has no WebAssembly in it (it has platforms: {}); wasmkube runs wasi/wasm images and wasm artifacts",
        if platforms.is_empty() { "none named".to_string() } else { platforms.join(", ") }
    )]
    NoWasm {
        /// The reference.
        reference: String,
        /// What the image offers instead (`linux/amd64`, …).
        platforms: Vec<String>,
    },
    /// The registry could not be reached or spoke out of turn.
    #[error("pulling {reference}: {message}")]
    Registry {
        /// The reference.
        reference: String,
        /// What went wrong.
        message: String,
    },
    /// What was downloaded is not what the manifest promised, or is unsafe.
    #[error("pulling {reference}: {message}")]
    Invalid {
        /// The reference.
        reference: String,
        /// What was wrong with it.
        message: String,
    },
    /// Writing the image to the store failed.
    #[error("storing {reference}: {message}")]
    Store {
        /// The reference.
        reference: String,
        /// The failure.
        message: String,
    },
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The image's record, as stored.
    pub record: ImageRecord,
    /// Whether anything was downloaded (`false`: the tag still named the
    /// digest the store had).
    pub fetched: bool,
}

type SharedPull = Shared<BoxFuture<'static, Result<Pulled, PullError>>>;

/// What fetching a manifest's content gave: the parts of the record that
/// depend on how the image is packaged.
struct Fetched {
    /// The component to run.
    digest: String,
    /// Bytes on disk.
    size: u64,
    config: ImageConfig,
    /// The image's files, for a standard image.
    tree: Option<String>,
    programs: BTreeMap<String, String>,
}

/// The node's way to registries: clients per credential, pulls in flight.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

struct Inner {
    config: RegistryConfig,
    store: ImageStore,
    /// One client per registry and login: `oci-client` keeps the first
    /// login it is given for a registry, and pods may bring different ones.
    clients: Mutex<HashMap<String, oci_client::Client>>,
    /// Pulls in flight, by reference and login.
    inflight: Mutex<HashMap<String, SharedPull>>,
    slots: Arc<tokio::sync::Semaphore>,
    /// Held shared by each pull, alone by garbage collection: a pull's
    /// blobs are written before its record, and must not look unused.
    collecting: tokio::sync::RwLock<()>,
}

impl Registry {
    /// A registry client storing what it pulls in `store`.
    pub fn new(store: ImageStore, config: RegistryConfig) -> Registry {
        // reqwest is built without a crypto provider: the process's is ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let slots = Arc::new(tokio::sync::Semaphore::new(
            config.max_parallel_pulls.max(1),
        ));
        Registry {
            inner: Arc::new(Inner {
                config,
                store,
                clients: Mutex::default(),
                inflight: Mutex::default(),
                slots,
                collecting: tokio::sync::RwLock::new(()),
            }),
        }
    }

    /// The store pulls land in.
    pub fn store(&self) -> &ImageStore {
        &self.inner.store
    }

    /// The credentials tried for `registry`: `extra` (a pod's pull
    /// secrets) first, then the node's; anonymous when none apply.
    pub(super) fn auth(&self, registry: &str, extra: &Keyring) -> RegistryAuth {
        let mut ring = extra.clone();
        ring.extend(&self.inner.config.keyring);
        match ring.logins(registry).first() {
            Some(Login::Basic { username, password }) => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
            Some(Login::Bearer(token)) => RegistryAuth::Bearer(token.clone()),
            None => RegistryAuth::Anonymous,
        }
    }

    pub(super) fn client(&self, registry: &str, auth: &RegistryAuth) -> oci_client::Client {
        let key = format!("{registry}\0{}", login_key(auth));
        let mut clients = self.inner.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(key)
            .or_insert_with(|| {
                let config = &self.inner.config;
                oci_client::Client::new(ClientConfig {
                    protocol: ClientProtocol::HttpsExcept(config.insecure.clone()),
                    extra_root_certificates: config
                        .ca_certificates
                        .iter()
                        .map(|pem| Certificate {
                            encoding: CertificateEncoding::Pem,
                            data: pem.clone(),
                        })
                        .collect(),
                    user_agent: concat!("wasmkube/", env!("CARGO_PKG_VERSION")),
                    ..ClientConfig::default()
                })
            })
            .clone()
    }

    /// Pulls `reference` (which must name a registry) unless the store
    /// already has what its tag names now. Concurrent pulls of the same
    /// reference with the same credentials share one.
    pub async fn pull(&self, reference: &ImageRef, keyring: &Keyring) -> Result<Pulled, PullError> {
        let registry = reference
            .registry
            .clone()
            .ok_or_else(|| PullError::NotFound {
                reference: reference.to_string(),
            })?;
        let auth = self.auth(&registry, keyring);
        let key = format!("{reference}\0{}", login_key(&auth));
        let shared = {
            let mut inflight = self
                .inner
                .inflight
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match inflight.get(&key) {
                Some(pull) => pull.clone(),
                None => {
                    let this = self.clone();
                    let reference = reference.clone();
                    let key_done = key.clone();
                    // Spawned, so a pull goes on when the pod that asked
                    // for it goes away while others wait for it too.
                    let task = tokio::spawn(async move {
                        let result = this.fetch(&reference, &registry, &auth).await;
                        this.inner
                            .inflight
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&key_done);
                        result
                    });
                    let pull = async move {
                        task.await.unwrap_or_else(|e| {
                            Err(PullError::Store {
                                reference: String::new(),
                                message: format!("the pull task failed: {e}"),
                            })
                        })
                    }
                    .boxed()
                    .shared();
                    inflight.insert(key, pull.clone());
                    pull
                }
            }
        };
        shared.await
    }

    async fn fetch(
        &self,
        reference: &ImageRef,
        registry: &str,
        auth: &RegistryAuth,
    ) -> Result<Pulled, PullError> {
        let _pulling = self.inner.collecting.read().await;
        let client = self.client(registry, auth);
        let oci_ref = oci_reference(reference);
        let had_credentials = !matches!(auth, RegistryAuth::Anonymous);
        let fail = |e: OciDistributionError| classify(e, reference, registry, had_credentials);
        let (bytes, top_digest) = client
            .pull_manifest_raw(&oci_ref, auth, ACCEPTED)
            .await
            .map_err(fail)?;
        if !well_formed_digest(&top_digest) {
            return Err(invalid(
                reference,
                &format!("the registry answered a malformed digest {top_digest:?}"),
            ));
        }
        let store = &self.inner.store;
        if let Some(record) = store.record(reference).ok().flatten()
            && record.source_digest == top_digest
            && store.blob_path(&record.digest).exists()
        {
            return Ok(Pulled {
                record,
                fetched: false,
            });
        }
        let _slot = self.inner.slots.acquire().await.expect("slots never close");
        let (manifest, manifest_digest) = match parse_manifest(&bytes, reference)? {
            Manifest::Index(index) => {
                let entry = choose_platform(&index).ok_or_else(|| PullError::NoWasm {
                    reference: reference.to_string(),
                    platforms: index.platforms(),
                })?;
                let pinned = oci_reference(&reference.with_digest(&entry.digest));
                let (bytes, digest) = client
                    .pull_manifest_raw(&pinned, auth, ACCEPTED)
                    .await
                    .map_err(fail)?;
                if digest != entry.digest {
                    return Err(invalid(
                        reference,
                        &format!(
                            "the index names {} but the registry answered {digest}",
                            entry.digest
                        ),
                    ));
                }
                match parse_manifest(&bytes, reference)? {
                    Manifest::Image(m) => (m, digest),
                    Manifest::Index(_) => {
                        return Err(invalid(reference, "an index entry is another index"));
                    }
                }
            }
            Manifest::Image(m) => (m, top_digest.clone()),
        };
        let staging = Staging::new(store)?;
        let fetched = if manifest.is_wasm_artifact() {
            self.fetch_artifact(&client, &oci_ref, &manifest, &staging, reference)
                .await?
        } else {
            self.fetch_image(
                &client,
                &oci_ref,
                &manifest,
                &manifest_digest,
                &staging,
                reference,
            )
            .await?
        };
        let record = ImageRecord {
            reference: reference.to_string(),
            digest: fetched.digest,
            source_digest: top_digest,
            size: fetched.size,
            config: fetched.config,
            manifest_digest: Some(manifest_digest),
            tree: fetched.tree,
            programs: fetched.programs,
            pulled_at: Some(super::now()),
        };
        store
            .write_record(reference, &record)
            .map_err(|e| store_err(reference, e))?;
        Ok(Pulled {
            record,
            fetched: true,
        })
    }

    /// Collects images (see [`super::gc`]) while no pull runs.
    pub async fn collect(
        &self,
        policy: super::gc::GcPolicy,
        in_use: std::collections::HashSet<String>,
        pinned: std::collections::HashSet<&'static str>,
    ) -> Result<super::gc::GcReport, super::Error> {
        let _alone = self.inner.collecting.write().await;
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || store.collect(&policy, &in_use, &pinned))
            .await
            .unwrap_or_else(|e| {
                Err(super::Error::Io {
                    path: PathBuf::new(),
                    source: std::io::Error::other(e.to_string()),
                })
            })
    }

    /// The CNCF artifact: the wasm layer is the component.
    async fn fetch_artifact(
        &self,
        client: &oci_client::Client,
        oci_ref: &oci_client::Reference,
        manifest: &ImageManifest,
        staging: &Staging,
        reference: &ImageRef,
    ) -> Result<Fetched, PullError> {
        let layer = manifest
            .layers
            .iter()
            .find(|l| l.media_type == WASM_LAYER)
            .ok_or_else(|| invalid(reference, "the wasm artifact has no application/wasm layer"))?;
        let file = staging.download(client, oci_ref, layer, reference).await?;
        let store = self.inner.store.clone();
        let what = reference.to_string();
        let (digest, size) = blocking(move || {
            let bytes = fs::read(&file).map_err(|e| e.to_string())?;
            store.put_blob(&what, &bytes).map_err(|e| e.to_string())
        })
        .await
        .map_err(|m| invalid(reference, &m))?;
        Ok(Fetched {
            digest,
            size,
            config: ImageConfig {
                entrypoint: vec![reference.base_name().to_string()],
                ..ImageConfig::default()
            },
            tree: None,
            programs: BTreeMap::new(),
        })
    }

    /// A standard image: layers unpacked into a tree, the entrypoint's
    /// WebAssembly file the component.
    async fn fetch_image(
        &self,
        client: &oci_client::Client,
        oci_ref: &oci_client::Reference,
        manifest: &ImageManifest,
        manifest_digest: &str,
        staging: &Staging,
        reference: &ImageRef,
    ) -> Result<Fetched, PullError> {
        let config_file = staging
            .download(client, oci_ref, &manifest.config, reference)
            .await?;
        let config: OciConfig =
            serde_json::from_slice(&fs::read(&config_file).map_err(|e| store_err(reference, e))?)
                .map_err(|e| invalid(reference, &format!("the image config is not JSON: {e}")))?;
        let mut compressions = Vec::new();
        for layer in &manifest.layers {
            let compression = Compression::of_media_type(&layer.media_type).ok_or_else(|| {
                invalid(
                    reference,
                    &format!(
                        "layer {} has media type {:?}, not a tar layer",
                        layer.digest, layer.media_type
                    ),
                )
            })?;
            compressions.push(compression);
        }
        let tree = self.inner.store.tree_path(manifest_digest);
        if !tree.is_dir() {
            // Layers are downloaded and unpacked one after another, each
            // blob deleted once its files are out.
            let staged_tree = staging.dir.join("tree");
            fs::create_dir_all(&staged_tree).map_err(|e| store_err(reference, e))?;
            let mut budget = self.inner.config.budget.clone();
            for (layer, compression) in manifest.layers.iter().zip(compressions) {
                let blob = staging.download(client, oci_ref, layer, reference).await?;
                let dest = staged_tree.clone();
                let (result, rest) = blocking(move || {
                    let file = fs::File::open(&blob).map_err(layers::Error::Io)?;
                    let result = layers::unpack(
                        std::io::BufReader::new(file),
                        compression,
                        &dest,
                        &mut budget,
                    );
                    let _ = fs::remove_file(&blob);
                    Ok::<_, layers::Error>((result, budget))
                })
                .await
                .map_err(|e| invalid(reference, &e.to_string()))?;
                result.map_err(|e| invalid(reference, &e.to_string()))?;
                budget = rest;
            }
            if let Err(e) = fs::rename(&staged_tree, &tree)
                && !tree.is_dir()
            {
                return Err(store_err(reference, e));
            }
        }
        let store = self.inner.store.clone();
        let what = reference.to_string();
        let scan_tree = tree.clone();
        let (programs, size) = blocking(move || programs_in(&store, &what, &scan_tree))
            .await
            .map_err(|m| invalid(reference, &m))?;
        let platform = config.platform();
        let image_config = config.config.unwrap_or_default();
        let mut image_config = ImageConfig {
            entrypoint: image_config.entrypoint.unwrap_or_default(),
            cmd: image_config.cmd.unwrap_or_default(),
            env: image_config.env.unwrap_or_default(),
            working_dir: image_config.working_dir.filter(|w| !w.is_empty()),
        };
        if programs.is_empty() {
            return Err(PullError::NoWasm {
                reference: reference.to_string(),
                platforms: platform.into_iter().collect(),
            });
        }
        let argv0 = image_config
            .entrypoint
            .first()
            .or(image_config.cmd.first())
            .cloned();
        let digest = match argv0 {
            Some(argv0) => super::find_program(
                &tree,
                &programs,
                &argv0,
                image_config.path(),
                image_config.working_dir.as_deref().unwrap_or("/"),
            )
            .ok_or_else(|| {
                invalid(
                    reference,
                    &format!(
                        "the entrypoint {argv0:?} is not a WebAssembly file of the image (it has {})",
                        programs.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                )
            })?,
            // No entrypoint: the one WebAssembly file, if there is one.
            None if programs.len() == 1 => {
                let (path, digest) = programs.iter().next().expect("one program");
                image_config.entrypoint = vec![path.clone()];
                digest.clone()
            }
            None => {
                return Err(invalid(
                    reference,
                    "the image names no entrypoint and holds several WebAssembly files",
                ));
            }
        };
        Ok(Fetched {
            digest,
            size,
            config: image_config,
            tree: Some(manifest_digest.to_string()),
            programs,
        })
    }
}

/// Every WebAssembly file of `tree` (by magic bytes) stored as a
/// component; and the bytes of the tree's files.
fn programs_in(
    store: &ImageStore,
    what: &str,
    tree: &Path,
) -> Result<(BTreeMap<String, String>, u64), String> {
    let mut programs = BTreeMap::new();
    let mut size = 0;
    for (path, meta) in super::files_in(tree) {
        size += meta.len();
        let mut magic = [0u8; 4];
        let is_wasm = fs::File::open(&path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .is_ok()
            && magic == *b"\0asm";
        if !is_wasm {
            continue;
        }
        let bytes = fs::read(&path).map_err(|e| e.to_string())?;
        let guest = format!(
            "/{}",
            path.strip_prefix(tree).unwrap_or(&path).to_string_lossy()
        );
        let (digest, _) = store
            .put_blob(&format!("{what} {guest}"), &bytes)
            .map_err(|e| e.to_string())?;
        programs.insert(guest, digest);
    }
    Ok((programs, size))
}

/// A pull's private directory under the store's `tmp/`, removed when the
/// pull ends however it ends.
struct Staging {
    dir: PathBuf,
}

impl Staging {
    fn new(store: &ImageStore) -> Result<Staging, PullError> {
        let dir = store
            .tmp_dir()
            .join(format!("pull-{}", uuid::Uuid::new_v4().simple()));
        fs::create_dir_all(&dir).map_err(|e| PullError::Store {
            reference: String::new(),
            message: format!("{}: {e}", dir.display()),
        })?;
        Ok(Staging { dir })
    }

    /// Streams one blob to a file here; the file is the blob, verified, or
    /// there is no file.
    async fn download(
        &self,
        client: &oci_client::Client,
        oci_ref: &oci_client::Reference,
        descriptor: &Descriptor,
        reference: &ImageRef,
    ) -> Result<PathBuf, PullError> {
        let path = self.dir.join(descriptor.digest.replace(':', "-"));
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| store_err(reference, e))?;
        let capped = Capped {
            inner: tokio::io::BufWriter::with_capacity(256 << 10, file),
            left: descriptor.size,
        };
        let oci_descriptor = OciDescriptor {
            media_type: descriptor.media_type.clone(),
            digest: descriptor.digest.clone(),
            size: descriptor.size as i64,
            ..OciDescriptor::default()
        };
        if let Err(e) = client.pull_blob(oci_ref, &oci_descriptor, capped).await {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(match e {
                OciDistributionError::DigestError(d) => invalid(
                    reference,
                    &format!("blob {} is corrupt: {d}", descriptor.digest),
                ),
                OciDistributionError::IoError(io) => {
                    invalid(reference, &format!("blob {}: {io}", descriptor.digest))
                }
                other => PullError::Registry {
                    reference: reference.to_string(),
                    message: format!("blob {}: {other}", descriptor.digest),
                },
            });
        }
        Ok(path)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A writer that refuses more bytes than the blob is declared to have, so a
/// registry cannot fill the disk before the digest check.
struct Capped<W> {
    inner: W,
    left: u64,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Capped<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if buf.len() as u64 > self.left {
            return Poll::Ready(Err(std::io::Error::other(
                "the registry sent more bytes than the manifest declares",
            )));
        }
        let this = &mut *self;
        let written = std::task::ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.left -= written as u64;
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

async fn blocking<T: Send + 'static, E: Send + std::fmt::Display + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

fn login_key(auth: &RegistryAuth) -> String {
    match auth {
        RegistryAuth::Anonymous => "anonymous".into(),
        RegistryAuth::Basic(user, password) => {
            digest_of(format!("basic\0{user}\0{password}").as_bytes())
        }
        RegistryAuth::Bearer(token) => digest_of(format!("bearer\0{token}").as_bytes()),
    }
}

pub(super) fn oci_reference(r: &ImageRef) -> oci_client::Reference {
    let registry = r.registry.clone().unwrap_or_default();
    match (&r.digest, &r.tag) {
        (Some(digest), Some(tag)) => oci_client::Reference::with_tag_and_digest(
            registry,
            r.repository.clone(),
            tag.clone(),
            digest.clone(),
        ),
        (Some(digest), None) => {
            oci_client::Reference::with_digest(registry, r.repository.clone(), digest.clone())
        }
        (None, tag) => oci_client::Reference::with_tag(
            registry,
            r.repository.clone(),
            tag.clone().unwrap_or_else(|| "latest".into()),
        ),
    }
}

fn invalid(reference: &ImageRef, message: &str) -> PullError {
    PullError::Invalid {
        reference: reference.to_string(),
        message: message.to_string(),
    }
}

fn store_err(reference: &ImageRef, e: impl std::fmt::Display) -> PullError {
    PullError::Store {
        reference: reference.to_string(),
        message: e.to_string(),
    }
}

/// An `oci-client` failure as a [`PullError`].
pub(super) fn classify(
    e: OciDistributionError,
    reference: &ImageRef,
    registry: &str,
    had_credentials: bool,
) -> PullError {
    let unauthorized = PullError::Unauthorized {
        registry: registry.to_string(),
        had_credentials,
    };
    let not_found = PullError::NotFound {
        reference: reference.to_string(),
    };
    match e {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => unauthorized,
        OciDistributionError::ImageManifestNotFoundError(_) => not_found,
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                unauthorized
            } else if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                )
            }) {
                not_found
            } else {
                PullError::Registry {
                    reference: reference.to_string(),
                    message: envelope
                        .errors
                        .iter()
                        .map(|e| e.message.clone())
                        .collect::<Vec<_>>()
                        .join("; "),
                }
            }
        }
        OciDistributionError::ServerError { code: 404, .. } => not_found,
        OciDistributionError::ServerError {
            code: 401 | 403, ..
        } => unauthorized,
        OciDistributionError::DigestError(d) => {
            invalid(reference, &format!("the manifest is corrupt: {d}"))
        }
        other => PullError::Registry {
            reference: reference.to_string(),
            message: error_chain(&other),
        },
    }
}

/// An error and its causes on one line (reqwest hides the useful part,
/// such as "connection refused" or a certificate problem, in its sources).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Debug, Clone, Deserialize)]
struct Platform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

impl Platform {
    fn is_wasm(&self) -> bool {
        self.os.starts_with("wasi") || self.architecture.starts_with("wasm")
    }

    fn name(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

impl Index {
    fn platforms(&self) -> Vec<String> {
        self.manifests
            .iter()
            .filter_map(|m| m.platform.as_ref())
            .filter(|p| p.os != "unknown")
            .map(Platform::name)
            .collect()
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageManifest {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

impl ImageManifest {
    fn is_wasm_artifact(&self) -> bool {
        self.config.media_type == WASM_CONFIG
            || (!self.layers.is_empty() && self.layers.iter().all(|l| l.media_type == WASM_LAYER))
    }
}

enum Manifest {
    Index(Index),
    Image(ImageManifest),
}

fn parse_manifest(bytes: &[u8], reference: &ImageRef) -> Result<Manifest, PullError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| invalid(reference, &format!("the manifest is not JSON: {e}")))?;
    let media_type = value
        .get("mediaType")
        .and_then(|m| m.as_str())
        .unwrap_or("");
    let bad = |e: serde_json::Error| invalid(reference, &format!("the manifest is malformed: {e}"));
    let manifest =
        if media_type == OCI_INDEX || media_type == DOCKER_LIST || value.get("manifests").is_some()
        {
            serde_json::from_value(value)
                .map(Manifest::Index)
                .map_err(bad)?
        } else {
            serde_json::from_value(value)
                .map(Manifest::Image)
                .map_err(bad)?
        };
    // Digests name files here: nothing but `algorithm:hex` is let through.
    let digests: Vec<&str> = match &manifest {
        Manifest::Index(index) => index.manifests.iter().map(|m| m.digest.as_str()).collect(),
        Manifest::Image(image) => std::iter::once(&image.config)
            .chain(&image.layers)
            .map(|d| d.digest.as_str())
            .collect(),
    };
    if let Some(bad) = digests.into_iter().find(|d| !well_formed_digest(d)) {
        return Err(invalid(
            reference,
            &format!("the manifest names a malformed digest {bad:?}"),
        ));
    }
    Ok(manifest)
}

/// `sha256:` and 64 hex digits, or `sha512:` and 128.
fn well_formed_digest(digest: &str) -> bool {
    let (len, hex) = match digest.split_once(':') {
        Some(("sha256", hex)) => (64, hex),
        Some(("sha512", hex)) => (128, hex),
        _ => return false,
    };
    hex.len() == len && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The index entry a WASI runtime runs: `wasi/wasm` (or any wasi OS or
/// wasm architecture).
fn choose_platform(index: &Index) -> Option<&Descriptor> {
    index
        .manifests
        .iter()
        .find(|m| m.platform.as_ref().is_some_and(Platform::is_wasm))
}

#[derive(Debug, Default, Deserialize)]
struct OciConfig {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    config: Option<ExecConfig>,
}

impl OciConfig {
    fn platform(&self) -> Option<String> {
        (!self.os.is_empty()).then(|| format!("{}/{}", self.os, self.architecture))
    }
}

#[derive(Debug, Default, Deserialize)]
struct ExecConfig {
    #[serde(rename = "Entrypoint", default)]
    entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    cmd: Option<Vec<String>>,
    #[serde(rename = "Env", default)]
    env: Option<Vec<String>>,
    #[serde(rename = "WorkingDir", default)]
    working_dir: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wasi_entry_of_an_index_is_chosen() {
        let index: Index = serde_json::from_str(
            r#"{"manifests":[
                {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:a","size":1,"platform":{"os":"linux","architecture":"amd64"}},
                {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:b","size":1,"platform":{"os":"wasi","architecture":"wasm"}}]}"#,
        )
        .unwrap();
        assert_eq!(choose_platform(&index).unwrap().digest, "sha256:b");
        let linux_only = Index {
            manifests: index.manifests[..1].to_vec(),
        };
        assert!(choose_platform(&linux_only).is_none());
        assert_eq!(linux_only.platforms(), vec!["linux/amd64".to_string()]);
    }

    #[test]
    fn digests_that_could_name_other_files_are_refused() {
        let r = ImageRef::parse("127.0.0.1:5000/app:1").unwrap();
        let hex = "a".repeat(64);
        let manifest = |layer: &str| {
            format!(
                r#"{{"config":{{"mediaType":"{OCI_MANIFEST}","digest":"sha256:{hex}","size":1}},"layers":[{{"mediaType":"{WASM_LAYER}","digest":"{layer}","size":1}}]}}"#
            )
        };
        assert!(parse_manifest(manifest(&format!("sha256:{hex}")).as_bytes(), &r).is_ok());
        for bad in [
            "sha256:../../../etc/passwd",
            "sha256:ABC",
            "md5:00",
            "sha256:",
            "/etc",
        ] {
            let err = parse_manifest(manifest(bad).as_bytes(), &r)
                .err()
                .expect(bad);
            assert!(err.to_string().contains("malformed digest"), "{err}");
        }
    }
}
