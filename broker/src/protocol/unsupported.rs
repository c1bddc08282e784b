//! Error replies for requests Strom decodes but does not implement (yet): every API whose
//! response has a top-level error code gets that response with UNSUPPORTED_VERSION, so a
//! client sees a clear error instead of a dropped connection. The list is every such
//! response type in `kafka-protocol`; the few APIs whose responses only carry per-item
//! errors are answered by closing the connection with a log line, as Kafka does for an
//! API it does not serve.

use kafka_protocol::messages::*;

/// The error response for `api_key`, if its response shape has a top-level error code.
pub fn error_response(api_key: ApiKey, code: i16) -> Option<ResponseKind> {
    let response = match api_key {
        ApiKey::AddOffsetsToTxn => {
            ResponseKind::AddOffsetsToTxn(AddOffsetsToTxnResponse::default().with_error_code(code))
        }
        ApiKey::AddPartitionsToTxn => ResponseKind::AddPartitionsToTxn(
            AddPartitionsToTxnResponse::default().with_error_code(code),
        ),
        ApiKey::AddRaftVoter => {
            ResponseKind::AddRaftVoter(AddRaftVoterResponse::default().with_error_code(code))
        }
        ApiKey::AllocateProducerIds => ResponseKind::AllocateProducerIds(
            AllocateProducerIdsResponse::default().with_error_code(code),
        ),
        ApiKey::AlterPartition => {
            ResponseKind::AlterPartition(AlterPartitionResponse::default().with_error_code(code))
        }
        ApiKey::AlterPartitionReassignments => ResponseKind::AlterPartitionReassignments(
            AlterPartitionReassignmentsResponse::default().with_error_code(code),
        ),
        ApiKey::AlterShareGroupOffsets => ResponseKind::AlterShareGroupOffsets(
            AlterShareGroupOffsetsResponse::default().with_error_code(code),
        ),
        ApiKey::ApiVersions => {
            ResponseKind::ApiVersions(ApiVersionsResponse::default().with_error_code(code))
        }
        ApiKey::AssignReplicasToDirs => ResponseKind::AssignReplicasToDirs(
            AssignReplicasToDirsResponse::default().with_error_code(code),
        ),
        ApiKey::BeginQuorumEpoch => ResponseKind::BeginQuorumEpoch(
            BeginQuorumEpochResponse::default().with_error_code(code),
        ),
        ApiKey::BrokerHeartbeat => {
            ResponseKind::BrokerHeartbeat(BrokerHeartbeatResponse::default().with_error_code(code))
        }
        ApiKey::BrokerRegistration => ResponseKind::BrokerRegistration(
            BrokerRegistrationResponse::default().with_error_code(code),
        ),
        ApiKey::ConsumerGroupHeartbeat => ResponseKind::ConsumerGroupHeartbeat(
            ConsumerGroupHeartbeatResponse::default().with_error_code(code),
        ),
        ApiKey::ControllerRegistration => ResponseKind::ControllerRegistration(
            ControllerRegistrationResponse::default().with_error_code(code),
        ),
        ApiKey::CreateDelegationToken => ResponseKind::CreateDelegationToken(
            CreateDelegationTokenResponse::default().with_error_code(code),
        ),
        ApiKey::DeleteShareGroupOffsets => ResponseKind::DeleteShareGroupOffsets(
            DeleteShareGroupOffsetsResponse::default().with_error_code(code),
        ),
        ApiKey::DescribeAcls => {
            ResponseKind::DescribeAcls(DescribeAclsResponse::default().with_error_code(code))
        }
        ApiKey::DescribeClientQuotas => ResponseKind::DescribeClientQuotas(
            DescribeClientQuotasResponse::default().with_error_code(code),
        ),
        ApiKey::DescribeCluster => {
            ResponseKind::DescribeCluster(DescribeClusterResponse::default().with_error_code(code))
        }
        ApiKey::DescribeDelegationToken => ResponseKind::DescribeDelegationToken(
            DescribeDelegationTokenResponse::default().with_error_code(code),
        ),
        ApiKey::DescribeLogDirs => {
            ResponseKind::DescribeLogDirs(DescribeLogDirsResponse::default().with_error_code(code))
        }
        ApiKey::DescribeQuorum => {
            ResponseKind::DescribeQuorum(DescribeQuorumResponse::default().with_error_code(code))
        }
        ApiKey::DescribeUserScramCredentials => ResponseKind::DescribeUserScramCredentials(
            DescribeUserScramCredentialsResponse::default().with_error_code(code),
        ),
        ApiKey::ElectLeaders => {
            ResponseKind::ElectLeaders(ElectLeadersResponse::default().with_error_code(code))
        }
        ApiKey::EndQuorumEpoch => {
            ResponseKind::EndQuorumEpoch(EndQuorumEpochResponse::default().with_error_code(code))
        }
        ApiKey::EndTxn => ResponseKind::EndTxn(EndTxnResponse::default().with_error_code(code)),
        ApiKey::Envelope => {
            ResponseKind::Envelope(EnvelopeResponse::default().with_error_code(code))
        }
        ApiKey::ExpireDelegationToken => ResponseKind::ExpireDelegationToken(
            ExpireDelegationTokenResponse::default().with_error_code(code),
        ),
        ApiKey::Fetch => ResponseKind::Fetch(FetchResponse::default().with_error_code(code)),
        ApiKey::FetchSnapshot => {
            ResponseKind::FetchSnapshot(FetchSnapshotResponse::default().with_error_code(code))
        }
        ApiKey::FindCoordinator => {
            ResponseKind::FindCoordinator(FindCoordinatorResponse::default().with_error_code(code))
        }
        ApiKey::GetTelemetrySubscriptions => ResponseKind::GetTelemetrySubscriptions(
            GetTelemetrySubscriptionsResponse::default().with_error_code(code),
        ),
        ApiKey::Heartbeat => {
            ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(code))
        }
        ApiKey::InitProducerId => {
            ResponseKind::InitProducerId(InitProducerIdResponse::default().with_error_code(code))
        }
        ApiKey::JoinGroup => {
            ResponseKind::JoinGroup(JoinGroupResponse::default().with_error_code(code))
        }
        ApiKey::LeaveGroup => {
            ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_error_code(code))
        }
        ApiKey::ListConfigResources => ResponseKind::ListConfigResources(
            ListConfigResourcesResponse::default().with_error_code(code),
        ),
        ApiKey::ListGroups => {
            ResponseKind::ListGroups(ListGroupsResponse::default().with_error_code(code))
        }
        ApiKey::ListPartitionReassignments => ResponseKind::ListPartitionReassignments(
            ListPartitionReassignmentsResponse::default().with_error_code(code),
        ),
        ApiKey::ListTransactions => ResponseKind::ListTransactions(
            ListTransactionsResponse::default().with_error_code(code),
        ),
        ApiKey::Metadata => {
            ResponseKind::Metadata(MetadataResponse::default().with_error_code(code))
        }
        ApiKey::OffsetDelete => {
            ResponseKind::OffsetDelete(OffsetDeleteResponse::default().with_error_code(code))
        }
        ApiKey::OffsetFetch => {
            ResponseKind::OffsetFetch(OffsetFetchResponse::default().with_error_code(code))
        }
        ApiKey::PushTelemetry => {
            ResponseKind::PushTelemetry(PushTelemetryResponse::default().with_error_code(code))
        }
        ApiKey::RemoveRaftVoter => {
            ResponseKind::RemoveRaftVoter(RemoveRaftVoterResponse::default().with_error_code(code))
        }
        ApiKey::RenewDelegationToken => ResponseKind::RenewDelegationToken(
            RenewDelegationTokenResponse::default().with_error_code(code),
        ),
        ApiKey::SaslAuthenticate => ResponseKind::SaslAuthenticate(
            SaslAuthenticateResponse::default().with_error_code(code),
        ),
        ApiKey::SaslHandshake => {
            ResponseKind::SaslHandshake(SaslHandshakeResponse::default().with_error_code(code))
        }
        ApiKey::ShareAcknowledge => ResponseKind::ShareAcknowledge(
            ShareAcknowledgeResponse::default().with_error_code(code),
        ),
        ApiKey::ShareFetch => {
            ResponseKind::ShareFetch(ShareFetchResponse::default().with_error_code(code))
        }
        ApiKey::ShareGroupHeartbeat => ResponseKind::ShareGroupHeartbeat(
            ShareGroupHeartbeatResponse::default().with_error_code(code),
        ),
        ApiKey::SyncGroup => {
            ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(code))
        }
        ApiKey::UnregisterBroker => ResponseKind::UnregisterBroker(
            UnregisterBrokerResponse::default().with_error_code(code),
        ),
        ApiKey::UpdateFeatures => {
            ResponseKind::UpdateFeatures(UpdateFeaturesResponse::default().with_error_code(code))
        }
        ApiKey::UpdateRaftVoter => {
            ResponseKind::UpdateRaftVoter(UpdateRaftVoterResponse::default().with_error_code(code))
        }
        ApiKey::Vote => ResponseKind::Vote(VoteResponse::default().with_error_code(code)),
        _ => return None,
    };
    Some(response)
}
