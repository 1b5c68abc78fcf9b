//! What a request asks to do, as the API server's authorizers see it: a
//! verb on a resource (group, resource, subresource, namespace, name) or on
//! a non-resource path, read from the method and path alone.

use axum::http::Method;

/// A request's authorization attributes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    pub verb: String,
    /// Whether the request is for a resource (else for `path`).
    pub resource_request: bool,
    pub path: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

/// Subresources that are verbs of their own on pods: whatever the method
/// (SPDY POSTs, WebSocket GETs), opening one is `create`.
const CONNECT_SUBRESOURCES: &[&str] = &["exec", "attach", "portforward", "proxy"];

impl Attributes {
    /// The attributes of a request for `path` (query in `query`) by
    /// `method`, parsed as the API server's request-info factory does.
    pub fn of_request(method: &Method, path: &str, query: Option<&str>) -> Attributes {
        let mut attributes = Attributes {
            verb: method.as_str().to_lowercase(),
            path: path.to_string(),
            ..Attributes::default()
        };
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let rest = match parts.as_slice() {
            ["api", version, rest @ ..] if !rest.is_empty() => {
                attributes.version = version.to_string();
                rest
            }
            ["apis", group, version, rest @ ..] if !rest.is_empty() => {
                attributes.group = group.to_string();
                attributes.version = version.to_string();
                rest
            }
            // Discovery, OpenAPI, health, version: a non-resource path.
            _ => return attributes,
        };
        attributes.resource_request = true;
        let mut rest = rest;
        let mut watch_path = false;
        if rest.first() == Some(&"watch") {
            watch_path = true;
            rest = &rest[1..];
        }
        if rest.first() == Some(&"namespaces") && rest.len() > 1 {
            attributes.namespace = rest[1].to_string();
            if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
                rest = &rest[2..];
            }
        }
        attributes.resource = rest.first().map(|s| s.to_string()).unwrap_or_default();
        attributes.name = rest.get(1).map(|s| s.to_string()).unwrap_or_default();
        attributes.subresource = rest.get(2).map(|s| s.to_string()).unwrap_or_default();
        let watching = watch_path
            || query.is_some_and(|q| {
                q.split('&')
                    .any(|pair| matches!(pair, "watch=true" | "watch=1" | "watch"))
            });
        attributes.verb = match *method {
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if attributes.name.is_empty() => "deletecollection",
            Method::DELETE => "delete",
            Method::GET | Method::HEAD if watching => "watch",
            Method::GET | Method::HEAD if attributes.name.is_empty() => "list",
            Method::GET | Method::HEAD => "get",
            _ => attributes.verb.as_str(),
        }
        .to_string();
        if CONNECT_SUBRESOURCES.contains(&attributes.subresource.as_str())
            && attributes.resource == "pods"
        {
            attributes.verb = "create".into();
        }
        attributes
    }

    /// `pods` or `pods/exec`, as rules and messages name it.
    pub fn resource_path(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(method: Method, path: &str, query: Option<&str>) -> Attributes {
        Attributes::of_request(&method, path, query)
    }

    #[test]
    fn resource_requests_are_read_as_the_api_server_reads_them() {
        let list = of(Method::GET, "/api/v1/namespaces/team/pods", None);
        assert_eq!(
            (
                list.verb.as_str(),
                list.namespace.as_str(),
                list.resource.as_str()
            ),
            ("list", "team", "pods")
        );
        assert!(list.resource_request);
        let watch = of(
            Method::GET,
            "/api/v1/pods",
            Some("watch=true&labelSelector=a"),
        );
        assert_eq!(
            (watch.verb.as_str(), watch.namespace.as_str()),
            ("watch", "")
        );
        let get = of(
            Method::GET,
            "/apis/apps/v1/namespaces/a/deployments/web/scale",
            None,
        );
        assert_eq!(
            (
                get.verb.as_str(),
                get.group.as_str(),
                get.name.as_str(),
                get.resource_path().as_str()
            ),
            ("get", "apps", "web", "deployments/scale")
        );
        let namespace = of(Method::DELETE, "/api/v1/namespaces/team", None);
        assert_eq!(
            (
                namespace.verb.as_str(),
                namespace.resource.as_str(),
                namespace.name.as_str(),
                namespace.namespace.as_str()
            ),
            ("delete", "namespaces", "team", "team")
        );
        let finalize = of(Method::PUT, "/api/v1/namespaces/team/finalize", None);
        assert_eq!(finalize.resource_path(), "namespaces/finalize");
        let exec = of(
            Method::GET,
            "/api/v1/namespaces/a/pods/p/exec",
            Some("command=sh"),
        );
        assert_eq!(
            (exec.verb.as_str(), exec.resource_path().as_str()),
            ("create", "pods/exec")
        );
        let collection = of(Method::DELETE, "/api/v1/namespaces/a/pods", None);
        assert_eq!(collection.verb, "deletecollection");
    }

    #[test]
    fn other_paths_are_non_resource_requests() {
        for path in [
            "/api",
            "/apis",
            "/apis/apps",
            "/apis/apps/v1",
            "/version",
            "/openapi/v2",
            "/api/v1",
        ] {
            let attributes = of(Method::GET, path, None);
            assert!(!attributes.resource_request, "{path}");
            assert_eq!(attributes.verb, "get");
            assert_eq!(attributes.path, path);
        }
    }
}
