//! In-process brokers for tests and tools: one without sockets, for the fuzz target and
//! the malformed-frame corpus (frames go straight into the same `protocol::handle_frame`
//! a connection uses), and one serving PLAINTEXT on loopback for other crates' tests.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use bytes::Bytes;

use crate::broker::Broker;
use crate::config::{BrokerConfig, Properties};
use crate::protocol::{self, ConnectionContext, Reply};
use crate::server;

/// A single-node broker serving PLAINTEXT on a free loopback port, with its data under
/// `dir`; returned with the `host:port` clients use once it is registered and unfenced
/// (before its first heartbeat unfences it, it leads nothing and creating a topic fails
/// with "all brokers are currently fenced", which a loaded machine made visible).
pub async fn start_plaintext(
    dir: &Path,
    within: Duration,
) -> anyhow::Result<(server::Running, String)> {
    start_plaintext_with(dir, &[], within).await
}

/// [`start_plaintext`] with extra broker properties, e.g. an authorizer and super users.
pub async fn start_plaintext_with(
    dir: &Path,
    extra: &[(&str, &str)],
    within: Duration,
) -> anyhow::Result<(server::Running, String)> {
    let mut props = Properties::new();
    props.insert("log.dirs".into(), dir.display().to_string());
    props.insert("listeners".into(), "PLAINTEXT://127.0.0.1:0".into());
    // A free port rather than the fixed default 9644, so two of these brokers (two tests
    // of one binary running in parallel) can run side by side.
    props.insert("admin.listener".into(), "127.0.0.1:0".into());
    for (k, v) in extra {
        props.insert(k.to_string(), v.to_string());
    }
    let (config, _) = BrokerConfig::from_properties(props)?;
    let running = server::start(config, true).await?;
    let address = running
        .addresses
        .iter()
        .find_map(|a| a.strip_prefix("PLAINTEXT://"))
        .context("the broker has no PLAINTEXT listener")?
        .to_string();
    let mut member = running.broker.membership.subscribe();
    tokio::time::timeout(within, member.wait_for(|m| m.registered && !m.fenced))
        .await
        .with_context(|| format!("the broker was not unfenced within {within:?}"))??;
    Ok((running, address))
}

pub struct FrameHarness {
    broker: Arc<Broker>,
    runtime: tokio::runtime::Runtime,
    connection: ConnectionContext,
    _running: server::Running,
}

impl FrameHarness {
    /// A broker with its data under `dir` and the given extra properties.
    pub fn new(dir: &Path, extra: &[(&str, &str)]) -> anyhow::Result<FrameHarness> {
        let mut props = Properties::new();
        props.insert("log.dirs".into(), dir.display().to_string());
        for (k, v) in extra {
            props.insert(k.to_string(), v.to_string());
        }
        let (config, _) = BrokerConfig::from_properties(props)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // Without network, and marked as shutting down from the start, so a Fetch long
        // poll returns at once instead of stalling a fuzzer on a huge max_wait_ms.
        let running = runtime.block_on(async {
            let running = server::start(config, false).await?;
            let mut member = running.broker.membership.subscribe();
            member.wait_for(|m| m.registered && !m.fenced).await?;
            anyhow::Ok(running)
        })?;
        let broker = running.broker.clone();
        Ok(FrameHarness {
            broker,
            _running: running,
            runtime,
            connection: ConnectionContext {
                listener: "PLAINTEXT".into(),
                peer: ([127, 0, 0, 1], 1).into(),
                principal: crate::protocol::ANONYMOUS.into(),
            },
        })
    }

    /// Handles one frame body (no size prefix) as a connection would.
    pub fn handle(&self, frame: &[u8]) -> Reply {
        let frame = Bytes::copy_from_slice(frame);
        self.runtime.block_on(protocol::handle_frame(
            &self.broker,
            &self.connection,
            frame,
        ))
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }
}
