//! Client compatibility program for the `rdkafka` crate (librdkafka inside), following
//! `e2e/clients/CONTRACT.md`. `e2e/clients/run_compat.py` runs it three times against one
//! broker (phase one, broker restart, phase two, phase security); its last stdout line is
//! `COMPAT {"client": "rdkafka", "version": ..., "checks": {...}, "notes": {...}}`.
//!
//! Phase one: produce, idempotence and compression (read back with `assign`, no group),
//! consume + groups (three members of `--group`, then one leaves), the synchronous commit
//! and its read-back, 300 more messages left unconsumed (recorded in `--state`), and
//! static membership in `<group>-static`.
//! Phase two: the committed offsets survived the restart, and a member with
//! `auto.offset.reset=error` resumes exactly at them.
//! Phase security: 20 keyed messages produced and read back (no group) over the SASL_SSL
//! listener with SCRAM-SHA-512 and over the SSL listener with a client certificate; every
//! client of the phase gets the listener's settings through `Args::security`.
//!
//! The three group members are subscribed before anything is produced, so no member can
//! consume a message that a later rebalance hands to another member. The codec producers
//! run with `debug=msg`: librdkafka's "Produce MessageSet ... (..., gzip)" lines show that
//! batches really went out compressed (librdkafka silently falls back to no compression
//! when it thinks the broker lacks a codec, which a round trip cannot tell).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use clap::{Parser, ValueEnum};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

const CLIENT: &str = "rdkafka";
const PARTITIONS: i32 = 6;
const KEYS: usize = 60;
const N_ONE: usize = 600;
const N_IDEM: usize = 100;
const N_TWO: usize = 300;
const N_CODEC: usize = 10;
const N_SECURE: usize = 20;
const CODECS: [&str; 4] = ["gzip", "snappy", "lz4", "zstd"];
/// session.timeout.ms of every group member.
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// After a LeaveGroup the rest re-form sooner than the leaver's session could expire.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(8);
const PHASE_ONE_CAPS: [&str; 6] = [
    "produce",
    "consume",
    "groups",
    "static_membership",
    "compression",
    "idempotence",
];
const PHASE_TWO_CAPS: [&str; 1] = ["commit_resume"];
const SECURITY_CAPS: [&str; 2] = ["sasl_scram", "mtls"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Phase {
    One,
    Two,
    /// sasl_scram and mtls, against the SASL_SSL and SSL (mutual TLS) listeners
    Security,
}

/// Client compatibility program for the rdkafka crate (see e2e/clients/CONTRACT.md).
#[derive(Parser, Debug, Clone)]
struct Args {
    /// host:port of the broker
    #[arg(long)]
    bootstrap: String,
    /// main topic (auto-created with six partitions)
    #[arg(long)]
    topic: String,
    /// consumer group
    #[arg(long)]
    group: String,
    #[arg(long, value_enum)]
    phase: Phase,
    /// JSON file phase one writes and phase two reads
    #[arg(long)]
    state: PathBuf,
    /// give up (and print the COMPAT line with what is known) after this many seconds
    #[arg(long, default_value_t = 170)]
    deadline: u64,
    /// security phase: host:port of the SASL_SSL listener (SCRAM-SHA-512)
    #[arg(long)]
    sasl_bootstrap: Option<String>,
    /// security phase: host:port of the SSL listener that requires a client certificate
    #[arg(long)]
    mtls_bootstrap: Option<String>,
    /// security phase: PEM file of the CA that signed the broker's certificate
    #[arg(long)]
    ca: Option<String>,
    /// security phase: PEM file of the client certificate
    #[arg(long)]
    client_cert: Option<String>,
    /// security phase: PEM file of the client certificate's key
    #[arg(long)]
    client_key: Option<String>,
    /// security phase: SCRAM-SHA-512 user
    #[arg(long)]
    scram_user: Option<String>,
    /// security phase: SCRAM-SHA-512 password
    #[arg(long)]
    scram_password: Option<String>,
    /// librdkafka settings of every client (the security phase's listener)
    #[arg(skip)]
    security: Vec<(String, String)>,
}

// ---------------------------------------------------------------------------------------
// Report: the COMPAT line, shared with the watchdog thread.

#[derive(Default)]
struct Report {
    checks: BTreeMap<String, String>,
    notes: BTreeMap<String, String>,
    printed: bool,
}

type SharedReport = Arc<Mutex<Report>>;

fn lock(report: &SharedReport) -> std::sync::MutexGuard<'_, Report> {
    report
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn set(report: &SharedReport, cap: &str, outcome: Result<String>) {
    let mut r = lock(report);
    match outcome {
        Ok(note) => {
            say(&format!("{cap}: pass ({note})"));
            r.checks.insert(cap.into(), "pass".into());
            r.notes.insert(cap.into(), note);
        }
        Err(e) => {
            let note = format!("{e:#}");
            say(&format!("{cap}: FAIL: {note}"));
            r.checks.insert(cap.into(), "fail".into());
            r.notes.insert(cap.into(), note);
        }
    }
}

fn version() -> String {
    format!(
        "rdkafka {} / librdkafka {}",
        env!("STROM_RDKAFKA_CRATE_VERSION"),
        rdkafka::util::get_rdkafka_version().1
    )
}

/// Prints the COMPAT line once; capabilities of `expected` that were never decided are
/// reported failed with `missing_note`.
fn print_compat(report: &SharedReport, expected: &[&str], missing_note: &str) {
    let mut r = lock(report);
    if r.printed {
        return;
    }
    for cap in expected {
        if !r.checks.contains_key(*cap) {
            r.checks.insert((*cap).into(), "fail".into());
            r.notes.insert((*cap).into(), missing_note.into());
        }
    }
    let line = serde_json::json!({
        "client": CLIENT,
        "version": version(),
        "checks": r.checks,
        "notes": r.notes,
    });
    println!("COMPAT {line}");
    r.printed = true;
}

fn say(msg: &str) {
    use std::sync::OnceLock;
    static START: OnceLock<Instant> = OnceLock::new();
    let start = START.get_or_init(Instant::now);
    println!("[{:6.2}s] {msg}", start.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------------------
// Records, producing, reading back without a group.

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Rec {
    partition: i32,
    offset: i64,
    key: String,
    value: String,
}

fn rec_of<M: Message>(m: &M) -> Rec {
    Rec {
        partition: m.partition(),
        offset: m.offset(),
        key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
        value: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
    }
}

fn key_of(seq: usize) -> String {
    format!("key-{}", seq % KEYS)
}

fn batch(prefix: &str, n: usize) -> Vec<(String, String)> {
    batch_padded(prefix, n, "")
}

/// Codec messages carry a compressible tail: librdkafka sends a batch uncompressed when
/// compression would not make it smaller, which tiny values never are.
fn batch_padded(prefix: &str, n: usize, pad: &str) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (key_of(i), format!("{prefix}:{i}{pad}")))
        .collect()
}

fn base_config(args: &Args, client_id: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &args.bootstrap)
        .set("client.id", client_id)
        .set_log_level(RDKafkaLogLevel::Warning);
    for (k, v) in &args.security {
        cfg.set(k, v);
    }
    cfg
}

