//! SASL authentication of a [`Connection`] as Kafka's `SaslClientAuthenticator` does it:
//! SaslHandshake v1, then SaslAuthenticate v2 rounds (PLAIN in one, SCRAM in two). The
//! broker uses this for its inter-broker connections, tools and the operator through
//! [`crate::security`].

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
};
use kafka_protocol::protocol::StrBytes;
use thiserror::Error;

use crate::scram::{ScramClient, ScramMechanism};
use crate::{ClientError, Connection};

const SASL_HANDSHAKE_VERSION: i16 = 1;
/// v1 and later answer the session's lifetime (KIP-368).
const SASL_AUTHENTICATE_VERSION: i16 = 2;

/// The SASL mechanisms this client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaslMechanism {
    Plain,
    Scram(ScramMechanism),
}

impl SaslMechanism {
    pub const SCRAM_SHA_256: SaslMechanism = SaslMechanism::Scram(ScramMechanism::Sha256);
    pub const SCRAM_SHA_512: SaslMechanism = SaslMechanism::Scram(ScramMechanism::Sha512);

    /// The name sent in SaslHandshake (Kafka's `sasl.mechanism`).
    pub const fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(scram) => scram.name(),
        }
    }

    /// Exact, case-sensitive, as Kafka matches mechanism names.
    pub fn from_name(name: &str) -> Option<SaslMechanism> {
        match name {
            "PLAIN" => Some(SaslMechanism::Plain),
            _ => ScramMechanism::from_name(name).map(SaslMechanism::Scram),
        }
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who to authenticate as, and how.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslCredentials {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: String,
}

impl SaslCredentials {
    pub fn new(
        mechanism: SaslMechanism,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> SaslCredentials {
        SaslCredentials {
            mechanism,
            username: username.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for SaslCredentials {
    // Not the password: these values end up in logged configurations.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslCredentials")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Error)]
pub enum SaslError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("SASL handshake with {addr}: {mechanism} is not enabled there (it offers {offered})")]
    MechanismNotOffered {
        addr: String,
        mechanism: SaslMechanism,
        offered: String,
    },
    /// The broker refused the credentials (its message, when it sent one), or the SCRAM
    /// exchange failed on this side (e.g. the server's signature did not verify).
    #[error("SASL authentication with {addr} failed: {message}")]
    Authentication { addr: String, message: String },
}

/// SaslHandshake and SaslAuthenticate on a fresh `connection`; the session's lifetime
/// when the broker limits it (`connections.max.reauth.ms`), after which the broker
/// closes the connection unless it re-authenticates.
pub async fn authenticate(
    connection: &mut Connection,
    credentials: &SaslCredentials,
) -> Result<Option<Duration>, SaslError> {
    let addr = connection.addr().to_string();
    let failed = |message: String| SaslError::Authentication {
        addr: addr.clone(),
        message,
    };
    let mechanism = credentials.mechanism;
    let handshake = connection
        .send(
            SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_static_str(mechanism.name())),
            SASL_HANDSHAKE_VERSION,
        )
        .await?;
    if handshake.error_code != 0 {
        return Err(SaslError::MechanismNotOffered {
            addr: addr.clone(),
            mechanism,
            offered: handshake
                .mechanisms
                .iter()
                .map(|m| m.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let check = |response: &SaslAuthenticateResponse| {
        if response.error_code == 0 {
            return Ok(());
        }
        let code = ResponseError::try_from_code(response.error_code)
            .map_or_else(|| response.error_code.to_string(), |e| format!("{e:?}"));
        Err(failed(format!(
            "{code}: {}",
            response.error_message.as_deref().unwrap_or("")
        )))
    };
    let last = match mechanism {
        SaslMechanism::Scram(scram_mechanism) => {
            let mut scram = ScramClient::new(
                scram_mechanism,
                &credentials.username,
                &credentials.password,
            );
            let first = scram.client_first().map_err(|e| failed(e.to_string()))?;
            let server_first = round(connection, first).await?;
            check(&server_first)?;
            let client_final = scram
                .client_final(&server_first.auth_bytes)
                .map_err(|e| failed(e.to_string()))?;
            let server_final = round(connection, client_final).await?;
            check(&server_final)?;
            scram
                .verify_server_final(&server_final.auth_bytes)
                .map_err(|e| failed(e.to_string()))?;
            server_final
        }
        SaslMechanism::Plain => {
            let message = plain_message("", &credentials.username, &credentials.password);
            let response = round(connection, message).await?;
            check(&response)?;
            response
        }
    };
    Ok((last.session_lifetime_ms > 0)
        .then(|| Duration::from_millis(last.session_lifetime_ms.unsigned_abs())))
}

/// RFC 4616's message: `authzid NUL authcid NUL passwd`.
pub fn plain_message(authzid: &str, username: &str, password: &str) -> Vec<u8> {
    [authzid, username, password].join("\0").into_bytes()
}

/// One SaslAuthenticate round trip.
async fn round(
    connection: &mut Connection,
    bytes: Vec<u8>,
) -> Result<SaslAuthenticateResponse, ClientError> {
    let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes));
    connection.send(request, SASL_AUTHENTICATE_VERSION).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanism_names() {
        for m in [
            SaslMechanism::Plain,
            SaslMechanism::SCRAM_SHA_256,
            SaslMechanism::SCRAM_SHA_512,
        ] {
            assert_eq!(SaslMechanism::from_name(m.name()), Some(m));
        }
        assert_eq!(SaslMechanism::from_name("plain"), None);
        assert_eq!(SaslMechanism::from_name("GSSAPI"), None);
    }

    #[test]
    fn debug_hides_the_password() {
        let credentials = SaslCredentials::new(SaslMechanism::Plain, "alice", "s3cr3t");
        let shown = format!("{credentials:?}");
        assert!(shown.contains("alice"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }

    #[test]
    fn plain_message_layout() {
        assert_eq!(plain_message("", "u", "p"), b"\0u\0p");
    }
}
