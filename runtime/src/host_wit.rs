//! Bindings of `wit/host.wit`: the interfaces wasmkube offers its own
//! guests beyond WASI (`file-owner` in `ownership`, `terminal` in
//! [`crate::terminal`], `processes` in `processes`), linked into every
//! guest's linker.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "wasmkube:host/toolbox-host",
});

pub(crate) use wasmkube::host::{file_owner, processes, terminal};

/// Adds the interfaces, implemented on the guest's state.
pub(crate) fn add_to_linker(
    linker: &mut wasmtime::component::Linker<crate::container::GuestState>,
) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    file_owner::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    terminal::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    processes::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}
