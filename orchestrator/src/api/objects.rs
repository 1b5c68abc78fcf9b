//! The verbs on resources: `/api/v1/...` and `/apis/<group>/<version>/...`
//! requests parsed into a target, then answered through the registry.

use std::pin::Pin;
use std::sync::Arc;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde_json::{Value, json};

use super::body::{ApiBody, content_type, decode_object};
use super::query::Query;
use super::response::{json_response, with_warnings};
use super::table::{IncludeObject, table};
use super::{ApiState, alias, metrics, reviews, watch};
use crate::auth::User;
use crate::patch::PatchKind;
use crate::registry::resources::Alias;
use crate::registry::scale;
use crate::registry::{
    DeleteOptions, Deleted, Error, FieldSelector, LabelSelector, ListOptions, Resource, Result,
    WriteOptions,
};
use crate::store::Preconditions;

/// What `pods/log` asks for.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub container: String,
    pub follow: bool,
    pub previous: bool,
    pub tail_lines: Option<usize>,
    pub since_seconds: Option<i64>,
    pub timestamps: bool,
    pub limit_bytes: Option<usize>,
}

/// A stream of log bytes.
pub type LogStream = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

/// Where the API finds pod logs: the kubelet of the pod's node.
pub trait PodLogs: Send + Sync {
    fn logs(&self, pod: &Value, options: LogOptions) -> Result<LogStream>;
}

