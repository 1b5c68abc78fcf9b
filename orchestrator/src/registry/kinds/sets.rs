//! The sets that place pods by node and by identity, apps/v1 DaemonSet and
//! StatefulSet, and the ControllerRevisions that keep their template
//! history: Kubernetes' defaults and the validation a user meets, with its
//! field paths and messages.

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, StatefulSet};
use serde_json::{Map, Value, json};

use super::apps::{
    check_selector, check_selector_kept, subresources, template_defaults, validate_replicas,
    validate_template,
};
use super::pod::set_default;
use super::{name_of, plain_hooks, status, validate_metadata};
use crate::admission::{Errors, Invalid};
use crate::registry::resources::{ALL_VERBS, Hooks, Resource, Subresource};

const DAEMON_SET_SUBRESOURCES: [Subresource; 1] = status("DaemonSet");
const STATEFUL_SET_SUBRESOURCES: [Subresource; 2] = subresources("StatefulSet");

pub(super) fn daemon_sets() -> Resource {
    Resource {
        group: "apps",
        version: "v1",
        kind: "DaemonSet",
        plural: "daemonsets",
        singular: "daemonset",
        namespaced: true,
        short_names: &["ds"],
        categories: &["all"],
        verbs: ALL_VERBS,
        subresources: &DAEMON_SET_SUBRESOURCES,
        status_subresource: true,
        field_selectors: &[],
        schema: "io.k8s.api.apps.v1.DaemonSet",
        returns_deleted: false,
        custom: None,
        hooks: Hooks {
            defaults: daemon_set_defaults,
            initial_status: |ds| {
                ds["status"] = json!({"currentNumberScheduled": 0, "numberMisscheduled": 0,
                    "desiredNumberScheduled": 0, "numberReady": 0});
            },
            validate: validate_daemon_set,
            ..plain_hooks::<DaemonSet>()
        },
    }
}

pub(super) fn stateful_sets() -> Resource {
    Resource {
        group: "apps",
        version: "v1",
        kind: "StatefulSet",
        plural: "statefulsets",
        singular: "statefulset",
        namespaced: true,
        short_names: &["sts"],
        categories: &["all"],
        verbs: ALL_VERBS,
        subresources: &STATEFUL_SET_SUBRESOURCES,
        status_subresource: true,
        field_selectors: &[],
        schema: "io.k8s.api.apps.v1.StatefulSet",
        returns_deleted: false,
        custom: None,
        hooks: Hooks {
            defaults: stateful_set_defaults,
            initial_status: |sts| sts["status"] = json!({"replicas": 0, "availableReplicas": 0}),
            validate: validate_stateful_set,
            ..plain_hooks::<StatefulSet>()
        },
    }
}

pub(super) fn controller_revisions() -> Resource {
    Resource {
        group: "apps",
        version: "v1",
        kind: "ControllerRevision",
        plural: "controllerrevisions",
        singular: "controllerrevision",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: ALL_VERBS,
        subresources: &[],
        status_subresource: false,
        field_selectors: &[],
        schema: "io.k8s.api.apps.v1.ControllerRevision",
        returns_deleted: false,
        custom: None,
        hooks: Hooks {
            validate: validate_revision,
            ..plain_hooks::<ControllerRevision>()
        },
    }
}

fn spec_mut(object: &mut Value) -> Option<&mut Map<String, Value>> {
    object.get_mut("spec").and_then(Value::as_object_mut)
}

/// `updateStrategy` defaults to RollingUpdate, whose `rollingUpdate`
/// gets the `rolling` defaults.
fn update_strategy_defaults(spec: &mut Map<String, Value>, rolling: &[(&str, Value)]) {
    set_default(spec, "updateStrategy", json!({}));
    let Some(strategy) = spec
        .get_mut("updateStrategy")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    set_default(strategy, "type", json!("RollingUpdate"));
    if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
        set_default(strategy, "rollingUpdate", json!({}));
        if let Some(update) = strategy
            .get_mut("rollingUpdate")
            .and_then(Value::as_object_mut)
        {
            for (field, value) in rolling {
                set_default(update, field, value.clone());
            }
        }
    }
}

fn daemon_set_defaults(ds: &mut Value) {
    let Some(spec) = spec_mut(ds) else { return };
    set_default(spec, "revisionHistoryLimit", json!(10));
    update_strategy_defaults(
        spec,
        &[("maxUnavailable", json!(1)), ("maxSurge", json!(0))],
    );
    template_defaults(spec);
}

