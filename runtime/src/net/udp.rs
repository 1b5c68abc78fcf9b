//! `wasi:sockets/udp` and `udp-create-socket` over a pod's [`PodNet`]:
//! UDP ports are per pod like TCP ports (two pods can both bind :53 on
//! loopback), and datagrams to the pod's loopback, its IP or another pod's
//! IP are delivered in memory. A full receive queue drops datagrams, as a
//! full socket buffer does. Datagrams to addresses outside the cluster are
//! refused (no UDP egress yet).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::sync::{Mutex as AsyncMutex, mpsc};
use wasmtime::component::Resource;
use wasmtime_wasi::p2::bindings::sockets::network::{
    ErrorCode, IpAddressFamily, IpSocketAddress, Network,
};
use wasmtime_wasi::p2::{DynPollable, Pollable, SocketError};

use super::tcp::{PodTcp, PodTcpView};
use super::{PodNet, Protocol, Route, lock};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "wasmkube:pod-net/pod-udp",
        imports: { default: async | trappable },
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:sockets/network": wasmtime_wasi::p2::bindings::sockets::network,
            "wasi:sockets/udp.udp-socket": super::PodUdpSocket,
            "wasi:sockets/udp.incoming-datagram-stream": super::IncomingStream,
            "wasi:sockets/udp.outgoing-datagram-stream": super::OutgoingStream,
        },
        trappable_error_type: {
            "wasi:sockets/network.error-code" => wasmtime_wasi::p2::SocketError,
        },
    });
}

use bindings::wasi::sockets::{udp, udp_create_socket};

type SocketResult<T> = Result<T, SocketError>;

/// Datagrams a socket holds unread before more are dropped.
const QUEUE: usize = 256;
/// The largest datagram: what fits an IPv4 UDP packet.
const MAX_DATAGRAM: usize = 65_507;

/// A datagram on its way: the bytes and who sent it.
#[derive(Debug)]
pub(crate) struct Datagram {
    data: Vec<u8>,
    from: SocketAddr,
}

/// A socket's receive queue, shared by the socket and its streams.
struct Inbox {
    rx: mpsc::Receiver<Datagram>,
    /// Taken from the channel by a poll, not yet received.
    ready: VecDeque<Datagram>,
}

/// A guest's UDP socket in its pod's network.
pub struct PodUdpSocket {
    family: IpAddressFamily,
    net: Arc<PodNet>,
    local: Option<SocketAddr>,
    bind_pending: bool,
    /// Where `stream(Some(..))` connected it.
    remote: Option<SocketAddr>,
    inbox: Option<Arc<AsyncMutex<Inbox>>>,
}

