//! Commands that change the shell itself, so they cannot be applets.

use std::io::Write;

use super::{Exec, Flow, Shell};
use crate::applets;
use crate::io::Io;

const BUILTINS: &[&str] = &[
    ":", ".", "break", "cd", "command", "continue", "eval", "exec", "exit", "export", "local",
    "read", "readonly", "return", "set", "shift", "source", "trap", "unset", "wait",
];

pub fn is_builtin(name: &str) -> bool {
    BUILTINS.contains(&name)
}

fn number(io: &Io, name: &str, arg: Option<&String>, default: i32) -> Result<i32, i32> {
    match arg {
        None => Ok(default),
        Some(a) => a.parse().map_err(|_| {
            applets::complain(
                &mut io.stderr.clone(),
                name,
                &format!("{a}: numeric argument required"),
            );
            2
        }),
    }
}

pub fn run(sh: &mut Shell, argv: &[String], io: &Io) -> Exec {
    let name = argv[0].as_str();
    let args = &argv[1..];
    let err = |msg: &str| {
        applets::complain(&mut io.stderr.clone(), name, msg);
    };
    match name {
        ":" => Ok(0),
        "exit" => match number(io, name, args.first(), sh.last_status) {
            Ok(code) => Err(Flow::Exit(code & 0xff)),
            Err(code) => Err(Flow::Exit(code)),
        },
        "return" => match number(io, name, args.first(), sh.last_status) {
            Ok(code) => Err(Flow::Return(code)),
            Err(code) => Ok(code),
        },
        "break" | "continue" => {
            if sh.loop_depth == 0 {
                err("only meaningful in a loop");
                return Ok(0);
            }
            let n = match number(io, name, args.first(), 1) {
                Ok(n) if n >= 1 => n as u32,
                _ => return Ok(1),
            };
            Err(if name == "break" {
                Flow::Break(n)
            } else {
                Flow::Continue(n)
            })
        }
        "cd" => {
            let target = match args.first().map(String::as_str) {
                None => sh.var("HOME").unwrap_or("/").to_string(),
                Some("-") => sh.var("OLDPWD").unwrap_or("/").to_string(),
                Some(dir) => dir.to_string(),
            };
            match std::env::set_current_dir(&target) {
                Ok(()) => {
                    let old = sh.var("PWD").unwrap_or("/").to_string();
                    sh.set_var("OLDPWD", &old);
                    let pwd = std::env::current_dir()
                        .map(|p| p.to_string_lossy().into_owned())
                        .unwrap_or(target);
                    sh.set_var("PWD", &pwd);
                    Ok(0)
                }
                Err(e) => {
                    err(&format!(
                        "can't cd to {target}: {}",
                        applets::io_message(&e)
                    ));
                    Ok(1)
                }
            }
        }
        "export" | "readonly" | "local" => {
            if args.is_empty() || args[0] == "-p" {
                let mut out = io.stdout.clone();
                for (k, v) in sh.exported_env(&[]) {
                    let _ = writeln!(out, "export {k}='{}'", v.replace('\'', "'\\''"));
                }
                return Ok(0);
            }
            for a in args {
                let (k, v) = match a.split_once('=') {
                    Some((k, v)) => (k, Some(v)),
                    None => (a.as_str(), None),
                };
                if !valid_name(k) {
                    err(&format!("{k}: bad variable name"));
                    return Ok(1);
                }
                if let Some(v) = v {
                    sh.set_var(k, v);
                }
                if name == "export" {
                    sh.export(k);
                }
            }
            Ok(0)
        }
        "unset" => {
            for a in args.iter().filter(|a| !a.starts_with('-')) {
                sh.unset(a);
                sh.functions.remove(a.as_str());
            }
            Ok(0)
        }
        "set" => {
            let mut rest = args.iter().peekable();
            while let Some(a) = rest.peek() {
                let on = a.starts_with('-');
                if !(on || a.starts_with('+')) || a.len() < 2 {
                    break;
                }
                let a = rest.next().expect("peeked");
                if a == "--" {
                    break;
                }
                for c in a[1..].chars() {
                    match c {
                        'e' => sh.errexit = on,
                        'x' => sh.xtrace = on,
                        'u' | 'f' | 'o' | 'v' => {}
                        _ => {
                            err(&format!("-{c}: unknown option"));
                            return Ok(2);
                        }
                    }
                }
            }
            let rest: Vec<String> = rest.cloned().collect();
            if !rest.is_empty() || args.iter().any(|a| a == "--") {
                sh.positional = rest;
            } else if args.is_empty() {
                let mut out = io.stdout.clone();
                let mut vars: Vec<_> = sh.vars.iter().collect();
                vars.sort_by(|a, b| a.0.cmp(b.0));
                for (k, v) in vars {
                    let _ = writeln!(out, "{k}='{}'", v.value.replace('\'', "'\\''"));
                }
            }
            Ok(0)
        }
        "shift" => {
            let n = match number(io, name, args.first(), 1) {
                Ok(n) => n.max(0) as usize,
                Err(code) => return Ok(code),
            };
            if n > sh.positional.len() {
                return Ok(1);
            }
            sh.positional.drain(..n);
            Ok(0)
        }
        "read" => {
            let names: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
            let raw = args.iter().any(|a| a == "-r");
            let mut input = io.stdin.clone();
            let Ok(Some(mut line)) = input.read_line() else {
                return Ok(1);
            };
            if !raw {
                line = line.replace("\\\n", "").replace('\\', "");
            }
            let ifs = sh.var("IFS").unwrap_or(" \t\n").to_string();
            let names: Vec<String> = if names.is_empty() {
                vec!["REPLY".into()]
            } else {
                names.into_iter().cloned().collect()
            };
            let mut rest = line.trim_matches(|c| ifs.contains(c)).to_string();
            for (i, var) in names.iter().enumerate() {
                if i + 1 == names.len() {
                    sh.set_var(var, &rest);
                    break;
                }
                let (head, tail) = match rest.find(|c| ifs.contains(c)) {
                    Some(at) => (
                        rest[..at].to_string(),
                        rest[at..]
                            .trim_start_matches(|c| ifs.contains(c))
                            .to_string(),
                    ),
                    None => (rest.clone(), String::new()),
                };
                sh.set_var(var, &head);
                rest = tail;
            }
            Ok(0)
        }
        "eval" => sh.run_source(&args.join(" "), io),
        "." | "source" => {
            let Some(path) = args.first() else {
                err("filename argument required");
                return Ok(2);
            };
            match std::fs::read_to_string(path) {
                Ok(text) => sh.run_source(&text, io),
                Err(e) => {
                    err(&format!("can't open {path}: {}", applets::io_message(&e)));
                    Ok(1)
                }
            }
        }
        "exec" => {
            if args.is_empty() {
                return Ok(0);
            }
            Err(Flow::Exit(run_applet(sh, args, io)))
        }
        "command" => {
            if args.first().map(String::as_str) == Some("-v") {
                let mut out = io.stdout.clone();
                let mut status = 0;
                for a in &args[1..] {
                    if is_builtin(a) || sh.functions.contains_key(a.as_str()) {
                        let _ = writeln!(out, "{a}");
                    } else if applets::exists(applets::basename(a)) {
                        let _ = writeln!(out, "/bin/{}", applets::basename(a));
                    } else {
                        status = 1;
                    }
                }
                return Ok(status);
            }
            if args.is_empty() {
                return Ok(0);
            }
            Ok(run_applet(sh, args, io))
        }
        "trap" => {
            // Signals never reach a WASI guest, so a handler for one would
            // never run; only an EXIT trap could, and that is not supported.
            if args.iter().skip(1).any(|a| a == "EXIT" || a == "0") {
                err("trap on EXIT is not supported");
                return Ok(1);
            }
            Ok(0)
        }
        "wait" => Ok(0),
        _ => {
            err("not a builtin");
            Ok(127)
        }
    }
}

/// Runs `argv` as an applet (skipping functions and builtins), as `exec`
/// and `command` do; 127 if there is none.
fn run_applet(sh: &Shell, argv: &[String], io: &Io) -> i32 {
    let mut ctx = applets::Ctx {
        io: io.clone(),
        env: sh.exported_env(&[]),
    };
    applets::run(applets::basename(&argv[0]), argv, &mut ctx).unwrap_or_else(|| {
        applets::complain(
            &mut io.stderr.clone(),
            "sh",
            &format!("{}: not found", argv[0]),
        );
        127
    })
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