/// Logs librdkafka's warnings and errors to stderr, and records global errors.
#[derive(Default)]
struct Quiet {
    errors: Mutex<Vec<String>>,
}

impl ClientContext for Quiet {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        if (level as i32) <= RDKafkaLogLevel::Warning as i32 {
            eprintln!("librdkafka {level:?} {fac}: {message}");
        }
    }
    fn error(&self, error: KafkaError, reason: &str) {
        if let KafkaError::PartitionEOF(_) = error {
            return; // the end-of-partition events a reader asks for
        }
        eprintln!("librdkafka error: {error}: {reason}");
        if let Ok(mut e) = self.errors.lock() {
            e.push(format!("{error}: {reason}"));
        }
    }
}

impl ConsumerContext for Quiet {}

#[derive(Default)]
struct Deliveries {
    quiet: Quiet,
    ok: Mutex<Vec<Rec>>,
    failed: Mutex<Vec<String>>,
    /// With debug=msg: (messages, codec) of every batch as librdkafka sent it, and
    /// librdkafka's note when it falls back to no compression.
    batches: Mutex<Vec<(usize, String)>>,
    not_compressing: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        if let Some(batch) = sent_batch(message) {
            self.batches
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(batch);
        } else if let Some(i) = message.find("Broker does not support compression type") {
            *self
                .not_compressing
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(message[i..].to_string());
        }
        self.quiet.log(level, fac, message)
    }
    fn error(&self, error: KafkaError, reason: &str) {
        self.quiet.error(error, reason)
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => self
                .ok
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(rec_of(m)),
            Err((e, m)) => {
                let r = rec_of(m);
                self.failed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!("{} ({}): {e}", r.value, r.key));
            }
        }
    }
}

/// Produces `msgs` (key, value) to `topic` with `settings`, waits for every delivery
/// report, and returns the delivered records (with their partition and offset).
/// "... Produce MessageSet with 3 message(s) (727 bytes, ..., gzip)" -> (3, "gzip").
fn sent_batch(line: &str) -> Option<(usize, String)> {
    let rest = &line[line.find("Produce MessageSet with ")? + "Produce MessageSet with ".len()..];
    let n = rest.split(' ').next()?.parse().ok()?;
    let inner = rest.trim_end().strip_suffix(')')?;
    let codec = inner.rsplit(", ").next()?;
    Some((n, codec.to_string()))
}

/// What librdkafka put on the wire for a producer created with `debug=msg`.
#[derive(Default)]
struct WireLog {
    batches: Vec<(usize, String)>,
    not_compressing: Option<String>,
}

fn produce(
    args: &Args,
    topic: &str,
    settings: &[(&str, &str)],
    msgs: &[(String, String)],
) -> Result<Vec<Rec>> {
    produce_logged(args, topic, settings, msgs, None)
}

/// Like `produce`; with `wire`, librdkafka's msg debug log records each batch as sent.
fn produce_logged(
    args: &Args,
    topic: &str,
    settings: &[(&str, &str)],
    msgs: &[(String, String)],
    wire: Option<&mut WireLog>,
) -> Result<Vec<Rec>> {
    let mut cfg = base_config(args, "compat-rdkafka-producer");
    cfg.set("acks", "all").set("message.timeout.ms", "30000");
    if wire.is_some() {
        cfg.set("debug", "msg")
            .set_log_level(RDKafkaLogLevel::Debug);
    }
    for (k, v) in settings {
        cfg.set(*k, *v);
    }
    let producer: BaseProducer<Deliveries> = cfg
        .create_with_context(Deliveries::default())
        .context("creating the producer")?;
    for (key, value) in msgs {
        let mut record = BaseRecord::to(topic)
            .key(key.as_str())
            .payload(value.as_str());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r))
                    if Instant::now() < deadline =>
                {
                    record = r;
                    producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(e).with_context(|| format!("send {value} to {topic}")),
            }
        }
    }
    producer
        .flush(Duration::from_secs(40))
        .with_context(|| format!("flush of {} messages to {topic}", msgs.len()))?;
    let ctx = producer.context();
    let failed = ctx.failed.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if !failed.is_empty() {
        bail!(
            "{} of {} deliveries to {topic} failed, first: {}",
            failed.len(),
            msgs.len(),
            failed[0]
        );
    }
    if let Some(wire) = wire {
        wire.batches = ctx
            .batches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        wire.not_compressing = ctx
            .not_compressing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
    }
    let ok = ctx.ok.lock().unwrap_or_else(|p| p.into_inner()).clone();
    ensure!(
        ok.len() == msgs.len(),
        "{topic}: {} delivery reports for {} messages",
        ok.len(),
        msgs.len()
    );
    Ok(ok)
}

