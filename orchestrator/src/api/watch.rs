//! Watches over HTTP: one JSON event per line on a chunked response that
//! stays open until `timeoutSeconds` or the client leaves.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::ApiState;
use super::query::Query;
use super::table::{IncludeObject, table};
use crate::registry::{Error, ListOptions, Resource, Result};
use crate::store::{EventType, Revision};

/// How often a watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

/// Starts a watch and answers with its stream.
pub(super) fn serve(
    state: &ApiState,
    resource: &Resource,
    namespace: Option<&str>,
    query: &Query,
    options: ListOptions,
    as_table: bool,
    include: IncludeObject,
) -> Result<Response> {
    let registry = state.registry.clone();
    let from: Option<Revision> = match query.get("resourceVersion") {
        None | Some("") | Some("0") => None,
        Some(rv) => Some(
            rv.parse()
                .map_err(|_| Error::BadRequest(format!("invalid resourceVersion {rv:?}")))?,
        ),
    };
    let send_initial = query.get("sendInitialEvents") == Some("true") || from.is_none();
    let bookmarks = query.flag("allowWatchBookmarks");
    let timeout = query
        .number::<u64>("timeoutSeconds")?
        .map(Duration::from_secs);
    // The initial state (for a watch from "now"), then changes after it.
    let (initial, after) = match from {
        Some(rv) if !send_initial => (Vec::new(), rv),
        _ => {
            let listed = registry.list(
                resource,
                namespace,
                &ListOptions {
                    limit: 0,
                    continue_token: None,
                    ..options.clone()
                },
            )?;
            (listed.items, listed.revision)
        }
    };
    let watch = registry.watch(resource, namespace, after);
    let (sender, receiver) = mpsc::channel::<Bytes>(64);
    let resource = resource.clone();
    let initial_end = query.get("sendInitialEvents") == Some("true");
    tokio::spawn(async move {
        let line = |event_type: &str, object: &Value| -> Bytes {
            let object = if as_table && event_type != "BOOKMARK" && event_type != "ERROR" {
                let rv = object
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                table(&resource, &[object], include, &rv, None)
            } else {
                object.clone()
            };
            let mut bytes = serde_json::to_vec(&json!({"type": event_type, "object": object}))
                .expect("serialisable");
            bytes.push(b'\n');
            Bytes::from(bytes)
        };
        let bookmark = |revision: Revision, initial_end: bool| {
            let mut metadata = json!({"resourceVersion": revision.to_string()});
            if initial_end {
                metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            line(
                "BOOKMARK",
                &json!({"kind": resource.kind, "apiVersion": resource.api_version(), "metadata": metadata}),
            )
        };
        let mut watch = match watch {
            Ok(watch) => watch,
            Err(error) => {
                let _ = sender.send(line("ERROR", &error.status())).await;
                return;
            }
        };
        for object in &initial {
            if sender.send(line("ADDED", object)).await.is_err() {
                return;
            }
        }
        if initial_end && bookmarks {
            let _ = sender.send(bookmark(after, true)).await;
        }
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
        ticker.tick().await;
        loop {
            let until_deadline = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = watch.next() => {
                    let Some(event) = event else { return };
                    let event = match event {
                        Ok(event) => event,
                        Err(error) => {
                            let _ = sender.send(line("ERROR", &Error::from(error).status())).await;
                            return;
                        }
                    };
                    if !(options.labels.matches(&event.object) && options.fields.matches(&event.object)) {
                        continue;
                    }
                    let event_type = match event.event_type {
                        EventType::Added => "ADDED",
                        EventType::Modified => "MODIFIED",
                        EventType::Deleted => "DELETED",
                    };
                    if sender.send(line(event_type, &event.object)).await.is_err() {
                        return;
                    }
                }
                _ = ticker.tick(), if bookmarks => {
                    if sender.send(bookmark(watch.revision(), false)).await.is_err() {
                        return;
                    }
                }
                _ = sender.closed() => return,
                _ = until_deadline => return,
            }
        }
    });
    let body = Body::from_stream(futures::StreamExt::map(
        ReceiverStream::new(receiver),
        Ok::<_, std::convert::Infallible>,
    ));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache, private"),
        ],
        body,
    )
        .into_response())
}
