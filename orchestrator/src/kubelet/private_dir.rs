//! Directories only the server's user may enter: the data directory (the
//! store, the encryption key, volumes, logs) and the memory directory
//! under `/dev/shm` where Secret and projected volumes are written.
//!
//! The memory directory's name is predictable (it is derived from the
//! data directory, so a restarted server finds and clears what a killed
//! one left). `/dev/shm` is writable by every local user, so another user
//! could make that directory first, open to all or as a symlink, and read
//! the Secrets written into it. It is therefore cleared and made afresh at
//! start, then checked (a directory, not a symlink, this user's, mode
//! 0700) and refused otherwise. `/dev/shm` is sticky, so once it is ours
//! nobody else can rename or replace it.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// Why the memory directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{path} belongs to another user (uid {owner}) and cannot be removed: remove it, or run the server as that user"
    )]
    Foreign { path: String, owner: u32 },
    #[error(
        "{path} was made by someone else while the server made it (owner uid {owner}, mode {mode:o}, {kind}): refused"
    )]
    Taken {
        path: String,
        owner: u32,
        mode: u32,
        kind: &'static str,
    },
    #[error("cannot prepare {path}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// Makes `dir` (with its parents) and leaves it open to its owner only.
pub fn secure_data_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    if fs::metadata(dir)?.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Clears what an earlier run left at `dir` (or what someone else put
/// there, where this user may remove it) and makes it afresh, this user's
/// and mode 0700.
pub fn claim_memory_dir(dir: &Path) -> Result<(), Error> {
    let path = dir.display().to_string();
    let io_error = |source| Error::Io {
        path: path.clone(),
        source,
    };
    match fs::symlink_metadata(dir) {
        Ok(found) => {
            // A symlink or file is removed itself, never followed.
            let removed = if found.file_type().is_dir() {
                fs::remove_dir_all(dir)
            } else {
                fs::remove_file(dir)
            };
            match removed {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    return Err(Error::Foreign {
                        path,
                        owner: found.uid(),
                    });
                }
                Err(e) => return Err(io_error(e)),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(e)),
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        // Made by someone else between the removal and now: checked below.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_error(e)),
    }
    let made = fs::symlink_metadata(dir).map_err(io_error)?;
    let mode = made.permissions().mode() & 0o7777;
    let kind = if made.file_type().is_symlink() {
        "a symlink"
    } else if made.file_type().is_dir() {
        "a directory"
    } else {
        "not a directory"
    };
    if kind != "a directory" || made.uid() != effective_uid() || mode != 0o700 {
        return Err(Error::Taken {
            path,
            owner: made.uid(),
            mode,
            kind,
        });
    }
    Ok(())
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn the_data_dir_is_the_owners_only() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("a/b");
        secure_data_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        secure_data_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700, "an existing open data dir is closed");
    }

    /// Regression: a memory dir another user made first (open to all, or
    /// a symlink to their own directory) was used as it was.
    #[test]
    fn a_planted_memory_dir_is_replaced() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("wasmkube-x");
        // Open to everyone, with a file in it.
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        fs::write(dir.join("planted"), "x").unwrap();
        claim_memory_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert!(!dir.join("planted").exists());
        // A symlink to someone's directory: the link goes, its target stays
        // untouched.
        let theirs = base.path().join("theirs");
        fs::create_dir(&theirs).unwrap();
        fs::write(theirs.join("keep"), "x").unwrap();
        fs::remove_dir(&dir).unwrap();
        std::os::unix::fs::symlink(&theirs, &dir).unwrap();
        claim_memory_dir(&dir).unwrap();
        assert!(fs::symlink_metadata(&dir).unwrap().file_type().is_dir());
        assert_eq!(mode(&dir), 0o700);
        assert!(
            theirs.join("keep").exists(),
            "the link's target is left alone"
        );
    }
}
