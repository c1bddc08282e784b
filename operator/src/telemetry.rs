//! Logging setup: `tracing` events to stdout, filtered by `RUST_LOG`.
//!
//! JSON is the in-cluster format (one object per line, so log shippers need no multi-line
//! parsing, with the span context — e.g. the object being reconciled — attached to every event);
//! text is for people running the operator on their own machine.

use std::{
    fmt,
    io::{self, IsTerminal},
    str::FromStr,
};
use tracing::Subscriber;
use tracing_subscriber::{
    fmt::MakeWriter, layer::SubscriberExt, registry::LookupSpan, util::SubscriberInitExt,
    EnvFilter, Layer,
};

/// Filter used when `RUST_LOG` is unset: our own info logs, but only warnings from kube's
/// chatty watcher and client internals.
pub const DEFAULT_FILTER: &str = "info,kube=warn";

/// Output format of the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// Error of parsing a [`LogFormat`].
#[derive(thiserror::Error, Debug, PartialEq, Eq)]
#[error("unknown log format {0:?}, expected \"json\" or \"text\"")]
pub struct ParseLogFormatError(String);

impl FromStr for LogFormat {
    type Err = ParseLogFormatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "text" => Ok(Self::Text),
            _ => Err(ParseLogFormatError(s.to_owned())),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Json => "json",
            Self::Text => "text",
        })
    }
}

/// Installs the global subscriber. A second call (e.g. from another test) leaves the first
/// subscriber in place instead of panicking.
pub fn init(format: LogFormat) {
    // An unparsable RUST_LOG must not keep the operator from starting; fall back and say so
    // once logging works.
    let (filter, bad_filter) = match EnvFilter::try_from_default_env() {
        Ok(filter) => (filter, None),
        Err(err) => (EnvFilter::new(DEFAULT_FILTER), Some(err)),
    };
    // `from_env` also errors when RUST_LOG is merely unset, which is not worth a warning.
    let bad_filter = bad_filter.filter(|_| std::env::var_os(EnvFilter::DEFAULT_ENV).is_some());

    let installed = tracing_subscriber::registry()
        .with(layer(format, io::stdout, io::stdout().is_terminal()).with_filter(filter))
        .try_init()
        .is_ok();
    if let (true, Some(err)) = (installed, bad_filter) {
        tracing::warn!(error = %err, default = DEFAULT_FILTER, "ignoring invalid RUST_LOG");
    }
}

/// The formatting layer for `format`, writing to `writer` (separate from [`init`] so tests can
/// capture the output). Colours only when a person is watching: escape codes in a pod's log are
/// noise.
fn layer<S, W>(format: LogFormat, writer: W, ansi: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    let fmt = fmt.with_ansi(ansi && format == LogFormat::Text);
    match format {
        LogFormat::Json => fmt
            .json()
            .with_target(true)
            .with_current_span(true)
            .with_span_list(true)
            .boxed(),
        LogFormat::Text => fmt.with_target(true).boxed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn parses_formats() {
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!("Text".parse(), Ok(LogFormat::Text));
        assert!("yaml".parse::<LogFormat>().is_err());
        assert_eq!(LogFormat::Json.to_string(), "json");
    }

    #[test]
    fn init_twice_does_not_panic() {
        init(LogFormat::Json);
        init(LogFormat::Text);
    }

    /// Collects everything written into one shared buffer.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Capture {
        type Writer = Capture;
        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    fn capture(format: LogFormat) -> String {
        let out = Capture::default();
        let subscriber = tracing_subscriber::registry().with(layer(format, out.clone(), false));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("reconcile", object = "kafka/my-cluster");
            let _entered = span.enter();
            tracing::info!(replicas = 3, "scaled");
            tracing::warn!("second");
        });
        let bytes = out.0.lock().expect("not poisoned").clone();
        String::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn json_is_one_object_per_line_with_span_context() {
        let out = capture(LogFormat::Json);
        let lines: Vec<_> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        let event: serde_json::Value = serde_json::from_str(lines[0]).expect("valid JSON");
        assert!(event["timestamp"].is_string(), "{event}");
        assert_eq!(event["level"], "INFO");
        assert_eq!(event["target"], module_path!());
        assert_eq!(event["fields"]["message"], "scaled");
        assert_eq!(event["fields"]["replicas"], 3);
        assert_eq!(event["span"]["name"], "reconcile");
        assert_eq!(event["span"]["object"], "kafka/my-cluster");
        assert_eq!(event["spans"][0]["name"], "reconcile");
    }

    #[test]
    fn text_is_human_readable() {
        let out = capture(LogFormat::Text);
        let first = out.lines().next().expect("a line");
        assert!(first.contains("INFO"), "{first}");
        assert!(
            first.contains("reconcile{object=\"kafka/my-cluster\"}"),
            "{first}"
        );
        assert!(first.contains("scaled replicas=3"), "{first}");
        assert!(!first.starts_with('{'), "{first}");
    }
}
