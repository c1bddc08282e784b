//! The Markdown table printed at the end of a run.

use std::fmt::Write;

use crate::groups::GroupConsumeResult;
use crate::kafka::ProduceResult;
use crate::rebalance::{RebalanceResult, Stat, BROKER_DELAY_TARGET_MS};
use crate::replicated::{IsrSeen, ReplicatedResult};
use crate::Report;

/// Targets from the performance issue.
pub const PRODUCE_RATIO_TARGET: f64 = 0.5;
pub const IDLE_RSS_TARGET_BYTES: f64 = 50e6;
pub const STARTUP_TARGET_MS: f64 = 200.0;

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**not met**"
    }
}

/// "broker N% / client M%" of one core; a cluster's brokers are listed one by one
/// after their sum.
pub fn cpu(c: Option<&crate::broker::CpuUse>) -> String {
    c.map_or_else(
        || "?".to_string(),
        |c| {
            let machine = c
                .machine_busy_pct
                .map_or(String::new(), |m| format!(", machine {m:.0}% of all cores"));
            let dirty = match (c.dirty_mib_before, c.dirty_mib_after) {
                (Some(b), Some(a)) => format!("; dirty page cache {b} → {a} MiB"),
                _ => String::new(),
            };
            let brokers = if c.per_broker_pct.is_empty() {
                format!("broker {:.0}%", c.broker_pct)
            } else {
                let each: Vec<String> = c
                    .per_broker_pct
                    .iter()
                    .map(|p| format!("{p:.0}%"))
                    .collect();
                format!("brokers {:.0}% ({})", c.broker_pct, each.join(" + "))
            };
            format!("{brokers} / client {:.0}%{machine}{dirty}", c.client_pct)
        },
    )
}

fn mb(kib: u64) -> String {
    format!(
        "{:.1} MB ({:.1} MiB)",
        kib as f64 * 1024.0 / 1e6,
        kib as f64 / 1024.0
    )
}

/// One paragraph on the machine and how busy it was before the run.
pub fn machine_line(r: &Report) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let _ = writeln!(
        s,
        "Machine: {} cores ({}), {:.1} GiB RAM, kernel {}, data on {} ({}, {}) at {}; \
         busy before the run: {} of all cores (loadavg {})\n",
        m.nproc,
        m.cpu_model.as_deref().unwrap_or("?"),
        m.mem_total_kib.unwrap_or(0) as f64 / 1024.0 / 1024.0,
        m.kernel.as_deref().unwrap_or("?"),
        m.base_dir_device.as_deref().unwrap_or("?"),
        m.base_dir_fstype.as_deref().unwrap_or("?"),
        match m.base_dir_rotational {
            Some(true) => "rotational",
            Some(false) => "non-rotational",
            None => "rotational: ?",
        },
        m.base_dir,
        m.background_busy_pct
            .map_or("?".to_string(), |b| format!("{b:.0}%")),
        m.loadavg_at_start.as_deref().unwrap_or("?"),
    );
    s
}

