//! `kubectl exec`: commands run in a running container of a pod this
//! kubelet hosts, through the runtime's exec sessions.

use futures::future::BoxFuture;
use serde_json::Value;
use wasmkube_runtime::{ContainerSpec, ExecOptions, ExecSession, Sandbox};

use super::Kubelet;
use crate::api::PodExec;
use crate::registry::Error;
use crate::registry::metadata::str_at;

/// What exec needs of a running pod.
#[derive(Clone)]
pub(super) struct PodHandle {
    pub(super) sandbox: Sandbox,
    pub(super) containers: Vec<ContainerSpec>,
}

impl PodExec for Kubelet {
    fn exec(
        &self,
        pod: &Value,
        container: &str,
        command: Vec<String>,
        options: ExecOptions,
    ) -> BoxFuture<'static, Result<ExecSession, Error>> {
        let uid = str_at(pod, "/metadata/uid").unwrap_or_default();
        let handle = self
            .pods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(uid)
            .cloned();
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
}
