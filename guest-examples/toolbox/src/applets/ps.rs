//! `ps`: the processes of the pod this toolbox sees, from the host's
//! process table (`wasmkube:host/processes`), laid out as busybox's `ps`.
//! Each process is one WebAssembly instance: a container's program or a
//! command exec'd in it; the shell's applets run inside the shell's.

use std::io::Write;

use super::Ctx;
use crate::host::{self, Process};

/// The columns `-o` knows: name, header, right-aligned, width.
const FIELDS: &[(&str, &str, bool, usize)] = &[
    ("pid", "PID", true, 5),
    ("user", "USER", false, 8),
    ("time", "TIME", true, 5),
    ("args", "COMMAND", false, 0),
    ("comm", "COMMAND", false, 8),
    ("rss", "RSS", true, 5),
    ("vsz", "VSZ", true, 5),
    ("etime", "ELAPSED", true, 7),
    ("tty", "TT", false, 6),
];

/// busybox's default: `-o pid,user,time,args`.
const DEFAULT: &str = "pid,user,time,args";

pub fn ps(ctx: &mut Ctx, args: &[String]) -> i32 {
    let mut columns: Vec<(usize, String)> = Vec::new();
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        let list = if arg == "-o" {
            match rest.next() {
                Some(list) => list.as_str(),
                None => {
                    ctx.error("ps", "option requires an argument -- 'o'");
                    return 1;
                }
            }
        } else if let Some(list) = arg.strip_prefix("-o") {
            list
        } else if arg
            .trim_start_matches('-')
            .chars()
            .all(|c| "aAefluwxT".contains(c))
        {
            // Which processes and how wide: every process this toolbox can
            // see is shown, in full, whatever is asked.
            continue;
        } else {
            ctx.error("ps", &format!("invalid option '{arg}'"));
            return 1;
        };
        match parse_columns(list) {
            Ok(more) => columns.extend(more),
            Err(bad) => {
                let known: Vec<&str> = FIELDS.iter().map(|f| f.0).collect();
                ctx.error(
                    "ps",
                    &format!(
                        "bad -o argument '{bad}', supported arguments: {}",
                        known.join(",")
                    ),
                );
                return 1;
            }
        }
    }
    if columns.is_empty() {
        columns = parse_columns(DEFAULT).unwrap_or_default();
    }
    let now = crate::time::now().0;
    let headers = columns.iter().map(|(_, header)| header.clone());
    let mut lines = vec![render(&columns, headers, true)];
    for process in host::processes() {
        let cells = columns
            .iter()
            .map(|(i, _)| value(FIELDS[*i].0, &process, now));
        lines.push(render(&columns, cells, false));
    }
    let out = ctx.out();
    for line in lines {
        let _ = writeln!(out, "{}", line.trim_end());
    }
    0
}

/// `pid,user` or `pid=ID,args`: field indices and headers given.
fn parse_columns(list: &str) -> Result<Vec<(usize, String)>, String> {
    list.split(',')
        .filter(|f| !f.is_empty())
        .map(|f| {
            let (name, header) = match f.split_once('=') {
                Some((name, header)) => (name, Some(header)),
                None => (f, None),
            };
            let i = FIELDS
                .iter()
                .position(|field| field.0 == name)
                .ok_or_else(|| name.to_string())?;
            Ok((i, header.unwrap_or(FIELDS[i].1).to_string()))
        })
        .collect()
}

/// One line: each cell padded to its column's width (values of numeric
/// columns to the right, headers always to the left, as busybox prints
/// them), then a space; the last column unpadded.
fn render(
    columns: &[(usize, String)],
    cells: impl Iterator<Item = String>,
    headers: bool,
) -> String {
    let mut line = String::new();
    for (n, (i, cell)) in columns.iter().map(|(i, _)| i).zip(cells).enumerate() {
        let (_, _, right, width) = FIELDS[*i];
        if n + 1 == columns.len() {
            line.push_str(&cell);
        } else if right && !headers {
            line.push_str(&format!("{cell:>width$} "));
        } else {
            line.push_str(&format!("{cell:<width$} "));
        }
    }
    line
}

