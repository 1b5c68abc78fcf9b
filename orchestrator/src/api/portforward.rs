//! `pods/portforward`: connections to ports inside a pod's network, as a
//! process in the pod would make them to localhost.
//!
//! kubectl speaks SPDY/3.1 (over an HTTP upgrade, or from 1.31 tunnelled
//! in WebSocket messages under the subprotocol
//! `SPDY/3.1+portforward.k8s.io`): each forwarded connection is a pair of
//! streams, `error` and `data`, carrying the same `port` and `requestid`.
//! Other clients (the Python client) use the WebSocket channel protocol
//! with `?ports=…`: one connection per port, data on channel 2i and errors
//! on 2i+1, each channel first carrying its port as two little-endian
//! bytes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use axum::extract::{Path, RawQuery, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::ApiState;
use super::query::Query;
use super::stream::spdy::{self, Stream};
use super::stream::{PodStreams, Requested, websocket};
use crate::registry::Error;

/// The subprotocol under which kubectl tunnels SPDY in a WebSocket.
const SPDY_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";
/// The stream protocol of port-forward over SPDY.
const SPDY_PROTOCOL: &str = "portforward.k8s.io";
/// The channel protocols of port-forward over a plain WebSocket.
const CHANNEL_PROTOCOLS: [&str; 2] = ["v4.channel.k8s.io", "portforward.k8s.io"];

pub(super) async fn handler(
    State(state): State<ApiState>,
    Path((namespace, name)): Path<(String, String)>,
    RawQuery(raw_query): RawQuery,
    request: Request,
) -> Response {
    let pods = state.registry.resource("", "Pod");
    let pod = match state.registry.get(&pods, Some(&namespace), &name) {
        Ok(pod) => pod,
        Err(e) => return e.into_response(),
    };
    let query = match Query::parse(raw_query.as_deref()) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let ports = match ports(&query) {
        Ok(ports) => ports,
        Err(e) => return e.into_response(),
    };
    let Some(streams) = state.streams.clone() else {
        return Error::BadRequest("this server runs no kubelet to forward to".into())
            .into_response();
    };
    let pod = Arc::new(pod);
    match super::stream::requested(request).await {
        Err(response) => response,
        Ok(Requested::WebSocket(upgrade)) => {
            let tunnel = upgrade
                .requested_protocols()
                .any(|p| p.as_bytes() == SPDY_TUNNEL.as_bytes());
            if tunnel {
                return upgrade.protocols([SPDY_TUNNEL]).on_upgrade(move |socket| {
                    let connection = spdy::serve(websocket::byte_stream(socket));
                    serve_spdy(connection, streams, pod)
                });
            }
            if ports.is_empty() {
                return Error::BadRequest(
                    "query parameter \"ports\" is required: the ports to forward".into(),
                )
                .into_response();
            }
            upgrade
                .protocols(CHANNEL_PROTOCOLS)
                .on_upgrade(move |socket| serve_channels(socket, ports, streams, pod))
        }
        Ok(Requested::Spdy {
            on_upgrade,
            offered,
        }) => super::stream::switch_to_spdy(on_upgrade, &offered, SPDY_PROTOCOL, move |c| {
            Box::pin(serve_spdy(c, streams, pod))
        }),
    }
}

/// `?ports=8080,9090` (or repeated): the WebSocket channel protocol's ports.
fn ports(query: &Query) -> Result<Vec<u16>, Error> {
    query
        .all("ports")
        .into_iter()
        .flat_map(|p| p.split(','))
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| {
                    Error::BadRequest(format!("invalid port {p:?}: ports are 1 to 65535"))
                })
        })
        .collect()
}

/// Serves a SPDY connection: each pair of streams with one `requestid` is
/// one forwarded connection.
async fn serve_spdy(
    mut connection: spdy::Connection,
    streams: Arc<dyn PodStreams>,
    pod: Arc<Value>,
) {
    let mut halves: HashMap<String, (Option<Stream>, Option<Stream>)> = HashMap::new();
    while let Some(stream) = connection.streams.recv().await {
        let request = stream.header("requestid").unwrap_or_default().to_string();
        let pair = halves.entry(request.clone()).or_default();
        match stream.header("streamtype") {
            Some("error") => pair.0 = Some(stream),
            Some("data") => pair.1 = Some(stream),
            _ => {
                stream.writer.reset().await;
                continue;
            }
        }
        if let (Some(_), Some(_)) = pair {
            let (Some(error), Some(data)) = halves.remove(&request).unwrap_or_default() else {
                continue;
            };
            tokio::spawn(forward(error, data, Arc::clone(&streams), Arc::clone(&pod)));
        }
    }
}

