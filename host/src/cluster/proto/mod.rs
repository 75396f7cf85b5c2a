//! The cluster wire protocol, sans-IO: message types, the stream preamble (magic and version,
//! a fixed layout checked before anything else is decoded), the frame codec (u32 big-endian
//! length, then a postcard message; at most [`MAX_FRAME`] bytes). Nothing here
//! touches a socket: [`encode`] gives bytes to write, [`FrameReader`] takes bytes read and
//! yields messages, so every rule is testable (and fuzzed) without a network.
//!
//! mediasoup's own types (RTP parameters, dumps, stats…) are carried as [`Payload`]s: their
//! serde form relies on skipped and defaulted fields, which only a self-describing encoding
//! keeps, so a payload is MessagePack with field names inside the postcard frame.

mod access;
mod messages;

pub use access::Access;
pub use messages::*;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::marker::PhantomData;
use thiserror::Error;

/// The protocol version spoken by this build, in every stream's preamble; a stream with
/// another one is refused before any message is decoded. Bumped on every change of a
/// message's layout.
/// 2: sessions resume with a secret (`Hello::resume` is a [`ResumeTicket`], `Welcome::secret`).
/// 3: the version moves into a fixed preamble; `Welcome` carries the host's boot id, its grace
/// and the first advert; requests are answered once across a resume.
/// 4: trace and video orientation events, `EnableTraceEvent`, the hosts' WebRTC servers
/// (`Op::WebRtcServer`, `WebRtcWire::server`).
/// 5: WebRTC servers of a worker process's parent (`Op::CreateWebRtcServer`,
/// `WebRtcWire::server` names which server).
/// 6: `CellAdvert::draining` (a draining host's workers leave placement everywhere).
pub const PROTOCOL_VERSION: u16 = 6;
/// The first bytes of every stream, before its version.
pub const MAGIC: [u8; 4] = *b"MAFA";
/// Bytes of the preamble: [`MAGIC`], then the version (u16 big-endian).
pub const PREAMBLE_LEN: usize = 6;

/// The preamble a side speaking `version` writes first on its stream.
pub fn preamble(version: u16) -> [u8; PREAMBLE_LEN] {
    let v = version.to_be_bytes();
    [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], v[0], v[1]]
}
/// The ALPN of every mafalda QUIC connection.
pub const ALPN: &[u8] = b"mafalda/1";
/// The largest frame body accepted or sent.
pub const MAX_FRAME: usize = 1 << 20;

/// Why bytes could not become a message (the connection that sent them is closed).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProtoError {
    /// A frame announced more than the reader accepts ([`MAX_FRAME`], less before a hello).
    #[error("frame of {0} bytes exceeds the frame limit")]
    Oversized(usize),
    /// The frame body is not a valid message.
    #[error("undecodable frame: {0}")]
    Decode(String),
    /// A payload inside a message is not the expected mediasoup value.
    #[error("undecodable payload: {0}")]
    Payload(String),
    /// The peer speaks another protocol version.
    #[error("protocol version mismatch: this side speaks {ours}, the other side {theirs}")]
    Version {
        /// Our version.
        ours: u16,
        /// Theirs.
        theirs: u16,
    },
    /// A message arrived where the protocol does not allow it.
    #[error("unexpected message: {0}")]
    Unexpected(String),
}

/// A mediasoup value in its self-describing form (MessagePack with field names).
pub struct Payload<T> {
    bytes: Vec<u8>,
    kind: PhantomData<fn() -> T>,
}

impl<T> Clone for Payload<T> {
    fn clone(&self) -> Self {
        Self { bytes: self.bytes.clone(), kind: PhantomData }
    }
}

impl<T> PartialEq for Payload<T> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl<T> Eq for Payload<T> {}

impl<T> std::fmt::Debug for Payload<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Payload<{}>({} bytes)", std::any::type_name::<T>(), self.bytes.len())
    }
}

/// A mediasoup value in its self-describing form: MessagePack with field names, in serde's
/// human-readable mode (addresses and ids as strings), which mediasoup's untagged enums (e.g.
/// `TransportTuple`) need to read back the variant they were written as.
pub fn pack<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut serializer = rmp_serde::Serializer::new(&mut bytes).with_struct_map().with_human_readable();
    // Serializing mediasoup's plain data types into a Vec cannot fail.
    if value.serialize(&mut serializer).is_err() {
        bytes.clear();
    }
    bytes
}