fn value(field: &str, p: &Process, now: i64) -> String {
    match field {
        "pid" => p.pid.to_string(),
        "user" => match p.uid {
            0 => "root".to_string(),
            uid => uid.to_string(),
        },
        "time" => {
            let seconds = p.cpu_millis / 1000;
            format!("{}:{:02}", seconds / 60, seconds % 60)
        }
        "args" if p.argv.is_empty() => format!("[{}]", p.container),
        "args" => p.argv.join(" "),
        "comm" => p
            .argv
            .first()
            .map(|a| super::basename(a).to_string())
            .unwrap_or_else(|| p.container.clone()),
        "rss" | "vsz" => kilobytes(p.memory_bytes),
        "etime" => {
            let s = u64::try_from(now)
                .unwrap_or_default()
                .saturating_sub(p.started);
            match s / 3600 {
                0 => format!("{:02}:{:02}", s / 60, s % 60),
                h => format!("{h:02}:{:02}:{:02}", s / 60 % 60, s % 60),
            }
        }
        "tty" => match p.terminal {
            true => "pts/0".to_string(),
            false => "?".to_string(),
        },
        _ => String::new(),
    }
}

/// busybox's size column: kilobytes, `m` and `g` suffixes once wide.
fn kilobytes(bytes: u64) -> String {
    let k = bytes / 1024;
    match k {
        0..=99_999 => k.to_string(),
        100_000..=99_999_999 => format!("{}m", k / 1024),
        _ => format!("{}g", k / 1024 / 1024),
    }
}

/// `pgrep [-l] [-f] [-x] PATTERN`: the pids of the processes whose name
/// (with `-f` its whole command line) matches the regular expression
/// (with `-x` exactly); `-l` adds the name. Status 1 when none does.
pub fn pgrep(ctx: &mut Ctx, args: &[String]) -> i32 {
    let (mut list_name, mut full, mut exact) = (false, false, false);
    let mut pattern = None;
    for arg in &args[1..] {
        match arg.strip_prefix('-').filter(|f| !f.is_empty()) {
            Some(flags) => {
                for flag in flags.chars() {
                    match flag {
                        'l' => list_name = true,
                        'f' => full = true,
                        'x' => exact = true,
                        other => {
                            ctx.error("pgrep", &format!("invalid option -- '{other}'"));
                            return 2;
                        }
                    }
                }
            }
            None => pattern = Some(arg.as_str()),
        }
    }
    let Some(pattern) = pattern else {
        ctx.error("pgrep", "no matching criteria specified");
        return 2;
    };
    let anchored = match exact {
        true => format!("^(?:{pattern})$"),
        false => pattern.to_string(),
    };
    let regex = match regex_lite::Regex::new(&anchored) {
        Ok(regex) => regex,
        Err(e) => {
            ctx.error("pgrep", &format!("bad pattern '{pattern}': {e}"));
            return 2;
        }
    };
    let mut found = false;
    for process in host::processes() {
        let name = value("comm", &process, 0);
        let subject = if full {
            value("args", &process, 0)
        } else {
            name.clone()
        };
        if regex.is_match(&subject) {
            found = true;
            let _ = match list_name {
                true => writeln!(ctx.out(), "{} {name}", process.pid),
                false => writeln!(ctx.out(), "{}", process.pid),
            };
        }
    }
    i32::from(!found)
}

/// `pidof NAME...`: the pids of the processes so named, on one line,
/// newest first. Status 1 when there are none.
pub fn pidof(ctx: &mut Ctx, args: &[String]) -> i32 {
    let processes = host::processes();
    let pids: Vec<String> = processes
        .iter()
        .rev()
        .filter(|p| args[1..].iter().any(|name| value("comm", p, 0) == *name))
        .map(|p| p.pid.to_string())
        .collect();
    if pids.is_empty() {
        return 1;
    }
    let _ = writeln!(ctx.out(), "{}", pids.join(" "));
    0
}
