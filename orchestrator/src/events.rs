//! Recording Events (`kubectl describe`'s Events section, `kubectl get
//! events`), correlated as Kubernetes' recorders do:
//! - the same event about the same object again bumps its count and
//!   lastTimestamp instead of adding one;
//! - after 10 events of one reason about one object with different
//!   messages within 10 minutes, the rest are counted on one event whose
//!   message starts `(combined from similar events): `;
//! - each object and reason has a budget of 25 writes, refilled one per
//!   5 minutes; beyond it events are dropped (a ReplicaSet making 1,000
//!   pods writes 25 events, not 1,000).
//!
//! Events expire a TTL after their last write (an hour, as the API
//! server's `--event-ttl`), so the store does not grow without bound.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::registry::metadata::{At, now};
use crate::registry::{Kept, Registry, WriteOptions};

/// How long an Event lives after its last write, by default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// Deletes Events not written to for `ttl`, looking every `ttl / 60`
/// (between a second and a minute), until `stop` turns true.
pub async fn expire(
    registry: Registry,
    ttl: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let events = registry.resource("", "Event");
    let cache = registry.cache_of::<Written>(&events);
    let every = (ttl / 60).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut tick = tokio::time::interval(every);
    let ttl = jiff::SignedDuration::try_from(ttl).unwrap_or(jiff::SignedDuration::MAX);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let Ok(all) = cache
            .list(None, &crate::registry::LabelSelector::default())
            .await
        else {
            continue;
        };
        let now = jiff::Timestamp::now();
        let expired = all.iter().filter(|event| {
            event
                .at
                .is_some_and(|at| at.checked_add(ttl).is_ok_and(|until| until <= now))
        });
        for event in expired {
            let deleted = registry
                .delete(
                    &events,
                    Some(&event.namespace),
                    &event.name,
                    &crate::registry::DeleteOptions::default(),
                )
                .await;
            if let Err(e) = deleted
                && !matches!(e, crate::registry::Error::NotFound { .. })
            {
                tracing::warn!("expiring events: {e}");
            }
        }
    }
}

/// What the expirer keeps of an Event: which it is and when it was last
/// written (a few dozen bytes, where the Event is kilobytes).
struct Written {
    namespace: Box<str>,
    name: Box<str>,
    at: Option<jiff::Timestamp>,
}

impl Kept for Written {
    fn keep(event: &Arc<Value>) -> Arc<Written> {
        let text = |pointer| event.at(pointer).and_then(Value::as_str);
        Arc::new(Written {
            namespace: text("/metadata/namespace").unwrap_or_default().into(),
            name: text("/metadata/name").unwrap_or_default().into(),
            at: last_written(event),
        })
    }

    /// It keeps no labels: only a list of every Event includes it.
    fn selected_by(&self, labels: &crate::registry::LabelSelector) -> bool {
        labels.is_empty()
    }
}

/// When an Event was last written: the latest of its creation, its
/// timestamps and its managers' writes.
fn last_written(event: &Value) -> Option<jiff::Timestamp> {
    let mut times: Vec<&str> = [
        "/metadata/creationTimestamp",
        "/lastTimestamp",
        "/eventTime",
        "/series/lastObservedTime",
    ]
    .iter()
    .filter_map(|p| event.at(p).and_then(Value::as_str))
    .collect();
    for entry in event
        .at("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        times.extend(entry.get("time").and_then(Value::as_str));
    }
    times.iter().filter_map(|t| t.parse().ok()).max()
}

/// Normal or Warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// (object uid, reason, message, field path): what makes two events "the
/// same" for counting.
type EventKey = (String, String, String, String);

/// Distinct messages of one reason about one object before the rest are
/// combined (client-go's aggregator).
const SIMILAR_LIMIT: usize = 10;
/// How long similar messages are remembered.
const SIMILAR_WINDOW: Duration = Duration::from_secs(600);
/// Writes one object and reason may make at once (client-go's spam filter)...
const BURST: f64 = 25.0;
/// ... and how fast that budget comes back.
const REFILL_EVERY: Duration = Duration::from_secs(300);
/// Entries each correlation map holds before old ones are forgotten.
const REMEMBERED: usize = 4096;

/// Keeps a correlation map within [`REMEMBERED`] entries, as client-go's
/// LRU caches are: once over, what `expired` says goes, and if more than
/// half is left, the older half by `touched`. Pruning leaves room for at
/// least half as many inserts again, so its cost is spread over them: a
/// map full of recent entries (thousands of pods starting) is not walked
/// on every event.
fn bound<K, V>(
    map: &mut HashMap<K, V>,
    touched: impl Fn(&V) -> Instant,
    expired: impl Fn(&V) -> bool,
) {
    if map.len() <= REMEMBERED {
        return;
    }
    map.retain(|_, v| !expired(v));
    if map.len() > REMEMBERED / 2 {
        let mut times: Vec<Instant> = map.values().map(&touched).collect();
        let middle = times.len() / 2;
        let cutoff = *times.select_nth_unstable(middle).1;
        map.retain(|_, v| touched(v) > cutoff);
    }
}

