//! What the cluster measures of itself.
//!
//! - [`resource`]: the resource metrics pipeline: the kubelet's samples
//!   of each container's CPU and memory and of the node's, turned into
//!   rates over a window as metrics-server reports them, for
//!   metrics.k8s.io (`kubectl top`) and the HorizontalPodAutoscaler.
//! - [`duration`]: durations written as Go writes them (`15.002s`), as
//!   the metrics API's `window` is.

pub mod duration;
pub mod resource;

pub use resource::{ContainerSample, NodeSample, PodSample, ResourceMetrics};
