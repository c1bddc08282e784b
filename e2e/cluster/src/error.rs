//! The harness's one error type, so scenarios can `?`/`unwrap` with a readable message.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("strom-broker binary not found at {path}: {hint}")]
    BinaryMissing { path: PathBuf, hint: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{tool} not found at {path}: {hint}")]
    ToolMissing {
        tool: String,
        path: PathBuf,
        hint: String,
    },
    #[error("command `{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("network namespaces are unavailable: {0}")]
    NetnsUnavailable(String),
    #[error("timed out after {after:?} waiting for {what} (last observation: {last})")]
    Timeout {
        what: String,
        after: Duration,
        last: String,
    },
    #[error("kafka client: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("kafka protocol: {0}")]
    Protocol(String),
    #[error("{addr}: broker does not support {api} (at the versions this harness speaks)")]
    Unsupported { addr: String, api: String },
    /// strom-client's admin failed, or the broker refused (Kafka's code and message).
    #[error("{what} at broker {broker}: {source}")]
    Admin {
        what: String,
        broker: usize,
        #[source]
        source: strom_client::admin::AdminError,
    },
    #[error("admin http {url}: {detail}")]
    Http { url: String, detail: String },
    #[error("broker {0} is not running")]
    NotRunning(usize),
    #[error("broker {0} is still running")]
    StillRunning(usize),
    #[error("no broker with index {0}")]
    NoSuchBroker(i64),
    #[error("this cluster was started without network namespaces")]
    NotNamespaced,
    #[error("cluster did not start: {detail}\n{logs}")]
    StartFailed { detail: String, logs: String },
    #[error("replica data: {0}")]
    Segment(#[from] crate::segments::SegmentError),
}

impl HarnessError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> HarnessError {
        HarnessError::Io {
            what: what.into(),
            source,
        }
    }
}

pub type Result<T, E = HarnessError> = std::result::Result<T, E>;
