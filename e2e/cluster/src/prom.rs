//! Turning scrapes of real brokers into `promtool test rules` input: the scrape itself,
//! the text exposition parsed into samples, the target labels Prometheus's Kubernetes
//! discovery would add, and the test file (JSON, which promtool's YAML reader accepts),
//! and running promtool on it. The pure functions are tested below;
//! `tests/prometheus_rules.rs` and `src/bin/strom-alerts.rs` run them against real brokers
//! and the real promtool.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::binary::workspace_root;
use crate::error::HarnessError;

/// Env variable naming the promtool binary; default `<target>/prom/bin/promtool`, built by
/// `scripts/promtool-build.sh`.
pub const PROMTOOL_ENV: &str = "STROM_PROMTOOL";

/// The promtool to run, or an error naming the build script. Without the env variable:
/// `<target>/prom/bin/promtool`, `<target>` from `CARGO_TARGET_DIR` or the workspace's;
/// failing that, the one in the target directory the running program was built into
/// (`<target>/debug/strom-alerts`, `<target>/debug/deps/<test>`), so a program started
/// by another test suite without cargo's environment still finds it.
pub fn promtool_binary() -> Result<PathBuf, HarnessError> {
    const BELOW_TARGET: &str = "prom/bin/promtool";
    let missing = |path: PathBuf| HarnessError::ToolMissing {
        tool: "promtool".into(),
        path,
        hint: format!("run scripts/promtool-build.sh (or set {PROMTOOL_ENV})"),
    };
    if let Some(p) = std::env::var_os(PROMTOOL_ENV) {
        let path = PathBuf::from(p);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(missing(path))
        };
    }
    let default = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join(BELOW_TARGET);
    if default.is_file() {
        return Ok(default);
    }
    let beside_exe = std::env::current_exe().ok().and_then(|exe| {
        exe.ancestors()
            .skip(1)
            .take(3)
            .map(|dir| dir.join(BELOW_TARGET))
            .find(|p| p.is_file())
    });
    beside_exe.ok_or_else(|| missing(default))
}

/// Runs promtool with `args` in `dir`: whether it exited 0, and its stdout then stderr
/// (where it reports what a failed test got).
pub fn run_promtool<I, S>(args: I, dir: &Path) -> Result<(bool, String), HarnessError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let binary = promtool_binary()?;
    let out = Command::new(&binary)
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| HarnessError::io(format!("run {}", binary.display()), e))?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// Connect and read together. A stopped (SIGSTOP) broker's kernel still accepts the
/// connection and nothing ever answers, so without a bound a scrape would hang; 2 s is
/// far above what a live broker's `/metrics` takes on loopback or a pod network.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET url` as a Prometheus scrape: the text and its samples when it answers 200 with a
/// parsable exposition within `timeout`; anything else is a failed scrape (Prometheus
/// sets `up` 0 for each of these), with the reason.
pub fn scrape(url: &str, timeout: Duration) -> Result<(String, Vec<Sample>), String> {
    let agent = ureq::AgentBuilder::new().timeout(timeout).build();
    let response = match agent.get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(status, _)) => return Err(format!("status {status}")),
        Err(e) => return Err(e.to_string()),
    };
    let text = response.into_string().map_err(|e| e.to_string())?;
    let samples = parse_exposition(&text)?;
    Ok((text, samples))
}

/// The time range of a rule test: rules evaluated every `interval`, the expression tests
/// evaluated at `eval_time`, with every input series held constant until past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub interval: Duration,
    pub eval_time: Duration,
}

impl Timing {
    /// Every `for: 10s` of the chart's rules is met well before 2 m.
    pub const DEFAULT: Timing = Timing {
        interval: Duration::from_secs(15),
        eval_time: Duration::from_secs(120),
    };

    /// At least [`Timing::DEFAULT`], and late enough that a rule with `for: longest_for`,
    /// evaluated every `rule_interval` (its group's `interval`, if longer than ours), is
    /// firing at `eval_time` when its condition holds from the start: the first
    /// evaluation at or after `longest_for` fires, so two intervals of slack suffice.
    pub fn covering(longest_for: Duration, rule_interval: Duration) -> Timing {
        let interval = Timing::DEFAULT.interval;
        let needed = longest_for + 2 * rule_interval.max(interval);
        let eval_time = needed.max(Timing::DEFAULT.eval_time);
        // A whole number of intervals, so the evaluation lands on a sample.
        let n = eval_time.as_millis().div_ceil(interval.as_millis());
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        Timing {
            interval,
            eval_time: interval.saturating_mul(n),
        }
    }

