//! The guide's debugging tools through the real kubectl, every version
//! from 1.27: `exec -it` on a terminal (typing, line editing, resizing,
//! Ctrl-C, `ps`, paging, exit codes) over WebSocket and over SPDY, exec
//! streaming without a terminal, port-forward, cp, `run -it`, attach and
//! `debug`, and the Python client's and kube-rs's streams.

mod server;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use server::Server;
use server::pty::Pty;

const SHELL_POD: &str = "
apiVersion: v1
kind: Pod
metadata:
  name: shell
spec:
  containers:
  - name: main
    image: toolbox
    command: ['sleep', '3600']
";

/// A web server answering on two ports (two containers of one pod), as a
/// Deployment behind a Service.
const WEB: &str = "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: site
        image: http-server
        ports: [{containerPort: 80, name: http}]
      - name: admin
        image: http-server
        env: [{name: PORT, value: '8081'}]
        ports: [{containerPort: 8081, name: admin}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 8000, targetPort: http}
  - {name: admin, port: 9000, targetPort: admin}
";

/// A server with the shell pod and the web Deployment, shared by the
/// tests running together.
fn server() -> Arc<Server> {
    Server::shared(|server| {
        let file = server.manifest("shell.yaml", SHELL_POD);
        server.apply_ready(&file, "shell");
        let file = server.manifest("web.yaml", WEB);
        server.kubectl_ok(&["apply", "-f", &file]);
        server.kubectl_ok(&[
            "wait",
            "--for=condition=Available",
            "deployment/web",
            "--timeout=60s",
        ]);
    })
}

