//! The transports of `pods/exec` (and the other streaming subresources):
//! the client upgrades its request either to a WebSocket speaking the
//! channel protocol (`v5.channel.k8s.io`, `v4`: kubectl 1.30 and later) or
//! to SPDY/3.1 with one stream per role (`X-Stream-Protocol-Version`:
//! kubectl up to 1.29, and later ones when WebSockets fail). Either way the
//! session sees a [`Wire`]: what the client sends on each channel, and a
//! sender for what goes back. The transport ends when the session drops its
//! sender, after delivering everything sent.

pub(crate) mod spdy;
pub(crate) mod websocket;

use axum::extract::FromRequestParts;
use axum::extract::Request;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::future::BoxFuture;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

use serde_json::Value;
use wasmkube_runtime::net::PodConnection;
use wasmkube_runtime::{ExecOptions, ExecSession};

use crate::registry::Error;

/// What the streaming subresources reach pods through: the kubelet of the
/// pod's node (its streaming server, in Kubernetes).
pub trait PodStreams: Send + Sync {
    /// Starts `command` in `container` of `pod` with the streams `options`
    /// asks for.
    fn exec(
        &self,
        pod: &Value,
        container: &str,
        command: Vec<String>,
        options: ExecOptions,
    ) -> BoxFuture<'static, Result<ExecSession, Error>>;

    /// Attaches to the running `container` of `pod` with the streams
    /// `options` asks for.
    fn attach(
        &self,
        pod: &Value,
        container: &str,
        options: ExecOptions,
    ) -> Result<ExecSession, Error>;

    /// Opens a connection to `port` inside `pod`'s network, as a
    /// connection to localhost from inside the pod.
    fn dial(&self, pod: &Value, port: u16) -> Result<PodConnection, Error>;
}

/// A session's channels, by the numbers of the WebSocket protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Channel {
    Stdin,
    Stdout,
    Stderr,
    /// The session's end: a `Status`.
    Error,
    /// Terminal sizes, as JSON `{"Width":…,"Height":…}`.
    Resize,
}

impl Channel {
    fn number(self) -> u8 {
        match self {
            Channel::Stdin => 0,
            Channel::Stdout => 1,
            Channel::Stderr => 2,
            Channel::Error => 3,
            Channel::Resize => 4,
        }
    }

    fn from_number(n: u8) -> Option<Channel> {
        Some(match n {
            0 => Channel::Stdin,
            1 => Channel::Stdout,
            2 => Channel::Stderr,
            3 => Channel::Error,
            4 => Channel::Resize,
            _ => return None,
        })
    }

    /// The `streamtype` header of the SPDY stream in this role.
    fn stream_type(self) -> &'static str {
        match self {
            Channel::Stdin => "stdin",
            Channel::Stdout => "stdout",
            Channel::Stderr => "stderr",
            Channel::Error => "error",
            Channel::Resize => "resize",
        }
    }
}

/// What the client sends: data on a channel, or `None` when it closed
/// that channel (stdin's end of file).
pub(crate) type FromClient = (Channel, Option<Bytes>);

/// A session's side of the transport.
pub(crate) struct Wire {
    /// Ends when the client has gone.
    pub(crate) from_client: mpsc::Receiver<FromClient>,
    pub(crate) to_client: mpsc::Sender<(Channel, Bytes)>,
}

/// The channels a session uses, which a SPDY client opens as streams
/// before anything flows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Channels {
    pub(crate) stdin: bool,
    pub(crate) stdout: bool,
    pub(crate) stderr: bool,
    pub(crate) tty: bool,
}

impl Channels {
    fn expected(self) -> Vec<Channel> {
        let mut wanted = vec![Channel::Error];
        for (on, channel) in [
            (self.stdin, Channel::Stdin),
            (self.stdout, Channel::Stdout),
            (self.stderr && !self.tty, Channel::Stderr),
            (self.tty, Channel::Resize),
        ] {
            if on {
                wanted.push(channel);
            }
        }
        wanted
    }
}

/// The WebSocket subprotocols of the channel protocol, preferred first.
const WEBSOCKET_PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
/// The SPDY stream protocol spoken: v4 ends with a `Status` on the error
/// stream, as the WebSocket protocols do.
const SPDY_PROTOCOL: &str = "v4.channel.k8s.io";

/// The transport a client asked for.
pub(crate) enum Requested {
    WebSocket(WebSocketUpgrade),
    Spdy {
        on_upgrade: hyper::upgrade::OnUpgrade,
        /// The stream protocols it offers (`X-Stream-Protocol-Version`).
        offered: Vec<String>,
    },
}

/// Which upgrade `request` asks for; otherwise the answer to give.
pub(crate) async fn requested(request: Request) -> Result<Requested, Response> {
    let (mut parts, _body) = request.into_parts();
    let asked = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if asked == "websocket" {
        return WebSocketUpgrade::from_request_parts(&mut parts, &())
            .await
            .map(Requested::WebSocket)
            .map_err(IntoResponse::into_response);
    }
    if asked.starts_with("spdy/3.1") {
        let offered = parts
            .headers
            .get_all("x-stream-protocol-version")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_string())
            .collect();
        let Some(on_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
            return Err(
                Error::BadRequest("this connection cannot be upgraded".into()).into_response(),
            );
        };
        return Ok(Requested::Spdy {
            on_upgrade,
            offered,
        });
    }
    Err(Error::BadRequest(
        "this subresource streams: upgrade the connection to a WebSocket or to SPDY/3.1".into(),
    )
    .into_response())
}

