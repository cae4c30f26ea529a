//! Property tests: round trips, and no decoder of outside bytes ever panics.
#![allow(clippy::unwrap_used, missing_docs)]

use edgefleet_protocol::codec::{MessageKind, PROTOCOL_VERSION, peek_kind};
use edgefleet_protocol::command::*;
use edgefleet_protocol::package::{Manifest, PackageHead, PackageReader, TrustStore, verify_package};
use edgefleet_protocol::serial::{FrameDecoder, MAX_CHANNELS, MAX_ENCODED_FRAME_LEN, SensorMessage, encode_frame};
use edgefleet_protocol::transfer::*;
use edgefleet_protocol::uplink::*;
use edgefleet_protocol::{Digest, ModelName, SemVer, WireError, WireMessage, decode, encode};
use proptest::prelude::*;

/// Decodes `bytes` as every message type; only errors or values may come back.
fn decode_all(bytes: &[u8]) {
    let _ = peek_kind(bytes);
    let _ = decode::<Birth>(bytes);
    let _ = decode::<Presence>(bytes);
    let _ = decode::<Health>(bytes);
    let _ = decode::<DeploymentStatus>(bytes);
    let _ = decode::<DriftSummary>(bytes);
    let _ = decode::<SampleBatch>(bytes);
    let _ = decode::<SampleLabels>(bytes);
    let _ = decode::<CommandAck>(bytes);
    let _ = decode::<SensorStatus>(bytes);
    let _ = decode::<Command>(bytes);
    let _ = decode::<ChunkRequest>(bytes);
    let _ = decode::<ChunkResponse>(bytes);
}

fn digest() -> impl Strategy<Value = Digest> {
    any::<[u8; 32]>().prop_map(Digest)
}

fn model_name() -> impl Strategy<Value = ModelName> {
    "[a-zA-Z0-9._-]{1,64}".prop_map(|s| ModelName::new(s).unwrap())
}

fn command() -> impl Strategy<Value = Command> {
    let body = prop_oneof![
        any::<u64>().prop_map(|nonce| CommandBody::Ping { nonce }),
        Just(CommandBody::Rebirth),
        any::<u64>().prop_map(|d| CommandBody::Cancel { deployment_id: DeploymentId(d) }),
        (any::<u64>(), model_name(), any::<u64>(), digest(), any::<u64>(), any::<(u64, u32, u32, u64)>()).prop_map(
            |(
                d,
                model,
                version_seq,
                package_id,
                head_size,
                (duration_ms, min_inferences, max_error_rate_ppm, max_p99_latency_us),
            )| {
                CommandBody::Deploy(DeployCommand {
                    deployment_id: DeploymentId(d),
                    model,
                    version_seq,
                    package_id,
                    head_size,
                    probation: ProbationBudget { duration_ms, min_inferences, max_error_rate_ppm, max_p99_latency_us },
                    downgrade: None,
                })
            }
        ),
        (any::<u64>(), model_name(), proptest::option::of(any::<u64>()), ".{0,40}").prop_map(
            |(d, model, to_version_seq, reason)| {
                CommandBody::Rollback(RollbackCommand { deployment_id: DeploymentId(d), model, to_version_seq, reason })
            }
        ),
    ];
    (any::<u64>(), any::<u64>(), body).prop_map(|(id, issued_at_ms, body)| Command {
        command_id: CommandId(id),
        issued_at_ms,
        body,
    })
}

fn sample_batch() -> impl Strategy<Value = SampleBatch> {
    let record = (
        any::<u64>(),
        any::<u64>(),
        proptest::collection::vec(any::<f32>(), 0..16),
        proptest::collection::vec(any::<f32>(), 0..8),
    )
        .prop_map(|(inference_id, timestamp_ms, inputs, outputs)| SampleRecord {
            inference_id,
            timestamp_ms,
            inputs,
            outputs,
        });
    (any::<u64>(), model_name(), any::<u64>(), proptest::collection::vec(record, 0..8))
        .prop_map(|(seq, model, version_seq, records)| SampleBatch { seq, model, version_seq, records })
}

/// Encode, decode, encode again: byte-identical (works with NaN, unlike `==`).
fn stable<M: WireMessage>(message: &M) -> Result<(), TestCaseError> {
    let first = encode(message).unwrap();
    let decoded: M = decode(&first).unwrap();
    prop_assert_eq!(encode(&decoded).unwrap(), first);
    Ok(())
}

