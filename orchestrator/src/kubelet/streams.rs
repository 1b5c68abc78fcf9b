//! The kubelet's streaming server: `kubectl exec` runs commands in a
//! running container of a pod this kubelet hosts (the runtime's exec
//! sessions), `kubectl port-forward` connects to a port inside its network.

use futures::future::BoxFuture;
use serde_json::Value;
use wasmkube_runtime::net::PodConnection;
use wasmkube_runtime::{ContainerSpec, ExecOptions, ExecSession, Sandbox};

use super::Kubelet;
use crate::api::PodStreams;
use crate::registry::Error;
use crate::registry::metadata::str_at;

/// What exec, port-forward and the metrics scrape need of a running pod.
#[derive(Clone)]
pub(super) struct PodHandle {
    pub(super) sandbox: Sandbox,
    pub(super) containers: Vec<ContainerSpec>,
    pub(super) status: tokio::sync::watch::Receiver<wasmkube_runtime::PodStatus>,
}

impl Kubelet {
    fn handle(&self, pod: &Value) -> Option<PodHandle> {
        let uid = str_at(pod, "/metadata/uid").unwrap_or_default();
        self.pods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(uid)
            .cloned()
    }
}

impl PodStreams for Kubelet {
    fn exec(
        &self,
        pod: &Value,
        container: &str,
        command: Vec<String>,
        options: ExecOptions,
    ) -> BoxFuture<'static, Result<ExecSession, Error>> {
        let handle = self.handle(pod);
        let container = container.to_string();
        Box::pin(async move {
            let handle = handle
                .ok_or_else(|| Error::BadRequest("the pod is not running on this node".into()))?;
            let spec = handle
                .containers
                .iter()
                .find(|c| c.name == container)
                .ok_or_else(|| Error::BadRequest(format!("container {container} not found")))?;
            handle
                .sandbox
                .exec_session(spec, &command, options)
                .await
                .map_err(|e| Error::BadRequest(e.to_string()))
        })
    }

    fn attach(
        &self,
        pod: &Value,
        container: &str,
        options: ExecOptions,
    ) -> Result<ExecSession, Error> {
        let handle = self
            .handle(pod)
            .ok_or_else(|| Error::BadRequest("the pod is not running on this node".into()))?;
        handle
            .sandbox
            .attach(container, options)
            .map_err(|e| Error::BadRequest(e.to_string()))
    }

    fn dial(&self, pod: &Value, port: u16) -> Result<PodConnection, Error> {
        let name = str_at(pod, "/metadata/name").unwrap_or_default();
        let uid = str_at(pod, "/metadata/uid").unwrap_or_default();
        let handle = self
            .handle(pod)
            .ok_or_else(|| Error::BadRequest(format!("pod {name} is not running on this node")))?;
        handle.sandbox.net().dial_loopback(port).map_err(|e| {
            Error::BadRequest(format!(
                "error forwarding port {port} to pod {name}, uid {uid}: failed to connect to localhost:{port} inside the pod's network: {e}"
            ))
        })
    }
}
