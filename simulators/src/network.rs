//! A simulated device's network: a TCP relay between the device and its broker that injects
//! the faults a fleet meets in the field.
//!
//! - Partition: the open connection is dropped and new ones are closed at once, which is what
//!   the agent's MQTT client sees when a device loses its network: it keeps serving and
//!   queueing into its outbox, reconnects with backoff once the relay heals, and drains what it
//!   queued.
//! - Corrupted and dropped chunks: the relay reads the broker → device stream as MQTT packets
//!   and, at the configured rates, flips the last byte of a package chunk (`…/chunk/resp`,
//!   WIRE.md §5; inside the chunk's data, so only the download's digest check can catch it) or
//!   drops the chunk (chunks are QoS 0, so the device re-requests it after its timeout). Other
//!   packets pass untouched, and so does everything the device sends.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::io;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The faults in force on one device's link.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkFaults {
    /// No connection gets through.
    pub partitioned: bool,
    /// Fraction of package chunks delivered with a flipped byte (0 to 1).
    pub corrupt_chunks: f64,
    /// Fraction of package chunks never delivered (0 to 1).
    pub drop_chunks: f64,
}

/// One device's link to the broker.
#[derive(Debug)]
pub struct Relay {
    address: SocketAddr,
    faults: watch::Sender<LinkFaults>,
    stop: CancellationToken,
}

impl Relay {
    /// Listens on an ephemeral loopback port and relays every connection to `broker` (on the
    /// current tokio runtime); `seed` drives which chunks the faults hit.
    pub fn start(broker: SocketAddr, seed: u64) -> io::Result<Relay> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let listener = TcpListener::from_std(listener)?;
        let (faults, faults_rx) = watch::channel(LinkFaults::default());
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(listener, broker, faults_rx, stop.clone(), seed));
        Ok(Relay { address, faults, stop })
    }

    /// The URL the device connects to.
    pub fn url(&self) -> String {
        format!("mqtt://{}", self.address)
    }

    /// Cuts (`true`) or heals (`false`) the link.
    pub fn set_partitioned(&self, partitioned: bool) {
        self.faults.send_modify(|f| f.partitioned = partitioned);
    }

    /// Whether the link is cut.
    pub fn is_partitioned(&self) -> bool {
        self.faults.borrow().partitioned
    }

    /// Corrupts and drops these fractions of the package chunks sent to the device from now on
    /// (0 and 0 to stop).
    pub fn set_chunk_faults(&self, corrupt: f64, drop: f64) {
        self.faults.send_modify(|f| {
            f.corrupt_chunks = corrupt.clamp(0.0, 1.0);
            f.drop_chunks = drop.clamp(0.0, 1.0);
        });
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept_loop(
    listener: TcpListener,
    broker: SocketAddr,
    faults: watch::Receiver<LinkFaults>,
    stop: CancellationToken,
    seed: u64,
) {
    let mut connections = 0u64;
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((device, _)) = accepted else { continue };
        if faults.borrow().partitioned {
            drop(device);
            continue;
        }
        connections += 1;
        let rng = SmallRng::seed_from_u64(seed ^ connections.rotate_left(32));
        tokio::spawn(relay(device, broker, faults.clone(), stop.clone(), rng));
    }
}

async fn relay(
    device: TcpStream,
    broker: SocketAddr,
    mut faults: watch::Receiver<LinkFaults>,
    stop: CancellationToken,
    rng: SmallRng,
) {
    let Ok(upstream) = TcpStream::connect(broker).await else { return };
    let _ = device.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (mut device_rx, device_tx) = device.into_split();
    let (upstream_rx, mut upstream_tx) = upstream.into_split();
    let down_faults = faults.clone();
    tokio::select! {
        () = stop.cancelled() => {}
        _ = faults.wait_for(|f| f.partitioned) => {}
        _ = tokio::io::copy(&mut device_rx, &mut upstream_tx) => {}
        _ = downstream(upstream_rx, device_tx, down_faults, rng) => {}
    }
}

/// Broker → device, one MQTT packet at a time, applying the chunk faults.
async fn downstream(
    from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    faults: watch::Receiver<LinkFaults>,
    mut rng: SmallRng,
) -> io::Result<()> {
    let mut from = BufReader::new(from);
    let mut packet = Vec::new();
    loop {
        packet.clear();
        let first = from.read_u8().await?;
        packet.push(first);
        // Remaining length: up to four 7-bit groups, least significant first.
        let mut remaining = 0usize;
        for shift in [0, 7, 14, 21] {
            let byte = from.read_u8().await?;
            packet.push(byte);
            remaining |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
        }
        let body_start = packet.len();
        packet.resize(body_start + remaining, 0);
        from.read_exact(&mut packet[body_start..]).await?;
        let f = *faults.borrow();
        let is_publish = first >> 4 == 3;
        if is_publish && (f.corrupt_chunks > 0.0 || f.drop_chunks > 0.0) && is_chunk_response(&packet[body_start..]) {
            // Only QoS 0 may vanish without breaking the session's acknowledgements.
            let qos0 = (first >> 1) & 0b11 == 0;
            if qos0 && rng.random::<f64>() < f.drop_chunks {
                continue;
            }
            if rng.random::<f64>() < f.corrupt_chunks
                && let Some(last) = packet.last_mut()
            {
                *last ^= 0x5a;
            }
        }
        to.write_all(&packet).await?;
    }
}

