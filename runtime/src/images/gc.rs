//! Image garbage collection, as the kubelet's image manager does it: when
//! the disk holding the store is fuller than the high threshold (85% by
//! default), or the images outgrow an optional size budget (what they take
//! on disk: components, file trees and compiled code), images no pod
//! uses go, least recently pulled first, until usage is under the low
//! threshold (80%) and the budget. Images in use and the built-in ones
//! never go. What no record names any more (components, trees, compiled
//! code) is then deleted.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{ImageRecord, ImageRef, ImageStore, Result, io_err};

/// When images are collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcPolicy {
    /// Disk usage (percent) at which collection starts.
    pub high_percent: u8,
    /// Disk usage (percent) collection brings the disk down to.
    pub low_percent: u8,
    /// Most bytes images may take on disk (their components, file trees
    /// and compiled code), whatever the disk's usage.
    pub max_bytes: Option<u64>,
    /// Images pulled more recently than this are kept (the kubelet's
    /// `--minimum-image-ttl-duration`): a pod may be about to start them.
    pub minimum_age: Duration,
}

impl Default for GcPolicy {
    /// The kubelet's: 85% and 80%, no budget.
    fn default() -> Self {
        GcPolicy {
            high_percent: 85,
            low_percent: 80,
            max_bytes: None,
            minimum_age: Duration::from_secs(120),
        }
    }
}

/// What a collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// References removed.
    pub removed: Vec<String>,
    /// Bytes deleted from disk.
    pub freed: u64,
    /// Component digests no image names any more.
    pub dropped_components: Vec<String>,
}

/// Used and total bytes of the file system holding `path`.
fn disk_usage(path: &Path) -> Option<(u64, u64)> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs fills the zeroed struct from a valid C string path.
    let stat = unsafe {
        let mut stat: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c_path.as_ptr(), &mut stat) != 0 {
            return None;
        }
        stat
    };
    let block = stat.f_frsize as u64;
    let total = stat.f_blocks as u64 * block;
    let available = stat.f_bavail as u64 * block;
    Some((total.saturating_sub(available), total))
}

