//! Every MQTT payload decoder on arbitrary bytes: errors only, never a panic.
#![no_main]

use edgefleet_protocol::command::Command;
use edgefleet_protocol::transfer::{ChunkRequest, ChunkResponse};
use edgefleet_protocol::uplink::*;
use edgefleet_protocol::{codec, decode, encode};
use libfuzzer_sys::fuzz_target;

fn check<M: edgefleet_protocol::WireMessage>(data: &[u8]) {
    if let Ok(message) = decode::<M>(data) {
        // Whatever decodes re-encodes to bytes that decode again.
        let bytes = encode(&message).expect("decoded message re-encodes");
        decode::<M>(&bytes).expect("re-encoded message decodes");
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = codec::peek_kind(data);
    check::<Birth>(data);
    check::<Presence>(data);
    check::<Health>(data);
    check::<DeploymentStatus>(data);
    check::<DriftSummary>(data);
    check::<SampleBatch>(data);
    check::<SampleLabels>(data);
    check::<CommandAck>(data);
    check::<SensorStatus>(data);
    check::<Command>(data);
    check::<ChunkRequest>(data);
    check::<ChunkResponse>(data);
});
