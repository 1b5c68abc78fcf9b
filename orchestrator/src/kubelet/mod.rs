//! The kubelet: the node side of wasmkube, turning Pods into pods of the
//! runtime. Today it translates a Pod's spec ([`pod_spec`]); the pod
//! workers, probes and status reporting of a full kubelet build on that.

pub mod host_ports;
pub mod pod_spec;
