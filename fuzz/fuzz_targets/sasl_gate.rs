//! A raw byte stream sent to a SASL listener: split into frames as the connection does,
//! each fed to the SASL gate (PLAIN and both SCRAM mechanisms enabled, one PLAIN user, one
//! SCRAM user) until it fails the connection. Nothing may panic, and only the real
//! password may authenticate.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use strom_broker::auth::plain::PlainUsers;
use strom_broker::auth::scram::{ScramCredential, ScramMechanism};
use strom_broker::config::security::SaslSettings;
use strom_broker::net::sasl::{SaslGate, Step};

/// The one PLAIN user and the one SCRAM credential, made once: PBKDF2 per input would
/// spend the fuzzer's time on key stretching.
fn fixtures() -> &'static (Arc<PlainUsers>, ScramCredential) {
    static FIXTURES: OnceLock<(Arc<PlainUsers>, ScramCredential)> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let users =
            PlainUsers::new([("alice".to_string(), "alice-secret".to_string())]).expect("one user");
        let credential =
            ScramCredential::from_password(ScramMechanism::Sha512, "bob-secret", b"salt", 4096)
                .expect("credential");
        (Arc::new(users), credential)
    })
}

fuzz_target!(|data: &[u8]| {
    let (frames, _error) = strom_fuzz::split_frames(data);
    let (users, credential) = fixtures();
    let mut gate = SaslGate::new(SaslSettings {
        mechanisms: vec![
            "PLAIN".into(),
            "SCRAM-SHA-256".into(),
            "SCRAM-SHA-512".into(),
        ],
        plain_users: Some(users.clone()),
        max_reauth: Some(std::time::Duration::from_secs(1)),
        max_receive_size: 524_288,
    });
    let lookup = |user: &str, m: ScramMechanism| {
        (user == "bob" && m == ScramMechanism::Sha512).then(|| credential.clone())
    };
    let now = tokio::time::Instant::now();
    for frame in frames {
        match gate.on_frame(&frame, &lookup, now) {
            Step::Fail { .. } => break,
            Step::Authenticated { principal, .. } => {
                assert!(
                    principal == "User:alice" || principal == "User:bob",
                    "{principal}"
                );
            }
            Step::Reply(_) | Step::Dispatch => {}
        }
    }
});
