//! CMSDK APB UART0 of the MPS2 AN386 at 0x4000_4000, as an `embedded_io::Write`.
//!
//! QEMU models this UART without a baud clock: bytes leave as fast as the host side takes them.
//! Transmit must be enabled (`CTRL.TX_EN`) before the first write, or QEMU's model never
//! drains and the guest spins on `STATE.TX_FULL`.

use core::convert::Infallible;
use core::ptr::{read_volatile, write_volatile};

const UART0: usize = 0x4000_4000;
const DATA: usize = 0x00;
const STATE: usize = 0x04;
const CTRL: usize = 0x08;
const BAUDDIV: usize = 0x10;
const STATE_TX_FULL: u32 = 1 << 0;
const CTRL_TX_EN: u32 = 1 << 0;
/// 25 MHz peripheral clock / 115200 baud (what a real AN386 needs; QEMU ignores it).
const BAUD_115200: u32 = 25_000_000 / 115_200;

/// UART0, transmit only.
pub struct Uart0 {
    _private: (),
}

impl Uart0 {
    /// Sets 115200 baud and enables transmit. Call once: the board has one UART0.
    pub fn take() -> Self {
        // SAFETY: UART0's registers are valid MMIO on this board, and `take` is called once.
        unsafe {
            write_volatile((UART0 + BAUDDIV) as *mut u32, BAUD_115200);
            write_volatile((UART0 + CTRL) as *mut u32, CTRL_TX_EN);
        }
        Self { _private: () }
    }

    fn write_byte(&mut self, byte: u8) {
        // SAFETY: as in `take`; this struct is the only writer.
        unsafe {
            while read_volatile((UART0 + STATE) as *const u32) & STATE_TX_FULL != 0 {}
            write_volatile((UART0 + DATA) as *mut u32, u32::from(byte));
        }
    }
}

impl embedded_io::ErrorType for Uart0 {
    type Error = Infallible;
}

impl embedded_io::Write for Uart0 {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        for &byte in buf {
            self.write_byte(byte);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}
