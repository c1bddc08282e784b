//! Authentication and authorization with Kafka's semantics: the SASL mechanisms
//! (`plain`, `scram`), principals (`principal`), the ACL authorizer (`acl`), and the
//! broker's live authorizer with the check request handlers call (`authorize`). Crypto
//! comes from `ring` (already in the tree through rustls): HMAC, SHA-2, PBKDF2 and the system's randomness.

pub mod acl;
pub mod authorize;
pub mod plain;
pub mod principal;
pub mod scram;
