//! The serial link's bookkeeping as a pure state machine: decoded frames and decoder errors
//! go in with the time they arrived, the counters, the sensor's hello and the silence verdict
//! come out. No I/O and no clock reads: `now_ms` is milliseconds on the agent's monotonic
//! clock, passed in by the reader.

use edgefleet_protocol::serial::{FrameError, SensorMessage};
use edgefleet_protocol::uplink::{SensorInfo, SensorLinkCounters, SensorStatus};

/// Counters, hello and timing of one agent run's sensor link.
#[derive(Debug, Clone)]
pub struct LinkTracker {
    counters: SensorLinkCounters,
    sensor: Option<SensorInfo>,
    /// Next `Samples` seq expected (`None` before the first).
    expected_seq: Option<u32>,
    last_frame_ms: Option<u64>,
    started_ms: u64,
    silence_limit_ms: u64,
    port_open: bool,
    opened_before: bool,
    fault: Option<u16>,
}

impl LinkTracker {
    /// A link watched from `started_ms` on, silent after `silence_limit_ms` without a frame.
    pub fn new(started_ms: u64, silence_limit_ms: u64) -> Self {
        Self {
            counters: SensorLinkCounters::default(),
            sensor: None,
            expected_seq: None,
            last_frame_ms: None,
            started_ms,
            silence_limit_ms,
            port_open: false,
            opened_before: false,
            fault: None,
        }
    }

    /// The port was opened.
    pub fn on_open(&mut self) {
        if self.opened_before {
            self.counters.reconnects += 1;
        }
        self.opened_before = true;
        self.port_open = true;
    }

    /// The port closed or vanished.
    pub fn on_close(&mut self) {
        self.port_open = false;
    }

    /// One result from the frame decoder at `now_ms`; returns the values of a `Samples`
    /// frame, which go to the model.
    pub fn on_frame(&mut self, result: Result<SensorMessage, FrameError>, now_ms: u64) -> Option<Vec<f32>> {
        let message = match result {
            Ok(message) => message,
            Err(error) => {
                self.counters.resyncs += 1;
                if matches!(error, FrameError::Crc { .. }) {
                    self.counters.crc_errors += 1;
                }
                return None;
            }
        };
        self.counters.frames += 1;
        self.last_frame_ms = Some(now_ms);
        match message {
            SensorMessage::Hello { firmware_version, sensor_id, channels, sample_rate_hz } => {
                self.sensor = Some(SensorInfo { sensor_id, firmware_version, channels, sample_rate_hz });
                None
            }
            SensorMessage::Samples { seq, values, .. } => {
                self.counters.samples += 1;
                let gap = match self.expected_seq {
                    // Ahead: the frames in between were lost.
                    Some(expected) if seq >= expected => seq - expected,
                    // First frame, or behind (the sensor rebooted): everything before it since
                    // its boot was never heard.
                    _ => seq.saturating_sub(1),
                };
                self.counters.sequence_gaps += u64::from(gap);
                self.expected_seq = Some(seq.wrapping_add(1));
                Some(values.to_vec())
            }
            SensorMessage::Fault { code } => {
                self.fault = (code != 0).then_some(code);
                None
            }
            // SensorMessage gains variants only at the end (WIRE.md §8): a newer firmware's
            // message counts as a frame and is otherwise ignored.
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// Samples dropped from the queue, as the queue counts them.
    pub fn set_queue_drops(&mut self, drops: u64) {
        self.counters.queue_drops = drops;
    }

    /// No valid frame for longer than the limit (counted from start when none ever came).
    pub fn silent(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.last_frame_ms.unwrap_or(self.started_ms)) > self.silence_limit_ms
    }

    /// Whether the port is open.
    pub fn port_open(&self) -> bool {
        self.port_open
    }

    /// The counters so far.
    pub fn counters(&self) -> SensorLinkCounters {
        self.counters
    }

    /// The last fault code the sensor reported (cleared by code 0).
    pub fn fault(&self) -> Option<u16> {
        self.fault
    }

    /// The report for the fleet.
    pub fn status(&self, now_ms: u64, seq: u64, boot_id: u64, timestamp_ms: u64) -> SensorStatus {
        SensorStatus {
            seq,
            boot_id,
            timestamp_ms,
            sensor: self.sensor,
            port_open: self.port_open,
            since_last_frame_ms: self.last_frame_ms.map(|at| now_ms.saturating_sub(at)),
            silence_limit_ms: self.silence_limit_ms,
            silent: self.silent(now_ms),
            counters: self.counters,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgefleet_protocol::SemVer;

    fn samples(seq: u32) -> Result<SensorMessage, FrameError> {
        Ok(SensorMessage::Samples { seq, timestamp_us: 0, values: heapless::Vec::from_slice(&[1.0, 2.0]).unwrap() })
    }

    #[test]
    fn gaps_errors_and_hello_are_counted() {
        let mut t = LinkTracker::new(0, 1_000);
        t.on_open();
        let hello = SensorMessage::Hello {
            firmware_version: SemVer::new(0, 1, 0),
            sensor_id: 7,
            channels: 2,
            sample_rate_hz: 50,
        };
        assert_eq!(t.on_frame(Ok(hello), 10), None);
        assert_eq!(t.on_frame(samples(1), 20), Some(vec![1.0, 2.0]));
        t.on_frame(samples(2), 30);
        t.on_frame(Err(FrameError::Crc { carried: 1, computed: 2 }), 40);
        t.on_frame(Err(FrameError::Cobs), 45);
        t.on_frame(samples(5), 50); // 3 and 4 lost
        let c = t.counters();
        assert_eq!((c.frames, c.samples, c.crc_errors, c.resyncs, c.sequence_gaps), (4, 3, 1, 2, 2));
        assert_eq!(c.samples + c.sequence_gaps, 5, "samples + gaps = the last seq");
        let status = t.status(60, 1, 9, 1234);
        assert_eq!(status.sensor.map(|s| s.sensor_id), Some(7));
        assert_eq!(status.since_last_frame_ms, Some(10));
        assert!(status.port_open && !status.silent);
    }

    #[test]
    fn late_start_and_sensor_reboot_count_what_was_never_heard() {
        let mut t = LinkTracker::new(0, 1_000);
        t.on_frame(samples(10), 0); // 1..=9 sent before we listened
        t.on_frame(samples(11), 1);
        t.on_frame(samples(3), 2); // rebooted: 1 and 2 missed
        assert_eq!(t.counters().sequence_gaps, 11);
    }

    #[test]
    fn silence_counts_from_start_then_from_the_last_frame_and_reconnects_count() {
        let mut t = LinkTracker::new(100, 1_000);
        assert!(!t.silent(1_100));
        assert!(t.silent(1_101), "never heard, limit passed since start");
        t.on_frame(samples(1), 2_000);
        assert!(!t.silent(3_000));
        assert!(t.silent(3_001));
        t.on_open();
        t.on_close();
        assert!(!t.port_open());
        t.on_open();
        assert_eq!(t.counters().reconnects, 1);
    }
}
