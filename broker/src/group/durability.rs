//! What a client hears when a coordinator write to `__consumer_offsets` fails or does not
//! reach the in-sync replicas in time: Kafka's own translation of log errors into group
//! API errors, so clients react (rediscover, retry) exactly as they would with Kafka.

use std::time::Duration;

use kafka_protocol::error::ResponseError;

/// How long a coordinator write may take to reach the in-sync replicas: Kafka's default
/// `offsets.commit.timeout.ms` (not configurable here yet).
pub const REPLICATION_TIMEOUT: Duration = Duration::from_secs(5);

/// The OffsetCommit (and OffsetDelete) error for a failed offsets write.
pub fn offset_write_error(error: ResponseError) -> ResponseError {
    match error {
        ResponseError::UnknownTopicOrPartition
        | ResponseError::NotEnoughReplicas
        | ResponseError::NotEnoughReplicasAfterAppend => ResponseError::CoordinatorNotAvailable,
        // This broker is no longer (or not yet) where the group lives: rediscover.
        ResponseError::NotLeaderOrFollower | ResponseError::KafkaStorageError => {
            ResponseError::NotCoordinator
        }
        ResponseError::MessageTooLarge
        | ResponseError::RecordListTooLarge
        | ResponseError::InvalidFetchSize => ResponseError::InvalidCommitOffsetSize,
        // REQUEST_TIMED_OUT stays: the commit may still land, the client retries.
        other => other,
    }
}

/// The JoinGroup / SyncGroup / DeleteGroups error for a failed group metadata write.
pub fn group_write_error(error: ResponseError) -> ResponseError {
    match error {
        ResponseError::UnknownTopicOrPartition
        | ResponseError::NotEnoughReplicas
        | ResponseError::NotEnoughReplicasAfterAppend
        | ResponseError::RequestTimedOut => ResponseError::CoordinatorNotAvailable,
        ResponseError::NotLeaderOrFollower | ResponseError::KafkaStorageError => {
            ResponseError::NotCoordinator
        }
        ResponseError::MessageTooLarge
        | ResponseError::RecordListTooLarge
        | ResponseError::InvalidFetchSize => ResponseError::UnknownServerError,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leadership_loss_sends_clients_to_find_the_coordinator() {
        assert_eq!(
            offset_write_error(ResponseError::NotLeaderOrFollower),
            ResponseError::NotCoordinator
        );
        assert_eq!(
            group_write_error(ResponseError::NotLeaderOrFollower),
            ResponseError::NotCoordinator
        );
    }

    #[test]
    fn a_timeout_stays_a_timeout_only_for_commits() {
        assert_eq!(
            offset_write_error(ResponseError::RequestTimedOut),
            ResponseError::RequestTimedOut
        );
        assert_eq!(
            group_write_error(ResponseError::RequestTimedOut),
            ResponseError::CoordinatorNotAvailable
        );
        assert_eq!(
            offset_write_error(ResponseError::NotEnoughReplicas),
            ResponseError::CoordinatorNotAvailable
        );
    }
}
