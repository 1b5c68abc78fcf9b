//! The HTTP/1.1 client behind `wget` and `curl`: one request per
//! connection (`Connection: close`), over TCP or TLS.
//!
//! TLS is rustls with ring's primitives, verifying the server against the
//! CA certificates a command names (an in-cluster client passes the
//! ServiceAccount's `ca.crt`), or against nothing when told to be insecure.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct};

/// Where CA certificates are looked for when a command names none: the
/// system bundle, when the image or a volume provides one.
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// A parsed `[http[s]://]host[:port][/path]`.
#[derive(Debug, PartialEq, Eq)]
pub struct Url {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Url {
    pub fn parse(url: &str) -> Result<Url, String> {
        let (scheme, rest) = if let Some(rest) = url.strip_prefix("http://") {
            (Scheme::Http, rest)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (Scheme::Https, rest)
        } else if url.contains("://") {
            return Err(format!("unsupported URL scheme in '{url}'"));
        } else {
            (Scheme::Http, url)
        };
        let default_port = match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
                let port = port.parse().map_err(|_| format!("bad port in '{url}'"))?;
                (host, port)
            }
            _ => (authority, default_port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("bad address '{url}'"));
        }
        Ok(Url {
            scheme,
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }

    /// The `Host` header: the port only when it is not the scheme's own.
    fn authority(&self) -> String {
        let default = match self.scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Whom a TLS server must prove itself to be signed by.
pub enum Trust {
    /// The CA certificates in these PEM bundles.
    Bundles(Vec<String>),
    /// Anyone: no verification (`curl -k`, `wget --no-check-certificate`).
    Anyone,
}

/// One request.
pub struct Request<'a> {
    pub method: &'a str,
    pub url: &'a Url,
    /// Extra headers, as `Name: value` lines were given.
    pub headers: &'a [(String, String)],
    pub body: Option<&'a [u8]>,
    pub timeout: Duration,
    pub trust: &'a Trust,
}

/// A response as read.
pub struct Response {
    pub status_line: String,
    pub code: u16,
    pub head: String,
    pub body: Vec<u8>,
}

/// Why a request failed.
#[derive(Debug)]
pub enum FetchError {
    /// The name did not resolve.
    Resolve,
    /// No connection to that address.
    Connect(IpAddr, io::Error),
    /// The server's certificate was not trusted (why, in words).
    Certificate(String),
    /// The CA bundle could not be read or held no certificate.
    Bundle(String),
    /// The TLS handshake failed otherwise.
    Tls(String),
    Io(io::Error),
    Malformed(String),
}

/// Sends `request`; `connecting` is told the address first.
pub fn fetch(
    request: &Request,
    connecting: impl FnOnce(SocketAddr),
) -> Result<Response, FetchError> {
    let url = request.url;
    let tls = match url.scheme {
        Scheme::Https => Some(client_config(request.trust)?),
        Scheme::Http => None,
    };
    let address = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|_| FetchError::Resolve)?
        .next()
        .ok_or(FetchError::Resolve)?;
    connecting(address);
    let stream = TcpStream::connect_timeout(&address, request.timeout)
        .map_err(|e| FetchError::Connect(address.ip(), e))?;
    let _ = stream.set_read_timeout(Some(request.timeout));
    let _ = stream.set_write_timeout(Some(request.timeout));
    let mut socket = Plain(stream);
    let raw = match tls {
        None => exchange(&mut socket, request),
        Some(config) => {
            let name = ServerName::try_from(url.host.clone())
                .map_err(|_| FetchError::Malformed(format!("bad host name '{}'", url.host)))?;
            let mut connection =
                ClientConnection::new(config, name).map_err(|e| FetchError::Tls(e.to_string()))?;
            while connection.is_handshaking() {
                connection
                    .complete_io(&mut socket)
                    .map_err(handshake_error)?;
            }
            let mut stream = rustls::Stream::new(&mut connection, &mut socket);
            exchange(&mut stream, request)
        }
    }?;
    parse_response(&raw)
}

/// Writes the request to `stream` and reads the whole response.
fn exchange(stream: &mut impl ReadWrite, request: &Request) -> Result<Vec<u8>, FetchError> {
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: toolbox\r\n",
        request.method,
        request.url.path,
        request.url.authority()
    );
    let given = |name: &str| {
        request
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    };
    if !given("accept") {
        head.push_str("Accept: */*\r\n");
    }
    for (name, value) in request.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = request.body {
        if !given("content-type") {
            head.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut message = head.into_bytes();
    message.extend_from_slice(request.body.unwrap_or_default());
    stream
        .write_all(&message)
        .and_then(|()| stream.flush())
        .map_err(FetchError::Io)?;
    let mut response = Vec::new();
    match stream.read_to_end(&mut response) {
        Ok(_) => {}
        // A TLS server that closes without close_notify: the response
        // read so far is the response (its length is checked below).
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(FetchError::Io(e)),
    }
    Ok(response)
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn parse_response(response: &[u8]) -> Result<Response, FetchError> {
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| FetchError::Malformed("error getting response".into()))?;
    let head = String::from_utf8_lossy(&response[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("").to_string();
    let code: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let raw = &response[head_end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        decode_chunked(raw)
            .ok_or_else(|| FetchError::Malformed("malformed chunked response".into()))?
    } else {
        let length = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok());
        match length {
            Some(n) if n > raw.len() => {
                return Err(FetchError::Malformed(
                    "connection closed before the whole body came".into(),
                ))
            }
            Some(n) => raw[..n].to_vec(),
            None => raw.to_vec(),
        }
    };
    Ok(Response {
        status_line,
        code,
        head,
        body,
    })
}

/// The body of an HTTP/1.1 response: chunked or as sent.
fn decode_chunked(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

/// A TCP stream seen only through `read` and `write`: wasi-libc's
/// `writev` on a socket fails (EBADF), and rustls writes vectored.
struct Plain(TcpStream);

impl Read for Plain {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Plain {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, FetchError> {
    // ring is the provider that builds for wasm; rustls deprecates it for
    // lacking post-quantum key exchange, which only aws-lc-rs offers.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| FetchError::Tls(e.to_string()))?;
    let config = match trust {
        Trust::Anyone => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
        Trust::Bundles(paths) => {
            let mut roots = rustls::RootCertStore::empty();
            for path in paths {
                let pem = std::fs::read(path).map_err(|e| {
                    FetchError::Bundle(format!("error reading CA file {path}: {e}"))
                })?;
                let before = roots.len();
                for certificate in CertificateDer::pem_slice_iter(&pem) {
                    let certificate = certificate.map_err(|_| {
                        FetchError::Bundle(format!("error reading CA file {path}: not PEM"))
                    })?;
                    // A bundle may hold certificates this verifier cannot
                    // use; the others still count.
                    let _ = roots.add(certificate);
                }
                if roots.len() == before {
                    return Err(FetchError::Bundle(format!(
                        "error reading CA file {path}: no certificate in it"
                    )));
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

/// A handshake's failure in the words of what went wrong.
fn handshake_error(e: io::Error) -> FetchError {
    let Some(tls) = e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) else {
        return FetchError::Io(e);
    };
    match tls {
        rustls::Error::InvalidCertificate(why) => FetchError::Certificate(match why {
            CertificateError::UnknownIssuer => "unable to get local issuer certificate".into(),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate has expired".into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "no alternative certificate subject name matches the host name".into()
            }
            other => format!("{other:?}"),
        }),
        other => FetchError::Tls(other.to_string()),
    }
}

/// Accepts any server certificate, still checking that the server holds
/// its key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            certificate,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            certificate,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A `Name: value` header line as given on a command line.
pub fn header(line: &str) -> Option<(String, String)> {
    let (name, value) = line.split_once(':')?;
    let name = name.trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    Some((name.to_string(), value.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            Url::parse("http://10.244.0.3:8080/a/b?x=1").unwrap(),
            Url {
                scheme: Scheme::Http,
                host: "10.244.0.3".into(),
                port: 8080,
                path: "/a/b?x=1".into()
            }
        );
        assert_eq!(
            Url::parse("web").unwrap(),
            Url {
                scheme: Scheme::Http,
                host: "web".into(),
                port: 80,
                path: "/".into()
            }
        );
        let api = Url::parse("https://kubernetes.default.svc/api").unwrap();
        assert_eq!((api.scheme, api.port), (Scheme::Https, 443));
        assert_eq!(api.authority(), "kubernetes.default.svc");
        assert_eq!(
            Url::parse("https://[::1]:6443/").unwrap().authority(),
            "[::1]:6443"
        );
        assert!(Url::parse("ftp://x/").is_err());
        assert!(Url::parse("http://:80/").is_err());
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(
            decode_chunked(b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n").unwrap(),
            b"hello world"
        );
        assert!(decode_chunked(b"5\r\nhel").is_none());
    }

    #[test]
    fn a_body_cut_short_is_an_error() {
        let whole = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello").unwrap();
        assert_eq!((whole.code, whole.body.as_slice()), (200, &b"hello"[..]));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello").is_err());
    }

    #[test]
    fn header_lines() {
        assert_eq!(
            header("Authorization: Bearer abc"),
            Some(("Authorization".into(), "Bearer abc".into()))
        );
        assert_eq!(header("no colon"), None);
        assert_eq!(header("bad name: x"), None);
    }
}
