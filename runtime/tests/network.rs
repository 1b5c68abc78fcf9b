//! The pod's own loopback: servers in a pod are reached through the pod's
//! network, ports are per pod, and a port is bound once.

mod common;

use common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wasmkube_runtime::*;

/// GETs `path` from port 80 of a pod, retrying while nothing listens yet.
async fn get(sandbox: &Sandbox, path: &str) -> String {
    let mut conn = None;
    for _ in 0..500 {
        if let Ok(c) = sandbox.net().dial(80) {
            conn = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut conn = conn.expect("nothing listened on port 80 within 5 s");
    conn.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: pod\r\nUser-Agent: test\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_string(&mut response))
        .await
        .expect("response hung")
        .unwrap();
    response
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_in_the_pod_serves_what_its_pod_mate_writes() {
    let sb = sandbox(&["html"]);
    let mut writer = sh(
        "writer",
        "echo 'hello from the pod' > /html/index.html; date >> /html/app.txt",
    );
    writer.mounts = vec![mount("html", "/html")];
    assert_eq!(run(&sb, &writer).await.0.exit_code, 0);
    let mut server = ContainerSpec {
        name: "web".into(),
        image: "http-server".into(),
        ..Default::default()
    };
    server.mounts = vec![mount("html", "/usr/share/nginx/html")];
    let running = sb.start_container(&server, 0).await.unwrap();
    let log = running.log_path().to_path_buf();

    let index = get(&sb, "/").await;
    assert!(index.starts_with("HTTP/1.1 200 OK\r\n"), "{index}");
    assert!(index.ends_with("\r\n\r\nhello from the pod\n"), "{index}");
    let app = get(&sb, "/app.txt").await;
    assert!(app.contains(" UTC "), "{app}");
    let missing = get(&sb, "/nope").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    assert_eq!(sb.net().listening_ports(), [80]);

    running.stop();
    running.wait().await;
    let access: Vec<String> = logs::read_log(&log)
        .unwrap()
        .into_iter()
        .map(|r| r.content)
        .collect();
    assert!(
        access
            .iter()
            .any(|l| l.contains("\"GET /app.txt HTTP/1.1\" 200")),
        "{access:?}"
    );
    // The listener went away with the container.
    assert!(sb.net().dial(80).is_err());
    sb.remove().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn two_pods_both_listen_on_port_80_and_a_pod_binds_it_once() {
    let a = sandbox(&[]);
    let b = sandbox(&[]);
    let server = |name: &str| ContainerSpec {
        name: name.into(),
        image: "echo-hostname:1.0.1".into(),
        ..Default::default()
    };
    let in_a = a.start_container(&server("web"), 0).await.unwrap();
    let in_b = b.start_container(&server("web"), 0).await.unwrap();
    assert!(get(&a, "/").await.contains("version: 1.0.1"));
    assert!(get(&b, "/").await.contains("version: 1.0.1"));

    // A second server on :80 in pod a finds the port taken.
    let (exit, lines) = run(&a, &server("second")).await;
    assert_eq!(exit.exit_code, 1);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("cannot listen on port 80") && l.contains("in use")),
        "{lines:?}"
    );

    for (running, sb) in [(in_a, a), (in_b, b)] {
        running.stop();
        running.wait().await;
        sb.remove().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_reaches_another_pod_at_its_ip() {
    let a = with_ip("10.244.200.1");
    let b = with_ip("10.244.200.2");
    assert_eq!(a.net().ip(), Some("10.244.200.1".parse().unwrap()));
    assert!(
        runtime()
            .run_pod_sandbox({
                let mut spec = sandbox_spec(&[]);
                spec.ip = Some("10.244.200.1".parse().unwrap());
                spec
            })
            .is_err(),
        "an IP belongs to one pod"
    );
    let server = ContainerSpec {
        name: "web".into(),
        image: "echo-hostname:1.0.1".into(),
        ..Default::default()
    };
    let in_a = a.start_container(&server, 0).await.unwrap();
    assert!(get(&a, "/").await.contains("version: 1.0.1"));

    // From pod b, by pod a's IP; pod a also answers at its own IP.
    let (exit, lines) = run(&b, &sh("client", "wget -qO- http://10.244.200.1/")).await;
    assert_eq!(exit.exit_code, 0, "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("version: 1.0.1")),
        "{lines:?}"
    );
    let (exit, lines) = run(&a, &sh("self", "wget -qO- http://10.244.200.1:80/")).await;
    assert_eq!(exit.exit_code, 0, "{lines:?}");
    // Pod b has nothing on :80, and an address that is no pod is not reachable.
    let (exit, lines) = run(&a, &sh("refused", "wget -qO- http://10.244.200.2/")).await;
    assert_eq!(exit.exit_code, 1);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("can't connect to remote host (10.244.200.2): Connection refused")),
        "{lines:?}"
    );
    let (exit, lines) = run(&b, &sh("nowhere", "wget -qO- http://10.244.200.99/")).await;
    assert_eq!(exit.exit_code, 1);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("can't connect to remote host (10.244.200.99): Connection refused")),
        "inside the pod network, an address no pod has is refused: {lines:?}"
    );

    in_a.stop();
    in_a.wait().await;
    a.remove().unwrap();
    drop(b);
    assert!(
        runtime()
            .cluster_net()
            .lookup("10.244.200.1".parse().unwrap())
            .is_none()
    );
}

