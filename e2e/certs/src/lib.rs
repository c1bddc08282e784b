//! Test certificates made with rcgen: certificate authorities, a broker certificate for
//! loopback, and client certificates, written as PEM files the way a Kubernetes Secret
//! mounts them. Shared by the broker's tests, the fault harness (`strom-e2e-cluster`) and
//! the benchmark (`strom-bench security`).
//!
//! A test helper: it panics rather than return errors, as rcgen with its ring provider
//! fails only on a bug, and a temp dir that cannot be written fails the test anyway.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, Certificate, CertificateParams, DistinguishedName, IsCa, KeyPair};

pub use rcgen::DnType;

/// A certificate authority that signs test certificates.
pub struct Authority {
    cert: Certificate,
    key: KeyPair,
}

impl Authority {
    pub fn new(name: &str) -> Authority {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("CA certificate");
        Authority { cert, key }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A leaf certificate for `names` (DNS names or IP addresses) with the subject
    /// `subject` ((type, value) pairs, most general first as in the certificate).
    pub fn issue(&self, names: &[&str], subject: &[(DnType, &str)]) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.distinguished_name = DistinguishedName::new();
        for (kind, value) in subject {
            params.distinguished_name.push(kind.clone(), *value);
        }
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("leaf certificate");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// The broker's certificate: valid for loopback by name and address.
    pub fn broker(&self) -> Leaf {
        self.issue(
            &["localhost", "127.0.0.1"],
            &[(DnType::CommonName, "strom-broker")],
        )
    }
}

pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Leaf {
    /// The key followed by the certificate: Kafka's PEM keystore file.
    pub fn keystore_pem(&self) -> String {
        format!("{}{}", self.key_pem, self.cert_pem)
    }
}

/// Writes `content` to `dir/name` by renaming a new file over it, as the kubelet swaps a
/// Secret's files, so a reader never sees half a file.
pub fn write_atomically(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, content).expect("write PEM");
    std::fs::rename(&tmp, &path).expect("rename PEM");
    path
}
