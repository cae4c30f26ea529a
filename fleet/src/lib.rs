//! `edgefleet`: the Edgefleet fleet manager and operator CLI.
//!
//! So far: signing keys ([`keys`]), ONNX introspection with tract ([`onnx`]) and package
//! building ([`build`]). The registry, rollouts and the embedded broker build on these (see
//! ARCHITECTURE.md).

pub mod build;
pub mod inspect;
pub mod keys;
pub mod onnx;
