//! The local, content-addressed image store.
//!
//! An image is one WebAssembly component plus its config (entrypoint, cmd,
//! env, working dir: the parts of an OCI image config a WASI guest can use).
//! WASI p1 core modules are turned into components when they enter the
//! store, so the rest of the runtime has one execution path.
//!
//! Layout under the store root:
//!
//! ```text
//! blobs/sha256/<hex>.wasm     components, named by the digest of their bytes
//! refs/<name>/<tag>.json      an ImageRecord: name:tag -> digest + config
//! ```

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Errors of the image store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The reference is not a valid image name.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// What was given.
        reference: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// No image of that name is in the store.
    #[error(
        "image {reference:?} is not in the local image store (it has: {}); \
         use one of those or a path to a .wasm file",
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

/// A `name:tag` reference into the local store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Repository name, such as `toolbox` or `library/app`.
    pub name: String,
    /// Tag, `latest` when none was given.
    pub tag: String,
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

impl ImageRef {
    /// Parses `name`, `name:tag` (names may hold `/`, `.`, `_` and `-`).
    pub fn parse(reference: &str) -> Result<Self> {
        let invalid = |reason| Error::InvalidReference {
            reference: reference.to_string(),
            reason,
        };
        if reference.contains('@') {
            return Err(invalid(
                "digest references are not supported yet; use name:tag",
            ));
        }
        let (name, tag) = match reference.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n, t),
            _ => (reference, "latest"),
        };
        if name.is_empty() {
            return Err(invalid("the name is empty"));
        }
        let name_ok = name.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        });
        if !name_ok {
            return Err(invalid(
                "names use lowercase letters, digits, '.', '_', '-' and '/' between parts",
            ));
        }
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && !tag.starts_with(['.', '-'])
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !tag_ok {
            return Err(invalid(
                "tags use letters, digits, '.', '_' and '-' (at most 128)",
            ));
        }
        Ok(ImageRef {
            name: name.to_string(),
            tag: tag.to_string(),
        })
    }
}

/// What the store knows about one tagged image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRecord {
    /// `name:tag`.
    pub reference: String,
    /// `sha256:<hex>` of the component as stored.
    pub digest: String,
    /// `sha256:<hex>` of the bytes imported (a p1 module before conversion),
    /// so importing the same bytes again is recognised without converting.
    pub source_digest: String,
    /// Size of the stored component in bytes.
    pub size: u64,
    /// Entrypoint, cmd, env.
    pub config: ImageConfig,
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
}

/// The content-addressed store under `<data dir>/images`.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

/// `sha256:<hex>` of some bytes.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl ImageStore {
    /// Opens (creating) a store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for sub in ["blobs/sha256", "refs"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        Ok(ImageStore { root })
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.root.join("blobs/sha256").join(format!("{hex}.wasm"))
    }

    fn ref_path(&self, r: &ImageRef) -> PathBuf {
        self.root
            .join("refs")
            .join(&r.name)
            .join(format!("{}.json", r.tag))
    }

    /// Stores `bytes` (a component, or a p1 module which is converted) and
    /// returns the component's digest.
    fn put_blob(&self, what: &str, bytes: &[u8]) -> Result<(String, u64)> {
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
        };
        let json = serde_json::to_vec_pretty(&record).expect("image records serialise");
        let path = self.ref_path(reference);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        write_atomically(&path, &json)?;
        Ok(record)
    }

    /// The record of a tagged image, if the store has it.
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

    /// Every tagged image, sorted by reference.
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

    /// Resolves what a container's `image:` says: a `name[:tag]` in the
    /// store, or a path to a `.wasm` file (absolute, or starting with `./`).
    pub fn resolve(&self, reference: &str) -> Result<Image> {
        if is_path_reference(reference) {
            return self.resolve_file(reference);
        }
        let r = ImageRef::parse(reference)?;
        match self.record(&r)? {
            Some(record) => Ok(Image {
                reference: reference.to_string(),
                path: self.blob_path(&record.digest),
                digest: record.digest,
                config: record.config,
            }),
            None => Err(Error::NotFound {
                reference: reference.to_string(),
                known: self.list()?.into_iter().map(|r| r.reference).collect(),
            }),
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
            digest,
            config: ImageConfig {
                entrypoint: vec![stem],
                ..ImageConfig::default()
            },
        })
    }
}

/// A reference naming a local file rather than a stored image.
pub fn is_path_reference(reference: &str) -> bool {
    reference.starts_with('/') || reference.starts_with("./") || reference.starts_with("../")
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
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
    fn references_default_to_latest_and_reject_traversal() {
        assert_eq!(
            ImageRef::parse("toolbox").unwrap().to_string(),
            "toolbox:latest"
        );
        assert_eq!(ImageRef::parse("echo-hostname:1.0.2").unwrap().tag, "1.0.2");
        assert_eq!(ImageRef::parse("lib/app:v1").unwrap().name, "lib/app");
        for bad in [
            "",
            "../etc:x",
            "a/../b",
            "UPPER",
            "a:",
            "a:-x",
            "a@sha256:00",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

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
