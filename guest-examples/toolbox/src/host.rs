//! The wasmkube host's own interfaces: file ownership and permission bits
//! (WASI's `stat` carries neither), the terminal ([`crate::terminal`]) and
//! the pod's processes (for `ps`).

wit_bindgen::generate!({
    path: "../../wit",
    world: "wasmkube:host/toolbox-host",
});

use wasmkube::host::file_owner;
pub use wasmkube::host::processes::Process;
pub use wasmkube::host::terminal;

/// Owner, group, permission bits and link count of a file.
pub struct Ownership {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub links: u64,
}

/// What the host knows of an absolute guest path, if it can tell.
pub fn ownership(path: &str) -> Option<Ownership> {
    file_owner::stat(path).map(|o| Ownership {
        uid: o.uid,
        gid: o.gid,
        mode: o.mode,
        links: o.links,
    })
}

/// The processes this guest sees in its pod (itself included), by pid.
pub fn processes() -> Vec<Process> {
    wasmkube::host::processes::running()
}

/// This guest's pid in its pod; `None` off the wasmkube host (the toolbox's
/// own unit tests run natively).
pub fn own_pid() -> Option<u32> {
    match cfg!(target_family = "wasm") {
        true => Some(wasmkube::host::processes::own_pid()).filter(|&pid| pid != 0),
        false => None,
    }
}
