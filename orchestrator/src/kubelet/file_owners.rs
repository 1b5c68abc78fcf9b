//! `securityContext` on the files guests create in their volumes. Guests
//! are not processes: every file is made by the server, as the server's
//! user. So:
//! - `fsGroup` is Kubernetes' volume ownership: at start the volume is
//!   given the group (group read/write added, directories setgid), and the
//!   kernel gives every file made inside it that group;
//! - `runAsUser` (and `runAsGroup` without `fsGroup`) is applied by
//!   following the volume with inotify and giving each new file and
//!   directory that owner as soon as it appears.
//!
//! Changing owners needs the privilege to (root or CAP_CHOWN); without it
//! the pod gets a Warning event saying so, and files keep the server's
//! owner.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;

/// Who new files in a volume belong to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owner {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// What the pod's security context asks of one volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumePlan {
    pub volume: String,
    /// The group the volume is given at start.
    pub fs_group: Option<u32>,
    /// The owner of what guests create in it.
    pub owner: Owner,
}

fn id(value: Option<i64>) -> Option<u32> {
    value.and_then(|v| u32::try_from(v).ok())
}

/// The plan for each volume whose files a guest may create (emptyDir,
/// persistentVolumeClaim; hostPath gets owners but, as in Kubernetes, not
/// `fsGroup`), and warnings about what cannot be honoured exactly.
pub fn plan(pod: &Pod) -> (Vec<VolumePlan>, Vec<String>) {
    let Some(spec) = &pod.spec else {
        return (Vec::new(), Vec::new());
    };
    let pod_context = spec.security_context.as_ref();
    let fs_group = id(pod_context.and_then(|c| c.fs_group));
    let mut plans = Vec::new();
    let mut warnings = Vec::new();
    for volume in spec.volumes.iter().flatten() {
        let group_applies = volume.empty_dir.is_some() || volume.persistent_volume_claim.is_some();
        if !group_applies && volume.host_path.is_none() {
            continue;
        }
        // The containers writing it, with their effective user and group.
        let mut owners: Vec<(String, Owner)> = Vec::new();
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
        {
            let mounts = c.volume_mounts.iter().flatten();
            if !mounts
                .filter(|m| m.name == volume.name)
                .any(|m| m.read_only != Some(true))
            {
                continue;
            }
            let context = c.security_context.as_ref();
            let owner = Owner {
                uid: id(context
                    .and_then(|s| s.run_as_user)
                    .or_else(|| pod_context.and_then(|p| p.run_as_user))),
                gid: id(context
                    .and_then(|s| s.run_as_group)
                    .or_else(|| pod_context.and_then(|p| p.run_as_group))),
            };
            owners.push((c.name.clone(), owner));
        }
        let Some((first, owner)) = owners.first().cloned() else {
            continue;
        };
        if let Some((other, theirs)) = owners.iter().find(|(_, o)| *o != owner) {
            warnings.push(format!(
                "containers {first:?} and {other:?} write volume {:?} as different users ({} and {}); files either creates there belong to {}",
                volume.name,
                describe(owner),
                describe(*theirs),
                describe(owner),
            ));
        }
        let fs_group = fs_group.filter(|_| group_applies);
        let owner = Owner {
            uid: owner.uid,
            // In a setgid directory the kernel gives files its group.
            gid: if fs_group.is_some() { None } else { owner.gid },
        };
        if fs_group.is_some() || owner != Owner::default() {
            plans.push(VolumePlan {
                volume: volume.name.clone(),
                fs_group,
                owner,
            });
        }
    }
    (plans, warnings)
}

fn describe(owner: Owner) -> String {
    match (owner.uid, owner.gid) {
        (None, None) => "the server's user".into(),
        (Some(u), None) => format!("uid {u}"),
        (None, Some(g)) => format!("gid {g}"),
        (Some(u), Some(g)) => format!("uid {u} gid {g}"),
    }
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in a path"))
}

/// lchown(2): the link itself, never what it points to.
fn lchown(path: &Path, owner: Owner) -> io::Result<()> {
    if owner == Owner::default() {
        return Ok(());
    }
    let path = c_path(path)?;
    let uid = owner.uid.unwrap_or(u32::MAX);
    let gid = owner.gid.unwrap_or(u32::MAX);
    // SAFETY: a valid NUL-terminated path; -1 (u32::MAX) keeps an id.
    if unsafe { libc::lchown(path.as_ptr(), uid, gid) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Kubernetes' volume ownership: the group `gid` on everything, group
/// read/write on files, and directories setgid so new files get it.
pub fn apply_fs_group(dir: &Path, gid: u32) -> io::Result<()> {
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        let meta = std::fs::symlink_metadata(&at)?;
        if meta.file_type().is_symlink() {
            continue;
        }
        lchown(
            &at,
            Owner {
                uid: None,
                gid: Some(gid),
            },
        )?;
        let mode = meta.permissions().mode();
        let wanted = if meta.is_dir() {
            mode | 0o2770
        } else {
            mode | 0o660
        };
        if wanted != mode {
            std::fs::set_permissions(&at, std::fs::Permissions::from_mode(wanted & 0o7777))?;
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&at)? {
                pending.push(entry?.path());
            }
        }
    }
    Ok(())
}

