//! Small applets: echo, printf, date, sleep, env, hostname, true, false,
//! seq, basename, dirname, uname, test/[.

use brush_parser::ast::{BinaryPredicate, TestExpr, UnaryPredicate};
use std::io::Write;
use std::time::Duration;

use super::{unescape_c, Ctx};

pub fn true_(_: &mut Ctx, _: &[String]) -> i32 {
    0
}

pub fn false_(_: &mut Ctx, _: &[String]) -> i32 {
    1
}

pub fn echo(ctx: &mut Ctx, args: &[String]) -> i32 {
    let mut newline = true;
    let mut escapes = false;
    let mut i = 1;
    while i < args.len() {
        let a = &args[i];
        if a.len() < 2
            || !a.starts_with('-')
            || !a[1..].chars().all(|c| matches!(c, 'n' | 'e' | 'E'))
        {
            break;
        }
        for c in a[1..].chars() {
            match c {
                'n' => newline = false,
                'e' => escapes = true,
                _ => escapes = false,
            }
        }
        i += 1;
    }
    let mut text = args[i..].join(" ");
    if escapes {
        let (t, stop) = unescape_c(&text);
        text = t;
        if stop {
            newline = false;
        }
    }
    if newline {
        text.push('\n');
    }
    let _ = ctx.out().write_all(text.as_bytes());
    0
}

/// One `%` conversion of printf, applied to its argument.
fn convert(spec: &str, conv: char, arg: Option<&str>) -> Result<String, String> {
    let arg = arg.unwrap_or("");
    let number = |s: &str| -> Result<i64, String> {
        if s.is_empty() {
            return Ok(0);
        }
        if let Some(c) = s.strip_prefix('\'').or_else(|| s.strip_prefix('"')) {
            return Ok(c.chars().next().map(|c| c as i64).unwrap_or(0));
        }
        let (neg, digits) = match s.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let v = if let Some(hex) = digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"))
        {
            i64::from_str_radix(hex, 16)
        } else {
            digits.parse()
        }
        .map_err(|_| format!("invalid number '{s}'"))?;
        Ok(if neg { -v } else { v })
    };
    let left = spec.contains('-');
    let zero = spec.starts_with('0')
        || spec.contains("0")
            && !spec.contains('.')
            && spec.trim_start_matches('-').starts_with('0');
    let (width, precision) = {
        let s = spec.trim_start_matches(['-', '+', ' ', '#', '0']);
        match s.split_once('.') {
            Some((w, p)) => (w.parse().unwrap_or(0), Some(p.parse().unwrap_or(0))),
            None => (s.parse().unwrap_or(0), None),
        }
    };
    let body = match conv {
        's' => match precision {
            Some(p) => arg.chars().take(p).collect(),
            None => arg.to_string(),
        },
        'b' => unescape_c(arg).0,
        'c' => arg.chars().next().map(String::from).unwrap_or_default(),
        'd' | 'i' => {
            let v = number(arg)?;
            if spec.contains('+') && v >= 0 {
                format!("+{v}")
            } else {
                v.to_string()
            }
        }
        'u' => (number(arg)? as u64).to_string(),
        'x' => format!("{:x}", number(arg)?),
        'X' => format!("{:X}", number(arg)?),
        'o' => format!("{:o}", number(arg)?),
        'f' | 'e' | 'g' => {
            let v: f64 = if arg.is_empty() {
                0.0
            } else {
                arg.parse().map_err(|_| format!("invalid number '{arg}'"))?
            };
            match conv {
                'e' => format!("{:.*e}", precision.unwrap_or(6), v),
                'g' => format!("{v}"),
                _ => format!("{:.*}", precision.unwrap_or(6), v),
            }
        }
        other => return Err(format!("%{other}: invalid directive")),
    };
    let len = body.chars().count();
    if len >= width {
        return Ok(body);
    }
    let pad = width - len;
    Ok(if left {
        format!("{body}{}", " ".repeat(pad))
    } else if zero && conv != 's' {
        let (sign, digits) = if body.starts_with(['-', '+']) {
            body.split_at(1)
        } else {
            ("", body.as_str())
        };
        format!("{sign}{}{digits}", "0".repeat(pad))
    } else {
        format!("{}{body}", " ".repeat(pad))
    })
}

