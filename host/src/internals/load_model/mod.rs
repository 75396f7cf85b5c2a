//! The load model: what a cell is *predicted* to use, so placement does not wait for the CPU
//! sampler (a join storm places its transports between two samples, often while producers are
//! still silent).
//!
//! **What it prices.** Each cell keeps a [`Ledger`] of what it carries, in packets per second by
//! media kind: packets *forwarded* (every consumer, including the pipe consumers sending a
//! producer to another cell, forwards its producer's packets), packets *received* (producers and
//! pipe producers), packets *expected* (transports whose consumers have not arrived yet, and
//! placement decisions whose transport does not exist yet), plus transports and data objects.
//! A producer's rate is its own, measured from its stats (a bounded number of producers is read
//! per sample, round robin; a video consumer forwards one simulcast layer, so it is priced at the
//! producer's busiest stream); until a producer has been seen sending, the kind's default is
//! used ([`DEFAULT_AUDIO`], [`DEFAULT_VIDEO`]) — a consumer of a silent producer costs what it
//! will cost once media flows — and while it is paused it keeps its last rate.
//!
//! **The fan-out prior.** mediasoup-client apps create their send and receive transports on
//! join and consume afterwards, so a transport is placed before its consumers exist. Each
//! placement decision carries a prior: the packets its transport is expected to forward — the
//! `expected_consumers` hint (times the router's average producer), or else every producer the
//! router has (a receiving peer consumes the room), by kind; nothing for a transport hinted as
//! sending. The prior counts as *expected* from the decision on (so concurrent decisions see each
//! other), moves with the transport when it is created, and is used up as its consumers arrive
//! (a transport expects `max(prior − what it forwards, 0)`); a transport that produces before it
//! consumes is a sending one and expects nothing; the rest fades with a 30 s half-life.
//!
//! **The prediction.** `predicted = max(measured, carried cost at the sample) + (carried cost now
//! − carried cost at the sample) + expected cost now`: the measured CPU of the last sample, plus
//! the model's cost of everything placed or removed since, plus everything expected (priors and
//! decisions: never hidden by a measurement, so a busy cell the model under-prices still counts
//! each join it accepts); what was carried at the sample counts at least at the model's cost
//! (silent producers cost nothing yet, but will). Costs are [`Coefficients`] per packet by kind,
//! learned online from the cells' own CPU samples (a ridge regression over every cell's samples,
//! forgetting slowly, pulled towards the calibrated defaults; see [`learning`]); they are kept by
//! the host, not the cell, so they survive worker restarts. Reading the prediction changes
//! nothing.

pub mod learning;
pub mod ledger;
pub mod rates;

pub use learning::Learner;
pub use ledger::{Ledger, LoadTicket, Reservation, TransportLoad};
pub use rates::{Rate, RateBook};

use mediasoup::prelude::MediaKind;
use serde::Serialize;

/// The media kinds the model prices apart (an index into the `[f64; 2]` arrays).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Audio.
    Audio = 0,
    /// Video.
    Video = 1,
}

impl From<MediaKind> for Kind {
    fn from(kind: MediaKind) -> Self {
        match kind {
            MediaKind::Audio => Self::Audio,
            MediaKind::Video => Self::Video,
        }
    }
}

/// Packets per second of a producer of one kind, received and forwarded per consumer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pps {
    /// Received (all its streams).
    pub received: f64,
    /// Forwarded to each consumer (its busiest stream).
    pub forwarded: f64,
}

/// An audio producer not measured yet: Opus at 20 ms frames.
pub const DEFAULT_AUDIO: Pps = Pps { received: 50.0, forwarded: 50.0 };
/// A video producer not measured yet: three simulcast layers (~140 + 40 + 15 packets/s at 960p,
/// 480p and 240p), of which a consumer forwards one.
pub const DEFAULT_VIDEO: Pps = Pps { received: 200.0, forwarded: 140.0 };

/// Half-life of a transport's fan-out prior (what it has not consumed of it fades).
pub const PRIOR_HALF_LIFE: std::time::Duration = std::time::Duration::from_secs(30);

/// The default rates of `kind`.
pub fn default_pps(kind: Kind) -> Pps {
    match kind {
        Kind::Audio => DEFAULT_AUDIO,
        Kind::Video => DEFAULT_VIDEO,
    }
}

/// What a cell carries, as the model prices it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Load {
    /// Packets per second forwarded (consumers and pipe consumers), by kind.
    pub forwarded: [f64; 2],
    /// Packets per second received (producers and pipe producers), by kind.
    pub received: [f64; 2],
    /// Packets per second expected to be forwarded soon (fan-out priors of transports and of
    /// decisions not created yet), by kind.
    pub expected: [f64; 2],
    /// Transports.
    pub transports: u32,
    /// Data producers, data consumers and RTP observers.
    pub data_objects: u32,
}

