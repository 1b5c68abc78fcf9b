//! What a client creates to ask a question: reviews (who a token is, who
//! the caller is) answered from the request and never stored, and the
//! TokenRequests of `serviceaccounts/token`.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::ApiState;
use super::body::decode_object;
use super::response::json_response;
use crate::auth::{User, tokens};
use crate::registry::{Error, Resource, Result};

/// Whether `resource` is a review this module answers.
pub(super) fn answers(resource: &Resource) -> bool {
    resource.group == "authentication.k8s.io" && resource.custom.is_none()
}

/// Answers the review a client created: the review with its `status`.
pub(super) fn create(
    state: &ApiState,
    resource: &Resource,
    user: &User,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response> {
    let review = decode_object(headers, body, resource.schema)?;
    let status = match resource.kind {
        "SelfSubjectReview" => json!({"userInfo": user.to_json()}),
        "TokenReview" => token_review(state, &review)?,
        other => unreachable!("{other} is not a review"),
    };
    let mut answer = json!({
        "kind": resource.kind,
        "apiVersion": resource.api_version(),
        "metadata": {"creationTimestamp": null},
    });
    if let Some(spec) = review.get("spec") {
        answer["spec"] = spec.clone();
    }
    answer["status"] = status;
    Ok(json_response(StatusCode::CREATED, &answer))
}

/// A TokenReview's status: whether `spec.token` is valid for
/// `spec.audiences` (the API's when none), and whose it is.
fn token_review(state: &ApiState, review: &Value) -> Result<Value> {
    let token = review
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if token.is_empty() {
        return Err(Error::BadRequest(
            "token is required for TokenReview in authentication".into(),
        ));
    }
    let mut audiences: Vec<String> = review
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if audiences.is_empty() {
        audiences.push(tokens::API_AUDIENCE.into());
    }
    Ok(
        match state.auth.review_token(&state.registry, token, &audiences) {
            Ok((user, audiences)) => json!({
                "authenticated": true,
                "user": user.to_json(),
                "audiences": audiences,
            }),
            Err(why) => json!({
                "authenticated": false,
                "user": {},
                "error": format!("[invalid bearer token, {why}]"),
            }),
        },
    )
}

/// Answers a TokenRequest for the ServiceAccount `namespace/name`.
pub(super) fn token_request(
    state: &ApiState,
    namespace: &str,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response> {
    let request = decode_object(headers, body, "io.k8s.api.authentication.v1.TokenRequest")?;
    let issued = state
        .auth
        .signer()
        .issue(&state.registry, namespace, name, &request)?;
    Ok(json_response(StatusCode::CREATED, &issued))
}
