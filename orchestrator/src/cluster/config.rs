//! Every setting of a cluster, as the control loops and the kubelet read
//! them. Embedders set them through [`ClusterBuilder`](super::ClusterBuilder).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use wasmkube_runtime::Backoff;

use crate::cidr::Cidr;
use crate::controllers;
use crate::kubelet;
use crate::registry::allocator::ServiceNetwork;

/// How to run a cluster.
/// metrics-server's default resolution.
pub const DEFAULT_METRIC_RESOLUTION: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Where images, the compile cache and pods' files live (and, for a
    /// cluster that is not in memory, the store and its key).
    pub data_dir: PathBuf,
    /// Where images and compiled code live when not in the data
    /// directory (an in-memory cluster's: in memory).
    pub artifacts_dir: Option<PathBuf>,
    /// The one node's name.
    pub node_name: String,
    /// Restart back-off of containers.
    pub backoff: Backoff,
    /// Most pods the node takes.
    pub max_pods: u32,
    /// The network pod IPs come from.
    pub pod_cidr: Cidr,
    /// Where Services' cluster IPs and node ports come from.
    pub service_network: ServiceNetwork,
    /// The host address node ports and LoadBalancer ports listen on.
    pub node_port_address: IpAddr,
    /// How long a Job waits before replacing a failed pod.
    pub job_backoff: controllers::job::Backoff,
    /// Host directories pods' hostPath volumes may use; all when `None`.
    pub allowed_host_paths: Option<Vec<PathBuf>>,
    /// How long an Event lives after its last write.
    pub event_ttl: Duration,
    /// How the kubelet reaches registries.
    pub registry: wasmkube_runtime::RegistryConfig,
    /// Where bare image names the node lacks are pulled from.
    pub default_registry: Option<String>,
    /// When unused images are collected.
    pub image_gc: wasmkube_runtime::images::gc::GcPolicy,
    /// How often image garbage collection looks (the kubelet's 5 minutes).
    pub image_gc_period: Duration,
    /// Size at which a container's log file rotates (the kubelet's
    /// `--container-log-max-size`, 10 MiB): the current file and one
    /// rotated file are kept per container instance.
    pub container_log_max_bytes: u64,
    /// How often the kubelet scrapes containers' CPU and memory for the
    /// metrics API and autoscaling (metrics-server's
    /// `--metric-resolution`); never when zero.
    pub metric_resolution: Duration,
    /// How the HorizontalPodAutoscaler controller runs.
    pub autoscaling: controllers::hpa::Settings,
    /// The embedder's own interfaces for guests, and who gets them.
    pub host_interfaces: wasmkube_runtime::HostInterfaces,
    pub interface_grants: kubelet::pod_spec::InterfaceGrants,
    /// Where images are compiled: in this process unless told otherwise.
    pub compiler: wasmkube_runtime::engine::Compiler,
}

impl ClusterConfig {
    /// `wasmkube serve`'s defaults, rooted at `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> ClusterConfig {
        ClusterConfig {
            data_dir: data_dir.into(),
            artifacts_dir: None,
            node_name: kubelet::default_node_name(),
            backoff: Backoff::default(),
            max_pods: 110,
            pod_cidr: "10.244.0.0/16".parse().expect("a valid CIDR"),
            service_network: ServiceNetwork::default(),
            node_port_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            job_backoff: controllers::job::Backoff::default(),
            allowed_host_paths: None,
            event_ttl: crate::events::DEFAULT_TTL,
            registry: wasmkube_runtime::RegistryConfig::default(),
            default_registry: None,
            image_gc: wasmkube_runtime::images::gc::GcPolicy::default(),
            image_gc_period: Duration::from_secs(300),
            container_log_max_bytes: wasmkube_runtime::DEFAULT_LOG_MAX_BYTES,
            metric_resolution: DEFAULT_METRIC_RESOLUTION,
            autoscaling: controllers::hpa::Settings::default(),
            host_interfaces: wasmkube_runtime::HostInterfaces::default(),
            interface_grants: kubelet::pod_spec::InterfaceGrants::default(),
            compiler: wasmkube_runtime::engine::Compiler::InProcess,
        }
    }
}
