use ring::rand::{SecureRandom, SystemRandom};

use super::error::CertError;

const PASSWORD_LEN: usize = 32;
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn fill(buf: &mut [u8]) -> Result<(), CertError> {
    SystemRandom::new().fill(buf).map_err(|_| CertError::Random)
}

/// 32 alphanumeric characters (~190 bits): safe to paste into a Java properties file or a
/// shell without quoting. Bytes that would bias the modulo are drawn again.
pub fn password() -> Result<String, CertError> {
    let limit = 256 - 256 % ALPHABET.len();
    let mut out = String::with_capacity(PASSWORD_LEN);
    let mut buf = [0u8; 64];
    while out.len() < PASSWORD_LEN {
        fill(&mut buf)?;
        for &b in &buf {
            if usize::from(b) < limit && out.len() < PASSWORD_LEN {
                out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
            }
        }
    }
    Ok(out)
}

/// A random positive 128-bit serial: RFC 5280 wants serials unique per CA, and random ones
/// need no state across reconciles.
pub fn serial() -> Result<rcgen::SerialNumber, CertError> {
    let mut bytes = [0u8; 16];
    fill(&mut bytes)?;
    // Top bit clear keeps the DER INTEGER positive; the next bit set keeps it 16 bytes long.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(rcgen::SerialNumber::from_slice(&bytes))
}
