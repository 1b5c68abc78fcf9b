//! Requests per second through a NodePort Service against a direct
//! in-process connection to the pod's port, same run, for `http-server`
//! (a guest that listens on wasi:sockets, one request per connection) and
//! `http-hello` (a wasi:http/proxy handler, keep-alive connections).
//!
//! `cargo bench -p wasmkube --bench node_port`
//!
//! Both paths end in the same pod; the NodePort path adds the host TCP
//! connection over loopback, the proxy's accept and the copy into the pod
//! network. The ratio is what the target (>= 0.8x) is about.
//!
//! Where a reference `wasmtime` 48.0.8 CLI is found (`$WASMTIME`, else
//! `wasmtime` on PATH), `http-hello` is also served by `wasmtime serve` in
//! a child process and measured over loopback in the same rounds: the
//! NodePort path against it has a target of >= 1.0x.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use wasmkube::Cluster;
use wasmkube::registry::{ListOptions, WriteOptions};
use wasmkube_runtime::net::ClusterNet;

const CLIENTS: usize = 8;
const SECONDS: f64 = 3.0;

/// Reads one HTTP response with a Content-Length body (or to end of file).
async fn read_response<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> bool {
    buf.clear();
    let mut chunk = [0u8; 8192];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) => return !buf.is_empty(),
            Ok(n) => n,
            Err(_) => return false,
        };
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        if let Some(length) = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|l| l.trim().parse::<usize>().ok())
        {
            if buf.len() >= end + 4 + length {
                return true;
            }
        } else if head.contains("transfer-encoding: chunked") && buf.ends_with(b"0\r\n\r\n") {
            return true;
        }
    }
}

