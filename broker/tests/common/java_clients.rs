//! Apache Kafka 4.4's command-line tools from `e2e/jvm/bin` (the Java client): any tool
//! with `--bootstrap-server`, and the console producer and consumer with a client
//! properties file for the security checks (what works with librdkafka must work with
//! Kafka's own client too).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use super::repo_root;

fn launcher(name: &str) -> std::path::PathBuf {
    repo_root().join("e2e/jvm/bin").join(name)
}

/// Runs one of Kafka's tools against `bootstrap`; its exit code and stdout + stderr.
pub fn kafka_tool(name: &str, bootstrap: &str, args: &[&str]) -> (i32, String) {
    let output = Command::new(launcher(name))
        .arg("--bootstrap-server")
        .arg(bootstrap)
        .args(args)
        .env("KAFKA_HEAP_OPTS", "-Xmx256m")
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

/// Writes `settings` as a Java properties file in `dir`.
pub fn client_properties(dir: &Path, name: &str, settings: &[(&str, &str)]) -> std::path::PathBuf {
    let path = dir.join(name);
    let text: String = settings
        .iter()
        .map(|(k, v)| format!("{k}={}\n", v.replace('\\', "\\\\")))
        .collect();
    std::fs::write(&path, text).expect("write client properties");
    path
}

/// Sends `lines` with kafka-console-producer (acks=all); panics with its output on failure.
pub fn console_produce(bootstrap: &str, topic: &str, config: &Path, lines: &[String]) {
    let mut child = Command::new(launcher("kafka-console-producer"))
        .args(["--bootstrap-server", bootstrap, "--topic", topic])
        .arg("--command-config")
        .arg(config)
        .args(["--producer-property", "acks=all"])
        .env("KAFKA_HEAP_OPTS", "-Xmx256m")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kafka-console-producer");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for line in lines {
            writeln!(stdin, "{line}").expect("write to the producer");
        }
    }
    let output = child.wait_with_output().expect("kafka-console-producer");
    assert!(
        output.status.success(),
        "kafka-console-producer failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Reads `count` records from the beginning with kafka-console-consumer; their values.
pub fn console_consume(bootstrap: &str, topic: &str, config: &Path, count: usize) -> Vec<String> {
    let output = Command::new(launcher("kafka-console-consumer"))
        .args([
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
            "--from-beginning",
        ])
        .args([
            "--max-messages",
            &count.to_string(),
            "--timeout-ms",
            "60000",
        ])
        .arg("--command-config")
        .arg(config)
        .env("KAFKA_HEAP_OPTS", "-Xmx256m")
        .output()
        .expect("run kafka-console-consumer");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "kafka-console-consumer failed:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.lines().map(str::to_string).collect()
}
