//! `more` and `less`: page text on the terminal, keys read from it in raw
//! mode (whatever the text comes from, as a pager reads `/dev/tty`). Off a
//! terminal both copy their input, as busybox's do.
//!
//! - `more`: a screenful, then `--More--`; Space (or `f`, Page Down) the
//!   next screenful, Enter (or `j`, Down) one line more, `q` quits; it ends
//!   with the text.
//! - `less`: the screen redrawn at each move; Space, `f`, Page Down and
//!   `b`, Page Up by screens, Enter, `j`, Down and `k`, `y`, Up by lines,
//!   `g`/`G` (Home/End) to either end; `(END)` at the end; `q` quits.

use std::io::Write;

use super::Ctx;
use crate::io::{Input, Output};
use crate::keys::{key, Key};

pub fn more(ctx: &mut Ctx, args: &[String]) -> i32 {
    page(ctx, args, Pager::More)
}

pub fn less(ctx: &mut Ctx, args: &[String]) -> i32 {
    page(ctx, args, Pager::Less)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pager {
    More,
    Less,
}

impl Pager {
    fn name(self) -> &'static str {
        match self {
            Pager::More => "more",
            Pager::Less => "less",
        }
    }
}

fn page(ctx: &mut Ctx, args: &[String], pager: Pager) -> i32 {
    let operands: Vec<&String> = args[1..].iter().filter(|a| !is_option(a)).collect();
    let mut text = Vec::new();
    let mut status = 0;
    if operands.is_empty() {
        text = ctx.read_all("-").unwrap_or_default();
    }
    for (i, path) in operands.iter().enumerate() {
        match ctx.read_all(path) {
            Ok(data) => {
                if operands.len() > 1 && pager == Pager::More {
                    // more's header between several files.
                    if i > 0 {
                        text.push(b'\n');
                    }
                    let rule = "::::::::::::::";
                    text.extend_from_slice(format!("{rule}\n{path}\n{rule}\n").as_bytes());
                }
                text.extend_from_slice(&data);
            }
            Err(e) => {
                ctx.error(pager.name(), &format!("{path}: {}", super::io_message(&e)));
                status = 1;
            }
        }
    }
    let size = crate::terminal::size();
    let (Some((columns, rows)), Output::Stdout) = (size, &ctx.io.stdout) else {
        let _ = ctx.out().write_all(&text);
        return status;
    };
    let lines = screen_lines(&String::from_utf8_lossy(&text), usize::from(columns));
    let screen = usize::from(rows).saturating_sub(1).max(1);
    crate::terminal::set_raw(true);
    let mut keys = Input::Stdin;
    let out = ctx.out();
    match pager {
        Pager::More => more_loop(&lines, screen, &mut keys, out),
        Pager::Less => less_loop(&lines, screen, &mut keys, out),
    }
    crate::terminal::set_raw(false);
    let _ = out.flush();
    status
}

/// Options (`-R`, `-S`, `+G`...) change nothing here.
fn is_option(arg: &str) -> bool {
    arg.len() > 1 && (arg.starts_with('-') || arg.starts_with('+'))
}

/// The text as the terminal shows it: tabs expanded, lines longer than the
/// screen wrapped onto the next, a final newline ending the last line.
fn screen_lines(text: &str, columns: usize) -> Vec<String> {
    let columns = columns.max(1);
    let mut rows = Vec::new();
    let body = text.strip_suffix('\n').unwrap_or(text);
    if body.is_empty() {
        return rows;
    }
    for line in body.split('\n') {
        let mut row = String::new();
        let mut width = 0;
        for c in line.trim_end_matches('\r').chars() {
            let expanded = match c {
                '\t' => " ".repeat(8 - width % 8),
                c => c.to_string(),
            };
            for c in expanded.chars() {
                if width == columns {
                    rows.push(std::mem::take(&mut row));
                    width = 0;
                }
                row.push(c);
                width += 1;
            }
        }
        rows.push(row);
    }
    rows
}

/// What a key asks the pager to do.
enum Move {
    Screen(isize),
    Line(isize),
    Top,
    Bottom,
    Quit,
    Nothing,
}

fn action(key: Option<Key>) -> Move {
    match key {
        None | Some(Key::Interrupt | Key::Char('q' | 'Q')) => Move::Quit,
        Some(Key::Char(' ' | 'f' | 'z') | Key::PageDown) => Move::Screen(1),
        Some(Key::Char('b' | 'w') | Key::PageUp) => Move::Screen(-1),
        Some(Key::Enter | Key::Down | Key::Char('j' | 'e')) => Move::Line(1),
        Some(Key::Up | Key::Char('k' | 'y')) => Move::Line(-1),
        Some(Key::Char('g' | '<') | Key::Home) => Move::Top,
        Some(Key::Char('G' | '>') | Key::End) => Move::Bottom,
        Some(_) => Move::Nothing,
    }
}

