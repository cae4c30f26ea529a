//! Devices whose birth or presence the fleet manager missed, and when to ask them for both
//! again (`CommandBody::Rebirth`). Pure bookkeeping; the core sends.
//!
//! - Births are not retained (WIRE.md §1): a device that connected before the fleet manager
//!   subscribed, or whose birth a broker dropped with a lost session, is known only from its
//!   retained presence or its later messages, without a hardware class, so no rollout can
//!   target it.
//! - A device can be marked offline while it is connected: rumqttd publishes a dropped
//!   connection's will late, after the reconnected session's `Online` when the reconnect is
//!   quick (it keys wills by client id, so the late event fires the new session's will).
//!   Messages from a device marked offline are the evidence.
//!
//! One request per piece of evidence: a silent device is asked once, not forever (commands to
//! an offline device queue in its broker session).

use super::registry::{DeviceRecord, Uplink};
use edgefleet_protocol::DeviceId;
use edgefleet_protocol::uplink::PresenceState;
use std::collections::BTreeMap;

/// A birth and the `Online` presence after it travel on different topics, so the presence may
/// arrive first; after a reconnect the outbox's backlog may arrive before the `Online`. Either
/// counts as missed only once it is this late.
const GRACE_MS: u64 = 2_000;
/// At most one unanswered request per device this often (the device may be an old agent that
/// does not know the command).
const REPEAT_MS: u64 = 30_000;

/// Which devices need to announce themselves again, since when, and when they were last asked.
#[derive(Debug, Default)]
pub struct MissedBirths {
    noticed_ms: BTreeMap<DeviceId, u64>,
    asked_ms: BTreeMap<DeviceId, u64>,
}

impl MissedBirths {
    /// Looks at a message from `record`'s device after the registry applied it (`fresh`) or
    /// ignored it.
    pub fn observe(&mut self, record: &DeviceRecord, uplink: &Uplink, fresh: bool, now_ms: u64) {
        let missed = match uplink {
            // Settled (an answer, or it came by itself): new evidence may ask again at once.
            Uplink::Birth(_) | Uplink::Presence(_) if fresh && record.online && record.hardware.is_some() => {
                self.noticed_ms.remove(&record.id);
                self.asked_ms.remove(&record.id);
                return;
            }
            Uplink::Birth(_) => return,
            // An Online presence of another agent run than the last birth's: that run's birth
            // was missed. (Offline ones are wills; the next connect brings a birth.)
            Uplink::Presence(p) => {
                p.state == PresenceState::Online && (record.hardware.is_none() || p.boot_id != record.boot_id)
            }
            // Anything else: from a device never born here, or one marked offline.
            _ => record.hardware.is_none() || !record.online,
        };
        if missed {
            self.noticed_ms.entry(record.id.clone()).or_insert(now_ms);
        }
    }

