//! The terminal of a command started with one (`kubectl exec -t`): the
//! line discipline a pseudo-terminal would keep (echo, line editing,
//! Ctrl-C and Ctrl-D, `\n` leaving as `\r\n`), its size, and the
//! `wasmkube:host/terminal` interface through which a guest reads the size,
//! switches to raw mode and catches interrupts.
//!
//! The client's keystrokes go in through [`Terminal::input`]; what the
//! guest reads comes out of the stdin pipe; the guest's output and the
//! echo share one output pipe, so they reach the client in the order they
//! happened.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::pipe::Pipe;

use crate::host_wit::terminal as wit;

/// A terminal's size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalSize {
    /// Characters per line.
    pub columns: u16,
    /// Lines.
    pub rows: u16,
}

const INTERRUPT: u8 = 0x03; // Ctrl-C
const END_OF_FILE: u8 = 0x04; // Ctrl-D
const KILL_LINE: u8 = 0x15; // Ctrl-U
const ERASE_WORD: u8 = 0x17; // Ctrl-W
const BACKSPACE: u8 = 0x08;
const DELETE: u8 = 0x7f;

/// Exit code of a command an interrupt stopped (128 + SIGINT), as a shell
/// reports it.
pub const EXIT_INTERRUPTED: i32 = 130;

/// One command's terminal.
#[derive(Debug)]
pub struct Terminal {
    /// What the guest reads.
    pub(crate) stdin: Arc<Pipe>,
    /// What the client sees: the guest's output and the echo.
    pub(crate) output: Arc<Pipe>,
    state: Mutex<State>,
    /// Woken on every interrupt, for the default action (stopping the
    /// command) when the guest does not catch them.
    pub(crate) interrupted: Notify,
}

#[derive(Debug)]
struct State {
    raw: bool,
    /// The line being typed in cooked mode, not yet handed to the guest.
    line: Vec<u8>,
    size: Option<TerminalSize>,
    /// The guest asked to catch interrupts.
    catches: bool,
    /// An interrupt came that the guest has not taken yet.
    interrupt: bool,
    /// Ctrl-D typed at the start of a line, not yet read as end of input.
    ends: usize,
}

