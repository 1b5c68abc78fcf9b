//! Host directories opened once and held.
//!
//! A path is only a name: between the moment a caller checks where a path
//! leads and the moment a container opens it, a symlink may be put in its
//! way, and the container would get whatever the symlink points at. A
//! [`HostDir`] opens the directory first and learns where it really is
//! from the open descriptor ([`HostDir::real_path`]), so the caller checks
//! the directory it holds, not a name; every later open goes through the
//! held descriptor (`/proc/self/fd/N`) and reaches that same directory,
//! whatever happens to its path since.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An open host directory.
#[derive(Clone)]
pub struct HostDir {
    fd: Arc<OwnedFd>,
    /// Where the directory was when it was opened, symlinks resolved.
    real: PathBuf,
}

impl HostDir {
    /// Opens the directory at `path`, following symlinks on the way.
    pub fn open(path: &Path) -> io::Result<HostDir> {
        let name = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the path"))?;
        // SAFETY: `name` is a NUL-terminated path; the descriptor returned
        // is owned here and nowhere else.
        let fd = unsafe {
            let fd = libc::open(
                name.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            OwnedFd::from_raw_fd(fd)
        };
        let real = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
        if !real.is_absolute() {
            // Not a directory of this filesystem tree ("(deleted)" aside,
            // the kernel names such a descriptor without a leading '/').
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is not reachable from /", path.display()),
            ));
        }
        Ok(HostDir {
            fd: Arc::new(fd),
            real,
        })
    }

    /// Where the directory really is (as of opening it).
    pub fn real_path(&self) -> &Path {
        &self.real
    }

    /// A path that opens this very directory for as long as it is held.
    pub(crate) fn handle(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    /// Opens `sub` (a relative path of plain names) below this directory,
    /// making the directories that are missing, one step at a time; each
    /// step must still be below this directory, so a symlink on the way
    /// that leads out is refused before anything is made out there.
    pub fn make_below(&self, sub: &Path) -> io::Result<HostDir> {
        let mut here = self.clone();
        for step in sub.components() {
            let std::path::Component::Normal(name) = step else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is not a plain relative path", sub.display()),
                ));
            };
            let next = here.handle().join(name);
            match std::fs::create_dir(&next) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            here = HostDir::open(&next)?;
            if !here.real.starts_with(&self.real) {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "{} leads out of {} (to {})",
                        sub.display(),
                        self.real.display(),
                        here.real.display()
                    ),
                ));
            }
        }
        Ok(here)
    }
}

impl fmt::Debug for HostDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HostDir").field(&self.real).finish()
    }
}

impl PartialEq for HostDir {
    fn eq(&self, other: &HostDir) -> bool {
        self.real == other.real
    }
}

impl Eq for HostDir {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_directory_is_reached_after_its_path_is_swapped() {
        let base = tempfile::tempdir().unwrap();
        let checked = base.path().join("checked");
        std::fs::create_dir(&checked).unwrap();
        std::fs::write(checked.join("mine"), "x").unwrap();
        let held = HostDir::open(&checked).unwrap();
        assert_eq!(held.real_path(), std::fs::canonicalize(&checked).unwrap());
        // Swap the path for a symlink to somewhere else.
        let elsewhere = base.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::rename(&checked, base.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &checked).unwrap();
        assert!(
            held.handle().join("mine").exists(),
            "the held directory is reached"
        );
    }

    #[test]
    fn symlinks_are_resolved_before_anyone_checks() {
        let base = tempfile::tempdir().unwrap();
        let link = base.path().join("escape");
        std::os::unix::fs::symlink("/", &link).unwrap();
        assert_eq!(HostDir::open(&link).unwrap().real_path(), Path::new("/"));
    }

    /// Regression: a symlink inside a volume took a subPath mount out of
    /// the volume.
    #[test]
    fn below_refuses_a_way_out() {
        let base = tempfile::tempdir().unwrap();
        let volume = base.path().join("volume");
        std::fs::create_dir_all(volume.join("inside")).unwrap();
        std::os::unix::fs::symlink("../..", volume.join("out")).unwrap();
        let held = HostDir::open(&volume).unwrap();
        let made = held.make_below(Path::new("inside/new/deeper")).unwrap();
        assert_eq!(made.real_path(), held.real_path().join("inside/new/deeper"));
        let error = held.make_below(Path::new("out/made")).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
        assert!(!base.path().parent().unwrap().join("made").exists());
    }
}
