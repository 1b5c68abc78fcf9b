//! Recording Events (`kubectl describe`'s Events section, `kubectl get
//! events`), with Kubernetes' aggregation: the same event about the same
//! object again bumps its count and lastTimestamp instead of adding one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::registry::metadata::now;
use crate::registry::{Registry, WriteOptions};

/// Normal or Warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// (object uid, reason, message, field path): what makes two events "the
/// same" for counting.
type EventKey = (String, String, String, String);

/// Writes events on behalf of one component (`kubelet`, `default-scheduler`).
#[derive(Clone)]
pub struct Recorder {
    registry: Registry,
    component: String,
    host: Option<String>,
    /// (object uid, reason, message, field path) -> event name, for counts.
    seen: Arc<Mutex<HashMap<EventKey, (String, String)>>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("component", &self.component)
            .finish()
    }
}

impl Recorder {
    pub fn new(registry: Registry, component: &str, host: Option<&str>) -> Recorder {
        Recorder {
            registry,
            component: component.into(),
            host: host.map(str::to_string),
            seen: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Records an event about `object`; failures are logged, never fatal.
    pub async fn record(
        &self,
        object: &Value,
        event_type: EventType,
        reason: &str,
        message: &str,
        field_path: Option<&str>,
    ) {
        if let Err(e) = self
            .try_record(object, event_type, reason, message, field_path)
            .await
        {
            tracing::debug!("recording event {reason}: {e}");
        }
    }

    async fn try_record(
        &self,
        object: &Value,
        event_type: EventType,
        reason: &str,
        message: &str,
        field_path: Option<&str>,
    ) -> Result<(), crate::registry::Error> {
        let s = |p: &str| {
            object
                .pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let uid = s("/metadata/uid");
        let namespace = match s("/metadata/namespace") {
            ns if ns.is_empty() => "default".to_string(),
            ns => ns,
        };
        let events = self.registry.resource("", "Event");
        let key = (
            uid.clone(),
            reason.to_string(),
            message.to_string(),
            field_path.unwrap_or("").to_string(),
        );
        let existing = self.seen.lock().unwrap().get(&key).cloned();
        let options = WriteOptions::manager(&self.component);
        let time = now();
        if let Some((ns, name)) = existing {
            let updated = self
                .registry
                .update_with(&events, Some(&ns), &name, None, &options, None, |current| {
                    let mut next = current.clone();
                    let count = next.get("count").and_then(Value::as_i64).unwrap_or(1);
                    next["count"] = json!(count + 1);
                    next["lastTimestamp"] = json!(time);
                    Ok(next)
                })
                .await;
            if updated.is_ok() {
                return Ok(());
            }
        }
        let name = format!(
            "{}.{:x}",
            s("/metadata/name"),
            jiff::Timestamp::now().as_nanosecond() as u64
        );
        let mut involved = json!({
            "kind": s("/kind"),
            "namespace": s("/metadata/namespace"),
            "name": s("/metadata/name"),
            "uid": uid,
            "apiVersion": s("/apiVersion"),
            "resourceVersion": s("/metadata/resourceVersion"),
        });
        if let Some(path) = field_path {
            involved["fieldPath"] = json!(path);
        }
        let mut source = json!({"component": self.component});
        if let Some(host) = &self.host {
            source["host"] = json!(host);
        }
        let event = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "source": source,
            "firstTimestamp": time,
            "lastTimestamp": time,
            "count": 1,
            "type": match event_type { EventType::Normal => "Normal", EventType::Warning => "Warning" },
            "eventTime": null,
            "reportingComponent": self.component,
            "reportingInstance": self.host.clone().unwrap_or_default(),
        });
        self.registry
            .create(&events, Some(&namespace), event, &options)
            .await?;
        self.seen.lock().unwrap().insert(key, (namespace, name));
        Ok(())
    }
}
