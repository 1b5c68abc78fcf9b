//! The replicated workloads, apps/v1 ReplicaSet and Deployment and the
//! core ReplicationController: Kubernetes' defaults and the validation a
//! user meets first (selector, template labels, replicas, strategy), with
//! its field paths and messages.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::ReplicationController;
use serde_json::{Map, Value, json};

use super::pod::{self, set_default};
use super::{name_of, validate_metadata};
use crate::admission::{Errors, Invalid};
use crate::registry::resources::{
    ALL_VERBS, Hooks, Resource, Subresource, Typed, admit_nothing, allocate_nothing,
};
use crate::registry::selectors::{LabelSelector, format_selector};

pub(super) const fn subresources(kind: &'static str) -> [Subresource; 2] {
    [
        Subresource {
            name: "status",
            kind,
            group_version: None,
            verbs: &["get", "patch", "update"],
        },
        Subresource {
            name: "scale",
            kind: "Scale",
            group_version: Some(("autoscaling", "v1")),
            verbs: &["get", "patch", "update"],
        },
    ]
}

const DEPLOYMENT_SUBRESOURCES: [Subresource; 2] = subresources("Deployment");
const REPLICATION_CONTROLLER_SUBRESOURCES: [Subresource; 2] = subresources("ReplicationController");
const REPLICASET_SUBRESOURCES: [Subresource; 2] = subresources("ReplicaSet");

pub(super) fn deployments() -> Resource {
    Resource {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        singular: "deployment",
        namespaced: true,
        short_names: &["deploy"],
        categories: &["all"],
        verbs: ALL_VERBS,
        subresources: &DEPLOYMENT_SUBRESOURCES,
        status_subresource: true,
        field_selectors: &[],
        schema: "io.k8s.api.apps.v1.Deployment",
        returns_deleted: false,
        custom: None,
        hooks: Hooks {
            defaults: deployment_defaults,
            initial_status: |_| {},
            validate: |object, old| validate(object, old, true),
            typed: Typed::of::<Deployment>(),
            allocate: allocate_nothing,
            admit: admit_nothing,
        },
    }
}

pub(super) fn replica_sets() -> Resource {
    Resource {
        group: "apps",
        version: "v1",
        kind: "ReplicaSet",
        plural: "replicasets",
        singular: "replicaset",
        namespaced: true,
        short_names: &["rs"],
        categories: &["all"],
        verbs: ALL_VERBS,
        subresources: &REPLICASET_SUBRESOURCES,
        status_subresource: true,
        field_selectors: &[],
        schema: "io.k8s.api.apps.v1.ReplicaSet",
        returns_deleted: false,
        custom: None,
        hooks: Hooks {
            defaults: replica_set_defaults,
            initial_status: |rs| rs["status"] = json!({"replicas": 0}),
            validate: |object, old| validate(object, old, false),
            typed: Typed::of::<ReplicaSet>(),
            allocate: allocate_nothing,
            admit: admit_nothing,
        },
    }
}

pub(super) fn replication_controllers() -> Resource {
    Resource {
        group: "",
        version: "v1",
        kind: "ReplicationController",
        plural: "replicationcontrollers",
        singular: "replicationcontroller",
        namespaced: true,
        short_names: &["rc"],
        categories: &["all"],
        verbs: ALL_VERBS,
        subresources: &REPLICATION_CONTROLLER_SUBRESOURCES,
        status_subresource: true,
        field_selectors: &["status.replicas"],
        schema: "io.k8s.api.core.v1.ReplicationController",
        returns_deleted: false,
        custom: None,
        hooks: Hooks {
            defaults: replication_controller_defaults,
            initial_status: |rc| rc["status"] = json!({"replicas": 0}),
            validate: validate_replication_controller,
            typed: Typed::of::<ReplicationController>(),
            allocate: allocate_nothing,
            admit: admit_nothing,
        },
    }
}

