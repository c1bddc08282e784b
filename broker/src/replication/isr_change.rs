//! When a partition leader may ask the controller for an ISR change (AlterPartition).
//!
//! Kafka's leader keeps at most one request in flight per partition, and when the
//! controller refuses one because it was built on state the controller has moved past
//! (INVALID_UPDATE_VERSION: a stale partition epoch; FENCED_LEADER_EPOCH; an unknown
//! partition) it proposes nothing more until the metadata brings the newer partition state
//! (`Partition.handleAlterPartitionError`: "awaiting the latest metadata"). Without that, a
//! leader whose metadata lags the controller's asks again on every follower fetch with
//! the same stale epoch and is refused every time, until its image catches up.

use kafka_protocol::error::ResponseError;

/// The pause before asking again after a refusal that newer metadata does not cure (the
/// controller unreachable or timing out, a replica it would not admit): Kafka's
/// `retry.backoff.ms` default.
pub const RETRY_BACKOFF_MS: i64 = 100;

/// The longest a leader waits for the newer metadata a stale-epoch refusal promised
/// before it asks once more. The metadata normally arrives within milliseconds; the
/// bound keeps the ISR change live if this broker's view of the partition never moves
/// past the refused epoch (seen once in a rolling-restart fault test: a restarted
/// follower stayed out of five idle partitions' ISRs for a minute). At most one request
/// per bound, so the storm the hold prevents cannot return.
pub const AWAIT_METADATA_MAX_MS: i64 = 5_000;

/// What the leader does after the controller refused an ISR change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterRefusal {
    /// The request named state the controller has moved past: propose nothing until the
    /// metadata brings a newer partition epoch (or a new leadership).
    AwaitMetadata,
    /// Ask again once the pause is over, if the fetches still call for it.
    RetryAfterBackoff,
}

/// Kafka's classification of AlterPartition errors (`Partition.
/// handleAlterPartitionError`), plus NOT_LEADER_OR_FOLLOWER, which Strom's controller
/// answers when the asker no longer leads. Kafka resets to the committed state on
/// OPERATION_NOT_ATTEMPTED and INELIGIBLE_REPLICA and may ask at once; Strom's leader does
/// not check replica liveness itself, so it pauses rather than ask for the same ineligible
/// replica on the next fetch.
pub fn after_refusal(error: ResponseError) -> AfterRefusal {
    match error {
        ResponseError::InvalidUpdateVersion
        | ResponseError::FencedLeaderEpoch
        | ResponseError::UnknownTopicOrPartition
        | ResponseError::UnknownTopicId
        | ResponseError::InvalidRequest
        | ResponseError::NewLeaderElected
        | ResponseError::NotLeaderOrFollower => AfterRefusal::AwaitMetadata,
        _ => AfterRefusal::RetryAfterBackoff,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Until the partition epoch is past this one, or this time (ms) at the latest.
    UntilEpochAfter(i32, i64),
    /// Until this time (ms since the epoch).
    UntilMs(i64),
}

/// One led partition's ISR change requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IsrChanges {
    /// The partition epoch the request in flight was built on.
    in_flight: Option<i32>,
    hold: Option<Hold>,
}

impl IsrChanges {
    /// Whether a new request may be sent while the leader's state is at `partition_epoch`.
    pub fn may_propose(&self, partition_epoch: i32, now_ms: i64) -> bool {
        self.in_flight.is_none()
            && match self.hold {
                None => true,
                Some(Hold::UntilEpochAfter(epoch, at)) => partition_epoch > epoch || now_ms >= at,
                Some(Hold::UntilMs(at)) => now_ms >= at,
            }
    }

    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// A request built on `partition_epoch` is on its way.
    pub fn sent(&mut self, partition_epoch: i32) {
        self.in_flight = Some(partition_epoch);
        self.hold = None;
    }

    /// The metadata brought a newer partition state: a request built on an older one can
    /// only be refused as stale, so a new one may go out now; the old one's answer is
    /// ignored when it comes (`answered` returns false). Kafka's leader also drops its
    /// pending state when newer metadata arrives.
    pub fn newer_state(&mut self) {
        self.in_flight = None;
        self.hold = None;
    }

