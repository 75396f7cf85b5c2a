//! The built-in RTP generator: real UDP datagrams with valid RTP headers and self-describing
//! payloads, paced at a packet rate, sent to a (comedia) PlainTransport.

use super::packet::{self, RtpHeader};
use super::payload::{self, PayloadKind};
use crate::media::{OPUS_PAYLOAD_TYPE, VP8_PAYLOAD_TYPE};
use event_listener_primitives::HandlerId;
use mediasoup::prelude::*;
use mediasoup::types::data_structures::TransportTuple;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What to send.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    /// SSRC of the stream (must match the producer's encodings).
    pub ssrc: u32,
    /// RTP payload type.
    pub payload_type: u8,
    /// Shape of the payload.
    pub kind: PayloadKind,
    /// RTP clock rate, used to advance timestamps.
    pub clock_rate: u32,
    /// Packets per second (must be > 0).
    pub packets_per_second: u32,
    /// Stop after this many packets; `None` runs until stopped.
    pub count: Option<u64>,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// Add an `ssrc-audio-level` header extension `(extension id, level in -dBov)`.
    pub audio_level: Option<(u8, u8)>,
}

impl GeneratorConfig {
    /// 50 packets/s of 20 ms Opus frames, endless.
    pub fn opus(ssrc: u32) -> Self {
        Self {
            ssrc,
            payload_type: OPUS_PAYLOAD_TYPE,
            kind: PayloadKind::Opus,
            clock_rate: 48_000,
            packets_per_second: 50,
            count: None,
            payload_len: 80,
            audio_level: None,
        }
    }

    /// 30 packets/s of VP8 key-frame packets, endless.
    pub fn vp8(ssrc: u32) -> Self {
        Self {
            ssrc,
            payload_type: VP8_PAYLOAD_TYPE,
            kind: PayloadKind::Vp8KeyFrame,
            clock_rate: 90_000,
            packets_per_second: 30,
            count: None,
            payload_len: 400,
            audio_level: None,
        }
    }

    /// The same stream, stopping after `count` packets.
    pub fn with_count(mut self, count: u64) -> Self {
        self.count = Some(count);
        self
    }

    /// The same stream with an `ssrc-audio-level` extension (id `extension_id`) saying the
    /// voice is at `-dbov` dBov (0 is loudest, 127 silence).
    pub fn with_audio_level(mut self, extension_id: u8, dbov: u8) -> Self {
        self.audio_level = Some((extension_id, dbov.min(127)));
        self
    }

    /// The same stream at another packet rate.
    pub fn with_rate(mut self, packets_per_second: u32) -> Self {
        self.packets_per_second = packets_per_second;
        self
    }
}

