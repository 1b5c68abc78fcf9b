//! Serving the API: HTTPS with the server's own CA (or plain HTTP on
//! loopback when asked), and the admin kubeconfig that points kubectl at it.

pub mod connections;
pub mod kubeconfig;
mod parse_errors;
pub mod pki;

use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::api::Authenticated;
use crate::auth;

pub use kubeconfig::kubeconfig;
pub use pki::Pki;

/// Why serving could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the serving certificate or key is unreadable")]
    Pem(#[from] rustls::pki_types::pem::Error),
    #[error("TLS configuration failed")]
    Tls(#[from] rustls::Error),
    #[error("I/O failed")]
    Io(#[from] io::Error),
}

/// A rustls server configuration from the PKI (HTTP/2 and HTTP/1.1). A
/// client may present a certificate the cluster's CA signed (a user); one
/// signed by anyone else fails the handshake.
pub fn tls_config(pki: &Pki) -> Result<Arc<rustls::ServerConfig>, Error> {
    let certs = CertificateDer::pem_slice_iter(pki.server_cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(pki.server_key_pem.as_bytes())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
        roots.add(ca?)?;
    }
    let clients = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| Error::Tls(rustls::Error::General(e.to_string())))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(clients)
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// How long a client has for the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a new connection may take to send its first request's head,
/// and an HTTP/1.1 connection each following one (so also how long one may
/// sit idle between requests): the API server's header timeout.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How often an idle HTTP/2 connection is pinged, and how long the answer
/// may take before the connection is closed.
const H2_PING_EVERY: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves `router` on `listener` until `shutdown` resolves; with `tls`, over
/// HTTPS. Open connections (watches, log streams) are closed at shutdown.
///
/// Connections are capped below the process's open file limit (see
/// [`connections`]); a connection that sends no request within
/// [`HEADER_TIMEOUT`] is closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let limit = wasmkube_runtime::raise_open_file_limit();
    let admitted = connections::Connections::new(connections::cap_for(limit));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_PING_EVERY)
        .keep_alive_timeout(H2_PING_TIMEOUT);
    let builder = Arc::new(builder);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let guard = match admitted.admit() {
            connections::Admission::Admitted(guard) => Arc::new(guard),
            connections::Admission::Refused => {
                tracing::warn!("too many connections, every one busy: a new one is closed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let builder = Arc::clone(&builder);
        let service = ConnectionService {
            router: router.clone(),
            guard: Arc::clone(&guard),
            first_request: Arc::new(Notify::new()),
            certificate: None,
        };
        let abort = tasks.spawn(async move {
            let first_request = Arc::clone(&service.first_request);
            let served = async {
                let result = match acceptor {
                    Some(acceptor) => {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                        {
                            Ok(Ok(tls)) => {
                                let service = ConnectionService {
                                    certificate: tls
                                        .get_ref()
                                        .1
                                        .peer_certificates()
                                        .and_then(|chain| chain.first())
                                        .and_then(|leaf| auth::x509::user_of(leaf))
                                        .map(|user| auth::CertificateUser(Arc::new(user))),
                                    ..service
                                };
                                let io = TokioIo::new(parse_errors::WithStatus::new(tls));
                                builder.serve_connection_with_upgrades(io, service).await
                            }
                            Ok(Err(e)) => {
                                tracing::debug!("TLS handshake failed: {e}");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!("TLS handshake timed out");
                                return;
                            }
                        }
                    }
                    None => {
                        let io = TokioIo::new(parse_errors::WithStatus::new(stream));
                        builder.serve_connection_with_upgrades(io, service).await
                    }
                };
                if let Err(e) = result {
                    tracing::debug!("connection ended: {e}");
                }
            };
            let silent = async {
                if tokio::time::timeout(HEADER_TIMEOUT, first_request.notified())
                    .await
                    .is_ok()
                {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                () = served => {}
                () = silent => tracing::debug!("no request within {HEADER_TIMEOUT:?}: closed"),
            }
        });
        guard.set_abort(abort);
    }
    tasks.shutdown().await;
    Ok(())
}

/// The API as one connection serves it: each request counted in flight
/// on the connection until its response body has been sent.
#[derive(Clone)]
struct ConnectionService {
    router: Router,
    guard: Arc<connections::Guard>,
    /// Told when the first request arrives.
    first_request: Arc<Notify>,
    /// The user of the client certificate the connection presented.
    certificate: Option<auth::CertificateUser>,
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Response<Body>, Self::Error>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.first_request.notify_one();
        let in_flight = self.guard.begin();
        let router = self.router.clone();
        let mut request = request.map(Body::new);
        if let Some(user) = &self.certificate {
            request.extensions_mut().insert(user.clone());
        }
        Box::pin(async move {
            let response = tower::ServiceExt::oneshot(router, request).await?;
            if response.extensions().get::<Authenticated>().is_some() {
                in_flight.trust();
            }
            Ok(response.map(|body| {
                Body::new(Counted {
                    body,
                    _in_flight: in_flight,
                })
            }))
        })
    }
}

/// A response body that keeps its request in flight until it is done.
struct Counted {
    body: Body,
    _in_flight: connections::InFlight,
}

impl hyper::body::Body for Counted {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        hyper::body::Body::poll_frame(std::pin::Pin::new(&mut self.body), cx)
    }

    fn is_end_stream(&self) -> bool {
        hyper::body::Body::is_end_stream(&self.body)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::Body::size_hint(&self.body)
    }
}

/// Writes `text` to `path` atomically (a temporary file, synced, then
/// renamed), with `mode`: 0600 for what holds a key or the admin token.
pub fn write_file(path: &Path, text: &str, mode: u32) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let temporary = path.with_extension("tmp");
    {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
    }
    // The mode a file was created with is masked by the umask; an existing
    // temporary file kept its own.
    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&temporary, path)
}
