//! Driver for the Analog Devices ADXL345 3-axis accelerometer, a part commonly used for
//! vibration monitoring (up to 3200 Hz output rate, 32-sample FIFO), generic over
//! [`embedded_hal::i2c::I2c`].
//!
//! The driver owns the bus ([`Adxl345::new`] / [`Adxl345::destroy`]); it keeps no shadow of
//! the part's registers beyond the configuration it wrote. Every bus error comes back as
//! [`Error::Bus`] with the register that was being accessed, so a caller can tell a flaky
//! cable from a missing part ([`Error::WrongDevice`]).
//!
//! ```
//! use edgefleet_firmware::adxl345::{Adxl345, Config, registers::*};
//! use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};
//!
//! let expectations = [
//!     T::write_read(ADDRESS_ALT_LOW, vec![DEVID], vec![DEVICE_ID]),
//!     T::write(ADDRESS_ALT_LOW, vec![POWER_CTL, 0]),
//!     T::write(ADDRESS_ALT_LOW, vec![BW_RATE, DataRate::Hz400 as u8]),
//!     T::write(ADDRESS_ALT_LOW, vec![DATA_FORMAT, FULL_RES | Range::G16 as u8]),
//!     T::write(ADDRESS_ALT_LOW, vec![FIFO_CTL, (FifoMode::Bypass as u8) << 6]),
//!     T::write(ADDRESS_ALT_LOW, vec![INT_ENABLE, INT_DATA_READY]),
//!     T::write(ADDRESS_ALT_LOW, vec![POWER_CTL, MEASURE]),
//!     T::write_read(ADDRESS_ALT_LOW, vec![DATAX0], vec![0x00, 0x01, 0xff, 0xff, 0x00, 0x00]),
//! ];
//! let mut accel = Adxl345::new(Mock::new(&expectations), ADDRESS_ALT_LOW);
//! accel.configure(&Config::default()).unwrap();
//! assert_eq!(accel.read_raw().unwrap(), [256, -1, 0]);
//! accel.destroy().done();
//! ```

pub mod registers;
#[cfg(test)]
mod tests;

use core::fmt;
use embedded_hal::i2c::I2c;
use registers::*;

/// A driver call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error<E> {
    /// The bus failed while accessing `register`.
    Bus {
        /// Register being read or written.
        register: u8,
        /// The bus's error.
        error: E,
    },
    /// `DEVID` read `found`, not [`DEVICE_ID`]: another part (or none) answers at this address.
    WrongDevice {
        /// What `DEVID` read.
        found: u8,
    },
    /// The configuration cannot be written (watermark above the FIFO depth).
    InvalidConfig,
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Bus { register, error } => {
                write!(f, "I2C error at ADXL345 register {register:#04x}: {error:?} (check wiring and pull-ups)")
            }
            Error::WrongDevice { found } => write!(
                f,
                "DEVID reads {found:#04x}, expected {DEVICE_ID:#04x}: no ADXL345 at this address (check ALT ADDRESS)"
            ),
            Error::InvalidConfig => write!(f, "FIFO watermark above {FIFO_DEPTH} samples"),
        }
    }
}

/// How to set the part up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Output data rate.
    pub rate: DataRate,
    /// Measurement range (always read at full resolution, 3.9 mg/LSB).
    pub range: Range,
    /// FIFO mode.
    pub fifo: FifoMode,
    /// FIFO watermark in samples (1..=32; ignored in bypass mode).
    pub watermark: u8,
}

impl Default for Config {
    /// 400 Hz, ±16 g, no FIFO: one sample per data-ready.
    fn default() -> Self {
        Self { rate: DataRate::Hz400, range: Range::G16, fifo: FifoMode::Bypass, watermark: 16 }
    }
}

/// Interrupt sources as read from `INT_SOURCE` (reading it clears the latched ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupts(pub u8);

impl Interrupts {
    /// A new sample is in the data registers.
    pub fn data_ready(self) -> bool {
        self.0 & INT_DATA_READY != 0
    }
    /// The FIFO holds at least the watermark.
    pub fn watermark(self) -> bool {
        self.0 & INT_WATERMARK != 0
    }
    /// Samples were overwritten before they were read.
    pub fn overrun(self) -> bool {
        self.0 & INT_OVERRUN != 0
    }
}

/// An ADXL345 on an I2C bus.
#[derive(Debug)]
pub struct Adxl345<I2C> {
    i2c: I2C,
    address: u8,
}

