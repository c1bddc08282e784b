//! Writes the seed corpora: valid request frames for the APIs the broker serves (plus one
//! it decodes but does not serve), every seed well under 1 KiB.
//!
//! `cargo run --example gen_seeds` (from `fuzz/`) rewrites `corpus/request_frame/` (frame
//! bodies) and `corpus/frame_stream/` (size-prefixed frames, alone and pipelined).

use std::path::Path;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strom_fuzz::{request_body, with_size_prefix};

const TOPIC: &str = "seed-topic";

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

fn record_batch(compression: Compression) -> Bytes {
    let records: Vec<Record> = (0..2)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: -1,
            timestamp: 1_700_000_000_000 + i,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("value {i}"))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode record batch");
    buf.freeze()
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let api_versions = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("strom-fuzz"))
        .with_client_software_version(StrBytes::from_static_str("0.1"));
    let metadata = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic()))
        ]))
        .with_allow_auto_topic_creation(true);
    let produce = |compression| {
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic())
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(record_batch(compression)))])])
    };
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic())
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_current_leader_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(1 << 20)])]);
    let create_topics = CreateTopicsRequest::default()
        .with_timeout_ms(1000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("seed-created")))
            .with_num_partitions(2)
            .with_replication_factor(1)
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str("retention.ms"))
                .with_value(Some(StrBytes::from_static_str("60000")))])]);
    let list_offsets = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic())
            .with_partitions(vec![
                ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(1_700_000_000_000),
                ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1),
            ])]);
    let epoch = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(topic())
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_leader_epoch(0)
                .with_current_leader_epoch(-1)])]);
    let delete_records = DeleteRecordsRequest::default()
        .with_timeout_ms(1000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(topic())
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(1)])]);
    let describe_configs =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str(TOPIC))
            .with_configuration_keys(None)]);
    let incremental = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str(TOPIC))
            .with_configs(vec![AlterableConfig::default()
                .with_name(StrBytes::from_static_str("retention.ms"))
                .with_config_operation(0)
                .with_value(Some(StrBytes::from_static_str("120000")))]),
    ]);
    let create_partitions = CreatePartitionsRequest::default()
        .with_timeout_ms(1000)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic())
            .with_count(3)
            .with_assignments(None)]);
    let delete_topics = DeleteTopicsRequest::default()
        .with_timeout_ms(1000)
        .with_topics(vec![DeleteTopicState::default().with_name(Some(
            TopicName(StrBytes::from_static_str("seed-created")),
        ))]);
    let init_pid = InitProducerIdRequest::default()
        .with_transaction_timeout_ms(60000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let join_group = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("seed-group")))
        .with_session_timeout_ms(10000)
        .with_rebalance_timeout_ms(10000)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(Bytes::from_static(
                b"\0\x01\0\0\0\x01\0\x0aseed-topic\xff\xff\xff\xff",
            ))]);

    vec![
        (
            "api_versions_v3",
            request_body(ApiKey::ApiVersions, 3, 1, &api_versions),
        ),
        (
            "api_versions_v0",
            request_body(ApiKey::ApiVersions, 0, 2, &ApiVersionsRequest::default()),
        ),
        (
            "metadata_v9",
            request_body(ApiKey::Metadata, 9, 3, &metadata),
        ),
        (
            "metadata_v12_all_topics",
            request_body(
                ApiKey::Metadata,
                12,
                4,
                &MetadataRequest::default().with_topics(None),
            ),
        ),
        (
            "produce_v9",
            request_body(ApiKey::Produce, 9, 5, &produce(Compression::None)),
        ),
        (
            "produce_v9_gzip",
            request_body(ApiKey::Produce, 9, 6, &produce(Compression::Gzip)),
        ),
        (
            "produce_v3_acks0",
            request_body(
                ApiKey::Produce,
                3,
                7,
                &produce(Compression::None).with_acks(0),
            ),
        ),
        ("fetch_v12", request_body(ApiKey::Fetch, 12, 8, &fetch)),
        (
            "create_topics_v5",
            request_body(ApiKey::CreateTopics, 5, 9, &create_topics),
        ),
        (
            "list_offsets_v7",
            request_body(ApiKey::ListOffsets, 7, 10, &list_offsets),
        ),
        (
            "offset_for_leader_epoch_v4",
            request_body(ApiKey::OffsetForLeaderEpoch, 4, 11, &epoch),
        ),
        (
            "delete_records_v2",
            request_body(ApiKey::DeleteRecords, 2, 12, &delete_records),
        ),
        (
            "describe_configs_v4",
            request_body(ApiKey::DescribeConfigs, 4, 13, &describe_configs),
        ),
        (
            "incremental_alter_configs_v1",
            request_body(ApiKey::IncrementalAlterConfigs, 1, 14, &incremental),
        ),
        (
            "create_partitions_v3",
            request_body(ApiKey::CreatePartitions, 3, 15, &create_partitions),
        ),
        (
            "delete_topics_v6",
            request_body(ApiKey::DeleteTopics, 6, 16, &delete_topics),
        ),
        (
            "init_producer_id_v4",
            request_body(ApiKey::InitProducerId, 4, 17, &init_pid),
        ),
        (
            "describe_cluster_v1",
            request_body(
                ApiKey::DescribeCluster,
                1,
                18,
                &DescribeClusterRequest::default(),
            ),
        ),
        (
            "join_group_v5",
            request_body(ApiKey::JoinGroup, 5, 19, &join_group),
        ),
        (
            "join_group_v9_static",
            request_body(
                ApiKey::JoinGroup,
                9,
                20,
                &join_group
                    .clone()
                    .with_group_instance_id(Some(StrBytes::from_static_str("seed-instance"))),
            ),
        ),
        (
            "sync_group_v5",
            request_body(
                ApiKey::SyncGroup,
                5,
                21,
                &SyncGroupRequest::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("seed-group")))
                    .with_generation_id(1)
                    .with_member_id(StrBytes::from_static_str("seed-member"))
                    .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
                    .with_protocol_name(Some(StrBytes::from_static_str("range"))),
            ),
        ),
        (
            "heartbeat_v4",
            request_body(
                ApiKey::Heartbeat,
                4,
                22,
                &HeartbeatRequest::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("seed-group")))
                    .with_generation_id(1)
                    .with_member_id(StrBytes::from_static_str("seed-member")),
            ),
        ),
        (
            "offset_commit_v8",
            request_body(
                ApiKey::OffsetCommit,
                8,
                23,
                &OffsetCommitRequest::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("seed-group")))
                    .with_generation_id_or_member_epoch(-1)
                    .with_topics(vec![OffsetCommitRequestTopic::default()
                        .with_name(TopicName(StrBytes::from_static_str("seed-topic")))
                        .with_partitions(vec![OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(5)
                            .with_committed_metadata(Some(StrBytes::from_static_str("m")))])]),
            ),
        ),
        (
            "offset_fetch_v8",
            request_body(
                ApiKey::OffsetFetch,
                8,
                24,
                &OffsetFetchRequest::default()
                    .with_groups(vec![OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(StrBytes::from_static_str("seed-group")))
                        .with_topics(None)]),
            ),
        ),
        (
            "leave_group_v5",
            request_body(
                ApiKey::LeaveGroup,
                5,
                25,
                &LeaveGroupRequest::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("seed-group")))
                    .with_members(vec![MemberIdentity::default()
                        .with_member_id(StrBytes::from_static_str("seed-member"))
                        .with_group_instance_id(Some(StrBytes::from_static_str(
                            "seed-instance",
                        )))]),
            ),
        ),
        (
            "describe_groups_v5",
            request_body(
                ApiKey::DescribeGroups,
                5,
                26,
                &DescribeGroupsRequest::default()
                    .with_groups(vec![GroupId(StrBytes::from_static_str("seed-group"))]),
            ),
        ),
        (
            "find_coordinator_v4",
            request_body(
                ApiKey::FindCoordinator,
                4,
                27,
                &FindCoordinatorRequest::default()
                    .with_coordinator_keys(vec![StrBytes::from_static_str("seed-group")]),
            ),
        ),
    ]
    .into_iter()
    .chain(admin_tool_seeds())
    .chain(scram_seeds())
    .collect()
}

