//! The virtual WebRtcTransport: mediasoup's WebRtcTransport API over a real one in a cell,
//! listening on its own ports or through the (virtual) WebRtcServer's real server in that cell.

pub use mediasoup::webrtc_transport::*;

use super::router::{Placed, Router};
use super::transport_core::TransportCore;
use super::transport_macro::virtual_transport;
use super::webrtc_server::WebRtcServer;
use crate::backend::{WebRtcListen, WebRtcTransportBackend, WebRtcTransportSettings};
use crate::internals::object::inert_handler;
use event_listener_primitives::HandlerId;
use mediasoup::prelude::{AppData, DtlsParameters, IceCandidate, IceParameters};
use mediasoup::types::data_structures::{DtlsState, IceRole, IceState, SctpState, TransportTuple};
use mediasoup::types::sctp_parameters::SctpZeroChecksum;
use mediasoup::types::sctp_parameters::{SctpNegotiatedCapabilities, SctpParameters};
use mediasoup::worker::RequestError;
use std::sync::Arc;

/// How a WebRtcTransport listens: its own ports, or a WebRtcServer's.
#[derive(Debug, Clone)]
pub enum WebRtcTransportListen {
    /// Listen on individual protocol/IP/port combinations.
    Individual {
        /// Listening infos.
        listen_infos: WebRtcTransportListenInfos,
    },
    /// Share the ports of a WebRtcServer.
    Server {
        /// The server.
        webrtc_server: WebRtcServer,
    },
}

/// Options for creating a WebRtcTransport (mediasoup's, with a virtual WebRtcServer).
#[derive(Debug, Clone)]
#[non_exhaustive]
#[allow(missing_docs)]
pub struct WebRtcTransportOptions {
    /// How the transport listens.
    pub listen: WebRtcTransportListen,
    pub enable_bwe: bool,
    pub initial_available_outgoing_bitrate: u64,
    pub max_incoming_bitrate: Option<u64>,
    pub max_outgoing_bitrate: Option<u64>,
    pub min_outgoing_bitrate: Option<u64>,
    pub enable_udp: bool,
    pub enable_tcp: bool,
    pub prefer_udp: bool,
    pub prefer_tcp: bool,
    pub ice_consent_timeout: u8,
    pub enable_sctp: bool,
    pub max_send_message_size: u32,
    pub max_receive_message_size: u32,
    pub sctp_send_buffer_size: u32,
    pub sctp_per_stream_send_queue_limit: u32,
    pub sctp_max_receiver_window_buffer_size: u32,
    pub sctp_default_stream_buffered_amount_low_threshold: u32,
    pub sctp_zero_checksum: SctpZeroChecksum,
    pub app_data: AppData,
}

impl WebRtcTransportOptions {
    fn from_settings(listen: WebRtcTransportListen, settings: WebRtcTransportSettings) -> Self {
        Self {
            listen,
            enable_bwe: settings.enable_bwe,
            initial_available_outgoing_bitrate: settings.initial_available_outgoing_bitrate,
            max_incoming_bitrate: settings.max_incoming_bitrate,
            max_outgoing_bitrate: settings.max_outgoing_bitrate,
            min_outgoing_bitrate: settings.min_outgoing_bitrate,
            enable_udp: settings.enable_udp,
            enable_tcp: settings.enable_tcp,
            prefer_udp: settings.prefer_udp,
            prefer_tcp: settings.prefer_tcp,
            ice_consent_timeout: settings.ice_consent_timeout,
            enable_sctp: settings.enable_sctp,
            max_send_message_size: settings.max_send_message_size,
            max_receive_message_size: settings.max_receive_message_size,
            sctp_send_buffer_size: settings.sctp_send_buffer_size,
            sctp_per_stream_send_queue_limit: settings.sctp_per_stream_send_queue_limit,
            sctp_max_receiver_window_buffer_size: settings.sctp_max_receiver_window_buffer_size,
            sctp_default_stream_buffered_amount_low_threshold: settings
                .sctp_default_stream_buffered_amount_low_threshold,
            sctp_zero_checksum: settings.sctp_zero_checksum,
            app_data: AppData::default(),
        }
    }

    /// Options listening on `listen_infos` (mediasoup's defaults otherwise).
    #[must_use]
    pub fn new(listen_infos: WebRtcTransportListenInfos) -> Self {
        let defaults = mediasoup::webrtc_transport::WebRtcTransportOptions::new(listen_infos.clone());
        Self::from_settings(WebRtcTransportListen::Individual { listen_infos }, WebRtcTransportSettings::of(&defaults))
    }

