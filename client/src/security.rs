//! How a client reaches a broker's listener: Kafka's `security.protocol` as a value.
//! PLAINTEXT, SSL (with or without a client certificate), SASL_PLAINTEXT and SASL_SSL are
//! the four combinations of an optional [`TlsConfig`] and optional [`SaslCredentials`].

use std::time::Duration;

use thiserror::Error;

use crate::sasl::{self, SaslCredentials, SaslError, SaslMechanism};
use crate::tls::{host_of, TlsConfig};
use crate::{ClientError, Connection};

/// The security of a connection. `Default` is PLAINTEXT. `Debug` shows no key or
/// password.
#[derive(Clone, Debug, Default)]
pub struct Security {
    pub tls: Option<TlsConfig>,
    pub sasl: Option<SaslCredentials>,
}

impl Security {
    pub fn plaintext() -> Security {
        Security::default()
    }

    pub fn with_tls(mut self, tls: TlsConfig) -> Security {
        self.tls = Some(tls);
        self
    }

    pub fn with_sasl(
        mut self,
        mechanism: SaslMechanism,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Security {
        self.sasl = Some(SaslCredentials::new(mechanism, username, password));
        self
    }

    /// Kafka's name for this combination (`security.protocol`).
    pub fn protocol(&self) -> &'static str {
        match (&self.tls, &self.sasl) {
            (None, None) => "PLAINTEXT",
            (Some(_), None) => "SSL",
            (None, Some(_)) => "SASL_PLAINTEXT",
            (Some(_), Some(_)) => "SASL_SSL",
        }
    }

    /// Opens a connection to `addr` (`host:port`): TCP, then the TLS handshake (the
    /// certificate must name `host`), then SASL; each step within `timeout`.
    pub async fn connect(
        &self,
        addr: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Connection, ConnectError> {
        Ok(self.connect_session(addr, client_id, timeout).await?.0)
    }

    /// As [`Security::connect`], also returning the SASL session's lifetime when the
    /// broker limits it (KIP-368): the connection must be replaced before it ends.
    pub async fn connect_session(
        &self,
        addr: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<(Connection, Option<Duration>), ConnectError> {
        let tcp = Connection::connect_tcp(addr, timeout).await?;
        let mut connection = match &self.tls {
            None => Connection::over(tcp, addr, client_id),
            Some(tls) => {
                let stream = tokio::time::timeout(timeout, tls.connect(tcp, host_of(addr)))
                    .await
                    .map_err(|_| ConnectError::Timeout {
                        addr: addr.to_string(),
                        step: Step::Tls,
                    })?
                    .map_err(|source| ConnectError::Tls {
                        addr: addr.to_string(),
                        source,
                    })?;
                Connection::over(stream, addr, client_id)
            }
        };
        let lifetime = match &self.sasl {
            None => None,
            Some(credentials) => {
                tokio::time::timeout(timeout, sasl::authenticate(&mut connection, credentials))
                    .await
                    .map_err(|_| ConnectError::Timeout {
                        addr: addr.to_string(),
                        step: Step::Sasl,
                    })??
            }
        };
        Ok((connection, lifetime))
    }
}

/// The step of [`Security::connect`] that did not finish in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Tls,
    Sasl,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::Tls => "the TLS handshake",
            Step::Sasl => "SASL authentication",
        })
    }
}

#[derive(Debug, Error)]
pub enum ConnectError {
    /// TCP: refused, unreachable, timed out.
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("TLS handshake with {addr} failed: {source}")]
    Tls {
        addr: String,
        source: std::io::Error,
    },
    #[error("{step} with {addr} timed out")]
    Timeout { addr: String, step: Step },
    #[error(transparent)]
    Sasl(#[from] SaslError),
}

impl ConnectError {
    /// True when the broker was reached but refused this client (TLS or SASL), so that
    /// another broker of the same cluster would refuse it too; Kafka's clients do not
    /// retry those either.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            ConnectError::Tls { .. }
                | ConnectError::Sasl(SaslError::Authentication { .. })
                | ConnectError::Sasl(SaslError::MechanismNotOffered { .. })
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_names_and_quiet_debug() {
        assert_eq!(Security::default().protocol(), "PLAINTEXT");
        let sasl = Security::plaintext().with_sasl(SaslMechanism::SCRAM_SHA_512, "bob", "hunter2");
        assert_eq!(sasl.protocol(), "SASL_PLAINTEXT");
        let shown = format!("{sasl:?}");
        assert!(
            shown.contains("bob") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
