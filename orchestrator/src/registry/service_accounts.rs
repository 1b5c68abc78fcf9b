//! The ServiceAccount admission step of pod creation: a pod runs as the
//! ServiceAccount it names (`serviceAccountName`, or the deprecated
//! `serviceAccount`), else as its namespace's `default`; both fields then
//! name it, as the API server shows them; a ServiceAccount that does not
//! exist is refused.

use serde_json::{Value, json};

use super::kinds::DEFAULT_SERVICE_ACCOUNT;
use super::metadata::text;
use super::{Error, Registry, Result};

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
        // A namespace's default ServiceAccount is made by a controller just
        // after the namespace: a pod created in between is let through, as
        // the API server's admission waits for it.
        if named != DEFAULT_SERVICE_ACCOUNT
            && self.find(&accounts, Some(&namespace), &named)?.is_none()
        {
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
        Ok(())
    }
}