struct Followed {
    dir: PathBuf,
    owner: Owner,
    pod: String,
}

#[derive(Default)]
struct State {
    /// inotify watch descriptor -> what it follows.
    watches: HashMap<i32, Followed>,
}

/// One inotify instance following every volume with an owner to apply.
pub struct Follower {
    fd: i32,
    state: Mutex<State>,
    stop: AtomicBool,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower").finish_non_exhaustive()
    }
}

const EVENTS: u32 = libc::IN_CREATE | libc::IN_MOVED_TO;

impl Follower {
    /// Starts following (a thread reads the events).
    pub fn start() -> io::Result<Arc<Follower>> {
        // SAFETY: plain syscall.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let follower = Arc::new(Follower {
            fd,
            state: Mutex::new(State::default()),
            stop: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&follower);
        std::thread::Builder::new()
            .name("file-owners".into())
            .spawn(move || {
                while let Some(follower) = weak.upgrade() {
                    if follower.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    follower.wait_and_apply();
                }
            })?;
        Ok(follower)
    }

    /// Gives what appears under `dir` (at any depth) `owner`, for `pod`;
    /// `Err` when the owner cannot be applied (no privilege).
    pub fn follow(&self, pod: &str, dir: &Path, owner: Owner) -> io::Result<()> {
        // Fails early, and clearly, without the privilege.
        probe_privilege(dir, owner)?;
        self.watch_tree(pod, dir, owner, false)
    }

    /// Stops following `pod`'s volumes.
    pub fn forget(&self, pod: &str) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<i32> = state
            .watches
            .iter()
            .filter(|(_, f)| f.pod == pod)
            .map(|(wd, _)| *wd)
            .collect();
        for wd in gone {
            state.watches.remove(&wd);
            // SAFETY: our own descriptor and watch.
            unsafe { libc::inotify_rm_watch(self.fd, wd) };
        }
    }

    /// Watches `dir` and every directory below it; with `own`, gives what
    /// is already there the owner too (a directory that appeared before
    /// its watch may hold files already).
    fn watch_tree(&self, pod: &str, dir: &Path, owner: Owner, own: bool) -> io::Result<()> {
        let mut pending = vec![dir.to_path_buf()];
        while let Some(at) = pending.pop() {
            let path = c_path(&at)?;
            // SAFETY: our descriptor, a valid path.
            let wd = unsafe {
                libc::inotify_add_watch(self.fd, path.as_ptr(), EVENTS | libc::IN_ONLYDIR)
            };
            if wd < 0 {
                return Err(io::Error::last_os_error());
            }
            self.state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .watches
                .insert(
                    wd,
                    Followed {
                        dir: at.clone(),
                        owner,
                        pod: pod.to_string(),
                    },
                );
            let Ok(entries) = std::fs::read_dir(&at) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if own {
                    let _ = lchown(&path, owner);
                }
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    pending.push(path);
                }
            }
        }
        Ok(())
    }

    /// Waits up to half a second for events and applies them.
    fn wait_and_apply(&self) {
        let mut poll = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut poll, 1, 500) } <= 0 {
            return;
        }
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: reading into our buffer of its length.
            let read = unsafe { libc::read(self.fd, buffer.as_mut_ptr().cast(), buffer.len()) };
            if read <= 0 {
                return;
            }
            let mut at = 0usize;
            let header = std::mem::size_of::<libc::inotify_event>();
            while at + header <= read as usize {
                // SAFETY: the kernel wrote whole events; read unaligned.
                let event: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buffer[at..].as_ptr().cast()) };
                let name_bytes = &buffer[at + header..at + header + event.len as usize];
                let name = name_bytes.split(|b| *b == 0).next().unwrap_or_default();
                at += header + event.len as usize;
                self.apply(event.wd, event.mask, OsStr::from_bytes(name));
            }
        }
    }

    fn apply(&self, wd: i32, mask: u32, name: &OsStr) {
        let target = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if mask & libc::IN_IGNORED != 0 {
                state.watches.remove(&wd);
                return;
            }
            match state.watches.get(&wd) {
                Some(f) if !name.is_empty() => Some((f.dir.join(name), f.owner, f.pod.clone())),
                _ => None,
            }
        };
        let Some((path, owner, pod)) = target else {
            return;
        };
        if let Err(e) = lchown(&path, owner)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::debug!("owner of {}: {e}", path.display());
        }
        if mask & libc::IN_ISDIR != 0 {
            let _ = self.watch_tree(&pod, &path, owner, true);
        }
    }
}

