//! The guide's Jobs and CronJobs chapters through the real kubectl: the
//! dice Job rolling until a six, a Job failing at its backoff limit after
//! growing delays, Indexed and parallel Jobs, deadlines, suspension, TTL,
//! restarts in place, a CronJob on a real one-minute schedule (made from
//! the guide's batch/v1beta1 manifest), `create job --from=cronjob`, and
//! cascading deletes.
//!
//! kubectl is required: these tests fail (never skip) without it.

mod server;

use std::time::Duration;

use serde_json::Value;
use server::{Server, text};

/// The guide's dice Job, with our image.
const DICE_JOB: &str = r#"kind: Job
apiVersion: batch/v1
metadata:
  name: dice-job
spec:
  # At least one pod should exit successfully, and only
  # one pod should run at a time.
  completions: 1
  parallelism: 1

  # The spec for the pod that is created when the job runs.
  template:
    metadata:
      name: dice-pod
    spec:
      # Pods used in jobs *must* use a restart
      # policy of "OnFailure" or "Never"
      # OnFailure = Re-run the container in the same pod
      # Never = Run the container in a new pod
      restartPolicy: Never

      # This container simulates a dice roll and
      # returns a zero exit code (i.e. success)
      # when we get a six.
      containers:
        - name: dice
          image: toolbox
          command: ["/bin/sh"]
          # if dice_roll == 6, return 0. else, return 1.
          args: ["-c", "if [ \"$(shuf -i 1-6 -n 1)\" = \"6\" ];
then exit 0; else exit 1; fi"]
"#;

/// The guide's CronJob, with our image and a check that needs no internet.
const CRON_JOB: &str = r#"kind: CronJob
apiVersion: batch/v1beta1
metadata:
  name: google-check-cronjob
spec:
  # CronJob configuration -- uses cron syntax
  # to specify job schedule. In this case, run every minute.
  schedule: "*/1 * * * *"

  # How many completed jobs we want to keep around.
  # Let's keep the last ten minutes' jobs.
  successfulJobsHistoryLimit: 10

  # The job to be created every minute. This reuses
  # configuration format for regular jobs.
  jobTemplate:
    metadata:
      name: google-check-job
    spec:
      # The pod to be created to execute the job
      template:
        metadata:
          name: google-check-pod
        spec:
          # OnFailure = Re-run failed container in the same pod
          restartPolicy: OnFailure
          containers:
            - name: google-check-container
              image: toolbox
              command: ["/bin/sh"]
              args: ["-c", "echo checked"]
"#;

const TRACKING: &str = "batch.kubernetes.io/job-tracking";

fn int(object: &Value, pointer: &str) -> i64 {
    object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn condition<'a>(job: &'a Value, kind: &str) -> Option<&'a Value> {
    job.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| text(c, "/type") == kind && text(c, "/status") == "True")
}

fn seconds(object: &Value, pointer: &str) -> i64 {
    text(object, pointer)
        .parse::<jiff::Timestamp>()
        .unwrap_or_else(|e| panic!("{pointer} of {object}: {e}"))
        .as_second()
}

/// The pods of a Job, oldest first.
fn pods_of(server: &Server, job: &str) -> Vec<Value> {
    let mut pods = server.items(&["get", "pods", "-l", &format!("job-name={job}")]);
    pods.sort_by_key(|p| text(p, "/metadata/creationTimestamp").to_string());
    pods
}

/// `kubectl wait --for=condition=COND job/NAME`.
fn wait_condition(server: &Server, name: &str, condition: &str, seconds: u32) {
    server.kubectl_ok(&[
        "wait",
        &format!("--for=condition={condition}"),
        &format!("job/{name}"),
        &format!("--timeout={seconds}s"),
    ]);
}

fn finished(job: &Value) -> bool {
    condition(job, "Complete").is_some() || condition(job, "Failed").is_some()
}

fn wait_finished(server: &Server, job: &str, limit: Duration) -> Value {
    let mut last = Value::Null;
    server.wait_for(limit, || {
        last = server.json(&["get", "job", job]);
        finished(&last)
    });
    last
}

