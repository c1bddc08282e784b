//! Fault scenarios on 3–4 broker clusters: RF 3, min.insync.replicas 2, an acks=all
//! idempotent load running throughout, and the history checker at the end of each. Run
//! by `tests/faults.rs` on plaintext clusters and by `tests/faults_secured.rs` with
//! every listener secured: the including test file's `options()` and
//! `options_namespaces()` give every scenario's base options.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::{assert_clean, netns_available, Timer, FAULT_DEADLINE, RATE};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use strom_client::admin_cluster::Reassignment;
use strom_e2e_cluster::group::{
    offsets_partition_for, CommitWatcher, CommittedOffsets, GroupMember,
};
use strom_e2e_cluster::history::value_for;
use strom_e2e_cluster::wait::wait_until;
use strom_e2e_cluster::wire::produce_direct;
use strom_e2e_cluster::{
    verify, Cluster, ClusterOptions, History, LoadGenerator, LoadOptions, Outcome, SendRecord,
};

const TOPIC: &str = "faults";
const PARTITIONS: i32 = 3;
const SETTLE: Duration = Duration::from_secs(60);

/// A started cluster with the scenario topic and the load running on it.
fn cluster_with_load(
    t: &Timer,
    brokers: usize,
    options: ClusterOptions,
) -> (Cluster, LoadGenerator) {
    let c = Cluster::start(brokers, options).unwrap();
    t.log(format!("{brokers} brokers ready"));
    c.create_topic(TOPIC, PARTITIONS, 3, &[("min.insync.replicas", "2")])
        .unwrap();
    let load =
        LoadGenerator::start(&c.bootstrap(), TOPIC, LoadOptions::new(1, RATE, PARTITIONS)).unwrap();
    load.wait_more_acks(200, FAULT_DEADLINE).unwrap();
    t.log("topic created, load running");
    (c, load)
}

fn sorted(mut v: Vec<i32>) -> Vec<i32> {
    v.sort_unstable();
    v
}

#[test]
fn kill9_leader_repeatedly() {
    let t = Timer::start("kill9_leader_repeatedly");
    let (mut c, load) = cluster_with_load(&t, 3, crate::options());
    for round in 1..=3 {
        let old = c.wait_leader(TOPIC, 0, FAULT_DEADLINE, |_| true).unwrap();
        let victim = c.index_of(old).unwrap();
        t.log(format!(
            "round {round}: kill -9 broker {victim}, leader of {TOPIC}-0"
        ));
        c.kill9(victim).unwrap();
        let new = c
            .wait_leader(TOPIC, 0, FAULT_DEADLINE, |l| l != old)
            .unwrap();
        t.log(format!("round {round}: broker {new} took over {TOPIC}-0"));
        load.wait_more_acks(150, FAULT_DEADLINE).unwrap();
        c.restart(victim).unwrap();
        c.wait_ready(victim).unwrap();
        // The next round kills a leader again; with the victim still out of sync that
        // would leave one in-sync replica, below min.insync.replicas.
        c.wait_full_isr(TOPIC, SETTLE).unwrap();
    }
    let history = load.stop().unwrap();
    t.log("load stopped; verifying");
    let report = verify(&mut c, TOPIC, PARTITIONS, &history).unwrap();
    assert_clean(&report, &history);
}

#[test]
fn rolling_restart_sigterm() {
    let t = Timer::start("rolling_restart_sigterm");
    let (mut c, load) = cluster_with_load(&t, 3, crate::options());
    for i in 0..c.size() {
        let safe = c.wait_restart_safe(i, SETTLE).unwrap();
        t.log(format!("broker {i} restart-safe: {safe}"));
        let status = c.sigterm(i).unwrap();
        assert!(
            status.success(),
            "broker {i} exits 0 after SIGTERM, got {status}"
        );
        load.wait_more_acks(100, FAULT_DEADLINE).unwrap();
        c.restart(i).unwrap();
        c.wait_ready(i).unwrap();
    }
    c.wait_full_isr(TOPIC, SETTLE).unwrap();
    let history = load.stop().unwrap();
    assert!(
        history.failures().is_empty(),
        "a controlled rolling restart surfaces no error to an acks=all producer: {history}"
    );
    t.log("load stopped; verifying");
    let report = verify(&mut c, TOPIC, PARTITIONS, &history).unwrap();
    assert_clean(&report, &history);
}