pub fn markdown(r: &Report) -> String {
    let mut s = machine_line(r);
    let m = &r.machine;
    s.push_str("| Measure | Result | Limit / target (same run) | Ratio | Verdict |\n");
    s.push_str("|---|---|---|---|---|\n");
    let mut row = |a: &str, b: String, c: String, d: String, e: &str| {
        let _ = writeln!(s, "| {a} | {b} | {c} | {d} | {e} |");
    };
    let disk = r.disk_fsync_mbps;
    let spread = |f: fn(&crate::DiskResult) -> f64| {
        let v: Vec<String> = r.disk_runs.iter().map(|d| format!("{:.0}", f(d))).collect();
        v.join(", ")
    };
    if let (Some(d), Some(pc), Some(first)) = (disk, r.disk_page_cache_mbps, r.disk_runs.first()) {
        row(
            &format!(
                "Disk sequential write, 1 MiB chunks, {} MiB, incl. fsync (**the disk limit**; median of {} runs: {} MB/s)",
                first.bytes >> 20,
                r.disk_runs.len(),
                spread(|d| d.fsync_mbps)
            ),
            format!("{d:.1} MB/s"),
            String::new(),
            String::new(),
            "",
        );
        row(
            &format!(
                "Disk sequential write, page cache only, no fsync (runs: {} MB/s)",
                spread(|d| d.page_cache_mbps)
            ),
            format!("{pc:.1} MB/s"),
            String::new(),
            String::new(),
            "",
        );
    }
    if let Some(l) = r.loopback_mbps {
        row(
            "Loopback TCP copy, one stream (**the network limit**)",
            format!("{l:.1} MB/s"),
            String::new(),
            String::new(),
            "",
        );
    }
    if let Some(med) = r.startup_median_metadata_ms {
        let runs: Vec<String> = r
            .startups
            .iter()
            .map(|t| format!("{:.1}", t.metadata_ms))
            .collect();
        row(
            &format!(
                "Start-up: spawn → TCP connect + metadata answered (median of {}; runs: {} ms)",
                r.startups.len(),
                runs.join(", ")
            ),
            format!("{med:.1} ms"),
            format!("< {STARTUP_TARGET_MS:.0} ms"),
            String::new(),
            verdict(med < STARTUP_TARGET_MS),
        );
    }
    if let Some(med) = r.startup_median_tcp_ms {
        row(
            "Start-up: spawn → TCP connect only (median)",
            format!("{med:.1} ms"),
            String::new(),
            String::new(),
            "",
        );
    }
    if let Some(rss) = r.rss_idle {
        row(
            "Idle RSS (VmRSS after start-up + idle)",
            mb(rss.rss_kib),
            "< 50 MB".into(),
            String::new(),
            verdict(((rss.rss_kib * 1024) as f64) < IDLE_RSS_TARGET_BYTES),
        );
    }
    if let Some(rep) = &r.replicated {
        replicated_rows(&mut row, rep);
    }
    for p in &r.produce {
        if let Some(rep) = &r.replicated {
            replicated_produce_row(&mut row, rep, p);
            continue;
        }
        // The target is for one partition.
        let primary = p.acks == "1" && p.partitions == 1;
        let what = if p.acks == "0" {
            "sent (no acks)"
        } else {
            "acknowledged"
        };
        row(
            &format!(
                "Produce acks={}, {} B records, {} partition{}, {} producer{} ({} MiB {what}; CPU {}{})",
                p.acks,
                p.record_size,
                p.partitions,
                if p.partitions == 1 { "" } else { "s" },
                p.producers,
                if p.producers == 1 { "" } else { "s" },
                p.bytes_acked >> 20,
                cpu(p.cpu.as_ref()),
                if p.records_failed > 0 || p.timed_out {
                    format!(", {} failed, timed out: {}", p.records_failed, p.timed_out)
                } else {
                    String::new()
                }
            ),
            format!("{:.1} MB/s ({:.0} rec/s)", p.mbps, p.records_per_sec),
            match disk {
                Some(d) if primary => format!("disk {d:.1} MB/s; target ≥ 50%"),
                Some(d) => format!("disk {d:.1} MB/s"),
                None => "disk: not measured".into(),
            },
            disk.map(|d| format!("{:.0}%", 100.0 * p.mbps / d))
                .unwrap_or_default(),
            match disk {
                Some(d) if primary => verdict(p.mbps / d >= PRODUCE_RATIO_TARGET),
                _ => "",
            },
        );
    }
    if let Some(l) = &r.latency {
        row(
            &format!(
                "Produce latency acks={}, send → delivery callback, at {} rec/s (achieved {:.0}) for {:.0} s; CPU {}",
                l.acks,
                l.target_rate,
                l.achieved_rate,
                l.secs,
                cpu(l.cpu.as_ref())
            ),
            format!(
                "p50 {:.2} / p99 {:.2} / p99.9 {:.2} / max {:.2} ms",
                l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms
            ),
            String::new(),
            String::new(),
            "",
        );
    }
    if let Some(c) = &r.consume {
        row(
            &format!(
                "Consume from offset 0, one consumer, {} assigned partition{} ({} records, {} payload mismatches, {} duplicates; CPU {})",
                c.partitions,
                if c.partitions == 1 { "" } else { "s" },
                c.records,
                c.payload_mismatches,
                c.duplicates,
                cpu(c.cpu.as_ref())
            ),
            format!("{:.1} MB/s ({:.0} rec/s)", c.mbps, c.records_per_sec),
            r.loopback_mbps
                .map(|l| format!("loopback {l:.1} MB/s"))
                .unwrap_or_default(),
            r.loopback_mbps
                .map(|l| format!("{:.0}%", 100.0 * c.mbps / l))
                .unwrap_or_default(),
            "",
        );
    }
    if let Some(gc) = &r.group_consume {
        groups_rows(&mut row, r, gc);
    }
    for rb in &r.rebalance {
        rebalance_rows(&mut row, rb);
    }
    if let Some(rss) = r.rss_after_produce {
        row(
            "RSS after produce runs",
            mb(rss.rss_kib),
            String::new(),
            String::new(),
            "",
        );
    }
    if let Some(rss) = r.rss_after_consume.or(r.rss_after_produce) {
        row(
            "RSS after consume / peak RSS (VmHWM)",
            format!("{} / {}", mb(rss.rss_kib), mb(rss.hwm_kib)),
            String::new(),
            String::new(),
            "",
        );
    }
    if let Some(ms) = r.shutdown_ms {
        row(
            "Shutdown on SIGTERM",
            format!("{ms:.1} ms"),
            String::new(),
            String::new(),
            "",
        );
    }
    let a = &r.admin;
    if r.rss_idle.is_some() {
        let st = |c: Option<u16>| c.map_or("no answer".to_string(), |c| c.to_string());
        let _ = writeln!(
            s,
            "\nAdmin HTTP: /ready {}, /health {}, /metrics {}",
            st(a.ready),
            st(a.health),
            st(a.metrics)
        );
    }
    s.push_str(
        "\nMB = 10^6 bytes; throughput counts record payload bytes only. \
         CPU: broker and client as a percentage of one core \
         (the machine has NPROC), client = this harness with librdkafka on the same machine; \
         machine = all busy time, kernel writeback and softirq included, as a percentage of all cores.\n"
            .replace("NPROC", &m.nproc.to_string())
            .as_str(),
    );
    for e in &r.errors {
        let _ = writeln!(s, "\nERROR: {e}");
    }
    s
}