/// KIP-554 (issue 15): SCRAM credentials, and the DescribeClientQuotas that kafka-configs
/// sends before describing them.
fn scram_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use kafka_protocol::messages::alter_user_scram_credentials_request::{
        ScramCredentialDeletion, ScramCredentialUpsertion,
    };
    use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
    use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
    let s = StrBytes::from_static_str;
    vec![
        (
            "alter_user_scram_credentials_v0",
            request_body(
                ApiKey::AlterUserScramCredentials,
                0,
                52,
                &AlterUserScramCredentialsRequest::default()
                    .with_deletions(vec![ScramCredentialDeletion::default()
                        .with_name(s("seed-old"))
                        .with_mechanism(1)])
                    .with_upsertions(vec![ScramCredentialUpsertion::default()
                        .with_name(s("seed-user"))
                        .with_mechanism(1)
                        .with_iterations(4096)
                        .with_salt(Bytes::from_static(b"seed-salt"))
                        .with_salted_password(Bytes::from(vec![7u8; 32]))]),
            ),
        ),
        (
            "describe_user_scram_credentials_v0",
            request_body(
                ApiKey::DescribeUserScramCredentials,
                0,
                53,
                &DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
                    UserName::default().with_name(s("seed-user")),
                    UserName::default().with_name(s("nobody")),
                ])),
            ),
        ),
        (
            "describe_client_quotas_v1",
            request_body(
                ApiKey::DescribeClientQuotas,
                1,
                54,
                &DescribeClientQuotasRequest::default()
                    .with_components(vec![ComponentData::default()
                        .with_entity_type(s("user"))
                        .with_match_type(2)])
                    .with_strict(true),
            ),
        ),
    ]
}

