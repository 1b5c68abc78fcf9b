//! A directory whose whole contents change at once, as the files of a
//! ConfigMap, Secret or downward API volume do in Kubernetes:
//!
//! ```text
//! <dir>/..2026_12_02_14_55_01.123456789/<files>    one version of everything
//! <dir>/..data -> ..2026_12_02_14_55_01.123456789  the current version
//! <dir>/<name> -> ..data/<name>                    what readers open
//! ```
//!
//! A new version is written beside the old one, then `..data` is swapped to
//! it with one rename, so a reader sees all old files or all new ones,
//! never a mix. Links are relative, so they resolve inside a guest's mount.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path};

/// One file of a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub bytes: Vec<u8>,
    /// Permission bits (`0o644`).
    pub mode: u32,
}

/// Relative path (`key`, `dir/key`) -> file.
pub type Payload = BTreeMap<String, File>;

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

/// Whether `path` is a relative path with no `..` element that does not
/// start with `..` (those names belong to the writer).
pub fn is_payload_path(path: &str) -> bool {
    let p = Path::new(path);
    !path.is_empty()
        && !path.starts_with("..")
        && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// The payload currently visible in `dir`, if any.
fn current(dir: &Path) -> io::Result<Option<(String, Payload)>> {
    let version = match fs::read_link(dir.join(DATA)) {
        Ok(target) => target.to_string_lossy().into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut payload = Payload::new();
    let root = dir.join(&version);
    let mut pending = vec![root.clone()];
    while let Some(at) = pending.pop() {
        for entry in fs::read_dir(&at)? {
            let entry = entry?;
            let path = entry.path();
            let meta = entry.metadata()?;
            if meta.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path
                .strip_prefix(&root)
                .map_err(io::Error::other)?
                .to_string_lossy()
                .into_owned();
            let file = File {
                bytes: fs::read(&path)?,
                mode: meta.permissions().mode() & 0o7777,
            };
            payload.insert(relative, file);
        }
    }
    Ok(Some((version, payload)))
}

fn version_name() -> String {
    let now = jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::UTC);
    format!(
        "..{}.{:09}",
        now.strftime("%Y_%m_%d_%H_%M_%S"),
        now.subsec_nanosecond()
    )
}

/// Makes `dir` show exactly `payload`; `Ok(false)` when it already did.
pub fn write(dir: &Path, payload: &Payload) -> io::Result<bool> {
    if let Some(bad) = payload.keys().find(|p| !is_payload_path(p)) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{bad:?} must be a relative path without '..'"),
        ));
    }
    fs::create_dir_all(dir)?;
    let old = current(dir)?;
    if let Some((_, files)) = &old
        && files == payload
    {
        return Ok(false);
    }
    let version = version_name();
    let root = dir.join(&version);
    fs::create_dir(&root)?;
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755))?;
    for (path, file) in payload {
        let target = root.join(path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&target, &file.bytes)?;
        fs::set_permissions(&target, fs::Permissions::from_mode(file.mode))?;
    }
    let tmp = dir.join(DATA_TMP);
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    symlink(&version, &tmp)?;
    fs::rename(&tmp, dir.join(DATA))?;
    // What readers open: one link per top-level name.
    let visible: BTreeSet<&str> = payload.keys().filter_map(|p| p.split('/').next()).collect();
    for name in &visible {
        let link = dir.join(name);
        if fs::symlink_metadata(&link).is_err() {
            symlink(Path::new(DATA).join(name), &link)?;
        }
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") {
            if name != DATA && name != version {
                fs::remove_dir_all(entry.path())?;
            }
        } else if !visible.contains(name.as_str()) {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> File {
        File {
            bytes: text.as_bytes().to_vec(),
            mode: 0o644,
        }
    }

    #[test]
    fn versions_swap_whole_and_stale_names_go() {
        let dir = tempfile::tempdir().unwrap();
        let mut payload = Payload::new();
        payload.insert("a".into(), file("one"));
        payload.insert("sub/b".into(), file("two"));
        assert!(write(dir.path(), &payload).unwrap());
        assert_eq!(fs::read_to_string(dir.path().join("a")).unwrap(), "one");
        assert_eq!(fs::read_to_string(dir.path().join("sub/b")).unwrap(), "two");
        assert_eq!(
            fs::read_link(dir.path().join("a")).unwrap(),
            Path::new("..data/a")
        );
        assert!(!write(dir.path(), &payload).unwrap(), "nothing changed");

        let mut next = Payload::new();
        next.insert(
            "a".into(),
            File {
                bytes: b"uno".to_vec(),
                mode: 0o400,
            },
        );
        assert!(write(dir.path(), &next).unwrap());
        assert_eq!(fs::read_to_string(dir.path().join("a")).unwrap(), "uno");
        let mode = fs::metadata(dir.path().join("a"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o400);
        assert!(!dir.path().join("sub").exists(), "a removed key goes");
        let versions: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("..") && n != DATA)
            .collect();
        assert_eq!(
            versions.len(),
            1,
            "the old version is removed: {versions:?}"
        );
    }

    #[test]
    fn paths_cannot_leave_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["../x", "/etc/passwd", "a/../../x", "..data", ""] {
            let mut payload = Payload::new();
            payload.insert(bad.into(), file("x"));
            assert!(write(dir.path(), &payload).is_err(), "{bad}");
        }
    }
}
