//! `wasi:sockets/tcp` and `tcp-create-socket` over a pod's [`PodNet`]:
//! binds claim ports in the pod, listens register there, and connects to
//! the pod's loopback get an in-memory connection ([`super::pipe`]) with a
//! bounded window, half-close and no lost writes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use wasmtime::component::{HasData, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::sockets::network::{
    ErrorCode, IpAddressFamily, IpSocketAddress, Network,
};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, Pollable, SocketError};

use super::pipe::End;
use super::{Incoming, PodNet, Protocol, Route, WINDOW};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "wasmkube:pod-net/pod-tcp",
        imports: { default: async | trappable },
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "wasi:sockets/network": wasmtime_wasi::p2::bindings::sockets::network,
            "wasi:sockets/tcp.tcp-socket": super::PodTcpSocket,
        },
        trappable_error_type: {
            "wasi:sockets/network.error-code" => wasmtime_wasi::p2::SocketError,
        },
    });
}

use bindings::wasi::sockets::{tcp, tcp_create_socket};

type SocketResult<T> = Result<T, SocketError>;

enum State {
    Unbound,
    Bound(SocketAddr),
    Listening {
        local: SocketAddr,
        incoming: mpsc::UnboundedReceiver<Incoming>,
        /// A connection `ready()` already took from the queue.
        next: Option<Incoming>,
    },
    /// `start_connect` done; the stream waits for `finish_connect`.
    Connecting {
        local: SocketAddr,
        remote: SocketAddr,
        result: Result<End, ErrorCode>,
        /// A connection to the outside still being made from the host.
        dialing: Option<oneshot::Receiver<Result<(), ErrorCode>>>,
    },
    Connected {
        local: SocketAddr,
        remote: SocketAddr,
        end: End,
    },
    Closed,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pending {
    Bind,
    Listen,
}

/// A guest's TCP socket in its pod's network.
pub struct PodTcpSocket {
    family: IpAddressFamily,
    net: Arc<PodNet>,
    state: State,
    pending: Option<Pending>,
    /// The port this socket claimed by binding, released when it is dropped.
    claimed: Option<u16>,
}

impl Drop for PodTcpSocket {
    fn drop(&mut self) {
        if let Some(port) = self.claimed.take() {
            self.net.release(port);
        }
        // Closing a socket closes the connection both ways (what was
        // already written stays readable by the peer).
        if let State::Connected { end, .. } = &self.state {
            end.close();
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for PodTcpSocket {
    async fn ready(&mut self) {
        match &mut self.state {
            State::Listening { incoming, next, .. } if next.is_none() => {
                *next = incoming.recv().await;
            }
            State::Connecting {
                result,
                dialing: dialing @ Some(_),
                ..
            } => {
                if let Some(rx) = dialing.as_mut() {
                    let outcome = rx.await.unwrap_or(Err(ErrorCode::ConnectionAborted));
                    if let Err(code) = outcome {
                        *result = Err(code);
                    }
                }
                *dialing = None;
            }
            _ => {}
        }
    }
}

/// The data the TCP host functions need from a container's store.
pub(crate) struct PodTcp;

impl HasData for PodTcp {
    type Data<'a> = PodTcpView<'a>;
}

pub(crate) struct PodTcpView<'a> {
    pub(crate) table: &'a mut ResourceTable,
    pub(crate) net: &'a Arc<PodNet>,
}

/// Registers the pod TCP over wasmtime-wasi's (which must be added first).
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> PodTcpView<'_>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    tcp::add_to_linker::<T, PodTcp>(linker, get)?;
    tcp_create_socket::add_to_linker::<T, PodTcp>(linker, get)?;
    linker.allow_shadowing(false);
    Ok(())
}

fn wildcard(family: IpAddressFamily) -> IpAddr {
    match family {
        IpAddressFamily::Ipv4 => Ipv4Addr::UNSPECIFIED.into(),
        IpAddressFamily::Ipv6 => Ipv6Addr::UNSPECIFIED.into(),
    }
}

fn family_of(addr: &SocketAddr) -> IpAddressFamily {
    if addr.is_ipv4() {
        IpAddressFamily::Ipv4
    } else {
        IpAddressFamily::Ipv6
    }
}

fn into_streams(
    table: &mut ResourceTable,
    end: &End,
) -> SocketResult<(Resource<DynInputStream>, Resource<DynOutputStream>)> {
    let (input, output) = end.streams();
    let input: DynInputStream = Box::new(input);
    let output: DynOutputStream = Box::new(output);
    Ok((table.push(input)?, table.push(output)?))
}

impl tcp_create_socket::Host for PodTcpView<'_> {
    async fn create_tcp_socket(
        &mut self,
        family: IpAddressFamily,
    ) -> SocketResult<Resource<PodTcpSocket>> {
        let socket = PodTcpSocket {
            family,
            net: Arc::clone(self.net),
            state: State::Unbound,
            pending: None,
            claimed: None,
        };
        Ok(self.table.push(socket)?)
    }
}

impl tcp::Host for PodTcpView<'_> {}

impl wasmtime_wasi::p2::bindings::sockets::network::Host for PodTcpView<'_> {
    fn convert_error_code(&mut self, e: SocketError) -> wasmtime::Result<ErrorCode> {
        e.downcast()
    }

