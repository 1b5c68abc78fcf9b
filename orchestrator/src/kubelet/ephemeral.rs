//! Ephemeral containers (`kubectl debug`): added to a running pod through
//! `pods/ephemeralcontainers`, started once in its sandbox (its network,
//! its volumes), never restarted, reported in
//! `status.ephemeralContainerStatuses`. With `targetContainerName` the
//! debug container joins the target's process namespace (its `ps` lists
//! the target's processes) and sees the target's mounts, which is what
//! sharing it shows on Linux (`/proc/1/root`).

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{Value, json};
use wasmkube_runtime::container::Stopper;
use wasmkube_runtime::{ContainerSpec, Mount, Sandbox};

use super::Kubelet;
use crate::events::EventType;

/// The ephemeral containers one pod's worker has started.
pub(super) struct Ephemeral {
    kubelet: Arc<Kubelet>,
    pod: Arc<Value>,
    sandbox: Sandbox,
    /// The pod's own containers as the runtime runs them (for targets).
    containers: Vec<ContainerSpec>,
    started: HashMap<String, Stopper>,
}

impl Ephemeral {
    pub(super) fn new(
        kubelet: &Arc<Kubelet>,
        pod: &Arc<Value>,
        sandbox: &Sandbox,
        containers: &[ContainerSpec],
    ) -> Self {
        Ephemeral {
            kubelet: Arc::clone(kubelet),
            pod: Arc::clone(pod),
            sandbox: sandbox.clone(),
            containers: containers.to_vec(),
            started: HashMap::new(),
        }
    }

    /// Starts those of `wanted` (the pod's `spec.ephemeralContainers`) not
    /// started yet.
    pub(super) async fn start_new(&mut self, wanted: &Value) {
        for ephemeral in wanted.as_array().into_iter().flatten() {
            let name = ephemeral["name"].as_str().unwrap_or_default().to_string();
            if name.is_empty() || self.started.contains_key(&name) {
                continue;
            }
            let field = format!("spec.ephemeralContainers{{{name}}}");
            let image_id = match self.pull(ephemeral, &field).await {
                Ok(id) => id,
                Err(reason) => {
                    self.report(&name, ephemeral, json!({"waiting": {"reason": reason}}), "")
                        .await;
                    // Marked started so a failed pull is not retried forever.
                    self.started.insert(name, Stopper::none());
                    continue;
                }
            };
            let spec = spec_of(ephemeral, &self.containers);
            match self.sandbox.start_container(&spec, 0).await {
                Ok(running) => {
                    let started_at = super::status::time(running.started_at());
                    self.started.insert(name.clone(), running.stopper());
                    self.kubelet
                        .recorder
                        .record(
                            &self.pod,
                            EventType::Normal,
                            "Started",
                            &format!("Started container {name}"),
                            Some(&field),
                        )
                        .await;
                    self.report(
                        &name,
                        ephemeral,
                        json!({"running": {"startedAt": started_at}}),
                        &image_id,
                    )
                    .await;
                    let (kubelet, pod, ephemeral) = (
                        Arc::clone(&self.kubelet),
                        Arc::clone(&self.pod),
                        ephemeral.clone(),
                    );
                    tokio::spawn(async move {
                        let exit = running.wait().await;
                        let state = json!({"terminated": {
                            "exitCode": exit.exit_code,
                            "reason": exit.reason.as_str(),
                            "startedAt": super::status::time(exit.started_at),
                            "finishedAt": super::status::time(exit.finished_at),
                        }});
                        report(&kubelet, &pod, &name, &ephemeral, state, &image_id).await;
                    });
                }
                Err(e) => {
                    let message = e.to_string();
                    self.kubelet
                        .recorder
                        .record(
                            &self.pod,
                            EventType::Warning,
                            "Failed",
                            &format!("Error: {message}"),
                            Some(&field),
                        )
                        .await;
                    self.report(
                        &name,
                        ephemeral,
                        json!({"waiting": {"reason": "CreateContainerError", "message": message}}),
                        &image_id,
                    )
                    .await;
                    self.started.insert(name, Stopper::none());
                }
            }
        }
    }

