//! The serial sensor link's part of a device's health: the typed view of its latest
//! `SensorStatus`, and the state and reason a silent sensor or a closed port adds.

use super::registry::DeviceRecord;
use crate::api::health::{HealthState, SensorLink};
use edgefleet_protocol::uplink::SensorStatus;

/// The API view of a status.
pub fn view(s: &SensorStatus) -> SensorLink {
    let c = s.counters;
    SensorLink {
        sensor_id: s.sensor.map(|h| format!("{:#010x}", h.sensor_id)),
        firmware_version: s.sensor.map(|h| h.firmware_version.to_string()),
        channels: s.sensor.map(|h| h.channels),
        port_open: s.port_open,
        silent: s.silent,
        since_last_frame_ms: s.since_last_frame_ms,
        silence_limit_ms: s.silence_limit_ms,
        frames: c.frames,
        crc_errors: c.crc_errors,
        resyncs: c.resyncs,
        sequence_gaps: c.sequence_gaps,
        queue_drops: c.queue_drops,
        reconnects: c.reconnects,
        reported_ms: s.timestamp_ms,
    }
}

/// A silent sensor makes the device failing (it serves nothing from its sensor), with the
/// reason first; an open port with frames flowing changes nothing.
pub fn judge(d: &DeviceRecord, state: &mut HealthState, reasons: &mut Vec<String>) {
    let Some(s) = &d.sensor else { return };
    if !s.silent || !d.online {
        return;
    }
    let since = match s.since_last_frame_ms {
        Some(ms) => format!("no frame for {:.1} s", ms as f64 / 1000.0),
        None => "no frame since the agent started".to_string(),
    };
    let port = if s.port_open { "" } else { ", serial port not open" };
    *state = HealthState::Failing;
    reasons.insert(0, format!("sensor silent: {since} (limit {:.1} s){port}", s.silence_limit_ms as f64 / 1000.0));
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgefleet_protocol::uplink::SensorLinkCounters;

    fn status(silent: bool) -> SensorStatus {
        SensorStatus {
            seq: 2,
            boot_id: 1,
            timestamp_ms: 5,
            sensor: None,
            port_open: false,
            since_last_frame_ms: Some(7_250),
            silence_limit_ms: 5_000,
            silent,
            counters: SensorLinkCounters { frames: 9, crc_errors: 1, ..SensorLinkCounters::default() },
        }
    }

    #[test]
    fn a_silent_sensor_fails_the_device_with_the_reason() {
        let mut d = DeviceRecord::new("d".parse().unwrap(), 0);
        d.online = true;
        d.sensor = Some(status(true));
        let (mut state, mut reasons) = (HealthState::Healthy, vec!["other".to_string()]);
        judge(&d, &mut state, &mut reasons);
        assert_eq!(state, HealthState::Failing);
        assert_eq!(reasons[0], "sensor silent: no frame for 7.2 s (limit 5.0 s), serial port not open");
        d.sensor = Some(status(false));
        let (mut state, mut reasons) = (HealthState::Healthy, Vec::new());
        judge(&d, &mut state, &mut reasons);
        assert_eq!((state, reasons.len()), (HealthState::Healthy, 0));
        assert_eq!(view(&status(false)).crc_errors, 1);
    }

    #[test]
    fn the_registry_keeps_the_current_runs_newest_status_and_the_view_shows_it() {
        use crate::server::registry::{Applied, Retention, Uplink};
        let retention = Retention { health: 4, history: 4 };
        let mut d = DeviceRecord::new("d".parse().unwrap(), 0);
        d.online = true;
        d.boot_id = 1;
        let with = |seq, boot_id, silent| Uplink::Sensor(Box::new(SensorStatus { seq, boot_id, ..status(silent) }));
        assert_eq!(d.apply(&with(3, 1, false), 10, retention), Applied::Fresh);
        assert_eq!(d.apply(&with(2, 1, true), 11, retention), Applied::Ignored, "older report");
        assert_eq!(d.apply(&with(9, 7, true), 12, retention), Applied::Ignored, "another agent run's");
        assert_eq!(crate::server::views::health(&d, None).state, HealthState::Unknown);
        assert_eq!(d.apply(&with(4, 1, true), 13, retention), Applied::Fresh);
        let view = crate::server::views::health(&d, None);
        assert_eq!(view.state, HealthState::Failing);
        assert!(view.reasons[0].starts_with("sensor silent"), "{:?}", view.reasons);
        assert_eq!(view.sensor.map(|s| (s.frames, s.crc_errors)), Some((9, 1)));
    }
}
