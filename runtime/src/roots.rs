//! Containers' private roots: an empty writable directory preopened as `/`
//! for every instance, holding `tmp/` and the mount points. Creating and
//! deleting directories costs more than starting a small guest, so a root
//! the previous instance left untouched is reused, and otherwise roots are
//! deleted behind by the janitor thread, which also prepares one ahead for
//! each container that has restarted.
//!
//! An image with files has them copied into each new root: the copy is the
//! container's writable layer, so what one container writes never reaches
//! the image or another container. (`fs::copy` uses `copy_file_range`,
//! which file systems with reflinks turn into a shared extent.) Such roots
//! are reused only if no file or directory of the copy changed (status
//! change times tell content writes, renames and mode changes apart from
//! nothing), so a restarting container pays for the copy only when it
//! wrote to its image's files.
//!
//! ```text
//! <pod dir>/roots/<n>/        one instance's "/" (with an empty tmp/)
//! ```

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

/// Work for the janitor thread.
pub(crate) enum Job {
    /// Delete a directory tree.
    Delete(PathBuf),
    /// Prepare one more root for a pod, if it still exists.
    Prepare(Weak<Roots>),
}

/// Hands work to the janitor thread; without one, does it at once.
#[derive(Clone)]
pub(crate) struct Janitor(Option<Sender<Job>>);

impl Janitor {
    /// Starts the janitor thread.
    pub(crate) fn start() -> Janitor {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("wasmkube-janitor".into())
            .spawn(move || {
                for job in rx {
                    run(job);
                }
            });
        match spawned {
            Ok(_) => Janitor(Some(tx)),
            Err(e) => {
                tracing::warn!(
                    "no janitor thread ({e}): container roots are made and deleted inline"
                );
                Janitor(None)
            }
        }
    }

    pub(crate) fn submit(&self, job: Job) {
        match &self.0 {
            Some(tx) => {
                if let Err(unsent) = tx.send(job) {
                    run(unsent.0);
                }
            }
            None => run(job),
        }
    }
}

fn run(job: Job) {
    match job {
        Job::Delete(path) => {
            if let Err(e) = fs::remove_dir_all(&path)
                && e.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), "could not delete: {e}");
            }
        }
        Job::Prepare(roots) => {
            if let Some(roots) = roots.upgrade()
                && let Ok(root) = roots.make()
            {
                roots
                    .ready
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(root);
            }
        }
    }
}

/// A root in use, and how it looked when handed out.
struct InUse {
    root: PathBuf,
    mount_points: Vec<String>,
    /// The image tree copied in, if any: another image needs another root.
    tree: Option<PathBuf>,
    /// How every directory the runtime made in it (and every entry copied
    /// from the image) looked: if none changed, the guest changed nothing
    /// and the root can be reused.
    snapshot: Vec<(PathBuf, Option<Stamp>)>,
}

/// What changes when anything is written to, created in, removed from or
/// re-permissioned at a path: its modification and status change times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: SystemTime,
    changed: (i64, i64),
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok()?,
        changed: (meta.ctime(), meta.ctime_nsec()),
    })
}

impl InUse {
    fn untouched(&self, mount_points: &[String], tree: Option<&Path>) -> bool {
        self.mount_points == mount_points
            && self.tree.as_deref() == tree
            && self
                .snapshot
                .iter()
                .all(|(path, seen)| seen.is_some() && stamp(path) == *seen)
    }
}

/// The roots of one pod.
pub(crate) struct Roots {
    dir: PathBuf,
    next: AtomicU64,
    /// Prepared, empty roots.
    ready: Mutex<Vec<PathBuf>>,
    /// The root each container's current instance uses.
    current: Mutex<HashMap<String, InUse>>,
    /// Set when the pod is being removed; held while a root is made, so
    /// the janitor never creates one inside a tree being deleted.
    closed: Mutex<bool>,
    janitor: Janitor,
}

