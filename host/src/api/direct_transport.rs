//! The virtual DirectTransport: mediasoup's DirectTransport API (RTP/RTCP and data messages
//! straight from and to Rust) over a real one in a cell.

pub use mediasoup::direct_transport::*;

use super::router::{Placed, Router};
use super::transport_core::TransportCore;
use super::transport_macro::virtual_transport;
use crate::backend::DirectTransportBackend;
use crate::internals::object::inert_handler;
use crate::worker::NotificationError;
use event_listener_primitives::HandlerId;
use mediasoup::prelude::AppData;
use mediasoup::worker::RequestError;
use std::sync::Arc;

/// A direct transport: the Rust application itself is the endpoint.
#[derive(Clone)]
#[must_use = "Direct transport will be closed on drop, make sure to keep it around for as long as needed"]
pub struct DirectTransport {
    pub(crate) inner: Arc<TransportCore<dyn DirectTransportBackend, ()>>,
}

virtual_transport!(
    DirectTransport,
    WeakDirectTransport,
    dyn DirectTransportBackend,
    mediasoup::direct_transport::DirectTransport,
    ()
);

impl DirectTransport {
    pub(crate) fn wrap(
        router: &Router,
        placed: Placed,
        real: Arc<dyn DirectTransportBackend>,
        app_data: AppData,
    ) -> Result<Self, RequestError> {
        Ok(Self { inner: TransportCore::new(router, placed, real, (), app_data)? })
    }

    /// Send an RTCP packet from the Rust process.
    pub fn send_rtcp(&self, rtcp_packet: Vec<u8>) -> Result<(), NotificationError> {
        match self.inner.real.get() {
            Some(real) => real.send_rtcp(rtcp_packet).map_err(|_| NotificationError::ChannelClosed),
            None => Err(NotificationError::ChannelClosed),
        }
    }

    /// Callback is called when the direct transport receives an RTCP packet from its router.
    pub fn on_rtcp<F: Fn(&[u8]) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.inner.real.get().map_or_else(inert_handler, |r| r.on_rtcp(Arc::new(callback)))
    }
}
