//! The files of the volumes the kubelet writes itself: `configMap`,
//! `secret`, `downwardAPI` and `projected`. Each becomes a [`Payload`]
//! (path -> bytes and mode) that [`super::atomic_dir`] puts in place, at
//! start and again whenever what it was made from changes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeFile, KeyToPath, Pod, Volume, VolumeProjection,
};

use super::atomic_dir::{File, Payload};
use super::sources::{self, Allocatable, Missing, Sources};

/// How long a projected token lasts when the volume does not say.
const DEFAULT_TOKEN_SECONDS: i64 = 3600;

/// Kubernetes' default mode of projected files.
const DEFAULT_MODE: u32 = 0o644;

/// Where a kubelet-written volume lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    Disk,
    /// Memory-backed storage: Secrets are never written to disk.
    Memory,
}

/// `Some` for the volume types the kubelet writes, with where they live.
pub fn written(volume: &Volume) -> Option<Backing> {
    if volume.secret.is_some() || volume.projected.is_some() {
        Some(Backing::Memory)
    } else if volume.config_map.is_some() || volume.downward_api.is_some() {
        Some(Backing::Disk)
    } else {
        None
    }
}

fn mode(item: Option<i32>, default: Option<i32>) -> u32 {
    item.or(default)
        .map_or(DEFAULT_MODE, |m| (m as u32) & 0o777)
}