impl ImageStore {
    /// Collects images under `policy`. `in_use` holds the references (as
    /// [`ImageStore::canonical`] spells them) pods on the node run;
    /// `pinned` names repositories never collected (the built-ins).
    pub fn collect(
        &self,
        policy: &GcPolicy,
        in_use: &HashSet<String>,
        pinned: &HashSet<&str>,
    ) -> Result<GcReport> {
        let mut need = 0u64;
        if let Some((used, total)) = disk_usage(&self.root)
            && total > 0
            && used * 100 >= total * policy.high_percent as u64
        {
            need = used.saturating_sub(total * policy.low_percent as u64 / 100);
        }
        // Measuring every image's files is for a budget or a full disk only.
        if need == 0 && policy.max_bytes.is_none() {
            return Ok(GcReport::default());
        }
        let records = self.list()?;
        let footprint = Footprint::of(self, &records);
        if let Some(max) = policy.max_bytes {
            need = need.max(footprint.total.saturating_sub(max));
        }
        let mut report = GcReport::default();
        if need == 0 {
            return Ok(report);
        }
        let mut candidates: Vec<&ImageRecord> = records
            .iter()
            .filter(|r| !in_use.contains(&r.reference))
            .filter(|r| {
                ImageRef::parse(&r.reference)
                    .map(|p| !(p.registry.is_none() && pinned.contains(p.repository.as_str())))
                    .unwrap_or(false)
            })
            .collect();
        let now = jiff::Timestamp::now();
        candidates.retain(|r| {
            let pulled = r
                .pulled_at
                .as_deref()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok());
            pulled.is_none_or(|t| now.duration_since(t).unsigned_abs() >= policy.minimum_age)
        });
        candidates.sort_by(|a, b| a.pulled_at.cmp(&b.pulled_at));
        let mut planned = 0u64;
        for record in candidates {
            if planned >= need {
                break;
            }
            if let Ok(r) = ImageRef::parse(&record.reference)
                && self.remove(&r)?
            {
                planned += footprint.freed_without(record);
                report.removed.push(record.reference.clone());
            }
        }
        let pruned = self.prune(Duration::ZERO)?;
        report.freed = pruned.freed;
        report.dropped_components = pruned.dropped_components;
        Ok(report)
    }

    /// Deletes components and trees no record names, older than `grace`
    /// (a pull running beside this writes them before its record), and
    /// the compiled code of components gone. Returns what went.
    pub fn prune(&self, grace: Duration) -> Result<GcReport> {
        let records = self.list()?;
        let mut digests: BTreeSet<String> = BTreeSet::new();
        let mut trees: BTreeSet<String> = BTreeSet::new();
        for r in &records {
            digests.insert(hex_of(&r.digest));
            digests.extend(r.programs.values().map(|d| hex_of(d)));
            if let Some(tree) = &r.tree {
                trees.insert(hex_of(tree));
            }
        }
        let old_enough = |path: &Path| {
            fs::symlink_metadata(path)
                .and_then(|m| m.modified())
                .map(|t| SystemTime::now().duration_since(t).unwrap_or_default() >= grace)
                .unwrap_or(false)
        };
        let mut report = GcReport::default();
        let blobs = self.root.join("blobs/sha256");
        for entry in fs::read_dir(&blobs).map_err(io_err(&blobs))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(hex) = name.strip_suffix(".wasm") else {
                continue;
            };
            if !digests.contains(hex) && old_enough(&entry.path()) {
                report.freed += entry.metadata().map(|m| m.len()).unwrap_or(0);
                let _ = fs::remove_file(entry.path());
                report.dropped_components.push(format!("sha256:{hex}"));
            }
        }
        let tree_dir = self.root.join("trees");
        for entry in fs::read_dir(&tree_dir)
            .map_err(io_err(&tree_dir))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !trees.contains(&name) && old_enough(&entry.path()) {
                report.freed += tree_size(&entry.path());
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        for (hex, path) in self.compiled_files() {
            if !digests.contains(&hex) && old_enough(&path) {
                report.freed += fs::metadata(&path).map_or(0, |m| m.len());
                let _ = fs::remove_file(&path);
            }
        }
        Ok(report)
    }

    /// The compiled code files, with the hex digest of the component each
    /// was compiled from. They sit beside the store, in
    /// `<data dir>/cache/compiled/<hex>-<settings>.cwasm`.
    fn compiled_files(&self) -> Vec<(String, PathBuf)> {
        let Some(data_dir) = self.root.parent() else {
            return Vec::new();
        };
        fs::read_dir(data_dir.join("cache/compiled"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                let hex = name.strip_suffix(".cwasm")?.split('-').next()?.to_string();
                Some((hex, entry.path()))
            })
            .collect()
    }

    /// Bytes of compiled code per component (hex digest), over every
    /// engine setting it was compiled for.
    fn compiled_sizes(&self) -> HashMap<String, u64> {
        let mut sizes = HashMap::new();
        for (hex, path) in self.compiled_files() {
            *sizes.entry(hex).or_default() += fs::metadata(&path).map_or(0, |m| m.len());
        }
        sizes
    }
}

fn hex_of(digest: &str) -> String {
    digest.trim_start_matches("sha256:").to_string()
}

/// What the images take on disk: each file tree, each component and each
/// component's compiled code (the largest part: a 1.5 MB component
/// compiles to 4.4 MB), counted once however many references share it.
struct Footprint {
    /// Bytes of everything the records name.
    total: u64,
    /// Bytes of each tree and component, by digest, with how many records
    /// name it.
    parts: HashMap<String, (u64, usize)>,
}

impl Footprint {
    fn of(store: &ImageStore, records: &[ImageRecord]) -> Footprint {
        let compiled = store.compiled_sizes();
        let mut parts: HashMap<String, (u64, usize)> = HashMap::new();
        for record in records {
            for part in Footprint::parts_of(record) {
                let entry = parts.entry(part.clone()).or_insert_with(|| {
                    let hex = hex_of(&part);
                    let bytes = if record.tree.as_deref() == Some(part.as_str()) {
                        tree_size(&store.tree_path(&part))
                    } else {
                        let blob = fs::metadata(store.blob_path(&part)).map_or(0, |m| m.len());
                        blob + compiled.get(&hex).copied().unwrap_or(0)
                    };
                    (bytes, 0)
                });
                entry.1 += 1;
            }
        }
        Footprint {
            total: parts.values().map(|(bytes, _)| bytes).sum(),
            parts,
        }
    }

    /// The tree and components a record names.
    fn parts_of(record: &ImageRecord) -> BTreeSet<String> {
        let mut parts: BTreeSet<String> = record.programs.values().cloned().collect();
        parts.insert(record.digest.clone());
        parts.extend(record.tree.clone());
        parts
    }