/// A parsed resource path.
struct Target {
    resource: Resource,
    /// The old group version the request was made at, if it was.
    alias: Option<Alias>,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

pub(super) async fn core_handler(
    State(state): State<ApiState>,
    Path((version, rest)): Path<(String, String)>,
    Extension(user): Extension<Arc<User>>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ApiBody(body): ApiBody,
) -> Response {
    let call = Call {
        method,
        raw_query: query,
        headers,
        body,
        user,
    };
    handle(&state, "", &version, &rest, call)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub(super) async fn group_handler(
    State(state): State<ApiState>,
    Path((group, version, rest)): Path<(String, String, String)>,
    Extension(user): Extension<Arc<User>>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ApiBody(body): ApiBody,
) -> Response {
    let call = Call {
        method,
        raw_query: query,
        headers,
        body,
        user,
    };
    handle(&state, &group, &version, &rest, call)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

fn parse_target(state: &ApiState, group: &str, version: &str, rest: &str) -> Result<Target> {
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let find = |plural: &str| {
        state
            .registry
            .resources()
            .find_served(group, version, plural)
            .map(|(resource, alias)| (resource.clone(), alias.copied()))
            .ok_or(Error::NoRoute)
    };
    let namespaced_path = segments.first() == Some(&"namespaces")
        && segments.len() >= 3
        && !(segments.len() == 3 && matches!(segments[2], "status" | "finalize"));
    let ((resource, alias), namespace, name, subresource) = if namespaced_path {
        let (resource, alias) = find(segments[2])?;
        if !resource.namespaced {
            return Err(Error::NoRoute);
        }
        (
            (resource, alias),
            Some(segments[1]),
            segments.get(3),
            segments.get(4),
        )
    } else {
        (
            find(segments.first().copied().unwrap_or(""))?,
            None,
            segments.get(1),
            segments.get(2),
        )
    };
    if segments.len() > if namespaced_path { 5 } else { 3 } {
        return Err(Error::NoRoute);
    }
    if let Some(sub) = subresource
        && resource.subresource(sub).is_none()
    {
        return Err(Error::NoRoute);
    }
    Ok(Target {
        resource,
        alias,
        namespace: namespace.map(str::to_string),
        name: name.map(|n| n.to_string()),
        subresource: subresource.map(|s| s.to_string()),
    })
}

/// A request to a resource path, as received.
struct Call {
    method: Method,
    raw_query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
    /// Who made it.
    user: Arc<User>,
}

/// What the client accepts: a Table, or plain objects.
fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(|accept| accept.split(',').next())
        .is_some_and(|first| first.contains("as=Table"))
}

/// The API server's checks of a patch's options: an apply names its
/// field manager; only an apply may be forced.
fn check_patch_options(kind: PatchKind, query: &Query) -> Result<()> {
    let error = |field: &str, message: &str| crate::admission::FieldError {
        field: field.into(),
        message: message.into(),
    };
    let errors = match kind {
        PatchKind::Apply if query.get("fieldManager").is_none_or(str::is_empty) => {
            vec![error(
                "fieldManager",
                "Required value: is required for apply patch",
            )]
        }
        PatchKind::Apply => Vec::new(),
        _ if query.get("force").is_some() => vec![error(
            "force",
            "Forbidden: may not be specified for non-apply patch",
        )],
        _ => Vec::new(),
    };
    if errors.is_empty() {
        return Ok(());
    }
    Err(Error::Invalid(
        crate::admission::Invalid {
            kind: "PatchOptions".into(),
            name: String::new(),
            errors,
        },
        "meta.k8s.io".into(),
    ))
}

/// A write's options; without a `fieldManager`, the manager is the
/// client's User-Agent up to its first `/`, as the API server names it.
fn write_options(query: &Query, headers: &HeaderMap, user: &Arc<User>) -> Result<WriteOptions> {
    let user_agent = || {
        let agent = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let manager: String = agent
            .split('/')
            .next()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .take(128)
            .collect();
        (!manager.is_empty()).then_some(manager)
    };
    Ok(WriteOptions {
        dry_run: query.dry_run()?,
        field_manager: query
            .get("fieldManager")
            .map(str::to_string)
            .or_else(user_agent),
        validation: query.field_validation()?,
        force: query.flag("force"),
        user: Some(Arc::clone(user)),
        ..WriteOptions::default()
    })
}

/// A list's options, checked as the API server checks them. A
/// `resourceVersion` with `resourceVersionMatch=Exact` asks for that
/// revision; otherwise for one at least as new ("0" or none: any).
fn list_options(query: &Query, resource: &Resource) -> Result<ListOptions> {
    let rv = query.get("resourceVersion").filter(|rv| !rv.is_empty());
    let revision = match rv {
        None => None,
        Some(rv) => Some(rv.parse::<u64>().map_err(|_| {
            Error::BadRequest(format!(
                "invalid resource version: resourceVersion: Invalid value: {rv:?}: a resource version is a non-negative integer"
            ))
        })?),
    };
    let continued = query.get("continue").is_some_and(|c| !c.is_empty());
    let matching = query.get("resourceVersionMatch").filter(|m| !m.is_empty());
    let forbidden = |message: String| {
        let mut errors = crate::admission::Errors::default();
        errors.push("resourceVersionMatch", message);
        let invalid = errors
            .into_result("ListOptions", "")
            .expect_err("an error was pushed");
        Err(Error::Invalid(invalid, "meta.k8s.io".into()))
    };
    let (exact, not_older_than) = match (matching, revision) {
        (Some(_), None) => {
            return forbidden(
                "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
                    .into(),
            );
        }
        (Some(_), Some(_)) if continued => {
            return forbidden(
                "Forbidden: resourceVersionMatch is forbidden when continue is provided".into(),
            );
        }
        (Some("Exact"), Some(0)) => {
            return forbidden(
                "Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""
                    .into(),
            );
        }
        (Some("Exact"), Some(rv)) => (Some(rv), None),
        (Some("NotOlderThan") | None, rv) => (None, rv.filter(|rv| *rv > 0)),
        (Some(other), _) => {
            return forbidden(format!(
                "Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\", \"\""
            ));
        }
    };
    if continued && not_older_than.is_some() && !query.flag("watch") {
        return Err(Error::BadRequest(
            "specifying resource version is not allowed when using continue".into(),
        ));
    }
    Ok(ListOptions {
        exact,
        not_older_than,
        labels: LabelSelector::parse(query.get("labelSelector").unwrap_or(""))
            .map_err(Error::BadRequest)?,
        fields: FieldSelector::parse(
            query.get("fieldSelector").unwrap_or(""),
            resource.field_selectors,
        )
        .map_err(Error::BadRequest)?,
        limit: query.number("limit")?.unwrap_or(0),
        continue_token: query
            .get("continue")
            .filter(|c| !c.is_empty())
            .map(str::to_string),
    })
}

fn verb_allowed(resource: &Resource, verb: &str) -> Result<()> {
    if resource.supports(verb) {
        Ok(())
    } else {
        Err(Error::MethodNotAllowed(format!(
            "the server does not allow this method on the requested resource ({verb} {})",
            resource.qualified_name()
        )))
    }
}

async fn handle(
    state: &ApiState,
    group: &str,
    version: &str,
    rest: &str,
    call: Call,
) -> Result<Response> {
    let target = parse_target(state, group, version, rest)?;
    let deprecation = target
        .resource
        .custom
        .as_ref()
        .and_then(|c| c.deprecation.clone());
    if let Some(warning) = deprecation {
        // A deprecated version of a custom resource warns on every answer.
        let response = serve(state, target, call)
            .await
            .unwrap_or_else(IntoResponse::into_response);
        return Ok(with_warnings(response, &[warning]));
    }
    let Some(old) = target.alias else {
        return serve(state, target, call).await;
    };
    // A request at an old group version: converted in, converted out.
    let current = target.resource.api_version();
    let mut call = call;
    let body = std::mem::take(&mut call.body);
    call.body = if call.method == Method::PATCH {
        match PatchKind::from_content_type(content_type(&call.headers)) {
            Some(kind) => {
                Bytes::from(alias::patch_to_current(&old, &current, kind, &body).into_owned())
            }
            None => body,
        }
    } else if (call.method == Method::POST || call.method == Method::PUT)
        && content_type(&call.headers).starts_with("application/json")
        && let Ok(mut value) = serde_json::from_slice::<Value>(&body)
    {
        alias::to_current(&old, &current, &mut value);
        Bytes::from(serde_json::to_vec(&value).expect("JSON values serialise"))
    } else {
        body
    };
    let streams = Query::parse(call.raw_query.as_deref())?.flag("watch");
    let response = serve(state, target, call)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    Ok(alias::answer(&old, &current, response, !streams).await)
}

/// Answers a request for `target`.
async fn serve(state: &ApiState, target: Target, call: Call) -> Result<Response> {
    let Call {
        method,
        raw_query,
        headers,
        body,
        user,
    } = call;
    let query = Query::parse(raw_query.as_deref())?;
    let registry = &state.registry;
    let resource = &target.resource;
    let namespace = target.namespace.as_deref();
    if resource.namespaced
        && namespace.is_none()
        && (target.name.is_some() || method != Method::GET)
    {
        return Err(Error::NoRoute);
    }
    let table_wanted = wants_table(&headers);
    let include = IncludeObject::parse(query.get("includeObject"));
    if crate::registry::kinds::metrics::is_metrics(resource) {
        let measured = match resource.kind {
            "PodMetrics" => registry.resource("", "Pod"),
            _ => registry.resource("", "Node"),
        };
        return metrics::serve(
            state,
            metrics::Request {
                resource,
                namespace,
                name: target.name.as_deref(),
                method: &method,
                query: &query,
                options: list_options(&query, &measured)?,
                table: table_wanted.then_some(include),
            },
        );
    }
    match (
        &method,
        target.name.as_deref(),
        target.subresource.as_deref(),
    ) {
        (&Method::GET, None, _) => {
            let options = list_options(&query, resource)?;
            if query.flag("watch") {
                verb_allowed(resource, "watch")?;
                return watch::serve(
                    state,
                    resource,
                    target.alias.as_ref(),
                    namespace,
                    &query,
                    options,
                    table_wanted.then_some(include),
                );
            }
            verb_allowed(resource, "list")?;
            let listed = registry.list(resource, namespace, &options)?;
            let revision = listed.revision.to_string();
            if table_wanted {
                let items: Vec<&Value> = listed.items.iter().collect();
                return Ok(json_response(
                    StatusCode::OK,
                    &table(
                        resource,
                        &items,
                        include,
                        &revision,
                        listed.continue_token.as_deref(),
                    ),
                ));
            }
            let mut metadata = json!({"resourceVersion": revision});
            if let Some(token) = listed.continue_token {
                metadata["continue"] = json!(token);
            }
            Ok(json_response(
                StatusCode::OK,
                &json!({
                    "kind": format!("{}List", resource.kind),
                    "apiVersion": resource.api_version(),
                    "metadata": metadata,
                    "items": listed.items,
                }),
            ))
        }
        (&Method::POST, None, None) if reviews::answers(resource) => {
            reviews::create(state, resource, namespace, &user, &headers, &body).await
        }
        (&Method::POST, Some(name), Some("token")) if resource.kind == "ServiceAccount" => {
            reviews::token_request(state, namespace.unwrap_or("default"), name, &headers, &body)
        }
        (&Method::POST, Some(name), Some("eviction")) if resource.kind == "Pod" => {
            let eviction = decode_object(&headers, &body, "io.k8s.api.policy.v1.Eviction")?;
            let named = eviction.pointer("/metadata/name").and_then(Value::as_str);
            if named.is_some_and(|n| n != name) {
                return Err(Error::BadRequest(
                    "name in URL does not match name in Eviction object".into(),
                ));
            }
            let options =
                delete_options_of(&query, eviction.get("deleteOptions").unwrap_or(&json!({})))?;
            registry
                .evict(namespace.unwrap_or("default"), name, &options)
                .await?;
            Ok(json_response(
                StatusCode::CREATED,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            ))
        }
        (&Method::GET, Some(name), Some("log")) => {
            let pod = registry.get(resource, namespace, name)?;
            logs(state, &pod, &query).await
        }
        (&Method::GET, Some(name), Some("scale")) => {
            let object = registry.get(resource, namespace, name)?;
            Ok(json_response(StatusCode::OK, &scale::of(resource, &object)))
        }
        (&Method::PUT | &Method::PATCH, Some(name), Some("scale")) => {
            let change = if method == Method::PUT {
                scale::Change::Replace(decode_object(
                    &headers,
                    &body,
                    "io.k8s.api.autoscaling.v1.Scale",
                )?)
            } else {
                let kind = PatchKind::from_content_type(content_type(&headers)).ok_or_else(|| {
                    Error::UnsupportedMediaType(format!(
                        "the body of the request was in an unknown format - accepted media types include: \
                         application/json-patch+json, application/merge-patch+json, \
                         application/strategic-merge-patch+json (got {})",
                        content_type(&headers)
                    ))
                })?;
                scale::Change::Patch(kind, &body)
            };
            let options = write_options(&query, &headers, &user)?;
            let scaled =
                scale::write(registry, resource, namespace, name, change, &options).await?;
            Ok(json_response(StatusCode::OK, &scaled))
        }
        (&Method::GET, Some(name), _) => {
            verb_allowed(resource, "get")?;
            let object = registry.get(resource, namespace, name)?;
            if table_wanted {
                let revision = object
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                return Ok(json_response(
                    StatusCode::OK,
                    &table(resource, &[&object], include, &revision, None),
                ));
            }
            Ok(json_response(StatusCode::OK, &object))
        }
        (&Method::POST, None, None) => {
            verb_allowed(resource, "create")?;
            let body = decode_object(&headers, &body, resource.schema)?;
            let written = registry
                .create(
                    resource,
                    namespace,
                    body,
                    &write_options(&query, &headers, &user)?,
                )
                .await?;
            Ok(with_warnings(
                json_response(StatusCode::CREATED, &written.object),
                &written.warnings,
            ))
        }
        (&Method::PUT, Some(name), sub) => {
            verb_allowed(resource, "update")?;
            let sub = writable_subresource(sub)?;
            let body = decode_object(&headers, &body, resource.schema)?;
            let written = registry
                .update(
                    resource,
                    namespace,
                    name,
                    body,
                    sub,
                    &write_options(&query, &headers, &user)?,
                )
                .await?;
            Ok(with_warnings(
                json_response(StatusCode::OK, &written.object),
                &written.warnings,
            ))
        }
        (&Method::PATCH, Some(name), sub) => {
            verb_allowed(resource, "patch")?;
            let sub = writable_subresource(sub)?;
            let kind = PatchKind::from_content_type(content_type(&headers)).ok_or_else(|| {
                Error::UnsupportedMediaType(format!(
                    "the body of the request was in an unknown format - accepted media types include: \
                     application/json-patch+json, application/merge-patch+json, \
                     application/apply-patch+yaml, application/strategic-merge-patch+json (got {})",
                    content_type(&headers)
                ))
            })?;
            if kind == PatchKind::Strategic && resource.custom.is_some() {
                // Custom resources have no patch strategies to merge by.
                return Err(Error::UnsupportedMediaType(
                    "the body of the request was in an unknown format - accepted media types include: \
                     application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
                        .into(),
                ));
            }
            check_patch_options(kind, &query)?;
            let options = write_options(&query, &headers, &user)?;
            let written = registry
                .patch(resource, namespace, name, kind, &body, sub, &options)
                .await?;
            let code = if written.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(with_warnings(
                json_response(code, &written.object),
                &written.warnings,
            ))
        }
        (&Method::DELETE, Some(name), None) => {
            verb_allowed(resource, "delete")?;
            let options = delete_options(&query, &headers, &body)?;
            let answer = match registry.delete(resource, namespace, name, &options).await? {
                Deleted::Gone(object) if !resource.returns_deleted => {
                    deleted_status(resource, &object)
                }
                Deleted::Gone(object) | Deleted::Pending(object) => object,
            };
            Ok(json_response(StatusCode::OK, &answer))
        }
        (&Method::DELETE, None, None) => {
            verb_allowed(resource, "deletecollection")?;
            let options = delete_options(&query, &headers, &body)?;
            let listed = registry.list(resource, namespace, &list_options(&query, resource)?)?;
            let mut deleted = Vec::new();
            for item in listed.items {
                let name = item
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let ns = item.pointer("/metadata/namespace").and_then(Value::as_str);
                match registry.delete(resource, ns, name, &options).await {
                    Ok(Deleted::Gone(o) | Deleted::Pending(o)) => deleted.push(o),
                    Err(Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(json_response(
                StatusCode::OK,
                &json!({
                    "kind": format!("{}List", resource.kind),
                    "apiVersion": resource.api_version(),
                    "metadata": {},
                    "items": deleted,
                }),
            ))
        }
        _ => Err(Error::MethodNotAllowed(format!(
            "the server does not allow this method on the requested resource ({method} {})",
            resource.qualified_name()
        ))),
    }
}

fn writable_subresource(sub: Option<&str>) -> Result<Option<&str>> {
    match sub {
        None => Ok(None),
        Some("status") => Ok(Some("status")),
        Some("finalize") => Ok(Some("finalize")),
        Some("ephemeralcontainers") => Ok(Some("ephemeralcontainers")),
        Some(other) => Err(Error::MethodNotAllowed(format!(
            "the server does not allow this method on the subresource {other}"
        ))),
    }
}

fn delete_options(query: &Query, headers: &HeaderMap, body: &[u8]) -> Result<DeleteOptions> {
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        decode_object(
            headers,
            body,
            "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
        )?
    };
    delete_options_of(query, &body)
}

/// DeleteOptions from the query and a decoded `DeleteOptions` object.
fn delete_options_of(query: &Query, body: &Value) -> Result<DeleteOptions> {
    let grace = match query.number::<i64>("gracePeriodSeconds")? {
        Some(g) => Some(g),
        None => body.get("gracePeriodSeconds").and_then(Value::as_i64),
    };
    let propagation = query
        .get("propagationPolicy")
        .map(str::to_string)
        .or_else(|| {
            body.get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    if let Some(p) = &propagation
        && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
    {
        return Err(Error::BadRequest(format!(
            "propagationPolicy must be one of Orphan, Background or Foreground, not {p:?}"
        )));
    }
    let dry_run = query.dry_run()?
        || body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|v| v == "All"));
    Ok(DeleteOptions {
        grace_period_seconds: grace,
        propagation_policy: propagation,
        preconditions: Preconditions {
            revision: body
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .and_then(|v| v.parse().ok()),
            uid: body
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_string),
        },
        dry_run,
    })
}

/// The names in `spec.<list>` of a pod.
fn container_names<'a>(pod: &'a Value, list: &str) -> Vec<&'a str> {
    pod.pointer(&format!("/spec/{list}"))
        .and_then(Value::as_array)
        .map(|c| {
            c.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default()
}

async fn logs(state: &ApiState, pod: &Value, query: &Query) -> Result<Response> {
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let containers = container_names(pod, "containers");
    let init = container_names(pod, "initContainers");
    let container = match query.get("container").filter(|c| !c.is_empty()) {
        Some(c) if containers.contains(&c) || init.contains(&c) => c.to_string(),
        Some(c) => {
            return Err(Error::BadRequest(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        None if containers.len() == 1 => containers[0].to_string(),
        None => {
            return Err(Error::BadRequest(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )));
        }
    };
    let options = LogOptions {
        container,
        follow: query.flag("follow"),
        previous: query.flag("previous"),
        tail_lines: query.number("tailLines")?,
        since_seconds: query.number("sinceSeconds")?,
        timestamps: query.flag("timestamps"),
        limit_bytes: query.number("limitBytes")?,
    };
    let Some(source) = &state.logs else {
        return Err(Error::BadRequest(format!(
            "pod {name} has no node to read logs from"
        )));
    };
    let stream = source.logs(pod, options)?;
    let body = Body::from_stream(futures::StreamExt::map(
        stream,
        Ok::<_, std::convert::Infallible>,
    ));
    Ok(([(header::CONTENT_TYPE, "text/plain")], body).into_response())
}

/// What a DELETE that removed the object answers, for kinds whose storage
/// does not return the object: a success Status naming what went.
fn deleted_status(resource: &Resource, object: &Value) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {
            "name": object.pointer("/metadata/name"),
            "group": resource.group,
            "kind": resource.plural,
            "uid": object.pointer("/metadata/uid"),
        },
    })
}
