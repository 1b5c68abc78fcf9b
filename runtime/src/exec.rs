//! Commands run in a running container's context — exec probes, preStop
//! hooks and `kubectl exec`: the container's current root, its
//! mounts, environment, limits and pod network. The container's own image
//! runs the command when it provides it (its entrypoint or the image is the
//! toolbox); otherwise the built-in `toolbox` does, so `ls`, `cat` and `sh`
//! work in every container.
//!
//! [`Sandbox::exec_session`] streams: stdin is fed while the command runs
//! and its output read as it is written, on a [`Terminal`] if asked.
//! [`Sandbox::exec`] runs a command to its end and returns its output.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use wasmtime_wasi::p2::pipe::SinkOutputStream;

use crate::container::{ContainerSpec, KillSwitch, StartError};
use crate::images::Image;
use crate::pipe::Pipe;
use crate::runtime::Prepared;
use crate::sandbox::Sandbox;
use crate::stdio::{GuestInput, GuestOutput};
use crate::terminal::{EXIT_INTERRUPTED, Terminal, TerminalSize};

/// The image that runs commands an image does not provide.
pub const TOOLBOX: &str = "toolbox";

/// Most output kept from one [`Sandbox::exec`] per stream; more is read
/// and dropped.
const OUTPUT_LIMIT: usize = 1 << 20;

/// Bytes buffered in each direction of a session's stream before the
/// writer waits for the reader.
pub(crate) const WINDOW: usize = 64 * 1024;

/// Which standard streams an exec session connects, as `kubectl exec`
/// asks for them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// The client sends stdin (`-i`).
    pub stdin: bool,
    /// The client reads stdout.
    pub stdout: bool,
    /// The client reads stderr (never with a terminal, where stderr goes
    /// to the terminal too).
    pub stderr: bool,
    /// The command runs on a terminal (`-t`), of this size if known yet.
    pub tty: Option<Option<TerminalSize>>,
}

/// A running exec (dropping it stops the command), or a client attached
/// to a container (dropping it detaches): its streams, and its end.
pub struct ExecSession {
    /// Where the client's stdin goes, if it sends any.
    pub stdin: Option<ExecStdin>,
    /// The command's stdout (with a terminal: everything the terminal shows).
    pub stdout: Option<ExecReader>,
    /// The command's stderr (never with a terminal).
    pub stderr: Option<ExecReader>,
    /// The command's terminal, to resize.
    pub terminal: Option<Arc<Terminal>>,
    ended: tokio::task::JoinHandle<i32>,
    /// Stops the exec'd command; `None` for an attached container, which
    /// runs on when its client leaves.
    kill: Option<Arc<KillSwitch>>,
}

impl std::fmt::Debug for ExecSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecSession")
            .field("terminal", &self.terminal.is_some())
            .finish_non_exhaustive()
    }
}

impl ExecSession {
    /// A client attached to a container's console: it ends when `ended`
    /// does.
    pub(crate) fn attached(
        stdin: Option<ExecStdin>,
        stdout: Option<ExecReader>,
        stderr: Option<ExecReader>,
        terminal: Option<Arc<Terminal>>,
        ended: tokio::task::JoinHandle<i32>,
    ) -> ExecSession {
        ExecSession {
            stdin,
            stdout,
            stderr,
            terminal,
            ended,
            kill: None,
        }
    }

    /// Waits for the command to end; its exit code (130 if an interrupt
    /// stopped it). Its output streams end once it has.
    pub async fn wait(&mut self) -> i32 {
        (&mut self.ended)
            .await
            .unwrap_or(crate::container::EXIT_TRAP)
    }

    /// Stops an exec'd command (an attached container runs on).
    pub fn kill(&self) {
        if let Some(kill) = &self.kill {
            kill.kill();
        }
    }
}

impl Drop for ExecSession {
    fn drop(&mut self) {
        self.kill();
        if self.kill.is_none() {
            // Detached: stop copying the container's output.
            self.ended.abort();
        }
    }
}

/// Where a session's stdin goes: straight to the command, or through its
/// terminal's line discipline.
pub struct ExecStdin {
    pipe: Arc<Pipe>,
    terminal: Option<Arc<Terminal>>,
    /// The client's end of input is the command's (not so for a client
    /// attached to a container without `stdinOnce`).
    ends_input: bool,
}

impl ExecStdin {
    pub(crate) fn new(pipe: Arc<Pipe>, terminal: Option<Arc<Terminal>>, ends_input: bool) -> Self {
        ExecStdin {
            pipe,
            terminal,
            ends_input,
        }
    }

