use super::*;
use proptest::prelude::*;

fn hello() -> Message {
    Message::Hello(Hello {
        role: Role::Client,
        node: "app".into(),
        token: Some("t".into()),
        resume: None,
        last_event: 0,
    })
}

fn advert() -> CellAdvert {
    CellAdvert {
        worker: 1,
        worker_id: "w".into(),
        node: "media1".into(),
        region: "eu".into(),
        cpu_time_us: Some(5),
        draining: false,
    }
}

fn welcome() -> Message {
    Message::Welcome(Welcome {
        node: "media1".into(),
        region: "eu".into(),
        boot: 42,
        session: 7,
        secret: [7; 16],
        resumed: false,
        grace_ms: 30_000,
        cells: vec![advert()],
    })
}

/// A reader that has taken this version's preamble, and a frame announcing 2 GiB.
fn greeted() -> FrameReader {
    let mut reader = FrameReader::default();
    reader.push(&preamble(PROTOCOL_VERSION));
    reader
}

fn samples() -> Vec<Message> {
    let codecs: Vec<mediasoup::prelude::RtpCodecCapability> = Vec::new();
    vec![
        hello(),
        welcome(),
        Message::Request {
            id: 7,
            op: Op::CreateRouter { worker: 1, media_codecs: Payload::new(&codecs), room: None, token: None },
        },
        Message::Request { id: 8, op: Op::Close { handle: 9 } },
        Message::Response { id: 8, result: Err(WireError::NotFound(9)) },
        Message::Event { seq: 1, handle: 3, event: Event::Rtp(vec![0x80, 0x6f, 0, 1]) },
        Message::Cells(vec![advert()]),
    ]
}

#[test]
fn messages_round_trip_through_frames() {
    let mut reader = FrameReader::default();
    let mut all = preamble(PROTOCOL_VERSION).to_vec();
    all.extend(samples().iter().flat_map(|m| encode(m).expect("encodes")));
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
    let mut reader = greeted();
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
    let mut reader = greeted();
    reader.push(&frame[..frame.len() - 1]);
    assert_eq!(reader.next_message(), Ok(None));
    // ...and a body cut short inside a frame of the right length is an error.
    let mut short = (frame.len() as u32 - 5).to_be_bytes().to_vec();
    short.extend_from_slice(&frame[4..frame.len() - 1]);
    let mut reader = greeted();
    reader.push(&short);
    assert!(matches!(reader.next_message(), Err(ProtoError::Decode(_))));
    // An unknown message variant.
    let mut reader = greeted();
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

#[test]
fn the_preamble_is_checked_before_anything_is_decoded() {
    // Another version: refused from six bytes, whatever follows.
    let mut reader = FrameReader::default();
    reader.push(&preamble(PROTOCOL_VERSION + 1));
    reader.push(&[0xff; 64]);
    assert_eq!(
        reader.next_message(),
        Err(ProtoError::Version { ours: PROTOCOL_VERSION, theirs: PROTOCOL_VERSION + 1 })
    );
    assert!(reader.next_message().is_err(), "the reader stays failed");
    // No preamble at all (an older build, or not this protocol).
    let mut reader = FrameReader::default();
    reader.push(&encode(&hello()).expect("encodes"));
    assert!(matches!(reader.next_message(), Err(ProtoError::Decode(_))));
    // A preamble cut short waits for its bytes.
    let mut reader = FrameReader::default();
    reader.push(&preamble(PROTOCOL_VERSION)[..5]);
    assert_eq!(reader.next_message(), Ok(None));
}

/// What a corpus file must do, by its name.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Every frame decodes.
    Valid,
    /// A frame cut short: the reader waits for more bytes.
    Cut,
    /// The frame announces more than the limit.
    Oversized,
    /// A frame of a valid length whose body is not a message.
    Undecodable,
    /// A stream of another protocol version: refused from its preamble.
    OtherVersion,
    /// Bytes without the preamble (an HTTP request, a build before version 3).
    NoPreamble,
}

