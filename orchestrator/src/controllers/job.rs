//! The Job controller: runs a Job's pods to `completions` successes, at
//! most `parallelism` at a time, replacing failed pods after an
//! exponential back-off until `backoffLimit` or `activeDeadlineSeconds`
//! fails the Job; Indexed Jobs run one pod per index; `suspend` stops the
//! pods; `ttlSecondsAfterFinished` deletes a finished Job.
//!
//! Pods carry the `batch.kubernetes.io/job-tracking` finalizer until their
//! outcome is in the Job's status, so deleting a finished pod never loses
//! a success or a failure: a terminated pod's uid is first written to
//! `status.uncountedTerminatedPods`, then its finalizer is removed, then
//! the uid moves into the counts, each step safe to repeat.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::driver::{self, Reconciler};
use super::edit;
use super::owners::{controller_kind, controller_ref, controller_uid, deleting, finalizers};
use super::replicaset::is_ready;
use crate::events::{EventType, Recorder};
use crate::registry::kinds::{COMPLETION_INDEX, JOB_NAME};
use crate::registry::metadata::{text, timestamp};
use crate::registry::{
    Cache, DeleteOptions, Error, LabelSelector, Registry, Resource, Result, WriteOptions,
};

const MANAGER: &str = "job-controller";
/// Holds a Job's pod until the Job has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// How many pods one pass creates at once.
const BURST: usize = 250;

/// The delay before a failed pod is replaced: `base` doubled for every
/// further failure, at most `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    /// Kubernetes' 10 s, doubling, capped at six minutes.
    fn default() -> Backoff {
        Backoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(360),
        }
    }
}

impl Backoff {
    /// The delay after the `failures`-th failure.
    pub fn after(&self, failures: i64) -> Duration {
        if failures <= 0 {
            return Duration::ZERO;
        }
        let doublings = (failures - 1).min(30) as u32;
        self.base.saturating_mul(1 << doublings).min(self.max)
    }
}

struct Jobs {
    registry: Registry,
    jobs: Resource,
    pods: Resource,
    cached_jobs: Arc<Cache>,
    cached_pods: Arc<Cache>,
    events: Recorder,
    backoff: Backoff,
    retries: driver::Retries,
}

/// Runs until `stop` turns true.
pub async fn run(registry: Registry, backoff: Backoff, stop: tokio::sync::watch::Receiver<bool>) {
    let jobs = registry.resource("batch", "Job");
    let pods = registry.resource("", "Pod");
    let reconciler = Jobs {
        events: Recorder::new(registry.clone(), MANAGER, None),
        registry: registry.clone(),
        cached_jobs: registry.cache(&jobs),
        cached_pods: registry.cache(&pods),
        jobs: jobs.clone(),
        pods: pods.clone(),
        backoff,
        retries: driver::Retries::new(&registry, MANAGER),
    };
    driver::run(
        registry,
        MANAGER,
        vec![
            jobs.into(),
            driver::Watched {
                resource: pods,
                relevant: |pod| controller_kind(pod) == Some("Job") || tracked(pod),
            },
        ],
        driver::Pace::WORKLOADS,
        reconciler,
        stop,
    )
    .await;
}

fn tracked(pod: &Value) -> bool {
    finalizers(pod).contains(&TRACKING_FINALIZER)
}

fn phase(pod: &Value) -> &str {
    text(pod, "/status/phase")
}

fn int(object: &Value, pointer: &str) -> Option<i64> {
    object.pointer(pointer).and_then(Value::as_i64)
}

/// Whether the Job has condition `kind` set True.
pub fn has_condition(job: &Value, kind: &str) -> bool {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|list| {
            list.iter()
                .any(|c| text(c, "/type") == kind && text(c, "/status") == "True")
        })
}

/// Whether the Job is done: Complete or Failed.
pub fn finished(job: &Value) -> bool {
    has_condition(job, "Complete") || has_condition(job, "Failed")
}

/// When the Job finished, if it has.
pub fn finished_at(job: &Value) -> Option<Timestamp> {
    let conditions = job.pointer("/status/conditions")?.as_array()?;
    conditions
        .iter()
        .filter(|c| {
            matches!(text(c, "/type"), "Complete" | "Failed") && text(c, "/status") == "True"
        })
        .filter_map(|c| text(c, "/lastTransitionTime").parse().ok())
        .max()
}