pub fn printf(ctx: &mut Ctx, args: &[String]) -> i32 {
    let Some(format) = args.get(1) else {
        ctx.error("printf", "usage: printf FORMAT [ARGUMENT...]");
        return 1;
    };
    let mut rest = args[2..].iter().map(String::as_str);
    let mut out = String::new();
    let mut status = 0;
    loop {
        let mut used = false;
        let chars: Vec<char> = format.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\\' {
                let mut j = i + 1;
                while j < chars.len() && j < i + 4 && chars[j].is_ascii_digit() {
                    j += 1;
                }
                let end = if j == i + 1 {
                    (i + 2).min(chars.len())
                } else {
                    j
                };
                let (t, stop) = unescape_c(&chars[i..end].iter().collect::<String>());
                out.push_str(&t);
                if stop {
                    let _ = ctx.out().write_all(out.as_bytes());
                    return status;
                }
                i = end;
                continue;
            }
            if c != '%' {
                out.push(c);
                i += 1;
                continue;
            }
            if chars.get(i + 1) == Some(&'%') {
                out.push('%');
                i += 2;
                continue;
            }
            let mut j = i + 1;
            while j < chars.len() && "-+ #0123456789.".contains(chars[j]) {
                j += 1;
            }
            let Some(&conv) = chars.get(j) else {
                out.push_str(&chars[i..].iter().collect::<String>());
                break;
            };
            let spec: String = chars[i + 1..j].iter().collect();
            let arg = rest.next();
            used |= arg.is_some();
            match convert(&spec, conv, arg) {
                Ok(s) => out.push_str(&s),
                Err(e) => {
                    ctx.error("printf", &e);
                    status = 1;
                }
            }
            i = j + 1;
        }
        // The format is reused while arguments remain, as POSIX says.
        if !used || rest.clone().next().is_none() {
            break;
        }
    }
    let _ = ctx.out().write_all(out.as_bytes());
    status
}

pub fn date(ctx: &mut Ctx, args: &[String]) -> i32 {
    let mut format = "%a %b %e %H:%M:%S %Z %Y".to_string();
    let mut when = crate::time::now();
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-u" | "--utc" => {}
            "-R" => format = "%a, %d %b %Y %H:%M:%S %z".into(),
            "-I" => format = "%Y-%m-%d".into(),
            "-d" => match it.next().map(|v| v.trim_start_matches('@').parse::<i64>()) {
                Some(Ok(secs)) => when = (secs, 0),
                _ => {
                    ctx.error("date", "only -d @SECONDS is supported");
                    return 1;
                }
            },
            f if f.starts_with('+') => format = f[1..].to_string(),
            other => {
                ctx.error("date", &format!("invalid argument '{other}'"));
                return 1;
            }
        }
    }
    let t = crate::time::civil(when.0, when.1);
    let _ = writeln!(ctx.out(), "{}", crate::time::format(&t, &format));
    0
}

fn parse_duration(s: &str) -> Option<Duration> {
    if s == "inf" || s == "infinity" {
        return Some(Duration::MAX);
    }
    let (num, mult) = match s.char_indices().last()? {
        (i, 's') => (&s[..i], 1.0),
        (i, 'm') => (&s[..i], 60.0),
        (i, 'h') => (&s[..i], 3600.0),
        (i, 'd') => (&s[..i], 86_400.0),
        _ => (s, 1.0),
    };
    let v: f64 = num.parse().ok()?;
    (v >= 0.0 && v.is_finite()).then(|| Duration::from_secs_f64(v * mult))
}

pub fn sleep(ctx: &mut Ctx, args: &[String]) -> i32 {
    if args.len() < 2 {
        ctx.error("sleep", "missing operand");
        return 1;
    }
    let mut total = Duration::ZERO;
    for a in &args[1..] {
        match parse_duration(a) {
            Some(d) => total = total.saturating_add(d),
            None => {
                ctx.error("sleep", &format!("invalid number '{a}'"));
                return 1;
            }
        }
    }
    let _ = ctx.out().flush();
    // Sleep in slices so "infinity" does not overflow the clock, and on a
    // terminal in short ones, so that Ctrl-C ends it.
    let longest = if crate::terminal::is_terminal() {
        Duration::from_millis(50)
    } else {
        Duration::from_secs(86_400)
    };
    while !total.is_zero() {
        if crate::terminal::interrupted() {
            return 130;
        }
        let slice = total.min(longest);
        std::thread::sleep(slice);
        total -= slice;
    }
    0
}

/// `stty size` (rows and columns) and `stty -a`/`stty`: the terminal as the
/// host keeps it. Settings cannot be changed: the host owns the line
/// discipline.
pub fn stty(ctx: &mut Ctx, args: &[String]) -> i32 {
    let Some((columns, rows)) = crate::terminal::size() else {
        ctx.error("stty", "standard input: Not a tty");
        return 1;
    };
    match args.get(1).map(String::as_str) {
        Some("size") => {
            let _ = writeln!(ctx.out(), "{rows} {columns}");
            0
        }
        None | Some("-a") => {
            let _ = writeln!(
                ctx.out(),
                "speed 38400 baud; rows {rows}; columns {columns}; line = 0;"
            );
            0
        }
        Some(other) => {
            ctx.error(
                "stty",
                &format!("invalid argument '{other}': the terminal's settings are the host's"),
            );
            1
        }
    }
}

