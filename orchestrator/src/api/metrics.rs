//! metrics.k8s.io/v1beta1, answered as metrics-server answers it: a
//! PodMetrics for each running pod the kubelet has measured (the pods
//! listed with the request's label and field selectors), a NodeMetrics
//! for the node; get and list only.

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::{Value, json};

use super::ApiState;
use super::query::Query;
use super::response::json_response;
use super::table::{IncludeObject, table};
use crate::metrics::duration;
use crate::metrics::resource::{NodeSample, PodSample};
use crate::quantity::{Format, Quantity};
use crate::registry::kinds::metrics::{ContainerMetrics, GROUP, NodeMetrics, PodMetrics};
use crate::registry::{Error, ListOptions, Resource, Result};

/// What one request asks of the metrics API.
pub(super) struct Request<'a> {
    pub resource: &'a Resource,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
    pub method: &'a Method,
    pub query: &'a Query,
    pub options: ListOptions,
    pub table: Option<IncludeObject>,
}

/// Answers a request for PodMetrics or NodeMetrics.
pub(super) fn serve(state: &ApiState, request: Request<'_>) -> Result<Response> {
    let verb = match (request.method, request.name) {
        (&Method::GET, Some(_)) => "get",
        (&Method::GET, None) if request.query.flag("watch") => "watch",
        (&Method::GET, None) => "list",
        _ => "",
    };
    if !request.resource.supports(verb) {
        return Err(Error::MethodNotAllowed(format!(
            "the server does not allow this method on the requested resource ({} {})",
            if verb.is_empty() {
                request.method.as_str()
            } else {
                verb
            },
            request.resource.qualified_name()
        )));
    }
    let items = match request.resource.kind {
        "PodMetrics" => pod_items(state, &request)?,
        _ => node_items(state, &request)?,
    };
    let resource = request.resource;
    if let Some(include) = request.table {
        let objects: Vec<&Value> = items.iter().collect();
        return Ok(json_response(
            StatusCode::OK,
            &table(resource, &objects, include, "", None),
        ));
    }
    if request.name.is_some() {
        let item = items
            .into_iter()
            .next()
            .expect("a named get finds one or fails");
        return Ok(json_response(StatusCode::OK, &item));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "kind": format!("{}List", resource.kind),
            "apiVersion": resource.api_version(),
            "metadata": {},
            "items": items,
        }),
    ))
}

fn not_found(what: &str, name: String) -> Error {
    Error::NotFound {
        resource: what.into(),
        group: GROUP.into(),
        name,
    }
}

/// The measured pods among those the request selects.
fn pod_items(state: &ApiState, request: &Request<'_>) -> Result<Vec<Value>> {
    let registry = &state.registry;
    let pods = registry.resource("", "Pod");
    let listed = match request.name {
        Some(name) => {
            let namespace = request.namespace.unwrap_or("default");
            let pod = registry
                .find(&pods, Some(namespace), name)?
                .ok_or_else(|| not_found("podmetrics", format!("{namespace}/{name}")))?;
            vec![pod]
        }
        None => {
            registry
                .list(&pods, request.namespace, &request.options)?
                .items
        }
    };
    let items: Vec<Value> = listed
        .iter()
        .filter_map(|pod| {
            let uid = pod.pointer("/metadata/uid").and_then(Value::as_str)?;
            let sample = state.metrics.pod(uid)?;
            Some(pod_metrics(pod, &sample))
        })
        .collect();
    if let (Some(name), true) = (request.name, items.is_empty()) {
        let namespace = request.namespace.unwrap_or("default");
        return Err(not_found("podmetrics", format!("{namespace}/{name}")));
    }
    Ok(items)
}

/// The node, once measured, if the request selects it.
fn node_items(state: &ApiState, request: &Request<'_>) -> Result<Vec<Value>> {
    let registry = &state.registry;
    let nodes = registry.resource("", "Node");
    let listed = match request.name {
        Some(name) => vec![
            registry
                .find(&nodes, None, name)?
                .ok_or_else(|| not_found("nodemetrics", name.to_string()))?,
        ],
        None => registry.list(&nodes, None, &request.options)?.items,
    };
    // One node, this one: the kubelet measures only its own.
    let sample = state.metrics.node();
    let items: Vec<Value> = listed
        .iter()
        .filter_map(|node| Some(node_metrics(node, &sample?)))
        .take(1)
        .collect();
    if let (Some(name), true) = (request.name, items.is_empty()) {
        return Err(not_found("nodemetrics", name.to_string()));
    }
    Ok(items)
}

/// The metadata metrics-server gives a metrics object: the measured
/// object's name, namespace and labels, created now.
fn metadata_of(object: &Value, sampled: jiff::Timestamp) -> ObjectMeta {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    ObjectMeta {
        name: text("/metadata/name"),
        namespace: text("/metadata/namespace"),
        labels: object
            .pointer("/metadata/labels")
            .and_then(|l| serde_json::from_value(l.clone()).ok()),
        creation_timestamp: Some(Time(sampled)),
        ..ObjectMeta::default()
    }
}

fn usage(cpu_nanocores: u64, memory_bytes: u64) -> BTreeMap<String, ApiQuantity> {
    let cpu = Quantity::from_nanos(cpu_nanocores as i128).canonical(Format::DecimalSi);
    let memory = Quantity::from_units(memory_bytes as i128).canonical(Format::BinarySi);
    BTreeMap::from([
        ("cpu".to_string(), ApiQuantity(cpu)),
        ("memory".to_string(), ApiQuantity(memory)),
    ])
}

fn pod_metrics(pod: &Value, sample: &PodSample) -> Value {
    let metrics = PodMetrics {
        api_version: Some(format!("{GROUP}/v1beta1")),
        kind: Some("PodMetrics".into()),
        metadata: metadata_of(pod, jiff::Timestamp::now()),
        timestamp: Time(sample.timestamp),
        window: duration::go(sample.window),
        containers: sample
            .containers
            .iter()
            .map(|c| ContainerMetrics {
                name: c.name.clone(),
                usage: usage(c.cpu_nanocores, c.memory_bytes),
            })
            .collect(),
    };
    serde_json::to_value(metrics).expect("metrics serialise")
}

fn node_metrics(node: &Value, sample: &NodeSample) -> Value {
    let metrics = NodeMetrics {
        api_version: Some(format!("{GROUP}/v1beta1")),
        kind: Some("NodeMetrics".into()),
        metadata: metadata_of(node, jiff::Timestamp::now()),
        timestamp: Time(sample.timestamp),
        window: duration::go(sample.window),
        usage: usage(sample.cpu_nanocores, sample.memory_bytes),
    };
    serde_json::to_value(metrics).expect("metrics serialise")
}
