//! A multi-broker cluster of real `strom-broker` processes on loopback: the first three
//! nodes (or fewer) vote in the metadata quorum, the rest are broker-only. All processes
//! start together (a voter is not ready until the quorum has formed) and are killed when
//! the cluster is dropped. Plus a typed one-shot request helper for the raw protocol, and
//! topic placement through strom-client's admin.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Buf;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest};
use kafka_protocol::protocol::{Decodable, Request};
use strom_client::admin::{Admin, PlacedTopic};

use super::{frame_with, free_port, http_get, read_response, wait_for};

const MAX_VOTERS: usize = 3;

/// One node's ports and data; `child` is None while it is stopped.
pub struct Node {
    pub id: i32,
    pub port: u16,
    /// A second port for a layout's own inter-broker listener (unused by the default).
    pub internal_port: u16,
    pub admin_port: u16,
    pub data_dir: PathBuf,
    child: Option<Child>,
    /// The properties it was started with, so it can be started again.
    props: Vec<(String, String)>,
}

impl Node {
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The node's stderr so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.with_extension("log")).unwrap_or_default()
    }

    /// The controller port of a voter, from its `listeners`.
    pub fn controller_port(&self) -> Option<u16> {
        let listeners = &self.props.iter().find(|(k, _)| k == "listeners")?.1;
        listeners
            .split(',')
            .find_map(|l| l.strip_prefix("CONTROLLER://"))
            .and_then(|a| a.rsplit_once(':'))
            .and_then(|(_, p)| p.parse().ok())
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    temp: tempfile::TempDir,
}

/// Runs before a node's first start with its data dir and properties.
pub type Prepare<'a> = &'a dyn Fn(&Path, &[(String, String)]);

/// A cluster's own listeners and preparation, instead of PLAINTEXT plus CONTROLLER.
pub struct Layout<'a> {
    /// The `listeners` value of a node from its client port, its internal port and, on a
    /// voter, its controller port.
    pub listeners: &'a dyn Fn(u16, u16, Option<u16>) -> String,
    /// Runs before a node's first start with its data dir and properties (to `format` it).
    pub prepare: Prepare<'a>,
}

impl Cluster {
    /// Starts `size` brokers (ids 0..size) with `extra` properties on each, and waits
    /// until every one answers `/ready`.
    /// A node whose port another test took between free_port() and its bind exits at
    /// once; the whole cluster then starts again on new ports.
    pub fn start(size: usize, extra: &[(&str, &str)]) -> Cluster {
        Self::start_with(size, extra, None)
    }

