//! The CronJob controller: at each time the schedule names (in the
//! CronJob's zone) it makes a Job `<cronjob>-<minutes since the epoch>`
//! from the template, as the concurrency policy allows; it keeps
//! `status.active`, `lastScheduleTime` and `lastSuccessfulTime`, and
//! deletes finished Jobs beyond the history limits.
//!
//! After downtime only the most recent missed time runs (within
//! `startingDeadlineSeconds`, when set), as Kubernetes does; more than 100
//! missed times is reported. The Job's name comes from its scheduled time,
//! so a pass repeated after a crash finds the Job it made and makes no
//! second one.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::driver::{self, Reconciler};
use super::edit;
use super::job::finished;
use super::owners::{controller_ref, controller_uid, deleting};
use crate::cron::{MISSED_LIMIT, Schedule};
use crate::events::{EventType, Recorder};
use crate::registry::metadata::{text, timestamp as seconds};
use crate::registry::{
    DeleteOptions, Error, ListOptions, Registry, Resource, Result, WriteOptions,
};

const MANAGER: &str = "cronjob-controller";
/// The annotation naming the time a Job was scheduled for.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

struct CronJobs {
    registry: Registry,
    cron_jobs: Resource,
    jobs: Resource,
    events: Recorder,
    retries: driver::Retries,
}

/// Runs until `stop` turns true.
pub async fn run(registry: Registry, stop: tokio::sync::watch::Receiver<bool>) {
    let reconciler = CronJobs::new(registry.clone());
    let watched = vec![
        reconciler.cron_jobs.clone().into(),
        reconciler.jobs.clone().into(),
    ];
    driver::run(
        registry,
        MANAGER,
        watched,
        driver::Pace::WORKLOADS,
        reconciler,
        stop,
    )
    .await;
}

impl CronJobs {
    /// The `InvalidSchedule` warning, as Kubernetes' controller gives it.
    async fn invalid_schedule(&self, cron_job: &Value, why: &str) {
        let message = format!(
            "invalid schedule: {} : {why}",
            text(cron_job, "/spec/schedule")
        );
        self.events
            .record(
                cron_job,
                EventType::Warning,
                "InvalidSchedule",
                &message,
                None,
            )
            .await;
    }

    fn new(registry: Registry) -> CronJobs {
        CronJobs {
            events: Recorder::new(registry.clone(), MANAGER, None),
            retries: driver::Retries::new(&registry, MANAGER),
            cron_jobs: registry.resource("batch", "CronJob"),
            jobs: registry.resource("batch", "Job"),
            registry,
        }
    }
}

impl Reconciler for CronJobs {
    async fn reconcile(&self, namespace: &str) -> Result<Option<Duration>> {
        let all = ListOptions::default();
        let cron_jobs = self
            .registry
            .list(&self.cron_jobs, Some(namespace), &all)?
            .items;
        if cron_jobs.is_empty() {
            return Ok(None);
        }
        let jobs = self.registry.list(&self.jobs, Some(namespace), &all)?.items;
        let mut again = driver::Again::new(&self.retries);
        for cron_job in cron_jobs.iter().filter(|c| !deleting(c)) {
            let uid = text(cron_job, "/metadata/uid");
            let mine: Vec<&Value> = jobs
                .iter()
                .filter(|j| controller_uid(j) == Some(uid))
                .collect();
            again.note(cron_job, self.sync(cron_job, &mine, Timestamp::now()).await);
        }
        Ok(again.when())
    }
}

fn time_at(object: &Value, pointer: &str) -> Option<Timestamp> {
    text(object, pointer).parse().ok()
}

fn job_ref(job: &Value) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": text(job, "/metadata/name"),
        "namespace": text(job, "/metadata/namespace"),
        "uid": text(job, "/metadata/uid"),
        "resourceVersion": text(job, "/metadata/resourceVersion"),
    })
}

