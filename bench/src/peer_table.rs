//! The side-by-side Markdown table of `strom-bench peer`: each figure for Strom and
//! for Apache Kafka, the ratio Strom/Kafka, and which side it favours.

use std::fmt::Write;

use crate::broker::Rss;
use crate::kafka::{LatencyResult, ProduceResult};
use crate::peer::{SideResult, PRODUCE_RUNS};
use crate::perf_tools::{ConsumerPerf, ProducerPerf};
use crate::report::machine_line;
use crate::Report;

/// Within this share of each other two figures count as even (run-to-run noise on
/// this machine is larger than that).
const EVEN_WITHIN: f64 = 0.05;

#[derive(Clone, Copy)]
enum Better {
    Higher,
    Lower,
}

struct Table {
    s: String,
}

impl Table {
    fn row(
        &mut self,
        label: &str,
        strom: Option<f64>,
        kafka: Option<f64>,
        unit: &str,
        better: Better,
    ) {
        let cell = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{} {unit}", num(v)));
        let (ratio, verdict) = match (strom, kafka) {
            (Some(s), Some(k)) if k > 0.0 => {
                let ratio = s / k;
                let ahead = match better {
                    Better::Higher => ratio > 1.0,
                    Better::Lower => ratio < 1.0,
                };
                let verdict = if (ratio - 1.0).abs() <= EVEN_WITHIN {
                    "even"
                } else if ahead {
                    "Strom ahead"
                } else {
                    "**Strom behind**"
                };
                (format!("{ratio:.2}"), verdict)
            }
            _ => (String::new(), ""),
        };
        let better = match better {
            Better::Higher => "higher",
            Better::Lower => "lower",
        };
        let _ = writeln!(
            self.s,
            "| {label} | {} | {} | {ratio} | {better} | {verdict} |",
            cell(strom),
            cell(kafka)
        );
    }
}

/// Three significant digits or so, without exponent.
fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn mb(r: Option<Rss>) -> Option<f64> {
    r.map(|r| r.rss_kib as f64 * 1024.0 / 1e6)
}

fn produce<'a>(s: &'a SideResult, partitions: i32, acks: &str) -> Option<&'a ProduceResult> {
    s.produce
        .iter()
        .find(|p| p.partitions == partitions && p.acks == acks)
}

fn latency_rows(t: &mut Table, what: &str, l: (Option<&LatencyResult>, Option<&LatencyResult>)) {
    for (name, q) in [
        (
            "p50",
            (|l: &LatencyResult| l.p50_ms) as fn(&LatencyResult) -> f64,
        ),
        ("p99", |l| l.p99_ms),
        ("p99.9", |l| l.p999_ms),
    ] {
        t.row(
            &format!("{what}: {name}"),
            l.0.map(q),
            l.1.map(q),
            "ms",
            Better::Lower,
        );
    }
}

