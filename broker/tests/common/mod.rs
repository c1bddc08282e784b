//! Test support: real `strom-broker` processes on free loopback ports with their own
//! temporary data dirs, killed when the test ends, plus a minimal raw Kafka client (built
//! on `kafka-protocol`) for requests that the high-level clients cannot shape.

#![allow(dead_code)]

pub mod cluster;
pub mod java_clients;
pub mod kafka;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

pub use strom_test_support::free_port;

/// Polls `check` until it returns Some or the deadline passes.
pub fn wait_for<T>(what: &str, timeout: Duration, check: impl FnMut() -> Option<T>) -> T {
    poll_until(timeout, check).unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

/// Polls `check` until it returns Some, or returns None once `timeout` has passed; for a
/// caller that has more to report than `wait_for`'s message (process logs, say).
pub fn poll_until<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// One broker process. Dropping it kills the process.
pub struct BrokerProcess {
    child: Option<Child>,
    pub port: u16,
    pub admin_port: u16,
    pub data_dir: PathBuf,
    extra: Vec<(String, String)>,
    /// RLIMIT_NOFILE (soft and hard) for the process, like `prlimit --nofile=N:N`.
    open_files: Option<u64>,
    _temp: Option<tempfile::TempDir>,
}

impl BrokerProcess {
    pub fn start(extra: &[(&str, &str)]) -> BrokerProcess {
        Self::start_limited(extra, None)
    }

    /// `start`, with the process's open-file limit set to `open_files` (soft and hard, so
    /// the broker cannot raise it).
    pub fn start_limited(extra: &[(&str, &str)], open_files: Option<u64>) -> BrokerProcess {
        Self::start_prepared(extra, open_files, |_| {})
    }

    /// `start`, after `prepare` has had the (not yet created) data dir, e.g. to run
    /// `strom-broker format` on it.
    pub fn start_prepared(
        extra: &[(&str, &str)],
        open_files: Option<u64>,
        prepare: impl FnOnce(&Path),
    ) -> BrokerProcess {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().join("data");
        prepare(&dir);
        let mut b = BrokerProcess {
            child: None,
            port: free_port(),
            admin_port: free_port(),
            data_dir: dir,
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            open_files,
            _temp: Some(temp),
        };
        // Another test may take a port between free_port() and the broker's bind; a first
        // start then picks new ports (a restart must keep its own).
        for _ in 0..3 {
            match b.spawn() {
                Ok(()) => return b,
                Err(log) if log.contains("in use") => {
                    b.port = free_port();
                    b.admin_port = free_port();
                }
                Err(log) => panic!("strom-broker exited before it was ready:\n{log}"),
            }
        }
        panic!(
            "no free ports for strom-broker after three tries:\n{}",
            b.log()
        );
    }

    /// Starts the process and waits until `/ready` answers 200. Err(log) if the process
    /// exits first; a panic with its log if it is not ready in time.
    fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.with_extension("log"))
            .expect("broker log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_strom-broker"));
        let listener = format!("PLAINTEXT://127.0.0.1:{}", self.port);
        cmd.arg("--override")
            .arg(format!("listeners={listener}"))
            .arg("--override")
            .arg(format!("log.dirs={}", self.data_dir.display()))
            .arg("--override")
            .arg(format!("admin.listener=127.0.0.1:{}", self.admin_port));
        for (k, v) in &self.extra {
            // `{PORT}` stands for the PLAINTEXT port, which is only known here.
            let v = v.replace("{PORT}", &self.port.to_string());
            cmd.arg("--override").arg(format!("{k}={v}"));
        }
        cmd.stdout(Stdio::null()).stderr(log);
        if let Some(limit) = self.open_files {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let rlim = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rlim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().expect("start strom-broker");
        // Generous: a loaded CI machine fsyncs slowly while other tests fill their disks.
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if http_get(self.admin_port, "/ready").map(|(status, _)| status) == Some(200) {
                self.child = Some(child);
                return Ok(());
            }
            if let Ok(Some(_)) = child.try_wait() {
                return Err(self.log());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("timed out waiting for broker readiness:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The broker's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's stderr so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.with_extension("log")).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status success.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the broker again on the same ports and data.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the broker before restarting it");
        if let Err(log) = self.spawn() {
            panic!("strom-broker exited before it was ready:\n{log}");
        }
    }

    pub fn metrics(&self) -> String {
        http_get(self.admin_port, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }

    /// The value of one metric series (name and labels) from `/metrics`; 0 when absent,
    /// as a counter that never moved is not yet exported.
    pub fn metric(&self, series: &str) -> f64 {
        metric_value(&self.metrics(), series).unwrap_or(0.0)
    }

    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.data_dir.join(format!("{topic}-{partition}"))
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A bare HTTP/1.0 GET; returns (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// The segment `.log` files of a partition, in offset order.
/// The value of the first sample of `series` (a metric name with its labels) in a
/// Prometheus text exposition.
pub fn metric_value(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The repository root (the workspace this crate sits in).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Apache Kafka 4.4's jars from `scripts/jvm-setup.sh`, if they are there. Without them
/// the JVM checks are skipped, unless STROM_REQUIRE_JVM=1 makes their absence a failure.
/// Found where jvm-setup and the launchers look: STROM_JVM_DIR, else <target>/jvm with
/// CARGO_TARGET_DIR honoured.
pub fn kafka_jars() -> Option<PathBuf> {
    let jvm_dir = match (
        std::env::var_os("STROM_JVM_DIR"),
        std::env::var_os("CARGO_TARGET_DIR"),
    ) {
        (Some(dir), _) => PathBuf::from(dir),
        (None, Some(target)) => repo_root().join(target).join("jvm"),
        (None, None) => repo_root().join("target/jvm"),
    };
    let lib = jvm_dir.join("lib");
    if lib.join("kafka-clients-4.4.0.jar").exists() {
        return Some(lib);
    }
    assert!(
        std::env::var("STROM_REQUIRE_JVM").as_deref() != Ok("1"),
        "STROM_REQUIRE_JVM=1 but {} has no Kafka jars (run scripts/jvm-setup.sh)",
        lib.display()
    );
    eprintln!("skipped: no Kafka jars under {}", lib.display());
    None
}

/// Runs the single-file Java program `broker/tests/jvm/<program>` (source-file mode) with
/// Kafka's jars from `lib` on the class path; its stdout, after asserting it exited 0.
pub fn run_java(lib: &Path, program: &str, args: &[&str]) -> String {
    let output = Command::new("java")
        .arg("-Xmx256m")
        .arg("-cp")
        .arg(format!("{}/*", lib.display()))
        .arg(repo_root().join("broker/tests/jvm").join(program))
        .args(args)
        .output()
        .expect("run java");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{program} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

// Each test file uses some of these.
#[allow(unused_imports)]
pub use strom_test_support::records::{encode_batch, now_ms, record};

/// A raw protocol connection for requests the high-level clients cannot shape.
pub struct RawClient {
    stream: TcpStream,
    correlation: i32,
}

impl RawClient {
    pub fn connect(port: u16) -> RawClient {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        RawClient {
            stream,
            correlation: 0,
        }
    }

    /// Sends a request without reading an answer.
    pub fn send_only(&mut self, version: i16, request: RequestKind) {
        self.correlation += 1;
        let buf = request_frame(self.correlation, version, &request);
        self.stream.write_all(&buf).expect("send");
    }

    /// Whether the broker closed the connection without sending anything more (waits up
    /// to the read timeout for the close).
    pub fn closed_by_broker(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        }
    }

    pub fn send(&mut self, version: i16, request: RequestKind) -> ResponseKind {
        let api_key = api_key_of(&request);
        self.correlation += 1;
        let buf = request_frame(self.correlation, version, &request);
        self.stream.write_all(&buf).expect("send");
        let mut body = read_response(&mut self.stream, api_key, version, self.correlation);
        let response =
            ResponseKind::decode(api_key, &mut body, version).expect("response body decodes");
        assert_eq!(body.remaining(), 0, "response has trailing bytes");
        response
    }
}

/// A whole request frame, size prefix included, as a client would send it.
pub fn request_frame(correlation: i32, version: i16, request: &RequestKind) -> BytesMut {
    frame_with(api_key_of(request), correlation, version, |buf| {
        request.encode(buf, version).expect("encode request")
    })
}

/// A request frame for `api_key` whose body `encode_body` writes after the header.
pub fn frame_with(
    api_key: ApiKey,
    correlation: i32,
    version: i16,
    encode_body: impl FnOnce(&mut BytesMut),
) -> BytesMut {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("strom-test")));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, api_key.request_header_version(version))
        .expect("encode header");
    encode_body(&mut buf);
    let size = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    buf
}

/// Reads one response frame and checks its header; returns the body after the header.
pub fn read_response(
    stream: &mut TcpStream,
    api_key: ApiKey,
    version: i16,
    correlation: i32,
) -> Bytes {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).expect("response size");
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut body).expect("response body");
    let mut body = Bytes::from(body);
    let header = ResponseHeader::decode(&mut body, api_key.response_header_version(version))
        .expect("response header");
    assert_eq!(header.correlation_id, correlation);
    body
}

