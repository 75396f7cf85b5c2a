//! Sans-IO RTP header codec (RFC 3550): just enough to write valid packets and to read the
//! payload back out of what a worker forwards (which may add CSRCs, extensions or padding).

use thiserror::Error;

/// Length of the fixed RTP header.
pub const FIXED_HEADER_LEN: usize = 12;
const VERSION: u8 = 2;

/// The fields of an RTP header we write and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit.
    pub marker: bool,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

/// Why a datagram is not a usable RTP packet.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RtpError {
    /// Shorter than the header it announces.
    #[error("datagram of {0} bytes is too short for its RTP header")]
    TooShort(usize),
    /// Version field is not 2.
    #[error("RTP version {0} is not 2")]
    BadVersion(u8),
    /// Payload type is outside 0..=127.
    #[error("payload type {0} does not fit in 7 bits")]
    BadPayloadType(u8),
    /// Padding length larger than the payload.
    #[error("padding of {0} bytes exceeds the payload")]
    BadPadding(usize),
    /// A one-byte header extension element with an id outside 1..=14 or 0 or >16 bytes.
    #[error("header extension id {id} with {len} bytes does not fit the one-byte format")]
    BadExtension {
        /// The extension id.
        id: u8,
        /// Its data length.
        len: usize,
    },
}

/// A parsed RTP packet borrowing its payload from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// The header fields.
    pub header: RtpHeader,
    /// The payload, without padding.
    pub payload: &'a [u8],
}

/// Writes a packet with no CSRCs, extension or padding.
pub fn encode(header: &RtpHeader, payload: &[u8]) -> Result<Vec<u8>, RtpError> {
    if header.payload_type > 0x7f {
        return Err(RtpError::BadPayloadType(header.payload_type));
    }
    let mut out = Vec::with_capacity(FIXED_HEADER_LEN + payload.len());
    out.push(VERSION << 6);
    out.push((u8::from(header.marker) << 7) | header.payload_type);
    out.extend_from_slice(&header.sequence.to_be_bytes());
    out.extend_from_slice(&header.timestamp.to_be_bytes());
    out.extend_from_slice(&header.ssrc.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Writes a packet carrying one-byte header extensions (RFC 8285): `(id, data)` pairs with ids
/// 1..=14 and 1..=16 bytes of data each.
pub fn encode_with_extensions(
    header: &RtpHeader,
    extensions: &[(u8, &[u8])],
    payload: &[u8],
) -> Result<Vec<u8>, RtpError> {
    if extensions.is_empty() {
        return encode(header, payload);
    }
    let mut block = Vec::new();
    for (id, data) in extensions {
        if !(1..=14).contains(id) || data.is_empty() || data.len() > 16 {
            return Err(RtpError::BadExtension { id: *id, len: data.len() });
        }
        block.push((id << 4) | (data.len() as u8 - 1));
        block.extend_from_slice(data);
    }
    while block.len() % 4 != 0 {
        block.push(0);
    }
    let mut out = encode(header, &[])?;
    out[0] |= 0x10;
    out.extend_from_slice(&[0xbe, 0xde]);
    out.extend_from_slice(&((block.len() / 4) as u16).to_be_bytes());
    out.extend_from_slice(&block);
    out.extend_from_slice(payload);
    Ok(out)
}

/// What an RTCP sender report (RFC 3550 §6.4.1) says about one stream: which wall-clock time
/// its media timestamp corresponds to, and how much it has sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport {
    /// The stream.
    pub ssrc: u32,
    /// Wall-clock time as 64-bit NTP (seconds in the high word, fraction in the low word).
    pub ntp: u64,
    /// The media timestamp of that instant.
    pub rtp_timestamp: u32,
    /// Packets sent so far.
    pub packets: u32,
    /// Payload octets sent so far.
    pub octets: u32,
}

/// Length of a sender report without report blocks.
pub const SENDER_REPORT_LEN: usize = 28;

/// Writes a sender report with no reception report blocks (a sender that receives nothing).
/// Receivers need one per stream to align the timestamps of different streams, e.g. to switch
/// between simulcast layers.
pub fn encode_sender_report(report: &SenderReport) -> Vec<u8> {
    let mut out = Vec::with_capacity(SENDER_REPORT_LEN);
    out.push(VERSION << 6);
    out.push(200);
    let words = (SENDER_REPORT_LEN / 4 - 1) as u16;
    out.extend_from_slice(&words.to_be_bytes());
    out.extend_from_slice(&report.ssrc.to_be_bytes());
    out.extend_from_slice(&report.ntp.to_be_bytes());
    out.extend_from_slice(&report.rtp_timestamp.to_be_bytes());
    out.extend_from_slice(&report.packets.to_be_bytes());
    out.extend_from_slice(&report.octets.to_be_bytes());
    out
}

/// True when the datagram is RTCP multiplexed on the RTP port (RFC 5761: PT 64..=95).
pub fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 2 && (192..=223).contains(&datagram[1])
}

