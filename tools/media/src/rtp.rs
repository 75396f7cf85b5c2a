//! RTP on the wire: a sans-IO packet codec, self-verifying payloads, a paced generator that
//! feeds a PlainTransport and a sink that receives what consumers send.

pub mod generator;
pub mod packet;
pub mod payload;
pub mod sink;

pub use generator::{GeneratorConfig, GeneratorError, GeneratorTarget, RtpGenerator};
pub use payload::PayloadKind;
pub use sink::{RtpSink, SinkReport};
