//! Whole pods under their restart policy, with real guests and a
//! millisecond back-off.

mod common;

use common::*;
use std::time::Duration;
use wasmkube_runtime::*;

const FAST: Backoff = Backoff {
    initial: Duration::from_millis(10),
    max: Duration::from_millis(40),
    reset_after: Duration::from_secs(600),
};

fn pod(containers: Vec<ContainerSpec>, volumes: &[&str], policy: RestartPolicy) -> PodSpec {
    PodSpec {
        sandbox: sandbox_spec(volumes),
        init_containers: vec![],
        containers,
        restart_policy: policy,
        backoff: FAST,
    }
}

async fn finish(mut runner: PodRunner) -> (PodStatus, Sandbox) {
    let status = tokio::time::timeout(Duration::from_secs(60), runner.wait())
        .await
        .expect("pod never finished");
    (status, runner.sandbox().clone())
}

fn log_of(status: &ContainerStatus) -> Vec<String> {
    let path = status.log_path.as_ref().expect("it ran");
    logs::read_log(path)
        .unwrap()
        .into_iter()
        .map(|r| r.content)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_containers_share_an_empty_dir() {
    let mut writer = sh(
        "writer",
        "echo 'written by the writer' > /shared/note.txt.tmp && mv /shared/note.txt.tmp /shared/note.txt",
    );
    writer.mounts = vec![mount("shared", "/shared")];
    let mut reader = sh(
        "reader",
        "while [ ! -f /data/note.txt ]; do sleep 0.01; done; cat /data/note.txt",
    );
    reader.mounts = vec![mount("shared", "/data")];
    let runner = PodRunner::start(
        runtime(),
        pod(vec![writer, reader], &["shared"], RestartPolicy::Never),
    )
    .unwrap();
    let (status, sandbox) = finish(runner).await;
    assert!(status.finished);
    for c in &status.containers {
        assert_eq!(c.terminated().map(|e| e.exit_code), Some(0), "{c:?}");
    }
    assert_eq!(log_of(&status.containers[1]), ["written by the writer"]);
    sandbox.remove().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn never_runs_once_even_on_failure() {
    let runner = PodRunner::start(
        runtime(),
        pod(vec![sh("c", "exit 3")], &[], RestartPolicy::Never),
    )
    .unwrap();
    let (status, sandbox) = finish(runner).await;
    let c = &status.containers[0];
    assert_eq!((c.restart_count, c.terminated().unwrap().exit_code), (0, 3));
    assert!(c.last_termination.is_none());
    sandbox.remove().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn on_failure_restarts_until_success_and_keeps_the_previous_log() {
    // Fails twice, then succeeds: the attempt count lives in the emptyDir,
    // which survives restarts (the container's own root does not).
    let mut c = sh(
        "c",
        "n=$(cat /state/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /state/n; echo attempt $n; [ $n -ge 3 ]",
    );
    c.mounts = vec![mount("state", "/state")];
    let runner = PodRunner::start(
        runtime(),
        pod(vec![c], &["state"], RestartPolicy::OnFailure),
    )
    .unwrap();
    let (status, sandbox) = finish(runner).await;
    let c = &status.containers[0];
    assert_eq!(c.restart_count, 2);
    assert_eq!(c.terminated().unwrap().reason, ExitReason::Completed);
    assert_eq!(c.last_termination.as_ref().unwrap().exit_code, 1);
    assert_eq!(log_of(c), ["attempt 3"]);
    // The previous instance's log is kept, older ones are not.
    let dir = sandbox.log_dir("c");
    assert_eq!(
        logs::read_log(&dir.join("1.log")).unwrap()[0].content,
        "attempt 2"
    );
    assert!(!dir.join("0.log").exists());
    sandbox.remove().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn always_restarts_even_after_success_until_stopped() {
    let runner = PodRunner::start(
        runtime(),
        pod(vec![sh("c", "echo run")], &[], RestartPolicy::Always),
    )
    .unwrap();
    let mut watch = runner.watch();
    // (The watch guard is a read lock: keep it only within this statement.)
    let reached = tokio::time::timeout(
        Duration::from_secs(30),
        watch.wait_for(|s| s.containers[0].restart_count >= 3),
    )
    .await
    .is_ok();
    assert!(reached, "no third restart: {:?}", runner.status());
    let sandbox = runner.sandbox().clone();
    let status = tokio::time::timeout(Duration::from_secs(10), runner.stop())
        .await
        .expect("stop hung");
    assert!(status.finished);
    let c = &status.containers[0];
    assert!(c.terminated().is_some(), "{c:?}");
    assert_eq!(
        c.last_termination.as_ref().map(|e| e.reason),
        Some(ExitReason::Completed)
    );
    sandbox.remove().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_loops_report_back_off_with_growing_delays() {
    let slow = Backoff {
        initial: Duration::from_millis(300),
        max: Duration::from_secs(5),
        reset_after: Duration::from_secs(600),
    };
    let mut spec = pod(vec![sh("c", "exit 1")], &[], RestartPolicy::Always);
    spec.backoff = slow;
    let runner = PodRunner::start(runtime(), spec).unwrap();
    let mut watch = runner.watch();
    let waiting = tokio::time::timeout(
        Duration::from_secs(30),
        watch.wait_for(|s| matches!(&s.containers[0].state, ContainerState::Waiting { reason, .. } if reason == "CrashLoopBackOff")),
    )
    .await
    .expect("never backed off")
    .unwrap()
    .clone();
    let ContainerState::Waiting { message, .. } = &waiting.containers[0].state else {
        unreachable!()
    };
    assert_eq!(
        message.as_deref(),
        Some("back-off 300ms restarting failed container=c pod=testpod")
    );
    assert_eq!(
        waiting.containers[0]
            .last_termination
            .as_ref()
            .unwrap()
            .exit_code,
        1
    );
    let sandbox = runner.sandbox().clone();
    runner.stop().await;
    sandbox.remove().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_image_waits_in_err_image_pull() {
    let mut c = sh("c", "true");
    c.image = "does-not-exist".into();
    let runner = PodRunner::start(runtime(), pod(vec![c], &[], RestartPolicy::Never)).unwrap();
    let mut watch = runner.watch();
    let s = tokio::time::timeout(
        Duration::from_secs(10),
        watch.wait_for(|s| matches!(&s.containers[0].state, ContainerState::Waiting { reason, .. } if reason == "ErrImagePull")),
    )
    .await
    .expect("no ErrImagePull")
    .unwrap()
    .clone();
    let ContainerState::Waiting { message, .. } = &s.containers[0].state else {
        unreachable!()
    };
    assert!(
        message
            .as_deref()
            .unwrap()
            .contains("\"does-not-exist\" is not in the local image store")
    );
    let sandbox = runner.sandbox().clone();
    runner.stop().await;
    sandbox.remove().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn init_containers_run_in_order_before_the_containers() {
    let mut first = sh("first", "echo one > /work/order");
    first.mounts = vec![mount("work", "/work")];
    // Fails once (no marker yet), then succeeds: retried under OnFailure.
    let mut second = sh(
        "second",
        "if [ -f /work/tried ]; then echo two >> /work/order; else touch /work/tried; exit 1; fi",
    );
    second.mounts = vec![mount("work", "/work")];
    let mut main = sh("main", "cat /work/order");
    main.mounts = vec![mount("work", "/work")];
    let mut spec = pod(vec![main], &["work"], RestartPolicy::OnFailure);
    spec.init_containers = vec![first, second];
    let runner = PodRunner::start(runtime(), spec).unwrap();
    let (status, sandbox) = finish(runner).await;
    assert!(status.finished);
    assert_eq!(
        status.init_containers[1].restart_count, 1,
        "{:?}",
        status.init_containers[1]
    );
    assert_eq!(log_of(&status.containers[0]), ["one", "two"]);
    sandbox.remove().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_init_container_under_never_ends_the_pod_before_it_starts() {
    let mut spec = pod(vec![sh("main", "echo never")], &[], RestartPolicy::Never);
    spec.init_containers = vec![sh("init", "exit 7")];
    let runner = PodRunner::start(runtime(), spec).unwrap();
    let (status, sandbox) = finish(runner).await;
    assert!(status.finished);
    assert_eq!(
        status.init_containers[0].terminated().map(|e| e.exit_code),
        Some(7)
    );
    assert!(matches!(
        &status.containers[0].state,
        ContainerState::Waiting { reason, .. } if reason == "PodInitializing"
    ));
    sandbox.remove().unwrap();
}