/// Adds the entries of a ConfigMap or Secret, all of them or `items`.
fn add_entries(
    payload: &mut Payload,
    entries: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
    optional: Option<bool>,
    what: &str,
) -> Result<(), Missing> {
    let Some(entries) = entries else {
        return Ok(());
    };
    match items {
        None | Some([]) => {
            for (key, bytes) in entries {
                payload.insert(
                    key,
                    File {
                        bytes,
                        mode: mode(None, default_mode),
                    },
                );
            }
        }
        Some(items) => {
            for item in items {
                match entries.get(&item.key) {
                    Some(bytes) => {
                        payload.insert(
                            item.path.clone(),
                            File {
                                bytes: bytes.clone(),
                                mode: mode(item.mode, default_mode),
                            },
                        );
                    }
                    None if optional == Some(true) => {}
                    None => {
                        return Err(Missing(format!(
                            "{what} references non-existent config key: {}",
                            item.key
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

/// `key="value"` lines, sorted, as Kubernetes writes labels and
/// annotations into a downward API file.
fn formatted(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The value of a downward API file's `fieldRef` (only what is known before
/// the pod runs: its metadata).
pub fn metadata_field(pod: &Pod, path: &str) -> Option<String> {
    let meta = &pod.metadata;
    let entry = |prefix: &str, map: Option<&BTreeMap<String, String>>| {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map.and_then(|m| m.get(key)).cloned().unwrap_or_default())
    };
    match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => Some(meta.namespace.clone().unwrap_or_else(|| "default".into())),
        "metadata.uid" => meta.uid.clone(),
        "metadata.labels" => Some(formatted(meta.labels.as_ref())),
        "metadata.annotations" => Some(formatted(meta.annotations.as_ref())),
        p if p.starts_with("metadata.labels['") => entry("metadata.labels['", meta.labels.as_ref()),
        p if p.starts_with("metadata.annotations['") => {
            entry("metadata.annotations['", meta.annotations.as_ref())
        }
        _ => None,
    }
}

fn container<'a>(pod: &'a Pod, name: Option<&str>) -> Option<&'a Container> {
    let spec = pod.spec.as_ref()?;
    match name.filter(|n| !n.is_empty()) {
        Some(name) => spec.containers.iter().find(|c| c.name == name),
        None => spec.containers.first(),
    }
}

fn add_downward(
    payload: &mut Payload,
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: Option<i32>,
    allocatable: Allocatable,
) -> Result<(), Missing> {
    for item in items {
        let text = if let Some(field) = &item.field_ref {
            metadata_field(pod, &field.field_path).ok_or_else(|| {
                Missing(format!(
                    "unsupported fieldPath {:?} in downward API volume",
                    field.field_path
                ))
            })?
        } else if let Some(resource) = &item.resource_field_ref {
            let c = container(pod, resource.container_name.as_deref()).ok_or_else(|| {
                Missing(format!(
                    "container {:?} not found for resourceFieldRef",
                    resource.container_name.as_deref().unwrap_or("")
                ))
            })?;
            sources::resource_field(c, resource, allocatable).map_err(Missing)?
        } else {
            continue;
        };
        payload.insert(
            item.path.clone(),
            File {
                bytes: text.into_bytes(),
                mode: mode(item.mode, default_mode),
            },
        );
    }
    Ok(())
}

/// The files of `volume` now; `Err` with Kubernetes' reason when a
/// non-optional source is missing.
pub fn payload(
    pod: &Pod,
    volume: &Volume,
    sources: &dyn Sources,
    allocatable: Allocatable,
) -> Result<Payload, Missing> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut payload = Payload::new();
    if let Some(cm) = &volume.config_map {
        let entries = sources::config_map(sources, namespace, &cm.name, cm.optional)?;
        add_entries(
            &mut payload,
            entries,
            cm.items.as_deref(),
            cm.default_mode,
            cm.optional,
            "configmap",
        )?;
    } else if let Some(secret) = &volume.secret {
        let name = secret.secret_name.as_deref().unwrap_or_default();
        let entries = sources::secret(sources, namespace, name, secret.optional)?;
        add_entries(
            &mut payload,
            entries,
            secret.items.as_deref(),
            secret.default_mode,
            secret.optional,
            "secret",
        )?;
    } else if let Some(downward) = &volume.downward_api {
        add_downward(
            &mut payload,
            pod,
            downward.items.as_deref().unwrap_or_default(),
            downward.default_mode,
            allocatable,
        )?;
    } else if let Some(projected) = &volume.projected {
        let default_mode = projected.default_mode;
        for VolumeProjection {
            config_map,
            secret,
            downward_api,
            service_account_token,
            cluster_trust_bundle,
        } in projected.sources.iter().flatten()
        {
            if let Some(cm) = config_map {
                let entries = sources::config_map(sources, namespace, &cm.name, cm.optional)?;
                add_entries(
                    &mut payload,
                    entries,
                    cm.items.as_deref(),
                    default_mode,
                    cm.optional,
                    "configmap",
                )?;
            }
            if let Some(s) = secret {
                let entries = sources::secret(sources, namespace, &s.name, s.optional)?;
                add_entries(
                    &mut payload,
                    entries,
                    s.items.as_deref(),
                    default_mode,
                    s.optional,
                    "secret",
                )?;
            }
            if let Some(d) = downward_api {
                add_downward(
                    &mut payload,
                    pod,
                    d.items.as_deref().unwrap_or_default(),
                    default_mode,
                    allocatable,
                )?;
            }
            if let Some(token) = service_account_token {
                let text = sources.service_account_token(
                    pod,
                    token.audience.as_deref().unwrap_or_default(),
                    token.expiration_seconds.unwrap_or(DEFAULT_TOKEN_SECONDS),
                )?;
                payload.insert(
                    token.path.clone(),
                    File {
                        bytes: text.into_bytes(),
                        mode: mode(None, default_mode),
                    },
                );
            }
            if cluster_trust_bundle.is_some() {
                return Err(Missing(
                    "clusterTrustBundle projections are not supported".into(),
                ));
            }
        }
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
    use serde_json::json;

    struct Fixed {
        config_maps: Vec<ConfigMap>,
        secrets: Vec<Secret>,
    }

    impl Sources for Fixed {
        fn config_map(&self, _: &str, name: &str) -> Option<ConfigMap> {
            self.config_maps
                .iter()
                .find(|c| c.metadata.name.as_deref() == Some(name))
                .cloned()
        }
        fn secret(&self, _: &str, name: &str) -> Option<Secret> {
            self.secrets
                .iter()
                .find(|c| c.metadata.name.as_deref() == Some(name))
                .cloned()
        }
        fn services(&self, _: &str) -> Vec<Service> {
            Vec::new()
        }
    }

    fn fixed() -> Fixed {
        Fixed {
            config_maps: vec![
                serde_json::from_value(json!({"metadata": {"name": "example-configmap"},
                "data": {"database": "mongodb", "database_uri": "mongodb://localhost:27017"}}))
                .unwrap(),
            ],
            secrets: vec![
                serde_json::from_value(json!({"metadata": {"name": "api-authentication-secret"},
                "data": {"key": "c2VjcmV0"}}))
                .unwrap(),
            ],
        }
    }

    fn volume(v: serde_json::Value) -> Volume {
        serde_json::from_value(v).unwrap()
    }

    fn pod() -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "default",
            "labels": {"app": "web", "tier": "front"}},
            "spec": {"containers": [{"name": "c", "resources": {"limits": {"memory": "64Mi"}}}]}}))
        .unwrap()
    }

    const NODE: Allocatable = Allocatable {
        cpu_millis: 2000,
        memory_bytes: 1 << 30,
    };

    fn text(p: &Payload, path: &str) -> String {
        String::from_utf8(p[path].bytes.clone()).unwrap()
    }

    #[test]
    fn config_map_keys_become_files_or_chosen_paths() {
        let all = volume(json!({"name": "v", "configMap": {"name": "example-configmap"}}));
        let p = payload(&pod(), &all, &fixed(), NODE).unwrap();
        assert_eq!(text(&p, "database"), "mongodb");
        assert_eq!(p["database_uri"].mode, 0o644);
        let some = volume(
            json!({"name": "v", "configMap": {"name": "example-configmap",
            "defaultMode": 0o400, "items": [{"key": "database", "path": "db/name", "mode": 0o600}]}}),
        );
        let p = payload(&pod(), &some, &fixed(), NODE).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(text(&p, "db/name"), "mongodb");
        assert_eq!(p["db/name"].mode, 0o600);
    }

    #[test]
    fn missing_sources_wait_unless_optional() {
        let missing = volume(json!({"name": "v", "secret": {"secretName": "nope"}}));
        assert_eq!(
            payload(&pod(), &missing, &fixed(), NODE).unwrap_err(),
            Missing("secret \"nope\" not found".into())
        );
        let optional =
            volume(json!({"name": "v", "secret": {"secretName": "nope", "optional": true}}));
        assert!(
            payload(&pod(), &optional, &fixed(), NODE)
                .unwrap()
                .is_empty()
        );
        let bad_key = volume(
            json!({"name": "v", "configMap": {"name": "example-configmap",
            "items": [{"key": "nokey", "path": "x"}]}}),
        );
        assert_eq!(
            payload(&pod(), &bad_key, &fixed(), NODE).unwrap_err(),
            Missing("configmap references non-existent config key: nokey".into())
        );
    }

    #[test]
    fn secrets_are_decoded_and_projected_volumes_combine_sources() {
        let v = volume(
            json!({"name": "v", "projected": {"defaultMode": 0o440, "sources": [
                {"secret": {"name": "api-authentication-secret"}},
                {"configMap": {"name": "example-configmap", "items": [{"key": "database", "path": "db"}]}},
                {"downwardAPI": {"items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                    {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}}
                ]}}
            ]}}),
        );
        let p = payload(&pod(), &v, &fixed(), NODE).unwrap();
        assert_eq!(text(&p, "key"), "secret");
        assert_eq!(p["key"].mode, 0o440);
        assert_eq!(text(&p, "db"), "mongodb");
        assert_eq!(text(&p, "labels"), "app=\"web\"\ntier=\"front\"");
        assert_eq!(text(&p, "mem"), "64");
        assert_eq!(written(&v), Some(Backing::Memory));
    }
}