    /// How many intervals each input series repeats its value: two past `eval_time`, so
    /// no series ends at or before it.
    pub fn steps(&self) -> u32 {
        let n = self.eval_time.as_millis() / self.interval.as_millis().max(1);
        u32::try_from(n).unwrap_or(u32::MAX).saturating_add(2)
    }

    /// A `promql_expr_test` entry: `expr` at `eval_time` must give exactly `exp_samples`
    /// (an empty list: no sample at all).
    pub fn expr_test(&self, expr: &str, exp_samples: Vec<Value>) -> Value {
        json!({"expr": expr, "eval_time": prom_duration(self.eval_time), "exp_samples": exp_samples})
    }

    /// One test case over `input_series`, with its expression tests.
    pub fn case(&self, name: &str, input_series: Vec<Value>, expr_tests: Vec<Value>) -> Value {
        json!({
            "name": name,
            "interval": prom_duration(self.interval),
            "input_series": input_series,
            "promql_expr_test": expr_tests,
        })
    }

    /// The whole `promtool test rules` file.
    pub fn file(&self, rule_files: &[&Path], tests: Vec<Value>) -> Value {
        let rule_files: Vec<String> = rule_files
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        json!({
            "rule_files": rule_files,
            "evaluation_interval": prom_duration(self.interval),
            "tests": tests,
        })
    }
}

/// A duration as Prometheus writes one (`120s`, `1500ms`).
pub fn prom_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Parses a Prometheus duration (`10s`, `5m`, `1h30m`, `500ms`; units y w d h m s ms,
/// largest first, as Prometheus's own parser insists).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 24 * 3600 * 1000),
        ("w", 7 * 24 * 3600 * 1000),
        ("d", 24 * 3600 * 1000),
        ("h", 3600 * 1000),
        ("ms", 1),
        ("m", 60 * 1000),
        ("s", 1000),
    ];
    let bad = || format!("not a Prometheus duration: {text:?}");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total: u64 = 0;
    let mut last_unit = usize::MAX;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        // `ms` is listed before `m`, so `5ms` is not read as five minutes and an `s`.
        let (i, (unit, millis)) = UNITS
            .iter()
            .enumerate()
            .find(|(_, (u, _))| rest.starts_with(u))
            .ok_or_else(bad)?;
        let order = if *unit == "ms" { UNITS.len() } else { i };
        if last_unit != usize::MAX && order <= last_unit {
            return Err(bad());
        }
        last_unit = order;
        rest = &rest[unit.len()..];
        total = n
            .checked_mul(*millis)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    Ok(Duration::from_millis(total))
}

/// One sample of a scrape: the series as written in the exposition (`name{labels}` or
/// `name`) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub series: String,
    pub value: f64,
}

impl Sample {
    pub fn name(&self) -> &str {
        self.series
            .split_once('{')
            .map_or(self.series.as_str(), |(n, _)| n)
    }
}

/// Parses the Prometheus text exposition (version 0.0.4, as strom-broker serves it):
/// comment and blank lines are skipped, each other line is `series value [timestamp]`.
/// Label values may hold spaces, so the series ends at the closing brace.
pub fn parse_exposition(text: &str) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, rest) = match line.find('{') {
            Some(open) if line[..open].find(' ').is_none() => {
                let close = closing_brace(line, open)
                    .ok_or_else(|| format!("unterminated labels in {line:?}"))?;
                (&line[..=close], &line[close + 1..])
            }
            _ => line
                .split_once(' ')
                .ok_or_else(|| format!("no value in {line:?}"))?,
        };
        let value = rest
            .split_whitespace()
            .next()
            .ok_or_else(|| format!("no value in {line:?}"))?;
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse::<f64>()
                .map_err(|e| format!("bad value {v:?} in {line:?}: {e}"))?,
        };
        samples.push(Sample {
            series: series.to_string(),
            value,
        });
    }
    Ok(samples)
}

