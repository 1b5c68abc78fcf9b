//! Whether a pod may go to a node, by the node's schedulability, taints
//! and labels: the scheduler's NodeUnschedulable, TaintToleration and
//! NodeAffinity (`nodeSelector` and required node affinity) filters, in
//! that order, which the DaemonSet controller asks too.

use serde_json::Value;

use crate::registry::metadata::text;

/// Why a pod cannot go to a node, as the scheduler's filters report it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Misfit {
    /// `node(s) were unschedulable`
    Unschedulable,
    /// `node(s) didn't match Pod's node affinity/selector`
    Affinity,
    /// `node(s) had untolerated taint {key: value}`
    Taint(String),
}

impl Misfit {
    /// The reason as the scheduler counts it per node.
    pub fn reason(&self) -> String {
        match self {
            Misfit::Unschedulable => "node(s) were unschedulable".into(),
            Misfit::Affinity => "node(s) didn't match Pod's node affinity/selector".into(),
            Misfit::Taint(taint) => format!("node(s) had untolerated taint {taint}"),
        }
    }
}

/// The taint a cordoned node is treated as having.
const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// Checks `pod` against `node`: cordoned (unless the pod tolerates it, as
/// daemons do), its scheduling taints (`NoSchedule`, `NoExecute`), its
/// labels.
pub fn check(pod: &Value, node: &Value) -> Result<(), Misfit> {
    let tolerations = pod
        .pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let cordon = serde_json::json!({"key": UNSCHEDULABLE, "effect": "NoSchedule"});
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true)
        && !tolerations.iter().any(|t| tolerates(t, &cordon))
    {
        return Err(Misfit::Unschedulable);
    }
    for taint in node
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if !matches!(text(taint, "/effect"), "NoSchedule" | "NoExecute") {
            continue;
        }
        if !tolerations.iter().any(|t| tolerates(t, taint)) {
            return Err(Misfit::Taint(format!(
                "{{{}: {}}}",
                text(taint, "/key"),
                text(taint, "/value")
            )));
        }
    }
    if !matches_node(pod, node) {
        return Err(Misfit::Affinity);
    }
    Ok(())
}

/// Whether `toleration` tolerates `taint`.
pub fn tolerates(toleration: &Value, taint: &Value) -> bool {
    let effect = text(toleration, "/effect");
    if !effect.is_empty() && effect != text(taint, "/effect") {
        return false;
    }
    let key = text(toleration, "/key");
    let exists = text(toleration, "/operator") == "Exists";
    if key.is_empty() {
        return exists;
    }
    key == text(taint, "/key") && (exists || text(toleration, "/value") == text(taint, "/value"))
}

/// The pod's `nodeSelector` and required node affinity against the node.
fn matches_node(pod: &Value, node: &Value) -> bool {
    let labels = node.pointer("/metadata/labels");
    let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
    let selected = pod
        .pointer("/spec/nodeSelector")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .all(|(k, v)| label(k) == v.as_str());
    if !selected {
        return false;
    }
    let Some(terms) = pod
        .pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)
    else {
        return true;
    };
    let name = text(node, "/metadata/name");
    // Terms are ORed; a term's requirements are ANDed; a term with none
    // matches nothing.
    terms.iter().any(|term| {
        let expressions = term.get("matchExpressions").and_then(Value::as_array);
        let fields = term.get("matchFields").and_then(Value::as_array);
        if expressions.is_none_or(Vec::is_empty) && fields.is_none_or(Vec::is_empty) {
            return false;
        }
        expressions
            .into_iter()
            .flatten()
            .all(|r| requirement(r, label(text(r, "/key"))))
            && fields.into_iter().flatten().all(|r| {
                let value = (text(r, "/key") == "metadata.name").then_some(name);
                requirement(r, value)
            })
    })
}

/// One node selector requirement against the value it is about.
fn requirement(requirement: &Value, value: Option<&str>) -> bool {
    let values: Vec<&str> = requirement
        .get("values")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let number = |v: &str| v.parse::<i64>().ok();
    match text(requirement, "/operator") {
        "In" => value.is_some_and(|v| values.contains(&v)),
        "NotIn" => value.is_none_or(|v| !values.contains(&v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => {
            matches!((value.and_then(number), values.first().and_then(|v| number(v))), (Some(a), Some(b)) if a > b)
        }
        "Lt" => {
            matches!((value.and_then(number), values.first().and_then(|v| number(v))), (Some(a), Some(b)) if a < b)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node() -> Value {
        json!({"metadata": {"name": "edge-1", "labels": {"kubernetes.io/os": "linux", "zone": "a", "cores": "4"}},
            "spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"},
                                {"key": "soft", "effect": "PreferNoSchedule"}]}})
    }

    fn pod(spec: Value) -> Value {
        json!({"spec": spec})
    }

    const TOLERATE: &str = "dedicated";

    #[test]
    fn selectors_affinity_and_fields() {
        let tolerating = json!([{"key": TOLERATE, "operator": "Exists"}]);
        let fits = |mut spec: Value| {
            spec["tolerations"] = tolerating.clone();
            check(&pod(spec), &node())
        };
        assert_eq!(fits(json!({"nodeSelector": {"zone": "a"}})), Ok(()));
        assert_eq!(
            fits(json!({"nodeSelector": {"zone": "b"}})),
            Err(Misfit::Affinity)
        );
        let affinity = |terms: Value| json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}});
        assert_eq!(
            fits(affinity(
                json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["edge-1"]}]}])
            )),
            Ok(())
        );
        assert_eq!(
            fits(affinity(
                json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["edge-2"]}]}])
            )),
            Err(Misfit::Affinity)
        );
        // Terms are ORed, requirements ANDed.
        assert_eq!(
            fits(affinity(json!([
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["2"]},
                                      {"key": "gpu", "operator": "DoesNotExist"}]}
            ]))),
            Ok(())
        );
        assert_eq!(
            fits(affinity(json!([
                {"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["2"]}]}
            ]))),
            Err(Misfit::Affinity)
        );
        assert_eq!(fits(affinity(json!([{}]))), Err(Misfit::Affinity));
    }

    #[test]
    fn cordoned_nodes_take_only_pods_that_tolerate_it() {
        let cordoned = json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}});
        assert_eq!(
            check(&pod(json!({})), &cordoned),
            Err(Misfit::Unschedulable)
        );
        assert_eq!(Misfit::Unschedulable.reason(), "node(s) were unschedulable");
        let daemon = pod(json!({"tolerations": [
            {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}));
        assert_eq!(check(&daemon, &cordoned), Ok(()));
    }

    #[test]
    fn scheduling_taints_need_a_toleration() {
        assert_eq!(
            check(&pod(json!({})), &node()),
            Err(Misfit::Taint("{dedicated: db}".into()))
        );
        assert_eq!(
            Misfit::Taint("{dedicated: db}".into()).reason(),
            "node(s) had untolerated taint {dedicated: db}"
        );
        for toleration in [
            json!({"key": "dedicated", "operator": "Equal", "value": "db"}),
            json!({"key": "dedicated", "value": "db", "effect": "NoSchedule"}),
            json!({"operator": "Exists"}),
        ] {
            assert_eq!(
                check(&pod(json!({"tolerations": [toleration]})), &node()),
                Ok(()),
                "{toleration}"
            );
        }
        for toleration in [
            json!({"key": "dedicated", "value": "web"}),
            json!({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}),
        ] {
            assert!(
                check(&pod(json!({"tolerations": [toleration]})), &node()).is_err(),
                "{toleration}"
            );
        }
    }
}
