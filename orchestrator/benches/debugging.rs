//! What debugging a pod feels like, against plain TCP to the same pod in
//! the same run:
//!
//! - keystroke echo through `exec -it … sh` (kube-rs's exec over the
//!   listening API, WebSocket, a terminal): a key written, its echo read
//!   back from the shell's line editor; p50 and p99 against one byte's
//!   round trip over a TCP connection to a pod port (a NodePort to
//!   `nc -lk -e cat` in a pod);
//! - throughput of `kubectl port-forward` (the real kubectl, SPDY
//!   tunnelled over WebSocket) against a NodePort to the same pod, both
//!   downloading one file from `http-server`: target >= 0.5x.
//!
//! `cargo bench -p wasmkube --bench debugging` (needs `kubectl` on PATH).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use wasmkube::Cluster;
use wasmkube::registry::WriteOptions;

const KEYSTROKES: usize = 2000;
/// Bytes of the file port-forward and the NodePort download.
const FILE_BYTES: usize = 32 << 20;
const ROUNDS: usize = 3;

/// Waits for `what` to appear in what `reader` sends; what came.
async fn read_until<R: AsyncRead + Unpin>(reader: &mut R, what: &[u8]) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(what.len()).any(|w| w == what) {
        let n = tokio::time::timeout(Duration::from_secs(30), reader.read(&mut buf))
            .await
            .expect("an answer within 30 s")
            .expect("reading");
        assert!(
            n > 0,
            "ended waiting for {:?}",
            String::from_utf8_lossy(what)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    seen
}

/// Round trips of one key each: written, then read back as echoed. Every
/// 100 keys the line is killed (Ctrl-U) off the clock, so it stays short.
async fn echoes<W, R>(input: &mut W, output: &mut R, redraw: Option<&[u8]>) -> Vec<Duration>
where
    W: AsyncWrite + Unpin,
    R: AsyncRead + Unpin,
{
    let mut times = Vec::with_capacity(KEYSTROKES);
    let mut byte = [0u8; 1];
    for i in 0..KEYSTROKES {
        if let (Some(redraw), true) = (redraw, i % 100 == 99) {
            input.write_all(b"\x15").await.unwrap();
            input.flush().await.unwrap();
            read_until(output, redraw).await;
        }
        let key = b'a' + (i % 26) as u8;
        let started = Instant::now();
        input.write_all(&[key]).await.unwrap();
        input.flush().await.unwrap();
        output.read_exact(&mut byte).await.unwrap();
        times.push(started.elapsed());
        assert_eq!(byte[0], key, "the echo is the key");
    }
    times.sort();
    times
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn micros(d: Duration) -> String {
    format!("{:>7.0} us", d.as_secs_f64() * 1e6)
}

/// Seconds to download `/big.txt` from `addr` (HTTP/1.1, connection close),
/// checking its length.
async fn download(addr: SocketAddr) -> f64 {
    let started = Instant::now();
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /big.txt HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = Vec::with_capacity(FILE_BYTES + 4096);
    conn.read_to_end(&mut body).await.unwrap();
    let head_end = body
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer")
        + 4;
    assert!(body.starts_with(b"HTTP/1.1 200"), "{:?}", &body[..head_end]);
    assert!(body.len() - head_end >= FILE_BYTES, "the whole file");
    started.elapsed().as_secs_f64()
}

async fn node_port(cluster: &Cluster, service: &str) -> SocketAddr {
    let services = cluster.registry().resource("", "Service");
    let endpoints = cluster.registry().resource("", "Endpoints");
    for _ in 0..600 {
        if let Ok(Some(ep)) = cluster
            .registry()
            .find(&endpoints, Some("default"), service)
            && ep.pointer("/subsets/0/addresses/0/ip").is_some()
        {
            let svc = cluster
                .registry()
                .get(&services, Some("default"), service)
                .unwrap();
            let port = svc
                .pointer("/spec/ports/0/nodePort")
                .and_then(Value::as_u64)
                .unwrap() as u16;
            return SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("service {service} got no ready endpoint");
}

/// `kubectl port-forward pod/web :80`, its local address once it listens.
async fn port_forward(kubeconfig: &std::path::Path) -> (tokio::process::Child, SocketAddr) {
    let mut child = tokio::process::Command::new("kubectl")
        .args(["port-forward", "pod/web", ":80", "--kubeconfig"])
        .arg(kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl on PATH");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("kubectl port-forward listens within 30 s")
        .unwrap()
        .expect("kubectl port-forward printed where it listens");
    // "Forwarding from 127.0.0.1:PORT -> 80"
    let port: u16 = line
        .split_whitespace()
        .nth(2)
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected kubectl output {line:?}"));
    // Keep reading its output ("Handling connection for ...") so it never
    // blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (
        child,
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
    )
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let cluster = Cluster::builder()
            .data_dir(dir.path().join("data"))
            .node_name("bench")
            .listen("127.0.0.1:0".parse().unwrap())
            .start()
            .await
            .unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        cluster.write_kubeconfig(&kubeconfig).unwrap();
        let registry = cluster.registry().clone();
        let options = WriteOptions::manager("bench");
        let pods = registry.resource("", "Pod");
        let services = registry.resource("", "Service");
        let manifests = [
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "echo", "labels": {"app": "echo"}},
                "spec": {"containers": [{"name": "echo", "image": "toolbox",
                    "command": ["nc", "-lk", "-p", "7000", "-e", "cat"],
                    "ports": [{"containerPort": 7000}]}]}}),
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web", "labels": {"app": "web"}},
                "spec": {
                    "initContainers": [{"name": "fill", "image": "toolbox",
                        "command": ["sh", "-c",
                            // 589 KB of numbers, 60 times: 35 MB.
                            "seq 100000 > /tmp/part; \
                             for i in $(seq 60); do cat /tmp/part; done > /html/big.txt"],
                        "volumeMounts": [{"name": "html", "mountPath": "/html"}]}],
                    "containers": [{"name": "web", "image": "http-server",
                        "ports": [{"containerPort": 80}],
                        "volumeMounts": [{"name": "html",
                            "mountPath": "/usr/share/nginx/html"}]}],
                    "volumes": [{"name": "html", "emptyDir": {}}]}}),
        ];
        for pod in manifests {
            registry.create(&pods, Some("default"), pod, &options).await.unwrap();
        }
        for (name, port) in [("echo", 7000), ("web", 80)] {
            let service = json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name},
                "spec": {"type": "NodePort", "selector": {"app": name},
                    "ports": [{"port": port}]}});
            registry.create(&services, Some("default"), service, &options).await.unwrap();
        }
        let echo_at = node_port(&cluster, "echo").await;
        let web_at = node_port(&cluster, "web").await;

        // Keystrokes.
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::from_yaml(cluster.kubeconfig().unwrap()).unwrap(),
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let api: Api<Pod> = Api::namespaced(client, "default");
        let mut shell = api
            .exec("echo", ["sh"], &AttachParams::interactive_tty())
            .await
            .expect("exec -it sh");
        let mut keys = shell.stdin().unwrap();
        let mut screen = shell.stdout().unwrap();
        read_until(&mut screen, b"/ # ").await;
        let mut tcp = tokio::net::TcpStream::connect(echo_at).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        println!("debugging: {KEYSTROKES} keystrokes per round, {} MiB per download", FILE_BYTES >> 20);
        // Warm both paths.
        echoes(&mut keys, &mut screen, Some(b"\x1b[K")).await;
        {
            let (mut r, mut w) = tcp.split();
            echoes(&mut w, &mut r, None).await;
        }
        for round in 1..=ROUNDS {
            let exec = echoes(&mut keys, &mut screen, Some(b"\x1b[K")).await;
            let (mut r, mut w) = tcp.split();
            let plain = echoes(&mut w, &mut r, None).await;
            println!(
                "  keystroke echo round {round}: exec -it p50 {} p99 {} | TCP to the pod p50 {} p99 {}",
                micros(percentile(&exec, 0.5)),
                micros(percentile(&exec, 0.99)),
                micros(percentile(&plain, 0.5)),
                micros(percentile(&plain, 0.99)),
            );
        }
        keys.write_all(b"\x15exit\r").await.unwrap();
        drop(keys);
        let _ = tokio::time::timeout(Duration::from_secs(10), shell.join()).await;

        // Throughput.
        let (mut kubectl, forwarded) = port_forward(&kubeconfig).await;
        download(web_at).await;
        download(forwarded).await;
        let mut ratios = Vec::new();
        for round in 1..=ROUNDS {
            let direct = download(web_at).await;
            let through = download(forwarded).await;
            let mib = |secs: f64| (FILE_BYTES >> 20) as f64 / secs;
            let ratio = direct / through;
            ratios.push(ratio);
            println!(
                "  download round {round}: NodePort {:>6.0} MiB/s, kubectl port-forward {:>6.0} MiB/s = {ratio:.2}x",
                mib(direct),
                mib(through),
            );
        }
        ratios.sort_by(f64::total_cmp);
        println!(
            "  port-forward/NodePort: median {:.2}x, lowest {:.2}x (target >= 0.5x)",
            ratios[ROUNDS / 2], ratios[0]
        );
        let _ = kubectl.kill().await;
        cluster.shutdown().await;
    });
}
