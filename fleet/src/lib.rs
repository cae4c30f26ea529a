//! `edgefleet`: the Edgefleet fleet manager and operator CLI.
//!
//! So far: signing keys ([`keys`]), package building ([`build`], with golden inputs from
//! [`golden`] run through the agent's inference runtime) and inspection ([`inspect`]); chunk
//! serving ([`transfer`]) and single-device deployment over the broker ([`direct`]); the pure
//! rollout controller ([`rollout`]); the fleet manager itself ([`server`]: embedded broker,
//! registries, rollouts driven over MQTT, HTTP API, audit chain), the API's typed contract
//! ([`api`]) and its CLI client ([`client`]); versioned datasets ([`dataset`]). See ARCHITECTURE.md.

pub mod api;
pub mod build;
pub mod client;
pub mod dataset;
pub mod direct;
pub mod drift;
pub mod golden;
pub mod inspect;
pub mod keys;
pub mod pipeline;
pub mod rollout;
pub mod server;
pub mod transfer;
