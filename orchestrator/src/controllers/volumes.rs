//! The persistent volume controller: binds claims to volumes, provisions
//! volumes for claims of the `local-path` class (a directory under the data
//! directory), releases and reclaims volumes whose claim is gone (Delete
//! removes a provisioned volume's data, Retain keeps it), and lifts the
//! `pvc-protection` / `pv-protection` finalizers once nothing uses them.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use super::driver::{self, Again, Reconciler, Watched};
use super::edit;
use super::owners::{deleting, finalizers, remove_finalizer};
use crate::events::{EventType, Recorder};
use crate::quantity::Quantity;
use crate::registry::kinds::{PV_PROTECTION, PVC_PROTECTION, is_default_class};
use crate::registry::metadata::text;
use crate::registry::{Error, ListOptions, Registry, Resource, Result, WriteOptions};

/// The provisioner of the built-in `local-path` class.
pub const LOCAL_PATH: &str = "wasmkube.io/local-path";
/// The built-in default StorageClass.
pub const LOCAL_PATH_CLASS: &str = "local-path";
const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
const MANAGER: &str = "persistentvolume-controller";
const RESYNC_EVERY: Duration = Duration::from_secs(15);

struct Kinds {
    volumes: Resource,
    claims: Resource,
    classes: Resource,
    pods: Resource,
}

struct Volumes {
    registry: Registry,
    kinds: Kinds,
    /// Where provisioned volumes live: `<data dir>/volumes/<pv name>`.
    root: PathBuf,
    recorder: Recorder,
    retries: driver::Retries,
}

pub async fn run(registry: Registry, data_dir: PathBuf, stop: watch::Receiver<bool>) {
    let kinds = Kinds {
        volumes: registry.resource("", "PersistentVolume"),
        claims: registry.resource("", "PersistentVolumeClaim"),
        classes: registry.resource("storage.k8s.io", "StorageClass"),
        pods: registry.resource("", "Pod"),
    };
    let watched = vec![
        Watched::from(kinds.volumes.clone()),
        Watched::from(kinds.claims.clone()),
        Watched::from(kinds.classes.clone()),
        Watched {
            resource: kinds.pods.clone(),
            relevant: |pod| claims_of(pod).next().is_some(),
        },
    ];
    let reconciler = Volumes {
        recorder: Recorder::new(registry.clone(), MANAGER, None),
        retries: driver::Retries::new(&registry, MANAGER),
        registry: registry.clone(),
        kinds,
        root: crate::kubelet::host_paths::provisioned_dir(&data_dir),
    };
    driver::run(
        registry,
        MANAGER,
        watched,
        driver::Pace {
            resync: RESYNC_EVERY,
            batch: Duration::from_millis(20),
        },
        reconciler,
        stop,
    )
    .await;
}

/// The claims a pod's volumes name.
fn claims_of(pod: &Value) -> impl Iterator<Item = &str> {
    pod.pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.pointer("/persistentVolumeClaim/claimName"))
        .filter_map(Value::as_str)
}

fn storage(object: &Value, pointer: &str) -> Option<Quantity> {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .and_then(|q| Quantity::parse(q).ok())
}

