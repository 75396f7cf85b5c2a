//! The events of each object kind, declared once: the wire [`Event`](super::proto::Event)
//! variant, the backend's registration method and how its argument travels. The host side
//! (`dispatch`) and the application side (`remote`) are both generated from these lists, so an
//! event cannot be forwarded by one side and missed by the other.
//!
//! `events_of!(kind => then!(args…))` calls `then!(args…; Variant: on_method(mode Type); …)`:
//! - [`forward_events!`] (host) registers, on a backend object, a handler per event that sends
//!   it to the session (`forward_events!(emitter, backend; …)` → `Vec<HandlerId>`);
//! - [`client_events!`] (application) writes the backend trait's `on_*` methods of a remote
//!   object, each calling its callback when the host's event arrives.
//!
//! Modes: `signal` (no argument), `by_ref T` / `by_value T` / `slice T` (a mediasoup value as a
//! [`Payload`](super::proto::Payload); the callback takes `&T`, `T` or `&[T]`), `trace T` (as
//! `by_ref`, within the session's trace budget on the host), `copy T` (a
//! plain number), `bytes` (a packet), `message` (a data channel message), `volumes` (audio
//! levels), `dtls` (a DTLS state with the remote certificate then known), `producer_close`
//! (the object's producer closed: the object closes too).
//! Closing (`on_close`) is the same for every kind and handled by both sides' shared code.

/// The declared events of one object kind, passed to a macro (see the module's doc).
macro_rules! events_of {
    (transport => $then:ident!($($pre:tt)*)) => {
        $then! {$($pre)*;
            TransportTrace: on_trace(trace mediasoup::transport::TransportTraceEventData);
        }
    };
    (webrtc_transport => $then:ident!($($pre:tt)*)) => {
        $then! {$($pre)*;
            IceState: on_ice_state_change(by_value mediasoup::types::data_structures::IceState);
            IceSelectedTuple: on_ice_selected_tuple_change(by_ref mediasoup::types::data_structures::TransportTuple);
            DtlsState: on_dtls_state_change(dtls);
            SctpState: on_sctp_state_change(by_value mediasoup::types::data_structures::SctpState);
        }
    };
    (plain_transport => $then:ident!($($pre:tt)*)) => {
        $then! {$($pre)*;
            Tuple: on_tuple(by_ref mediasoup::types::data_structures::TransportTuple);
            RtcpTuple: on_rtcp_tuple(by_ref mediasoup::types::data_structures::TransportTuple);
            SctpState: on_sctp_state_change(by_value mediasoup::types::data_structures::SctpState);
        }
    };
    (pipe_transport => $then:ident!($($pre:tt)*)) => {
        $then! {$($pre)*;
            Tuple: on_tuple(by_ref mediasoup::types::data_structures::TransportTuple);
            SctpState: on_sctp_state_change(by_value mediasoup::types::data_structures::SctpState);
        }
    };
    (direct_transport => $then:ident!($($pre:tt)*)) => {
        $then! {$($pre)*;
            Rtcp: on_rtcp(bytes);
        }
    };
    (producer => $then:ident!($($pre:tt)*)) => {
        $then! {$($pre)*;
            Paused: on_pause(signal);
            Resumed: on_resume(signal);
            ProducerScore: on_score(slice mediasoup::producer::ProducerScore);
            VideoOrientation: on_video_orientation_change(by_value mediasoup::producer::ProducerVideoOrientation);
            ProducerTrace: on_trace(trace mediasoup::producer::ProducerTraceEventData);
        }
    };
    (consumer => $then:ident!($($pre:tt)*)) => {
        $then! {$($pre)*;
            Paused: on_pause(signal);
            Resumed: on_resume(signal);
            ProducerPaused: on_producer_pause(signal);
            ProducerResumed: on_producer_resume(signal);
            ProducerClosed: on_producer_close(producer_close);
            ConsumerScore: on_score(by_ref mediasoup::consumer::ConsumerScore);
            Layers: on_layers_change(by_ref Option<mediasoup::consumer::ConsumerLayers>);
            ConsumerTrace: on_trace(trace mediasoup::consumer::ConsumerTraceEventData);
            Rtp: on_rtp(bytes);
        }
    };
    (data_producer => $then:ident!($($pre:tt)*)) => {
        $then! {$($pre)*;
            Paused: on_pause(signal);
            Resumed: on_resume(signal);
        }
    };
    (data_consumer => $then:ident!($($pre:tt)*)) => {
        $then! {$($pre)*;
            Paused: on_pause(signal);
            Resumed: on_resume(signal);
            ProducerPaused: on_data_producer_pause(signal);
            ProducerResumed: on_data_producer_resume(signal);
            ProducerClosed: on_data_producer_close(producer_close);
            SctpSendBufferFull: on_sctp_send_buffer_full(signal);
            BufferedAmountLow: on_buffered_amount_low(copy u32);
            DataMessage: on_message(message);
        }
    };
    (rtp_observer => $then:ident!($($pre:tt)*)) => {
        $then! {$($pre)*;
            Paused: on_pause(signal);
            Resumed: on_resume(signal);
            ObserverAdded: on_add_producer(by_ref mediasoup::producer::ProducerId);
            ObserverRemoved: on_remove_producer(by_ref mediasoup::producer::ProducerId);
        }
    };
    (audio_level_observer => $then:ident!($($pre:tt)*)) => {
        $then! {$($pre)*;
            Volumes: on_volumes(volumes);
            Silence: on_silence(signal);
        }
    };
    (active_speaker_observer => $then:ident!($($pre:tt)*)) => {
        $then! {$($pre)*;
            DominantSpeaker: on_dominant_speaker(by_ref mediasoup::producer::ProducerId);
        }
    };
}

