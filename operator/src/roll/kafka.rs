//! The roller's calls to brokers: Metadata, DescribeConfigs, DescribeQuorum,
//! IncrementalAlterConfigs and ElectLeaders through strom-client's `Admin`, and the admin
//! HTTP `GET /restart-safe`.
//!
//! The HTTP call is one GET of a small JSON answer from our own broker on the cluster
//! network, so it is written here over a tokio `TcpStream` (HTTP/1.1, `Connection: close`,
//! bounded size and time) rather than adding a client crate such as reqwest, whose TLS,
//! pooling and redirect machinery the roller would never use.
//!
//! `BrokerAdmin` is a trait so reconcile tests can stand in canned cluster states; the
//! real implementation is `KafkaAdmin`.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use strom_client::admin::{self, Admin, ConfigOp};
use strom_client::admin_cluster::{ConfigResource, ElectionType};
use strom_client::Security;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::safety::{
    parse_restart_safe, AnswerError, PartitionState, QuorumState, RestartSafeAnswer, VoterState,
};
use super::triggers::ConfigChange;

const MIN_ISR_KEY: &str = "min.insync.replicas";
/// Largest `/restart-safe` answer read; the real one is a few hundred bytes.
const MAX_HTTP_ANSWER: usize = 64 * 1024;
const CLIENT_ID: &str = "strom-operator";

/// Where the roller reaches one broker.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub id: i32,
    /// `host:port` of a Kafka listener (the REPLICATION one in pods).
    pub kafka: String,
    /// `host:port` of the admin HTTP listener.
    pub admin: String,
    /// What the Kafka listener asks of the operator.
    pub security: Security,
}