    /// Options sharing the ports of `webrtc_server` (mediasoup's defaults otherwise).
    #[must_use]
    pub fn new_with_server(webrtc_server: WebRtcServer) -> Self {
        // mediasoup's defaults, read from options built around a listen info that is never used.
        let unused = crate::config::listen_info(
            mediasoup::prelude::Protocol::Udp,
            std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            None,
        );
        let defaults =
            mediasoup::webrtc_transport::WebRtcTransportOptions::new(WebRtcTransportListenInfos::new(unused));
        let mut options = Self::from_settings(
            WebRtcTransportListen::Server { webrtc_server },
            WebRtcTransportSettings::of(&defaults),
        );
        options.enable_tcp = true; // as mediasoup's new_with_server
        options
    }

    /// The settings handed to the backend (everything but where it listens).
    fn settings(&self) -> WebRtcTransportSettings {
        WebRtcTransportSettings {
            enable_bwe: self.enable_bwe,
            initial_available_outgoing_bitrate: self.initial_available_outgoing_bitrate,
            max_incoming_bitrate: self.max_incoming_bitrate,
            max_outgoing_bitrate: self.max_outgoing_bitrate,
            min_outgoing_bitrate: self.min_outgoing_bitrate,
            enable_udp: self.enable_udp,
            enable_tcp: self.enable_tcp,
            prefer_udp: self.prefer_udp,
            prefer_tcp: self.prefer_tcp,
            ice_consent_timeout: self.ice_consent_timeout,
            enable_sctp: self.enable_sctp,
            max_send_message_size: self.max_send_message_size,
            max_receive_message_size: self.max_receive_message_size,
            sctp_send_buffer_size: self.sctp_send_buffer_size,
            sctp_per_stream_send_queue_limit: self.sctp_per_stream_send_queue_limit,
            sctp_max_receiver_window_buffer_size: self.sctp_max_receiver_window_buffer_size,
            sctp_default_stream_buffered_amount_low_threshold: self.sctp_default_stream_buffered_amount_low_threshold,
            sctp_zero_checksum: self.sctp_zero_checksum,
        }
    }
}

/// Data kept for reading after the transport closed.
pub(crate) struct WebRtcData {
    ice_role: IceRole,
    ice_parameters: IceParameters,
    ice_candidates: Vec<IceCandidate>,
    dtls_parameters: DtlsParameters,
    sctp_parameters: Option<SctpParameters>,
    webrtc_server: Option<WebRtcServer>,
}

/// A WebRTC transport: ICE + DTLS with a browser or native WebRTC endpoint.
#[derive(Clone)]
#[must_use = "WebRtc transport will be closed on drop, make sure to keep it around for as long as needed"]
pub struct WebRtcTransport {
    pub(crate) inner: Arc<TransportCore<dyn WebRtcTransportBackend, WebRtcData>>,
}

virtual_transport!(
    WebRtcTransport,
    WeakWebRtcTransport,
    dyn WebRtcTransportBackend,
    mediasoup::webrtc_transport::WebRtcTransport,
    WebRtcData
);

impl WebRtcTransport {
    pub(crate) async fn create(
        router: &Router,
        placed: Placed,
        options: WebRtcTransportOptions,
    ) -> Result<Self, RequestError> {
        let server = match &options.listen {
            WebRtcTransportListen::Server { webrtc_server } => Some(webrtc_server.clone()),
            WebRtcTransportListen::Individual { .. } => None,
        };
        if server.as_ref().is_some_and(|server| server.worker().id() != router.worker().id()) {
            // A server belongs to one worker; the worker of another refuses it, as mediasoup's.
            return Err(RequestError::Response {
                reason: "wrong webRtcServerId (no associated WebRtcServer found)".into(),
            });
        }
        let listen = match (&server, &options.listen) {
            (Some(server), _) => WebRtcListen::Server(server.real_in(&placed.cell).await?),
            (None, WebRtcTransportListen::Individual { listen_infos }) => {
                WebRtcListen::Individual(listen_infos.clone())
            }
            (None, WebRtcTransportListen::Server { .. }) => unreachable!("a server listen has its server"),
        };
        let real = placed.router_use.real().create_webrtc_transport(listen, options.settings()).await?;
        let data = WebRtcData {
            ice_role: real.ice_role(),
            ice_parameters: real.ice_parameters(),
            ice_candidates: real.ice_candidates(),
            dtls_parameters: real.dtls_parameters(),
            sctp_parameters: real.sctp_parameters(),
            webrtc_server: server.clone(),
        };
        let transport = Self { inner: TransportCore::new(router, placed, real, data, options.app_data)? };
        if let Some(server) = server {
            server.transport_created(&transport);
        }
        Ok(transport)
    }