fn stateful_set_defaults(sts: &mut Value) {
    let Some(spec) = spec_mut(sts) else { return };
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "podManagementPolicy", json!("OrderedReady"));
    update_strategy_defaults(spec, &[("partition", json!(0))]);
    set_default(spec, "persistentVolumeClaimRetentionPolicy", json!({}));
    if let Some(policy) = spec
        .get_mut("persistentVolumeClaimRetentionPolicy")
        .and_then(Value::as_object_mut)
    {
        set_default(policy, "whenDeleted", json!("Retain"));
        set_default(policy, "whenScaled", json!("Retain"));
    }
    for claim in spec
        .get_mut("volumeClaimTemplates")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        super::storage::pvc_defaults(claim);
        if let Some(claim) = claim.as_object_mut() {
            set_default(claim, "status", json!({}));
            if let Some(status) = claim.get_mut("status").and_then(Value::as_object_mut) {
                set_default(status, "phase", json!("Pending"));
            }
        }
    }
    template_defaults(spec);
}

fn check_history_limit(errors: &mut Errors, spec: &Value) {
    if let Some(limit) = spec.get("revisionHistoryLimit").and_then(Value::as_i64)
        && limit < 0
    {
        errors.push(
            "spec.revisionHistoryLimit",
            format!("Invalid value: {limit}: must be greater than or equal to 0"),
        );
    }
}

fn validate_daemon_set(ds: &Value, old: Option<&Value>) -> Result<(), Invalid> {
    validate_metadata(ds, old)?;
    let mut errors = Errors::default();
    let spec = ds.get("spec").cloned().unwrap_or_else(|| json!({}));
    check_selector(&mut errors, &spec, "daemonset");
    check_selector_kept(&mut errors, &spec, old);
    validate_template(&mut errors, &spec);
    check_history_limit(&mut errors, &spec);
    let strategy = spec.get("updateStrategy");
    match strategy
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("RollingUpdate")
    {
        "OnDelete" => {}
        "RollingUpdate" => {
            let rolling = strategy.and_then(|s| s.get("rollingUpdate"));
            let field = |name: &str| rolling.and_then(|r| r.get(name));
            let mut zero = [false, false];
            for (i, name) in ["maxUnavailable", "maxSurge"].into_iter().enumerate() {
                let path = format!("spec.updateStrategy.rollingUpdate.{name}");
                match super::scaled_value(field(name), 100, i == 1) {
                    Err(e) => errors.push(path, format!("Invalid value: {e}")),
                    Ok(v) if v < 0 => errors.push(
                        path,
                        format!("Invalid value: {v}: must be greater than or equal to 0"),
                    ),
                    Ok(v) => zero[i] = v == 0,
                }
            }
            if zero[0] && zero[1] {
                errors.push(
                    "spec.updateStrategy.rollingUpdate.maxUnavailable",
                    "Invalid value: 0: may not be 0 when `maxSurge` is 0".into(),
                );
            }
        }
        other => errors.unsupported(
            "spec.updateStrategy.type",
            other,
            &["OnDelete", "RollingUpdate"],
        ),
    }
    errors.into_result("DaemonSet", name_of(ds))
}

/// The StatefulSet spec fields an update may change.
const STATEFUL_SET_MUTABLE: [&str; 6] = [
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

fn validate_stateful_set(sts: &Value, old: Option<&Value>) -> Result<(), Invalid> {
    validate_metadata(sts, old)?;
    let mut errors = Errors::default();
    let spec = sts.get("spec").cloned().unwrap_or_else(|| json!({}));
    validate_replicas(&mut errors, &spec);
    check_selector(&mut errors, &spec, "statefulset");
    validate_template(&mut errors, &spec);
    check_history_limit(&mut errors, &spec);
    if spec
        .pointer("/template/spec/activeDeadlineSeconds")
        .is_some()
    {
        errors.push(
            "spec.template.spec.activeDeadlineSeconds",
            "Forbidden: activeDeadlineSeconds in StatefulSet is not Supported".into(),
        );
    }
    let policy = spec
        .get("podManagementPolicy")
        .and_then(Value::as_str)
        .unwrap_or("OrderedReady");
    if !matches!(policy, "OrderedReady" | "Parallel") {
        errors.unsupported(
            "spec.podManagementPolicy",
            policy,
            &["OrderedReady", "Parallel"],
        );
    }
    let strategy = spec.get("updateStrategy");
    let rolling = strategy.and_then(|s| s.get("rollingUpdate"));
    match strategy
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("RollingUpdate")
    {
        "OnDelete" if rolling.is_some() => errors.push(
            "spec.updateStrategy.rollingUpdate",
            "Invalid value: \"OnDelete\": only allowed for updateStrategy 'RollingUpdate'".into(),
        ),
        "OnDelete" => {}
        "RollingUpdate" => {
            if let Some(partition) = rolling
                .and_then(|r| r.get("partition"))
                .and_then(Value::as_i64)
                && partition < 0
            {
                errors.push(
                    "spec.updateStrategy.rollingUpdate.partition",
                    format!("Invalid value: {partition}: must be greater than or equal to 0"),
                );
            }
        }
        other => errors.unsupported(
            "spec.updateStrategy.type",
            other,
            &["OnDelete", "RollingUpdate"],
        ),
    }
    let retention = spec.get("persistentVolumeClaimRetentionPolicy");
    for field in ["whenDeleted", "whenScaled"] {
        if let Some(value) = retention.and_then(|r| r.get(field)).and_then(Value::as_str)
            && !matches!(value, "Retain" | "Delete")
        {
            errors.unsupported(
                format!("spec.persistentVolumeClaimRetentionPolicy.{field}"),
                value,
                &["Retain", "Delete"],
            );
        }
    }
    for (i, claim) in spec
        .get("volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if name_of(claim).is_empty() {
            errors.required(format!("spec.volumeClaimTemplates[{i}].metadata.name"));
        }
    }
    if let Some(old) = old {
        let fixed = |spec: Option<&Value>| -> Value {
            let mut spec = spec.cloned().unwrap_or_else(|| json!({}));
            if let Some(spec) = spec.as_object_mut() {
                for field in STATEFUL_SET_MUTABLE {
                    spec.remove(field);
                }
            }
            spec
        };
        if fixed(sts.get("spec")) != fixed(old.get("spec")) {
            errors.push(
                "spec",
                "Forbidden: updates to statefulset spec for fields other than 'replicas', \
                 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' \
                 and 'minReadySeconds' are forbidden"
                    .into(),
            );
        }
    }
    errors.into_result("StatefulSet", name_of(sts))
}

