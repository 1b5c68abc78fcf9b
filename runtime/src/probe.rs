//! Container probes, run as the kubelet runs them: startup first, then
//! liveness and readiness side by side, each on its period, through the
//! pod's own network (so a probe reaches exactly what a pod mate would).
//!
//! Readiness sets the container's `ready`; a liveness or startup probe that
//! fails `failure_threshold` times in a row ends the instance, and the
//! restart policy decides what follows. Every failed attempt is reported
//! as a [`ProbeEvent`] with the kubelet's wording.

use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::container::ContainerSpec;
use crate::net::PodNet;
use crate::sandbox::Sandbox;

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAction {
    /// An HTTP GET; a status from 200 to 399 is success.
    HttpGet(HttpGet),
    /// A TCP connect; success if something accepts.
    TcpSocket {
        /// The pod port.
        port: u16,
    },
    /// A command run in the container's context; exit code 0 is success.
    Exec {
        /// argv.
        command: Vec<String>,
    },
}

/// An HTTP GET probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGet {
    /// The pod port.
    pub port: u16,
    /// The request path (`/` when empty).
    pub path: String,
    /// The `Host` to send; the pod's address when `None`.
    pub host: Option<String>,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
}

/// One probe with its timing, Kubernetes' defaults from [`Probe::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub action: ProbeAction,
    /// From the container's start to the first attempt.
    pub initial_delay: Duration,
    /// Between attempts.
    pub period: Duration,
    /// One attempt's limit.
    pub timeout: Duration,
    /// Consecutive successes to count as passing (readiness).
    pub success_threshold: u32,
    /// Consecutive failures to count as failed.
    pub failure_threshold: u32,
}

impl Probe {
    /// A probe with Kubernetes' defaults: no initial delay, every 10 s, 1 s
    /// timeout, 1 success, 3 failures.
    pub fn new(action: ProbeAction) -> Probe {
        Probe {
            action,
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 3,
        }
    }
}

/// A container's probes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probes {
    pub startup: Option<Probe>,
    pub liveness: Option<Probe>,
    pub readiness: Option<Probe>,
}

impl Probes {
    /// Whether there is no probe at all.
    pub fn is_none(&self) -> bool {
        self.startup.is_none() && self.liveness.is_none() && self.readiness.is_none()
    }
}

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl std::fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        })
    }
}

/// What the probes of a pod report, for events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeEvent {
    /// One attempt failed: "Readiness probe failed: <message>".
    Failed {
        container: String,
        kind: ProbeKind,
        message: String,
    },
    /// A liveness or startup probe failed for good: the instance is being
    /// stopped ("Container X failed liveness probe, will be restarted").
    Killing { container: String, kind: ProbeKind },
}

/// The address a probe names: the pod's IP, or its loopback when it has none.
fn pod_address(net: &PodNet) -> String {
    net.ip()
        .map_or_else(|| "127.0.0.1".to_string(), |ip| ip.to_string())
}

/// What probes run against: the container's sandbox and spec.
pub(crate) struct Target {
    pub(crate) sandbox: Sandbox,
    pub(crate) spec: ContainerSpec,
}

impl Target {
    async fn check(&self, action: &ProbeAction, timeout: Duration) -> Result<(), String> {
        match action {
            ProbeAction::Exec { command } => {
                match self.sandbox.exec(&self.spec, command, None, timeout).await {
                    Ok(out) if out.timed_out => {
                        Err(format!("command {:?} timed out", command.join(" ")))
                    }
                    Ok(out) if out.exit_code == 0 => Ok(()),
                    Ok(out) => Err(out.text().trim_end().to_string()),
                    Err(e) => Err(e.to_string()),
                }
            }
            network => check(self.sandbox.net(), network, timeout).await,
        }
    }
}

