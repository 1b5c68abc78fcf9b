//! RBAC's escalation check: a Role or binding a client writes may grant
//! only what the client holds itself.

use serde_json::{Value, json};

use super::{Index, decide, strings};
use crate::auth::attributes::Attributes;
use crate::registry::kinds::RBAC_GROUP;
use crate::registry::metadata::text;
use crate::registry::{Error, Registry, Resource, Result, WriteOptions};

/// RBAC's escalation check of a Role, ClusterRole or binding a client
/// writes: a role may hold only rules its writer holds (unless the writer
/// may `escalate` it), a binding may grant only a role whose rules its
/// writer holds (unless the writer may `bind` it). By what the caches hold:
/// the write's own request has just waited for them.
pub fn check_escalation(
    registry: &Registry,
    resource: &Resource,
    object: &Value,
    options: &WriteOptions,
) -> Result<()> {
    let Some(user) = &options.user else {
        return Ok(());
    };
    if resource.group != RBAC_GROUP || user.is_master() {
        return Ok(());
    }
    let index = Index::build(registry, registry.rbac_written());
    let field = |pointer: &str| text(object, pointer).to_string();
    let namespace = field("/metadata/namespace");
    let name = field("/metadata/name");
    let may = |verb: &str, plural: &str, name: &str| {
        let attributes = Attributes {
            verb: verb.into(),
            resource_request: true,
            group: RBAC_GROUP.into(),
            resource: plural.into(),
            namespace: namespace.clone(),
            name: name.into(),
            ..Attributes::default()
        };
        decide(&index, user, &attributes).is_some()
    };
    let granted: Vec<Value> = match resource.kind {
        "Role" | "ClusterRole" => {
            if may("escalate", resource.plural, &name) {
                return Ok(());
            }
            object
                .get("rules")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            let role_kind = field("/roleRef/kind");
            let role_name = field("/roleRef/name");
            let plural = if role_kind == "Role" {
                "roles"
            } else {
                "clusterroles"
            };
            if may("bind", plural, &role_name) {
                return Ok(());
            }
            let role = match role_kind.as_str() {
                "Role" => registry.find(
                    &registry.resource(RBAC_GROUP, "Role"),
                    Some(&namespace),
                    &role_name,
                )?,
                _ => registry.find(
                    &registry.resource(RBAC_GROUP, "ClusterRole"),
                    None,
                    &role_name,
                )?,
            };
            let Some(role) = role else {
                return Err(Error::Refused {
                    resource: resource.plural.into(),
                    group: RBAC_GROUP.into(),
                    name,
                    why: format!(
                        "user {:?} (groups={}) is attempting to grant RBAC permissions not currently held: \
                         {} {role_name:?} not found",
                        user.name,
                        go_strings(&user.groups),
                        if role_kind == "Role" {
                            "roles.rbac.authorization.k8s.io"
                        } else {
                            "clusterroles.rbac.authorization.k8s.io"
                        },
                    ),
                });
            };
            role.get("rules")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        }
        _ => return Ok(()),
    };
    let mut held = Vec::new();
    index.visit_rules(user, &namespace, |_, rule| {
        held.push(rule.clone());
        true
    });
    let missing: Vec<String> = granted
        .iter()
        .flat_map(single_rules)
        .filter(|wanted| !held.iter().any(|owner| covers(owner, wanted)))
        .map(|rule| describe_rule(&rule))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Refused {
        resource: resource.plural.into(),
        group: RBAC_GROUP.into(),
        name,
        why: format!(
            "user {:?} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
            user.name,
            go_strings(&user.groups),
            missing.join("\n")
        ),
    })
}

/// A rule broken into rules of one verb, group, resource and name (or one
/// verb and path), as RBAC's coverage check compares them.
fn single_rules(rule: &Value) -> Vec<Value> {
    let list = |field: &str| strings(rule, field).map(str::to_string).collect::<Vec<_>>();
    let mut out = Vec::new();
    for verb in list("verbs") {
        for url in list("nonResourceURLs") {
            out.push(json!({"verbs": [verb], "nonResourceURLs": [url]}));
        }
        for group in list("apiGroups") {
            for resource in list("resources") {
                let names = list("resourceNames");
                if names.is_empty() {
                    out.push(
                        json!({"verbs": [verb], "apiGroups": [group], "resources": [resource]}),
                    );
                }
                for name in names {
                    out.push(json!({"verbs": [verb], "apiGroups": [group], "resources": [resource], "resourceNames": [name]}));
                }
            }
        }
    }
    out
}

/// Whether `owner` holds the single rule `wanted`: a wildcard in `wanted`
/// needs one in `owner`.
fn covers(owner: &Value, wanted: &Value) -> bool {
    let one = |field: &str| strings(wanted, field).next().unwrap_or("").to_string();
    let has = |field: &str, value: &str| strings(owner, field).any(|v| v == "*" || v == value);
    if !has("verbs", &one("verbs")) {
        return false;
    }
    if wanted.get("nonResourceURLs").is_some() {
        let url = one("nonResourceURLs");
        return strings(owner, "nonResourceURLs").any(|owned| {
            owned == "*"
                || owned == url
                || owned
                    .strip_suffix('*')
                    .is_some_and(|prefix| url.starts_with(prefix))
        });
    }
    let resource = one("resources");
    let resource_held = strings(owner, "resources").any(|owned| {
        owned == "*"
            || owned == resource
            || resource
                .split_once('/')
                .is_some_and(|(_, sub)| owned.strip_prefix("*/") == Some(sub))
    });
    if !has("apiGroups", &one("apiGroups")) || !resource_held {
        return false;
    }
    let mut owned_names = strings(owner, "resourceNames").peekable();
    match strings(wanted, "resourceNames").next() {
        None => owned_names.peek().is_none(),
        Some(name) => owned_names.peek().is_none() || owned_names.any(|n| n == name),
    }
}

/// `["a" "b"]`: a list of strings as Go prints one (`%q`).
fn go_strings(list: &[String]) -> String {
    let quoted: Vec<String> = list.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

/// A single rule as the API server lists what is missing.
fn describe_rule(rule: &Value) -> String {
    let list = |field: &str| {
        strings(rule, field)
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    if rule.get("nonResourceURLs").is_some() {
        return format!(
            "{{NonResourceURLs:[{}], Verbs:[{}]}}",
            list("nonResourceURLs"),
            list("verbs")
        );
    }
    let names = match rule.get("resourceNames") {
        Some(_) => format!(", ResourceNames:[{}]", list("resourceNames")),
        None => String::new(),
    };
    format!(
        "{{APIGroups:[{}], Resources:[{}]{names}, Verbs:[{}]}}",
        list("apiGroups"),
        list("resources"),
        list("verbs")
    )
}
