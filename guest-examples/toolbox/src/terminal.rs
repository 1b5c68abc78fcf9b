//! The terminal the toolbox may run on (`kubectl exec -it`), through the
//! host's `wasmkube:host/terminal`: its size, raw mode for the shell's line
//! editor, and Ctrl-C as an interrupt the toolbox notices between steps
//! (WASI has no signals).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use crate::host::terminal as host;

/// An interrupt seen and not yet dealt with by the shell.
static PENDING: AtomicBool = AtomicBool::new(false);

/// Whether stdin is a terminal.
pub fn is_terminal() -> bool {
    static TERMINAL: OnceLock<bool> = OnceLock::new();
    *TERMINAL.get_or_init(|| wasip2::cli::terminal_stdin::get_terminal_stdin().is_some())
}

/// Columns and rows, when on a terminal.
pub fn size() -> Option<(u16, u16)> {
    if !is_terminal() {
        return None;
    }
    host::size().map(|s| (s.columns, s.rows))
}

/// Raw mode (keys as typed, unechoed) or the host's cooked line editing.
pub fn set_raw(raw: bool) {
    if is_terminal() {
        host::set_mode(if raw {
            host::Mode::Raw
        } else {
            host::Mode::Cooked
        });
    }
}

/// From now on Ctrl-C interrupts the running command, not the toolbox.
pub fn catch_interrupts() {
    if is_terminal() {
        host::catch_interrupts();
    }
}

/// Whether Ctrl-C was typed since the shell last cleared it.
pub fn interrupted() -> bool {
    if PENDING.load(Ordering::Relaxed) {
        return true;
    }
    if is_terminal() && host::take_interrupt() {
        PENDING.store(true, Ordering::Relaxed);
        return true;
    }
    false
}

/// The shell has dealt with the interrupt.
pub fn clear_interrupt() {
    PENDING.store(false, Ordering::Relaxed);
    if is_terminal() {
        let _ = host::take_interrupt();
    }
}

/// The error a read or a wait ends with when Ctrl-C is typed.
pub fn interrupt_error() -> std::io::Error {
    std::io::Error::other("interrupted")
}