/// How a whole-cluster restart round stops the brokers.
#[derive(Debug, Clone, Copy)]
enum StopAll {
    Sigterm,
    Kill9,
}

/// Restart rounds per test: a hang seen once in Kubernetes may need several tries.
const WHOLE_CLUSTER_ROUNDS: u32 = 3;
/// Bound for every broker to be ready again after all three start at once.
const WHOLE_CLUSTER_READY: Duration = Duration::from_secs(30);

/// Every broker (each also a metadata quorum voter) stopped at once and started at once
/// on the same ports and data, as a Kubernetes namespace restart does: the quorum must
/// form again from the data dirs alone, every broker must become ready, and the load
/// must be acknowledged again without losing what was acknowledged before.
fn whole_cluster_restart(name: &'static str, how: StopAll) {
    let t = Timer::start(name);
    let options = ClusterOptions {
        ready_timeout: WHOLE_CLUSTER_READY,
        ..crate::options()
    };
    let (mut c, load) = cluster_with_load(&t, 3, options);
    for round in 1..=WHOLE_CLUSTER_ROUNDS {
        c.wait_full_isr(TOPIC, SETTLE).unwrap();
        t.log(format!("round {round}: {how:?} to all brokers at once"));
        let stopping = std::time::Instant::now();
        match how {
            StopAll::Sigterm => {
                for (i, status) in c.stop_all() {
                    let status = status.unwrap();
                    assert!(
                        status.success(),
                        "broker {i} exits 0 after SIGTERM, got {status}"
                    );
                }
            }
            StopAll::Kill9 => {
                c.kill9_all();
            }
        }
        assert!(c.running().is_empty(), "{:?} still running", c.running());
        t.log(format!(
            "round {round}: all stopped after {:.1?}; starting all at once",
            stopping.elapsed()
        ));
        c.start_all().unwrap();
        t.log(format!("round {round}: every broker ready"));
        let controller = wait_until("an active controller", FAULT_DEADLINE, || {
            c.active_controller()
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "none or several report activecontrollercount 1".to_string())
        })
        .unwrap();
        load.wait_more_acks(150, FAULT_DEADLINE).unwrap();
        t.log(format!(
            "round {round}: broker {controller} is the active controller; load acknowledged again"
        ));
    }
    c.wait_full_isr(TOPIC, SETTLE).unwrap();
    let history = load.stop().unwrap();
    t.log("load stopped; verifying");
    let report = verify(&mut c, TOPIC, PARTITIONS, &history).unwrap();
    assert_clean(&report, &history);
}

#[test]
fn whole_cluster_restart_sigterm() {
    whole_cluster_restart("whole_cluster_restart_sigterm", StopAll::Sigterm);
}

#[test]
fn whole_cluster_restart_kill9() {
    whole_cluster_restart("whole_cluster_restart_kill9", StopAll::Kill9);
}

/// Producer id of the raw writes sent straight to the isolated leader.
const PINNED_PRODUCER: u32 = 99;

