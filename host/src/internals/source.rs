//! What can be piped between cells: a producer or a data producer, by id. A worker holds at most
//! one object of each id, so cells also track the ids living in them with it.

use mediasoup::prelude::{DataProducerId, ProducerId};

/// What is piped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PipeSource {
    /// A media producer.
    Producer(ProducerId),
    /// A data producer.
    DataProducer(DataProducerId),
}
