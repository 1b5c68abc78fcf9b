//! `ambassador`: the guide's ambassador pattern. Listens on `LISTEN_PORT`
//! (default 8080) of the pod and forwards every connection to `UPSTREAM`
//! (`host:port`; a Service name works), both ways, half-close included.
//! Pod mates talk to `localhost:LISTEN_PORT` and need not know where the
//! upstream is.
//!
//! A guest has no threads: one loop waits on every socket at once
//! (`wasi:io/poll`) and moves what is ready.

use wasip2::io::poll::{poll, Pollable};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};
use wasip2::sockets::instance_network::instance_network;
use wasip2::sockets::ip_name_lookup::resolve_addresses;
use wasip2::sockets::network::{
    ErrorCode, IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
    Network,
};
use wasip2::sockets::tcp::{ShutdownType, TcpSocket};
use wasip2::sockets::tcp_create_socket::create_tcp_socket;

/// Bytes read per step of one direction.
const CHUNK: u64 = 64 * 1024;

/// One direction of a forwarded connection.
struct Flow {
    from: InputStream,
    to: OutputStream,
    /// Read but not yet written.
    pending: Vec<u8>,
    /// The reading side ended (and the writing side was shut).
    done: bool,
}

impl Flow {
    fn new(from: InputStream, to: OutputStream) -> Flow {
        Flow {
            from,
            to,
            pending: Vec::new(),
            done: false,
        }
    }

    /// What this direction waits for: data to read, or room to write.
    fn wants(&self) -> Option<Pollable> {
        if self.done && self.pending.is_empty() {
            None
        } else if self.pending.is_empty() {
            Some(self.from.subscribe())
        } else {
            Some(self.to.subscribe())
        }
    }

    /// Moves what it can; `shut` shuts the sending side of the socket
    /// `to` belongs to once `from` has ended. False when the connection
    /// broke.
    fn step(&mut self, shut: &TcpSocket) -> bool {
        if self.pending.is_empty() && !self.done {
            match self.from.read(CHUNK) {
                Ok(bytes) => self.pending = bytes,
                Err(StreamError::Closed) => {
                    self.done = true;
                    let _ = shut.shutdown(ShutdownType::Send);
                }
                Err(StreamError::LastOperationFailed(_)) => return false,
            }
        }
        while !self.pending.is_empty() {
            match self.to.check_write() {
                Ok(0) => break,
                Ok(room) => {
                    let n = self.pending.len().min(room as usize);
                    if self.to.write(&self.pending[..n]).is_err() {
                        return false;
                    }
                    self.pending.drain(..n);
                }
                Err(_) => return false,
            }
        }
        true
    }
}

/// A client and its upstream. Streams are dropped before their sockets.
struct Link {
    up: Flow,
    down: Flow,
    client: TcpSocket,
    upstream: TcpSocket,
}

fn fail(message: &str) -> ! {
    eprintln!("ambassador: {message}");
    std::process::exit(1)
}

/// Waits until `pollable` is ready.
fn wait(pollable: &Pollable) {
    poll(&[pollable]);
}

fn family_of(address: &IpAddress) -> IpAddressFamily {
    match address {
        IpAddress::Ipv4(_) => IpAddressFamily::Ipv4,
        IpAddress::Ipv6(_) => IpAddressFamily::Ipv6,
    }
}

fn socket_address(address: IpAddress, port: u16) -> IpSocketAddress {
    match address {
        IpAddress::Ipv4(address) => IpSocketAddress::Ipv4(Ipv4SocketAddress { port, address }),
        IpAddress::Ipv6(address) => IpSocketAddress::Ipv6(Ipv6SocketAddress {
            port,
            address,
            flow_info: 0,
            scope_id: 0,
        }),
    }
}

/// The first address `host` resolves to.
fn resolve(network: &Network, host: &str) -> Result<IpAddress, ErrorCode> {
    let answers = resolve_addresses(network, host)?;
    loop {
        match answers.resolve_next_address() {
            Ok(Some(address)) => return Ok(address),
            Ok(None) => return Err(ErrorCode::NameUnresolvable),
            Err(ErrorCode::WouldBlock) => wait(&answers.subscribe()),
            Err(e) => return Err(e),
        }
    }
}

/// Opens a connection to `host:port`.
fn connect(
    network: &Network,
    host: &str,
    port: u16,
) -> Result<(TcpSocket, InputStream, OutputStream), ErrorCode> {
    let address = resolve(network, host)?;
    let socket = create_tcp_socket(family_of(&address))?;
    socket.start_connect(network, socket_address(address, port))?;
    loop {
        match socket.finish_connect() {
            Ok((input, output)) => return Ok((socket, input, output)),
            Err(ErrorCode::WouldBlock) => wait(&socket.subscribe()),
            Err(e) => return Err(e),
        }
    }
}

fn listen(network: &Network, port: u16) -> Result<TcpSocket, ErrorCode> {
    let socket = create_tcp_socket(IpAddressFamily::Ipv4)?;
    socket.start_bind(network, socket_address(IpAddress::Ipv4((0, 0, 0, 0)), port))?;
    loop {
        match socket.finish_bind() {
            Ok(()) => break,
            Err(ErrorCode::WouldBlock) => wait(&socket.subscribe()),
            Err(e) => return Err(e),
        }
    }
    socket.start_listen()?;
    loop {
        match socket.finish_listen() {
            Ok(()) => return Ok(socket),
            Err(ErrorCode::WouldBlock) => wait(&socket.subscribe()),
            Err(e) => return Err(e),
        }
    }
}

fn main() {
    let port: u16 = match std::env::var("LISTEN_PORT") {
        Ok(p) => p
            .parse()
            .unwrap_or_else(|_| fail(&format!("LISTEN_PORT {p:?} is not a port"))),
        Err(_) => 8080,
    };
    let upstream = std::env::var("UPSTREAM")
        .unwrap_or_else(|_| fail("UPSTREAM (host:port to forward to) is not set"));
    let Some((host, upstream_port)) = upstream
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
    else {
        fail(&format!("UPSTREAM {upstream:?} is not host:port"));
    };
    let network = instance_network();
    let listener = listen(&network, port)
        .unwrap_or_else(|e| fail(&format!("cannot listen on port {port}: {e:?}")));
    println!("ambassador: localhost:{port} -> {upstream}");
    let mut links: Vec<Link> = Vec::new();
    loop {
        let mut waits = vec![listener.subscribe()];
        for link in &links {
            waits.extend(link.up.wants());
            waits.extend(link.down.wants());
        }
        let refs: Vec<&Pollable> = waits.iter().collect();
        let ready = poll(&refs);
        drop(waits);
        if ready.contains(&0) {
            if let Ok((client, from_client, to_client)) = listener.accept() {
                match connect(&network, &host, upstream_port) {
                    Ok((upstream_socket, from_upstream, to_upstream)) => links.push(Link {
                        up: Flow::new(from_client, to_upstream),
                        down: Flow::new(from_upstream, to_client),
                        client,
                        upstream: upstream_socket,
                    }),
                    Err(e) => {
                        eprintln!("ambassador: cannot reach {upstream}: {e:?}");
                        drop((from_client, to_client));
                        drop(client);
                    }
                }
            }
        }
        links.retain_mut(|link| {
            let ok = link.up.step(&link.upstream) && link.down.step(&link.client);
            let finished = link.up.done
                && link.down.done
                && link.up.pending.is_empty()
                && link.down.pending.is_empty();
            ok && !finished
        });
    }
}