#[test]
fn the_guides_dice_job_rolls_until_a_six() {
    let server = Server::start_with(&["--job-backoff", "100ms"]);
    let path = server.manifest("job.yaml", DICE_JOB);
    let created = server.kubectl_ok(&["apply", "-f", &path]);
    assert_eq!(created.trim(), "job.batch/dice-job created");
    wait_finished(&server, "dice-job", Duration::from_secs(180));
    // Let the finished pods' outcomes settle into the counts.
    server.wait_for(Duration::from_secs(30), || {
        pods_of(&server, "dice-job")
            .iter()
            .all(|p| !p.to_string().contains(TRACKING))
    });
    let job = server.json(&["get", "job", "dice-job"]);
    let pods = pods_of(&server, "dice-job");
    let failed: Vec<&Value> = pods
        .iter()
        .filter(|p| text(p, "/status/phase") == "Failed")
        .collect();
    let succeeded: Vec<&Value> = pods
        .iter()
        .filter(|p| text(p, "/status/phase") == "Succeeded")
        .collect();
    assert_eq!(failed.len() + succeeded.len(), pods.len(), "{pods:#?}");
    assert_eq!(int(&job, "/status/failed"), failed.len() as i64);
    assert_eq!(int(&job, "/status/succeeded"), succeeded.len() as i64);
    let table = server.kubectl_ok(&["get", "pods"]);
    for pod in &pods {
        let name = text(pod, "/metadata/name");
        assert!(name.starts_with("dice-job-"), "{name}");
        assert_eq!(text(pod, "/metadata/ownerReferences/0/kind"), "Job");
        assert_eq!(text(pod, "/metadata/ownerReferences/0/name"), "dice-job");
        let status = server::table_row(&table, name)[2];
        let expected = if text(pod, "/status/phase") == "Failed" {
            "Error"
        } else {
            "Completed"
        };
        assert_eq!(status, expected, "{table}");
    }
    // One pod at a time (parallelism 1): each starts after the last ended.
    // (Times are whole seconds: ordered by start, then end.)
    let terminated = |p: &Value, field: &str| {
        seconds(
            p,
            &format!("/status/containerStatuses/0/state/terminated/{field}"),
        )
    };
    let mut by_start: Vec<&Value> = pods.iter().collect();
    by_start.sort_by_key(|p| (terminated(p, "startedAt"), terminated(p, "finishedAt")));
    for pair in by_start.windows(2) {
        let (ended, started) = (
            terminated(pair[0], "finishedAt"),
            terminated(pair[1], "startedAt"),
        );
        assert!(started >= ended, "{pair:#?}");
    }
    let jobs = server.kubectl_ok(&["get", "jobs"]);
    if condition(&job, "Complete").is_some() {
        // A six: one pod succeeded, and it ran after every failure.
        assert_eq!(succeeded.len(), 1);
        let last_failure = failed.iter().map(|p| terminated(p, "finishedAt")).max();
        assert!(
            last_failure.is_none_or(|end| terminated(succeeded[0], "startedAt") >= end),
            "{pods:#?}"
        );
        assert_eq!(
            server::table_row(&jobs, "dice-job")[1..3],
            ["Complete", "1/1"],
            "{jobs}"
        );
        assert!(job.pointer("/status/completionTime").is_some());
    } else {
        // Seven rolls without a six (one time in 3.6): the backoff limit.
        assert_eq!(failed.len(), 7);
        let failure = condition(&job, "Failed").unwrap();
        assert_eq!(text(failure, "/reason"), "BackoffLimitExceeded");
        assert_eq!(
            server::table_row(&jobs, "dice-job")[1..3],
            ["Failed", "0/1"],
            "{jobs}"
        );
    }
    // Deleting a finished pod loses none of the counts.
    let first = text(&pods[0], "/metadata/name").to_string();
    server.kubectl_ok(&["delete", "pod", &first]);
    let after = server.json(&["get", "job", "dice-job"]);
    assert_eq!(int(&after, "/status/failed"), failed.len() as i64);
    assert_eq!(int(&after, "/status/succeeded"), succeeded.len() as i64);
    assert_eq!(pods_of(&server, "dice-job").len(), pods.len() - 1);
    // Deleting the Job takes its pods.
    server.kubectl_ok(&["delete", "job", "dice-job"]);
    server.wait_for(Duration::from_secs(30), || {
        pods_of(&server, "dice-job").is_empty()
    });
}

