//! The RBAC authorizer: a request is allowed when a rule of a role bound
//! to its user (by name, by a group, or as a ServiceAccount) covers it:
//! ClusterRoleBindings everywhere, RoleBindings in their namespace. The
//! `system:masters` group is allowed everything, as the API server's
//! privileged group.

use std::sync::Arc;

use serde_json::{Value, json};

use super::attributes::Attributes;
use super::{MASTERS, User};
use crate::registry::kinds::RBAC_GROUP;
use crate::registry::{Cache, Error, LabelSelector, Registry, Result};

/// Whether `user` may do what `attributes` ask: `Some(reason)` when
/// allowed (which binding allowed it, as the API server's RBAC reason).
pub async fn decide(
    registry: &Registry,
    user: &User,
    attributes: &Attributes,
) -> Result<Option<String>> {
    if user.groups.iter().any(|g| g == MASTERS) {
        return Ok(Some(String::new()));
    }
    catch_up(registry).await?;
    Ok(decide_held(registry, user, attributes))
}

/// [`decide`] by what the RBAC caches hold now (after [`catch_up`]).
fn decide_held(registry: &Registry, user: &User, attributes: &Attributes) -> Option<String> {
    if user.groups.iter().any(|g| g == MASTERS) {
        return Some(String::new());
    }
    let mut reason = None;
    visit_rules(registry, user, &attributes.namespace, |binding, rule| {
        if rule_allows(rule, attributes) {
            reason = Some(format!("RBAC: allowed by {}", describe(binding, user)));
        }
        reason.is_none()
    });
    reason
}

/// Whether `user` may do what `attributes` ask.
pub async fn allowed(registry: &Registry, user: &User, attributes: &Attributes) -> Result<bool> {
    Ok(decide(registry, user, attributes).await?.is_some())
}

/// The caches of the four RBAC kinds.
fn caches(registry: &Registry) -> [Arc<Cache>; 4] {
    ["ClusterRoleBinding", "RoleBinding", "ClusterRole", "Role"]
        .map(|kind| registry.cache(&registry.resource(RBAC_GROUP, kind)))
}

/// Waits until the RBAC caches hold every write made so far, so a request
/// right after a RoleBinding is created is judged by it.
pub async fn catch_up(registry: &Registry) -> Result<()> {
    for cache in caches(registry) {
        cache.caught_up().await?;
    }
    Ok(())
}

/// `RoleBinding "name/namespace" of Role "role" to User "alice"`, as the
/// API server names the binding that allowed a request.
fn describe(binding: &Value, user: &User) -> String {
    let kind = binding.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = binding
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let namespace = binding
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let binding_name = if namespace.is_empty() {
        name.to_string()
    } else {
        format!("{name}/{namespace}")
    };
    let role_kind = binding
        .pointer("/roleRef/kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    let role = binding
        .pointer("/roleRef/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let subject = binding
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|s| subject_is(s, namespace, user))
        .map(|s| {
            format!(
                "{} {:?}",
                s.get("kind").and_then(Value::as_str).unwrap_or(""),
                s.get("name").and_then(Value::as_str).unwrap_or("")
            )
        })
        .unwrap_or_default();
    format!("{kind} {binding_name:?} of {role_kind} {role:?} to {subject}")
}

/// Calls `visit` with each rule that applies to `user` in `namespace`
/// (cluster-wide rules, then the namespace's) and the binding that grants
/// it, until it returns false; by what the caches hold (see [`catch_up`]).
pub fn visit_rules(
    registry: &Registry,
    user: &User,
    namespace: &str,
    mut visit: impl FnMut(&Value, &Value) -> bool,
) {
    let everything = LabelSelector::default();
    let [cluster_bindings, bindings, cluster_roles, roles] = caches(registry);
    let mut all = cluster_bindings.list_held(None, &everything);
    if !namespace.is_empty() {
        all.extend(bindings.list_held(Some(namespace), &everything));
    }
    for binding in all {
        let binding_namespace = binding
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !binds(&binding, binding_namespace, user) {
            continue;
        }
        let name = binding
            .pointer("/roleRef/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let role = match binding.pointer("/roleRef/kind").and_then(Value::as_str) {
            Some("ClusterRole") => cluster_roles.get_held(None, name),
            Some("Role") => roles.get_held(Some(binding_namespace), name),
            _ => None,
        };
        let Some(role) = role else { continue };
        for rule in role
            .get("rules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !visit(&binding, rule) {
                return;
            }
        }
    }
}

