//! The standard streams a command runs with. Pipelines are buffered (WASI
//! has no processes to run stages side by side), so a stream is the real
//! stdio, a file, an in-memory buffer, or nothing.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read, Write};
use std::rc::Rc;

/// Where a command's output goes.
#[derive(Clone)]
pub enum Output {
    Stdout,
    Stderr,
    Null,
    File(Rc<RefCell<File>>),
    Buffer(Rc<RefCell<Vec<u8>>>),
}

impl Output {
    pub fn buffer() -> (Output, Rc<RefCell<Vec<u8>>>) {
        let buf = Rc::new(RefCell::new(Vec::new()));
        (Output::Buffer(Rc::clone(&buf)), buf)
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Stdout => io::stdout().write(buf),
            Output::Stderr => io::stderr().write(buf),
            Output::Null => Ok(buf.len()),
            Output::File(f) => f.borrow_mut().write(buf),
            Output::Buffer(b) => b.borrow_mut().write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Stdout => io::stdout().flush(),
            Output::Stderr => io::stderr().flush(),
            Output::File(f) => f.borrow_mut().flush(),
            Output::Null | Output::Buffer(_) => Ok(()),
        }
    }
}

/// Where a command's input comes from.
#[derive(Clone)]
pub enum Input {
    Stdin,
    Null,
    Bytes(Rc<RefCell<Cursor<Vec<u8>>>>),
    File(Rc<RefCell<BufReader<File>>>),
}

impl Input {
    pub fn bytes(data: Vec<u8>) -> Input {
        Input::Bytes(Rc::new(RefCell::new(Cursor::new(data))))
    }

    pub fn file(file: File) -> Input {
        Input::File(Rc::new(RefCell::new(BufReader::new(file))))
    }

    /// One line without its newline; `None` at end of input.
    pub fn read_line(&mut self) -> io::Result<Option<String>> {
        let mut line = String::new();
        let n = match self {
            Input::Stdin => io::stdin().lock().read_line(&mut line)?,
            Input::Null => 0,
            Input::Bytes(c) => c.borrow_mut().read_line(&mut line)?,
            Input::File(f) => f.borrow_mut().read_line(&mut line)?,
        };
        if n == 0 {
            return Ok(None);
        }
        if line.ends_with('\n') {
            line.pop();
            if line.ends_with('\r') {
                line.pop();
            }
        }
        Ok(Some(line))
    }
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Input::Stdin => io::stdin().read(buf),
            Input::Null => Ok(0),
            Input::Bytes(c) => c.borrow_mut().read(buf),
            Input::File(f) => f.borrow_mut().read(buf),
        }
    }
}

/// The three standard streams of a command.
#[derive(Clone)]
pub struct Io {
    pub stdin: Input,
    pub stdout: Output,
    pub stderr: Output,
}

impl Io {
    pub fn standard() -> Io {
        Io {
            stdin: Input::Stdin,
            stdout: Output::Stdout,
            stderr: Output::Stderr,
        }
    }
}