/// Reads a value written by [`pack`].
pub fn unpack<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ProtoError> {
    let mut deserializer = rmp_serde::Deserializer::from_read_ref(bytes).with_human_readable();
    T::deserialize(&mut deserializer).map_err(|e| ProtoError::Payload(e.to_string()))
}

impl<T: Serialize> Payload<T> {
    /// Packs a value.
    pub fn new(value: &T) -> Self {
        Self { bytes: pack(value), kind: PhantomData }
    }
}

impl<T: DeserializeOwned> Payload<T> {
    /// Unpacks the value.
    pub fn get(&self) -> Result<T, ProtoError> {
        unpack(&self.bytes)
    }
}

impl<T> Serialize for Payload<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.bytes)
    }
}

impl<'de, T> Deserialize<'de> for Payload<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes: serde_bytes_vec::Bytes = Deserialize::deserialize(deserializer)?;
        Ok(Self { bytes: bytes.0, kind: PhantomData })
    }
}

mod serde_bytes_vec {
    //! A byte vector deserialized from serde's bytes (postcard writes them length-prefixed).
    use serde::de::{Deserialize, Deserializer, Error, SeqAccess, Visitor};

    pub(super) struct Bytes(pub(super) Vec<u8>);

    impl<'de> Deserialize<'de> for Bytes {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Bytes;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Bytes, E> {
                    Ok(Bytes(v.to_vec()))
                }
                fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                    Ok(Bytes(v))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
                    let mut out = Vec::new();
                    while let Some(b) = seq.next_element()? {
                        out.push(b);
                    }
                    Ok(Bytes(out))
                }
            }
            deserializer.deserialize_bytes(V)
        }
    }
}

/// One frame: length prefix and body.
pub fn encode(message: &Message) -> Result<Vec<u8>, ProtoError> {
    let body = postcard::to_stdvec(message).map_err(|e| ProtoError::Decode(e.to_string()))?;
    if body.len() > MAX_FRAME {
        return Err(ProtoError::Oversized(body.len()));
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Decodes one frame body.
pub fn decode_body(body: &[u8]) -> Result<Message, ProtoError> {
    let (message, rest) = postcard::take_from_bytes(body).map_err(|e| ProtoError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(ProtoError::Decode(format!("{} trailing bytes after the message", rest.len())));
    }
    Ok(message)
}

/// Turns a byte stream into messages: first the preamble (another magic or version is an
/// error before anything is decoded), then frames. After an error the reader is unusable (the
/// connection is to be closed).
#[derive(Debug)]
pub struct FrameReader {
    buffer: Vec<u8>,
    failed: bool,
    /// The preamble was read and matched.
    greeted: bool,
    /// The largest frame body accepted now (at most [`MAX_FRAME`]).
    limit: usize,
}

impl Default for FrameReader {
    fn default() -> Self {
        Self { buffer: Vec::new(), failed: false, greeted: false, limit: MAX_FRAME }
    }
}

impl FrameReader {
    /// Accepts frame bodies of at most `limit` bytes from now on (capped at [`MAX_FRAME`]): a
    /// host takes small frames until a caller's hello is accepted.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.min(MAX_FRAME);
    }

    /// Bytes as they arrive.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete message, `None` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, ProtoError> {
        if self.failed {
            return Err(ProtoError::Unexpected("reader failed before".into()));
        }
        if !self.greeted {
            let Some(preamble) = self.buffer.get(..PREAMBLE_LEN) else { return Ok(None) };
            let checked = if preamble[..4] != MAGIC {
                Err(ProtoError::Decode("not a mafalda cluster stream (no preamble)".into()))
            } else {
                check_version(u16::from_be_bytes([preamble[4], preamble[5]]))
            };
            if let Err(error) = checked {
                self.failed = true;
                return Err(error);
            }
            self.buffer.drain(..PREAMBLE_LEN);
            self.greeted = true;
        }
        let Some(prefix) = self.buffer.get(..4) else { return Ok(None) };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len > self.limit {
            self.failed = true;
            return Err(ProtoError::Oversized(len));
        }
        if self.buffer.len() < 4 + len {
            return Ok(None);
        }
        let result = decode_body(&self.buffer[4..4 + len]);
        self.buffer.drain(..4 + len);
        if result.is_err() {
            self.failed = true;
        }
        result.map(Some)
    }
}

/// Checks the other side's version against this side's.
pub fn check_version(theirs: u16) -> Result<(), ProtoError> {
    if theirs == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(ProtoError::Version { ours: PROTOCOL_VERSION, theirs })
    }
}

#[cfg(test)]
mod tests;
