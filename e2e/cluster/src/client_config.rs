//! Extra librdkafka settings that a program hands to every Kafka client it makes (topic
//! creation, producer, group member, read-back): how `strom-load` reaches a secured
//! cluster it knows only from its command line (`security.protocol`, `sasl.*`, `ssl.*`).
//! The harness's own secured mode (`crate::security`) stays the base; these come on top.
//!
//! Every client builds its configuration the same way: its base from
//! [`crate::security::client_config`], its own defaults, then [`apply`]. The extra
//! settings come last so that a scenario can override anything.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use thiserror::Error;

/// `KEY=VALUE` pairs, applied in order (a later key wins).
pub type Settings = [(String, String)];

/// What Kafka calls `security.protocol`; librdkafka takes any case.
const PROTOCOLS: [&str; 4] = ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];
/// The SASL mechanisms Strom's brokers offer.
const MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];
/// Settings whose value is a path librdkafka reads when the client is created.
const FILE_SETTINGS: [&str; 4] = [
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.crl.location",
];
/// librdkafka's `ssl.ca.location` value for "the system's CA store", not a path.
const CA_PROBE: &str = "probe";
/// How many distinct client errors a failed [`check_reachable`] quotes.
const ERRORS_QUOTED: usize = 3;

#[derive(Debug, Error)]
pub enum ClientConfigError {
    #[error("expected KEY=VALUE, got {0:?}")]
    NotKeyValue(String),
    // `error`, not `source`: the reason is part of this one-line message.
    #[error("{key}: cannot read {path}: {error}")]
    ValueFile {
        key: String,
        path: String,
        error: std::io::Error,
    },
    #[error("security.protocol={0:?} is none of {PROTOCOLS:?}")]
    UnknownProtocol(String),
    #[error("{key}={value:?} is none of the mechanisms Strom offers {MECHANISMS:?}")]
    UnknownMechanism { key: String, value: String },
    #[error("{key}: {path}: {error}")]
    MissingFile {
        key: String,
        path: String,
        error: std::io::Error,
    },
    #[error("the cluster at {bootstrap} refused this client: {detail}")]
    Refused { bootstrap: String, detail: String },
    #[error("cannot reach the cluster at {bootstrap} within {after:?}: {detail}")]
    Unreachable {
        bootstrap: String,
        after: Duration,
        detail: String,
    },
}

/// Parses `KEY=VALUE` (the value may contain `=`; the key may not be empty).
pub fn parse_pair(s: &str) -> Result<(String, String), ClientConfigError> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(ClientConfigError::NotKeyValue(s.to_string())),
    }
}

/// Parses `KEY=PATH` into `KEY` and the file's contents, trimmed: a secret mounted from
/// a Kubernetes Secret usually ends in a newline that is not part of the password.
pub fn parse_file_pair(s: &str) -> Result<(String, String), ClientConfigError> {
    let (key, path) = parse_pair(s)?;
    let contents =
        std::fs::read_to_string(&path).map_err(|error| ClientConfigError::ValueFile {
            key: key.clone(),
            path: path.clone(),
            error,
        })?;
    Ok((key, contents.trim().to_string()))
}

