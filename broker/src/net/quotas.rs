//! Connection counting for `max.connections` and `max.connections.per.ip`, with Kafka's
//! behaviour at each limit: over the broker-wide limit the acceptor waits until a
//! connection closes (new clients queue in the listen backlog), over a per-IP limit the new
//! connection is accepted and closed at once. The connection creation rates
//! (`max.connection.creation.rate`) are counted here too (`creation_rate`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use thiserror::Error;
use tokio::sync::Notify;

use super::creation_rate::CreationRates;
use crate::config::BrokerConfig;
use crate::config::ConnectionLimits;
use crate::metrics::ConnectionMetrics;

/// How often the acceptor may warn that it is blocked on `max.connections`.
const BLOCKED_WARNING_INTERVAL: Duration = Duration::from_secs(30);

#[derive(Debug, Error, PartialEq)]
#[error("{ip} already has the configured maximum of {limit} connections")]
pub struct TooManyFromIp {
    pub ip: IpAddr,
    pub limit: u32,
}

/// One broker's connection counts, shared by all its listeners.
#[derive(Debug)]
pub struct ConnectionQuotas {
    limits: ConnectionLimits,
    /// Kafka's protected listener: with more than one listener, inter-broker connections
    /// count towards `max.connections` but never wait for it, so replication and the
    /// controller's traffic are not starved by clients.
    protected_listener: Option<String>,
    counts: Mutex<Counts>,
    creation: CreationRates,
    freed: Notify,
    last_blocked_warning: Mutex<Option<Instant>>,
    /// Connections closed since memory was last handed back to the OS (`trim`).
    closed_since_trim: AtomicU64,
}

#[derive(Debug, Default)]
struct Counts {
    total: u32,
    per_ip: HashMap<IpAddr, u32>,
}

/// A counted place under `max.connections`, taken before `accept`. Dropping it frees the
/// place (a rejected or failed accept).
#[derive(Debug)]
pub struct Permit {
    quotas: Arc<ConnectionQuotas>,
}

/// A served connection's place under both limits; released when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    _permit: Permit,
    ip: IpAddr,
}

impl ConnectionQuotas {
    pub fn new(limits: ConnectionLimits, protected_listener: Option<String>) -> Self {
        ConnectionQuotas {
            creation: CreationRates::new(&limits, protected_listener.clone()),
            limits,
            protected_listener,
            counts: Mutex::new(Counts::default()),
            freed: Notify::new(),
            last_blocked_warning: Mutex::new(None),
            closed_since_trim: AtomicU64::new(0),
        }
    }

    /// Counts a connection `listener` accepted against `max.connection.creation.rate`
    /// (broker-wide and the listener's); how long to hold it before serving it.
    pub fn creation_throttle(&self, listener: &str, now_ms: i64) -> Duration {
        self.creation.record(listener, now_ms)
    }

    /// Open connections counted towards `max.connections`.
    pub fn total(&self) -> u32 {
        self.counts.lock().total
    }

    /// Takes a place under `max.connections` for the next connection `listener` accepts,
    /// waiting until one is free (a protected listener never waits). The time spent
    /// waiting is added to the acceptor-blocked metric.
    pub async fn acquire(self: &Arc<Self>, listener: &str, metrics: &ConnectionMetrics) -> Permit {
        let protected = self.protected_listener.as_deref() == Some(listener);
        let mut blocked_since: Option<Instant> = None;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before checking, so a release between the check and the wait
            // still wakes us.
            freed.as_mut().enable();
            {
                let mut counts = self.counts.lock();
                if protected || counts.total < self.limits.max_connections {
                    counts.total += 1;
                    if let Some(since) = blocked_since {
                        metrics.acceptor_blocked(listener, since.elapsed());
                    }
                    return Permit {
                        quotas: self.clone(),
                    };
                }
            }
            if blocked_since.is_none() {
                blocked_since = Some(Instant::now());
                self.warn_blocked(listener);
            }
            freed.await;
        }
    }

    fn warn_blocked(&self, listener: &str) {
        let mut last = self.last_blocked_warning.lock();
        if last.is_some_and(|t| t.elapsed() < BLOCKED_WARNING_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        tracing::warn!(
            listener,
            max_connections = self.limits.max_connections,
            "max.connections reached: not accepting new connections until one closes"
        );
    }

    /// True, and the count restarts, when at least `min` connections closed since the
    /// last time this returned true (for the memory trimmer).
    pub fn take_closed_since_trim(&self, min: u64) -> bool {
        self.closed_since_trim
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n >= min).then_some(0)
            })
            .is_ok()
    }

    fn release(&self) {
        {
            let mut counts = self.counts.lock();
            counts.total = counts.total.saturating_sub(1);
        }
        self.freed.notify_waiters();
    }
}

