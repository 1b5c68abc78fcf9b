//! The applets: small programs in the one binary, called by name from the
//! shell or as argv\[0\] of the container's command.

mod files;
mod grep;
mod misc;
mod net;
mod pager;
mod ps;
mod tar;
mod text;

use std::io::{self, Read, Write};

use crate::io::{Input, Io, Output};

/// What an applet runs with: its streams and its environment.
pub struct Ctx {
    pub io: Io,
    pub env: Vec<(String, String)>,
}

impl Ctx {
    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Reports `msg` on stderr as `applet: msg`.
    pub fn error(&mut self, applet: &str, msg: &str) {
        complain(&mut self.io.stderr, applet, msg);
    }

    /// Opens an input operand: a file, `-` or `/dev/stdin` for stdin,
    /// `/dev/null` for nothing.
    pub fn open(&self, path: &str) -> io::Result<Box<dyn Read>> {
        Ok(match path {
            "-" | "/dev/stdin" => Box::new(self.io.stdin.clone()),
            "/dev/null" => Box::new(Input::Null),
            _ => {
                if std::fs::metadata(path)?.is_dir() {
                    return Err(io::Error::new(
                        io::ErrorKind::IsADirectory,
                        "Is a directory",
                    ));
                }
                Box::new(std::fs::File::open(path)?)
            }
        })
    }

    /// Reads all of one input operand.
    pub fn read_all(&self, path: &str) -> io::Result<Vec<u8>> {
        let mut data = Vec::new();
        self.open(path)?.read_to_end(&mut data)?;
        Ok(data)
    }

    pub fn out(&mut self) -> &mut Output {
        &mut self.io.stdout
    }
}

type Applet = fn(&mut Ctx, &[String]) -> i32;

const APPLETS: &[(&str, Applet)] = &[
    ("[", misc::test),
    ("basename", misc::basename),
    ("cat", text::cat),
    ("cp", files::cp),
    ("curl", net::curl),
    ("cut", text::cut),
    ("date", misc::date),
    ("dirname", misc::dirname),
    ("echo", misc::echo),
    ("env", misc::env),
    ("false", misc::false_),
    ("grep", grep::grep),
    ("head", text::head),
    ("hostname", misc::hostname),
    ("less", pager::less),
    ("ls", files::ls),
    ("mkdir", files::mkdir),
    ("more", pager::more),
    ("mv", files::mv),
    ("nc", net::nc),
    ("nslookup", net::nslookup),
    ("pgrep", ps::pgrep),
    ("pidof", ps::pidof),
    ("printf", misc::printf),
    ("ps", ps::ps),
    ("pwd", files::pwd),
    ("rm", files::rm),
    ("rmdir", files::rmdir),
    ("seq", misc::seq),
    ("shuf", text::shuf),
    ("sleep", misc::sleep),
    ("sort", text::sort),
    ("stty", misc::stty),
    ("tail", text::tail),
    ("tar", tar::tar),
    ("tee", text::tee),
    ("test", misc::test),
    ("touch", files::touch),
    ("tr", text::tr),
    ("true", misc::true_),
    ("uname", misc::uname),
    ("uniq", text::uniq),
    ("wc", text::wc),
    ("wget", net::wget),
];

/// Programs a Linux image would have that WASI cannot mean: they fail with
/// the reason instead of printing something made up.
const UNSUPPORTED: &[(&[&str], &str)] = &[
    (
        &[
            "kill", "killall", "pkill", "nice", "renice", "nohup", "lsof", "taskset",
        ],
        "a WASI guest cannot signal or schedule processes",
    ),
    (
        &["top"],
        "no full-screen monitor here; ps shows each process's CPU time",
    ),
    (
        &["free", "uptime", "dmesg", "vmstat", "iostat", "df", "du"],
        "WASI gives a guest no view of system memory, load or disks",
    ),
    (
        &[
            "ping",
            "traceroute",
            "ip",
            "ifconfig",
            "netstat",
            "ss",
            "route",
        ],
        "WASI has no ICMP and no interface configuration",
    ),
    (
        &["mount", "umount"],
        "volumes are mounted by the runtime, not by the guest",
    ),
    (
        &["chown", "chmod", "chgrp"],
        "WASI cannot change file ownership or modes",
    ),
    (
        &["id", "whoami", "su", "sudo", "groups"],
        "WASI has no users or groups",
    ),
    (
        &["apt", "apt-get", "apk", "yum", "dnf", "pip"],
        "a WASI guest cannot install software; build it into the image",
    ),
];

pub fn basename(path: &str) -> &str {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path)
}

pub fn names() -> Vec<&'static str> {
    APPLETS.iter().map(|(n, _)| *n).collect()
}

pub fn exists(name: &str) -> bool {
    APPLETS.iter().any(|(n, _)| *n == name)
}

/// Runs an applet; `None` if there is no such applet.
pub fn run(name: &str, argv: &[String], ctx: &mut Ctx) -> Option<i32> {
    if let Some((_, applet)) = APPLETS.iter().find(|(n, _)| *n == name) {
        let status = applet(ctx, argv);
        let _ = ctx.io.stdout.flush();
        return Some(status);
    }
    if let Some((_, why)) = UNSUPPORTED.iter().find(|(names, _)| names.contains(&name)) {
        ctx.error(name, &format!("not supported: {why}"));
        return Some(127);
    }
    None
}