/// Host side: a handler on `backend` for each declared event, sending it through `emitter`
/// (a `dispatch::Emitter`); the handler ids, to keep while the object is held.
macro_rules! forward_events {
    ($emitter:expr, $backend:expr; $($variant:ident: $method:ident($mode:ident $($ty:ty)?);)*) => {
        vec![$(forward_events!(@one $emitter, $backend, $variant, $method, $mode $(, $ty)?)),*]
    };
    (@one $e:expr, $b:expr, $v:ident, $m:ident, signal) => {{
        let e = $e.clone();
        $b.$m(std::sync::Arc::new(move || e.emit($crate::cluster::proto::Event::$v)))
    }};
    (@one $e:expr, $b:expr, $v:ident, $m:ident, by_ref, $t:ty) => {{
        let e = $e.clone();
        $b.$m(std::sync::Arc::new(move |value: &$t| {
            e.emit($crate::cluster::proto::Event::$v($crate::cluster::proto::Payload::new(value)))
        }))
    }};
    (@one $e:expr, $b:expr, $v:ident, $m:ident, trace, $t:ty) => {{
        let e = $e.clone();
        $b.$m(std::sync::Arc::new(move |value: &$t| {
            e.emit_trace($crate::cluster::proto::Event::$v($crate::cluster::proto::Payload::new(value)))
        }))
    }};
    (@one $e:expr, $b:expr, $v:ident, $m:ident, by_value, $t:ty) => {{
        let e = $e.clone();
        $b.$m(std::sync::Arc::new(move |value: $t| {
            e.emit($crate::cluster::proto::Event::$v($crate::cluster::proto::Payload::new(&value)))
        }))
    }};
    (@one $e:expr, $b:expr, $v:ident, $m:ident, slice, $t:ty) => {{
        let e = $e.clone();
        $b.$m(std::sync::Arc::new(move |values: &[$t]| {
            e.emit($crate::cluster::proto::Event::$v($crate::cluster::proto::Payload::new(&values.to_vec())))
        }))
    }};
    (@one $e:expr, $b:expr, $v:ident, $m:ident, copy, $t:ty) => {{
        let e = $e.clone();
        $b.$m(std::sync::Arc::new(move |value: $t| e.emit($crate::cluster::proto::Event::$v(value))))
    }};
    (@one $e:expr, $b:expr, $v:ident, $m:ident, bytes) => {{
        let e = $e.clone();
        $b.$m(std::sync::Arc::new(move |packet: &[u8]| e.emit($crate::cluster::proto::Event::$v(packet.to_vec()))))
    }};
    (@one $e:expr, $b:expr, $v:ident, $m:ident, message) => {{
        let e = $e.clone();
        $b.$m(std::sync::Arc::new(move |message: &mediasoup::prelude::WebRtcMessage<'_>| {
            let (ppid, payload) = message.clone().into_ppid_and_payload();
            e.emit($crate::cluster::proto::Event::$v { ppid, payload: payload.into_owned() })
        }))
    }};
    (@one $e:expr, $b:expr, $v:ident, $m:ident, volumes) => {{
        let e = $e.clone();
        $b.$m(std::sync::Arc::new(move |volumes: &[$crate::backend::Volume]| {
            let volumes = volumes.iter().map(|v| ($crate::cluster::proto::Payload::new(&v.producer_id), v.volume));
            e.emit($crate::cluster::proto::Event::$v(volumes.collect()))
        }))
    }};
    (@one $e:expr, $b:expr, $v:ident, $m:ident, dtls) => {{
        let e = $e.clone();
        let transport = std::sync::Arc::downgrade(&$b);
        $b.$m(std::sync::Arc::new(move |state: mediasoup::types::data_structures::DtlsState| {
            // mediasoup stores the remote certificate before it calls the handlers.
            let remote_cert = transport.upgrade().and_then(|t| t.dtls_remote_cert());
            e.emit($crate::cluster::proto::Event::$v { state: $crate::cluster::proto::Payload::new(&state), remote_cert })
        }))
    }};
    (@one $e:expr, $b:expr, $v:ident, $m:ident, producer_close) => {{
        let e = $e.clone();
        $b.$m(Box::new(move || e.emit($crate::cluster::proto::Event::$v)))
    }};
}

