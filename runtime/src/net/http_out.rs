//! Outgoing `wasi:http` requests of guests (wasmtime-wasi-http's send
//! hook): the host name is looked up as the guest's own lookups are
//! (Service names through the pod's search path) and the connection goes
//! where a guest's TCP connection would: to a pod, a Service's endpoint,
//! or out of the host. Plain HTTP only.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::{Metered, PodNet, Protocol, Resolved, Route};

/// The send hook of one guest: its pod's network.
pub(crate) struct PodHttp {
    pub(crate) net: Arc<PodNet>,
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for PodHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let net = Arc::clone(&self.net);
        Box::new(send(net, request, options))
    }
}

async fn send(
    net: Arc<PodNet>,
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
> {
    let uri = request.uri().clone();
    if uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
        // No TLS client in the runtime yet.
        return Err(Error::TlsProtocolError);
    }
    let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let ip = resolve(&net, host).await?;
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(std::time::Duration::from_secs(75));
    let to = SocketAddr::new(ip, port);
    let (sender, connection) = match net.route(to, Protocol::Tcp) {
        // To its own pod a request stays on the loopback; to another it
        // crosses both pods' edges.
        Route::Pod(pod, port) if Arc::ptr_eq(&pod, &net) => {
            let stream = pod
                .dial_loopback(port)
                .map_err(|_| Error::ConnectionRefused)?;
            handshake(stream).await?
        }
        Route::Pod(pod, port) => {
            let stream = pod.dial(port).map_err(|_| Error::ConnectionRefused)?;
            handshake(stream.metered(net.meter())).await?
        }
        Route::Refused => return Err(Error::ConnectionRefused),
        Route::Denied => return Err(Error::DestinationIpProhibited),
        // Dropped by policy: nothing answers before the connect timeout.
        Route::Dropped => {
            tokio::time::sleep(connect_timeout).await;
            return Err(Error::ConnectionTimeout);
        }
        Route::Outside(to) => {
            let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(to))
                .await
                .map_err(|_| Error::ConnectionTimeout)?
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::ConnectionRefused => Error::ConnectionRefused,
                    _ => Error::Connect(e),
                })?;
            let _ = stream.set_nodelay(true);
            handshake(Metered::new(stream, net.meter())).await?
        }
    };
    // HTTP/1.1 requests carry the path; the host is in the Host header.
    *request.uri_mut() = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .parse()
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    // The connection must be driven while the request is written and the
    // answer awaited: it runs on its own task, which the returned future
    // waits for once the body has been read.
    let driving = tokio::spawn(Box::into_pin(connection));
    let mut sender = sender;
    let response = sender.send_request(request).await.map_err(Error::from)?;
    let response = response.map(|body| body.map_err(Error::from).boxed_unsync());
    let rest = async move { driving.await.unwrap_or(Ok(())) };
    Ok((response, Box::new(rest)))
}

async fn resolve(net: &PodNet, host: &str) -> Result<IpAddr, Error> {
    let not_found = || Error::DnsError {
        rcode: Some("NXDOMAIN".into()),
        info_code: None,
    };
    match net.resolve(host) {
        Resolved::Cluster(ips) => ips.first().copied().ok_or_else(not_found),
        Resolved::Unknown => Err(not_found()),
        Resolved::Host(name) => tokio::net::lookup_host((name.as_str(), 0))
            .await
            .map_err(|_| not_found())?
            .map(|a| a.ip())
            .next()
            .ok_or_else(not_found),
    }
}

type Connection = (
    hyper::client::conn::http1::SendRequest<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
);

async fn handshake<S>(stream: S) -> Result<Connection, Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(Error::from)?;
    let driver = async move { connection.await.map_err(Error::from) };
    Ok((sender, Box::new(driver)))
}
