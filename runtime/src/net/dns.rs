//! `wasi:sockets/ip-name-lookup` for guests: names of the cluster
//! (Services, through the pod's search path) resolve from the cluster's
//! table at once; other names go to the host's resolver, off the guest's
//! thread.

use std::collections::VecDeque;
use std::net::IpAddr;

use tokio::sync::oneshot;
use wasmtime::component::Resource;
use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpAddress, Network};
use wasmtime_wasi::p2::{DynPollable, Pollable, SocketError};

use super::Resolved;
use super::tcp::{PodTcp, PodTcpView};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "wasmkube:pod-net/pod-dns",
        imports: { default: async | trappable },
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:sockets/network": wasmtime_wasi::p2::bindings::sockets::network,
            "wasi:sockets/ip-name-lookup.resolve-address-stream": super::ResolveStream,
        },
        trappable_error_type: {
            "wasi:sockets/network.error-code" => wasmtime_wasi::p2::SocketError,
        },
    });
}

use bindings::wasi::sockets::ip_name_lookup;

/// The answer to one lookup, taken address by address.
pub enum ResolveStream {
    Ready(VecDeque<IpAddr>),
    Failed(ErrorCode),
    /// The host's resolver is at work.
    Waiting(oneshot::Receiver<Result<Vec<IpAddr>, ErrorCode>>),
}

#[wasmtime_wasi::async_trait]
impl Pollable for ResolveStream {
    async fn ready(&mut self) {
        if let ResolveStream::Waiting(rx) = self {
            *self = match rx.await {
                Ok(Ok(ips)) => ResolveStream::Ready(ips.into()),
                Ok(Err(code)) => ResolveStream::Failed(code),
                Err(_) => ResolveStream::Failed(ErrorCode::PermanentResolverFailure),
            };
        }
    }
}

/// Registers the lookup over wasmtime-wasi's (which must be added first).
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> PodTcpView<'_>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    ip_name_lookup::add_to_linker::<T, PodTcp>(linker, get)?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Whether `name` can be a host name: ASCII letters, digits, '-', '_'
/// and dots, not empty, as IDNA's ASCII form is.
fn plausible(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

impl ip_name_lookup::Host for PodTcpView<'_> {
    async fn resolve_addresses(
        &mut self,
        network: Resource<Network>,
        name: String,
    ) -> Result<Resource<ResolveStream>, SocketError> {
        self.table.get(&network)?;
        if !plausible(&name) && name.parse::<IpAddr>().is_err() {
            return Err(ErrorCode::InvalidArgument.into());
        }
        let resolved = self.net.resolve(&name);
        let literal = name.parse::<IpAddr>().is_ok() || name.eq_ignore_ascii_case("localhost");
        if !literal && !self.net.may_look_up() {
            // The policy cuts the pod off the cluster's DNS: no server
            // answers.
            return Ok(self
                .table
                .push(ResolveStream::Failed(ErrorCode::TemporaryResolverFailure))?);
        }
        let stream = match resolved {
            Resolved::Cluster(ips) => ResolveStream::Ready(ips.into()),
            Resolved::Unknown => ResolveStream::Failed(ErrorCode::NameUnresolvable),
            Resolved::Host(name) => {
                let (tx, rx) = oneshot::channel();
                tokio::spawn(async move {
                    let answer = match tokio::net::lookup_host((name.as_str(), 0)).await {
                        Ok(addrs) => {
                            let mut ips: Vec<IpAddr> = Vec::new();
                            for ip in addrs.map(|a| a.ip()) {
                                if !ips.contains(&ip) {
                                    ips.push(ip);
                                }
                            }
                            Ok(ips)
                        }
                        Err(_) => Err(ErrorCode::NameUnresolvable),
                    };
                    let _ = tx.send(answer);
                });
                ResolveStream::Waiting(rx)
            }
        };
        Ok(self.table.push(stream)?)
    }
}

impl ip_name_lookup::HostResolveAddressStream for PodTcpView<'_> {
    async fn resolve_next_address(
        &mut self,
        this: Resource<ResolveStream>,
    ) -> Result<Option<IpAddress>, SocketError> {
        let stream = self.table.get_mut(&this)?;
        if let ResolveStream::Waiting(rx) = stream {
            *stream = match rx.try_recv() {
                Ok(Ok(ips)) => ResolveStream::Ready(ips.into()),
                Ok(Err(code)) => ResolveStream::Failed(code),
                Err(oneshot::error::TryRecvError::Empty) => {
                    return Err(ErrorCode::WouldBlock.into());
                }
                Err(oneshot::error::TryRecvError::Closed) => {
                    ResolveStream::Failed(ErrorCode::PermanentResolverFailure)
                }
            };
        }
        match stream {
            ResolveStream::Ready(ips) => Ok(ips.pop_front().map(IpAddress::from)),
            ResolveStream::Failed(code) => Err((*code).into()),
            ResolveStream::Waiting(_) => unreachable!("replaced above"),
        }
    }

    async fn subscribe(
        &mut self,
        this: Resource<ResolveStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        wasmtime_wasi::p2::subscribe(self.table, this)
    }

    async fn drop(&mut self, this: Resource<ResolveStream>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}
