//! autoscaling/v2 HorizontalPodAutoscalers: the API server's defaults
//! (one replica at least, 80% CPU when no metric is named, the default
//! scaling rules filled into a `behavior` that is given) and its checks;
//! autoscaling/v1 is served by conversion (see [`to_v2`], [`to_v1`]).

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use serde_json::{Map, Value, json};

use super::{name_of, plain_hooks, status, validate_metadata};
use crate::admission::{Errors, Invalid};
use crate::registry::resources::{ALL_VERBS, Hooks, Resource, Subresource};

pub const GROUP: &str = "autoscaling";

/// The CPU utilization a HorizontalPodAutoscaler without metrics aims at.
pub const DEFAULT_CPU_UTILIZATION: i64 = 80;

const HPA_SUBRESOURCES: [Subresource; 1] = status("HorizontalPodAutoscaler");

pub(super) fn horizontal_pod_autoscalers() -> Resource {
    Resource {
        group: GROUP,
        version: "v2",
        kind: "HorizontalPodAutoscaler",
        plural: "horizontalpodautoscalers",
        singular: "horizontalpodautoscaler",
        namespaced: true,
        short_names: &["hpa"],
        categories: &["all"],
        verbs: ALL_VERBS,
        subresources: &HPA_SUBRESOURCES,
        status_subresource: true,
        field_selectors: &[],
        schema: "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler",
        returns_deleted: false,
        custom: None,
        hooks: Hooks {
            defaults,
            validate,
            ..plain_hooks::<HorizontalPodAutoscaler>()
        },
    }
}

fn cpu_utilization(percent: Value) -> Value {
    json!({"type": "Resource", "resource": {"name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": percent}}})
}

fn defaults(hpa: &mut Value) {
    let Some(spec) = hpa.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec.get("minReplicas").is_none_or(Value::is_null) {
        spec.insert("minReplicas".into(), json!(1));
    }
    if spec
        .get("metrics")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        spec.insert(
            "metrics".into(),
            json!([cpu_utilization(json!(DEFAULT_CPU_UTILIZATION))]),
        );
    }
    if let Some(behavior) = spec.get_mut("behavior").and_then(Value::as_object_mut) {
        for (direction, window) in [("scaleUp", 0), ("scaleDown", 300)] {
            let rules = behavior.entry(direction).or_insert_with(|| json!({}));
            if !rules.is_object() {
                *rules = json!({});
            }
            let rules = rules.as_object_mut().expect("made an object");
            rules
                .entry("stabilizationWindowSeconds")
                .or_insert(json!(window));
            rules.entry("selectPolicy").or_insert(json!("Max"));
            if rules
                .get("policies")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
            {
                let policies = match direction {
                    "scaleUp" => json!([
                        {"type": "Pods", "value": 4, "periodSeconds": 15},
                        {"type": "Percent", "value": 100, "periodSeconds": 15},
                    ]),
                    _ => json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
                };
                rules.insert("policies".into(), policies);
            }
        }
    }
}

fn int(value: Option<&Value>) -> Option<i64> {
    value.and_then(Value::as_i64)
}

fn validate(hpa: &Value, old: Option<&Value>) -> Result<(), Invalid> {
    validate_metadata(hpa, old)?;
    let mut errors = Errors::default();
    let spec = hpa.get("spec").cloned().unwrap_or(json!({}));
    let target = spec.get("scaleTargetRef").cloned().unwrap_or(json!({}));
    for field in ["kind", "name"] {
        if target
            .get(field)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            errors.push(
                format!("spec.scaleTargetRef.{field}"),
                "Required value".into(),
            );
        }
    }
    let min = int(spec.get("minReplicas")).unwrap_or(1);
    if min < 1 {
        errors.push(
            "spec.minReplicas",
            format!("Invalid value: {min}: must be greater than or equal to 1"),
        );
    }
    let max = int(spec.get("maxReplicas")).unwrap_or(0);
    if max < min {
        errors.push(
            "spec.maxReplicas",
            format!("Invalid value: {max}: must be greater than or equal to `minReplicas`"),
        );
    }
    let metrics = spec
        .get("metrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, metric) in metrics.iter().enumerate() {
        validate_metric(&mut errors, &format!("spec.metrics[{i}]"), metric);
    }
    if let Some(behavior) = spec.get("behavior") {
        for direction in ["scaleUp", "scaleDown"] {
            if let Some(rules) = behavior.get(direction) {
                validate_rules(&mut errors, &format!("spec.behavior.{direction}"), rules);
            }
        }
    }
    errors.into_result("HorizontalPodAutoscaler", name_of(hpa))
}