/// Whether files can be given `owner` here: a scratch file is made and
/// given it, then removed.
fn probe_privilege(dir: &Path, owner: Owner) -> io::Result<()> {
    let probe = dir.join(format!(".wasmkube-owner-probe-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    let result = lchown(&probe, owner);
    let _ = std::fs::remove_file(&probe);
    result
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // SAFETY: our own descriptor, closed once.
        unsafe { libc::close(self.fd) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn the_guides_security_context_plans_owner_and_group() {
        let p = pod(
            "metadata: {name: security-context-pod}\nspec:\n  securityContext: {runAsUser: 45, fsGroup: 231}\n  volumes:\n  - {name: simple-directory, emptyDir: {}}\n  - {name: cfg, configMap: {name: x}}\n  containers:\n  - name: example-container\n    image: toolbox\n    volumeMounts:\n    - {name: simple-directory, mountPath: /etc/directory}\n    - {name: cfg, mountPath: /etc/cfg}\n",
        );
        let (plans, warnings) = plan(&p);
        assert!(warnings.is_empty());
        assert_eq!(
            plans,
            [VolumePlan {
                volume: "simple-directory".into(),
                fs_group: Some(231),
                owner: Owner {
                    uid: Some(45),
                    gid: None
                },
            }]
        );
    }

    #[test]
    fn containers_writing_as_different_users_are_warned_about() {
        let p = pod(
            "metadata: {name: p}\nspec:\n  securityContext: {runAsUser: 45}\n  volumes:\n  - {name: v, emptyDir: {}}\n  containers:\n  - name: a\n    image: toolbox\n    volumeMounts: [{name: v, mountPath: /v}]\n  - name: b\n    image: toolbox\n    securityContext: {runAsUser: 46}\n    volumeMounts: [{name: v, mountPath: /v}]\n",
        );
        let (plans, warnings) = plan(&p);
        assert_eq!(plans[0].owner.uid, Some(45));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("uid 45 and uid 46"), "{warnings:?}");
    }

    #[test]
    fn new_files_and_directories_get_the_owner() {
        // Only root may give files away; elsewhere the probe must refuse.
        let dir = tempfile::tempdir().unwrap();
        let follower = Follower::start().unwrap();
        let owner = Owner {
            uid: Some(45),
            gid: Some(231),
        };
        // SAFETY: plain syscall.
        let root = unsafe { libc::geteuid() } == 0;
        match follower.follow("p", dir.path(), owner) {
            Err(e) => {
                assert!(!root, "root may chown: {e}");
                return;
            }
            Ok(()) => assert!(root, "only root may give files away"),
        }
        std::fs::write(dir.path().join("file.txt"), "x").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::fs::write(dir.path().join("sub/inner"), "y").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let owned = |p: &str| {
            let m = std::fs::metadata(dir.path().join(p)).unwrap();
            (m.uid(), m.gid()) == (45, 231)
        };
        while !(owned("file.txt") && owned("sub") && owned("sub/inner")) {
            assert!(std::time::Instant::now() < deadline, "owners not applied");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        follower.forget("p");
    }

    #[test]
    fn fs_group_gives_the_group_and_setgid() {
        // SAFETY: plain syscall.
        if unsafe { libc::geteuid() } != 0 {
            // Without privilege the call must fail, not pretend.
            let dir = tempfile::tempdir().unwrap();
            assert!(apply_fs_group(dir.path(), 231).is_err());
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("old"), "x").unwrap();
        apply_fs_group(dir.path(), 231).unwrap();
        let meta = std::fs::metadata(dir.path()).unwrap();
        assert_eq!(meta.gid(), 231);
        assert_ne!(meta.permissions().mode() & 0o2000, 0, "setgid");
        let old = std::fs::metadata(dir.path().join("old")).unwrap();
        assert_eq!((old.gid(), old.permissions().mode() & 0o660), (231, 0o660));
        std::fs::write(dir.path().join("new"), "y").unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join("new")).unwrap().gid(),
            231
        );
    }
}