/// The admin APIs Kafka's own tools send (issue 12): quorum, features, ACLs, transactions,
/// and reassignment v1.
fn admin_tool_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use kafka_protocol::messages::alter_partition_reassignments_request::{
        ReassignablePartition, ReassignableTopic,
    };
    use kafka_protocol::messages::create_acls_request::AclCreation;
    use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
    use kafka_protocol::messages::update_features_request::FeatureUpdateKey;
    let s = StrBytes::from_static_str;
    vec![
        (
            "describe_quorum_v2",
            request_body(
                ApiKey::DescribeQuorum,
                2,
                40,
                &DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
                    .with_topic_name(TopicName(s("__cluster_metadata")))
                    .with_partitions(vec![PartitionData::default()])]),
            ),
        ),
        (
            "update_features_v1",
            request_body(
                ApiKey::UpdateFeatures,
                1,
                41,
                &UpdateFeaturesRequest::default()
                    .with_timeout_ms(1000)
                    .with_feature_updates(vec![FeatureUpdateKey::default()
                        .with_feature(s("transaction.version"))
                        .with_max_version_level(2)
                        .with_upgrade_type(1)]),
            ),
        ),
        (
            "describe_acls_v3",
            request_body(
                ApiKey::DescribeAcls,
                3,
                42,
                &DescribeAclsRequest::default()
                    .with_resource_type_filter(1)
                    .with_pattern_type_filter(1)
                    .with_operation(1)
                    .with_permission_type(1),
            ),
        ),
        (
            "create_acls_v3",
            request_body(
                ApiKey::CreateAcls,
                3,
                43,
                &CreateAclsRequest::default().with_creations(vec![AclCreation::default()
                    .with_resource_type(2)
                    .with_resource_name(s(TOPIC))
                    .with_resource_pattern_type(3)
                    .with_principal(s("User:seed"))
                    .with_host(s("*"))
                    .with_operation(3)
                    .with_permission_type(3)]),
            ),
        ),
        (
            "delete_acls_v3",
            request_body(
                ApiKey::DeleteAcls,
                3,
                44,
                &DeleteAclsRequest::default().with_filters(vec![DeleteAclsFilter::default()
                    .with_resource_type_filter(1)
                    .with_pattern_type_filter(1)
                    .with_operation(1)
                    .with_permission_type(1)]),
            ),
        ),
        (
            "list_transactions_v2",
            request_body(
                ApiKey::ListTransactions,
                2,
                45,
                &ListTransactionsRequest::default()
                    .with_state_filters(vec![s("Ongoing")])
                    .with_duration_filter(-1)
                    .with_transactional_id_pattern(Some(s("seed.*"))),
            ),
        ),
        (
            "describe_transactions_v0",
            request_body(
                ApiKey::DescribeTransactions,
                0,
                46,
                &DescribeTransactionsRequest::default()
                    .with_transactional_ids(vec![TransactionalId(s("seed-txn"))]),
            ),
        ),
        (
            "describe_producers_v0",
            request_body(
                ApiKey::DescribeProducers,
                0,
                47,
                &DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
                    .with_name(topic())
                    .with_partition_indexes(vec![0, 7])]),
            ),
        ),
        (
            "find_coordinator_v4_transaction",
            request_body(
                ApiKey::FindCoordinator,
                4,
                48,
                &FindCoordinatorRequest::default()
                    .with_key_type(1)
                    .with_coordinator_keys(vec![s("seed-txn"), s("")]),
            ),
        ),
        (
            "alter_partition_reassignments_v1",
            request_body(
                ApiKey::AlterPartitionReassignments,
                1,
                49,
                &AlterPartitionReassignmentsRequest::default()
                    .with_timeout_ms(1000)
                    .with_allow_replication_factor_change(false)
                    .with_topics(vec![ReassignableTopic::default()
                        .with_name(topic())
                        .with_partitions(vec![ReassignablePartition::default()
                            .with_partition_index(0)
                            .with_replicas(Some(vec![BrokerId(0), BrokerId(1)]))])]),
            ),
        ),
        (
            "list_config_resources_v1",
            request_body(
                ApiKey::ListConfigResources,
                1,
                50,
                &ListConfigResourcesRequest::default().with_resource_types(vec![2, 4, 8, 16, 32]),
            ),
        ),
        (
            "list_config_resources_v0",
            request_body(
                ApiKey::ListConfigResources,
                0,
                51,
                &ListConfigResourcesRequest::default(),
            ),
        ),
    ]
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    assert!(
        bytes.len() < 1024,
        "seed {name} is {} bytes; keep seeds under 1 KiB",
        bytes.len()
    );
    std::fs::write(dir.join(name), bytes).expect("write seed");
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let frames_dir = root.join("request_frame");
    let stream_dir = root.join("frame_stream");
    std::fs::create_dir_all(&frames_dir).unwrap();
    std::fs::create_dir_all(&stream_dir).unwrap();
    let seeds = seeds();
    for (name, body) in &seeds {
        write(&frames_dir, name, body);
        write(&stream_dir, name, &with_size_prefix(body));
    }
    // Pipelined: what a client sends on a fresh connection, back to back.
    let pipelined: Vec<u8> = ["api_versions_v3", "metadata_v9", "produce_v9", "fetch_v12"]
        .iter()
        .flat_map(|want| with_size_prefix(&seeds.iter().find(|(n, _)| n == want).unwrap().1))
        .collect();
    write(&stream_dir, "pipelined_session", &pipelined);
    println!("wrote {} seeds under {}", seeds.len(), root.display());
}