/// Waits until the broker's metadata shows `topic` with six partitions, each with a
/// leader. The metadata request of a producer auto-creates the topic.
fn ensure_topic(args: &Args, topic: &str) -> Result<()> {
    let producer: BaseProducer<Deliveries> = base_config(args, "compat-rdkafka-metadata")
        .set("allow.auto.create.topics", "true")
        .create_with_context(Deliveries::default())
        .context("creating the metadata client")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        match producer
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(5))
        {
            Ok(md) => {
                if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
                    let leaders = t.partitions().iter().filter(|p| p.leader() >= 0).count();
                    if t.error().is_none()
                        && t.partitions().len() == PARTITIONS as usize
                        && leaders == PARTITIONS as usize
                    {
                        return Ok(());
                    }
                    last = format!(
                        "error {:?}, {} partitions, {leaders} with a leader",
                        t.error(),
                        t.partitions().len()
                    );
                } else {
                    last = "topic absent from metadata".into();
                }
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("topic {topic} not available with {PARTITIONS} partitions after 20 s: {last}")
}

/// The admin client creates a 3-partition topic, which metadata then lists and describes
/// (three partitions with leaders).
fn admin_topic(args: &Args, name: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = base_config(args, "compat-rdkafka-admin")
        .create()
        .context("creating the admin client")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime for the admin calls")?;
    let topic = NewTopic::new(name, 3, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = runtime
        .block_on(admin.create_topics([&topic], &opts))
        .with_context(|| format!("CreateTopics {name}"))?;
    for r in results {
        if let Err((t, code)) = r {
            bail!("CreateTopics {t}: {code}");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        let listed = admin
            .inner()
            .fetch_metadata(None, Duration::from_secs(5))
            .map(|md| md.topics().iter().any(|t| t.name() == name));
        let described = admin
            .inner()
            .fetch_metadata(Some(name), Duration::from_secs(5))
            .map(|md| {
                md.topics()
                    .iter()
                    .find(|t| t.name() == name)
                    .map(|t| {
                        let mut led: Vec<i32> = t
                            .partitions()
                            .iter()
                            .filter(|p| p.leader() >= 0)
                            .map(|p| p.id())
                            .collect();
                        led.sort_unstable();
                        led
                    })
                    .unwrap_or_default()
            });
        match (listed, described) {
            (Ok(true), Ok(led)) if led == [0, 1, 2] => return Ok(()),
            (l, d) => last = format!("listed {l:?}, partitions with a leader {d:?}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("{name} created but not listed and described with 3 led partitions within 15 s: {last}")
}

/// Reads every partition of `topic` from the beginning to its end with `assign` (no group).
fn read_back(args: &Args, topic: &str) -> Result<Vec<Rec>> {
    // librdkafka's assign() needs a group.id, but assign() never joins the group.
    let consumer: BaseConsumer<Quiet> = base_config(args, "compat-rdkafka-reader")
        .set("group.id", format!("{}-reader", args.group))
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .create_with_context(Quiet::default())
        .context("creating the reader")?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .context("building the assignment")?;
    }
    consumer.assign(&tpl).context("assign")?;
    let mut out = Vec::new();
    let mut eof = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while eof.len() < PARTITIONS as usize {
        if Instant::now() > deadline {
            bail!(
                "reading {topic} back: only partitions {eof:?} reached their end within 30 s ({} messages read)",
                out.len()
            );
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                eof.remove(&m.partition());
                out.push(rec_of(&m));
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                eof.insert(p);
            }
            Some(Err(e)) => return Err(e).with_context(|| format!("reading {topic} back")),
        }
    }
    Ok(out)
}

/// Checks that `got` holds exactly the records of `want` (same partition, offset, key and
/// value), each once, and that each partition was read in increasing offset order.
fn same_records(what: &str, want: &[Rec], got: &[Rec]) -> Result<()> {
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for r in got {
        if let Some(prev) = last.insert(r.partition, r.offset) {
            ensure!(
                r.offset > prev,
                "{what}: partition {} read out of order: offset {} after {prev}",
                r.partition,
                r.offset
            );
        }
    }
    let want_set: BTreeSet<&Rec> = want.iter().collect();
    let mut seen: BTreeSet<&Rec> = BTreeSet::new();
    for r in got {
        ensure!(seen.insert(r), "{what}: {r:?} received twice");
    }
    let missing: Vec<_> = want_set.difference(&seen).collect();
    let extra: Vec<_> = seen.difference(&want_set).collect();
    ensure!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {} of {} records missing (first {:?}), {} unexpected (first {:?})",
        missing.len(),
        want.len(),
        missing.first(),
        extra.len(),
        extra.first()
    );
    Ok(())
}

/// Values with `prefix` must appear exactly once each, and in sequence order within
/// each partition.
fn once_in_order(what: &str, prefix: &str, n: usize, got: &[Rec]) -> Result<()> {
    let mut count: BTreeMap<usize, usize> = BTreeMap::new();
    let mut last_seq: BTreeMap<i32, usize> = BTreeMap::new();
    let head = format!("{prefix}:");
    let mut mine: Vec<(&Rec, &str)> = got
        .iter()
        .filter_map(|r| {
            r.value
                .strip_prefix(&head)
                .map(|rest| (r, rest.split(':').next().unwrap_or_default()))
        })
        .collect();
    mine.sort_by_key(|(r, _)| (r.partition, r.offset));
    for (r, seq) in mine {
        let seq: usize = seq
            .parse()
            .with_context(|| format!("{what}: bad value {:?}", r.value))?;
        *count.entry(seq).or_default() += 1;
        ensure!(
            r.key == key_of(seq),
            "{what}: {} has key {:?}",
            r.value,
            r.key
        );
        if let Some(prev) = last_seq.insert(r.partition, seq) {
            ensure!(
                seq > prev,
                "{what}: partition {} holds {prefix}:{seq} after {prefix}:{prev}",
                r.partition
            );
        }
    }
    let dups: Vec<_> = count
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(s, c)| (*s, *c))
        .collect();
    ensure!(
        dups.is_empty(),
        "{what}: duplicated {prefix} messages (seq, copies): {dups:?}"
    );
    let missing: Vec<_> = (0..n).filter(|s| !count.contains_key(s)).collect();
    ensure!(
        missing.is_empty(),
        "{what}: {prefix} messages missing: {missing:?}"
    );
    ensure!(
        count.len() == n,
        "{what}: {} distinct {prefix} messages, want {n}",
        count.len()
    );
    Ok(())
}

/// End offset (next offset) of each partition implied by a set of records.
fn end_offsets(recs: &[Rec]) -> BTreeMap<i32, i64> {
    let mut end: BTreeMap<i32, i64> = (0..PARTITIONS).map(|p| (p, 0)).collect();
    for r in recs {
        let e = end.entry(r.partition).or_default();
        *e = (*e).max(r.offset + 1);
    }
    end
}

// ---------------------------------------------------------------------------------------
// Group members.

#[derive(Default, Debug)]
struct MemberState {
    assignment: BTreeSet<i32>,
    /// Assign and revoke callbacks seen so far.
    rebalances: u32,
    assigns: u32,
    errors: Vec<String>,
}

struct MemberCtx {
    name: String,
    topic: String,
    st: Mutex<MemberState>,
}

impl MemberCtx {
    fn state(&self) -> std::sync::MutexGuard<'_, MemberState> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ClientContext for MemberCtx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        if (level as i32) <= RDKafkaLogLevel::Warning as i32 {
            eprintln!("librdkafka [{}] {level:?} {fac}: {message}", self.name);
        }
    }
    fn error(&self, error: KafkaError, reason: &str) {
        if let KafkaError::PartitionEOF(_) = error {
            return; // asked for with enable.partition.eof
        }
        eprintln!("librdkafka [{}] error: {error}: {reason}", self.name);
        self.state().errors.push(format!("{error}: {reason}"));
    }
}

