//! One container instance at a time, with real guests: exit codes, traps,
//! stops, memory and CPU limits, logs, mounts, stdin, the compile cache.

mod common;

use common::*;
use std::time::{Duration, Instant};
use wasmkube_runtime::container::{EXIT_OOM, EXIT_STOPPED, EXIT_TRAP};
use wasmkube_runtime::*;

#[tokio::test(flavor = "multi_thread")]
async fn exit_codes_are_exact_for_components_and_p1_modules() {
    let sb = sandbox(&[]);
    let (exit, _) = run(&sb, &sh("c", "exit 7")).await;
    assert_eq!((exit.exit_code, exit.reason), (7, ExitReason::Error));
    let (exit, _) = run(&sb, &sh("c", "echo fine")).await;
    assert_eq!((exit.exit_code, exit.reason), (0, ExitReason::Completed));
    // A WASI p1 core module, converted to a component at load.
    let (exit, lines) = run(
        &sb,
        &stress("c", &["--print", "p1 says hi", "--exit", "42"]),
    )
    .await;
    assert_eq!(exit.exit_code, 42);
    assert_eq!(lines, ["p1 says hi"]);
    // Exit codes wrap like a process's: 256 + 3 is 3.
    let (exit, _) = run(&sb, &sh("c", "exit 259")).await;
    assert_eq!(exit.exit_code, 3);
    sb.remove().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_is_an_error_with_the_trap_in_the_message() {
    let sb = sandbox(&[]);
    let (exit, _) = run(&sb, &stress("c", &["--trap"])).await;
    assert_eq!(
        (exit.exit_code, exit.reason),
        (EXIT_TRAP, ExitReason::Error)
    );
    let message = exit.message.expect("a termination message");
    assert!(
        message.starts_with("wasm trap: wasm `unreachable` instruction executed"),
        "{message}"
    );
    sb.remove().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spinning_guest_is_stopped_promptly() {
    let sb = sandbox(&[]);
    let running = sb
        .start_container(&stress("spin", &["--spin-ms", "600000"]), 0)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let asked = Instant::now();
    running.stop();
    // Regression guard against a guest that never yields: a 10 s timeout,
    // far above the one-tick (1 ms) stop the epoch callback gives.
    let exit = tokio::time::timeout(Duration::from_secs(10), running.wait())
        .await
        .expect("stop did not take effect");
    assert_eq!(
        (exit.exit_code, exit.reason),
        (EXIT_STOPPED, ExitReason::Error)
    );
    eprintln!(
        "stopped a spinning guest {:?} after asking",
        asked.elapsed()
    );
    sb.remove().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sleeping_guest_is_stopped_promptly() {
    let sb = sandbox(&[]);
    let running = sb
        .start_container(&sh("nap", "sleep 3600"), 0)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    running.stop();
    let exit = tokio::time::timeout(Duration::from_secs(10), running.wait())
        .await
        .expect("stop did not take effect");
    assert_eq!(exit.exit_code, EXIT_STOPPED);
    sb.remove().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_beyond_the_limit_is_oom_killed() {
    let sb = sandbox(&[]);
    let mut spec = stress("hog", &["--alloc-mb", "64"]);
    spec.limits.memory_bytes = Some(16 << 20);
    let (exit, lines) = run(&sb, &spec).await;
    assert_eq!(
        (exit.exit_code, exit.reason),
        (EXIT_OOM, ExitReason::OomKilled),
        "{exit:?}"
    );
    assert!(
        exit.message
            .unwrap()
            .contains("memory limit of 16777216 bytes")
    );
    assert!(!lines.iter().any(|l| l.contains("allocated")), "{lines:?}");
    // The same guest within its limit completes.
    spec.limits.memory_bytes = Some(128 << 20);
    let (exit, lines) = run(&sb, &spec).await;
    assert_eq!(exit.reason, ExitReason::Completed, "{exit:?}");
    assert_eq!(lines, ["allocated 64 MiB"]);
    sb.remove().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cpu_quota_stretches_wall_time() {
    let sb = sandbox(&[]);
    let mut spec = stress("burn", &["--burn", "150"]);
    spec.limits.cpu_millis = Some(200);
    let started = Instant::now();
    let running = sb.start_container(&spec, 0).await.unwrap();
    let usage = running.usage_handle();
    let exit = tokio::time::timeout(Duration::from_secs(120), running.wait())
        .await
        .unwrap();
    let wall = started.elapsed();
    let used = usage.snapshot();
    assert_eq!(exit.reason, ExitReason::Completed);
    assert!(
        used.cpu >= Duration::from_millis(100),
        "the work is too small to measure: {used:?}"
    );
    // At 200m the guest earns 0.2 ms of CPU per ms of wall time, plus one
    // 20 ms period's worth up front, so using `cpu` takes at least
    // (cpu - 20 ms) / 0.2 of wall time. A loaded machine only adds wall
    // time, except that a late epoch tick lets the guest overshoot before
    // its last check; 20% of slack covers that.
    let bound = (used.cpu.as_secs_f64() - 0.02) / 0.2 * 0.8;
    assert!(
        wall.as_secs_f64() >= bound,
        "wall {wall:?} < {bound:.3}s for cpu {:?}",
        used.cpu
    );
    assert!(used.throttled > Duration::ZERO);
    eprintln!(
        "200m: cpu {:?} over wall {wall:?} ({:.0}%)",
        used.cpu,
        used.cpu.as_secs_f64() / wall.as_secs_f64() * 100.0
    );
    sb.remove().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn log_lines_carry_timestamps_and_streams() {
    let sb = sandbox(&[]);
    let before = jiff::Timestamp::now();
    let running = sb
        .start_container(&sh("c", "echo out; echo err >&2; echo again"), 0)
        .await
        .unwrap();
    let path = running.log_path().to_path_buf();
    running.wait().await;
    let after = jiff::Timestamp::now();
    let records = logs::read_log(&path).unwrap();
    let got: Vec<_> = records
        .iter()
        .map(|r| (r.stream, r.content.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (Stream::Stdout, "out"),
            (Stream::Stderr, "err"),
            (Stream::Stdout, "again")
        ]
    );
    for r in &records {
        assert!(
            before <= r.timestamp && r.timestamp <= after,
            "{:?} not within the run",
            r.timestamp
        );
    }
    let raw = std::fs::read_to_string(&path).unwrap();
    let first = raw.lines().next().unwrap();
    let (ts, rest) = first.split_once(' ').unwrap();
    assert_eq!(rest, "stdout F out");
    assert!(
        ts.len() == 30 && ts.ends_with('Z') && ts.as_bytes()[19] == b'.',
        "not RFC3339 with nanoseconds: {ts}"
    );
    sb.remove().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn mounts_read_only_and_sub_paths() {
    let sb = sandbox(&["data"]);
    let mut writer = sh(
        "w",
        "mkdir -p /data/sub && echo hello > /data/sub/greeting && echo ok",
    );
    writer.mounts = vec![mount("data", "/data")];
    assert_eq!(run(&sb, &writer).await.1, ["ok"]);

    let mut reader = sh(
        "r",
        "cat /only/greeting; echo nope > /only/x || echo refused",
    );
    reader.mounts = vec![Mount {
        sub_path: Some("sub".into()),
        read_only: true,
        ..mount("data", "/only")
    }];
    let (exit, lines) = run(&sb, &reader).await;
    assert_eq!(exit.exit_code, 0);
    assert_eq!(lines[0], "hello");
    assert!(lines.iter().any(|l| l == "refused"), "{lines:?}");
    assert!(!sb.volume_path("data").unwrap().join("sub/x").exists());

    let mut escape = sh("e", "true");
    escape.mounts = vec![Mount {
        sub_path: Some("../../etc".into()),
        ..mount("data", "/x")
    }];
    let err = sb
        .start_container(&escape, 0)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("subPath \"../../etc\" must be a relative path without '..'"),
        "{err}"
    );
    sb.remove().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_private_root_is_emptied_on_restart() {
    let sb = sandbox(&[]);
    let spec = sh("c", "ls /tmp; touch /tmp/mark");
    let (_, first) = run(&sb, &spec).await;
    let (_, second) = run(&sb, &spec).await;
    assert!(
        first.is_empty() && second.is_empty(),
        "{first:?} {second:?}"
    );
    sb.remove().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn env_hostname_working_dir_and_stdin() {
    let sb = sandbox(&["w"]);
    let mut spec = sh("c", "echo $GREETING $HOSTNAME; pwd; hostname; cat");
    spec.env = vec![("GREETING".into(), "hi".into())];
    spec.working_dir = Some("/work".into());
    spec.mounts = vec![mount("w", "/work")];
    spec.stdin = Some(bytes::Bytes::from_static(b"from stdin\n"));
    let (exit, lines) = run(&sb, &spec).await;
    assert_eq!(exit.exit_code, 0);
    assert_eq!(lines, ["hi testpod", "/work", "testpod", "from stdin"]);
    // Without stdin the guest reads end-of-file at once.
    let (exit, lines) = run(&sb, &sh("c", "cat; echo done")).await;
    assert_eq!((exit.exit_code, lines), (0, vec!["done".to_string()]));
    sb.remove().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn ls_shows_owner_group_mode_and_size_from_the_host() {
    use std::os::unix::fs::MetadataExt;
    let sb = sandbox(&["v"]);
    let mut spec = sh("c", "echo twelve bytes > /v/f.txt; ls -l /v");
    spec.mounts = vec![mount("v", "/v")];
    let (_, lines) = run(&sb, &spec).await;
    let meta = std::fs::metadata(sb.volume_path("v").unwrap().join("f.txt")).unwrap();
    let line = lines
        .iter()
        .find(|l| l.ends_with(" f.txt"))
        .unwrap_or_else(|| panic!("{lines:?}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[0].len(), 10, "{line}");
    assert!(fields[0].starts_with("-rw"), "{line}");
    assert_eq!(
        (fields[2], fields[3]),
        (
            meta.uid().to_string().as_str(),
            meta.gid().to_string().as_str()
        )
    );
    assert_eq!(fields[4], "13");
    sb.remove().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_images_fail_to_start_with_the_known_list() {
    let sb = sandbox(&[]);
    let mut spec = sh("c", "true");
    spec.image = "nginx:1.7.9".into();
    let err = sb.start_container(&spec, 0).await.unwrap_err();
    assert!(matches!(err, StartError::Image(_)));
    let text = err.to_string();
    assert!(
        text.contains("\"nginx:1.7.9\" is not in the local image store")
            && text.contains("toolbox:latest"),
        "{text}"
    );
    sb.remove().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_of_one_new_image_compile_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = std::sync::Arc::new(Runtime::new(RuntimeConfig::new(dir.path())).unwrap());
    builtin::seed(runtime.images()).unwrap();
    let starts: Vec<_> = (0..16)
        .map(|_| {
            let runtime = std::sync::Arc::clone(&runtime);
            tokio::spawn(async move { runtime.prepare_image("stress").await.map(drop) })
        })
        .collect();
    for start in starts {
        start.await.unwrap().unwrap();
    }
    assert_eq!(runtime.engine().compilations(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn compiled_components_are_cached_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let first = Runtime::new(RuntimeConfig::new(dir.path())).unwrap();
    builtin::seed(first.images()).unwrap();
    first.prepare_image("stress").await.unwrap();
    assert_eq!(first.engine().compilations(), 1);
    drop(first);
    let second = Runtime::new(RuntimeConfig::new(dir.path())).unwrap();
    second.prepare_image("stress").await.unwrap();
    assert_eq!(
        second.engine().compilations(),
        0,
        "the second runtime recompiled"
    );
}
