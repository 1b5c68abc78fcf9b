//! The RBAC authorizer: a request is allowed when a rule of a role bound
//! to its user (by name, by a group, or as a ServiceAccount) covers it:
//! ClusterRoleBindings everywhere, RoleBindings in their namespace. The
//! `system:masters` group is allowed everything, as the API server's
//! privileged group.

mod escalation;
mod index;

use serde_json::{Value, json};

use super::User;
use super::attributes::Attributes;
use crate::registry::Error;
use crate::registry::metadata::text;

pub use escalation::check_escalation;
pub use index::{Authorizer, Index};

/// Whether `user` may do what `attributes` ask, by `index`: `Some(reason)`
/// when allowed (which binding allowed it, as the API server's RBAC
/// reason; empty for `system:masters`).
pub fn decide(index: &Index, user: &User, attributes: &Attributes) -> Option<String> {
    if user.is_master() {
        return Some(String::new());
    }
    let mut reason = None;
    index.visit_rules(user, &attributes.namespace, |binding, rule| {
        if rule_allows(rule, attributes) {
            reason = Some(format!("RBAC: allowed by {}", describe(binding, user)));
        }
        reason.is_none()
    });
    reason
}

/// Whether `user` may do what `attributes` ask, by `index`.
pub fn allowed(index: &Index, user: &User, attributes: &Attributes) -> bool {
    decide(index, user, attributes).is_some()
}

/// `RoleBinding "name/namespace" of Role "role" to User "alice"`, as the
/// API server names the binding that allowed a request.
fn describe(binding: &Value, user: &User) -> String {
    let namespace = text(binding, "/metadata/namespace");
    let name = text(binding, "/metadata/name");
    let binding_name = if namespace.is_empty() {
        name.to_string()
    } else {
        format!("{name}/{namespace}")
    };
    let keys = user_keys(user);
    let subject = binding
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|s| subject_key(s, namespace).is_some_and(|key| keys.contains(&key)))
        .map(|s| format!("{} {:?}", text(s, "/kind"), text(s, "/name")))
        .unwrap_or_default();
    format!(
        "{} {binding_name:?} of {} {:?} to {subject}",
        text(binding, "/kind"),
        text(binding, "/roleRef/kind"),
        text(binding, "/roleRef/name"),
    )
}

/// The key a subject of a binding in `namespace` stands for: `user:NAME`
/// (a ServiceAccount by its user name) or `group:NAME`.
fn subject_key(subject: &Value, namespace: &str) -> Option<String> {
    let name = subject.get("name").and_then(Value::as_str)?;
    match subject.get("kind").and_then(Value::as_str)? {
        "User" => Some(format!("user:{name}")),
        "Group" => Some(format!("group:{name}")),
        "ServiceAccount" => {
            let namespace = Some(text(subject, "/namespace"))
                .filter(|n| !n.is_empty())
                .unwrap_or(namespace);
            Some(format!("user:system:serviceaccount:{namespace}:{name}"))
        }
        _ => None,
    }
}

/// The subject keys `user` answers to: its name and each of its groups.
fn user_keys(user: &User) -> Vec<String> {
    std::iter::once(format!("user:{}", user.name))
        .chain(user.groups.iter().map(|g| format!("group:{g}")))
        .collect()
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