/// Resizes the terminal of a shell at its prompt and waits until the
/// shell's `stty size` shows the new size.
fn resize_seen(pty: &mut Pty, columns: u16, rows: u16) {
    pty.resize(columns, rows);
    for _ in 0..50 {
        pty.send(b"stty size\r");
        if pty.expect("/ # ").contains(&format!("{rows} {columns}")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the resize to {columns}x{rows} never reached the guest");
}

/// An interactive shell session as a person types it: commands, a line
/// edited with arrows and backspace, the terminal resized, a running
/// command stopped with Ctrl-C, history, and the exit code coming back.
fn interactive_session(kubectl: &str) {
    let server = server();
    let kubeconfig = server.kubeconfig();
    let mut pty = Pty::spawn(
        &format!("{kubectl} exec -it shell -- sh"),
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
        91,
        33,
    );
    pty.expect("/ # ");
    pty.send(b"echo $((6*7))\r");
    pty.expect("42\r\n/ # ");
    // "eho", two lefts, the missing "c", End, a typo erased with
    // Backspace.
    pty.send(b"eho\x1b[D\x1b[Dc\x1b[F editedd\x7f\r");
    pty.expect("\r\nedited\r\n/ # ");
    // The terminal's size, and a resize, reach the guest.
    pty.send(b"stty size\r");
    pty.expect("33 91\r\n/ # ");
    resize_seen(&mut pty, 120, 50);
    // Ctrl-C stops the foreground command, not the shell.
    pty.send(b"sleep 600\r");
    pty.expect("sleep 600\r\n");
    std::thread::sleep(Duration::from_millis(300));
    pty.send(b"\x03");
    pty.expect("^C\r\n/ # ");
    pty.send(b"echo status $?\r");
    pty.expect("status 130\r\n/ # ");
    // Up recalls the last line, which now reports the `echo`'s status.
    pty.send(b"\x1b[A\r");
    pty.expect("status 0\r\n/ # ");
    // ps lists the container (pid 1) and this shell, as busybox's does.
    pty.send(b"ps aux\r");
    pty.expect("PID   USER     TIME  COMMAND\r\n    1 root      0:00 sleep 3600\r\n");
    pty.expect(" root      0:00 sh\r\n/ # ");
    // less pages on the resized screen (49 lines and its prompt), forward,
    // to the end, and quits; more stops at a screenful.
    pty.send(b"seq 100 | less\r");
    pty.expect("\r\n49\r\n:");
    pty.send(b" ");
    pty.expect("\r\n98\r\n:");
    pty.send(b"G");
    pty.expect("\r\n100\r\n\x1b[7m(END)");
    pty.send(b"q");
    pty.expect("/ # ");
    pty.send(b"seq 200 | more\r");
    pty.expect("\r\n49\r\n\x1b[7m--More-- (24%)");
    pty.send(b"q");
    pty.expect("/ # ");
    pty.send(b"exit 7\r");
    pty.expect("command terminated with exit code 7");
    assert_eq!(pty.wait(), 7, "kubectl exits with the command's code");
}

#[test]
fn exec_it_gives_an_interactive_shell() {
    interactive_session("kubectl");
}

#[test]
fn exec_it_with_kubectl_1_27_over_spdy() {
    let kubectl = server::kubectl_dir().join("kubectl.1.27");
    interactive_session(kubectl.to_str().unwrap());
}

#[test]
fn exec_it_with_kubectl_1_29_over_spdy() {
    let kubectl = server::kubectl_dir().join("kubectl.1.29");
    interactive_session(kubectl.to_str().unwrap());
}

/// Without a terminal, output streams as it is written and stdin is fed
/// while the command runs: each line piped in is answered before the
/// next is sent.
fn streaming_without_a_terminal(kubectl: &str) {
    let server = server();
    let mut child = server
        .kubectl_binary_command(
            std::path::Path::new(kubectl),
            &[
                "exec",
                "-i",
                "shell",
                "--",
                "sh",
                "-c",
                "echo ready; while read line; do echo \"got $line\"; done; echo done",
            ],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n", "output arrives before the command ends");
    for word in ["one", "two", "three"] {
        writeln!(stdin, "{word}").unwrap();
        stdin.flush().unwrap();
        line.clear();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line, format!("got {word}\n"));
    }
    drop(stdin);
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "done\n", "closing stdin ends the loop");
    assert!(child.wait().unwrap().success());
}

#[test]
fn exec_streams_stdin_and_output_while_the_command_runs() {
    streaming_without_a_terminal("kubectl");
}

#[test]
fn exec_streams_with_kubectl_1_27_over_spdy() {
    let kubectl = server::kubectl_dir().join("kubectl.1.27");
    streaming_without_a_terminal(kubectl.to_str().unwrap());
}

/// 50 requests at once, alternating between the forwarded ports.
fn fifty_at_once(ports: &[u16]) {
    let requests: Vec<_> = (0..50)
        .map(|i| {
            let port = ports[i % ports.len()];
            std::thread::spawn(move || server::http_get(port))
        })
        .collect();
    for (i, request) in requests.into_iter().enumerate() {
        let (status, body) = request
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(status, "HTTP/1.1 200 OK", "request {i}");
        assert!(
            body.contains("Welcome to http-server!"),
            "request {i}: {body}"
        );
    }
}

#[test]
fn port_forward_of_two_ports_carries_fifty_concurrent_requests() {
    let server = server();
    for target in ["deploy/web", "svc/web", "pod/web"] {
        let pod = server.items(&["get", "pods", "-l", "app=web"]);
        let name = pod[0]["metadata"]["name"].as_str().unwrap().to_string();
        let target = if target == "pod/web" {
            format!("pod/{name}")
        } else {
            target.to_string()
        };
        // A Service's ports are its own (8000, 9000): kubectl maps them to
        // the pod's by targetPort and reports those.
        let (remote, pod_ports): (&[u16], &[u16]) = if target == "svc/web" {
            (&[8000, 9000], &[80, 8081])
        } else {
            (&[80, 8081], &[80, 8081])
        };
        let (_kubectl, local) = server.port_forward("kubectl", &target, remote, pod_ports);
        fifty_at_once(&local);
    }
}

fn port_forward_with(version: &str) {
    let server = server();
    let kubectl = server::kubectl_dir().join(format!("kubectl.{version}"));
    let (_kubectl, local) = server.port_forward(
        kubectl.to_str().unwrap(),
        "deploy/web",
        &[80, 8081],
        &[80, 8081],
    );
    fifty_at_once(&local);
}

#[test]
fn port_forward_with_kubectl_1_27_over_spdy() {
    port_forward_with("1.27");
}

#[test]
fn port_forward_with_kubectl_1_29_over_spdy() {
    port_forward_with("1.29");
}

/// A port nothing listens on: the connection is refused and kubectl
/// reports the kubelet's error and stops, as on a cluster.
#[test]
fn port_forward_to_a_closed_port_reports_the_refusal() {
    let server = server();
    let (mut kubectl, local) = server.port_forward("kubectl", "deploy/web", &[81], &[81]);
    assert!(
        server::http_get(local[0])
            .map(|(status, _)| status.is_empty())
            .unwrap_or(true)
    );
    let mut stderr = String::new();
    use std::io::Read;
    kubectl
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains("error forwarding port 81 to pod web-")
            && stderr.contains("connection refused"),
        "{stderr}"
    );
    assert!(!kubectl.0.wait().unwrap().success());
}

