//! Frames sensor messages onto a UART.

use edgefleet_protocol::SemVer;
use edgefleet_protocol::serial::{FrameError, MAX_CHANNELS, MAX_ENCODED_FRAME_LEN, SensorMessage, encode_frame};

/// Sending a frame failed.
#[derive(Debug)]
pub enum LinkError<E> {
    /// The message does not fit a frame (too many channels).
    Frame(FrameError),
    /// The UART refused the bytes.
    Uart(E),
}

/// Owns the UART and the sample sequence counter.
#[derive(Debug)]
pub struct SerialLink<W> {
    uart: W,
    next_seq: u32,
    frames_sent: u32,
}

impl<W: embedded_io::Write> SerialLink<W> {
    /// Takes the UART.
    pub fn new(uart: W) -> Self {
        Self { uart, next_seq: 1, frames_sent: 0 }
    }

    /// Gives the UART back.
    pub fn release(self) -> W {
        self.uart
    }

    /// Frames sent so far.
    pub fn frames_sent(&self) -> u32 {
        self.frames_sent
    }

    /// Announces the sensor (at boot, and periodically until the agent answers).
    pub fn send_hello(
        &mut self,
        firmware_version: SemVer,
        sensor_id: u32,
        channels: u8,
        sample_rate_hz: u32,
    ) -> Result<(), LinkError<W::Error>> {
        self.send(&SensorMessage::Hello { firmware_version, sensor_id, channels, sample_rate_hz })
    }

    /// Sends one multi-channel sample (or feature vector) with the next sequence number.
    pub fn send_samples(&mut self, timestamp_us: u64, values: &[f32]) -> Result<(), LinkError<W::Error>> {
        if values.len() > MAX_CHANNELS {
            return Err(LinkError::Frame(FrameError::TooLarge));
        }
        let values = heapless::Vec::from_slice(values).map_err(|_| LinkError::Frame(FrameError::TooLarge))?;
        let seq = self.next_seq;
        // The sequence advances even if the UART fails: the agent sees the gap as loss.
        self.next_seq = self.next_seq.wrapping_add(1);
        self.send(&SensorMessage::Samples { seq, timestamp_us, values })
    }

    /// Reports a fault code (0 clears it).
    pub fn send_fault(&mut self, code: u16) -> Result<(), LinkError<W::Error>> {
        self.send(&SensorMessage::Fault { code })
    }

    fn send(&mut self, message: &SensorMessage) -> Result<(), LinkError<W::Error>> {
        let mut frame = [0u8; MAX_ENCODED_FRAME_LEN];
        let len = encode_frame(message, &mut frame).map_err(LinkError::Frame)?;
        self.uart.write_all(&frame[..len]).map_err(LinkError::Uart)?;
        self.frames_sent += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgefleet_protocol::serial::FrameDecoder;

    #[test]
    fn frames_decode_on_the_agent_side_in_order() {
        let mut link = SerialLink::new(Vec::new());
        link.send_hello(SemVer::new(0, 1, 0), 0xdead_beef, 3, 1000).unwrap();
        for i in 0..5 {
            link.send_samples(i * 1000, &[i as f32, 0.5, -0.5]).unwrap();
        }
        link.send_fault(7).unwrap();
        assert_eq!(link.frames_sent(), 7);
        let line = link.release();
        let mut decoder = FrameDecoder::<MAX_ENCODED_FRAME_LEN>::new();
        let messages: Vec<SensorMessage> = decoder.feed(&line).map(Result::unwrap).collect();
        assert_eq!(messages.len(), 7);
        assert!(matches!(messages[0], SensorMessage::Hello { sensor_id: 0xdead_beef, channels: 3, .. }));
        for (i, message) in messages[1..6].iter().enumerate() {
            match message {
                SensorMessage::Samples { seq, values, .. } => {
                    assert_eq!(*seq, i as u32 + 1);
                    assert_eq!(values[0], i as f32);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(messages[6], SensorMessage::Fault { code: 7 });
    }

    #[test]
    fn too_many_channels_is_an_error_not_a_panic() {
        let mut link = SerialLink::new(Vec::new());
        assert!(matches!(link.send_samples(0, &[0.0; MAX_CHANNELS + 1]), Err(LinkError::Frame(FrameError::TooLarge))));
    }
}
