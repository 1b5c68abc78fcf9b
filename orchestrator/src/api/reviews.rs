//! What a client creates to ask a question: reviews (who a token is, who
//! the caller is) answered from the request and never stored, and the
//! TokenRequests of `serviceaccounts/token`.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::ApiState;
use super::body::decode_object;
use super::response::json_response;
use crate::admission::{FieldError, Invalid};
use crate::auth::attributes::Attributes;
use crate::auth::{User, rbac, tokens};
use crate::registry::kinds::{AUTHENTICATION, AUTHORIZATION};
use crate::registry::{Error, Resource, Result};

/// Whether `resource` is a review this module answers.
pub(super) fn answers(resource: &Resource) -> bool {
    matches!(resource.group, AUTHENTICATION | AUTHORIZATION) && resource.custom.is_none()
}

/// Answers the review a client created: the review with its `status`.
pub(super) async fn create(
    state: &ApiState,
    resource: &Resource,
    namespace: Option<&str>,
    user: &User,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response> {
    let review = decode_object(headers, body, resource.schema)?;
    let status = match resource.kind {
        "SelfSubjectReview" => json!({"userInfo": user.to_json()}),
        "TokenReview" => token_review(state, &review)?,
        "SelfSubjectAccessReview" => access_review(state, user, &review, None).await?,
        "SubjectAccessReview" => access_review(state, &subject_of(&review)?, &review, None).await?,
        "LocalSubjectAccessReview" => {
            access_review(state, &subject_of(&review)?, &review, namespace).await?
        }
        "SelfSubjectRulesReview" => rules_review(state, user, &review).await?,
        other => unreachable!("{other} is not a review"),
    };
    let mut metadata = json!({"creationTimestamp": null});
    if let Some(namespace) = namespace {
        metadata["namespace"] = json!(namespace);
    }
    let mut answer = json!({
        "kind": resource.kind,
        "apiVersion": resource.api_version(),
        "metadata": metadata,
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
    let audiences = tokens::audiences_of(review.get("spec").unwrap_or(&Value::Null));
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

/// The user a SubjectAccessReview asks about: `spec.user`, `groups`,
/// `uid`, `extra`.
fn subject_of(review: &Value) -> Result<User> {
    let spec = review.get("spec").cloned().unwrap_or_default();
    let name = spec.get("user").and_then(Value::as_str).unwrap_or("");
    let groups: Vec<String> = spec
        .get("groups")
        .and_then(Value::as_array)
        .map(|g| {
            g.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if name.is_empty() && groups.is_empty() {
        return Err(invalid(
            review,
            "spec.user",
            "Invalid value: \"\": at least one of user or group must be specified".into(),
        ));
    }
    Ok(User {
        name: name.to_string(),
        uid: spec
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        groups,
        extra: serde_json::from_value(spec.get("extra").cloned().unwrap_or(json!({})))
            .unwrap_or_default(),
    })
}

/// A review `kind` is invalid at `field`.
fn invalid(review: &Value, field: &str, message: String) -> Error {
    let kind = review
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("SubjectAccessReview");
    Error::Invalid(
        Invalid {
            kind: kind.to_string(),
            name: String::new(),
            errors: vec![FieldError {
                field: field.into(),
                message,
            }],
        },
        AUTHORIZATION.into(),
    )
}

/// An access review's status: whether `user` may do what the spec's
/// resource or non-resource attributes say (in `namespace` for a local
/// review, which must agree with the spec's).
async fn access_review(
    state: &ApiState,
    user: &User,
    review: &Value,
    namespace: Option<&str>,
) -> Result<Value> {
    let spec = review.get("spec").cloned().unwrap_or_default();
    let text = |value: &Value, field: &str| {
        value
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let attributes = match (
        spec.get("resourceAttributes"),
        spec.get("nonResourceAttributes"),
    ) {
        (Some(resource), None) => Attributes {
            verb: text(resource, "verb"),
            resource_request: true,
            group: text(resource, "group"),
            version: text(resource, "version"),
            resource: text(resource, "resource"),
            subresource: text(resource, "subresource"),
            namespace: text(resource, "namespace"),
            name: text(resource, "name"),
            ..Attributes::default()
        },
        (None, Some(path)) => Attributes {
            verb: text(path, "verb"),
            path: text(path, "path"),
            ..Attributes::default()
        },
        (Some(_), Some(_)) => {
            return Err(invalid(
                review,
                "spec.nonResourceAttributes",
                "Invalid value: \"null\": cannot be specified in combination with resourceAttributes"
                    .into(),
            ));
        }
        (None, None) => {
            return Err(invalid(
                review,
                "spec.resourceAttributes",
                "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified".into(),
            ));
        }
    };
    if let Some(namespace) = namespace
        && attributes.namespace != namespace
    {
        return Err(invalid(
            review,
            "spec.resourceAttributes.namespace",
            format!(
                "Invalid value: {:?}: must match metadata.namespace",
                attributes.namespace
            ),
        ));
    }
    let index = state.auth.authorizer().index(&state.registry).await?;
    Ok(match rbac::decide(&index, user, &attributes) {
        Some(reason) if reason.is_empty() => json!({"allowed": true}),
        Some(reason) => json!({"allowed": true, "reason": reason}),
        None => json!({"allowed": false}),
    })
}

/// A SelfSubjectRulesReview's status: every rule that applies to `user`
/// in `spec.namespace` (what `kubectl auth can-i --list` prints).
async fn rules_review(state: &ApiState, user: &User, review: &Value) -> Result<Value> {
    let namespace = review
        .pointer("/spec/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    let index = state.auth.authorizer().index(&state.registry).await?;
    index.visit_rules(user, namespace, |_, rule| {
        let pick = |fields: &[&str]| {
            let mut picked = serde_json::Map::new();
            for field in fields {
                if let Some(value) = rule.get(*field).filter(|v| !v.is_null()) {
                    picked.insert(field.to_string(), value.clone());
                }
            }
            Value::Object(picked)
        };
        if rule.get("nonResourceURLs").is_some_and(|u| !u.is_null()) {
            non_resource_rules.push(pick(&["verbs", "nonResourceURLs"]));
        } else {
            resource_rules.push(pick(&["verbs", "apiGroups", "resources", "resourceNames"]));
        }
        true
    });
    Ok(json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": false,
    }))
}