/// The cluster as the brokers describe it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterView {
    /// The active controller: the quorum leader, else Metadata's controller id.
    pub controller: Option<i32>,
    pub partitions: Vec<PartitionState>,
    /// Effective `min.insync.replicas` per topic.
    pub min_isr: BTreeMap<String, i32>,
    pub quorum: Option<QuorumState>,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A Kafka call failed: no broker reachable, refused, timed out.
    #[error(transparent)]
    Kafka(#[from] admin::AdminError),
    #[error("GET http://{addr}{path}: {message}")]
    Http {
        addr: String,
        path: &'static str,
        message: String,
    },
    #[error(transparent)]
    Answer(#[from] AnswerError),
}

impl AdminError {
    /// Kafka's refusal (the first, for several), when that is what this is.
    pub fn refused(&self) -> Option<&admin::Refused> {
        match self {
            AdminError::Kafka(e) => e.refused(),
            _ => None,
        }
    }
}

/// The broker calls the roller makes.
pub trait BrokerAdmin: Send + Sync {
    /// Partitions, ISRs, per-topic `min.insync.replicas` and the quorum, from the first
    /// of `brokers` that answers.
    fn describe(&self, brokers: Vec<Endpoint>) -> BoxFuture<'_, Result<ClusterView, AdminError>>;
    /// The broker's own `/restart-safe` verdict.
    fn restart_safe(
        &self,
        broker: Endpoint,
    ) -> BoxFuture<'_, Result<RestartSafeAnswer, AdminError>>;
    /// Per-broker dynamic configuration (IncrementalAlterConfigs on BROKER `id`), sent to
    /// that broker as Kafka's admin client does.
    fn alter_broker_config(
        &self,
        broker: Endpoint,
        changes: Vec<ConfigChange>,
    ) -> BoxFuture<'_, Result<(), AdminError>>;
    /// ElectLeaders PREFERRED for these partitions.
    fn elect_preferred(
        &self,
        brokers: Vec<Endpoint>,
        partitions: Vec<(String, i32)>,
    ) -> BoxFuture<'_, Result<(), AdminError>>;
}

/// The real thing: strom-client's `Admin`, one connection per call.
#[derive(Clone, Debug)]
pub struct KafkaAdmin {
    pub timeout: Duration,
}

impl Default for KafkaAdmin {
    fn default() -> Self {
        KafkaAdmin {
            timeout: Duration::from_secs(10),
        }
    }
}

impl KafkaAdmin {
    async fn connect(&self, broker: &Endpoint) -> Result<Admin, admin::AdminError> {
        Admin::connect_with(
            std::slice::from_ref(&broker.kafka),
            &broker.security,
            CLIENT_ID,
            self.timeout,
            self.timeout,
        )
        .await
    }

    /// The first of `brokers` that accepts a connection; each is tried, whatever the
    /// others' failures, since each endpoint brings its own security.
    async fn any(&self, brokers: &[Endpoint]) -> Result<Admin, admin::AdminError> {
        let mut last = None;
        for broker in brokers {
            match self.connect(broker).await {
                Ok(admin) => return Ok(admin),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| admin::AdminError::Unreachable {
            addresses: Vec::new(),
            last: "no brokers to ask".to_string(),
        }))
    }

    /// Every call is bounded as a whole: a broker that accepts and then hangs must not
    /// hang the reconcile.
    async fn timed<T>(
        &self,
        api: &'static str,
        call: impl std::future::Future<Output = Result<T, AdminError>>,
    ) -> Result<T, AdminError> {
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| admin::AdminError::Timeout {
                api,
                after: self.timeout,
            })?
    }

    async fn describe_inner(&self, brokers: Vec<Endpoint>) -> Result<ClusterView, AdminError> {
        let mut admin = self.any(&brokers).await?;
        let view = admin.describe_partitions(None).await?;
        let partitions = view
            .partitions()
            .map(|p| PartitionState {
                topic: p.topic.clone(),
                partition: p.partition,
                replicas: p.replicas.clone(),
                isr: p.isr.clone(),
                leader: p.leader.unwrap_or(-1),
            })
            .collect();
        let topics: Vec<String> = view.topics.keys().cloned().collect();
        let min_isr = min_isr(&mut admin, &topics).await?;
        // A failing DescribeQuorum leaves the quorum unknown, which blocks voter restarts
        // rather than failing the whole description.
        let quorum = match admin.describe_quorum().await {
            Ok(quorum) => Some(QuorumState {
                leader: quorum.leader,
                voters: quorum
                    .voters
                    .iter()
                    .map(|v| VoterState {
                        id: v.id,
                        last_caught_up_ms: v.last_caught_up_ms.unwrap_or(-1),
                    })
                    .collect(),
            }),
            Err(e) => {
                tracing::warn!(error = %e, "DescribeQuorum failed");
                None
            }
        };
        Ok(ClusterView {
            controller: quorum.as_ref().map(|q| q.leader).or(view.controller),
            partitions,
            min_isr,
            quorum,
        })
    }

    async fn alter_inner(
        &self,
        broker: Endpoint,
        changes: Vec<ConfigChange>,
    ) -> Result<(), AdminError> {
        let mut admin = self.connect(&broker).await?;
        let ops = changes
            .into_iter()
            .map(|(key, value)| match value {
                Some(value) => ConfigOp::Set { key, value },
                None => ConfigOp::Delete { key },
            })
            .collect();
        let outcomes = admin
            .alter_broker_configs(&BTreeMap::from([(broker.id, ops)]))
            .await?;
        admin::all_accepted(outcomes)?;
        Ok(())
    }

    async fn elect_inner(
        &self,
        brokers: Vec<Endpoint>,
        partitions: Vec<(String, i32)>,
    ) -> Result<(), AdminError> {
        if partitions.is_empty() {
            return Ok(());
        }
        let mut admin = self.any(&brokers).await?;
        elect_preferred_on(&mut admin, &partitions).await?;
        Ok(())
    }
}

/// ElectLeaders PREFERRED for `partitions`: the one election call both the roller and
/// the scale step make. Returns the partitions whose leadership moved. "Election not
/// needed" and "preferred leader not available" are not failures: the leader is already
/// right, or the preferred replica is not in the ISR yet and a later call (or the
/// brokers' own leader rebalance) moves it.
pub(crate) async fn elect_preferred_on(
    admin: &mut Admin,
    partitions: &[(String, i32)],
) -> Result<Vec<(String, i32)>, admin::AdminError> {
    if partitions.is_empty() {
        return Ok(Vec::new());
    }
    let outcomes = admin
        .elect_leaders(ElectionType::Preferred, Some(partitions))
        .await?;
    let later = |r: &admin::Refused| {
        r.error() == Some(kafka_protocol::ResponseError::PreferredLeaderNotAvailable)
    };
    let outcomes = outcomes
        .into_iter()
        .filter(|(_, outcome)| !outcome.as_ref().is_err_and(later))
        .collect();
    Ok(admin::all_accepted(outcomes)?
        .into_iter()
        .filter(|(_, election)| *election == strom_client::admin_cluster::Election::Elected)
        .map(|(tp, _)| tp)
        .collect())
}