fn flush_prompt(out: &mut Output, prompt: &str) {
    let _ = write!(out, "\x1b[7m{prompt}\x1b[0m");
    let _ = out.flush();
}

/// Prints on, never back: ends with the text or on `q`.
fn more_loop(lines: &[String], screen: usize, keys: &mut Input, out: &mut Output) {
    let mut shown = 0;
    let mut wanted = screen;
    loop {
        let end = (shown + wanted).min(lines.len());
        for line in &lines[shown..end] {
            let _ = writeln!(out, "{line}");
        }
        shown = end;
        if shown == lines.len() {
            return;
        }
        flush_prompt(out, &format!("--More-- ({}%)", shown * 100 / lines.len()));
        wanted = loop {
            match action(key(keys)) {
                Move::Quit => {
                    let _ = write!(out, "\r\x1b[K");
                    return;
                }
                Move::Screen(1) | Move::Bottom => break screen,
                Move::Line(1) => break 1,
                _ => continue,
            }
        };
        let _ = write!(out, "\r\x1b[K");
    }
}

/// Redraws the screen from `top` after every move, until `q`.
fn less_loop(lines: &[String], screen: usize, keys: &mut Input, out: &mut Output) {
    let last_top = lines.len().saturating_sub(screen);
    let mut top = 0usize;
    loop {
        let _ = write!(out, "\x1b[H\x1b[2J");
        for row in 0..screen {
            match lines.get(top + row) {
                Some(line) => {
                    let _ = writeln!(out, "{line}");
                }
                // Past the end, as less marks it.
                None => {
                    let _ = writeln!(out, "~");
                }
            }
        }
        if top >= last_top {
            flush_prompt(out, "(END)");
        } else {
            let _ = write!(out, ":");
            let _ = out.flush();
        }
        let moved = loop {
            let step = |by: isize| top.saturating_add_signed(by).min(last_top);
            let next = match action(key(keys)) {
                Move::Quit => {
                    let _ = write!(out, "\r\x1b[K");
                    return;
                }
                Move::Screen(by) => step(by * screen as isize),
                Move::Line(by) => step(by),
                Move::Top => 0,
                Move::Bottom => last_top,
                Move::Nothing => continue,
            };
            if next != top {
                break next;
            }
        };
        top = moved;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_wrap_and_tabs_expand() {
        assert_eq!(
            screen_lines("abcdef\n\tx\n\n", 4),
            ["abcd", "ef", "    ", "    ", "x", ""]
        );
        assert!(screen_lines("", 80).is_empty());
    }

    fn run(pager: Pager, lines: usize, keys: &[u8]) -> String {
        let text: Vec<String> = (1..=lines).map(|n| n.to_string()).collect();
        let (mut out, seen) = Output::buffer();
        let mut keys = Input::bytes(keys.to_vec());
        match pager {
            Pager::More => more_loop(&text, 3, &mut keys, &mut out),
            Pager::Less => less_loop(&text, 3, &mut keys, &mut out),
        }
        let seen = seen.borrow();
        String::from_utf8_lossy(&seen).into_owned()
    }

    #[test]
    fn more_pages_forward_and_ends_with_the_text() {
        let out = run(Pager::More, 5, b" ");
        assert_eq!(
            out, "1\n2\n3\n\x1b[7m--More-- (60%)\x1b[0m\r\x1b[K4\n5\n",
            "a screenful, the prompt, the rest on Space"
        );
        let out = run(Pager::More, 8, b"\rq");
        assert!(
            out.ends_with("4\n\x1b[7m--More-- (50%)\x1b[0m\r\x1b[K"),
            "{out:?}"
        );
        assert_eq!(
            run(Pager::More, 2, b""),
            "1\n2\n",
            "a short text needs no paging"
        );
    }

    #[test]
    fn less_moves_both_ways_and_marks_the_end() {
        let screens: Vec<String> = run(Pager::Less, 5, b"jGbq")
            .split("\x1b[H\x1b[2J")
            .skip(1)
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            screens,
            [
                "1\n2\n3\n:",
                "2\n3\n4\n:",
                "3\n4\n5\n\x1b[7m(END)\x1b[0m",
                "1\n2\n3\n:\r\x1b[K",
            ]
        );
        let out = run(Pager::Less, 1, b"q");
        assert_eq!(out, "\x1b[H\x1b[2J1\n~\n~\n\x1b[7m(END)\x1b[0m\r\x1b[K");
    }
}
