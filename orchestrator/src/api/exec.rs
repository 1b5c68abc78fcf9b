//! `pods/exec` and `pods/attach`, their streams carried over whichever
//! transport the client speaks ([`super::stream`]). exec runs a command in
//! a container: stdin is fed while the command runs and its output sent as
//! it comes; with `tty` the command runs on a terminal the client resizes.
//! attach joins a running container: its output from now on, and its stdin
//! and terminal when it keeps them (`stdin`, `tty`). The session ends with a
//! `Status` on the error channel: Success, or NonZeroExitCode with the code.

use axum::extract::{Path, RawQuery, Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use wasmkube_runtime::{ExecOptions, ExecReader, ExecSession, TerminalSize};

use super::ApiState;
use super::query::Query;
use super::stream::{Channel, Channels, Wire};
use crate::registry::Error;

/// The request, checked before the connection is upgraded so that a bad
/// one gets a plain `Status`.
struct ExecRequest {
    pod: Value,
    container: String,
    /// Empty for attach.
    command: Vec<String>,
    channels: Channels,
}

fn check(
    state: &ApiState,
    namespace: &str,
    name: &str,
    query: &Query,
    attach: bool,
) -> Result<ExecRequest, Error> {
    let pods = state.registry.resource("", "Pod");
    let pod = state.registry.get(&pods, Some(namespace), name)?;
    let command: Vec<String> = query
        .all("command")
        .into_iter()
        .map(str::to_string)
        .collect();
    if command.is_empty() && !attach {
        return Err(Error::BadRequest(
            "you must specify at least one command for the container".into(),
        ));
    }
    let channels = Channels {
        stdin: query.flag("stdin"),
        stdout: query.flag("stdout"),
        stderr: query.flag("stderr"),
        tty: query.flag("tty"),
    };
    if !(channels.stdin || channels.stdout || channels.stderr) {
        return Err(Error::BadRequest(
            "you must specify at least 1 of stdin, stdout, stderr".into(),
        ));
    }
    // Any container of the pod that runs: init and ephemeral ones too.
    let containers: Vec<Value> = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .filter_map(|list| pod["spec"][list].as_array())
        .flatten()
        .cloned()
        .collect();
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
    let running = [
        "containerStatuses",
        "initContainerStatuses",
        "ephemeralContainerStatuses",
    ]
    .iter()
    .filter_map(|list| pod["status"][list].as_array())
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
        channels,
    })
}

pub(super) async fn exec_handler(
    state: State<ApiState>,
    path: Path<(String, String)>,
    query: RawQuery,
    request: Request,
) -> Response {
    handle(state, path, query, request, false).await
}

pub(super) async fn attach_handler(
    state: State<ApiState>,
    path: Path<(String, String)>,
    query: RawQuery,
    request: Request,
) -> Response {
    handle(state, path, query, request, true).await
}

async fn handle(
    State(state): State<ApiState>,
    Path((namespace, name)): Path<(String, String)>,
    RawQuery(raw_query): RawQuery,
    request: Request,
    attach: bool,
) -> Response {
    let checked = Query::parse(raw_query.as_deref())
        .and_then(|query| check(&state, &namespace, &name, &query, attach));
    let request_checked = match checked {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let Some(streams) = state.streams.clone() else {
        return Error::BadRequest("this server runs no kubelet to reach pods".into())
            .into_response();
    };
    let ExecRequest {
        pod,
        container,
        command,
        channels,
    } = request_checked;
    let options = ExecOptions {
        stdin: channels.stdin,
        stdout: channels.stdout,
        stderr: channels.stderr && !channels.tty,
        tty: channels.tty.then_some(None),
    };
    super::stream::upgrade(request, channels, move |wire| {
        Box::pin(async move {
            let started = if attach {
                streams.attach(&pod, &container, options)
            } else {
                streams.exec(&pod, &container, command.clone(), options).await
            };
            match started {
                Ok(session) => run(session, wire, &command).await,
                Err(e) => {
                    let status = json!({"metadata": {}, "status": "Failure", "message": e.to_string(), "reason": "InternalError", "code": 500});
                    let _ = wire
                        .to_client
                        .send((Channel::Error, status.to_string().into()))
                        .await;
                }
            }
        })
    })
    .await
}

/// Connects a session to its client until the command ends (then reports
/// how) or the client leaves (then stops it).
async fn run(mut session: ExecSession, wire: Wire, command: &[String]) {
    let Wire {
        mut from_client,
        to_client,
    } = wire;
    let (stdout, stderr) = (session.stdout.take(), session.stderr.take());
    let outputs = async {
        tokio::join!(
            forward(stdout, Channel::Stdout, &to_client),
            forward(stderr, Channel::Stderr, &to_client)
        )
    };
    let inputs = async {
        while let Some((channel, data)) = from_client.recv().await {
            match (channel, data) {
                (Channel::Stdin, Some(bytes)) => {
                    if let Some(stdin) = &session.stdin {
                        // A command that ended takes no more; its end is
                        // reported by the outputs ending.
                        let _ = stdin.write(&bytes).await;
                    }
                }
                (Channel::Stdin, None) => {
                    if let Some(stdin) = &session.stdin {
                        stdin.close();
                    }
                }
                (Channel::Resize, Some(bytes)) => {
                    if let (Some(terminal), Some(size)) = (&session.terminal, terminal_size(&bytes))
                    {
                        terminal.resize(size);
                    }
                }
                _ => {}
            }
        }
    };
    tokio::select! {
        _ = outputs => {}
        () = inputs => {
            // The client left.
            session.kill();
            return;
        }
    }
    let code = session.wait().await;
    let status = if code == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({"metadata": {}, "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}})
    };
    let _ = to_client
        .send((Channel::Error, status.to_string().into()))
        .await;
}

/// Sends one output stream to the client until it ends.
async fn forward(
    reader: Option<ExecReader>,
    channel: Channel,
    to_client: &tokio::sync::mpsc::Sender<(Channel, bytes::Bytes)>,
) {
    let Some(reader) = reader else { return };
    while let Some(bytes) = reader.read().await {
        if to_client.send((channel, bytes)).await.is_err() {
            return;
        }
    }
}

/// A resize message: `{"Width":…,"Height":…}`.
fn terminal_size(bytes: &[u8]) -> Option<TerminalSize> {
    let size: Value = serde_json::from_slice(bytes).ok()?;
    Some(TerminalSize {
        columns: u16::try_from(size["Width"].as_u64()?).ok()?,
        rows: u16::try_from(size["Height"].as_u64()?).ok()?,
    })
}