/// Kubernetes' ReplicationController defaults: the selector and the
/// controller's labels are the template's labels when not given.
fn replication_controller_defaults(rc: &mut Value) {
    let template_labels = rc
        .pointer("/spec/template/metadata/labels")
        .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
        .cloned();
    if let Some(labels) = template_labels {
        if let Some(spec) = rc.get_mut("spec").and_then(Value::as_object_mut) {
            let empty = spec
                .get("selector")
                .and_then(Value::as_object)
                .is_none_or(Map::is_empty);
            if empty {
                spec.insert("selector".into(), labels.clone());
            }
        }
        if let Some(metadata) = rc.get_mut("metadata").and_then(Value::as_object_mut) {
            let empty = metadata
                .get("labels")
                .and_then(Value::as_object)
                .is_none_or(Map::is_empty);
            if empty {
                metadata.insert("labels".into(), labels);
            }
        }
    }
    replica_set_defaults(rc);
}

fn validate_replication_controller(rc: &Value, old: Option<&Value>) -> Result<(), Invalid> {
    validate_metadata(rc, old)?;
    let mut errors = Errors::default();
    let spec = rc.get("spec").cloned().unwrap_or_else(|| json!({}));
    validate_replicas(&mut errors, &spec);
    let selector = spec.get("selector").and_then(Value::as_object);
    let template_labels = spec.pointer("/template/metadata/labels");
    match selector {
        None => errors.required("spec.selector"),
        Some(selector) if selector.is_empty() => errors.required("spec.selector"),
        Some(selector) => {
            let labels = template_labels.and_then(Value::as_object);
            let matches = selector
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
            if !matches {
                errors.push(
                    "spec.template.metadata.labels",
                    format!(
                        "Invalid value: {}: selector does not match labels in template",
                        labels_value(template_labels)
                    ),
                );
            }
        }
    }
    validate_template(&mut errors, &spec);
    errors.into_result("ReplicationController", name_of(rc))
}

/// Pod defaults applied inside `spec.template`, so templates compare
/// equal after defaulting whoever wrote them.
pub(super) fn template_defaults(spec: &mut Map<String, Value>) {
    if let Some(template) = spec.get_mut("template") {
        pod::defaults(template);
    }
}

fn replica_set_defaults(rs: &mut Value) {
    let Some(spec) = rs.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    template_defaults(spec);
}

fn deployment_defaults(deployment: &mut Value) {
    let Some(spec) = deployment.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    set_default(spec, "strategy", json!({}));
    if let Some(strategy) = spec.get_mut("strategy").and_then(Value::as_object_mut) {
        set_default(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            set_default(strategy, "rollingUpdate", json!({}));
            if let Some(rolling) = strategy
                .get_mut("rollingUpdate")
                .and_then(Value::as_object_mut)
            {
                set_default(rolling, "maxUnavailable", json!("25%"));
                set_default(rolling, "maxSurge", json!("25%"));
            }
        }
    }
    template_defaults(spec);
}

/// An int-or-percent (`maxSurge: 1`, `maxUnavailable: "25%"`) of `total`,
/// rounded up or down as Kubernetes does for each field.
pub fn scaled_value(value: Option<&Value>, total: i64, round_up: bool) -> Result<i64, String> {
    match value {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| format!("invalid value for IntOrString: {n}")),
        Some(Value::String(text)) => {
            let percent = text
                .strip_suffix('%')
                .and_then(|p| p.parse::<i64>().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid type: string is not a percentage: {text:?}"))?;
            let scaled = percent * total;
            Ok(if round_up {
                (scaled + 99).div_euclid(100)
            } else {
                scaled.div_euclid(100)
            })
        }
        Some(other) => Err(format!("invalid value for IntOrString: {other}")),
    }
}

