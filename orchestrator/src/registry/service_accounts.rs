//! The ServiceAccount admission step of pod creation: a pod runs as the
//! ServiceAccount it names (`serviceAccountName`, or the deprecated
//! `serviceAccount`), else as its namespace's `default`; both fields then
//! name it, as the API server shows them; a ServiceAccount that does not
//! exist is refused. Where the API is served over HTTPS, each container
//! gets the account's credentials at
//! `/var/run/secrets/kubernetes.io/serviceaccount` (a `kube-api-access-…`
//! projected volume: a bound token, `ca.crt` and `namespace`), unless the
//! pod or its account sets `automountServiceAccountToken: false`.

use serde_json::{Value, json};

use super::kinds::DEFAULT_SERVICE_ACCOUNT;
use super::metadata::{generate_name, text};
use super::{Error, Registry, Result};

/// Where a container finds its ServiceAccount's credentials.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The ConfigMap in every namespace holding the API's CA (`ca.crt`).
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

/// The prefix of the credentials volume's name.
const VOLUME_PREFIX: &str = "kube-api-access-";

/// How long the tokens written into pods last (renewed at 80%).
const TOKEN_EXPIRATION_SECONDS: i64 = 3607;

impl Registry {
    /// Names a new pod's ServiceAccount and checks that it exists.
    pub(super) fn admit_service_account(&self, pod: &mut Value) -> Result<()> {
        let named = [
            text(pod, "/spec/serviceAccountName"),
            text(pod, "/spec/serviceAccount"),
        ]
        .into_iter()
        .find(|name| !name.is_empty())
        .unwrap_or(DEFAULT_SERVICE_ACCOUNT)
        .to_string();
        let namespace = text(pod, "/metadata/namespace").to_string();
        let accounts = self.resource("", "ServiceAccount");
        let account = self.find(&accounts, Some(&namespace), &named)?;
        // A namespace's default ServiceAccount is made by a controller just
        // after the namespace: a pod created in between is let through, as
        // the API server's admission waits for it.
        if named != DEFAULT_SERVICE_ACCOUNT && account.is_none() {
            return Err(Error::Refused {
                resource: "pods".into(),
                group: String::new(),
                name: text(pod, "/metadata/name").to_string(),
                why: format!(
                    "error looking up service account {namespace}/{named}: serviceaccount \"{named}\" not found"
                ),
            });
        }
        if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("serviceAccountName".into(), json!(named));
            spec.insert("serviceAccount".into(), json!(named));
        }
        // The pod's own setting wins over its account's.
        let automount = [pod.pointer("/spec/automountServiceAccountToken")]
            .into_iter()
            .chain([account
                .as_ref()
                .and_then(|a| a.get("automountServiceAccountToken"))])
            .flatten()
            .find_map(Value::as_bool)
            .unwrap_or(true);
        if automount && self.cluster_ca().is_some() {
            mount_credentials(pod);
        }
        Ok(())
    }
}

/// What an update of a pod (`kubectl replace` of its manifest) leaves out
/// of the credentials admission gave it is kept: the volume, and each
/// container's mount of it.
pub(super) fn keep_credentials(pod: &mut Value, old: &Value) {
    let Some(volume) = old
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|v| text(v, "/name").starts_with(VOLUME_PREFIX))
        .cloned()
    else {
        return;
    };
    let name = text(&volume, "/name").to_string();
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
    let Some(volumes) = volumes.as_array_mut() else {
        return;
    };
    if volumes.iter().any(|v| text(v, "/name") == name) {
        return;
    }
    volumes.push(volume);
    for field in ["initContainers", "containers"] {
        let before = old
            .pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for container in spec
            .get_mut(field)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let had = before.iter().any(|c| {
                text(c, "/name") == text(container, "/name")
                    && c.get("volumeMounts")
                        .and_then(Value::as_array)
                        .is_some_and(|m| m.iter().any(|m| text(m, "/name") == name))
            });
            let Some(container) = container.as_object_mut() else {
                continue;
            };
            let mounts = container.entry("volumeMounts").or_insert_with(|| json!([]));
            if let Some(mounts) = mounts.as_array_mut()
                && had
                && !mounts
                    .iter()
                    .any(|m| text(m, "/mountPath") == TOKEN_MOUNT_PATH)
            {
                mounts.push(json!({"name": name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH}));
            }
        }
    }
}

/// Adds the credentials volume (reusing one the pod already names) and
/// mounts it in every container and init container that has nothing at
/// the token path, as the API server's admission does.
fn mount_credentials(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|v| text(v, "/name"))
        .find(|name| name.starts_with(VOLUME_PREFIX))
        .map(str::to_string);
    let name = existing
        .clone()
        .unwrap_or_else(|| generate_name(VOLUME_PREFIX));
    let mut mounted = false;
    for field in ["initContainers", "containers"] {
        for container in spec
            .get_mut(field)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(container) = container.as_object_mut() else {
                continue;
            };
            let mounts = container.entry("volumeMounts").or_insert_with(|| json!([]));
            let Some(mounts) = mounts.as_array_mut() else {
                continue;
            };
            if mounts
                .iter()
                .any(|m| text(m, "/mountPath") == TOKEN_MOUNT_PATH)
            {
                continue;
            }
            mounts.push(json!({"name": name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH}));
            mounted = true;
        }
    }
    if !mounted || existing.is_some() {
        return;
    }
    let volume = json!({
        "name": name,
        "projected": {
            "defaultMode": 0o644,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": ROOT_CA_CONFIG_MAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace",
                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    });
    match spec.get_mut("volumes").and_then(Value::as_array_mut) {
        Some(volumes) => volumes.push(volume),
        None => {
            spec.insert("volumes".into(), json!([volume]));
        }
    }
}