fn strings(object: &Value, pointer: &str) -> Vec<String> {
    object
        .pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// Whether `volume` can serve `claim`: same class and volume mode, every
/// access mode asked for, at least the size asked for, not another's.
fn fits(volume: &Value, claim: &Value) -> bool {
    let claim_ref = volume.pointer("/spec/claimRef");
    let free = match claim_ref {
        None | Some(Value::Null) => true,
        Some(r) => {
            let uid = text(r, "/uid");
            text(r, "/name") == text(claim, "/metadata/name")
                && text(r, "/namespace") == text(claim, "/metadata/namespace")
                && (uid.is_empty() || uid == text(claim, "/metadata/uid"))
        }
    };
    let modes = strings(volume, "/spec/accessModes");
    free && !deleting(volume)
        && matches!(text(volume, "/status/phase"), "Available" | "Pending" | "")
        && text(volume, "/spec/storageClassName") == text(claim, "/spec/storageClassName")
        && text(volume, "/spec/volumeMode") == text(claim, "/spec/volumeMode")
        && strings(claim, "/spec/accessModes")
            .iter()
            .all(|m| modes.contains(m))
        && match (
            storage(volume, "/spec/capacity/storage"),
            storage(claim, "/spec/resources/requests/storage"),
        ) {
            (Some(has), Some(wants)) => has >= wants,
            _ => false,
        }
}

impl Volumes {
    fn list(&self, resource: &Resource, namespace: Option<&str>) -> Result<Vec<Value>> {
        Ok(self
            .registry
            .list(resource, namespace, &ListOptions::default())?
            .items)
    }

    /// Binds `claim` to `volume`: the volume's claimRef and phase, then the
    /// claim's volumeName and status.
    async fn bind(&self, volume: &Value, claim: &Value) -> Result<()> {
        let reference = json!({
            "kind": "PersistentVolumeClaim",
            "apiVersion": "v1",
            "namespace": text(claim, "/metadata/namespace"),
            "name": text(claim, "/metadata/name"),
            "uid": text(claim, "/metadata/uid"),
            "resourceVersion": text(claim, "/metadata/resourceVersion"),
        });
        let pre_bound = volume
            .pointer("/spec/claimRef")
            .is_some_and(|r| !r.is_null());
        let volume = edit(
            &self.registry,
            &self.kinds.volumes,
            volume,
            None,
            MANAGER,
            |v| {
                v["spec"]["claimRef"] = reference.clone();
                if !pre_bound {
                    v["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] =
                        json!("yes");
                }
            },
        )
        .await?;
        let volume = edit(
            &self.registry,
            &self.kinds.volumes,
            &volume,
            Some("status"),
            MANAGER,
            |v| {
                v["status"]["phase"] = json!("Bound");
            },
        )
        .await?;
        let name = text(&volume, "/metadata/name").to_string();
        let claim = edit(
            &self.registry,
            &self.kinds.claims,
            claim,
            None,
            MANAGER,
            |c| {
                c["spec"]["volumeName"] = json!(name);
                c["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] = json!("yes");
                c["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] = json!("yes");
            },
        )
        .await?;
        let capacity = volume
            .pointer("/spec/capacity")
            .cloned()
            .unwrap_or(json!({}));
        let modes = volume
            .pointer("/spec/accessModes")
            .cloned()
            .unwrap_or(json!([]));
        edit(
            &self.registry,
            &self.kinds.claims,
            &claim,
            Some("status"),
            MANAGER,
            |c| {
                c["status"] = json!({"phase": "Bound", "capacity": capacity, "accessModes": modes});
            },
        )
        .await?;
        Ok(())
    }

    /// A volume of `class` made for `claim`: a fresh directory.
    async fn provision(&self, claim: &Value, class: &Value) -> Result<Value> {
        let uid = text(claim, "/metadata/uid");
        let name = format!("pvc-{uid}");
        let path = self.root.join(&name);
        let who = format!(
            "{}/{}",
            text(claim, "/metadata/namespace"),
            text(claim, "/metadata/name")
        );
        self.recorder
            .record(
                claim,
                EventType::Normal,
                "Provisioning",
                &format!("External provisioner is provisioning volume for claim {who:?}"),
                None,
            )
            .await;
        if let Err(e) = std::fs::create_dir_all(&path) {
            let message = format!(
                "failed to provision volume with StorageClass {:?}: {e}",
                text(class, "/metadata/name")
            );
            self.recorder
                .record(
                    claim,
                    EventType::Warning,
                    "ProvisioningFailed",
                    &message,
                    None,
                )
                .await;
            return Err(Error::Internal(message));
        }
        let volume = json!({
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name, "annotations": {PROVISIONED_BY: LOCAL_PATH}},
            "spec": {
                "capacity": {"storage": claim.pointer("/spec/resources/requests/storage").cloned().unwrap_or(json!("0"))},
                "accessModes": claim.pointer("/spec/accessModes").cloned().unwrap_or(json!([])),
                "persistentVolumeReclaimPolicy": match text(class, "/reclaimPolicy") { "" => "Delete", p => p },
                "storageClassName": text(class, "/metadata/name"),
                "volumeMode": text(claim, "/spec/volumeMode"),
                "hostPath": {"path": path.display().to_string(), "type": "DirectoryOrCreate"},
                "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                    "namespace": text(claim, "/metadata/namespace"),
                    "name": text(claim, "/metadata/name"), "uid": uid},
            },
        });
        let created = match self
            .registry
            .create(
                &self.kinds.volumes,
                None,
                volume,
                &WriteOptions::manager(MANAGER),
            )
            .await
        {
            Ok(written) => written.object,
            // Made by an earlier pass that lost its race: use it.
            Err(Error::AlreadyExists { .. }) => {
                self.registry.get(&self.kinds.volumes, None, &name)?
            }
            Err(e) => return Err(e),
        };
        self.recorder
            .record(
                claim,
                EventType::Normal,
                "ProvisioningSucceeded",
                &format!("Successfully provisioned volume {name}"),
                None,
            )
            .await;
        Ok(created)
    }

    async fn sync_claim(
        &self,
        claim: &Value,
        volumes: &[Value],
        classes: &[Value],
        pods: &[Value],
    ) -> Result<Option<Duration>> {
        let name = text(claim, "/metadata/name");
        if deleting(claim) {
            let in_use = pods.iter().any(|p| {
                !matches!(text(p, "/status/phase"), "Succeeded" | "Failed")
                    && claims_of(p).any(|c| c == name)
            });
            if !in_use && finalizers(claim).contains(&PVC_PROTECTION) {
                edit(
                    &self.registry,
                    &self.kinds.claims,
                    claim,
                    None,
                    MANAGER,
                    |c| remove_finalizer(c, PVC_PROTECTION),
                )
                .await?;
            }
            return Ok(None);
        }
        let volume_name = text(claim, "/spec/volumeName");
        if text(claim, "/status/phase") == "Bound" && !volume_name.is_empty() {
            return Ok(None);
        }
        // No class asked for: the default class's (Kubernetes assigns it
        // to claims made before it existed too).
        let class_set = claim
            .pointer("/spec/storageClassName")
            .is_some_and(|c| !c.is_null());
        if !class_set && let Some(default) = classes.iter().find(|c| is_default_class(c)) {
            let default = text(default, "/metadata/name").to_string();
            edit(
                &self.registry,
                &self.kinds.claims,
                claim,
                None,
                MANAGER,
                |c| {
                    c["spec"]["storageClassName"] = json!(default);
                },
            )
            .await?;
            return Ok(Some(Duration::ZERO));
        }
        if !volume_name.is_empty() {
            return match volumes
                .iter()
                .find(|v| text(v, "/metadata/name") == volume_name)
            {
                Some(v)
                    if fits(v, claim)
                        || text(v, "/spec/claimRef/uid") == text(claim, "/metadata/uid") =>
                {
                    self.bind(v, claim).await.map(|()| None)
                }
                _ => Ok(None),
            };
        }
        let best = volumes
            .iter()
            .filter(|v| fits(v, claim))
            .min_by_key(|v| storage(v, "/spec/capacity/storage"));
        if let Some(volume) = best {
            self.bind(volume, claim).await?;
            return Ok(None);
        }
        let class = text(claim, "/spec/storageClassName");
        if class.is_empty() {
            self.recorder
                .record(
                    claim,
                    EventType::Normal,
                    "FailedBinding",
                    "no persistent volumes available for this claim and no storage class is set",
                    None,
                )
                .await;
            return Ok(None);
        }
        match classes.iter().find(|c| text(c, "/metadata/name") == class) {
            Some(sc) if text(sc, "/provisioner") == LOCAL_PATH => {
                let volume = self.provision(claim, sc).await?;
                self.bind(&volume, claim).await?;
            }
            Some(sc) => {
                let message = format!(
                    "Waiting for a volume to be created either by the external provisioner '{}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.",
                    text(sc, "/provisioner")
                );
                self.recorder
                    .record(
                        claim,
                        EventType::Normal,
                        "ExternalProvisioning",
                        &message,
                        None,
                    )
                    .await;
            }
            None => {
                self.recorder
                    .record(
                        claim,
                        EventType::Warning,
                        "ProvisioningFailed",
                        &format!("storageclass.storage.k8s.io {class:?} not found"),
                        None,
                    )
                    .await;
            }
        }
        Ok(None)
    }

    /// Phases, release and reclaim of one volume.
    async fn sync_volume(&self, volume: &Value) -> Result<Option<Duration>> {
        let phase = text(volume, "/status/phase");
        if deleting(volume) {
            if phase != "Bound" && finalizers(volume).contains(&PV_PROTECTION) {
                edit(
                    &self.registry,
                    &self.kinds.volumes,
                    volume,
                    None,
                    MANAGER,
                    |v| remove_finalizer(v, PV_PROTECTION),
                )
                .await?;
            }
            return Ok(None);
        }
        let set_phase = |phase: &'static str, message: Option<String>| {
            edit(
                &self.registry,
                &self.kinds.volumes,
                volume,
                Some("status"),
                MANAGER,
                move |v| {
                    v["status"] = json!({"phase": phase});
                    if let Some(m) = &message {
                        v["status"]["message"] = json!(m);
                    }
                },
            )
        };
        let claim_ref = volume.pointer("/spec/claimRef").filter(|r| !r.is_null());
        let Some(reference) = claim_ref else {
            if phase != "Available" {
                set_phase("Available", None).await?;
            }
            return Ok(None);
        };
        let uid = text(reference, "/uid");
        let claim = self.registry.find(
            &self.kinds.claims,
            Some(text(reference, "/namespace")),
            text(reference, "/name"),
        )?;
        let claim_alive = match &claim {
            Some(c) => uid.is_empty() || text(c, "/metadata/uid") == uid,
            None => false,
        };
        if claim_alive {
            if phase == "Pending" || phase.is_empty() {
                // Pre-bound, or provisioned: the claim's pass binds it.
                set_phase("Available", None).await?;
            }
            return Ok(None);
        }
        if uid.is_empty() {
            // Reserved for a claim that does not exist yet.
            if phase != "Available" {
                set_phase("Available", None).await?;
            }
            return Ok(None);
        }
        // Its claim is gone.
        match text(volume, "/spec/persistentVolumeReclaimPolicy") {
            "Delete" => {
                let provisioned = text(
                    volume,
                    "/metadata/annotations/pv.kubernetes.io~1provisioned-by",
                ) == LOCAL_PATH;
                let path = PathBuf::from(text(volume, "/spec/hostPath/path"));
                if provisioned && path.starts_with(&self.root) {
                    if let Err(e) = std::fs::remove_dir_all(&path)
                        && e.kind() != std::io::ErrorKind::NotFound
                    {
                        let message = format!("deleting {}: {e}", path.display());
                        set_phase("Failed", Some(message)).await?;
                        return Ok(Some(Duration::from_secs(10)));
                    }
                    if phase != "Released" {
                        set_phase("Released", None).await?;
                    }
                    let options = crate::registry::DeleteOptions::default();
                    match self
                        .registry
                        .delete(
                            &self.kinds.volumes,
                            None,
                            text(volume, "/metadata/name"),
                            &options,
                        )
                        .await
                    {
                        Ok(_) | Err(Error::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                } else if phase != "Failed" {
                    let message = format!(
                        "only volumes the {LOCAL_PATH} provisioner made are deleted; the data at {} is kept",
                        path.display()
                    );
                    self.recorder
                        .record(
                            volume,
                            EventType::Warning,
                            "VolumeFailedDelete",
                            &message,
                            None,
                        )
                        .await;
                    set_phase("Failed", Some(message)).await?;
                }
            }
            "Recycle" if phase != "Failed" => {
                let message =
                    "Recycle is deprecated and not supported: use Delete or Retain".to_string();
                self.recorder
                    .record(
                        volume,
                        EventType::Warning,
                        "VolumeFailedRecycle",
                        &message,
                        None,
                    )
                    .await;
                set_phase("Failed", Some(message)).await?;
            }
            "Recycle" => {}
            _ if phase != "Released" => {
                set_phase("Released", None).await?;
            }
            _ => {}
        }
        Ok(None)
    }
}

impl Reconciler for Volumes {
    async fn reconcile(&self, namespace: &str) -> Result<Option<Duration>> {
        let mut again = Again::new(&self.retries);
        let classes = self.list(&self.kinds.classes, None)?;
        if !namespace.is_empty() {
            let claims = self.list(&self.kinds.claims, Some(namespace))?;
            if !claims.is_empty() {
                let volumes = self.list(&self.kinds.volumes, None)?;
                let pods = self.list(&self.kinds.pods, Some(namespace))?;
                for claim in &claims {
                    again.note(
                        claim,
                        self.sync_claim(claim, &volumes, &classes, &pods).await,
                    );
                }
            }
        }
        for volume in self.list(&self.kinds.volumes, None)? {
            again.note(&volume, self.sync_volume(&volume).await);
        }
        Ok(again.when())
    }
}
