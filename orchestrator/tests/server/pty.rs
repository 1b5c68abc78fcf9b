//! A command under a pseudo-terminal, as a person at a terminal runs it:
//! `script(1)` provides the terminal, the test types keys into it and
//! waits for what the screen shows.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A command running on a terminal of its own.
pub struct Pty {
    child: Child,
    keys: ChildStdin,
    screen: Arc<(Mutex<String>, Condvar)>,
    /// Where in `screen` the next [`Pty::expect`] starts looking.
    mark: usize,
}

impl Pty {
    /// Runs `command` (a shell command line) on a terminal of `columns` x
    /// `rows`, with `env` added.
    pub fn spawn(command: &str, env: &[(&str, &str)], columns: u16, rows: u16) -> Pty {
        let line = format!("stty cols {columns} rows {rows}; exec {command}");
        let mut child = Command::new("script")
            .args(["-qfec", &line, "/dev/null"])
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("script(1) from util-linux runs");
        let keys = child.stdin.take().unwrap();
        let mut out = child.stdout.take().unwrap();
        let screen = Arc::new((Mutex::new(String::new()), Condvar::new()));
        let shared = Arc::clone(&screen);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let (text, changed) = &*shared;
                text.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
                changed.notify_all();
            }
        });
        Pty {
            child,
            keys,
            screen,
            mark: 0,
        }
    }

    /// Types `keys`.
    pub fn send(&mut self, keys: &[u8]) {
        self.keys.write_all(keys).unwrap();
        self.keys.flush().unwrap();
    }

    /// Waits until `text` appears after what earlier expectations saw;
    /// returns the screen output up to and including it.
    pub fn expect(&mut self, text: &str) -> String {
        let limit = Duration::from_secs(30);
        let deadline = Instant::now() + limit;
        let (screen, changed) = &*self.screen;
        let mut seen = screen.lock().unwrap();
        loop {
            if let Some(at) = seen[self.mark..].find(text) {
                let end = self.mark + at + text.len();
                let out = seen[self.mark..end].to_string();
                self.mark = end;
                return out;
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "{text:?} did not appear within {limit:?}; the terminal shows after the last match:\n{:?}",
                &seen[self.mark..]
            );
            seen = changed.wait_timeout(seen, deadline - now).unwrap().0;
        }
    }

    /// Resizes the terminal as a window manager does: the new size is
    /// set on the terminal, whose foreground program gets SIGWINCH.
    pub fn resize(&self, columns: u16, rows: u16) {
        // `script -c "…; exec CMD"`: the command is script's only child.
        let children =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.child.id()))
                .unwrap();
        let program = children
            .split_whitespace()
            .next()
            .expect("a child of script");
        let status = Command::new("stty")
            .args(["-F", &format!("/proc/{program}/fd/0")])
            .args(["cols", &columns.to_string(), "rows", &rows.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "stty resizes the terminal");
    }

    /// Waits for the command to end; its exit code.
    pub fn wait(mut self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "the command did not end");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