pub fn env(ctx: &mut Ctx, args: &[String]) -> i32 {
    let mut env = ctx.env.clone();
    let mut i = 1;
    while i < args.len() {
        let a = &args[i];
        if a == "-i" || a == "-" {
            env.clear();
        } else if a == "-u" {
            i += 1;
            if let Some(name) = args.get(i) {
                env.retain(|(k, _)| k != name);
            }
        } else if let Some((k, v)) = a.split_once('=') {
            env.retain(|(key, _)| key != k);
            env.push((k.to_string(), v.to_string()));
        } else {
            break;
        }
        i += 1;
    }
    if i < args.len() {
        let mut sub = Ctx {
            io: ctx.io.clone(),
            env,
        };
        let name = super::basename(&args[i]).to_string();
        return match super::run(&name, &args[i..], &mut sub) {
            Some(status) => status,
            None => {
                ctx.error("env", &format!("'{}': No such file or directory", args[i]));
                127
            }
        };
    }
    for (k, v) in env {
        let _ = writeln!(ctx.out(), "{k}={v}");
    }
    0
}

pub fn hostname(ctx: &mut Ctx, _: &[String]) -> i32 {
    match ctx.env_var("HOSTNAME").map(str::to_string) {
        Some(name) => {
            let _ = writeln!(ctx.out(), "{name}");
            0
        }
        None => {
            ctx.error(
                "hostname",
                "HOSTNAME is not set; the runtime sets it to the pod's name",
            );
            1
        }
    }
}

pub fn uname(ctx: &mut Ctx, args: &[String]) -> i32 {
    let node = ctx.env_var("HOSTNAME").unwrap_or("localhost").to_string();
    let fields = [
        ("s", "WASI".to_string()),
        ("n", node),
        ("r", "0.2".into()),
        ("m", "wasm32".into()),
    ];
    let all = args.iter().any(|a| a == "-a");
    let wanted: Vec<&str> = fields
        .iter()
        .filter(|(f, _)| all || args.iter().any(|a| a.starts_with('-') && a.contains(f)))
        .map(|(_, v)| v.as_str())
        .collect();
    let line = if wanted.is_empty() {
        "WASI".to_string()
    } else {
        wanted.join(" ")
    };
    let _ = writeln!(ctx.out(), "{line}");
    0
}

pub fn seq(ctx: &mut Ctx, args: &[String]) -> i32 {
    let nums: Result<Vec<i64>, _> = args[1..].iter().map(|a| a.parse::<i64>()).collect();
    let (first, step, last) = match nums.as_deref() {
        Ok([l]) => (1, 1, *l),
        Ok([f, l]) => (*f, 1, *l),
        Ok([f, s, l]) if *s != 0 => (*f, *s, *l),
        _ => {
            ctx.error("seq", "usage: seq [FIRST [INCREMENT]] LAST (integers)");
            return 1;
        }
    };
    let mut n = first;
    while (step > 0 && n <= last) || (step < 0 && n >= last) {
        let _ = writeln!(ctx.out(), "{n}");
        n += step;
    }
    0
}

pub fn basename(ctx: &mut Ctx, args: &[String]) -> i32 {
    let Some(path) = args.get(1) else {
        ctx.error("basename", "missing operand");
        return 1;
    };
    let mut name = if path.chars().all(|c| c == '/') && !path.is_empty() {
        "/"
    } else {
        super::basename(path)
    }
    .to_string();
    if let Some(suffix) = args.get(2) {
        if name != *suffix {
            if let Some(stripped) = name.strip_suffix(suffix.as_str()) {
                name = stripped.to_string();
            }
        }
    }
    let _ = writeln!(ctx.out(), "{name}");
    0
}

pub fn dirname(ctx: &mut Ctx, args: &[String]) -> i32 {
    let Some(path) = args.get(1) else {
        ctx.error("dirname", "missing operand");
        return 1;
    };
    let trimmed = path.trim_end_matches('/');
    let dir = match trimmed.rfind('/') {
        Some(0) => "/",
        Some(i) => trimmed[..i].trim_end_matches('/'),
        None if path.starts_with('/') => "/",
        None => ".",
    };
    let _ = writeln!(ctx.out(), "{}", if dir.is_empty() { "/" } else { dir });
    0
}

/// `test` and `[`: evaluated over brush-parser's test expression tree.
pub fn test(ctx: &mut Ctx, args: &[String]) -> i32 {
    let mut operands: Vec<&str> = args[1..].iter().map(String::as_str).collect();
    if super::basename(&args[0]) == "[" {
        if operands.last() != Some(&"]") {
            ctx.error("[", "missing ]");
            return 2;
        }
        operands.pop();
    }
    match brush_parser::test_command::parse(&operands) {
        Ok(expr) => match eval_test(&expr) {
            Ok(true) => 0,
            Ok(false) => 1,
            Err(e) => {
                ctx.error("test", &e);
                2
            }
        },
        Err(e) => {
            ctx.error("test", &format!("syntax error: {e}"));
            2
        }
    }
}

