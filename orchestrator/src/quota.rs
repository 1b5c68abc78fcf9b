//! Resource quota accounting as Kubernetes' quota evaluators count it:
//! what an object uses (`pods`, `requests.cpu`, `services.nodeports`,
//! `count/deployments.apps`, …), which quotas it falls under (their
//! resources and scopes), and the amounts written back in the API
//! server's forms. Admission charges a namespace's quotas with it; the
//! quota controller sums it over the namespace.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::quantity::{Format, Quantity};
use crate::registry::metadata::text;

/// A quantity with the format it is written back in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount {
    pub value: Quantity,
    pub format: Format,
}

impl Amount {
    pub fn parse(text: &str) -> Option<Amount> {
        Some(Amount {
            value: Quantity::parse(text).ok()?,
            format: Format::of(text),
        })
    }

    /// A count of objects.
    pub fn count(n: i128) -> Amount {
        Amount {
            value: Quantity::from_units(n),
            format: Format::DecimalSi,
        }
    }

    /// The sum, written as the first non-zero addend is (Kubernetes'
    /// `Quantity.Add`).
    pub fn plus(self, other: Amount) -> Amount {
        Amount {
            value: self.value.plus(other.value),
            format: if self.value.is_zero() {
                other.format
            } else {
                self.format
            },
        }
    }

    pub fn text(&self) -> String {
        self.value.canonical(self.format)
    }
}

/// Amounts by resource name.
pub type Amounts = BTreeMap<String, Amount>;

/// A ResourceList (`{"cpu": "500m", "pods": 5, …}`); entries that are
/// not quantities are left out.
pub fn amounts_of(list: Option<&Value>) -> Amounts {
    list.and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| Some((name.clone(), Amount::parse(&written(value)?)?)))
        .collect()
}