/// Refuses what librdkafka would reject late or obscurely: an unknown
/// `security.protocol` or SASL mechanism, a certificate or key file that is not there.
pub fn check(settings: &Settings) -> Result<(), ClientConfigError> {
    for (key, value) in settings {
        match key.as_str() {
            "security.protocol" if !PROTOCOLS.iter().any(|p| p.eq_ignore_ascii_case(value)) => {
                return Err(ClientConfigError::UnknownProtocol(value.clone()));
            }
            // librdkafka's name and Kafka's name for the same setting.
            "sasl.mechanism" | "sasl.mechanisms"
                if !MECHANISMS.iter().any(|m| m.eq_ignore_ascii_case(value)) =>
            {
                return Err(ClientConfigError::UnknownMechanism {
                    key: key.clone(),
                    value: value.clone(),
                });
            }
            "ssl.ca.location" if value == CA_PROBE => {}
            k if FILE_SETTINGS.contains(&k) => {
                std::fs::metadata(Path::new(value)).map_err(|error| {
                    ClientConfigError::MissingFile {
                        key: key.clone(),
                        path: value.clone(),
                        error,
                    }
                })?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Sets every pair of `settings` on `config`, after whatever it already holds.
pub fn apply<'a>(config: &'a mut ClientConfig, settings: &Settings) -> &'a mut ClientConfig {
    for (key, value) in settings {
        config.set(key, value);
    }
    config
}

/// Fetches the cluster's metadata with `settings`: a wrong password, an untrusted
/// certificate or an unreachable address ends here with librdkafka's own words, instead
/// of every later client retrying silently until its own deadline. Authentication and
/// TLS errors end it at once; anything else (brokers still starting) is retried until
/// `timeout`.
pub fn check_reachable(
    bootstrap: &str,
    settings: &Settings,
    timeout: Duration,
) -> Result<(), ClientConfigError> {
    let unreachable = |detail: String| ClientConfigError::Unreachable {
        bootstrap: bootstrap.to_string(),
        after: timeout,
        detail,
    };
    let producer: BaseProducer<ErrorRecorder> =
        apply(&mut crate::security::client_config(bootstrap), settings)
            .create_with_context(ErrorRecorder::default())
            .map_err(|e| unreachable(e.to_string()))?;
    let started = Instant::now();
    loop {
        let attempt = producer
            .client()
            .fetch_metadata(None, METADATA_ATTEMPT.min(timeout));
        // Error events reach the context only through the main queue.
        producer.poll(Duration::ZERO);
        let last = match attempt {
            Ok(_) => return Ok(()),
            Err(e) => e.to_string(),
        };
        let recorder = producer.context();
        let refused = recorder.refused();
        if refused || started.elapsed() >= timeout {
            let mut detail = last;
            for seen in recorder.errors() {
                detail.push_str("; ");
                detail.push_str(&seen);
            }
            return Err(match refused {
                true => ClientConfigError::Refused {
                    bootstrap: bootstrap.to_string(),
                    detail,
                },
                false => unreachable(detail),
            });
        }
    }
}

/// One metadata request's bound inside [`check_reachable`].
const METADATA_ATTEMPT: Duration = Duration::from_secs(2);

/// Keeps the first few distinct errors librdkafka reports (authentication, TLS), which
/// it otherwise only logs, and whether one of them was a refusal.
#[derive(Default)]
struct ErrorRecorder {
    errors: Mutex<Vec<String>>,
    refused: AtomicBool,
}

impl ErrorRecorder {
    fn errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The cluster was reached and refused this client: retrying cannot help.
    fn refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }

    fn record(&self, text: String, refused: bool) {
        if refused {
            self.refused.store(true, Ordering::Relaxed);
        }
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if errors.len() < ERRORS_QUOTED && !errors.contains(&text) {
            errors.push(text);
        }
    }
}

/// Parts of librdkafka's error-level log lines that say a broker refused the client; a
/// failed TLS handshake reaches the application only as such a line. TLS 1.3 reports a
/// broker's refusal of the client certificate after the handshake, as an alert.
const REFUSAL_LOGS: [&str; 5] = [
    "SSL handshake failed",
    "SASL authentication error",
    "alert certificate required",
    "alert unknown ca",
    "alert bad certificate",
];

fn is_refusal_log(message: &str) -> bool {
    REFUSAL_LOGS.iter().any(|r| message.contains(r))
}

impl ClientContext for ErrorRecorder {
    fn error(&self, error: KafkaError, reason: &str) {
        let refused = matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SSL)
        );
        self.record(format!("{error}: {reason}"), refused);
    }

    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        if matches!(
            level,
            RDKafkaLogLevel::Emerg
                | RDKafkaLogLevel::Alert
                | RDKafkaLogLevel::Critical
                | RDKafkaLogLevel::Error
        ) {
            let refused = is_refusal_log(message);
            self.record(format!("{facility}: {message}"), refused);
        }
    }
}

