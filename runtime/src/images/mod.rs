//! The local, content-addressed image store, and where its images come
//! from: the binary's built-ins, `wasmkube image import`, `.wasm` files on
//! disk, and OCI registries ([`registry`]).
//!
//! An image is one WebAssembly component to run plus its config
//! (entrypoint, cmd, env, working dir: the parts of an OCI image config a
//! WASI guest can use), and for images pulled with file layers, a
//! read-only tree of files every container of the image starts from. WASI
//! p1 core modules are turned into components when they enter the store,
//! so the rest of the runtime has one execution path.
//!
//! Layout under the store root:
//!
//! ```text
//! blobs/sha256/<hex>.wasm          components, named by the digest of their bytes
//! trees/<hex>/                     an image's files, named by its manifest's digest
//! refs/<name>/<tag>.json           an ImageRecord: reference -> component, tree, config
//! refs/<name>/@<hex>.json          the same for a reference pinned by digest
//! tmp/                             pulls in progress (never an image)
//! ```
//!
//! A record is written last, atomically, after everything it names is in
//! place: a pull cut short leaves only `tmp/` litter, removed at next open.

pub mod credentials;
pub mod gc;
pub mod layers;
pub mod push;
mod reference;
pub mod registry;

pub use reference::{ImageRef, InvalidReference};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Errors of the image store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The reference is not a valid image name.
    #[error(transparent)]
    InvalidReference(#[from] InvalidReference),
    /// No image of that name is in the store.
    #[error(
        "image {reference:?} is not in the local image store (it has: {}); \
         use one of those, a path to a .wasm file, or a registry image (host[:port]/name:tag)",
        known.join(", ")
    )]
    NotFound {
        /// What was asked for.
        reference: String,
        /// What the store has, to help the user.
        known: Vec<String>,
    },
    /// The bytes are neither a component nor a core module.
    #[error("{what} is not a WebAssembly module or component")]
    NotWasm {
        /// The image or file.
        what: String,
    },
    /// Turning a WASI p1 module into a component failed.
    #[error("converting the WASI p1 module {what} to a component: {message}")]
    Convert {
        /// The image or file.
        what: String,
        /// What wit-component said.
        message: String,
    },
    /// Reading or writing the store failed.
    #[error("image store {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
}

type Result<T, E = Error> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The parts of an OCI image config that mean something to a WASI guest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageConfig {
    /// Replaced by a container's `command`.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// Replaced by a container's `args`.
    #[serde(default)]
    pub cmd: Vec<String>,
    /// Environment as `NAME=value`, below the container's own `env`.
    #[serde(default)]
    pub env: Vec<String>,
    /// Used when the container sets no `workingDir`.
    #[serde(default)]
    pub working_dir: Option<String>,
}

impl ImageConfig {
    /// The `PATH` its `Env` sets, if any.
    pub fn path(&self) -> Option<&str> {
        self.env.iter().find_map(|e| e.strip_prefix("PATH="))
    }
}

/// The regular files under `tree` (symlinks not followed) and their
/// metadata.
pub(crate) fn files_in(tree: &Path) -> Vec<(PathBuf, fs::Metadata)> {
    let mut files = Vec::new();
    let mut stack = vec![tree.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok(meta) = fs::symlink_metadata(entry.path()) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                files.push((entry.path(), meta));
            }
        }
    }
    files
}

/// What the store knows about one image reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRecord {
    /// The reference, as [`ImageRef`] prints it (`name:tag`, `name@sha256:…`).
    pub reference: String,
    /// `sha256:<hex>` of the component to run (the entrypoint's).
    pub digest: String,
    /// `sha256:<hex>` of the bytes imported (a p1 module before conversion),
    /// so importing the same bytes again is recognised without converting;
    /// for a pulled image, the digest of the manifest the reference pointed
    /// to (an index's, for a multi-platform image), so a re-pull under
    /// `Always` knows whether the tag moved.
    pub source_digest: String,
    /// Size of the image on disk in bytes: its components and its files.
    pub size: u64,
    /// Entrypoint, cmd, env.
    pub config: ImageConfig,
    /// `sha256:<hex>` of the platform manifest pulled, for `imageID`
    /// (`host/name@sha256:…`); `None` for local images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<String>,
    /// The image's file tree under `trees/`, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<String>,
    /// Every WebAssembly file in the tree (absolute guest path) and the
    /// component it became, so argv\[0\] can name any of them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub programs: BTreeMap<String, String>,
    /// When it was last pulled or imported (RFC 3339), for garbage
    /// collection's least-recently-used order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulled_at: Option<String>,
}

