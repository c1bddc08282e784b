//! The chart's alerting rules (charts/strom-operator/files/prometheus-rules.yaml) evaluated
//! by Prometheus's own rule engine (`promtool test rules`, built from the Prometheus Go
//! module by scripts/promtool-build.sh) against series scraped from real strom-broker
//! processes: a quiet three-broker cluster, where nothing may fire, and the same cluster
//! with one broker killed, where exactly the broker-down, under-replicated, under-min-ISR,
//! offline-partition (an RF-1 partition on the killed broker) and consumer-lag rules fire;
//! then a second broker (the active controller) killed too, where the controller rule
//! fires (one voter of three left, so no active controller).
//!
//! Scraped samples are held constant over the rule test's time range; each broker's
//! series get the `namespace`/`pod` target labels Kubernetes discovery would give a broker
//! pod named `<cluster>-broker-<i>`, and `up` is 1 or 0 by whether the scrape succeeded,
//! as Prometheus sets it. The disk-space rule reads kubelet series, which no broker
//! exports: its case uses synthetic kubelet samples and says so.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};

use common::Timer;
use strom_e2e_cluster::admin_http::metric_value;
use strom_e2e_cluster::binary::workspace_root;
use strom_e2e_cluster::prom::{
    expected_firing, input_series, prom_duration, promtool_binary, run_promtool, scrape, Scrape,
    Timing, SCRAPE_TIMEOUT,
};
use strom_e2e_cluster::wait::wait_until_every;
use strom_e2e_cluster::{Cluster, ClusterOptions};

const NAMESPACE: &str = "strom-e2e";
const CLUSTER: &str = "alerts";
const TOPIC: &str = "urp";
const STRICT_TOPIC: &str = "strict";
/// One partition, one replica, placed on the broker the firing case kills.
const LONELY_TOPIC: &str = "lonely";
const GROUP: &str = "lagging";
/// Above the TooLargeConsumerGroupLag threshold (1000).
const LAG_RECORDS: usize = 1500;
const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(250);
/// Every `for: 10s` of the chart's rules is met at its evaluation time.
const TIMING: Timing = Timing::DEFAULT;
const FIRING: &str = r#"count by (alertname, pod, strom_cluster) (ALERTS{alertstate="firing"})"#;

fn rules_file() -> PathBuf {
    workspace_root()
        .join("charts/strom-operator/files/prometheus-rules.yaml")
        .canonicalize()
        .expect("rules file")
}

fn pod(i: usize) -> String {
    format!("{CLUSTER}-broker-{i}")
}

fn target(i: usize) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("namespace".to_string(), NAMESPACE.to_string()),
        ("pod".to_string(), pod(i)),
        ("job".to_string(), "strom-broker".to_string()),
    ])
}

fn produce(bootstrap: &str, n: usize) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    for k in 0..n {
        let value = format!("record-{k}");
        let mut record = BaseRecord::<(), str>::to(TOPIC)
            .partition(0)
            .payload(&value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    // Queue full: let the delivery thread drain it.
                    producer.poll(Duration::from_millis(10));
                    record = r;
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("every record acknowledged");
}

fn commit(bootstrap: &str, offset: i64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Offset(offset))
        .expect("offset");
    consumer.commit(&tpl, CommitMode::Sync).expect("commit");
}

/// Reads the first records of partition 0, so the brokers count bytes out.
fn consume_some(bootstrap: &str) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "alerts-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .expect("offset");
    consumer.assign(&tpl).expect("assign");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        assert!(std::time::Instant::now() < deadline, "no record consumed");
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(_)) => return,
            Some(Err(e)) => eprintln!("consume: {e}"),
            None => {}
        }
    }
}

/// Scrapes of every broker, `Down` for the ones in `down` (whose scrape must fail);
/// the raw texts go to `keep` for the dashboard check.
fn scrape_all(
    c: &Cluster,
    down: &[usize],
    keep: &mut Vec<String>,
) -> Vec<(BTreeMap<String, String>, Scrape)> {
    (0..c.size())
        .map(|i| {
            let url = format!("http://{}/metrics", c.admin_addr(i).unwrap());
            let scrape = match scrape(&url, SCRAPE_TIMEOUT) {
                Ok((text, samples)) => {
                    assert!(!down.contains(&i), "broker {i} should be down but answers");
                    keep.push(text);
                    Scrape::Up(samples)
                }
                Err(e) => {
                    assert!(down.contains(&i), "scraping broker {i} failed: {e}");
                    Scrape::Down
                }
            };
            (target(i), scrape)
        })
        .collect()
}