/// Switches to SPDY/3.1 speaking `protocol` (which the client must have
/// offered) and runs `serve` on the connection.
pub(crate) fn switch_to_spdy<F>(
    on_upgrade: hyper::upgrade::OnUpgrade,
    offered: &[String],
    protocol: &'static str,
    serve: F,
) -> Response
where
    F: FnOnce(spdy::Connection) -> BoxFuture<'static, ()> + Send + 'static,
{
    if !offered.iter().any(|p| p == protocol) {
        return Error::Forbidden(format!(
            "the client offers no stream protocol this server speaks here (it speaks {protocol})"
        ))
        .into_response();
    }
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            serve(spdy::serve(TokioIo::new(upgraded))).await;
        }
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    headers.insert(
        "x-stream-protocol-version",
        HeaderValue::from_static(protocol),
    );
    response
}

/// Upgrades `request` to whichever transport the client asked for and
/// runs the exec or attach `session` on it.
pub(crate) async fn upgrade<F>(request: Request, channels: Channels, session: F) -> Response
where
    F: FnOnce(Wire) -> BoxFuture<'static, ()> + Send + 'static,
{
    match requested(request).await {
        Err(response) => response,
        Ok(Requested::WebSocket(upgrade)) => {
            let v5 = upgrade
                .requested_protocols()
                .any(|p| p.as_bytes() == WEBSOCKET_PROTOCOLS[0].as_bytes());
            upgrade
                .protocols(WEBSOCKET_PROTOCOLS)
                .on_upgrade(move |socket| async move {
                    let (wire, transport) = wire();
                    tokio::join!(websocket::carry(socket, v5, transport), session(wire));
                })
        }
        Ok(Requested::Spdy {
            on_upgrade,
            offered,
        }) => switch_to_spdy(on_upgrade, &offered, SPDY_PROTOCOL, move |connection| {
            Box::pin(async move {
                let (wire, transport) = wire();
                tokio::join!(carry_spdy(connection, channels, transport), session(wire));
            })
        }),
    }
}

/// The transport's side of a [`Wire`].
struct Transport {
    to_session: mpsc::Sender<FromClient>,
    from_session: mpsc::Receiver<(Channel, Bytes)>,
}

fn wire() -> (Wire, Transport) {
    let (to_session, from_client) = mpsc::channel(16);
    let (to_client, from_session) = mpsc::channel(16);
    (
        Wire {
            from_client,
            to_client,
        },
        Transport {
            to_session,
            from_session,
        },
    )
}

/// How long a SPDY client may take to open the streams it asked for.
const STREAM_CREATION: std::time::Duration = std::time::Duration::from_secs(30);

/// Carries a session over SPDY: waits for the client's streams, then
/// forwards stdin and resize from them and everything else to them.
async fn carry_spdy(mut connection: spdy::Connection, channels: Channels, transport: Transport) {
    let Transport {
        to_session,
        mut from_session,
    } = transport;
    let expected = channels.expected();
    let mut streams = std::collections::HashMap::new();
    let opened = tokio::time::timeout(STREAM_CREATION, async {
        while streams.len() < expected.len() {
            let stream = connection.streams.recv().await?;
            let role = expected
                .iter()
                .find(|c| Some(c.stream_type()) == stream.header("streamtype"));
            if let Some(role) = role {
                streams.insert(*role, stream);
            }
        }
        Some(())
    })
    .await;
    if !matches!(opened, Ok(Some(()))) {
        tracing::debug!("SPDY client did not open its streams; closing");
        return;
    }
    let mut writers = std::collections::HashMap::new();
    let mut readers = Vec::new();
    for (role, stream) in streams {
        writers.insert(role, stream.writer);
        if matches!(role, Channel::Stdin | Channel::Resize) {
            readers.push((role, stream.data));
        }
    }
    let inputs = readers.into_iter().map(|(role, mut data)| {
        let to_session = to_session.clone();
        async move {
            while let Some(bytes) = data.recv().await {
                if to_session.send((role, Some(bytes))).await.is_err() {
                    return;
                }
            }
            let _ = to_session.send((role, None)).await;
        }
    });
    let inputs = futures::future::join_all(inputs);
    // The client is gone when its connection ends (streams it opens past
    // those asked for are ignored); the session then sees its channels end.
    let streams = &mut connection.streams;
    let client = async move {
        let ((), _) = tokio::join!(async { while streams.recv().await.is_some() {} }, inputs);
        drop(to_session);
        std::future::pending::<()>().await
    };
    let outputs = async {
        while let Some((role, bytes)) = from_session.recv().await {
            if let Some(writer) = writers.get(&role)
                && writer.send(bytes).await.is_err()
            {
                break;
            }
        }
        for writer in writers.values() {
            writer.finish().await;
        }
    };
    // The session ends the conversation: it drops its sender last.
    tokio::select! {
        () = outputs => {}
        () = client => {}
    }
    connection.close().await;
}