/// A ResourceList value as written: a string, or a number (`pods: 5`).
pub fn written(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Amounts as a ResourceList.
pub fn to_value(amounts: &Amounts) -> Value {
    Value::Object(
        amounts
            .iter()
            .map(|(name, amount)| (name.clone(), Value::String(amount.text())))
            .collect::<Map<String, Value>>(),
    )
}

/// Adds `more` into `total`.
pub fn add(total: &mut Amounts, more: &Amounts) {
    for (name, amount) in more {
        let sum = match total.get(name) {
            Some(have) => have.plus(*amount),
            None => *amount,
        };
        total.insert(name.clone(), sum);
    }
}

/// `name=amount` pairs in name order, as quota messages list them.
pub fn pretty(amounts: &Amounts) -> String {
    amounts
        .iter()
        .map(|(name, amount)| format!("{name}={}", amount.text()))
        .collect::<Vec<_>>()
        .join(",")
}

/// The object-count resource of a kind: `count/pods`,
/// `count/deployments.apps`.
pub fn count_name(plural: &str, group: &str) -> String {
    if group.is_empty() {
        format!("count/{plural}")
    } else {
        format!("count/{plural}.{group}")
    }
}

/// The core kinds that also have a count under their own name.
const LEGACY_COUNTS: [&str; 7] = [
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
];

const STORAGE_CLASS: &str = ".storageclass.storage.k8s.io/";

/// The compute resources a pod's requests and limits count towards.
const POD_COMPUTE: [&str; 9] = [
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
];

/// Whether a quota on `name` concerns objects of `plural` in `group`.
pub fn tracks(plural: &str, group: &str, name: &str) -> bool {
    if name == count_name(plural, group) {
        return true;
    }
    if !group.is_empty() {
        return false;
    }
    match plural {
        "pods" => {
            name == "pods"
                || POD_COMPUTE.contains(&name)
                || name.starts_with("hugepages-")
                || name.starts_with("requests.hugepages-")
                || (name.starts_with("requests.") && name.contains('/'))
        }
        "services" => matches!(
            name,
            "services" | "services.nodeports" | "services.loadbalancers"
        ),
        "persistentvolumeclaims" => {
            matches!(name, "persistentvolumeclaims" | "requests.storage")
                || name.contains(STORAGE_CLASS)
        }
        other => LEGACY_COUNTS.contains(&other) && name == other,
    }
}

/// What `object` (of `plural` in `group`) uses of every quota resource it
/// counts towards.
pub fn usage(plural: &str, group: &str, object: &Value) -> Amounts {
    let mut used = Amounts::new();
    used.insert(count_name(plural, group), Amount::count(1));
    if !group.is_empty() {
        return used;
    }
    match plural {
        "pods" if charged(object) => add(&mut used, &pod_compute(object)),
        "pods" => {}
        "services" => service_usage(object, &mut used),
        "persistentvolumeclaims" => claim_usage(object, &mut used),
        other if LEGACY_COUNTS.contains(&other) => {
            used.insert(other.to_string(), Amount::count(1));
        }
        _ => {}
    }
    used
}

/// Whether a pod still counts towards compute quota: not once it has
/// finished, nor once its deletion's grace period is over.
fn charged(pod: &Value) -> bool {
    if matches!(text(pod, "/status/phase"), "Succeeded" | "Failed") {
        return false;
    }
    let deleted = text(pod, "/metadata/deletionTimestamp");
    if deleted.is_empty() {
        return true;
    }
    let grace = pod
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    match deleted.parse::<jiff::Timestamp>() {
        Ok(at) => jiff::Timestamp::now().as_second() <= at.as_second() + grace,
        Err(_) => true,
    }
}

/// A pod's compute usage: the sum of its containers' requests and limits
/// (or the largest init container's, if more), plus its overhead.
fn pod_compute(pod: &Value) -> Amounts {
    let containers = |field: &str| -> Vec<&Value> {
        pod.pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .map(|list| list.iter().collect())
            .unwrap_or_default()
    };
    let overhead = amounts_of(pod.pointer("/spec/overhead"));
    let total = |kind: &str| -> Amounts {
        let mut sum = Amounts::new();
        for container in containers("containers") {
            add(
                &mut sum,
                &amounts_of(container.pointer(&format!("/resources/{kind}"))),
            );
        }
        for init in containers("initContainers") {
            for (name, amount) in amounts_of(init.pointer(&format!("/resources/{kind}"))) {
                if sum.get(&name).is_none_or(|have| have.value < amount.value) {
                    sum.insert(name, amount);
                }
            }
        }
        add(&mut sum, &overhead);
        sum
    };
    let mut used = compute_usage(&total("requests"), &total("limits"));
    used.insert("pods".into(), Amount::count(1));
    used
}

/// The quota resources requests and limits count towards
/// (`requests.cpu` and `cpu` for a cpu request, …).
pub fn compute_usage(requests: &Amounts, limits: &Amounts) -> Amounts {
    let mut used = Amounts::new();
    for resource in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(request) = requests.get(resource) {
            used.insert(resource.into(), *request);
            used.insert(format!("requests.{resource}"), *request);
        }
        if let Some(limit) = limits.get(resource) {
            used.insert(format!("limits.{resource}"), *limit);
        }
    }
    for (name, request) in requests {
        if name.starts_with("hugepages-") {
            used.insert(name.clone(), *request);
            used.insert(format!("requests.{name}"), *request);
        } else if name.contains('/') && !name.starts_with("kubernetes.io/") {
            used.insert(format!("requests.{name}"), *request);
        }
    }
    used
}

fn service_usage(service: &Value, used: &mut Amounts) {
    used.insert("services".into(), Amount::count(1));
    let ports = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let (node_ports, balancers) = match text(service, "/spec/type") {
        "NodePort" => (ports.len(), 0),
        "LoadBalancer" => {
            let allocated = service
                .pointer("/spec/allocateLoadBalancerNodePorts")
                .and_then(Value::as_bool)
                != Some(false);
            let node_ports = if allocated {
                ports.len()
            } else {
                ports
                    .iter()
                    .filter(|p| p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0)
                    .count()
            };
            (node_ports, 1)
        }
        _ => (0, 0),
    };
    used.insert(
        "services.nodeports".into(),
        Amount::count(node_ports as i128),
    );
    used.insert("services.loadbalancers".into(), Amount::count(balancers));
}

