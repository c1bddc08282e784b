//! `strom-alerts`: whether one Prometheus alert fires on what real brokers report right
//! now, decided by Prometheus's own rule engine (`promtool test rules`), for tests that
//! have brokers but no Prometheus (the Kubernetes scenarios, `e2e/kube/scenarios`).
//!
//! ```text
//! strom-alerts --rules FILE --target NAMESPACE/POD=URL [--target ...] \
//!     --alert NAME --expect firing|quiet [--job strom-broker]
//! ```
//!
//! Each target is scraped once (2 s for connect and read); its samples are held constant
//! over the rule test's range with the `namespace`/`pod`/`job` labels Prometheus's
//! Kubernetes discovery would give them, and `up` is 1 or 0 by whether the scrape
//! succeeded, exactly as `tests/prometheus_rules.rs` does. Exit 0: the alert is as
//! expected at the end of the range; 1: it is not (promtool's output shows what it got);
//! 2: bad arguments, unreadable rules, promtool missing. The work directory (rules, test
//! file, scrapes) is kept and named when the answer is not 0.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde_json::{json, Value};

use strom_e2e_cluster::prom::{
    expected_firing, input_series, parse_duration, prom_duration, quote, run_promtool, scrape,
    Sample, Scrape, Timing, SCRAPE_TIMEOUT,
};

#[derive(Parser, Debug)]
#[command(
    name = "strom-alerts",
    about = "Checks with promtool whether a Prometheus alert fires on scrapes of real brokers"
)]
struct Args {
    /// A Prometheus rules file (`groups:` at the top) or a PrometheusRule object, YAML or
    /// JSON (as `kubectl get prometheusrule NAME -o json` prints it).
    #[arg(long, value_name = "FILE")]
    rules: PathBuf,
    /// A broker to scrape, e.g. strom/my-cluster-broker-0=http://10.244.0.7:9091/metrics.
    #[arg(long = "target", value_name = "NAMESPACE/POD=URL", required = true, value_parser = parse_target)]
    targets: Vec<Target>,
    /// The alert's name (the rule's `alert:`).
    #[arg(long, value_name = "NAME")]
    alert: String,
    #[arg(long, value_enum)]
    expect: Expect,
    /// The `job` label of every target.
    #[arg(long, default_value = "strom-broker")]
    job: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Expect {
    /// Firing for at least one series.
    Firing,
    /// Not firing for any series.
    Quiet,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    namespace: String,
    pod: String,
    url: String,
}

impl Target {
    fn labels(&self, job: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("namespace".to_string(), self.namespace.clone()),
            ("pod".to_string(), self.pod.clone()),
            ("job".to_string(), job.to_string()),
        ])
    }
}

fn parse_target(text: &str) -> Result<Target, String> {
    let usage = || format!("{text:?} is not NAMESPACE/POD=URL");
    let (name, url) = text.split_once('=').ok_or_else(usage)?;
    let (namespace, pod) = name.split_once('/').ok_or_else(usage)?;
    if namespace.is_empty() || pod.is_empty() || pod.contains('/') {
        return Err(usage());
    }
    // The HTTP client is built without TLS: an https URL could never be scraped, and
    // would read as a broker that is down.
    if !url.starts_with("http://") || url.len() == "http://".len() {
        return Err(format!("{text:?}: the URL must be http://HOST:PORT/PATH"));
    }
    Ok(Target {
        namespace: namespace.to_string(),
        pod: pod.to_string(),
        url: url.to_string(),
    })
}

/// The rule groups of a rules file or of a PrometheusRule object.
fn rule_groups(text: &str) -> Result<Value, String> {
    // Both forms could go through the YAML parser, but a JSON error message from the
    // JSON parser is the readable one for `kubectl -o json` output.
    let doc: Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?
    } else {
        serde_yaml::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?
    };
    let groups = doc
        .get("groups")
        .or_else(|| doc.pointer("/spec/groups"))
        .ok_or("neither `groups` at the top (a rules file) nor `spec.groups` (a PrometheusRule)")?;
    match groups.as_array() {
        Some(list) if !list.is_empty() => Ok(groups.clone()),
        _ => Err("`groups` is not a non-empty list".to_string()),
    }
}

/// One alerting rule named like the alert asked about (a name may be used by several).
#[derive(Debug, Clone, PartialEq)]
struct AlertRule {
    expr: String,
    hold: Duration,
    group_interval: Option<Duration>,
}