type Row<'a> = dyn FnMut(&str, String, String, String, &str) + 'a;

fn groups_rows(row: &mut Row<'_>, r: &Report, g: &GroupConsumeResult) {
    let single = r.consume.as_ref().filter(|c| c.topic == g.topic);
    let mut limit = Vec::new();
    let mut ratio = Vec::new();
    if let Some(l) = r.loopback_mbps {
        limit.push(format!("loopback {l:.1} MB/s"));
        ratio.push(format!("{:.0}% of loopback", 100.0 * g.mbps / l));
    }
    if let Some(c) = single {
        limit.push(format!("one assigned consumer {:.1} MB/s", c.mbps));
        ratio.push(format!("{:.2}× one consumer", g.mbps / c.mbps));
    }
    row(
        &format!(
            "Group consume, {} members (librdkafka, a thread each), {} partitions, first assignment → last record ({} of {} records, {} duplicates, {} payload mismatches; per member {:?}; CPU {})",
            g.members,
            g.partitions,
            g.records,
            g.records_expected,
            g.duplicates,
            g.payload_mismatches,
            g.records_per_member,
            cpu(g.cpu.as_ref())
        ),
        format!("{:.1} MB/s ({:.0} rec/s)", g.mbps, g.records_per_sec),
        limit.join("; "),
        ratio.join("; "),
        "",
    );
    row(
        &format!(
            "Group consume: subscribe() → group first stable (every member assigned, each partition owned once; {} Assign callbacks; group.initial.rebalance.delay.ms={}, heartbeat.interval.ms={})",
            g.assigns,
            g.initial_rebalance_delay_ms
                .map_or("?".to_string(), |d| d.to_string()),
            g.heartbeat_ms
        ),
        format!(
            "{} (first assignment {})",
            ms_opt(g.stable_ms),
            ms_opt(g.first_assignment_ms)
        ),
        String::new(),
        String::new(),
        "",
    );
}

fn ms_opt(v: Option<f64>) -> String {
    v.map_or("?".into(), |v| format!("{v:.1} ms"))
}

fn p50_max(s: &Stat) -> String {
    match (s.p50, s.max) {
        (Some(p), Some(m)) => format!("p50 {p:.1} / max {m:.1} ms"),
        _ => "–".into(),
    }
}

