//! The signalling protocol between the page and the server: JSON over one WebSocket per peer.
//!
//! Every message is an object with a `kind`:
//! - `request` `{id, method, data}`: either side asks, the other answers once;
//! - `response` `{id, ok, data | error}`: the answer to a request;
//! - `notification` `{method, data}`: no answer expected.
//!
//! The page asks the server to create transports, produce and so on ([`ClientRequest`]); the
//! server asks the page to consume (`newConsumer`, `newDataConsumer`: the consumer is created
//! paused and resumed once the page answers) and tells it what happened ([`Notification`]).

use mediasoup::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A message as it crosses the socket, before its `data` is read by method.
#[derive(Debug, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Envelope {
    /// A request, answered by exactly one response with the same id.
    Request {
        /// Chosen by the asking side, unique among its pending requests.
        id: u64,
        /// What is asked.
        method: String,
        /// The method's arguments.
        #[serde(default)]
        data: Value,
    },
    /// The answer to a request.
    Response {
        /// The request's id.
        id: u64,
        /// Whether the request succeeded.
        ok: bool,
        /// The result, when it succeeded.
        #[serde(default, skip_serializing_if = "Value::is_null")]
        data: Value,
        /// Why it failed, when it did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A one-way message.
    Notification {
        /// What happened.
        method: String,
        /// Its details.
        #[serde(default)]
        data: Value,
    },
}

/// What the page asks of the server (the `method` and `data` of a request).
#[derive(Debug, Deserialize)]
#[serde(tag = "method", content = "data", rename_all = "camelCase")]
pub enum ClientRequest {
    /// The room router's RTP capabilities, to load the page's mediasoup-client `Device`.
    GetRouterRtpCapabilities {},
    /// A WebRTC transport for sending (`producing`) or receiving (`consuming`).
    #[serde(rename_all = "camelCase")]
    CreateWebRtcTransport {
        /// The page sends media on it.
        producing: bool,
        /// The page receives media on it.
        consuming: bool,
        /// The page's SCTP capabilities (data channels wanted when present).
        #[serde(default)]
        sctp_capabilities: Option<Value>,
    },
    /// DTLS parameters of the page's side of a transport.
    #[serde(rename_all = "camelCase")]
    ConnectWebRtcTransport {
        /// The transport.
        transport_id: TransportId,
        /// The page's DTLS parameters.
        dtls_parameters: DtlsParameters,
    },
    /// Joins the room: the page now consumes everything the others produce.
    #[serde(rename_all = "camelCase")]
    Join {
        /// Shown to the others.
        display_name: String,
        /// What the page can receive.
        rtp_capabilities: RtpCapabilities,
    },
    /// A new track from the page.
    #[serde(rename_all = "camelCase")]
    Produce {
        /// The send transport.
        transport_id: TransportId,
        /// Audio or video.
        kind: MediaKind,
        /// As mediasoup-client computed them.
        rtp_parameters: RtpParameters,
        /// The page's tag for the track (e.g. `{source: "camera"}`).
        #[serde(default)]
        app_data: Value,
    },
    /// A new data channel from the page (the chat).
    #[serde(rename_all = "camelCase")]
    ProduceData {
        /// The send transport.
        transport_id: TransportId,
        /// SCTP stream of the channel.
        sctp_stream_parameters: SctpStreamParameters,
        /// Channel label.
        #[serde(default)]
        label: String,
        /// Channel sub-protocol.
        #[serde(default)]
        protocol: String,
    },
    /// Stops one of the page's tracks for good.
    #[serde(rename_all = "camelCase")]
    CloseProducer {
        /// The producer.
        producer_id: ProducerId,
    },
    /// Pauses one of the page's tracks (its consumers are told).
    #[serde(rename_all = "camelCase")]
    PauseProducer {
        /// The producer.
        producer_id: ProducerId,
    },
    /// Resumes a paused track.
    #[serde(rename_all = "camelCase")]
    ResumeProducer {
        /// The producer.
        producer_id: ProducerId,
    },
    /// Chooses the simulcast layer the server forwards to one of the page's consumers.
    #[serde(rename_all = "camelCase")]
    SetConsumerPreferredLayers {
        /// The consumer.
        consumer_id: ConsumerId,
        /// Spatial layer (0 = lowest resolution).
        spatial_layer: u8,
        /// Temporal layer (highest when absent).
        #[serde(default)]
        temporal_layer: Option<u8>,
    },
}

