//! A cluster's identity and its durability rules, with real `strom-broker` processes:
//! `strom-broker format` and the refusal of a node from another cluster; `acks=all` with
//! `min.insync.replicas` when a replica is gone (NOT_ENOUGH_REPLICAS), the ISR shrinking
//! through the controller, and the metrics that report it.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::cluster::Cluster;
use common::kafka::{consume, try_produce, Rec};
use common::{free_port, http_get, poll_until, wait_for};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

fn broker_bin() -> &'static str {
    env!("CARGO_BIN_EXE_strom-broker")
}

fn format(dir: &Path, node: i32, cluster_id: &str) -> std::process::Output {
    Command::new(broker_bin())
        .args(["format", "--cluster-id", cluster_id])
        .args(["--override", &format!("node.id={node}")])
        .args(["--override", &format!("log.dirs={}", dir.display())])
        .output()
        .expect("run strom-broker format")
}

#[test]
fn format_sets_the_cluster_id_and_a_foreign_node_is_refused() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dirs: Vec<_> = (0..3).map(|i| temp.path().join(format!("b{i}"))).collect();
    for (i, dir) in dirs.iter().enumerate() {
        let id = if i < 2 { "cluster-a" } else { "cluster-b" };
        let out = format(dir, i as i32, id);
        assert!(out.status.success(), "{out:?}");
        let meta = std::fs::read_to_string(dir.join("meta.properties")).expect("meta.properties");
        assert!(meta.contains(&format!("cluster.id={id}")), "{meta}");
    }
    // Formatting again for another cluster is refused; a bad id is refused outright.
    let again = format(&dirs[0], 0, "cluster-z");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("cluster-a"));
    assert!(!format(&dirs[0], 0, "bad id!").status.success());

    let controller_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let voters = (0..3)
        .map(|i| format!("{i}@127.0.0.1:{}", controller_ports[i]))
        .collect::<Vec<_>>()
        .join(",");
    let mut children = Vec::new();
    let mut admin_ports = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let admin = free_port();
        admin_ports.push(admin);
        let log = std::fs::File::create(temp.path().join(format!("b{i}.log"))).expect("log");
        let child = Command::new(broker_bin())
            .args(["--override", &format!("node.id={i}")])
            .args(["--override", &format!("log.dirs={}", dir.display())])
            .args([
                "--override",
                &format!(
                    "listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
                    free_port(),
                    controller_ports[i]
                ),
            ])
            .args(["--override", &format!("controller.quorum.voters={voters}")])
            .args(["--override", &format!("admin.listener=127.0.0.1:{admin}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start strom-broker");
        children.push(child);
    }
    struct KillOnDrop(Vec<std::process::Child>);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            for c in &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let mut children = KillOnDrop(children);
    let log = |i: usize| {
        std::fs::read_to_string(temp.path().join(format!("b{i}.log"))).unwrap_or_default()
    };
    for (i, admin) in admin_ports.iter().take(2).enumerate() {
        let ready = poll_until(Duration::from_secs(60), || {
            (http_get(*admin, "/ready").map(|(s, _)| s) == Some(200)).then_some(())
        });
        assert!(
            ready.is_some(),
            "timed out waiting for broker {i} ready; logs:\n--- b0\n{}\n--- b1\n{}\n--- b2\n{}",
            log(0),
            log(1),
            log(2)
        );
    }
    // The node of cluster-b is refused by both voters of cluster-a and exits with why.
    let status = wait_for("the foreign node to exit", Duration::from_secs(60), || {
        children.0[2].try_wait().expect("try_wait")
    });
    assert!(!status.success(), "exit status {status}");
    let foreign = log(2);
    assert!(
        foreign.contains("cluster-a") && foreign.contains("cluster-b"),
        "the refusal names both ids:\n{foreign}"
    );
    assert!(
        log(0).contains("cluster-b"),
        "the voter logs the refusal too"
    );
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

/// (leader, isr) of partition 0 of `topic` as the cluster reports it.
fn leader_and_isr(bootstrap: &str, topic: &str) -> Option<(i32, Vec<i32>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .ok()?;
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .ok()?;
    let p = md.topics().first()?.partitions().first()?;
    let mut isr = p.isr().to_vec();
    isr.sort_unstable();
    Some((p.leader(), isr))
}

fn metric(port: u16, name: &str) -> Option<f64> {
    let (_, body) = http_get(port, "/metrics")?;
    common::metric_value(&body, name)
}

#[test]
fn acks_all_honours_min_insync_replicas_when_the_isr_shrinks() {
    let mut cluster = Cluster::start(3, &[("replica.lag.time.max.ms", "2000")]);
    let bootstrap = cluster.node(0).bootstrap();
    let topic = "strict";
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let created = runtime
        .block_on(admin(&bootstrap).create_topics(
            &[NewTopic::new(topic, 1, TopicReplication::Fixed(3)).set("min.insync.replicas", "3")],
            &AdminOptions::new(),
        ))
        .expect("create topics");
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");
    let all = |v: &str| Rec::keyed("k", v);
    let acks_all = [("acks", "all"), ("message.timeout.ms", "4000")];
    let ok = try_produce(&bootstrap, topic, &acks_all, &[all("one"), all("two")]);
    assert!(ok.iter().all(|r| r.is_ok()), "{ok:?}\n{}", cluster.logs());

    // Stop a follower: the ISR shrinks after the lag time, and acks=all is refused.
    let (leader, _) = leader_and_isr(&bootstrap, topic).expect("metadata");
    let follower = (0..3).find(|i| *i != leader).expect("a follower");
    cluster.nodes[follower as usize].kill();
    let leader_node = cluster.node(leader);
    let bootstrap = leader_node.bootstrap();
    wait_for("the ISR to shrink", Duration::from_secs(30), || {
        let (_, isr) = leader_and_isr(&bootstrap, topic)?;
        (isr.len() == 2).then_some(())
    });
    // Without retries librdkafka reports the broker's error instead of a final timeout.
    let no_retries = [
        ("acks", "all"),
        ("retries", "0"),
        ("enable.idempotence", "false"),
    ];
    // The metadata can show the shrink a moment before the leader's partition state
    // has it; a write in that moment is appended and then refused as
    // NOT_ENOUGH_REPLICAS_AFTER_APPEND (written, so readable later, as on Kafka). Once
    // the leader has the shrink, acks=all is refused before anything is written.
    let mut written_anyway = 0;
    wait_for(
        "acks=all refused before the append",
        Duration::from_secs(10),
        || {
            let refused = try_produce(&bootstrap, topic, &no_retries, &[all("three")]);
            match &refused[0] {
                Ok(_) => panic!("acks=all must fail below min ISR"),
                Err(e) if e.to_lowercase().contains("not enough in-sync replicas") => Some(()),
                Err(e) if e.contains("insufficient number of in-sync replicas") => {
                    written_anyway += 1;
                    None
                }
                Err(e) => panic!("acks=all refused with an unexpected error: {e}"),
            }
        },
    );
    // acks=1 still works: min.insync.replicas only binds acks=all.
    let one = try_produce(&bootstrap, topic, &[("acks", "1")], &[all("four")]);
    assert!(one[0].is_ok(), "{one:?}");
    // The leader reports the shrink; its metrics follow its own image, so wait for them.
    let admin_port = leader_node.admin_port;
    wait_for("the leader's ISR metrics", Duration::from_secs(10), || {
        let under_min = metric(
            admin_port,
            "kafka_server_replicamanager_underminisrpartitioncount",
        );
        let urp = metric(
            admin_port,
            "kafka_server_replicamanager_underreplicatedpartitions",
        );
        let shrinks = metric(admin_port, "kafka_server_replicamanager_isrshrinks_total");
        (under_min == Some(1.0) && urp == Some(1.0) && shrinks >= Some(1.0)).then_some(())
    });

    // Everything acknowledged is readable, and nothing refused was exposed.
    let got = consume(&bootstrap, topic, 1, 3 + written_anyway);
    let values: Vec<String> = got
        .iter()
        .map(|g| String::from_utf8_lossy(&g.value).to_string())
        .collect();
    let mut expected = vec!["one", "two"];
    expected.extend(std::iter::repeat_n("three", written_anyway));
    expected.push("four");
    assert_eq!(values, expected);
    let _ = runtime;
}