#[test]
fn a_failing_job_backs_off_longer_each_time_then_stops_at_its_limit() {
    let server = Server::start_with(&["--job-backoff", "2s"]);
    let path = server.manifest(
        "fails.yaml",
        "apiVersion: batch/v1
kind: Job
metadata: {name: fails}
spec:
  backoffLimit: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: toolbox, command: [sh, -c, 'exit 3']}]
",
    );
    server.kubectl_ok(&["apply", "-f", &path]);
    wait_condition(&server, "fails", "failed", 90);
    let job = server.json(&["get", "job", "fails"]);
    let failure = condition(&job, "Failed").unwrap();
    assert_eq!(text(failure, "/reason"), "BackoffLimitExceeded");
    assert_eq!(
        text(failure, "/message"),
        "Job has reached the specified backoff limit"
    );
    let pods = pods_of(&server, "fails");
    assert_eq!(pods.len(), 3, "backoffLimit 2 allows three pods");
    server.wait_for(Duration::from_secs(20), || {
        int(&server.json(&["get", "job", "fails"]), "/status/failed") == 3
    });
    for pod in &pods {
        assert_eq!(text(pod, "/status/phase"), "Failed");
        assert_eq!(
            int(pod, "/status/containerStatuses/0/state/terminated/exitCode"),
            3
        );
    }
    // 2 s after the first failure, 4 s after the second (times are whole
    // seconds, so each gap is at least the delay less one).
    let gap = |before: &Value, after: &Value| {
        seconds(after, "/metadata/creationTimestamp")
            - seconds(
                before,
                "/status/containerStatuses/0/state/terminated/finishedAt",
            )
    };
    assert!(gap(&pods[0], &pods[1]) >= 1, "{pods:#?}");
    assert!(gap(&pods[1], &pods[2]) >= 3, "{pods:#?}");
    let jobs = server.kubectl_ok(&["get", "job", "fails"]);
    assert_eq!(
        server::table_row(&jobs, "fails")[1..3],
        ["Failed", "0/1"],
        "{jobs}"
    );
    let events = server.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=fails",
    ]);
    assert!(
        events.contains("BackoffLimitExceeded")
            && events.contains("Job has reached the specified backoff limit"),
        "{events}"
    );
}

#[test]
fn indexed_parallel_and_work_queue_jobs_complete() {
    let server = Server::start_with(&["--job-backoff", "100ms"]);
    let path = server.manifest(
        "jobs.yaml",
        "apiVersion: batch/v1
kind: Job
metadata: {name: squares}
spec:
  completions: 3
  parallelism: 2
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: toolbox
        command: [sh, -c, 'echo index $JOB_COMPLETION_INDEX on $(hostname)']
---
apiVersion: batch/v1
kind: Job
metadata: {name: fixed}
spec:
  completions: 4
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: toolbox, command: [sh, -c, 'sleep 0.2']}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: queue}
spec:
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: toolbox, command: [sh, -c, 'sleep 0.2']}]
",
    );
    server.kubectl_ok(&["apply", "-f", &path]);
    for name in ["squares", "fixed", "queue"] {
        wait_condition(&server, name, "complete", 90);
    }
    let squares = server.json(&["get", "job", "squares"]);
    assert_eq!(text(&squares, "/status/completedIndexes"), "0-2");
    assert_eq!(int(&squares, "/status/succeeded"), 3);
    let mut logs: Vec<String> = Vec::new();
    for pod in pods_of(&server, "squares") {
        let name = text(&pod, "/metadata/name");
        let index = text(
            &pod,
            "/metadata/annotations/batch.kubernetes.io~1job-completion-index",
        );
        assert!(name.starts_with(&format!("squares-{index}-")), "{name}");
        logs.push(server.kubectl_ok(&["logs", name]).trim().to_string());
    }
    logs.sort();
    assert_eq!(
        logs,
        [
            "index 0 on squares-0",
            "index 1 on squares-1",
            "index 2 on squares-2"
        ]
    );
    let table = server.kubectl_ok(&["get", "jobs", "-o", "wide"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "STATUS",
            "COMPLETIONS",
            "DURATION",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert_eq!(
        server::table_row(&table, "squares")[1..3],
        ["Complete", "3/3"]
    );
    assert_eq!(
        server::table_row(&table, "fixed")[1..3],
        ["Complete", "4/4"]
    );
    assert_eq!(pods_of(&server, "fixed").len(), 4);
    // A work queue: done when one pod succeeded and none still runs.
    let queue = server::table_row(&table, "queue");
    assert_eq!(queue[1], "Complete", "{table}");
    assert!(
        queue[2..5] == ["1/1", "of", "2"] || queue[2..5] == ["2/1", "of", "2"],
        "{table}"
    );
    assert!(
        server::table_row(&table, "queue")
            .iter()
            .any(|c| c.starts_with("batch.kubernetes.io/controller-uid="))
    );
}

#[test]
fn deadlines_suspension_ttl_restarts_and_deleted_pods() {
    let server = Server::start_with(&["--job-backoff", "100ms"]);
    let path = server.manifest(
        "jobs.yaml",
        "apiVersion: batch/v1
kind: Job
metadata: {name: slow}
spec:
  activeDeadlineSeconds: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: toolbox, command: [sleep, '300']}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: brief}
spec:
  ttlSecondsAfterFinished: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: toolbox, command: [echo, done]}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: later}