#[test]
fn leader_partitioned_away() {
    let t = Timer::start("leader_partitioned_away");
    if !netns_available("leader_partitioned_away") {
        return;
    }
    let (mut c, load) = cluster_with_load(&t, 3, crate::options_namespaces());
    let old = c.wait_leader(TOPIC, 0, FAULT_DEADLINE, |_| true).unwrap();
    let isolated = c.index_of(old).unwrap();
    let majority: Vec<usize> = (0..c.size()).filter(|&i| i != isolated).collect();
    t.log(format!("isolating broker {isolated}, leader of {TOPIC}-0"));
    c.isolate(isolated).unwrap();

    // acks=all writes sent to the isolated leader itself, until the majority has elected
    // another leader (and at least a few were tried).
    let mut pinned = Vec::new();
    let mut new_leader = None;
    let started = std::time::Instant::now();
    let mut wire = None;
    while new_leader.is_none() || pinned.len() < 5 {
        assert!(
            started.elapsed() < FAULT_DEADLINE,
            "no new leader for {TOPIC}-0 among {majority:?} within {FAULT_DEADLINE:?}"
        );
        let seq = pinned.len() as u64;
        let value = value_for(PINNED_PRODUCER, seq);
        if wire.is_none() {
            wire = c.wire(isolated).ok();
        }
        let outcome = match wire.as_mut() {
            None => Outcome::Failed {
                error: "cannot connect".into(),
            },
            Some(w) => match produce_direct(w, TOPIC, 0, -1, 1000, std::slice::from_ref(&value)) {
                Ok(Ok(offset)) => Outcome::Acked {
                    offset: Some(offset),
                },
                Ok(Err(code)) => Outcome::Failed {
                    error: code.to_string(),
                },
                Err(e) => {
                    wire = None;
                    Outcome::Failed {
                        error: e.to_string(),
                    }
                }
            },
        };
        pinned.push(SendRecord {
            producer: PINNED_PRODUCER,
            seq,
            partition: 0,
            value,
            outcome,
        });
        if new_leader.is_none() {
            new_leader = majority.iter().find_map(|&i| {
                let view = c.partition_view_from(i, TOPIC, 0).ok().flatten()?;
                view.leader.is_some_and(|l| l != old).then_some((i, view))
            });
        }
    }
    t.log(format!(
        "new leader as seen by the majority: {new_leader:?}"
    ));
    let acked_by_isolated: Vec<&SendRecord> = pinned.iter().filter(|s| s.is_acked()).collect();
    assert!(
        acked_by_isolated.is_empty(),
        "the isolated leader acknowledged acks=all writes it could not replicate: {acked_by_isolated:?}"
    );
    load.wait_more_acks(150, FAULT_DEADLINE).unwrap();

    c.heal(isolated).unwrap();
    t.log("healed");
    c.wait_ready(isolated).unwrap();
    c.wait_full_isr(TOPIC, SETTLE).unwrap();
    let history = load.stop().unwrap().merge(History::new(pinned));
    t.log("load stopped; verifying");
    let report = verify(&mut c, TOPIC, PARTITIONS, &history).unwrap();
    assert_clean(&report, &history);
}

#[test]
fn controller_failover() {
    let t = Timer::start("controller_failover");
    let (mut c, load) = cluster_with_load(&t, 3, crate::options());
    let controller = wait_until("an active controller", FAULT_DEADLINE, || {
        c.active_controller()
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "none or several report activecontrollercount 1".to_string())
    })
    .unwrap();
    t.log(format!("kill -9 active controller {controller}"));
    c.kill9(controller).unwrap();
    let successor = wait_until("a new active controller", FAULT_DEADLINE, || {
        match c.active_controller().map_err(|e| e.to_string())? {
            Some(n) if n != controller => Ok(n),
            other => Err(format!("active controller: {other:?}")),
        }
    })
    .unwrap();
    t.log(format!("broker {successor} is the active controller"));
    // Two brokers are live, so RF 2 is the most a new topic can have right now.
    c.create_topic("created-after-failover", 3, 2, &[]).unwrap();
    load.wait_more_acks(100, FAULT_DEADLINE).unwrap();

    c.restart(controller).unwrap();
    c.wait_ready(controller).unwrap();
    c.create_topic("created-after-restart", 3, 3, &[]).unwrap();
    c.wait_full_isr("created-after-restart", SETTLE).unwrap();
    c.wait_full_isr(TOPIC, SETTLE).unwrap();
    let history = load.stop().unwrap();
    t.log("load stopped; verifying");
    let report = verify(&mut c, TOPIC, PARTITIONS, &history).unwrap();
    assert_clean(&report, &history);
}

