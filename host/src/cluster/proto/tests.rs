use super::*;
use proptest::prelude::*;

fn hello() -> Message {
    Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        role: Role::Client,
        node: "app".into(),
        token: Some("t".into()),
        resume: None,
        last_event: 0,
    })
}

fn samples() -> Vec<Message> {
    let codecs: Vec<mediasoup::prelude::RtpCodecCapability> = Vec::new();
    vec![
        hello(),
        Message::Request { id: 7, op: Op::CreateRouter { worker: 1, media_codecs: Payload::new(&codecs), room: None } },
        Message::Request { id: 8, op: Op::Close { handle: 9 } },
        Message::Response { id: 8, result: Err(WireError::NotFound(9)) },
        Message::Event { seq: 1, handle: 3, event: Event::Rtp(vec![0x80, 0x6f, 0, 1]) },
        Message::Cells(vec![CellAdvert {
            worker: 1,
            worker_id: "w".into(),
            node: "media1".into(),
            region: "eu".into(),
            cpu_time_us: Some(5),
        }]),
    ]
}

#[test]
fn messages_round_trip_through_frames() {
    let mut reader = FrameReader::default();
    let all: Vec<u8> = samples().iter().flat_map(|m| encode(m).expect("encodes")).collect();
    // Fed one byte at a time: frames are reassembled.
    for byte in &all {
        reader.push(std::slice::from_ref(byte));
    }
    for expected in samples() {
        assert_eq!(reader.next_message().expect("decodes"), Some(expected));
    }
    assert_eq!(reader.next_message().expect("empty"), None);
}

#[test]
fn payloads_keep_mediasoup_values() {
    let parameters = mediasoup::prelude::RtpParameters::default();
    let payload = Payload::new(&parameters);
    assert_eq!(payload.get().expect("unpacks"), parameters);
    let wrong: Payload<u64> = Payload { bytes: payload.bytes.clone(), kind: std::marker::PhantomData };
    assert!(matches!(wrong.get(), Err(ProtoError::Payload(_))));
}

#[test]
fn untagged_mediasoup_enums_keep_their_variant() {
    let tuple = mediasoup::types::data_structures::TransportTuple::WithRemote {
        local_address: "127.0.0.2".into(),
        local_port: 40000,
        remote_ip: "127.0.0.1".parse().expect("ip"),
        remote_port: 5004,
        protocol: mediasoup::prelude::Protocol::Udp,
    };
    assert_eq!(Payload::new(&tuple).get().expect("unpacks"), tuple);
}

#[test]
fn oversized_frames_are_refused_before_their_body_arrives() {
    let mut reader = FrameReader::default();
    reader.push(&((MAX_FRAME as u32) + 1).to_be_bytes());
    assert_eq!(reader.next_message(), Err(ProtoError::Oversized(MAX_FRAME + 1)));
    // The reader stays failed: the connection is to be closed.
    assert!(reader.next_message().is_err());
    let big = Message::Event { seq: 2, handle: 1, event: Event::Rtp(vec![0; MAX_FRAME]) };
    assert!(matches!(encode(&big), Err(ProtoError::Oversized(_))));
}

#[test]
fn truncated_garbage_and_unknown_variants_are_decode_errors() {
    let frame = encode(&hello()).expect("encodes");
    // A truncated body (the length says more than the body holds) waits for more bytes...
    let mut reader = FrameReader::default();
    reader.push(&frame[..frame.len() - 1]);
    assert_eq!(reader.next_message(), Ok(None));
    // ...and a body cut short inside a frame of the right length is an error.
    let mut short = (frame.len() as u32 - 5).to_be_bytes().to_vec();
    short.extend_from_slice(&frame[4..frame.len() - 1]);
    let mut reader = FrameReader::default();
    reader.push(&short);
    assert!(matches!(reader.next_message(), Err(ProtoError::Decode(_))));
    // An unknown message variant.
    let mut reader = FrameReader::default();
    reader.push(&[0, 0, 0, 2, 200, 1]);
    assert!(matches!(reader.next_message(), Err(ProtoError::Decode(_))));
    // Trailing bytes after a message.
    let mut padded = frame[4..].to_vec();
    padded.push(0);
    assert!(matches!(decode_body(&padded), Err(ProtoError::Decode(_))));
}

#[test]
fn version_mismatch_names_both_versions() {
    let error = check_version(PROTOCOL_VERSION + 1).expect_err("refused");
    let text = error.to_string();
    assert!(
        text.contains(&PROTOCOL_VERSION.to_string()) && text.contains(&(PROTOCOL_VERSION + 1).to_string()),
        "{text}"
    );
    assert!(check_version(PROTOCOL_VERSION).is_ok());
}

/// The checked-in corpus (frames that once mattered: valid ones, cut ones, garbage) decodes or
/// fails cleanly.
#[test]
fn corpus_decodes_or_fails_cleanly() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/proto");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("corpus file");
        let mut reader = FrameReader::default();
        reader.push(&bytes);
        while let Ok(Some(_)) = reader.next_message() {}
        seen += 1;
    }
    assert!(seen >= 5, "corpus has {seen} files");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    /// Arbitrary bytes never panic the decoder.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut reader = FrameReader::default();
        reader.push(&bytes);
        for _ in 0..64 {
            match reader.next_message() {
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        let _ = decode_body(&bytes);
    }

    /// Valid frames with bytes flipped never panic and never decode into a frame of another length.
    #[test]
    fn mutated_frames_never_panic(which in 0usize..6, at in any::<usize>(), value in any::<u8>()) {
        let mut frame = encode(&samples()[which]).expect("encodes");
        let at = at % frame.len();
        frame[at] = value;
        let mut reader = FrameReader::default();
        reader.push(&frame);
        let _ = reader.next_message();
    }
}
