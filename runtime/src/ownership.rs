//! `wasmkube:host/file-owner`: the owner, group, permission bits and link
//! count of a file in a container's filesystem, which WASI's `stat` does
//! not carry (the toolbox's `ls -l` shows them).
//!
//! The guest names a file by its absolute guest path; the host maps it
//! through the container's mount table and answers only for files that
//! really lie inside a mount.

use std::path::{Component, Path, PathBuf};

use crate::host_wit::file_owner;
use file_owner::Ownership;

/// A container's view of its filesystem: guest mount paths to host
/// directories, longest first so the most specific mount wins.
#[derive(Debug, Clone, Default)]
pub(crate) struct MountTable {
    mounts: Vec<(String, PathBuf)>,
}

impl MountTable {
    pub(crate) fn new(mut mounts: Vec<(String, PathBuf)>) -> Self {
        mounts.sort_by_key(|m| std::cmp::Reverse(m.0.len()));
        MountTable { mounts }
    }

    /// The host path behind an absolute guest path, if it lies in a mount
    /// (symlinks included: a link pointing out of its mount is not followed).
    pub(crate) fn resolve(&self, guest: &str) -> Option<PathBuf> {
        let guest = Path::new(guest);
        if !guest.is_absolute()
            || guest
                .components()
                .any(|c| matches!(c, Component::ParentDir))
        {
            return None;
        }
        let (prefix, host_root) = self
            .mounts
            .iter()
            .find(|(prefix, _)| guest.starts_with(prefix))?;
        let rest = guest.strip_prefix(prefix).ok()?;
        let host = host_root.join(rest);
        let root = host_root.canonicalize().ok()?;
        // Check the parent's real location (the file itself may be a link,
        // which `symlink_metadata` describes without following).
        let parent = host
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| host.clone());
        if !parent.canonicalize().ok()?.starts_with(&root) && host != *host_root {
            return None;
        }
        Some(host)
    }

    fn stat(&self, guest: &str) -> Option<Ownership> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(self.resolve(guest)?).ok()?;
        Some(Ownership {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
            links: meta.nlink(),
        })
    }
}

impl file_owner::Host for crate::container::GuestState {
    fn stat(&mut self, path: String) -> Option<Ownership> {
        self.mounts.stat(&path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_mount_wins_and_nothing_escapes() {
        let root = tempfile::tempdir().unwrap();
        let vol = tempfile::tempdir().unwrap();
        std::fs::write(vol.path().join("f"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", vol.path().join("out")).unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        let table = MountTable::new(vec![
            ("/".into(), root.path().to_path_buf()),
            ("/var/log".into(), vol.path().to_path_buf()),
        ]);
        assert_eq!(table.resolve("/var/log/f").unwrap(), vol.path().join("f"));
        assert_eq!(table.resolve("/etc/x").unwrap(), root.path().join("etc/x"));
        assert!(table.resolve("/var/log/../../x").is_none());
        assert!(table.resolve("relative").is_none());
        // The link itself is described; what lies behind it is not reachable.
        assert!(table.stat("/var/log/out").is_some());
        assert!(table.stat("/var/log/out/passwd").is_none());
        let own = table.stat("/var/log/f").unwrap();
        assert_eq!(own.links, 1);
        assert_eq!(own.mode & 0o600, 0o600);
    }
}