impl Permit {
    /// Admits a connection from `ip`, or refuses it when `ip` is at its limit.
    pub fn admit(self, ip: IpAddr) -> Result<ConnectionSlot, TooManyFromIp> {
        let ip = ip.to_canonical();
        let limit = self.quotas.limits.per_ip_limit(ip);
        {
            let mut counts = self.quotas.counts.lock();
            let n = counts.per_ip.entry(ip).or_insert(0);
            if *n >= limit {
                if *n == 0 {
                    counts.per_ip.remove(&ip);
                }
                return Err(TooManyFromIp { ip, limit });
            }
            *n += 1;
        }
        Ok(ConnectionSlot { _permit: self, ip })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        // A slot's drop releases its IP first (below); the place itself goes here.
        self.quotas.release();
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let quotas = &self._permit.quotas;
        {
            let mut counts = quotas.counts.lock();
            if let Some(n) = counts.per_ip.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    counts.per_ip.remove(&self.ip);
                }
            }
        }
        quotas.closed_since_trim.fetch_add(1, Ordering::Relaxed);
    }
}

/// The quotas every listener of a broker configured by `config` shares, with the task that
/// gives memory back after closes (it ends when the quotas are dropped).
pub fn for_config(config: &BrokerConfig) -> Arc<ConnectionQuotas> {
    let protected =
        (config.listeners.len() > 1).then(|| config.cluster.inter_broker_listener.clone());
    let quotas = Arc::new(ConnectionQuotas::new(config.connections.clone(), protected));
    super::trim::spawn(Arc::downgrade(&quotas));
    quotas
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas(max: u32, per_ip: u32) -> Arc<ConnectionQuotas> {
        let limits = ConnectionLimits {
            max_connections: max,
            max_per_ip: per_ip,
            per_ip_overrides: [("127.0.0.9".parse().unwrap(), 1)].into_iter().collect(),
            ..ConnectionLimits::default()
        };
        Arc::new(ConnectionQuotas::new(limits, Some("REPLICATION".into())))
    }

    fn metrics() -> ConnectionMetrics {
        crate::metrics::Metrics::new().connection_events().clone()
    }

    #[tokio::test]
    async fn per_ip_limit_and_override() {
        let q = quotas(100, 2);
        let m = metrics();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = q.acquire("PLAINTEXT", &m).await.admit(ip).unwrap();
        let _b = q.acquire("PLAINTEXT", &m).await.admit(ip).unwrap();
        let refused = q.acquire("PLAINTEXT", &m).await.admit(ip).unwrap_err();
        assert_eq!(refused.limit, 2);
        assert_eq!(q.total(), 2, "a refused connection frees its place");
        drop(a);
        let _c = q.acquire("PLAINTEXT", &m).await.admit(ip).unwrap();
        let other: IpAddr = "127.0.0.9".parse().unwrap();
        let _d = q.acquire("PLAINTEXT", &m).await.admit(other).unwrap();
        assert!(q.acquire("PLAINTEXT", &m).await.admit(other).is_err());
    }

    #[tokio::test]
    async fn max_connections_waits_for_a_close() {
        let q = quotas(1, 10);
        let m = metrics();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let first = q.acquire("PLAINTEXT", &m).await.admit(ip).unwrap();
        let waiting = tokio::spawn({
            let q = q.clone();
            let m = m.clone();
            async move { q.acquire("PLAINTEXT", &m).await.admit(ip).map(|_| ()) }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        // The protected listener does not wait.
        let _replication = q.acquire("REPLICATION", &m).await;
        drop(first);
        drop(_replication);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the acceptor resumes after a close")
            .unwrap()
            .unwrap();
    }
}
