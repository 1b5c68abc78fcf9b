//! Columns of PodMetrics and NodeMetrics, as metrics-server prints them:
//! the CPU and memory (a pod's containers summed) and the window.

use serde_json::{Value, json};

use super::{column, s};
use crate::quantity::{Format, Quantity};

pub(super) fn columns(kind: &str, name: Value, _age: Value) -> Option<Vec<Value>> {
    if !matches!(kind, "PodMetrics" | "NodeMetrics") {
        return None;
    }
    let quantity = |resource: &str| json!({"name": resource, "type": "string", "format": "quantity", "description": "", "priority": 0});
    Some(vec![
        name,
        quantity("cpu"),
        quantity("memory"),
        column("Window", "string", 0, ""),
    ])
}

pub(super) fn cells(kind: &str, object: &Value) -> Option<Vec<Value>> {
    let usages: Vec<&Value> = match kind {
        "PodMetrics" => object
            .get("containers")
            .and_then(Value::as_array)
            .map(|containers| containers.iter().filter_map(|c| c.get("usage")).collect())
            .unwrap_or_default(),
        "NodeMetrics" => object.get("usage").into_iter().collect(),
        _ => return None,
    };
    let total = |resource: &str, format: Format| {
        usages
            .iter()
            .filter_map(|u| u.get(resource).and_then(Value::as_str))
            .filter_map(|q| Quantity::parse(q).ok())
            .fold(Quantity::from_units(0), Quantity::plus)
            .canonical(format)
    };
    Some(vec![
        json!(s(object, "/metadata/name")),
        json!(total("cpu", Format::DecimalSi)),
        json!(total("memory", Format::BinarySi)),
        json!(s(object, "/window")),
    ])
}
