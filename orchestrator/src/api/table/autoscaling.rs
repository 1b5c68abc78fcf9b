//! Columns of HorizontalPodAutoscalers, as kubectl's printer shows them:
//! the target, each metric's current value against its target
//! (`cpu: 75%/50%`), the bounds and the replicas.

use serde_json::{Value, json};

use super::{column, s};

pub(super) fn columns(kind: &str, name: Value, age: Value) -> Option<Vec<Value>> {
    if kind != "HorizontalPodAutoscaler" {
        return None;
    }
    Some(vec![
        name,
        column(
            "Reference",
            "string",
            0,
            "Reference to the object the autoscaler scales",
        ),
        column(
            "Targets",
            "string",
            0,
            "The metrics and their current values against their targets",
        ),
        column("MinPods", "string", 0, "The lower limit of replicas"),
        column("MaxPods", "integer", 0, "The upper limit of replicas"),
        column("Replicas", "integer", 0, "Current number of replicas"),
        age,
    ])
}

pub(super) fn cells(kind: &str, hpa: &Value) -> Option<Vec<Value>> {
    if kind != "HorizontalPodAutoscaler" {
        return None;
    }
    let reference = format!(
        "{}/{}",
        s(hpa, "/spec/scaleTargetRef/kind"),
        s(hpa, "/spec/scaleTargetRef/name")
    );
    let min = hpa
        .pointer("/spec/minReplicas")
        .and_then(Value::as_i64)
        .map_or("<unset>".to_string(), |n| n.to_string());
    Some(vec![
        json!(s(hpa, "/metadata/name")),
        json!(reference),
        json!(targets(hpa)),
        json!(min),
        json!(
            hpa.pointer("/spec/maxReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(0)
        ),
        json!(
            hpa.pointer("/status/currentReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(0)
        ),
        super::age_cell(hpa),
    ])
}

/// At most two metrics, then how many more.
const SHOWN: usize = 2;

fn targets(hpa: &Value) -> String {
    let specs = hpa
        .pointer("/spec/metrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if specs.is_empty() {
        return "<none>".into();
    }
    let statuses = hpa
        .pointer("/status/currentMetrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let shown: Vec<String> = specs
        .iter()
        .enumerate()
        .take(SHOWN)
        .map(|(i, spec)| {
            let source = match s(spec, "/type") {
                "ContainerResource" => "containerResource",
                _ => "resource",
            };
            let status = statuses.get(i).and_then(|m| m.get(source));
            let target = spec
                .pointer(&format!("/{source}/target"))
                .cloned()
                .unwrap_or(json!({}));
            let name = s(spec, &format!("/{source}/name"));
            let (current, wanted) = match target.get("averageValue").and_then(Value::as_str) {
                Some(value) => (
                    status
                        .and_then(|m| m.pointer("/current/averageValue"))
                        .and_then(Value::as_str)
                        .map_or("<unknown>".to_string(), str::to_string),
                    value.to_string(),
                ),
                None => (
                    status
                        .and_then(|m| m.pointer("/current/averageUtilization"))
                        .and_then(Value::as_i64)
                        .map_or("<unknown>".to_string(), |p| format!("{p}%")),
                    target
                        .get("averageUtilization")
                        .and_then(Value::as_i64)
                        .map_or("<auto>".to_string(), |p| format!("{p}%")),
                ),
            };
            match source {
                "containerResource" => format!(
                    "{name} on {}: {current}/{wanted}",
                    s(spec, "/containerResource/container")
                ),
                _ => format!("{name}: {current}/{wanted}"),
            }
        })
        .collect();
    let more = specs.len().saturating_sub(SHOWN);
    match more {
        0 => shown.join(", "),
        n => format!("{} + {n} more...", shown.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_read_as_kubectl_prints_them() {
        let hpa = json!({"spec": {"metrics": [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
            {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 90}}},
        ]}, "status": {"currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 75, "averageValue": "75m"}}},
        ]}});
        assert_eq!(
            targets(&hpa),
            "cpu: 75%/50%, memory: <unknown>/100Mi + 1 more..."
        );
        assert_eq!(targets(&json!({"spec": {}})), "<none>");
    }
}
