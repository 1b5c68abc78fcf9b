//! The Priority admission step of pod creation: a pod's
//! `priorityClassName` (or the cluster's global default class) becomes its
//! `priority` and `preemptionPolicy`, as Kubernetes' Priority plugin does.

use serde_json::{Value, json};

use super::metadata::text;
use super::{Error, ListOptions, Registry, Result};

/// A pod's `admit` hook: its priority resolved on create, kept on update.
pub(crate) fn admit_pod(registry: &Registry, pod: &mut Value, old: Option<&Value>) -> Result<()> {
    match old {
        None => registry.admit_priority(pod),
        Some(old) => {
            keep_spec_fields(pod, old, &["priority", "preemptionPolicy"]);
            Ok(())
        }
    }
}

/// A PriorityClass's `admit` hook.
pub(crate) fn admit_priority_class(
    registry: &Registry,
    class: &mut Value,
    _old: Option<&Value>,
) -> Result<()> {
    registry.admit_priority_class(class)
}

/// An update that leaves out `fields` of the spec, which admission set on
/// create, keeps them, as the Priority plugin does (the fields may not
/// change anyway).
pub(super) fn keep_spec_fields(pod: &mut Value, old: &Value, fields: &[&str]) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for &field in fields {
        if spec.get(field).is_none_or(Value::is_null)
            && let Some(previous) = old.pointer(&format!("/spec/{field}"))
        {
            spec.insert(field.into(), previous.clone());
        }
    }
}

impl Registry {
    /// At most one PriorityClass is the global default.
    fn admit_priority_class(&self, class: &Value) -> Result<()> {
        if class.get("globalDefault").and_then(Value::as_bool) != Some(true) {
            return Ok(());
        }
        let classes = self.resource("scheduling.k8s.io", "PriorityClass");
        let name = text(class, "/metadata/name");
        let other = self
            .list(&classes, None, &ListOptions::default())?
            .items
            .into_iter()
            .find(|c| {
                c.get("globalDefault").and_then(Value::as_bool) == Some(true)
                    && text(c, "/metadata/name") != name
            });
        match other {
            Some(other) => Err(Error::Refused {
                resource: "priorityclasses".into(),
                group: "scheduling.k8s.io".into(),
                name: name.into(),
                why: format!(
                    "PriorityClass {} is already marked as default. Only one default can exist",
                    text(&other, "/metadata/name")
                ),
            }),
            None => Ok(()),
        }
    }

    /// Resolves a new pod's priority from its class.
    fn admit_priority(&self, pod: &mut Value) -> Result<()> {
        let classes = self.resource("scheduling.k8s.io", "PriorityClass");
        let name = text(pod, "/metadata/name").to_string();
        let refused = |why: String| Error::Refused {
            resource: "pods".into(),
            group: String::new(),
            name: name.clone(),
            why,
        };
        let class = match pod
            .pointer("/spec/priorityClassName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            Some(wanted) => Some(self.find(&classes, None, wanted)?.ok_or_else(|| {
                refused(format!("no PriorityClass with name {wanted} was found"))
            })?),
            // The global default, the lowest if several claim to be.
            None => self
                .list(&classes, None, &ListOptions::default())?
                .items
                .into_iter()
                .filter(|c| c.get("globalDefault").and_then(Value::as_bool) == Some(true))
                .min_by_key(|c| c.get("value").and_then(Value::as_i64).unwrap_or(0)),
        };
        let value = class
            .as_ref()
            .and_then(|c| c.get("value").and_then(Value::as_i64))
            .unwrap_or(0);
        let policy = class
            .as_ref()
            .and_then(|c| c.get("preemptionPolicy").and_then(Value::as_str))
            .unwrap_or("PreemptLowerPriority")
            .to_string();
        let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        if let Some(given) = spec.get("priority").and_then(Value::as_i64)
            && given != value
        {
            return Err(refused(format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name"
            )));
        }
        if let Some(given) = spec.get("preemptionPolicy").and_then(Value::as_str)
            && given != policy
        {
            return Err(refused(format!(
                "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
            )));
        }
        spec.insert("priority".into(), json!(value));
        spec.insert("preemptionPolicy".into(), json!(policy));
        if let Some(class) = class {
            spec.insert(
                "priorityClassName".into(),
                json!(text(&class, "/metadata/name")),
            );
        }
        Ok(())
    }
}
