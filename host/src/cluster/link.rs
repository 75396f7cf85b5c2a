//! Framed messages over one QUIC bidirectional stream: a writer task fed by a channel, and a
//! reader that turns the stream into [`Message`]s with the sans-IO [`FrameReader`].

use super::proto::{encode, FrameReader, Message, ProtoError};
use tokio::sync::mpsc;
use tracing::debug;

/// Where frames to one connection are queued (the writer task sends them in order).
pub type Outbox = mpsc::UnboundedSender<Vec<u8>>;

/// Why a link's stream ended.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The other side sent something that is not a message (the connection is closed).
    #[error(transparent)]
    Proto(#[from] ProtoError),
    /// The stream failed or closed.
    #[error("stream: {0}")]
    Stream(String),
}

/// Starts the writer task of `send`; frames queued on the returned outbox are written in order
/// until the outbox is dropped or the stream fails.
pub fn spawn_writer(mut send: quinn::SendStream) -> Outbox {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if let Err(error) = send.write_all(&frame).await {
                debug!(%error, "link writer stopped");
                return;
            }
        }
        let _ = send.finish();
    });
    tx
}

/// Queues a message; false when the connection is gone (or the message cannot be encoded).
pub fn send(outbox: &Outbox, message: &Message) -> bool {
    match encode(message) {
        Ok(frame) => outbox.send(frame).is_ok(),
        Err(error) => {
            debug!(%error, "message not sent");
            false
        }
    }
}

/// Reads messages from `recv`, one at a time.
pub struct MessageStream {
    recv: quinn::RecvStream,
    reader: FrameReader,
}

impl MessageStream {
    /// Wraps a receive stream.
    pub fn new(recv: quinn::RecvStream) -> Self {
        Self { recv, reader: FrameReader::default() }
    }

    /// The next message; `Ok(None)` when the stream ended cleanly.
    pub async fn next(&mut self) -> Result<Option<Message>, LinkError> {
        loop {
            if let Some(message) = self.reader.next_message()? {
                return Ok(Some(message));
            }
            match self.recv.read_chunk(64 * 1024, true).await {
                Ok(Some(chunk)) => self.reader.push(&chunk.bytes),
                Ok(None) => return Ok(None),
                Err(error) => return Err(LinkError::Stream(error.to_string())),
            }
        }
    }
}
