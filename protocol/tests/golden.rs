//! Golden bytes for every MQTT message: the exact payloads WIRE.md describes.
//!
//! Each expected array is written by hand from the spec (postcard: unsigned integers as
//! LEB128 varints, `u8` raw, floats little-endian IEEE-754, strings and sequences with a varint
//! length, `Option` as 00/01 + value, enums as a varint variant index, fixed arrays raw), so a
//! change in the encoding fails here before it reaches a device.
#![allow(clippy::unwrap_used, missing_docs)]

use edgefleet_protocol::command::*;
use edgefleet_protocol::hardware::{GpuInfo, HardwareClass, HardwareInfo};
use edgefleet_protocol::package::PackageError;
use edgefleet_protocol::transfer::*;
use edgefleet_protocol::uplink::*;
use edgefleet_protocol::{DeviceId, Digest, ModelName, SemVer, WireMessage, decode, encode};
use std::fmt::Debug;

fn check<M: WireMessage + PartialEq + Debug>(message: M, expected: &[u8]) {
    let bytes = encode(&message).unwrap();
    assert_eq!(bytes, expected, "\n got {bytes:02x?}\nwant {expected:02x?}");
    assert_eq!(decode::<M>(expected).unwrap(), message);
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn m() -> ModelName {
    ModelName::new("m").unwrap()
}

#[test]
#[rustfmt::skip]
fn ping_command() {
    let ping = Command { command_id: CommandId(7), issued_at_ms: 300, body: CommandBody::Ping { nonce: 42 } };
    check(ping, &[
        0x01, 0x10, // version 1, kind Command
        0x07,       // command_id 7
        0xac, 0x02, // issued_at_ms 300 (varint)
        0x04,       // body: variant 4 = Ping
        0x2a,       // nonce 42
    ]);
}

#[test]
#[rustfmt::skip]
fn rebirth_command() {
    let rebirth = Command { command_id: CommandId(9), issued_at_ms: 1, body: CommandBody::Rebirth };
    check(rebirth, &[
        0x01, 0x10, // version 1, kind Command
        0x09,       // command_id 9
        0x01,       // issued_at_ms 1
        0x05,       // body: variant 5 = Rebirth (no fields)
    ]);
}

#[test]
#[rustfmt::skip]
fn deploy_command() {
    let deploy = Command {
        command_id: CommandId(8),
        issued_at_ms: 0,
        body: CommandBody::Deploy(DeployCommand {
            deployment_id: DeploymentId(2),
            model: m(),
            version_seq: 5,
            package_id: Digest([0xcd; 32]),
            head_size: 300,
            probation: ProbationBudget {
                duration_ms: 60_000,
                min_inferences: 20,
                max_error_rate_ppm: 50_000,
                max_p99_latency_us: 0,
            },
            downgrade: None,
        }),
    };
    check(deploy, &cat(&[
        &[0x01, 0x10], // version, kind Command
        &[0x08, 0x00], // command_id 8, issued_at_ms 0
        &[0x00],       // body: variant 0 = Deploy
        &[0x02],       // deployment_id 2
        &[0x01, b'm'], // model "m"
        &[0x05],       // version_seq 5
        &[0xcd; 32],   // package_id: 32 raw bytes
        &[0xac, 0x02], // head_size 300
        &[0xe0, 0xd4, 0x03], // probation.duration_ms 60000
        &[0x14],             // min_inferences 20
        &[0xd0, 0x86, 0x03], // max_error_rate_ppm 50000
        &[0x00],             // max_p99_latency_us 0
        &[0x00],             // downgrade None
    ]));
}

#[test]
#[rustfmt::skip]
fn rollback_and_cancel_commands() {
    let rollback = Command {
        command_id: CommandId(1),
        issued_at_ms: 0,
        body: CommandBody::Rollback(RollbackCommand {
            deployment_id: DeploymentId(2),
            model: m(),
            to_version_seq: None,
            reason: "gate".into(),
        }),
    };
    check(rollback, &[
        0x01, 0x10, 0x01, 0x00, // header, command_id 1, issued_at_ms 0
        0x01,                   // variant 1 = Rollback
        0x02, 0x01, b'm',       // deployment_id 2, model "m"
        0x00,                   // to_version_seq None (last-known-good)
        0x04, b'g', b'a', b't', b'e',
    ]);
    let cancel = Command { command_id: CommandId(1), issued_at_ms: 0, body: CommandBody::Cancel { deployment_id: DeploymentId(9) } };
    check(cancel, &[0x01, 0x10, 0x01, 0x00, 0x02 /* Cancel */, 0x09]);
    let sampling = Command {
        command_id: CommandId(1),
        issued_at_ms: 0,
        body: CommandBody::SetSamplingPolicy(SamplingPolicy {
            model: Some(m()),
            sample_rate: 0.5,
            max_sample_bytes_per_hour: 1000,
            drift_window_ms: 60_000,
        }),
    };
    check(sampling, &[
        0x01, 0x10, 0x01, 0x00,
        0x03,                   // variant 3 = SetSamplingPolicy
        0x01, 0x01, b'm',       // model Some("m")
        0x00, 0x00, 0x00, 0x3f, // sample_rate 0.5f32 LE
        0xe8, 0x07,             // 1000
        0xe0, 0xd4, 0x03,       // 60000
    ]);
}

#[test]
#[rustfmt::skip]
fn birth() {
    let birth = Birth {
        device_id: DeviceId::new("d1").unwrap(),
        boot_id: 5,
        agent_version: SemVer::new(0, 1, 0),
        hardware: HardwareInfo {
            class: HardwareClass::Gpu,
            cpu_arch: "aarch64".into(),
            cpu_cores: 6,
            memory_bytes: 1 << 33,
            gpu: Some(GpuInfo { name: "orin".into(), compute_capability_major: 8, compute_capability_minor: 7, memory_bytes: 0 }),
            accelerator: None,
        },
        free_disk_bytes: 1000,
        free_memory_bytes: 2000,
        active_models: vec![ActiveModel { name: m(), version_seq: 3, label: "1.0.0".into(), package_id: Digest([0xab; 32]) }],
        seq: 1,
    };
    check(birth, &cat(&[
        &[0x01, 0x01],             // version, kind Birth
        &[0x02, b'd', b'1'],       // device_id "d1"
        &[0x05],                   // boot_id 5
        &[0x00, 0x01, 0x00],       // agent_version 0.1.0
        &[0x01],                   // hardware.class Gpu
        &[0x07], b"aarch64",       // cpu_arch
        &[0x06],                   // cpu_cores 6
        &[0x80, 0x80, 0x80, 0x80, 0x20], // memory_bytes 2^33
        &[0x01, 0x04], b"orin",    // gpu Some, name "orin"
        &[0x08, 0x07],             // compute capability 8.7 (u8 raw)
        &[0x00],                   // gpu memory 0
        &[0x00],                   // accelerator None
        &[0xe8, 0x07],             // free_disk_bytes 1000
        &[0xd0, 0x0f],             // free_memory_bytes 2000
        &[0x01],                   // one active model
        &[0x01, b'm', 0x03],       // name "m", version_seq 3
        &[0x05], b"1.0.0",         // label
        &[0xab; 32],               // package_id
        &[0x01],                   // seq 1
    ]));
}

#[test]
#[rustfmt::skip]
fn presence_last_will() {
    let will = Presence { state: PresenceState::Offline(OfflineReason::ConnectionLost), boot_id: 5 };
    check(will, &[0x01, 0x02, 0x01 /* Offline */, 0x01 /* ConnectionLost */, 0x05]);
    check(Presence { state: PresenceState::Online, boot_id: 5 }, &[0x01, 0x02, 0x00, 0x05]);
}

#[test]
#[rustfmt::skip]
fn health() {
    let health = Health {
        seq: 9,
        boot_id: 5,
        timestamp_ms: 300,
        uptime_ms: 1,
        models: vec![ModelHealth { name: m(), version_seq: 3, inference_count: 100, error_count: 0, latency_p50_us: 150, latency_p99_us: 1000 }],
        outbox_depth: 2,
        outbox_bytes: 128,
        outbox_evictions: 0,
        rss_bytes: 0,
        cpu_percent: 1.5,
        free_disk_bytes: 0,
    };
    check(health, &[
        0x01, 0x03,             // version, kind Health
        0x09, 0x05, 0xac, 0x02, 0x01, // seq 9, boot_id 5, timestamp 300, uptime 1
        0x01,                   // one model
        0x01, b'm', 0x03,       // name, version_seq
        0x64, 0x00,             // inference_count 100, error_count 0
        0x96, 0x01, 0xe8, 0x07, // p50 150, p99 1000
        0x02, 0x80, 0x01, 0x00, // outbox depth 2, bytes 128, evictions 0
        0x00,                   // rss 0
        0x00, 0x00, 0xc0, 0x3f, // cpu_percent 1.5f32 LE
        0x00,                   // free_disk 0
    ]);
}

#[test]
#[rustfmt::skip]
fn deployment_status_with_failure_reason() {
    let status = DeploymentStatus {
        seq: 1,
        timestamp_ms: 2,
        deployment_id: DeploymentId(3),
        model: m(),
        version_seq: 4,
        state: DeploymentState::Failed(FailureReason::Package(PackageError::DigestMismatch {
            variant: HardwareClass::Gpu,
            expected: Digest([1; 32]),
            found: Digest([2; 32]),
        })),
    };
    check(status, &cat(&[
        &[0x01, 0x04],             // version, kind DeploymentStatus
        &[0x01, 0x02, 0x03],       // seq, timestamp, deployment_id
        &[0x01, b'm', 0x04],       // model, version_seq
        &[0x06],                   // state: variant 6 = Failed
        &[0x00],                   // FailureReason variant 0 = Package
        &[0x0b],                   // PackageError variant 11 = DigestMismatch
        &[0x01],                   // variant Gpu
        &[0x01; 32], &[0x02; 32],  // expected, found
    ]));
    let progress = DeploymentStatus {
        seq: 2,
        timestamp_ms: 0,
        deployment_id: DeploymentId(3),
        model: m(),
        version_seq: 4,
        state: DeploymentState::Downloading { received: 65_536, total: 100_000 },
    };
    check(progress, &[
        0x01, 0x04, 0x02, 0x00, 0x03, 0x01, b'm', 0x04,
        0x01,             // Downloading
        0x80, 0x80, 0x04, // received 65536
        0xa0, 0x8d, 0x06, // total 100000
    ]);
}

#[test]
#[rustfmt::skip]
fn drift_summary() {
    let drift = DriftSummary {
        seq: 1,
        model: m(),
        version_seq: 2,
        window_start_ms: 0,
        window_end_ms: 60_000,
        rows: 6,
        features: vec![FeatureSummary {
            bin_counts: vec![1, 2, 3], count: 6, missing: 1, mean: 2.0, m2: 4.0, min: 1.0, max: 3.0, others: vec![],
        }],
        outputs: vec![],
        prediction: Some(FeatureSummary {
            bin_counts: vec![5, 1], count: 6, missing: 0, mean: 0.0, m2: 0.0, min: 0.0, max: 0.0, others: vec![(-2, 1)],
        }),
        confidence: None,
        feedback: Feedback { labelled: 3, correct: 2 },
    };
    let zero = [0u8; 8];
    check(drift, &cat(&[
        &[0x01, 0x05, 0x01, 0x01, b'm', 0x02], // header, seq, model, version_seq
        &[0x00, 0xe0, 0xd4, 0x03],             // window 0 .. 60000
        &[0x06],                               // rows 6
        &[0x01],                               // one feature
        &[0x03, 0x01, 0x02, 0x03],             // bin_counts [1,2,3]
        &[0x06, 0x01],                         // count 6, missing 1
        &[0, 0, 0, 0, 0, 0, 0x00, 0x40],       // mean 2.0f64 LE
        &[0, 0, 0, 0, 0, 0, 0x10, 0x40],       // m2 4.0
        &[0, 0, 0, 0, 0, 0, 0xf0, 0x3f],       // min 1.0
        &[0, 0, 0, 0, 0, 0, 0x08, 0x40],       // max 3.0
        &[0x00],                               // no others
        &[0x00],                               // no outputs
        &[0x01, 0x02, 0x05, 0x01, 0x06, 0x00], // prediction: Some, bin_counts [5,1], count 6, missing 0
        &zero, &zero, &zero, &zero,            // mean, m2, min, max 0.0
        &[0x01, 0x03, 0x01],                   // others: one entry (-2 zigzag = 3, count 1)
        &[0x00],                               // confidence: None
        &[0x03, 0x02],                         // feedback: labelled 3, correct 2
    ]));
}

#[test]
#[rustfmt::skip]
fn sample_batch() {
    let batch = SampleBatch {
        seq: 1,
        model: m(),
        version_seq: 2,
        records: vec![SampleRecord { inference_id: 7, timestamp_ms: 8, inputs: vec![0.5], outputs: vec![1.0] }],
    };
    check(batch, &[
        0x01, 0x06, 0x01, 0x01, b'm', 0x02, // header, seq, model, version_seq
        0x01, 0x07, 0x08,                   // one record, inference_id 7, timestamp 8
        0x01, 0x00, 0x00, 0x00, 0x3f,       // inputs [0.5]
        0x01, 0x00, 0x00, 0x80, 0x3f,       // outputs [1.0]
    ]);
}

#[test]
#[rustfmt::skip]
fn sample_labels() {
    let labels = SampleLabels {
        seq: 2,
        labels: vec![SampleLabel { inference_id: 7, timestamp_ms: 300, label: -1 }],
    };
    check(labels, &[
        0x01, 0x09, 0x02,       // header (kind SampleLabels), seq 2
        0x01,                   // one label
        0x07, 0xac, 0x02,       //   inference_id 7, timestamp_ms 300 (varint)
        0x01,                   //   label -1 (zigzag)
    ]);
}

#[test]
#[rustfmt::skip]
fn command_ack() {
    let ack = CommandAck { seq: 3, command_id: CommandId(7), result: AckResult::Rejected("busy".into()) };
    check(ack, &[0x01, 0x07, 0x03, 0x07, 0x01 /* Rejected */, 0x04, b'b', b'u', b's', b'y']);
}

#[test]
#[rustfmt::skip]
fn chunk_request_and_response() {
    let request = ChunkRequest { request_id: 1, digest: Digest([0xee; 32]), offset: 65_536, max_len: 65_536 };
    check(request, &cat(&[&[0x01, 0x20, 0x01], &[0xee; 32], &[0x80, 0x80, 0x04], &[0x80, 0x80, 0x04]]));
    let response = ChunkResponse {
        request_id: 1,
        digest: Digest([0xee; 32]),
        offset: 0,
        total_size: 3,
        body: ChunkBody::Data(vec![9, 8, 7]),
    };
    check(response, &cat(&[
        &[0x01, 0x21, 0x01], &[0xee; 32],
        &[0x00, 0x03],             // offset 0, total_size 3
        &[0x00, 0x03, 9, 8, 7],    // Data, length 3, bytes
    ]));
}

#[test]
#[rustfmt::skip]
fn sensor_status() {
    let status = SensorStatus {
        seq: 3,
        boot_id: 9,
        timestamp_ms: 1000,
        sensor: Some(SensorInfo { sensor_id: 0x0386_0001, firmware_version: SemVer::new(0, 1, 0), channels: 8, sample_rate_hz: 50 }),
        port_open: true,
        since_last_frame_ms: Some(20),
        silence_limit_ms: 5000,
        silent: false,
        counters: SensorLinkCounters {
            frames: 300, samples: 297, crc_errors: 2, resyncs: 3, sequence_gaps: 2, queue_drops: 0, reconnects: 1,
        },
    };
    check(status, &[
        0x01, 0x08,                   // version 1, kind SensorStatus
        0x03, 0x09,                   // seq 3, boot_id 9
        0xe8, 0x07,                   // timestamp_ms 1000
        0x01,                         // sensor: Some
        0x81, 0x80, 0x98, 0x1c,       //   sensor_id 0x0386_0001 (varint: 01, 00, 18, 1c in 7-bit groups)
        0x00, 0x01, 0x00,             //   firmware_version 0.1.0
        0x08,                         //   channels 8 (u8 raw)
        0x32,                         //   sample_rate_hz 50
        0x01,                         // port_open true
        0x01, 0x14,                   // since_last_frame_ms Some(20)
        0x88, 0x27,                   // silence_limit_ms 5000
        0x00,                         // silent false
        0xac, 0x02, 0xa9, 0x02,       // frames 300, samples 297
        0x02, 0x03, 0x02, 0x00, 0x01, // crc_errors, resyncs, sequence_gaps, queue_drops, reconnects
    ]);
}
