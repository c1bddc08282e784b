//! What the leader knows of every other node's progress through the log, for a quorum
//! description (Kafka's DescribeQuorum): each voter's matched index and when it last
//! answered an AppendEntries, each observer's applied index and when it last polled.
//! openraft 0.9 reports matched indexes but no times, so the network layer records them
//! here as the answers arrive.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// One node's progress as the leader (or the voter an observer polls) saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeProgress {
    pub node_id: u64,
    /// The log index this node is known to hold up to (`None`: nothing known yet).
    pub matched_index: Option<u64>,
    /// Milliseconds since the Unix epoch of its last answer or poll (-1: never).
    pub last_contact_ms: i64,
    /// Milliseconds since the Unix epoch when it last held everything committed at the
    /// time (-1: never).
    pub last_caught_up_ms: i64,
}

impl NodeProgress {
    fn unknown(node_id: u64) -> NodeProgress {
        NodeProgress {
            node_id,
            matched_index: None,
            last_contact_ms: -1,
            last_caught_up_ms: -1,
        }
    }
}

/// The state of the quorum as its leader describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumDescription {
    pub leader_id: u64,
    /// The raft term: Kafka's leader epoch.
    pub term: u64,
    /// The last committed (and applied) log index on the leader.
    pub committed_index: Option<u64>,
    /// Voters in id order, the leader included.
    pub voters: Vec<NodeProgress>,
    /// Non-voting nodes that polled this leader recently.
    pub observers: Vec<NodeProgress>,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Observers not heard from for this long are no longer listed (Kafka drops observers
/// after a similar quiet period).
const OBSERVER_FORGET_MS: i64 = 60_000;

#[derive(Debug, Default)]
pub(crate) struct ProgressTracker {
    voters: Mutex<BTreeMap<u64, NodeProgress>>,
    observers: Mutex<BTreeMap<u64, NodeProgress>>,
}

fn record(
    map: &Mutex<BTreeMap<u64, NodeProgress>>,
    node_id: u64,
    matched: Option<u64>,
    caught_up: bool,
) {
    let now = now_ms();
    if let Ok(mut map) = map.lock() {
        let entry = map
            .entry(node_id)
            .or_insert_with(|| NodeProgress::unknown(node_id));
        entry.last_contact_ms = now;
        if matched.is_some() {
            entry.matched_index = matched.max(entry.matched_index);
        }
        if caught_up {
            entry.last_caught_up_ms = now;
        }
    }
}

impl ProgressTracker {
    /// A voter accepted an AppendEntries: it holds the log up to `matched`, and is caught
    /// up if that reaches what the leader had committed when it sent the request.
    pub fn voter_answered(&self, node_id: u64, matched: Option<u64>, leader_commit: Option<u64>) {
        let caught_up = matched >= leader_commit;
        record(&self.voters, node_id, matched, caught_up);
    }

    /// An observer polled for state changes after `applied`; it is caught up when that is
    /// all this node has applied.
    pub fn observer_polled(&self, node_id: u64, applied: u64, local_applied: u64) {
        record(
            &self.observers,
            node_id,
            Some(applied),
            applied >= local_applied,
        );
    }

    pub fn voter(&self, node_id: u64) -> NodeProgress {
        self.voters
            .lock()
            .ok()
            .and_then(|map| map.get(&node_id).copied())
            .unwrap_or_else(|| NodeProgress::unknown(node_id))
    }

    pub fn recent_observers(&self) -> Vec<NodeProgress> {
        let since = now_ms() - OBSERVER_FORGET_MS;
        self.observers
            .lock()
            .map(|map| {
                map.values()
                    .filter(|p| p.last_contact_ms >= since)
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_voter_is_caught_up_only_when_it_holds_the_commit_point() {
        let tracker = ProgressTracker::default();
        tracker.voter_answered(2, Some(5), Some(7));
        let lagging = tracker.voter(2);
        assert_eq!(lagging.matched_index, Some(5));
        assert!(lagging.last_contact_ms > 0);
        assert_eq!(lagging.last_caught_up_ms, -1);
        tracker.voter_answered(2, Some(7), Some(7));
        assert!(tracker.voter(2).last_caught_up_ms > 0);
        assert_eq!(tracker.voter(3), NodeProgress::unknown(3));
    }

    #[test]
    fn a_matched_index_never_goes_back() {
        let tracker = ProgressTracker::default();
        tracker.voter_answered(2, Some(9), Some(9));
        tracker.voter_answered(2, Some(4), Some(9));
        assert_eq!(tracker.voter(2).matched_index, Some(9));
    }

    #[test]
    fn observers_are_listed_after_they_poll() {
        let tracker = ProgressTracker::default();
        assert!(tracker.recent_observers().is_empty());
        tracker.observer_polled(4, 10, 12);
        let observers = tracker.recent_observers();
        assert_eq!(observers.len(), 1);
        assert_eq!(observers[0].matched_index, Some(10));
        assert_eq!(observers[0].last_caught_up_ms, -1);
    }
}