fn claim_usage(claim: &Value, used: &mut Amounts) {
    used.insert("persistentvolumeclaims".into(), Amount::count(1));
    let class = match text(claim, "/spec/storageClassName") {
        "" => text(
            claim,
            "/metadata/annotations/volume.beta.kubernetes.io~1storage-class",
        ),
        class => class,
    };
    if !class.is_empty() {
        used.insert(
            format!("{class}{STORAGE_CLASS}persistentvolumeclaims"),
            Amount::count(1),
        );
    }
    let requested = [
        "/spec/resources/requests/storage",
        "/status/allocatedResources/storage",
    ]
    .into_iter()
    .filter_map(|pointer| Amount::parse(claim.pointer(pointer)?.as_str()?))
    .max_by_key(|amount| amount.value);
    if let Some(storage) = requested {
        used.insert("requests.storage".into(), storage);
        if !class.is_empty() {
            used.insert(format!("{class}{STORAGE_CLASS}requests.storage"), storage);
        }
    }
}

/// A quota's scope selectors as (scope, operator, values): `spec.scopes`
/// (each must hold) and `spec.scopeSelector`'s expressions.
fn scope_selectors(quota: &Value) -> Vec<(String, String, Vec<String>)> {
    let mut selectors: Vec<_> = quota
        .pointer("/spec/scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|scope| (scope.to_string(), "Exists".to_string(), Vec::new()))
        .collect();
    for expression in quota
        .pointer("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let values = expression
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        selectors.push((
            text(expression, "/scopeName").to_string(),
            text(expression, "/operator").to_string(),
            values,
        ));
    }
    selectors
}

/// Whether a quota constrains `object` of `plural` in `group`: it names a
/// resource the object counts towards, and the object is in each of its
/// scopes (only pods are: a scoped quota counts nothing else).
pub fn matches(quota: &Value, plural: &str, group: &str, object: &Value) -> bool {
    let hard = quota.pointer("/spec/hard").and_then(Value::as_object);
    let concerned = hard.is_some_and(|hard| hard.keys().any(|name| tracks(plural, group, name)));
    concerned
        && scope_selectors(quota)
            .iter()
            .all(|(scope, operator, values)| {
                plural == "pods" && group.is_empty() && in_scope(object, scope, operator, values)
            })
}

fn in_scope(pod: &Value, scope: &str, operator: &str, values: &[String]) -> bool {
    let terminating = pod
        .pointer("/spec/activeDeadlineSeconds")
        .and_then(Value::as_i64)
        .is_some_and(|seconds| seconds >= 0);
    let best_effort = crate::registry::kinds::qos_class(pod) == "BestEffort";
    match scope {
        "Terminating" => terminating,
        "NotTerminating" => !terminating,
        "BestEffort" => best_effort,
        "NotBestEffort" => !best_effort,
        "PriorityClass" => {
            let class = text(pod, "/spec/priorityClassName");
            match operator {
                "Exists" => !class.is_empty(),
                "DoesNotExist" => class.is_empty(),
                "In" => !class.is_empty() && values.iter().any(|v| v == class),
                "NotIn" => class.is_empty() || !values.iter().any(|v| v == class),
                _ => false,
            }
        }
        "CrossNamespacePodAffinity" => ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
            ["requiredDuringSchedulingIgnoredDuringExecution"]
                .iter()
                .chain(["preferredDuringSchedulingIgnoredDuringExecution"].iter())
                .flat_map(|when| {
                    pod.pointer(&format!("/spec/affinity/{kind}/{when}"))
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                })
                .any(|term| {
                    let term = term.get("podAffinityTerm").unwrap_or(&term).clone();
                    term.get("namespaceSelector").is_some()
                        || term
                            .get("namespaces")
                            .and_then(Value::as_array)
                            .is_some_and(|list| !list.is_empty())
                })
        }),
        _ => false,
    }
}