/// The official Python client's `stream` helpers: exec with output, errors
/// and exit code, an exec fed line by line, and port-forward of two ports
/// and of a refused one (the WebSocket channel protocols).
#[test]
fn the_python_client_streams_exec_and_port_forward() {
    let server = server();
    let web = server.items(&["get", "pods", "-l", "app=web"]);
    let web = web[0]["metadata"]["name"].as_str().unwrap();
    let report = server::run_python("python_streams.py", &server, &["shell", web]);
    assert!(report["checks"].as_u64().unwrap() >= 14, "{report}");
    assert_eq!(report["failures"], serde_json::json!([]), "{report}");
}

/// `kubectl cp` both ways, a directory tree with a binary file and a name
/// longer than ustar holds, with the current kubectl and 1.27 (SPDY).
#[test]
fn kubectl_cp_copies_directories_both_ways() {
    let server = server();
    let host = tempfile::tempdir().unwrap();
    let source = host.path().join("source");
    let long = "n".repeat(150);
    std::fs::create_dir_all(source.join("sub").join(&long)).unwrap();
    std::fs::write(source.join("a.txt"), "hello\n").unwrap();
    let binary: Vec<u8> = (0..300_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(source.join("sub/big.bin"), &binary).unwrap();
    std::fs::write(source.join("sub").join(&long).join("deep.txt"), "deep\n").unwrap();
    for (version, kubectl) in [
        ("current", std::path::PathBuf::from("kubectl")),
        ("1.27", server::kubectl_dir().join("kubectl.1.27")),
    ] {
        let into_pod = format!("shell:/tmp/copied-{}", version.replace('.', ""));
        server.kubectl_binary_ok(&kubectl, &["cp", source.to_str().unwrap(), &into_pod]);
        let listed = server.kubectl_ok(&[
            "exec",
            "shell",
            "--",
            "cat",
            &format!("{}/a.txt", into_pod.trim_start_matches("shell:")),
        ]);
        assert_eq!(listed, "hello\n", "{version}: the file arrived in the pod");
        let back = host.path().join(format!("back-{version}"));
        server.kubectl_binary_ok(&kubectl, &["cp", &into_pod, back.to_str().unwrap()]);
        assert_eq!(
            std::fs::read(back.join("a.txt")).unwrap(),
            b"hello\n",
            "{version}"
        );
        assert_eq!(
            std::fs::read(back.join("sub/big.bin")).unwrap(),
            binary,
            "{version}"
        );
        assert_eq!(
            std::fs::read_to_string(back.join("sub").join(&long).join("deep.txt")).unwrap(),
            "deep\n",
            "{version}"
        );
    }
    // One file, to a file name.
    server.kubectl_ok(&[
        "cp",
        source.join("a.txt").to_str().unwrap(),
        "shell:/tmp/one.txt",
    ]);
    let one = host.path().join("one.txt");
    server.kubectl_ok(&["cp", "shell:/tmp/one.txt", one.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(one).unwrap(), "hello\n");
}

/// `kubectl run --rm -it`: a shell in a new pod, deleted when it exits,
/// as on a cluster.
#[test]
fn run_rm_it_gives_a_shell_and_deletes_the_pod() {
    let server = server();
    let kubeconfig = server.kubeconfig();
    let mut pty = Pty::spawn(
        "kubectl run tmp --rm -it --restart=Never --image=toolbox -- sh",
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
        80,
        24,
    );
    pty.expect("If you don't see a command prompt, try pressing enter.");
    pty.send(b"\r");
    pty.expect("/ # ");
    pty.send(b"echo in $HOSTNAME\r");
    pty.expect("in tmp\r\n/ # ");
    pty.send(b"exit\r");
    pty.expect("pod \"tmp\" deleted");
    assert_eq!(pty.wait(), 0);
    let gone = server.kubectl(&["get", "pod", "tmp"]);
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("NotFound"),
        "{gone:?}"
    );
}

const ATTACHABLE: &str = "
apiVersion: v1
kind: Pod
metadata:
  name: console
spec:
  restartPolicy: Never
  containers:
  - name: sh
    image: toolbox
    command: ['sh']
    stdin: true
    tty: true
---
apiVersion: v1
kind: Pod
metadata:
  name: ticker
spec:
  containers:
  - name: tick
    image: toolbox
    command: ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done']
";

/// `kubectl attach -it` joins a container's shell (kept alive by its open
/// stdin), leaves it running on detach, and later clients (kubectl 1.29
/// and 1.27, over SPDY) find it there; `kubectl attach` without a terminal streams
/// output as it is written.
#[test]
fn attach_joins_a_running_container() {
    let server = server();
    let file = server.manifest("attachable.yaml", ATTACHABLE);
    server.kubectl_ok(&["apply", "-f", &file]);
    for pod in ["console", "ticker"] {
        server.kubectl_ok(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{pod}"),
            "--timeout=60s",
        ]);
    }
    let kubeconfig = server.kubeconfig();
    let env = [("KUBECONFIG", kubeconfig.to_str().unwrap())];
    let mut pty = Pty::spawn("kubectl attach -it console", &env, 80, 24);
    pty.expect("If you don't see a command prompt, try pressing enter.");
    pty.send(b"\r");
    pty.expect("/ # ");
    pty.send(b"export GREETING=kept; echo $((2+3))\r");
    pty.expect("5\r\n/ # ");
    resize_seen(&mut pty, 100, 30);
    drop(pty); // the client goes away: the container runs on

    // kubectl 1.29 (SPDY) joins the same shell, and leaves it again.
    let kubectl_1_29 = server::kubectl_dir().join("kubectl.1.29");
    let mut pty = Pty::spawn(
        &format!("{} attach -it console", kubectl_1_29.display()),
        &env,
        80,
        24,
    );
    pty.expect("If you don't see a command prompt, try pressing enter.");
    pty.send(b"echo $GREETING-1.29\r");
    pty.expect("kept-1.29\r\n/ # ");
    drop(pty);

    let old = server::kubectl_dir().join("kubectl.1.27");
    let mut pty = Pty::spawn(
        &format!("{} attach -it console", old.display()),
        &env,
        80,
        24,
    );
    pty.expect("If you don't see a command prompt, try pressing enter.");
    pty.send(b"echo $GREETING\r");
    pty.expect("kept\r\n/ # ");
    pty.send(b"exit 4\r");
    pty.wait();
    server.wait_for(Duration::from_secs(30), || {
        server.json(&["get", "pod", "console"])["status"]["phase"] == "Failed"
    });
    let pod = server.json(&["get", "pod", "console"]);
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], 4,
        "{pod}"
    );

    // Without a terminal: the output as it comes.
    let mut child = server
        .kubectl_command(&["attach", "ticker"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut ticks = Vec::new();
    while ticks.len() < 3 {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        ticks.push(line);
    }
    let numbers: Vec<u32> = ticks
        .iter()
        .map(|l| l.trim().trim_start_matches("tick ").parse().unwrap())
        .collect();
    assert!(
        numbers[1] == numbers[0] + 1 && numbers[2] == numbers[1] + 1,
        "{ticks:?}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

const TARGET: &str = "
apiVersion: v1
kind: Pod
metadata:
  name: target
spec:
  volumes: [{name: data, emptyDir: {}}]
  containers:
  - name: main
    image: toolbox
    command: ['sh', '-c', 'echo written-by-main > /data/file; sleep 3600']
    volumeMounts: [{name: data, mountPath: /data}]
";

/// `kubectl debug -it POD --image=toolbox --target=main`: an ephemeral
/// container joins the running pod, sees the target's mounts, processes
/// and network, and shows in `describe` and in the object as on a cluster.
#[test]
fn kubectl_debug_adds_an_ephemeral_container_that_sees_the_target() {
    let server = server();
    let file = server.manifest("target.yaml", TARGET);
    server.apply_ready(&file, "target");
    let kubeconfig = server.kubeconfig();
    let mut pty = Pty::spawn(
        "kubectl debug -it target --image=toolbox --target=main -- sh",
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
        80,
        24,
    );
    pty.expect("If you don't see a command prompt, try pressing enter.");
    pty.send(b"\r");
    pty.expect("/ # ");
    pty.send(b"cat /data/file; echo on $HOSTNAME\r");
    pty.expect("written-by-main\r\non target\r\n/ # ");
    // It is in the target's process namespace: the target is pid 1.
    pty.send(b"ps -o pid,args\r");
    pty.expect("PID   COMMAND\r\n    1 sh -c echo written-by-main > /data/file; sleep 3600\r\n");
    pty.expect("/ # ");
    pty.send(b"exit 0\r");
    pty.expect("Session ended");
    assert_eq!(pty.wait(), 0);

    let pod = server.json(&["get", "pod", "target"]);
    let ephemeral = &pod["spec"]["ephemeralContainers"][0];
    assert_eq!(ephemeral["targetContainerName"], "main", "{pod}");
    let name = ephemeral["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("debugger-"), "{name}");
    server.wait_for(Duration::from_secs(30), || {
        server.json(&["get", "pod", "target"])["status"]["ephemeralContainerStatuses"][0]["state"]
            ["terminated"]["exitCode"]
            == 0
    });
    let described = server.kubectl_ok(&["describe", "pod", "target"]);
    assert!(
        described.contains("Ephemeral Containers:") && described.contains(&format!("  {name}:")),
        "{described}"
    );
    // They are added, never changed or removed, and only through the
    // subresource.
    let removed = server.kubectl(&[
        "patch",
        "pod",
        "target",
        "--subresource=ephemeralcontainers",
        "--type=json",
        "-p=[{\"op\":\"remove\",\"path\":\"/spec/ephemeralContainers/0\"}]",
    ]);
    assert!(
        String::from_utf8_lossy(&removed.stderr)
            .contains("existing ephemeral containers may not be changed or removed"),
        "{removed:?}"
    );
}

/// kube-rs's exec (WebSocket): stdin fed while the command runs, stdout and
/// stderr apart, the exit code in the final Status as the API server
/// sends it; and a terminal session echoing what is typed.
#[test]
fn kube_rs_exec_streams_and_reports_the_exit_code() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, AttachParams};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = server();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let yaml = std::fs::read_to_string(server.kubeconfig()).unwrap();
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::from_yaml(&yaml).unwrap(),
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .unwrap();
        let pods: Api<Pod> = Api::namespaced(kube::Client::try_from(config).unwrap(), "default");
        let script = "read line; echo \"got $line\"; echo oops >&2; exit 3";
        let mut process = pods
            .exec(
                "shell",
                ["sh", "-c", script],
                &AttachParams::default().stdin(true),
            )
            .await
            .unwrap();
        let mut stdin = process.stdin().unwrap();
        stdin.write_all(b"hello\n").await.unwrap();
        let (mut stdout, mut stderr) = (process.stdout().unwrap(), process.stderr().unwrap());
        let status = process.take_status().unwrap();
        let (mut out, mut err) = (String::new(), String::new());
        let (read_out, read_err) = tokio::join!(
            stdout.read_to_string(&mut out),
            stderr.read_to_string(&mut err)
        );
        read_out.unwrap();
        read_err.unwrap();
        assert_eq!((out.as_str(), err.as_str()), ("got hello\n", "oops\n"));
        let status = status.await.expect("a final Status");
        assert_eq!(status.status.as_deref(), Some("Failure"), "{status:?}");
        assert_eq!(
            status.reason.as_deref(),
            Some("NonZeroExitCode"),
            "{status:?}"
        );
        let cause = &status.details.as_ref().unwrap().causes.as_ref().unwrap()[0];
        assert_eq!(
            (cause.reason.as_deref(), cause.message.as_deref()),
            (Some("ExitCode"), Some("3"))
        );
        process.join().await.unwrap();

        let mut shell = pods
            .exec("shell", ["sh"], &AttachParams::interactive_tty())
            .await
            .unwrap();
        let (mut keys, mut screen) = (shell.stdin().unwrap(), shell.stdout().unwrap());
        keys.write_all(b"echo $((20+22))\r").await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&seen).contains("42\r\n/ # ") {
            let n = tokio::time::timeout(Duration::from_secs(30), screen.read(&mut buf))
                .await
                .expect("the shell answers")
                .unwrap();
            assert!(n > 0, "{:?}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
        // (kube-rs's `join` drops the status receiver first, so a session
        // whose Status comes after it fails there: wait for the Status.)
        let status = shell.take_status().unwrap();
        keys.write_all(b"exit\r").await.unwrap();
        let status = tokio::time::timeout(Duration::from_secs(30), status)
            .await
            .expect("the session ends")
            .expect("a final Status");
        assert_eq!(status.status.as_deref(), Some("Success"), "{status:?}");
    });
}
