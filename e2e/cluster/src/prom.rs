//! Turning scrapes of real brokers into `promtool test rules` input: the text exposition
//! parsed into samples, the target labels Prometheus's Kubernetes discovery would add, and
//! the test file (JSON, which promtool's YAML reader accepts). Pure functions, tested
//! below; `tests/prometheus_rules.rs` runs the real brokers and the real promtool.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::binary::workspace_root;
use crate::error::HarnessError;

/// Env variable naming the promtool binary; default `<target>/prom/bin/promtool`, built by
/// `scripts/promtool-build.sh`.
pub const PROMTOOL_ENV: &str = "STROM_PROMTOOL";

/// The promtool to run, or an error naming the build script.
pub fn promtool_binary() -> Result<PathBuf, HarnessError> {
    let path = match std::env::var_os(PROMTOOL_ENV) {
        Some(p) => PathBuf::from(p),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target"))
            .join("prom/bin/promtool"),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(HarnessError::Protocol(format!(
            "promtool not found at {}: run scripts/promtool-build.sh (or set {PROMTOOL_ENV})",
            path.display()
        )))
    }
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

fn quote(v: &str) -> String {
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
    fn expected_firing_samples() {
        assert_eq!(
            expected_firing(&[("ScrapeProblem", &[("pod", "c-broker-1")])]),
            vec![json!({"labels": r#"{alertname="ScrapeProblem",pod="c-broker-1"}"#, "value": 1})]
        );
    }
}
