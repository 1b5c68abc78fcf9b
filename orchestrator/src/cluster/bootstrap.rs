//! What a new cluster holds before anything else runs: the system
//! namespaces and priority classes, the `kubernetes` Service, the default
//! StorageClass; and where that Service points once the API is served.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde_json::json;

use crate::controllers;
use crate::registry::kinds::RBAC_GROUP;
use crate::registry::{self, Registry, WriteOptions};

/// Points the `kubernetes` Service at the API served on `address`
/// (its Endpoints, its EndpointSlice and its target port), as the API
/// server's endpoint reconciler does.
///
/// Pods reach the API only through that Service: straight to the
/// listener (on any of the host's addresses) is refused.
pub async fn publish_api(registry: &Registry, address: SocketAddr) -> Result<(), registry::Error> {
    let ip = if address.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        address.ip()
    };
    let port = address.port();
    let options = WriteOptions::manager("wasmkube");
    let services = registry.resource("", "Service");
    registry
        .update_with(
            &services,
            Some("default"),
            API_SERVICE,
            None,
            &options,
            |current| {
                let mut next = current.clone();
                next["spec"]["ports"][0]["targetPort"] = json!(port);
                Ok(next)
            },
        )
        .await?;
    let endpoints = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": API_SERVICE, "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": ip.to_string()}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    });
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": API_SERVICE, "labels": {"kubernetes.io/service-name": API_SERVICE}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip.to_string()], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    });
    for (kind, group, body) in [
        ("Endpoints", "", endpoints),
        ("EndpointSlice", "discovery.k8s.io", slice),
    ] {
        let resource = registry.resource(group, kind);
        let existing = registry.find(&resource, Some("default"), API_SERVICE)?;
        match existing {
            None => {
                registry
                    .create(&resource, Some("default"), body, &options)
                    .await?;
            }
            Some(_) => {
                registry
                    .update_with(
                        &resource,
                        Some("default"),
                        API_SERVICE,
                        None,
                        &options,
                        |current| {
                            let mut next = body.clone();
                            next["metadata"] = current["metadata"].clone();
                            next["metadata"]["labels"] = body["metadata"]["labels"].clone();
                            Ok(next)
                        },
                    )
                    .await?;
            }
        }
    }
    Ok(())
}

/// The `kubernetes` Service in `default`: the API at the first cluster IP.
const API_SERVICE: &str = "kubernetes";

/// Creates the system objects a cluster starts with (what exists stays).
pub async fn bootstrap(registry: &Registry) -> Result<(), registry::Error> {
    for name in crate::registry::SYSTEM_NAMESPACES {
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        ensure(registry, ("", "Namespace"), None, body).await?;
    }
    for (name, value, description) in crate::registry::kinds::SYSTEM_PRIORITY_CLASSES {
        let body = json!({
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, "description": description,
        });
        ensure(registry, ("scheduling.k8s.io", "PriorityClass"), None, body).await?;
    }
    for role in crate::auth::defaults::cluster_roles() {
        ensure(registry, (RBAC_GROUP, "ClusterRole"), None, role).await?;
    }
    for binding in crate::auth::defaults::cluster_role_bindings() {
        ensure(registry, (RBAC_GROUP, "ClusterRoleBinding"), None, binding).await?;
    }
    let api = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": API_SERVICE, "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "clusterIP": registry.service_network().api_address().to_string(),
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
            "sessionAffinity": "None",
        },
    });
    ensure(registry, ("", "Service"), Some("default"), api).await?;
    // The default StorageClass: directories under the data directory.
    let class = json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": controllers::volumes::LOCAL_PATH_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": controllers::volumes::LOCAL_PATH,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    });
    ensure(registry, ("storage.k8s.io", "StorageClass"), None, class).await
}

/// Creates `body` (of the kind `(group, kind)`) unless an object of its
/// name exists: what a user changed stays as they left it.
async fn ensure(
    registry: &Registry,
    (group, kind): (&str, &str),
    namespace: Option<&str>,
    body: serde_json::Value,
) -> Result<(), registry::Error> {
    let resource = registry.resource(group, kind);
    let name = body["metadata"]["name"].as_str().unwrap_or_default();
    if registry.find(&resource, namespace, name)?.is_some() {
        return Ok(());
    }
    match registry
        .create(
            &resource,
            namespace,
            body,
            &WriteOptions::manager("wasmkube"),
        )
        .await
    {
        Ok(_) | Err(registry::Error::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
