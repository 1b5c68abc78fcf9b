//! The LimitRanger admission step of pod creation: each LimitRange of the
//! namespace fills the requests and limits a container leaves out from
//! its Container defaults (noting what it set in the
//! `kubernetes.io/limit-ranger` annotation), then holds every container
//! and the pod as a whole to its min, max and limit/request ratio, with
//! the API server's messages.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::metadata::text;
use super::{Error, ListOptions, Registry, Result};
use crate::quantity::Format;
use crate::quota::{Amount, Amounts, amounts_of};

const ANNOTATION: &str = "kubernetes.io/limit-ranger";

impl Registry {
    /// Applies the namespace's LimitRanges to a new pod.
    pub(super) fn admit_limit_ranges(&self, pod: &mut Value) -> Result<()> {
        let namespace = text(pod, "/metadata/namespace").to_string();
        let ranges = self.resource("", "LimitRange");
        let listed = self.list(&ranges, Some(&namespace), &ListOptions::default())?;
        let mut problems = Vec::new();
        for range in &listed.items {
            let items: Vec<&Value> = range
                .pointer("/spec/limits")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .collect();
            set_defaults(pod, &items);
            for item in items {
                problems.extend(check(pod, item));
            }
        }
        let mut seen = BTreeSet::new();
        problems.retain(|problem| seen.insert(problem.clone()));
        match problems.len() {
            0 => Ok(()),
            n => Err(Error::Refused {
                resource: "pods".into(),
                group: String::new(),
                name: text(pod, "/metadata/name").into(),
                why: if n == 1 {
                    problems.remove(0)
                } else {
                    format!("[{}]", problems.join(", "))
                },
            }),
        }
    }
}

/// The pod's containers and init containers, mutably, with the word
/// the annotation uses for each.
fn containers_mut(pod: &mut Value) -> Vec<(&'static str, &mut Value)> {
    let mut all = Vec::new();
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return all;
    };
    for (field, list) in spec.iter_mut() {
        let word = match field.as_str() {
            "containers" => "container",
            "initContainers" => "init container",
            _ => continue,
        };
        if let Some(list) = list.as_array_mut() {
            all.extend(list.iter_mut().map(|c| (word, c)));
        }
    }
    // Containers first, as the annotation lists them.
    all.sort_by_key(|(word, _)| *word != "container");
    all
}

/// Fills each container's missing requests and limits from the Container
/// items' `defaultRequest` and `default`.
fn set_defaults(pod: &mut Value, items: &[&Value]) {
    let mut requests = Amounts::new();
    let mut limits = Amounts::new();
    for item in items
        .iter()
        .filter(|item| text(item, "/type") == "Container")
    {
        requests.extend(amounts_of(item.get("defaultRequest")));
        limits.extend(amounts_of(item.get("default")));
    }
    if requests.is_empty() && limits.is_empty() {
        return;
    }
    let mut notes = Vec::new();
    for (word, container) in containers_mut(pod) {
        let name = text(container, "/name").to_string();
        let resources = container
            .as_object_mut()
            .map(|c| c.entry("resources").or_insert_with(|| json!({})));
        let Some(resources) = resources.and_then(Value::as_object_mut) else {
            continue;
        };
        let mut fill = |field: &str, defaults: &Amounts| -> Vec<String> {
            let list = resources.entry(field).or_insert_with(|| json!({}));
            let Some(list) = list.as_object_mut() else {
                return Vec::new();
            };
            let mut set = Vec::new();
            for (resource, amount) in defaults {
                if !list.contains_key(resource) {
                    list.insert(resource.clone(), json!(amount.text()));
                    set.push(resource.clone());
                }
            }
            set
        };
        let set_requests = fill("requests", &requests);
        let set_limits = fill("limits", &limits);
        if !set_requests.is_empty() {
            notes.push(format!(
                "{} request for {word} {name}",
                set_requests.join(", ")
            ));
        }
        if !set_limits.is_empty() {
            notes.push(format!("{} limit for {word} {name}", set_limits.join(", ")));
        }
    }
    if notes.is_empty() {
        return;
    }
    let metadata = pod
        .as_object_mut()
        .map(|p| p.entry("metadata").or_insert_with(|| json!({})));
    if let Some(metadata) = metadata.and_then(Value::as_object_mut) {
        let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
        annotations[ANNOTATION] = json!(format!("LimitRanger plugin set: {}", notes.join("; ")));
    }
}

/// What one LimitRange item finds wrong with the pod.
fn check(pod: &Value, item: &Value) -> Vec<String> {
    let kind = text(item, "/type");
    let containers = |field: &str| -> Vec<&Value> {
        pod.pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .map(|list| list.iter().collect())
            .unwrap_or_default()
    };
    let resources = |container: &Value, field: &str| {
        amounts_of(container.pointer(&format!("/resources/{field}")))
    };
    let mut subjects: Vec<(Amounts, Amounts)> = Vec::new();
    match kind {
        "Container" => {
            for container in containers("containers")
                .into_iter()
                .chain(containers("initContainers"))
            {
                subjects.push((
                    resources(container, "requests"),
                    resources(container, "limits"),
                ));
            }
        }
        "Pod" => {
            let regular = containers("containers");
            let mut requests = sum(regular.iter().map(|c| resources(c, "requests")).collect());
            let mut limits = sum(regular.iter().map(|c| resources(c, "limits")).collect());
            for init in containers("initContainers") {
                for (total, field) in [(&mut requests, "requests"), (&mut limits, "limits")] {
                    for (name, amount) in resources(init, field) {
                        if total
                            .get(&name)
                            .is_none_or(|have| have.value < amount.value)
                        {
                            total.insert(name, amount);
                        }
                    }
                }
            }
            subjects.push((requests, limits));
        }
        _ => return Vec::new(),
    }
    let mut problems = Vec::new();
    for (requests, limits) in &subjects {
        for (name, enforced) in amounts_of(item.get("min")) {
            problems.extend(minimum(kind, &name, enforced, requests, limits));
        }
        for (name, enforced) in amounts_of(item.get("max")) {
            problems.extend(maximum(kind, &name, enforced, requests, limits));
        }
        for (name, enforced) in amounts_of(item.get("maxLimitRequestRatio")) {
            problems.extend(ratio(kind, &name, enforced, requests, limits));
        }
    }
    problems
}

