//! Applets that read and reshape text: cat, head, tail, wc, shuf, sort,
//! uniq, tee, cut, tr.

use std::io::{Read, Write};

use super::{io_message, parse_flags, Ctx};

/// Parses flags or reports a usage error (status 1... or 2 for grep).
macro_rules! flags {
    ($ctx:expr, $name:expr, $args:expr, $known:expr, $with_value:expr, $status:expr) => {
        match parse_flags(&$args[1..], $known, $with_value) {
            Ok(parsed) => parsed,
            Err(msg) => {
                $ctx.error($name, &msg);
                return $status;
            }
        }
    };
}

pub(super) fn operands_or_stdin(ops: Vec<&String>) -> Vec<String> {
    if ops.is_empty() {
        vec!["-".to_string()]
    } else {
        ops.into_iter().cloned().collect()
    }
}

/// Runs `each` on the contents of every operand, reporting unreadable
/// ones; returns 1 if any failed.
fn for_each_input(
    ctx: &mut Ctx,
    name: &str,
    ops: &[String],
    mut each: impl FnMut(&mut Ctx, &str, Vec<u8>),
) -> i32 {
    let mut status = 0;
    for path in ops {
        match ctx.read_all(path) {
            Ok(data) => each(ctx, path, data),
            Err(e) => {
                ctx.error(name, &format!("{path}: {}", io_message(&e)));
                status = 1;
            }
        }
    }
    status
}

/// Copies stdin to stdout chunk by chunk until it ends.
fn copy_stream(ctx: &mut Ctx, name: &str) -> i32 {
    let mut input = ctx.io.stdin.clone();
    let mut buf = [0u8; 8192];
    loop {
        match input.read(&mut buf) {
            Ok(0) => return 0,
            Ok(n) => {
                let out = ctx.out();
                if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                    return 1;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // Ctrl-C: stopped, as SIGINT stops cat, without a word.
            Err(_) if crate::terminal::interrupted() => return 130,
            Err(e) => {
                ctx.error(name, &io_message(&e));
                return 1;
            }
        }
    }
}

fn lines(data: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if data.ends_with(b"\n") || data.is_empty() {
        out.pop();
    }
    out
}

pub fn cat(ctx: &mut Ctx, args: &[String]) -> i32 {
    let (flags, ops) = flags!(ctx, "cat", args, "nu", "", 1);
    let number = flags.iter().any(|(c, _)| *c == 'n');
    let ops = operands_or_stdin(ops);
    if !number && ops.iter().all(|op| op == "-") {
        // Input as it comes, as a person typing or a pipe feeding it
        // expects to see it.
        return copy_stream(ctx, "cat");
    }
    let mut n = 0;
    for_each_input(ctx, "cat", &ops, |ctx, _, data| {
        if number {
            for line in lines(&data) {
                n += 1;
                let _ = write!(ctx.out(), "{n:>6}\t");
                let _ = ctx.out().write_all(line);
                let _ = ctx.out().write_all(b"\n");
            }
        } else {
            let _ = ctx.out().write_all(&data);
        }
    })
}

fn count(ctx: &mut Ctx, name: &str, value: &str) -> Option<(usize, bool)> {
    let (from_start, digits) = match value.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, value.strip_prefix('-').unwrap_or(value)),
    };
    match digits.parse() {
        Ok(n) => Some((n, from_start)),
        Err(_) => {
            ctx.error(name, &format!("invalid number '{value}'"));
            None
        }
    }
}

pub fn head(ctx: &mut Ctx, args: &[String]) -> i32 {
    let (flags, ops) = flags!(ctx, "head", args, "#qv", "nc", 1);
    let mut lines_wanted = 10;
    let mut bytes_wanted = None;
    for (c, v) in &flags {
        let target = match c {
            'n' | '#' => &mut lines_wanted,
            'c' => bytes_wanted.insert(0),
            _ => continue,
        };
        match count(ctx, "head", v.as_deref().unwrap_or("")) {
            Some((n, _)) => *target = n,
            None => return 1,
        }
    }
    let ops = operands_or_stdin(ops);
    let headers = ops.len() > 1;
    let mut first = true;
    for_each_input(ctx, "head", &ops, |ctx, path, data| {
        if headers {
            let _ = writeln!(
                ctx.out(),
                "{}==> {} <==",
                if first { "" } else { "\n" },
                if path == "-" { "standard input" } else { path }
            );
            first = false;
        }
        if let Some(n) = bytes_wanted {
            let _ = ctx.out().write_all(&data[..n.min(data.len())]);
            return;
        }
        let mut taken = 0;
        let mut end = 0;
        for (i, b) in data.iter().enumerate() {
            if taken == lines_wanted {
                break;
            }
            end = i + 1;
            if *b == b'\n' {
                taken += 1;
            }
        }
        if lines_wanted == 0 {
            end = 0;
        }
        let _ = ctx.out().write_all(&data[..end]);
    })
}