    /// Hands bytes to the command, waiting while it has not read enough of
    /// what came before. Fails once the command has ended.
    pub async fn write(&self, data: &[u8]) -> std::io::Result<()> {
        match &self.terminal {
            Some(terminal) => terminal.input(data).await,
            None => self.pipe.write_all(data).await,
        }
    }

    /// The client's stdin ended: the command reads end of file after what
    /// was sent (an attached container only with `stdinOnce`).
    pub fn close(&self) {
        if self.ends_input {
            self.pipe.close_write();
        }
    }
}

/// One of a session's output streams.
pub struct ExecReader(Arc<Pipe>);

impl ExecReader {
    pub(crate) fn new(pipe: Arc<Pipe>) -> Self {
        ExecReader(pipe)
    }

    /// The next output, as soon as there is some; `None` once the command
    /// has ended and everything was read.
    pub async fn read(&self) -> Option<Bytes> {
        self.0.read(WINDOW).await
    }
}

/// How an exec ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// The command's exit code (the stop code if it timed out).
    pub exit_code: i32,
    /// What it wrote to stdout.
    pub stdout: Bytes,
    /// What it wrote to stderr.
    pub stderr: Bytes,
    /// It ran past its timeout and was stopped.
    pub timed_out: bool,
}

impl ExecOutput {
    /// stdout, then stderr, as one text (probe and hook messages).
    pub fn text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&self.stderr));
        text
    }
}

