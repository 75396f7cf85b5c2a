//! Per-cell RTP counters (packets and bytes in and out, NACKs and PLIs) read from the stats of
//! the cells' real producers and consumers at a bounded rate, for the metrics.
//!
//! mediasoup reports per-object running totals; a cell's counter must keep counting when its
//! objects close, so [`MediaBook`] (sans-IO) adds each object's growth since its last reading to
//! its cell's totals. Growth between an object's last reading and its close is not counted.
//! Internal pipes between cells are not application media and are not read.

use crate::backend::{ConsumerBackend, ProducerBackend};
use crate::placement::CellId;
use mediasoup::consumer::ConsumerRtpStreamStat;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// A real producer or consumer whose stats are read.
pub(crate) enum MediaProbe {
    /// Media coming in from an endpoint.
    Producer(Arc<dyn ProducerBackend>),
    /// Media going out to an endpoint.
    Consumer(Arc<dyn ConsumerBackend>),
}

impl MediaProbe {
    /// The object's key.
    pub(crate) fn key(&self) -> ProbeKey {
        match self {
            MediaProbe::Producer(p) => (true, p.id().into()),
            MediaProbe::Consumer(c) => (false, c.id().into()),
        }
    }
}

/// Which object a reading is of.
pub(crate) type ProbeKey = (bool, uuid::Uuid);

/// Running RTP totals (of one object, or of a cell).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MediaTotals {
    /// RTP packets received from producing endpoints.
    pub packets_in: u64,
    /// Their bytes.
    pub bytes_in: u64,
    /// RTP packets sent to consuming endpoints.
    pub packets_out: u64,
    /// Their bytes.
    pub bytes_out: u64,
    /// NACKs sent to producing endpoints (asking for lost packets).
    pub nacks_sent: u64,
    /// NACKs received from consuming endpoints.
    pub nacks_received: u64,
    /// PLIs sent to producing endpoints (asking for a key frame).
    pub plis_sent: u64,
    /// PLIs received from consuming endpoints.
    pub plis_received: u64,
}

impl MediaTotals {
    fn fields(&mut self) -> [&mut u64; 8] {
        [
            &mut self.packets_in,
            &mut self.bytes_in,
            &mut self.packets_out,
            &mut self.bytes_out,
            &mut self.nacks_sent,
            &mut self.nacks_received,
            &mut self.plis_sent,
            &mut self.plis_received,
        ]
    }

    /// Adds `now`'s growth over `before` (a field that went back counts from zero).
    fn add_growth(&mut self, mut now: MediaTotals, mut before: MediaTotals) {
        for ((total, now), before) in self.fields().into_iter().zip(now.fields()).zip(before.fields()) {
            let grown = if *now >= *before { *now - *before } else { *now };
            *total = total.saturating_add(grown);
        }
    }
}

/// Reads one object's running totals (one request to its worker).
pub(crate) async fn read(probe: &MediaProbe) -> Option<(ProbeKey, MediaTotals)> {
    let mut totals = MediaTotals::default();
    match probe {
        MediaProbe::Producer(producer) => {
            for stat in producer.get_stats().await.ok()? {
                totals.packets_in += stat.packet_count;
                totals.bytes_in += stat.byte_count;
                totals.nacks_sent += stat.nack_count;
                totals.plis_sent += stat.pli_count;
            }
            Some((probe.key(), totals))
        }
        MediaProbe::Consumer(consumer) => {
            for stat in consumer.get_stats().await.ok()? {
                if let ConsumerRtpStreamStat::Outbound(stat) = stat {
                    totals.packets_out += stat.packet_count;
                    totals.bytes_out += stat.byte_count;
                    totals.nacks_received += stat.nack_count;
                    totals.plis_received += stat.pli_count;
                }
            }
            Some((probe.key(), totals))
        }
    }
}

/// Per-cell totals kept across the objects' lives.
#[derive(Debug, Default)]
pub struct MediaBook {
    last: HashMap<ProbeKey, (CellId, MediaTotals)>,
    totals: HashMap<CellId, MediaTotals>,
}