fn sensor_message() -> impl Strategy<Value = SensorMessage> {
    prop_oneof![
        (any::<(u32, u32, u32)>(), any::<u32>(), any::<u8>(), any::<u32>()).prop_map(
            |((a, b, c), sensor_id, channels, sample_rate_hz)| {
                SensorMessage::Hello { firmware_version: SemVer::new(a, b, c), sensor_id, channels, sample_rate_hz }
            }
        ),
        (any::<u32>(), any::<u64>(), proptest::collection::vec(-1e6f32..1e6, 0..=MAX_CHANNELS)).prop_map(
            |(seq, timestamp_us, v)| {
                SensorMessage::Samples { seq, timestamp_us, values: heapless::Vec::from_slice(&v).unwrap() }
            }
        ),
        any::<u16>().prop_map(|code| SensorMessage::Fault { code }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&bytes);
    }

    #[test]
    fn arbitrary_bodies_behind_a_valid_header_never_panic(kind in 0usize..MessageKind::ALL.len(), body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = vec![PROTOCOL_VERSION, MessageKind::ALL[kind] as u8];
        bytes.extend(body);
        decode_all(&bytes);
    }

    #[test]
    fn commands_round_trip(command in command()) {
        let bytes = encode(&command).unwrap();
        prop_assert_eq!(decode::<Command>(&bytes).unwrap(), command);
        // Every strict prefix is an error, never a panic or a different message.
        for len in 0..bytes.len() {
            prop_assert!(decode::<Command>(&bytes[..len]).is_err());
        }
        // A version bump is refused by type.
        let mut newer = bytes.clone();
        newer[0] = PROTOCOL_VERSION + 1;
        prop_assert_eq!(decode::<Command>(&newer).unwrap_err(), WireError::UnsupportedVersion { found: PROTOCOL_VERSION + 1, supported: PROTOCOL_VERSION });
    }

    #[test]
    fn sensor_statuses_round_trip(seq in any::<u64>(), boot_id in any::<u64>(), hello in proptest::option::of((any::<u32>(), any::<u8>(), any::<u32>())), since in proptest::option::of(any::<u64>()), silent in any::<bool>(), counts in any::<[u64; 7]>()) {
        let [frames, samples, crc_errors, resyncs, sequence_gaps, queue_drops, reconnects] = counts;
        let status = SensorStatus {
            seq, boot_id, timestamp_ms: seq ^ boot_id,
            sensor: hello.map(|(sensor_id, channels, sample_rate_hz)| SensorInfo { sensor_id, firmware_version: SemVer::new(0, 1, 0), channels, sample_rate_hz }),
            port_open: !silent, since_last_frame_ms: since, silence_limit_ms: 5_000, silent,
            counters: SensorLinkCounters { frames, samples, crc_errors, resyncs, sequence_gaps, queue_drops, reconnects },
        };
        stable(&status)?;
    }

    #[test]
    fn sample_batches_round_trip(batch in sample_batch()) {
        stable(&batch)?;
    }

    #[test]
    fn sample_labels_round_trip(seq in any::<u64>(), labels in proptest::collection::vec(any::<(u64, u64, i64)>(), 0..64)) {
        let labels = labels.into_iter().map(|(inference_id, timestamp_ms, label)| SampleLabel { inference_id, timestamp_ms, label }).collect();
        let message = SampleLabels { seq, labels };
        prop_assert_eq!(decode::<SampleLabels>(&encode(&message).unwrap()).unwrap(), message);
    }

    #[test]
    fn chunks_round_trip(request_id in any::<u64>(), digest in digest(), offset in any::<u64>(), data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let response = ChunkResponse { request_id, digest, offset, total_size: offset.saturating_add(data.len() as u64), body: ChunkBody::Data(data) };
        prop_assert_eq!(decode::<ChunkResponse>(&encode(&response).unwrap()).unwrap(), response);
    }

    #[test]
    fn serial_frames_round_trip_through_noise(noise in proptest::collection::vec(any::<u8>(), 0..64), messages in proptest::collection::vec(sensor_message(), 1..8)) {
        let mut line = noise.clone();
        line.push(0); // the receiver resynchronizes on the next delimiter
        for message in &messages {
            let mut frame = [0u8; MAX_ENCODED_FRAME_LEN];
            let n = encode_frame(message, &mut frame).unwrap();
            line.extend_from_slice(&frame[..n]);
        }
        let mut decoder = FrameDecoder::<MAX_ENCODED_FRAME_LEN>::new();
        let decoded: Vec<SensorMessage> = decoder.feed(&line).filter_map(Result::ok).collect();
        // Noise may (rarely) decode as a valid frame itself: the real frames are the tail.
        prop_assert!(decoded.len() >= messages.len());
        prop_assert_eq!(&decoded[decoded.len() - messages.len()..], &messages[..]);
    }

    #[test]
    fn serial_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let mut decoder = FrameDecoder::<64>::new();
        for _ in decoder.feed(&bytes) {}
        prop_assert!(decoder.pending() <= 64);
    }

    #[test]
    fn package_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024), with_magic in any::<bool>()) {
        let mut input = if with_magic { b"EFPKG\r\n\x1a\x01\x00\x00\x00".to_vec() } else { Vec::new() };
        input.extend(bytes);
        let _ = PackageHead::from_bytes(&input);
        let _ = postcard::from_bytes::<Manifest>(&input);
        if let Ok(reader) = PackageReader::open(&input[..]) {
            let _ = reader.head().manifest_unverified();
        }
        let _ = verify_package(&input[..], &TrustStore::default(), None);
    }
}
