//! `edgefleet-agent`: the Edgefleet device daemon.
//!
//! This crate holds the daemon (`daemon`: config, MQTT link, deployer, durable outbox,
//! inference worker, local API, heartbeats) and the operator commands' logic ([`verify`],
//! [`inference`] for `infer`). See ARCHITECTURE.md for the data flow.
//!
//! ```no_run
//! use edgefleet_agent::verify::{verify_file, VerifyRequest};
//! use std::path::Path;
//!
//! let request = VerifyRequest { package: Path::new("model.efpkg"), trust: Path::new("keys/signing.pub"), installed_seq: None };
//! match verify_file(&request) {
//!     Ok(verified) => println!("ok: {} {}", verified.manifest.name, verified.manifest.label),
//!     Err(e) => eprintln!("rejected: {e}"),
//! }
//! ```

pub mod api;
pub mod clock;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod deploy;
pub mod drift;
pub mod health;
pub mod inference;
pub mod input;
pub mod link;
pub mod outbox;
pub mod reporting;
pub mod runtime;
pub mod sensor;
pub mod verify;

/// This agent's version, compared with a manifest's `min_agent_version`.
pub const AGENT_VERSION: edgefleet_protocol::SemVer = edgefleet_protocol::SemVer::new(
    parse_u32(env!("CARGO_PKG_VERSION_MAJOR")),
    parse_u32(env!("CARGO_PKG_VERSION_MINOR")),
    parse_u32(env!("CARGO_PKG_VERSION_PATCH")),
);

const fn parse_u32(s: &str) -> u32 {
    let bytes = s.as_bytes();
    let mut value = 0u32;
    let mut i = 0;
    while i < bytes.len() {
        value = value * 10 + (bytes[i] - b'0') as u32;
        i += 1;
    }
    value
}
