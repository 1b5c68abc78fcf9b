//! Unpacking image layers (tar, plain or compressed with gzip or zstd) into
//! an image's file tree, as containerd's applier does, but for a tree that
//! only WASI guests ever see:
//!
//! - whiteouts (`.wh.name`, `.wh..wh..opq`) delete what lower layers made;
//! - nothing lands outside the tree: entries with `..` are refused, no
//!   entry is written through a symlink, hard links point inside the tree,
//!   and symlink targets are rewritten to the path they mean inside the
//!   image (an absolute `/bin/busybox` becomes relative, an escaping
//!   `../../etc` stops at the image's root, as a chroot would), because a
//!   WASI preopen refuses absolute and escaping links;
//! - devices, fifos and sockets are skipped; owners are not kept (guests
//!   have no user IDs) and modes keep only the permission bits;
//! - a budget caps the bytes and entries of a whole image, so a small
//!   compressed layer cannot fill the disk.

use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

/// How a layer blob is compressed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// `+gzip` / Docker's `tar.gzip`.
    Gzip,
    /// `+zstd`.
    Zstd,
}

impl Compression {
    /// The compression a layer media type names; `None` for media types
    /// that are not tar layers at all.
    pub fn of_media_type(media_type: &str) -> Option<Compression> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip" => Some(Compression::Gzip),
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// Why a layer could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An entry would land outside the image's tree.
    #[error("layer entry {path:?} {why}")]
    Escapes {
        /// The entry's path as the tar has it.
        path: String,
        /// What it tried.
        why: &'static str,
    },
    /// The image is larger than the budget allows.
    #[error("the image exceeds {limit}")]
    TooLarge {
        /// Which limit, in words.
        limit: String,
    },
    /// The tar or its compression is broken, or the disk failed.
    #[error("unpacking a layer: {0}")]
    Io(#[from] io::Error),
}

/// Limits on one image's unpacked tree.
#[derive(Debug, Clone)]
pub struct Budget {
    /// Bytes of file content left.
    pub bytes: u64,
    /// Entries left.
    pub entries: u64,
}

impl Default for Budget {
    /// 2 GiB and 200,000 entries: more than any image a WASI guest needs,
    /// far less than a decompression bomb would write.
    fn default() -> Self {
        Budget {
            bytes: 2 << 30,
            entries: 200_000,
        }
    }
}

/// Unpacks one layer read from `blob` onto the tree at `root`.
pub fn unpack(
    blob: impl Read,
    compression: Compression,
    root: &Path,
    budget: &mut Budget,
) -> Result<(), Error> {
    let reader: Box<dyn Read> = match compression {
        Compression::None => Box::new(blob),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(blob)),
        Compression::Zstd => Box::new(
            ruzstd::decoding::StreamingDecoder::new(blob)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?,
        ),
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        budget.entries = budget.entries.checked_sub(1).ok_or(Error::TooLarge {
            limit: "its limit on files".into(),
        })?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(rel) = inside(&raw)? else {
            continue; // the root itself
        };
        let name = rel
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let parent = rel.parent().unwrap_or(Path::new(""));
        make_parents(root, parent, &raw)?;
        let dest = root.join(&rel);
        // Whiteouts: the opaque marker empties its directory, `.wh.x`
        // removes `x`; neither is itself a file of the image.
        if name == ".wh..wh..opq" {
            let dir = root.join(parent);
            for child in fs::read_dir(&dir)?.flatten() {
                remove(&child.path())?;
            }
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            remove(&root.join(parent).join(hidden))?;
            continue;
        }
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        match kind {
            tar::EntryType::Directory => {
                if fs::symlink_metadata(&dest).is_ok_and(|m| !m.is_dir()) {
                    remove(&dest)?;
                }
                fs::create_dir_all(&dest)?;
                set_mode(&dest, mode | 0o700)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.header().size()?;
                budget.bytes = budget.bytes.checked_sub(size).ok_or(Error::TooLarge {
                    limit: "its size limit".into(),
                })?;
                remove(&dest)?;
                let mut file = fs::File::create(&dest)?;
                io::copy(&mut (&mut entry).take(size), &mut file)?;
                set_mode(&dest, mode)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                remove(&dest)?;
                std::os::unix::fs::symlink(confined_link(parent, &target), &dest)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let Some(target_rel) = inside(&target)? else {
                    return Err(Error::Escapes {
                        path: raw,
                        why: "is a hard link to the image's root",
                    });
                };
                let source = root.join(&target_rel);
                make_parents(root, target_rel.parent().unwrap_or(Path::new("")), &raw)?;
                if !fs::symlink_metadata(&source).is_ok_and(|m| m.is_file()) {
                    return Err(Error::Escapes {
                        path: raw,
                        why: "is a hard link to something that is not a file of the image",
                    });
                }
                remove(&dest)?;
                fs::hard_link(&source, &dest)?;
            }
            // Devices, fifos, sockets; pax and GNU extension headers are
            // consumed by the tar reader itself.
            _ => {}
        }
    }
    Ok(())
}

