//! SPDY/3.1 as Kubernetes uses it: the client opens every stream (with
//! headers such as `streamtype`, `port`, `requestid`), the server accepts
//! each with a SYN_REPLY and then both sides send data frames; a FIN flag
//! half-closes a stream. Header blocks are zlib-compressed with the SPDY
//! dictionary, one compression context per direction for the whole
//! connection. kubectl up to 1.29 speaks it for exec and attach over an
//! HTTP upgrade; every kubectl speaks it for port-forward (tunnelled in
//! WebSocket messages from 1.31).
//!
//! [`serve`] runs a connection: a reader task parses frames and hands each
//! new stream over as a [`Stream`]; one writer task owns the socket's write
//! half and the compressor, so frames leave whole and in order.

use std::collections::HashMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// The SPDY/3 header compression dictionary (from the protocol's
/// specification).
const DICTIONARY: &[u8] = include_bytes!("spdy_dictionary.bin");

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const FLAG_FIN: u8 = 0x01;
/// RST_STREAM status: the stream was cancelled.
const CANCEL: u32 = 5;
/// Largest data frame sent; the format allows 16 MiB, smaller frames keep
/// streams of one connection from waiting long on each other.
const MAX_DATA: usize = 32 * 1024;
/// Largest frame accepted from a client.
const MAX_FRAME: usize = 1 << 20;
/// The most a header block may inflate to (a client's are a few hundred
/// bytes): a small frame of zeros must not become gigabytes.
const MAX_HEADER_BLOCK: usize = 256 * 1024;

/// A stream the client opened.
#[derive(Debug)]
pub(crate) struct Stream {
    /// Its headers, names in lower case (SPDY's rule).
    pub(crate) headers: HashMap<String, String>,
    /// What the client sends on it; ends when the client half-closes or
    /// resets it, or the connection ends.
    pub(crate) data: mpsc::Receiver<Bytes>,
    /// Sends on it.
    pub(crate) writer: StreamWriter,
}

impl Stream {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// The sending side of one stream.
#[derive(Debug, Clone)]
pub(crate) struct StreamWriter {
    id: u32,
    frames: mpsc::Sender<Outgoing>,
}

/// The connection is gone.
#[derive(Debug)]
pub(crate) struct Gone;

impl StreamWriter {
    /// Sends `data` in frames of at most [`MAX_DATA`] bytes.
    pub(crate) async fn send(&self, mut data: Bytes) -> Result<(), Gone> {
        while !data.is_empty() {
            let chunk = data.split_to(data.len().min(MAX_DATA));
            self.frames
                .send(Outgoing::Data {
                    id: self.id,
                    data: chunk,
                    fin: false,
                })
                .await
                .map_err(|_| Gone)?;
        }
        Ok(())
    }

    /// Half-closes the stream: nothing more will be sent on it.
    pub(crate) async fn finish(&self) {
        let _ = self
            .frames
            .send(Outgoing::Data {
                id: self.id,
                data: Bytes::new(),
                fin: true,
            })
            .await;
    }