/// Every rule of `groups` alerting as `alert`; an error, listing the alerts there are,
/// when there is none, since a misspelt name would otherwise pass `--expect quiet`.
fn alert_rules(groups: &Value, alert: &str) -> Result<Vec<AlertRule>, String> {
    let mut found = Vec::new();
    let mut names = Vec::new();
    for group in groups.as_array().into_iter().flatten() {
        let group_interval = match group.get("interval").and_then(Value::as_str) {
            Some(text) => Some(parse_duration(text)?),
            None => None,
        };
        let rules = group.get("rules").and_then(Value::as_array);
        for rule in rules.into_iter().flatten() {
            let Some(name) = rule.get("alert").and_then(Value::as_str) else {
                continue;
            };
            names.push(name.to_string());
            if name != alert {
                continue;
            }
            // promtool check rules, run before this is used, rejects a rule without one.
            let expr = match rule.get("expr") {
                Some(Value::String(s)) => s.trim().to_string(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            let hold = match rule.get("for").and_then(Value::as_str) {
                Some(text) => parse_duration(text)?,
                None => Duration::ZERO,
            };
            found.push(AlertRule {
                expr,
                hold,
                group_interval,
            });
        }
    }
    if found.is_empty() {
        return Err(format!(
            "no alerting rule named {alert:?} (the rules define: {})",
            if names.is_empty() {
                "no alerts".to_string()
            } else {
                names.join(", ")
            }
        ));
    }
    Ok(found)
}

/// The range that lets every rule of the alert reach its `for:`.
fn timing_for(rules: &[AlertRule]) -> Timing {
    let hold = rules.iter().map(|r| r.hold).max().unwrap_or_default();
    let interval = rules
        .iter()
        .filter_map(|r| r.group_interval)
        .max()
        .unwrap_or(Timing::DEFAULT.interval);
    Timing::covering(hold, interval)
}

/// The PromQL that has one sample, value 1, exactly when `alert` fires for some series.
fn firing_expr(alert: &str) -> String {
    format!(
        "max by (alertname) (ALERTS{{alertstate=\"firing\",alertname={}}})",
        quote(alert)
    )
}

/// The `promtool test rules` file: one case over every target's scrape.
fn test_file(
    rules_file: &Path,
    timing: &Timing,
    scrapes: &[(BTreeMap<String, String>, Scrape)],
    alert: &str,
    expect: Expect,
) -> Value {
    let exp_samples = match expect {
        Expect::Firing => expected_firing(&[(alert, &[])]),
        Expect::Quiet => vec![],
    };
    let case = timing.case(
        &format!("{alert} {}", expect_word(expect)),
        input_series(scrapes, timing.steps()),
        vec![timing.expr_test(&firing_expr(alert), exp_samples)],
    );
    timing.file(&[rules_file], vec![case])
}

fn expect_word(expect: Expect) -> &'static str {
    match expect {
        Expect::Firing => "firing",
        Expect::Quiet => "quiet",
    }
}

/// A usage or IO problem: exit 2.
struct Fatal(String);

impl<E: std::fmt::Display> From<E> for Fatal {
    fn from(e: E) -> Fatal {
        Fatal(e.to_string())
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let work = match tempfile::Builder::new().prefix("strom-alerts-").tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("strom-alerts: cannot create a temporary directory: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = run(&args, work.path());
    let code = match outcome {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(Fatal(message)) => {
            eprintln!("strom-alerts: {message}");
            2
        }
    };
    // A usage error found before anything was written leaves nothing worth reading.
    let empty = std::fs::read_dir(work.path()).is_ok_and(|mut d| d.next().is_none());
    if code == 0 || empty {
        if let Err(e) = work.close() {
            eprintln!("strom-alerts: removing the work directory: {e}");
        }
    } else {
        println!("work directory kept: {}", work.keep().display());
    }
    ExitCode::from(code)
}

/// Whether the alert is as expected.
fn run(args: &Args, dir: &Path) -> Result<bool, Fatal> {
    let mut seen = std::collections::BTreeSet::new();
    for t in &args.targets {
        if !seen.insert((&t.namespace, &t.pod)) {
            return Err(Fatal(format!(
                "target {}/{} given twice",
                t.namespace, t.pod
            )));
        }
    }
    let text = std::fs::read_to_string(&args.rules)
        .map_err(|e| Fatal(format!("read {}: {e}", args.rules.display())))?;
    let groups = rule_groups(&text).map_err(|e| Fatal(format!("{}: {e}", args.rules.display())))?;
    let rules_file = dir.join("rules.yaml");
    std::fs::write(
        &rules_file,
        serde_yaml::to_string(&json!({ "groups": groups }))?,
    )
    .map_err(|e| Fatal(format!("write {}: {e}", rules_file.display())))?;
    let (ok, out) = run_promtool(
        [
            OsStr::new("check"),
            OsStr::new("rules"),
            rules_file.as_os_str(),
        ],
        dir,
    )?;
    if !ok {
        return Err(Fatal(format!(
            "{}: promtool check rules fails:\n{}",
            args.rules.display(),
            out.trim_end()
        )));
    }
    let rules = alert_rules(&groups, &args.alert)
        .map_err(|e| Fatal(format!("{}: {e}", args.rules.display())))?;
    let timing = timing_for(&rules);

    // All at once, so the scrapes show one moment and a stopped broker costs one timeout.
    let results: Vec<Result<(String, Vec<Sample>), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = args
            .targets
            .iter()
            .map(|t| s.spawn(|| scrape(&t.url, SCRAPE_TIMEOUT)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("the scrape thread panicked".to_string()))
            })
            .collect()
    });
    let mut scrapes = Vec::new();
    for (t, result) in args.targets.iter().zip(results) {
        let name = format!("{}/{}", t.namespace, t.pod);
        let saved = dir.join(format!("scrape-{}-{}.txt", t.namespace, t.pod));
        let scrape = match result {
            Ok((text, samples)) => {
                println!("target {name} {}: up, {} samples", t.url, samples.len());
                std::fs::write(&saved, text)
                    .map_err(|e| Fatal(format!("write {}: {e}", saved.display())))?;
                Scrape::Up(samples)
            }
            Err(reason) => {
                println!("target {name} {}: down ({reason})", t.url);
                std::fs::write(&saved, format!("scrape failed: {reason}\n"))
                    .map_err(|e| Fatal(format!("write {}: {e}", saved.display())))?;
                Scrape::Down
            }
        };
        scrapes.push((t.labels(&args.job), scrape));
    }

    let show_rules = || {
        for r in &rules {
            println!(
                "alert {}: {} (for {})",
                args.alert,
                r.expr.replace('\n', " "),
                prom_duration(r.hold)
            );
        }
    };
    if args.expect == Expect::Firing {
        show_rules();
    }
    let file = dir.join("rules-test.json");
    let tests = test_file(&rules_file, &timing, &scrapes, &args.alert, args.expect);
    std::fs::write(&file, serde_json::to_vec_pretty(&tests)?)
        .map_err(|e| Fatal(format!("write {}: {e}", file.display())))?;
    let (ok, out) = run_promtool(
        [OsStr::new("test"), OsStr::new("rules"), file.as_os_str()],
        dir,
    )?;
    let verdict = if ok { "as expected" } else { "NOT as expected" };
    println!(
        "{} expected {} at {}: {verdict}",
        args.alert,
        expect_word(args.expect),
        prom_duration(timing.eval_time)
    );
    if !ok {
        if args.expect == Expect::Quiet {
            show_rules();
        }
        println!("promtool test rules:\n{}", out.trim_end());
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str =
        include_str!("../../../../charts/strom-operator/files/prometheus-rules.yaml");

    #[test]
    fn parses_targets() {
        assert_eq!(
            parse_target("strom/c-broker-0=http://10.244.0.7:9091/metrics"),
            Ok(Target {
                namespace: "strom".into(),
                pod: "c-broker-0".into(),
                url: "http://10.244.0.7:9091/metrics".into(),
            })
        );
        // Only the first `=` separates: a URL may hold more.
        assert_eq!(
            parse_target("n/p=http://h:1/metrics?a=b").map(|t| t.url),
            Ok("http://h:1/metrics?a=b".to_string())
        );
        for bad in [
            "c-broker-0=http://h:1/metrics",
            "/p=http://h:1/",
            "n/=http://h:1/",
            "n/p/q=http://h:1/",
            "n/p",
            "n/p=h:1/metrics",
            "n/p=https://h:1/metrics",
            "n/p=http://",
        ] {
            assert!(parse_target(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn reads_a_rules_file_and_a_prometheus_rule_in_yaml_and_json() {
        let plain = rule_groups(RULES).unwrap();
        assert_eq!(plain[0]["name"], "strom-kafka");

        let object = json!({
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": {"name": "c-kafka-rules", "namespace": "strom"},
            "spec": {"groups": plain},
        });
        // kubectl escapes <, > and & in JSON strings.
        let json_text = serde_json::to_string_pretty(&object)
            .unwrap()
            .replace('>', "\\u003e");
        assert_eq!(rule_groups(&json_text).unwrap(), plain);
        let yaml_text = serde_yaml::to_string(&object).unwrap();
        assert_eq!(rule_groups(&yaml_text).unwrap(), plain);

        assert!(rule_groups("kind: PrometheusRule\nspec: {}\n").is_err());
        assert!(rule_groups("groups: []\n").is_err());
        assert!(rule_groups("{\"groups\": ").is_err());
        assert!(rule_groups("groups: [\n").is_err());
    }

    #[test]
    fn finds_the_alert_and_its_timing() {
        let groups = rule_groups(RULES).unwrap();
        let rules = alert_rules(&groups, "UnderReplicatedPartitions").unwrap();
        assert_eq!(rules.len(), 1);
        assert!(rules[0]
            .expr
            .starts_with("kafka_server_replicamanager_underreplicatedpartitions{"));
        assert_eq!(rules[0].hold, Duration::from_secs(10));
        assert_eq!(timing_for(&rules), Timing::DEFAULT);

        let err = alert_rules(&groups, "UnderReplicatedPartition").unwrap_err();
        assert!(err.contains("UnderReplicatedPartitions, "), "{err}");

        let slow: Value = serde_yaml::from_str(
            "- name: g\n  interval: 1m\n  rules:\n  - alert: A\n    expr: up == 0\n    for: 5m\n",
        )
        .unwrap();
        let rules = alert_rules(&slow, "A").unwrap();
        assert_eq!(timing_for(&rules).eval_time, Duration::from_secs(420));
    }

    #[test]
    fn builds_the_test_file() {
        let target = parse_target("strom/c-broker-1=http://h:1/metrics").unwrap();
        let up = parse_target("strom/c-broker-0=http://h:2/metrics").unwrap();
        let scrapes = vec![
            (
                up.labels("strom-broker"),
                Scrape::Up(vec![Sample {
                    series: "kafka_server_replicamanager_underreplicatedpartitions".into(),
                    value: 2.0,
                }]),
            ),
            (target.labels("strom-broker"), Scrape::Down),
        ];
        let timing = Timing::DEFAULT;
        let file = test_file(
            Path::new("/w/rules.yaml"),
            &timing,
            &scrapes,
            "UnderReplicatedPartitions",
            Expect::Firing,
        );
        assert_eq!(file["rule_files"], json!(["/w/rules.yaml"]));
        let case = &file["tests"][0];
        assert_eq!(
            case["input_series"],
            json!([
                {"series": r#"up{job="strom-broker",namespace="strom",pod="c-broker-0"}"#, "values": "1x10"},
                {"series": r#"kafka_server_replicamanager_underreplicatedpartitions{job="strom-broker",namespace="strom",pod="c-broker-0"}"#, "values": "2x10"},
                {"series": r#"up{job="strom-broker",namespace="strom",pod="c-broker-1"}"#, "values": "0x10"},
            ])
        );
        assert_eq!(
            case["promql_expr_test"],
            json!([{
                "expr": r#"max by (alertname) (ALERTS{alertstate="firing",alertname="UnderReplicatedPartitions"})"#,
                "eval_time": "120s",
                "exp_samples": [{"labels": r#"{alertname="UnderReplicatedPartitions"}"#, "value": 1}],
            }])
        );
        let quiet = test_file(
            Path::new("/w/rules.yaml"),
            &timing,
            &scrapes,
            "UnderReplicatedPartitions",
            Expect::Quiet,
        );
        assert_eq!(
            quiet["tests"][0]["promql_expr_test"][0]["exp_samples"],
            json!([])
        );
        assert_eq!(
            firing_expr("a\"b"),
            r#"max by (alertname) (ALERTS{alertstate="firing",alertname="a\"b"})"#
        );
    }
}
