//! The virtual PlainTransport: mediasoup's PlainTransport API over a real one in a cell.

pub use mediasoup::plain_transport::*;

use super::router::{Placed, Router};
use super::transport_core::TransportCore;
use super::transport_macro::virtual_transport;
use crate::backend::PlainTransportBackend;
use crate::internals::object::inert_handler;
use event_listener_primitives::HandlerId;
use mediasoup::prelude::AppData;
use mediasoup::types::data_structures::{SctpState, TransportTuple};
use mediasoup::types::sctp_parameters::{SctpNegotiatedCapabilities, SctpParameters};
use mediasoup::types::srtp_parameters::SrtpParameters;
use mediasoup::worker::RequestError;
use std::sync::Arc;

/// Data kept for reading after the transport closed.
pub(crate) struct PlainData {
    tuple: TransportTuple,
    sctp_parameters: Option<SctpParameters>,
    srtp_parameters: Option<SrtpParameters>,
}

/// A plain transport: RTP, RTCP (optionally SRTP) and SCTP over plain UDP/TCP.
#[derive(Clone)]
#[must_use = "Plain transport will be closed on drop, make sure to keep it around for as long as needed"]
pub struct PlainTransport {
    pub(crate) inner: Arc<TransportCore<dyn PlainTransportBackend, PlainData>>,
}

virtual_transport!(
    PlainTransport,
    WeakPlainTransport,
    dyn PlainTransportBackend,
    mediasoup::plain_transport::PlainTransport,
    PlainData
);

impl PlainTransport {
    pub(crate) fn wrap(
        router: &Router,
        placed: Placed,
        real: Arc<dyn PlainTransportBackend>,
        app_data: AppData,
    ) -> Result<Self, RequestError> {
        let data = PlainData {
            tuple: real.tuple(),
            sctp_parameters: real.sctp_parameters(),
            srtp_parameters: real.srtp_parameters(),
        };
        Ok(Self { inner: TransportCore::new(router, placed, real, data, app_data)? })
    }

    fn real(&self) -> Option<Arc<dyn PlainTransportBackend>> {
        self.inner.real.get()
    }

    /// Provide the PlainTransport with remote parameters.
    pub async fn connect(&self, remote_parameters: PlainTransportRemoteParameters) -> Result<(), RequestError> {
        self.inner.real.request()?.connect(remote_parameters).await
    }

    /// Set maximum incoming bitrate for media streams sent by the remote endpoint.
    pub async fn set_max_incoming_bitrate(&self, bitrate: u64) -> Result<(), RequestError> {
        self.inner.real.request()?.set_max_incoming_bitrate(bitrate).await
    }

    /// The transport tuple.
    #[must_use]
    pub fn tuple(&self) -> TransportTuple {
        self.real().map_or_else(|| self.inner.extra.tuple.clone(), |r| r.tuple())
    }

    /// The transport tuple for RTCP (when RTCP is not multiplexed).
    #[must_use]
    pub fn rtcp_tuple(&self) -> Option<TransportTuple> {
        self.real().and_then(|r| r.rtcp_tuple())
    }

    /// Local SCTP parameters.
    #[must_use]
    pub fn sctp_parameters(&self) -> Option<SctpParameters> {
        self.inner.extra.sctp_parameters
    }

    /// Current SCTP state.
    #[must_use]
    pub fn sctp_state(&self) -> Option<SctpState> {
        match self.real() {
            Some(real) => real.sctp_state(),
            None => self.inner.extra.sctp_parameters.map(|_| SctpState::Closed),
        }
    }

    /// SCTP negotiated capabilities.
    #[must_use]
    pub fn sctp_negotiated_capabilities(&self) -> Option<SctpNegotiatedCapabilities> {
        self.real().and_then(|r| r.sctp_negotiated_capabilities())
    }

    /// Local SRTP parameters.
    #[must_use]
    pub fn srtp_parameters(&self) -> Option<SrtpParameters> {
        self.real().map_or_else(|| self.inner.extra.srtp_parameters.clone(), |r| r.srtp_parameters())
    }

    /// Callback is called after the remote RTP origin has been discovered (comedia mode).
    pub fn on_tuple<F: Fn(&TransportTuple) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.real().map_or_else(inert_handler, |r| r.on_tuple(Arc::new(callback)))
    }

    /// Callback is called after the remote RTCP origin has been discovered.
    pub fn on_rtcp_tuple<F: Fn(&TransportTuple) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.real().map_or_else(inert_handler, |r| r.on_rtcp_tuple(Arc::new(callback)))
    }

    /// Callback is called when the transport SCTP state changes.
    pub fn on_sctp_state_change<F: Fn(SctpState) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.real().map_or_else(inert_handler, |r| r.on_sctp_state_change(Arc::new(callback)))
    }
}
