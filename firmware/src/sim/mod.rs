//! A simulated ADXL345 for boards (and emulators) that have none: it implements the same
//! [`embedded_hal::i2c::I2c`] trait as a real bus and answers the register map the
//! [`crate::adxl345`] driver uses, so the driver code that runs against it is the code that
//! would run on hardware.
//!
//! Registers are a 64-byte file with the part's auto-increment. `DEVID` reads `0xE5`. While
//! `POWER_CTL.MEASURE` is set, `INT_SOURCE` reports data ready, and a burst read starting at
//! `DATAX0` returns the current sample and synthesizes the next from [`Vibration`] on X (Y
//! carries a tenth of it, Z 1 g of gravity). The part produces one sample per read; the board's
//! main loop paces reads at the output data rate. With the FIFO enabled, `FIFO_STATUS`
//! reports the watermark's worth of entries, each `DATAX0` read popping one.

mod signal;

pub use signal::{MachineState, Vibration, sin_turns};

use crate::adxl345::registers::*;
use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, NoAcknowledgeSource, Operation, SevenBitAddress};

/// The simulated part.
#[derive(Debug, Clone)]
pub struct SimulatedAdxl345 {
    address: u8,
    registers: [u8; 64],
    pointer: u8,
    signal: Vibration,
    fifo_entries: u8,
    samples_read: u64,
}

impl SimulatedAdxl345 {
    /// A part at `address` whose X axis follows `signal`.
    pub fn new(address: u8, signal: Vibration) -> Self {
        let mut registers = [0u8; 64];
        registers[usize::from(DEVID)] = DEVICE_ID;
        registers[usize::from(BW_RATE)] = 0x0A;
        let mut part = Self { address, registers, pointer: 0, signal, fifo_entries: 0, samples_read: 0 };
        part.load_next_sample();
        part
    }

    /// The signal, to flip its drift switch.
    pub fn signal_mut(&mut self) -> &mut Vibration {
        &mut self.signal
    }

    /// Samples read out of the data registers so far.
    pub fn samples_read(&self) -> u64 {
        self.samples_read
    }

    fn measuring(&self) -> bool {
        self.registers[usize::from(POWER_CTL)] & MEASURE != 0
    }

    fn load_next_sample(&mut self) {
        let x = self.signal.next_g();
        let to_lsb = |g: f32| {
            let lsb = g / G_PER_LSB_FULL_RES;
            lsb.clamp(-4096.0, 4095.0) as i16
        };
        let sample = [to_lsb(x), to_lsb(0.1 * x), to_lsb(1.0)];
        for (axis, value) in sample.iter().enumerate() {
            let at = usize::from(DATAX0) + 2 * axis;
            self.registers[at..at + 2].copy_from_slice(&value.to_le_bytes());
        }
    }

    fn read_byte(&mut self, register: u8) -> u8 {
        let index = usize::from(register & 0x3F);
        match register {
            INT_SOURCE if self.measuring() => {
                let fifo = self.registers[usize::from(FIFO_CTL)] >> 6 != 0;
                if fifo { INT_WATERMARK } else { INT_DATA_READY }
            }
            FIFO_STATUS => {
                if self.measuring() && self.fifo_entries == 0 {
                    self.fifo_entries = (self.registers[usize::from(FIFO_CTL)] & 0x1F).max(1);
                }
                self.fifo_entries
            }
            _ => self.registers[index],
        }
    }

    fn write_byte(&mut self, register: u8, value: u8) {
        // Read-only registers ignore writes, as on the part.
        if !matches!(register, DEVID | INT_SOURCE | DATAX0..=0x37 | FIFO_STATUS) {
            self.registers[usize::from(register & 0x3F)] = value;
        }
    }

    fn read(&mut self, buf: &mut [u8]) {
        let start = self.pointer;
        for byte in buf.iter_mut() {
            *byte = self.read_byte(self.pointer);
            self.pointer = (self.pointer + 1) & 0x3F;
        }
        // A burst from DATAX0 covering the six data bytes consumes the sample.
        if start == DATAX0 && buf.len() >= 6 && self.measuring() {
            self.samples_read += 1;
            self.fifo_entries = self.fifo_entries.saturating_sub(1);
            self.load_next_sample();
        }
    }
}

impl ErrorType for SimulatedAdxl345 {
    type Error = ErrorKind;
}

impl I2c<SevenBitAddress> for SimulatedAdxl345 {
    fn transaction(&mut self, address: u8, operations: &mut [Operation<'_>]) -> Result<(), Self::Error> {
        if address != self.address {
            return Err(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address));
        }
        for operation in operations {
            match operation {
                Operation::Write(bytes) => {
                    let Some((&register, values)) = bytes.split_first() else { continue };
                    self.pointer = register & 0x3F;
                    for &value in values {
                        self.write_byte(self.pointer, value);
                        self.pointer = (self.pointer + 1) & 0x3F;
                    }
                }
                Operation::Read(buf) => self.read(buf),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adxl345::{Adxl345, Config, Error};

    #[test]
    fn the_driver_configures_and_reads_the_simulated_part() {
        let part = SimulatedAdxl345::new(ADDRESS_ALT_LOW, Vibration::new(3200, 1));
        let mut accel = Adxl345::new(part, ADDRESS_ALT_LOW);
        accel.configure(&Config::default()).unwrap();
        assert!(accel.data_ready().unwrap());
        let mut peak = 0.0f32;
        for _ in 0..640 {
            let [x, _, z] = accel.read_g().unwrap();
            peak = peak.max(x.abs());
            assert!((z - 1.0).abs() < 0.01);
        }
        assert!((0.4..1.0).contains(&peak), "{peak}");
        let part = accel.destroy();
        assert_eq!(part.samples_read(), 640);
    }

    #[test]
    fn wrong_address_is_a_nack_and_fifo_mode_drains() {
        let part = SimulatedAdxl345::new(ADDRESS_ALT_HIGH, Vibration::new(3200, 1));
        let mut accel = Adxl345::new(part, ADDRESS_ALT_LOW);
        assert!(matches!(accel.configure(&Config::default()), Err(Error::Bus { register: DEVID, .. })));
        let mut accel = Adxl345::new(accel.destroy(), ADDRESS_ALT_HIGH);
        let config = Config { fifo: crate::adxl345::registers::FifoMode::Stream, watermark: 8, ..Config::default() };
        accel.configure(&config).unwrap();
        assert!(accel.interrupts().unwrap().watermark());
        let mut out = [[0i16; 3]; 32];
        assert_eq!(accel.read_fifo(&mut out).unwrap(), 8);
    }
}
