//! The end of every scenario: read the topic back, check the history, stop the brokers,
//! compare the in-sync replicas' bytes.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::checker::{check_history, check_replicas, Report};
use crate::cluster::Cluster;
use crate::error::Result;
use crate::history::History;
use crate::reader::read_partitions;
use crate::segments::read_replica_prefix;
use crate::wait::wait_until;

const SETTLE: Duration = Duration::from_secs(30);
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Worth a note: controlled shutdown of an idle cluster should take moments.
const SLOW_STOP: Duration = Duration::from_secs(5);
/// After this, brokers still shutting down are killed (and noted): the files below the
/// high watermark are final either way, and a suite of scenarios cannot wait out every
/// broker's controlled-shutdown timeout.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// Checks `history` against `topic` (partitions `0..partitions`) and stops every broker.
/// Harness failures (a broker never answering) are errors; correctness findings are in
/// the report.
pub fn verify(
    cluster: &mut Cluster,
    topic: &str,
    partitions: i32,
    history: &History,
) -> Result<Report> {
    let mut report = Report {
        topic: topic.to_string(),
        acked: history.acked(),
        failed: history.sends.len() - history.acked(),
        ..Report::default()
    };

    // Replica comparison is most telling with every replica back in sync; a replica
    // that does not return is left out of it and noted.
    let infos = match cluster.wait_full_isr(topic, SETTLE) {
        Ok(infos) => infos,
        Err(e) => {
            report
                .notes
                .push(format!("ISR not full after {SETTLE:?}: {e}"));
            wait_until("a leader for every partition", SETTLE, || {
                let ps = cluster.partitions(topic).map_err(|e| e.to_string())?;
                if ps.len() == partitions as usize && ps.iter().all(|p| p.leader.is_some()) {
                    Ok(ps)
                } else {
                    Err(format!("{ps:?}"))
                }
            })?
        }
    };
    let hws: BTreeMap<i32, i64> = wait_until("high watermarks", SETTLE, || {
        cluster
            .high_watermarks(topic, partitions)
            .map_err(|e| e.to_string())
    })?;

    let observed = read_partitions(&cluster.bootstrap(), topic, &hws, READ_TIMEOUT)?;
    report.records_read = observed.values().map(Vec::len).sum();
    report.violations.extend(check_history(history, &observed));
    let offsetless = history.acked_without_offset();
    if offsetless > 0 {
        report.notes.push(format!(
            "{offsetless} sends were acknowledged without an offset (librdkafka's implicit acks); \
             each was looked for in its whole partition"
        ));
    }

    // The ISR as of the read; the replicas' files are only stable once stopped.
    let isr: BTreeMap<i32, Vec<i32>> = infos.iter().map(|p| (p.partition, p.isr.clone())).collect();
    let stopping = std::time::Instant::now();
    for (i, result) in cluster.stop_all_within(STOP_DEADLINE) {
        if let Err(e) = result {
            report
                .notes
                .push(format!("broker {i} did not stop cleanly: {e}"));
        }
    }
    if stopping.elapsed() > SLOW_STOP {
        report.notes.push(format!(
            "stopping the brokers with SIGTERM took {:?}",
            stopping.elapsed()
        ));
    }
    for (&partition, &hw) in &hws {
        let mut replicas = Vec::new();
        for &node in isr.get(&partition).map(Vec::as_slice).unwrap_or_default() {
            let prefix = cluster
                .index_of(node)
                .and_then(|i| cluster.partition_dir(i, topic, partition))
                .map_err(|e| e.to_string())
                .and_then(|dir| read_replica_prefix(&dir, hw).map_err(|e| e.to_string()));
            replicas.push((node, prefix));
        }
        report.replicas_compared += replicas.len();
        report
            .violations
            .extend(check_replicas(partition, hw, &replicas));
    }
    Ok(report)
}
