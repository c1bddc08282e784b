//! Scale behaviour of one real `strom-broker` process (issue 11): a 10,000-partition
//! CreateTopics does not freeze the broker, a Metadata request naming thousands of unknown
//! topics answers at once and creates a bounded number of them, and a restarted broker is
//! ready as soon as its logs are open instead of waiting out its dead process's session.
//!
//! `STROM_SCALE_TEST_PARTITIONS` overrides the 10,000 of the first test (for a quick run
//! on a machine with a small descriptor limit).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::cluster::{call, create_topic_ok};
use common::kafka::{try_produce, Rec};
use common::{http_get, wait_for, BrokerProcess};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const LEADER_NOT_AVAILABLE: i16 = 5;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC_EXCEPTION: i16 = 17;

/// Every test here times a broker on a 2-core machine: they take turns, so one test's
/// 10,000 log creations do not count against another's bounds.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn take_turn() -> std::sync::MutexGuard<'static, ()> {
    // A test that failed while holding the turn poisons it; the next one still runs.
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// How long a probe (/health, Metadata) may take while partitions are being created.
const RESPONSIVE: Duration = Duration::from_secs(2);

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn wide_partitions() -> i32 {
    std::env::var("STROM_SCALE_TEST_PARTITIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// CreateTopics for one topic with `partitions` partitions, replication factor 1.
fn create_topic(port: u16, topic: &str, partitions: i32) {
    let topic = CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(1);
    create_topic_ok(port, topic, 60_000);
}

fn metadata(port: u16, topics: Option<&[String]>, allow_create: bool) -> MetadataResponse {
    let request = MetadataRequest::default()
        .with_topics(topics.map(|names| {
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(name(n))))
                .collect()
        }))
        .with_allow_auto_topic_creation(allow_create);
    call(port, 12, &request)
}

fn topic_count(port: u16) -> usize {
    metadata(port, None, false).topics.len()
}

/// The last lines of the broker's log, for failure messages.
fn log_tail(b: &BrokerProcess) -> String {
    let log = b.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn ready(b: &BrokerProcess) -> bool {
    http_get(b.admin_port, "/ready").is_some_and(|(status, _)| status == 200)
}

/// The latest offset of each given partition of `topic`, or the first error code.
fn list_offsets(port: u16, topic: &str, partitions: &[i32]) -> Result<Vec<i64>, (i32, i16)> {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(*p)
                            .with_timestamp(-1)
                    })
                    .collect(),
            )]);
    let response = call(port, 7, &request);
    response.topics[0]
        .partitions
        .iter()
        .map(|p| {
            if p.error_code == 0 {
                Ok(p.offset)
            } else {
                Err((p.partition_index, p.error_code))
            }
        })
        .collect()
}

/// The slowest answer a probe got, and how many it sent.
#[derive(Debug, Default, Clone, Copy)]
struct Slowest {
    max: Duration,
    probes: usize,
}

impl Slowest {
    fn note(&mut self, took: Duration) {
        self.max = self.max.max(took);
        self.probes += 1;
    }
}

#[test]
fn creating_10k_partitions_keeps_the_broker_responsive() {
    let _turn = take_turn();
    let partitions = wide_partitions();
    let broker = BrokerProcess::start(&[]);
    let port = broker.port;
    let admin = broker.admin_port;
    let bootstrap = broker.bootstrap();
    create_topic(port, "steady", 1);
    let stop = Arc::new(AtomicBool::new(false));

    // A producer writing acks=all to another topic all along.
    let producer = {
        let stop = stop.clone();
        let bootstrap = bootstrap.clone();
        thread::spawn(move || {
            let mut errors = Vec::new();
            let mut delivered = 0;
            while !stop.load(Ordering::Relaxed) {
                let records: Vec<Rec> =
                    (0..20).map(|i| Rec::keyed("k", &format!("v{i}"))).collect();
                for r in try_produce(&bootstrap, "steady", &[("acks", "all")], &records) {
                    match r {
                        Ok(_) => delivered += 1,
                        Err(e) => errors.push(e),
                    }
                }
            }
            (delivered, errors)
        })
    };
    // Probes of /health and Metadata, timed.
    let health = Arc::new(Mutex::new(Slowest::default()));
    let meta = Arc::new(Mutex::new(Slowest::default()));
    let prober = {
        let (stop, health, meta) = (stop.clone(), health.clone(), meta.clone());
        thread::spawn(move || {
            let steady = ["steady".to_string()];
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let ok = http_get(admin, "/health").is_some_and(|(s, _)| s == 200);
                health
                    .lock()
                    .unwrap()
                    .note(if ok { started.elapsed() } else { Duration::MAX });
                let started = Instant::now();
                let md = metadata(port, Some(&steady), false);
                assert_eq!(md.topics[0].error_code, 0, "metadata of steady");
                meta.lock().unwrap().note(started.elapsed());
                thread::sleep(Duration::from_millis(50));
            }
        })
    };

    let started = Instant::now();
    if let Err(panic) = std::panic::catch_unwind(|| create_topic(port, "wide", partitions)) {
        stop.store(true, Ordering::Relaxed);
        eprintln!(
            "CreateTopics failed; broker log tail:\n{}",
            log_tail(&broker)
        );
        std::panic::resume_unwind(panic);
    }
    let answered = started.elapsed();
    // /ready is false until every partition placed here is served; then it must stay
    // unfenced and serving.
    let deadline = started + Duration::from_secs(120);
    let mut last = None;
    let mut all_served = false;
    while !all_served && Instant::now() < deadline {
        last = http_get(admin, "/ready");
        all_served = last.as_ref().is_some_and(|(status, _)| *status == 200);
        if !all_served {
            thread::sleep(Duration::from_millis(100));
        }
    }
    if !all_served {
        stop.store(true, Ordering::Relaxed);
        let tail = log_tail(&broker);
        panic!("{partitions} partitions not all served after 120 s; /ready: {last:?}\n{tail}");
    }
    let served = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (delivered, errors) = producer.join().expect("producer thread");
    prober.join().expect("prober thread");

    let sample: Vec<i32> = [0, 1, partitions / 2, partitions - 1].into();
    let offsets = list_offsets(port, "wide", &sample)
        .unwrap_or_else(|e| panic!("partition not served: {e:?}\n{}", broker.log()));
    assert_eq!(offsets, vec![0; sample.len()]);
    let health = *health.lock().unwrap();
    let meta = *meta.lock().unwrap();
    eprintln!(
        "{partitions} partitions: CreateTopics answered in {answered:?}, all served after {served:?}; \
         slowest /health {:?} of {}, slowest Metadata {:?} of {}; {delivered} records produced",
        health.max, health.probes, meta.max, meta.probes
    );
    assert!(errors.is_empty(), "producer errors: {errors:?}");
    assert!(delivered > 0, "the producer got nothing through");
    assert!(
        health.max <= RESPONSIVE,
        "/health took up to {:?} during creation",
        health.max
    );
    assert!(
        meta.max <= RESPONSIVE,
        "Metadata took up to {:?} during creation",
        meta.max
    );
    let log = broker.log();
    assert!(
        !log.contains("fenced broker: no heartbeat"),
        "the broker was fenced during creation:\n{log}"
    );
    assert!(ready(&broker), "still ready at the end");
}

