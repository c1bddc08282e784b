//! The side-by-side Markdown table of `strom-bench peer`: each figure for Strom and
//! for Apache Kafka, the ratio Strom/Kafka, and which side it favours.

use std::fmt::Write;

use crate::broker::Rss;
use crate::kafka::{LatencyResult, ProduceResult};
use crate::peer::{SideResult, PRODUCE_RUNS};
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

/// Reads one quantile of a latency run.
type Quantile = fn(&LatencyResult) -> f64;

struct Table<'a> {
    s: String,
    strom: &'a SideResult,
    kafka: &'a SideResult,
}

impl Table<'_> {
    /// One figure: `value` read from each side.
    fn fig(
        &mut self,
        label: &str,
        unit: &str,
        better: Better,
        value: impl Fn(&SideResult) -> Option<f64>,
    ) {
        let (strom, kafka) = (value(self.strom), value(self.kafka));
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

    /// p50, p99 and p99.9 of the latency run `run` picks from each side.
    fn latency(&mut self, what: &str, run: impl Fn(&SideResult) -> Option<&LatencyResult>) {
        let quantiles: [(&str, Quantile); 3] = [
            ("p50", |l| l.p50_ms),
            ("p99", |l| l.p99_ms),
            ("p99.9", |l| l.p999_ms),
        ];
        for (name, q) in quantiles {
            self.fig(&format!("{what}: {name}"), "ms", Better::Lower, |x| {
                run(x).map(q)
            });
        }
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

fn latency_at(s: &SideResult, rate: u64) -> Option<&LatencyResult> {
    s.latency.iter().find(|l| l.target_rate == rate)
}

pub fn markdown(r: &Report) -> String {
    let mut head = machine_line(r);
    if let Some(d) = r.disk_fsync_mbps {
        let _ = writeln!(
            head,
            "Limits in the same run: disk write + fsync {d:.0} MB/s (median of {}), loopback TCP {} MB/s.\n",
            r.disk_runs.len(),
            r.loopback_mbps.map_or("?".into(), |l| format!("{l:.0}"))
        );
    }
    let Some(peer) = &r.peer else {
        for e in &r.errors {
            let _ = writeln!(head, "\nERROR: {e}");
        }
        return head;
    };
    let side = |name: &str| peer.sides.iter().find(|s| s.side == name);
    let empty = SideResult::default();
    let mut t = Table {
        s: head,
        strom: side("Strom").unwrap_or(&empty),
        kafka: side("Apache Kafka").unwrap_or(&empty),
    };
    let (s, k) = (t.strom, t.kafka);
    t.s.push_str("| Figure | Strom | Apache Kafka 4.4 | Strom/Kafka | Better | |\n");
    t.s.push_str("|---|---|---|---|---|---|\n");
    t.fig(
        "Start-up, fresh directory: spawn → first metadata answer (Kafka: formatting included)",
        "ms",
        Better::Lower,
        |x| x.startups.first().map(|t| t.metadata_ms),
    );
    t.fig(
        &format!(
            "Start-up, restart on that directory after SIGTERM (median of {})",
            s.startups.len().max(k.startups.len()).saturating_sub(1)
        ),
        "ms",
        Better::Lower,
        |x| x.restart_median_ms,
    );
    t.fig(
        "Resident memory, idle (whole process tree)",
        "MB",
        Better::Lower,
        |x| mb(x.rss_idle),
    );
    for (partitions, acks) in PRODUCE_RUNS {
        let mib = produce(s, partitions, acks)
            .or(produce(k, partitions, acks))
            .map_or(0, |p| p.bytes_acked >> 20);
        t.fig(
            &format!("Produce, librdkafka, 1 KiB records, {partitions} partition(s), acks={acks} ({mib} MiB)"),
            "MB/s",
            Better::Higher,
            |x| produce(x, partitions, acks).map(|p| p.mbps),
        );
    }
    t.fig(
        "Broker CPU per GiB produced (the four runs above)",
        "s",
        Better::Lower,
        |x| SideResult::cpu_secs_per_gib(&x.produce),
    );
    let mut rates: Vec<u64> = Vec::new();
    for l in s.latency.iter().chain(&k.latency) {
        if !rates.contains(&l.target_rate) {
            rates.push(l.target_rate);
        }
    }
    for rate in rates {
        let secs = latency_at(s, rate)
            .or(latency_at(k, rate))
            .map_or(0.0, |l| l.secs);
        t.latency(
            &format!("Latency acks=1, 1 partition, {rate} rec/s for {secs:.0} s, open loop"),
            |x| latency_at(x, rate),
        );
    }
    t.fig(
        "Resident memory after the produce and latency runs",
        "MB",
        Better::Lower,
        |x| mb(x.rss_after_load),
    );
    for partitions in [1, 6] {
        t.fig(
            &format!("Consume, librdkafka, one assigned consumer, {partitions} partition(s), from offset 0"),
            "MB/s",
            Better::Higher,
            |x| {
                x.consume
                    .iter()
                    .find(|c| c.partitions == partitions)
                    .map(|c| c.mbps)
            },
        );
    }
    let size = r.args.as_ref().map_or(1024, |a| a.record_size) as f64;
    let gib = (1u64 << 30) as f64;
    t.fig(
        "kafka-producer-perf-test (Java producer, acks=1, its defaults otherwise): throughput",
        "MB/s",
        Better::Higher,
        |x| Some(x.perf_producer.as_ref()?.records_per_sec * size / 1e6),
    );
    t.fig(
        "kafka-producer-perf-test: p50 latency (at full throughput)",
        "ms",
        Better::Lower,
        |x| Some(x.perf_producer.as_ref()?.p50_ms),
    );
    t.fig(
        "kafka-producer-perf-test: p99 latency (at full throughput)",
        "ms",
        Better::Lower,
        |x| Some(x.perf_producer.as_ref()?.p99_ms),
    );
    t.fig(
        "kafka-producer-perf-test: broker CPU per GiB",
        "s",
        Better::Lower,
        |x| {
            let p = x.perf_producer.as_ref()?;
            Some(p.cpu.as_ref()?.broker_cpu_secs / (p.records as f64 * size / gib))
        },
    );
    t.fig(
        "kafka-consumer-perf-test (Java consumer, a group of one): fetch throughput after the join",
        "MB/s",
        Better::Higher,
        |x| Some(x.perf_consumer.as_ref()?.fetch_records_per_sec * size / 1e6),
    );
    t.fig(
        "kafka-consumer-perf-test: group join (rebalance.time.ms)",
        "ms",
        Better::Lower,
        |x| Some(x.perf_consumer.as_ref()?.rebalance_ms),
    );
    t.fig("Shutdown on SIGTERM", "ms", Better::Lower, |x| {
        x.shutdown_ms
    });
    t.fig(
        "RF=3: three nodes, spawn → metadata lists all three",
        "ms",
        Better::Lower,
        |x| x.rf3_ready_ms,
    );
    let mib = s
        .rf3_produce
        .as_ref()
        .or(k.rf3_produce.as_ref())
        .map_or(0, |p| p.bytes_acked >> 20);
    t.fig(
        &format!("RF=3 produce, acks=all, min.insync.replicas=2, 1 partition ({mib} MiB)"),
        "MB/s",
        Better::Higher,
        |x| x.rf3_produce.as_ref().map(|p| p.mbps),
    );
    t.fig(
        "RF=3: CPU of the three brokers per GiB produced",
        "s",
        Better::Lower,
        |x| SideResult::cpu_secs_per_gib(x.rf3_produce.as_ref()),
    );
    let rate = s
        .rf3_latency
        .as_ref()
        .or(k.rf3_latency.as_ref())
        .map_or(0, |l| l.target_rate);
    t.latency(
        &format!("RF=3 latency acks=all, {rate} rec/s, open loop"),
        |x| x.rf3_latency.as_ref(),
    );
    t.fig(
        "RF=3: consume from the leader, from offset 0",
        "MB/s",
        Better::Higher,
        |x| x.rf3_consume.as_ref().map(|c| c.mbps),
    );
    t.fig(
        "RF=3: resident memory of the three nodes after the runs",
        "MB",
        Better::Lower,
        |x| mb(x.rf3_rss_after),
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