    /// Bytes removing `record` frees: its parts no other record names.
    fn freed_without(&self, record: &ImageRecord) -> u64 {
        Footprint::parts_of(record)
            .iter()
            .filter_map(|part| self.parts.get(part))
            .filter(|(_, users)| *users == 1)
            .map(|(bytes, _)| bytes)
            .sum()
    }
}

fn tree_size(path: &Path) -> u64 {
    super::files_in(path).iter().map(|(_, m)| m.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::ImageConfig;

    #[test]
    fn unused_images_go_and_used_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("images")).unwrap();
        let component = &crate::builtin::IMAGES[0].bytes();
        let used = ImageRef::parse("127.0.0.1:5000/used:1").unwrap();
        let unused = ImageRef::parse("127.0.0.1:5000/unused:1").unwrap();
        let builtin = ImageRef::parse("toolbox").unwrap();
        store
            .import(&used, component, ImageConfig::default())
            .unwrap();
        store
            .import_with_files(
                &unused,
                &crate::builtin::IMAGES[1].bytes(),
                ImageConfig::default(),
                &[("/a", b"x")],
                "/app.wasm",
            )
            .unwrap();
        store
            .import(&builtin, component, ImageConfig::default())
            .unwrap();
        let in_use = HashSet::from([used.to_string()]);
        let pinned = HashSet::from(["toolbox"]);
        let nothing = store
            .collect(
                &GcPolicy {
                    high_percent: 100,
                    low_percent: 100,
                    max_bytes: None,
                    minimum_age: Duration::ZERO,
                },
                &in_use,
                &pinned,
            )
            .unwrap();
        assert!(
            nothing.removed.is_empty(),
            "under the thresholds nothing goes"
        );
        let mut policy = GcPolicy {
            high_percent: 100,
            low_percent: 100,
            max_bytes: Some(1),
            minimum_age: Duration::from_secs(3600),
        };
        let young = store.collect(&policy, &in_use, &pinned).unwrap();
        assert!(
            young.removed.is_empty(),
            "images younger than the minimum age stay"
        );
        policy.minimum_age = Duration::ZERO;
        let report = store.collect(&policy, &in_use, &pinned).unwrap();
        assert_eq!(report.removed, vec![unused.to_string()]);
        assert!(report.freed > 0);
        let unused_digest = crate::images::digest_of(&crate::builtin::IMAGES[1].bytes());
        assert_eq!(report.dropped_components, vec![unused_digest]);
        assert!(store.record(&used).unwrap().is_some());
        assert!(store.record(&builtin).unwrap().is_some());
        assert!(
            store.resolve(&used.to_string()).unwrap().path.exists(),
            "a used image keeps its component"
        );
        assert_eq!(
            fs::read_dir(dir.path().join("images/trees"))
                .unwrap()
                .count(),
            0
        );
    }

    /// The budget counts an image's compiled code: an unused image whose
    /// component fits the budget goes when its compiled code does not.
    #[test]
    fn the_size_budget_counts_compiled_code() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("images")).unwrap();
        let unused = ImageRef::parse("127.0.0.1:5000/unused:1").unwrap();
        let bytes = crate::builtin::IMAGES[1].bytes();
        let record = store
            .import(&unused, &bytes, ImageConfig::default())
            .unwrap();
        let policy = |max_bytes| GcPolicy {
            high_percent: 100,
            low_percent: 100,
            max_bytes: Some(max_bytes),
            minimum_age: Duration::ZERO,
        };
        let (in_use, pinned) = (HashSet::new(), HashSet::new());
        let within = store
            .collect(&policy(record.size), &in_use, &pinned)
            .unwrap();
        assert!(within.removed.is_empty(), "the component alone fits");

        let compiled = dir.path().join("cache/compiled");
        fs::create_dir_all(&compiled).unwrap();
        let code = compiled.join(format!("{}-0123456789abcdef.cwasm", hex_of(&record.digest)));
        fs::write(&code, vec![0u8; 4096]).unwrap();
        let over = store
            .collect(&policy(record.size + 4095), &in_use, &pinned)
            .unwrap();
        assert_eq!(over.removed, vec![unused.to_string()]);
        assert!(!code.exists(), "its compiled code went with it");
        assert!(over.freed >= record.size + 4096, "freed {}", over.freed);
    }
}
