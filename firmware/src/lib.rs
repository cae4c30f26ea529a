//! Sensor firmware logic for Edgefleet, `no_std` and free of any board crate, so it builds for
//! `thumbv7em-none-eabihf` and runs its tests on the host.
//!
//! - [`adxl345`]: a driver for the ADXL345 accelerometer, generic over embedded-hal 1.0 `I2c`.
//! - [`features`]: turns a window of raw vibration samples into the feature vector the models
//!   consume (mean, mean square, peak, crest-factor proxy, ...).
//! - [`sim`]: a simulated ADXL345 on the same `I2c` trait, answering with synthesized vibration
//!   (machine states and a drift switch), for boards and emulators without the part.
//! - [`sensor`]: the main-loop step: sample through the driver, window, send features.
//! - [`link`]: writes [`edgefleet_protocol::serial::SensorMessage`] frames to any
//!   `embedded_io::Write` UART, counting what it could not send.
//!
//! Board binaries (`firmware/boards/<board>`) own the HAL, the clocks and the main loop; they
//! feed samples in and hand the UART to [`link::SerialLink`].
//!
//! ```
//! use edgefleet_firmware::link::SerialLink;
//! use edgefleet_protocol::serial::{FrameDecoder, SensorMessage};
//!
//! let mut uart: Vec<u8> = Vec::new(); // any embedded_io::Write
//! let mut link = SerialLink::new(&mut uart);
//! link.send_samples(1_000, &[0.1, 0.2, 0.3]).unwrap();
//! let mut decoder = FrameDecoder::<{ edgefleet_protocol::serial::MAX_ENCODED_FRAME_LEN }>::new();
//! let frames: Vec<_> = decoder.feed(&uart).collect();
//! assert!(matches!(frames[0], Ok(SensorMessage::Samples { seq: 1, .. })));
//! ```
#![cfg_attr(not(test), no_std)]

pub mod adxl345;
pub mod features;
pub mod link;
pub mod sensor;
pub mod sim;
