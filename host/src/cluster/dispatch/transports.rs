//! Transports: made on a router, connected, their bitrates and ICE.

use super::*;
use crate::cluster::server::MediaAddresses;
use mediasoup::direct_transport::DirectTransportOptions;
use mediasoup::pipe_transport::{PipeTransportOptions, PipeTransportRemoteParameters};
use mediasoup::plain_transport::{PlainTransportOptions, PlainTransportRemoteParameters};
use mediasoup::prelude::{ListenInfo, WebRtcTransportRemoteParameters};
use mediasoup::webrtc_transport::WebRtcTransportListenInfos;

/// Listen infos a caller's WebRTC transport may have (a socket each).
const MAX_LISTEN_INFOS: usize = 4;

pub(super) async fn handle(call: Call<'_>, op: Op) -> Result<Reply, WireError> {
    let held = &call.held;
    match op {
        Op::CreateWebRtcTransport { options, .. } => {
            let Held::Router(real) = held else { return Err(wrong("create_webrtc_transport", held)) };
            create_webrtc(&call, real, unpack(&options)?).await
        }
        Op::CreatePlainTransport { options, .. } => {
            let Held::Router(real) = held else { return Err(wrong("create_plain_transport", held)) };
            let wire = unpack(&options)?;
            let shared = call.shared;
            if wire.comedia && !shared.limits.connect_to.is_empty() {
                // comedia sends to whoever sent first: no destination to check against connect_to.
                return Err(WireError::Denied("comedia transports are off while [serve] connect_to is set".into()));
            }
            let mut full = PlainTransportOptions::new(shared.media_listen(wire.listen_info));
            full.rtcp_listen_info = wire.rtcp_listen_info.map(|i| shared.media_listen(i));
            full.rtcp_mux = wire.rtcp_mux;
            full.comedia = wire.comedia;
            apply_bitrate_wire!(full, wire.bitrate);
            apply_sctp_wire!(full, wire.sctp);
            full.enable_srtp = wire.enable_srtp;
            full.srtp_crypto_suite = wire.srtp_crypto_suite;
            let t = real.create_plain_transport(full).await.map_err(failed)?;
            let handle = call.hold(Held::Plain(t.clone()), Some(Count::Transport), |e| {
                let mut handlers = watch_transport(e, t.as_ref());
                handlers.extend(events_of!(plain_transport => forward_events!(e, t)));
                handlers
            });
            // The state is read once its events are forwarded: none falls between.
            let info = ObjectInfo::PlainTransport(TupleTransportInfo {
                id: t.id(),
                tuple: t.tuple(),
                rtcp_tuple: t.rtcp_tuple(),
                sctp: sctp_info_of!(t),
                srtp_parameters: t.srtp_parameters(),
            });
            Ok(Reply::Created { handle, info: Payload::new(&info) })
        }
        Op::CreatePipeTransport { options, .. } => {
            let Held::Router(real) = held else { return Err(wrong("create_pipe_transport", held)) };
            let wire = unpack(&options)?;
            let mut full = PipeTransportOptions::new(call.shared.media_listen(wire.listen_info));
            apply_sctp_wire!(full, wire.sctp);
            full.enable_rtx = wire.enable_rtx;
            full.enable_srtp = wire.enable_srtp;
            let t = real.create_pipe_transport(full).await.map_err(failed)?;
            let handle = call.hold(Held::Pipe(t.clone()), Some(Count::Transport), |e| {
                let mut handlers = watch_transport(e, t.as_ref());
                handlers.extend(events_of!(pipe_transport => forward_events!(e, t)));
                handlers
            });
            // The state is read once its events are forwarded: none falls between.
            let info = ObjectInfo::PipeTransport(TupleTransportInfo {
                id: t.id(),
                tuple: t.tuple(),
                rtcp_tuple: None,
                sctp: sctp_info_of!(t),
                srtp_parameters: t.srtp_parameters(),
            });
            Ok(Reply::Created { handle, info: Payload::new(&info) })
        }
        Op::CreateDirectTransport { max_send_message_size, max_receive_message_size, .. } => {
            let Held::Router(real) = held else { return Err(wrong("create_direct_transport", held)) };
            let mut options = DirectTransportOptions::default();
            options.max_send_message_size = max_send_message_size;
            options.max_receive_message_size = max_receive_message_size;
            let t = real.create_direct_transport(options).await.map_err(failed)?;
            let handle = call.hold(Held::Direct(t.clone()), Some(Count::Transport), |e| {
                let mut handlers = watch_transport(e, t.as_ref());
                handlers.extend(events_of!(direct_transport => forward_events!(e, t)));
                handlers
            });
            // The state is read once its events are forwarded: none falls between.
            let info = ObjectInfo::DirectTransport { id: t.id() };
            Ok(Reply::Created { handle, info: Payload::new(&info) })
        }
        Op::Connect { params, .. } => connect(&call, unpack(&params)?).await,
        Op::SetMaxIncomingBitrate { bitrate, .. } => {
            match held {
                Held::WebRtc(t) => t.set_max_incoming_bitrate(bitrate).await,
                Held::Plain(t) => t.set_max_incoming_bitrate(bitrate).await,
                Held::Pipe(t) => t.set_max_incoming_bitrate(bitrate).await,
                _ => return Err(wrong("set_max_incoming_bitrate", held)),
            }
            .map_err(failed)?;
            Ok(Reply::Done)
        }
        Op::SetMaxOutgoingBitrate { bitrate, .. } => {
            let Held::WebRtc(t) = held else { return Err(wrong("set_max_outgoing_bitrate", held)) };
            t.set_max_outgoing_bitrate(bitrate).await.map_err(failed)?;
            Ok(Reply::Done)
        }
        Op::SetMinOutgoingBitrate { bitrate, .. } => {
            let Held::WebRtc(t) = held else { return Err(wrong("set_min_outgoing_bitrate", held)) };
            t.set_min_outgoing_bitrate(bitrate).await.map_err(failed)?;
            Ok(Reply::Done)
        }
        Op::RestartIce { .. } => {
            let Held::WebRtc(t) = held else { return Err(wrong("restart_ice", held)) };
            Ok(Reply::Ice(Payload::new(&t.restart_ice().await.map_err(failed)?)))
        }
        other => Err(misrouted(&other)),
    }
}

