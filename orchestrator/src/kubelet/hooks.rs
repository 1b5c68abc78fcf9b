//! preStop hooks: when a pod is deleted, each running container's hook runs
//! (all of them at once) before the containers stop, bounded by the pod's
//! grace period. A WASI guest cannot catch a signal, so after its hook it
//! stops at once, as a process without a SIGTERM handler would.

use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::Value;
use wasmkube_runtime::probe::check;
use wasmkube_runtime::{ContainerSpec, ProbeAction, Sandbox};

use super::Kubelet;
use super::probes::{Handlers, Refusal, action};
use crate::events::EventType;

/// Kubernetes' default `terminationGracePeriodSeconds`.
const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// What a preStop hook does.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Hook {
    Action(ProbeAction),
    Sleep(Duration),
}

/// The preStop hook of container `c` (at `field`), if it has one.
fn pre_stop(c: &Container, field: &str) -> Result<Option<Hook>, Refusal> {
    let Some(handler) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) else {
        return Ok(None);
    };
    let field = format!("{field}.lifecycle.preStop");
    if let Some(sleep) = &handler.sleep {
        return Ok(Some(Hook::Sleep(Duration::from_secs(
            sleep.seconds.max(0) as u64
        ))));
    }
    if handler.tcp_socket.is_some() {
        return Err((
            format!("{field}.tcpSocket"),
            "tcpSocket is not supported as a lifecycle handler".into(),
        ));
    }
    let handlers = Handlers {
        http_get: handler.http_get.as_ref(),
        tcp_socket: None,
        exec: handler.exec.as_ref(),
    };
    match action(c, handlers, &field)? {
        Some(action) => Ok(Some(Hook::Action(action))),
        None => Err((field, "a hook needs one of exec, httpGet or sleep".into())),
    }
}

/// The grace period of a pod being deleted: what the deletion asked for,
/// else the pod's own, else 30 s.
pub(super) fn grace_period(pod: &Pod) -> Duration {
    pod.metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .map_or(DEFAULT_GRACE, |s| Duration::from_secs(s.max(0) as u64))
}

/// Runs the preStop hooks of the `running` containers (by name), at most
/// `grace` in all; each failure is a `FailedPreStopHook` event.
pub(super) async fn run_pre_stop(
    kubelet: &Kubelet,
    pod: &Value,
    typed: &Pod,
    sandbox: &Sandbox,
    specs: &[ContainerSpec],
    running: &[String],
    grace: Duration,
) {
    let Some(spec) = typed.spec.as_ref() else {
        return;
    };
    let in_pod = format!(
        "{}_{}({})",
        typed.metadata.name.as_deref().unwrap_or(""),
        typed.metadata.namespace.as_deref().unwrap_or(""),
        typed.metadata.uid.as_deref().unwrap_or("")
    );
    let mut hooks = Vec::new();
    for (i, c) in spec.containers.iter().enumerate() {
        if !running.contains(&c.name) {
            continue;
        }
        let Some(runtime_spec) = specs.iter().find(|s| s.name == c.name) else {
            continue;
        };
        let field = format!("spec.containers[{i}]");
        let outcome = match pre_stop(c, &field) {
            Ok(None) => continue,
            Ok(Some(hook)) => Ok(hook),
            Err((field, message)) => Err(format!("{field}: {message}")),
        };
        let in_pod = in_pod.clone();
        hooks.push(async move {
            let failure = match outcome {
                Err(message) => Some(message),
                Ok(hook) => run_one(sandbox, runtime_spec, &hook, grace)
                    .await
                    .err()
                    .map(|error| describe(&hook, &c.name, &in_pod, &error)),
            };
            // Reported as soon as it is known: a slower hook may be cut
            // off by the grace period.
            if let Some(message) = failure {
                let field = format!("spec.containers{{{}}}", c.name);
                kubelet
                    .recorder
                    .record(
                        pod,
                        EventType::Warning,
                        "FailedPreStopHook",
                        &message,
                        Some(&field),
                    )
                    .await;
            }
        });
    }
    if hooks.is_empty() {
        return;
    }
    if tokio::time::timeout(grace, join_all(hooks)).await.is_err() {
        tracing::info!("preStop hooks ran past the grace period of {grace:?}");
    }
}

/// Runs one hook; `Err` says what went wrong (with the command's output
/// for an exec hook).
async fn run_one(
    sandbox: &Sandbox,
    spec: &ContainerSpec,
    hook: &Hook,
    grace: Duration,
) -> Result<(), String> {
    match hook {
        Hook::Sleep(duration) => {
            tokio::time::sleep(*duration).await;
            Ok(())
        }
        Hook::Action(ProbeAction::Exec { command }) => {
            match sandbox.exec(spec, command, None, grace).await {
                Ok(out) if out.exit_code == 0 => Ok(()),
                Ok(out) => Err(format!(
                    "command '{}' exited with {}: {}",
                    command.join(" "),
                    out.exit_code,
                    out.text().trim_end()
                )),
                Err(e) => Err(e.to_string()),
            }
        }
        Hook::Action(network) => check(sandbox.net(), network, grace).await,
    }
}

/// The kubelet's wording of a failed hook.
fn describe(hook: &Hook, container: &str, in_pod: &str, error: &str) -> String {
    match hook {
        Hook::Action(ProbeAction::Exec { command }) => format!(
            "Exec lifecycle hook ({command:?}) for Container {container:?} in Pod {in_pod:?} failed - error: {error}"
        ),
        Hook::Action(ProbeAction::HttpGet(get)) => format!(
            "HTTP lifecycle hook ({}) for Container {container:?} in Pod {in_pod:?} failed - error: {error}",
            get.path
        ),
        other => format!(
            "{other:?} lifecycle hook for Container {container:?} in Pod {in_pod:?} failed - error: {error}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(yaml: &str) -> Container {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn pre_stop_hooks_translate_or_name_their_field() {
        let c = container("name: c\nlifecycle: {preStop: {exec: {command: [sh, -c, 'echo bye']}}}");
        assert_eq!(
            pre_stop(&c, "spec.containers[0]").unwrap(),
            Some(Hook::Action(ProbeAction::Exec {
                command: vec!["sh".into(), "-c".into(), "echo bye".into()]
            }))
        );
        let c = container("name: c\nlifecycle: {preStop: {sleep: {seconds: 2}}}");
        assert_eq!(
            pre_stop(&c, "spec.containers[0]").unwrap(),
            Some(Hook::Sleep(Duration::from_secs(2)))
        );
        assert_eq!(pre_stop(&container("name: c"), "x").unwrap(), None);
        let c = container("name: c\nlifecycle: {preStop: {tcpSocket: {port: 80}}}");
        assert_eq!(
            pre_stop(&c, "spec.containers[0]").unwrap_err().0,
            "spec.containers[0].lifecycle.preStop.tcpSocket"
        );
    }

    #[test]
    fn the_grace_period_comes_from_the_deletion_then_the_pod() {
        let mut pod: Pod = serde_yaml::from_str(
            "metadata: {name: p}\nspec: {containers: [], terminationGracePeriodSeconds: 5}",
        )
        .unwrap();
        assert_eq!(grace_period(&pod), Duration::from_secs(5));
        pod.metadata.deletion_grace_period_seconds = Some(1);
        assert_eq!(grace_period(&pod), Duration::from_secs(1));
        pod.spec.as_mut().unwrap().termination_grace_period_seconds = None;
        pod.metadata.deletion_grace_period_seconds = None;
        assert_eq!(grace_period(&pod), DEFAULT_GRACE);
    }
}
