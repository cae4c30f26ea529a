//! What the fleet refused from a device, and whether the device is flagged for it. Pure code:
//! the core feeds it every refused message (malformed payloads, kinds the fleet does not take
//! on that topic) with the time, and stores it with the device record.
//!
//! A device that keeps sending garbage is **flagged** (health `failing` with the reason, one
//! audit entry) once it exceeds [`LIMIT`] refusals in [`WINDOW_MS`], and **rate-limited**: from
//! then on its refusals are only counted, not kept one by one, so a flood costs a counter
//! increment per message and never grows the record. The flag clears after [`QUIET_MS`]
//! without a refusal. Bounded whatever the device sends: [`RECENT`] refusals, one counter per
//! (stream, kind).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Refusals kept one by one per device (the newest).
pub const RECENT: usize = 16;
/// Refusals tolerated per window before the device is flagged.
pub const LIMIT: u32 = 20;
/// The flag window.
pub const WINDOW_MS: u64 = 60_000;
/// Quiet time that clears a flag.
pub const QUIET_MS: u64 = 10 * 60_000;

/// Why a message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalKind {
    /// The payload does not decode as the topic's message.
    Malformed,
    /// A message the fleet does not take on that topic (a command topic, a chunk request
    /// above QoS 0).
    NotAccepted,
}

impl RefusalKind {
    fn as_str(self) -> &'static str {
        match self {
            RefusalKind::Malformed => "malformed",
            RefusalKind::NotAccepted => "not accepted",
        }
    }
}

/// One refused message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    /// Fleet clock when received.
    pub received_ms: u64,
    /// The topic's stream (`health`, `birth`, ...).
    pub stream: String,
    /// Why, in a word.
    pub kind: RefusalKind,
    /// The decoder's or the rule's words.
    pub reason: String,
    /// Payload size.
    pub bytes: usize,
    /// The first bytes of the payload, hex (at most 16 bytes).
    pub head_hex: String,
}

impl Refusal {
    /// A refusal of `payload` on `stream`, received at `received_ms`.
    pub fn new(received_ms: u64, stream: &str, kind: RefusalKind, reason: String, payload: &[u8]) -> Self {
        let head = &payload[..payload.len().min(16)];
        Refusal {
            received_ms,
            stream: stream.to_string(),
            kind,
            reason,
            bytes: payload.len(),
            head_hex: hex::encode(head),
        }
    }

    /// `malformed health: ...`
    pub fn describe(&self) -> String {
        format!("{} {}: {}", self.kind.as_str(), self.stream, self.reason)
    }
}

/// A device's refusals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Quarantine {
    /// Refused messages per `"<kind> <stream>"`, since the fleet first heard of the device.
    pub counts: BTreeMap<String, u64>,
    /// The newest refusals kept one by one (at most [`RECENT`]; none while flagged).
    pub recent: VecDeque<Refusal>,
    /// Set while the device is flagged.
    pub flagged: Option<Flag>,
    /// Start of the current window.
    pub window_start_ms: u64,
    /// Refusals in the current window.
    pub window_count: u32,
    /// The last refusal's time.
    pub last_refused_ms: u64,
}

/// Why and since when a device is flagged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flag {
    /// Fleet clock.
    pub since_ms: u64,
    /// In words.
    pub reason: String,
}

/// What a refusal or the passing of time changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The device has just been flagged.
    Flagged(Flag),
    /// The flag has just been cleared.
    Cleared,
}

impl Quarantine {
    /// Records one refusal.
    pub fn refuse(&mut self, refusal: Refusal) -> Option<Change> {
        let now = refusal.received_ms;
        *self.counts.entry(format!("{} {}", refusal.kind.as_str(), refusal.stream)).or_insert(0) += 1;
        self.last_refused_ms = self.last_refused_ms.max(now);
        if now.saturating_sub(self.window_start_ms) >= WINDOW_MS {
            self.window_start_ms = now;
            self.window_count = 0;
        }
        self.window_count = self.window_count.saturating_add(1);
        if self.flagged.is_some() {
            return None; // rate-limited: counted only
        }
        let change = (self.window_count > LIMIT).then(|| {
            let flag = Flag {
                since_ms: now,
                reason: format!(
                    "sent {} messages the fleet refused within {} s (last: {})",
                    self.window_count,
                    WINDOW_MS / 1000,
                    refusal.describe()
                ),
            };
            self.flagged = Some(flag.clone());
            Change::Flagged(flag)
        });
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(refusal);
        change
    }

    /// Clears the flag after [`QUIET_MS`] without a refusal.
    pub fn tick(&mut self, now_ms: u64) -> Option<Change> {
        if self.flagged.is_some() && now_ms.saturating_sub(self.last_refused_ms) >= QUIET_MS {
            self.flagged = None;
            self.window_count = 0;
            return Some(Change::Cleared);
        }
        None
    }

    /// Refusals in all.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn garbage(at: u64) -> Refusal {
        Refusal::new(at, "health", RefusalKind::Malformed, "unexpected end of input".into(), b"\x01\x03garbage")
    }

    #[test]
    fn a_few_refusals_are_kept_and_counted_without_a_flag() {
        let mut q = Quarantine::default();
        for i in 0..LIMIT as u64 {
            assert_eq!(q.refuse(garbage(1_000 + i)), None);
        }
        assert!(q.flagged.is_none());
        assert_eq!(q.counts.get("malformed health"), Some(&(LIMIT as u64)));
        assert_eq!(q.recent.len(), RECENT, "bounded");
        assert_eq!(q.recent.back().map(|r| (r.bytes, r.head_hex.as_str())), Some((9, "010367617262616765")));
    }

    #[test]
    fn a_flood_flags_the_device_once_and_is_only_counted_until_it_goes_quiet() {
        let mut q = Quarantine::default();
        let mut flags = 0;
        for i in 0..10_000u64 {
            if let Some(Change::Flagged(flag)) = q.refuse(garbage(1_000 + i)) {
                flags += 1;
                assert!(flag.reason.starts_with("sent 21 messages the fleet refused within 60 s"), "{}", flag.reason);
                assert!(flag.reason.ends_with("(last: malformed health: unexpected end of input)"));
            }
        }
        assert_eq!(flags, 1);
        assert_eq!(q.total(), 10_000);
        assert_eq!(q.recent.len(), RECENT);
        let last = 1_000 + 9_999;
        assert_eq!(q.tick(last + QUIET_MS - 1), None, "not yet quiet");
        assert_eq!(q.tick(last + QUIET_MS), Some(Change::Cleared));
        assert!(q.flagged.is_none());
        assert_eq!(q.tick(last + 2 * QUIET_MS), None);
    }

    #[test]
    fn refusals_spread_over_windows_never_flag() {
        let mut q = Quarantine::default();
        for i in 0..1_000u64 {
            assert_eq!(q.refuse(garbage(i * (WINDOW_MS / 10))), None, "10 per window is tolerated");
        }
        assert_eq!(q.total(), 1_000);
    }

    #[test]
    fn a_payload_head_is_at_most_16_bytes() {
        let r = Refusal::new(0, "drift", RefusalKind::Malformed, "bad".into(), &[0xAB; 4096]);
        assert_eq!((r.bytes, r.head_hex.len()), (4096, 32));
        assert_eq!(r.describe(), "malformed drift: bad");
    }
}