/// A WebRTC transport on the host's addresses, or on the WebRTC server of the router's worker.
async fn create_webrtc(call: &Call<'_>, real: &Arc<dyn RouterBackend>, wire: WebRtcWire) -> Result<Reply, WireError> {
    let from_parent = matches!(call.shared.media, MediaAddresses::AsAsked);
    if wire.listen_infos.len() > MAX_LISTEN_INFOS && !from_parent {
        return Err(WireError::BadRequest(format!("at most {MAX_LISTEN_INFOS} listen infos")));
    }
    let infos: Vec<ListenInfo> = wire.listen_infos.into_iter().map(|i| call.shared.media_listen(i)).collect();
    let listen = match wire.server {
        ServerWire::Host => {
            let (cell, _) =
                call.place.cell.as_ref().ok_or_else(|| WireError::Failed("the router has no worker here".into()))?;
            WebRtcListen::Server(call.shared.webrtc_servers.of(call.shared, cell).await?)
        }
        ServerWire::Object(handle) => {
            let server = match lock(&call.session.objects).get(&handle).map(|e| &e.held) {
                Some(Held::WebRtcServer(server)) => Arc::clone(server),
                Some(other) => return Err(wrong("a WebRTC server", other)),
                None => return Err(WireError::NotFound(handle)),
            };
            WebRtcListen::Server(server)
        }
        ServerWire::None => {
            let infos = WebRtcTransportListenInfos::try_from(infos)
                .map_err(|_| WireError::BadRequest("no listen info".into()))?;
            WebRtcListen::Individual(infos)
        }
    };
    let (bitrate, sctp) = (wire.bitrate, wire.sctp);
    let settings = WebRtcTransportSettings {
        enable_bwe: bitrate.enable_bwe,
        initial_available_outgoing_bitrate: bitrate.initial_available_outgoing_bitrate,
        max_incoming_bitrate: bitrate.max_incoming_bitrate,
        max_outgoing_bitrate: bitrate.max_outgoing_bitrate,
        min_outgoing_bitrate: bitrate.min_outgoing_bitrate,
        enable_udp: wire.enable_udp,
        enable_tcp: wire.enable_tcp,
        prefer_udp: wire.prefer_udp,
        prefer_tcp: wire.prefer_tcp,
        ice_consent_timeout: wire.ice_consent_timeout,
        enable_sctp: sctp.enable_sctp,
        max_send_message_size: sctp.max_send_message_size,
        max_receive_message_size: sctp.max_receive_message_size,
        sctp_send_buffer_size: sctp.sctp_send_buffer_size,
        sctp_per_stream_send_queue_limit: sctp.sctp_per_stream_send_queue_limit,
        sctp_max_receiver_window_buffer_size: sctp.sctp_max_receiver_window_buffer_size,
        sctp_default_stream_buffered_amount_low_threshold: sctp.sctp_default_stream_buffered_amount_low_threshold,
        sctp_zero_checksum: sctp.sctp_zero_checksum,
    };
    let t = real.create_webrtc_transport(listen, settings).await.map_err(failed)?;
    let handle = call.hold(Held::WebRtc(t.clone()), Some(Count::Transport), |e| {
        let mut handlers = watch_transport(e, t.as_ref());
        handlers.extend(events_of!(webrtc_transport => forward_events!(e, t)));
        handlers
    });
    // The state is read once its events are forwarded: none falls between.
    let info = ObjectInfo::WebRtcTransport(WebRtcInfo {
        id: t.id(),
        ice_role: t.ice_role(),
        ice_parameters: t.ice_parameters(),
        ice_candidates: t.ice_candidates(),
        ice_state: t.ice_state(),
        ice_selected_tuple: t.ice_selected_tuple(),
        dtls_parameters: t.dtls_parameters(),
        dtls_state: t.dtls_state(),
        dtls_remote_cert: t.dtls_remote_cert(),
        sctp: sctp_info_of!(t),
    });
    Ok(Reply::Created { handle, info: Payload::new(&info) })
}

