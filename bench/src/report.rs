//! The Markdown table printed at the end of a run.

use std::fmt::Write;

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

/// "broker N% / client M%" of one core.
pub fn cpu(c: Option<crate::broker::CpuUse>) -> String {
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
            format!(
                "broker {:.0}% / client {:.0}%{machine}{dirty}",
                c.broker_pct, c.client_pct
            )
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

pub fn markdown(r: &Report) -> String {
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
    for p in &r.produce {
        let primary = p.acks == "1";
        let what = if p.acks == "0" {
            "sent (no acks)"
        } else {
            "acknowledged"
        };
        row(
            &format!(
                "Produce acks={}, {} B records, 1 partition, {} producer{} ({} MiB {what}; CPU {}{})",
                p.acks,
                p.record_size,
                p.producers,
                if p.producers == 1 { "" } else { "s" },
                p.bytes_acked >> 20,
                cpu(p.cpu),
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
                cpu(l.cpu)
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
                "Consume from offset 0, assigned partition ({} records, {} payload mismatches, {} duplicates; CPU {})",
                c.records,
                c.payload_mismatches,
                c.duplicates,
                cpu(c.cpu)
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
