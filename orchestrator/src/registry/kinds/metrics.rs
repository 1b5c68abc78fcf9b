//! metrics.k8s.io/v1beta1: PodMetrics and NodeMetrics, read-only views of
//! the resource metrics pipeline (served by `api::metrics`, never stored),
//! as metrics-server serves them on a cluster.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{Deserialize, Serialize};

use super::plain_hooks;
use crate::registry::resources::Resource;

/// The metrics API's group.
pub const GROUP: &str = "metrics.k8s.io";

/// The resource metrics of a pod.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(
    test,
    derive(schemars::JsonSchema),
    schemars(rename = "io.k8s.metrics.pkg.apis.metrics.v1beta1.PodMetrics")
)]
pub struct PodMetrics {
    /// APIVersion defines the versioned schema of this representation of an object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind is a string value representing the REST resource this object represents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Standard object's metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The following fields define time interval from which metrics were collected from the interval [Timestamp-Window, Timestamp].
    pub timestamp: Time,
    /// The window the CPU usage is averaged over, as a Go duration.
    pub window: String,
    /// Metrics for all containers are collected within the same time window.
    pub containers: Vec<ContainerMetrics>,
}

/// The resource metrics of a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(
    test,
    derive(schemars::JsonSchema),
    schemars(rename = "io.k8s.metrics.pkg.apis.metrics.v1beta1.ContainerMetrics")
)]
pub struct ContainerMetrics {
    /// Container name corresponding to the one from pod.spec.containers.
    pub name: String,
    /// The memory usage is the memory working set.
    pub usage: BTreeMap<String, Quantity>,
}

/// The resource metrics of a node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(
    test,
    derive(schemars::JsonSchema),
    schemars(rename = "io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetrics")
)]
pub struct NodeMetrics {
    /// APIVersion defines the versioned schema of this representation of an object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind is a string value representing the REST resource this object represents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Standard object's metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The following fields define time interval from which metrics were collected from the interval [Timestamp-Window, Timestamp].
    pub timestamp: Time,
    /// The window the CPU usage is averaged over, as a Go duration.
    pub window: String,
    /// The memory usage is the memory working set.
    pub usage: BTreeMap<String, Quantity>,
}

fn view(kind: &'static str, plural: &'static str, schema: &'static str) -> Resource {
    Resource {
        group: GROUP,
        version: "v1beta1",
        kind,
        plural,
        singular: "",
        namespaced: false,
        short_names: &[],
        categories: &[],
        verbs: &["get", "list"],
        subresources: &[],
        status_subresource: false,
        field_selectors: &[],
        schema,
        returns_deleted: false,
        custom: None,
        hooks: plain_hooks::<NodeMetrics>(),
    }
}

pub(super) fn pod_metrics() -> Resource {
    Resource {
        namespaced: true,
        hooks: plain_hooks::<PodMetrics>(),
        ..view(
            "PodMetrics",
            "pods",
            "io.k8s.metrics.pkg.apis.metrics.v1beta1.PodMetrics",
        )
    }
}

pub(super) fn node_metrics() -> Resource {
    view(
        "NodeMetrics",
        "nodes",
        "io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetrics",
    )
}

/// True for the metrics API's resources.
pub fn is_metrics(resource: &Resource) -> bool {
    resource.group == GROUP
}
