//! The active controller's decisions: it checks a requested change against the current
//! metadata image and answers with the records that carry it out, or a Kafka error. It
//! never writes anything itself; the caller commits the records. Pure functions, so every
//! rule here is unit-tested without a broker.

pub mod acls;
pub mod brokers;
pub mod capacity;
mod change;
pub mod client_quotas;
pub mod elections;
pub mod isr;
pub mod log_dirs;
pub mod placement;
pub mod reassignment;
pub mod scram;
#[cfg(test)]
pub(crate) mod testkit;
pub mod topics;

pub use brokers::{
    controlled_shutdown, fence_broker, register_broker, session_expired, session_state,
    unfence_broker, unregister_broker, Session,
};
pub use capacity::check_broker_capacity;
pub use elections::{
    auto_rebalance, elect_leaders, elect_unclean_where_enabled, ElectionKind, ElectionOutcome,
};
pub use isr::alter_isr;
pub use log_dirs::offline_replicas;
pub use placement::{live_broker_infos, placeable_broker_infos, BrokerInfo};
pub use reassignment::{
    alter_reassignment, complete_if_caught_up, list_reassignments, OngoingReassignment,
};
pub use scram::{alter_scram_credentials, ScramDeletion, ScramUpsertion, UserOutcome};
pub use topics::{
    allocate_producer_ids, alter_topic_configs, create_partitions, create_topic,
    create_topics_if_absent, delete_topic, existing_topic, is_internal_topic, validate_topic_name,
    Defaults, NewTopic, TopicOutcome, MAX_PARTITIONS_PER_TOPIC, PRODUCER_ID_BLOCK,
};
