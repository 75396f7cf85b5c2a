//! Worker log settings by name (`debug`, `ice`…: mediasoup's own names, as its serde writes
//! them), for the cluster protocol and a worker process's command line.

use mediasoup::worker::{WorkerLogLevel, WorkerLogTag};

const LEVELS: [WorkerLogLevel; 4] =
    [WorkerLogLevel::Debug, WorkerLogLevel::Warn, WorkerLogLevel::Error, WorkerLogLevel::None];

const TAGS: [WorkerLogTag; 13] = [
    WorkerLogTag::Info,
    WorkerLogTag::Ice,
    WorkerLogTag::Dtls,
    WorkerLogTag::Rtp,
    WorkerLogTag::Srtp,
    WorkerLogTag::Rtcp,
    WorkerLogTag::Rtx,
    WorkerLogTag::Bwe,
    WorkerLogTag::Score,
    WorkerLogTag::Simulcast,
    WorkerLogTag::Svc,
    WorkerLogTag::Sctp,
    WorkerLogTag::Message,
];

/// The name serde writes for a unit variant (a string in any self-describing format).
fn name_of<T: serde::Serialize>(value: &T) -> String {
    rmp_serde::to_vec(value).ok().and_then(|bytes| rmp_serde::from_slice::<String>(&bytes).ok()).unwrap_or_default()
}

/// A log level's name.
pub fn level_name(level: WorkerLogLevel) -> String {
    name_of(&level)
}

/// The log level named `name`.
pub fn level_of(name: &str) -> Option<WorkerLogLevel> {
    LEVELS.into_iter().find(|level| level_name(*level) == name)
}

/// A log tag's name.
pub fn tag_name(tag: WorkerLogTag) -> String {
    name_of(&tag)
}

/// The log tag named `name`.
pub fn tag_of(name: &str) -> Option<WorkerLogTag> {
    TAGS.into_iter().find(|tag| tag_name(*tag) == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_level_and_tag_reads_back_from_its_name() {
        for level in LEVELS {
            assert_eq!(level_of(&level_name(level)), Some(level));
        }
        for tag in TAGS {
            assert_eq!(tag_of(&tag_name(tag)), Some(tag));
        }
        assert_eq!(level_name(WorkerLogLevel::Warn), "warn");
        assert_eq!(tag_of("nonsense"), None);
    }
}