fn validate_metric(errors: &mut Errors, path: &str, metric: &Value) {
    let kind = metric.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "Resource" | "ContainerResource" => {}
        "Pods" | "Object" | "External" => {
            errors.push(
                format!("{path}.type"),
                format!("Unsupported value: {kind:?}: this server autoscales on resource metrics only: supported values: \"ContainerResource\", \"Resource\""),
            );
            return;
        }
        "" => {
            errors.push(
                format!("{path}.type"),
                "Required value: must specify a metric source type".into(),
            );
            return;
        }
        other => {
            errors.push(
                format!("{path}.type"),
                format!("Unsupported value: {other:?}: supported values: \"ContainerResource\", \"External\", \"Object\", \"Pods\", \"Resource\""),
            );
            return;
        }
    }
    let source = if kind == "Resource" {
        "resource"
    } else {
        "containerResource"
    };
    let path = format!("{path}.{source}");
    let Some(source) = metric.get(source) else {
        errors.push(
            path,
            "Required value: must populate information for the given metric source".into(),
        );
        return;
    };
    let name = source.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        errors.push(
            format!("{path}.name"),
            "Required value: must specify a resource name".into(),
        );
    }
    if kind == "ContainerResource"
        && source
            .get("container")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        errors.push(
            format!("{path}.container"),
            "Required value: must specify a container".into(),
        );
    }
    let target = source.get("target").cloned().unwrap_or(json!({}));
    match target.get("type").and_then(Value::as_str).unwrap_or("") {
        "Utilization" => match int(target.get("averageUtilization")) {
            Some(n) if n <= 0 => errors.push(
                format!("{path}.target.averageUtilization"),
                format!("Invalid value: {n}: must be greater than 0"),
            ),
            Some(_) => {}
            None => errors.push(
                format!("{path}.target.averageUtilization"),
                "Required value: must set either a target raw value or a target utilization".into(),
            ),
        },
        "AverageValue" => {
            if target.get("averageValue").is_none_or(Value::is_null) {
                errors.push(
                    format!("{path}.target.averageValue"),
                    "Required value: must set either a target raw value or a target utilization".into(),
                );
            }
        }
        "Value" => errors.push(
            format!("{path}.target.type"),
            "Invalid value: \"Value\": must be either Utilization or AverageValue".into(),
        ),
        "" => errors.push(format!("{path}.target.type"), "Required value: must specify a metric target type".into()),
        other => errors.push(
            format!("{path}.target.type"),
            format!("Unsupported value: {other:?}: supported values: \"AverageValue\", \"Utilization\", \"Value\""),
        ),
    }
}

fn validate_rules(errors: &mut Errors, path: &str, rules: &Value) {
    if let Some(window) = int(rules.get("stabilizationWindowSeconds"))
        && !(0..=3600).contains(&window)
    {
        errors.push(
            format!("{path}.stabilizationWindowSeconds"),
            format!("Invalid value: {window}: must be less than or equal to 3600 and greater than or equal to 0"),
        );
    }
    if let Some(select) = rules.get("selectPolicy").and_then(Value::as_str)
        && !matches!(select, "Max" | "Min" | "Disabled")
    {
        errors.push(
            format!("{path}.selectPolicy"),
            format!(
                "Unsupported value: {select:?}: supported values: \"Disabled\", \"Max\", \"Min\""
            ),
        );
    }
    let policies = rules
        .get("policies")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, policy) in policies.iter().enumerate() {
        let at = format!("{path}.policies[{i}]");
        let kind = policy.get("type").and_then(Value::as_str).unwrap_or("");
        if !matches!(kind, "Pods" | "Percent") {
            errors.push(
                format!("{at}.type"),
                format!("Unsupported value: {kind:?}: supported values: \"Percent\", \"Pods\""),
            );
        }
        let value = int(policy.get("value")).unwrap_or(0);
        if value <= 0 {
            errors.push(
                format!("{at}.value"),
                format!("Invalid value: {value}: must be greater than zero"),
            );
        }
        let period = int(policy.get("periodSeconds")).unwrap_or(0);
        if !(1..=1800).contains(&period) {
            errors.push(
                format!("{at}.periodSeconds"),
                format!("Invalid value: {period}: must be greater than zero and less than or equal to 1800"),
            );
        }
    }
}

