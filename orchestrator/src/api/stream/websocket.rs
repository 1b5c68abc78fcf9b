//! The channel protocol over a WebSocket: each binary message starts with
//! its channel's number (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize);
//! in `v5.channel.k8s.io` a message `[255, n]` closes channel `n` (stdin's
//! end of file).

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use bytes::Bytes;

use super::{Channel, Transport};

/// v5's close signal.
const CLOSE: u8 = 255;

/// client-go starts reading the connection before it has registered its
/// streams and drops data for a stream it does not know yet: output is held
/// back until this long after the upgrade (a command's own start-up usually
/// takes longer anyway).
const CLIENT_SETTLE: Duration = Duration::from_millis(100);

/// Carries a session over `socket` until the session has said everything,
/// or the client leaves.
pub(super) async fn carry(mut socket: WebSocket, v5: bool, transport: Transport) {
    let Transport {
        to_session,
        mut from_session,
    } = transport;
    let settled = tokio::time::Instant::now() + CLIENT_SETTLE;
    let mut to_session = Some(to_session);
    loop {
        tokio::select! {
            outgoing = from_session.recv() => {
                let Some((channel, data)) = outgoing else { break };
                tokio::time::sleep_until(settled).await;
                let mut message = Vec::with_capacity(1 + data.len());
                message.push(channel.number());
                message.extend_from_slice(&data);
                if socket.send(Message::Binary(message.into())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv(), if to_session.is_some() => {
                let Some(sender) = &to_session else { continue };
                let delivered = match incoming {
                    Some(Ok(Message::Close(_)) | Err(_)) | None => false,
                    Some(Ok(message)) => match payload(&message) {
                        Some(data) => deliver(sender, data, v5).await,
                        None => true,
                    },
                };
                if !delivered {
                    // The client left: the session sees its channels end
                    // and finishes; what it still says goes nowhere.
                    to_session = None;
                }
            }
        }
    }
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: close_code::NORMAL,
            reason: "".into(),
        })))
        .await;
    // Let the client read everything and answer the close.
    while let Some(Ok(message)) = socket.recv().await {
        if matches!(message, Message::Close(_)) {
            break;
        }
    }
}

/// The bytes a message carries: binary messages', and text messages' too
/// (the Python client sends strings as text), as the API server reads them.
pub(crate) fn payload(message: &Message) -> Option<&[u8]> {
    match message {
        Message::Binary(data) => Some(data),
        Message::Text(text) => Some(text.as_bytes()),
        _ => None,
    }
}

/// Hands one message to the session; false once the session is gone.
async fn deliver(
    sender: &tokio::sync::mpsc::Sender<super::FromClient>,
    data: &[u8],
    v5: bool,
) -> bool {
    let Some((&first, rest)) = data.split_first() else {
        return true;
    };
    if first == CLOSE && v5 {
        return match rest.first().copied().and_then(Channel::from_number) {
            Some(channel) => sender.send((channel, None)).await.is_ok(),
            None => true,
        };
    }
    match Channel::from_number(first) {
        Some(channel) => sender
            .send((channel, Some(Bytes::copy_from_slice(rest))))
            .await
            .is_ok(),
        None => true,
    }
}

/// A WebSocket's binary messages as one byte stream each way: what
/// kubectl 1.31 and later tunnel SPDY through for port-forward.
pub(crate) fn byte_stream(mut socket: WebSocket) -> tokio::io::DuplexStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let (mut read, mut write) = tokio::io::split(ours);
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            tokio::select! {
                message = socket.recv() => match message {
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                    Some(Ok(message)) => {
                        if let Some(data) = payload(&message)
                            && write.write_all(data).await.is_err()
                        {
                            break;
                        }
                    }
                },
                read = read.read(&mut buf) => match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let message = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
                        if socket.send(message).await.is_err() {
                            break;
                        }
                    }
                },
            }
        }
        let _ = write.shutdown().await;
        let _ = socket
            .send(Message::Close(Some(CloseFrame {
                code: close_code::NORMAL,
                reason: "".into(),
            })))
            .await;
    });
    theirs
}