impl Terminal {
    /// A terminal of `size` whose pipes hold `window` bytes each way.
    pub(crate) fn new(size: Option<TerminalSize>, window: usize) -> Arc<Terminal> {
        Arc::new(Terminal {
            stdin: Pipe::new(window),
            output: Pipe::new(window),
            state: Mutex::new(State {
                raw: false,
                line: Vec::new(),
                size,
                catches: false,
                interrupt: false,
                ends: 0,
            }),
            interrupted: Notify::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The client's window changed.
    pub fn resize(&self, size: TerminalSize) {
        self.state().size = Some(size);
    }

    /// Keystrokes from the client, through the line discipline. Fails once
    /// the guest is gone.
    pub async fn input(&self, bytes: &[u8]) -> std::io::Result<()> {
        if self.state().raw {
            return self.stdin.write_all(bytes).await;
        }
        let mut lines = Vec::new();
        let mut echo = Vec::new();
        let mut interrupted = false;
        {
            let mut state = self.state();
            for &byte in bytes {
                match byte {
                    INTERRUPT => {
                        // As a terminal flushes its input queue on SIGINT:
                        // what was typed ahead and not read is dropped.
                        state.line.clear();
                        lines.clear();
                        self.stdin.clear();
                        echo.extend_from_slice(b"^C");
                        state.interrupt = true;
                        interrupted = true;
                    }
                    END_OF_FILE => {
                        if state.line.is_empty() {
                            state.ends += 1;
                        } else {
                            lines.append(&mut state.line);
                        }
                    }
                    DELETE | BACKSPACE => {
                        if pop_char(&mut state.line) {
                            echo.extend_from_slice(b"\x08 \x08");
                        }
                    }
                    KILL_LINE => {
                        while pop_char(&mut state.line) {
                            echo.extend_from_slice(b"\x08 \x08");
                        }
                    }
                    ERASE_WORD => {
                        while state.line.last().is_some_and(|b| *b == b' ') {
                            state.line.pop();
                            echo.extend_from_slice(b"\x08 \x08");
                        }
                        while state.line.last().is_some_and(|b| *b != b' ') {
                            pop_char(&mut state.line);
                            echo.extend_from_slice(b"\x08 \x08");
                        }
                    }
                    b'\r' | b'\n' => {
                        state.line.push(b'\n');
                        lines.append(&mut state.line);
                        echo.extend_from_slice(b"\r\n");
                    }
                    control if control < 0x20 && control != b'\t' => {
                        state.line.push(control);
                        echo.extend_from_slice(&[b'^', control + 0x40]);
                    }
                    other => {
                        state.line.push(other);
                        echo.push(other);
                    }
                }
            }
        }
        // The echo may exceed the window: it is bounded by what was typed,
        // and waiting for room here could wait on a guest that waits on us.
        self.output.push(&echo)?;
        if interrupted {
            self.interrupted.notify_one();
        }
        if lines.is_empty() {
            // Wake a reader waiting for an end of input.
            self.stdin.push(&[])?;
            return Ok(());
        }
        self.stdin.write_all(&lines).await
    }

    /// Takes one pending Ctrl-D, if it is the next thing to read.
    pub(crate) fn take_end(&self) -> bool {
        let mut state = self.state();
        if state.ends > 0 {
            state.ends -= 1;
            true
        } else {
            false
        }
    }

    /// Whether a Ctrl-D waits to be read.
    pub(crate) fn has_end(&self) -> bool {
        self.state().ends > 0
    }

    /// Whether the guest handles interrupts itself.
    pub(crate) fn catches_interrupts(&self) -> bool {
        self.state().catches
    }

    /// The guest's output as the client sees it: `\n` as `\r\n`.
    pub(crate) fn translate_output(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 8);
        for &byte in bytes {
            if byte == b'\n' {
                out.push(b'\r');
            }
            out.push(byte);
        }
        out
    }
}

/// Removes the last character (all bytes of a UTF-8 sequence); whether
/// there was one.
fn pop_char(line: &mut Vec<u8>) -> bool {
    let Some(pos) = line.iter().rposition(|b| (b & 0xC0) != 0x80) else {
        return false;
    };
    if line[pos] == b'\n' {
        return false;
    }
    line.truncate(pos);
    true
}

impl wit::Host for crate::container::GuestState {
    fn size(&mut self) -> Option<wit::Dimensions> {
        let terminal = self.terminal.as_ref()?;
        let size = terminal.state().size?;
        Some(wit::Dimensions {
            columns: size.columns,
            rows: size.rows,
        })
    }

    fn set_mode(&mut self, mode: wit::Mode) {
        if let Some(terminal) = &self.terminal {
            let mut state = terminal.state();
            state.raw = matches!(mode, wit::Mode::Raw);
            if state.raw && !state.line.is_empty() {
                // What was typed but not entered is kept, as a pty keeps it.
                let line = std::mem::take(&mut state.line);
                drop(state);
                let _ = terminal.stdin.push(&line);
            }
        }
    }

    fn catch_interrupts(&mut self) {
        if let Some(terminal) = &self.terminal {
            terminal.state().catches = true;
        }
    }

    fn take_interrupt(&mut self) -> bool {
        self.terminal
            .as_ref()
            .is_some_and(|t| std::mem::take(&mut t.state().interrupt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn typed(terminal: &Terminal, keys: &[u8]) -> (Vec<u8>, Vec<u8>) {
        terminal.input(keys).await.unwrap();
        let read = |pipe: &Pipe| match pipe.try_read(1 << 16) {
            crate::pipe::Read::Data(b) => b.to_vec(),
            _ => Vec::new(),
        };
        (read(&terminal.stdin), read(&terminal.output))
    }

    #[tokio::test]
    async fn cooked_mode_edits_the_line_and_echoes_it() {
        let terminal = Terminal::new(None, 1024);
        let (guest, echo) = typed(&terminal, b"lx\x7fs -l\r").await;
        assert_eq!(guest, b"ls -l\n");
        assert_eq!(echo, b"lx\x08 \x08s -l\r\n");
        // Nothing reaches the guest before Enter; Ctrl-U takes it back.
        let (guest, _) = typed(&terminal, b"rm -rf x\x15echo \xc3\xa9\x7f").await;
        assert!(guest.is_empty());
        let (guest, _) = typed(&terminal, b"ok\r").await;
        assert_eq!(guest, b"echo ok\n");
    }

    #[tokio::test]
    async fn ctrl_c_drops_the_line_and_interrupts() {
        let terminal = Terminal::new(None, 1024);
        // A line typed ahead and not read yet is dropped too.
        terminal.input(b"ls\r").await.unwrap();
        let (guest, echo) = typed(&terminal, b"sleep 9\x03").await;
        assert!(guest.is_empty());
        assert_eq!(echo, b"ls\r\nsleep 9^C");
        assert!(terminal.state().interrupt);
        // Ctrl-D on an empty line is one end of input.
        typed(&terminal, b"\x04").await;
        assert!(terminal.take_end());
        assert!(!terminal.take_end());
    }

    #[tokio::test]
    async fn raw_mode_passes_keys_through_unechoed() {
        let terminal = Terminal::new(None, 1024);
        terminal.state().raw = true;
        let (guest, echo) = typed(&terminal, b"a\x1b[A\x03").await;
        assert_eq!(guest, b"a\x1b[A\x03");
        assert!(echo.is_empty());
        assert_eq!(Terminal::translate_output(b"a\nb"), b"a\r\nb");
    }
}
