//! A pod's process table: every guest instance running in its sandbox (a
//! container's instance, a command exec'd in one) as a process with a pid,
//! for `ps` in the pod (`wasmkube:host/processes`).
//!
//! Processes live in process namespaces as on Linux: each container has
//! its own, which the commands exec'd in it join, unless the pod shares
//! one (`shareProcessNamespace`); a debug container with a target joins
//! the target's. A container's instance starting in an empty namespace is
//! its pid 1, as a new namespace's first process is.

use std::sync::{Arc, Mutex};

use crate::host_wit::processes as wit;
use crate::limits::Usage;

/// One running guest as `ps` shows it.
#[derive(Debug, Clone)]
pub struct ProcessInfo {
    /// Its pid in its namespace.
    pub pid: u32,
    /// The user it runs as.
    pub uid: u32,
    /// Its command line.
    pub argv: Vec<String>,
    /// The container it runs in.
    pub container: String,
    /// When it started.
    pub started: jiff::Timestamp,
    /// Whether it runs on a terminal.
    pub terminal: bool,
}

struct Entry {
    id: u64,
    namespace: String,
    info: ProcessInfo,
    usage: Arc<Usage>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    entries: Vec<Entry>,
    /// The last pid given out in each namespace.
    last_pid: std::collections::HashMap<String, u32>,
}

/// The processes of one pod.
#[derive(Default)]
pub(crate) struct Processes {
    table: Mutex<Table>,
}

/// Where a new process goes and what it is.
pub(crate) struct NewProcess<'a> {
    /// Its process namespace's key.
    pub(crate) namespace: &'a str,
    pub(crate) uid: u32,
    pub(crate) argv: &'a [String],
    pub(crate) container: &'a str,
    pub(crate) terminal: bool,
}

impl Processes {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enters a process; it leaves the table when the returned handle is
    /// dropped (its guest has ended).
    pub(crate) fn enter(self: &Arc<Self>, new: NewProcess<'_>, usage: Arc<Usage>) -> Process {
        let mut table = self.table();
        let empty = !table.entries.iter().any(|e| e.namespace == new.namespace);
        let last = table.last_pid.entry(new.namespace.to_string()).or_default();
        if empty {
            // A namespace with nothing left in it ended; a new one starts
            // counting again.
            *last = 0;
        }
        *last += 1;
        let pid = *last;
        table.next_id += 1;
        let id = table.next_id;
        table.entries.push(Entry {
            id,
            namespace: new.namespace.to_string(),
            info: ProcessInfo {
                pid,
                uid: new.uid,
                argv: new.argv.to_vec(),
                container: new.container.to_string(),
                started: jiff::Timestamp::now(),
                terminal: new.terminal,
            },
            usage,
        });
        Process {
            table: Arc::clone(self),
            id,
            pid,
            namespace: new.namespace.to_string(),
        }
    }

    /// The processes of `namespace` with their usage now, by pid.
    pub(crate) fn list(&self, namespace: &str) -> Vec<(ProcessInfo, crate::UsageSnapshot)> {
        let table = self.table();
        let mut listed: Vec<_> = table
            .entries
            .iter()
            .filter(|e| e.namespace == namespace)
            .map(|e| (e.info.clone(), e.usage.snapshot()))
            .collect();
        listed.sort_by_key(|(info, _)| info.pid);
        listed
    }
}

/// A running guest's place in its pod's process table.
pub(crate) struct Process {
    table: Arc<Processes>,
    id: u64,
    pid: u32,
    namespace: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        self.table.table().entries.retain(|e| e.id != self.id);
    }
}

impl wit::Host for crate::container::GuestState {
    fn running(&mut self) -> Vec<wit::Process> {
        let Some(own) = &self.process else {
            return Vec::new();
        };
        own.table
            .list(&own.namespace)
            .into_iter()
            .map(|(info, usage)| wit::Process {
                pid: info.pid,
                uid: info.uid,
                argv: info.argv,
                container: info.container,
                cpu_millis: u64::try_from(usage.cpu.as_millis()).unwrap_or(u64::MAX),
                memory_bytes: usage.memory_bytes,
                started: u64::try_from(info.started.as_second()).unwrap_or_default(),
                terminal: info.terminal,
            })
            .collect()
    }

    fn own_pid(&mut self) -> u32 {
        self.process.as_ref().map_or(0, |p| p.pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enter(table: &Arc<Processes>, namespace: &str, name: &str) -> Process {
        let argv = [name.to_string()];
        table.enter(
            NewProcess {
                namespace,
                uid: 0,
                argv: &argv,
                container: namespace,
                terminal: false,
            },
            Arc::default(),
        )
    }

    fn pids(table: &Processes, namespace: &str) -> Vec<(u32, String)> {
        table
            .list(namespace)
            .into_iter()
            .map(|(info, _)| (info.pid, info.argv.join(" ")))
            .collect()
    }

    #[test]
    fn namespaces_count_their_own_pids_and_restart_from_one() {
        let table = Arc::new(Processes::default());
        let app = enter(&table, "app", "server");
        let sidecar = enter(&table, "sidecar", "proxy");
        let sh = enter(&table, "app", "sh");
        assert_eq!(
            pids(&table, "app"),
            [(1, "server".to_string()), (2, "sh".to_string())]
        );
        assert_eq!(pids(&table, "sidecar"), [(1, "proxy".to_string())]);
        drop(sh);
        let ps = enter(&table, "app", "ps");
        assert_eq!(pids(&table, "app")[1], (3, "ps".to_string()));
        drop((app, ps, sidecar));
        assert!(pids(&table, "app").is_empty());
        let restarted = enter(&table, "app", "server");
        assert_eq!(pids(&table, "app"), [(1, "server".to_string())]);
        drop(restarted);
    }
}
