//! Container logs: the guest's stdout and stderr, line by line, into a file
//! per container instance in the CRI format the kubelet uses
//! (`<RFC3339Nano> <stdout|stderr> <F|P> <text>`), size-capped with rotation
//! so a guest flooding its output cannot fill the disk.
//!
//! Files live at `<pod dir>/logs/<container>/<restart count>.log`; the
//! previous instance's file is kept (for `kubectl logs --previous`), older
//! ones are removed when a new instance starts.

use bytes::Bytes;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Which of the guest's output streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// The stream's name as written in the log file.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Sees every complete line a container writes, as it is written (the
/// terminal of `wasmkube play`, for instance).
pub trait LineObserver: Send + Sync {
    /// One line of output, without its newline.
    fn line(&self, stream: Stream, line: &[u8]);
}

/// A line longer than this is written as partial (`P`) records, so one
/// endless line cannot grow the buffer without bound.
const MAX_LINE: usize = 16 * 1024;

/// A container instance's output as it comes, for attached clients. The
/// channel (a backlog of a thousand chunks) is made when the first client
/// attaches: most containers never have one, and a thousand idle pods
/// would hold 64 MiB of empty backlogs.
#[derive(Default)]
pub(crate) struct LiveOutput {
    channel: std::sync::OnceLock<tokio::sync::broadcast::Sender<(Stream, Bytes)>>,
}

impl LiveOutput {
    /// Chunks that wait for a slow attached client.
    const BACKLOG: usize = 1024;

    /// What the container writes from now on.
    pub(crate) fn subscribe(&self) -> tokio::sync::broadcast::Receiver<(Stream, Bytes)> {
        self.channel
            .get_or_init(|| tokio::sync::broadcast::channel(Self::BACKLOG).0)
            .subscribe()
    }

    /// Passes `bytes` to the clients attached now, if any.
    pub(crate) fn send(&self, stream: Stream, bytes: &[u8]) {
        if let Some(channel) = self.channel.get()
            && channel.receiver_count() > 0
        {
            let _ = channel.send((stream, Bytes::copy_from_slice(bytes)));
        }
    }
}

/// Where one container instance's output goes.
pub(crate) struct LogSink {
    file: Mutex<LogFile>,
    observer: Option<Arc<dyn LineObserver>>,
    /// Clients attached to the container see its output as it comes.
    live: Option<Arc<LiveOutput>>,
}

struct LogFile {
    path: PathBuf,
    file: Option<File>,
    written: u64,
    max_bytes: u64,
    pending: [Vec<u8>; 2],
}

impl LogSink {
    /// A sink writing to `path`. The file is created (truncated) with the
    /// first line, so a silent container costs no disk work; a missing log
    /// file reads as an empty log.
    pub(crate) fn create(
        path: PathBuf,
        max_bytes: u64,
        observer: Option<Arc<dyn LineObserver>>,
        live: Option<Arc<LiveOutput>>,
    ) -> io::Result<Arc<Self>> {
        // An older instance's file of the same name must not read as ours.
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        Ok(Arc::new(LogSink {
            file: Mutex::new(LogFile {
                path,
                file: None,
                written: 0,
                max_bytes,
                pending: [Vec::new(), Vec::new()],
            }),
            observer,
            live,
        }))
    }

    pub(crate) fn write(&self, stream: Stream, mut bytes: &[u8]) {
        if let Some(live) = &self.live {
            live.send(stream, bytes);
        }
        let mut log = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let idx = stream as usize;
        while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
            let (line, rest) = bytes.split_at(nl);
            bytes = &rest[1..];
            let mut full = std::mem::take(&mut log.pending[idx]);
            full.extend_from_slice(line);
            self.emit(&mut log, stream, &full, true);
        }
        log.pending[idx].extend_from_slice(bytes);
        while log.pending[idx].len() >= MAX_LINE {
            let chunk: Vec<u8> = log.pending[idx].drain(..MAX_LINE).collect();
            self.emit(&mut log, stream, &chunk, false);
        }
    }

    /// Writes out what is left of unterminated lines (the guest ended).
    pub(crate) fn finish(&self) {
        let mut log = self.file.lock().unwrap_or_else(|e| e.into_inner());
        for stream in [Stream::Stdout, Stream::Stderr] {
            let rest = std::mem::take(&mut log.pending[stream as usize]);
            if !rest.is_empty() {
                self.emit(&mut log, stream, &rest, true);
            }
        }
    }

    fn emit(&self, log: &mut LogFile, stream: Stream, line: &[u8], complete: bool) {
        if let Some(observer) = &self.observer {
            observer.line(stream, line);
        }
        let ts = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S.%9fZ");
        let mut record = Vec::with_capacity(line.len() + 48);
        let tag = if complete { "F" } else { "P" };
        let _ = write!(record, "{ts} {} {tag} ", stream.as_str());
        record.extend_from_slice(line);
        record.push(b'\n');
        if log.file.is_none() && log.written == 0 {
            log.file = File::create(&log.path).ok();
        }
        if log.written + record.len() as u64 > log.max_bytes && log.written > 0 {
            log.rotate();
        }
        if let Some(file) = log.file.as_mut() {
            // A failing disk must not kill the guest: the record is dropped,
            // as a full disk drops a container runtime's log lines.
            if file.write_all(&record).is_ok() {
                log.written += record.len() as u64;
            }
        }
    }
}

