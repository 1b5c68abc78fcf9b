//! The Kubernetes REST API over HTTP: discovery, OpenAPI, the verbs on every
//! resource, watches, Tables, pod logs.
//!
//! [`router`] builds the whole API as an axum `Router`, so tests drive it
//! with `oneshot` and no socket, an embedding program can hand it to
//! `kube::Client`, and [`crate::server`] serves it over HTTPS.

mod alias;
mod body;
mod discovery;
mod exec;
mod metrics;
mod monitoring;
pub mod objects;
mod openapi;
mod portforward;
mod protobuf;
mod query;
mod response;
mod reviews;
pub(crate) mod stream;
pub mod table;
mod watch;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::json;

pub use self::body::MAX_BODY_BYTES;
pub use self::objects::PodLogs;
pub use self::response::json_response;
pub use self::stream::PodStreams;
use crate::auth;
use crate::registry::{Error, Registry};

/// The Kubernetes version the server reports; kubectl's version dispatcher
/// picks its client by the minor.
pub const KUBERNETES_VERSION: (&str, &str) = ("1", "33");

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub registry: Registry,
    /// Who each request is.
    pub auth: Arc<auth::Authenticator>,
    /// Where pod logs come from (the kubelet).
    pub logs: Option<Arc<dyn PodLogs>>,
    /// Where exec and port-forward reach pods (the kubelet).
    pub streams: Option<Arc<dyn PodStreams>>,
    /// The pods' and node's CPU and memory, for metrics.k8s.io.
    pub metrics: Arc<crate::metrics::ResourceMetrics>,
    /// The API server's request metrics, for `/metrics`.
    pub api_metrics: Arc<crate::metrics::apiserver::ApiMetrics>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState").finish_non_exhaustive()
    }
}

/// The whole API.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/version/", get(version))
        .route("/healthz", get(healthy))
        .route("/livez", get(healthy))
        .route("/readyz", get(healthy))
        .route("/api", get(core_discovery))
        .route("/apis", get(groups_discovery))
        .route("/api/{version}", get(core_resources))
        .route("/apis/{group}", get(group_discovery))
        .route("/apis/{group}/{version}", get(group_resources))
        .route("/metrics", get(monitoring::metrics))
        .route(
            "/api/v1/nodes/{name}/proxy/{*path}",
            get(monitoring::node_proxy),
        )
        .route("/openapi/v2", get(openapi_v2))
        .route(
            "/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route(
            "/.well-known/openid-configuration/",
            get(openid_configuration),
        )
        .route("/openid/v1/jwks", get(openid_keys))
        .route("/openid/v1/jwks/", get(openid_keys))
        .route("/openapi/v3", get(openapi_index))
        .route("/openapi/v3/{*path}", get(openapi_document))
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}/exec",
            any(exec::exec_handler),
        )
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}/attach",
            any(exec::attach_handler),
        )
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}/portforward",
            any(portforward::handler),
        )
        .route("/api/{version}/{*rest}", any(objects::core_handler))
        .route(
            "/apis/{group}/{version}/{*rest}",
            any(objects::group_handler),
        )
        .fallback(|| async { Error::NoRoute.into_response() })
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            monitoring::instrument,
        ))
        .with_state(state)
}

/// Authentication, then authorization: every request but health and
/// version must say who it is (a client certificate or a bearer token), as
/// with the API server's anonymous access off, and RBAC must allow what it
/// asks; the user rides on the request as an extension.
async fn authenticate(State(state): State<ApiState>, mut request: Request, next: Next) -> Response {
    let open = matches!(
        request.uri().path(),
        "/healthz" | "/livez" | "/readyz" | "/version" | "/version/"
    );
    let user = state.auth.authenticate(
        &state.registry,
        request.extensions().get::<auth::CertificateUser>(),
        request.headers(),
    );
    let user = match user {
        Ok(Some(user)) => user,
        Ok(None) if open => Arc::new(auth::User::anonymous()),
        Ok(None) => return Error::Unauthorized("Unauthorized".into()).into_response(),
        Err(e) if !open => return e.into_response(),
        Err(_) => Arc::new(auth::User::anonymous()),
    };
    let authorizer = state.auth.authorizer();
    let user =
        auth::impersonation::impersonate(&state.registry, authorizer, user, request.headers());
    let user = match user.await {
        Ok(user) => user,
        Err(e) => return e.into_response(),
    };
    let anonymous = user.name == auth::ANONYMOUS;
    if !open && !user.is_master() {
        let attributes = auth::attributes::Attributes::of_request(
            request.method(),
            request.uri().path(),
            request.uri().query(),
        );
        match authorizer.index(&state.registry).await {
            Ok(index) if auth::rbac::allowed(&index, &user, &attributes) => {}
            Ok(_) => return auth::rbac::forbidden(&user, &attributes).into_response(),
            Err(e) => return e.into_response(),
        }
    }
    request.extensions_mut().insert(user);
    let mut response = next.run(request).await;
    if !anonymous {
        response.extensions_mut().insert(Authenticated);
    }
    response
}