/// How to open a connection to the pod.
#[derive(Clone)]
enum Path {
    Direct(Arc<ClusterNet>, SocketAddr),
    NodePort(SocketAddr),
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

impl Path {
    async fn open(&self) -> Box<dyn Stream> {
        match self {
            Path::Direct(net, to) => Box::new(net.dial(*to).expect("the pod listens")),
            Path::NodePort(to) => {
                let s = tokio::net::TcpStream::connect(to)
                    .await
                    .expect("the node port is open");
                s.set_nodelay(true).unwrap();
                Box::new(s)
            }
        }
    }
}

/// Requests per second of `CLIENTS` clients for `SECONDS`; with
/// `keep_alive` each client keeps one connection, else one per request.
async fn rate(path: Path, keep_alive: bool) -> f64 {
    let deadline = Instant::now() + Duration::from_secs_f64(SECONDS);
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let path = path.clone();
        clients.push(tokio::spawn(async move {
            let request: &[u8] = if keep_alive {
                b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
            } else {
                b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
            };
            let mut done = 0u64;
            let mut buf = Vec::new();
            let mut conn = path.open().await;
            while Instant::now() < deadline {
                if !keep_alive && done > 0 {
                    conn = path.open().await;
                }
                conn.write_all(request).await.unwrap();
                assert!(read_response(&mut conn, &mut buf).await, "no answer");
                assert!(
                    buf.starts_with(b"HTTP/1.1 200"),
                    "{}",
                    String::from_utf8_lossy(&buf)
                );
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for c in clients {
        total += c.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// `wasmtime serve` of the same `http-hello` component, when a reference
/// CLI of the pinned version is installed.
struct Reference {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Reference {
    async fn start() -> Option<Reference> {
        let program = std::env::var("WASMTIME").unwrap_or_else(|_| "wasmtime".into());
        let version = std::process::Command::new(&program)
            .arg("--version")
            .output();
        match version {
            Ok(out) if String::from_utf8_lossy(&out.stdout).contains("48.0.8") => {}
            Ok(out) => {
                println!(
                    "  no reference: {program} is {}, not 48.0.8",
                    String::from_utf8_lossy(&out.stdout).trim()
                );
                return None;
            }
            Err(_) => {
                println!("  no reference: no wasmtime CLI found (set WASMTIME to one)");
                return None;
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        let component = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../guest-examples/dist/http-hello.wasm");
        let child = std::process::Command::new(&program)
            .args(["serve", "-S", "cli", "--addr"])
            .arg(addr.to_string())
            .arg(component)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting wasmtime serve");
        let reference = Reference { child, addr };
        for _ in 0..300 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Some(reference);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("wasmtime serve did not listen on {addr} within 30 s");
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_for_endpoint(cluster: &Cluster, service: &str) -> String {
    let endpoints = cluster.registry().resource("", "Endpoints");
    for _ in 0..600 {
        if let Ok(Some(ep)) = cluster
            .registry()
            .find(&endpoints, Some("default"), service)
            && let Some(ip) = ep
                .pointer("/subsets/0/addresses/0/ip")
                .and_then(Value::as_str)
        {
            return ip.to_string();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("service {service} got no ready endpoint");
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let cluster = Cluster::builder()
            .data_dir(dir.path())
            .node_name("bench")
            .start()
            .await
            .unwrap();
        let registry = cluster.registry().clone();
        let options = WriteOptions::manager("bench");
        let pods = registry.resource("", "Pod");
        let services = registry.resource("", "Service");
        let cases = [
            ("http-server", 80u16, false),
            ("http-hello", 8080u16, true),
        ];
        for (image, port, _) in cases {
            let pod = json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": image, "labels": {"app": image}},
                "spec": {"containers": [{"name": "c", "image": image,
                    "ports": [{"containerPort": port}],
                    "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1}}]}});
            registry.create(&pods, Some("default"), pod, &options).await.unwrap();
            let service = json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": image},
                "spec": {"type": "NodePort", "selector": {"app": image}, "ports": [{"port": port}]}});
            registry.create(&services, Some("default"), service, &options).await.unwrap();
        }
        println!("node_port: {CLIENTS} clients, {SECONDS} s per measurement");
        let reference = Reference::start().await;
        for (image, port, keep_alive) in cases {
            let ip: IpAddr = wait_for_endpoint(&cluster, image).await.parse().unwrap();
            let service = registry.get(&services, Some("default"), image).unwrap();
            let node_port = service
                .pointer("/spec/ports/0/nodePort")
                .and_then(Value::as_u64)
                .unwrap() as u16;
            let direct = Path::Direct(cluster.network(), SocketAddr::new(ip, port));
            let through = Path::NodePort(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), node_port));
            // Warm every path (compile cache, first instances, listener).
            rate(direct.clone(), keep_alive).await;
            let reference = reference.as_ref().filter(|_| image == "http-hello");
            if let Some(r) = reference {
                rate(Path::NodePort(r.addr), keep_alive).await;
            }
            let mut ratios = Vec::new();
            let mut against_reference = Vec::new();
            for round in 1..=3 {
                let d = rate(direct.clone(), keep_alive).await;
                let n = rate(through.clone(), keep_alive).await;
                let ratio = n / d;
                ratios.push(ratio);
                println!(
                    "  {image:<12} round {round}: direct {d:>8.0} req/s, NodePort {n:>8.0} req/s = {ratio:.2}x of direct{}",
                    if keep_alive { " (keep-alive)" } else { " (connection per request)" }
                );
                if let Some(r) = reference {
                    let w = rate(Path::NodePort(r.addr), keep_alive).await;
                    against_reference.push(n / w);
                    println!(
                        "  {image:<12} round {round}: wasmtime serve {w:>8.0} req/s; NodePort = {:.2}x of it",
                        n / w
                    );
                }
            }
            ratios.sort_by(f64::total_cmp);
            println!(
                "  {image:<12} NodePort/direct: median {:.2}x, lowest {:.2}x (target >= 0.8x)",
                ratios[1], ratios[0]
            );
            if !against_reference.is_empty() {
                against_reference.sort_by(f64::total_cmp);
                println!(
                    "  {image:<12} NodePort/wasmtime serve: median {:.2}x, lowest {:.2}x (target >= 1.0x)",
                    against_reference[1], against_reference[0]
                );
            }
        }
        let listed = registry.list(&pods, Some("default"), &ListOptions::default()).unwrap();
        assert_eq!(listed.items.len(), 2);
        cluster.shutdown().await;
    });
}
