//! A container instance's console, for `kubectl attach` and `kubectl run
//! -it`: the stdin it keeps open (`stdin: true`), its terminal (`tty:
//! true`), and a live copy of its output. Attaching streams what the
//! container writes from then on (its log holds what came before) and,
//! with stdin, hands the client's input to it; detaching leaves it running,
//! except that with `stdinOnce` the first attached client's end of input
//! is the container's.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{broadcast, watch};

use crate::container::ContainerSpec;
use crate::exec::{ExecOptions, ExecReader, ExecSession, ExecStdin, WINDOW};
use crate::logs::{LiveOutput, Stream};
use crate::pipe::Pipe;
use crate::terminal::{Terminal, TerminalSize};

/// A terminal's size before a client says otherwise.
const DEFAULT_SIZE: TerminalSize = TerminalSize {
    columns: 80,
    rows: 24,
};

/// One container instance's console.
pub(crate) struct Console {
    /// What the container reads, when it keeps stdin open.
    pub(crate) stdin: Option<Arc<Pipe>>,
    stdin_once: bool,
    /// A client attached with stdin already (for `stdinOnce`).
    stdin_attached: AtomicBool,
    pub(crate) terminal: Option<Arc<Terminal>>,
    /// What the container writes, as it writes it.
    pub(crate) output: Arc<LiveOutput>,
    /// Set once the instance has ended and its output was sent.
    ended: watch::Sender<bool>,
}

impl Console {
    /// The console of an instance of `spec`.
    pub(crate) fn new(spec: &ContainerSpec) -> Arc<Console> {
        let terminal = spec.tty.then(|| Terminal::new(Some(DEFAULT_SIZE), WINDOW));
        let stdin = match &terminal {
            Some(terminal) if spec.open_stdin => Some(Arc::clone(&terminal.stdin)),
            _ if spec.open_stdin => Some(Pipe::new(WINDOW)),
            _ => None,
        };
        Arc::new(Console {
            stdin,
            stdin_once: spec.stdin_once,
            stdin_attached: AtomicBool::new(false),
            terminal,
            output: Arc::default(),
            ended: watch::channel(false).0,
        })
    }

    /// The instance ended and everything it wrote went out.
    pub(crate) fn end(&self) {
        if let Some(stdin) = &self.stdin {
            stdin.close_read();
        }
        self.ended.send_replace(true);
    }

    /// A client attaches with the streams `options` asks for.
    pub(crate) fn attach(self: &Arc<Self>, options: ExecOptions) -> ExecSession {
        let mut live = self.output.subscribe();
        let tty = self.terminal.is_some();
        let stdout = options.stdout.then(|| Pipe::new(WINDOW));
        // On a terminal both streams are the terminal's: stdout carries them.
        let stderr = (options.stderr && !tty).then(|| Pipe::new(WINDOW));
        let mut ended = self.ended.subscribe();
        let (out, err) = (stdout.clone(), stderr.clone());
        let forward = tokio::spawn(async move {
            loop {
                tokio::select! {
                    chunk = live.recv() => match chunk {
                        Ok((stream, bytes)) => {
                            let pipe = match stream {
                                Stream::Stderr if !tty => &err,
                                _ => &out,
                            };
                            if let Some(pipe) = pipe
                                && pipe.write_all(&bytes).await.is_err()
                            {
                                break;
                            }
                        }
                        // A client too slow to keep up misses output, as
                        // one reading a full terminal would.
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                    _ = async { ended.wait_for(|ended| *ended).await.map(|_| ()) } => {
                        // What was sent before the end is still queued.
                        while let Ok((stream, bytes)) = live.try_recv() {
                            let pipe = if stream == Stream::Stderr && !tty { &err } else { &out };
                            if let Some(pipe) = pipe {
                                let _ = pipe.write_all(&bytes).await;
                            }
                        }
                        break;
                    }
                }
            }
            for pipe in [out, err].into_iter().flatten() {
                pipe.close_write();
            }
            0
        });
        let stdin = match &self.stdin {
            Some(pipe) if options.stdin => {
                let first = !self.stdin_attached.swap(true, Ordering::AcqRel);
                // With stdinOnce only the first client's stdin reaches the
                // container, and its end is the container's.
                (first || !self.stdin_once).then(|| {
                    ExecStdin::new(Arc::clone(pipe), self.terminal.clone(), self.stdin_once)
                })
            }
            _ => None,
        };
        ExecSession::attached(
            stdin,
            stdout.map(ExecReader::new),
            stderr.map(ExecReader::new),
            self.terminal.clone(),
            forward,
        )
    }
}