/// Parses an RTP datagram.
pub fn parse(datagram: &[u8]) -> Result<RtpPacket<'_>, RtpError> {
    let len = datagram.len();
    if len < FIXED_HEADER_LEN {
        return Err(RtpError::TooShort(len));
    }
    let version = datagram[0] >> 6;
    if version != VERSION {
        return Err(RtpError::BadVersion(version));
    }
    let has_padding = datagram[0] & 0x20 != 0;
    let has_extension = datagram[0] & 0x10 != 0;
    let csrc_count = usize::from(datagram[0] & 0x0f);
    let mut offset = FIXED_HEADER_LEN + 4 * csrc_count;
    if has_extension {
        let ext = datagram.get(offset..offset + 4).ok_or(RtpError::TooShort(len))?;
        offset += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
    }
    if offset > len {
        return Err(RtpError::TooShort(len));
    }
    let mut end = len;
    if has_padding {
        let pad = usize::from(datagram[len - 1]);
        if pad == 0 || pad > len - offset {
            return Err(RtpError::BadPadding(pad));
        }
        end -= pad;
    }
    let word = |at: usize| u32::from_be_bytes([datagram[at], datagram[at + 1], datagram[at + 2], datagram[at + 3]]);
    Ok(RtpPacket {
        header: RtpHeader {
            marker: datagram[1] & 0x80 != 0,
            payload_type: datagram[1] & 0x7f,
            sequence: u16::from_be_bytes([datagram[2], datagram[3]]),
            timestamp: word(4),
            ssrc: word(8),
        },
        payload: &datagram[offset..end],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_report_is_rtcp_of_type_200_with_its_fields_in_order() {
        let report =
            SenderReport { ssrc: 0x0a0b_0c0d, ntp: 0x0102_0304_0506_0708, rtp_timestamp: 9, packets: 10, octets: 11 };
        let bytes = encode_sender_report(&report);
        assert_eq!(bytes.len(), SENDER_REPORT_LEN);
        assert!(is_rtcp(&bytes));
        assert_eq!(&bytes[..4], &[0x80, 200, 0, 6]);
        assert_eq!(&bytes[4..8], &0x0a0b_0c0du32.to_be_bytes());
        assert_eq!(&bytes[8..16], &0x0102_0304_0506_0708u64.to_be_bytes());
        assert_eq!(&bytes[16..], &[0, 0, 0, 9, 0, 0, 0, 10, 0, 0, 0, 11]);
    }

    fn header() -> RtpHeader {
        RtpHeader { marker: true, payload_type: 100, sequence: 65_535, timestamp: 0xdead_beef, ssrc: 0x1122_3344 }
    }

    #[test]
    fn round_trips_header_and_payload() {
        let bytes = encode(&header(), b"hello").unwrap();
        assert_eq!(bytes.len(), FIXED_HEADER_LEN + 5);
        let packet = parse(&bytes).unwrap();
        assert_eq!(packet.header, header());
        assert_eq!(packet.payload, b"hello");
        assert!(!is_rtcp(&bytes));
    }

    #[test]
    fn skips_csrcs_extension_and_padding() {
        let mut bytes = encode(&header(), b"").unwrap();
        bytes[0] |= 0x20 | 0x10 | 0x01; // padding, extension, one CSRC
        let mut tail = vec![0, 0, 0, 7]; // CSRC
        tail.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]); // one-word extension
        tail.extend_from_slice(b"abc");
        tail.extend_from_slice(&[0, 0, 3]); // three bytes of padding
        bytes.extend_from_slice(&tail);
        assert_eq!(parse(&bytes).unwrap().payload, b"abc");
    }

    #[test]
    fn rejects_malformed_datagrams() {
        assert_eq!(parse(&[0x80; 5]), Err(RtpError::TooShort(5)));
        let mut bytes = encode(&header(), b"x").unwrap();
        bytes[0] = 0x40;
        assert_eq!(parse(&bytes), Err(RtpError::BadVersion(1)));
        bytes[0] = 0x80 | 0x0f; // 15 CSRCs announced, none present
        assert_eq!(parse(&bytes), Err(RtpError::TooShort(13)));
        bytes[0] = 0xa0; // padding bit with a padding count larger than the payload
        bytes[12] = 9;
        assert_eq!(parse(&bytes), Err(RtpError::BadPadding(9)));
        let bad = RtpHeader { payload_type: 200, ..header() };
        assert_eq!(encode(&bad, b""), Err(RtpError::BadPayloadType(200)));
    }

    #[test]
    fn writes_one_byte_header_extensions() {
        let bytes = encode_with_extensions(&header(), &[(1, &[0x9e])], b"opus").unwrap();
        assert_eq!(bytes[0] & 0x10, 0x10);
        assert_eq!(&bytes[12..16], &[0xbe, 0xde, 0, 1]);
        assert_eq!(&bytes[16..18], &[0x10, 0x9e]);
        assert_eq!(parse(&bytes).unwrap().payload, b"opus");
        assert_eq!(
            encode_with_extensions(&header(), &[(15, &[1])], b""),
            Err(RtpError::BadExtension { id: 15, len: 1 })
        );
    }

    #[test]
    fn recognises_multiplexed_rtcp() {
        assert!(is_rtcp(&[0x80, 200, 0, 6]));
        assert!(!is_rtcp(&[0x80, 100, 0, 6]));
    }
}