impl Drop for PodUdpSocket {
    fn drop(&mut self) {
        if let Some(local) = self.local {
            self.net.release_udp(local.port());
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for PodUdpSocket {
    async fn ready(&mut self) {}
}

/// The receiving side of a streamed socket.
pub struct IncomingStream {
    inbox: Arc<AsyncMutex<Inbox>>,
    remote: Option<SocketAddr>,
}

#[wasmtime_wasi::async_trait]
impl Pollable for IncomingStream {
    async fn ready(&mut self) {
        let mut inbox = self.inbox.lock().await;
        if inbox.ready.is_empty()
            && let Some(datagram) = inbox.rx.recv().await
        {
            inbox.ready.push_back(datagram);
        }
    }
}

/// The sending side of a streamed socket.
pub struct OutgoingStream {
    net: Arc<PodNet>,
    local: SocketAddr,
    remote: Option<SocketAddr>,
}

#[wasmtime_wasi::async_trait]
impl Pollable for OutgoingStream {
    async fn ready(&mut self) {}
}

/// Registers the pod UDP over wasmtime-wasi's (which must be added first).
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> PodTcpView<'_>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    udp::add_to_linker::<T, PodTcp>(linker, get)?;
    udp_create_socket::add_to_linker::<T, PodTcp>(linker, get)?;
    linker.allow_shadowing(false);
    Ok(())
}

fn family_of(addr: &SocketAddr) -> IpAddressFamily {
    if addr.is_ipv4() {
        IpAddressFamily::Ipv4
    } else {
        IpAddressFamily::Ipv6
    }
}

impl PodNet {
    /// Binds UDP `port` of the pod (0: an ephemeral one); the receiver
    /// gets what is sent to it.
    fn bind_udp(&self, port: u16) -> Option<(u16, mpsc::Receiver<Datagram>)> {
        let mut bound = lock(&self.udp);
        let port = if port == 0 {
            super::EPHEMERAL.clone().find(|p| !bound.contains_key(p))?
        } else {
            port
        };
        if bound.contains_key(&port) {
            return None;
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        bound.insert(port, tx);
        Some((port, rx))
    }

    fn release_udp(&self, port: u16) {
        lock(&self.udp).remove(&port);
    }

    /// Hands a datagram to whoever bound `port`; dropped if nobody did or
    /// its queue is full.
    fn deliver_udp(&self, port: u16, datagram: Datagram) {
        if let Some(tx) = lock(&self.udp).get(&port) {
            let _ = tx.try_send(datagram);
        }
    }
}

impl udp_create_socket::Host for PodTcpView<'_> {
    async fn create_udp_socket(
        &mut self,
        family: IpAddressFamily,
    ) -> SocketResult<Resource<PodUdpSocket>> {
        let socket = PodUdpSocket {
            family,
            net: Arc::clone(self.net),
            local: None,
            bind_pending: false,
            remote: None,
            inbox: None,
        };
        Ok(self.table.push(socket)?)
    }
}

impl udp::Host for PodTcpView<'_> {}

impl udp::HostUdpSocket for PodTcpView<'_> {
    async fn start_bind(
        &mut self,
        this: Resource<PodUdpSocket>,
        network: Resource<Network>,
        local: IpSocketAddress,
    ) -> SocketResult<()> {
        self.table.get(&network)?;
        let addr: SocketAddr = local.into();
        let s = self.table.get_mut(&this)?;
        if s.bind_pending {
            return Err(ErrorCode::ConcurrencyConflict.into());
        }
        if s.local.is_some() {
            return Err(ErrorCode::InvalidState.into());
        }
        if family_of(&addr) != s.family {
            return Err(ErrorCode::InvalidArgument.into());
        }
        if !s.net.bindable(addr.ip()) {
            return Err(ErrorCode::AddressNotBindable.into());
        }
        let (port, rx) = s.net.bind_udp(addr.port()).ok_or(ErrorCode::AddressInUse)?;
        s.local = Some(SocketAddr::new(addr.ip(), port));
        s.inbox = Some(Arc::new(AsyncMutex::new(Inbox {
            rx,
            ready: VecDeque::new(),
        })));
        s.bind_pending = true;
        Ok(())
    }

    async fn finish_bind(&mut self, this: Resource<PodUdpSocket>) -> SocketResult<()> {
        let s = self.table.get_mut(&this)?;
        if !s.bind_pending {
            return Err(ErrorCode::NotInProgress.into());
        }
        s.bind_pending = false;
        Ok(())
    }

    async fn stream(
        &mut self,
        this: Resource<PodUdpSocket>,
        remote: Option<IpSocketAddress>,
    ) -> SocketResult<(Resource<IncomingStream>, Resource<OutgoingStream>)> {
        let s = self.table.get_mut(&this)?;
        let (Some(local), Some(inbox)) = (s.local, s.inbox.clone()) else {
            return Err(ErrorCode::InvalidState.into());
        };
        let remote: Option<SocketAddr> = remote.map(Into::into);
        if let Some(r) = remote
            && (family_of(&r) != s.family || r.port() == 0 || r.ip().is_unspecified())
        {
            return Err(ErrorCode::InvalidArgument.into());
        }
        s.remote = remote;
        let net = Arc::clone(&s.net);
        let incoming = IncomingStream { inbox, remote };
        let outgoing = OutgoingStream { net, local, remote };
        Ok((self.table.push(incoming)?, self.table.push(outgoing)?))
    }

    async fn local_address(
        &mut self,
        this: Resource<PodUdpSocket>,
    ) -> SocketResult<IpSocketAddress> {
        let s = self.table.get(&this)?;
        s.local
            .map(Into::into)
            .ok_or(ErrorCode::InvalidState.into())
    }

    async fn remote_address(
        &mut self,
        this: Resource<PodUdpSocket>,
    ) -> SocketResult<IpSocketAddress> {
        let s = self.table.get(&this)?;
        s.remote
            .map(Into::into)
            .ok_or(ErrorCode::InvalidState.into())
    }

    async fn address_family(
        &mut self,
        this: Resource<PodUdpSocket>,
    ) -> wasmtime::Result<IpAddressFamily> {
        Ok(self.table.get(&this)?.family)
    }

    // Hop limits and buffer sizes mean nothing in memory; accepted and
    // reported, as Linux reports them.
    async fn unicast_hop_limit(&mut self, _: Resource<PodUdpSocket>) -> SocketResult<u8> {
        Ok(64)
    }
    async fn set_unicast_hop_limit(
        &mut self,
        _: Resource<PodUdpSocket>,
        v: u8,
    ) -> SocketResult<()> {
        if v == 0 {
            return Err(ErrorCode::InvalidArgument.into());
        }
        Ok(())
    }
    async fn receive_buffer_size(&mut self, _: Resource<PodUdpSocket>) -> SocketResult<u64> {
        Ok((QUEUE * 1024) as u64)
    }
    async fn set_receive_buffer_size(
        &mut self,
        _: Resource<PodUdpSocket>,
        _: u64,
    ) -> SocketResult<()> {
        Ok(())
    }
    async fn send_buffer_size(&mut self, _: Resource<PodUdpSocket>) -> SocketResult<u64> {
        Ok((QUEUE * 1024) as u64)
    }
    async fn set_send_buffer_size(
        &mut self,
        _: Resource<PodUdpSocket>,
        _: u64,
    ) -> SocketResult<()> {
        Ok(())
    }

    async fn subscribe(
        &mut self,
        this: Resource<PodUdpSocket>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        wasmtime_wasi::p2::subscribe(self.table, this)
    }

    async fn drop(&mut self, this: Resource<PodUdpSocket>) -> wasmtime::Result<()> {
        // Releasing the port happens in PodUdpSocket's Drop.
        self.table.delete(this)?;
        Ok(())
    }
}

impl udp::HostIncomingDatagramStream for PodTcpView<'_> {
    async fn receive(
        &mut self,
        this: Resource<IncomingStream>,
        max: u64,
    ) -> SocketResult<Vec<udp::IncomingDatagram>> {
        let stream = self.table.get(&this)?;
        let remote = stream.remote;
        let mut inbox = stream.inbox.lock().await;
        let mut out = Vec::new();
        while (out.len() as u64) < max {
            let next = match inbox.ready.pop_front() {
                Some(d) => d,
                None => match inbox.rx.try_recv() {
                    Ok(d) => d,
                    Err(_) => break,
                },
            };
            // A connected socket takes only its peer's datagrams.
            if remote.is_some_and(|r| r != next.from) {
                continue;
            }
            out.push(udp::IncomingDatagram {
                data: next.data,
                remote_address: next.from.into(),
            });
        }
        Ok(out)
    }

