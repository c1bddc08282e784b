//! A non-voter's view of the quorum: long-polls voters for the state whenever it moves.

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::network::client::CallError;
use crate::network::wire::{RequestBody, ResponseBody};
use crate::quorum::Quorum;
use crate::{ReplicatedState, RequestHandler};

/// How long a voter may hold one poll before answering "nothing new".
const POLL_WAIT: Duration = Duration::from_secs(5);
/// Slack on top of `POLL_WAIT` before the poll counts as failed.
const POLL_GRACE: Duration = Duration::from_secs(5);

pub(crate) async fn follow<S: ReplicatedState, H: RequestHandler>(
    quorum: Weak<Quorum<S, H>>,
    shutdown: CancellationToken,
) {
    let mut rotation = 0usize;
    let mut failures = 0u32;
    loop {
        let Some(node) = quorum.upgrade() else { return };
        let voters: Vec<u64> = node.config.voters.keys().copied().collect();
        // Prefer the leader (freshest state), else go round the voters.
        let target = node
            .leader()
            .filter(|id| voters.contains(id))
            .unwrap_or(voters[rotation % voters.len()]);
        let body = RequestBody::FetchState {
            after_index: node.applied_index(),
            wait_ms: POLL_WAIT.as_millis().try_into().unwrap_or(u64::MAX),
        };
        let peers = std::sync::Arc::clone(&node.peers);
        drop(node);
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            result = peers.call(target, body, POLL_WAIT + POLL_GRACE) => result,
        };
        let Some(node) = quorum.upgrade() else { return };
        let healthy = match result {
            Ok(ResponseBody::State {
                applied_index,
                leader,
                state,
            }) => {
                node.observed_leader
                    .store(leader.unwrap_or(u64::MAX), Ordering::Relaxed);
                if let Some(state) = state.filter(|_| applied_index > node.applied_index()) {
                    node.publisher
                        .publish(applied_index, std::sync::Arc::new(state));
                }
                true
            }
            Ok(other) => {
                tracing::warn!(target, response = %other.describe(), "unexpected answer to a state poll");
                false
            }
            Err(CallError::Refused { .. }) => false,
            Err(e) => {
                tracing::debug!(target, error = %e, "state poll failed");
                false
            }
        };
        drop(node);
        if healthy {
            failures = 0;
            continue;
        }
        node_forget_leader(&quorum);
        rotation += 1;
        failures += 1;
        let backoff = Duration::from_millis(50u64 << failures.min(5)).min(Duration::from_secs(1));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
    }
}

fn node_forget_leader<S: ReplicatedState, H: RequestHandler>(quorum: &Weak<Quorum<S, H>>) {
    if let Some(node) = quorum.upgrade() {
        node.observed_leader.store(u64::MAX, Ordering::Relaxed);
    }
}
