//! Edgefleet sensor firmware on the MPS2 AN386 (Cortex-M4F), for `qemu-system-arm -machine
//! mps2-an386`.
//!
//! SysTick paces the main loop at the accelerometer's output data rate (3200 Hz); each tick
//! the ADXL345 driver reads one sample over I2C, [`edgefleet_firmware::sensor::Sensor`] folds
//! it into a 64-sample feature window, and every full window goes out on UART0 as a
//! `SensorMessage::Samples` frame (50 frames/s). QEMU has no accelerometer, so the I2C bus is
//! a [`SimulatedAdxl345`] answering the driver's register reads with synthesized vibration;
//! on hardware the same driver takes the board HAL's `I2c` instead.
//!
//! Run options come from semihosting's command line (`-semihosting-config
//! enable=on,target=native,arg=board,arg=frames=200`): `frames=N` stops after N feature
//! frames and prints `edgefleet-board: windows_sent=N frames_sent=M` before exiting QEMU;
//! `drift_after=W` turns the simulated bearing wear on after W windows; `seed=S`. Without
//! `frames` it runs until QEMU is stopped.
#![no_std]
#![no_main]

mod uart;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use edgefleet_firmware::adxl345::registers::{ADDRESS_ALT_LOW, DataRate};
use edgefleet_firmware::adxl345::{Adxl345, Config};
use edgefleet_firmware::sensor::{Sensor, Step};
use edgefleet_firmware::sim::{SimulatedAdxl345, Vibration};

/// Core clock of the AN386 image (and of QEMU's model of it).
const CORE_CLOCK_HZ: u32 = 25_000_000;
const RATE: DataRate = DataRate::Hz3200;
const WINDOW: u32 = 64;

struct Options {
    frames: Option<u32>,
    drift_after: Option<u32>,
    seed: u32,
}

/// Reads `key=value` words from semihosting's command line (empty when QEMU passes none).
fn options() -> Options {
    let mut buf = [0u8; 128];
    let mut block = [buf.as_mut_ptr() as usize, buf.len()];
    // SAFETY: SYS_GET_CMDLINE writes at most `block[1]` bytes into `buf` and the length back.
    let failed =
        unsafe { cortex_m_semihosting::syscall1(cortex_m_semihosting::nr::GET_CMDLINE, block.as_mut_ptr() as usize) };
    let len = if failed == 0 { block[1].min(buf.len()) } else { 0 };
    let text = core::str::from_utf8(&buf[..len]).unwrap_or("");
    let mut options = Options { frames: None, drift_after: None, seed: 0x5eed };
    for word in text.split_ascii_whitespace() {
        let Some((key, value)) = word.split_once('=') else { continue };
        let Ok(value) = value.parse::<u32>() else { continue };
        match key {
            "frames" => options.frames = Some(value),
            "drift_after" => options.drift_after = Some(value),
            "seed" => options.seed = value,
            _ => {}
        }
    }
    options
}

#[entry]
fn main() -> ! {
    let options = options();
    let mut core = cortex_m::Peripherals::take().unwrap_or_else(|| fail("core peripherals taken twice"));
    core.SYST.set_clock_source(SystClkSource::Core);
    core.SYST.set_reload(CORE_CLOCK_HZ / RATE.hz() - 1);
    core.SYST.clear_current();
    core.SYST.enable_counter();

    let mut signal = Vibration::new(RATE.hz(), options.seed);
    if let Some(windows) = options.drift_after {
        signal.drift_from_sample(u64::from(windows) * u64::from(WINDOW));
    }
    let part = SimulatedAdxl345::new(ADDRESS_ALT_LOW, signal);
    let accel = Adxl345::new(part, ADDRESS_ALT_LOW);
    let config = Config { rate: RATE, ..Config::default() };
    let Ok(mut sensor) = Sensor::start(accel, &config, uart::Uart0::take(), 0x0386_0001, WINDOW) else {
        fail("the accelerometer did not configure")
    };

    let mut sample: u64 = 0;
    loop {
        while !core.SYST.has_wrapped() {}
        let timestamp_us = sample * 1_000_000 / u64::from(RATE.hz());
        sample += 1;
        match sensor.step(timestamp_us) {
            Ok(Step::Sent(n)) if Some(n) == options.frames => break,
            Ok(_) => {}
            Err(_) => fail("sensor step failed"),
        }
    }
    // Let the host side drain the last frame before QEMU (and its pty) goes away: ~100 ms.
    for _ in 0..RATE.hz() / 10 {
        while !core.SYST.has_wrapped() {}
    }
    hprintln!("edgefleet-board: windows_sent={} frames_sent={}", sensor.windows_sent(), sensor.frames_sent());
    debug::exit(debug::EXIT_SUCCESS);
    loop {
        cortex_m::asm::wfi();
    }
}

fn fail(why: &str) -> ! {
    hprintln!("edgefleet-board: {}", why);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    fail("panic")
}