/// One attempt of a network probe (an exec probe needs the container:
/// see [`Target`]); `Err` carries the kubelet's failure message.
pub async fn check(net: &PodNet, action: &ProbeAction, timeout: Duration) -> Result<(), String> {
    match action {
        ProbeAction::Exec { command } => Err(format!(
            "exec probe {:?} needs the container to run in",
            command.join(" ")
        )),
        ProbeAction::TcpSocket { port } => {
            let target = format!("{}:{port}", pod_address(net));
            match net.dial(*port) {
                Ok(_) => Ok(()),
                Err(_) => Err(format!("dial tcp {target}: connect: connection refused")),
            }
        }
        ProbeAction::HttpGet(get) => {
            let path = if get.path.is_empty() {
                "/"
            } else {
                get.path.as_str()
            };
            let host = get
                .host
                .clone()
                .unwrap_or_else(|| format!("{}:{}", pod_address(net), get.port));
            let url = format!("http://{host}{path}");
            match tokio::time::timeout(timeout, http_get(net, get, path, &host)).await {
                Err(_) => Err(format!(
                    "Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                )),
                Ok(Err(message)) => Err(format!("Get {url:?}: {message}")),
                Ok(Ok(status)) if (200..400).contains(&status) => Ok(()),
                Ok(Ok(status)) => Err(format!("HTTP probe failed with statuscode: {status}")),
            }
        }
    }
}

async fn http_get(net: &PodNet, get: &HttpGet, path: &str, host: &str) -> Result<u16, String> {
    let connection = net.dial(get.port).map_err(|_| {
        format!(
            "dial tcp {}:{}: connect: connection refused",
            pod_address(net),
            get.port
        )
    })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(connection))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let mut request = hyper::Request::get(path)
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, "kube-probe/1.33")
        .header(hyper::header::ACCEPT, "*/*")
        .header(hyper::header::CONNECTION, "close");
    for (name, value) in &get.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("invalid probe request: {e}"))?;
    let result = sender.send_request(request).await;
    driver.abort();
    match result {
        Ok(response) => Ok(response.status().as_u16()),
        Err(e) if e.is_incomplete_message() => Err("EOF".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// How the probes of one instance report back.
pub(crate) struct Reporter {
    pub(crate) container: String,
    pub(crate) events: Option<mpsc::UnboundedSender<ProbeEvent>>,
    /// Called with the container's readiness whenever it changes.
    pub(crate) set_ready: Box<dyn Fn(bool) + Send + Sync>,
    /// Called once the startup probe has passed (or at once without one).
    pub(crate) set_started: Box<dyn Fn() + Send + Sync>,
}

impl Reporter {
    fn emit(&self, event: ProbeEvent) {
        if let Some(events) = &self.events {
            let _ = events.send(event);
        }
    }

    fn failed(&self, kind: ProbeKind, message: String) {
        self.emit(ProbeEvent::Failed {
            container: self.container.clone(),
            kind,
            message,
        });
    }
}

/// Runs the probes of an instance that started at `started`. Returns only
/// when a startup or liveness probe has failed for good (the instance must
/// be stopped); without those probes it never returns.
pub(crate) async fn run(
    target: Target,
    probes: Probes,
    started: Instant,
    reporter: Reporter,
) -> ProbeKind {
    if let Some(startup) = &probes.startup
        && until_failed(&target, startup, ProbeKind::Startup, &reporter, started).await
    {
        return ProbeKind::Startup;
    }
    (reporter.set_started)();
    let liveness = async {
        match &probes.liveness {
            Some(probe) => {
                until_failed(&target, probe, ProbeKind::Liveness, &reporter, started).await;
                ProbeKind::Liveness
            }
            None => std::future::pending().await,
        }
    };
    let readiness = async {
        let Some(probe) = &probes.readiness else {
            (reporter.set_ready)(true);
            return std::future::pending::<()>().await;
        };
        tokio::time::sleep_until(started + probe.initial_delay).await;
        let (mut successes, mut failures) = (0, 0);
        let mut ready = false;
        loop {
            let attempt = Instant::now();
            match target.check(&probe.action, probe.timeout).await {
                Ok(()) => {
                    successes += 1;
                    failures = 0;
                    if !ready && successes >= probe.success_threshold.max(1) {
                        ready = true;
                        (reporter.set_ready)(true);
                    }
                }
                Err(message) => {
                    failures += 1;
                    successes = 0;
                    reporter.failed(ProbeKind::Readiness, message);
                    if ready && failures >= probe.failure_threshold.max(1) {
                        ready = false;
                        (reporter.set_ready)(false);
                    }
                }
            }
            tokio::time::sleep_until(attempt + probe.period).await;
        }
    };
    tokio::select! {
        kind = liveness => kind,
        () = readiness => unreachable!("readiness probing never ends"),
    }
}

/// Runs `probe` on its period until it fails `failure_threshold` times in
/// a row (reporting the kill; true) or, a startup probe, first passes
/// (false). A liveness probe never passes for good.
async fn until_failed(
    target: &Target,
    probe: &Probe,
    kind: ProbeKind,
    reporter: &Reporter,
    started: Instant,
) -> bool {
    tokio::time::sleep_until(started + probe.initial_delay).await;
    let mut failures = 0;
    loop {
        let attempt = Instant::now();
        match target.check(&probe.action, probe.timeout).await {
            Ok(()) if kind == ProbeKind::Startup => return false,
            Ok(()) => failures = 0,
            Err(message) => {
                failures += 1;
                reporter.failed(kind, message);
                if failures >= probe.failure_threshold {
                    reporter.emit(ProbeEvent::Killing {
                        container: reporter.container.clone(),
                        kind,
                    });
                    return true;
                }
            }
        }
        tokio::time::sleep_until(attempt + probe.period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tcp_and_http_probes_fail_with_the_kubelets_words_when_nothing_listens() {
        let net = PodNet::default();
        assert_eq!(
            check(
                &net,
                &ProbeAction::TcpSocket { port: 8080 },
                Duration::from_secs(1)
            )
            .await,
            Err("dial tcp 127.0.0.1:8080: connect: connection refused".into())
        );
        let get = ProbeAction::HttpGet(HttpGet {
            port: 8000,
            path: "/healthz".into(),
            host: None,
            headers: vec![],
        });
        assert_eq!(
            check(&net, &get, Duration::from_secs(1)).await,
            Err("Get \"http://127.0.0.1:8000/healthz\": dial tcp 127.0.0.1:8000: connect: connection refused".into())
        );
    }

    /// A one-request-per-connection server on a pod port answering `status`
    /// and passing each request's head on.
    fn serve(net: &PodNet, port: u16, status: &'static str) -> mpsc::UnboundedReceiver<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        assert!(net.claim(port));
        let mut incoming = net.listen(port);
        let (heads, seen) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some((end, _peer)) = incoming.recv().await {
                let mut conn = crate::net::PodConnection::new(end);
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).await.unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let _ = heads.send(String::from_utf8_lossy(&head).into_owned());
                let reply = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                let _ = conn.write_all(reply.as_bytes()).await;
                let _ = conn.shutdown().await;
            }
        });
        seen
    }

    #[tokio::test]
    async fn http_probes_judge_the_status_and_send_the_headers() {
        let net = PodNet::default();
        let mut ok = serve(&net, 80, "200 OK");
        let mut missing = serve(&net, 81, "404 Not Found");
        let probe = |port| {
            ProbeAction::HttpGet(HttpGet {
                port,
                path: "/ready".into(),
                host: None,
                headers: vec![("X-Probe".into(), "yes".into())],
            })
        };
        assert_eq!(
            check(&net, &probe(80), Duration::from_secs(5)).await,
            Ok(())
        );
        let head = ok.recv().await.unwrap();
        assert!(head.starts_with("GET /ready HTTP/1.1\r\n"), "{head}");
        assert!(head.to_ascii_lowercase().contains("x-probe: yes"), "{head}");
        assert!(head.contains("kube-probe/1.33"), "{head}");
        assert_eq!(
            check(&net, &probe(81), Duration::from_secs(5)).await,
            Err("HTTP probe failed with statuscode: 404".into())
        );
        assert!(missing.recv().await.is_some());
    }

    #[tokio::test]
    async fn an_http_probe_that_gets_no_answer_times_out() {
        let net = PodNet::default();
        assert!(net.claim(90));
        let _held = net.listen(90);
        let probe = ProbeAction::HttpGet(HttpGet {
            port: 90,
            path: String::new(),
            host: None,
            headers: vec![],
        });
        assert_eq!(
            check(&net, &probe, Duration::from_millis(50)).await,
            Err("Get \"http://127.0.0.1:90/\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)".into())
        );
    }
}