fn expected(name: &str) -> Outcome {
    match name {
        n if n.starts_with("valid-") => Outcome::Valid,
        n if n.starts_with("cut-") => Outcome::Cut,
        "oversized.bin" => Outcome::Oversized,
        "unknown-variant.bin" | "garbage-body.bin" => Outcome::Undecodable,
        "welcome-v99.bin" => Outcome::OtherVersion,
        "garbage.bin" | "hello-v2.bin" => Outcome::NoPreamble,
        other => panic!("corpus file {other} has no expected outcome: add it to `expected`"),
    }
}

/// With `MAFALDA_WRITE_CORPUS` set, (re)writes the corpus files made from this version's
/// messages (after a layout change bumps the version): `valid-N` is the preamble and one sample
/// frame, `cut-N` the same without its last byte, and the undecodable bodies after this
/// version's preamble, and a frame announcing 2 GiB.
fn write_corpus_if_asked(dir: &std::path::Path) {
    if std::env::var_os("MAFALDA_WRITE_CORPUS").is_none() {
        return;
    }
    for (n, message) in samples().iter().enumerate() {
        let mut bytes = preamble(PROTOCOL_VERSION).to_vec();
        bytes.extend(encode(message).expect("encodes"));
        std::fs::write(dir.join(format!("valid-{n}.bin")), &bytes).expect("write");
        std::fs::write(dir.join(format!("cut-{n}.bin")), &bytes[..bytes.len() - 1]).expect("write");
    }
    let mut other = preamble(99).to_vec();
    other.extend(encode(&welcome()).expect("encodes"));
    std::fs::write(dir.join("welcome-v99.bin"), other).expect("write");
    // This version's preamble before bodies that decode as no message: a message variant
    // beyond the last, and bytes of 0xff.
    let with_body = |body: &[u8]| {
        let mut bytes = preamble(PROTOCOL_VERSION).to_vec();
        bytes.extend((body.len() as u32).to_be_bytes());
        bytes.extend(body);
        bytes
    };
    std::fs::write(dir.join("unknown-variant.bin"), with_body(&[0xfa, 0x01, 0x01])).expect("write");
    std::fs::write(dir.join("garbage-body.bin"), with_body(&[0xff; 16])).expect("write");
    let mut oversized = preamble(PROTOCOL_VERSION).to_vec();
    oversized.extend(0x7fff_ffff_u32.to_be_bytes());
    oversized.extend([1, 2, 3]);
    std::fs::write(dir.join("oversized.bin"), oversized).expect("write");
}

/// The checked-in corpus (frames that once mattered: valid ones of this protocol version, cut
/// ones, garbage, older versions): each file does what its name says.
#[test]
fn corpus_frames_have_their_expected_outcome() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/proto");
    write_corpus_if_asked(&dir);
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).expect("name").to_string();
        let bytes = std::fs::read(&path).expect("corpus file");
        let mut reader = FrameReader::default();
        reader.push(&bytes);
        let first = reader.next_message();
        match expected(&name) {
            Outcome::Valid => {
                assert!(matches!(first, Ok(Some(_))), "{name}: {first:?}");
                assert_eq!(reader.next_message(), Ok(None), "{name}: one whole frame");
            }
            Outcome::Cut => assert_eq!(first, Ok(None), "{name}"),
            Outcome::Oversized => assert!(matches!(first, Err(ProtoError::Oversized(_))), "{name}: {first:?}"),
            Outcome::Undecodable => assert!(matches!(first, Err(ProtoError::Decode(_))), "{name}: {first:?}"),
            Outcome::OtherVersion => {
                assert!(matches!(first, Err(ProtoError::Version { theirs: 99, .. })), "{name}: {first:?}")
            }
            Outcome::NoPreamble => {
                let preamble_error = matches!(&first, Err(ProtoError::Decode(e)) if e.contains("preamble"));
                assert!(preamble_error, "{name}: {first:?}")
            }
        }
        seen += 1;
    }
    assert!(seen >= 17, "corpus has {seen} files");
}

