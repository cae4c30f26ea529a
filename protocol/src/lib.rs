//! The Edgefleet interface control document, in code.
//!
//! Every byte that crosses a process or device boundary is defined here, and only here:
//!
//! - [`topic`]: the MQTT topic namespace (one place builds and parses every topic string).
//! - [`codec`]: the versioned payload envelope (`[version][kind][postcard body]`) with
//!   [`codec::encode`] / [`codec::decode`].
//! - [`uplink`] (device → fleet), [`command`] (fleet → device) and [`transfer`] (package
//!   chunks over MQTT): the messages themselves.
//! - [`serial`]: firmware ↔ agent frames (postcard + CRC-32 + COBS) with a bounded streaming
//!   decoder. Needs neither `alloc` nor `std`.
//! - [`drift`]: drift reference profiles and the mergeable summaries devices send.
//! - [`package`]: the signed model package (manifest, signature, trust store, streaming
//!   reader and writer).
//! - [`BrokerUrl`] (`std`): the `mqtt://` / `mqtts://` broker address agents and the fleet
//!   manager are configured with.
//!
//! The normative specs are `protocol/WIRE.md` and `protocol/PACKAGE.md`; the golden-byte
//! tests in this crate pin the code to them.
//!
//! # Features
//! - `alloc`: messages, manifests and signature checks (everything but [`serial`]).
//! - `std` (default): the streaming package reader/writer and `std::error::Error` impls.
//!
//! # Quick start
//! ```
//! use edgefleet_protocol::{codec, command::{Command, CommandBody, CommandId}};
//!
//! let ping = Command { command_id: CommandId(7), issued_at_ms: 0, body: CommandBody::Ping { nonce: 42 } };
//! let bytes = codec::encode(&ping).unwrap();
//! assert_eq!(codec::decode::<Command>(&bytes).unwrap(), ping);
//! // Anything else gets a typed error, never a panic:
//! assert!(codec::decode::<Command>(&bytes[..3]).is_err());
//! ```
#![cfg_attr(not(feature = "std"), no_std)]

#[cfg(feature = "alloc")]
extern crate alloc;

#[cfg(feature = "std")]
pub mod backoff;
pub mod serial;
#[cfg(feature = "std")]
pub mod time;

#[cfg(feature = "std")]
pub mod broker_url;

#[cfg(feature = "alloc")]
pub mod codec;
#[cfg(feature = "alloc")]
pub mod command;
#[cfg(feature = "alloc")]
pub mod drift;
#[cfg(feature = "alloc")]
pub mod hardware;
#[cfg(feature = "alloc")]
pub mod ids;
#[cfg(feature = "alloc")]
pub mod package;
#[cfg(feature = "alloc")]
pub mod tensor;
#[cfg(feature = "alloc")]
pub mod topic;
#[cfg(feature = "alloc")]
pub mod transfer;
#[cfg(feature = "alloc")]
pub mod uplink;
pub mod version;

#[cfg(feature = "alloc")]
pub use codec::{MessageKind, PROTOCOL_VERSION, WireError, WireMessage, decode, encode};
#[cfg(feature = "alloc")]
pub use hardware::HardwareClass;
#[cfg(feature = "alloc")]
pub use ids::{DeviceId, Digest, IdError, KeyId, ModelName, PublicKey};
pub use version::SemVer;

#[cfg(feature = "std")]
pub use broker_url::BrokerUrl;
