//! The sensor's main-loop step, free of any board: read one sample through the
//! [`crate::adxl345`] driver, fold it into a [`FeatureWindow`], and when the window is full
//! send its features as one [`SensorMessage::Samples`] frame over the [`SerialLink`].
//!
//! A board calls [`Sensor::step`] once per sample period (its timer paces it); the host tests
//! call it in a loop with the simulated part and a `Vec<u8>` UART, and get the same bytes.
//!
//! [`SensorMessage::Samples`]: edgefleet_protocol::serial::SensorMessage::Samples

use crate::adxl345::{Adxl345, Config, Error};
use crate::features::{FEATURE_COUNT, FeatureWindow};
use crate::link::{LinkError, SerialLink};
use edgefleet_protocol::SemVer;
use embedded_hal::i2c::I2c;

/// What a step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Sample taken, window not full yet.
    Sampled,
    /// The window closed and its features went out as the frame with this sequence number.
    Sent(u32),
    /// No new sample was ready.
    Idle,
}

/// A step failed.
#[derive(Debug)]
pub enum SensorError<B, U> {
    /// The accelerometer (bus) failed.
    Sensor(Error<B>),
    /// The UART failed.
    Link(LinkError<U>),
}

/// Windows between two repeated hellos (an agent attaching late learns the sensor from one).
pub const HELLO_EVERY_WINDOWS: u32 = 50;

/// An accelerometer, a feature window and the serial link.
#[derive(Debug)]
pub struct Sensor<I2C, W> {
    accel: Adxl345<I2C>,
    link: SerialLink<W>,
    window: FeatureWindow,
    window_len: u32,
    sample_rate_hz: u32,
    sensor_id: u32,
    windows: u32,
}

impl<I2C: I2c, W: embedded_io::Write> Sensor<I2C, W> {
    /// Configures the part and sends the hello. `window_len` samples make one feature frame.
    pub fn start(
        mut accel: Adxl345<I2C>,
        config: &Config,
        uart: W,
        sensor_id: u32,
        window_len: u32,
    ) -> Result<Self, SensorError<I2C::Error, W::Error>> {
        accel.configure(config).map_err(SensorError::Sensor)?;
        let mut sensor = Self {
            accel,
            link: SerialLink::new(uart),
            window: FeatureWindow::new(),
            window_len: window_len.max(1),
            sample_rate_hz: config.rate.hz(),
            sensor_id,
            windows: 0,
        };
        sensor.hello()?;
        Ok(sensor)
    }

    /// Takes one sample (X axis, in g); sends a frame when the window is full.
    pub fn step(&mut self, timestamp_us: u64) -> Result<Step, SensorError<I2C::Error, W::Error>> {
        if !self.accel.data_ready().map_err(SensorError::Sensor)? {
            return Ok(Step::Idle);
        }
        let [x, _, _] = self.accel.read_g().map_err(SensorError::Sensor)?;
        self.window.push(x);
        if self.window.count() < self.window_len {
            return Ok(Step::Sampled);
        }
        let Some(features) = self.window.finish() else { return Ok(Step::Sampled) };
        self.windows += 1;
        if self.windows.is_multiple_of(HELLO_EVERY_WINDOWS) {
            self.hello()?;
        }
        self.link.send_samples(timestamp_us, &features).map_err(SensorError::Link)?;
        Ok(Step::Sent(self.windows))
    }

    /// Feature frames sent (the last sequence number).
    pub fn windows_sent(&self) -> u32 {
        self.windows
    }

    /// All frames written (hellos included).
    pub fn frames_sent(&self) -> u32 {
        self.link.frames_sent()
    }

    fn hello(&mut self) -> Result<(), SensorError<I2C::Error, W::Error>> {
        let version = SemVer::new(0, 1, 0);
        self.link
            .send_hello(version, self.sensor_id, FEATURE_COUNT as u8, self.sample_rate_hz / self.window_len)
            .map_err(SensorError::Link)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adxl345::registers::ADDRESS_ALT_LOW;
    use crate::sim::{SimulatedAdxl345, Vibration};
    use edgefleet_protocol::serial::{FrameDecoder, SensorMessage};

    #[test]
    fn windows_become_frames_the_agent_decodes() {
        let part = SimulatedAdxl345::new(ADDRESS_ALT_LOW, Vibration::new(3200, 3));
        let accel = Adxl345::new(part, ADDRESS_ALT_LOW);
        let config = Config { rate: crate::adxl345::registers::DataRate::Hz3200, ..Config::default() };
        let mut sensor = Sensor::start(accel, &config, Vec::new(), 42, 64).unwrap();
        for i in 0..64 * 60 {
            sensor.step(i).unwrap();
        }
        assert_eq!(sensor.windows_sent(), 60);
        assert_eq!(sensor.frames_sent(), 62); // 60 windows + boot hello + one repeat
        let bytes = sensor.link.release();
        let mut decoder = FrameDecoder::<{ edgefleet_protocol::serial::MAX_ENCODED_FRAME_LEN }>::new();
        let messages: Vec<_> = decoder.feed(&bytes).map(Result::unwrap).collect();
        assert!(matches!(messages[0], SensorMessage::Hello { sensor_id: 42, channels: 8, sample_rate_hz: 50, .. }));
        let seqs: Vec<u32> = messages
            .iter()
            .filter_map(|m| if let SensorMessage::Samples { seq, .. } = m { Some(*seq) } else { None })
            .collect();
        assert_eq!(seqs, (1..=60).collect::<Vec<_>>());
    }
}
