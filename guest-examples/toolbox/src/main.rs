//! `toolbox`: a busybox-like multi-call WASI guest. Which program runs is
//! chosen by the basename of argv\[0\] (`sh`, `/bin/sh`, `ls`, ...), or by
//! argv\[1\] when argv\[0\] is `toolbox` itself.
//!
//! - [`shell`]: a POSIX `sh` subset over brush-parser's syntax tree.
//! - [`applets`]: `echo cat ls date sleep grep head tail wc ...`.
//! - [`io`]: the standard streams a command runs with (files, pipes, buffers).
//! - [`host`]: file ownership from the wasmkube host.
//! - [`http`]: the HTTP(S) client behind `wget` and `curl`.
//! - [`terminal`]: the terminal size, raw mode and Ctrl-C.

mod applets;
mod glob;
mod host;
mod http;
mod io;
mod keys;
mod shell;
mod terminal;
mod time;

use std::io::Write;

fn main() {
    // WASI has no process-wide working directory; the runtime hands the
    // container's `workingDir` over as the initial cwd.
    if let Some(cwd) = wasip2::cli::environment::initial_cwd() {
        let _ = std::env::set_current_dir(cwd);
    }
    let mut args: Vec<String> = std::env::args().collect();
    if args.is_empty() {
        args.push("sh".into());
    }
    let mut name = applets::basename(&args[0]).to_string();
    if name == "toolbox" {
        if args.len() < 2 {
            eprintln!(
                "usage: toolbox APPLET [ARGS...]\napplets: sh {}",
                applets::names().join(" ")
            );
            exit(1);
        }
        args.remove(0);
        name = applets::basename(&args[0]).to_string();
    }
    let code = if name == "sh" || name == "ash" || name == "bash" {
        shell::main(&args)
    } else {
        let env: Vec<(String, String)> = std::env::vars().collect();
        applets::run_standalone(&name, &args, env)
    };
    exit(code);
}

/// Ends the program with an exact exit code. `std::process::exit` cannot:
/// on wasip2 it only tells success from failure.
pub fn exit(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    wasip2::cli::exit::exit_with_code((code & 0xff) as u8);
    std::process::exit(code)
}
