//! Join/leave traces (JSON lines) and a generator for typical room shapes.
//!
//! One event per line: `{"t": 12.5, "op": "join", "room": "r1", "peer": "p3", "role": "viewer",
//! "sends": 0}` or `{"t": 40, "op": "leave", "room": "r1", "peer": "p3"}`; `t` in seconds,
//! `sends` the producers the peer sends (e.g. 2 for audio + video).

use serde::{Deserialize, Serialize};
use std::io::BufRead;
use thiserror::Error;

/// One trace event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Seconds since the trace start.
    pub t: f64,
    /// What happens.
    #[serde(flatten)]
    pub op: Op,
}

/// A join or a leave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Op {
    /// A peer joins a room.
    Join {
        /// Room.
        room: String,
        /// Peer.
        peer: String,
        /// Role label (`presenter`, `viewer`, `speaker` …).
        #[serde(default)]
        role: String,
        /// Producers the peer sends.
        #[serde(default)]
        sends: u32,
    },
    /// A peer leaves its room.
    Leave {
        /// Room.
        room: String,
        /// Peer.
        peer: String,
    },
}

/// A trace that cannot be read.
#[derive(Debug, Error)]
pub enum TraceError {
    /// I/O.
    #[error("reading the trace: {0}")]
    Io(#[from] std::io::Error),
    /// A line is not an event.
    #[error("trace line {line}: {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// Why.
        reason: String,
    },
}

/// Most producers one simulated peer may send (a camera, a screen, a microphone … with room
/// to spare); larger counts are input errors, not workloads.
pub const MAX_SENDS: u32 = 64;

/// Reads a JSON-lines trace (blank lines and `#` comments skipped), sorted by time.
pub fn read(input: impl BufRead) -> Result<Vec<Event>, TraceError> {
    let mut events = Vec::new();
    for (n, line) in input.lines().enumerate() {
        let line = line?;
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let event: Event =
            serde_json::from_str(text).map_err(|e| TraceError::Line { line: n + 1, reason: e.to_string() })?;
        if !event.t.is_finite() || event.t < 0.0 {
            return Err(TraceError::Line {
                line: n + 1,
                reason: format!("time {} is not a non-negative number", event.t),
            });
        }
        if let Op::Join { sends, .. } = &event.op {
            if *sends > MAX_SENDS {
                return Err(TraceError::Line {
                    line: n + 1,
                    reason: format!("sends {sends} exceeds {MAX_SENDS} producers per peer"),
                });
            }
        }
        events.push(event);
    }
    events.sort_by(|a, b| a.t.total_cmp(&b.t));
    Ok(events)
}

/// Shapes of generated traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// Small meetings: everyone sends audio + video and sees everyone.
    Meetings,
    /// Webinars: one or two presenters send, everyone else watches.
    Webinar,
}

/// splitmix64: a small deterministic generator, enough for reproducible sample traces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform in `0.0..1.0`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A trace of `rooms` rooms of about `peers` peers each over `seconds`, reproducible by `seed`.
pub fn generate(shape: Shape, rooms: u32, peers: u32, seconds: u32, seed: u64) -> Vec<Event> {
    let mut rng = Rng(seed);
    let mut events = Vec::new();
    for r in 0..rooms {
        let room = format!("room-{r}");
        let start = rng.unit() * f64::from(seconds) * 0.5;
        let length = f64::from(seconds) * (0.3 + 0.5 * rng.unit());
        let size = (peers / 2 + rng.below(u64::from(peers)) as u32).max(2);
        for p in 0..size {
            let presenter = match shape {
                Shape::Meetings => false,
                Shape::Webinar => p < 1 + (size > 20) as u32,
            };
            let (role, sends) = match (shape, presenter) {
                (Shape::Meetings, _) => ("speaker", 2),
                (Shape::Webinar, true) => ("presenter", 2),
                (Shape::Webinar, false) => ("viewer", 0),
            };
            let join = start + rng.unit() * length * 0.2;
            let leave = join + length * (0.5 + 0.5 * rng.unit());
            let peer = format!("{room}-p{p}");
            events.push(Event {
                t: (join * 10.0).round() / 10.0,
                op: Op::Join { room: room.clone(), peer: peer.clone(), role: role.into(), sends },
            });
            events.push(Event { t: (leave * 10.0).round() / 10.0, op: Op::Leave { room: room.clone(), peer } });
        }
    }
    events.sort_by(|a, b| a.t.total_cmp(&b.t));
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_joins_and_leaves_and_refuses_garbage() {
        let text = "# sample\n{\"t\": 2, \"op\": \"leave\", \"room\": \"r\", \"peer\": \"a\"}\n\n{\"t\": 1, \"op\": \"join\", \"room\": \"r\", \"peer\": \"a\", \"role\": \"presenter\", \"sends\": 2}\n";
        let events = read(text.as_bytes()).expect("valid");
        assert_eq!(events.len(), 2);
        assert!(matches!(&events[0].op, Op::Join { sends: 2, .. }), "sorted by time");
        let err = read("{\"t\": 1, \"op\": \"dance\"}".as_bytes()).unwrap_err();
        assert!(err.to_string().contains("trace line 1"), "{err}");
        assert!(read("{\"t\": -1, \"op\": \"leave\", \"room\": \"r\", \"peer\": \"a\"}".as_bytes()).is_err());
    }

    #[test]
    fn generation_is_reproducible_and_balanced() {
        let a = generate(Shape::Webinar, 3, 10, 100, 7);
        assert_eq!(a, generate(Shape::Webinar, 3, 10, 100, 7));
        let joins = a.iter().filter(|e| matches!(e.op, Op::Join { .. })).count();
        assert_eq!(joins * 2, a.len(), "every join has its leave");
        assert!(a.iter().any(|e| matches!(&e.op, Op::Join { role, .. } if role == "presenter")));
    }
}