/// A pod's completion index, for Indexed Jobs.
fn index_of(pod: &Value) -> Option<i64> {
    pod.pointer("/metadata/annotations")
        .and_then(|a| a.get(COMPLETION_INDEX))
        .and_then(Value::as_str)
        .and_then(|i| i.parse().ok())
}

/// `completedIndexes` as Kubernetes writes it: `0-2,4,7-8`.
pub fn format_indexes(indexes: &BTreeSet<i64>) -> String {
    let mut parts = Vec::new();
    let mut run: Option<(i64, i64)> = None;
    for &i in indexes {
        run = match run {
            Some((start, end)) if i == end + 1 => Some((start, i)),
            Some(done) => {
                parts.push(done);
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    parts.extend(run);
    parts
        .into_iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

pub fn parse_indexes(text: &str) -> BTreeSet<i64> {
    let mut set = BTreeSet::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i64>(), b.parse::<i64>()) {
                    set.extend(a..=b);
                }
            }
            None => set.extend(part.parse::<i64>().ok()),
        }
    }
    set
}

fn uid_list(status: &Value, which: &str) -> Vec<String> {
    status
        .pointer(&format!("/uncountedTerminatedPods/{which}"))
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn condition(kind: &str, reason: &str, message: &str, status: bool, now: &str) -> Value {
    json!({
        "type": kind,
        "status": if status { "True" } else { "False" },
        "lastProbeTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    })
}

/// Sets `kind` in `conditions`, keeping its transition time when its
/// status does not change.
fn set_condition(conditions: &mut Vec<Value>, new: Value) {
    match conditions
        .iter_mut()
        .find(|c| c.get("type") == new.get("type"))
    {
        Some(existing) if existing.get("status") == new.get("status") => {}
        Some(existing) => *existing = new,
        None => conditions.push(new),
    }
}

/// What one pass decided the Job's status is.
#[derive(Default)]
struct Outcome {
    active: i64,
    ready: i64,
    /// Indexes that succeeded in this pass's pods (added to the stored ones).
    succeeded_indexes: BTreeSet<i64>,
    start: Option<String>,
    completion: Option<String>,
    conditions: Vec<Value>,
}

impl Reconciler for Jobs {
    async fn reconcile(&self, namespace: &str) -> Result<Option<Duration>> {
        // Every pod a Job makes carries the job-name label.
        let of_jobs = LabelSelector::parse(JOB_NAME).expect("a valid selector");
        // Pods first: a Job missing from the later list is really gone.
        let pods = self.cached_pods.list(Some(namespace), &of_jobs).await?;
        let jobs = self
            .cached_jobs
            .list(Some(namespace), &LabelSelector::default())
            .await?;
        let live: HashSet<&str> = jobs
            .iter()
            .filter(|j| !deleting(j))
            .map(|j| text(j, "/metadata/uid"))
            .collect();
        // Pods of Jobs that are gone or going are let go.
        let released = pods
            .iter()
            .filter(|p| tracked(p) && controller_uid(p).is_none_or(|uid| !live.contains(uid)));
        for pod in released {
            self.release(pod).await?;
        }
        let mut again = driver::Again::new(&self.retries);
        for job in jobs.iter().filter(|j| !deleting(j)) {
            let uid = text(job, "/metadata/uid");
            let mine: Vec<&Value> = pods
                .iter()
                .map(|p| &**p)
                .filter(|p| controller_uid(p) == Some(uid))
                .collect();
            again.note(job, self.sync(job, &mine).await);
        }
        Ok(again.when())
    }
}

impl Jobs {
    /// Removes the tracking finalizer from `pod`.
    async fn release(&self, pod: &Value) -> Result<()> {
        let result = edit(&self.registry, &self.pods, pod, None, MANAGER, |p| {
            super::owners::remove_finalizer(p, TRACKING_FINALIZER)
        })
        .await;
        match result {
            Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn sync(&self, job: &Value, pods: &[&Value]) -> Result<Option<Duration>> {
        let now = Timestamp::now();
        let now_text = timestamp(now);
        let mut job = job.clone();
        let status = job.get("status").cloned().unwrap_or(json!({}));

        // 1. Terminated pods not yet counted are recorded as uncounted
        // (once the Job has finished, pods that end later are not counted).
        let mut uncounted_ok = uid_list(&status, "succeeded");
        let mut uncounted_failed = uid_list(&status, "failed");
        let mut new = false;
        let done = finished(&job);
        for pod in pods.iter().filter(|p| tracked(p) && !done) {
            let uid = text(pod, "/metadata/uid").to_string();
            if uncounted_ok.contains(&uid) || uncounted_failed.contains(&uid) {
                continue;
            }
            match phase(pod) {
                "Succeeded" => uncounted_ok.push(uid),
                "Failed" => uncounted_failed.push(uid),
                _ if deleting(pod) => uncounted_failed.push(uid),
                _ => continue,
            }
            new = true;
        }
        if new {
            let (ok, failed) = (uncounted_ok.clone(), uncounted_failed.clone());
            job = edit(
                &self.registry,
                &self.jobs,
                &job,
                Some("status"),
                MANAGER,
                |j| {
                    let status = j
                        .as_object_mut()
                        .expect("objects")
                        .entry("status")
                        .or_insert_with(|| json!({}));
                    status["uncountedTerminatedPods"] = json!({"succeeded": ok, "failed": failed});
                },
            )
            .await?;
        }
        // 2. Their finalizers go (all of them once the Job has finished).
        for pod in pods.iter().filter(|p| tracked(p)) {
            let uid = text(pod, "/metadata/uid").to_string();
            if done || uncounted_ok.contains(&uid) || uncounted_failed.contains(&uid) {
                self.release(pod).await?;
            }
        }
        // 3. The counts, with the uncounted moved in (done in the status write).
        let stored = job.get("status").cloned().unwrap_or(json!({}));
        let succeeded = int(&stored, "/succeeded").unwrap_or(0) + uncounted_ok.len() as i64;
        let failed_pods = int(&stored, "/failed").unwrap_or(0) + uncounted_failed.len() as i64;
        let mut outcome = Outcome {
            start: stored
                .get("startTime")
                .and_then(Value::as_str)
                .map(String::from),
            completion: stored
                .get("completionTime")
                .and_then(Value::as_str)
                .map(String::from),
            conditions: stored
                .get("conditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            ..Outcome::default()
        };
        outcome.succeeded_indexes = pods
            .iter()
            .filter(|p| {
                phase(p) == "Succeeded"
                    && uncounted_ok.iter().any(|u| u == text(p, "/metadata/uid"))
            })
            .filter_map(|p| index_of(p))
            .collect();
        let mut completed = parse_indexes(text(&stored, "/completedIndexes"));
        completed.extend(outcome.succeeded_indexes.iter().copied());

        let active: Vec<&Value> = pods
            .iter()
            .copied()
            .filter(|p| !deleting(p) && !matches!(phase(p), "Succeeded" | "Failed"))
            .collect();
        let spec = job.get("spec").cloned().unwrap_or(json!({}));
        let on_failure = text(&spec, "/template/spec/restartPolicy") == "OnFailure";
        let restarts: i64 = if on_failure {
            active
                .iter()
                .flat_map(|p| {
                    p.pointer("/status/containerStatuses")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
                .sum()
        } else {
            0
        };
        let mut again: Option<Duration> = None;

        if finished(&job) {
            self.delete_pods(&job, &active).await;
            outcome.active = 0;
            again = self.expire(&job, now).await?;
            self.write_status(&job, &outcome, &completed).await?;
            return Ok(again);
        }

        let suspended = spec.get("suspend").and_then(Value::as_bool) == Some(true);
        let was_suspended = has_condition(&job, "Suspended");
        if suspended {
            self.delete_pods(&job, &active).await;
            if !was_suspended {
                set_condition(
                    &mut outcome.conditions,
                    condition(
                        "Suspended",
                        "JobSuspended",
                        "Job suspended",
                        true,
                        &now_text,
                    ),
                );
                self.events
                    .record(&job, EventType::Normal, "Suspended", "Job suspended", None)
                    .await;
            }
            self.write_status(&job, &outcome, &completed).await?;
            return Ok(None);
        }
        if was_suspended {
            set_condition(
                &mut outcome.conditions,
                condition("Suspended", "JobResumed", "Job resumed", false, &now_text),
            );
            // The deadline counts from when the Job resumed.
            outcome.start = Some(now_text.clone());
            self.events
                .record(&job, EventType::Normal, "Resumed", "Job resumed", None)
                .await;
        }
        let start: Timestamp = match &outcome.start {
            Some(at) => at.parse().unwrap_or(now),
            None => {
                outcome.start = Some(now_text.clone());
                now
            }
        };

        // Failure: too many failed pods (or restarts), or past the deadline.
        let backoff_limit = int(&spec, "/backoffLimit").unwrap_or(6);
        let deadline = int(&spec, "/activeDeadlineSeconds").map(|s| {
            start
                .checked_add(jiff::SignedDuration::from_secs(s))
                .unwrap_or(start)
        });
        let failure = if failed_pods + restarts > backoff_limit {
            Some((
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            ))
        } else if deadline.is_some_and(|d| d <= now) {
            Some((
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            ))
        } else {
            if let Some(d) = deadline {
                again = Some(Duration::from_millis(
                    d.duration_since(now).as_millis().max(0) as u64 + 10,
                ));
            }
            None
        };
        if let Some((reason, message)) = failure {
            self.delete_pods(&job, &active).await;
            for kind in ["FailureTarget", "Failed"] {
                set_condition(
                    &mut outcome.conditions,
                    condition(kind, reason, message, true, &now_text),
                );
            }
            self.events
                .record(&job, EventType::Warning, reason, message, None)
                .await;
            self.write_status(&job, &outcome, &completed).await?;
            return Ok(Some(Duration::from_millis(100)));
        }

        // Success.
        let indexed = text(&spec, "/completionMode") == "Indexed";
        let completions = int(&spec, "/completions");
        let complete = match completions {
            Some(n) if indexed => (0..n).all(|i| completed.contains(&i)),
            Some(n) => succeeded >= n,
            None => succeeded > 0 && active.is_empty(),
        };
        if complete {
            self.delete_pods(&job, &active).await;
            for kind in ["SuccessCriteriaMet", "Complete"] {
                set_condition(
                    &mut outcome.conditions,
                    condition(
                        kind,
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                        true,
                        &now_text,
                    ),
                );
            }
            outcome.completion = Some(now_text.clone());
            self.events
                .record(&job, EventType::Normal, "Completed", "Job completed", None)
                .await;
            self.write_status(&job, &outcome, &completed).await?;
            return Ok(Some(Duration::from_millis(100)));
        }

        // Running: keep the right number of pods.
        let parallelism = int(&spec, "/parallelism").unwrap_or(1).max(0);
        let mut active = active;
        let wanted = match completions {
            _ if indexed => parallelism,
            Some(n) => parallelism.min((n - succeeded).max(0)),
            None if succeeded > 0 => active.len() as i64,
            None => parallelism,
        };
        if active.len() as i64 > wanted {
            active.sort_by_key(|p| {
                (
                    is_ready(p),
                    text(p, "/metadata/creationTimestamp").to_string(),
                )
            });
            let surplus: Vec<&Value> = active.drain(..active.len() - wanted as usize).collect();
            self.delete_pods(&job, &surplus).await;
        }
        let missing = (wanted - active.len() as i64).max(0) as usize;
        if missing > 0 {
            let wait = self.backoff_left(pods, failed_pods, now);
            if wait > Duration::ZERO {
                again = Some(again.map_or(wait, |a| a.min(wait)));
            } else {
                let indexes: Vec<Option<i64>> = if indexed {
                    let running: BTreeSet<i64> =
                        active.iter().filter_map(|p| index_of(p)).collect();
                    (0..completions.unwrap_or(0))
                        .filter(|i| !completed.contains(i) && !running.contains(i))
                        .take(missing)
                        .map(Some)
                        .collect()
                } else {
                    vec![None; missing]
                };
                let created = self.create_pods(&job, &indexes).await;
                outcome.active += created as i64;
            }
        }
        outcome.active += active.len() as i64;
        outcome.ready = active.iter().filter(|p| is_ready(p)).count() as i64;
        self.write_status(&job, &outcome, &completed).await?;
        Ok(again)
    }

    /// How long until a failed pod may be replaced.
    fn backoff_left(&self, pods: &[&Value], failures: i64, now: Timestamp) -> Duration {
        let last_failure = pods
            .iter()
            .filter(|p| phase(p) == "Failed")
            .flat_map(|p| {
                p.pointer("/status/containerStatuses")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|c| {
                c.pointer("/state/terminated/finishedAt")
                    .and_then(Value::as_str)
                    .and_then(|t| t.parse::<Timestamp>().ok())
            })
            .max();
        let Some(last) = last_failure else {
            return Duration::ZERO;
        };
        let delay = self.backoff.after(failures);
        let elapsed = now.duration_since(last);
        let elapsed = Duration::from_millis(elapsed.as_millis().max(0) as u64);
        delay.saturating_sub(elapsed)
    }

    /// Deletes a finished Job whose `ttlSecondsAfterFinished` has passed;
    /// otherwise how long until it will have.
    async fn expire(&self, job: &Value, now: Timestamp) -> Result<Option<Duration>> {
        let (Some(ttl), Some(at)) = (int(job, "/spec/ttlSecondsAfterFinished"), finished_at(job))
        else {
            return Ok(None);
        };
        let due = at
            .checked_add(jiff::SignedDuration::from_secs(ttl))
            .unwrap_or(at);
        if due > now {
            let left = due.duration_since(now).as_millis().max(0) as u64;
            return Ok(Some(Duration::from_millis(left + 10)));
        }
        let options = DeleteOptions {
            propagation_policy: Some("Background".into()),
            preconditions: crate::store::Preconditions {
                revision: None,
                uid: Some(text(job, "/metadata/uid").to_string()),
            },
            ..DeleteOptions::default()
        };
        match self
            .registry
            .delete(
                &self.jobs,
                Some(text(job, "/metadata/namespace")),
                text(job, "/metadata/name"),
                &options,
            )
            .await
        {
            Ok(_) | Err(Error::NotFound { .. } | Error::Conflict { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes the status: the uncounted pods moved into the counts, as
    /// stored at the time of the write, so a retried pass never counts a
    /// pod twice.
    async fn write_status(
        &self,
        job: &Value,
        outcome: &Outcome,
        completed: &BTreeSet<i64>,
    ) -> Result<()> {
        let indexed = text(job, "/spec/completionMode") == "Indexed";
        let computed = |stored: &Value| -> Value {
            let status = stored.get("status").cloned().unwrap_or(json!({}));
            let ok = uid_list(&status, "succeeded").len() as i64;
            let failed = uid_list(&status, "failed").len() as i64;
            let mut next = serde_json::Map::new();
            if let Some(start) = &outcome.start {
                next.insert("startTime".into(), json!(start));
            }
            if let Some(end) = &outcome.completion {
                next.insert("completionTime".into(), json!(end));
            }
            for (field, value) in [
                ("active", outcome.active),
                ("succeeded", int(&status, "/succeeded").unwrap_or(0) + ok),
                ("failed", int(&status, "/failed").unwrap_or(0) + failed),
            ] {
                if value > 0 {
                    next.insert(field.into(), json!(value));
                }
            }
            next.insert("ready".into(), json!(outcome.ready));
            if indexed && !completed.is_empty() {
                let mut all = parse_indexes(text(&status, "/completedIndexes"));
                all.extend(completed.iter().copied());
                next.insert("completedIndexes".into(), json!(format_indexes(&all)));
            }
            next.insert("uncountedTerminatedPods".into(), json!({}));
            if !outcome.conditions.is_empty() {
                next.insert("conditions".into(), json!(outcome.conditions));
            }
            Value::Object(next)
        };
        if job.get("status") == Some(&computed(job)) {
            return Ok(());
        }
        edit(
            &self.registry,
            &self.jobs,
            job,
            Some("status"),
            MANAGER,
            |j| {
                let status = computed(j);
                j["status"] = status;
            },
        )
        .await?;
        Ok(())
    }

    /// Creates one pod per entry (an Indexed Job's index, or `None`);
    /// returns how many were made.
    async fn create_pods(&self, job: &Value, indexes: &[Option<i64>]) -> usize {
        let namespace = text(job, "/metadata/namespace");
        let name = text(job, "/metadata/name");
        let template = job.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let options = WriteOptions::manager(MANAGER);
        let mut made = 0;
        for chunk in indexes.chunks(BURST) {
            let creates = chunk.iter().map(|index| {
                let pod = pod_for(job, name, &template, *index);
                self.registry
                    .create(&self.pods, Some(namespace), pod, &options)
            });
            for result in futures::future::join_all(creates).await {
                match result {
                    Ok(written) => {
                        made += 1;
                        let message =
                            format!("Created pod: {}", text(&written.object, "/metadata/name"));
                        self.events
                            .record(job, EventType::Normal, "SuccessfulCreate", &message, None)
                            .await;
                    }
                    Err(e) => {
                        self.events
                            .record(
                                job,
                                EventType::Warning,
                                "FailedCreate",
                                &format!("Error creating: {e}"),
                                None,
                            )
                            .await;
                        return made;
                    }
                }
            }
        }
        made
    }

    async fn delete_pods(&self, job: &Value, pods: &[&Value]) {
        for pod in pods {
            let name = text(pod, "/metadata/name");
            let result = self
                .registry
                .delete(
                    &self.pods,
                    Some(text(pod, "/metadata/namespace")),
                    name,
                    &DeleteOptions::default(),
                )
                .await;
            match result {
                Ok(_) => {
                    self.events
                        .record(
                            job,
                            EventType::Normal,
                            "SuccessfulDelete",
                            &format!("Deleted pod: {name}"),
                            None,
                        )
                        .await
                }
                Err(Error::NotFound { .. }) => {}
                Err(e) => tracing::warn!("deleting pod {name} of job: {e}"),
            }
        }
    }
}

/// The pod a Job runs: the template, owned by the Job and held by the
/// tracking finalizer; in an Indexed Job, named and labelled by its index,
/// which its containers read as `JOB_COMPLETION_INDEX`.
fn pod_for(job: &Value, name: &str, template: &Value, index: Option<i64>) -> Value {
    let mut metadata = super::from_template(
        json!({
            "generateName": format!("{name}-"),
            "ownerReferences": [controller_ref(job, "batch/v1", "Job")],
            "finalizers": [TRACKING_FINALIZER],
        }),
        template,
    );
    // Also with a manual selector: the controller finds its pods by it.
    metadata["labels"][JOB_NAME] = json!(name);
    let mut spec = template.get("spec").cloned().unwrap_or(json!({}));
    if let Some(i) = index {
        metadata["generateName"] = json!(format!("{name}-{i}-"));
        for field in ["labels", "annotations"] {
            metadata[field][COMPLETION_INDEX] = json!(i.to_string());
        }
        if spec.get("hostname").is_none() {
            spec["hostname"] = json!(format!("{name}-{i}"));
        }
        let env = json!({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
            "fieldPath": format!("metadata.annotations['{COMPLETION_INDEX}']")}}});
        for list in ["initContainers", "containers"] {
            if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
                for container in containers {
                    let vars = container
                        .as_object_mut()
                        .expect("containers are objects")
                        .entry("env")
                        .or_insert_with(|| json!([]));
                    if let Some(vars) = vars.as_array_mut()
                        && !vars.iter().any(|v| v["name"] == "JOB_COMPLETION_INDEX")
                    {
                        vars.push(env.clone());
                    }
                }
            }
        }
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completed_indexes_round_trip_in_kubernetes_form() {
        let set: BTreeSet<i64> = [0, 1, 2, 4, 7, 8].into_iter().collect();
        assert_eq!(format_indexes(&set), "0-2,4,7-8");
        assert_eq!(parse_indexes("0-2,4,7-8"), set);
        assert_eq!(format_indexes(&BTreeSet::new()), "");
        assert!(parse_indexes("").is_empty());
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let backoff = Backoff::default();
        assert_eq!(backoff.after(0), Duration::ZERO);
        assert_eq!(backoff.after(1), Duration::from_secs(10));
        assert_eq!(backoff.after(3), Duration::from_secs(40));
        assert_eq!(backoff.after(7), Duration::from_secs(360));
        assert_eq!(backoff.after(1000), Duration::from_secs(360));
    }

    #[test]
    fn indexed_pods_carry_their_index() {
        let job = json!({"metadata": {"name": "sq", "uid": "u"}, "spec": {}});
        let template = json!({"metadata": {"labels": {"job-name": "sq"}},
            "spec": {"containers": [{"name": "c", "image": "toolbox"}]}});
        let pod = pod_for(&job, "sq", &template, Some(2));
        assert_eq!(pod["metadata"]["generateName"], "sq-2-");
        assert_eq!(pod["metadata"]["labels"][COMPLETION_INDEX], "2");
        assert_eq!(pod["metadata"]["labels"]["job-name"], "sq");
        assert_eq!(pod["metadata"]["annotations"][COMPLETION_INDEX], "2");
        assert_eq!(pod["spec"]["hostname"], "sq-2");
        assert_eq!(pod["metadata"]["finalizers"], json!([TRACKING_FINALIZER]));
        assert_eq!(
            pod["spec"]["containers"][0]["env"][0]["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        );
        let plain = pod_for(&job, "sq", &template, None);
        assert_eq!(plain["metadata"]["generateName"], "sq-");
        assert!(plain["spec"].get("hostname").is_none());
    }
}
