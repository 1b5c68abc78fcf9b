//! Commands run in a running container's context — exec probes, preStop
//! hooks and `kubectl exec`: the container's current root, its
//! mounts, environment, limits and pod network. The container's own image
//! runs the command when it provides it (its entrypoint or the image is the
//! toolbox); otherwise the built-in `toolbox` does, so `ls`, `cat` and `sh`
//! work in every container.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use crate::container::{ContainerSpec, StartError};
use crate::images::Image;
use crate::runtime::Prepared;
use crate::sandbox::Sandbox;

/// The image that runs commands an image does not provide.
pub const TOOLBOX: &str = "toolbox";

/// Most output kept from one exec per stream; more makes the guest's
/// writes fail.
const OUTPUT_LIMIT: usize = 1 << 20;

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
        let stdout = MemoryOutputPipe::new(OUTPUT_LIMIT);
        let stderr = MemoryOutputPipe::new(OUTPUT_LIMIT);
        wasi.stdout(stdout.clone());
        wasi.stderr(stderr.clone());
        if let Some(bytes) = stdin {
            wasi.stdin(wasmtime_wasi::p2::pipe::MemoryInputPipe::new(bytes));
        }
        let launched = self.launch(spec, pre, wasi.build(), mounts, Box::new(|| ()));
        let kill = launched.kill.clone();
        let mut task = launched.task;
        let (status, timed_out) = match tokio::time::timeout(timeout, &mut task).await {
            Ok(status) => (status, false),
            Err(_) => {
                kill.kill();
                (task.await, true)
            }
        };
        let exit_code = match status {
            Ok(status) => status.exit_code,
            Err(_) => crate::container::EXIT_TRAP,
        };
        Ok(ExecOutput {
            exit_code,
            stdout: stdout.contents(),
            stderr: stderr.contents(),
            timed_out,
        })
    }
}
