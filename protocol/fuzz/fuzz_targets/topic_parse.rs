//! Topic parsing on arbitrary strings: a parsed topic prints back to the same string.
#![no_main]

use edgefleet_protocol::topic::Topic;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(topic) = text.parse::<Topic>() {
            assert_eq!(topic.to_string(), text);
        }
    }
});