/// Where autoscaling/v1 keeps what it has no field for, as the API server
/// keeps it, so a round trip through v1 loses nothing.
const METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/metrics";
const CURRENT_METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
const CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";
const BEHAVIOR_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/behavior";

/// A metric that is v1's `targetCPUUtilizationPercentage`.
fn cpu_percent_of(metric: &Value) -> Option<&Value> {
    (metric.get("type").and_then(Value::as_str) == Some("Resource")
        && metric.pointer("/resource/name").and_then(Value::as_str) == Some("cpu")
        && metric
            .pointer("/resource/target/type")
            .and_then(Value::as_str)
            == Some("Utilization"))
    .then(|| metric.pointer("/resource/target/averageUtilization"))
    .flatten()
}

fn annotations(object: &mut Value) -> &mut Map<String, Value> {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    let metadata = object["metadata"].as_object_mut().expect("made an object");
    let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
    if !annotations.is_object() {
        *annotations = json!({});
    }
    annotations.as_object_mut().expect("made an object")
}

/// Takes an annotation holding JSON off `object`.
fn take_annotation(object: &mut Value, key: &str) -> Option<Value> {
    let annotations = object
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)?;
    let text = annotations.remove(key)?;
    if annotations.is_empty()
        && let Some(metadata) = object["metadata"].as_object_mut()
    {
        metadata.remove("annotations");
    }
    serde_json::from_str(text.as_str()?).ok()
}

fn put_annotation(object: &mut Value, key: &str, value: &Value) {
    annotations(object).insert(key.into(), json!(value.to_string()));
}