/// Why a command could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// The container has no running instance to run it in.
    #[error("container {0:?} is not running")]
    NotRunning(String),
    /// No command was given.
    #[error("no command given")]
    Empty,
    /// The image could not be loaded or the instance set up.
    #[error(transparent)]
    Start(#[from] StartError),
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `toolbox` of `toolbox`, `toolbox:1.0` or `some/where/toolbox:1.0`.
fn repository(reference: &str) -> &str {
    let name = base_name(reference);
    name.split_once(':').map_or(name, |(name, _tag)| name)
}

/// Whether `image` (of a container running `spec`) itself runs `program`.
fn provides(image: &Image, spec: &ContainerSpec, program: &str) -> bool {
    let program = base_name(program);
    repository(&image.reference) == TOOLBOX
        || image
            .config
            .entrypoint
            .first()
            .is_some_and(|e| base_name(e) == program)
        || spec
            .command
            .first()
            .is_some_and(|c| base_name(c) == program)
}

impl Sandbox {
    /// Runs `command` in the context of container `spec`'s current
    /// instance and waits for it, at most `timeout`.
    pub async fn exec(
        &self,
        spec: &ContainerSpec,
        command: &[String],
        stdin: Option<Bytes>,
        timeout: Duration,
    ) -> Result<ExecOutput, ExecError> {
        let options = ExecOptions {
            stdin: stdin.is_some(),
            stdout: true,
            stderr: true,
            tty: None,
        };
        let mut session = self.exec_session(spec, command, options).await?;
        let feed = async {
            if let (Some(input), Some(bytes)) = (&session.stdin, &stdin) {
                // The command may end without reading it all.
                let _ = input.write(bytes).await;
                input.close();
            }
        };
        let (stdout, stderr) = (session.stdout.take(), session.stderr.take());
        let run = async {
            let (_, stdout, stderr) = tokio::join!(feed, read_all(stdout), read_all(stderr));
            (stdout, stderr)
        };
        let (finished, timed_out) = match tokio::time::timeout(timeout, run).await {
            Ok(output) => (Some(output), false),
            Err(_) => {
                session.kill();
                (None, true)
            }
        };
        let exit_code = session.wait().await;
        let (stdout, stderr) = finished.unwrap_or_default();
        Ok(ExecOutput {
            exit_code,
            stdout,
            stderr,
            timed_out,
        })
    }

    /// Starts `command` in the context of container `spec`'s current
    /// instance with the streams `options` asks for.
    pub async fn exec_session(
        &self,
        spec: &ContainerSpec,
        command: &[String],
        options: ExecOptions,
    ) -> Result<ExecSession, ExecError> {
        let program = command.first().ok_or(ExecError::Empty)?;
        let root = self
            .roots
            .current(&spec.name)
            .ok_or_else(|| ExecError::NotRunning(spec.name.clone()))?;
        let (image, pre) = match self
            .runtime
            .load(&spec.image, &spec.host_interfaces)
            .await?
        {
            (own, Prepared::Command(pre)) if provides(&own, spec, program) => (own, pre),
            // A command the image lacks (or an HTTP handler image, which
            // runs no commands): the toolbox runs it.
            _ => match self.runtime.load(TOOLBOX, &[]).await? {
                (image, Prepared::Command(pre)) => (image, pre),
                (image, Prepared::Proxy(_)) => {
                    return Err(ExecError::Start(StartError::NotCommand {
                        image: image.reference.clone(),
                        message: "the toolbox image is not a command".into(),
                    }));
                }
            },
        };
        let (mut wasi, mounts) = self.context(spec, &image, command, Path::new(&root))?;
        let terminal = options.tty.map(|size| Terminal::new(size, WINDOW));
        // With a terminal, stdin is the terminal's and both outputs go to
        // it; without one, each stream asked for gets its own pipe.
        let (stdin, stdout, stderr) = match &terminal {
            Some(terminal) => {
                let output = GuestOutput::new(Arc::clone(&terminal.output), true);
                wasi.stdin(GuestInput::new(
                    Arc::clone(&terminal.stdin),
                    Some(Arc::clone(terminal)),
                ));
                wasi.stdout(output.clone());
                wasi.stderr(output);
                (
                    Some(Arc::clone(&terminal.stdin)),
                    Some(Arc::clone(&terminal.output)),
                    None,
                )
            }
            None => {
                let stdin = options.stdin.then(|| Pipe::new(WINDOW));
                let stdout = options.stdout.then(|| Pipe::new(WINDOW));
                let stderr = options.stderr.then(|| Pipe::new(WINDOW));
                if let Some(pipe) = &stdin {
                    wasi.stdin(GuestInput::new(Arc::clone(pipe), None));
                }
                match &stdout {
                    Some(pipe) => wasi.stdout(GuestOutput::new(Arc::clone(pipe), false)),
                    None => wasi.stdout(SinkOutputStream),
                };
                match &stderr {
                    Some(pipe) => wasi.stderr(GuestOutput::new(Arc::clone(pipe), false)),
                    None => wasi.stderr(SinkOutputStream),
                };
                (stdin, stdout, stderr)
            }
        };
        let launched = self.launch(
            spec,
            command,
            pre,
            (wasi.build(), mounts),
            terminal.clone(),
            Box::new(|| ()),
        );
        let kill = Arc::clone(&launched.kill);
        let ended = tokio::spawn(run_session(
            launched.task,
            Arc::clone(&kill),
            terminal.clone(),
            [stdin.clone(), stdout.clone(), stderr.clone()],
        ));
        Ok(ExecSession {
            stdin: stdin.map(|pipe| ExecStdin::new(pipe, terminal.clone(), true)),
            stdout: stdout.map(ExecReader),
            stderr: stderr.map(ExecReader),
            terminal,
            ended,
            kill: Some(kill),
        })
    }
}

/// Waits for a session's command to end, stopping it on an interrupt it
/// does not catch; then closes its streams so the client sees them end.
async fn run_session(
    mut task: tokio::task::JoinHandle<crate::ExitStatus>,
    kill: Arc<KillSwitch>,
    terminal: Option<Arc<Terminal>>,
    [stdin, stdout, stderr]: [Option<Arc<Pipe>>; 3],
) -> i32 {
    let code = loop {
        let interrupt = async {
            match &terminal {
                Some(terminal) => terminal.interrupted.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            status = &mut task => {
                break status.map_or(crate::container::EXIT_TRAP, |s| s.exit_code);
            }
            () = interrupt => {
                if terminal.as_ref().is_some_and(|t| !t.catches_interrupts()) {
                    kill.kill();
                    let _ = (&mut task).await;
                    break EXIT_INTERRUPTED;
                }
            }
        }
    };
    if let Some(pipe) = stdin {
        pipe.close_read();
    }
    for pipe in [stdout, stderr].into_iter().flatten() {
        pipe.close_write();
    }
    code
}

/// Everything a stream carries until it ends, keeping at most
/// [`OUTPUT_LIMIT`] bytes.
async fn read_all(reader: Option<ExecReader>) -> Bytes {
    let mut kept = Vec::new();
    if let Some(reader) = reader {
        while let Some(bytes) = reader.read().await {
            let room = OUTPUT_LIMIT.saturating_sub(kept.len());
            kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }
    Bytes::from(kept)
}
