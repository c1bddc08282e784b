//! An in-process broker without sockets, for the fuzz target and the malformed-frame
//! corpus: frames go straight into the same `protocol::handle_frame` a connection uses.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::broker::Broker;
use crate::config::{BrokerConfig, Properties};
use crate::protocol::{self, ConnectionContext, Reply};
use crate::server;

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
