//! `grep`: basic, extended (`-E`) and fixed (`-F`) patterns with the
//! `\d \w \s` classes, and `-i -v -c -o -q -n -l -L -w -x -e -m -h -H -s`.

use std::io::Write;

use super::text::operands_or_stdin;
use super::{io_message, parse_flags, Ctx};

/// Translates a basic regular expression to the extended syntax: in BRE,
/// `( ) { } | + ?` are literal and their backslashed forms are operators.
fn bre_to_ere(pattern: &str) -> String {
    let mut out = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n @ ('(' | ')' | '{' | '}' | '|' | '+' | '?')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push_str("\\\\"),
            },
            '(' | ')' | '{' | '}' | '|' | '+' | '?' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

pub fn grep(ctx: &mut Ctx, args: &[String]) -> i32 {
    let (flags, ops) = match parse_flags(&args[1..], "EFGivcoqnhHlLwxrsa", "em") {
        Ok(parsed) => parsed,
        Err(msg) => {
            ctx.error("grep", &msg);
            return 2;
        }
    };
    let has = |c: char| flags.iter().any(|(f, _)| *f == c);
    let mut patterns: Vec<String> = flags
        .iter()
        .filter(|(c, _)| *c == 'e')
        .filter_map(|(_, v)| v.clone())
        .collect();
    let mut ops: Vec<String> = ops.into_iter().cloned().collect();
    if patterns.is_empty() {
        if ops.is_empty() {
            ctx.error(
                "grep",
                "no pattern given\nusage: grep [-EFivcoqnhHlwx] PATTERN [FILE]...",
            );
            return 2;
        }
        patterns.push(ops.remove(0));
    }
    let max: Option<usize> = flags
        .iter()
        .find(|(c, _)| *c == 'm')
        .and_then(|(_, v)| v.as_ref()?.parse().ok());
    let translated: Vec<String> = patterns
        .iter()
        .flat_map(|p| p.split('\n').map(str::to_string).collect::<Vec<_>>())
        .map(|p| {
            let p = if has('F') {
                regex_lite::escape(&p)
            } else if has('E') {
                p
            } else {
                bre_to_ere(&p)
            };
            let p = if has('w') { format!(r"\b(?:{p})\b") } else { p };
            if has('x') {
                format!("^(?:{p})$")
            } else {
                p
            }
        })
        .collect();
    let joined = translated
        .iter()
        .map(|p| format!("(?:{p})"))
        .collect::<Vec<_>>()
        .join("|");
    let regex = match regex_lite::RegexBuilder::new(&joined)
        .case_insensitive(has('i'))
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            ctx.error("grep", &format!("bad regex '{}': {e}", patterns.join("\n")));
            return 2;
        }
    };
    let ops = operands_or_stdin(ops.iter().collect());
    let show_names = (ops.len() > 1 || has('H')) && !has('h');
    let mut any = false;
    let mut failed = false;
    for path in &ops {
        let data = match ctx.read_all(path) {
            Ok(d) => d,
            Err(e) => {
                if !has('s') {
                    ctx.error("grep", &format!("{path}: {}", io_message(&e)));
                }
                failed = true;
                continue;
            }
        };
        let text = String::from_utf8_lossy(&data);
        let name = if path == "-" {
            "(standard input)"
        } else {
            path.as_str()
        };
        let mut hits = 0;
        for (idx, line) in text.lines().enumerate() {
            if max.is_some_and(|m| hits >= m) {
                break;
            }
            let matched = regex.is_match(line) != has('v');
            if !matched {
                continue;
            }
            hits += 1;
            any = true;
            if has('q') {
                return 0;
            }
            if has('c') || has('l') || has('L') {
                continue;
            }
            let prefix = match (show_names, has('n')) {
                (true, true) => format!("{name}:{}:", idx + 1),
                (true, false) => format!("{name}:"),
                (false, true) => format!("{}:", idx + 1),
                (false, false) => String::new(),
            };
            if has('o') && !has('v') {
                for m in regex.find_iter(line).filter(|m| !m.as_str().is_empty()) {
                    let _ = writeln!(ctx.out(), "{prefix}{}", m.as_str());
                }
            } else {
                let _ = writeln!(ctx.out(), "{prefix}{line}");
            }
        }
        if has('c') {
            let _ = if show_names {
                writeln!(ctx.out(), "{name}:{hits}")
            } else {
                writeln!(ctx.out(), "{hits}")
            };
        }
        if (has('l') && hits > 0) || (has('L') && hits == 0) {
            let _ = writeln!(ctx.out(), "{name}");
        }
    }
    if failed && !any {
        2
    } else {
        i32::from(!any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_regex_becomes_extended() {
        assert_eq!(bre_to_ere(r"a\(b\)+"), r"a(b)\+");
        assert_eq!(bre_to_ere(r"x\{2\}"), r"x{2}");
        assert_eq!(bre_to_ere(r"\d+"), r"\d\+");
    }

    #[test]
    fn grep_classes_work_in_regex_lite() {
        let re = regex_lite::Regex::new(r"\d+\w").unwrap();
        assert_eq!(re.find("Mem: 1234K used").unwrap().as_str(), "1234K");
        let re = regex_lite::Regex::new(r"\d+%").unwrap();
        assert_eq!(re.find("CPU:   7% usr").unwrap().as_str(), "7%");
    }
}
