//! Reading certificates back out of Secrets. Everything here is tolerant: a Secret can hold
//! anything a user or an older operator wrote, so a value that does not parse is reported
//! as `None`/`false` and the caller decides to re-issue (or, for a user-provided CA, to
//! fail with a typed error).

use std::collections::BTreeSet;
use std::net::IpAddr;

use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// PEM with `\n` line endings: Secrets are compared byte for byte between reconciles, so
/// the encoding must not vary.
pub fn encode_cert_pem(der: &[u8]) -> String {
    encode_pem("CERTIFICATE", der)
}

fn encode_pem(label: &str, der: &[u8]) -> String {
    let block = pem::Pem::new(label, der.to_vec());
    pem::encode_config(
        &block,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// The DER of every `CERTIFICATE` block, in order; `None` if the text is not PEM or holds
/// no certificate.
pub fn parse_cert_pems(data: &[u8]) -> Option<Vec<Vec<u8>>> {
    let blocks = pem::parse_many(data).ok()?;
    let certs: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| b.into_contents())
        .collect();
    if certs.is_empty() || certs.iter().any(|der| parse(der).is_none()) {
        return None;
    }
    Some(certs)
}

fn parse(der: &[u8]) -> Option<X509Certificate<'_>> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Some(cert),
        _ => None,
    }
}

pub fn not_before(der: &[u8]) -> Option<OffsetDateTime> {
    Some(parse(der)?.validity().not_before.to_datetime())
}

pub fn not_after(der: &[u8]) -> Option<OffsetDateTime> {
    Some(parse(der)?.validity().not_after.to_datetime())
}

pub fn is_ca(der: &[u8]) -> bool {
    parse(der).is_some_and(|c| c.is_ca())
}

/// The raw public key (for EC keys, the encoded point), to match a certificate against a
/// private key without trusting which certificate comes first in a bundle.
pub fn public_key_raw(der: &[u8]) -> Option<Vec<u8>> {
    Some(parse(der)?.public_key().subject_public_key.data.to_vec())
}

/// True when `issuer_der`'s key made `leaf_der`'s signature (and the names chain up).
/// Checking the signature, not only the issuer name, is what tells a renewed CA apart from
/// its predecessor when both carry similar names.
pub fn signed_by(leaf_der: &[u8], issuer_der: &[u8]) -> bool {
    let (Some(leaf), Some(issuer)) = (parse(leaf_der), parse(issuer_der)) else {
        return false;
    };
    leaf.issuer() == issuer.subject() && leaf.verify_signature(Some(issuer.public_key())).is_ok()
}

pub fn common_name(der: &[u8]) -> Option<String> {
    let cert = parse(der)?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// Subject as (CN, O); a certificate with several CNs or Os is reported as `None` so that
/// it never matches an expected identity.
pub fn subject_cn_o(der: &[u8]) -> Option<(String, Option<String>)> {
    let cert = parse(der)?;
    let subject = cert.subject();
    let cns: Vec<_> = subject.iter_common_name().collect();
    let os: Vec<_> = subject.iter_organization().collect();
    if cns.len() != 1 || os.len() > 1 || subject.iter().count() != cns.len() + os.len() {
        return None;
    }
    let cn = cns[0].as_str().ok()?.to_owned();
    let o = match os.first() {
        Some(o) => Some(o.as_str().ok()?.to_owned()),
        None => None,
    };
    Some((cn, o))
}

/// Subject alternative names as comparable strings (`dns:<name>`, `ip:<addr>`).
pub fn subject_alt_names(der: &[u8]) -> Option<BTreeSet<String>> {
    let cert = parse(der)?;
    let mut names = BTreeSet::new();
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Some(names);
    };
    for name in &san.value.general_names {
        match name {
            GeneralName::DNSName(dns) => {
                names.insert(format!("dns:{dns}"));
            }
            GeneralName::IPAddress(bytes) => {
                let ip = match bytes.len() {
                    4 => IpAddr::from(<[u8; 4]>::try_from(*bytes).ok()?),
                    16 => IpAddr::from(<[u8; 16]>::try_from(*bytes).ok()?),
                    _ => return None,
                };
                names.insert(format!("ip:{ip}"));
            }
            _ => {
                names.insert(format!("other:{name:?}"));
            }
        }
    }
    Some(names)
}
