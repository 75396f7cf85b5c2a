//! Self-describing test payloads: every payload carries its own index and a filler derived from
//! it, so a receiver can prove it got the exact bytes that were sent, whatever the worker did to
//! the RTP header (mediasoup rewrites SSRC, sequence numbers and timestamps).

/// What the payload looks like to the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayloadKind {
    /// An Opus frame (TOC byte: CELT fullband 20 ms, stereo, one frame).
    #[default]
    Opus,
    /// A VP8 key frame (payload descriptor with S=1/PID=0, key frame header), so that video
    /// consumers, which wait for a key frame, forward every packet.
    Vp8KeyFrame,
}

const OPUS_TOC: u8 = 0xfc;
/// VP8 payload descriptor (start of partition 0) + frame tag (key frame, shown) + start code
/// + 320x240.
const VP8_KEY_FRAME_PREFIX: [u8; 11] = [0x10, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00];

impl PayloadKind {
    fn prefix(self) -> &'static [u8] {
        match self {
            PayloadKind::Opus => std::slice::from_ref(&OPUS_TOC),
            PayloadKind::Vp8KeyFrame => &VP8_KEY_FRAME_PREFIX,
        }
    }

    /// Smallest payload this kind can carry (prefix + 4-byte index).
    pub fn min_len(self) -> usize {
        self.prefix().len() + 4
    }
}

fn filler(index: u32, at: usize) -> u8 {
    (at as u8).wrapping_mul(31).wrapping_add(index as u8).wrapping_add((index >> 8) as u8)
}

/// The payload number `index` of length `len` (at least [`PayloadKind::min_len`]).
pub fn make(kind: PayloadKind, index: u32, len: usize) -> Vec<u8> {
    let len = len.max(kind.min_len());
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(kind.prefix());
    out.extend_from_slice(&index.to_be_bytes());
    let start = out.len();
    out.extend((start..len).map(|at| filler(index, at)));
    out
}

/// The index of `payload` if it is byte-identical to what [`make`] produced for that index.
pub fn verify(kind: PayloadKind, payload: &[u8]) -> Option<u32> {
    let prefix = kind.prefix();
    let rest = payload.strip_prefix(prefix)?;
    let index = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    let intact = payload.iter().enumerate().skip(prefix.len() + 4).all(|(at, byte)| *byte == filler(index, at));
    intact.then_some(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_payloads_verify_to_their_index() {
        for kind in [PayloadKind::Opus, PayloadKind::Vp8KeyFrame] {
            for index in [0, 1, 255, 256, 70_000] {
                let payload = make(kind, index, 80);
                assert_eq!(payload.len(), 80);
                assert_eq!(verify(kind, &payload), Some(index));
            }
        }
    }

    #[test]
    fn any_changed_byte_fails_verification() {
        let payload = make(PayloadKind::Opus, 7, 40);
        for at in 0..payload.len() {
            let mut bad = payload.clone();
            bad[at] ^= 0x01;
            assert_ne!(verify(PayloadKind::Opus, &bad), Some(7), "byte {at} flipped");
        }
        assert_eq!(verify(PayloadKind::Opus, &payload[..3]), None);
        assert_eq!(verify(PayloadKind::Vp8KeyFrame, &payload), None);
    }

    #[test]
    fn short_lengths_are_raised_to_the_minimum() {
        assert_eq!(make(PayloadKind::Vp8KeyFrame, 1, 0).len(), PayloadKind::Vp8KeyFrame.min_len());
    }
}
