//! Framed messages over one ordered byte stream — a QUIC bidirectional stream between hosts, a
//! Unix socket between a host and its worker processes: a writer task fed by a bounded outbox,
//! and a reader that turns the stream into [`Message`]s with the sans-IO [`FrameReader`].

use super::proto::{encode, preamble, FrameReader, Message, ProtoError, PROTOCOL_VERSION};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tracing::debug;

/// Frames queued together are written together up to this many bytes.
const BATCH_BYTES: usize = 64 * 1024;
/// Bytes read from the stream at once.
const READ_BYTES: usize = 64 * 1024;

/// Why a frame was not queued.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The connection is gone.
    #[error("the connection is closed")]
    Closed,
    /// The other side does not read: the connection was closed.
    #[error("the other side does not read ({limit} bytes queued): connection closed")]
    Full {
        /// The limit.
        limit: usize,
    },
    /// The message cannot be a frame (e.g. it exceeds the frame limit).
    #[error(transparent)]
    Encode(#[from] ProtoError),
}

/// How a link's connection is closed (a QUIC connection with a reason, a socket shut down).
pub trait Closer: Send + Sync {
    /// Closes the connection; `reason` is for the other side's logs.
    fn close(&self, reason: &[u8]);
}

impl Closer for quinn::Connection {
    fn close(&self, reason: &[u8]) {
        quinn::Connection::close(self, 3u32.into(), reason);
    }
}

/// Closes a Unix socket link: shuts the socket down (both sides see its end) through a
/// descriptor of its own, so the reader and writer tasks keep theirs.
#[derive(Debug)]
pub struct SocketCloser(std::os::unix::net::UnixStream);

impl SocketCloser {
    /// The closer of `socket`.
    pub fn of(socket: &tokio::net::UnixStream) -> std::io::Result<Self> {
        use std::os::fd::AsFd;
        let fd = socket.as_fd().try_clone_to_owned()?;
        Ok(Self(std::os::unix::net::UnixStream::from(fd)))
    }
}

impl Closer for SocketCloser {
    fn close(&self, _reason: &[u8]) {
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }
}

/// Where frames to one connection are queued; the writer task sends them in order. At most
/// `limit` bytes wait: a peer that stops reading fills its transport's window, then this queue,
/// and then its connection is closed, so a host never buffers without end for a caller.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
    limit: usize,
    closer: Arc<dyn Closer>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("queued", &self.queued()).field("limit", &self.limit).finish()
    }
}

impl Outbox {
    /// Queues a frame.
    pub fn send_frame(&self, frame: Vec<u8>) -> Result<(), OutboxError> {
        let len = frame.len();
        let queued = self.queued.fetch_add(len, Ordering::AcqRel) + len;
        if queued > self.limit {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            self.close(b"not reading: outbox full");
            return Err(OutboxError::Full { limit: self.limit });
        }
        self.tx.send(frame).map_err(|_| {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            OutboxError::Closed
        })
    }

    /// Queues a message.
    pub fn send(&self, message: &Message) -> Result<(), OutboxError> {
        self.send_frame(encode(message)?)
    }

    /// Bytes waiting to be written.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Closes the connection.
    pub fn close(&self, reason: &[u8]) {
        self.closer.close(reason);
    }
}

/// Starts the writer task of `send` (a QUIC stream of `connection`): the preamble of this
/// build's protocol version, then the frames queued on the returned outbox, in order, until
/// every outbox clone is dropped or the stream fails.
pub fn spawn_writer(send: quinn::SendStream, connection: &quinn::Connection, limit: usize) -> Outbox {
    spawn_writer_speaking(send, connection, limit, PROTOCOL_VERSION)
}

/// [`spawn_writer`] announcing protocol `version` (how an older or newer build speaks; tests of
/// version handling use it).
pub fn spawn_writer_speaking(
    send: quinn::SendStream,
    connection: &quinn::Connection,
    limit: usize,
    version: u16,
) -> Outbox {
    spawn_stream_writer(send, Arc::new(connection.clone()), limit, version)
}

/// [`spawn_writer`] over any ordered byte stream, closed through `closer`.
pub fn spawn_stream_writer<W>(mut send: W, closer: Arc<dyn Closer>, limit: usize, version: u16) -> Outbox
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let queued = Arc::new(AtomicUsize::new(0));
    let written = Arc::clone(&queued);
    tokio::spawn(async move {
        if let Err(error) = send.write_all(&preamble(version)).await {
            debug!(%error, "link writer stopped before its preamble");
            return;
        }
        // Small frames queued meanwhile leave in the same write (up to `BATCH_BYTES`).
        let mut held_back: Option<Vec<u8>> = None;
        loop {
            let first = match held_back.take() {
                Some(frame) => frame,
                None => match rx.recv().await {
                    Some(frame) => frame,
                    None => break,
                },
            };
            let mut batch = first;
            while batch.len() < BATCH_BYTES {
                match rx.try_recv() {
                    Ok(next) if batch.len() + next.len() <= BATCH_BYTES => batch.extend_from_slice(&next),
                    Ok(next) => {
                        held_back = Some(next);
                        break;
                    }
                    Err(_) => break,
                }
            }
            let len = batch.len();
            let result = send.write_all(&batch).await;
            written.fetch_sub(len, Ordering::AcqRel);
            if let Err(error) = result {
                debug!(%error, "link writer stopped");
                return;
            }
        }
        let _ = send.shutdown().await;
    });
    Outbox { tx, queued, limit, closer }
}

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

/// Reads messages from an ordered byte stream, one at a time.
pub struct MessageStream {
    recv: Box<dyn AsyncRead + Unpin + Send>,
    reader: FrameReader,
    buffer: Box<[u8]>,
}

impl MessageStream {
    /// Wraps a receive stream (a QUIC stream, a socket's read half).
    pub fn new(recv: impl AsyncRead + Unpin + Send + 'static) -> Self {
        Self { recv: Box::new(recv), reader: FrameReader::default(), buffer: vec![0; READ_BYTES].into_boxed_slice() }
    }

    /// Accepts frames of at most `limit` bytes from now on.
    pub fn limit(&mut self, limit: usize) {
        self.reader.set_limit(limit);
    }

    /// The next message; `Ok(None)` when the stream ended cleanly.
    pub async fn next(&mut self) -> Result<Option<Message>, LinkError> {
        loop {
            if let Some(message) = self.reader.next_message()? {
                return Ok(Some(message));
            }
            match self.recv.read(&mut self.buffer).await {
                Ok(0) => return Ok(None),
                Ok(n) => self.reader.push(&self.buffer[..n]),
                Err(error) => return Err(LinkError::Stream(error.to_string())),
            }
        }
    }
}