spec:
  suspend: true
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: toolbox, command: [echo, resumed]}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: retry}
spec:
  backoffLimit: 2
  template:
    spec:
      restartPolicy: OnFailure
      containers: [{name: c, image: toolbox, command: [sh, -c, 'exit 1']}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: long}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: toolbox, command: [sleep, '300']}]
",
    );
    server.kubectl_ok(&["apply", "-f", &path]);

    // activeDeadlineSeconds: the Job fails and its pod goes.
    let slow = wait_finished(&server, "slow", Duration::from_secs(60));
    let failure = condition(&slow, "Failed").expect("slow failed");
    assert_eq!(text(failure, "/reason"), "DeadlineExceeded");
    assert_eq!(
        text(failure, "/message"),
        "Job was active longer than specified deadline"
    );
    server.wait_for(Duration::from_secs(30), || {
        pods_of(&server, "slow").is_empty()
    });

    // ttlSecondsAfterFinished: the Job and its pod are deleted.
    server.wait_for(Duration::from_secs(60), || {
        !server
            .kubectl_ok(&["get", "jobs", "-o", "name"])
            .contains("job.batch/brief")
    });
    server.wait_for(Duration::from_secs(30), || {
        pods_of(&server, "brief").is_empty()
    });

    // suspend: no pods until resumed.
    assert!(pods_of(&server, "later").is_empty());
    let table = server.kubectl_ok(&["get", "job", "later"]);
    assert_eq!(
        server::table_row(&table, "later")[1],
        "Suspended",
        "{table}"
    );
    server.kubectl_ok(&[
        "patch",
        "job",
        "later",
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":false}}"#,
    ]);
    wait_condition(&server, "later", "complete", 60);
    let pods = pods_of(&server, "later");
    assert_eq!(pods.len(), 1);
    let log = server.kubectl_ok(&["logs", text(&pods[0], "/metadata/name")]);
    assert_eq!(log.trim(), "resumed");
    let later = server.json(&["get", "job", "later"]);
    let resumed = later["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| text(c, "/type") == "Suspended")
        .unwrap();
    assert_eq!(text(resumed, "/status"), "False");
    assert_eq!(text(resumed, "/reason"), "JobResumed");

    // OnFailure: restarts in the same pod count toward the limit.
    let retry = wait_finished(&server, "retry", Duration::from_secs(60));
    assert_eq!(
        text(condition(&retry, "Failed").unwrap(), "/reason"),
        "BackoffLimitExceeded"
    );
    let events = server.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=retry,reason=SuccessfulCreate",
        "-o",
        "name",
    ]);
    assert_eq!(events.lines().count(), 1, "one pod, restarted in place");

    // A running pod deleted counts as a failure and is replaced.
    let first = pods_of(&server, "long");
    assert_eq!(first.len(), 1);
    let first_name = text(&first[0], "/metadata/name").to_string();
    server.kubectl_ok(&["delete", "pod", &first_name, "--wait=false"]);
    server.wait_for(Duration::from_secs(60), || {
        let job = server.json(&["get", "job", "long"]);
        let pods = pods_of(&server, "long");
        int(&job, "/status/failed") == 1
            && pods.iter().any(|p| {
                text(p, "/metadata/name") != first_name && text(p, "/status/phase") == "Running"
            })
    });
    // The Job's pods go with it: foreground waits until they are gone.
    server.kubectl_ok(&["delete", "job", "long", "--cascade=foreground"]);
    assert!(pods_of(&server, "long").is_empty());
}