/// Whether `binding` (in `namespace`, empty for a ClusterRoleBinding)
/// names `user` among its subjects.
fn binds(binding: &Value, namespace: &str, user: &User) -> bool {
    let subjects = binding.get("subjects").and_then(Value::as_array);
    subjects
        .into_iter()
        .flatten()
        .any(|subject| subject_is(subject, namespace, user))
}

/// Whether one subject of a binding in `namespace` is `user`.
fn subject_is(subject: &Value, namespace: &str, user: &User) -> bool {
    let name = subject.get("name").and_then(Value::as_str).unwrap_or("");
    match subject.get("kind").and_then(Value::as_str) {
        Some("User") => user.name == name,
        Some("Group") => user.groups.iter().any(|g| g == name),
        Some("ServiceAccount") => {
            let account_namespace = subject
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or(namespace);
            user.name == format!("system:serviceaccount:{account_namespace}:{name}")
        }
        _ => false,
    }
}

fn strings<'a>(rule: &'a Value, field: &str) -> impl Iterator<Item = &'a str> {
    rule.get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// Whether one PolicyRule covers the request.
pub fn rule_allows(rule: &Value, attributes: &Attributes) -> bool {
    if !strings(rule, "verbs").any(|v| v == "*" || v == attributes.verb) {
        return false;
    }
    if !attributes.resource_request {
        return strings(rule, "nonResourceURLs").any(|url| {
            url == "*"
                || url == attributes.path
                || url
                    .strip_suffix('*')
                    .is_some_and(|prefix| attributes.path.starts_with(prefix))
        });
    }
    if !strings(rule, "apiGroups").any(|g| g == "*" || g == attributes.group) {
        return false;
    }
    let combined = attributes.resource_path();
    let resource_matches = strings(rule, "resources").any(|r| {
        r == "*"
            || r == combined
            || (!attributes.subresource.is_empty()
                && r.strip_prefix("*/") == Some(attributes.subresource.as_str()))
    });
    if !resource_matches {
        return false;
    }
    let mut names = strings(rule, "resourceNames").peekable();
    names.peek().is_none() || names.any(|n| n == attributes.name)
}

