//! Disk full under an acks=all load (issue 11): a broker's second log directory sits on
//! a small loop-mounted ext4 that the test fills to the last block. That directory must go
//! offline (KIP-112) without ever leaving bytes the log does not account for, the rest of
//! the broker keeps serving, the directory comes back when space is freed (also across
//! kill -9), and the history checker finds every acknowledged record where it was
//! acknowledged. On three brokers the full broker's replicas leave their ISRs and its
//! leaderships move, with no error reaching the producer, and the chart's
//! OfflineLogDirectoryCount alert fires on the brokers' scrapes (Prometheus's rule engine)
//! while the directory is offline and is quiet once it is back.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{assert_clean, small_fs_available, Timer, FAULT_DEADLINE};
use strom_client::admin::Outcome;
use strom_client::admin_log_dirs::LogDirDescription;
use strom_e2e_cluster::binary::workspace_root;
use strom_e2e_cluster::small_fs::SmallFs;
use strom_e2e_cluster::wait::wait_until;
use strom_e2e_cluster::{verify, Cluster, ClusterOptions, LoadGenerator, LoadOptions};

const TOPIC: &str = "full";
const OFFLINE_DIRS: &str = "kafka_log_logmanager_offlinelogdirectorycount";
const KAFKA_STORAGE_ERROR: i16 = 56;
/// What the filler leaves free: the load fills the rest within seconds.
const LEAVE_FREE: u64 = 64 * 1024;
/// Fast enough to fill the last blocks quickly, light enough for two shared cores.
const LOAD_RATE: u32 = 1000;
/// Small segments, so the load also rolls (creates files) on the full disk.
const SEGMENT_BYTES: &str = "262144";

fn offline_dirs(c: &Cluster, i: usize) -> Option<f64> {
    c.metric(i, OFFLINE_DIRS).ok().flatten()
}

fn wait_offline_dirs(c: &Cluster, i: usize, want: f64, timeout: Duration) {
    wait_until(
        &format!("broker {i} to report {want} offline log dirs"),
        timeout,
        || match offline_dirs(c, i) {
            Some(v) if v == want => Ok(()),
            other => Err(format!("{OFFLINE_DIRS} = {other:?}")),
        },
    )
    .unwrap();
}

/// Whether the alerting rule OfflineLogDirectoryCount (the chart's rules file) is
/// `expect` ("firing" or "quiet") on the brokers' scrapes now, as Prometheus's rule engine
/// decides it (`strom-alerts`, which runs `promtool test rules`).
fn offline_dir_alert_is(c: &Cluster, expect: &str) -> Result<(), String> {
    let rules = workspace_root().join("charts/strom-operator/files/prometheus-rules.yaml");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strom-alerts"));
    cmd.arg("--rules").arg(&rules).args([
        "--alert",
        "OfflineLogDirectoryCount",
        "--expect",
        expect,
    ]);
    for i in 0..c.size() {
        let addr = c.admin_addr(i).map_err(|e| e.to_string())?;
        cmd.arg("--target")
            .arg(format!("strom-e2e/disk-broker-{i}=http://{addr}/metrics"));
    }
    let out = cmd.output().map_err(|e| format!("run strom-alerts: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match out.status.code() {
        Some(0) => Ok(()),
        Some(1) => Err(format!("not {expect}:\n{text}")),
        _ => panic!("strom-alerts could not evaluate the rule:\n{text}"),
    }
}

/// Broker `i`'s log directories by path, as DescribeLogDirs reports them.
type LogDirs = BTreeMap<String, Outcome<LogDirDescription>>;

fn log_dirs(c: &Cluster, i: usize) -> LogDirs {
    c.describe_log_dirs(i).unwrap()
}

fn dir_of<'a>(dirs: &'a LogDirs, path: &Path) -> &'a Outcome<LogDirDescription> {
    let wanted = path.display().to_string();
    dirs.get(&wanted)
        .unwrap_or_else(|| panic!("DescribeLogDirs lists no {wanted}: {dirs:?}"))
}