/// Why the generator could not start or stopped early.
#[derive(Debug, Error)]
pub enum GeneratorError {
    /// The target transport was closed before or while sending.
    #[error("RTP generator target transport {0} is closed")]
    TransportClosed(TransportId),
    /// A packet rate of zero.
    #[error("RTP generator packet rate must be at least 1 packet/s")]
    ZeroRate,
    /// The transport's local address is not an IP address.
    #[error("transport {id} listens on {address:?}, which is not an IP address")]
    BadAddress {
        /// The transport.
        id: TransportId,
        /// What it announced.
        address: String,
    },
    /// The payload type does not fit in 7 bits.
    #[error(transparent)]
    Packet(#[from] packet::RtpError),
    /// A socket error.
    #[error("RTP generator socket error: {0}")]
    Io(#[from] io::Error),
}

/// A running generator. Dropping it stops the sending task.
#[derive(Debug)]
pub struct RtpGenerator {
    sent: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<Result<u64, GeneratorError>>>,
    local_addr: SocketAddr,
    target: SocketAddr,
}

/// The transport a generator feeds, held weakly: a generator never keeps a transport open (in
/// mediasoup a transport closes when its last handle is dropped). Real mediasoup transports and
/// virtual (mafalda) ones both work.
#[derive(Debug, Clone)]
pub struct GeneratorTarget {
    id: TransportId,
    transport: Weak,
}

#[derive(Debug, Clone)]
enum Weak {
    Real(WeakPlainTransport),
    Virtual(mafalda_host::plain_transport::WeakPlainTransport),
}

/// A live target.
enum Live {
    Real(PlainTransport),
    Virtual(mafalda_host::plain_transport::PlainTransport),
}

impl Live {
    fn closed(&self) -> bool {
        match self {
            Live::Real(t) => t.closed(),
            Live::Virtual(t) => mafalda_host::transport::Transport::closed(t),
        }
    }

    fn tuple(&self) -> TransportTuple {
        match self {
            Live::Real(t) => t.tuple(),
            Live::Virtual(t) => t.tuple(),
        }
    }

    fn on_close(&self, callback: Box<dyn FnOnce() + Send>) -> HandlerId {
        match self {
            Live::Real(t) => t.on_close(callback),
            Live::Virtual(t) => mafalda_host::transport::Transport::on_close(t, callback),
        }
    }
}

impl GeneratorTarget {
    /// Targets a real mediasoup transport.
    pub fn of(transport: &PlainTransport) -> Self {
        Self { id: transport.id(), transport: Weak::Real(transport.downgrade()) }
    }

    /// The target transport's id.
    pub fn id(&self) -> TransportId {
        self.id
    }

    fn live(&self) -> Result<Live, GeneratorError> {
        let live = match &self.transport {
            Weak::Real(weak) => weak.upgrade().map(Live::Real),
            Weak::Virtual(weak) => weak.upgrade().map(Live::Virtual),
        };
        live.filter(|t| !t.closed()).ok_or(GeneratorError::TransportClosed(self.id))
    }
}

impl From<&PlainTransport> for GeneratorTarget {
    fn from(transport: &PlainTransport) -> Self {
        Self::of(transport)
    }
}

impl From<&mafalda_host::plain_transport::PlainTransport> for GeneratorTarget {
    fn from(transport: &mafalda_host::plain_transport::PlainTransport) -> Self {
        let id = mafalda_host::transport::Transport::id(transport);
        Self { id, transport: Weak::Virtual(transport.downgrade()) }
    }
}

/// Where a datagram for a transport with this `tuple` must go.
fn tuple_address(id: TransportId, tuple: &TransportTuple) -> Result<SocketAddr, GeneratorError> {
    let ip: IpAddr = tuple
        .local_address()
        .parse()
        .map_err(|_| GeneratorError::BadAddress { id, address: tuple.local_address().clone() })?;
    let ip = if ip.is_unspecified() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { ip };
    Ok(SocketAddr::new(ip, tuple.local_port()))
}

/// Where a datagram for `transport` must go.
pub fn transport_address(transport: &PlainTransport) -> Result<SocketAddr, GeneratorError> {
    tuple_address(transport.id(), &transport.tuple())
}

impl RtpGenerator {
    /// Starts sending to `target` (a comedia PlainTransport with a producer for
    /// `config.ssrc`). Fails at once if the transport is already closed; stops with
    /// [`GeneratorError::TransportClosed`] if it closes while sending.
    pub async fn start(target: impl Into<GeneratorTarget>, config: GeneratorConfig) -> Result<Self, GeneratorError> {
        if config.packets_per_second == 0 {
            return Err(GeneratorError::ZeroRate);
        }
        let target: GeneratorTarget = target.into();
        let transport = target.live()?;
        let id = target.id();
        let target = tuple_address(id, &transport.tuple())?;
        let bind: SocketAddr = match target.ip() {
            IpAddr::V4(ip) if ip.is_loopback() => (Ipv4Addr::LOCALHOST, 0).into(),
            IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            IpAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(bind).await?;
        let local_addr = socket.local_addr()?;
        let (closed_tx, closed_rx) = watch::channel(false);
        let on_close = transport.on_close(Box::new(move || {
            let _ = closed_tx.send(true);
        }));
        // The transport may have closed between the check above and the registration.
        if transport.closed() {
            return Err(GeneratorError::TransportClosed(id));
        }
        drop(transport);
        let (stop, stop_rx) = watch::channel(false);
        let sent = Arc::new(AtomicU64::new(0));
        let sending = Sending { socket, target, config, sent: Arc::clone(&sent), id };
        let task = tokio::spawn(async move {
            let result = sending.run(stop_rx, closed_rx).await;
            drop(on_close);
            result
        });
        Ok(Self { sent, stop, task: Some(task), local_addr, target })
    }

    /// Packets sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// The address packets are sent from.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address packets are sent to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Waits until the configured count is sent (or the transport closes). Never returns for an
    /// endless generator unless its transport closes.
    pub async fn finished(mut self) -> Result<u64, GeneratorError> {
        self.join().await
    }

    /// Stops sending and returns how many packets were sent.
    pub async fn stop(mut self) -> Result<u64, GeneratorError> {
        let _ = self.stop.send(true);
        self.join().await
    }

    async fn join(&mut self) -> Result<u64, GeneratorError> {
        match self.task.take() {
            Some(task) => task.await.map_err(|e| GeneratorError::Io(io::Error::other(e)))?,
            None => Ok(self.sent()),
        }
    }
}

impl Drop for RtpGenerator {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

struct Sending {
    socket: UdpSocket,
    target: SocketAddr,
    config: GeneratorConfig,
    sent: Arc<AtomicU64>,
    id: TransportId,
}

impl Sending {
    async fn run(
        self,
        mut stop: watch::Receiver<bool>,
        mut closed: watch::Receiver<bool>,
    ) -> Result<u64, GeneratorError> {
        let config = &self.config;
        let period = Duration::from_secs_f64(1.0 / f64::from(config.packets_per_second));
        let ticks_per_packet = config.clock_rate / config.packets_per_second.max(1);
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut index: u64 = 0;
        loop {
            if config.count.is_some_and(|count| index >= count) {
                return Ok(index);
            }
            tokio::select! {
                _ = interval.tick() => {}
                _ = stop.changed() => return Ok(index),
                _ = closed.changed() => return Err(GeneratorError::TransportClosed(self.id)),
            }
            if *closed.borrow() {
                return Err(GeneratorError::TransportClosed(self.id));
            }
            let header = RtpHeader {
                marker: index == 0,
                payload_type: config.payload_type,
                sequence: index as u16,
                timestamp: (index as u32).wrapping_mul(ticks_per_packet),
                ssrc: config.ssrc,
            };
            let body = payload::make(config.kind, index as u32, config.payload_len);
            let datagram = match config.audio_level {
                // Voice activity bit set, level in the low 7 bits.
                Some((id, level)) => packet::encode_with_extensions(&header, &[(id, &[0x80 | level])], &body)?,
                None => packet::encode(&header, &body)?,
            };
            self.socket.send_to(&datagram, self.target).await?;
            index += 1;
            self.sent.store(index, Ordering::Relaxed);
        }
    }
}
