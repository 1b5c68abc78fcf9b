//! What Prometheus scrapes: the API server's `/metrics` (every request
//! counted and timed by [`instrument`]), and the node's kubelet endpoints
//! through the node proxy (`/api/v1/nodes/NODE/proxy/metrics/cadvisor`
//! and `.../metrics/resource`).

use std::time::Instant;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use crate::auth::attributes::Attributes;
use crate::metrics::apiserver::{self, RequestKind};
use crate::metrics::exposition::{CONTENT_TYPE, Page};
use crate::metrics::node_pages;
use crate::registry::{Error, ListOptions, Resource};

/// The labels the API server's metrics give a request.
pub(super) fn request_kind(attributes: &Attributes, apply: bool) -> RequestKind {
    let connect = matches!(
        attributes.subresource.as_str(),
        "exec" | "attach" | "portforward" | "proxy"
    );
    let verb = match attributes.verb.as_str() {
        _ if attributes.resource_request && connect => "CONNECT".to_string(),
        "get" => "GET".into(),
        "list" => "LIST".into(),
        "watch" => "WATCH".into(),
        "create" => "POST".into(),
        "update" => "PUT".into(),
        "patch" if apply => "APPLY".into(),
        other => other.to_uppercase(),
    };
    let scope = match (
        attributes.resource_request,
        attributes.name.is_empty(),
        attributes.namespace.is_empty(),
    ) {
        (false, _, _) => "",
        (true, false, _) => "resource",
        (true, true, false) => "namespace",
        (true, true, true) => "cluster",
    };
    RequestKind {
        verb,
        group: attributes.group.clone(),
        version: attributes.version.clone(),
        resource: attributes.resource.clone(),
        subresource: attributes.subresource.clone(),
        scope: scope.into(),
    }
}

/// Counts and times every request, whatever its answer.
pub(super) async fn instrument(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let attributes = Attributes::of_request(
        request.method(),
        request.uri().path(),
        request.uri().query(),
    );
    let apply = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/apply-patch"));
    let kind = request_kind(&attributes, apply);
    let _inflight = state.api_metrics.begin();
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .api_metrics
        .observe(&kind, response.status().as_u16(), started.elapsed());
    response
}

fn page(text: String) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}

/// The name `apiserver_storage_objects` gives a resource.
fn storage_name(resource: &Resource) -> String {
    match resource.group {
        "" => resource.plural.to_string(),
        group => format!("{}.{group}", resource.plural),
    }
}

/// `/metrics`.
pub(super) async fn metrics(State(state): State<ApiState>) -> Response {
    let mut page_text = Page::default();
    state.api_metrics.write(&mut page_text);
    let resources = state.registry.resources();
    let counts: Vec<(String, usize)> = resources
        .all()
        .iter()
        .filter(|r| r.supports("list") && !crate::registry::kinds::metrics::is_metrics(r))
        .filter_map(|r| {
            let listed = state.registry.list(r, None, &ListOptions::default()).ok()?;
            Some((storage_name(r), listed.items.len()))
        })
        .collect();
    apiserver::write_storage(&mut page_text, &counts);
    apiserver::write_process(&mut page_text);
    state.registry.work_queues().write(&mut page_text);
    page(page_text.finish())
}

/// `/api/v1/nodes/NODE/proxy/PATH`: the kubelet's endpoints of this
/// server's node.
pub(super) async fn node_proxy(
    State(state): State<ApiState>,
    Path((node, path)): Path<(String, String)>,
) -> Response {
    let nodes = state.registry.resource("", "Node");
    match state.registry.find(&nodes, None, &node) {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Error::NotFound {
                resource: "nodes".into(),
                group: String::new(),
                name: node,
            }
            .into_response();
        }
        Err(e) => return e.into_response(),
    }
    match path.trim_end_matches('/') {
        "metrics/cadvisor" => page(node_pages::cadvisor(&state.metrics)),
        "metrics/resource" => page(node_pages::resource(&state.metrics)),
        "healthz" => "ok".into_response(),
        _ => (StatusCode::NOT_FOUND, "404 page not found\n").into_response(),
    }
}