/// Operations as an attacker sends them: every kind, with a payload of random bytes.
fn op_with_payload(kind: usize, bytes: Vec<u8>) -> Op {
    fn payload<T>(bytes: &[u8]) -> Payload<T> {
        Payload { bytes: bytes.to_vec(), kind: std::marker::PhantomData }
    }
    let b = &bytes;
    match kind % 12 {
        0 => Op::CreateRouter { worker: 1, media_codecs: payload(b), room: None, token: None },
        1 => Op::CreateWebRtcTransport { router: 1, options: payload(b) },
        2 => Op::CreatePlainTransport { router: 1, options: payload(b) },
        3 => Op::CreatePipeTransport { router: 1, options: payload(b) },
        4 => Op::Connect { transport: 1, params: payload(b) },
        5 => Op::Produce { transport: 1, options: payload(b) },
        6 => Op::Consume { transport: 1, options: payload(b) },
        7 => Op::ProduceData { transport: 1, options: payload(b) },
        8 => Op::ConsumeData { transport: 1, options: payload(b) },
        9 => Op::SetPreferredLayers { consumer: 1, layers: payload(b) },
        10 => Op::AddProducer { observer: 1, producer_id: payload(b) },
        _ => Op::CapabilitiesFor { router: 1, media_codecs: payload(b) },
    }
}

/// Unpacks every payload an operation carries, as dispatch does.
fn unpack_all(op: &Op) {
    match op {
        Op::CreateRouter { media_codecs, .. } | Op::CapabilitiesFor { media_codecs, .. } => {
            let _ = media_codecs.get();
        }
        Op::CreateWebRtcTransport { options, .. } => drop(options.get()),
        Op::CreatePlainTransport { options, .. } => drop(options.get()),
        Op::CreatePipeTransport { options, .. } => drop(options.get()),
        Op::Connect { params, .. } => drop(params.get()),
        Op::Produce { options, .. } => drop(options.get()),
        Op::Consume { options, .. } => drop(options.get()),
        Op::ProduceData { options, .. } => drop(options.get()),
        Op::ConsumeData { options, .. } => drop(options.get()),
        Op::SetPreferredLayers { layers, .. } => drop(layers.get()),
        Op::AddProducer { producer_id, .. } => drop(producer_id.get()),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    /// Arbitrary bytes never panic the decoder.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut reader = greeted();
        reader.push(&bytes);
        for _ in 0..64 {
            match reader.next_message() {
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        let _ = decode_body(&bytes);
    }

    /// Requests whose payloads are random bytes (or valid MessagePack of the wrong shape) reach
    /// payload decoding — the self-describing decoder into mediasoup's types, untagged enums
    /// included — through a real frame, and never panic: each is an error the caller gets.
    #[test]
    fn random_payloads_reach_payload_decoding_and_never_panic(
        kind in 0usize..12,
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        shaped in any::<bool>(),
    ) {
        // Half the cases are MessagePack maps and arrays: they get past the first byte.
        let bytes = if shaped { rmp_serde::to_vec_named(&std::collections::BTreeMap::from([("x", bytes)])).expect("msgpack") } else { bytes };
        let frame = encode(&Message::Request { id: 1, op: op_with_payload(kind, bytes) }).expect("encodes");
        let mut reader = greeted();
        reader.push(&frame);
        match reader.next_message() {
            Ok(Some(Message::Request { op, .. })) => unpack_all(&op),
            other => prop_assert!(false, "a valid frame: {:?}", other.map(|m| m.map(|m| m.kind()))),
        }
    }

    /// Valid frames with bytes flipped never panic and never decode into a frame of another length.
    #[test]
    fn mutated_frames_never_panic(which in 0usize..7, at in any::<usize>(), value in any::<u8>()) {
        let mut frame = encode(&samples()[which]).expect("encodes");
        let at = at % frame.len();
        frame[at] = value;
        let mut reader = greeted();
        reader.push(&frame);
        let _ = reader.next_message();
    }
}
