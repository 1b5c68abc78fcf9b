//! ResourceQuotas and LimitRanges: their quantities kept in the API
//! server's canonical forms, a LimitRange item's defaults filled from its
//! max and min, and Kubernetes' checks on both.

use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota};
use serde_json::{Value, json};

use super::{name_of, status, validate_metadata};
use crate::admission::{Errors, Invalid};
use crate::quantity::Quantity;
use crate::quota::{Amount, Amounts, amounts_of, to_value, written};
use crate::registry::metadata::text;
use crate::registry::resources::{
    ALL_VERBS, Hooks, Resource, Subresource, Typed, admit_nothing, allocate_nothing,
};

const QUOTA_SUBRESOURCES: [Subresource; 1] = status("ResourceQuota");

const SCOPES: [&str; 6] = [
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
];

/// The resources a scoped quota may constrain (pods' own).
const SCOPED_RESOURCES: [&str; 8] = [
    "pods",
    "count/pods",
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

const LIMIT_TYPES: [&str; 3] = ["Pod", "Container", "PersistentVolumeClaim"];

pub(super) fn resource_quotas() -> Resource {
    Resource {
        group: "",
        version: "v1",
        kind: "ResourceQuota",
        plural: "resourcequotas",
        singular: "resourcequota",
        namespaced: true,
        short_names: &["quota"],
        categories: &[],
        verbs: ALL_VERBS,
        subresources: &QUOTA_SUBRESOURCES,
        status_subresource: true,
        field_selectors: &[],
        schema: "io.k8s.api.core.v1.ResourceQuota",
        returns_deleted: false,
        custom: None,
        hooks: Hooks {
            defaults: |quota| {
                for pointer in ["/spec/hard", "/status/hard", "/status/used"] {
                    canonicalize(quota, pointer);
                }
            },
            initial_status: |_| {},
            validate: validate_quota,
            typed: Typed::of::<ResourceQuota>(),
            allocate: allocate_nothing,
            admit: admit_nothing,
        },
    }
}

pub(super) fn limit_ranges() -> Resource {
    Resource {
        group: "",
        version: "v1",
        kind: "LimitRange",
        plural: "limitranges",
        singular: "limitrange",
        namespaced: true,
        short_names: &["limits"],
        categories: &[],
        verbs: ALL_VERBS,
        subresources: &[],
        status_subresource: false,
        field_selectors: &[],
        schema: "io.k8s.api.core.v1.LimitRange",
        returns_deleted: false,
        custom: None,
        hooks: Hooks {
            defaults: default_limit_range,
            initial_status: |_| {},
            validate: validate_limit_range,
            typed: Typed::of::<LimitRange>(),
            allocate: allocate_nothing,
            admit: admit_nothing,
        },
    }
}

/// Rewrites the ResourceList at `pointer` in canonical forms (`0.5` as
/// `500m`, a number as a string); what does not parse is left for
/// validation to name.
fn canonicalize(object: &mut Value, pointer: &str) {
    let Some(list) = object.pointer_mut(pointer).and_then(Value::as_object_mut) else {
        return;
    };
    for value in list.values_mut() {
        if let Some(amount) = written(value).and_then(|text| Amount::parse(&text)) {
            *value = json!(amount.text());
        }
    }
}

/// Kubernetes' defaults for a Container item: a default limit from the
/// max, a default request from the default limit, else from the min.
fn default_limit_range(range: &mut Value) {
    let Some(items) = range
        .pointer_mut("/spec/limits")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for item in items {
        for field in [
            "max",
            "min",
            "default",
            "defaultRequest",
            "maxLimitRequestRatio",
        ] {
            canonicalize(item, &format!("/{field}"));
        }
        if text(item, "/type") != "Container" {
            continue;
        }
        let list = |item: &Value, field: &str| amounts_of(item.get(field));
        let mut default = list(item, "default");
        for (name, max) in list(item, "max") {
            default.entry(name).or_insert(max);
        }
        let mut request = list(item, "defaultRequest");
        for (name, limit) in default.iter().chain(list(item, "min").iter()) {
            request.entry(name.clone()).or_insert(*limit);
        }
        if !default.is_empty() {
            item["default"] = to_value(&default);
        }
        if !request.is_empty() {
            item["defaultRequest"] = to_value(&request);
        }
    }
}

/// Checks each quantity of the ResourceList at `field` of `object`:
/// parseable, not negative, whole where `integer` says so.
fn check_list(
    errors: &mut Errors,
    list: Option<&Value>,
    field: &str,
    integer: fn(&str) -> bool,
) -> Amounts {
    let mut amounts = Amounts::new();
    for (name, value) in list.and_then(Value::as_object).into_iter().flatten() {
        let path = format!("{field}[{name}]");
        let text = written(value).unwrap_or_else(|| value.to_string());
        let Some(amount) = Amount::parse(&text) else {
            errors.invalid(
                path,
                &text,
                "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            );
            continue;
        };
        if amount.value.is_negative() {
            errors.invalid(&path, &text, "must be greater than or equal to 0");
        } else if integer(name) && amount.value.ceil_millis() % 1000 != 0 {
            errors.invalid(&path, &text, "must be an integer");
        }
        amounts.insert(name.clone(), amount);
    }
    amounts
}

/// Resources counted in whole objects.
fn counted(name: &str) -> bool {
    name.starts_with("count/")
        || name.ends_with("/persistentvolumeclaims")
        || matches!(
            name,
            "pods"
                | "services"
                | "replicationcontrollers"
                | "resourcequotas"
                | "secrets"
                | "configmaps"
                | "persistentvolumeclaims"
                | "services.nodeports"
                | "services.loadbalancers"
        )
}

fn validate_quota(quota: &Value, old: Option<&Value>) -> Result<(), Invalid> {
    validate_metadata(quota, old)?;
    let mut errors = Errors::default();
    let hard = check_list(
        &mut errors,
        quota.pointer("/spec/hard"),
        "spec.hard",
        counted,
    );
    for pointer in ["/status/hard", "/status/used"] {
        let field = pointer.trim_start_matches('/').replace('/', ".");
        check_list(&mut errors, quota.pointer(pointer), &field, counted);
    }
    let scopes: Vec<&str> = quota
        .pointer("/spec/scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut selected: Vec<&str> = quota
        .pointer("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|expression| text(expression, "/scopeName"))
        .collect();
    for (i, scope) in scopes.iter().enumerate() {
        if !SCOPES.contains(scope) {
            errors.unsupported(format!("spec.scopes[{i}]"), scope, &SCOPES);
        }
    }
    for (i, expression) in quota
        .pointer("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let field = format!("spec.scopeSelector.matchExpressions[{i}]");
        let scope = text(expression, "/scopeName");
        if !SCOPES.contains(&scope) {
            errors.unsupported(format!("{field}.scopeName"), scope, &SCOPES);
        }
        let operator = text(expression, "/operator");
        let values = expression
            .get("values")
            .and_then(Value::as_array)
            .is_some_and(|v| !v.is_empty());
        match operator {
            "In" | "NotIn" if !values => errors.push(
                format!("{field}.values"),
                "Required value: must be at least one value when `operator` is 'In' or 'NotIn' for scope selector".into(),
            ),
            "Exists" | "DoesNotExist" if values => errors.push(
                format!("{field}.values"),
                "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist' for scope selector".into(),
            ),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errors.unsupported(
                format!("{field}.operator"),
                other,
                &["DoesNotExist", "Exists", "In", "NotIn"],
            ),
        }
    }
    selected.extend(scopes.iter());
    for (a, b) in [
        ("BestEffort", "NotBestEffort"),
        ("Terminating", "NotTerminating"),
    ] {
        if selected.contains(&a) && selected.contains(&b) {
            let list = format!(
                "[{}]",
                scopes
                    .iter()
                    .map(|s| format!("{s:?}"))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            errors.push(
                "spec.scopes",
                format!("Invalid value: {list}: conflicting scopes"),
            );
        }
    }
    if !selected.is_empty() {
        for name in hard.keys() {
            if !SCOPED_RESOURCES.contains(&name.as_str()) {
                errors.invalid(
                    format!("spec.hard[{name}]"),
                    name,
                    "unsupported scope applied to resource",
                );
            }
        }
    }
    errors.into_result("ResourceQuota", name_of(quota))
}

fn validate_limit_range(range: &Value, old: Option<&Value>) -> Result<(), Invalid> {
    validate_metadata(range, old)?;
    let mut errors = Errors::default();
    let items = range
        .pointer("/spec/limits")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, item) in items.iter().enumerate() {
        let field = format!("spec.limits[{i}]");
        let kind = text(item, "/type");
        if !LIMIT_TYPES.contains(&kind) {
            errors.unsupported(format!("{field}.type"), kind, &LIMIT_TYPES);
        }
        let list = |errors: &mut Errors, name: &str| {
            check_list(errors, item.get(name), &format!("{field}.{name}"), |_| {
                false
            })
        };
        let max = list(&mut errors, "max");
        let min = list(&mut errors, "min");
        let default = list(&mut errors, "default");
        let request = list(&mut errors, "defaultRequest");
        let ratio = list(&mut errors, "maxLimitRequestRatio");
        if kind == "Pod" {
            for (name, given) in [("default", &default), ("defaultRequest", &request)] {
                if !given.is_empty() {
                    errors.push(
                        format!("{field}.{name}"),
                        "Forbidden: may not be specified when `type` is 'Pod'".into(),
                    );
                }
            }
        }
        let text_of = |a: &Amount| a.text();
        for (name, low) in &min {
            if let Some(high) = max.get(name).filter(|high| low.value > high.value) {
                errors.invalid(
                    format!("{field}.min[{name}]"),
                    &text_of(low),
                    &format!(
                        "min value {} is greater than max value {}",
                        text_of(low),
                        text_of(high)
                    ),
                );
            }
        }
        for (name, given) in &request {
            if let Some(limit) = default.get(name).filter(|limit| given.value > limit.value) {
                errors.invalid(
                    format!("{field}.defaultRequest[{name}]"),
                    &text_of(given),
                    &format!(
                        "default request value {} is greater than default limit value {}",
                        text_of(given),
                        text_of(limit)
                    ),
                );
            }
            if let Some(low) = min.get(name).filter(|low| low.value > given.value) {
                errors.invalid(
                    format!("{field}.defaultRequest[{name}]"),
                    &text_of(given),
                    &format!(
                        "min value {} is greater than default request value {}",
                        text_of(low),
                        text_of(given)
                    ),
                );
            }
            if let Some(high) = max.get(name).filter(|high| given.value > high.value) {
                errors.invalid(
                    format!("{field}.defaultRequest[{name}]"),
                    &text_of(given),
                    &format!(
                        "default request value {} is greater than max value {}",
                        text_of(given),
                        text_of(high)
                    ),
                );
            }
        }
        for (name, given) in &default {
            if let Some(low) = min.get(name).filter(|low| low.value > given.value) {
                errors.invalid(
                    format!("{field}.default[{name}]"),
                    &text_of(given),
                    &format!(
                        "min value {} is greater than default value {}",
                        text_of(low),
                        text_of(given)
                    ),
                );
            }
            if let Some(high) = max.get(name).filter(|high| given.value > high.value) {
                errors.invalid(
                    format!("{field}.default[{name}]"),
                    &text_of(given),
                    &format!(
                        "default value {} is greater than max value {}",
                        text_of(given),
                        text_of(high)
                    ),
                );
            }
        }
        for (name, given) in &ratio {
            if given.value < Quantity::from_units(1) {
                errors.invalid(
                    format!("{field}.maxLimitRequestRatio[{name}]"),
                    &text_of(given),
                    &format!("ratio {} is less than 1", text_of(given)),
                );
            }
        }
    }
    errors.into_result("LimitRange", name_of(range))
}

#[cfg(test)]
mod tests {
    use super::super::messages;
    use super::*;

    #[test]
    fn quota_quantities_are_checked_and_kept_canonical() {
        let mut quota = json!({"metadata": {"name": "q"},
            "spec": {"hard": {"pods": 5, "requests.cpu": "0.5", "requests.memory": "1024m"}}});
        (resource_quotas().hooks.defaults)(&mut quota);
        assert_eq!(
            quota["spec"]["hard"],
            json!({"pods": "5", "requests.cpu": "500m", "requests.memory": "1024m"})
        );
        let bad = json!({"metadata": {"name": "q"},
            "spec": {"hard": {"pods": "1.5", "cpu": "-1", "services": "2"}, "scopes": ["BestEffort", "NotBestEffort"]}});
        assert_eq!(
            messages(validate_quota(&bad, None)),
            [
                "spec.hard[cpu]: Invalid value: \"-1\": must be greater than or equal to 0",
                "spec.hard[pods]: Invalid value: \"1.5\": must be an integer",
                "spec.scopes: Invalid value: [\"BestEffort\",\"NotBestEffort\"]: conflicting scopes",
                "spec.hard[services]: Invalid value: \"services\": unsupported scope applied to resource",
            ]
        );
    }

    #[test]
    fn a_container_item_defaults_from_its_max_and_min() {
        let mut range = json!({"metadata": {"name": "r"}, "spec": {"limits": [
            {"type": "Container", "max": {"cpu": "1"}, "min": {"memory": "64Mi"}}]}});
        default_limit_range(&mut range);
        let item = &range["spec"]["limits"][0];
        assert_eq!(item["default"], json!({"cpu": "1"}));
        assert_eq!(
            item["defaultRequest"],
            json!({"cpu": "1", "memory": "64Mi"})
        );
        let wrong = json!({"metadata": {"name": "r"}, "spec": {"limits": [
            {"type": "Container", "max": {"cpu": "1"}, "min": {"cpu": "2"}}]}});
        assert_eq!(
            messages(validate_limit_range(&wrong, None)),
            [
                "spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1"
            ]
        );
    }
}
