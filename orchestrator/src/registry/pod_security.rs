//! The Pod Security admission step: a new pod is refused when it breaks
//! its namespace's enforced level, and warned about (`Warning: would
//! violate PodSecurity …`) when it breaks the warned one; a workload
//! whose pod template breaks either level is warned about, never refused,
//! as the API server's admission does.

use serde_json::Value;

use super::metadata::text;
use super::{Error, Registry, Resource, Result};
use crate::admission::pod_security::{Level, Policy, detail, pod_of, violations};

impl Registry {
    /// The warnings creating `object` of `resource` earns, or its refusal.
    pub(super) fn admit_pod_security(
        &self,
        resource: &Resource,
        object: &Value,
    ) -> Result<Vec<String>> {
        let builtin = matches!(resource.group, "" | "apps" | "batch") && resource.custom.is_none();
        let Some(pod) = pod_of(resource.kind, object).filter(|_| builtin) else {
            return Ok(Vec::new());
        };
        let namespaces = self.resource("", "Namespace");
        let Some(namespace) = self.find(&namespaces, None, text(object, "/metadata/namespace"))?
        else {
            return Ok(Vec::new());
        };
        let is_pod = resource.kind == "Pod";
        let mut warnings = Vec::new();
        let enforce = Policy::of(&namespace, "enforce");
        let warn = Policy::of(&namespace, "warn");
        for (policy, enforced) in [(&enforce, true), (&warn, false)] {
            if policy.level == Level::Privileged || (!enforced && *policy == enforce && is_pod) {
                continue;
            }
            let found = violations(policy.level, pod);
            if found.is_empty() {
                continue;
            }
            let label = policy.label();
            if enforced && is_pod {
                return Err(Error::Refused {
                    resource: resource.plural.into(),
                    group: resource.group.into(),
                    name: text(object, "/metadata/name").into(),
                    why: format!("violates PodSecurity {label:?}: {}", detail(&found)),
                });
            }
            let warning = format!("would violate PodSecurity {label:?}: {}", detail(&found));
            if !warnings.contains(&warning) {
                warnings.push(warning);
            }
        }
        Ok(warnings)
    }
}
