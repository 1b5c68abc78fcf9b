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

/// Reads a session's stream until `want` has appeared; everything read.
async fn read_until(reader: &ExecReader, want: &str) -> String {
    let mut seen = String::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while !seen.contains(want) {
            match reader.read().await {
                Some(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                None => break,
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{want:?} never came; saw {seen:?}"));
    assert!(seen.contains(want), "{want:?} never came; saw {seen:?}");
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_streams_output_and_feeds_stdin_while_the_command_runs() {
    let sb = sandbox(&[]);
    let spec = sh("main", "sleep 600");
    let _running = sb.start_container(&spec, 0).await.unwrap();
    let script = "echo ready; read a; echo got $a; read b; echo got $b >&2; sleep 600";
    let mut session = sb
        .exec_session(
            &spec,
            &argv(&["sh", "-c", script]),
            ExecOptions {
                stdin: true,
                stdout: true,
                stderr: true,
                tty: None,
            },
        )
        .await
        .unwrap();
    let (stdin, stdout, stderr) = (
        session.stdin.take().unwrap(),
        session.stdout.take().unwrap(),
        session.stderr.take().unwrap(),
    );
    // Output comes while the command still runs, and each line of stdin
    // is answered before the next is sent.
    read_until(&stdout, "ready\n").await;
    stdin.write(b"one\n").await.unwrap();
    read_until(&stdout, "got one\n").await;
    stdin.write(b"two\n").await.unwrap();
    read_until(&stderr, "got two\n").await;
    session.kill();
    assert_ne!(session.wait().await, 0);
    assert!(
        stdout.read().await.is_none(),
        "stdout ends with the command"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_terminal_echoes_edits_lines_and_ctrl_c_stops_a_command() {
    let sb = sandbox(&[]);
    let spec = sh("main", "sleep 600");
    let _running = sb.start_container(&spec, 0).await.unwrap();
    let options = ExecOptions {
        stdin: true,
        stdout: true,
        stderr: false,
        tty: Some(Some(TerminalSize {
            columns: 100,
            rows: 40,
        })),
    };
    let mut session = sb
        .exec_session(
            &spec,
            &argv(&["sh", "-c", "while read l; do echo \"got $l\"; done"]),
            options,
        )
        .await
        .unwrap();
    assert!(session.stderr.is_none());
    let (stdin, out) = (
        session.stdin.take().unwrap(),
        session.stdout.take().unwrap(),
    );
    // Typed "hellp", erased the p, then Enter: the terminal echoes the
    // editing, the loop gets the corrected line and answers it.
    stdin.write(b"hellp\x7fo\r").await.unwrap();
    let seen = read_until(&out, "got hello\r\n").await;
    assert_eq!(seen, "hellp\x08 \x08o\r\ngot hello\r\n");
    // The command does not catch interrupts: Ctrl-C stops it with 130.
    stdin.write(b"\x03").await.unwrap();
    let code = tokio::time::timeout(Duration::from_secs(20), session.wait())
        .await
        .expect("Ctrl-C stops the command");
    assert_eq!(code, 130);
}

/// `ps` in a container lists the container's instance as pid 1 and what is
/// exec'd in it after; another container's processes only when the pod
/// shares its process namespace.
#[tokio::test(flavor = "multi_thread")]
async fn ps_sees_its_process_namespace() {
    for shared in [false, true] {
        let mut sandbox_spec = sandbox_spec(&[]);
        sandbox_spec.share_process_namespace = shared;
        let sb = runtime().run_pod_sandbox(sandbox_spec).unwrap();
        let app = sh("app", "sleep 600");
        let mut sidecar = sh("sidecar", "sleep 600");
        sidecar.run_as_user = Some(1000);
        // A process is in the table from its start.
        let _app = sb.start_container(&app, 0).await.unwrap();
        let _sidecar = sb.start_container(&sidecar, 0).await.unwrap();
        let ps = argv(&["ps", "-o", "pid,user,comm,args"]);
        let out = sb
            .exec(&app, &ps, None, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(out.exit_code, 0, "{out:?}");
        let listed = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines: Vec<&str> = listed.lines().collect();
        assert_eq!(lines[0], "PID   USER     COMMAND  COMMAND", "{listed}");
        assert_eq!(lines[1], "    1 root     sh       /bin/sh -c sleep 600");
        let (exec_line, pid) = if shared { (lines[3], 3) } else { (lines[2], 2) };
        assert_eq!(
            exec_line,
            format!("    {pid} root     ps       ps -o pid,user,comm,args"),
        );
        match shared {
            false => assert_eq!(lines.len(), 3, "{listed}"),
            true => {
                assert_eq!(lines.len(), 4, "{listed}");
                assert_eq!(lines[2], "    2 1000     sh       /bin/sh -c sleep 600");
            }
        }
        // The host's own view of the same table.
        let names: Vec<String> = sb
            .processes("sidecar")
            .into_iter()
            .map(|p| format!("{} {}", p.pid, p.container))
            .collect();
        match shared {
            false => assert_eq!(names, ["1 sidecar"]),
            true => assert_eq!(names, ["1 app", "2 sidecar"]),
        }
    }
}