impl ProducerContext for ErrorRecorder {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn pairs_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_pair("sasl.password=a=b").unwrap(),
            ("sasl.password".to_string(), "a=b".to_string())
        );
        assert_eq!(parse_pair("k=").unwrap(), ("k".to_string(), String::new()));
        for bad in ["novalue", "=v", ""] {
            assert!(
                matches!(parse_pair(bad), Err(ClientConfigError::NotKeyValue(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn file_values_are_read_and_trimmed_and_a_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("password");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let pair = parse_file_pair(&format!("sasl.password={}", secret.display())).unwrap();
        assert_eq!(pair, ("sasl.password".to_string(), "s3cret".to_string()));

        let missing = dir.path().join("absent");
        let err = parse_file_pair(&format!("sasl.password={}", missing.display())).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("sasl.password") && text.contains(&missing.display().to_string()),
            "{text}"
        );
    }

    #[test]
    fn known_protocols_and_mechanisms_pass_in_any_case() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.crt");
        std::fs::write(&ca, "pem").unwrap();
        let ca = ca.display().to_string();
        check(&pairs(&[
            ("security.protocol", "sasl_ssl"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.mechanisms", "plain"),
            ("ssl.ca.location", &ca),
            ("ssl.certificate.location", &ca),
            ("ssl.key.location", &ca),
            ("message.timeout.ms", "300000"),
        ]))
        .unwrap();
        check(&pairs(&[
            ("security.protocol", "SSL"),
            ("ssl.ca.location", "probe"),
        ]))
        .unwrap();
        check(&[]).unwrap();
    }

    #[test]
    fn unknown_protocol_or_mechanism_and_missing_files_are_refused_by_name() {
        let err = check(&pairs(&[("security.protocol", "TLS")])).unwrap_err();
        assert!(matches!(err, ClientConfigError::UnknownProtocol(ref p) if p == "TLS"));
        assert!(err.to_string().contains("SASL_SSL"), "{err}");

        let err = check(&pairs(&[("sasl.mechanism", "GSSAPI")])).unwrap_err();
        assert!(err.to_string().contains("GSSAPI"), "{err}");

        for key in FILE_SETTINGS {
            let err = check(&pairs(&[(key, "/nonexistent/strom/file.pem")])).unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(err, ClientConfigError::MissingFile { .. })
                    && text.contains(key)
                    && text.contains("/nonexistent/strom/file.pem"),
                "{text}"
            );
        }
    }

    #[test]
    fn refusals_are_told_from_connection_trouble() {
        for refusal in [
            "sasl_ssl://h:9092/bootstrap: SASL authentication error: Authentication failed",
            "ssl://h:9092/bootstrap: SSL handshake failed: error:0A000086:SSL routines::\
             certificate verify failed",
            "ssl://h:9092/bootstrap: Receive failed: error:0A00045C:SSL routines::tlsv13 \
             alert certificate required: SSL alert number 116",
        ] {
            assert!(is_refusal_log(refusal), "{refusal}");
        }
        for trouble in [
            "ssl://h:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused",
            "1/1 brokers are down",
        ] {
            assert!(!is_refusal_log(trouble), "{trouble}");
        }
    }

    #[test]
    fn apply_sets_after_the_base_so_later_settings_win() {
        let mut config = ClientConfig::new();
        config
            .set("security.protocol", "plaintext")
            .set("acks", "all");
        apply(
            &mut config,
            &pairs(&[
                ("security.protocol", "sasl_ssl"),
                ("sasl.username", "load"),
                ("sasl.username", "load2"),
            ]),
        );
        assert_eq!(config.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(config.get("sasl.username"), Some("load2"));
        assert_eq!(config.get("acks"), Some("all"));
    }
}
