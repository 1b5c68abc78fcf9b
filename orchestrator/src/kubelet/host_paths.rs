//! Which host directories pods may mount (`hostPath` volumes, and the
//! paths of hostPath and local PersistentVolumes), judged by where each
//! really is.
//!
//! A directory is opened first and checked where the open descriptor says
//! it is, symlinks resolved ([`HostDir`]): `ln -s / /srv/ok/escape` makes
//! `/srv/ok/escape` the host's root, which is what is checked. The
//! container then opens the held directory itself, so swapping a symlink
//! in after the check changes nothing. Directories to be made are checked
//! where they would be before anything is made.
//!
//! Two rules: with `serve --allowed-host-paths`, only those directories and
//! what is below them; and never the server's data directory (it holds the
//! store and the encryption key), what is below it or what contains it,
//! except the volumes its own provisioner made there.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use wasmkube_runtime::HostDir;

/// Where the server's own provisioner (the `local-path` class) makes
/// volumes, under a data directory.
pub fn provisioned_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("volumes")
}

/// Why a host directory cannot be mounted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Never, by the rules: the pod does not run as written.
    #[error("{0}")]
    NotAllowed(String),
    /// Not now (missing, unreadable): worth another try.
    #[error("{0}")]
    Unavailable(String),
}

/// The rules, for one server.
#[derive(Debug, Clone, Default)]
pub struct HostPathPolicy {
    /// Directories pods may use (and what is below them), as they really
    /// are; every directory when `None`.
    allowed: Option<Arc<[PathBuf]>>,
    /// The server's data directory, as it really is.
    data_dir: Option<PathBuf>,
}

/// How a directory is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Made when missing (hostPath type `DirectoryOrCreate` or none).
    Create,
    /// Must exist (type `Directory`, persistent volumes).
    Refuse,
}

impl HostPathPolicy {
    /// The rules of a server with `data_dir`, and `allowed` directories if
    /// it was given any.
    pub fn new(data_dir: &Path, allowed: Option<&[PathBuf]>) -> HostPathPolicy {
        let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        HostPathPolicy {
            allowed: allowed.map(|dirs| dirs.iter().map(|d| real(d)).collect()),
            data_dir: Some(real(data_dir)),
        }
    }

    /// Opens the directory at `path` for a pod, making it first with
    /// [`Missing::Create`], if the rules allow where it really is.
    pub fn open(&self, path: &Path, missing: Missing) -> Result<HostDir, Refused> {
        self.open_checked(path, missing, |asked, real| self.check(asked, real))
    }

    /// Opens the directory of a persistent volume: the same rules, but the
    /// volumes the server's provisioner made under its data directory are
    /// its to mount.
    pub fn open_claimed(&self, path: &Path, missing: Missing) -> Result<HostDir, Refused> {
        let provisioned = self.data_dir.as_deref().map(provisioned_dir);
        self.open_checked(path, missing, |asked, real| match &provisioned {
            Some(provisioned) if real.starts_with(provisioned) && real != provisioned => Ok(()),
            _ => self.check(asked, real),
        })
    }

    /// Opens `path` (made first where missing, if asked), checking where
    /// it would be before anything is made and where it is once opened.
    fn open_checked(
        &self,
        path: &Path,
        missing: Missing,
        check: impl Fn(&Path, &Path) -> Result<(), Refused>,
    ) -> Result<HostDir, Refused> {
        let (base, rest) = existing_base(path)?;
        if !rest.as_os_str().is_empty() && missing == Missing::Refuse {
            return Err(Refused::Unavailable(format!(
                "hostPath type check failed: {} is not a directory",
                path.display()
            )));
        }
        let base = HostDir::open(&base).map_err(|e| describe(path, &e))?;
        check(path, &base.real_path().join(&rest))?;
        let held = if rest.as_os_str().is_empty() {
            base
        } else {
            base.make_below(&rest).map_err(|e| describe(path, &e))?
        };
        check(path, held.real_path())?;
        Ok(held)
    }

    fn check(&self, asked: &Path, real: &Path) -> Result<(), Refused> {
        let shown = if asked == real {
            format!("{:?}", asked.display().to_string())
        } else {
            format!(
                "{:?} (really {})",
                asked.display().to_string(),
                real.display()
            )
        };
        if let Some(allowed) = self.allowed.as_deref()
            && !allowed.iter().any(|a| real.starts_with(a))
        {
            let list: Vec<String> = allowed.iter().map(|a| a.display().to_string()).collect();
            let granted = if list.is_empty() {
                "no host paths".to_string()
            } else {
                format!("only host paths under {}", list.join(", "))
            };
            return Err(Refused::NotAllowed(format!(
                "{shown} is not allowed: this server lets pods use {granted} (serve --allowed-host-paths; ClusterBuilder::allow_host_path when embedded)"
            )));
        }
        if let Some(data) = &self.data_dir
            && (real.starts_with(data) || data.starts_with(real))
        {
            return Err(Refused::NotAllowed(format!(
                "{shown} is not allowed: pods may not mount the server's data directory ({}), anything in it or anything that contains it",
                data.display()
            )));
        }
        Ok(())
    }
}