fn rebalance_rows(row: &mut Row<'_>, rb: &RebalanceResult) {
    let config: Vec<String> = rb
        .member_config
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let hb = &rb.heartbeat_gap_ms;
    row(
        &format!(
            "Rebalance runs, {}: broker with group.initial.rebalance.delay.ms=0; {} partitions; members: librdkafka, default (eager) assignors, heartbeat.interval.ms={}{}; group formed in {}. Gaps between a member's heartbeats while stable ({} gaps):",
            rb.variant,
            rb.partitions,
            rb.heartbeat_ms,
            if config.is_empty() {
                String::new()
            } else {
                format!(", {}", config.join(", "))
            },
            ms_opt(rb.formation_ms),
            hb.n
        ),
        match (hb.p50, hb.p90, hb.max) {
            (Some(a), Some(b), Some(c)) => format!("p50 {a:.0} / p90 {b:.0} / max {c:.0} ms"),
            _ => "–".into(),
        },
        String::new(),
        String::new(),
        "",
    );
    for (kind, s) in [("join", &rb.join), ("leave", &rb.leave)] {
        let what = if kind == "join" {
            format!("a member joins ({} → {})", rb.members, rb.members + 1)
        } else {
            format!(
                "the oldest member leaves ({} → {}, clean close)",
                rb.members + 1,
                rb.members
            )
        };
        row(
            &format!(
                "Rebalance, {what}: event → every partition owned again ({} of {} completed)",
                s.completed, s.events
            ),
            p50_max(&s.total_ms),
            format!("≤ longest JoinGroup round trip + {BROKER_DELAY_TARGET_MS:.0} ms"),
            format!("total − JoinGroup rtt: {}", p50_max(&s.beyond_join_rtt_ms)),
            &format!(
                "{} in {}/{}",
                verdict(s.completed > 0 && s.within_target == s.completed),
                s.within_target,
                s.completed
            ),
        );
        row(
            &format!("… {kind}: the clients' JoinGroup round trip (longest / shortest of each rebalance, librdkafka's rtt)"),
            format!(
                "{}; shortest {}",
                p50_max(&s.join_rtt_max_ms),
                p50_max(&s.join_rtt_min_ms)
            ),
            String::new(),
            String::new(),
            "",
        );
        row(
            &format!("… {kind}: the clients' SyncGroup round trip (longest / shortest)"),
            format!(
                "{}; shortest {}",
                p50_max(&s.sync_rtt_max_ms),
                p50_max(&s.sync_rtt_min_ms)
            ),
            String::new(),
            String::new(),
            "",
        );
        row(
            &format!("… {kind}: broker-side delay on the critical path (shortest JoinGroup + shortest SyncGroup round trip: the requests the broker answers without parking)"),
            p50_max(&s.broker_side_ms),
            format!("≤ {BROKER_DELAY_TARGET_MS:.0} ms"),
            String::new(),
            match s.broker_side_ms.max {
                Some(m) => verdict(m <= BROKER_DELAY_TARGET_MS),
                None => "",
            },
        );
        row(
            &format!(
                "… {kind}: broker log, from the event: \"preparing rebalance\" / \"join phase complete\" / \"group is stable\" (p50; {} events needed more than one rebalance)",
                s.multi_rebalance_events
            ),
            format!(
                "{} / {} / {}",
                ms_opt(s.broker_prepare_ms.p50),
                ms_opt(s.broker_join_complete_ms.p50),
                ms_opt(s.broker_stable_ms.p50)
            ),
            String::new(),
            String::new(),
            "",
        );
    }
}

fn isr_seen(s: Option<&IsrSeen>) -> String {
    s.map_or("not watched".into(), |s| {
        let changes: Vec<String> = s
            .changes
            .iter()
            .map(|p| format!("leader {} ISR {:?}", p.leader, p.isr))
            .collect();
        format!(
            "smallest ISR {} in {} metadata polls ({} failed): {}",
            s.smallest_isr.map_or("?".into(), |n| n.to_string()),
            s.polls,
            s.failed_polls,
            changes.join(" → ")
        )
    })
}