    /// Devices to send a `Rebirth` now: noticed at least `GRACE_MS` (2 s) ago and not asked in the
    /// last `REPEAT_MS` (30 s) without an answer since.
    pub fn due(&mut self, now_ms: u64) -> Vec<DeviceId> {
        self.asked_ms.retain(|_, asked| now_ms.saturating_sub(*asked) < REPEAT_MS);
        let due: Vec<DeviceId> = self
            .noticed_ms
            .iter()
            .filter(|(device, noticed)| {
                now_ms.saturating_sub(**noticed) >= GRACE_MS && !self.asked_ms.contains_key(*device)
            })
            .map(|(device, _)| device.clone())
            .collect();
        for device in &due {
            self.noticed_ms.remove(device);
            self.asked_ms.insert(device.clone(), now_ms);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::registry::{Applied, Retention};
    use edgefleet_protocol::uplink::Presence;

    const KEEP: Retention = Retention { health: 4, history: 4 };

    /// A birth of agent run `boot_id` (the registry's test device).
    fn birth(boot_id: u64, seq: u64) -> Uplink {
        crate::server::registry::tests::birth(seq, boot_id)
    }

    fn online(boot_id: u64) -> Uplink {
        Uplink::Presence(Presence { state: PresenceState::Online, boot_id })
    }

    /// Applies `uplink` at `now` the way the core does and lets `missed` look at it.
    fn receive(record: &mut DeviceRecord, missed: &mut MissedBirths, uplink: &Uplink, now: u64) {
        let fresh = record.apply(uplink, now, KEEP) == Applied::Fresh;
        missed.observe(record, uplink, fresh, now);
    }

    #[test]
    fn a_presence_before_its_birth_is_not_a_missed_birth() {
        let mut record = DeviceRecord::new("d1".parse().unwrap(), 0);
        let mut missed = MissedBirths::default();
        receive(&mut record, &mut missed, &online(7), 0);
        receive(&mut record, &mut missed, &birth(7, 1), 500);
        assert!(missed.due(10_000).is_empty());
    }

    #[test]
    fn a_device_never_born_here_is_asked_after_the_grace_and_again_only_on_new_evidence() {
        let mut record = DeviceRecord::new("d1".parse().unwrap(), 0);
        let mut missed = MissedBirths::default();
        receive(&mut record, &mut missed, &online(7), 0);
        assert!(missed.due(GRACE_MS - 1).is_empty(), "within the grace");
        assert_eq!(missed.due(GRACE_MS), vec![record.id.clone()]);
        assert!(missed.due(10 * REPEAT_MS).is_empty(), "a silent device is asked once");
        // It keeps talking without a birth (an old agent, say): asked again, at most every 30 s.
        receive(&mut record, &mut missed, &health(7, 1), 10 * REPEAT_MS);
        assert_eq!(missed.due(10 * REPEAT_MS + GRACE_MS), vec![record.id.clone()]);
        receive(&mut record, &mut missed, &health(7, 2), 10 * REPEAT_MS + GRACE_MS + 1);
        assert!(missed.due(10 * REPEAT_MS + 2 * GRACE_MS).is_empty(), "asked less than 30 s ago");
        assert_eq!(missed.due(11 * REPEAT_MS + GRACE_MS), vec![record.id.clone()]);
        receive(&mut record, &mut missed, &health(7, 3), 12 * REPEAT_MS);
        receive(&mut record, &mut missed, &birth(7, 1), 12 * REPEAT_MS + 10);
        assert!(missed.due(20 * REPEAT_MS).is_empty(), "born");
    }

    #[test]
    fn an_online_presence_of_a_new_agent_run_means_its_birth_was_missed() {
        let mut record = DeviceRecord::new("d1".parse().unwrap(), 0);
        let mut missed = MissedBirths::default();
        receive(&mut record, &mut missed, &birth(7, 1), 0);
        receive(&mut record, &mut missed, &online(7), 10);
        assert!(missed.due(10 * GRACE_MS).is_empty());
        // The agent restarted (boot 8) and its birth got lost; the fleet still knows boot 7.
        receive(&mut record, &mut missed, &online(8), 100);
        // A late birth of the old run does not settle it; the new run's does.
        receive(&mut record, &mut missed, &birth(7, 1), 200);
        receive(&mut record, &mut missed, &birth(8, 2), 300);
        assert!(missed.due(100 + GRACE_MS).is_empty());
        receive(&mut record, &mut missed, &online(9), 400);
        assert_eq!(missed.due(400 + GRACE_MS), vec![record.id.clone()]);
    }

    #[test]
    fn a_device_marked_offline_that_keeps_talking_is_asked_to_announce_itself() {
        let mut record = DeviceRecord::new("d1".parse().unwrap(), 0);
        let mut missed = MissedBirths::default();
        receive(&mut record, &mut missed, &birth(7, 1), 0);
        receive(&mut record, &mut missed, &online(7), 10);
        // The late will of a dropped connection, after the reconnected session's Online.
        receive(&mut record, &mut missed, &will(7), 20);
        assert!(!record.online);
        assert!(missed.due(10 * REPEAT_MS).is_empty(), "a will alone asks for nothing");
        receive(&mut record, &mut missed, &health(7, 1), 10 * REPEAT_MS);
        assert_eq!(missed.due(10 * REPEAT_MS + GRACE_MS), vec![record.id.clone()]);
        // Back online within the grace (a reconnect's Online after the outbox backlog): settled.
        receive(&mut record, &mut missed, &will(7), 20 * REPEAT_MS);
        receive(&mut record, &mut missed, &health(7, 2), 20 * REPEAT_MS + 1);
        receive(&mut record, &mut missed, &online(7), 20 * REPEAT_MS + 2);
        assert!(missed.due(30 * REPEAT_MS).is_empty());
        // Answered requests do not hold the next one back.
        receive(&mut record, &mut missed, &will(7), 40 * REPEAT_MS);
        receive(&mut record, &mut missed, &health(7, 3), 40 * REPEAT_MS + 1);
        assert_eq!(missed.due(40 * REPEAT_MS + 1 + GRACE_MS), vec![record.id.clone()]);
        receive(&mut record, &mut missed, &online(7), 40 * REPEAT_MS + GRACE_MS + 100);
        receive(&mut record, &mut missed, &will(7), 40 * REPEAT_MS + GRACE_MS + 200);
        receive(&mut record, &mut missed, &health(7, 4), 40 * REPEAT_MS + GRACE_MS + 300);
        assert_eq!(missed.due(40 * REPEAT_MS + 2 * GRACE_MS + 300), vec![record.id.clone()]);
    }

    fn health(boot_id: u64, seq: u64) -> Uplink {
        Uplink::Health(edgefleet_protocol::uplink::Health {
            seq,
            boot_id,
            timestamp_ms: 0,
            uptime_ms: 0,
            models: Vec::new(),
            outbox_depth: 0,
            outbox_bytes: 0,
            outbox_evictions: 0,
            rss_bytes: 0,
            cpu_percent: 0.0,
            free_disk_bytes: 0,
        })
    }

    fn will(boot_id: u64) -> Uplink {
        Uplink::Presence(Presence {
            state: PresenceState::Offline(edgefleet_protocol::uplink::OfflineReason::ConnectionLost),
            boot_id,
        })
    }
}