pub fn tail(ctx: &mut Ctx, args: &[String]) -> i32 {
    let (flags, ops) = flags!(ctx, "tail", args, "#fFqv", "nc", 1);
    let mut wanted = (10, false);
    let mut bytes = None;
    let mut follow = false;
    for (c, v) in &flags {
        match c {
            'f' | 'F' => follow = true,
            'n' | '#' => match count(ctx, "tail", v.as_deref().unwrap_or("")) {
                Some(n) => wanted = n,
                None => return 1,
            },
            'c' => match count(ctx, "tail", v.as_deref().unwrap_or("")) {
                Some(n) => bytes = Some(n),
                None => return 1,
            },
            _ => {}
        }
    }
    let ops = operands_or_stdin(ops);
    let status = for_each_input(ctx, "tail", &ops, |ctx, _, data| {
        let start = match bytes {
            Some((n, true)) => n.saturating_sub(1).min(data.len()),
            Some((n, false)) => data.len().saturating_sub(n),
            None => {
                let all = lines(&data);
                let (n, from_start) = wanted;
                let skip = if from_start {
                    n.saturating_sub(1)
                } else {
                    all.len().saturating_sub(n)
                };
                all[..skip.min(all.len())]
                    .iter()
                    .map(|l| l.len() + 1)
                    .sum::<usize>()
                    .min(data.len())
            }
        };
        let _ = ctx.out().write_all(&data[start..]);
    });
    if follow && status == 0 && ops.len() == 1 && ops[0] != "-" {
        return follow_file(ctx, &ops[0]);
    }
    status
}

/// `tail -f`: print what is appended to the file, checking once a second,
/// until the container is stopped.
fn follow_file(ctx: &mut Ctx, path: &str) -> i32 {
    let mut offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    loop {
        let _ = ctx.out().flush();
        std::thread::sleep(std::time::Duration::from_secs(1));
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        if meta.len() < offset {
            offset = 0; // truncated: start over, as tail does
        }
        if meta.len() == offset {
            continue;
        }
        if let Ok(mut f) = std::fs::File::open(path) {
            use std::io::Seek;
            let _ = f.seek(std::io::SeekFrom::Start(offset));
            let mut buf = Vec::new();
            if f.read_to_end(&mut buf).is_ok() {
                offset += buf.len() as u64;
                let _ = ctx.out().write_all(&buf);
            }
        }
    }
}

pub fn wc(ctx: &mut Ctx, args: &[String]) -> i32 {
    let (flags, ops) = flags!(ctx, "wc", args, "lwcm", "", 1);
    let mut which: Vec<char> = flags
        .iter()
        .map(|(c, _)| if *c == 'm' { 'c' } else { *c })
        .collect();
    if which.is_empty() {
        which = vec!['l', 'w', 'c'];
    }
    let from_stdin = ops.is_empty();
    let ops = operands_or_stdin(ops);
    let mut rows = Vec::new();
    let mut total = [0usize; 3];
    let status = for_each_input(ctx, "wc", &ops, |_, path, data| {
        let counts = [
            data.iter().filter(|&&b| b == b'\n').count(),
            String::from_utf8_lossy(&data).split_whitespace().count(),
            data.len(),
        ];
        for i in 0..3 {
            total[i] += counts[i];
        }
        rows.push((counts, path.to_string()));
    });
    if rows.len() > 1 {
        rows.push((total, "total".into()));
    }
    for (counts, path) in rows {
        let cols: Vec<String> = ['l', 'w', 'c']
            .iter()
            .enumerate()
            .filter(|(_, c)| which.contains(c))
            .map(|(i, _)| counts[i].to_string())
            .collect();
        let line = if from_stdin && cols.len() == 1 {
            cols[0].clone()
        } else {
            let padded: Vec<String> = cols.iter().map(|c| format!("{c:>7}")).collect();
            if from_stdin {
                padded.join(" ")
            } else {
                format!("{} {path}", padded.join(" "))
            }
        };
        let _ = writeln!(ctx.out(), "{line}");
    }
    status
}

/// A random number from the host (`wasi:random`).
fn random_below(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    // Rejection sampling keeps the distribution uniform.
    let zone = u64::MAX - u64::MAX % n;
    loop {
        let r = wasip2::random::random::get_random_u64();
        if r < zone {
            return r % n;
        }
    }
}