fn validate(object: &Value, old: Option<&Value>, is_deployment: bool) -> Result<(), Invalid> {
    validate_metadata(object, old)?;
    let kind = if is_deployment {
        "Deployment"
    } else {
        "ReplicaSet"
    };
    let mut errors = Errors::default();
    let spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
    validate_replicas(&mut errors, &spec);
    check_selector(&mut errors, &spec, "deployment");
    check_selector_kept(&mut errors, &spec, old);
    validate_template(&mut errors, &spec);
    if is_deployment {
        validate_strategy(&mut errors, &spec);
        if let Some(limit) = spec.get("revisionHistoryLimit").and_then(Value::as_i64)
            && limit < 0
        {
            errors.push(
                "spec.revisionHistoryLimit",
                format!("Invalid value: {limit}: must be greater than or equal to 0"),
            );
        }
    }
    errors.into_result(kind, name_of(object))
}

/// A workload's selector: given, not empty (`what` names the kind in the
/// message, as the API server's differ), and matching its template.
pub(super) fn check_selector(errors: &mut Errors, spec: &Value, what: &str) {
    let selector = spec.get("selector");
    let template_labels = spec.pointer("/template/metadata/labels");
    match selector {
        None | Some(Value::Null) => errors.required("spec.selector"),
        Some(selector) => match LabelSelector::from_object(Some(selector)) {
            Err(e) => errors.push("spec.selector", format!("Invalid value: {e}")),
            Ok(parsed) if parsed.is_empty() => errors.push(
                "spec.selector",
                format!(
                    "Invalid value: {}: empty selector is invalid for {what}",
                    selector_value(selector)
                ),
            ),
            Ok(parsed) => {
                let as_pod =
                    json!({"metadata": {"labels": template_labels.cloned().unwrap_or(json!({}))}});
                if !parsed.matches(&as_pod) {
                    errors.push(
                        "spec.template.metadata.labels",
                        format!(
                            "Invalid value: {}: `selector` does not match template `labels`",
                            labels_value(template_labels)
                        ),
                    );
                }
            }
        },
    }
}

/// An update keeps the workload's selector.
pub(super) fn check_selector_kept(errors: &mut Errors, spec: &Value, old: Option<&Value>) {
    if let Some(old) = old
        && old.pointer("/spec/selector") != spec.get("selector")
    {
        errors.push(
            "spec.selector",
            format!(
                "Invalid value: {}: field is immutable",
                selector_value(spec.get("selector").unwrap_or(&Value::Null))
            ),
        );
    }
}

pub(super) fn validate_replicas(errors: &mut Errors, spec: &Value) {
    if let Some(replicas) = spec.get("replicas").and_then(Value::as_i64)
        && replicas < 0
    {
        errors.push(
            "spec.replicas",
            format!("Invalid value: {replicas}: must be greater than or equal to 0"),
        );
    }
}

/// A replicated template: containers, and pods that always restart.
pub(super) fn validate_template(errors: &mut Errors, spec: &Value) {
    let containers = spec
        .pointer("/template/spec/containers")
        .and_then(Value::as_array);
    if containers.is_none_or(Vec::is_empty) {
        errors.required("spec.template.spec.containers");
    }
    if let Some(policy) = spec
        .pointer("/template/spec/restartPolicy")
        .and_then(Value::as_str)
        && policy != "Always"
    {
        errors.unsupported("spec.template.spec.restartPolicy", policy, &["Always"]);
    }
}