impl<I2C: I2c> Adxl345<I2C> {
    /// Takes the bus; `address` is [`ADDRESS_ALT_LOW`] or [`ADDRESS_ALT_HIGH`]. Talks to the
    /// part only in [`Self::configure`].
    pub fn new(i2c: I2C, address: u8) -> Self {
        Self { i2c, address }
    }

    /// Gives the bus back.
    pub fn destroy(self) -> I2C {
        self.i2c
    }

    /// Checks `DEVID`, then writes the configuration with the part in standby and starts
    /// measuring. Safe to call again to reconfigure.
    pub fn configure(&mut self, config: &Config) -> Result<(), Error<I2C::Error>> {
        if config.watermark > FIFO_DEPTH || (config.fifo != FifoMode::Bypass && config.watermark == 0) {
            return Err(Error::InvalidConfig);
        }
        let found = self.read_register(DEVID)?;
        if found != DEVICE_ID {
            return Err(Error::WrongDevice { found });
        }
        // Standby while changing rate and format (datasheet: configure before MEASURE).
        self.write_register(POWER_CTL, 0)?;
        self.write_register(BW_RATE, config.rate as u8)?;
        self.write_register(DATA_FORMAT, FULL_RES | config.range as u8)?;
        let (fifo_ctl, interrupts) = match config.fifo {
            FifoMode::Bypass => ((FifoMode::Bypass as u8) << 6, INT_DATA_READY),
            mode => (((mode as u8) << 6) | (config.watermark & 0x1F), INT_WATERMARK | INT_OVERRUN),
        };
        self.write_register(FIFO_CTL, fifo_ctl)?;
        self.write_register(INT_ENABLE, interrupts)?;
        self.write_register(POWER_CTL, MEASURE)
    }

    /// Reads (and so clears) `INT_SOURCE`.
    pub fn interrupts(&mut self) -> Result<Interrupts, Error<I2C::Error>> {
        self.read_register(INT_SOURCE).map(Interrupts)
    }

    /// Whether a new sample is ready.
    pub fn data_ready(&mut self) -> Result<bool, Error<I2C::Error>> {
        self.interrupts().map(Interrupts::data_ready)
    }

    /// One sample `[x, y, z]` in LSB, read in one burst so the axes belong together.
    pub fn read_raw(&mut self) -> Result<[i16; 3], Error<I2C::Error>> {
        let mut bytes = [0u8; 6];
        self.i2c
            .write_read(self.address, &[DATAX0], &mut bytes)
            .map_err(|error| Error::Bus { register: DATAX0, error })?;
        Ok([
            i16::from_le_bytes([bytes[0], bytes[1]]),
            i16::from_le_bytes([bytes[2], bytes[3]]),
            i16::from_le_bytes([bytes[4], bytes[5]]),
        ])
    }

    /// One sample in g (full resolution).
    pub fn read_g(&mut self) -> Result<[f32; 3], Error<I2C::Error>> {
        self.read_raw().map(|raw| raw.map(to_g))
    }

    /// Samples waiting in the FIFO.
    pub fn fifo_len(&mut self) -> Result<u8, Error<I2C::Error>> {
        self.read_register(FIFO_STATUS).map(|status| status & FIFO_ENTRIES_MASK)
    }

    /// Drains up to `out.len()` FIFO entries (oldest first); returns how many were read.
    pub fn read_fifo(&mut self, out: &mut [[i16; 3]]) -> Result<usize, Error<I2C::Error>> {
        let waiting = usize::from(self.fifo_len()?);
        let n = waiting.min(out.len());
        for slot in &mut out[..n] {
            *slot = self.read_raw()?;
        }
        Ok(n)
    }

    fn read_register(&mut self, register: u8) -> Result<u8, Error<I2C::Error>> {
        let mut value = [0u8];
        self.i2c.write_read(self.address, &[register], &mut value).map_err(|error| Error::Bus { register, error })?;
        Ok(value[0])
    }

    fn write_register(&mut self, register: u8, value: u8) -> Result<(), Error<I2C::Error>> {
        self.i2c.write(self.address, &[register, value]).map_err(|error| Error::Bus { register, error })
    }
}

/// Converts a full-resolution reading to g.
pub fn to_g(raw: i16) -> f32 {
    f32::from(raw) * G_PER_LSB_FULL_RES
}