    /// Abandons the stream.
    pub(crate) async fn reset(&self) {
        let _ = self.frames.send(Outgoing::Reset { id: self.id }).await;
    }
}

/// A running connection.
#[derive(Debug)]
pub(crate) struct Connection {
    /// Streams as the client opens them; ends with the connection.
    pub(crate) streams: mpsc::Receiver<Stream>,
    frames: mpsc::Sender<Outgoing>,
    reader: tokio::task::JoinHandle<()>,
}

impl Connection {
    /// Sends what is queued, then closes the connection.
    pub(crate) async fn close(self) {
        let (done, closed) = tokio::sync::oneshot::channel();
        let _ = self.frames.send(Outgoing::Close { done }).await;
        let _ = closed.await;
        self.reader.abort();
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

#[derive(Debug)]
enum Outgoing {
    Reply {
        id: u32,
    },
    Data {
        id: u32,
        data: Bytes,
        fin: bool,
    },
    Reset {
        id: u32,
    },
    Ping {
        id: u32,
    },
    Close {
        done: tokio::sync::oneshot::Sender<()>,
    },
}

/// Serves SPDY/3.1 on `io`.
pub(crate) fn serve<IO>(io: IO) -> Connection
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(io);
    let (frames, outgoing) = mpsc::channel(64);
    let (streams_tx, streams) = mpsc::channel(16);
    tokio::spawn(write_frames(write, outgoing));
    let reader = tokio::spawn(read_frames(read, frames.clone(), streams_tx));
    Connection {
        streams,
        frames,
        reader,
    }
}

async fn read_frames<R: AsyncRead + Unpin>(
    mut read: R,
    frames: mpsc::Sender<Outgoing>,
    streams: mpsc::Sender<Stream>,
) {
    let mut inflate = HeaderReader::new();
    let mut open: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
    let mut head = [0u8; 8];
    loop {
        if read.read_exact(&mut head).await.is_err() {
            return;
        }
        let length = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
        let flags = head[4];
        if length > MAX_FRAME {
            tracing::debug!(length, "SPDY frame too large; closing");
            return;
        }
        let mut payload = vec![0u8; length];
        if read.read_exact(&mut payload).await.is_err() {
            return;
        }
        let mut payload = Bytes::from(payload);
        if head[0] & 0x80 == 0 {
            let id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & 0x7fff_ffff;
            if let Some(sender) = open.get(&id) {
                // A stream whose reader left has its data dropped.
                if !payload.is_empty() {
                    let _ = sender.send(payload).await;
                }
                if flags & FLAG_FIN != 0 {
                    open.remove(&id);
                }
            }
            continue;
        }
        let kind = u16::from_be_bytes([head[2], head[3]]);
        match kind {
            SYN_STREAM if payload.len() >= 10 => {
                let id = payload.get_u32() & 0x7fff_ffff;
                payload.advance(6); // associated stream, priority, slot
                let Some(headers) = inflate.read(&payload) else {
                    tracing::debug!("SPDY header block unreadable; closing");
                    return;
                };
                let (data_tx, data) = mpsc::channel(16);
                if flags & FLAG_FIN == 0 {
                    open.insert(id, data_tx);
                }
                if frames.send(Outgoing::Reply { id }).await.is_err() {
                    return;
                }
                let stream = Stream {
                    headers,
                    data,
                    writer: StreamWriter {
                        id,
                        frames: frames.clone(),
                    },
                };
                if streams.send(stream).await.is_err() {
                    return;
                }
            }
            RST_STREAM if payload.len() >= 4 => {
                open.remove(&(payload.get_u32() & 0x7fff_ffff));
            }
            PING if payload.len() >= 4 => {
                let id = payload.get_u32();
                if frames.send(Outgoing::Ping { id }).await.is_err() {
                    return;
                }
            }
            GOAWAY => return,
            // SETTINGS, WINDOW_UPDATE (the Go client keeps no flow
            // control), HEADERS and the rest carry nothing we act on.
            _ => {}
        }
    }
}

async fn write_frames<W: AsyncWrite + Unpin>(mut write: W, mut outgoing: mpsc::Receiver<Outgoing>) {
    let mut deflate = HeaderWriter::new();
    let mut buf = BytesMut::new();
    while let Some(frame) = outgoing.recv().await {
        buf.clear();
        match frame {
            Outgoing::Reply { id } => {
                let block = deflate.empty_block();
                control(&mut buf, SYN_REPLY, 0, 4 + block.len());
                buf.put_u32(id);
                buf.put_slice(&block);
            }
            Outgoing::Data { id, data, fin } => {
                buf.put_u32(id & 0x7fff_ffff);
                buf.put_u8(if fin { FLAG_FIN } else { 0 });
                buf.put_uint(data.len() as u64, 3);
                buf.put_slice(&data);
            }
            Outgoing::Reset { id } => {
                control(&mut buf, RST_STREAM, 0, 8);
                buf.put_u32(id);
                buf.put_u32(CANCEL);
            }
            Outgoing::Ping { id } => {
                control(&mut buf, PING, 0, 4);
                buf.put_u32(id);
            }
            Outgoing::Close { done } => {
                let _ = write.flush().await;
                let _ = write.shutdown().await;
                let _ = done.send(());
                return;
            }
        }
        if write.write_all(&buf).await.is_err() {
            return;
        }
        // Flush only when nothing else is queued: frames sent together
        // leave in one write.
        if outgoing.is_empty() && write.flush().await.is_err() {
            return;
        }
    }
}

fn control(buf: &mut BytesMut, kind: u16, flags: u8, length: usize) {
    buf.put_u16(0x8000 | VERSION);
    buf.put_u16(kind);
    buf.put_u8(flags);
    buf.put_uint(length as u64, 3);
}

/// The client's header blocks, through one zlib stream.
struct HeaderReader {
    inflate: Decompress,
}

impl HeaderReader {
    fn new() -> Self {
        HeaderReader {
            inflate: Decompress::new(true),
        }
    }