fn api_key_of(request: &RequestKind) -> ApiKey {
    match request {
        RequestKind::ApiVersions(_) => ApiKey::ApiVersions,
        RequestKind::Produce(_) => ApiKey::Produce,
        RequestKind::Fetch(_) => ApiKey::Fetch,
        RequestKind::ListOffsets(_) => ApiKey::ListOffsets,
        RequestKind::Metadata(_) => ApiKey::Metadata,
        RequestKind::InitProducerId(_) => ApiKey::InitProducerId,
        RequestKind::OffsetForLeaderEpoch(_) => ApiKey::OffsetForLeaderEpoch,
        RequestKind::DescribeCluster(_) => ApiKey::DescribeCluster,
        RequestKind::IncrementalAlterConfigs(_) => ApiKey::IncrementalAlterConfigs,
        RequestKind::DeleteTopics(_) => ApiKey::DeleteTopics,
        RequestKind::FindCoordinator(_) => ApiKey::FindCoordinator,
        RequestKind::JoinGroup(_) => ApiKey::JoinGroup,
        RequestKind::SyncGroup(_) => ApiKey::SyncGroup,
        RequestKind::Heartbeat(_) => ApiKey::Heartbeat,
        RequestKind::LeaveGroup(_) => ApiKey::LeaveGroup,
        RequestKind::OffsetCommit(_) => ApiKey::OffsetCommit,
        RequestKind::OffsetFetch(_) => ApiKey::OffsetFetch,
        RequestKind::OffsetDelete(_) => ApiKey::OffsetDelete,
        RequestKind::ListGroups(_) => ApiKey::ListGroups,
        RequestKind::DescribeGroups(_) => ApiKey::DescribeGroups,
        RequestKind::DeleteGroups(_) => ApiKey::DeleteGroups,
        RequestKind::SaslHandshake(_) => ApiKey::SaslHandshake,
        RequestKind::SaslAuthenticate(_) => ApiKey::SaslAuthenticate,
        RequestKind::UpdateFeatures(_) => ApiKey::UpdateFeatures,
        other => panic!("add {other:?} to api_key_of"),
    }
}