impl ConsumerContext for MemberCtx {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let mut st = self.state();
        match rebalance {
            Rebalance::Assign(tpl) => {
                st.assignment = tpl
                    .elements_for_topic(&self.topic)
                    .iter()
                    .map(|e| e.partition())
                    .collect();
                st.rebalances += 1;
                st.assigns += 1;
                say(&format!("{}: assigned {:?}", self.name, st.assignment));
            }
            Rebalance::Revoke(_) => {
                st.assignment.clear();
                st.rebalances += 1;
                say(&format!("{}: revoked", self.name));
            }
            Rebalance::Error(e) => {
                say(&format!("{}: rebalance error {e}", self.name));
                st.errors.push(format!("rebalance error: {e}"));
            }
        }
    }
}

type Member = BaseConsumer<MemberCtx>;

fn member(
    args: &Args,
    group: &str,
    topic: &str,
    name: &str,
    settings: &[(&str, &str)],
) -> Result<Member> {
    let mut cfg = base_config(args, name);
    cfg.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "session.timeout.ms",
            SESSION_TIMEOUT.as_millis().to_string(),
        )
        .set("heartbeat.interval.ms", "500");
    for (k, v) in settings {
        cfg.set(*k, *v);
    }
    let ctx = MemberCtx {
        name: name.to_string(),
        topic: topic.to_string(),
        st: Mutex::new(MemberState::default()),
    };
    let c: Member = cfg
        .create_with_context(ctx)
        .with_context(|| format!("creating consumer {name}"))?;
    c.subscribe(&[topic])
        .with_context(|| format!("{name}: subscribe to {topic}"))?;
    Ok(c)
}

/// Messages and errors received by a set of members, in arrival order.
#[derive(Default)]
struct Inbox {
    got: Vec<(String, Rec)>,
    errors: Vec<String>,
}

