//! Framed messages over one ordered byte stream — a QUIC bidirectional stream between hosts, a
//! Unix socket between a host and its worker processes: a writer task fed by a bounded outbox,
//! and a reader that turns the stream into [`Message`]s with the sans-IO [`FrameReader`].

use super::proto::{encode, preamble, FrameReader, Message, ProtoError, PROTOCOL_VERSION};
use crate::internals::object::lock;
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
    sink: Sink,
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
        match &self.sink {
            Sink::Task(tx) => tx.send(frame).map_err(|_| {
                self.queued.fetch_sub(len, Ordering::AcqRel);
                OutboxError::Closed
            }),
            Sink::Socket(socket) => socket.writer.send(frame, len, &self.queued),
        }
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
    Outbox { sink: Sink::Task(tx), queued, limit, closer }
}

/// Where an outbox's frames go.
#[derive(Clone)]
enum Sink {
    /// To a writer task (a QUIC stream: writes are async).
    Task(mpsc::UnboundedSender<Vec<u8>>),
    /// Straight into a Unix socket when nothing waits before them (the sender's thread makes
    /// the write: no handoff to another task or thread), else after what waits, by a task.
    Socket(Arc<SocketLink>),
}

/// The outboxes' share of a socket writer: when the last outbox goes, the writer finishes.
struct SocketLink {
    writer: Arc<SocketWriter>,
}

impl Drop for SocketLink {
    fn drop(&mut self) {
        lock(&self.writer.state).done = true;
        self.writer.wake.notify_one();
    }
}

/// What waits to be written into a socket, in order.
#[derive(Default)]
struct WriterState {
    queue: std::collections::VecDeque<Vec<u8>>,
    /// The task is writing a batch taken from the queue.
    writing: bool,
    /// Every outbox is gone: flush and stop.
    done: bool,
}

/// A Unix socket's write half, written by senders directly or by its task.
struct SocketWriter {
    half: tokio::net::unix::OwnedWriteHalf,
    state: std::sync::Mutex<WriterState>,
    wake: tokio::sync::Notify,
}

impl SocketWriter {
    /// Writes `frame` now if nothing waits before it and the socket takes it; else queues it
    /// (counted in `queued`) for the task.
    fn send(&self, frame: Vec<u8>, len: usize, queued: &AtomicUsize) -> Result<(), OutboxError> {
        let mut state = lock(&self.state);
        if state.done {
            queued.fetch_sub(len, Ordering::AcqRel);
            return Err(OutboxError::Closed);
        }
        if state.queue.is_empty() && !state.writing {
            match self.half.try_write(&frame) {
                Ok(n) if n == len => {
                    queued.fetch_sub(len, Ordering::AcqRel);
                    return Ok(());
                }
                Ok(n) => {
                    queued.fetch_sub(n, Ordering::AcqRel);
                    state.queue.push_back(frame[n..].to_vec());
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => state.queue.push_back(frame),
                Err(error) => {
                    debug!(%error, "socket link write failed");
                    queued.fetch_sub(len, Ordering::AcqRel);
                    return Err(OutboxError::Closed);
                }
            }
        } else {
            state.queue.push_back(frame);
        }
        drop(state);
        self.wake.notify_one();
        Ok(())
    }

    /// Writes all of `bytes`, waiting for the socket to take them.
    async fn write_all(&self, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            self.half.writable().await?;
            match self.half.try_write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// The task: writes what senders could not, in order, batched up to `BATCH_BYTES`.
    async fn run(self: Arc<Self>, queued: Arc<AtomicUsize>) {
        loop {
            let batch = {
                let mut state = lock(&self.state);
                if state.queue.is_empty() {
                    state.writing = false;
                    if state.done {
                        return;
                    }
                    None
                } else {
                    state.writing = true;
                    let mut batch = state.queue.pop_front().unwrap_or_default();
                    while let Some(next) = state.queue.front() {
                        if batch.len() + next.len() > BATCH_BYTES {
                            break;
                        }
                        batch.extend_from_slice(next);
                        state.queue.pop_front();
                    }
                    Some(batch)
                }
            };
            let Some(batch) = batch else {
                self.wake.notified().await;
                continue;
            };
            let result = self.write_all(&batch).await;
            queued.fetch_sub(batch.len(), Ordering::AcqRel);
            if let Err(error) = result {
                debug!(%error, "socket link writer stopped");
                let mut state = lock(&self.state);
                state.done = true;
                state.queue.clear();
                return;
            }
        }
    }
}

/// [`spawn_writer`] for a Unix socket's write half: frames are written by their sender's
/// thread when nothing waits before them (one syscall, no handoff), else by a task in order.
pub fn spawn_socket_writer(
    half: tokio::net::unix::OwnedWriteHalf,
    closer: Arc<dyn Closer>,
    limit: usize,
    version: u16,
) -> Outbox {
    let preamble = preamble(version).to_vec();
    let queued = Arc::new(AtomicUsize::new(preamble.len()));
    let mut state = WriterState::default();
    state.queue.push_back(preamble);
    let writer = Arc::new(SocketWriter { half, state: std::sync::Mutex::new(state), wake: tokio::sync::Notify::new() });
    tokio::spawn(Arc::clone(&writer).run(Arc::clone(&queued)));
    writer.wake.notify_one();
    Outbox { sink: Sink::Socket(Arc::new(SocketLink { writer })), queued, limit, closer }
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
