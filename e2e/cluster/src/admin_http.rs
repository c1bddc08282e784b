//! GETs against a broker's admin HTTP endpoint and reading Prometheus text.

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::{HarnessError, Result};

/// `(status, body)` of `GET http://<addr><path>`; non-2xx statuses are answers, not errors.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(u16, String)> {
    let url = format!("http://{addr}{path}");
    let agent = ureq::AgentBuilder::new().timeout(timeout).build();
    let response = match agent.get(&url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => {
            return Err(HarnessError::Http {
                url,
                detail: e.to_string(),
            })
        }
    };
    let status = response.status();
    let body = response.into_string().map_err(|e| HarnessError::Http {
        url: url.clone(),
        detail: e.to_string(),
    })?;
    Ok((status, body))
}

/// The sum of every sample of metric `name` (all label sets), or `None` if absent.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let rest = if let Some(labelled) = rest.strip_prefix('{') {
            match labelled.split_once('}') {
                Some((_, after)) => after,
                None => continue,
            }
        } else if rest.starts_with(' ') {
            rest
        } else {
            // A longer metric name sharing this prefix.
            continue;
        };
        if let Some(v) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_and_labelled_samples_and_ignores_prefix_matches() {
        let text = "# HELP x\n\
            kafka_controller_kafkacontroller_activecontrollercount 1\n\
            kafka_controller_kafkacontroller_activecontrollercount_total 7\n\
            kafka_server_replicamanager_leadercount{broker=\"1\"} 2\n\
            kafka_server_replicamanager_leadercount{broker=\"2\"} 3\n";
        assert_eq!(
            metric_value(
                text,
                "kafka_controller_kafkacontroller_activecontrollercount"
            ),
            Some(1.0)
        );
        assert_eq!(
            metric_value(text, "kafka_server_replicamanager_leadercount"),
            Some(5.0)
        );
        assert_eq!(metric_value(text, "kafka_absent"), None);
    }
}