#[test]
fn bad_jobs_and_cron_jobs_are_refused_with_the_field_named() {
    let server = Server::start();
    let path = server.manifest(
        "bad-job.yaml",
        "apiVersion: batch/v1
kind: Job
metadata: {name: bad}
spec:
  template:
    spec:
      containers: [{name: c, image: toolbox}]
",
    );
    let out = server.kubectl(&["apply", "-f", &path]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never""#),
        "{err}"
    );
    let out = server.kubectl(&[
        "create",
        "cronjob",
        "bad",
        "--image=toolbox",
        "--schedule=every minute",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            r#"spec.schedule: Invalid value: "every minute": expected exactly 5 fields, found 2"#
        ),
        "{err}"
    );
}

#[test]
fn the_guides_cron_job_runs_each_minute() {
    let server = Server::start();
    let path = server.manifest("cronjob.yaml", CRON_JOB);
    let out = server.kubectl(&["apply", "-f", &path]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "cronjob.batch/google-check-cronjob created"
    );
    let warning = String::from_utf8_lossy(&out.stderr);
    assert!(
        warning.contains(
            "batch/v1beta1 CronJob is deprecated in v1.21+, unavailable in v1.25+; use batch/v1 CronJob"
        ),
        "{warning}"
    );
    let stored = server.json(&["get", "cronjob", "google-check-cronjob"]);
    assert_eq!(text(&stored, "/apiVersion"), "batch/v1");
    assert_eq!(text(&stored, "/spec/concurrencyPolicy"), "Allow");
    let table = server.kubectl_ok(&["get", "cronjobs"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"
        ]
    );
    assert_eq!(
        server::table_row(&table, "google-check-cronjob")[1..6],
        ["*/1", "*", "*", "*", "*"]
    );

    // A Job by hand from the template.
    server.kubectl_ok(&[
        "create",
        "job",
        "by-hand",
        "--from=cronjob/google-check-cronjob",
    ]);
    wait_condition(&server, "by-hand", "complete", 60);

    // The schedule: a Job named for its minute, within the next minute.
    let mut scheduled = Vec::new();
    server.wait_for(Duration::from_secs(90), || {
        scheduled = server
            .items(&["get", "jobs"])
            .into_iter()
            .filter(|j| {
                text(j, "/metadata/name")
                    .strip_prefix("google-check-cronjob-")
                    .is_some_and(|n| n.parse::<i64>().is_ok())
            })
            .collect();
        scheduled.iter().any(|j| condition(j, "Complete").is_some())
    });
    let job = scheduled
        .iter()
        .find(|j| condition(j, "Complete").is_some())
        .unwrap();
    let name = text(job, "/metadata/name");
    let minutes: i64 = name.rsplit('-').next().unwrap().parse().unwrap();
    let stamp = text(
        job,
        "/metadata/annotations/batch.kubernetes.io~1cronjob-scheduled-timestamp",
    );
    assert_eq!(
        stamp.parse::<jiff::Timestamp>().unwrap().as_second(),
        minutes * 60,
        "named for the minute it was scheduled for"
    );
    let pods = pods_of(&server, name);
    assert_eq!(pods.len(), 1);
    let pod_name = text(&pods[0], "/metadata/name");
    assert!(pod_name.starts_with(&format!("{name}-")), "{pod_name}");
    assert_eq!(server.kubectl_ok(&["logs", pod_name]).trim(), "checked");
    server.wait_for(Duration::from_secs(20), || {
        let cron_job = server.json(&["get", "cronjob", "google-check-cronjob"]);
        cron_job.pointer("/status/lastScheduleTime").is_some()
            && cron_job.pointer("/status/lastSuccessfulTime").is_some()
    });
    let table = server.kubectl_ok(&["get", "cronjobs"]);
    let cells = server::table_row(&table, "google-check-cronjob");
    assert_eq!(cells[6..9], ["<none>", "False", "0"], "{table}");
    assert_ne!(cells[9], "<none>", "LAST SCHEDULE is set: {table}");

    // Deleting the CronJob takes its Jobs and their pods.
    server.kubectl_ok(&["delete", "-f", &path]);
    server.wait_for(Duration::from_secs(30), || {
        server.items(&["get", "jobs"]).is_empty() && server.items(&["get", "pods"]).is_empty()
    });
}
