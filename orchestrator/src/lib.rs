//! wasmkube: a Kubernetes-compatible cluster whose containers are
//! WebAssembly (WASI) guests in one wasmtime host process.
//!
//! # Where to start
//!
//! [`Cluster::builder`] starts a whole single-node cluster inside your
//! program (its store in memory, or on a data directory);
//! [`Cluster::client`] is a [`kube::Client`] that calls its API
//! in-process, so everything kube-rs does (typed APIs, watches, server-side
//! apply, `kube::runtime` controllers) works against it;
//! [`ClusterBuilder::listen`] serves the same API over HTTPS for `kubectl`.
//!
//! ```
//! use k8s_openapi::api::core::v1::Pod;
//! use kube::api::{Api, ListParams};
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cluster = wasmkube::Cluster::builder().node_name("edge-1").start().await?;
//! let pods: Api<Pod> = Api::default_namespaced(cluster.client());
//! assert!(pods.list(&ListParams::default()).await?.items.is_empty());
//! cluster.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! The versions of [`kube`] and [`k8s_openapi`] the client is made with
//! are re-exported, so a program can name them without matching versions.
//!
//! # Layout
//!
//! The public surface is [`Cluster`], [`ClusterBuilder`] and [`Error`],
//! and for host interfaces of the program's own
//! ([`ClusterBuilder::host_interface`]) [`HostInterface`], [`GuestState`]
//! and the [`wasmtime`] guests are linked with.
//! The modules behind them are hidden from these docs (the `wasmkube`
//! binary and the tests use them; they change without notice):
//! `store` (redb, revisions, watches), `registry` (Kubernetes object
//! semantics), `api` (the REST API), `patch`, `yaml`, `schema`, `server`
//! (HTTPS, certificates), `scheduler`, `kubelet`, `controllers`, `proxy`,
//! `events`, `admission`, `metrics`, `image_cli`, `play`.

#![deny(missing_docs)]

mod cluster;

pub use cluster::{Cluster, ClusterBuilder, Error};
pub use k8s_openapi;
pub use kube;
pub use wasmkube_runtime::RegistryConfig;
pub use wasmkube_runtime::images::gc::GcPolicy;
pub use wasmkube_runtime::{GuestState, HostInterface, wasmtime};

#[doc(hidden)]
pub mod admission;
#[doc(hidden)]
pub mod api;
#[doc(hidden)]
pub mod auth;
#[doc(hidden)]
pub mod cidr;
#[doc(hidden)]
pub mod config_file;
#[doc(hidden)]
pub mod controllers;
#[doc(hidden)]
pub mod cron;
#[doc(hidden)]
pub mod custom;
#[doc(hidden)]
pub mod data_dir;
#[doc(hidden)]
pub mod events;
#[doc(hidden)]
pub mod flags;
pub mod host;
#[doc(hidden)]
pub mod image_cli;
#[doc(hidden)]
pub mod kubelet;
#[doc(hidden)]
pub mod manifest;
#[doc(hidden)]
pub mod metrics;
#[doc(hidden)]
pub mod network_policy;
#[doc(hidden)]
pub mod patch;
#[doc(hidden)]
pub mod play;
#[doc(hidden)]
pub mod proxy;
#[doc(hidden)]
pub mod quantity;
#[doc(hidden)]
pub mod quota;
#[doc(hidden)]
pub mod registry;
#[doc(hidden)]
pub mod scheduler;
#[doc(hidden)]
pub mod schema;
#[doc(hidden)]
pub mod server;
#[doc(hidden)]
pub mod service;
#[doc(hidden)]
pub mod store;
#[doc(hidden)]
pub mod yaml;