fn validate_revision(revision: &Value, old: Option<&Value>) -> Result<(), Invalid> {
    validate_metadata(revision, old)?;
    let mut errors = Errors::default();
    if let Some(number) = revision.get("revision").and_then(Value::as_i64)
        && number < 0
    {
        errors.push(
            "revision",
            format!("Invalid value: {number}: must be greater than or equal to 0"),
        );
    }
    if let Some(old) = old
        && old.get("data") != revision.get("data")
    {
        errors.push("data", "Forbidden: field is immutable".into());
    }
    errors.into_result("ControllerRevision", name_of(revision))
}

#[cfg(test)]
mod tests {
    use super::super::messages;
    use super::*;

    fn stateful_set(spec: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"}, "spec": spec})
    }

    fn template() -> Value {
        json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "toolbox"}]}})
    }

    #[test]
    fn stateful_set_defaults_follow_kubernetes() {
        let mut sts = stateful_set(json!({
            "selector": {"matchLabels": {"app": "web"}}, "template": template(),
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}));
        stateful_set_defaults(&mut sts);
        let spec = &sts["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(spec["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            spec["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            spec["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(
            spec["volumeClaimTemplates"][0]["spec"]["volumeMode"],
            "Filesystem"
        );
        assert_eq!(
            spec["volumeClaimTemplates"][0]["status"]["phase"],
            "Pending"
        );
        assert_eq!(spec["template"]["spec"]["restartPolicy"], "Always");
        assert!(validate_stateful_set(&sts, None).is_ok());
    }

    #[test]
    fn a_stateful_sets_identity_is_fixed() {
        let mut old = stateful_set(json!({
            "selector": {"matchLabels": {"app": "web"}}, "template": template(),
            "serviceName": "web"}));
        stateful_set_defaults(&mut old);
        let mut scaled = old.clone();
        scaled["spec"]["replicas"] = json!(5);
        scaled["spec"]["template"]["spec"]["containers"][0]["image"] = json!("toolbox:2");
        assert!(validate_stateful_set(&scaled, Some(&old)).is_ok());
        let mut renamed = old.clone();
        renamed["spec"]["serviceName"] = json!("other");
        assert_eq!(
            messages(validate_stateful_set(&renamed, Some(&old))),
            [
                "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', \
              'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' \
              and 'minReadySeconds' are forbidden"
            ]
        );
        let mut bad = old.clone();
        bad["spec"]["podManagementPolicy"] = json!("Sometimes");
        bad["spec"]["updateStrategy"] =
            json!({"type": "OnDelete", "rollingUpdate": {"partition": 1}});
        bad["spec"]["selector"] = json!({});
        assert_eq!(
            messages(validate_stateful_set(&bad, None)),
            [
                "spec.selector: Invalid value: v1.LabelSelector{}: empty selector is invalid for statefulset",
                "spec.podManagementPolicy: Unsupported value: \"Sometimes\": supported values: \"OrderedReady\", \"Parallel\"",
                "spec.updateStrategy.rollingUpdate: Invalid value: \"OnDelete\": only allowed for updateStrategy 'RollingUpdate'",
            ]
        );
    }

    #[test]
    fn daemon_set_defaults_and_checks() {
        let mut ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template()}});
        daemon_set_defaults(&mut ds);
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);
        assert!(validate_daemon_set(&ds, None).is_ok());
        let mut moved = ds.clone();
        moved["spec"]["selector"] = json!({"matchLabels": {"app": "web", "tier": "x"}});
        moved["spec"]["template"]["metadata"]["labels"]["tier"] = json!("x");
        moved["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = json!(0);
        assert_eq!(
            messages(validate_daemon_set(&moved, Some(&ds))),
            [
                "spec.selector: Invalid value: v1.LabelSelector{app=web,tier=x}: field is immutable",
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0",
            ]
        );
    }
}
