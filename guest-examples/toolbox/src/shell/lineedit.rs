//! The interactive shell's line editor, as busybox's: the terminal is put
//! in raw mode while a line is typed, and keys edit it here — left and
//! right (and Ctrl-B, Ctrl-F), Home and End (Ctrl-A, Ctrl-E), Backspace and
//! Delete, Ctrl-U, Ctrl-K and Ctrl-W to cut, up and down (Ctrl-P, Ctrl-N)
//! through the history, Ctrl-L to clear the screen; Ctrl-C abandons the
//! line, Ctrl-D on an empty line ends input.

use std::io::Write;

use crate::io::Input;
use crate::keys::{key, Key};

/// What reading a line gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Text(String),
    /// Ctrl-C: the line was abandoned.
    Interrupted,
    /// Ctrl-D on an empty line, or stdin ended.
    End,
}

/// The editor, with the history of entered lines.
#[derive(Default)]
pub struct Editor {
    history: Vec<String>,
}

impl Editor {
    pub fn new() -> Self {
        Editor::default()
    }

    /// Reads a line after `prompt`, echoing and editing it on `out`.
    pub fn read(&mut self, prompt: &str, input: &mut Input, out: &mut impl Write) -> Line {
        let mut line: Vec<char> = Vec::new();
        let mut cursor = 0;
        // Where in the history up and down are; the line being typed is
        // kept while browsing.
        let mut browsing = self.history.len();
        let mut typed: Vec<char> = Vec::new();
        let _ = write!(out, "{prompt}");
        let _ = out.flush();
        loop {
            let Some(key) = key(input) else {
                return Line::End;
            };
            match key {
                Key::Char(c) => {
                    line.insert(cursor, c);
                    cursor += 1;
                    if cursor == line.len() {
                        // Typed at the end: the character is all that changes.
                        let _ = write!(out, "{c}");
                        let _ = out.flush();
                        continue;
                    }
                }
                Key::Enter => {
                    let _ = writeln!(out);
                    let _ = out.flush();
                    let text: String = line.into_iter().collect();
                    if !text.trim().is_empty() && self.history.last() != Some(&text) {
                        self.history.push(text.clone());
                    }
                    return Line::Text(text);
                }
                Key::Backspace if cursor > 0 => {
                    cursor -= 1;
                    line.remove(cursor);
                }
                Key::Delete if cursor < line.len() => {
                    line.remove(cursor);
                }
                Key::Left if cursor > 0 => cursor -= 1,
                Key::Right if cursor < line.len() => cursor += 1,
                Key::Home => cursor = 0,
                Key::End => cursor = line.len(),
                Key::KillToStart => {
                    line.drain(..cursor);
                    cursor = 0;
                }
                Key::KillToEnd => line.truncate(cursor),
                Key::EraseWord => {
                    let mut start = cursor;
                    while start > 0 && line[start - 1] == ' ' {
                        start -= 1;
                    }
                    while start > 0 && line[start - 1] != ' ' {
                        start -= 1;
                    }
                    line.drain(start..cursor);
                    cursor = start;
                }
                Key::Up | Key::Down => {
                    let next = match key {
                        Key::Up if browsing > 0 => browsing - 1,
                        Key::Down if browsing < self.history.len() => browsing + 1,
                        _ => continue,
                    };
                    if browsing == self.history.len() {
                        typed = line.clone();
                    }
                    browsing = next;
                    line = match self.history.get(browsing) {
                        Some(entry) => entry.chars().collect(),
                        None => typed.clone(),
                    };
                    cursor = line.len();
                }
                Key::Clear => {
                    let _ = write!(out, "\x1b[H\x1b[2J");
                }
                Key::Interrupt => {
                    let _ = writeln!(out, "^C");
                    let _ = out.flush();
                    return Line::Interrupted;
                }
                Key::EndOfInput if line.is_empty() => {
                    let _ = writeln!(out);
                    let _ = out.flush();
                    return Line::End;
                }
                Key::EndOfInput if cursor < line.len() => {
                    line.remove(cursor);
                }
                _ => continue,
            }
            redraw(out, prompt, &line, cursor);
        }
    }
}

/// Rewrites the line in place: prompt, text, the rest of the screen line
/// cleared, the cursor moved back to where it is in the text.
fn redraw(out: &mut impl Write, prompt: &str, line: &[char], cursor: usize) {
    let text: String = line.iter().collect();
    let _ = write!(out, "\r{prompt}{text}\x1b[K");
    let back = line.len() - cursor;
    if back > 0 {
        let _ = write!(out, "\x1b[{back}D");
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(editor: &mut Editor, keys: &[u8]) -> (Line, String) {
        let mut input = Input::bytes(keys.to_vec());
        let mut out = Vec::new();
        let line = editor.read("$ ", &mut input, &mut out);
        (line, String::from_utf8(out).unwrap())
    }

    #[test]
    fn keys_edit_the_line() {
        let mut editor = Editor::new();
        // "eho", two lefts, the missing "c", End, the rest.
        let (line, _) = edit(&mut editor, b"eho\x1b[D\x1b[Dc\x1b[F hi\r");
        assert_eq!(line, Line::Text("echo hi".into()));
        let (line, _) = edit(&mut editor, b"ls -l\x7f\x7f\x7f\x01x\x05 /\r");
        assert_eq!(line, Line::Text("xls /".into()));
        let (line, _) = edit(&mut editor, b"rm -rf tmp\x17\x17ok\r");
        assert_eq!(line, Line::Text("rm ok".into()));
        let (line, _) = edit(&mut editor, b"abc\x01\x0bd\r");
        assert_eq!(line, Line::Text("d".into()));
        let (line, out) = edit(&mut editor, "caf\u{e9}\x1b[D\x1b[3~e\r".as_bytes());
        assert_eq!(line, Line::Text("cafe".into()));
        assert!(out.ends_with("\r$ caf\x1b[Ke\n"), "{out:?}");
        let (_, out) = edit(&mut editor, b"ab\r");
        assert_eq!(out, "$ ab\n", "typing at the end echoes just the keys");
    }

    #[test]
    fn history_is_browsed_with_up_and_down() {
        let mut editor = Editor::new();
        edit(&mut editor, b"one\r");
        edit(&mut editor, b"two\r");
        let (line, _) = edit(&mut editor, b"\x1b[A\x1b[A\r");
        assert_eq!(line, Line::Text("one".into()));
        // Down past the newest entry returns to what was being typed.
        let (line, _) = edit(&mut editor, b"thr\x1b[A\x1b[Bee\r");
        assert_eq!(line, Line::Text("three".into()));
    }

    #[test]
    fn ctrl_c_abandons_and_ctrl_d_ends() {
        let mut editor = Editor::new();
        assert_eq!(edit(&mut editor, b"sleep\x03").0, Line::Interrupted);
        assert_eq!(edit(&mut editor, b"\x04").0, Line::End);
        assert_eq!(edit(&mut editor, b"").0, Line::End);
        assert_eq!(edit(&mut editor, b"ab\x01\x04\r").0, Line::Text("b".into()));
    }
}