/// The path of a tar entry inside the tree (`None` for the root itself);
/// `..` anywhere is refused.
fn inside(raw: &str) -> Result<Option<PathBuf>, Error> {
    let mut out = PathBuf::new();
    for part in Path::new(raw).components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::Escapes {
                    path: raw.to_string(),
                    why: "climbs out of the image with '..'",
                });
            }
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Creates the directories above an entry, refusing to pass through a
/// symlink (which could point anywhere once followed).
fn make_parents(root: &Path, parent: &Path, raw: &str) -> Result<(), Error> {
    let mut dir = root.to_path_buf();
    for part in parent.components() {
        dir.push(part);
        match fs::symlink_metadata(&dir) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(Error::Escapes {
                    path: raw.to_string(),
                    why: "is written through a symlink",
                });
            }
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                fs::remove_file(&dir)?;
                fs::create_dir(&dir)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(&dir)?,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// A symlink target, as the path it means inside the image, relative to
/// the link's directory: resolved lexically against the link's directory
/// (or the image's root for an absolute target), `..` stopping at the root.
fn confined_link(link_dir: &Path, target: &str) -> PathBuf {
    let mut resolved: Vec<&std::ffi::OsStr> = Vec::new();
    if !target.starts_with('/') {
        resolved.extend(link_dir.components().filter_map(|c| match c {
            Component::Normal(p) => Some(p),
            _ => None,
        }));
    }
    for part in Path::new(target).components() {
        match part {
            Component::Normal(p) => resolved.push(p),
            Component::ParentDir => {
                resolved.pop();
            }
            _ => {}
        }
    }
    let depth = link_dir.components().count();
    let mut out = PathBuf::new();
    for _ in 0..depth {
        out.push("..");
    }
    for part in resolved {
        out.push(part);
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

fn remove(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar built entry by entry, with headers written raw so that
    /// hostile paths (which the tar crate's own builder refuses) can be made.
    struct Layer(tar::Builder<Vec<u8>>);

    impl Layer {
        fn new() -> Layer {
            Layer(tar::Builder::new(Vec::new()))
        }
        fn entry(mut self, kind: tar::EntryType, path: &str, link: &str, data: &[u8]) -> Layer {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(kind);
            header.set_size(data.len() as u64);
            header.set_mode(if kind == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            });
            let name = &mut header.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            if !link.is_empty() {
                header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
            }
            header.set_cksum();
            self.0.append(&header, data).unwrap();
            self
        }
        fn file(self, path: &str, data: &str) -> Layer {
            self.entry(tar::EntryType::Regular, path, "", data.as_bytes())
        }
        fn bytes(self) -> Vec<u8> {
            self.0.into_inner().unwrap()
        }
    }

    fn apply(root: &Path, layer: Layer) -> Result<(), Error> {
        unpack(
            &layer.bytes()[..],
            Compression::None,
            root,
            &mut Budget::default(),
        )
    }

    #[test]
    fn layers_stack_with_whiteouts() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        apply(
            root,
            Layer::new()
                .file("etc/a", "a")
                .file("etc/b", "b")
                .file("var/x/1", "1")
                .file("./usr/bin/app.wasm", "\0asm"),
        )
        .unwrap();
        apply(
            root,
            Layer::new()
                .file("etc/.wh.a", "")
                .file("var/x/.wh..wh..opq", "")
                .file("var/x/2", "2")
                .entry(
                    tar::EntryType::Link,
                    "usr/bin/same.wasm",
                    "usr/bin/app.wasm",
                    b"",
                ),
        )
        .unwrap();
        assert!(!root.join("etc/a").exists());
        assert_eq!(fs::read_to_string(root.join("etc/b")).unwrap(), "b");
        assert!(!root.join("var/x/1").exists());
        assert_eq!(fs::read_to_string(root.join("var/x/2")).unwrap(), "2");
        assert_eq!(fs::read(root.join("usr/bin/same.wasm")).unwrap(), b"\0asm");
        assert!(!root.join("etc/.wh.a").exists());
    }

    #[test]
    fn nothing_lands_outside_the_tree() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        let err = apply(&root, Layer::new().file("../../escaped", "x")).unwrap_err();
        assert!(err.to_string().contains("climbs out"), "{err}");
        assert!(!dir.path().join("escaped").exists());

        // An absolute symlink out, then a file written through it.
        let target = outside.path().to_str().unwrap();
        let err = apply(
            &root,
            Layer::new()
                .entry(tar::EntryType::Symlink, "etc", target, b"")
                .file("etc/passwd", "owned"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("through a symlink"), "{err}");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
        // The link itself now means the same path inside the image.
        let link = fs::read_link(root.join("etc")).unwrap();
        assert_eq!(root.join(&link), root.join(target.trim_start_matches('/')));

        let err = apply(
            &root,
            Layer::new().entry(tar::EntryType::Link, "stolen", "../../etc/passwd", b""),
        )
        .unwrap_err();
        assert!(err.to_string().contains("climbs out"), "{err}");
    }

    #[test]
    fn symlinks_are_confined_to_the_image() {
        assert_eq!(
            confined_link(Path::new("bin"), "/bin/busybox"),
            Path::new("../bin/busybox")
        );
        assert_eq!(
            confined_link(Path::new("bin"), "busybox"),
            Path::new("../bin/busybox")
        );
        assert_eq!(
            confined_link(Path::new("a/b"), "../../../../etc"),
            Path::new("../../etc")
        );
        assert_eq!(confined_link(Path::new(""), "/"), Path::new("."));
    }

    #[test]
    fn the_budget_stops_a_bomb() {
        let dir = tempfile::tempdir().unwrap();
        let layer = Layer::new().file("big", &"x".repeat(4096));
        let mut budget = Budget {
            bytes: 1000,
            entries: 10,
        };
        let err = unpack(
            &layer.bytes()[..],
            Compression::None,
            dir.path(),
            &mut budget,
        );
        assert!(matches!(err, Err(Error::TooLarge { .. })));
    }

    #[test]
    fn gzip_layers_unpack() {
        use std::io::Write;
        let tar = Layer::new().file("hello.txt", "hi").bytes();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let dir = tempfile::tempdir().unwrap();
        unpack(
            &gz.finish().unwrap()[..],
            Compression::Gzip,
            dir.path(),
            &mut Budget::default(),
        )
        .unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("hello.txt")).unwrap(),
            "hi"
        );
    }
}