/// The resources a quota on cpu or memory requires every container to
/// name (a rule Kubernetes keeps for compatibility).
const MUST_SPECIFY: [&str; 6] = [
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// Why a pod may not be created under a quota on `hard`: a container
/// that leaves out a constrained request or limit, as
/// `must specify limits.cpu for: app; requests.cpu for: app,sidecar`.
pub fn missing_compute(pod: &Value, hard: &Amounts) -> Option<String> {
    let required: Vec<&str> = MUST_SPECIFY
        .into_iter()
        .filter(|name| hard.contains_key(*name))
        .collect();
    let mut missing: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for field in ["containers", "initContainers"] {
        for container in pod
            .pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let has = compute_usage(
                &amounts_of(container.pointer("/resources/requests")),
                &amounts_of(container.pointer("/resources/limits")),
            );
            for name in &required {
                if !has.contains_key(*name) {
                    let names = missing.entry(name).or_default();
                    names.push(text(container, "/name").to_string());
                    names.sort();
                    names.dedup();
                }
            }
        }
    }
    (!missing.is_empty()).then(|| {
        let each: Vec<String> = missing
            .iter()
            .map(|(name, containers)| format!("{name} for: {}", containers.join(",")))
            .collect();
        format!("must specify {}", each.join("; "))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(resources: Value) -> Value {
        json!({"spec": {"containers": [{"name": "app", "resources": resources}]}})
    }

    #[test]
    fn a_pod_counts_its_requests_and_limits() {
        let used = usage(
            "pods",
            "",
            &pod(json!({"requests": {"memory": "768m", "cpu": "0.5"},
                "limits": {"memory": "1024m", "cpu": "2"}})),
        );
        let shown: BTreeMap<_, _> = used.iter().map(|(k, v)| (k.as_str(), v.text())).collect();
        assert_eq!(shown["requests.memory"], "768m");
        assert_eq!(shown["requests.cpu"], "500m");
        assert_eq!(shown["cpu"], "500m");
        assert_eq!(shown["limits.cpu"], "2");
        assert_eq!(shown["pods"], "1");
        assert_eq!(shown["count/pods"], "1");
    }

    #[test]
    fn a_finished_pod_counts_only_as_an_object() {
        let mut finished = pod(json!({"requests": {"cpu": "1"}}));
        finished["status"] = json!({"phase": "Succeeded"});
        let used = usage("pods", "", &finished);
        assert_eq!(used.keys().collect::<Vec<_>>(), ["count/pods"]);
    }

    #[test]
    fn missing_requests_are_named_per_container() {
        let hard = amounts_of(Some(
            &json!({"requests.cpu": "2", "limits.memory": "1Gi", "pods": "5"}),
        ));
        assert_eq!(
            missing_compute(&pod(json!({"requests": {"cpu": "1"}})), &hard).as_deref(),
            Some("must specify limits.memory for: app")
        );
        assert_eq!(
            missing_compute(
                &pod(json!({"requests": {"cpu": "1"}, "limits": {"memory": "1"}})),
                &hard
            ),
            None
        );
    }

    #[test]
    fn scopes_select_pods() {
        let quota = json!({"spec": {"hard": {"pods": "1"}, "scopes": ["BestEffort"]}});
        assert!(matches(&quota, "pods", "", &pod(json!({}))));
        assert!(!matches(
            &quota,
            "pods",
            "",
            &pod(json!({"requests": {"cpu": "1"}}))
        ));
        assert!(!matches(&quota, "services", "", &json!({})));
        let by_class = json!({"spec": {"hard": {"pods": "1"}, "scopeSelector": {"matchExpressions": [
            {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}});
        let mut high = pod(json!({}));
        high["spec"]["priorityClassName"] = json!("high");
        assert!(matches(&by_class, "pods", "", &high));
        assert!(!matches(&by_class, "pods", "", &pod(json!({}))));
    }

    #[test]
    fn services_count_node_ports_and_balancers() {
        let service =
            json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}});
        let used = usage("services", "", &service);
        assert_eq!(used["services.nodeports"].text(), "2");
        assert_eq!(used["services.loadbalancers"].text(), "1");
        assert!(tracks("deployments", "apps", "count/deployments.apps"));
        assert!(!tracks("deployments", "apps", "pods"));
    }
}
