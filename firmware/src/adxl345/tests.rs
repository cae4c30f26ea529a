//! The driver against `embedded-hal-mock` transaction lists: every bus access is listed, in
//! order, and `done()` fails the test if the driver skipped or added one.

use super::*;
use embedded_hal::i2c::ErrorKind;
use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};

const A: u8 = ADDRESS_ALT_LOW;

fn configure_stream_fifo() -> Vec<T> {
    vec![
        T::write_read(A, vec![DEVID], vec![DEVICE_ID]),
        T::write(A, vec![POWER_CTL, 0]),
        T::write(A, vec![BW_RATE, 0x0F]),
        T::write(A, vec![DATA_FORMAT, 0b0000_1011]),
        T::write(A, vec![FIFO_CTL, 0b1001_0000]),
        T::write(A, vec![INT_ENABLE, 0b0000_0011]),
        T::write(A, vec![POWER_CTL, 0b0000_1000]),
    ]
}

fn stream_config() -> Config {
    Config { rate: DataRate::Hz3200, range: Range::G16, fifo: FifoMode::Stream, watermark: 16 }
}

#[test]
fn configuration_checks_the_id_and_writes_in_standby() {
    let mut accel = Adxl345::new(Mock::new(&configure_stream_fifo()), A);
    accel.configure(&stream_config()).unwrap();
    accel.destroy().done();
}

#[test]
fn wrong_device_id_stops_before_any_write() {
    let mut accel = Adxl345::new(Mock::new(&[T::write_read(A, vec![DEVID], vec![0x33])]), A);
    assert_eq!(accel.configure(&Config::default()), Err(Error::WrongDevice { found: 0x33 }));
    accel.destroy().done();
}

#[test]
fn invalid_watermark_touches_no_bus() {
    let mut accel = Adxl345::new(Mock::new(&[]), A);
    let config = Config { watermark: 33, ..stream_config() };
    assert_eq!(accel.configure(&config), Err(Error::InvalidConfig));
    accel.destroy().done();
}

#[test]
fn data_ready_then_one_burst_read() {
    let expectations = [
        T::write_read(A, vec![INT_SOURCE], vec![0x02]),
        T::write_read(A, vec![INT_SOURCE], vec![0x82]),
        // x = 256 LSB = 0.9984 g, y = -256, z = 1
        T::write_read(A, vec![DATAX0], vec![0x00, 0x01, 0x00, 0xff, 0x01, 0x00]),
    ];
    let mut accel = Adxl345::new(Mock::new(&expectations), A);
    assert!(!accel.data_ready().unwrap());
    assert!(accel.data_ready().unwrap());
    let g = accel.read_g().unwrap();
    assert!((g[0] - 0.9984).abs() < 1e-6 && (g[1] + 0.9984).abs() < 1e-6 && (g[2] - 0.0039).abs() < 1e-6);
    accel.destroy().done();
}

#[test]
fn fifo_drains_the_entries_it_reports_and_no_more_than_fit() {
    let mut expectations = vec![T::write_read(A, vec![FIFO_STATUS], vec![0x80 | 3])];
    for i in 0..3u8 {
        expectations.push(T::write_read(A, vec![DATAX0], vec![i, 0, 0, 0, 0, 0x80]));
    }
    // Second drain: 40 reported (impossible on a real part, and masked to 6 bits = 40), 2 fit.
    expectations.push(T::write_read(A, vec![FIFO_STATUS], vec![40]));
    expectations.push(T::write_read(A, vec![DATAX0], vec![7, 0, 0, 0, 0, 0]));
    expectations.push(T::write_read(A, vec![DATAX0], vec![8, 0, 0, 0, 0, 0]));
    let mut accel = Adxl345::new(Mock::new(&expectations), A);
    let mut out = [[0i16; 3]; 8];
    assert_eq!(accel.read_fifo(&mut out).unwrap(), 3);
    assert_eq!(out[..3], [[0, 0, i16::MIN], [1, 0, i16::MIN], [2, 0, i16::MIN]]);
    assert_eq!(accel.read_fifo(&mut out[..2]).unwrap(), 2);
    assert_eq!(out[..2], [[7, 0, 0], [8, 0, 0]]);
    accel.destroy().done();
}

#[test]
fn interrupt_bits_decode() {
    let mut accel = Adxl345::new(Mock::new(&[T::write_read(A, vec![INT_SOURCE], vec![0x83])]), A);
    let irq = accel.interrupts().unwrap();
    assert!(irq.data_ready() && irq.watermark() && irq.overrun());
    accel.destroy().done();
}

#[test]
fn bus_error_names_the_register_and_stops() {
    let expectations = [
        T::write_read(A, vec![DEVID], vec![DEVICE_ID]),
        T::write(A, vec![POWER_CTL, 0]),
        T::write(A, vec![BW_RATE, 0x0F])
            .with_error(ErrorKind::NoAcknowledge(embedded_hal::i2c::NoAcknowledgeSource::Data)),
    ];
    let mut accel = Adxl345::new(Mock::new(&expectations), A);
    let err = accel.configure(&stream_config()).unwrap_err();
    assert!(matches!(err, Error::Bus { register: BW_RATE, .. }), "{err:?}");
    assert!(err.to_string().contains("0x2c"), "{err}");
    accel.destroy().done();
}

#[test]
fn bus_error_mid_fifo_drain_is_reported() {
    let expectations = [
        T::write_read(A, vec![FIFO_STATUS], vec![2]),
        T::write_read(A, vec![DATAX0], vec![1, 0, 0, 0, 0, 0]),
        T::write_read(A, vec![DATAX0], vec![0; 6]).with_error(ErrorKind::ArbitrationLoss),
    ];
    let mut accel = Adxl345::new(Mock::new(&expectations), A);
    let mut out = [[0i16; 3]; 4];
    assert!(matches!(
        accel.read_fifo(&mut out),
        Err(Error::Bus { register: DATAX0, error: ErrorKind::ArbitrationLoss })
    ));
    accel.destroy().done();
}