fn validate_strategy(errors: &mut Errors, spec: &Value) {
    let strategy = spec.get("strategy");
    let kind = strategy
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("RollingUpdate");
    match kind {
        "Recreate" => {
            if strategy.and_then(|s| s.get("rollingUpdate")).is_some() {
                errors.push(
                    "spec.strategy.rollingUpdate",
                    "Forbidden: may not be specified when strategy `type` is 'Recreate'".into(),
                );
            }
        }
        "RollingUpdate" => {
            let rolling = strategy.and_then(|s| s.get("rollingUpdate"));
            let field = |name: &str| rolling.and_then(|r| r.get(name));
            let mut zero = [false, false];
            for (i, name) in ["maxUnavailable", "maxSurge"].into_iter().enumerate() {
                let path = format!("spec.strategy.rollingUpdate.{name}");
                match scaled_value(field(name), 100, i == 1) {
                    Err(e) => errors.push(path, format!("Invalid value: {e}")),
                    Ok(v) if v < 0 => errors.push(
                        path,
                        format!("Invalid value: {v}: must be greater than or equal to 0"),
                    ),
                    Ok(v) if i == 0 && v > 100 => errors.push(
                        path,
                        format!(
                            "Invalid value: {:?}: must not be greater than 100%",
                            field(name).map(Value::to_string).unwrap_or_default()
                        ),
                    ),
                    Ok(v) => zero[i] = v == 0,
                }
            }
            if zero[0] && zero[1] {
                errors.push(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    "Invalid value: 0: may not be 0 when `maxSurge` is 0".into(),
                );
            }
        }
        other => errors.unsupported("spec.strategy.type", other, &["Recreate", "RollingUpdate"]),
    }
}

/// A selector as Go prints a LabelSelector in errors.
pub(super) fn selector_value(selector: &Value) -> String {
    format!(
        "v1.LabelSelector{{{}}}",
        format_selector(Some(selector), "")
    )
}

/// Template labels as Go prints a map in errors.
fn labels_value(labels: Option<&Value>) -> String {
    let pairs: Vec<String> = labels
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k:?}:{:?}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    format!("map[string]string{{{}}}", pairs.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(spec: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": spec})
    }

    #[test]
    fn deployment_defaults_follow_kubernetes() {
        let mut d = deployment(json!({
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "echo-hostname:1.0.1"}]}}}));
        deployment_defaults(&mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
        );
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert!(validate(&d, None, true).is_ok());
    }

    #[test]
    fn empty_strings_from_protobuf_clients_are_defaulted() {
        // `kubectl create deployment` sends every zero value.
        let mut d = deployment(json!({
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": ""},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"restartPolicy": "", "dnsPolicy": "",
                    "containers": [{"name": "c", "image": "x:1", "imagePullPolicy": ""}]}}}));
        deployment_defaults(&mut d);
        assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(d["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert!(validate(&d, None, true).is_ok());
    }

    #[test]
    fn validation_names_the_field() {
        let d = deployment(json!({
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "other"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]}},
            "replicas": -1,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}}));
        let message = validate(&d, None, true).unwrap_err().to_string();
        assert!(
            message
                .contains("spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
            "{message}"
        );
        assert!(message.contains("spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`"), "{message}");
        assert!(message.contains("spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"), "{message}");
        let no_selector = deployment(json!({"template": {"spec": {"containers": []}}}));
        let message = validate(&no_selector, None, true).unwrap_err().to_string();
        assert!(
            message.contains("spec.selector: Required value"),
            "{message}"
        );
        assert!(
            message.contains("spec.template.spec.containers: Required value"),
            "{message}"
        );
    }

    #[test]
    fn the_selector_is_immutable() {
        let old = deployment(json!({
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web", "v": "2"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]}}}));
        let mut new = old.clone();
        new["spec"]["selector"] = json!({"matchLabels": {"app": "web", "v": "2"}});
        let message = validate(&new, Some(&old), true).unwrap_err().to_string();
        assert!(
            message.contains(
                "spec.selector: Invalid value: v1.LabelSelector{app=web,v=2}: field is immutable"
            ),
            "{message}"
        );
    }

    #[test]
    fn int_or_percent_rounds_as_kubernetes_does() {
        assert_eq!(scaled_value(Some(&json!("25%")), 3, true), Ok(1));
        assert_eq!(scaled_value(Some(&json!("25%")), 3, false), Ok(0));
        assert_eq!(scaled_value(Some(&json!("25%")), 10, true), Ok(3));
        assert_eq!(scaled_value(Some(&json!("25%")), 10, false), Ok(2));
        assert_eq!(scaled_value(Some(&json!(2)), 10, false), Ok(2));
        assert!(scaled_value(Some(&json!("x")), 10, false).is_err());
    }
}