/// An autoscaling/v1 object (or a patch of one) as autoscaling/v2.
pub fn to_v2(object: &mut Value) {
    if !object.is_object() {
        return;
    }
    let metrics = take_annotation(object, METRICS_ANNOTATION);
    let current = take_annotation(object, CURRENT_METRICS_ANNOTATION);
    let conditions = take_annotation(object, CONDITIONS_ANNOTATION);
    let behavior = take_annotation(object, BEHAVIOR_ANNOTATION);
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        let percent = spec.remove("targetCPUUtilizationPercentage");
        let mut all: Vec<Value> = metrics
            .and_then(|m| m.as_array().cloned())
            .unwrap_or_default();
        if let Some(percent) = percent.filter(|p| !p.is_null()) {
            all.insert(0, cpu_utilization(percent));
        }
        if !all.is_empty() {
            spec.insert("metrics".into(), Value::Array(all));
        }
        if let Some(behavior) = behavior {
            spec.insert("behavior".into(), behavior);
        }
    }
    if let Some(status) = object.get_mut("status").and_then(Value::as_object_mut) {
        let percent = status.remove("currentCPUUtilizationPercentage");
        let mut all: Vec<Value> = current
            .and_then(|m| m.as_array().cloned())
            .unwrap_or_default();
        if let Some(percent) = percent.filter(|p| !p.is_null()) {
            all.insert(
                0,
                json!({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": percent}}}),
            );
        }
        if !all.is_empty() {
            status.insert("currentMetrics".into(), Value::Array(all));
        }
        if let Some(conditions) = conditions {
            status.insert("conditions".into(), conditions);
        }
    }
}

/// An autoscaling/v2 object as autoscaling/v1: the CPU utilization target
/// in v1's field, everything else in the annotations the API server uses.
pub fn to_v1(object: &mut Value) {
    if !object.is_object() {
        return;
    }
    let mut keep: Vec<(&str, Value)> = Vec::new();
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        let metrics = spec
            .remove("metrics")
            .and_then(|m| m.as_array().cloned())
            .unwrap_or_default();
        let cpu = metrics.iter().position(|m| cpu_percent_of(m).is_some());
        let mut others = metrics.clone();
        if let Some(i) = cpu {
            let percent = cpu_percent_of(&metrics[i]).cloned().unwrap_or(Value::Null);
            spec.insert("targetCPUUtilizationPercentage".into(), percent);
            others.remove(i);
        }
        if !others.is_empty() {
            keep.push((METRICS_ANNOTATION, Value::Array(others)));
        }
        if let Some(behavior) = spec.remove("behavior") {
            keep.push((BEHAVIOR_ANNOTATION, behavior));
        }
    }
    if let Some(status) = object.get_mut("status").and_then(Value::as_object_mut) {
        let current = status
            .remove("currentMetrics")
            .and_then(|m| m.as_array().cloned())
            .unwrap_or_default();
        let cpu = current.iter().position(|m| {
            m.pointer("/resource/name").and_then(Value::as_str) == Some("cpu")
                && m.pointer("/resource/current/averageUtilization").is_some()
        });
        let mut others = current.clone();
        if let Some(i) = cpu {
            let percent = current[i]
                .pointer("/resource/current/averageUtilization")
                .cloned()
                .unwrap_or(Value::Null);
            status.insert("currentCPUUtilizationPercentage".into(), percent);
            others.remove(i);
        }
        if !others.is_empty() {
            keep.push((CURRENT_METRICS_ANNOTATION, Value::Array(others)));
        }
        if let Some(conditions) = status.remove("conditions") {
            keep.push((CONDITIONS_ANNOTATION, conditions));
        }
    }
    for (key, value) in keep {
        put_annotation(object, key, &value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_servers_defaults() {
        let mut hpa = json!({"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
            "maxReplicas": 5, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 10}}}});
        defaults(&mut hpa);
        assert_eq!(hpa["spec"]["minReplicas"], 1);
        assert_eq!(
            hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
        let behavior = &hpa["spec"]["behavior"];
        assert_eq!(behavior["scaleDown"]["stabilizationWindowSeconds"], 10);
        assert_eq!(behavior["scaleDown"]["policies"][0]["type"], "Percent");
        assert_eq!(behavior["scaleUp"]["stabilizationWindowSeconds"], 0);
        assert_eq!(behavior["scaleUp"]["policies"].as_array().unwrap().len(), 2);
        assert_eq!(behavior["scaleUp"]["selectPolicy"], "Max");
    }

    #[test]
    fn a_round_trip_through_v1_loses_nothing() {
        let v2 = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"maxReplicas": 5, "minReplicas": 1,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
                    cpu_utilization(json!(50)),
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 10}}},
            "status": {"currentReplicas": 2, "desiredReplicas": 2,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 75, "averageValue": "75m"}}}],
                "conditions": [{"type": "AbleToScale", "status": "True"}]}});
        let mut v1 = v2.clone();
        to_v1(&mut v1);
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
        assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 75);
        assert!(v1["spec"].get("metrics").is_none());
        assert!(v1["metadata"]["annotations"][METRICS_ANNOTATION].is_string());
        let mut back = v1.clone();
        to_v2(&mut back);
        assert_eq!(back["spec"]["behavior"], v2["spec"]["behavior"]);
        assert_eq!(back["status"]["conditions"], v2["status"]["conditions"]);
        assert!(back["metadata"].get("annotations").is_none());
        let metrics = back["spec"]["metrics"].as_array().unwrap();
        assert_eq!(metrics.len(), 2);
        assert!(metrics.contains(&v2["spec"]["metrics"][0]));
        assert!(metrics.contains(&v2["spec"]["metrics"][1]));
    }
}
