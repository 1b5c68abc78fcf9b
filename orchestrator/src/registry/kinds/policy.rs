//! policy/v1 PodDisruptionBudgets: Kubernetes' checks on their budget
//! (`minAvailable` or `maxUnavailable`, a count or a percentage).

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::{Value, json};

use super::{name_of, plain_hooks, status, validate_metadata};
use crate::admission::{Errors, Invalid};
use crate::registry::resources::{ALL_VERBS, Hooks, Resource, Subresource};

const PDB_SUBRESOURCES: [Subresource; 1] = status("PodDisruptionBudget");

pub(super) fn pod_disruption_budgets() -> Resource {
    Resource {
        group: "policy",
        version: "v1",
        kind: "PodDisruptionBudget",
        plural: "poddisruptionbudgets",
        singular: "poddisruptionbudget",
        namespaced: true,
        short_names: &["pdb"],
        categories: &[],
        verbs: ALL_VERBS,
        subresources: &PDB_SUBRESOURCES,
        status_subresource: true,
        field_selectors: &[],
        schema: "io.k8s.api.policy.v1.PodDisruptionBudget",
        returns_deleted: false,
        custom: None,
        hooks: Hooks {
            initial_status: |pdb| {
                pdb["status"] = json!({"disruptionsAllowed": 0, "currentHealthy": 0,
                    "desiredHealthy": 0, "expectedPods": 0});
            },
            validate,
            ..plain_hooks::<PodDisruptionBudget>()
        },
    }
}

fn validate(pdb: &Value, old: Option<&Value>) -> Result<(), Invalid> {
    validate_metadata(pdb, old)?;
    let mut errors = Errors::default();
    let min = pdb.pointer("/spec/minAvailable");
    let max = pdb.pointer("/spec/maxUnavailable");
    if min.is_some_and(|v| !v.is_null()) && max.is_some_and(|v| !v.is_null()) {
        errors.push(
            "spec",
            "Invalid value: \"{...}\": minAvailable and maxUnavailable cannot be both set".into(),
        );
    }
    for (field, value) in [("minAvailable", min), ("maxUnavailable", max)] {
        let path = format!("spec.{field}");
        match value {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) => {
                if n.as_i64().is_none_or(|n| n < 0) {
                    errors.push(
                        path,
                        format!("Invalid value: {n}: must be greater than or equal to 0"),
                    );
                }
            }
            Some(Value::String(text)) => {
                let percent = text.strip_suffix('%').and_then(|p| p.parse::<i64>().ok());
                match percent {
                    Some(p) if (0..=100).contains(&p) => {}
                    Some(_) => errors.push(
                        path,
                        format!("Invalid value: {text:?}: must be no greater than 100%"),
                    ),
                    None => errors.push(
                        path,
                        format!("Invalid value: {text:?}: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"),
                    ),
                }
            }
            Some(other) => errors.push(
                path,
                format!("Invalid value: {other}: must be an integer or a percentage"),
            ),
        }
    }
    errors.into_result("PodDisruptionBudget", name_of(pdb))
}
