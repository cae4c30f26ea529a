//! The streaming serial frame decoder on arbitrary line bytes: bounded, never a panic.
#![no_main]

use edgefleet_protocol::serial::{FrameDecoder, MAX_ENCODED_FRAME_LEN, decode_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut decoder = FrameDecoder::<MAX_ENCODED_FRAME_LEN>::new();
    for _ in decoder.feed(data) {}
    assert!(decoder.pending() <= MAX_ENCODED_FRAME_LEN);
    let mut copy = data.to_vec();
    let _ = decode_frame(&mut copy);
});