impl Roots {
    /// Opens the roots of the pod living in `pod_dir`; roots left from an
    /// earlier run of the server are moved aside and deleted.
    pub(crate) fn open(pod_dir: &Path, janitor: Janitor) -> io::Result<Arc<Roots>> {
        let dir = pod_dir.join("roots");
        if dir.exists() {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            let old = pod_dir.join(format!("roots.old-{}-{stamp}", std::process::id()));
            fs::rename(&dir, &old)?;
            janitor.submit(Job::Delete(old));
        }
        fs::create_dir_all(&dir)?;
        Ok(Arc::new(Roots {
            dir,
            next: AtomicU64::new(0),
            ready: Mutex::default(),
            current: Mutex::default(),
            closed: Mutex::new(false),
            janitor,
        }))
    }

    /// Makes a new empty root (its parent must exist: a removed pod's
    /// directory is not recreated).
    fn make(&self) -> io::Result<PathBuf> {
        let closed = self.closed.lock().unwrap_or_else(|e| e.into_inner());
        if *closed {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the pod is being removed",
            ));
        }
        let root = self
            .dir
            .join(self.next.fetch_add(1, Ordering::Relaxed).to_string());
        fs::create_dir(&root)?;
        fs::create_dir(root.join("tmp"))?;
        Ok(root)
    }

    /// Stops making roots: after this returns, no root is being made or
    /// will be, and the pod's directory can be deleted.
    pub(crate) fn close(&self) {
        *self.closed.lock().unwrap_or_else(|e| e.into_inner()) = true;
    }

    /// The root of `container`'s current (or last) instance.
    pub(crate) fn current(&self, container: &str) -> Option<PathBuf> {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current.get(container).map(|in_use| in_use.root.clone())
    }

    /// An empty root for the next instance of `container`, with a
    /// directory for each mount point (absolute guest paths) so the guest
    /// sees them when listing their parents. The previous instance's root
    /// is reused if nothing was created in it; otherwise it goes to the
    /// janitor and a root for the next restart is prepared.
    pub(crate) fn take(
        self: &Arc<Self>,
        container: &str,
        mount_points: &[String],
        image_tree: Option<&Path>,
    ) -> io::Result<PathBuf> {
        if *self.closed.lock().unwrap_or_else(|e| e.into_inner()) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the pod is being removed",
            ));
        }
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(in_use) = current.get(container)
            && in_use.untouched(mount_points, image_tree)
        {
            return Ok(in_use.root.clone());
        }
        let prepared = self.ready.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let root = match prepared {
            Some(root) => root,
            None => self.make()?,
        };
        let mut made = vec![root.clone(), root.join("tmp")];
        if let Some(tree) = image_tree {
            copy_tree(tree, &root, &mut made)?;
        }
        for point in mount_points {
            let mut dir = root.clone();
            for part in Path::new(point.trim_start_matches('/')).components() {
                dir.push(part);
                if !made.contains(&dir) {
                    made.push(dir.clone());
                }
            }
            fs::create_dir_all(&dir)?;
        }
        let snapshot = made.into_iter().map(|d| {
            let seen = stamp(&d);
            (d, seen)
        });
        let in_use = InUse {
            root: root.clone(),
            mount_points: mount_points.to_vec(),
            tree: image_tree.map(Path::to_path_buf),
            snapshot: snapshot.collect(),
        };
        // A container that has restarted may well restart again: a root is
        // prepared for then. A first instance prepares none, since most
        // containers never restart and a spare root per pod is two
        // directories made and deleted for nothing.
        if let Some(previous) = current.insert(container.to_string(), in_use) {
            self.janitor.submit(Job::Delete(previous.root));
            drop(current);
            self.janitor.submit(Job::Prepare(Arc::downgrade(self)));
        }
        Ok(root)
    }
}

