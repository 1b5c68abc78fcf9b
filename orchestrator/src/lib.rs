//! wasmkube: a Kubernetes-compatible orchestrator whose containers are
//! WebAssembly (WASI) guests in one wasmtime host process.
//!
//! # Where to start
//!
//! [`play::play`] runs Pod manifests directly on the runtime
//! (`wasmkube play -f pod.yaml`): [`manifest`] reads them, [`admission`]
//! validates them, [`kubelet::pod_spec`] translates them for the runtime
//! crate `wasmkube_runtime`.
//!
//! # Layout
//!
//! - [`manifest`]: multi-document YAML into typed objects, strict fields.
//! - [`admission`]: validation with Kubernetes' field paths and wording.
//! - [`quantity`]: resource quantities (`128Mi`, `500m`).
//! - [`kubelet`]: Pods into runtime pods.
//! - [`play`]: the `play` command.
//! - [`data_dir`]: where wasmkube keeps its state by default.

pub mod admission;
pub mod api;
pub mod cluster;
pub mod controllers;
pub mod data_dir;
pub mod events;
pub mod kubelet;
pub mod manifest;
pub mod patch;
pub mod play;
pub mod quantity;
pub mod registry;
pub mod scheduler;
pub mod schema;
pub mod server;
pub mod store;