pub fn shuf(ctx: &mut Ctx, args: &[String]) -> i32 {
    let (flags, ops) = flags!(ctx, "shuf", args, "er", "in", 1);
    let mut items: Vec<String>;
    let mut limit = None;
    let mut range = None;
    for (c, v) in &flags {
        match (c, v) {
            ('n', Some(v)) => match v.parse::<usize>() {
                Ok(n) => limit = Some(n),
                Err(_) => {
                    ctx.error("shuf", &format!("invalid line count: '{v}'"));
                    return 1;
                }
            },
            ('i', Some(v)) => {
                let parsed = v
                    .split_once('-')
                    .and_then(|(a, b)| Some((a.parse::<i64>().ok()?, b.parse::<i64>().ok()?)));
                match parsed {
                    Some((lo, hi)) if lo <= hi + 1 => range = Some((lo, hi)),
                    _ => {
                        ctx.error("shuf", &format!("invalid input range: '{v}'"));
                        return 1;
                    }
                }
            }
            _ => {}
        }
    }
    if let Some((lo, hi)) = range {
        items = (lo..=hi).map(|n| n.to_string()).collect();
    } else if flags.iter().any(|(c, _)| *c == 'e') {
        items = ops.into_iter().cloned().collect();
    } else {
        let path = ops.first().map(|s| s.as_str()).unwrap_or("-");
        match ctx.read_all(path) {
            Ok(data) => {
                items = String::from_utf8_lossy(&data)
                    .lines()
                    .map(str::to_string)
                    .collect()
            }
            Err(e) => {
                ctx.error("shuf", &format!("{path}: {}", io_message(&e)));
                return 1;
            }
        }
    }
    // Fisher-Yates.
    for i in (1..items.len()).rev() {
        let j = random_below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
    for item in items.iter().take(limit.unwrap_or(usize::MAX)) {
        let _ = writeln!(ctx.out(), "{item}");
    }
    0
}

pub fn sort(ctx: &mut Ctx, args: &[String]) -> i32 {
    let (flags, ops) = flags!(ctx, "sort", args, "nruf", "", 1);
    let has = |c: char| flags.iter().any(|(f, _)| *f == c);
    let mut all = Vec::new();
    let status = for_each_input(ctx, "sort", &operands_or_stdin(ops), |_, _, data| {
        all.extend(String::from_utf8_lossy(&data).lines().map(str::to_string));
    });
    let key = |s: &str| -> f64 {
        let t = s.trim_start();
        let end = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .unwrap_or(t.len());
        t[..end].parse().unwrap_or(0.0)
    };
    if has('n') {
        all.sort_by(|a, b| {
            key(a)
                .partial_cmp(&key(b))
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.cmp(b))
        });
    } else if has('f') {
        all.sort_by_key(|s| s.to_lowercase());
    } else {
        all.sort();
    }
    if has('r') {
        all.reverse();
    }
    if has('u') {
        all.dedup();
    }
    for line in all {
        let _ = writeln!(ctx.out(), "{line}");
    }
    status
}

pub fn uniq(ctx: &mut Ctx, args: &[String]) -> i32 {
    let (flags, ops) = flags!(ctx, "uniq", args, "cdu", "", 1);
    let has = |c: char| flags.iter().any(|(f, _)| *f == c);
    let path = ops.first().map(|s| s.as_str()).unwrap_or("-").to_string();
    let data = match ctx.read_all(&path) {
        Ok(d) => d,
        Err(e) => {
            ctx.error("uniq", &format!("{path}: {}", io_message(&e)));
            return 1;
        }
    };
    let text = String::from_utf8_lossy(&data);
    let mut groups: Vec<(usize, &str)> = Vec::new();
    for line in text.lines() {
        match groups.last_mut() {
            Some((n, last)) if *last == line => *n += 1,
            _ => groups.push((1, line)),
        }
    }
    for (n, line) in groups {
        if (has('d') && n < 2) || (has('u') && n > 1) {
            continue;
        }
        let _ = if has('c') {
            writeln!(ctx.out(), "{n:>7} {line}")
        } else {
            writeln!(ctx.out(), "{line}")
        };
    }
    0
}

pub fn tee(ctx: &mut Ctx, args: &[String]) -> i32 {
    let (flags, ops) = flags!(ctx, "tee", args, "ai", "", 1);
    let append = flags.iter().any(|(c, _)| *c == 'a');
    let mut data = Vec::new();
    let _ = ctx.io.stdin.read_to_end(&mut data);
    let _ = ctx.out().write_all(&data);
    let mut status = 0;
    for path in ops {
        let file = if append {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
        } else {
            std::fs::File::create(path)
        };
        if let Err(e) = file.and_then(|mut f| f.write_all(&data)) {
            ctx.error("tee", &format!("{path}: {}", io_message(&e)));
            status = 1;
        }
    }
    status
}