impl Load {
    /// Its CPU share (of one core) at `c`: what it carries and what it expects.
    pub fn cost(&self, c: &Coefficients) -> f64 {
        self.carried_cost(c) + self.expected_cost(c)
    }

    /// The share of what it carries now (flows, transports, data objects).
    pub fn carried_cost(&self, c: &Coefficients) -> f64 {
        c.forward[0] * self.forwarded[0]
            + c.forward[1] * self.forwarded[1]
            + c.receive * (self.received[0] + self.received[1])
            + c.per_transport * f64::from(self.transports)
            + c.per_data_object * f64::from(self.data_objects)
    }

    /// The share of what it expects (fan-out priors not used up, decisions not created yet).
    pub fn expected_cost(&self, c: &Coefficients) -> f64 {
        c.forward[0] * self.expected[0] + c.forward[1] * self.expected[1]
    }

    /// The predicted share at `c` given the last sample: `measured` CPU then and the carried
    /// cost then (`carried_at_sample`); see [`predicted`].
    pub fn predicted(&self, c: &Coefficients, measured: f64, carried_at_sample: f64) -> f64 {
        predicted(measured, carried_at_sample, self.carried_cost(c), self.expected_cost(c))
    }
}

/// CPU share of one core per unit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Coefficients {
    /// Per packet per second forwarded, by kind (audio, video).
    pub forward: [f64; 2],
    /// Per packet per second received.
    pub receive: f64,
    /// Per transport.
    pub per_transport: f64,
    /// Per data producer, data consumer or observer.
    pub per_data_object: f64,
    /// CPU samples learned from.
    pub samples: u64,
}

impl Coefficients {
    /// Calibrated on this machine kind (2-core VM): a core forwards ~280,000 audio packets per
    /// second (3.6e-6 of a core per packet/s); a video packet (~1,100 bytes) costs about 1.5×
    /// an audio one (~100 bytes); receiving costs about what forwarding does.
    pub const DEFAULT: Self =
        Self { forward: [3.6e-6, 5.4e-6], receive: 3.6e-6, per_transport: 2.0e-5, per_data_object: 2.0e-5, samples: 0 };
}

impl Default for Coefficients {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The predicted CPU share of a cell: what it carried at the last sample — `measured`, or the
/// model's cost of it (`carried_at_sample`) when more — plus the cost of what it carries beyond
/// that now (`carried_now − carried_at_sample`), plus the cost of what it expects
/// (`expected_now`). Expected load is never hidden by a measurement: a busy cell whose model
/// under-prices it still counts every decision and prior on top of its measured share.
pub fn predicted(measured: f64, carried_at_sample: f64, carried_now: f64, expected_now: f64) -> f64 {
    (measured.max(carried_at_sample) + carried_now - carried_at_sample).max(0.0) + expected_now.max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_count_on_a_hot_cell_sample_after_sample() {
        // A cell at 0.55 measured whose model under-prices it (0.30 carried): ten video joins
        // reserved since the sample add their cost on top, and still do after the next sample
        // (the measurement does not hide what is only expected).
        let c = Coefficients::DEFAULT;
        let mut load = Load { forwarded: [0.30 / c.forward[0], 0.0], ..Load::default() };
        let at_sample = load.carried_cost(&c);
        assert!((at_sample - 0.30).abs() < 1e-9);
        assert_eq!(load.predicted(&c, 0.55, at_sample), 0.55, "nothing new: the measured share");
        load.expected[1] = 10.0 * 20.0 * DEFAULT_VIDEO.forwarded; // ten joins, 20 video consumers each
        let reserved = load.expected_cost(&c);
        let p = load.predicted(&c, 0.55, at_sample);
        assert!((p - (0.55 + reserved)).abs() < 1e-9 && reserved > 0.1, "on top of the measured share: {p}");
        let next_sample = load.carried_cost(&c);
        assert_eq!(load.predicted(&c, 0.55, next_sample), p, "a sample later, still counted");
    }

    #[test]
    fn silent_consumers_count_at_their_default_rate_after_a_sample() {
        let c = Coefficients::DEFAULT;
        let load = Load { forwarded: [400.0 * 50.0, 0.0], ..Load::default() };
        let at_sample = load.carried_cost(&c);
        // Producers silent: the sample measured nothing; the prediction keeps the consumers.
        assert!((load.predicted(&c, 0.0, at_sample) - at_sample).abs() < 1e-12);
        assert!(at_sample > 0.07);
        // Removed since the sample: the prediction drops by their cost.
        let half = Load { forwarded: [200.0 * 50.0, 0.0], ..load };
        assert!((half.predicted(&c, 0.0, at_sample) - at_sample / 2.0).abs() < 1e-9);
    }
}
