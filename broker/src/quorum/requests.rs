//! What brokers ask the active controller, and its answers. They travel between nodes as
//! JSON inside the quorum's own RPC frames (see the `strom-raft` crate).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::acl::{AclBinding, AclBindingFilter};
use crate::controller::client_quotas::{QuotaAlteration, QuotaResults};
use crate::controller::{Defaults, NewTopic, ScramDeletion, ScramUpsertion, UserOutcome};
use crate::error::ApiError;
use crate::metadata::{BrokerEndpoint, ConfigResource, PartitionImage};
use crate::quota::MutationRequester;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControllerRequest {
    /// CreateTopics (and auto-creation with `if_absent`: an existing topic is not an error).
    CreateTopic {
        topic: NewTopic,
        defaults: Defaults,
        if_absent: bool,
        validate_only: bool,
        /// KIP-599: whom the topic's partitions are charged to once it passed validation;
        /// `None` for creations of the brokers' own (auto-creation, internal topics). With
        /// it, the reply is `ControllerOk::Mutation`.
        #[serde(default)]
        quota: Option<MutationRequester>,
    },
    /// Auto-creation: many topics in one decision and one commit; ones that exist by
    /// then are skipped, and one refused does not stop the others. Charged to no
    /// controller mutation quota: a batch mixes many clients' topics (Kafka charges the
    /// client whose Metadata request asked for the topic).
    CreateTopics {
        topics: Vec<NewTopic>,
        defaults: Defaults,
    },
    DeleteTopic {
        name: String,
        /// As in `CreateTopic`: charged the topic's partitions.
        #[serde(default)]
        quota: Option<MutationRequester>,
    },
    CreatePartitions {
        name: String,
        count: i32,
        assignments: Vec<Vec<i32>>,
        validate_only: bool,
        /// As in `CreateTopic`: charged the partitions added.
        #[serde(default)]
        quota: Option<MutationRequester>,
    },
    AlterTopicConfigs {
        name: String,
        changes: Vec<(String, Option<String>)>,
        replace_all: bool,
        validate_only: bool,
    },
    /// Dynamic broker configs and group configs, checked by the broker that took the
    /// request (topic configs go through `AlterTopicConfigs`).
    AlterConfigs {
        resource: ConfigResource,
        changes: Vec<(String, Option<String>)>,
        replace_all: bool,
        validate_only: bool,
    },
    AllocateProducerIds,
    RegisterBroker {
        id: i32,
        incarnation: Uuid,
        endpoints: Vec<BrokerEndpoint>,
        rack: Option<String>,
    },
    /// Kafka's BrokerHeartbeat: keeps the broker unfenced; `want_shutdown` starts (and
    /// then polls) its controlled shutdown.
    Heartbeat {
        id: i32,
        incarnation: Uuid,
        want_shutdown: bool,
        /// Replicas (topic id, partition) on failed log directories (Kafka's
        /// `OfflineLogDirs`, per replica since Strom does not assign directory ids).
        #[serde(default)]
        offline_replicas: Vec<(Uuid, i32)>,
    },
    /// Kafka's AlterPartition: a leader asks for a new ISR.
    AlterIsr {
        topic_id: Uuid,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    },
    ElectLeaders {
        targets: Option<Vec<(String, i32)>>,
        unclean: bool,
    },
    AlterReassignment {
        topic: String,
        partition: i32,
        /// `None` cancels.
        target: Option<Vec<i32>>,
    },
    /// Kafka's UnregisterBroker: the registration goes from the cluster metadata.
    UnregisterBroker {
        id: i32,
    },
    /// DescribeQuorum: only the leader knows the voters' progress, so every broker asks it.
    DescribeQuorum,
    /// KIP-554's AlterUserScramCredentials. Upsertions carry the keys the receiving broker
    /// derived, never the client's salted password.
    AlterScramCredentials {
        deletions: Vec<ScramDeletion>,
        upsertions: Vec<ScramUpsertion>,
    },
    /// CreateAcls, the creations the broker's own checks let through.
    CreateAcls {
        bindings: Vec<AclBinding>,
    },
    /// DeleteAcls.
    DeleteAcls {
        filters: Vec<AclBindingFilter>,
    },
    /// AlterClientQuotas.
    AlterClientQuotas {
        alterations: Vec<QuotaAlteration>,
        validate_only: bool,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControllerOk {
    Done,
    /// Whether a CreateTopic made the topic (false: it existed and `if_absent` was set).
    Created(bool),
    /// Per topic of a CreateTopics: created, already there, or why not.
    CreatedTopics(Vec<(String, Result<bool, ApiError>)>),
    ProducerIdBlock(i64),
    Heartbeat {
        fenced: bool,
        /// The broker leads nothing any more and may stop.
        shutdown_ready: bool,
    },
    Partition(PartitionImage),
    Elections(Vec<((String, i32), Result<(), ApiError>)>),
    Quorum(strom_raft::QuorumDescription),
    /// One result per user of an AlterScramCredentials.
    ScramResults(Vec<UserOutcome>),
    /// Per creation of a CreateAcls: done (or already there), or why not.
    AclsCreated(Vec<Result<(), ApiError>>),
    /// Per filter of a DeleteAcls: the ACLs it removed, with their ids, or why not.
    AclsDeleted(Vec<Result<Vec<(Uuid, AclBinding)>, ApiError>>),
    /// Per alteration of an AlterClientQuotas: done, or why not.
    ClientQuotaResults(QuotaResults),
    /// A CreateTopic, DeleteTopic or CreatePartitions that carried a `quota`: the topic's
    /// outcome (for CreateTopic, whether it was created; THROTTLING_QUOTA_EXCEEDED when a
    /// strict quota refused it) and the throttle left when the reply was sent.
    Mutation {
        outcome: Result<bool, ApiError>,
        throttle_ms: i64,
    },
}

pub type ControllerReply = Result<ControllerOk, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_mutations_from_brokers_without_quotas_still_decode() {
        // What a broker from before KIP-599's move to the controller sends.
        let old = r#"{"DeleteTopic":{"name":"t"}}"#;
        let decoded: ControllerRequest = serde_json::from_str(old).expect("decodes");
        assert!(matches!(
            decoded,
            ControllerRequest::DeleteTopic { name, quota: None } if name == "t"
        ));
        let old =
            r#"{"CreatePartitions":{"name":"t","count":3,"assignments":[],"validate_only":false}}"#;
        let decoded: ControllerRequest = serde_json::from_str(old).expect("decodes");
        assert!(matches!(
            decoded,
            ControllerRequest::CreatePartitions { quota: None, .. }
        ));
    }
}
