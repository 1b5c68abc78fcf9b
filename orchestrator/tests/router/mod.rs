//! The API router in-process, for tests that drive it with `oneshot`.

#![allow(dead_code)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use wasmkube::api::{ApiState, router};
use wasmkube::registry::{Registry, Resources};
use wasmkube::store::{RedbStore, StoreOptions};

pub const TOKEN: &str = "test-token";

pub struct Api {
    router: Router,
    _dir: tempfile::TempDir,
}

pub async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("store.redb"), StoreOptions::default()).unwrap();
    let registry = Registry::new(Arc::new(store), Resources::builtin());
    let router = router(ApiState {
        registry,
        auth: wasmkube::auth::Authenticator::with_new_key(Some(TOKEN)),
        logs: None,
        streams: None,
        metrics: Default::default(),
        api_metrics: Default::default(),
    });
    let api = Api { router, _dir: dir };
    let (code, _) = api
        .send(
            "POST",
            "/api/v1/namespaces",
            Some(json!({"metadata": {"name": "default"}})),
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    api
}

pub fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [{"name": "c", "image": "toolbox", "command": ["sleep", "100"]}]}})
}

impl Api {
    pub async fn raw(&self, request: Request<Body>) -> axum::response::Response {
        self.router.clone().oneshot(request).await.unwrap()
    }

    pub async fn send(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let (code, _, value) = self
            .send_full(method, uri, body.map(|b| b.to_string()), headers)
            .await;
        (code, value)
    }

    /// Starts a watch (`uri` with `watch=true`); [`events`] reads it to its
    /// end.
    pub async fn watch(&self, uri: &str) -> axum::response::Response {
        let request = Request::get(uri)
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap();
        let response = self.raw(request).await;
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
        response
    }

    /// A PATCH of `content_type` (`merge`, `strategic-merge`, `json`,
    /// `apply`).
    pub async fn patch(&self, uri: &str, patch_type: &str, body: Value) -> (StatusCode, Value) {
        let content_type = match patch_type {
            "json" => "application/json-patch+json".to_string(),
            "apply" => "application/apply-patch+yaml".to_string(),
            other => format!("application/{other}-patch+json"),
        };
        let (code, _, value) = self
            .send_full(
                "PATCH",
                uri,
                Some(body.to_string()),
                &[("content-type", &content_type)],
            )
            .await;
        (code, value)
    }

    pub async fn send_full(
        &self,
        method: &str,
        uri: &str,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        {
            request = request.header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
        }
        if body.is_some()
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = self
            .raw(
                request
                    .body(body.map(Body::from).unwrap_or_else(Body::empty))
                    .unwrap(),
            )
            .await;
        let code = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
        (code, headers, value)
    }
}

/// The events of a watch, read until it ends (its `timeoutSeconds`).
pub async fn events(response: axum::response::Response) -> Vec<Value> {
    let bytes = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        response.into_body().collect(),
    )
    .await
    .expect("the watch ends at timeoutSeconds")
    .unwrap()
    .to_bytes();
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