/// What the server tells a page.
#[derive(Debug, Serialize)]
#[serde(tag = "method", content = "data", rename_all = "camelCase")]
pub enum Notification {
    /// Another peer joined.
    #[serde(rename_all = "camelCase")]
    NewPeer {
        /// Its id.
        peer_id: String,
        /// Its name.
        display_name: String,
    },
    /// Another peer left.
    #[serde(rename_all = "camelCase")]
    PeerClosed {
        /// Its id.
        peer_id: String,
    },
    /// A consumer of the page was closed (its producer closed or its peer left).
    #[serde(rename_all = "camelCase")]
    ConsumerClosed {
        /// The consumer.
        consumer_id: ConsumerId,
    },
    /// The producer behind a consumer of the page was paused.
    #[serde(rename_all = "camelCase")]
    ConsumerPaused {
        /// The consumer.
        consumer_id: ConsumerId,
    },
    /// The producer behind a consumer of the page was resumed.
    #[serde(rename_all = "camelCase")]
    ConsumerResumed {
        /// The consumer.
        consumer_id: ConsumerId,
    },
    /// The router side of the page's transports closed under it (the media worker serving it
    /// stopped): the page joins again, and the server places it afresh.
    #[serde(rename_all = "camelCase")]
    Reconnect {
        /// Why.
        reason: String,
    },
    /// The simulcast layers forwarded to a consumer changed.
    #[serde(rename_all = "camelCase")]
    ConsumerLayersChanged {
        /// The consumer.
        consumer_id: ConsumerId,
        /// Now forwarded spatial layer, if any.
        spatial_layer: Option<u8>,
        /// Now forwarded temporal layer, if any.
        temporal_layer: Option<u8>,
    },
    /// A data consumer of the page was closed.
    #[serde(rename_all = "camelCase")]
    DataConsumerClosed {
        /// The data consumer.
        data_consumer_id: DataConsumerId,
    },
}

/// What the server asks a page to do (answered by a response).
#[derive(Debug, Serialize)]
#[serde(tag = "method", content = "data", rename_all = "camelCase")]
pub enum ServerRequest {
    /// Create this consumer in mediasoup-client; it is resumed once the page answers.
    #[serde(rename_all = "camelCase")]
    NewConsumer {
        /// Peer whose track this is.
        peer_id: String,
        /// The producer.
        producer_id: ProducerId,
        /// The consumer.
        id: ConsumerId,
        /// Audio or video.
        kind: MediaKind,
        /// For mediasoup-client's `consume()`.
        rtp_parameters: RtpParameters,
        /// Whether the producer is paused now.
        producer_paused: bool,
        /// The producer's tag.
        app_data: Value,
    },
    /// Create this data consumer in mediasoup-client.
    #[serde(rename_all = "camelCase")]
    NewDataConsumer {
        /// Peer whose channel this is.
        peer_id: String,
        /// The data producer.
        data_producer_id: DataProducerId,
        /// The data consumer.
        id: DataConsumerId,
        /// Its SCTP stream.
        sctp_stream_parameters: Option<SctpStreamParameters>,
        /// Channel label.
        label: String,
        /// Channel sub-protocol.
        protocol: String,
    },
}

/// Splits a serialized `{method, data}` value into its two parts.
pub fn method_and_data(value: Value) -> (String, Value) {
    match value {
        Value::Object(mut map) => {
            let method = map.remove("method").and_then(|m| m.as_str().map(str::to_owned)).unwrap_or_default();
            (method, map.remove("data").unwrap_or(Value::Null))
        }
        _ => (String::new(), Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_from_the_page_parses_by_method() {
        let envelope: Envelope =
            serde_json::from_str(r#"{"kind":"request","id":7,"method":"pauseProducer","data":{"producerId":"3b1c3c3e-8f3f-4f52-9d43-8b0b2a1c0a11"}}"#)
                .expect("envelope");
        let Envelope::Request { id, method, data } = envelope else { panic!("not a request") };
        assert_eq!(id, 7);
        let request: ClientRequest =
            serde_json::from_value(serde_json::json!({ "method": method, "data": data })).expect("request");
        assert!(matches!(request, ClientRequest::PauseProducer { .. }));
    }

    #[test]
    fn an_unknown_method_or_a_bad_argument_is_an_error() {
        let unknown = serde_json::from_value::<ClientRequest>(serde_json::json!({"method": "rm -rf", "data": {}}));
        assert!(unknown.is_err());
        let bad = serde_json::from_value::<ClientRequest>(
            serde_json::json!({"method": "pauseProducer", "data": {"producerId": "not a uuid"}}),
        );
        assert!(bad.is_err());
    }

    #[test]
    fn notifications_serialize_as_method_and_data() {
        let value = serde_json::to_value(Notification::PeerClosed { peer_id: "p1".into() }).expect("json");
        let (method, data) = method_and_data(value);
        assert_eq!(method, "peerClosed");
        assert_eq!(data["peerId"], "p1");
    }
}