/// The containers' total of each resource every one of them names, in
/// millicores for cpu and whole units otherwise, as the LimitRanger adds.
fn sum(lists: Vec<Amounts>) -> Amounts {
    let names: BTreeSet<&String> = lists.iter().flat_map(|list| list.keys()).collect();
    let mut total = Amounts::new();
    for name in names {
        if !lists.iter().all(|list| list.contains_key(name)) {
            continue;
        }
        let value = lists
            .iter()
            .fold(crate::quantity::Quantity::default(), |sum, list| {
                let one = list[name].value;
                let rounded = if name == "cpu" {
                    crate::quantity::Quantity::from_millis(one.ceil_millis())
                } else {
                    crate::quantity::Quantity::from_units(one.ceil_units())
                };
                sum.plus(rounded)
            });
        total.insert(
            name.clone(),
            Amount {
                value,
                format: Format::DecimalSi,
            },
        );
    }
    total
}

fn milli(amount: &Amount) -> i128 {
    amount.value.ceil_millis()
}

fn minimum(
    kind: &str,
    name: &str,
    enforced: Amount,
    requests: &Amounts,
    limits: &Amounts,
) -> Option<String> {
    let floor = enforced.text();
    let Some(request) = requests.get(name) else {
        return Some(format!(
            "minimum {name} usage per {kind} is {floor}.  No request is specified"
        ));
    };
    if milli(request) < milli(&enforced) {
        return Some(format!(
            "minimum {name} usage per {kind} is {floor}, but request is {}",
            request.text()
        ));
    }
    match limits.get(name) {
        Some(limit) if milli(limit) < milli(&enforced) => Some(format!(
            "minimum {name} usage per {kind} is {floor}, but limit is {}",
            limit.text()
        )),
        _ => None,
    }
}

fn maximum(
    kind: &str,
    name: &str,
    enforced: Amount,
    requests: &Amounts,
    limits: &Amounts,
) -> Option<String> {
    let ceiling = enforced.text();
    let Some(limit) = limits.get(name) else {
        return Some(format!(
            "maximum {name} usage per {kind} is {ceiling}.  No limit is specified"
        ));
    };
    if milli(limit) > milli(&enforced) {
        return Some(format!(
            "maximum {name} usage per {kind} is {ceiling}, but limit is {}",
            limit.text()
        ));
    }
    match requests.get(name) {
        Some(request) if milli(request) > milli(&enforced) => Some(format!(
            "maximum {name} usage per {kind} is {ceiling}, but request is {}",
            request.text()
        )),
        _ => None,
    }
}

fn ratio(
    kind: &str,
    name: &str,
    enforced: Amount,
    requests: &Amounts,
    limits: &Amounts,
) -> Option<String> {
    let most = enforced.text();
    let request = requests.get(name).map(milli).filter(|m| *m != 0);
    let limit = limits.get(name).map(milli).filter(|m| *m != 0);
    let Some(request) = request else {
        return Some(format!(
            "{name} max limit to request ratio per {kind} is {most}, but no request is specified or request is 0"
        ));
    };
    let Some(limit) = limit else {
        return Some(format!(
            "{name} max limit to request ratio per {kind} is {most}, but no limit is specified or limit is 0"
        ));
    };
    let observed = limit as f64 / request as f64;
    (observed * 1000.0 > milli(&enforced) as f64).then(|| {
        format!("{name} max limit to request ratio per {kind} is {most}, but provided ratio is {observed:.6}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(resources: Value) -> Value {
        json!({"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "nginx", "resources": resources}]}})
    }

    #[test]
    fn defaults_fill_what_a_container_leaves_out() {
        let item = json!({"type": "Container", "default": {"cpu": "1", "memory": "512Mi"},
            "defaultRequest": {"cpu": "500m", "memory": "256Mi"}});
        let mut given = pod(json!({"limits": {"memory": "1Gi"}, "requests": {"memory": "1Gi"}}));
        set_defaults(&mut given, &[&item]);
        assert_eq!(
            given["spec"]["containers"][0]["resources"],
            json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}})
        );
        assert_eq!(
            given["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: cpu request for container nginx; cpu limit for container nginx"
        );
    }

    #[test]
    fn min_max_and_ratio_are_held() {
        let item = json!({"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "1"},
            "maxLimitRequestRatio": {"cpu": "2"}});
        assert_eq!(
            check(
                &pod(json!({"requests": {"cpu": "50m"}, "limits": {"cpu": "2"}})),
                &item
            ),
            [
                "minimum cpu usage per Container is 100m, but request is 50m",
                "maximum cpu usage per Container is 1, but limit is 2",
                "cpu max limit to request ratio per Container is 2, but provided ratio is 40.000000",
            ]
        );
        assert!(
            check(
                &pod(json!({"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}})),
                &item
            )
            .is_empty()
        );
        assert_eq!(
            check(
                &pod(json!({})),
                &json!({"type": "Pod", "max": {"memory": "1Gi"}})
            ),
            ["maximum memory usage per Pod is 1Gi.  No limit is specified"]
        );
    }
}