/// RBAC's escalation check of a Role, ClusterRole or binding a client
/// writes: a role may hold only rules its writer holds (unless the writer
/// may `escalate` it), a binding may grant only a role whose rules its
/// writer holds (unless the writer may `bind` it). By what the caches hold:
/// the write's own request has just waited for them.
pub fn check_escalation(
    registry: &Registry,
    resource: &crate::registry::Resource,
    object: &Value,
    options: &crate::registry::WriteOptions,
) -> Result<()> {
    let Some(user) = &options.user else {
        return Ok(());
    };
    if resource.group != RBAC_GROUP || user.groups.iter().any(|g| g == MASTERS) {
        return Ok(());
    }
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let namespace = text("/metadata/namespace");
    let name = text("/metadata/name");
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
        decide_held(registry, user, &attributes).is_some()
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
            let role_kind = text("/roleRef/kind");
            let role_name = text("/roleRef/name");
            let plural = if role_kind == "Role" {
                "roles"
            } else {
                "clusterroles"
            };
            if may("bind", plural, &role_name) {
                return Ok(());
            }
            let [_, _, cluster_roles, roles] = caches(registry);
            let role = match role_kind.as_str() {
                "Role" => roles.get_held(Some(&namespace), &role_name),
                _ => cluster_roles.get_held(None, &role_name),
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
    visit_rules(registry, user, &namespace, |_, rule| {
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

/// The API server's Forbidden answer to `user` for `attributes`.
pub fn forbidden(user: &User, attributes: &Attributes) -> Error {
    let who = &user.name;
    let verb = &attributes.verb;
    if !attributes.resource_request {
        return Error::Refused {
            resource: String::new(),
            group: String::new(),
            name: String::new(),
            why: format!("User {who:?} cannot {verb} path {:?}", attributes.path),
        };
    }
    let resource = attributes.resource_path();
    let group = &attributes.group;
    let scope = if attributes.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {:?}", attributes.namespace)
    };
    Error::Refused {
        resource: attributes.resource.clone(),
        group: group.clone(),
        name: attributes.name.clone(),
        why: format!(
            "User {who:?} cannot {verb} resource {resource:?} in API group {group:?} {scope}"
        ),
    }
}

/// A rule as `PolicyRule` JSON (for the default roles).
pub fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    fn attributes(method: Method, path: &str) -> Attributes {
        Attributes::of_request(&method, path, None)
    }

    #[test]
    fn rules_match_verbs_groups_resources_and_names() {
        let read_pods = rule(&[""], &["pods", "pods/log"], &["get", "list", "watch"]);
        assert!(rule_allows(
            &read_pods,
            &attributes(Method::GET, "/api/v1/namespaces/a/pods")
        ));
        assert!(rule_allows(
            &read_pods,
            &attributes(Method::GET, "/api/v1/namespaces/a/pods/p/log")
        ));
        assert!(!rule_allows(
            &read_pods,
            &attributes(Method::DELETE, "/api/v1/namespaces/a/pods/p")
        ));
        assert!(!rule_allows(
            &read_pods,
            &attributes(Method::GET, "/api/v1/namespaces/a/pods/p/status")
        ));
        assert!(!rule_allows(
            &read_pods,
            &attributes(Method::GET, "/apis/apps/v1/namespaces/a/deployments")
        ));
        let statuses = rule(&["*"], &["*/status"], &["*"]);
        assert!(rule_allows(
            &statuses,
            &attributes(
                Method::PUT,
                "/apis/apps/v1/namespaces/a/deployments/d/status"
            )
        ));
        assert!(!rule_allows(
            &statuses,
            &attributes(Method::PUT, "/apis/apps/v1/namespaces/a/deployments/d")
        ));
        let mut one = rule(&[""], &["configmaps"], &["get"]);
        one["resourceNames"] = json!(["settings"]);
        assert!(rule_allows(
            &one,
            &attributes(Method::GET, "/api/v1/namespaces/a/configmaps/settings")
        ));
        assert!(!rule_allows(
            &one,
            &attributes(Method::GET, "/api/v1/namespaces/a/configmaps/other")
        ));
        let paths = json!({"nonResourceURLs": ["/healthz", "/apis/*"], "verbs": ["get"]});
        assert!(rule_allows(&paths, &attributes(Method::GET, "/healthz")));
        assert!(rule_allows(
            &paths,
            &attributes(Method::GET, "/apis/apps/v1")
        ));
        assert!(!rule_allows(&paths, &attributes(Method::GET, "/metrics")));
    }

    #[test]
    fn forbidden_is_worded_as_the_api_server_words_it() {
        let alice = User::with_groups("alice", []);
        let error = forbidden(
            &alice,
            &attributes(Method::GET, "/api/v1/namespaces/default/pods"),
        );
        assert_eq!(
            error.to_string(),
            "pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        );
        let error = forbidden(
            &alice,
            &attributes(Method::DELETE, "/apis/apps/v1/namespaces/a/deployments/web"),
        );
        assert_eq!(
            error.to_string(),
            "deployments.apps \"web\" is forbidden: User \"alice\" cannot delete resource \"deployments\" in API group \"apps\" in the namespace \"a\""
        );
        let error = forbidden(&alice, &attributes(Method::GET, "/api/v1/nodes"));
        assert_eq!(
            error.to_string(),
            "nodes is forbidden: User \"alice\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
        );
        let error = forbidden(&alice, &attributes(Method::GET, "/metrics"));
        assert_eq!(
            error.to_string(),
            "forbidden: User \"alice\" cannot get path \"/metrics\""
        );
    }
}