pub fn markdown(r: &Report) -> String {
    let mut t = Table { s: machine_line(r) };
    if let Some(d) = r.disk_fsync_mbps {
        let _ = writeln!(
            t.s,
            "Limits in the same run: disk write + fsync {d:.0} MB/s (median of {}), loopback TCP {} MB/s.\n",
            r.disk_runs.len(),
            r.loopback_mbps.map_or("?".into(), |l| format!("{l:.0}"))
        );
    }
    let Some(peer) = &r.peer else {
        for e in &r.errors {
            let _ = writeln!(t.s, "\nERROR: {e}");
        }
        return t.s;
    };
    let side = |name: &str| peer.sides.iter().find(|s| s.side == name);
    let empty = SideResult::default();
    let (s, k) = (
        side("Strom").unwrap_or(&empty),
        side("Apache Kafka").unwrap_or(&empty),
    );
    t.s.push_str("| Figure | Strom | Apache Kafka 4.4 | Strom/Kafka | Better | |\n");
    t.s.push_str("|---|---|---|---|---|---|\n");
    let first = |x: &SideResult| x.startups.first().map(|t| t.metadata_ms);
    t.row(
        "Start-up, fresh directory: spawn → first metadata answer (Kafka: formatting included)",
        first(s),
        first(k),
        "ms",
        Better::Lower,
    );
    t.row(
        &format!(
            "Start-up, restart on that directory after SIGTERM (median of {})",
            s.startups.len().max(k.startups.len()).saturating_sub(1)
        ),
        s.restart_median_ms,
        k.restart_median_ms,
        "ms",
        Better::Lower,
    );
    t.row(
        "Resident memory, idle (whole process tree)",
        mb(s.rss_idle),
        mb(k.rss_idle),
        "MB",
        Better::Lower,
    );
    for (partitions, acks) in PRODUCE_RUNS {
        let (ps, pk) = (produce(s, partitions, acks), produce(k, partitions, acks));
        let mib = ps.or(pk).map_or(0, |p| p.bytes_acked >> 20);
        t.row(
            &format!("Produce, librdkafka, 1 KiB records, {partitions} partition(s), acks={acks} ({mib} MiB)"),
            ps.map(|p| p.mbps),
            pk.map(|p| p.mbps),
            "MB/s",
            Better::Higher,
        );
    }
    t.row(
        "Broker CPU per GiB produced (the four runs above)",
        SideResult::cpu_secs_per_gib(&s.produce),
        SideResult::cpu_secs_per_gib(&k.produce),
        "s",
        Better::Lower,
    );
    let rates: Vec<u64> = s
        .latency
        .iter()
        .chain(&k.latency)
        .map(|l| l.target_rate)
        .fold(Vec::new(), |mut v, r| {
            if !v.contains(&r) {
                v.push(r);
            }
            v
        });
    for rate in rates {
        fn at(x: &SideResult, rate: u64) -> Option<&LatencyResult> {
            x.latency.iter().find(|l| l.target_rate == rate)
        }
        let secs = at(s, rate).or(at(k, rate)).map_or(0.0, |l| l.secs);
        latency_rows(
            &mut t,
            &format!("Latency acks=1, 1 partition, {rate} rec/s for {secs:.0} s, open loop"),
            (at(s, rate), at(k, rate)),
        );
    }
    t.row(
        "Resident memory after the produce and latency runs",
        mb(s.rss_after_load),
        mb(k.rss_after_load),
        "MB",
        Better::Lower,
    );
    for partitions in [1, 6] {
        let at = |x: &SideResult| {
            x.consume
                .iter()
                .find(|c| c.partitions == partitions)
                .map(|c| c.mbps)
        };
        t.row(
            &format!("Consume, librdkafka, one assigned consumer, {partitions} partition(s), from offset 0"),
            at(s),
            at(k),
            "MB/s",
            Better::Higher,
        );
    }
    fn pp(x: &SideResult) -> Option<&ProducerPerf> {
        x.perf_producer.as_ref()
    }
    let size = r.args.as_ref().map_or(1024, |a| a.record_size) as f64;
    t.row(
        "kafka-producer-perf-test (Java producer, acks=1, its defaults otherwise): throughput",
        pp(s).map(|p| p.records_per_sec * size / 1e6),
        pp(k).map(|p| p.records_per_sec * size / 1e6),
        "MB/s",
        Better::Higher,
    );
    t.row(
        "kafka-producer-perf-test: p50 latency (at full throughput)",
        pp(s).map(|p| p.p50_ms),
        pp(k).map(|p| p.p50_ms),
        "ms",
        Better::Lower,
    );
    t.row(
        "kafka-producer-perf-test: p99 latency (at full throughput)",
        pp(s).map(|p| p.p99_ms),
        pp(k).map(|p| p.p99_ms),
        "ms",
        Better::Lower,
    );
    t.row(
        "kafka-producer-perf-test: broker CPU per GiB",
        pp(s).and_then(|p| {
            Some(p.cpu.as_ref()?.broker_cpu_secs / (p.records as f64 * size / (1u64 << 30) as f64))
        }),
        pp(k).and_then(|p| {
            Some(p.cpu.as_ref()?.broker_cpu_secs / (p.records as f64 * size / (1u64 << 30) as f64))
        }),
        "s",
        Better::Lower,
    );
    fn pc(x: &SideResult) -> Option<&ConsumerPerf> {
        x.perf_consumer.as_ref()
    }
    t.row(
        "kafka-consumer-perf-test (Java consumer, a group of one): fetch throughput after the join",
        pc(s).map(|c| c.fetch_records_per_sec * size / 1e6),
        pc(k).map(|c| c.fetch_records_per_sec * size / 1e6),
        "MB/s",
        Better::Higher,
    );
    t.row(
        "kafka-consumer-perf-test: group join (rebalance.time.ms)",
        pc(s).map(|c| c.rebalance_ms),
        pc(k).map(|c| c.rebalance_ms),
        "ms",
        Better::Lower,
    );
    t.row(
        "Shutdown on SIGTERM",
        s.shutdown_ms,
        k.shutdown_ms,
        "ms",
        Better::Lower,
    );
    t.row(
        "RF=3: three nodes, spawn → metadata lists all three",
        s.rf3_ready_ms,
        k.rf3_ready_ms,
        "ms",
        Better::Lower,
    );
    fn rf3(x: &SideResult) -> Option<&ProduceResult> {
        x.rf3_produce.as_ref()
    }
    let mib = rf3(s).or(rf3(k)).map_or(0, |p| p.bytes_acked >> 20);
    t.row(
        &format!("RF=3 produce, acks=all, min.insync.replicas=2, 1 partition ({mib} MiB)"),
        rf3(s).map(|p| p.mbps),
        rf3(k).map(|p| p.mbps),
        "MB/s",
        Better::Higher,
    );
    t.row(
        "RF=3: CPU of the three brokers per GiB produced",
        SideResult::cpu_secs_per_gib(rf3(s)),
        SideResult::cpu_secs_per_gib(rf3(k)),
        "s",
        Better::Lower,
    );
    fn rf3l(x: &SideResult) -> Option<&LatencyResult> {
        x.rf3_latency.as_ref()
    }
    let rate = rf3l(s).or(rf3l(k)).map_or(0, |l| l.target_rate);
    latency_rows(
        &mut t,
        &format!("RF=3 latency acks=all, {rate} rec/s, open loop"),
        (rf3l(s), rf3l(k)),
    );
    let rf3c = |x: &SideResult| x.rf3_consume.as_ref().map(|c| c.mbps);
    t.row(
        "RF=3: consume from the leader, from offset 0",
        rf3c(s),
        rf3c(k),
        "MB/s",
        Better::Higher,
    );
    t.row(
        "RF=3: resident memory of the three nodes after the runs",
        mb(s.rf3_rss_after),
        mb(k.rf3_rss_after),
        "MB",
        Better::Lower,
    );
    let isr = |x: &SideResult| {
        x.rf3_isr_during_produce
            .as_ref()
            .and_then(|i| i.smallest_isr)
            .map_or("?".into(), |n| n.to_string())
    };
    let heap = &peer.kafka_heap;
    let _ = writeln!(
        t.s,
        "\nSmallest ISR seen during the RF=3 produce run: Strom {}, Apache Kafka {}. \
         Apache Kafka: heap -Xms{heap} -Xmx{heap} per node, G1, its default flush policy (none: the \
         page cache), KRaft combined mode; Strom: release build, its defaults (no flush either). \
         Both on the same disk under the same base dir; the client (librdkafka, and the Java \
         tools) runs on the same 2 cores. MB = 10^6 bytes of record payload.{}",
        isr(s),
        isr(k),
        if peer.quick {
            " **--quick: a smoke run, not figures to quote.**"
        } else {
            ""
        }
    );
    for e in &r.errors {
        let _ = writeln!(t.s, "\nERROR: {e}");
    }
    t.s
}