/// Whether a PUBLISH body (variable header + payload) is on a `…/chunk/resp` topic.
fn is_chunk_response(body: &[u8]) -> bool {
    let Some(&[high, low]) = body.get(..2) else { return false };
    let len = usize::from(u16::from_be_bytes([high, low]));
    body.get(2..2 + len).is_some_and(|topic| topic.ends_with(b"/chunk/resp"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A broker stand-in that echoes every byte back.
    async fn echo_server() -> SocketAddr {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = echo.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 256];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        address
    }

    const PINGREQ: [u8; 2] = [0xC0, 0x00];

    /// Sends `packet`, reads `reply_len` bytes back (None: the link is closed).
    async fn round_trip(s: &mut TcpStream, packet: &[u8], reply_len: usize) -> Option<Vec<u8>> {
        s.write_all(packet).await.ok()?;
        let mut buf = vec![0u8; reply_len];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf)).await.ok()?.ok()?;
        Some(buf)
    }

    /// A QoS 0 PUBLISH of `payload` on `topic`.
    fn publish(topic: &str, payload: &[u8]) -> Vec<u8> {
        let mut body = (topic.len() as u16).to_be_bytes().to_vec();
        body.extend_from_slice(topic.as_bytes());
        body.extend_from_slice(payload);
        let mut packet = vec![0x30, body.len() as u8];
        packet.extend(body);
        packet
    }

    use std::time::Duration;

    #[tokio::test]
    async fn relays_until_cut_refuses_while_cut_and_relays_again_when_healed() {
        let relay = Relay::start(echo_server().await, 1).unwrap();
        let address = relay.url().trim_start_matches("mqtt://").to_string();
        let mut open = TcpStream::connect(&address).await.unwrap();
        assert_eq!(round_trip(&mut open, &PINGREQ, 2).await.unwrap(), PINGREQ);

        relay.set_partitioned(true);
        assert!(relay.is_partitioned());
        let mut buf = [0u8; 4];
        let dropped = tokio::time::timeout(Duration::from_secs(5), open.read(&mut buf)).await.unwrap();
        assert!(matches!(dropped, Ok(0) | Err(_)), "the open connection is dropped");
        let mut refused = TcpStream::connect(&address).await.unwrap();
        assert!(round_trip(&mut refused, &PINGREQ, 2).await.is_none(), "new connections are closed at once");

        relay.set_partitioned(false);
        let mut healed = TcpStream::connect(&address).await.unwrap();
        assert_eq!(round_trip(&mut healed, &PINGREQ, 2).await.unwrap(), PINGREQ);
    }

    #[tokio::test]
    async fn chunk_faults_hit_chunk_responses_only() {
        let relay = Relay::start(echo_server().await, 7).unwrap();
        let address = relay.url().trim_start_matches("mqtt://").to_string();
        let mut link = TcpStream::connect(&address).await.unwrap();
        let chunk = publish("ns/devices/d1/chunk/resp", &[1, 2, 3]);
        let command = publish("ns/devices/d1/cmd", &[1, 2, 3]);

        relay.set_chunk_faults(1.0, 0.0);
        let corrupted = round_trip(&mut link, &chunk, chunk.len()).await.unwrap();
        assert_eq!(corrupted[..chunk.len() - 1], chunk[..chunk.len() - 1]);
        assert_eq!(corrupted[chunk.len() - 1], 3 ^ 0x5a, "the chunk's last byte is flipped");
        assert_eq!(round_trip(&mut link, &command, command.len()).await.unwrap(), command, "commands pass");

        relay.set_chunk_faults(0.0, 1.0);
        // The chunk vanishes; the PINGREQ behind it still arrives, and first.
        let mut both = chunk.clone();
        both.extend_from_slice(&PINGREQ);
        assert_eq!(round_trip(&mut link, &both, 2).await.unwrap(), PINGREQ);

        relay.set_chunk_faults(0.0, 0.0);
        assert_eq!(round_trip(&mut link, &chunk, chunk.len()).await.unwrap(), chunk);
    }
}
