//! What a new cluster holds before anything else runs: the system
//! namespaces and priority classes, the `kubernetes` Service, the default
//! StorageClass; and where that Service points once the API is served.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde_json::json;

use crate::controllers;
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
    let namespaces = registry.resource("", "Namespace");
    for name in crate::registry::SYSTEM_NAMESPACES {
        if registry.find(&namespaces, None, name)?.is_none() {
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            match registry
                .create(&namespaces, None, body, &WriteOptions::manager("wasmkube"))
                .await
            {
                Ok(_) | Err(registry::Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    let classes = registry.resource("scheduling.k8s.io", "PriorityClass");
    for (name, value, description) in crate::registry::kinds::SYSTEM_PRIORITY_CLASSES {
        if registry.find(&classes, None, name)?.is_none() {
            let body = json!({
                "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": {"name": name}, "value": value, "description": description,
            });
            match registry
                .create(&classes, None, body, &WriteOptions::manager("wasmkube"))
                .await
            {
                Ok(_) | Err(registry::Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    let services = registry.resource("", "Service");
    if registry
        .find(&services, Some("default"), API_SERVICE)?
        .is_none()
    {
        let body = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": API_SERVICE, "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {
                "clusterIP": registry.service_network().api_address().to_string(),
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
                "sessionAffinity": "None",
            },
        });
        match registry
            .create(
                &services,
                Some("default"),
                body,
                &WriteOptions::manager("wasmkube"),
            )
            .await
        {
            Ok(_) | Err(registry::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    // The default StorageClass: directories under the data directory.
    let classes = registry.resource("storage.k8s.io", "StorageClass");
    let class = controllers::volumes::LOCAL_PATH_CLASS;
    if registry.find(&classes, None, class)?.is_none() {
        let body = json!({
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": class,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": controllers::volumes::LOCAL_PATH,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        });
        match registry
            .create(&classes, None, body, &WriteOptions::manager("wasmkube"))
            .await
        {
            Ok(_) | Err(registry::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
