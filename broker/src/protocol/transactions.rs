//! The transaction admin APIs that `kafka-transactions` and admin clients send. Strom has
//! idempotent producers but no transactions yet, so these give the true answers for a
//! broker with no transactional ids: ListTransactions lists nothing, DescribeTransactions
//! finds no id, and DescribeProducers reports the real idempotent producer state of each
//! partition this broker leads (never in a transaction: coordinator epoch and transaction
//! start offset -1, as Kafka reports idempotent producers).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_transactions_response::TransactionState;
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeProducersResponse, DescribeTransactionsRequest,
    DescribeTransactionsResponse, ListTransactionsRequest, ListTransactionsResponse, ProducerId,
};

use super::{log_refusal, str_bytes, RequestContext};
use crate::auth::acl::{AclOperation, ResourceType};
use crate::auth::authorize::Access;
use crate::broker::Broker;
use crate::error::ApiError;

/// The transaction states Kafka's coordinator knows (`TransactionState` in Kafka); a
/// ListTransactions filter naming another is reported back as unknown, as Kafka does.
const TRANSACTION_STATES: &[&str] = &[
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
];

pub fn list_transactions(
    ctx: &RequestContext<'_>,
    request: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let unknown: Vec<_> = request
        .state_filters
        .iter()
        .filter(|s| !TRANSACTION_STATES.contains(&s.as_str()))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        tracing::info!(peer = %ctx.connection.peer, filters = ?unknown,
            "ListTransactions with unknown state filters");
    }
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(Vec::new())
}

pub fn describe_transactions(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    // Kafka: DESCRIBE on each transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED).
    let access = Access::of(broker, ctx);
    let states = request
        .transactional_ids
        .iter()
        .map(|id| {
            if !access.allows(
                AclOperation::Describe,
                ResourceType::TransactionalId,
                id.0.as_str(),
            ) {
                return TransactionState::default()
                    .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code())
                    .with_transactional_id(id.clone())
                    .with_transaction_state(str_bytes(""))
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)
                    .with_transaction_timeout_ms(-1)
                    .with_transaction_start_time_ms(-1);
            }
            let error = ApiError::new(
                ResponseError::TransactionalIdNotFound,
                format!(
                    "transactional id '{}' is unknown: Strom has no transactions yet",
                    id.0.as_str()
                ),
            );
            log_refusal(ctx, id.0.as_str(), &error);
            TransactionState::default()
                .with_error_code(error.code())
                .with_transactional_id(id.clone())
                .with_transaction_state(str_bytes(""))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_timeout_ms(-1)
                .with_transaction_start_time_ms(-1)
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

pub fn describe_producers(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    // Kafka: READ on each topic, refused (with the standard text) before its existence
    // is looked at.
    let access = Access::of(broker, ctx);
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let name = topic.name.0.as_str();
            let readable = access.allows(AclOperation::Read, ResourceType::Topic, name);
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|&index| {
                    let response = PartitionResponse::default().with_partition_index(index);
                    if !readable {
                        return response
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                            .with_error_message(Some(str_bytes("Topic authorization failed.")));
                    }
                    match broker.led_partition(name, index) {
                        Ok(partition) => {
                            let producers = partition
                                .log
                                .lock()
                                .producer_state()
                                .active_producers()
                                .into_iter()
                                .map(|p| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(p.producer_id))
                                        .with_producer_epoch(i32::from(p.epoch))
                                        .with_last_sequence(p.last_sequence)
                                        .with_last_timestamp(p.last_timestamp)
                                        .with_coordinator_epoch(-1)
                                        .with_current_txn_start_offset(-1)
                                })
                                .collect();
                            response.with_active_producers(producers)
                        }
                        Err(e) => {
                            log_refusal(ctx, &format!("{name}-{index}"), &e);
                            response
                                .with_error_code(e.code())
                                .with_error_message(Some(str_bytes(&e.message)))
                        }
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