/// An image ready to be loaded: where its component is and how to run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The reference it was resolved from.
    pub reference: String,
    /// `sha256:<hex>` of the component.
    pub digest: String,
    /// The component file.
    pub path: PathBuf,
    /// Entrypoint, cmd, env.
    pub config: ImageConfig,
    /// `host/name@sha256:…` for a pulled image; the component's digest otherwise.
    pub image_id: String,
    /// The image's files, copied into each container's root.
    pub tree: Option<PathBuf>,
    /// WebAssembly files of the tree and their components.
    pub programs: BTreeMap<String, String>,
}

impl Image {
    /// The component argv\[0\] runs in an image with files: the
    /// WebAssembly file it names (absolute, relative to `working_dir`, or
    /// found on `PATH`), following the tree's symlinks. `None` when it
    /// names no WebAssembly file of the image.
    pub fn program(
        &self,
        argv0: &str,
        path_env: Option<&str>,
        working_dir: &str,
    ) -> Option<(String, PathBuf)> {
        let tree = self.tree.as_ref()?;
        let digest = find_program(tree, &self.programs, argv0, path_env, working_dir)?;
        let dir = self
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let path = dir.join(blob_file(&digest));
        Some((digest, path))
    }
}

/// The component of the WebAssembly file `argv0` names in `tree`.
pub(crate) fn find_program(
    tree: &Path,
    programs: &BTreeMap<String, String>,
    argv0: &str,
    path_env: Option<&str>,
    working_dir: &str,
) -> Option<String> {
    let candidates: Vec<String> = if argv0.contains('/') {
        vec![join_guest(working_dir, argv0)]
    } else {
        path_env
            .unwrap_or(DEFAULT_PATH)
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| join_guest(d, argv0))
            .collect()
    };
    candidates.into_iter().find_map(|guest| {
        let real = follow_links(tree, &guest)?;
        programs.get(&real).cloned()
    })
}

/// The `PATH` a container gets when its image sets none (containerd's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `dir` joined with `path` as a guest path, normalised (`..` stops at `/`).
fn join_guest(dir: &str, path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let full = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{dir}/{path}")
    };
    for part in full.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The guest path `guest` really names in `tree`, its symlinks followed
/// inside the tree (at most 40, as Linux allows).
fn follow_links(tree: &Path, guest: &str) -> Option<String> {
    let mut current = guest.to_string();
    for _ in 0..40 {
        let host = tree.join(current.trim_start_matches('/'));
        let meta = fs::symlink_metadata(&host).ok()?;
        if !meta.file_type().is_symlink() {
            return meta.is_file().then_some(current);
        }
        let target = fs::read_link(&host).ok()?;
        let dir = current.rsplit_once('/').map_or("/", |(d, _)| d);
        current = join_guest(if dir.is_empty() { "/" } else { dir }, target.to_str()?);
    }
    None
}

fn blob_file(digest: &str) -> String {
    format!("{}.wasm", digest.trim_start_matches("sha256:"))
}

/// The content-addressed store under `<data dir>/images`.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
    /// Where bare names not in the store are looked for (`serve
    /// --default-registry`).
    default_registry: Option<String>,
}

/// `sha256:<hex>` of some bytes.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The current time, RFC 3339.
fn now() -> String {
    jiff::Timestamp::now().to_string()
}