impl CronJobs {
    async fn sync(
        &self,
        cron_job: &Value,
        jobs: &[&Value],
        now: Timestamp,
    ) -> Result<Option<Duration>> {
        let spec = cron_job.get("spec").cloned().unwrap_or(json!({}));
        let stored = cron_job.get("status").cloned().unwrap_or(json!({}));
        let mut active: Vec<Value> = jobs
            .iter()
            .filter(|j| !finished(j) && !deleting(j))
            .map(|j| (*j).clone())
            .collect();
        // Jobs that finished since the last pass are reported.
        let was_active: Vec<&str> = stored
            .get("active")
            .and_then(Value::as_array)
            .map(|l| l.iter().map(|r| text(r, "/uid")).collect())
            .unwrap_or_default();
        for job in jobs.iter().filter(|j| finished(j)) {
            if was_active.contains(&text(job, "/metadata/uid")) {
                let outcome = if super::job::has_condition(job, "Complete") {
                    "Complete"
                } else {
                    "Failed"
                };
                let message = format!(
                    "Saw completed job: {}, status: {outcome}",
                    text(job, "/metadata/name")
                );
                self.events
                    .record(
                        cron_job,
                        EventType::Normal,
                        "SawCompletedJob",
                        &message,
                        None,
                    )
                    .await;
            }
        }
        let last_success = jobs
            .iter()
            .filter(|j| super::job::has_condition(j, "Complete"))
            .filter_map(|j| time_at(j, "/status/completionTime"))
            .chain(time_at(&stored, "/lastSuccessfulTime"))
            .max();
        self.clean_history(cron_job, jobs).await;

        let mut last_schedule = time_at(&stored, "/lastScheduleTime");
        let mut again = None;
        let suspended = spec.get("suspend").and_then(Value::as_bool) == Some(true);
        if !suspended {
            let schedule = match Schedule::new(
                text(&spec, "/schedule"),
                spec.get("timeZone").and_then(Value::as_str),
            ) {
                // A schedule that names no time that ever comes (Feb 30)
                // is as invalid as one that does not parse.
                Ok(s) if s.next_after(now).is_none() => {
                    self.invalid_schedule(cron_job, "it names no time that ever comes")
                        .await;
                    return Ok(None);
                }
                Ok(s) => s,
                Err(e) => {
                    self.invalid_schedule(cron_job, &e).await;
                    return Ok(None);
                }
            };
            let created = time_at(cron_job, "/metadata/creationTimestamp").unwrap_or(now);
            let mut earliest = last_schedule.unwrap_or(created);
            if let Some(deadline) = spec.get("startingDeadlineSeconds").and_then(Value::as_i64) {
                let window = now
                    .checked_sub(jiff::SignedDuration::from_secs(deadline))
                    .unwrap_or(now);
                earliest = earliest.max(window);
            }
            let (due, missed) = schedule.most_recent(earliest, now);
            if missed > MISSED_LIMIT {
                self.events
                    .record(
                        cron_job,
                        EventType::Warning,
                        "TooManyMissedTimes",
                        "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
                        None,
                    )
                    .await;
            }
            if let Some(next) = schedule.next_after(now) {
                let wait = next.duration_since(now).as_millis().max(0) as u64;
                again = Some(Duration::from_millis(wait + 100));
            }
            if let Some(due) = due {
                let policy = text(&spec, "/concurrencyPolicy");
                if policy == "Forbid" && !active.is_empty() {
                    self.events
                        .record(
                            cron_job,
                            EventType::Normal,
                            "JobAlreadyActive",
                            "Not starting job because prior execution is running and concurrency policy is Forbid",
                            None,
                        )
                        .await;
                } else {
                    if policy == "Replace" {
                        let replaced: Vec<&Value> = active.iter().collect();
                        self.delete_jobs(cron_job, &replaced).await;
                        active.clear();
                    }
                    if let Some(job) = self.start(cron_job, &schedule, due).await? {
                        active.push(job);
                    }
                    last_schedule = Some(due);
                }
            }
        }

        let mut status = serde_json::Map::new();
        let refs: Vec<Value> = active.iter().map(job_ref).collect();
        if !refs.is_empty() {
            status.insert("active".into(), json!(refs));
        }
        if let Some(t) = last_schedule {
            status.insert("lastScheduleTime".into(), json!(seconds(t)));
        }
        if let Some(t) = last_success {
            status.insert("lastSuccessfulTime".into(), json!(seconds(t)));
        }
        let status = Value::Object(status);
        let same = |a: &Value, b: &Value| {
            // Job references compare without their resourceVersion.
            let strip = |v: &Value| {
                let mut v = v.clone();
                if let Some(list) = v.get_mut("active").and_then(Value::as_array_mut) {
                    for r in list.iter_mut().filter_map(Value::as_object_mut) {
                        r.remove("resourceVersion");
                    }
                }
                v
            };
            strip(a) == strip(b)
        };
        if !same(&stored, &status) {
            edit(
                &self.registry,
                &self.cron_jobs,
                cron_job,
                Some("status"),
                MANAGER,
                |c| c["status"] = status.clone(),
            )
            .await?;
        }
        Ok(again)
    }