/// Application side: the backend trait's `on_*` methods of a remote object (`Remote<S>`), for
/// each declared event.
macro_rules! client_events {
    (; $($variant:ident: $method:ident($mode:ident $($ty:ty)?);)*) => {
        $(client_events!(@one $variant, $method, $mode $(, $ty)?);)*
    };
    (@one $v:ident, $m:ident, signal) => {
        fn $m(&self, callback: $crate::backend::Callback) -> event_listener_primitives::HandlerId {
            self.on(move |event| {
                if matches!(event, $crate::cluster::proto::Event::$v) {
                    callback();
                }
            })
        }
    };
    (@one $v:ident, $m:ident, by_ref, $t:ty) => {
        fn $m(&self, callback: $crate::backend::Handler<$t>) -> event_listener_primitives::HandlerId {
            self.on(move |event| {
                if let $crate::cluster::proto::Event::$v(payload) = event {
                    if let Some(value) = $crate::cluster::events::decoded(payload, stringify!($v)) {
                        callback(&value);
                    }
                }
            })
        }
    };
    (@one $v:ident, $m:ident, trace, $t:ty) => {
        client_events!(@one $v, $m, by_ref, $t);
    };
    (@one $v:ident, $m:ident, by_value, $t:ty) => {
        fn $m(&self, callback: std::sync::Arc<dyn Fn($t) + Send + Sync>) -> event_listener_primitives::HandlerId {
            self.on(move |event| {
                if let $crate::cluster::proto::Event::$v(payload) = event {
                    if let Some(value) = $crate::cluster::events::decoded(payload, stringify!($v)) {
                        callback(value);
                    }
                }
            })
        }
    };
    (@one $v:ident, $m:ident, slice, $t:ty) => {
        fn $m(&self, callback: $crate::backend::SliceHandler<$t>) -> event_listener_primitives::HandlerId {
            self.on(move |event| {
                if let $crate::cluster::proto::Event::$v(payload) = event {
                    if let Some(values) = $crate::cluster::events::decoded(payload, stringify!($v)) {
                        callback(&values);
                    }
                }
            })
        }
    };
    (@one $v:ident, $m:ident, copy, $t:ty) => {
        fn $m(&self, callback: std::sync::Arc<dyn Fn($t) + Send + Sync>) -> event_listener_primitives::HandlerId {
            self.on(move |event| {
                if let $crate::cluster::proto::Event::$v(value) = event {
                    callback(*value);
                }
            })
        }
    };
    (@one $v:ident, $m:ident, bytes) => {
        fn $m(&self, callback: $crate::backend::SliceHandler<u8>) -> event_listener_primitives::HandlerId {
            self.on(move |event| {
                if let $crate::cluster::proto::Event::$v(packet) = event {
                    callback(packet);
                }
            })
        }
    };
    (@one $v:ident, $m:ident, message) => {
        fn $m(&self, callback: $crate::backend::MessageHandler) -> event_listener_primitives::HandlerId {
            self.on(move |event| {
                if let $crate::cluster::proto::Event::$v { ppid, payload } = event {
                    let payload = std::borrow::Cow::Borrowed(payload.as_slice());
                    if let Ok(message) = mediasoup::prelude::WebRtcMessage::new(*ppid, payload) {
                        callback(&message);
                    }
                }
            })
        }
    };
    (@one $v:ident, $m:ident, volumes) => {
        fn $m(&self, callback: $crate::backend::SliceHandler<$crate::backend::Volume>) -> event_listener_primitives::HandlerId {
            self.on(move |event| {
                if let $crate::cluster::proto::Event::$v(volumes) = event {
                    let volumes: Vec<$crate::backend::Volume> = volumes
                        .iter()
                        .filter_map(|(id, volume)| {
                            id.get().ok().map(|producer_id| $crate::backend::Volume { producer_id, volume: *volume })
                        })
                        .collect();
                    callback(&volumes);
                }
            })
        }
    };
    (@one $v:ident, $m:ident, dtls) => {
        fn $m(
            &self,
            callback: std::sync::Arc<dyn Fn(mediasoup::types::data_structures::DtlsState) + Send + Sync>,
        ) -> event_listener_primitives::HandlerId {
            self.on(move |event| {
                if let $crate::cluster::proto::Event::$v { state, .. } = event {
                    if let Some(state) = $crate::cluster::events::decoded(state, stringify!($v)) {
                        callback(state);
                    }
                }
            })
        }
    };
    (@one $v:ident, $m:ident, producer_close) => {
        fn $m(&self, callback: $crate::backend::OnceCallback) -> event_listener_primitives::HandlerId {
            self.add_producer_close(callback)
        }
    };
}

/// An event's payload decoded; one that does not decode is logged (at debug: the protocol
/// version is checked before any frame is read, so this is a bug, not skew) and skipped.
pub(crate) fn decoded<T: serde::de::DeserializeOwned>(payload: &super::proto::Payload<T>, event: &str) -> Option<T> {
    payload.get().map_err(|error| tracing::debug!(%error, event, "event payload not decoded")).ok()
}