impl ImageStore {
    /// Opens (creating) a store at `root`; pulls a previous run left
    /// unfinished are cleared away.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for sub in ["blobs/sha256", "refs", "trees", "tmp"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        Ok(ImageStore {
            root,
            default_registry: None,
        })
    }

    /// Sends bare names that are not in the store to `registry`.
    pub fn with_default_registry(mut self, registry: Option<String>) -> Self {
        self.default_registry = registry;
        self
    }

    /// The registry bare names go to, if any.
    pub fn default_registry(&self) -> Option<&str> {
        self.default_registry.as_deref()
    }

    /// Where a pull stages its blobs and trees.
    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Removes what unfinished pulls left (call when no pull runs: at open
    /// of a server).
    pub fn clear_unfinished(&self) -> Result<()> {
        let tmp = self.tmp_dir();
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).map_err(io_err(&tmp))
    }

    pub(crate) fn blob_path(&self, digest: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(blob_file(digest))
    }

    pub(crate) fn tree_path(&self, manifest_digest: &str) -> PathBuf {
        self.root
            .join("trees")
            .join(manifest_digest.trim_start_matches("sha256:"))
    }

    fn ref_path(&self, r: &ImageRef) -> PathBuf {
        let file = match (&r.digest, &r.tag) {
            (Some(digest), _) => format!("@{}.json", digest.trim_start_matches("sha256:")),
            (None, Some(tag)) => format!("{tag}.json"),
            (None, None) => "latest.json".to_string(),
        };
        self.root.join("refs").join(r.name()).join(file)
    }

    /// Stores `bytes` (a component, or a p1 module which is converted) and
    /// returns the component's digest and size.
    pub(crate) fn put_blob(&self, what: &str, bytes: &[u8]) -> Result<(String, u64)> {
        let converted =
            crate::convert::to_component(bytes).map_err(
                |e| match wasmparser::Parser::is_core_wasm(bytes) {
                    true => Error::Convert {
                        what: what.to_string(),
                        message: e.to_string(),
                    },
                    false => Error::NotWasm {
                        what: what.to_string(),
                    },
                },
            )?;
        let bytes: &[u8] = converted.as_deref().unwrap_or(bytes);
        let digest = digest_of(bytes);
        let path = self.blob_path(&digest);
        if !path.exists() {
            write_atomically(&path, bytes)?;
        }
        Ok((digest, bytes.len() as u64))
    }

    /// Imports a wasm file or module's bytes as `reference`, replacing what
    /// that tag pointed to. Re-importing identical bytes changes nothing.
    pub fn import(
        &self,
        reference: &ImageRef,
        bytes: &[u8],
        config: ImageConfig,
    ) -> Result<ImageRecord> {
        let source_digest = digest_of(bytes);
        if let Some(existing) = self.record(reference)?
            && existing.source_digest == source_digest
            && existing.config == config
            && existing.tree.is_none()
            && self.blob_path(&existing.digest).exists()
        {
            return Ok(existing);
        }
        let (digest, size) = self.put_blob(&reference.to_string(), bytes)?;
        let record = ImageRecord {
            reference: reference.to_string(),
            digest,
            source_digest,
            size,
            config,
            manifest_digest: None,
            tree: None,
            programs: BTreeMap::new(),
            pulled_at: Some(now()),
        };
        self.write_record(reference, &record)?;
        Ok(record)
    }

    /// Imports a component as `reference` with files (absolute guest paths
    /// and contents) and the component itself at `program` among them: an
    /// image with files, such as the built-in `http-server` with nginx's
    /// document root. Re-importing the same changes nothing.
    pub fn import_with_files(
        &self,
        reference: &ImageRef,
        bytes: &[u8],
        config: ImageConfig,
        files: &[(&str, &[u8])],
        program: &str,
    ) -> Result<ImageRecord> {
        let (digest, component_size) = self.put_blob(&reference.to_string(), bytes)?;
        let mut hasher = Sha256::new();
        hasher.update(digest.as_bytes());
        hasher.update(program.as_bytes());
        for (path, contents) in files {
            hasher.update([0]);
            hasher.update(path.as_bytes());
            hasher.update([0]);
            hasher.update(contents);
        }
        let tree_id = format!("sha256:{}", hex::encode(hasher.finalize()));
        let tree = self.tree_path(&tree_id);
        if let Some(existing) = self.record(reference)?
            && existing.tree.as_deref() == Some(tree_id.as_str())
            && existing.config == config
            && tree.is_dir()
        {
            return Ok(existing);
        }
        if !tree.is_dir() {
            // Staged under a name of this process's own: two processes
            // seeding one store (`play` runs side by side) never share it.
            let staged = self.tmp_dir().join(format!(
                "import-{}-{}-{}",
                tree_id.trim_start_matches("sha256:"),
                std::process::id(),
                STAGING.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&staged);
            let write = |path: &str, contents: &[u8]| -> Result<()> {
                let dest = staged.join(path.trim_start_matches('/'));
                if let Some(parent) = dest.parent() {
                    fs::create_dir_all(parent).map_err(io_err(parent))?;
                }
                fs::write(&dest, contents).map_err(io_err(&dest))
            };
            for (path, contents) in files {
                write(path, contents)?;
            }
            let component =
                fs::read(self.blob_path(&digest)).map_err(io_err(&self.blob_path(&digest)))?;
            write(program, &component)?;
            if let Err(e) = fs::rename(&staged, &tree) {
                // Another process put the same tree in place first.
                let _ = fs::remove_dir_all(&staged);
                if !tree.is_dir() {
                    return Err(io_err(&tree)(e));
                }
            }
        }
        let size = component_size + files.iter().map(|(_, c)| c.len() as u64).sum::<u64>();
        let record = ImageRecord {
            reference: reference.to_string(),
            source_digest: digest_of(bytes),
            digest: digest.clone(),
            size,
            config,
            manifest_digest: None,
            tree: Some(tree_id),
            programs: BTreeMap::from([(program.to_string(), digest)]),
            pulled_at: Some(now()),
        };
        self.write_record(reference, &record)?;
        Ok(record)
    }

    /// Makes `reference` name `record`: the last step of an import or pull.
    pub(crate) fn write_record(&self, reference: &ImageRef, record: &ImageRecord) -> Result<()> {
        let json = serde_json::to_vec_pretty(record).expect("image records serialise");
        let path = self.ref_path(reference);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        write_atomically(&path, &json)
    }

    /// The record of an image reference, if the store has it.
    pub fn record(&self, reference: &ImageRef) -> Result<Option<ImageRecord>> {
        let path = self.ref_path(reference);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Io {
                    path: path.clone(),
                    source: io::Error::new(io::ErrorKind::InvalidData, e),
                }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Forgets `reference` (its blobs and tree stay until [`Self::prune`]
    /// finds nothing else naming them). Whether it was there.
    pub fn remove(&self, reference: &ImageRef) -> Result<bool> {
        let path = self.ref_path(reference);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Every image reference, sorted.
    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        let mut out = Vec::new();
        let refs = self.root.join("refs");
        let mut stack = vec![refs.clone()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).map_err(io_err(&dir))?.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "json")
                    && let Ok(bytes) = fs::read(&path)
                    && let Ok(record) = serde_json::from_slice::<ImageRecord>(&bytes)
                {
                    out.push(record);
                }
            }
        }
        out.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(out)
    }

    /// The reference `image:` means here: as written, or at the default
    /// registry for a bare name the store does not have.
    pub fn canonical(&self, reference: &str) -> Result<ImageRef> {
        let r = ImageRef::parse(reference)?;
        if r.registry.is_none()
            && let Some(registry) = &self.default_registry
            && self.record(&r)?.is_none()
        {
            return Ok(r.at(registry));
        }
        Ok(r)
    }

    /// Resolves what a container's `image:` says: an image in the store
    /// (pulled, imported or built in), or a path to a `.wasm` file
    /// (absolute, or starting with `./`).
    pub fn resolve(&self, reference: &str) -> Result<Image> {
        if is_path_reference(reference) {
            return self.resolve_file(reference);
        }
        let r = self.canonical(reference)?;
        match self.record(&r)? {
            Some(record) => Ok(self.image(reference, record)),
            None => Err(Error::NotFound {
                reference: reference.to_string(),
                known: self.list()?.into_iter().map(|r| r.reference).collect(),
            }),
        }
    }

    /// The image `record` describes, as resolved from `reference`.
    pub(crate) fn image(&self, reference: &str, record: ImageRecord) -> Image {
        let name = ImageRef::parse(&record.reference)
            .map(|r| r.name())
            .unwrap_or_default();
        Image {
            reference: reference.to_string(),
            path: self.blob_path(&record.digest),
            image_id: match &record.manifest_digest {
                Some(manifest) => format!("{name}@{manifest}"),
                None => record.digest.clone(),
            },
            tree: record.tree.as_deref().map(|t| self.tree_path(t)),
            programs: record.programs,
            digest: record.digest,
            config: record.config,
        }
    }

    fn resolve_file(&self, reference: &str) -> Result<Image> {
        let path = Path::new(reference);
        let bytes = fs::read(path).map_err(io_err(path))?;
        let (digest, _) = self.put_blob(reference, &bytes)?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("guest")
            .to_string();
        Ok(Image {
            reference: reference.to_string(),
            path: self.blob_path(&digest),
            image_id: digest.clone(),
            digest,
            config: ImageConfig {
                entrypoint: vec![stem],
                ..ImageConfig::default()
            },
            tree: None,
            programs: BTreeMap::new(),
        })
    }
}

/// A reference naming a local file rather than a stored image.
pub fn is_path_reference(reference: &str) -> bool {
    reference.starts_with('/') || reference.starts_with("./") || reference.starts_with("../")
}

/// Tells apart the staging files and directories of one process.
static STAGING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!(
        "tmp{}-{}",
        std::process::id(),
        STAGING.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    fs::write(&tmp, bytes)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_err(path)(e)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_images_list_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let err = store.resolve("nginx:1.7.9").unwrap_err().to_string();
        assert!(
            err.contains("\"nginx:1.7.9\" is not in the local image store"),
            "{err}"
        );
    }

    #[test]
    fn garbage_is_not_wasm() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let r = ImageRef::parse("junk").unwrap();
        let err = store
            .import(&r, b"#!/bin/sh\n", ImageConfig::default())
            .unwrap_err();
        assert!(matches!(err, Error::NotWasm { .. }), "{err}");
    }
}