async fn connect(call: &Call<'_>, params: ConnectParams) -> Result<Reply, WireError> {
    let held = &call.held;
    if let Some(to) = call.destination {
        // A worker process's parent connects where its application asks, as mediasoup does.
        if !matches!(call.shared.media, MediaAddresses::AsAsked) {
            call.shared.limits.may_connect_to(to.ip).map_err(WireError::Denied)?;
        }
    }
    // mediasoup is given the address the plugin and `connect_to` saw (mapped IPv4 as IPv4).
    let params = match params {
        ConnectParams::Plain { ip, port, rtcp_port, srtp_parameters } => {
            ConnectParams::Plain { ip: ip.map(|ip| ip.to_canonical()), port, rtcp_port, srtp_parameters }
        }
        ConnectParams::Pipe { ip, port, srtp_parameters } => {
            ConnectParams::Pipe { ip: ip.to_canonical(), port, srtp_parameters }
        }
        webrtc => webrtc,
    };
    match (params, held) {
        (ConnectParams::WebRtc { dtls_parameters }, Held::WebRtc(t)) => {
            t.connect(WebRtcTransportRemoteParameters { dtls_parameters }).await.map_err(failed)?;
            packed(&t.dtls_parameters().role)
        }
        // The state connect changes goes back with the reply: the tuple's remote half, the
        // RTCP tuple and the SRTP parameters the transport now uses.
        (ConnectParams::Plain { ip, port, rtcp_port, srtp_parameters }, Held::Plain(t)) => {
            t.connect(PlainTransportRemoteParameters { ip, port, rtcp_port, srtp_parameters }).await.map_err(failed)?;
            packed(&Connected { tuple: t.tuple(), rtcp_tuple: t.rtcp_tuple(), srtp_parameters: t.srtp_parameters() })
        }
        (ConnectParams::Pipe { ip, port, srtp_parameters }, Held::Pipe(t)) => {
            t.connect(PipeTransportRemoteParameters { ip, port, srtp_parameters }).await.map_err(failed)?;
            packed(&Connected { tuple: t.tuple(), rtcp_tuple: None, srtp_parameters: t.srtp_parameters() })
        }
        _ => Err(wrong("these connect parameters", held)),
    }
}

/// What every transport forwards: its close and its trace events.
fn watch_transport(events: &Emitter, transport: &dyn TransportBackend) -> Vec<HandlerId> {
    let e = events.clone();
    let mut handlers = vec![transport.on_close(Box::new(move || e.closed()))];
    handlers.extend(events_of!(transport => forward_events!(events, transport)));
    handlers
}
