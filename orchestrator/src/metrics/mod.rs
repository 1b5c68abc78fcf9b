//! What the cluster measures of itself.
//!
//! - [`resource`]: the resource metrics pipeline: the kubelet's samples
//!   of each container's CPU and memory and of the node's, turned into
//!   rates over a window as metrics-server reports them, for
//!   metrics.k8s.io (`kubectl top`) and the HorizontalPodAutoscaler.
//! - [`apiserver`]: the API server's request, storage and process
//!   metrics, for Prometheus (`/metrics`).
//! - [`workqueue`]: the controllers' work queues, under client-go's
//!   names.
//! - [`node_pages`]: the kubelet's `/metrics/cadvisor` and
//!   `/metrics/resource`, from its last scrape.
//! - [`exposition`]: Prometheus' text format, and histograms in it.
//! - [`duration`]: durations written as Go writes them (`15.002s`), as
//!   the metrics API's `window` is.

pub mod apiserver;
pub mod duration;
pub mod exposition;
pub mod node_pages;
pub mod resource;
pub mod workqueue;

pub use resource::{ContainerSample, NodeSample, PodSample, ResourceMetrics};
