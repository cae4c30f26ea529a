//! Package head parsing, manifest decoding and the streaming reader on arbitrary files.
#![no_main]

use edgefleet_protocol::package::{PackageHead, PackageReader, TrustStore, verify_package};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(head) = PackageHead::from_bytes(data) {
        let _ = head.manifest_unverified();
    }
    if let Ok(reader) = PackageReader::open(data) {
        if let Ok(manifest) = reader.head().manifest_unverified() {
            let _ = reader.read_blobs(&manifest, |_, _| Ok(()));
        }
    }
    let _ = verify_package(data, &TrustStore::default(), Some(0));
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = TrustStore::from_text(text, "fuzz");
    }
});
