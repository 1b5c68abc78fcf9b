//! Host interfaces of an embedder's own: WIT interfaces whose functions the
//! embedding program implements, linked into the guests granted them.
//!
//! An embedder registers each interface under a name
//! ([`RuntimeConfig::host_interfaces`](crate::RuntimeConfig::host_interfaces));
//! a container names the ones it is granted
//! ([`ContainerSpec::host_interfaces`](crate::ContainerSpec::host_interfaces)).
//! Guests are linked per set of granted interfaces, so a guest that
//! imports an interface it was not granted fails to start, as one
//! importing anything unknown does.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::Linker;

pub use crate::container::GuestState;

/// One interface of the embedder's: what it adds to a guest's linker.
///
/// Its functions get the guest's [`GuestState`] (which pod and container
/// called, its resource table); anything else they need they capture.
/// Typically `add_to_linker` calls the `add_to_linker` that
/// `wasmtime::component::bindgen!` generates for the interface.
pub trait HostInterface: Send + Sync + 'static {
    /// Adds the interface's functions to `linker`.
    fn add_to_linker(&self, linker: &mut Linker<GuestState>) -> wasmtime::Result<()>;
}

impl<F> HostInterface for F
where
    F: Fn(&mut Linker<GuestState>) -> wasmtime::Result<()> + Send + Sync + 'static,
{
    fn add_to_linker(&self, linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
        self(linker)
    }
}

/// The interfaces a runtime offers, by name.
#[derive(Clone, Default)]
pub struct HostInterfaces(BTreeMap<String, Arc<dyn HostInterface>>);

impl HostInterfaces {
    /// Offers `interface` under `name` (replacing one of the same name).
    pub fn insert(&mut self, name: impl Into<String>, interface: Arc<dyn HostInterface>) {
        self.0.insert(name.into(), interface);
    }

    /// The interface offered as `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn HostInterface>> {
        self.0.get(name)
    }

    /// Every name offered, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Whether none is offered.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for HostInterfaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}
