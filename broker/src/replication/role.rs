//! A partition replica's role and, on the leader, what it knows of its followers: the
//! rules of Kafka's ISR model (high watermark, when a follower joins or leaves the ISR)
//! as plain functions of that state, so they are tested without a cluster.

use std::collections::HashMap;

use super::isr_change::IsrChanges;
use crate::metadata::PartitionImage;

#[derive(Debug, Default)]
pub enum ReplicaRole {
    /// Not yet told (a partition just opened).
    #[default]
    None,
    Leader(LeaderState),
    Follower(FollowerState),
}

impl ReplicaRole {
    pub fn leader(&self) -> Option<&LeaderState> {
        match self {
            ReplicaRole::Leader(s) => Some(s),
            _ => None,
        }
    }

    pub fn leader_mut(&mut self) -> Option<&mut LeaderState> {
        match self {
            ReplicaRole::Leader(s) => Some(s),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FollowerState {
    pub leader: i32,
    pub leader_epoch: i32,
}

/// What the leader knows of one follower from its fetches.
#[derive(Debug, Clone, PartialEq)]
pub struct FollowerProgress {
    /// The follower's log end offset (its last fetch offset); -1 until it fetches.
    pub log_end_offset: i64,
    /// The last time the follower had everything the leader had (Kafka's
    /// lastCaughtUpTimeMs); the ISR drops it when this is older than replica.lag.time.max.ms.
    pub last_caught_up_ms: i64,
    last_fetch_ms: i64,
    leader_end_at_last_fetch: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LeaderState {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Replicas being added by a reassignment (their fetches may be throttled).
    pub adding: Vec<i32>,
    /// The log end when this broker became leader: a follower rejoins the ISR only once it
    /// has reached it, so it holds everything of the previous epochs the leader holds.
    pub epoch_start_offset: i64,
    pub followers: HashMap<i32, FollowerProgress>,
    /// The ISR change requests: one in flight at a time, and none after a stale-state
    /// refusal until newer metadata arrives, as in Kafka.
    pub isr_changes: IsrChanges,
}

impl LeaderState {
    /// A fresh leadership: followers count as caught up now, so a replica that never fetches
    /// leaves the ISR after the lag time rather than at once.
    pub fn new(p: &PartitionImage, me: i32, log_end_offset: i64, now_ms: i64) -> LeaderState {
        let followers = p
            .replicas
            .iter()
            .filter(|r| **r != me)
            .map(|r| {
                (
                    *r,
                    FollowerProgress {
                        log_end_offset: -1,
                        last_caught_up_ms: now_ms,
                        last_fetch_ms: now_ms,
                        leader_end_at_last_fetch: -1,
                    },
                )
            })
            .collect();
        LeaderState {
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
            adding: p.adding.clone(),
            epoch_start_offset: log_end_offset,
            followers,
            isr_changes: IsrChanges::default(),
        }
    }

    /// A newer state of the same leadership (an ISR change, a reassignment step). Returns
    /// how the ISR's size changed, for the shrink and expand metrics.
    pub fn update(&mut self, p: &PartitionImage, me: i32, now_ms: i64) -> std::cmp::Ordering {
        if p.partition_epoch < self.partition_epoch {
            return std::cmp::Ordering::Equal;
        }
        let change = p.isr.len().cmp(&self.isr.len());
        // Only a newer state ends a wait: the same state is seen again with every metadata
        // image, whatever else it changed.
        if p.partition_epoch > self.partition_epoch {
            self.isr_changes.newer_state();
        }
        self.partition_epoch = p.partition_epoch;
        self.replicas = p.replicas.clone();
        self.isr = p.isr.clone();
        self.adding = p.adding.clone();
        self.followers.retain(|r, _| p.replicas.contains(r));
        for r in p.replicas.iter().filter(|r| **r != me) {
            self.followers.entry(*r).or_insert(FollowerProgress {
                log_end_offset: -1,
                last_caught_up_ms: now_ms,
                last_fetch_ms: now_ms,
                leader_end_at_last_fetch: -1,
            });
        }
        change
    }

    /// Notes a follower's fetch at `fetch_offset` while the leader's log ends at
    /// `leader_end`. Kafka's rule: caught up now if it asked for the log end; caught up as
    /// of its previous fetch if it now asks for what the log end was back then.
    pub fn record_fetch(&mut self, replica: i32, fetch_offset: i64, leader_end: i64, now_ms: i64) {
        let Some(f) = self.followers.get_mut(&replica) else {
            return;
        };
        if fetch_offset >= leader_end {
            f.last_caught_up_ms = now_ms;
        } else if f.leader_end_at_last_fetch >= 0 && fetch_offset >= f.leader_end_at_last_fetch {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.log_end_offset = fetch_offset;
        f.leader_end_at_last_fetch = leader_end;
        f.last_fetch_ms = now_ms;
    }

    /// The offset every ISR member has reached: the new high watermark. `None` while an
    /// ISR member's position is unknown (it has not fetched since this leadership began).
    pub fn high_watermark(&self, me: i32, leader_end: i64) -> Option<i64> {
        let mut hw = leader_end;
        for member in self.isr.iter().filter(|m| **m != me) {
            let leo = self.followers.get(member)?.log_end_offset;
            if leo < 0 {
                return None;
            }
            hw = hw.min(leo);
        }
        Some(hw)
    }

    /// The ISR with the followers that have caught up added, if any have (Kafka: the
    /// follower reached the high watermark and this leadership's start offset).
    pub fn expanded_isr(&self, high_watermark: i64) -> Option<Vec<i32>> {
        let joining: Vec<i32> = self
            .replicas
            .iter()
            .filter(|r| !self.isr.contains(r))
            .filter(|r| {
                self.followers.get(r).is_some_and(|f| {
                    f.log_end_offset >= high_watermark
                        && f.log_end_offset >= self.epoch_start_offset
                })
            })
            .copied()
            .collect();
        if joining.is_empty() {
            return None;
        }
        let mut isr = self.isr.clone();
        isr.extend(joining);
        Some(isr)
    }

    /// The ISR without the followers that have not caught up for `max_lag_ms`, if any.
    pub fn shrunk_isr(&self, me: i32, now_ms: i64, max_lag_ms: u64) -> Option<Vec<i32>> {
        let lagging = |m: &i32| {
            *m != me
                && self
                    .followers
                    .get(m)
                    .is_none_or(|f| now_ms.saturating_sub(f.last_caught_up_ms) > max_lag_ms as i64)
        };
        if !self.isr.iter().any(lagging) {
            return None;
        }
        Some(self.isr.iter().filter(|m| !lagging(m)).copied().collect())
    }

    /// How far each follower is behind `leader_end`, for the replica lag metric.
    pub fn lags(&self, leader_end: i64) -> Vec<(i32, i64)> {
        self.followers
            .iter()
            .map(|(r, f)| (*r, (leader_end - f.log_end_offset.max(0)).max(0)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(replicas: &[i32], isr: &[i32]) -> PartitionImage {
        PartitionImage {
            partition: 0,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader: replicas[0],
            leader_epoch: 3,
            partition_epoch: 7,
            adding: Vec::new(),
            removing: Vec::new(),
        }
    }

    #[test]
    fn high_watermark_waits_for_every_isr_member() {
        let mut s = LeaderState::new(&image(&[0, 1, 2], &[0, 1, 2]), 0, 10, 1_000);
        assert_eq!(s.high_watermark(0, 20), None, "followers unknown yet");
        s.record_fetch(1, 15, 20, 1_001);
        assert_eq!(s.high_watermark(0, 20), None);
        s.record_fetch(2, 12, 20, 1_002);
        assert_eq!(s.high_watermark(0, 20), Some(12));
        let alone = LeaderState::new(&image(&[0, 1], &[0]), 0, 10, 0);
        assert_eq!(alone.high_watermark(0, 20), Some(20));
    }

    #[test]
    fn lagging_followers_leave_and_caught_up_ones_return() {
        let mut s = LeaderState::new(&image(&[0, 1, 2], &[0, 1, 2]), 0, 100, 0);
        s.record_fetch(1, 100, 100, 50);
        s.record_fetch(2, 40, 100, 50);
        assert_eq!(s.shrunk_isr(0, 500, 1_000), None);
        // Follower 1 keeps up; follower 2 stays behind past the lag time.
        s.record_fetch(1, 100, 100, 1_400);
        s.record_fetch(2, 60, 100, 1_400);
        assert_eq!(s.shrunk_isr(0, 1_500, 1_000), Some(vec![0, 1]));

        let mut s = LeaderState::new(&image(&[0, 1, 2], &[0, 1]), 0, 100, 0);
        s.record_fetch(1, 120, 120, 10);
        s.record_fetch(2, 90, 120, 10);
        assert_eq!(s.expanded_isr(110), None, "below the start offset");
        s.record_fetch(2, 120, 120, 20);
        assert_eq!(s.expanded_isr(120), Some(vec![0, 1, 2]));
    }

    #[test]
    fn fetching_what_was_the_end_counts_as_caught_up_then() {
        let mut s = LeaderState::new(&image(&[0, 1], &[0, 1]), 0, 0, 0);
        s.record_fetch(1, 0, 50, 100);
        // The leader grew meanwhile, but the follower now asks for the old end.
        s.record_fetch(1, 50, 80, 900);
        assert_eq!(s.followers[&1].last_caught_up_ms, 100);
        assert_eq!(s.shrunk_isr(0, 1_050, 1_000), None);
        assert_eq!(s.shrunk_isr(0, 1_150, 1_000), Some(vec![0]));
    }

    #[test]
    fn updates_follow_the_partition_epoch() {
        let mut s = LeaderState::new(&image(&[0, 1, 2], &[0, 1, 2]), 0, 0, 0);
        s.isr_changes.sent(7);
        // The same state again (another part of the metadata changed): still in flight.
        s.update(&image(&[0, 1, 2], &[0, 1, 2]), 0, 4);
        assert!(s.isr_changes.in_flight());
        let mut newer = image(&[0, 1, 3], &[0, 1]);
        newer.partition_epoch = 8;
        assert_eq!(s.update(&newer, 0, 5), std::cmp::Ordering::Less);
        assert_eq!(s.isr, vec![0, 1]);
        assert!(!s.isr_changes.in_flight());
        assert!(s.followers.contains_key(&3) && !s.followers.contains_key(&2));
        let mut stale = image(&[0], &[0]);
        stale.partition_epoch = 1;
        s.update(&stale, 0, 6);
        assert_eq!(s.replicas, vec![0, 1, 3]);
    }
}
