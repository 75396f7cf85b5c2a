//! What each operation needs before a host carries it out: one table, an exhaustive match, so
//! a new [`Op`] cannot be added without deciding its access.

use super::{ConnectParams, Op, WireError};
use mafalda_plugin_sdk::types::{Destination, Operation};
use std::net::{IpAddr, Ipv4Addr};

/// What an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Makes a new object: the grant in force (the router's, else the session's) must cover the
    /// target's room and be unexpired, and the auth plugin is asked for the operation. Counts
    /// against the session's object quota.
    Create(Operation),
    /// Points a transport somewhere (`connect`): like [`Access::Create`] of a transport (the
    /// plugin is asked for [`Operation::CreateTransport`] and shown the destination,
    /// [`Op::destination`]), but it makes no object.
    Connect,
    /// Uses an object the session holds: the grant in force must cover its room and be
    /// unexpired (checked on the host; the plugin granted the object when it was made).
    Use,
    /// Reads a worker shared with other sessions, or its WebRTC server: shows only the
    /// caller's own objects; needs an unexpired grant (any room).
    ReadWorker,
    /// Changes a worker shared with other sessions (log level and tags): operators only, the
    /// plugin is asked for [`Operation::Admin`].
    Admin,
    /// Replaces a token: the new one is checked as a connection's, for the same identity.
    Refresh,
    /// Releases the caller's own object: always allowed, even once its grant expired.
    Release,
}

impl Access {
    /// Whether the operation makes a new object.
    pub fn creates(self) -> bool {
        matches!(self, Access::Create(_))
    }

    /// What the auth plugin is asked about, for an operation it decides on: a new object's
    /// operation, and a `connect` as a new transport of the router.
    pub fn asked(self) -> Option<Operation> {
        match self {
            Access::Create(operation) => Some(operation),
            Access::Connect => Some(Operation::CreateTransport),
            Access::Use | Access::ReadWorker | Access::Admin | Access::Refresh | Access::Release => None,
        }
    }
}

impl Op {
    /// Where the operation lets a transport send media, as the auth plugin is shown it: a
    /// plain or pipe transport's `connect` destination (IPv4-mapped IPv6 as plain IPv4, the
    /// form mediasoup is then given), and for a new `comedia` plain transport, which sends to
    /// whoever sends to it first, the unspecified address (anywhere). `None` for every other
    /// operation. An undecodable payload is a bad request.
    pub fn destination(&self) -> Result<Option<Destination>, WireError> {
        let bad = |e: super::ProtoError| WireError::BadRequest(e.to_string());
        let to = |ip: IpAddr, port, rtcp_port| Destination { ip: ip.to_canonical(), port, rtcp_port };
        Ok(match self {
            Self::Connect { params, .. } => match params.get().map_err(bad)? {
                ConnectParams::Plain { ip, port, rtcp_port, .. } => ip.map(|ip| to(ip, port, rtcp_port)),
                ConnectParams::Pipe { ip, port, .. } => Some(to(ip, Some(port), None)),
                ConnectParams::WebRtc { .. } => None,
            },
            Self::CreatePlainTransport { options, .. } => {
                options.get().map_err(bad)?.comedia.then(|| to(IpAddr::V4(Ipv4Addr::UNSPECIFIED), None, None))
            }
            _ => None,
        })
    }

    /// What the operation needs.
    pub fn access(&self) -> Access {
        match self {
            Self::CreateRouter { .. } => Access::Create(Operation::CreateRouter),
            Self::CreateWebRtcTransport { .. }
            | Self::CreatePlainTransport { .. }
            | Self::CreatePipeTransport { .. }
            | Self::CreateDirectTransport { .. } => Access::Create(Operation::CreateTransport),
            // An observer reads the audio of the router's producers.
            Self::CreateAudioLevelObserver { .. } | Self::CreateActiveSpeakerObserver { .. } => {
                Access::Create(Operation::Consume)
            }
            Self::Connect { .. } => Access::Connect,
            Self::Produce { .. } => Access::Create(Operation::Produce),
            Self::Consume { .. } => Access::Create(Operation::Consume),
            Self::ProduceData { .. } => Access::Create(Operation::ProduceData),
            Self::ConsumeData { .. } => Access::Create(Operation::ConsumeData),
            Self::WorkerDump { .. } | Self::WebRtcServer { .. } => Access::ReadWorker,
            Self::UpdateSettings { .. } | Self::CreateWebRtcServer { .. } => Access::Admin,
            Self::Refresh { .. } => Access::Refresh,
            Self::Close { .. } => Access::Release,
            Self::CapabilitiesFor { .. }
            | Self::SetMaxIncomingBitrate { .. }
            | Self::SetMaxOutgoingBitrate { .. }
            | Self::SetMinOutgoingBitrate { .. }
            | Self::RestartIce { .. }
            | Self::SendData { .. }
            | Self::SendToDataConsumer { .. }
            | Self::GetBufferedAmount { .. }
            | Self::SetBufferedAmountLowThreshold { .. }
            | Self::SetSubchannels { .. }
            | Self::AddSubchannel { .. }
            | Self::RemoveSubchannel { .. }
            | Self::SendRtp { .. }
            | Self::SendRtcp { .. }
            | Self::SetPreferredLayers { .. }
            | Self::SetPriority { .. }
            | Self::RequestKeyFrame { .. }
            | Self::AddProducer { .. }
            | Self::RemoveProducer { .. }
            | Self::Pause { .. }
            | Self::Resume { .. }
            | Self::Dump { .. }
            | Self::EnableTraceEvent { .. }
            | Self::GetStats { .. } => Access::Use,
        }
    }
}