/// The partitions of `TOPIC` broker `i` keeps in `dir`, as DescribeLogDirs reports them.
fn partitions_in(c: &Cluster, i: usize, dir: &Path) -> Vec<i32> {
    let dirs = log_dirs(c, i);
    let described = dir_of(&dirs, dir)
        .as_ref()
        .unwrap_or_else(|r| panic!("{} is offline: {r}", dir.display()));
    // The map is ordered by partition, so the list comes out sorted.
    described
        .replicas
        .keys()
        .filter(|(t, _)| t == TOPIC)
        .map(|(_, p)| *p)
        .collect()
}

/// While the small directory is offline: the broker still answers, says why it is not
/// ready, and DescribeLogDirs reports the error for that directory only.
fn assert_offline_reported(c: &Cluster, i: usize, small: &Path) {
    assert_eq!(
        c.admin_get(i, "/health").unwrap().0,
        200,
        "the broker stays up"
    );
    let (status, body) = c.admin_get(i, "/ready").unwrap();
    assert_eq!(status, 503, "not ready with an offline log dir: {body}");
    assert!(body.contains("offline"), "/ready says why: {body}");
    let dirs = log_dirs(c, i);
    assert_eq!(
        dir_of(&dirs, small).as_ref().err().map(|r| r.code),
        Some(KAFKA_STORAGE_ERROR),
        "{dirs:?}"
    );
    for (_, d) in dirs
        .iter()
        .filter(|(path, _)| **path != small.display().to_string())
    {
        assert!(d.is_ok(), "other log dirs stay online: {dirs:?}");
    }
}

#[test]
fn disk_full_single_broker_loses_nothing() {
    let t = Timer::start("disk_full_single_broker_loses_nothing");
    if !small_fs_available("disk_full_single_broker_loses_nothing") {
        return;
    }
    let fs = SmallFs::create(32).unwrap();
    let small: PathBuf = fs.path().join("data");
    let options = ClusterOptions::default()
        .with_property("default.replication.factor", "1")
        .with_property("offsets.topic.replication.factor", "1")
        .with_property("min.insync.replicas", "1")
        .with_property("log.segment.bytes", SEGMENT_BYTES)
        .with_extra_log_dir(0, &small);
    let mut c = Cluster::start(1, options).unwrap();
    c.create_topic(TOPIC, 4, 1, &[]).unwrap();
    let on_small = partitions_in(&c, 0, &small);
    assert!(
        !on_small.is_empty() && on_small.len() < 4,
        "partitions spread over both log dirs: {on_small:?} on the small one"
    );
    t.log(format!(
        "partitions {on_small:?} are on the small file system"
    ));
    let load =
        LoadGenerator::start(&c.bootstrap(), TOPIC, LoadOptions::new(1, LOAD_RATE, 4)).unwrap();
    load.wait_more_acks(500, FAULT_DEADLINE).unwrap();

    for round in 1..=2 {
        fs.fill_leaving(LEAVE_FREE).unwrap();
        wait_offline_dirs(&c, 0, 1.0, Duration::from_secs(60));
        t.log(format!("round {round}: the small log dir is offline"));
        assert_offline_reported(&c, 0, &small);
        // The partitions on the other directory keep taking acks=all writes.
        load.wait_more_acks(300, FAULT_DEADLINE).unwrap();
        if round == 2 {
            // A crash while the disk is still full: the broker must come back up (not
            // ready) and recover the directory once space returns.
            c.kill9(0).unwrap();
            c.restart(0).unwrap();
            wait_until("the restarted broker to answer", FAULT_DEADLINE, || {
                c.admin_get(0, "/health")
                    .map(|(s, _)| s)
                    .map_err(|e| e.to_string())
                    .and_then(|s| {
                        if s == 200 {
                            Ok(())
                        } else {
                            Err(format!("{s}"))
                        }
                    })
            })
            .unwrap();
            t.log("round 2: restarted by kill -9 while the disk is full");
        }
        fs.free().unwrap();
        wait_offline_dirs(&c, 0, 0.0, FAULT_DEADLINE);
        c.wait_ready(0).unwrap();
        t.log(format!("round {round}: space freed, the log dir is back"));
        assert_eq!(partitions_in(&c, 0, &small), on_small, "nothing moved");
        load.wait_more_acks(300, FAULT_DEADLINE).unwrap();
        if round == 1 {
            c.kill9(0).unwrap();
            c.restart(0).unwrap();
            c.wait_ready(0).unwrap();
            load.wait_more_acks(300, FAULT_DEADLINE).unwrap();
            t.log("round 1: kill -9 and restart after the disk filled and emptied");
        }
    }
    let history = load.stop().unwrap();
    let report = verify(&mut c, TOPIC, 4, &history).unwrap();
    assert_clean(&report, &history);
}