#[test]
fn metadata_for_thousands_of_unknown_topics_creates_a_bounded_batch_in_the_background() {
    let _turn = take_turn();
    let broker = BrokerProcess::start(&[("auto.create.topics.max.per.request", "50")]);
    let port = broker.port;
    let before = topic_count(port);

    let mut names: Vec<String> = (0..5000).map(|i| format!("auto-{i}")).collect();
    names.push("bad name!".into());
    names.push("..".into());
    let started = Instant::now();
    let md = metadata(port, Some(&names), true);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "Metadata took {took:?}");
    assert_eq!(md.topics.len(), names.len());
    let count = |code: i16| md.topics.iter().filter(|t| t.error_code == code).count();
    assert_eq!(count(LEADER_NOT_AVAILABLE), 50, "being created");
    assert_eq!(count(UNKNOWN_TOPIC_OR_PARTITION), 4950, "over the bound");
    assert_eq!(count(INVALID_TOPIC_EXCEPTION), 2, "invalid names");
    for t in md
        .topics
        .iter()
        .filter(|t| t.error_code == INVALID_TOPIC_EXCEPTION)
    {
        let n = t.name.as_ref().map(|n| n.0.as_str().to_string());
        assert!(n.as_deref() == Some("bad name!") || n.as_deref() == Some(".."));
    }
    // The client is gone; the admitted batch is created in the background, and then
    // nothing more.
    wait_for("the admitted topics", Duration::from_secs(30), || {
        (topic_count(port) == before + 50).then_some(())
    });
    let watch_until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < watch_until {
        assert_eq!(topic_count(port), before + 50, "creation continued");
    }
    // The created ones now answer with their partitions and leaders.
    let created: Vec<String> = md
        .topics
        .iter()
        .filter(|t| t.error_code == LEADER_NOT_AVAILABLE)
        .filter_map(|t| t.name.as_ref().map(|n| n.0.as_str().to_string()))
        .collect();
    wait_for(
        "leaders of the created topics",
        Duration::from_secs(30),
        || {
            let md = metadata(port, Some(&created), true);
            md.topics
                .iter()
                .all(|t| t.error_code == 0 && t.partitions.iter().all(|p| p.error_code == 0))
                .then_some(())
        },
    );

    // Without auto-creation allowed by the request, nothing is created.
    let more: Vec<String> = (0..200).map(|i| format!("manual-{i}")).collect();
    let md = metadata(port, Some(&more), false);
    assert!(md
        .topics
        .iter()
        .all(|t| t.error_code == UNKNOWN_TOPIC_OR_PARTITION));
    assert_eq!(topic_count(port), before + 50);
}

#[test]
fn restart_to_ready_does_not_wait_out_the_old_session() {
    let _turn = take_turn();
    const BOUND: Duration = Duration::from_secs(5);
    let mut broker = BrokerProcess::start(&[]);
    create_topic(broker.port, "many", 1000);
    wait_for("1000 partitions served", Duration::from_secs(60), || {
        ready(&broker).then_some(())
    });
    let sample = [0, 500, 999];

    broker.kill9();
    let started = Instant::now();
    broker.restart();
    let after_kill = started.elapsed();
    list_offsets(broker.port, "many", &sample).expect("served after SIGKILL");

    assert!(broker.terminate(), "clean exit on SIGTERM");
    let started = Instant::now();
    broker.restart();
    let after_term = started.elapsed();
    list_offsets(broker.port, "many", &sample).expect("served after SIGTERM");

    eprintln!("restart to ready: {after_kill:?} after SIGKILL, {after_term:?} after SIGTERM");
    assert!(
        after_kill < BOUND,
        "ready {after_kill:?} after SIGKILL\n{}",
        broker.log()
    );
    assert!(
        after_term < BOUND,
        "ready {after_term:?} after SIGTERM\n{}",
        broker.log()
    );
}
