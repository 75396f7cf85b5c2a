//! The virtual PipeTransport: mediasoup's PipeTransport API over a real one in a cell.

pub use mediasoup::pipe_transport::*;

use super::router::{Placed, Router};
use super::transport_core::TransportCore;
use super::transport_macro::virtual_transport;
use crate::backend::PipeTransportBackend;
use crate::internals::object::inert_handler;
use event_listener_primitives::HandlerId;
use mediasoup::prelude::AppData;
use mediasoup::types::data_structures::{SctpState, TransportTuple};
use mediasoup::types::sctp_parameters::{SctpNegotiatedCapabilities, SctpParameters};
use mediasoup::types::srtp_parameters::SrtpParameters;
use mediasoup::worker::RequestError;
use std::sync::Arc;

/// Data kept for reading after the transport closed.
pub(crate) struct PipeData {
    tuple: TransportTuple,
    sctp_parameters: Option<SctpParameters>,
    srtp_parameters: Option<SrtpParameters>,
}

/// A pipe transport: connects two routers (on the same or different hosts).
#[derive(Clone)]
#[must_use = "Pipe transport will be closed on drop, make sure to keep it around for as long as needed"]
pub struct PipeTransport {
    pub(crate) inner: Arc<TransportCore<dyn PipeTransportBackend, PipeData>>,
}

virtual_transport!(
    PipeTransport,
    WeakPipeTransport,
    dyn PipeTransportBackend,
    mediasoup::pipe_transport::PipeTransport,
    PipeData
);

impl PipeTransport {
    pub(crate) fn wrap(
        router: &Router,
        placed: Placed,
        real: Arc<dyn PipeTransportBackend>,
        app_data: AppData,
    ) -> Result<Self, RequestError> {
        let data = PipeData {
            tuple: real.tuple(),
            sctp_parameters: real.sctp_parameters(),
            srtp_parameters: real.srtp_parameters(),
        };
        Ok(Self { inner: TransportCore::new(router, placed, real, data, app_data)? })
    }

    fn real(&self) -> Option<Arc<dyn PipeTransportBackend>> {
        self.inner.real.get()
    }

    /// Provide the PipeTransport with remote parameters.
    pub async fn connect(&self, remote_parameters: PipeTransportRemoteParameters) -> Result<(), RequestError> {
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

    /// Callback is called when the transport tuple changes.
    pub fn on_tuple<F: Fn(&TransportTuple) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.real().map_or_else(inert_handler, |r| r.on_tuple(Arc::new(callback)))
    }

    /// Callback is called when the transport SCTP state changes.
    pub fn on_sctp_state_change<F: Fn(SctpState) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.real().map_or_else(inert_handler, |r| r.on_sctp_state_change(Arc::new(callback)))
    }
}