/// Index of the `}` closing the label set opened at `open`, skipping quoted values.
fn closing_brace(line: &str, open: usize) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in line.char_indices().skip_while(|(i, _)| *i <= open) {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

/// `series` with the target labels added in front of its own, as Prometheus attaches
/// them at scrape time.
pub fn with_target_labels(series: &str, target: &BTreeMap<String, String>) -> String {
    let extra: Vec<String> = target
        .iter()
        .map(|(k, v)| format!("{k}={}", quote(v)))
        .collect();
    let extra = extra.join(",");
    match series.split_once('{') {
        Some((name, rest)) if rest.trim_start().starts_with('}') => format!("{name}{{{extra}}}"),
        Some((name, rest)) => format!("{name}{{{extra},{rest}"),
        None => format!("{series}{{{extra}}}"),
    }
}

/// `v` as a double-quoted label value (also a valid PromQL string literal).
pub fn quote(v: &str) -> String {
    let mut out = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What one broker looked like to the scraper in one case.
#[derive(Debug, Clone)]
pub enum Scrape {
    /// The scrape succeeded: `up` is 1 and these samples are the broker's series.
    Up(Vec<Sample>),
    /// The scrape failed (the process is gone): `up` is 0 and no other series exist.
    Down,
}

/// promtool `input_series` for one case: each broker's samples (with its target labels)
/// held constant for `steps` intervals, plus the `up` series Prometheus writes per target.
/// Non-finite values are left out: a constant series notation cannot carry them, and no
/// rule reads a histogram bucket.
pub fn input_series(targets: &[(BTreeMap<String, String>, Scrape)], steps: u32) -> Vec<Value> {
    let mut out = Vec::new();
    for (labels, scrape) in targets {
        let up = if matches!(scrape, Scrape::Up(_)) {
            1
        } else {
            0
        };
        out.push(json!({
            "series": with_target_labels("up", labels),
            "values": format!("{up}x{steps}"),
        }));
        if let Scrape::Up(samples) = scrape {
            for s in samples.iter().filter(|s| s.value.is_finite()) {
                out.push(json!({
                    "series": with_target_labels(&s.series, labels),
                    "values": format!("{}x{steps}", s.value),
                }));
            }
        }
    }
    out
}

/// The expected `count by (alertname, <by>) (ALERTS{alertstate="firing"})` samples.
pub fn expected_firing(alerts: &[(&str, &[(&str, &str)])]) -> Vec<Value> {
    alerts
        .iter()
        .map(|(name, labels)| {
            let mut all = vec![format!("alertname={}", quote(name))];
            all.extend(labels.iter().map(|(k, v)| format!("{k}={}", quote(v))));
            json!({"labels": format!("{{{}}}", all.join(",")), "value": 1})
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP kafka_server_replicamanager_underreplicatedpartitions URP
# TYPE kafka_server_replicamanager_underreplicatedpartitions gauge
kafka_server_replicamanager_underreplicatedpartitions 3
kafka_consumergroup_lag{consumergroup="g 1",partition="0",topic="t"} 1500
kafka_network_requestmetrics_totaltimems_bucket{request="Produce",le="+Inf"} 7
weird{v="a}b \"c\""} 2.5 1700000000000

"#;

    #[test]
    fn parses_the_exposition() {
        let samples = parse_exposition(TEXT).unwrap();
        assert_eq!(samples.len(), 4);
        assert_eq!(
            samples[0],
            Sample {
                series: "kafka_server_replicamanager_underreplicatedpartitions".into(),
                value: 3.0
            }
        );
        assert_eq!(
            samples[1].series,
            r#"kafka_consumergroup_lag{consumergroup="g 1",partition="0",topic="t"}"#
        );
        assert_eq!(samples[1].name(), "kafka_consumergroup_lag");
        assert_eq!(samples[3].series, r#"weird{v="a}b \"c\""}"#);
        assert_eq!(samples[3].value, 2.5);
        assert!(parse_exposition("x{a=\"b\" 1").is_err());
        assert!(parse_exposition("x").is_err());
        assert!(parse_exposition("x one").is_err());
    }

    fn target() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("namespace".to_string(), "ns".to_string()),
            ("pod".to_string(), "c-broker-0".to_string()),
        ])
    }

    #[test]
    fn adds_target_labels() {
        assert_eq!(
            with_target_labels("up", &target()),
            r#"up{namespace="ns",pod="c-broker-0"}"#
        );
        assert_eq!(
            with_target_labels(r#"m{topic="t"}"#, &target()),
            r#"m{namespace="ns",pod="c-broker-0",topic="t"}"#
        );
        assert_eq!(
            with_target_labels("m{}", &target()),
            r#"m{namespace="ns",pod="c-broker-0"}"#
        );
    }

    #[test]
    fn input_series_carry_up_and_drop_non_finite_values() {
        let samples = parse_exposition(TEXT).unwrap();
        let mut down = target();
        down.insert("pod".into(), "c-broker-1".into());
        let series = input_series(&[(target(), Scrape::Up(samples)), (down, Scrape::Down)], 4);
        let texts: Vec<(String, String)> = series
            .iter()
            .map(|v| {
                (
                    v["series"].as_str().unwrap().to_string(),
                    v["values"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            texts[0],
            (
                r#"up{namespace="ns",pod="c-broker-0"}"#.into(),
                "1x4".into()
            )
        );
        assert!(texts.contains(&(
            r#"kafka_consumergroup_lag{namespace="ns",pod="c-broker-0",consumergroup="g 1",partition="0",topic="t"}"#.into(),
            "1500x4".into()
        )));
        assert_eq!(
            texts.last().unwrap(),
            &(
                r#"up{namespace="ns",pod="c-broker-1"}"#.into(),
                "0x4".into()
            )
        );
        assert_eq!(texts.len(), 1 + 4 + 1);
    }

    #[test]
    fn parses_prometheus_durations() {
        let ok = |t: &str| parse_duration(t).unwrap();
        assert_eq!(ok("10s"), Duration::from_secs(10));
        assert_eq!(ok("5m"), Duration::from_secs(300));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("1m500ms"), Duration::from_millis(60_500));
        assert_eq!(ok("1d"), Duration::from_secs(86_400));
        assert_eq!(ok("0"), Duration::ZERO);
        for bad in ["", "10", "s", "1x", "5m1h", "1s1s", "-1s", "1.5m"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn timing_covers_the_longest_for() {
        assert_eq!(Timing::DEFAULT.steps(), 10);
        let short = Duration::from_secs(10);
        let interval = Duration::from_secs(15);
        assert_eq!(Timing::covering(short, interval), Timing::DEFAULT);
        let long = Timing::covering(Duration::from_secs(300), interval);
        assert_eq!(long.eval_time, Duration::from_secs(330));
        assert_eq!(long.steps(), 24);
        // A slow group, and a `for` that is not a multiple of the interval.
        let slow = Timing::covering(Duration::from_secs(100), Duration::from_secs(60));
        assert_eq!(slow.eval_time, Duration::from_secs(225));
    }

    #[test]
    fn builds_the_test_file() {
        let t = Timing::DEFAULT;
        let series = input_series(&[(target(), Scrape::Down)], t.steps());
        let file = t.file(
            &[Path::new("/tmp/x/rules.yaml")],
            vec![t.case("c", series, vec![t.expr_test("up", vec![])])],
        );
        assert_eq!(
            file,
            json!({
                "rule_files": ["/tmp/x/rules.yaml"],
                "evaluation_interval": "15s",
                "tests": [{
                    "name": "c",
                    "interval": "15s",
                    "input_series": [{"series": r#"up{namespace="ns",pod="c-broker-0"}"#, "values": "0x10"}],
                    "promql_expr_test": [{"expr": "up", "eval_time": "120s", "exp_samples": []}],
                }],
            })
        );
        assert_eq!(prom_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn a_silent_listener_is_a_failed_scrape_within_the_timeout() {
        // Accepts (the kernel does, from the backlog) and never answers, like a stopped
        // broker.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/metrics", listener.local_addr().unwrap());
        let start = std::time::Instant::now();
        let err = scrape(&url, Duration::from_millis(300)).unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "took {:?}",
            start.elapsed()
        );
        assert!(!err.is_empty());
        drop(listener);
        assert!(scrape(&url, Duration::from_millis(300)).is_err());
    }

    #[test]
    fn expected_firing_samples() {
        assert_eq!(
            expected_firing(&[("ScrapeProblem", &[("pod", "c-broker-1")])]),
            vec![json!({"labels": r#"{alertname="ScrapeProblem",pod="c-broker-1"}"#, "value": 1})]
        );
    }
}
