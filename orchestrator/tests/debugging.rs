//! The guide's debugging tools through the real kubectl, every version
//! from 1.27: `exec -it` on a terminal (typing, line editing, resizing,
//! Ctrl-C, exit codes) over WebSocket and over SPDY, and exec streaming
//! without a terminal.

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

/// A server with the shell pod, shared by the tests running together.
fn server() -> Arc<Server> {
    Server::shared(|server| {
        let file = server.manifest("shell.yaml", SHELL_POD);
        server.apply_ready(&file, "shell");
    })
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
    pty.resize(120, 50);
    let mut resized = false;
    for _ in 0..50 {
        pty.send(b"stty size\r");
        if pty.expect("/ # ").contains("50 120") {
            resized = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(resized, "the resize reached the guest");
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
