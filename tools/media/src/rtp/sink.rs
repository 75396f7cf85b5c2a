//! A UDP receiver standing in for a remote peer: counts the RTP packets a consumer sends and
//! proves each payload is byte-identical to what the generator sent.

use super::packet;
use super::payload::{self, PayloadKind};
use std::collections::BTreeSet;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What a sink has seen so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkReport {
    /// RTP packets whose payload was intact.
    pub intact: u64,
    /// RTP packets whose payload differed from what was sent (or did not parse).
    pub corrupt: u64,
    /// RTCP packets (multiplexed on the same port).
    pub rtcp: u64,
    /// Distinct payload indices received intact.
    pub indices: BTreeSet<u32>,
}

impl SinkReport {
    /// True when every index in `0..count` arrived intact.
    pub fn has_all(&self, count: u32) -> bool {
        self.indices.range(..count).count() == count as usize
    }
}

/// A bound receiving socket with a counting task. Dropping it stops the task.
#[derive(Debug)]
pub struct RtpSink {
    addr: SocketAddr,
    report: Arc<Mutex<SinkReport>>,
    updates: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

impl RtpSink {
    /// Binds on 127.0.0.1 with an ephemeral port and starts counting `kind` payloads.
    pub async fn bind(kind: PayloadKind) -> io::Result<Self> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = socket.local_addr()?;
        let report = Arc::new(Mutex::new(SinkReport::default()));
        let (tx, updates) = watch::channel(0);
        let task = tokio::spawn(receive(socket, kind, Arc::clone(&report), tx));
        Ok(Self { addr, report, updates, task })
    }

    /// Where consumers should send.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What a plain transport's `connect` needs to send here (RTCP multiplexed, no SRTP).
    pub fn remote_parameters(&self) -> mediasoup::plain_transport::PlainTransportRemoteParameters {
        mediasoup::plain_transport::PlainTransportRemoteParameters {
            ip: Some(self.addr.ip()),
            port: Some(self.addr.port()),
            rtcp_port: None,
            srtp_parameters: None,
        }
    }

    /// A snapshot of what arrived.
    pub fn report(&self) -> SinkReport {
        self.report.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Waits until `count` distinct intact payloads arrived, or `limit` passed; returns the
    /// report either way (the caller asserts on it).
    pub async fn wait_for(&self, count: u64, limit: Duration) -> SinkReport {
        let mut updates = self.updates.clone();
        let _ = tokio::time::timeout(limit, updates.wait_for(|seen| *seen >= count)).await;
        self.report()
    }
}

impl Drop for RtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(socket: UdpSocket, kind: PayloadKind, report: Arc<Mutex<SinkReport>>, updates: watch::Sender<u64>) {
    let mut buf = vec![0u8; 2048];
    while let Ok((len, _from)) = socket.recv_from(&mut buf).await {
        let datagram = &buf[..len];
        let mut report = report.lock().unwrap_or_else(PoisonError::into_inner);
        if packet::is_rtcp(datagram) {
            report.rtcp += 1;
            continue;
        }
        match packet::parse(datagram).ok().and_then(|p| payload::verify(kind, p.payload)) {
            Some(index) => {
                report.intact += 1;
                report.indices.insert(index);
            }
            None => report.corrupt += 1,
        }
        updates.send_replace(report.indices.len() as u64);
    }
}
