//! Discovery: what groups, versions and resources the server has, in the
//! aggregated form (`apidiscovery.k8s.io` v2 and v2beta1, chosen from the
//! Accept header, since kubectl 1.27–1.29 accept only v2beta1) and in the
//! legacy documents older clients walk.

use axum::http::HeaderMap;
use serde_json::{Value, json};

use crate::registry::{Resource, Resources};

/// The discovery format a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    AggregatedV2,
    AggregatedV2Beta1,
    Legacy,
}

impl Format {
    /// The first format in the client's Accept list that the server has.
    pub fn negotiate(headers: &HeaderMap) -> Format {
        let accept = headers
            .get(axum::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json");
        for media in accept.split(',') {
            let params: Vec<&str> = media.split(';').map(str::trim).collect();
            let has = |p: &str| params.contains(&p);
            if has("g=apidiscovery.k8s.io") && has("as=APIGroupDiscoveryList") {
                if has("v=v2") {
                    return Format::AggregatedV2;
                }
                if has("v=v2beta1") {
                    return Format::AggregatedV2Beta1;
                }
                continue;
            }
            return Format::Legacy;
        }
        Format::Legacy
    }

    /// The Content-Type of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::AggregatedV2 => {
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
            }
            Format::AggregatedV2Beta1 => {
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
            }
            Format::Legacy => "application/json",
        }
    }

    fn api_version(self) -> &'static str {
        match self {
            Format::AggregatedV2Beta1 => "apidiscovery.k8s.io/v2beta1",
            _ => "apidiscovery.k8s.io/v2",
        }
    }
}

fn aggregated_resource(resource: &Resource) -> Value {
    let mut entry = json!({
        "resource": resource.plural,
        "responseKind": {"group": resource.group, "version": resource.version, "kind": resource.kind},
        "scope": if resource.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": resource.singular,
        "verbs": resource.verbs,
    });
    if !resource.short_names.is_empty() {
        entry["shortNames"] = json!(resource.short_names);
    }
    if !resource.categories.is_empty() {
        entry["categories"] = json!(resource.categories);
    }
    if !resource.subresources.is_empty() {
        entry["subresources"] = resource
            .subresources
            .iter()
            .map(|s| {
                let (group, version) = s
                    .group_version
                    .unwrap_or((resource.group, resource.version));
                json!({
                    "subresource": s.name,
                    "responseKind": {"group": group, "version": version, "kind": s.kind},
                    "verbs": s.verbs,
                })
            })
            .collect();
    }
    entry
}

fn aggregated_group(resources: &Resources, group: &str) -> Value {
    let versions: Vec<Value> = resources
        .group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| {
            let list: Vec<Value> = resources
                .in_version(g, v)
                .iter()
                .map(aggregated_resource)
                .collect();
            json!({"version": v, "resources": list, "freshness": "Current"})
        })
        .collect();
    let mut metadata = json!({"creationTimestamp": null});
    if !group.is_empty() {
        metadata["name"] = json!(group);
    }
    json!({"metadata": metadata, "versions": versions})
}

/// `/api` in the requested format.
pub fn core(resources: &Resources, format: Format) -> Value {
    match format {
        Format::Legacy => json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
        }),
        _ => json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": format.api_version(),
            "metadata": {},
            "items": [aggregated_group(resources, "")],
        }),
    }
}

fn named_groups(resources: &Resources) -> Vec<&'static str> {
    let mut groups: Vec<&'static str> = Vec::new();
    for (group, _) in resources.group_versions() {
        if !group.is_empty() && !groups.contains(&group) {
            groups.push(group);
        }
    }
    groups
}

/// The legacy `APIGroup` document of one group.
pub fn group(resources: &Resources, group: &str) -> Option<Value> {
    let versions: Vec<Value> = resources
        .group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    let preferred = versions.first()?.clone();
    Some(json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": versions,
        "preferredVersion": preferred,
    }))
}

/// `/apis` in the requested format.
pub fn groups(resources: &Resources, format: Format) -> Value {
    let names = named_groups(resources);
    match format {
        Format::Legacy => json!({
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": names.iter().filter_map(|g| {
                let mut doc = group(resources, g)?;
                let object = doc.as_object_mut()?;
                object.remove("kind");
                object.remove("apiVersion");
                Some(doc)
            }).collect::<Vec<_>>(),
        }),
        _ => json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": format.api_version(),
            "metadata": {},
            "items": names.iter().map(|g| aggregated_group(resources, g)).collect::<Vec<_>>(),
        }),
    }
}

/// The `APIResourceList` of one group version.
pub fn resource_list(resources: &Resources, group: &str, version: &str) -> Option<Value> {
    let in_version = resources.in_version(group, version);
    if in_version.is_empty() {
        return None;
    }
    let mut list = Vec::new();
    for resource in &in_version {
        let mut entry = json!({
            "name": resource.plural,
            "singularName": resource.singular,
            "namespaced": resource.namespaced,
            "kind": resource.kind,
            "verbs": resource.verbs,
            "storageVersionHash": storage_version_hash(resource),
        });
        if !resource.short_names.is_empty() {
            entry["shortNames"] = json!(resource.short_names);
        }
        if !resource.categories.is_empty() {
            entry["categories"] = json!(resource.categories);
        }
        list.push(entry);
        for sub in resource.subresources {
            let mut entry = json!({
                "name": format!("{}/{}", resource.plural, sub.name),
                "singularName": "",
                "namespaced": resource.namespaced,
                "kind": sub.kind,
                "verbs": sub.verbs,
            });
            if let Some((g, v)) = sub.group_version {
                entry["group"] = json!(g);
                entry["version"] = json!(v);
            }
            list.push(entry);
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": list,
    }))
}

/// The API server's storage version hash: the first 8 bytes of the SHA-256
/// of `group/version/kind`, in base64. Clients compare it to notice a
/// resource's storage version changing.
fn storage_version_hash(resource: &Resource) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let gvk = format!("{}/{}/{}", resource.group, resource.version, resource.kind);
    base64::engine::general_purpose::STANDARD.encode(&Sha256::digest(gvk.as_bytes())[..8])
}