    /// `start` with the listeners and preparation of `layout`.
    pub fn start_with(size: usize, extra: &[(&str, &str)], layout: Option<&Layout>) -> Cluster {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(size, extra, layout) {
                Ok(cluster) => return cluster,
                Err(logs) if logs.contains("in use") => last = logs,
                Err(logs) => panic!("a broker exited before it was ready:\n{logs}"),
            }
        }
        panic!("no free ports for the cluster after three tries:\n{last}");
    }

    fn try_start(
        size: usize,
        extra: &[(&str, &str)],
        layout: Option<&Layout>,
    ) -> Result<Cluster, String> {
        let temp = tempfile::tempdir().expect("temp dir");
        let voters: Vec<(i32, u16)> = (0..size.min(MAX_VOTERS))
            .map(|i| (i as i32, free_port()))
            .collect();
        let voter_list = voters
            .iter()
            .map(|(id, port)| format!("{id}@127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            nodes: Vec::with_capacity(size),
            temp,
        };
        for i in 0..size {
            let id = i as i32;
            let mut node = Node {
                id,
                port: free_port(),
                internal_port: free_port(),
                admin_port: free_port(),
                data_dir: cluster.temp.path().join(format!("b{i}")),
                child: None,
                props: Vec::new(),
            };
            let mut listeners = format!("PLAINTEXT://127.0.0.1:{}", node.port);
            let mut props = vec![
                ("node.id".to_string(), id.to_string()),
                ("controller.quorum.voters".to_string(), voter_list.clone()),
                ("log.dirs".to_string(), node.data_dir.display().to_string()),
                (
                    "admin.listener".to_string(),
                    format!("127.0.0.1:{}", node.admin_port),
                ),
                (
                    "broker.heartbeat.interval.ms".to_string(),
                    "500".to_string(),
                ),
                ("broker.session.timeout.ms".to_string(), "3000".to_string()),
                ("default.replication.factor".to_string(), "3".to_string()),
                ("min.insync.replicas".to_string(), "2".to_string()),
            ];
            let controller_port = voters.iter().find(|(v, _)| *v == id).map(|(_, p)| *p);
            match controller_port {
                Some(cport) => listeners.push_str(&format!(",CONTROLLER://127.0.0.1:{cport}")),
                None => props.push(("process.roles".to_string(), "broker".to_string())),
            }
            if let Some(layout) = layout {
                listeners = (layout.listeners)(node.port, node.internal_port, controller_port);
            }
            props.push(("listeners".to_string(), listeners));
            props.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            if let Some(layout) = layout {
                (layout.prepare)(&node.data_dir, &props);
            }
            node.props = props;
            node.child = Some(spawn(&node, &node.props));
            cluster.nodes.push(node);
        }
        cluster.wait_ready()?;
        Ok(cluster)
    }

    /// Waits until every node answers `/ready`; Err(logs) as soon as one has exited.
    fn wait_ready(&mut self) -> Result<(), String> {
        for i in 0..self.nodes.len() {
            let admin = self.nodes[i].admin_port;
            let what = format!("broker {} readiness", self.nodes[i].id);
            let exited = wait_for(&what, Duration::from_secs(90), || {
                if http_get(admin, "/ready").map(|(status, _)| status) == Some(200) {
                    return Some(false);
                }
                let child = self.nodes[i].child.as_mut()?;
                matches!(child.try_wait(), Ok(Some(_))).then_some(true)
            });
            if exited {
                return Err(self.logs());
            }
        }
        Ok(())
    }

    /// Starts a stopped node again with its data and properties, without waiting for it:
    /// its readiness includes catching up, which the caller may be slowing on purpose.
    pub fn launch_node(&mut self, id: i32) {
        let node = &mut self.nodes[id as usize];
        assert!(node.child.is_none(), "broker {id} is running");
        node.child = Some(spawn(node, &node.props));
    }

    /// Kills every node, then starts them all again (a quorum needs its voters together).
    pub fn restart_all(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        for node in &mut self.nodes {
            node.child = Some(spawn(node, &node.props));
        }
        if let Err(logs) = self.wait_ready() {
            panic!("a broker exited before it was ready:\n{logs}");
        }
    }

    pub fn node(&self, id: i32) -> &Node {
        &self.nodes[id as usize]
    }

    /// Every node's log, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("===== broker {} =====\n{}", n.id, n.log()))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }
}

fn spawn(node: &Node, props: &[(String, String)]) -> Child {
    std::fs::create_dir_all(&node.data_dir).expect("data dir");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(node.data_dir.with_extension("log"))
        .expect("broker log file");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strom-broker"));
    for (k, v) in props {
        cmd.arg("--override").arg(format!("{k}={v}"));
    }
    cmd.stdout(Stdio::null()).stderr(log);
    cmd.spawn().expect("start strom-broker")
}

/// Sends one request at `version` on a fresh connection and returns the typed response.
pub fn call<R: Request>(port: u16, version: i16, request: &R) -> R::Response {
    let api_key = ApiKey::try_from(R::KEY).expect("a known api key");
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let buf = frame_with(api_key, 1, version, |buf| {
        request.encode(buf, version).expect("encode request")
    });
    stream.write_all(&buf).expect("send");
    let mut body = read_response(&mut stream, api_key, version, 1);
    let response = R::Response::decode(&mut body, version).expect("response body decodes");
    assert_eq!(body.remaining(), 0, "response has trailing bytes");
    response
}

/// CreateTopics (v7) for one topic, which must succeed.
pub fn create_topic_ok(port: u16, topic: CreatableTopic, timeout_ms: i32) {
    let name = topic.name.0.to_string();
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(timeout_ms)
        .with_topics(vec![topic]);
    let response = call(port, 7, &request);
    let result = &response.topics[0];
    assert_eq!(
        result.error_code, 0,
        "create {name}: {:?}",
        result.error_message
    );
}

/// Creates `topic` with one partition on exactly `replicas` (the first leads) through
/// strom-client's admin, which must succeed.
pub fn create_placed_topic(port: u16, topic: &str, replicas: &[i32]) {
    let timeout = Duration::from_secs(60);
    let placed = PlacedTopic {
        name: topic.to_string(),
        replicas: vec![replicas.to_vec()],
        configs: Default::default(),
    };
    let created = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(async {
            let address = format!("127.0.0.1:{port}");
            Admin::connect(&[address], "strom-test", timeout, timeout)
                .await?
                .create_placed_topics(&[placed])
                .await
        })
        .expect("CreateTopics");
    assert!(created[topic].is_ok(), "create {topic}: {created:?}");
}