impl Inbox {
    /// Serves every member once (rebalance callbacks run inside poll) and takes what
    /// each has ready; waits 10 ms when none had anything.
    fn poll(&mut self, members: &[&Member]) {
        let mut any = false;
        for m in members {
            for _ in 0..1000 {
                match m.poll(Duration::ZERO) {
                    None => break,
                    Some(Ok(msg)) => self.got.push((m.context().name.clone(), rec_of(&msg))),
                    Some(Err(KafkaError::PartitionEOF(_))) => {}
                    Some(Err(e)) => {
                        let e = format!("{}: {e}", m.context().name);
                        say(&format!("consumer error: {e}"));
                        self.errors.push(e);
                    }
                }
                any = true;
            }
        }
        if !any {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn assignments(members: &[&Member]) -> Vec<BTreeSet<i32>> {
    members
        .iter()
        .map(|m| m.context().state().assignment.clone())
        .collect()
}

/// Every member has partitions, no partition twice, all six covered.
fn covers_disjoint(sets: &[BTreeSet<i32>]) -> bool {
    let total: usize = sets.iter().map(|s| s.len()).sum();
    let union: BTreeSet<i32> = sets.iter().flatten().copied().collect();
    sets.iter().all(|s| !s.is_empty()) && total == union.len() && union == (0..PARTITIONS).collect()
}

/// Polls `members` until their assignments cover the six partitions disjointly (and
/// `extra` holds), or the timeout passes.
fn wait_assigned(
    what: &str,
    members: &[&Member],
    inbox: &mut Inbox,
    timeout: Duration,
    mut extra: impl FnMut(&[&Member]) -> bool,
) -> Result<Vec<BTreeSet<i32>>> {
    let deadline = Instant::now() + timeout;
    loop {
        inbox.poll(members);
        let sets = assignments(members);
        if covers_disjoint(&sets) && extra(members) {
            say(&format!("{what}: assignments {sets:?}"));
            return Ok(sets);
        }
        if Instant::now() > deadline {
            let errors: Vec<String> = members
                .iter()
                .flat_map(|m| m.context().state().errors.clone())
                .chain(inbox.errors.iter().cloned())
                .collect();
            bail!(
                "{what}: no disjoint assignment of all {PARTITIONS} partitions within {}s; assignments {sets:?}; errors {errors:?}",
                timeout.as_secs()
            );
        }
    }
}

/// Closes a consumer (LeaveGroup for a dynamic member, none for a static one) and waits
/// for the close to finish. Returns messages polled meanwhile.
fn close_member(c: Member, timeout: Duration) -> Result<Vec<Rec>> {
    let name = c.context().name.clone();
    c.close_queue().with_context(|| format!("{name}: close"))?;
    let deadline = Instant::now() + timeout;
    let mut late = Vec::new();
    while !c.closed() {
        if Instant::now() > deadline {
            // Dropping would wait for the close forever; the process exits soon anyway.
            std::mem::forget(c);
            bail!("{name}: close did not finish within {}s", timeout.as_secs());
        }
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            late.push(rec_of(&m));
        }
    }
    drop(c);
    say(&format!("{name}: closed"));
    Ok(late)
}

fn committed_of(c: &Member, topic: &str) -> Result<BTreeMap<i32, i64>> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(topic, p);
    }
    let got = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .context("committed offsets (OffsetFetch)")?;
    let mut out = BTreeMap::new();
    for e in got.elements_for_topic(topic) {
        if let Err(err) = e.error() {
            bail!("committed offset of partition {}: {err}", e.partition());
        }
        let off = match e.offset() {
            Offset::Offset(o) => o,
            Offset::Invalid => -1,
            other => bail!(
                "partition {}: unexpected committed offset {other:?}",
                e.partition()
            ),
        };
        out.insert(e.partition(), off);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// State passed from phase one to phase two.

#[derive(Serialize, Deserialize, Default)]
struct State {
    topic: String,
    group: String,
    /// committed offset per partition, read back after the commit
    committed: BTreeMap<i32, i64>,
    /// the 300 "two:" messages, produced after the commit and never consumed
    two: Vec<Rec>,
}

fn write_state(path: &Path, state: &State) -> Result<()> {
    let text = serde_json::to_string_pretty(state).context("encoding the state")?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn read_state(path: &Path) -> Result<State> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

// ---------------------------------------------------------------------------------------
// Phase one.

fn phase_one(args: &Args, report: &SharedReport) {
    let topic = args.topic.as_str();

    // The topic exists before the members subscribe; the members are assigned before
    // anything is produced.
    let topic_ready = ensure_topic(args, topic);
    let mut inbox = Inbox::default();
    let mut members: Vec<Member> = Vec::new();
    let three_way: Result<Vec<BTreeSet<i32>>> = topic_ready
        .as_ref()
        .map_err(|e| anyhow!("{e:#}"))
        .and_then(|_| {
            for i in 1..=3 {
                members.push(member(
                    args,
                    &args.group,
                    topic,
                    &format!("member-{i}"),
                    &[],
                )?);
            }
            let refs: Vec<&Member> = members.iter().collect();
            wait_assigned(
                "3 members",
                &refs,
                &mut inbox,
                Duration::from_secs(30),
                |_| true,
            )
        });

    // produce
    let produced = topic_ready
        .as_ref()
        .map_err(|e| anyhow!("{e:#}"))
        .and_then(|_| produce(args, topic, &[], &batch("one", N_ONE)));
    // idempotence
    let idem = topic_ready
        .as_ref()
        .map_err(|e| anyhow!("{e:#}"))
        .and_then(|_| {
            produce(
                args,
                topic,
                &[("enable.idempotence", "true")],
                &batch("idem", N_IDEM),
            )
        });
    let readback = read_back(args, topic);
    set(
        report,
        "produce",
        (|| {
            let produced = produced.as_ref().map_err(|e| anyhow!("{e:#}"))?;
            let back = readback.as_ref().map_err(|e| anyhow!("{e:#}"))?;
            let ones: Vec<Rec> = back
                .iter()
                .filter(|r| r.value.starts_with("one:"))
                .cloned()
                .collect();
            same_records("read back with assign", produced, &ones)?;
            once_in_order("read back with assign", "one", N_ONE, &ones)?;
            // The first acknowledged offsets of each partition start at 0.
            let end = end_offsets(produced);
            let count = |p: i32| produced.iter().filter(|r| r.partition == p).count() as i64;
            ensure!(
                (0..PARTITIONS).all(|p| end[&p] == count(p)),
                "acknowledged offsets are not 0.. of each partition: ends {end:?}"
            );
            admin_topic(args, &format!("{topic}-admin"))?;
            let parts: BTreeSet<i32> = produced.iter().map(|r| r.partition).collect();
            Ok(format!(
                "{N_ONE} keyed messages, acks=all, all acknowledged at offsets 0.. of partitions {parts:?}, read back exactly with assign(); \
                 metadata shows the auto-created topic with {PARTITIONS} led partitions; AdminClient created a 3-partition topic, listed and described"
            ))
        })(),
    );
    set(
        report,
        "idempotence",
        (|| {
            let idem = idem.as_ref().map_err(|e| anyhow!("{e:#}"))?;
            let back = readback.as_ref().map_err(|e| anyhow!("{e:#}"))?;
            let got: Vec<Rec> = back
                .iter()
                .filter(|r| r.value.starts_with("idem:"))
                .cloned()
                .collect();
            once_in_order("idempotent messages read back", "idem", N_IDEM, &got)?;
            same_records("idempotent messages read back", idem, &got)?;
            Ok(format!(
                "enable.idempotence=true: {N_IDEM} messages acknowledged, each read back once, in order per partition"
            ))
        })(),
    );

    // compression
    set(
        report,
        "compression",
        (|| {
            let mut failures = Vec::new();
            for codec in CODECS {
                let t = format!("compat-{CLIENT}-{codec}");
                let r = (|| {
                    let mut wire = WireLog::default();
                    let sent = produce_logged(
                        args,
                        &t,
                        &[("compression.type", codec), ("linger.ms", "50")],
                        &batch_padded(codec, N_CODEC, &format!(":{}", "compressible ".repeat(24))),
                        Some(&mut wire),
                    )?;
                    // The round trip alone proves nothing: librdkafka sends a batch
                    // uncompressed when it believes the broker lacks the codec.
                    let total: usize = wire.batches.iter().map(|(n, _)| n).sum();
                    let plain: usize = wire
                        .batches
                        .iter()
                        .filter(|(_, c)| c != codec)
                        .map(|(n, _)| n)
                        .sum();
                    ensure!(
                        total == N_CODEC && plain == 0,
                        "librdkafka sent {plain} of {N_CODEC} messages uncompressed ({})",
                        wire.not_compressing
                            .clone()
                            .unwrap_or_else(|| format!("batches as sent: {:?}", wire.batches))
                    );
                    let back = read_back(args, &t)?;
                    same_records(&t, &sent, &back)?;
                    once_in_order(&t, codec, N_CODEC, &back)
                })();
                if let Err(e) = r {
                    failures.push(format!("{codec}: {e:#}"));
                }
            }
            ensure!(failures.is_empty(), "{}", failures.join("; "));
            Ok(format!(
                "tried {}: each {N_CODEC} messages sent compressed (librdkafka's msg debug log) and read back exactly",
                CODECS.join(", ")
            ))
        })(),
    );

    // consume: the three members read everything produced so far, then commit.
    let mut expected: Vec<Rec> = Vec::new();
    if let Ok(p) = &produced {
        expected.extend(p.iter().cloned());
    }
    if let Ok(p) = &idem {
        expected.extend(p.iter().cloned());
    }
    let end = end_offsets(&expected);
    let consumed: Result<()> = (|| {
        three_way
            .as_ref()
            .map_err(|e| anyhow!("group never formed: {e:#}"))?;
        produced
            .as_ref()
            .map_err(|e| anyhow!("nothing to consume: produce failed: {e:#}"))?;
        let refs: Vec<&Member> = members.iter().collect();
        let want = expected.len();
        let deadline = Instant::now() + Duration::from_secs(60);
        while inbox.got.len() < want && Instant::now() < deadline {
            inbox.poll(&refs);
        }
        // Anything beyond `want` (a duplicate) that is already on its way shows up here.
        let settle = Instant::now() + Duration::from_millis(500);
        while Instant::now() < settle {
            inbox.poll(&refs);
        }
        let mut per_member: BTreeMap<String, Vec<Rec>> = BTreeMap::new();
        for (name, r) in &inbox.got {
            per_member.entry(name.clone()).or_default().push(r.clone());
        }
        for m in &refs {
            let ctx = m.context();
            let assigned = ctx.state().assignment.clone();
            for r in per_member.get(&ctx.name).into_iter().flatten() {
                ensure!(
                    assigned.contains(&r.partition),
                    "{} received {:?} from partition {} outside its assignment {assigned:?}",
                    ctx.name,
                    r.value,
                    r.partition
                );
            }
        }
        let all: Vec<Rec> = inbox.got.iter().map(|(_, r)| r.clone()).collect();
        ensure!(
            inbox.errors.is_empty(),
            "consumer errors: {:?}",
            inbox.errors
        );
        same_records("consumed by the group", &expected, &all)?;
        Ok(())
    })();
    let consume_note = format!(
        "3 members (enable.auto.commit=false, auto.offset.reset=earliest) received all {} messages exactly once",
        expected.len()
    );
    set(
        report,
        "consume",
        consumed
            .as_ref()
            .map(|_| consume_note)
            .map_err(|e| anyhow!("{e:#}")),
    );

    // Synchronous commit of what each member consumed.
    let commit: Result<()> = (|| {
        consumed
            .as_ref()
            .map_err(|e| anyhow!("not committed, consume failed: {e:#}"))?;
        for m in &members {
            let assigned = m.context().state().assignment.clone();
            let mut tpl = TopicPartitionList::new();
            for p in &assigned {
                tpl.add_partition_offset(topic, *p, Offset::Offset(end[p]))
                    .context("building the commit")?;
            }
            m.commit(&tpl, CommitMode::Sync).with_context(|| {
                format!("{}: synchronous commit of {assigned:?}", m.context().name)
            })?;
        }
        say(&format!("committed {end:?}"));
        Ok(())
    })();

    // groups: one member leaves cleanly, the other two take over its partitions.
    let groups: Result<String> = (|| {
        let sets3 = three_way.as_ref().map_err(|e| anyhow!("{e:#}"))?.clone();
        ensure!(members.len() == 3, "group members missing");
        let leaver = members.pop().ok_or_else(|| anyhow!("no member to close"))?;
        let before: Vec<u32> = members
            .iter()
            .map(|m| m.context().state().assigns)
            .collect();
        let closed_at = Instant::now();
        let late = close_member(leaver, Duration::from_secs(20))?;
        ensure!(
            late.is_empty(),
            "closing member-3 delivered {} more messages",
            late.len()
        );
        let refs: Vec<&Member> = members.iter().collect();
        let got_before = inbox.got.len();
        // Sooner than member-3's session (10 s) could expire: its LeaveGroup did it.
        let sets2 = wait_assigned(
            "2 members after member-3 left",
            &refs,
            &mut inbox,
            (closed_at + LEAVE_TIMEOUT).saturating_duration_since(Instant::now()),
            |ms| {
                ms.iter()
                    .zip(&before)
                    .all(|(m, b)| m.context().state().assigns > *b)
            },
        )?;
        let redelivered: Vec<String> = inbox.got[got_before..]
            .iter()
            .map(|(n, r)| format!("{n}: {r:?}"))
            .collect();
        ensure!(
            redelivered.is_empty(),
            "after the rebalance {} committed messages were delivered again, first {}",
            redelivered.len(),
            redelivered[0]
        );
        Ok(format!(
            "3 members {sets3:?}; after one left (LeaveGroup) 2 members {sets2:?}"
        ))
    })();
    set(report, "groups", groups);

    // Committed offsets read back, then 300 more messages nobody consumes.
    let mut state = State {
        topic: topic.to_string(),
        group: args.group.clone(),
        ..State::default()
    };
    let committed_ok: Result<()> = (|| {
        commit.as_ref().map_err(|e| anyhow!("{e:#}"))?;
        let first = members
            .first()
            .ok_or_else(|| anyhow!("no member left to read the committed offsets"))?;
        state.committed = committed_of(first, topic)?;
        ensure!(
            state.committed == end,
            "committed offsets read back {:?} differ from the consumed end offsets {end:?}",
            state.committed
        );
        Ok(())
    })();
    if let Err(e) = &committed_ok {
        set(report, "commit_resume", Err(anyhow!("phase one: {e:#}")));
    }
    match produce(args, topic, &[], &batch("two", N_TWO)) {
        Ok(two) => state.two = two,
        Err(e) => set(
            report,
            "commit_resume",
            Err(anyhow!(
                "phase one: producing the 300 'two' messages: {e:#}"
            )),
        ),
    }
    if let Err(e) = write_state(&args.state, &state) {
        set(report, "commit_resume", Err(e));
    }
    for m in members.drain(..) {
        if let Err(e) = close_member(m, Duration::from_secs(20)) {
            say(&format!("{e:#}"));
        }
    }

    set(report, "static_membership", static_membership(args));
}

fn static_membership(args: &Args) -> Result<String> {
    let group = format!("{}-static", args.group);
    let topic = args.topic.as_str();
    let mut inbox = Inbox::default();
    let a = member(
        args,
        &group,
        topic,
        "static-a",
        &[("group.instance.id", "a")],
    )?;
    let b = member(
        args,
        &group,
        topic,
        "static-b",
        &[("group.instance.id", "b")],
    )?;
    let sets = wait_assigned(
        "static a+b",
        &[&a, &b],
        &mut inbox,
        Duration::from_secs(30),
        |_| true,
    )?;
    let (a_parts, b_parts) = (sets[0].clone(), sets[1].clone());
    let b_rebalances = b.context().state().rebalances;

    // A static member's close sends no LeaveGroup: the broker keeps its partitions for it
    // until session.timeout.ms (10 s).
    let stopped = Instant::now();
    close_member(a, Duration::from_secs(15))?;
    let a2 = member(
        args,
        &group,
        topic,
        "static-a-again",
        &[("group.instance.id", "a")],
    )?;
    let deadline = Instant::now() + Duration::from_secs(8);
    while a2.context().state().assignment.is_empty() {
        ensure!(
            Instant::now() < deadline,
            "the new member with group.instance.id=a got no assignment within 8 s (session timeout 10 s); errors {:?}",
            a2.context().state().errors
        );
        inbox.poll(&[&a2, &b]);
    }
    let a2_parts = a2.context().state().assignment.clone();
    ensure!(
        a2_parts == a_parts,
        "rejoined 'a' got {a2_parts:?}, had {a_parts:?}"
    );
    // No rebalance reaches b, neither when 'a' comes back nor when the old 'a''s session
    // would have expired: hold until past it (2 s margin, four heartbeat intervals).
    let hold = stopped + SESSION_TIMEOUT + Duration::from_secs(2);
    while Instant::now() < hold {
        inbox.poll(&[&a2, &b]);
        let b_now = b.context().state();
        let a2_now = a2.context().state().assignment.clone();
        ensure!(
            b_now.rebalances == b_rebalances && b_now.assignment == b_parts && a2_now == a_parts,
            "'b' or the rejoined 'a' was rebalanced after 'a' came back ({:.1}s after the old 'a' closed): b's assign/revoke callbacks {} -> {}, b {:?} -> {:?}, a {:?} -> {:?}",
            stopped.elapsed().as_secs_f64(),
            b_rebalances,
            b_now.rebalances,
            b_parts,
            b_now.assignment,
            a_parts,
            a2_now
        );
    }

    // A second consumer with instance id "b" while "b" is alive: one of them is fenced.
    let b2 = member(
        args,
        &group,
        topic,
        "static-b-duplicate",
        &[("group.instance.id", "b")],
    )?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let fenced = loop {
        inbox.poll(&[&b, &b2, &a2]);
        let f = [(&b, "old 'b'"), (&b2, "new 'b'")]
            .into_iter()
            .find_map(|(c, label)| {
                c.client()
                    .fatal_error()
                    .map(|(code, reason)| (label, code, reason))
            });
        if let Some(f) = f {
            break f;
        }
        ensure!(
            Instant::now() < deadline,
            "neither consumer with group.instance.id=b was fenced within 15 s; consumer errors {:?}",
            inbox.errors
        );
    };
    ensure!(
        fenced.1 == RDKafkaErrorCode::FencedInstanceId,
        "{} failed with {:?} ({}), expected FENCED_INSTANCE_ID",
        fenced.0,
        fenced.1,
        fenced.2
    );
    for c in [b, b2, a2] {
        if let Err(e) = close_member(c, Duration::from_secs(15)) {
            say(&format!("{e:#}"));
        }
    }
    Ok(format!(
        "a {a_parts:?} b {b_parts:?}; 'a' closed without LeaveGroup and rejoined with the same partitions, 'b' not rebalanced through the old 'a''s session timeout; duplicate 'b': {} fenced (FENCED_INSTANCE_ID)",
        fenced.0
    ))
}

// ---------------------------------------------------------------------------------------
// Phase two.

fn phase_two(args: &Args, report: &SharedReport) {
    set(report, "commit_resume", commit_resume(args));
}

fn commit_resume(args: &Args) -> Result<String> {
    let state = read_state(&args.state)?;
    ensure!(
        state.two.len() == N_TWO,
        "the state holds {} 'two' messages, want {N_TWO} (phase one failed?)",
        state.two.len()
    );
    let topic = args.topic.as_str();

    // Committed offsets as the client reads them after the restart.
    let reader: Member = {
        let ctx = MemberCtx {
            name: "offset-reader".into(),
            topic: topic.into(),
            st: Mutex::new(MemberState::default()),
        };
        base_config(args, "offset-reader")
            .set("group.id", &args.group)
            .set("enable.auto.commit", "false")
            .create_with_context(ctx)
            .context("creating the offset reader")?
    };
    let committed = committed_of(&reader, topic)?;
    drop(reader);
    ensure!(
        committed == state.committed,
        "committed offsets after the restart {committed:?} differ from phase one's {:?}",
        state.committed
    );

    // One member resumes from the committed offsets; a lost commit is an error, not a reset.
    let c = member(
        args,
        &args.group,
        topic,
        "resumer",
        &[
            ("auto.offset.reset", "error"),
            ("enable.partition.eof", "true"),
        ],
    )?;
    let want: BTreeSet<&Rec> = state.two.iter().collect();
    let mut got: Vec<Rec> = Vec::new();
    let mut at_end: BTreeSet<i32> = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut errors = Vec::new();
    while !(got.len() >= N_TWO && at_end.len() == PARTITIONS as usize) {
        if Instant::now() > deadline {
            bail!(
                "after 60 s: {} messages received, partitions at their end {at_end:?}; errors {errors:?}",
                got.len()
            );
        }
        match c.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                got.push(rec_of(&m));
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => {
                errors.push(e.to_string());
                if errors.len() > 20 || c.client().fatal_error().is_some() {
                    bail!("consumer errors: {errors:?}");
                }
            }
        }
    }
    ensure!(errors.is_empty(), "consumer errors: {errors:?}");
    // Where the member stands now: the committed offset plus what it received, also on
    // partitions that got none of the 300.
    let mut want_pos = state.committed.clone();
    for r in &state.two {
        let e = want_pos.entry(r.partition).or_default();
        *e = (*e).max(r.offset + 1);
    }
    let mut pos = BTreeMap::new();
    for e in c.position().context("position")?.elements_for_topic(topic) {
        if let Offset::Offset(o) = e.offset() {
            pos.insert(e.partition(), o);
        }
    }
    ensure!(
        pos == want_pos,
        "positions after resuming {pos:?}, want committed + 300 messages = {want_pos:?}"
    );
    let _ = close_member(c, Duration::from_secs(15));
    let mut first: BTreeMap<i32, i64> = BTreeMap::new();
    for r in &got {
        first.entry(r.partition).or_insert(r.offset);
    }
    for (p, off) in &first {
        ensure!(
            state.committed.get(p) == Some(off),
            "partition {p}: resumed at offset {off}, committed was {:?}",
            state.committed.get(p)
        );
    }
    let before: Vec<&Rec> = got.iter().filter(|r| !want.contains(r)).collect();
    ensure!(
        before.is_empty(),
        "{} messages delivered that are not among the 300 uncommitted ones (re-delivered from before the commit?), first {:?}",
        before.len(),
        before[0]
    );
    same_records("resumed after the restart", &state.two, &got)?;
    Ok(format!(
        "committed offsets {committed:?} survived the restart; a member with auto.offset.reset=error received exactly the {N_TWO} uncommitted messages"
    ))
}

fn phase_security(args: &Args, report: &SharedReport) {
    for (cap, kind) in [("sasl_scram", "sasl"), ("mtls", "mtls")] {
        set(report, cap, secure_round_trip(args, kind));
    }
}

/// N_SECURE keyed messages produced to `<topic>-<kind>` and read back exactly, every
/// client connected over SASL_SSL with SCRAM-SHA-512 ("sasl") or over SSL with the
/// client certificate ("mtls").
fn secure_round_trip(args: &Args, kind: &str) -> Result<String> {
    fn need(value: &Option<String>, flag: &str) -> Result<String> {
        value
            .clone()
            .ok_or_else(|| anyhow!("--{flag} is required for the security phase"))
    }
    let ca = need(&args.ca, "ca")?;
    let mut secure = args.clone();
    let how;
    if kind == "sasl" {
        let user = need(&args.scram_user, "scram-user")?;
        secure.bootstrap = need(&args.sasl_bootstrap, "sasl-bootstrap")?;
        secure.security = vec![
            ("security.protocol".into(), "SASL_SSL".into()),
            ("sasl.mechanisms".into(), "SCRAM-SHA-512".into()),
            ("sasl.username".into(), user.clone()),
            (
                "sasl.password".into(),
                need(&args.scram_password, "scram-password")?,
            ),
            ("ssl.ca.location".into(), ca),
        ];
        how = format!("SASL_SSL, SCRAM-SHA-512 as {user}");
    } else {
        secure.bootstrap = need(&args.mtls_bootstrap, "mtls-bootstrap")?;
        secure.security = vec![
            ("security.protocol".into(), "SSL".into()),
            ("ssl.ca.location".into(), ca),
            (
                "ssl.certificate.location".into(),
                need(&args.client_cert, "client-cert")?,
            ),
            (
                "ssl.key.location".into(),
                need(&args.client_key, "client-key")?,
            ),
        ];
        how = "SSL with a client certificate (ssl.client.auth=required)".to_string();
    }
    let topic = format!("{}-{kind}", args.topic);
    let delivered = produce(&secure, &topic, &[], &batch(kind, N_SECURE))?;
    let back = read_back(&secure, &topic)?;
    same_records(&format!("{kind} round trip"), &delivered, &back)?;
    once_in_order(&format!("{kind} round trip"), kind, N_SECURE, &back)?;
    Ok(format!(
        "{N_SECURE} keyed messages produced and read back over {how}"
    ))
}

fn main() {
    let args = Args::parse();
    let report: SharedReport = Arc::new(Mutex::new(Report::default()));
    let expected: &'static [&'static str] = match args.phase {
        Phase::One => &PHASE_ONE_CAPS,
        Phase::Two => &PHASE_TWO_CAPS,
        Phase::Security => &SECURITY_CAPS,
    };
    say(&format!(
        "{} phase {:?} against {}",
        version(),
        args.phase,
        args.bootstrap
    ));
    {
        let report = report.clone();
        let secs = args.deadline;
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(secs));
            say(&format!("deadline of {secs}s reached"));
            print_compat(
                &report,
                expected,
                &format!("not decided within the program's {secs}s deadline"),
            );
            std::process::exit(1);
        });
    }
    match args.phase {
        Phase::One => phase_one(&args, &report),
        Phase::Two => phase_two(&args, &report),
        Phase::Security => phase_security(&args, &report),
    }
    print_compat(&report, expected, "not checked (the program stopped early)");
}