    /// Stops every ephemeral container (the pod is stopping).
    pub(super) fn stop_all(&self) {
        for stopper in self.started.values() {
            stopper.stop();
        }
    }

    async fn pull(&self, ephemeral: &Value, field: &str) -> Result<String, &'static str> {
        let mut as_container = ephemeral.clone();
        if let Some(o) = as_container.as_object_mut() {
            o.remove("targetContainerName");
        }
        let container: Container =
            serde_json::from_value(as_container).map_err(|_| "InvalidImageName")?;
        let typed: Pod =
            serde_json::from_value(Value::clone(&self.pod)).map_err(|_| "ErrImagePull")?;
        let keyring = super::images::pull_secrets(&self.kubelet, &typed);
        super::images::pull_one(&self.kubelet, &self.pod, &container, field, &keyring).await
    }

    async fn report(&self, name: &str, ephemeral: &Value, state: Value, image_id: &str) {
        report(&self.kubelet, &self.pod, name, ephemeral, state, image_id).await;
    }
}

/// Writes one ephemeral container's status.
async fn report(
    kubelet: &Kubelet,
    pod: &Value,
    name: &str,
    ephemeral: &Value,
    state: Value,
    image_id: &str,
) {
    let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
    let status = json!({
        "name": name,
        "image": ephemeral["image"],
        "imageID": image_id,
        "containerID": format!("wasmkube://{uid}/{name}/0"),
        "ready": false,
        "restartCount": 0,
        "state": state,
        "lastState": {},
    });
    super::worker::update_status(kubelet, pod, |next| {
        let list = &mut next["status"]["ephemeralContainerStatuses"];
        if !list.is_array() {
            *list = json!([]);
        }
        let Some(list) = list.as_array_mut() else {
            return;
        };
        match list.iter_mut().find(|s| s["name"] == name) {
            Some(existing) => *existing = status.clone(),
            None => list.push(status.clone()),
        }
    })
    .await;
}

/// The runtime's spec of an ephemeral container: its own command, env
/// values, mounts and terminal, in the pod's sandbox; with a target, the
/// target's mounts too.
fn spec_of(ephemeral: &Value, containers: &[ContainerSpec]) -> ContainerSpec {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    let mut mounts: Vec<Mount> = ephemeral["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| Mount {
            volume: m["name"].as_str().unwrap_or_default().to_string(),
            mount_path: m["mountPath"].as_str().unwrap_or_default().to_string(),
            read_only: m["readOnly"].as_bool().unwrap_or(false),
            sub_path: m["subPath"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        })
        .collect();
    let target = ephemeral["targetContainerName"]
        .as_str()
        .and_then(|t| containers.iter().find(|c| c.name == t));
    if let Some(target) = target {
        for mount in &target.mounts {
            if !mounts.iter().any(|m| m.mount_path == mount.mount_path) {
                mounts.push(mount.clone());
            }
        }
    }
    ContainerSpec {
        name: ephemeral["name"].as_str().unwrap_or_default().to_string(),
        image: ephemeral["image"].as_str().unwrap_or_default().to_string(),
        command: strings(&ephemeral["command"]),
        args: strings(&ephemeral["args"]),
        env: ephemeral["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                Some((
                    e["name"].as_str()?.to_string(),
                    e["value"].as_str().unwrap_or_default().to_string(),
                ))
            })
            .collect(),
        working_dir: ephemeral["workingDir"].as_str().map(str::to_string),
        mounts,
        open_stdin: ephemeral["stdin"].as_bool().unwrap_or(false),
        stdin_once: ephemeral["stdinOnce"].as_bool().unwrap_or(false),
        tty: ephemeral["tty"].as_bool().unwrap_or(false),
        run_as_user: ephemeral["securityContext"]["runAsUser"]
            .as_u64()
            .and_then(|u| u32::try_from(u).ok()),
        process_namespace: target.map(|t| t.name.clone()),
        ..ContainerSpec::default()
    }
}
