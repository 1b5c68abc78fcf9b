//! The standard streams a command runs with. Pipelines are buffered (WASI
//! has no processes to run stages side by side), so a stream is the real
//! stdio, a file, an in-memory buffer, or nothing.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read, Write};
use std::rc::Rc;
use std::time::Duration;

use wasip2::io::streams::StreamError;

/// Where a command's output goes.
#[derive(Clone)]
pub enum Output {
    Stdout,
    Stderr,
    Null,
    File(Rc<RefCell<File>>),
    Buffer(Rc<RefCell<Vec<u8>>>),
    /// A connection (`nc -e`).
    Socket(Connection),
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
            Output::Socket(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Stdout => io::stdout().flush(),
            Output::Stderr => io::stderr().flush(),
            Output::File(f) => f.borrow_mut().flush(),
            Output::Null | Output::Buffer(_) | Output::Socket(_) => Ok(()),
        }
    }
}

/// A TCP connection a command reads and writes as its stdin and stdout.
#[derive(Clone)]
pub struct Connection(pub Rc<std::net::TcpStream>);

impl Read for Connection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for Connection {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Where a command's input comes from.
#[derive(Clone)]
pub enum Input {
    Stdin,
    Null,
    Bytes(Rc<RefCell<Cursor<Vec<u8>>>>),
    File(Rc<RefCell<BufReader<File>>>),
    /// A connection (`nc -e`): what arrives, as it arrives.
    Socket(Rc<RefCell<BufReader<Connection>>>),
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
            Input::Stdin => STDIN.with_borrow_mut(|s| s.read_line(&mut line))?,
            Input::Null => 0,
            Input::Bytes(c) => c.borrow_mut().read_line(&mut line)?,
            Input::File(f) => f.borrow_mut().read_line(&mut line)?,
            Input::Socket(s) => s.borrow_mut().read_line(&mut line)?,
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
            Input::Stdin => STDIN.with_borrow_mut(|s| s.read(buf)),
            Input::Null => Ok(0),
            Input::Bytes(c) => c.borrow_mut().read(buf),
            Input::File(f) => f.borrow_mut().read(buf),
            Input::Socket(s) => s.borrow_mut().read(buf),
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

thread_local! {
    /// The one buffer over stdin, so that a line read ahead is never lost
    /// between commands.
    static STDIN: RefCell<BufReader<RawStdin>> = RefCell::new(BufReader::new(RawStdin {
        stream: wasip2::cli::stdin::get_stdin(),
    }));
}

/// How often a read from a terminal looks for Ctrl-C.
const INTERRUPT_CHECK: Duration = Duration::from_millis(50);

/// stdin as WASI gives it. On a terminal a read waits in short slices and
/// fails once Ctrl-C was typed, so a command waiting for input can be
/// interrupted.
struct RawStdin {
    stream: wasip2::io::streams::InputStream,
}

impl Read for RawStdin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let wanted = buf.len() as u64;
        let bytes = if crate::terminal::is_terminal() {
            loop {
                if crate::terminal::interrupted() {
                    return Err(crate::terminal::interrupt_error());
                }
                {
                    let ready = self.stream.subscribe();
                    let tick = wasip2::clocks::monotonic_clock::subscribe_duration(
                        INTERRUPT_CHECK.as_nanos() as u64,
                    );
                    wasip2::io::poll::poll(&[&ready, &tick]);
                }
                match self.stream.read(wanted) {
                    Ok(bytes) if bytes.is_empty() => continue,
                    other => break other,
                }
            }
        } else {
            self.stream.blocking_read(wanted)
        };
        match bytes {
            Ok(bytes) => {
                buf[..bytes.len()].copy_from_slice(&bytes);
                Ok(bytes.len())
            }
            Err(StreamError::Closed) => Ok(0),
            Err(StreamError::LastOperationFailed(e)) => Err(io::Error::other(e.to_debug_string())),
        }
    }
}
