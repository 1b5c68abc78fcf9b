//! Connections from guests to the world outside the cluster: a real TCP
//! connection from the host, carried to the guest over an in-pod pipe so
//! it behaves as every other guest connection (half-close, backpressure).
//! Allowed by default, as a Kubernetes pod network allows egress.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::oneshot;
use wasmtime_wasi::p2::bindings::sockets::network::ErrorCode;

use super::PodConnection;
use super::pipe::End;

/// How long a connect to the outside may take, as Linux's default SYN
/// retries roughly allow.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(75);

/// Connects to `remote` from the host and joins it to `pod_end`; the
/// receiver says whether the connection was made.
pub(crate) fn dial(remote: SocketAddr, pod_end: End) -> oneshot::Receiver<Result<(), ErrorCode>> {
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let mut pod = PodConnection::new(pod_end);
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(remote)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                let _ = tx.send(Err(error_code(&e)));
                return;
            }
            Err(_) => {
                let _ = tx.send(Err(ErrorCode::Timeout));
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        if tx.send(Ok(())).is_err() {
            // The guest gave up on the connection.
            return;
        }
        let mut stream = stream;
        let _ = tokio::io::copy_bidirectional(&mut pod, &mut stream).await;
    });
    rx
}

fn error_code(e: &io::Error) -> ErrorCode {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => ErrorCode::ConnectionRefused,
        io::ErrorKind::ConnectionReset => ErrorCode::ConnectionReset,
        io::ErrorKind::ConnectionAborted => ErrorCode::ConnectionAborted,
        io::ErrorKind::TimedOut => ErrorCode::Timeout,
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            ErrorCode::RemoteUnreachable
        }
        io::ErrorKind::PermissionDenied => ErrorCode::AccessDenied,
        io::ErrorKind::AddrNotAvailable => ErrorCode::AddressNotBindable,
        _ => ErrorCode::Unknown,
    }
}