/// Runs an applet as the container's program (argv\[0\] named it).
pub fn run_standalone(name: &str, argv: &[String], env: Vec<(String, String)>) -> i32 {
    let mut ctx = Ctx {
        io: Io::standard(),
        env,
    };
    match run(name, argv, &mut ctx) {
        Some(status) => status,
        None => {
            eprintln!("toolbox: applet not found: {name}");
            127
        }
    }
}

pub fn complain(out: &mut Output, applet: &str, msg: &str) {
    let _ = writeln!(out, "{applet}: {msg}");
    let _ = out.flush();
}

/// The C library's wording for an I/O error, without Rust's "(os error N)".
pub fn io_message(e: &io::Error) -> String {
    use io::ErrorKind::*;
    match e.kind() {
        NotFound => "No such file or directory".into(),
        PermissionDenied => "Permission denied".into(),
        AlreadyExists => "File exists".into(),
        IsADirectory => "Is a directory".into(),
        NotADirectory => "Not a directory".into(),
        DirectoryNotEmpty => "Directory not empty".into(),
        ReadOnlyFilesystem => "Read-only file system".into(),
        InvalidInput => "Invalid argument".into(),
        _ => {
            let text = e.to_string();
            match text.find(" (os error") {
                Some(i) => text[..i].to_string(),
                None => text,
            }
        }
    }
}

/// Interprets backslash escapes (`echo -e`, `printf`, `$'...'`); the flag
/// says `\c` asked to stop output.
pub fn unescape_c(s: &str) -> (String, bool) {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('a') => out.push('\x07'),
            Some('b') => out.push('\x08'),
            Some('f') => out.push('\x0c'),
            Some('v') => out.push('\x0b'),
            Some('e') | Some('E') => out.push('\x1b'),
            Some('\\') => out.push('\\'),
            Some('\'') => out.push('\''),
            Some('"') => out.push('"'),
            Some('c') => return (out, true),
            Some(d @ '0'..='7') => {
                let mut v = d.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match chars.peek().and_then(|c| c.to_digit(8)) {
                        Some(n) => {
                            v = v * 8 + n;
                            chars.next();
                        }
                        None => break,
                    }
                }
                out.push(char::from_u32(v).unwrap_or('?'));
            }
            Some('x') => {
                let mut v = 0;
                for _ in 0..2 {
                    match chars.peek().and_then(|c| c.to_digit(16)) {
                        Some(n) => {
                            v = v * 16 + n;
                            chars.next();
                        }
                        None => break,
                    }
                }
                out.push(char::from_u32(v).unwrap_or('?'));
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    (out, false)
}

/// Splits `-abc` style flags off the front of `args`; flags listed in
/// `with_value` take the next argument (or the rest of the cluster).
/// Returns (flags, operands) or an error message.
pub fn parse_flags<'a>(
    args: &'a [String],
    known: &str,
    with_value: &str,
) -> Result<(Vec<(char, Option<String>)>, Vec<&'a String>), String> {
    let mut flags = Vec::new();
    let mut operands = Vec::new();
    let mut i = 0;
    let mut only_operands = false;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if only_operands || !a.starts_with('-') || a == "-" {
            operands.push(a);
            continue;
        }
        if a == "--" {
            only_operands = true;
            continue;
        }
        let mut chars = a[1..].char_indices();
        while let Some((pos, c)) = chars.next() {
            if with_value.contains(c) {
                let rest = &a[1 + pos + c.len_utf8()..];
                let value = if !rest.is_empty() {
                    rest.to_string()
                } else if i < args.len() {
                    i += 1;
                    args[i - 1].clone()
                } else {
                    return Err(format!("option requires an argument -- '{c}'"));
                };
                flags.push((c, Some(value)));
                break;
            } else if known.contains(c) {
                flags.push((c, None));
            } else if c.is_ascii_digit() && known.contains('#') {
                // `head -5`: a count written as a flag.
                flags.push(('#', Some(a[1..].to_string())));
                break;
            } else {
                return Err(format!("invalid option -- '{c}'"));
            }
        }
    }
    Ok((flags, operands))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_cluster_and_take_values() {
        let args: Vec<String> = ["-on", "5", "file", "-v", "--", "-x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (flags, ops) = parse_flags(&args, "ov", "n").unwrap();
        assert_eq!(flags, [('o', None), ('n', Some("5".into())), ('v', None)]);
        assert_eq!(ops, ["file", "-x"]);
        let args: Vec<String> = ["-3"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            parse_flags(&args, "#", "n").unwrap().0,
            [('#', Some("3".into()))]
        );
        assert!(parse_flags(&args, "", "").is_err());
    }

    #[test]
    fn escapes() {
        assert_eq!(unescape_c("a\\tb\\n"), ("a\tb\n".to_string(), false));
        assert_eq!(unescape_c("x\\cy"), ("x".to_string(), true));
        assert_eq!(unescape_c("\\101\\x42"), ("AB".to_string(), false));
    }
}
