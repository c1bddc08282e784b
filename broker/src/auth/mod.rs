//! Authentication and authorization with Kafka's semantics: the SASL mechanisms
//! (`plain`, `scram`), principals (`principal`) and the ACL authorizer (`acl`). Crypto comes from `ring` (already in
//! the tree through rustls): HMAC, SHA-2, PBKDF2 and the system's randomness.

pub mod acl;
pub mod plain;
pub mod principal;
pub mod scram;