/// The longest part of `path` that exists, and the plain names after it.
fn existing_base(path: &Path) -> Result<(PathBuf, PathBuf), Refused> {
    if !path.is_absolute() {
        return Err(Refused::NotAllowed(format!(
            "{} is not an absolute path",
            path.display()
        )));
    }
    let mut base = path.to_path_buf();
    let mut rest = Vec::new();
    while std::fs::symlink_metadata(&base).is_err() {
        match base.components().next_back() {
            Some(Component::Normal(name)) => rest.push(name.to_os_string()),
            _ => {
                return Err(Refused::NotAllowed(format!(
                    "{} must not contain '..' or '.'",
                    path.display()
                )));
            }
        }
        base.pop();
    }
    Ok((base, rest.iter().rev().collect()))
}

fn describe(path: &Path, e: &io::Error) -> Refused {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => Refused::Unavailable(format!(
            "hostPath type check failed: {} is not a directory",
            path.display()
        )),
        // A way out of the directory below it, found as it was made.
        io::ErrorKind::PermissionDenied => Refused::NotAllowed(format!("{}: {e}", path.display())),
        _ => Refused::Unavailable(format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Host {
        _base: tempfile::TempDir,
        root: PathBuf,
    }

    /// `<root>/data` (a data dir), `<root>/srv/ok` (allowed), `<root>/other`.
    fn host() -> (Host, HostPathPolicy) {
        let base = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(base.path()).unwrap();
        for dir in ["data/volumes/pvc-1", "srv/ok", "other"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        let policy = HostPathPolicy::new(&root.join("data"), Some(&[root.join("srv/ok")]));
        (Host { _base: base, root }, policy)
    }

    /// Regression: `ln -s / /srv/ok/escape` let a pod allowed only
    /// `/srv/ok` mount the host's root.
    #[test]
    fn a_symlink_out_of_an_allowed_dir_is_refused() {
        let (host, policy) = host();
        std::os::unix::fs::symlink("/", host.root.join("srv/ok/escape")).unwrap();
        let error = policy
            .open(&host.root.join("srv/ok/escape"), Missing::Create)
            .unwrap_err()
            .to_string();
        assert!(error.contains("(really /)"), "{error}");
        assert!(error.contains("--allowed-host-paths"), "{error}");
        // Nor can a directory be made through it.
        let error = policy
            .open(
                &host.root.join("srv/ok/escape/made-by-pod"),
                Missing::Create,
            )
            .unwrap_err()
            .to_string();
        assert!(error.contains("is not allowed"), "{error}");
        assert!(!Path::new("/made-by-pod").exists());
        let inside = policy
            .open(&host.root.join("srv/ok/a/b"), Missing::Create)
            .unwrap();
        assert_eq!(inside.real_path(), host.root.join("srv/ok/a/b"));
    }

    /// Regression: without `--allowed-host-paths` a pod mounted the data
    /// directory and read `encryption.key`.
    #[test]
    fn the_data_dir_and_what_holds_it_are_never_mounted() {
        let (host, _) = host();
        let open = HostPathPolicy::new(&host.root.join("data"), None);
        for dir in ["data", "data/volumes", ""] {
            let error = open
                .open(&host.root.join(dir), Missing::Refuse)
                .unwrap_err()
                .to_string();
            assert!(error.contains("data directory"), "{dir}: {error}");
        }
        std::os::unix::fs::symlink(host.root.join("data"), host.root.join("other/link")).unwrap();
        let error = open
            .open(&host.root.join("other/link"), Missing::Refuse)
            .unwrap_err()
            .to_string();
        assert!(error.contains("data directory"), "{error}");
        assert!(open.open(&host.root.join("other"), Missing::Refuse).is_ok());
        // Its provisioner's volumes are mounted through their claims.
        let provisioned = host.root.join("data/volumes");
        assert!(
            open.open_claimed(&provisioned.join("pvc-1"), Missing::Refuse)
                .is_ok()
        );
        assert!(
            open.open_claimed(&provisioned.join("pvc-2"), Missing::Create)
                .is_ok()
        );
        assert!(open.open_claimed(&provisioned, Missing::Refuse).is_err());
        assert!(
            open.open_claimed(&host.root.join("data"), Missing::Refuse)
                .is_err()
        );
    }

    #[test]
    fn a_missing_directory_is_made_or_refused_as_asked() {
        let (host, policy) = host();
        let error = policy
            .open(&host.root.join("srv/ok/missing"), Missing::Refuse)
            .unwrap_err()
            .to_string();
        assert!(error.contains("is not a directory"), "{error}");
        let error = policy
            .open(&host.root.join("other/x"), Missing::Create)
            .unwrap_err()
            .to_string();
        assert!(error.contains("--allowed-host-paths"), "{error}");
        assert!(
            !host.root.join("other/x").exists(),
            "nothing made where it is refused"
        );
    }
}