/// Copies an image's tree into a container's root: directories and files
/// (with their permission bits), symlinks as they are; every path made is
/// added to `made`.
fn copy_tree(from: &Path, to: &Path, made: &mut Vec<PathBuf>) -> io::Result<()> {
    let mut stack = vec![(from.to_path_buf(), to.to_path_buf())];
    while let Some((src, dst)) = stack.pop() {
        for entry in fs::read_dir(&src)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let target = dst.join(entry.file_name());
            if kind.is_dir() {
                match fs::create_dir(&target) {
                    Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                    _ => {}
                }
                fs::set_permissions(&target, entry.metadata()?.permissions())?;
                stack.push((entry.path(), target.clone()));
            } else if kind.is_symlink() {
                std::os::unix::fs::symlink(fs::read_link(entry.path())?, &target)?;
            } else if kind.is_file() {
                fs::copy(entry.path(), &target)?;
            } else {
                continue;
            }
            made.push(target);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_untouched_root_is_reused_and_a_touched_one_is_not() {
        let pod = tempfile::tempdir().unwrap();
        let roots = Roots::open(pod.path(), Janitor(None)).unwrap();
        let mounts = vec!["/var/log".to_string()];
        let first = roots.take("c", &mounts, None).unwrap();
        assert!(first.join("var/log").is_dir());
        assert_eq!(
            roots.take("c", &mounts, None).unwrap(),
            first,
            "nothing changed: reused"
        );
        // Other mounts: a new root.
        let other = roots.take("c", &[], None).unwrap();
        assert_ne!(other, first);
        // Something created anywhere the runtime made a directory: a new root.
        let again = roots.take("c", &mounts, None).unwrap();
        assert_eq!(roots.take("c", &mounts, None).unwrap(), again);
        fs::create_dir(again.join("var/new")).unwrap();
        let fresh = roots.take("c", &mounts, None).unwrap();
        assert_ne!(fresh, again);
        assert!(!fresh.join("var/new").exists());
    }

    #[test]
    fn image_files_are_copied_and_writes_stay_in_the_container() {
        let pod = tempfile::tempdir().unwrap();
        let tree = tempfile::tempdir().unwrap();
        fs::create_dir_all(tree.path().join("usr/share/html")).unwrap();
        fs::write(tree.path().join("usr/share/html/index.html"), "hello").unwrap();
        std::os::unix::fs::symlink("share/html", tree.path().join("usr/www")).unwrap();
        let roots = Roots::open(pod.path(), Janitor(None)).unwrap();
        let a = roots.take("a", &[], Some(tree.path())).unwrap();
        let b = roots.take("b", &[], Some(tree.path())).unwrap();
        assert_eq!(
            fs::read_to_string(a.join("usr/www/index.html")).unwrap(),
            "hello"
        );
        fs::write(a.join("usr/share/html/index.html"), "changed").unwrap();
        assert_eq!(
            fs::read_to_string(b.join("usr/share/html/index.html")).unwrap(),
            "hello"
        );
        assert_eq!(
            fs::read_to_string(tree.path().join("usr/share/html/index.html")).unwrap(),
            "hello"
        );
        let again = roots.take("a", &[], Some(tree.path())).unwrap();
        assert_ne!(again, a, "a root with image files is never reused");
        assert_eq!(
            fs::read_to_string(again.join("usr/share/html/index.html")).unwrap(),
            "hello"
        );
    }

    #[test]
    fn each_instance_gets_an_empty_root_and_old_ones_go() {
        let pod = tempfile::tempdir().unwrap();
        let roots = Roots::open(pod.path(), Janitor(None)).unwrap();
        let first = roots.take("c", &[], None).unwrap();
        fs::write(first.join("tmp/junk"), "x").unwrap();
        let second = roots.take("c", &[], None).unwrap();
        assert_ne!(first, second);
        assert!(!first.exists(), "the previous root is deleted");
        assert_eq!(fs::read_dir(second.join("tmp")).unwrap().count(), 0);
        // Reopening (a server restart) starts from clean roots.
        fs::write(second.join("tmp/junk"), "x").unwrap();
        drop(roots);
        let reopened = Roots::open(pod.path(), Janitor(None)).unwrap();
        let third = reopened.take("c", &[], None).unwrap();
        assert_eq!(fs::read_dir(third.join("tmp")).unwrap().count(), 0);
        assert!(!second.join("tmp/junk").exists());
        let leftovers = fs::read_dir(pod.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name() != "roots")
            .count();
        assert_eq!(leftovers, 0, "the old roots were not deleted");
        reopened.close();
        assert!(
            reopened.take("d", &[], None).is_err(),
            "a closed pod makes no roots"
        );
    }
}
