//! The `run_pod` example, run as a test so CI shows it works.

#[path = "../examples/run_pod.rs"]
#[allow(dead_code)]
mod run_pod;

#[tokio::test(flavor = "multi_thread")]
async fn the_run_pod_example_runs() {
    let lines = tokio::time::timeout(std::time::Duration::from_secs(60), run_pod::run())
        .await
        .expect("the example finishes within a minute")
        .expect("the example succeeds");
    assert_eq!(lines, ["written by notes"]);
}