    async fn subscribe(
        &mut self,
        this: Resource<IncomingStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        wasmtime_wasi::p2::subscribe(self.table, this)
    }

    async fn drop(&mut self, this: Resource<IncomingStream>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl udp::HostOutgoingDatagramStream for PodTcpView<'_> {
    async fn check_send(&mut self, this: Resource<OutgoingStream>) -> SocketResult<u64> {
        self.table.get(&this)?;
        Ok(QUEUE as u64)
    }

    async fn send(
        &mut self,
        this: Resource<OutgoingStream>,
        datagrams: Vec<udp::OutgoingDatagram>,
    ) -> SocketResult<u64> {
        let stream = self.table.get(&this)?;
        let mut sent = 0;
        for datagram in datagrams {
            let to: SocketAddr = match (datagram.remote_address, stream.remote) {
                (Some(to), None) => to.into(),
                (None, Some(remote)) => remote,
                (Some(to), Some(remote)) if SocketAddr::from(to) == remote => remote,
                _ => {
                    return if sent > 0 {
                        Ok(sent)
                    } else {
                        Err(ErrorCode::InvalidArgument.into())
                    };
                }
            };
            if datagram.data.len() > MAX_DATAGRAM {
                return if sent > 0 {
                    Ok(sent)
                } else {
                    Err(ErrorCode::DatagramTooLarge.into())
                };
            }
            if family_of(&to) != family_of(&stream.local) || to.port() == 0 {
                return if sent > 0 {
                    Ok(sent)
                } else {
                    Err(ErrorCode::InvalidArgument.into())
                };
            }
            let from_ip: IpAddr = if stream.net.is_own(to.ip()) {
                to.ip()
            } else {
                stream.net.ip().unwrap_or(to.ip())
            };
            let from = SocketAddr::new(from_ip, stream.local.port());
            let size = datagram.data.len();
            match stream.net.route(to, Protocol::Udp) {
                Route::Pod(target, port) => {
                    // Between pods, a datagram leaves one and reaches the
                    // other, whether or not anything there takes it.
                    if !Arc::ptr_eq(&target, &stream.net) {
                        stream.net.meter().transmitted(size);
                        target.meter().received(size);
                    }
                    target.deliver_udp(
                        port,
                        Datagram {
                            data: datagram.data,
                            from,
                        },
                    )
                }
                // Nothing answers there, or the policy drops it: the
                // datagram leaves the pod and is lost, as UDP's are.
                Route::Refused | Route::Dropped => stream.net.meter().transmitted(size),
                Route::Outside(_) | Route::Denied => {
                    return if sent > 0 {
                        Ok(sent)
                    } else {
                        Err(ErrorCode::AccessDenied.into())
                    };
                }
            }
            sent += 1;
        }
        Ok(sent)
    }

    async fn subscribe(
        &mut self,
        this: Resource<OutgoingStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        wasmtime_wasi::p2::subscribe(self.table, this)
    }

    async fn drop(&mut self, this: Resource<OutgoingStream>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}
