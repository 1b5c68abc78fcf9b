//! `wasi:http/proxy` images (`http-hello`) served on their ports inside the
//! pod's network: an instance per request, keep-alive connections, the
//! port freed when the container stops.

mod common;

use common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wasmkube_runtime::container::EXIT_STOPPED;
use wasmkube_runtime::net::PodConnection;
use wasmkube_runtime::*;

fn hello(ports: Vec<u16>) -> ContainerSpec {
    ContainerSpec {
        name: "hello".into(),
        image: "http-hello".into(),
        ports,
        ..Default::default()
    }
}

/// Reads one HTTP/1.1 response with a body of `Content-Length` bytes or
/// chunked, whole, from `conn`; returns the head and the decoded body.
async fn response(conn: &mut PodConnection) -> (String, String) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("response hung")
            .unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen).to_string();
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            if body.ends_with("0\r\n\r\n") {
                let mut decoded = String::new();
                let mut rest = body;
                while let Some((size, after)) = rest.split_once("\r\n") {
                    let size = usize::from_str_radix(size.trim(), 16).unwrap();
                    if size == 0 {
                        break;
                    }
                    decoded.push_str(&after[..size]);
                    rest = &after[size + 2..];
                }
                return (head.to_string(), decoded);
            }
        } else if let Some(length) = head.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_string)
        }) && body.len() >= length.trim().parse::<usize>().unwrap()
        {
            return (head.to_string(), body.to_string());
        }
    }
}

async fn dial(sandbox: &Sandbox, port: u16) -> PodConnection {
    for _ in 0..500 {
        if let Ok(c) = sandbox.net().dial(port) {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("nothing listened on port {port} within 5 s");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_handler_serves_requests_on_its_declared_port() {
    let sb = sandbox(&[]);
    let running = sb.start_container(&hello(vec![80]), 0).await.unwrap();
    let mut conn = dial(&sb, 80).await;
    for path in ["/one", "/two?x=1"] {
        // Two requests on one kept-alive connection, each its own instance.
        conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: pod\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let (head, body) = response(&mut conn).await;
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/plain"),
            "{head}"
        );
        assert_eq!(body, format!("Hello from wasmkube! You asked for {path}\n"));
    }
    assert_eq!(sb.net().listening_ports(), [80]);
    // A second handler cannot take the same port of the pod.
    let taken = sb.start_container(&hello(vec![80]), 0).await.unwrap_err();
    assert!(
        taken.to_string().contains("port 80 is already in use"),
        "{taken}"
    );

    running.stop();
    let status = tokio::time::timeout(Duration::from_secs(5), running.wait())
        .await
        .expect("the serving container stops");
    assert_eq!(status.exit_code, EXIT_STOPPED);
    assert!(sb.net().listening_ports().is_empty());
    assert!(sb.net().dial(80).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn without_declared_ports_a_handler_serves_8080() {
    let sb = sandbox(&[]);
    let running = sb.start_container(&hello(vec![]), 0).await.unwrap();
    let mut conn = dial(&sb, 8080).await;
    conn.write_all(b"GET / HTTP/1.1\r\nHost: pod\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = response(&mut conn).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert_eq!(body, "Hello from wasmkube! You asked for /\n");
    running.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_beyond_the_handler_pool_wait_for_a_slot() {
    let sb = sandbox(&[]);
    let running = sb.start_container(&hello(vec![80]), 0).await.unwrap();
    assert!(
        runtime().engine().handlers_pooled(),
        "a 64-bit host with room for the pool allocates handlers from it"
    );
    // More slow requests at once than the pool has instances: every one
    // is answered, none fails for want of a slot.
    let many = engine::HANDLER_INSTANCES as usize + 64;
    let mut conns = Vec::new();
    for _ in 0..many {
        conns.push(dial(&sb, 80).await);
    }
    let mut requests = tokio::task::JoinSet::new();
    for (i, mut conn) in conns.into_iter().enumerate() {
        requests.spawn(async move {
            conn.write_all(format!("GET /{i}?delay=200 HTTP/1.1\r\nHost: pod\r\n\r\n").as_bytes())
                .await
                .unwrap();
            (i, response(&mut conn).await)
        });
    }
    let mut answered = 0;
    while let Some(done) = requests.join_next().await {
        let (i, (head, body)) = done.unwrap();
        assert!(
            head.starts_with("HTTP/1.1 200 OK"),
            "request {i}: {head}\n{body}"
        );
        assert_eq!(
            body,
            format!("Hello from wasmkube! You asked for /{i}?delay=200\n")
        );
        answered += 1;
    }
    assert_eq!(answered, many);
    running.stop();
}