    fn real(&self) -> Option<Arc<dyn WebRtcTransportBackend>> {
        self.inner.real.get()
    }

    /// Provide the WebRtcTransport with remote parameters.
    pub async fn connect(&self, remote_parameters: WebRtcTransportRemoteParameters) -> Result<(), RequestError> {
        self.inner.real.request()?.connect(remote_parameters).await
    }

    /// WebRTC server used during creation of this transport.
    pub fn webrtc_server(&self) -> &Option<WebRtcServer> {
        &self.inner.extra.webrtc_server
    }

    /// Set maximum incoming bitrate for media streams sent by the remote endpoint.
    pub async fn set_max_incoming_bitrate(&self, bitrate: u64) -> Result<(), RequestError> {
        self.inner.real.request()?.set_max_incoming_bitrate(bitrate).await
    }

    /// Set maximum outgoing bitrate for media streams sent by mediasoup.
    pub async fn set_max_outgoing_bitrate(&self, bitrate: u64) -> Result<(), RequestError> {
        self.inner.real.request()?.set_max_outgoing_bitrate(bitrate).await
    }

    /// Set minimum outgoing bitrate for media streams sent by mediasoup.
    pub async fn set_min_outgoing_bitrate(&self, bitrate: u64) -> Result<(), RequestError> {
        self.inner.real.request()?.set_min_outgoing_bitrate(bitrate).await
    }

    /// Local ICE role.
    #[must_use]
    pub fn ice_role(&self) -> IceRole {
        self.inner.extra.ice_role
    }

    /// Local ICE parameters.
    #[must_use]
    pub fn ice_parameters(&self) -> &IceParameters {
        &self.inner.extra.ice_parameters
    }

    /// Local ICE candidates.
    #[must_use]
    pub fn ice_candidates(&self) -> &Vec<IceCandidate> {
        &self.inner.extra.ice_candidates
    }

    /// Current ICE state (`Disconnected` once closed).
    #[must_use]
    pub fn ice_state(&self) -> IceState {
        self.real().map_or(IceState::Disconnected, |r| r.ice_state())
    }

    /// The selected transport tuple if ICE is in `Connected` or `Completed` state.
    #[must_use]
    pub fn ice_selected_tuple(&self) -> Option<TransportTuple> {
        self.real().and_then(|r| r.ice_selected_tuple())
    }

    /// Local DTLS parameters.
    #[must_use]
    pub fn dtls_parameters(&self) -> DtlsParameters {
        self.real().map_or_else(|| self.inner.extra.dtls_parameters.clone(), |r| r.dtls_parameters())
    }

    /// Current DTLS state (`Closed` once closed).
    #[must_use]
    pub fn dtls_state(&self) -> DtlsState {
        self.real().map_or(DtlsState::Closed, |r| r.dtls_state())
    }

    /// The remote certificate in PEM format.
    #[must_use]
    pub fn dtls_remote_cert(&self) -> Option<String> {
        self.real().and_then(|r| r.dtls_remote_cert())
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

    /// Restarts the ICE layer by generating new local ICE parameters.
    pub async fn restart_ice(&self) -> Result<IceParameters, RequestError> {
        self.inner.real.request()?.restart_ice().await
    }

    /// Callback is called when the WebRTC server used during creation of this transport is closed.
    pub fn on_webrtc_server_close(&self, callback: Box<dyn FnOnce() + Send + 'static>) -> HandlerId {
        match &self.inner.extra.webrtc_server {
            Some(server) => server.on_close(callback),
            None => inert_handler(),
        }
    }

    /// Callback is called when the transport ICE state changes.
    pub fn on_ice_state_change<F: Fn(IceState) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.real().map_or_else(inert_handler, |r| r.on_ice_state_change(Arc::new(callback)))
    }

    /// Callback is called after ICE state becomes `Completed` and when the selected tuple changes.
    pub fn on_ice_selected_tuple_change<F: Fn(&TransportTuple) + Send + Sync + 'static>(
        &self,
        callback: F,
    ) -> HandlerId {
        self.real().map_or_else(inert_handler, |r| r.on_ice_selected_tuple_change(Arc::new(callback)))
    }

    /// Callback is called when the transport DTLS state changes.
    pub fn on_dtls_state_change<F: Fn(DtlsState) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.real().map_or_else(inert_handler, |r| r.on_dtls_state_change(Arc::new(callback)))
    }

    /// Callback is called when the transport SCTP state changes.
    pub fn on_sctp_state_change<F: Fn(SctpState) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.real().map_or_else(inert_handler, |r| r.on_sctp_state_change(Arc::new(callback)))
    }
}
