use std::fmt;

/// Which of the two authorities of a cluster an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaKind {
    Cluster,
    Clients,
}

impl fmt::Display for CaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CaKind::Cluster => "cluster CA",
            CaKind::Clients => "clients CA",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A user-provided CA (`generateCertificateAuthority: false`) must exist before the
    /// cluster can be reconciled; the operator never creates it.
    #[error("{kind} is user-provided but Secret {secret} does not exist")]
    MissingCaSecret { kind: CaKind, secret: String },
    #[error("{kind}: Secret {secret} has no data key {key}")]
    MissingCaData {
        kind: CaKind,
        secret: String,
        key: &'static str,
    },
    #[error("{kind}: {secret}/{key} is malformed: {reason}")]
    MalformedCa {
        kind: CaKind,
        secret: String,
        key: &'static str,
        reason: String,
    },
    #[error("{kind}: no certificate in {secret}/ca.crt belongs to the private key in ca.key")]
    CaKeyMismatch { kind: CaKind, secret: String },
    #[error("{kind}: the certificate that belongs to ca.key is not a CA certificate")]
    NotACa { kind: CaKind },
    #[error("{kind}: renewalDays ({renewal_days}) must be below validityDays ({validity_days})")]
    InvalidSettings {
        kind: CaKind,
        validity_days: u32,
        renewal_days: u32,
    },
    #[error("{kind} expires before the certificate could be issued")]
    CaExpired { kind: CaKind },
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("writing a PKCS#12 store: {0}")]
    Pkcs12(#[from] p12_keystore::error::Error),
    #[error("the system random number generator failed")]
    Random,
}
