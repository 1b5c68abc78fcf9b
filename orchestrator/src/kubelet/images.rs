//! A pod's images, made present before its containers start, as the
//! kubelet's image manager does: each container's `imagePullPolicy`, the
//! pod's `imagePullSecrets`, the events kubectl shows (`Pulling`,
//! `Pulled`, `Failed`, `BackOff`) and `ErrImagePull` → `ImagePullBackOff`
//! with back-off until the pull succeeds or the pod goes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::Value;
use tokio::sync::watch;
use wasmkube_runtime::{Keyring, PullError, PullOutcome, PullPolicy};

use super::sources::Sources;
use super::{Kubelet, Signal};
use crate::events::EventType;

/// Image and imageID per container name, for container statuses.
pub(super) type Images = HashMap<String, (String, String)>;

/// Longest wait between pulls of a failing image (the kubelet's).
const MAX_PULL_BACKOFF: Duration = Duration::from_secs(300);

/// Pulls every image of the pod as its policies ask, retrying failures
/// with back-off. `None` when the pod was deleted or the node stopped
/// while waiting (deletion already finished).
pub(super) async fn pull_all(
    kubelet: &Kubelet,
    pod: &Value,
    typed: &Pod,
    start_time: &str,
    signal: &mut watch::Receiver<Signal>,
) -> Option<Images> {
    let spec = typed.spec.as_ref()?;
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| (c, format!("spec.initContainers{{{}}}", c.name)))
        .chain(
            spec.containers
                .iter()
                .map(|c| (c, format!("spec.containers{{{}}}", c.name))),
        );
    let mut images = Images::new();
    for (container, field) in containers {
        let image = container.image.clone().unwrap_or_default();
        let mut delay: Option<Duration> = None;
        loop {
            let keyring = pull_secrets(kubelet, typed);
            match pull_one(kubelet, pod, container, &field, &keyring).await {
                Ok(image_id) => {
                    images.insert(container.name.clone(), (image.clone(), image_id));
                    break;
                }
                Err(reason) => {
                    // A pull that failed before is in back-off; an image
                    // that may never be pulled stays ErrImageNeverPull.
                    let backing_off = delay.is_some() && reason == "ErrImagePull";
                    let message = format!("Back-off pulling image {image:?}");
                    let shown = if backing_off {
                        "ImagePullBackOff"
                    } else {
                        reason
                    };
                    if backing_off {
                        let recorder = &kubelet.recorder;
                        recorder
                            .record(pod, EventType::Normal, "BackOff", &message, Some(&field))
                            .await;
                        recorder
                            .record(
                                pod,
                                EventType::Warning,
                                "Failed",
                                &format!("Error: {shown}"),
                                Some(&field),
                            )
                            .await;
                    }
                    super::worker::report_waiting_for(
                        kubelet,
                        pod,
                        &container.name,
                        shown,
                        backing_off.then_some(message.as_str()),
                        start_time,
                    )
                    .await;
                    let next = match delay {
                        None => kubelet.backoff.initial,
                        Some(d) => (d * 2).min(MAX_PULL_BACKOFF),
                    };
                    delay = Some(next);
                    tokio::select! {
                        _ = tokio::time::sleep(next) => {}
                        s = super::worker::wait_signal(signal) => {
                            if s == Signal::Delete {
                                kubelet.finish_deletion(pod).await;
                            }
                            return None;
                        }
                    }
                }
            }
        }
    }
    Some(images)
}

/// One container's image; the imageID, or the waiting reason of the failure
/// (events already recorded).
pub(super) async fn pull_one(
    kubelet: &Kubelet,
    pod: &Value,
    container: &Container,
    field: &str,
    keyring: &Keyring,
) -> Result<String, &'static str> {
    let image = container.image.as_deref().unwrap_or_default();
    let policy = match container.image_pull_policy.as_deref() {
        Some("Always") => PullPolicy::Always,
        Some("Never") => PullPolicy::Never,
        _ => PullPolicy::IfNotPresent,
    };
    let recorder = &kubelet.recorder;
    let record = |kind, reason: &'static str, message: String| async move {
        recorder
            .record(pod, kind, reason, &message, Some(field))
            .await
    };
    // "Pulling" when the policy asks for a pull: `Always`, or an image the
    // node lacks. A built-in image under `Always` is "pulled" from the
    // binary, so a user sees what the guide shows.
    let pulls = policy == PullPolicy::Always
        || (policy == PullPolicy::IfNotPresent && !kubelet.runtime.has_image(image));
    if pulls {
        record(
            EventType::Normal,
            "Pulling",
            format!("Pulling image {image:?}"),
        )
        .await;
    }
    let started = Instant::now();
    match kubelet.runtime.pull_image(image, policy, keyring).await {
        Ok(PullOutcome::Present(found)) if pulls => {
            let size = std::fs::metadata(&found.path).map(|m| m.len()).unwrap_or(0);
            let message = pulled(image, started.elapsed(), size);
            record(EventType::Normal, "Pulled", message).await;
            Ok(found.image_id)
        }
        Ok(PullOutcome::Present(found)) => {
            record(
                EventType::Normal,
                "Pulled",
                format!("Container image {image:?} already present on machine"),
            )
            .await;
            Ok(found.image_id)
        }
        Ok(PullOutcome::Pulled {
            image: found, size, ..
        }) => {
            let message = pulled(image, started.elapsed(), size);
            record(EventType::Normal, "Pulled", message).await;
            Ok(found.image_id)
        }
        Err(PullError::NeverPull { .. }) => {
            record(
                EventType::Warning,
                "ErrImageNeverPull",
                format!("Container image {image:?} is not present with pull policy of Never"),
            )
            .await;
            record(
                EventType::Warning,
                "Failed",
                "Error: ErrImageNeverPull".into(),
            )
            .await;
            Err("ErrImageNeverPull")
        }
        Err(e) => {
            tracing::warn!(image, "pull failed: {e}");
            record(
                EventType::Warning,
                "Failed",
                format!("Failed to pull image {image:?}: {e}"),
            )
            .await;
            record(EventType::Warning, "Failed", "Error: ErrImagePull".into()).await;
            Err("ErrImagePull")
        }
    }
}

/// The credentials in the pod's `imagePullSecrets` (those that exist and
/// are of a Docker config type), in order.
pub(super) fn pull_secrets(kubelet: &Kubelet, pod: &Pod) -> Keyring {
    let mut keyring = Keyring::default();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let sources = kubelet.sources();
    let names = pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.as_ref())
        .into_iter()
        .flatten()
        .map(|r| r.name.as_str());
    for name in names {
        let Some(secret) = sources.secret(namespace, name) else {
            tracing::warn!(namespace, secret = name, "imagePullSecret not found");
            continue;
        };
        let key = match secret.type_.as_deref() {
            Some("kubernetes.io/dockerconfigjson") => ".dockerconfigjson",
            Some("kubernetes.io/dockercfg") => ".dockercfg",
            _ => continue,
        };
        let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) else {
            continue;
        };
        match Keyring::from_docker_config(&bytes.0) {
            Ok(ring) => keyring.extend(&ring),
            Err(e) => tracing::warn!(namespace, secret = name, "{e}"),
        }
    }
    keyring
}

/// The kubelet's `Pulled` message for an image pulled in `took`.
fn pulled(image: &str, took: Duration, size: u64) -> String {
    let took = go_duration(took);
    format!(
        "Successfully pulled image {image:?} in {took} ({took} including waiting). Image size: {size} bytes."
    )
}

/// A duration as Go prints one (`1.234s`, `523ms`), which kubelet events use.
fn go_duration(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.3}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}