    /// One header block: a count, then length-prefixed names and values.
    fn read(&mut self, compressed: &[u8]) -> Option<HashMap<String, String>> {
        let raw = self.inflate(compressed)?;
        let mut raw = &raw[..];
        let count = take_u32(&mut raw)?;
        let mut headers = HashMap::new();
        for _ in 0..count {
            let name = take_str(&mut raw)?;
            let value = take_str(&mut raw)?;
            headers.insert(name.to_ascii_lowercase(), value);
        }
        Some(headers)
    }

    fn inflate(&mut self, mut input: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(input.len() * 4 + 64);
        loop {
            if out.capacity() - out.len() < 256 {
                out.reserve(out.capacity().max(1024));
            }
            let before = self.inflate.total_in();
            let result = self
                .inflate
                .decompress_vec(input, &mut out, FlushDecompress::Sync);
            input = &input[(self.inflate.total_in() - before) as usize..];
            match result {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate.set_dictionary(DICTIONARY).ok()?;
                    continue;
                }
                Err(_) => return None,
            }
            if input.is_empty() && out.capacity() > out.len() {
                return Some(out);
            }
            if out.len() > MAX_HEADER_BLOCK {
                return None;
            }
        }
    }
}

/// Our header blocks, through one zlib stream.
struct HeaderWriter {
    deflate: Compress,
}

impl HeaderWriter {
    fn new() -> Self {
        let mut deflate = Compress::new(Compression::default(), true);
        deflate
            .set_dictionary(DICTIONARY)
            .expect("a fresh compressor takes a dictionary");
        HeaderWriter { deflate }
    }

    /// A header block with no headers (what every SYN_REPLY carries).
    fn empty_block(&mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        let _ = self
            .deflate
            .compress_vec(&0u32.to_be_bytes(), &mut out, FlushCompress::Sync);
        out
    }
}

fn take_u32(raw: &mut &[u8]) -> Option<u32> {
    let (head, rest) = raw.split_at_checked(4)?;
    *raw = rest;
    Some(u32::from_be_bytes(head.try_into().ok()?))
}

fn take_str(raw: &mut &[u8]) -> Option<String> {
    let len = take_u32(raw)? as usize;
    let (text, rest) = raw.split_at_checked(len)?;
    *raw = rest;
    String::from_utf8(text.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client's header block, made with an independent zlib context
    /// primed with the dictionary, reads back.
    #[test]
    fn header_blocks_round_trip_through_the_dictionary() {
        let mut client = Compress::new(Compression::default(), true);
        client.set_dictionary(DICTIONARY).unwrap();
        let mut block = Vec::new();
        for (name, value) in [("streamtype", "error"), ("port", "8080")] {
            block.extend_from_slice(&(name.len() as u32).to_be_bytes());
            block.extend_from_slice(name.as_bytes());
            block.extend_from_slice(&(value.len() as u32).to_be_bytes());
            block.extend_from_slice(value.as_bytes());
        }
        let mut raw = 2u32.to_be_bytes().to_vec();
        raw.extend_from_slice(&block);
        let mut reader = HeaderReader::new();
        for _ in 0..2 {
            // The second block continues the same zlib stream.
            let mut compressed = Vec::with_capacity(256);
            client
                .compress_vec(&raw, &mut compressed, FlushCompress::Sync)
                .unwrap();
            let headers = reader.read(&compressed).unwrap();
            assert_eq!(headers["streamtype"], "error");
            assert_eq!(headers["port"], "8080");
        }
        // Ours decompress with the same dictionary.
        let mut writer = HeaderWriter::new();
        let mut peer = HeaderReader::new();
        for _ in 0..2 {
            assert!(peer.read(&writer.empty_block()).unwrap().is_empty());
        }
    }

    /// A header block of a few KiB that inflates to 64 MiB is refused,
    /// not inflated.
    #[test]
    fn a_header_block_may_not_inflate_without_bound() {
        let mut client = Compress::new(Compression::best(), true);
        client.set_dictionary(DICTIONARY).unwrap();
        let zeros = vec![0u8; 64 << 20];
        let mut compressed = Vec::with_capacity(1 << 20);
        client
            .compress_vec(&zeros, &mut compressed, FlushCompress::Sync)
            .unwrap();
        assert!(compressed.len() < MAX_FRAME, "{}", compressed.len());
        assert!(HeaderReader::new().read(&compressed).is_none());
    }
}