impl LogFile {
    /// Moves the current file to `<name>.1` (replacing an older one) and
    /// starts a new one: at most twice `max_bytes` per instance on disk.
    fn rotate(&mut self) {
        self.file = None;
        let mut rotated = self.path.clone().into_os_string();
        rotated.push(".1");
        let _ = fs::rename(&self.path, &rotated);
        self.file = File::create(&self.path).ok();
        self.written = 0;
    }
}

/// One stdout or stderr of a guest, writing into its [`LogSink`].
#[derive(Clone)]
pub(crate) struct LogOutput {
    sink: Arc<LogSink>,
    stream: Stream,
}

impl LogOutput {
    pub(crate) fn new(sink: Arc<LogSink>, stream: Stream) -> Self {
        LogOutput { sink, stream }
    }
}

impl IsTerminal for LogOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for LogOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.sink.write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for LogOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.sink.write(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// One record of a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// When the line was written.
    pub timestamp: jiff::Timestamp,
    /// Which stream it came from.
    pub stream: Stream,
    /// False for a piece of a line too long to keep whole.
    pub complete: bool,
    /// The text, without its newline.
    pub content: String,
}

/// Reads a container's log file back into records (rotated part first).
/// A log that was never written (no file) is empty.
pub fn read_log(path: &Path) -> io::Result<Vec<LogRecord>> {
    let mut rotated = path.to_path_buf().into_os_string();
    rotated.push(".1");
    let mut text = fs::read_to_string(&rotated).unwrap_or_default();
    match fs::read_to_string(path) {
        Ok(current) => text.push_str(&current),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(text.lines().filter_map(parse_line).collect())
}

/// Parses one line of a log file (CRI format).
pub fn parse_line(line: &str) -> Option<LogRecord> {
    let mut parts = line.splitn(4, ' ');
    let timestamp = parts.next()?.parse().ok()?;
    let stream = match parts.next()? {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        _ => return None,
    };
    let complete = parts.next()? == "F";
    let content = parts.next().unwrap_or("").to_string();
    Some(LogRecord {
        timestamp,
        stream,
        complete,
        content,
    })
}

/// Removes log files of instances older than the previous one.
pub(crate) fn prune_old(dir: &Path, restart_count: u32) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(n) = name
            .to_str()
            .and_then(|n| n.split('.').next()?.parse::<u32>().ok())
        else {
            continue;
        };
        if n + 1 < restart_count {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_timestamped_and_split_per_stream() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let sink = LogSink::create(path.clone(), 1 << 20, None, None).unwrap();
        sink.write(Stream::Stdout, b"hello\nwor");
        sink.write(Stream::Stderr, b"oops\n");
        sink.write(Stream::Stdout, b"ld\n");
        sink.write(Stream::Stdout, b"tail");
        sink.finish();
        let records = read_log(&path).unwrap();
        let got: Vec<_> = records
            .iter()
            .map(|r| (r.stream, r.content.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (Stream::Stdout, "hello"),
                (Stream::Stderr, "oops"),
                (Stream::Stdout, "world"),
                (Stream::Stdout, "tail")
            ]
        );
        let raw = fs::read_to_string(&path).unwrap();
        let first = raw.lines().next().unwrap();
        // 2024-01-02T03:04:05.123456789Z stdout F hello
        let ts = first.split(' ').next().unwrap();
        assert_eq!(ts.len(), "2024-01-02T03:04:05.123456789Z".len(), "{first}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{first}");
    }

    #[test]
    fn a_flood_is_capped_by_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let sink = LogSink::create(path.clone(), 4096, None, None).unwrap();
        for i in 0..10_000 {
            sink.write(Stream::Stdout, format!("line {i}\n").as_bytes());
        }
        let size = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let rotated = dir.path().join("0.log.1");
        assert!(size(&path) <= 4096 && size(&rotated) <= 4096);
        let last = read_log(&path).unwrap().pop().unwrap();
        assert_eq!(last.content, "line 9999");
    }

    #[test]
    fn endless_lines_become_partial_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let sink = LogSink::create(path.clone(), 1 << 20, None, None).unwrap();
        sink.write(Stream::Stdout, &vec![b'x'; MAX_LINE * 2 + 10]);
        sink.finish();
        let records = read_log(&path).unwrap();
        let complete: Vec<bool> = records.iter().map(|r| r.complete).collect();
        assert_eq!(complete, [false, false, true]);
    }

    #[test]
    fn only_the_previous_instance_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        for n in 0..4 {
            File::create(dir.path().join(format!("{n}.log"))).unwrap();
        }
        prune_old(dir.path(), 3);
        let mut left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        left.sort();
        assert_eq!(left, ["2.log", "3.log"]);
    }
}