fn eval_test(expr: &TestExpr) -> Result<bool, String> {
    use std::fs;
    Ok(match expr {
        TestExpr::False => false,
        TestExpr::Literal(s) => !s.is_empty(),
        TestExpr::And(a, b) => eval_test(a)? && eval_test(b)?,
        TestExpr::Or(a, b) => eval_test(a)? || eval_test(b)?,
        TestExpr::Not(e) => !eval_test(e)?,
        TestExpr::Parenthesized(e) => eval_test(e)?,
        TestExpr::UnaryTest(pred, operand) => {
            let meta = || fs::metadata(operand);
            match pred {
                UnaryPredicate::StringHasZeroLength => operand.is_empty(),
                UnaryPredicate::StringHasNonZeroLength => !operand.is_empty(),
                UnaryPredicate::FileExists => meta().is_ok(),
                UnaryPredicate::FileExistsAndIsDir => meta().is_ok_and(|m| m.is_dir()),
                UnaryPredicate::FileExistsAndIsRegularFile => meta().is_ok_and(|m| m.is_file()),
                UnaryPredicate::FileExistsAndIsSymlink => {
                    fs::symlink_metadata(operand).is_ok_and(|m| m.file_type().is_symlink())
                }
                UnaryPredicate::FileExistsAndIsNotZeroLength => meta().is_ok_and(|m| m.len() > 0),
                UnaryPredicate::FileExistsAndIsReadable => {
                    fs::File::open(operand).is_ok() || meta().is_ok_and(|m| m.is_dir())
                }
                UnaryPredicate::FileExistsAndIsWritable => {
                    meta().is_ok_and(|m| m.is_dir())
                        || fs::OpenOptions::new().append(true).open(operand).is_ok()
                }
                // WASI has no execute permission; an existing file is "runnable"
                // only in the sense that the runtime could be asked to run it.
                UnaryPredicate::FileExistsAndIsExecutable => meta().is_ok_and(|m| m.is_dir()),
                UnaryPredicate::FdIsOpenTerminal => false,
                other => return Err(format!("unsupported test {other:?}")),
            }
        }
        TestExpr::BinaryTest(pred, a, b) => {
            let int = |s: &str| {
                s.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("{s}: integer expression expected"))
            };
            match pred {
                BinaryPredicate::StringExactlyMatchesString
                | BinaryPredicate::StringExactlyMatchesPattern => a == b,
                BinaryPredicate::StringDoesNotExactlyMatchString
                | BinaryPredicate::StringDoesNotExactlyMatchPattern => a != b,
                BinaryPredicate::LeftSortsBeforeRight => a < b,
                BinaryPredicate::LeftSortsAfterRight => a > b,
                BinaryPredicate::ArithmeticEqualTo => int(a)? == int(b)?,
                BinaryPredicate::ArithmeticNotEqualTo => int(a)? != int(b)?,
                BinaryPredicate::ArithmeticLessThan => int(a)? < int(b)?,
                BinaryPredicate::ArithmeticLessThanOrEqualTo => int(a)? <= int(b)?,
                BinaryPredicate::ArithmeticGreaterThan => int(a)? > int(b)?,
                BinaryPredicate::ArithmeticGreaterThanOrEqualTo => int(a)? >= int(b)?,
                BinaryPredicate::LeftFileIsNewerOrExistsWhenRightDoesNot
                | BinaryPredicate::LeftFileIsOlderOrDoesNotExistWhenRightDoes => {
                    let t = |p: &str| fs::metadata(p).and_then(|m| m.modified()).ok();
                    let (ta, tb) = (t(a), t(b));
                    if matches!(
                        pred,
                        BinaryPredicate::LeftFileIsNewerOrExistsWhenRightDoesNot
                    ) {
                        matches!((ta, tb), (Some(x), Some(y)) if x > y)
                            || (ta.is_some() && tb.is_none())
                    } else {
                        matches!((ta, tb), (Some(x), Some(y)) if x < y)
                            || (ta.is_none() && tb.is_some())
                    }
                }
                other => return Err(format!("unsupported test {other:?}")),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printf_conversions() {
        assert_eq!(convert("5", 'd', Some("42")).unwrap(), "   42");
        assert_eq!(convert("-5", 's', Some("ab")).unwrap(), "ab   ");
        assert_eq!(convert("05", 'd', Some("-42")).unwrap(), "-0042");
        assert_eq!(convert(".2", 'f', Some("3.14159")).unwrap(), "3.14");
        assert_eq!(convert("", 'x', Some("255")).unwrap(), "ff");
        assert!(convert("", 'd', Some("abc")).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("x"), None);
    }
}
