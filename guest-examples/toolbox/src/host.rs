//! The wasmkube host's own interfaces: file ownership and permission bits
//! (WASI's `stat` carries neither) and the terminal ([`crate::terminal`]).

wit_bindgen::generate!({
    path: "../../wit",
    world: "wasmkube:host/toolbox-host",
});

use wasmkube::host::file_owner;
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