#[test]
fn disk_full_on_one_of_three_brokers_fails_over() {
    let t = Timer::start("disk_full_on_one_of_three_brokers_fails_over");
    if !small_fs_available("disk_full_on_one_of_three_brokers_fails_over") {
        return;
    }
    let fs = SmallFs::create(32).unwrap();
    let small: PathBuf = fs.path().join("data");
    const FULL: usize = 1;
    let options = ClusterOptions::default()
        .with_property("log.segment.bytes", SEGMENT_BYTES)
        .with_extra_log_dir(FULL, &small);
    let mut c = Cluster::start(3, options).unwrap();
    c.create_topic(TOPIC, 6, 3, &[("min.insync.replicas", "2")])
        .unwrap();
    let on_small = partitions_in(&c, FULL, &small);
    assert!(
        !on_small.is_empty(),
        "broker {FULL} keeps partitions on the small fs"
    );
    t.log(format!(
        "broker {FULL} keeps {on_small:?} on the small file system"
    ));
    let load =
        LoadGenerator::start(&c.bootstrap(), TOPIC, LoadOptions::new(1, LOAD_RATE, 6)).unwrap();
    load.wait_more_acks(500, FAULT_DEADLINE).unwrap();
    let full_id = FULL as i32;

    for round in 1..=2 {
        fs.fill_leaving(LEAVE_FREE).unwrap();
        wait_offline_dirs(&c, FULL, 1.0, Duration::from_secs(60));
        assert_offline_reported(&c, FULL, &small);
        // Its replicas there leave the ISRs and lose their leaderships; the rest stay.
        wait_until(
            "the full broker's replicas to leave their ISRs",
            FAULT_DEADLINE,
            || {
                let parts = c.partitions(TOPIC).map_err(|e| e.to_string())?;
                let stuck: Vec<_> = parts
                    .iter()
                    .filter(|p| on_small.contains(&p.partition))
                    .filter(|p| p.leader == Some(full_id) || p.isr.contains(&full_id))
                    .collect();
                if stuck.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{stuck:?}"))
                }
            },
        )
        .unwrap();
        t.log(format!(
            "round {round}: broker {FULL}'s full replicas left their ISRs"
        ));
        if round == 1 {
            offline_dir_alert_is(&c, "firing").unwrap();
        }
        load.wait_more_acks(500, FAULT_DEADLINE).unwrap();
        if round == 2 {
            c.kill9(FULL).unwrap();
        }
        fs.free().unwrap();
        if round == 2 {
            c.restart(FULL).unwrap();
        }
        c.wait_ready(FULL).unwrap();
        c.wait_full_isr(TOPIC, Duration::from_secs(60)).unwrap();
        load.wait_more_acks(300, FAULT_DEADLINE).unwrap();
        t.log(format!(
            "round {round}: space freed, broker {FULL} back in every ISR"
        ));
        if round == 1 {
            offline_dir_alert_is(&c, "quiet").unwrap();
        }
    }
    let history = load.stop().unwrap();
    assert!(
        history.failures().is_empty(),
        "a full disk on one broker surfaces no error to an acks=all producer: {history}"
    );
    let report = verify(&mut c, TOPIC, 6, &history).unwrap();
    assert_clean(&report, &history);
    drop(c);
    drop(fs);
}
