//! `pods/exec` over WebSocket, as kubectl 1.30 and later speak it
//! (`v5.channel.k8s.io`, or `v4`): each binary message starts with its
//! channel (0 stdin, 1 stdout, 2 stderr, 3 the final `Status`; v5's 255
//! closes a stream). stdin (`-i`) is read to its end before the command
//! runs, and the output is sent when it ends: piped input and commands
//! work, interactive terminals (`-t`) do not yet.

use std::time::Duration;

use axum::extract::ws::{
    CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code,
    rejection::WebSocketUpgradeRejection,
};
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::ApiState;
use super::query::Query;
use crate::registry::Error;

/// Where the API runs commands in containers: the kubelet of the pod's node.
pub trait PodExec: Send + Sync {
    /// Runs `command` in `container` of `pod`, with `stdin` if given.
    fn exec(
        &self,
        pod: &Value,
        container: &str,
        command: Vec<String>,
        stdin: Option<Bytes>,
    ) -> BoxFuture<'static, Result<wasmkube_runtime::ExecOutput, Error>>;
}

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const CLOSE: u8 = 255;

/// The request, checked before the connection is upgraded so that a bad
/// one gets a plain `Status`.
struct ExecRequest {
    pod: Value,
    container: String,
    command: Vec<String>,
    stdin: bool,
}

fn check(
    state: &ApiState,
    namespace: &str,
    name: &str,
    query: &Query,
) -> Result<ExecRequest, Error> {
    let pods = state.registry.resource("", "Pod");
    let pod = state.registry.get(&pods, Some(namespace), name)?;
    let command: Vec<String> = query
        .all("command")
        .into_iter()
        .map(str::to_string)
        .collect();
    if command.is_empty() {
        return Err(Error::BadRequest(
            "you must specify at least one command for the container".into(),
        ));
    }
    if query.flag("tty") {
        return Err(Error::BadRequest(
            "interactive terminals (-t) are not supported yet: run without -t (stdin with -i is read to its end first)".into(),
        ));
    }
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let container = match query.get("container") {
        Some(c) => c.to_string(),
        None => containers
            .first()
            .and_then(|c| c["name"].as_str())
            .unwrap_or_default()
            .to_string(),
    };
    if !containers.iter().any(|c| c["name"] == container.as_str()) {
        return Err(Error::BadRequest(format!(
            "container {container} is not valid for pod {name}"
        )));
    }
    let running = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|s| s["name"] == container.as_str() && s.pointer("/state/running").is_some());
    if !running {
        return Err(Error::BadRequest(format!(
            "unable to upgrade connection: container not found ({container:?}): it is not running"
        )));
    }
    Ok(ExecRequest {
        pod,
        container,
        command,
        stdin: query.flag("stdin"),
    })
}

pub(super) async fn handler(
    State(state): State<ApiState>,
    Path((namespace, name)): Path<(String, String)>,
    RawQuery(raw_query): RawQuery,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let request = Query::parse(raw_query.as_deref())
        .and_then(|query| check(&state, &namespace, &name, &query));
    let request = match request {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let Some(exec) = state.exec.clone() else {
        return Error::BadRequest("this server runs no kubelet to exec in".into()).into_response();
    };
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(_) => {
            return Error::BadRequest(
                "exec needs a WebSocket upgrade (kubectl 1.30 or newer); SPDY is not supported"
                    .into(),
            )
            .into_response();
        }
    };
    let v5 = upgrade
        .requested_protocols()
        .any(|p| p.as_bytes() == b"v5.channel.k8s.io");
    upgrade
        .protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"])
        .on_upgrade(move |socket| session(socket, exec, request, v5))
}

/// client-go starts reading the connection before it has registered its
/// streams and drops data for a stream it does not know yet: output is held
/// back until this long after the upgrade (a command's own start-up usually
/// takes longer anyway).
const CLIENT_SETTLE: Duration = Duration::from_millis(100);

async fn session(
    mut socket: WebSocket,
    exec: std::sync::Arc<dyn PodExec>,
    request: ExecRequest,
    v5: bool,
) {
    let settled = tokio::time::Instant::now() + CLIENT_SETTLE;
    let stdin = if request.stdin {
        match read_stdin(&mut socket, v5).await {
            Some(bytes) => Some(bytes),
            None => return,
        }
    } else {
        None
    };
    // The kubelet bounds how long a command may run.
    let outcome = exec
        .exec(
            &request.pod,
            &request.container,
            request.command.clone(),
            stdin,
        )
        .await;
    tokio::time::sleep_until(settled).await;
    let status = match outcome {
        Ok(out) => {
            for (channel, data) in [(STDOUT, &out.stdout), (STDERR, &out.stderr)] {
                if !data.is_empty() && send(&mut socket, channel, data).await.is_err() {
                    return;
                }
            }
            if out.timed_out {
                json!({"metadata": {}, "status": "Failure", "message": "the command ran past the exec time limit and was stopped", "reason": "Timeout", "code": 504})
            } else if out.exit_code == 0 {
                json!({"metadata": {}, "status": "Success"})
            } else {
                json!({"metadata": {}, "status": "Failure",
                    "message": format!(
                        "command terminated with non-zero exit code: error executing command {:?}, exit code {}",
                        request.command, out.exit_code
                    ),
                    "reason": "NonZeroExitCode",
                    "details": {"causes": [{"reason": "ExitCode", "message": out.exit_code.to_string()}]}})
            }
        }
        Err(e) => {
            json!({"metadata": {}, "status": "Failure", "message": e.to_string(), "reason": "InternalError", "code": 500})
        }
    };
    let _ = send(&mut socket, STATUS, status.to_string().as_bytes()).await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: close_code::NORMAL,
            reason: "".into(),
        })))
        .await;
    // Let the client read everything and answer the close.
    while let Some(Ok(message)) = socket.recv().await {
        if matches!(message, Message::Close(_)) {
            break;
        }
    }
}

/// Collects stdin until the client closes it (v5) or the connection.
async fn read_stdin(socket: &mut WebSocket, v5: bool) -> Option<Bytes> {
    let mut stdin = Vec::new();
    while let Some(message) = socket.recv().await {
        match message.ok()? {
            Message::Binary(data) => match data.first() {
                Some(&STDIN) => stdin.extend_from_slice(&data[1..]),
                Some(&CLOSE) if v5 && data.get(1) == Some(&STDIN) => break,
                _ => {}
            },
            Message::Close(_) => return None,
            _ => {}
        }
    }
    Some(Bytes::from(stdin))
}

async fn send(socket: &mut WebSocket, channel: u8, data: &[u8]) -> Result<(), axum::Error> {
    let mut message = Vec::with_capacity(1 + data.len());
    message.push(channel);
    message.extend_from_slice(data);
    socket.send(Message::Binary(message.into())).await
}