    /// Makes the Job for the time `due`; `None` if it could not.
    async fn start(
        &self,
        cron_job: &Value,
        schedule: &Schedule,
        due: Timestamp,
    ) -> Result<Option<Value>> {
        let namespace = text(cron_job, "/metadata/namespace");
        let name = format!(
            "{}-{}",
            text(cron_job, "/metadata/name"),
            due.as_second() / 60
        );
        let template = cron_job
            .pointer("/spec/jobTemplate")
            .cloned()
            .unwrap_or(json!({}));
        let zoned = due.to_zoned(schedule.zone().clone());
        let scheduled = if zoned.offset().seconds() == 0 {
            seconds(due)
        } else {
            zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
        };
        let mut metadata = super::from_template(
            json!({
                "name": name,
                "namespace": namespace,
                "ownerReferences": [controller_ref(cron_job, "batch/v1", "CronJob")],
            }),
            &template,
        );
        metadata["annotations"][SCHEDULED_TIMESTAMP] = json!(scheduled);
        let job = json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": metadata,
            "spec": template.get("spec").cloned().unwrap_or(json!({})),
        });
        let result = self
            .registry
            .create(
                &self.jobs,
                Some(namespace),
                job,
                &WriteOptions::manager(MANAGER),
            )
            .await;
        match result {
            Ok(written) => {
                self.events
                    .record(
                        cron_job,
                        EventType::Normal,
                        "SuccessfulCreate",
                        &format!("Created job {name}"),
                        None,
                    )
                    .await;
                Ok(Some(written.object))
            }
            Err(Error::AlreadyExists { .. }) => {
                // Made by an earlier pass, unless someone else took the name.
                let existing = self.registry.get(&self.jobs, Some(namespace), &name)?;
                if controller_uid(&existing) == Some(text(cron_job, "/metadata/uid")) {
                    Ok((!finished(&existing)).then_some(existing))
                } else {
                    self.events
                        .record(
                            cron_job,
                            EventType::Warning,
                            "FailedCreate",
                            &format!("Error creating job: a job named {name} already exists and is not this CronJob's"),
                            None,
                        )
                        .await;
                    Ok(None)
                }
            }
            Err(e) => {
                self.events
                    .record(
                        cron_job,
                        EventType::Warning,
                        "FailedCreate",
                        &format!("Error creating job: {e}"),
                        None,
                    )
                    .await;
                Ok(None)
            }
        }
    }

    /// Deletes the oldest finished Jobs beyond the history limits.
    async fn clean_history(&self, cron_job: &Value, jobs: &[&Value]) {
        for (condition, limit_field) in [
            ("Complete", "/spec/successfulJobsHistoryLimit"),
            ("Failed", "/spec/failedJobsHistoryLimit"),
        ] {
            let Some(limit) = cron_job.pointer(limit_field).and_then(Value::as_i64) else {
                continue;
            };
            let mut done: Vec<&Value> = jobs
                .iter()
                .copied()
                .filter(|j| !deleting(j) && super::job::has_condition(j, condition))
                .collect();
            if done.len() as i64 <= limit {
                continue;
            }
            done.sort_by_key(|j| {
                (
                    text(j, "/status/startTime").to_string(),
                    text(j, "/metadata/creationTimestamp").to_string(),
                )
            });
            let surplus = done.len() - limit.max(0) as usize;
            self.delete_jobs(cron_job, &done[..surplus]).await;
        }
    }

    async fn delete_jobs(&self, cron_job: &Value, jobs: &[&Value]) {
        let options = DeleteOptions {
            propagation_policy: Some("Background".into()),
            ..DeleteOptions::default()
        };
        for job in jobs {
            let name = text(job, "/metadata/name");
            match self
                .registry
                .delete(
                    &self.jobs,
                    Some(text(job, "/metadata/namespace")),
                    name,
                    &options,
                )
                .await
            {
                Ok(_) => {
                    self.events
                        .record(
                            cron_job,
                            EventType::Normal,
                            "SuccessfulDelete",
                            &format!("Deleted job {name}"),
                            None,
                        )
                        .await
                }
                Err(Error::NotFound { .. }) => {}
                Err(e) => tracing::warn!("deleting job {name}: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::registry::Resources;
    use crate::store::{RedbStore, StoreOptions};

    struct Fixture {
        _dir: tempfile::TempDir,
        controller: CronJobs,
        created: Timestamp,
    }

    const NS: &str = "default";

    async fn fixture(spec: Value) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("s.redb"), StoreOptions::default()).unwrap();
        let registry = Registry::new(Arc::new(store), Resources::builtin());
        let options = WriteOptions::manager("test");
        let namespaces = registry.resource("", "Namespace");
        registry
            .create(
                &namespaces,
                None,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
                &options,
            )
            .await
            .unwrap();
        let mut spec = spec;
        spec["jobTemplate"] = json!({"spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "toolbox"}]}}}});
        let controller = CronJobs::new(registry.clone());
        let written = registry
            .create(
                &controller.cron_jobs,
                Some(NS),
                json!({"apiVersion": "batch/v1", "kind": "CronJob",
                    "metadata": {"name": "tick"}, "spec": spec}),
                &options,
            )
            .await
            .unwrap();
        let created = time_at(&written.object, "/metadata/creationTimestamp").unwrap();
        Fixture {
            _dir: dir,
            controller,
            created,
        }
    }

    impl Fixture {
        /// The first whole minute after creation, plus `seconds`.
        fn minute(&self, n: i64, seconds: i64) -> Timestamp {
            let first = (self.created.as_second() / 60 + 1) * 60;
            Timestamp::from_second(first + n * 60 + seconds).unwrap()
        }

        fn jobs(&self) -> Vec<Value> {
            let c = &self.controller;
            let listed = c
                .registry
                .list(&c.jobs, Some(NS), &ListOptions::default())
                .unwrap();
            listed.items.into_iter().filter(|j| !deleting(j)).collect()
        }

        fn names(&self) -> Vec<String> {
            let mut names: Vec<String> = self
                .jobs()
                .iter()
                .map(|j| text(j, "/metadata/name").to_string())
                .collect();
            names.sort();
            names
        }

        fn cron_job(&self) -> Value {
            let c = &self.controller;
            c.registry.get(&c.cron_jobs, Some(NS), "tick").unwrap()
        }

        async fn pass(&self, now: Timestamp) -> Option<Duration> {
            let cron_job = self.cron_job();
            let all = self.jobs();
            let mine: Vec<&Value> = all
                .iter()
                .filter(|j| controller_uid(j) == Some(text(&cron_job, "/metadata/uid")))
                .collect();
            self.controller.sync(&cron_job, &mine, now).await.unwrap()
        }

        async fn set(&self, field: &str, value: Value) {
            let c = &self.controller;
            edit(
                &c.registry,
                &c.cron_jobs,
                &self.cron_job(),
                None,
                "test",
                |cj| cj["spec"][field] = value.clone(),
            )
            .await
            .unwrap();
        }

        fn job_name(&self, n: i64) -> String {
            format!("tick-{}", self.minute(n, 0).as_second() / 60)
        }
    }

    #[tokio::test]
    async fn a_schedule_that_never_fires_is_an_invalid_schedule_event() {
        let f = fixture(json!({"schedule": "0 0 30 2 *", "timeZone": "UTC"})).await;
        assert_eq!(f.pass(f.minute(5, 0)).await, None);
        assert!(f.jobs().is_empty());
        let c = &f.controller;
        let events = c
            .registry
            .list(
                &c.registry.resource("", "Event"),
                Some(NS),
                &ListOptions::default(),
            )
            .unwrap();
        let reasons: Vec<(&str, &str)> = events
            .items
            .iter()
            .map(|e| (text(e, "/reason"), text(e, "/message")))
            .collect();
        assert_eq!(
            reasons,
            [(
                "InvalidSchedule",
                "invalid schedule: 0 0 30 2 * : it names no time that ever comes"
            )]
        );
    }

    fn utc_every_minute() -> Value {
        json!({"schedule": "*/1 * * * *", "timeZone": "UTC"})
    }

    #[tokio::test]
    async fn a_job_is_made_once_per_scheduled_time() {
        let f = fixture(utc_every_minute()).await;
        assert_eq!(
            f.pass(f.minute(0, -1)).await,
            Some(Duration::from_millis(1100))
        );
        assert!(
            f.names().is_empty(),
            "nothing is due before the first minute"
        );
        f.pass(f.minute(0, 5)).await;
        assert_eq!(f.names(), [f.job_name(0)]);
        let job = &f.jobs()[0];
        assert_eq!(
            job.pointer("/metadata/annotations/batch.kubernetes.io~1cronjob-scheduled-timestamp"),
            Some(&json!(seconds(f.minute(0, 0))))
        );
        // The same pass again (a restart, a duplicate event) makes nothing new.
        f.pass(f.minute(0, 6)).await;
        assert_eq!(f.names(), [f.job_name(0)]);
        let status = &f.cron_job()["status"];
        assert_eq!(status["lastScheduleTime"], json!(seconds(f.minute(0, 0))));
        assert_eq!(status["active"][0]["name"], json!(f.job_name(0)));
    }

    #[tokio::test]
    async fn forbid_skips_while_a_job_runs_and_replace_replaces_it() {
        let f = fixture(utc_every_minute()).await;
        f.pass(f.minute(0, 1)).await;
        f.set("concurrencyPolicy", json!("Forbid")).await;
        f.pass(f.minute(1, 1)).await;
        assert_eq!(f.names(), [f.job_name(0)], "Forbid starts nothing");
        f.set("concurrencyPolicy", json!("Replace")).await;
        f.pass(f.minute(1, 2)).await;
        assert_eq!(
            f.names(),
            [f.job_name(1)],
            "Replace deletes the running job"
        );
        f.set("concurrencyPolicy", json!("Allow")).await;
        f.pass(f.minute(2, 1)).await;
        assert_eq!(f.names(), [f.job_name(1), f.job_name(2)], "Allow runs both");
        assert_eq!(
            f.cron_job()["status"]["active"].as_array().unwrap().len(),
            2
        );
    }

    #[tokio::test]
    async fn after_downtime_only_the_latest_missed_time_runs() {
        let f = fixture(utc_every_minute()).await;
        f.pass(f.minute(0, 1)).await;
        // Down for ten minutes: one Job, for the latest time.
        f.pass(f.minute(10, 20)).await;
        assert_eq!(f.names(), [f.job_name(0), f.job_name(10)]);
        // With a starting deadline, a time missed by more than it is skipped.
        f.set("startingDeadlineSeconds", json!(10)).await;
        f.pass(f.minute(12, 30)).await;
        assert_eq!(f.names(), [f.job_name(0), f.job_name(10)]);
        f.pass(f.minute(13, 5)).await;
        assert_eq!(f.names(), [f.job_name(0), f.job_name(10), f.job_name(13)]);
    }

    #[tokio::test]
    async fn finished_jobs_beyond_the_history_limits_are_deleted() {
        let f = fixture(utc_every_minute()).await;
        for minute in 0..4 {
            f.pass(f.minute(minute, 1)).await;
        }
        let jobs = &f.controller.jobs;
        for (minute, outcome) in [
            (0, "Complete"),
            (1, "Complete"),
            (2, "Failed"),
            (3, "Failed"),
        ] {
            let job = f
                .controller
                .registry
                .get(jobs, Some(NS), &f.job_name(minute))
                .unwrap();
            let start = seconds(f.minute(minute, 1));
            edit(
                &f.controller.registry,
                jobs,
                &job,
                Some("status"),
                "test",
                |j| {
                    j["status"] = json!({"startTime": start, "completionTime": start,
                    "conditions": [{"type": outcome, "status": "True"}]});
                },
            )
            .await
            .unwrap();
        }
        f.set("successfulJobsHistoryLimit", json!(1)).await;
        f.set("failedJobsHistoryLimit", json!(0)).await;
        f.pass(f.minute(3, 30)).await;
        assert_eq!(f.names(), [f.job_name(1)], "the newest success is kept");
        let status = &f.cron_job()["status"];
        assert!(status.get("active").is_none(), "{status}");
        assert_eq!(status["lastSuccessfulTime"], json!(seconds(f.minute(1, 1))));
    }

    #[tokio::test]
    async fn suspended_cron_jobs_start_nothing() {
        let mut spec = utc_every_minute();
        spec["suspend"] = json!(true);
        let f = fixture(spec).await;
        assert_eq!(f.pass(f.minute(3, 0)).await, None);
        assert!(f.names().is_empty());
    }
}