    /// The answer to the request built on `sent_on`: `refusal` is the controller's error,
    /// `None` when it took the change. Returns false for the answer to a request a newer
    /// state has already superseded, which changes nothing.
    pub fn answered(&mut self, sent_on: i32, refusal: Option<ResponseError>, now_ms: i64) -> bool {
        if self.in_flight != Some(sent_on) {
            return false;
        }
        self.in_flight = None;
        self.hold = refusal.map(|error| match after_refusal(error) {
            AfterRefusal::AwaitMetadata => {
                Hold::UntilEpochAfter(sent_on, now_ms + AWAIT_METADATA_MAX_MS)
            }
            AfterRefusal::RetryAfterBackoff => Hold::UntilMs(now_ms + RETRY_BACKOFF_MS),
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The storm this prevents: after INVALID_UPDATE_VERSION, a leader whose image still
    /// says epoch 7 gets 500 follower fetches that each call for the change. Before, each
    /// one sent a request; now none does until the image brings epoch 8.
    #[test]
    fn a_stale_epoch_refusal_waits_for_newer_metadata() {
        let mut c = IsrChanges::default();
        let mut sent = 0;
        let mut fetch = |c: &mut IsrChanges, epoch: i32, now: i64| {
            if c.may_propose(epoch, now) {
                c.sent(epoch);
                sent += 1;
            }
        };
        fetch(&mut c, 7, 0);
        for now in 1..100 {
            fetch(&mut c, 7, now); // one in flight at a time
        }
        assert!(c.answered(7, Some(ResponseError::InvalidUpdateVersion), 100));
        for now in 100..600 {
            fetch(&mut c, 7, now);
        }
        // The metadata catches up: epoch 8, and the next fetch may ask again.
        fetch(&mut c, 8, 600);
        assert_eq!(
            sent, 2,
            "one request before the refusal, one after the new epoch"
        );
    }

    /// If the newer epoch never reaches this broker's view, the leader asks again once
    /// the bound has passed, and then waits again: one request per bound, not a storm.
    #[test]
    fn a_stale_epoch_hold_ends_at_its_bound() {
        let mut c = IsrChanges::default();
        c.sent(5);
        assert!(c.answered(5, Some(ResponseError::InvalidUpdateVersion), 1_000));
        assert!(!c.may_propose(5, 1_000 + AWAIT_METADATA_MAX_MS - 1));
        assert!(c.may_propose(5, 1_000 + AWAIT_METADATA_MAX_MS));
        c.sent(5);
        let again = 1_000 + AWAIT_METADATA_MAX_MS + 10;
        assert!(c.answered(5, Some(ResponseError::InvalidUpdateVersion), again));
        assert!(!c.may_propose(5, again + 1));
        assert!(
            c.may_propose(6, again + 1),
            "newer metadata still ends it at once"
        );
    }

    #[test]
    fn other_refusals_pause_then_retry() {
        let mut c = IsrChanges::default();
        c.sent(3);
        assert!(c.answered(3, Some(ResponseError::RequestTimedOut), 1_000));
        assert!(!c.may_propose(3, 1_000 + RETRY_BACKOFF_MS - 1));
        assert!(c.may_propose(3, 1_000 + RETRY_BACKOFF_MS));
        c.sent(3);
        assert!(c.answered(3, None, 2_000));
        assert!(
            c.may_propose(3, 2_000),
            "an accepted change holds nothing back"
        );
    }

    #[test]
    fn a_superseded_answer_changes_nothing() {
        let mut c = IsrChanges::default();
        c.sent(4);
        c.newer_state();
        assert!(c.may_propose(5, 0));
        c.sent(5);
        // The answer to the request built on epoch 4 arrives while 5's is in flight.
        assert!(!c.answered(4, Some(ResponseError::InvalidUpdateVersion), 1));
        assert!(
            c.in_flight(),
            "epoch 5's request is still the one in flight"
        );
        assert!(c.answered(5, None, 2));
        assert!(c.may_propose(6, 3));
    }

    #[test]
    fn refusals_are_classified_as_kafka_does() {
        for stale in [
            ResponseError::InvalidUpdateVersion,
            ResponseError::FencedLeaderEpoch,
            ResponseError::UnknownTopicOrPartition,
            ResponseError::NotLeaderOrFollower,
            ResponseError::InvalidRequest,
        ] {
            assert_eq!(
                after_refusal(stale),
                AfterRefusal::AwaitMetadata,
                "{stale:?}"
            );
        }
        for transient in [
            ResponseError::NotController,
            ResponseError::RequestTimedOut,
            ResponseError::IneligibleReplica,
            ResponseError::OperationNotAttempted,
        ] {
            assert_eq!(
                after_refusal(transient),
                AfterRefusal::RetryAfterBackoff,
                "{transient:?}"
            );
        }
    }
}