fn replicated_rows(row: &mut Row<'_>, rep: &ReplicatedResult) {
    row(
        &format!(
            "Cluster: {} brokers (each a controller voter) on loopback, one disk; topic {} with 1 partition, replication factor {}, min.insync.replicas {}; spawn → every /ready 200",
            rep.brokers, rep.topic, rep.replication_factor, rep.min_insync_replicas
        ),
        ms_opt(rep.ready_ms),
        String::new(),
        String::new(),
        "",
    );
    row(
        "CreateTopics → ISR holds every replica (metadata)",
        format!(
            "{}; {}",
            ms_opt(rep.topic_isr_full_ms),
            rep.at_start.as_ref().map_or("?".into(), |p| format!(
                "leader {}, replicas {:?}, ISR {:?}",
                p.leader, p.replicas, p.isr
            ))
        ),
        String::new(),
        String::new(),
        "",
    );
    row(
        "ISR during the throughput run",
        isr_seen(rep.during_produce.as_ref()),
        String::new(),
        String::new(),
        "",
    );
    row(
        "ISR during the latency run",
        isr_seen(rep.during_latency.as_ref()),
        String::new(),
        String::new(),
        "",
    );
    let offsets: Vec<String> = rep
        .replica_log_end_offsets
        .iter()
        .map(|o| o.map_or("?".into(), |o| o.to_string()))
        .collect();
    row(
        "After the throughput run: leader's high watermark; each replica's log end offset (/metrics, node id order)",
        format!(
            "{}; {}",
            rep.high_watermark_after_produce
                .map_or("?".into(), |h| h.to_string()),
            offsets.join(", ")
        ),
        String::new(),
        String::new(),
        "",
    );
    if let Some(q) = &rep.produce_run_requests {
        let per = |total: f64, n: f64| if n > 0.0 { total / n } else { f64::NAN };
        let bytes = rep.produce_bytes as f64;
        let followers = rep.replication_factor.saturating_sub(1) as f64;
        row(
            "Requests during the throughput run (all brokers' /metrics): the producer's Produce; the followers' Fetch (no consumer runs then). Payload per request; broker time per request, receipt → response",
            format!(
                "Produce {:.0} ({:.0} KiB, {:.1} ms each); Fetch {:.0} ({:.0} KiB, {:.1} ms each)",
                q.produce_requests,
                per(bytes, q.produce_requests) / 1024.0,
                per(q.produce_ms_sum, q.produce_requests),
                q.fetch_requests,
                per(bytes * followers, q.fetch_requests) / 1024.0,
                per(q.fetch_ms_sum, q.fetch_requests),
            ),
            String::new(),
            String::new(),
            "",
        );
    }
    row(
        "ISR shrinks / expands over all brokers during the load runs (/metrics)",
        format!(
            "{} / {}",
            rep.isr_shrinks.map_or("?".into(), |n| n.to_string()),
            rep.isr_expands.map_or("?".into(), |n| n.to_string())
        ),
        String::new(),
        String::new(),
        "",
    );
    if !rep.rss_after.is_empty() {
        let rss: Vec<String> = rep.rss_after.iter().map(|r| mb(r.rss_kib)).collect();
        row(
            "RSS of each broker after the runs",
            rss.join(", "),
            String::new(),
            String::new(),
            "",
        );
    }
}

/// A produce run against the cluster: compared with the disk limit divided by the
/// replication factor, since every replica writes to the same disk.
fn replicated_produce_row(row: &mut Row<'_>, rep: &ReplicatedResult, p: &ProduceResult) {
    let rf = rep.replication_factor;
    row(
        &format!(
            "Replicated produce acks={}, RF {rf}, idempotence {}, {} B records, 1 partition, {} producer{} ({} MiB acknowledged; CPU {}{})",
            p.acks,
            if rep.idempotence { "on" } else { "off" },
            p.record_size,
            p.producers,
            if p.producers == 1 { "" } else { "s" },
            p.bytes_acked >> 20,
            cpu(p.cpu.as_ref()),
            if p.records_failed > 0 || p.timed_out {
                format!(", {} failed, timed out: {}", p.records_failed, p.timed_out)
            } else {
                String::new()
            }
        ),
        format!("{:.1} MB/s ({:.0} rec/s)", p.mbps, p.records_per_sec),
        rep.limit_mbps.map_or("disk: not measured".into(), |l| {
            format!(
                "disk/{rf} {l:.1} MB/s; target ≥ {:.0}%",
                100.0 * rep.target_ratio
            )
        }),
        rep.ratio
            .map(|x| format!("{:.0}%", 100.0 * x))
            .unwrap_or_default(),
        match rep.met {
            Some(met) => verdict(met),
            None if rep.ratio.is_some() && rep.acks != "all" => "target is for acks=all",
            None if rep.ratio.is_some() => "not comparable: the ISR shrank",
            None => "",
        },
    );
}