/// One forwarded connection: the data stream joined to a connection to
/// the port inside the pod; a failure to connect reported on the error
/// stream, as the kubelet reports it.
async fn forward(error: Stream, data: Stream, streams: Arc<dyn PodStreams>, pod: Arc<Value>) {
    let port = data.header("port").and_then(|p| p.parse::<u16>().ok());
    let connection = match port {
        Some(port) => streams.dial(&pod, port),
        None => Err(Error::BadRequest(format!(
            "invalid port {:?} in the data stream's headers",
            data.header("port").unwrap_or_default()
        ))),
    };
    let connection = match connection {
        Ok(c) => c,
        Err(e) => {
            let _ = error.writer.send(Bytes::from(e.to_string())).await;
            error.writer.finish().await;
            data.writer.reset().await;
            return;
        }
    };
    let (mut from_pod, mut to_pod) = tokio::io::split(connection);
    let Stream {
        data: mut from_client,
        writer: to_client,
        ..
    } = data;
    // What the client sends goes on until it closes its side.
    tokio::spawn(async move {
        while let Some(bytes) = from_client.recv().await {
            if to_pod.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to_pod.shutdown().await;
    });
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from_pod.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to_client
                    .send(Bytes::copy_from_slice(&buf[..n]))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    // The connection is over when the pod's side has ended, as the
    // kubelet's is: kubectl closes its local connection once both
    // streams have ended.
    to_client.finish().await;
    error.writer.finish().await;
}

/// Serves the WebSocket channel protocol: one connection per port in
/// `ports`, opened at once.
async fn serve_channels(
    mut socket: WebSocket,
    ports: Vec<u16>,
    streams: Arc<dyn PodStreams>,
    pod: Arc<Value>,
) {
    // Each channel first names its port.
    for (i, port) in ports.iter().enumerate() {
        for channel in [2 * i as u8, 2 * i as u8 + 1] {
            let mut message = vec![channel];
            message.extend_from_slice(&port.to_le_bytes());
            if socket.send(Message::Binary(message.into())).await.is_err() {
                return;
            }
        }
    }
    let (to_socket, mut outgoing) = tokio::sync::mpsc::channel::<(u8, Bytes)>(16);
    let mut to_pods = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let (data, error) = (2 * i as u8, 2 * i as u8 + 1);
        match streams.dial(&pod, *port) {
            Ok(connection) => {
                let (mut from_pod, to_pod) = tokio::io::split(connection);
                to_pods.push(Some(to_pod));
                let to_socket = to_socket.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    while let Ok(n) = from_pod.read(&mut buf).await {
                        if n == 0
                            || to_socket
                                .send((data, Bytes::copy_from_slice(&buf[..n])))
                                .await
                                .is_err()
                        {
                            break;
                        }
                    }
                });
            }
            Err(e) => {
                to_pods.push(None);
                let to_socket = to_socket.clone();
                tokio::spawn(async move {
                    let _ = to_socket.send((error, Bytes::from(e.to_string()))).await;
                });
            }
        }
    }
    drop(to_socket);
    loop {
        tokio::select! {
            outgoing = outgoing.recv() => {
                // Every pod connection has ended: so does the session.
                let Some((channel, bytes)) = outgoing else { break };
                let mut message = Vec::with_capacity(1 + bytes.len());
                message.push(channel);
                message.extend_from_slice(&bytes);
                if socket.send(Message::Binary(message.into())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(message)) => {
                    let Some((&channel, data)) =
                        websocket::payload(&message).and_then(|d| d.split_first())
                    else {
                        continue;
                    };
                    let channel = usize::from(channel);
                    // Data on an even channel goes to that port's connection.
                    if channel % 2 == 0
                        && let Some(Some(to_pod)) = to_pods.get_mut(channel / 2)
                        && to_pod.write_all(data).await.is_err()
                    {
                        to_pods[channel / 2] = None;
                    }
                }
            },
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