/// Replication throttle (static broker properties, bytes/s) for replicas a reassignment
/// adds. Well above the load's ~8 KB/s per partition, so the first move finishes in
/// moments; far below what copying the 1 MiB fill needs, so the second stays in progress.
const THROTTLE_BYTES_PER_SEC: &str = "51200";
/// Writes `count` values of 1 KiB to `partition` (not part of any checked history).
fn fill(bootstrap: &str, topic: &str, partition: i32, count: usize) {
    let producer: BaseProducer = strom_e2e_cluster::security::client_config(bootstrap)
        .set("acks", "all")
        .set("linger.ms", "20")
        .create()
        .unwrap();
    let padding = "x".repeat(1024);
    for n in 0..count {
        let value = format!("fill-{n}-{padding}");
        let mut record = BaseRecord::<(), _>::to(topic)
            .partition(partition)
            .payload(&value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    producer.poll(Duration::from_millis(10));
                    record = r;
                }
            }
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

fn reassignment_of(c: &mut Cluster, partition: i32) -> Option<Reassignment> {
    c.list_partition_reassignments()
        .unwrap()
        .remove(&(TOPIC.to_string(), partition))
}

#[test]
fn reassignment_under_load() {
    let t = Timer::start("reassignment_under_load");
    let options = crate::options()
        .with_property("leader.replication.throttled.rate", THROTTLE_BYTES_PER_SEC)
        .with_property(
            "follower.replication.throttled.rate",
            THROTTLE_BYTES_PER_SEC,
        );
    let (mut c, load) = cluster_with_load(&t, 4, options);
    let original = c.partition(TOPIC, 0).unwrap().replicas;
    let spare = (0..4).find(|b| !original.contains(b)).unwrap();
    let moved = vec![spare, original[0], original[1]];
    t.log(format!(
        "reassigning {TOPIC}-0 from {original:?} to {moved:?}"
    ));
    c.alter_partition_reassignment(TOPIC, 0, Some(&moved))
        .unwrap();
    wait_until("the first reassignment to complete", SETTLE, || {
        let ongoing = reassignment_of(&mut c, 0);
        let p = c.partition(TOPIC, 0).map_err(|e| e.to_string())?;
        if ongoing.is_none()
            && sorted(p.replicas.clone()) == sorted(moved.clone())
            && sorted(p.isr.clone()) == sorted(moved.clone())
        {
            Ok(())
        } else {
            Err(format!("ongoing {ongoing:?}, metadata {p:?}"))
        }
    })
    .unwrap();
    load.wait_more_acks(100, FAULT_DEADLINE).unwrap();

    // A second move, slowed by the throttle, cancelled while it copies.
    fill(&c.bootstrap(), TOPIC, 0, 1024);

    let newcomer = (0..4).find(|b| !moved.contains(b)).unwrap();
    let throttled_target = vec![moved[0], moved[1], newcomer];
    t.log(format!(
        "throttled reassignment of {TOPIC}-0 to {throttled_target:?}, then cancel"
    ));
    c.alter_partition_reassignment(TOPIC, 0, Some(&throttled_target))
        .unwrap();
    let ongoing = wait_until(
        "the throttled reassignment to be listed",
        FAULT_DEADLINE,
        || {
            reassignment_of(&mut c, 0).ok_or_else(|| {
                format!(
                "not listed; metadata {:?} (if it already completed, the throttle had no effect)",
                c.partition(TOPIC, 0)
            )
            })
        },
    )
    .unwrap();
    assert!(ongoing.adding.contains(&newcomer), "{ongoing:?}");
    c.alter_partition_reassignment(TOPIC, 0, None).unwrap();
    wait_until("the cancelled reassignment to revert", SETTLE, || {
        let ongoing = reassignment_of(&mut c, 0);
        let p = c.partition(TOPIC, 0).map_err(|e| e.to_string())?;
        if ongoing.is_none() && sorted(p.replicas.clone()) == sorted(moved.clone()) {
            Ok(())
        } else {
            Err(format!("ongoing {ongoing:?}, metadata {p:?}"))
        }
    })
    .unwrap();

    load.wait_more_acks(100, FAULT_DEADLINE).unwrap();
    c.wait_full_isr(TOPIC, SETTLE).unwrap();
    let history = load.stop().unwrap();
    t.log("load stopped; verifying");
    let report = verify(&mut c, TOPIC, PARTITIONS, &history).unwrap();
    assert_clean(&report, &history);
}

/// Its Java hash is negative (-2021077641), so the group only lands on the partition Kafka
/// would pick (41 of 50) when the broker uses `Utils.abs`, not `hash & 0x7fffffff` (7).
const GROUP: &str = "strom-e2e-failover-group";
const OFFSETS_PARTITIONS: i32 = 50;

#[test]
fn group_survives_coordinator_failover() {
    let t = Timer::start("group_survives_coordinator_failover");
    let (mut c, load) = cluster_with_load(&t, 3, crate::options());
    let bootstrap = c.bootstrap();
    let member = GroupMember::start(&bootstrap, GROUP, TOPIC).unwrap();
    member.wait_consumed_more(300, SETTLE).unwrap();

    let coordinator = c.group_coordinator(GROUP).unwrap();
    let offsets_partition = offsets_partition_for(GROUP, OFFSETS_PARTITIONS);
    t.log(format!("FindCoordinator: {coordinator}; the group lives in __consumer_offsets-{offsets_partition}, whose leader must be the coordinator"));
    c.wait_leader(
        "__consumer_offsets",
        offsets_partition,
        FAULT_DEADLINE,
        |l| l == coordinator,
    )
    .unwrap();
    let offsets = CommittedOffsets::new(&bootstrap, GROUP, TOPIC, PARTITIONS).unwrap();
    let before = wait_until("commits for every partition", FAULT_DEADLINE, || {
        let o = offsets
            .fetch(Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        if o.len() == PARTITIONS as usize {
            Ok(o)
        } else {
            Err(format!("{o:?}"))
        }
    })
    .unwrap();
    let watcher = CommitWatcher::start(
        CommittedOffsets::new(&bootstrap, GROUP, TOPIC, PARTITIONS).unwrap(),
        Duration::from_millis(100),
    )
    .unwrap();

    let victim = c.index_of(coordinator).unwrap();
    t.log(format!(
        "kill -9 broker {victim}, coordinator of {GROUP} (__consumer_offsets-{offsets_partition}); committed {before:?}"
    ));
    c.kill9(victim).unwrap();
    let successor = wait_until("a new group coordinator", FAULT_DEADLINE, || {
        match c.group_coordinator(GROUP) {
            Ok(n) if n != coordinator => Ok(n),
            other => Err(format!("{other:?}")),
        }
    })
    .unwrap();
    t.log(format!("broker {successor} coordinates {GROUP} now"));
    member.wait_consumed_more(300, SETTLE).unwrap();
    let after = wait_until("commits beyond the pre-failover ones", SETTLE, || {
        let o = offsets
            .fetch(Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        if before.iter().all(|(p, b)| o.get(p).is_some_and(|a| a > b)) {
            Ok(o)
        } else {
            Err(format!("before {before:?}, now {o:?}"))
        }
    })
    .unwrap();

    c.restart(victim).unwrap();
    c.wait_ready(victim).unwrap();
    c.wait_full_isr(TOPIC, SETTLE).unwrap();
    let history = load.stop().unwrap();
    let hws: BTreeMap<i32, i64> = c.high_watermarks(TOPIC, PARTITIONS).unwrap();
    member.wait_caught_up(&hws, SETTLE).unwrap();
    let run = member.stop().unwrap();
    let watch = watcher.stop().unwrap();

    t.log(format!(
        "consumed {} records; {} commit errors; {} poll errors; {} transport notices; {} offset samples ({} failed)",
        run.consumed.len(),
        run.commit_errors.len(),
        run.poll_errors.len(),
        run.transport_notices.len(),
        watch.samples,
        watch.fetch_errors
    ));
    assert!(
        watch.regressions.is_empty(),
        "committed offsets went backwards (partition, before, after): {:?}",
        watch.regressions
    );
    for (p, b) in &before {
        assert!(
            after[p] >= *b,
            "partition {p}: committed {b} before, {} after",
            after[p]
        );
    }
    assert!(
        run.forward_jumps().is_empty(),
        "skipped records: {:?}",
        run.forward_jumps()
    );
    for (&p, &hw) in &hws {
        let missing = run.missing_below(p, hw);
        assert!(
            missing.is_empty(),
            "partition {p}: never consumed offsets {missing:?}"
        );
    }
    t.log("load stopped; verifying");
    let report = verify(&mut c, TOPIC, PARTITIONS, &history).unwrap();
    assert_clean(&report, &history);
}