fn parse_list(spec: &str) -> Option<Vec<(usize, usize)>> {
    spec.split(',')
        .map(|part| {
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (a, b),
                None => (part, part),
            };
            let a = if a.is_empty() { 1 } else { a.parse().ok()? };
            let b = if b.is_empty() {
                usize::MAX
            } else {
                b.parse().ok()?
            };
            (a >= 1 && a <= b).then_some((a, b))
        })
        .collect()
}

pub fn cut(ctx: &mut Ctx, args: &[String]) -> i32 {
    let (flags, ops) = flags!(ctx, "cut", args, "s", "dfcb", 1);
    let value = |c: char| {
        flags
            .iter()
            .find(|(f, _)| *f == c)
            .and_then(|(_, v)| v.clone())
    };
    let delim = value('d').and_then(|d| d.chars().next()).unwrap_or('\t');
    let (spec, by_field) = match (value('f'), value('c').or(value('b'))) {
        (Some(f), _) => (f, true),
        (None, Some(c)) => (c, false),
        (None, None) => {
            ctx.error(
                "cut",
                "you must specify a list of bytes, characters, or fields",
            );
            return 1;
        }
    };
    let Some(ranges) = parse_list(&spec) else {
        ctx.error("cut", &format!("invalid list: {spec}"));
        return 1;
    };
    let keep = |i: usize| ranges.iter().any(|&(a, b)| i >= a && i <= b);
    let only_delimited = flags.iter().any(|(c, _)| *c == 's');
    for_each_input(ctx, "cut", &operands_or_stdin(ops), |ctx, _, data| {
        for line in String::from_utf8_lossy(&data).lines() {
            let out: String = if by_field {
                if !line.contains(delim) {
                    if only_delimited {
                        continue;
                    }
                    line.to_string()
                } else {
                    let d = delim.to_string();
                    line.split(delim)
                        .enumerate()
                        .filter(|(i, _)| keep(i + 1))
                        .map(|(_, f)| f)
                        .collect::<Vec<_>>()
                        .join(&d)
                }
            } else {
                line.chars()
                    .enumerate()
                    .filter(|(i, _)| keep(i + 1))
                    .map(|(_, c)| c)
                    .collect()
            };
            let _ = writeln!(ctx.out(), "{out}");
        }
    })
}

fn expand_set(set: &str) -> Vec<char> {
    let chars: Vec<char> = super::unescape_c(set).0.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if i + 2 < chars.len() && chars[i + 1] == '-' {
            let (a, b) = (chars[i] as u32, chars[i + 2] as u32);
            out.extend((a..=b).filter_map(char::from_u32));
            i += 3;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

pub fn tr(ctx: &mut Ctx, args: &[String]) -> i32 {
    let (flags, ops) = flags!(ctx, "tr", args, "ds", "", 1);
    let delete = flags.iter().any(|(c, _)| *c == 'd');
    let squeeze = flags.iter().any(|(c, _)| *c == 's');
    let Some(set1) = ops.first().map(|s| expand_set(s)) else {
        ctx.error("tr", "missing operand");
        return 1;
    };
    let set2 = ops.get(1).map(|s| expand_set(s)).unwrap_or_default();
    if !delete && !squeeze && set2.is_empty() {
        ctx.error("tr", "missing operand after the first set");
        return 1;
    }
    let mut data = Vec::new();
    let _ = ctx.io.stdin.read_to_end(&mut data);
    let mut out = String::new();
    let mut last: Option<char> = None;
    for c in String::from_utf8_lossy(&data).chars() {
        let mapped = match set1.iter().position(|&s| s == c) {
            Some(_) if delete => continue,
            Some(i) if !set2.is_empty() => set2[i.min(set2.len() - 1)],
            _ => c,
        };
        let squeeze_set = if set2.is_empty() { &set1 } else { &set2 };
        if squeeze && last == Some(mapped) && squeeze_set.contains(&mapped) {
            continue;
        }
        last = Some(mapped);
        out.push(mapped);
    }
    let _ = ctx.out().write_all(out.as_bytes());
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_lists() {
        assert_eq!(
            parse_list("1,3-4,6-").unwrap(),
            [(1, 1), (3, 4), (6, usize::MAX)]
        );
        assert!(parse_list("0").is_none());
    }
}
