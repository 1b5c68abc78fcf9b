//! wasmkube: a Kubernetes-compatible orchestrator whose containers are
//! WebAssembly (WASI) guests in one wasmtime host process.
//!
//! # Where to start
//!
//! [`cluster::Cluster`] is a whole single-node cluster: start one, then talk
//! to [`cluster::Cluster::router`] (in-process, e.g. with `kube::Client`) or
//! serve it with [`server::serve`] as `wasmkube serve` does. Every write goes
//! through the [`registry`] into the [`store`]; the [`scheduler`],
//! [`kubelet`] and [`controllers`] watch the store and converge toward it.
//! [`play::play`] runs Pod manifests without a server.
//!
//! # Layout
//!
//! - [`store`]: redb objects, one global revision, revision log, watches.
//! - [`registry`]: Kubernetes object semantics over the store (metadata,
//!   concurrency, status, deletion, selectors), the resource descriptors.
//! - [`api`]: the REST API (axum): discovery, OpenAPI, verbs, watch, Tables.
//! - [`patch`]: JSON, merge and strategic merge patches, with bounded work.
//! - [`yaml`]: YAML bodies decoded with bounded alias expansion.
//! - [`schema`]: OpenAPI schemas with Kubernetes' extensions.
//! - [`server`]: HTTPS, the CA and token, the kubeconfig.
//! - [`scheduler`], [`kubelet`], [`controllers`], [`events`].
//! - [`image_cli`]: `wasmkube image …` and the registry flags of `serve`.
//! - [`admission`], [`quantity`], [`manifest`]: validation and parsing.
//! - [`play`], [`data_dir`]: the serverless `play` command and defaults.

pub mod admission;
pub mod api;
pub mod cidr;
pub mod cluster;
pub mod controllers;
pub mod cron;
pub mod data_dir;
pub mod events;
pub mod flags;
pub mod image_cli;
pub mod kubelet;
pub mod manifest;
pub mod patch;
pub mod play;
pub mod proxy;
pub mod quantity;
pub mod registry;
pub mod scheduler;
pub mod schema;
pub mod server;
pub mod store;
pub mod yaml;
