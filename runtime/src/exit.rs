//! How a container instance ended: its exit code, the reason Kubernetes
//! shows (Completed, Error, OOMKilled), and the termination message.

use crate::limits::Usage;
use wasmtime_wasi::I32Exit;

/// Exit code of a container stopped by the runtime: 128 + SIGTERM, what a
/// process without a SIGTERM handler (every WASI guest) reports.
pub const EXIT_STOPPED: i32 = 143;
/// Exit code of a container killed by its memory limit: 128 + SIGKILL, as
/// the kernel's OOM killer leaves it.
pub const EXIT_OOM: i32 = 137;
/// Exit code of a guest that trapped: 128 + SIGABRT, like a native crash.
pub const EXIT_TRAP: i32 = 134;

/// Longest termination message kept, as Kubernetes caps it.
const MAX_MESSAGE: usize = 4096;

/// Why a container instance ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExitReason {
    /// Exit code 0.
    Completed,
    /// Any other end: a non-zero exit, a trap, a stop.
    Error,
    /// Its memory limit refused a growth and it died of it.
    OomKilled,
}

impl ExitReason {
    /// The reason as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ExitReason::Completed => "Completed",
            ExitReason::Error => "Error",
            ExitReason::OomKilled => "OOMKilled",
        }
    }
}

/// How a container instance ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitStatus {
    /// The exit code (see the `EXIT_*` constants for the runtime's own).
    pub exit_code: i32,
    /// Completed, Error or OOMKilled.
    pub reason: ExitReason,
    /// A trap's message, an OOM's explanation: the termination message.
    pub message: Option<String>,
    /// When the instance started running.
    pub started_at: jiff::Timestamp,
    /// When it ended.
    pub finished_at: jiff::Timestamp,
}

impl ExitStatus {
    /// True for exit code 0.
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }
}

/// Turns the end of a guest's run into its exit status.
pub(crate) fn exit_status(
    outcome: wasmtime::Result<Result<(), ()>>,
    usage: &Usage,
    killed: bool,
    memory_limit: Option<u64>,
    started_at: jiff::Timestamp,
) -> ExitStatus {
    let (exit_code, message) = match outcome {
        Ok(Ok(())) => (0, None),
        // `wasi:cli/run` can only say "failed": that is exit code 1.
        Ok(Err(())) => (1, None),
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(I32Exit(code)) => (*code, None),
            None if killed => (EXIT_STOPPED, Some("stopped by the runtime".to_string())),
            None => (EXIT_TRAP, Some(truncate(trap_message(&e)))),
        },
    };
    let oom = usage.hit_memory_limit() && exit_code != 0 && !killed;
    let (exit_code, reason, message) = if oom {
        let limit = memory_limit.unwrap_or_default();
        let mut text = format!("memory limit of {limit} bytes reached");
        if let Some(m) = message {
            text = format!("{text}; {m}");
        }
        (EXIT_OOM, ExitReason::OomKilled, Some(truncate(text)))
    } else if exit_code == 0 {
        (0, ExitReason::Completed, message)
    } else {
        (exit_code, ExitReason::Error, message)
    };
    ExitStatus {
        exit_code,
        reason,
        message,
        started_at,
        finished_at: jiff::Timestamp::now(),
    }
}

/// "wasm trap: <what>" first, then the guest's backtrace when there is one.
fn trap_message(e: &wasmtime::Error) -> String {
    let what = match e.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{:#}", e.root_cause()),
    };
    match e.downcast_ref::<wasmtime::WasmBacktrace>() {
        Some(bt) => format!("{what}\n{bt}"),
        None => what,
    }
}

fn truncate(mut text: String) -> String {
    if text.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}