impl BrokerAdmin for KafkaAdmin {
    fn describe(&self, brokers: Vec<Endpoint>) -> BoxFuture<'_, Result<ClusterView, AdminError>> {
        Box::pin(self.timed("Metadata", self.describe_inner(brokers)))
    }

    fn restart_safe(
        &self,
        broker: Endpoint,
    ) -> BoxFuture<'_, Result<RestartSafeAnswer, AdminError>> {
        Box::pin(self.timed("restart-safe", async move {
            let (status, body) = http_get(&broker.admin, "/restart-safe").await?;
            Ok(parse_restart_safe(broker.id, status, &body)?)
        }))
    }

    fn alter_broker_config(
        &self,
        broker: Endpoint,
        changes: Vec<ConfigChange>,
    ) -> BoxFuture<'_, Result<(), AdminError>> {
        Box::pin(self.timed("IncrementalAlterConfigs", self.alter_inner(broker, changes)))
    }

    fn elect_preferred(
        &self,
        brokers: Vec<Endpoint>,
        partitions: Vec<(String, i32)>,
    ) -> BoxFuture<'_, Result<(), AdminError>> {
        Box::pin(self.timed("ElectLeaders", self.elect_inner(brokers, partitions)))
    }
}

/// Effective `min.insync.replicas` of each topic (its override or the broker default, as
/// DescribeConfigs reports it); a topic Kafka will not describe is left out.
async fn min_isr(
    admin: &mut Admin,
    topics: &[String],
) -> Result<BTreeMap<String, i32>, AdminError> {
    let resources: Vec<ConfigResource> = topics
        .iter()
        .map(|t| ConfigResource::Topic(t.clone()))
        .collect();
    let configs = admin
        .describe_configs(&resources, Some(&[MIN_ISR_KEY.to_string()]))
        .await?;
    Ok(configs
        .into_iter()
        .filter_map(|(resource, outcome)| {
            let ConfigResource::Topic(topic) = resource else {
                return None;
            };
            let value = outcome
                .ok()?
                .get(MIN_ISR_KEY)?
                .value
                .as_ref()?
                .parse()
                .ok()?;
            Some((topic, value))
        })
        .collect())
}

/// `GET path` over HTTP/1.1 on `addr`; the status code and the body.
pub async fn http_get(addr: &str, path: &'static str) -> Result<(u16, String), AdminError> {
    let fail = |message: String| AdminError::Http {
        addr: addr.to_string(),
        path,
        message,
    };
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut raw = Vec::new();
    (&mut stream)
        .take(MAX_HTTP_ANSWER as u64 + 1)
        .read_to_end(&mut raw)
        .await
        .map_err(|e| fail(e.to_string()))?;
    if raw.len() > MAX_HTTP_ANSWER {
        return Err(fail(format!("answer larger than {MAX_HTTP_ANSWER} bytes")));
    }
    parse_http_answer(&raw).map_err(fail)
}

/// Status code and body of an HTTP/1.x answer; a chunked body is de-chunked.
pub fn parse_http_answer(raw: &[u8]) -> Result<(u16, String), String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| "no end of headers".to_string())?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| "no status line".to_string())?;
    let chunked = lines.any(|l| {
        let lower = l.to_ascii_lowercase();
        lower.starts_with("transfer-encoding:") && lower.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> Result<String, String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body
            .split_once("\r\n")
            .ok_or_else(|| "truncated chunk size".to_string())?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size:?}"))?;
        if size == 0 {
            return Ok(out);
        }
        let chunk = rest
            .get(..size)
            .ok_or_else(|| "truncated chunk".to_string())?;
        out.push_str(chunk);
        body = rest.get(size..).unwrap_or("").trim_start_matches("\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_answers_parse_plain_and_chunked() {
        let plain = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_http_answer(plain), Ok((503, "{}".to_string())));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n";
        assert_eq!(
            parse_http_answer(chunked),
            Ok((200, "{\"a\":1}".to_string()))
        );
        assert!(parse_http_answer(b"garbage").is_err());
        assert!(
            parse_http_answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
                .is_err()
        );
    }
}