/// UDP ports are per pod: two pods bind the same port, and datagrams reach
/// a pod mate over loopback and another pod at its IP.
#[tokio::test(flavor = "multi_thread")]
async fn udp_ports_are_per_pod_and_datagrams_reach_pods() {
    let a = with_ip("10.244.201.1");
    let b = with_ip("10.244.201.2");
    let c = with_ip("10.244.201.3");
    let server = |answer: &str| sh("server", &format!("echo {answer} | nc -u -l -p 5353"));
    let in_a = a.start_container(&server("pong-a"), 0).await.unwrap();
    let in_b = b.start_container(&server("pong-b"), 0).await.unwrap();
    // Both bound :5353; a pod mate asks over loopback, another pod by IP.
    let (exit, lines) = run(
        &a,
        &sh("client", "sleep 0.3; echo ping | nc -u -w 5 127.0.0.1 5353"),
    )
    .await;
    assert_eq!(exit.exit_code, 0, "{lines:?}");
    assert_eq!(lines, ["pong-a"]);
    let (exit, lines) = run(
        &c,
        &sh("client", "echo ping | nc -u -w 5 10.244.201.2 5353"),
    )
    .await;
    assert_eq!(exit.exit_code, 0, "{lines:?}");
    assert_eq!(lines, ["pong-b"]);
    for server in [in_a, in_b] {
        let log = server.log_path().to_path_buf();
        let exit = tokio::time::timeout(Duration::from_secs(10), server.wait())
            .await
            .expect("the server ends after one datagram");
        assert_eq!(exit.exit_code, 0);
        let lines: Vec<String> = logs::read_log(&log)
            .unwrap()
            .into_iter()
            .map(|r| r.content)
            .collect();
        assert_eq!(lines, ["ping"]);
    }
}

/// `nc -lk -p PORT -e cat`: each connection gets its own `cat`, which
/// echoes what arrives as it arrives.
#[tokio::test(flavor = "multi_thread")]
async fn nc_runs_an_applet_on_each_connection() {
    let sb = sandbox(&[]);
    let mut echo = sh("echo", "");
    echo.command = ["nc", "-lk", "-p", "7000", "-e", "cat"]
        .map(String::from)
        .to_vec();
    let _running = sb.start_container(&echo, 0).await.unwrap();
    for round in 0..2 {
        let mut conn = None;
        for _ in 0..500 {
            if let Ok(c) = sb.net().dial(7000) {
                conn = Some(c);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut conn = conn.expect("nc listens");
        for key in [b"a", b"b"] {
            conn.write_all(key).await.unwrap();
            let mut echoed = [0u8; 1];
            tokio::time::timeout(Duration::from_secs(10), conn.read_exact(&mut echoed))
                .await
                .unwrap_or_else(|_| panic!("connection {round}: no echo"))
                .unwrap();
            assert_eq!(&echoed, key, "each byte comes back before the next is sent");
        }
        conn.shutdown().await.unwrap();
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }
    sb.remove().unwrap();
}
