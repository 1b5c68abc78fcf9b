//! Commands run in a running container's context: its files, env, mounts
//! and exit code; the toolbox steps in for commands the image lacks; a
//! command that runs too long is stopped.

mod common;

use common::*;
use std::time::Duration;
use wasmkube_runtime::*;

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// Waits until `path` exists in the container, by exec.
async fn wait_for_file(sb: &Sandbox, spec: &ContainerSpec, path: &str) {
    for _ in 0..500 {
        let out = sb
            .exec(spec, &argv(&["cat", path]), None, Duration::from_secs(5))
            .await
            .unwrap();
        if out.exit_code == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{path} never appeared");
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_sees_the_containers_files_env_and_mounts() {
    let sb = sandbox(&["data"]);
    let mut spec = sh(
        "main",
        "echo alive > /tmp/healthy; echo shared > /data/file; sleep 600",
    );
    spec.env = vec![("GREETING".into(), "hello".into())];
    spec.mounts = vec![mount("data", "/data")];
    let running = sb.start_container(&spec, 0).await.unwrap();
    wait_for_file(&sb, &spec, "/tmp/healthy").await;

    let out = sb
        .exec(
            &spec,
            &argv(&["cat", "/tmp/healthy", "/data/file"]),
            None,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(
        (out.exit_code, &out.stdout[..]),
        (0, &b"alive\nshared\n"[..])
    );
    let out = sb
        .exec(
            &spec,
            &argv(&["sh", "-c", "echo $GREETING $HOSTNAME; exit 7"]),
            None,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 7);
    assert_eq!(&out.stdout[..], b"hello testpod\n");
    let out = sb
        .exec(
            &spec,
            &argv(&["cat", "/tmp/missing"]),
            None,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_ne!(out.exit_code, 0);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/tmp/missing"),
        "{out:?}"
    );
    let out = sb
        .exec(
            &spec,
            &argv(&["sh", "-c", "cat > /tmp/piped; wc -l < /tmp/piped"]),
            Some(bytes::Bytes::from_static(b"one\ntwo\n")),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!((out.exit_code, out.text().trim()), (0, "2"));
    running.stop();
    running.wait().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_toolbox_runs_what_the_image_does_not_provide() {
    let sb = sandbox(&[]);
    let spec = ContainerSpec {
        name: "web".into(),
        image: "http-server".into(),
        env: vec![("PORT".into(), "8080".into())],
        ..Default::default()
    };
    let running = sb.start_container(&spec, 0).await.unwrap();
    let out = sb
        .exec(
            &spec,
            &argv(&["sh", "-c", "echo port $PORT; ls /"]),
            None,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert!(out.text().starts_with("port 8080\n"), "{out:?}");
    running.stop();
    running.wait().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exec_past_its_timeout_is_stopped() {
    let sb = sandbox(&[]);
    let spec = sh("main", "sleep 600");
    let running = sb.start_container(&spec, 0).await.unwrap();
    let out = sb
        .exec(
            &spec,
            &argv(&["sleep", "600"]),
            None,
            Duration::from_millis(200),
        )
        .await
        .unwrap();
    assert!(out.timed_out);
    assert_eq!(out.exit_code, container::EXIT_STOPPED);
    let never = sh("never-started", "true");
    assert!(matches!(
        sb.exec(&never, &argv(&["true"]), None, Duration::from_secs(1))
            .await,
        Err(ExecError::NotRunning(_))
    ));
    running.stop();
    running.wait().await;
}