fn value_of(scrape: &Scrape, name: &str) -> f64 {
    match scrape {
        Scrape::Up(samples) => samples
            .iter()
            .filter(|s| s.name() == name)
            .map(|s| s.value)
            .sum(),
        Scrape::Down => 0.0,
    }
}

fn sum_over(c: &Cluster, brokers: &[usize], name: &str) -> Result<f64, String> {
    let mut total = 0.0;
    for &i in brokers {
        let text = c.metrics(i).map_err(|e| e.to_string())?;
        total += metric_value(&text, name).unwrap_or(0.0);
    }
    Ok(total)
}

fn test_case(name: &str, series: Vec<Value>, firing: Vec<Value>) -> Value {
    TIMING.case(name, series, vec![TIMING.expr_test(FIRING, firing)])
}

/// The disk-space rule on kubelet's volume statistics: synthetic samples (no broker
/// exports them), one volume at 50 % free and one at 10 %.
fn volume_case() -> Value {
    let pvc = |i: usize| format!("data-{}", pod(i));
    let series = |name: &str, i: usize, v: u64| {
        json!({
            "series": format!(r#"{name}{{namespace="{NAMESPACE}",persistentvolumeclaim="{}"}}"#, pvc(i)),
            "values": format!("{v}x{}", TIMING.steps()),
        })
    };
    let gib = 1u64 << 30;
    json!({
        "name": "volumes (synthetic kubelet samples)",
        "interval": prom_duration(TIMING.interval),
        "input_series": [
            series("kubelet_volume_stats_capacity_bytes", 0, 100 * gib),
            series("kubelet_volume_stats_available_bytes", 0, 50 * gib),
            series("kubelet_volume_stats_capacity_bytes", 1, 100 * gib),
            series("kubelet_volume_stats_available_bytes", 1, 10 * gib),
        ],
        "alert_rule_test": [{
            "eval_time": prom_duration(TIMING.eval_time),
            "alertname": "KafkaRunningOutOfSpace",
            "exp_alerts": [{
                "exp_labels": {
                    "severity": "warning",
                    "namespace": NAMESPACE,
                    "persistentvolumeclaim": pvc(1),
                },
                "exp_annotations": {
                    "summary": "Kafka broker volume running out of space",
                    "description": format!("Volume {} in {NAMESPACE} has only 10.0% free.", pvc(1)),
                },
            }],
        }],
    })
}

#[test]
fn prometheus_rules_fire_on_scraped_broker_metrics() {
    let _timer = Timer::start("prometheus_rules_fire_on_scraped_broker_metrics");
    let rules = rules_file();
    let work = tempfile::Builder::new()
        .prefix("strom-promtool-")
        .tempdir()
        .unwrap();
    let (ok, out) = run_promtool(
        [OsStr::new("check"), OsStr::new("rules"), rules.as_os_str()],
        work.path(),
    )
    .unwrap();
    assert!(ok, "promtool check rules:\n{out}");

    let mut c = Cluster::start(3, ClusterOptions::default()).unwrap();
    c.create_topic(TOPIC, 6, 3, &[("min.insync.replicas", "2")])
        .unwrap();
    // min.insync.replicas = RF: one broker down puts it under min ISR while the
    // cluster keeps its metadata quorum (stopping two of three brokers would lose the
    // quorum, and with it every ISR change).
    c.create_topic(STRICT_TOPIC, 1, 3, &[("min.insync.replicas", "3")])
        .unwrap();
    let bootstrap = c.bootstrap();
    produce(&bootstrap, 100);
    commit(&bootstrap, 100);
    consume_some(&bootstrap);
    let coordinator_id = c.group_coordinator(GROUP).unwrap();
    let coordinator = c.index_of(coordinator_id).unwrap();
    let all: Vec<usize> = (0..c.size()).collect();
    // The broker the firing case kills: not the group's coordinator, so the lag stays
    // reported. Its one RF-1 partition goes offline with it.
    let victim = (0..c.size()).find(|&i| i != coordinator).unwrap();
    let victim_id = i32::try_from(victim).unwrap();
    // min.insync.replicas 1: with the cluster's 2 it would count as under min ISR (as on
    // Kafka) and fire in the quiet case.
    c.create_topic(LONELY_TOPIC, 1, 1, &[("min.insync.replicas", "1")])
        .unwrap();
    c.alter_partition_reassignment(LONELY_TOPIC, 0, Some(&[victim_id]))
        .unwrap();
    wait_until_every("lonely-0 on the broker to be killed", WAIT, POLL, || {
        let p = c.partition(LONELY_TOPIC, 0).map_err(|e| e.to_string())?;
        if p.replicas == [victim_id] && p.leader == Some(victim_id) {
            Ok(())
        } else {
            Err(format!("{p:?}"))
        }
    })
    .unwrap();
    c.wait_full_isr(TOPIC, WAIT).unwrap();
    c.wait_full_isr(STRICT_TOPIC, WAIT).unwrap();
    wait_until_every(
        "a quiet cluster with the group's lag reported",
        WAIT,
        POLL,
        || {
            let urp = sum_over(
                &c,
                &all,
                "kafka_server_replicamanager_underreplicatedpartitions",
            )?;
            let controllers = sum_over(
                &c,
                &all,
                "kafka_controller_kafkacontroller_activecontrollercount",
            )?;
            let fenced = sum_over(
                &c,
                &all,
                "kafka_controller_kafkacontroller_fencedbrokercount",
            )?;
            let text = c.metrics(coordinator).map_err(|e| e.to_string())?;
            let lag_reported = text.contains(&format!(
                "kafka_consumergroup_lag{{consumergroup=\"{GROUP}\""
            ));
            if urp == 0.0 && controllers == 1.0 && fenced == 0.0 && lag_reported {
                Ok(())
            } else {
                Err(format!(
                "urp {urp}, controllers {controllers}, fenced {fenced}, lag reported {lag_reported}"
            ))
            }
        },
    )
    .unwrap();
    let mut texts = Vec::new();
    let quiet = scrape_all(&c, &[], &mut texts);

    // The firing case: a lagging group, then one broker (not the group's coordinator)
    // killed.
    produce(&bootstrap, LAG_RECORDS);
    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != victim).collect();
    c.kill9(victim).unwrap();
    wait_until_every("survivors report the lost replica", WAIT, POLL, || {
        let urp = sum_over(&c, &survivors, "kafka_server_replicamanager_underreplicatedpartitions")?;
        let under_min = sum_over(&c, &survivors, "kafka_server_replicamanager_underminisrpartitioncount")?;
        let fenced = sum_over(&c, &survivors, "kafka_controller_kafkacontroller_fencedbrokercount")?;
        let controllers = sum_over(&c, &survivors, "kafka_controller_kafkacontroller_activecontrollercount")?;
        let lag = sum_over(&c, &[coordinator], "kafka_consumergroup_lag")?;
        let offline = sum_over(&c, &survivors, "kafka_controller_kafkacontroller_offlinepartitionscount")?;
        // Every partition of both topics has a replica on the victim.
        if urp >= 7.0 && under_min >= 1.0 && fenced == 1.0 && controllers == 1.0 && lag >= LAG_RECORDS as f64 && offline >= 1.0 {
            Ok(())
        } else {
            Err(format!(
                "urp {urp}, under min isr {under_min}, fenced {fenced}, controllers {controllers}, lag {lag}, offline {offline}"
            ))
        }
    })
    .unwrap();
    let firing = scrape_all(&c, &[victim], &mut texts);

    // The quorum lost: of the two voters left, the active controller is killed too. The
    // last one cannot win an election alone, so no broker reports an active controller.
    let controller = survivors
        .iter()
        .copied()
        .find(|&i| {
            sum_over(
                &c,
                &[i],
                "kafka_controller_kafkacontroller_activecontrollercount",
            )
            .is_ok_and(|n| n == 1.0)
        })
        .unwrap();
    let last = survivors
        .iter()
        .copied()
        .find(|&i| i != controller)
        .unwrap();
    c.kill9(controller).unwrap();
    wait_until_every(
        "the last broker reports no active controller",
        WAIT,
        POLL,
        || {
            let n = sum_over(
                &c,
                &[last],
                "kafka_controller_kafkacontroller_activecontrollercount",
            )?;
            if n == 0.0 {
                Ok(())
            } else {
                Err(format!("active controllers {n}"))
            }
        },
    )
    .unwrap();
    let leaderless = scrape_all(&c, &[victim, controller], &mut texts);

    // Which alerts the scraped state calls for, broker by broker.
    let pods: Vec<String> = all.iter().map(|&i| pod(i)).collect();
    let mut expected: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "KafkaBrokerContainersDown",
            vec![("strom_cluster", CLUSTER)],
        ),
        ("OfflinePartitions", vec![("strom_cluster", CLUSTER)]),
        ("ScrapeProblem", vec![("pod", pods[victim].as_str())]),
        (
            "TooLargeConsumerGroupLag",
            vec![("pod", pods[coordinator].as_str())],
        ),
    ];
    for &i in &survivors {
        let scrape = &firing[i].1;
        if value_of(
            scrape,
            "kafka_server_replicamanager_underreplicatedpartitions",
        ) > 0.0
        {
            expected.push(("UnderReplicatedPartitions", vec![("pod", pods[i].as_str())]));
        }
        if value_of(
            scrape,
            "kafka_server_replicamanager_underminisrpartitioncount",
        ) > 0.0
        {
            expected.push(("UnderMinIsrPartitionCount", vec![("pod", pods[i].as_str())]));
        }
    }
    assert!(expected
        .iter()
        .any(|(a, _)| *a == "UnderReplicatedPartitions"));
    assert!(expected
        .iter()
        .any(|(a, _)| *a == "UnderMinIsrPartitionCount"));
    let expected: Vec<(&str, &[(&str, &str)])> =
        expected.iter().map(|(a, l)| (*a, l.as_slice())).collect();

    let tests = TIMING.file(
        &[&rules],
        vec![
            test_case(
                "quiet: three brokers, full ISRs",
                input_series(&quiet, TIMING.steps()),
                vec![],
            ),
            test_case(
                &format!("firing: broker {victim} killed, group lagging"),
                input_series(&firing, TIMING.steps()),
                expected_firing(&expected),
            ),
            // Everything else firing here follows from two brokers down; this case is
            // about the controller rule alone.
            TIMING.case(
                &format!("quorum lost: brokers {victim} and {controller} killed"),
                input_series(&leaderless, TIMING.steps()),
                vec![TIMING.expr_test(
                    r#"count by (alertname) (ALERTS{alertstate="firing",alertname="AbnormalControllerState"})"#,
                    expected_firing(&[("AbnormalControllerState", &[])]),
                )],
            ),
            volume_case(),
        ],
    );
    let file = work.path().join("rules-test.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&tests).unwrap()).unwrap();
    let (ok, out) = run_promtool(
        [OsStr::new("test"), OsStr::new("rules"), file.as_os_str()],
        work.path(),
    )
    .unwrap();
    // A copy beside promtool, for reading after a failure.
    let copy = promtool_binary()
        .unwrap()
        .with_file_name("last-rules-test.json");
    if std::fs::copy(&file, &copy).is_ok() {
        eprintln!("promtool test file: {}", copy.display());
    }
    assert!(ok, "promtool test rules:\n{out}");
    eprintln!("promtool test rules: {}", out.trim());

    // The dashboard names only metrics these brokers export.
    let mut scrapes = Vec::new();
    for (n, text) in texts.iter().enumerate() {
        let path = work.path().join(format!("scrape-{n}.txt"));
        std::fs::write(&path, text).unwrap();
        scrapes.push(path);
    }
    let dashcheck = promtool_binary().unwrap().with_file_name("dashcheck");
    let dashboard = workspace_root().join("charts/strom-operator/files/grafana-dashboard.json");
    let out = Command::new(&dashcheck)
        .arg("-dashboard")
        .arg(&dashboard)
        .args(&scrapes)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "run {}: {e} (scripts/promtool-build.sh builds it)",
                dashcheck.display()
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "dashcheck:\n{text}");
    eprintln!("{}", text.trim());
}
