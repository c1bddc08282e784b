//! PKCS#12 stores for Java clients. The crate's defaults (PBES2 with PBKDF2-HMAC-SHA256 and
//! AES-256-CBC, HMAC-SHA256 MAC) are what Java 17 and OpenSSL 3 read; set explicitly so a
//! change of defaults upstream cannot silently weaken or break them.

use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKeyChain,
};

use super::error::CertError;

const ITERATIONS: u64 = 10_000;

/// A truststore: every CA certificate as a trusted entry (`ca-0` is the current CA).
pub fn truststore(bundle: &[Vec<u8>], password: &str) -> Result<Vec<u8>, CertError> {
    let mut store = KeyStore::new();
    for (i, der) in bundle.iter().enumerate() {
        store.add_entry(
            &format!("ca-{i}"),
            KeyStoreEntry::Certificate(Certificate::from_der(der)?),
        );
    }
    write(&store, password)
}

/// A keystore with one private key entry named `alias`; `chain` starts with the leaf.
pub fn keystore(
    alias: &str,
    key_der: &[u8],
    chain: &[&[u8]],
    password: &str,
) -> Result<Vec<u8>, CertError> {
    let certs = chain
        .iter()
        .map(|der| Certificate::from_der(der))
        .collect::<Result<Vec<_>, _>>()?;
    // The local key id ties the key bag to its certificate bag; any stable value works.
    let chain = PrivateKeyChain::new(key_der, alias.as_bytes(), certs);
    let mut store = KeyStore::new();
    store.add_entry(alias, KeyStoreEntry::PrivateKeyChain(chain));
    write(&store, password)
}

fn write(store: &KeyStore, password: &str) -> Result<Vec<u8>, CertError> {
    Ok(store
        .writer(password)
        .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
        .encryption_iterations(ITERATIONS)
        .mac_algorithm(MacAlgorithm::HmacSha256)
        .mac_iterations(ITERATIONS)
        .write()?)
}