/// Marks a response to an authenticated request (a response extension),
/// so the server knows which connections are its clients'.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated;

async fn version() -> Response {
    let (major, minor) = KUBERNETES_VERSION;
    json_response(
        StatusCode::OK,
        &json!({
            "major": major,
            "minor": minor,
            "gitVersion": format!("v{major}.{minor}.0-wasmkube.{}", env!("CARGO_PKG_VERSION")),
            "gitCommit": "",
            "gitTreeState": "clean",
            "buildDate": "",
            "goVersion": "",
            "compiler": "rustc",
            "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        }),
    )
}

async fn healthy() -> &'static str {
    "ok"
}

fn discovery_response(format: discovery::Format, body: &serde_json::Value) -> Response {
    let mut response = json_response(StatusCode::OK, body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    response
}

async fn core_discovery(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let format = discovery::Format::negotiate(&headers);
    discovery_response(
        format,
        &discovery::core(&state.registry.resources(), format),
    )
}

async fn groups_discovery(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let format = discovery::Format::negotiate(&headers);
    discovery_response(
        format,
        &discovery::groups(&state.registry.resources(), format),
    )
}

async fn core_resources(State(state): State<ApiState>, Path(version): Path<String>) -> Response {
    match discovery::resource_list(&state.registry.resources(), "", &version) {
        Some(list) => json_response(StatusCode::OK, &list),
        None => Error::NoRoute.into_response(),
    }
}

async fn group_discovery(State(state): State<ApiState>, Path(group): Path<String>) -> Response {
    match discovery::group(&state.registry.resources(), &group) {
        Some(doc) => json_response(StatusCode::OK, &doc),
        None => Error::NoRoute.into_response(),
    }
}

async fn group_resources(
    State(state): State<ApiState>,
    Path((group, version)): Path<(String, String)>,
) -> Response {
    match discovery::resource_list(&state.registry.resources(), &group, &version) {
        Some(list) => json_response(StatusCode::OK, &list),
        None => Error::NoRoute.into_response(),
    }
}

/// The v2 document, as protobuf when the client asks for it (client-go
/// does), JSON otherwise.
/// OpenID Connect discovery of the ServiceAccount token issuer, as the API
/// server serves it: the issuer and where its keys are (on this server, by
/// the address the client used).
async fn openid_configuration(headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("kubernetes.default.svc");
    json_response(
        StatusCode::OK,
        &json!({
            "issuer": auth::tokens::API_AUDIENCE,
            "jwks_uri": format!("https://{host}/openid/v1/jwks"),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        }),
    )
}

/// The keys ServiceAccount tokens are signed with.
async fn openid_keys(State(state): State<ApiState>) -> Response {
    let mut response = json_response(StatusCode::OK, &state.auth.signer().jwks());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    response
}

async fn openapi_v2(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let rendered = openapi::v2::rendered(&state.registry.resources());
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (content_type, body) = if openapi::v2::PROTOBUF.iter().any(|t| accept.contains(t)) {
        (openapi::v2::PROTOBUF[1], rendered.protobuf.clone())
    } else {
        ("application/json", rendered.json.clone())
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache, private"),
        ],
        [(header::ETAG, format!("\"{}\"", rendered.hash))],
        body,
    )
        .into_response()
}

async fn openapi_index(State(state): State<ApiState>) -> Response {
    json_response(StatusCode::OK, &openapi::index(&state.registry.resources()))
}

async fn openapi_document(
    State(state): State<ApiState>,
    Path(path): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let documents = openapi::documents(&state.registry.resources());
    let Some(document) = documents.get(&path) else {
        return Error::NoRoute.into_response();
    };
    let hashed = raw.is_some_and(|q| q.contains(&format!("hash={}", document.hash)));
    let cache = if hashed {
        "public, immutable"
    } else {
        "no-cache, private"
    };
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, cache),
        ],
        [(header::ETAG, format!("\"{}\"", document.hash))],
        document.body.clone(),
    )
        .into_response()
}
