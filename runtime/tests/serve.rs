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

/// Asks the handler on port 8080 of `sb` to fetch `url` itself.
async fn fetch_through(sb: &Sandbox, url: &str) -> (String, String) {
    let mut conn = dial(sb, 8080).await;
    conn.write_all(format!("GET /?fetch={url} HTTP/1.1\r\nHost: pod\r\n\r\n").as_bytes())
        .await
        .unwrap();
    response(&mut conn).await
}

/// A handler's outgoing `wasi:http` requests go through its pod's network:
/// to another pod by IP, to a Service by its cluster name (balanced onto
/// the pod), refused where nothing listens, NXDOMAIN for unknown names.
#[tokio::test(flavor = "multi_thread")]
async fn outgoing_http_requests_reach_pods_and_services_by_name() {
    let backend = with_ip("10.244.202.1");
    let front = with_ip("10.244.202.2");
    let web = ContainerSpec {
        name: "web".into(),
        image: "echo-hostname:1.0.2".into(),
        ..Default::default()
    };
    let serving = backend.start_container(&web, 0).await.unwrap();
    let handler = front.start_container(&hello(vec![]), 0).await.unwrap();
    let net = runtime().cluster_net();
    let service_ip: std::net::IpAddr = "10.96.202.1".parse().unwrap();
    net.set_service(
        service_ip,
        [(8000, vec!["10.244.202.1:80".parse().unwrap()])].into(),
    );
    net.set_names(
        [(
            "fetched-backend.default.svc.cluster.local".to_string(),
            vec![service_ip],
        )]
        .into(),
    );
    // echo-hostname may take a moment to listen.
    let mut answered = None;
    for _ in 0..100 {
        let (head, body) = fetch_through(&front, "http://10.244.202.1/").await;
        if head.starts_with("HTTP/1.1 200") {
            answered = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let body = answered.expect("the handler reached the other pod by IP");
    assert!(
        body.starts_with("http://10.244.202.1/ answered 200\n"),
        "{body}"
    );
    assert!(body.contains("version: 1.0.2"), "{body}");

    for url in [
        "http://fetched-backend:8000/",
        "http://fetched-backend.default:8000/",
        "http://fetched-backend.default.svc.cluster.local:8000/",
    ] {
        let (head, body) = fetch_through(&front, url).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{url}: {head}\n{body}");
        assert!(body.starts_with(&format!("{url} answered 200\n")), "{body}");
        assert!(body.contains("version: 1.0.2"), "{url}: {body}");
    }

    // A Service endpoint on the host's own loopback is no egress: refused,
    // unless it is the API's listener (declared host-only), which pods
    // reach through its Service.
    let host = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host_port = host.local_addr().unwrap().port();
    let answering = tokio::spawn(async move {
        loop {
            let (mut conn, _) = host.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = conn.read(&mut buf).await.unwrap();
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            let body = format!("host saw {}", request.lines().next().unwrap_or(""));
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(answer.as_bytes()).await.unwrap();
        }
    });
    let outside_ip: std::net::IpAddr = "10.96.202.2".parse().unwrap();
    net.set_service(
        outside_ip,
        [(
            9000,
            vec![format!("127.0.0.1:{host_port}").parse().unwrap()],
        )]
        .into(),
    );
    let (head, body) = fetch_through(&front, "http://10.96.202.2:9000/from-pod").await;
    assert!(head.starts_with("HTTP/1.1 502"), "{head}\n{body}");
    assert!(body.contains("ConnectionRefused"), "{body}");
    net.set_host_only(vec![format!("127.0.0.1:{host_port}").parse().unwrap()]);
    let (head, body) = fetch_through(&front, "http://10.96.202.2:9000/from-pod").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    assert!(body.contains("host saw GET /from-pod HTTP/1.1"), "{body}");
    // Straight to the listener, not through the Service: refused.
    let (head, body) = fetch_through(&front, &format!("http://127.0.0.1:{host_port}/")).await;
    assert!(head.starts_with("HTTP/1.1 502"), "{head}\n{body}");
    net.set_host_only(Vec::new());
    net.remove_service(outside_ip);
    answering.abort();

    let (head, body) = fetch_through(&front, "http://10.244.202.9/").await;
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    assert!(body.contains("ConnectionRefused"), "{body}");
    let (head, body) = fetch_through(&front, "http://nosuch.default.svc.cluster.local/").await;
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    assert!(body.contains("NXDOMAIN"), "{body}");

    net.remove_service(service_ip);
    net.set_names(Default::default());
    handler.stop();
    serving.stop();
    handler.wait().await;
    serving.wait().await;
}
