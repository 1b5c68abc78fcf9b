//! Impersonation (`kubectl --as`, `--as-group`): a request may act as
//! another user when RBAC lets its own user `impersonate` that user, each
//! group, the uid and each extra value, as the API server's filter does.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::HeaderMap;

use super::attributes::Attributes;
use super::{AUTHENTICATED, User, rbac};
use crate::registry::{Error, Registry, Result};

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA: &str = "impersonate-extra-";

/// The user a request acts as: `user` itself, or whom its impersonation
/// headers name once `user` may impersonate them.
pub async fn impersonate(
    registry: &Registry,
    authorizer: &rbac::Authorizer,
    user: Arc<User>,
    headers: &HeaderMap,
) -> Result<Arc<User>> {
    // Most requests impersonate no one: one look at the header names.
    if !headers
        .keys()
        .any(|name| name.as_str().starts_with("impersonate-"))
    {
        return Ok(user);
    }
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    };
    let names = values(USER);
    let groups = values(GROUP);
    let uids = values(UID);
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix(EXTRA)
            && let Ok(value) = value.to_str()
        {
            extra
                .entry(unescape(key))
                .or_default()
                .push(value.to_string());
        }
    }
    if names.is_empty() {
        if groups.is_empty() && uids.is_empty() && extra.is_empty() {
            return Ok(user);
        }
        return Err(Error::Refused {
            resource: String::new(),
            group: String::new(),
            name: String::new(),
            why: "requested impersonation of groups, uid or extra without a user".into(),
        });
    }
    let name = names[0].clone();
    // What each impersonated part needs: `impersonate` on it.
    let mut asked: Vec<Attributes> = Vec::new();
    let ask =
        |group: &str, resource: &str, subresource: &str, namespace: &str, name: &str| Attributes {
            verb: "impersonate".into(),
            resource_request: true,
            group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: namespace.into(),
            name: name.into(),
            ..Attributes::default()
        };
    let account = name
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'));
    match account {
        Some((namespace, account)) => {
            asked.push(ask("", "serviceaccounts", "", namespace, account))
        }
        None => asked.push(ask("", "users", "", "", &name)),
    }
    for group in &groups {
        asked.push(ask("", "groups", "", "", group));
    }
    for uid in &uids {
        asked.push(ask("authentication.k8s.io", "uids", "", "", uid));
    }
    for (key, values) in &extra {
        for value in values {
            asked.push(ask("authentication.k8s.io", "userextras", key, "", value));
        }
    }
    let index = authorizer.index(registry).await?;
    for attributes in &asked {
        if !rbac::allowed(&index, &user, attributes) {
            return Err(rbac::forbidden(&user, attributes));
        }
    }
    let mut groups = groups;
    if let Some((namespace, _)) = account {
        for group in [
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{namespace}"),
        ] {
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
    }
    if !groups.iter().any(|g| g == AUTHENTICATED) {
        groups.push(AUTHENTICATED.into());
    }
    Ok(Arc::new(User {
        name,
        uid: uids.into_iter().next().unwrap_or_default(),
        groups,
        extra,
    }))
}

/// An extra key from its header name: percent-escapes decoded.
fn unescape(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&key[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
