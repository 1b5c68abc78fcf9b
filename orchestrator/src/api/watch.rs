//! Watches over HTTP: one JSON event per line on a chunked response that
//! stays open until `timeoutSeconds` or the client leaves. Objects are
//! sent at the version watched (an old one's converted), and every event
//! is counted (`apiserver_watch_events_total`).

use std::borrow::Cow;
use std::collections::HashSet;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::ApiState;
use super::alias;
use super::query::Query;
use super::table::{IncludeObject, table};
use crate::metrics::apiserver::RequestKind;
use crate::registry::resources::Alias;
use crate::registry::{Error, ListOptions, Resource, Result};
use crate::store::{EventType, Revision, WatchEvent};

/// How often a watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

/// Starts a watch of `resource`, made at `alias`'s version if given, and
/// answers with its stream (of Table rows when `as_table` says how).
pub(super) fn serve(
    state: &ApiState,
    resource: &Resource,
    alias: Option<&Alias>,
    namespace: Option<&str>,
    query: &Query,
    options: ListOptions,
    as_table: Option<IncludeObject>,
) -> Result<Response> {
    let registry = state.registry.clone();
    let from: Option<Revision> = match query.get("resourceVersion") {
        None | Some("") | Some("0") => None,
        Some(rv) => Some(
            rv.parse()
                .map_err(|_| Error::BadRequest(format!("invalid resourceVersion {rv:?}")))?,
        ),
    };
    let send_initial = query.flag("sendInitialEvents") || from.is_none();
    let bookmarks = query.flag("allowWatchBookmarks");
    let timeout = query
        .number::<u64>("timeoutSeconds")?
        .map(Duration::from_secs);
    // The initial state (for a watch from "now"), then changes after it.
    let mut selection = Selection::new(&options);
    let (initial, after) = match from {
        Some(rv) if !send_initial => {
            if selection.filtered() {
                let all = registry.list(resource, namespace, &ListOptions::default())?;
                selection.resume(resource, &all.items, rv);
            }
            (Vec::new(), rv)
        }
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
            selection.hold(resource, &listed.items);
            (listed.items, listed.revision)
        }
    };
    let watch = registry.watch(resource, namespace, after);
    let (sender, receiver) = mpsc::channel::<Bytes>(64);
    // Counted as open (`apiserver_longrunning_requests`) while it runs.
    let open = state.api_metrics.open(RequestKind {
        verb: "WATCH".into(),
        group: resource.group.into(),
        version: resource.version.into(),
        resource: resource.plural.into(),
        subresource: String::new(),
        scope: if namespace.is_some() {
            "namespace"
        } else {
            "cluster"
        }
        .into(),
    });
    let (group, version) = match alias {
        Some(alias) => (alias.group, alias.version),
        None => (resource.group, resource.version),
    };
    let events = state
        .api_metrics
        .watch_events(group, version, resource.kind);
    let resource = resource.clone();
    let alias = alias.cloned();
    let current = resource.api_version();
    let watched = alias
        .as_ref()
        .map_or_else(|| current.clone(), Alias::api_version);
    let initial_end = query.flag("sendInitialEvents");
    tokio::spawn(async move {
        let _open = open;
        let line = |event_type: &str, object: &Value| -> Bytes {
            let carries_object = !matches!(event_type, "BOOKMARK" | "ERROR");
            let mut object = Cow::Borrowed(object);
            let object = match as_table {
                Some(include) if carries_object => {
                    let rv = object
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    Cow::Owned(table(&resource, &[&object], include, &rv, None))
                }
                _ if carries_object => {
                    if resource.custom.is_some() {
                        resource.served_as(object.to_mut());
                    }
                    if let Some(alias) = &alias {
                        alias::rename(alias, &current, object.to_mut());
                    }
                    object
                }
                _ => object,
            };
            let mut bytes = serde_json::to_vec(&json!({"type": event_type, "object": object}))
                .expect("serialisable");
            bytes.push(b'\n');
            events.sent(bytes.len());
            Bytes::from(bytes)
        };
        let bookmark = |revision: Revision, initial_end: bool| {
            let mut metadata = json!({"resourceVersion": revision.to_string()});
            if initial_end {
                metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            line(
                "BOOKMARK",
                &json!({"kind": resource.kind, "apiVersion": watched, "metadata": metadata}),
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
                    let Some(event_type) = selection.event_type(&event) else {
                        continue;
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

/// What a watch with a selector has told its client is selected, so that a
/// change taking an object out of the selection reaches the client as
/// DELETED, and one bringing it in as ADDED, as the API server's watch
/// cache reports them (reflectors and `kubectl get -l … -w` rely on it).
struct Selection {
    options: ListOptions,
    /// Store keys of the selected objects the client holds.
    held: HashSet<String>,
    /// Keys whose state at the revision the client resumed from is not
    /// known (changed since): their next change is taken as one to an
    /// object the client holds.
    unknown: HashSet<String>,
}

impl Selection {
    fn new(options: &ListOptions) -> Selection {
        Selection {
            options: options.clone(),
            held: HashSet::new(),
            unknown: HashSet::new(),
        }
    }

    fn filtered(&self) -> bool {
        !(self.options.labels.is_empty() && self.options.fields.is_empty())
    }

    fn selects(&self, object: &Value) -> bool {
        self.options.labels.matches(object) && self.options.fields.matches(object)
    }

    /// The client holds `objects` (the initial events it was sent).
    fn hold(&mut self, resource: &Resource, objects: &[Value]) {
        if self.filtered() {
            self.held
                .extend(objects.iter().map(|object| key_of(resource, object)));
        }
    }

    /// The client resumes from `revision`; `objects` are all of the
    /// resource's now. Those unchanged since are held if selected; the
    /// others' state then is unknown, unless their name or namespace
    /// keeps them out of the selection whatever else changed.
    fn resume(&mut self, resource: &Resource, objects: &[Value], revision: Revision) {
        for object in objects {
            let key = key_of(resource, object);
            if !self.options.fields.matches_identity(object) {
                continue;
            }
            if crate::registry::revision_of(object) > revision {
                self.unknown.insert(key);
            } else if self.selects(object) {
                self.held.insert(key);
            }
        }
    }

    /// The event the client gets for a change, if any.
    fn event_type(&mut self, event: &WatchEvent) -> Option<&'static str> {
        let selected = self.selects(&event.object);
        if !self.filtered() {
            return Some(match event.event_type {
                EventType::Added => "ADDED",
                EventType::Modified => "MODIFIED",
                EventType::Deleted => "DELETED",
            });
        }
        let key = event.key.as_str();
        match event.event_type {
            EventType::Added => {
                self.unknown.remove(key);
                selected.then(|| {
                    self.held.insert(key.to_string());
                    "ADDED"
                })
            }
            // A deletion carries the object's last state: it was selected
            // exactly when that state is.
            EventType::Deleted => {
                self.unknown.remove(key);
                self.held.remove(key);
                selected.then_some("DELETED")
            }
            EventType::Modified => {
                let held = self.unknown.remove(key) || self.held.contains(key);
                match (held, selected) {
                    (true, true) => Some("MODIFIED"),
                    (false, true) => {
                        self.held.insert(key.to_string());
                        Some("ADDED")
                    }
                    (true, false) => {
                        self.held.remove(key);
                        Some("DELETED")
                    }
                    (false, false) => None,
                }
            }
        }
    }
}

fn key_of(resource: &Resource, object: &Value) -> String {
    let text = |pointer| object.pointer(pointer).and_then(Value::as_str);
    resource.key(
        text("/metadata/namespace"),
        text("/metadata/name").unwrap_or_default(),
    )
}