    fn network_error_code(
        &mut self,
        _: Resource<wasmtime_wasi::p2::IoError>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        Ok(None)
    }
}

impl wasmtime_wasi::p2::bindings::sockets::network::HostNetwork for PodTcpView<'_> {
    fn drop(&mut self, this: Resource<Network>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

fn finish(socket: &mut PodTcpSocket, op: Pending) -> SocketResult<()> {
    if socket.pending != Some(op) {
        return Err(ErrorCode::NotInProgress.into());
    }
    socket.pending = None;
    Ok(())
}

impl tcp::HostTcpSocket for PodTcpView<'_> {
    async fn start_bind(
        &mut self,
        this: Resource<PodTcpSocket>,
        network: Resource<Network>,
        local: IpSocketAddress,
    ) -> SocketResult<()> {
        self.table.get(&network)?;
        let mut addr: SocketAddr = local.into();
        let s = self.table.get_mut(&this)?;
        if s.pending.is_some() {
            return Err(ErrorCode::ConcurrencyConflict.into());
        }
        if !matches!(s.state, State::Unbound) {
            return Err(ErrorCode::InvalidState.into());
        }
        if family_of(&addr) != s.family {
            return Err(ErrorCode::InvalidArgument.into());
        }
        if !s.net.bindable(addr.ip()) {
            return Err(ErrorCode::AddressNotBindable.into());
        }
        if addr.port() == 0 {
            addr.set_port(s.net.ephemeral());
        }
        if !s.net.claim(addr.port()) {
            return Err(ErrorCode::AddressInUse.into());
        }
        s.claimed = Some(addr.port());
        s.state = State::Bound(addr);
        s.pending = Some(Pending::Bind);
        Ok(())
    }

    async fn finish_bind(&mut self, this: Resource<PodTcpSocket>) -> SocketResult<()> {
        finish(self.table.get_mut(&this)?, Pending::Bind)
    }

    async fn start_connect(
        &mut self,
        this: Resource<PodTcpSocket>,
        network: Resource<Network>,
        remote: IpSocketAddress,
    ) -> SocketResult<()> {
        self.table.get(&network)?;
        let remote: SocketAddr = remote.into();
        let s = self.table.get_mut(&this)?;
        if s.pending.is_some() {
            return Err(ErrorCode::ConcurrencyConflict.into());
        }
        if family_of(&remote) != s.family || remote.port() == 0 || remote.ip().is_unspecified() {
            return Err(ErrorCode::InvalidArgument.into());
        }
        let route = s.net.route(remote, Protocol::Tcp);
        let local = match s.state {
            // Within the pod the connection comes from the address it went
            // to; to other pods and Services, from this pod's IP.
            State::Unbound => {
                let within = s.net.is_own(remote.ip());
                let from = if within {
                    remote.ip()
                } else {
                    s.net.ip().unwrap_or(remote.ip())
                };
                SocketAddr::new(from, s.net.ephemeral())
            }
            State::Bound(a) => a,
            _ => return Err(ErrorCode::InvalidState.into()),
        };
        let (result, dialing) = match route {
            Route::Pod(target, port) => {
                let (ours, theirs) = End::pair(WINDOW);
                // Another pod's connection crosses both pods' edges.
                let (ours, theirs) = if Arc::ptr_eq(&target, &s.net) {
                    (ours, theirs)
                } else {
                    (ours.metered(s.net.meter()), theirs.metered(target.meter()))
                };
                let delivered = target
                    .deliver(port, theirs, local)
                    .map(|()| ours)
                    .map_err(|_| ErrorCode::ConnectionRefused);
                (delivered, None)
            }
            // A Service port without endpoints refuses, as kube-proxy's
            // reject rule does.
            Route::Refused => (Err(ErrorCode::ConnectionRefused), None),
            Route::Denied => (Err(ErrorCode::AccessDenied), None),
            // Dropped by policy: the connect waits for an answer that never
            // comes.
            Route::Dropped => (Err(ErrorCode::Timeout), Some(super::policy::unanswered())),
            Route::Outside(to) => {
                let (ours, theirs) = End::pair(WINDOW);
                let ours = ours.metered(s.net.meter());
                (Ok(ours), Some(super::egress::dial(to, theirs)))
            }
        };
        s.state = State::Connecting {
            local,
            remote,
            result,
            dialing,
        };
        Ok(())
    }

    async fn finish_connect(
        &mut self,
        this: Resource<PodTcpSocket>,
    ) -> SocketResult<(Resource<DynInputStream>, Resource<DynOutputStream>)> {
        let s = self.table.get_mut(&this)?;
        let State::Connecting {
            local,
            remote,
            result,
            dialing,
        } = &mut s.state
        else {
            return Err(ErrorCode::NotInProgress.into());
        };
        let (local, remote) = (*local, *remote);
        if let Some(rx) = dialing {
            match rx.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => {
                    return Err(ErrorCode::WouldBlock.into());
                }
                Ok(Ok(())) => {}
                Ok(Err(code)) => *result = Err(code),
                Err(oneshot::error::TryRecvError::Closed) => {
                    *result = Err(ErrorCode::ConnectionAborted)
                }
            }
            *dialing = None;
        }
        let State::Connecting { result, .. } = std::mem::replace(&mut s.state, State::Closed)
        else {
            unreachable!("checked above")
        };
        match result {
            Ok(end) => {
                let (input, output) = into_streams(self.table, &end)?;
                let s = self.table.get_mut(&this)?;
                s.state = State::Connected { local, remote, end };
                Ok((input, output))
            }
            Err(code) => Err(code.into()),
        }
    }

    async fn start_listen(&mut self, this: Resource<PodTcpSocket>) -> SocketResult<()> {
        let s = self.table.get_mut(&this)?;
        if s.pending.is_some() {
            return Err(ErrorCode::ConcurrencyConflict.into());
        }
        let local = match s.state {
            State::Bound(a) => a,
            State::Unbound => {
                // Listening unbound binds the wildcard on an ephemeral port.
                let port = s.net.ephemeral();
                if !s.net.claim(port) {
                    return Err(ErrorCode::AddressInUse.into());
                }
                s.claimed = Some(port);
                SocketAddr::new(wildcard(s.family), port)
            }
            _ => return Err(ErrorCode::InvalidState.into()),
        };
        let incoming = s.net.listen(local.port());
        s.state = State::Listening {
            local,
            incoming,
            next: None,
        };
        s.pending = Some(Pending::Listen);
        Ok(())
    }

    async fn finish_listen(&mut self, this: Resource<PodTcpSocket>) -> SocketResult<()> {
        finish(self.table.get_mut(&this)?, Pending::Listen)
    }

    async fn accept(
        &mut self,
        this: Resource<PodTcpSocket>,
    ) -> SocketResult<(
        Resource<PodTcpSocket>,
        Resource<DynInputStream>,
        Resource<DynOutputStream>,
    )> {
        let s = self.table.get_mut(&this)?;
        let (family, net) = (s.family, Arc::clone(&s.net));
        let State::Listening {
            local,
            incoming,
            next,
        } = &mut s.state
        else {
            return Err(ErrorCode::InvalidState.into());
        };
        let local = *local;
        let (end, peer) = match next.take() {
            Some(conn) => conn,
            None => incoming.try_recv().map_err(|_| ErrorCode::WouldBlock)?,
        };
        let (input, output) = into_streams(self.table, &end)?;
        let child = PodTcpSocket {
            family,
            net,
            state: State::Connected {
                local,
                remote: peer,
                end,
            },
            pending: None,
            claimed: None,
        };
        Ok((self.table.push(child)?, input, output))
    }

    async fn local_address(
        &mut self,
        this: Resource<PodTcpSocket>,
    ) -> SocketResult<IpSocketAddress> {
        match &self.table.get(&this)?.state {
            State::Bound(a)
            | State::Listening { local: a, .. }
            | State::Connected { local: a, .. } => Ok((*a).into()),
            _ => Err(ErrorCode::InvalidState.into()),
        }
    }

    async fn remote_address(
        &mut self,
        this: Resource<PodTcpSocket>,
    ) -> SocketResult<IpSocketAddress> {
        match &self.table.get(&this)?.state {
            State::Connected { remote, .. } => Ok((*remote).into()),
            _ => Err(ErrorCode::InvalidState.into()),
        }
    }

    async fn is_listening(&mut self, this: Resource<PodTcpSocket>) -> wasmtime::Result<bool> {
        Ok(matches!(
            self.table.get(&this)?.state,
            State::Listening { .. }
        ))
    }

    async fn address_family(
        &mut self,
        this: Resource<PodTcpSocket>,
    ) -> wasmtime::Result<IpAddressFamily> {
        Ok(self.table.get(&this)?.family)
    }

    async fn set_listen_backlog_size(
        &mut self,
        this: Resource<PodTcpSocket>,
        size: u64,
    ) -> SocketResult<()> {
        self.table.get(&this)?;
        if size == 0 {
            return Err(ErrorCode::InvalidArgument.into());
        }
        Ok(())
    }

    // Keep-alive, hop limit and buffer sizes mean nothing on an in-memory
    // connection; they are accepted and reported as set, as Linux does.
    async fn keep_alive_enabled(&mut self, _: Resource<PodTcpSocket>) -> SocketResult<bool> {
        Ok(false)
    }
    async fn set_keep_alive_enabled(
        &mut self,
        _: Resource<PodTcpSocket>,
        _: bool,
    ) -> SocketResult<()> {
        Ok(())
    }
    async fn keep_alive_idle_time(&mut self, _: Resource<PodTcpSocket>) -> SocketResult<u64> {
        Ok(7_200_000_000_000)
    }
    async fn set_keep_alive_idle_time(
        &mut self,
        _: Resource<PodTcpSocket>,
        _: u64,
    ) -> SocketResult<()> {
        Ok(())
    }
    async fn keep_alive_interval(&mut self, _: Resource<PodTcpSocket>) -> SocketResult<u64> {
        Ok(75_000_000_000)
    }
    async fn set_keep_alive_interval(
        &mut self,
        _: Resource<PodTcpSocket>,
        _: u64,
    ) -> SocketResult<()> {
        Ok(())
    }
    async fn keep_alive_count(&mut self, _: Resource<PodTcpSocket>) -> SocketResult<u32> {
        Ok(9)
    }
    async fn set_keep_alive_count(
        &mut self,
        _: Resource<PodTcpSocket>,
        _: u32,
    ) -> SocketResult<()> {
        Ok(())
    }
    async fn hop_limit(&mut self, _: Resource<PodTcpSocket>) -> SocketResult<u8> {
        Ok(64)
    }
    async fn set_hop_limit(&mut self, _: Resource<PodTcpSocket>, _: u8) -> SocketResult<()> {
        Ok(())
    }
    async fn receive_buffer_size(&mut self, _: Resource<PodTcpSocket>) -> SocketResult<u64> {
        Ok(WINDOW as u64)
    }
    async fn set_receive_buffer_size(
        &mut self,
        _: Resource<PodTcpSocket>,
        _: u64,
    ) -> SocketResult<()> {
        Ok(())
    }
    async fn send_buffer_size(&mut self, _: Resource<PodTcpSocket>) -> SocketResult<u64> {
        Ok(WINDOW as u64)
    }
    async fn set_send_buffer_size(
        &mut self,
        _: Resource<PodTcpSocket>,
        _: u64,
    ) -> SocketResult<()> {
        Ok(())
    }

    async fn subscribe(
        &mut self,
        this: Resource<PodTcpSocket>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        wasmtime_wasi::p2::subscribe(self.table, this)
    }

    async fn shutdown(
        &mut self,
        this: Resource<PodTcpSocket>,
        how: tcp::ShutdownType,
    ) -> SocketResult<()> {
        let s = self.table.get_mut(&this)?;
        let State::Connected { end, .. } = &s.state else {
            return Err(ErrorCode::InvalidState.into());
        };
        if matches!(how, tcp::ShutdownType::Send | tcp::ShutdownType::Both) {
            // The peer reads end-of-file after what was already sent.
            end.tx.close_write();
        }
        if matches!(how, tcp::ShutdownType::Receive | tcp::ShutdownType::Both) {
            // Unread and later data is discarded; the peer's writes fail.
            end.rx.close_read();
        }
        Ok(())
    }

    async fn drop(&mut self, this: Resource<PodTcpSocket>) -> wasmtime::Result<()> {
        // Releasing the claimed port happens in PodTcpSocket's Drop.
        self.table.delete(this)?;
        Ok(())
    }
}