/// What the recorder remembers between events.
#[derive(Default)]
struct Memory {
    /// Event key -> (namespace, name) of the event it was written as.
    seen: HashMap<EventKey, (String, String)>,
    /// (object uid, type, reason) -> when the window began, its messages.
    similar: HashMap<(String, &'static str, String), (Instant, HashSet<String>)>,
    /// (object uid, type, reason) -> (tokens, last refill).
    budget: HashMap<(String, &'static str, String), (f64, Instant)>,
}

impl Memory {
    /// The message to record (combined once there are too many similar
    /// ones), or `None` when the object and reason are over budget.
    fn correlate(
        &mut self,
        uid: &str,
        kind: &'static str,
        reason: &str,
        message: &str,
    ) -> Option<String> {
        let now = Instant::now();
        let key = (uid.to_string(), kind, reason.to_string());
        bound(
            &mut self.budget,
            |(_, at)| *at,
            |(_, at)| now.duration_since(*at) >= REFILL_EVERY.mul_f64(BURST),
        );
        let (tokens, at) = self.budget.entry(key.clone()).or_insert((BURST, now));
        let refill = now.duration_since(*at).as_secs_f64() / REFILL_EVERY.as_secs_f64();
        *tokens = (*tokens + refill).min(BURST);
        *at = now;
        if *tokens < 1.0 {
            return None;
        }
        *tokens -= 1.0;
        bound(
            &mut self.similar,
            |(since, _)| *since,
            |(since, _)| now.duration_since(*since) >= SIMILAR_WINDOW,
        );
        let (since, messages) = self
            .similar
            .entry(key)
            .or_insert_with(|| (now, HashSet::new()));
        if now.duration_since(*since) > SIMILAR_WINDOW {
            *since = now;
            messages.clear();
        }
        if messages.contains(message) || messages.len() < SIMILAR_LIMIT {
            messages.insert(message.to_string());
            return Some(message.to_string());
        }
        Some(format!("(combined from similar events): {message}"))
    }
}

/// Writes events on behalf of one component (`kubelet`, `default-scheduler`).
#[derive(Clone)]
pub struct Recorder {
    registry: Registry,
    component: String,
    host: Option<String>,
    memory: Arc<Mutex<Memory>>,
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
            memory: Arc::new(Mutex::new(Memory::default())),
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
                .at(p)
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
        let kind = match event_type {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        };
        let Some(message) = self
            .memory
            .lock()
            .unwrap()
            .correlate(&uid, kind, reason, message)
        else {
            tracing::debug!("event {reason} about {uid} dropped: over its budget");
            return Ok(());
        };
        let message = message.as_str();
        // A combined event is one event for every similar message.
        let counted = if message.starts_with("(combined from similar events): ") {
            "(combined)"
        } else {
            message
        };
        let key = (
            uid.clone(),
            reason.to_string(),
            counted.to_string(),
            field_path.unwrap_or("").to_string(),
        );
        let existing = self.memory.lock().unwrap().seen.get(&key).cloned();
        let options = WriteOptions::manager(&self.component);
        let time = now();
        if let Some((ns, name)) = existing {
            let updated = self
                .registry
                .update_with(&events, Some(&ns), &name, None, &options, |current| {
                    let mut next = current.clone();
                    let count = next.get("count").and_then(Value::as_i64).unwrap_or(1);
                    next["count"] = json!(count + 1);
                    next["lastTimestamp"] = json!(time);
                    next["message"] = json!(message);
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
            "type": kind,
            "eventTime": null,
            "reportingComponent": self.component,
            "reportingInstance": self.host.clone().unwrap_or_default(),
        });
        self.registry
            .create(&events, Some(&namespace), event, &options)
            .await?;
        let mut memory = self.memory.lock().unwrap();
        if memory.seen.len() > REMEMBERED {
            memory.seen.clear();
        }
        memory.seen.insert(key, (namespace, name));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_map_of_recent_entries_is_halved_not_walked_each_time() {
        let start = Instant::now();
        let mut map: HashMap<usize, Instant> = (0..=REMEMBERED)
            .map(|i| (i, start + Duration::from_millis(i as u64)))
            .collect();
        bound(&mut map, |at| *at, |_| false);
        // The newer half stays; the oldest entry is gone.
        assert_eq!(map.len(), REMEMBERED / 2);
        assert!(map.contains_key(&REMEMBERED) && !map.contains_key(&0));
        // Within the bound, nothing is touched.
        bound(&mut map, |at| *at, |_| true);
        assert_eq!(map.len(), REMEMBERED / 2);
        // Over it, what expired goes first, and that may be enough.
        map.extend((0..REMEMBERED).map(|i| (REMEMBERED + 1 + i, start)));
        bound(&mut map, |at| *at, |at| *at == start);
        assert_eq!(map.len(), REMEMBERED / 2);
    }

    #[test]
    fn similar_events_are_combined_and_a_flood_is_cut_off() {
        let mut memory = Memory::default();
        let mut recorded = Vec::new();
        for i in 0..1000 {
            let message = format!("Created pod: web-{i}");
            if let Some(m) = memory.correlate("rs-uid", "Normal", "SuccessfulCreate", &message) {
                recorded.push(m);
            }
        }
        assert_eq!(recorded.len(), 25, "the burst, then nothing");
        assert_eq!(recorded[9], "Created pod: web-9");
        assert_eq!(
            recorded[10],
            "(combined from similar events): Created pod: web-10"
        );
        // Another reason, or another object, has its own budget.
        assert!(
            memory
                .correlate("rs-uid", "Normal", "SuccessfulDelete", "Deleted pod: web-1")
                .is_some()
        );
        assert_eq!(
            memory
                .correlate("other", "Normal", "SuccessfulCreate", "Created pod: x")
                .as_deref(),
            Some("Created pod: x")
        );
    }
}
