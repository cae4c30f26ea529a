//! ADXL345 register map (Analog Devices ADXL345 datasheet, Rev. G, table 19) and the bit
//! fields the driver uses. The simulated part on the emulated board answers the same map.

/// `DEVID` (read-only): always [`DEVICE_ID`].
pub const DEVID: u8 = 0x00;
/// `BW_RATE`: output data rate code in bits 3:0, `LOW_POWER` in bit 4.
pub const BW_RATE: u8 = 0x2C;
/// `POWER_CTL`: `MEASURE` in bit 3 (standby when clear).
pub const POWER_CTL: u8 = 0x2D;
/// `INT_ENABLE`: which interrupt sources are enabled.
pub const INT_ENABLE: u8 = 0x2E;
/// `INT_MAP`: routes each source to INT1 (0) or INT2 (1).
pub const INT_MAP: u8 = 0x2F;
/// `INT_SOURCE` (read-only): which sources fired.
pub const INT_SOURCE: u8 = 0x30;
/// `DATA_FORMAT`: range in bits 1:0, `FULL_RES` in bit 3.
pub const DATA_FORMAT: u8 = 0x31;
/// `DATAX0`: first of six data registers (X, Y, Z, each little-endian i16). A multi-byte read
/// from here reads one sample atomically and, with the FIFO on, pops one FIFO entry.
pub const DATAX0: u8 = 0x32;
/// `FIFO_CTL`: mode in bits 7:6, watermark (samples) in bits 4:0.
pub const FIFO_CTL: u8 = 0x38;
/// `FIFO_STATUS` (read-only): entries in bits 5:0, `FIFO_TRIG` in bit 7.
pub const FIFO_STATUS: u8 = 0x39;

/// What `DEVID` reads on every ADXL345.
pub const DEVICE_ID: u8 = 0xE5;
/// I2C address with the `ALT ADDRESS` pin low.
pub const ADDRESS_ALT_LOW: u8 = 0x53;
/// I2C address with the `ALT ADDRESS` pin high.
pub const ADDRESS_ALT_HIGH: u8 = 0x1D;

/// `POWER_CTL.MEASURE`.
pub const MEASURE: u8 = 1 << 3;
/// `DATA_FORMAT.FULL_RES`: 13-bit resolution at ±16 g, 3.9 mg/LSB in every range.
pub const FULL_RES: u8 = 1 << 3;
/// `INT_*.DATA_READY`.
pub const INT_DATA_READY: u8 = 1 << 7;
/// `INT_*.WATERMARK`.
pub const INT_WATERMARK: u8 = 1 << 1;
/// `INT_*.OVERRUN`: a sample was overwritten before it was read.
pub const INT_OVERRUN: u8 = 1 << 0;
/// Mask of `FIFO_STATUS.ENTRIES`.
pub const FIFO_ENTRIES_MASK: u8 = 0x3F;
/// Depth of the part's FIFO.
pub const FIFO_DEPTH: u8 = 32;
/// Scale in full-resolution mode: 3.9 mg per LSB (typical; datasheet table 1).
pub const G_PER_LSB_FULL_RES: f32 = 0.0039;

/// Output data rate (`BW_RATE` bits 3:0; the part supports more, these are the useful ones
/// for vibration work).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum DataRate {
    /// 100 Hz.
    Hz100 = 0x0A,
    /// 200 Hz.
    Hz200 = 0x0B,
    /// 400 Hz.
    Hz400 = 0x0C,
    /// 800 Hz.
    Hz800 = 0x0D,
    /// 1600 Hz.
    Hz1600 = 0x0E,
    /// 3200 Hz.
    Hz3200 = 0x0F,
}

impl DataRate {
    /// Samples per second.
    pub const fn hz(self) -> u32 {
        match self {
            DataRate::Hz100 => 100,
            DataRate::Hz200 => 200,
            DataRate::Hz400 => 400,
            DataRate::Hz800 => 800,
            DataRate::Hz1600 => 1600,
            DataRate::Hz3200 => 3200,
        }
    }
}

/// Measurement range (`DATA_FORMAT` bits 1:0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Range {
    /// ±2 g.
    G2 = 0,
    /// ±4 g.
    G4 = 1,
    /// ±8 g.
    G8 = 2,
    /// ±16 g.
    G16 = 3,
}

/// FIFO mode (`FIFO_CTL` bits 7:6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FifoMode {
    /// No FIFO: the data registers hold the newest sample.
    Bypass = 0,
    /// Collects up to 32 samples, then stops until read.
    Fifo = 1,
    /// Keeps the newest 32 samples (oldest overwritten): what a sampler that drains in bursts
    /// wants.
    Stream = 2,
}