impl MediaBook {
    /// Takes one round of readings: each object's growth since its previous reading is added
    /// to its cell. Objects that no longer exist (not in `alive`) are forgotten; an object alive
    /// but not read this round (its read failed or timed out) keeps its previous reading, so
    /// its next one adds only its growth. The totals of cells no longer `open` are forgotten.
    pub(crate) fn round(
        &mut self,
        readings: Vec<(CellId, ProbeKey, MediaTotals)>,
        alive: &[ProbeKey],
        open: &[CellId],
    ) {
        let mut kept: HashMap<ProbeKey, (CellId, MediaTotals)> = HashMap::with_capacity(alive.len());
        for key in alive {
            if let Some(last) = self.last.get(key) {
                kept.insert(*key, *last);
            }
        }
        for (cell, key, now) in readings {
            let before = kept.get(&key).filter(|(c, _)| *c == cell).map(|(_, t)| *t).unwrap_or_default();
            self.totals.entry(cell).or_default().add_growth(now, before);
            kept.insert(key, (cell, now));
        }
        self.last = kept;
        self.totals.retain(|cell, _| open.contains(cell));
        for cell in open {
            self.totals.entry(*cell).or_default();
        }
    }

    /// The totals of each cell.
    pub fn totals(&self) -> &HashMap<CellId, MediaTotals> {
        &self.totals
    }

    /// Objects remembered (at most the live producers and consumers read last round).
    pub fn tracked(&self) -> usize {
        self.last.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(packets_in: u64, packets_out: u64) -> MediaTotals {
        MediaTotals { packets_in, packets_out, ..MediaTotals::default() }
    }

    fn key(n: u128, producer: bool) -> ProbeKey {
        (producer, uuid::Uuid::from_u128(n))
    }

    #[test]
    fn a_cell_keeps_counting_after_its_objects_close() {
        let (a, b) = (CellId(0), CellId(1));
        let mut book = MediaBook::default();
        book.round(
            vec![(a, key(1, true), t(10, 0)), (a, key(2, false), t(0, 7))],
            &[key(1, true), key(2, false)],
            &[a, b],
        );
        assert_eq!(book.totals()[&a], t(10, 7));
        assert_eq!(book.totals()[&b], t(0, 0), "an open cell without media shows zero");
        book.round(vec![(a, key(1, true), t(25, 0))], &[key(1, true)], &[a, b]);
        assert_eq!(book.totals()[&a], t(25, 7), "the closed consumer's packets stay counted");
        assert_eq!(book.tracked(), 1);
        // A new object counts from zero; a cell that closed is forgotten.
        book.round(
            vec![(a, key(1, true), t(30, 0)), (a, key(3, false), t(0, 4))],
            &[key(1, true), key(3, false)],
            &[a],
        );
        assert_eq!(book.totals()[&a], t(30, 11));
        assert!(!book.totals().contains_key(&b));
    }

    #[test]
    fn a_reading_that_goes_back_counts_from_zero() {
        let a = CellId(0);
        let mut book = MediaBook::default();
        book.round(vec![(a, key(1, true), t(10, 0))], &[key(1, true)], &[a]);
        book.round(vec![(a, key(1, true), t(4, 0))], &[key(1, true)], &[a]);
        assert_eq!(book.totals()[&a], t(14, 0));
    }

    #[test]
    fn an_object_whose_read_failed_is_not_counted_twice() {
        let a = CellId(0);
        let mut book = MediaBook::default();
        book.round(vec![(a, key(1, true), t(100, 0))], &[key(1, true)], &[a]);
        // Alive but its read timed out: nothing added, its reading kept.
        book.round(Vec::new(), &[key(1, true)], &[a]);
        assert_eq!(book.totals()[&a], t(100, 0));
        book.round(vec![(a, key(1, true), t(130, 0))], &[key(1, true)], &[a]);
        assert_eq!(book.totals()[&a], t(130, 0), "only the growth since the last reading");
    }

    proptest::proptest! {
        #[test]
        fn totals_never_decrease(rounds in proptest::collection::vec(proptest::collection::vec((0u128..4, 0u64..1000), 0..6), 1..20)) {
            let a = CellId(0);
            let mut book = MediaBook::default();
            let mut before = 0;
            for round in rounds {
                let readings: Vec<_> = round.into_iter().map(|(k, p)| (a, key(k, true), t(p, 0))).collect();
                let alive: Vec<_> = readings.iter().map(|r| r.1).collect();
                book.round(readings, &alive, &[a]);
                let now = book.totals()[&a].packets_in;
                proptest::prop_assert!(now >= before);
                before = now;
            }
        }
    }
}
