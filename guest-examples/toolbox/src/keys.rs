//! Keys as a terminal in raw mode sends them: control characters, UTF-8
//! and the escape sequences of arrows and editing keys (the line editor's
//! and the pagers').

use std::io::Read;

use crate::io::Input;

/// A key, decoded from the bytes a terminal sends.
#[derive(Debug, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Enter,
    Backspace,
    Delete,
    Left,
    Right,
    Home,
    End,
    Up,
    Down,
    PageUp,
    PageDown,
    KillToStart,
    KillToEnd,
    EraseWord,
    Clear,
    Interrupt,
    EndOfInput,
    Ignored,
}

/// Reads one byte; `None` at the end of input.
fn byte(input: &mut Input) -> Option<u8> {
    let mut b = [0u8; 1];
    match input.read(&mut b) {
        Ok(1) => Some(b[0]),
        _ => None,
    }
}

pub fn key(input: &mut Input) -> Option<Key> {
    let b = byte(input)?;
    Some(match b {
        b'\r' | b'\n' => Key::Enter,
        0x7f | 0x08 => Key::Backspace,
        0x01 => Key::Home,
        0x05 => Key::End,
        0x02 => Key::Left,
        0x06 => Key::Right,
        0x10 => Key::Up,
        0x0e => Key::Down,
        0x15 => Key::KillToStart,
        0x0b => Key::KillToEnd,
        0x17 => Key::EraseWord,
        0x0c => Key::Clear,
        0x03 => Key::Interrupt,
        0x04 => Key::EndOfInput,
        0x1b => escape(input)?,
        b if b < 0x20 => Key::Ignored,
        b if b < 0x80 => Key::Char(b as char),
        lead => {
            // A UTF-8 sequence: its length from the lead byte.
            let more = match lead {
                0xc0..=0xdf => 1,
                0xe0..=0xef => 2,
                0xf0..=0xf7 => 3,
                _ => return Some(Key::Ignored),
            };
            let mut bytes = vec![lead];
            for _ in 0..more {
                bytes.push(byte(input)?);
            }
            match std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.chars().next())
            {
                Some(c) => Key::Char(c),
                None => Key::Ignored,
            }
        }
    })
}

/// The rest of an escape sequence (`ESC [ A`, `ESC [ 3 ~`, `ESC O H`).
fn escape(input: &mut Input) -> Option<Key> {
    let intro = byte(input)?;
    if intro != b'[' && intro != b'O' {
        return Some(Key::Ignored);
    }
    let mut params = String::new();
    loop {
        let b = byte(input)?;
        if (0x40..=0x7e).contains(&b) {
            return Some(match (b, params.as_str()) {
                (b'A', _) => Key::Up,
                (b'B', _) => Key::Down,
                (b'C', _) => Key::Right,
                (b'D', _) => Key::Left,
                (b'H', _) => Key::Home,
                (b'F', _) => Key::End,
                (b'~', "1" | "7") => Key::Home,
                (b'~', "4" | "8") => Key::End,
                (b'~', "3") => Key::Delete,
                (b'~', "5") => Key::PageUp,
                (b'~', "6") => Key::PageDown,
                _ => Key::Ignored,
            });
        }
        params.push(b as char);
    }
}
