//! `strom-broker format --add-scram SPEC`: a SCRAM credential for the metadata log of a new
//! cluster, in the syntax of Kafka's `kafka-storage format --add-scram` (its
//! `ScramParser`), so a user exists before the first broker serves:
//!
//! ```text
//! SCRAM-SHA-256=[name=alice,password=alice-secret]
//! SCRAM-SHA-512=[name=alice,iterations=8192,password=alice-secret]
//! SCRAM-SHA-512=[name=alice,iterations=8192,salt="N3E=",saltedpassword="YCE..."]
//! ```
//!
//! As in Kafka: the mechanism name is exact; components are `key=value` separated by
//! commas (so a password cannot contain a comma); a value in double quotes loses them;
//! `salt` and `saltedpassword` are base64; without `salt` a random one in Kafka's form is
//! made; `iterations` defaults to 4096 and must lie in 4096..=16384; with `password` a
//! `saltedpassword` is ignored, without it `saltedpassword` needs `salt`; a later
//! repetition of a key wins; any other key is an error. The messages are Kafka's.
//!
//! Stricter than Kafka, which writes such credentials as given: an empty `name`, an empty
//! salt, and a `saltedpassword` that is not one hash long (no client could ever match it)
//! are refused.

use std::collections::BTreeMap;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

use super::records::MetadataRecord;
use crate::auth::scram::{ScramCredential, ScramMechanism};

/// Kafka's default for `iterations` (also its minimum).
const DEFAULT_ITERATIONS: i32 = 4096;

/// Java's `Base64.getDecoder()`: the standard alphabet, padding optional.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a `--add-scram` argument makes no credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddScramError {
    #[error("Failed to find equals sign in SCRAM argument '{0}'")]
    NoEquals(String),
    #[error("The add-scram mechanism {0} is not supported.")]
    UnknownMechanism(String),
    #[error("Expected configuration string to start with [")]
    NoOpeningBracket,
    #[error("Expected configuration string to end with ]")]
    NoClosingBracket,
    #[error("No equals sign found in SCRAM component: {0}")]
    NoEqualsInComponent(String),
    #[error("You must supply 'name' to add-scram")]
    NoName,
    #[error("The 'name' given to add-scram must not be empty")]
    EmptyName,
    #[error("Failed to decode given salt: {0}")]
    BadSalt(String),
    #[error("Failed to parse iterations count: {0}")]
    BadIterations(String),
    #[error("You must supply one of 'password' or 'saltedpassword' to add-scram")]
    NoPassword,
    #[error("You must supply 'salt' with 'saltedpassword' to add-scram")]
    SaltedPasswordWithoutSalt,
    #[error("Failed to decode given saltedPassword: {0}")]
    BadSaltedPassword(String),
    #[error("Unknown SCRAM configurations: {}", .0.join(", "))]
    UnknownKeys(Vec<String>),
    #[error("The 'iterations' value must be >= {minimum} for add-scram using {mechanism}")]
    TooFewIterations {
        minimum: u32,
        mechanism: ScramMechanism,
    },
    #[error("The 'iterations' value must be <= {maximum} for add-scram using {mechanism}")]
    TooManyIterations {
        maximum: u32,
        mechanism: ScramMechanism,
    },
    /// An empty salt, a salted password of the wrong length, or no randomness.
    #[error("Cannot make a SCRAM credential for add-scram: {0}")]
    Credential(String),
}

/// What one argument asks for, before any salt is made up or any key derived.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Spec {
    mechanism: ScramMechanism,
    name: String,
    salt: Option<Vec<u8>>,
    iterations: i32,
    secret: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Secret {
    Password(String),
    SaltedPassword(Vec<u8>),
}

/// The credential record one `--add-scram` argument makes.
pub fn parse(argument: &str) -> Result<MetadataRecord, AddScramError> {
    let spec = parse_spec(argument)?;
    let mechanism = spec.mechanism;
    let iterations = check_iterations(mechanism, spec.iterations)?;
    let credential = match (&spec.salt, &spec.secret) {
        (Some(salt), Secret::Password(password)) => {
            ScramCredential::from_password(mechanism, password, salt, iterations)
        }
        (None, Secret::Password(password)) => {
            ScramCredential::generate(mechanism, password, iterations)
        }
        (Some(salt), Secret::SaltedPassword(salted)) => {
            ScramCredential::from_salted_password(mechanism, salt, salted, iterations)
        }
        // parse_spec refuses a salted password without a salt.
        (None, Secret::SaltedPassword(_)) => return Err(AddScramError::SaltedPasswordWithoutSalt),
    }
    .map_err(|e| AddScramError::Credential(e.to_string()))?;
    Ok(MetadataRecord::UserScramCredential {
        name: spec.name,
        mechanism,
        credential,
    })
}

fn check_iterations(mechanism: ScramMechanism, iterations: i32) -> Result<u32, AddScramError> {
    let minimum = mechanism.min_iterations();
    let maximum = mechanism.max_iterations();
    match u32::try_from(iterations) {
        Ok(n) if n < minimum => Err(AddScramError::TooFewIterations { minimum, mechanism }),
        Err(_) => Err(AddScramError::TooFewIterations { minimum, mechanism }),
        Ok(n) if n > maximum => Err(AddScramError::TooManyIterations { maximum, mechanism }),
        Ok(n) => Ok(n),
    }
}

fn parse_spec(argument: &str) -> Result<Spec, AddScramError> {
    let argument = argument.trim();
    let (mechanism_name, config) = argument
        .split_once('=')
        .ok_or_else(|| AddScramError::NoEquals(argument.to_string()))?;
    let mechanism = ScramMechanism::from_name(mechanism_name)
        .ok_or_else(|| AddScramError::UnknownMechanism(mechanism_name.to_string()))?;
    let inner = config
        .strip_prefix('[')
        .ok_or(AddScramError::NoOpeningBracket)?
        .strip_suffix(']')
        .ok_or(AddScramError::NoClosingBracket)?;
    let mut components = components(inner)?;
    let name = components.remove("name").ok_or(AddScramError::NoName)?;
    if name.is_empty() {
        return Err(AddScramError::EmptyName);
    }
    let salt = components
        .remove("salt")
        .map(|s| BASE64.decode(&s).map_err(|_| AddScramError::BadSalt(s)))
        .transpose()?;
    let iterations = match components.remove("iterations") {
        None => DEFAULT_ITERATIONS,
        Some(s) => s.parse().map_err(|_| AddScramError::BadIterations(s))?,
    };
    let password = components.remove("password");
    let salted_password = components.remove("saltedpassword");
    let secret = match (password, salted_password) {
        (Some(password), _) => Secret::Password(password),
        (None, None) => return Err(AddScramError::NoPassword),
        (None, Some(_)) if salt.is_none() => return Err(AddScramError::SaltedPasswordWithoutSalt),
        (None, Some(s)) => Secret::SaltedPassword(
            BASE64
                .decode(&s)
                .map_err(|_| AddScramError::BadSaltedPassword(s))?,
        ),
    };
    if !components.is_empty() {
        return Err(AddScramError::UnknownKeys(components.into_keys().collect()));
    }
    Ok(Spec {
        mechanism,
        name,
        salt,
        iterations,
        secret,
    })
}

/// `key=value,...` into a map sorted by key (so unknown keys are listed in order). As
/// Java's `String.split(",")`: without a comma the whole string is the one piece (even
/// empty); with one, empty pieces at the end are dropped.
fn components(inner: &str) -> Result<BTreeMap<String, String>, AddScramError> {
    let mut pieces: Vec<&str> = inner.split(',').collect();
    if inner.contains(',') {
        while pieces.last().is_some_and(|p| p.is_empty()) {
            pieces.pop();
        }
    }
    let mut map = BTreeMap::new();
    for piece in pieces {
        let (key, value) = piece
            .split_once('=')
            .ok_or_else(|| AddScramError::NoEqualsInComponent(piece.to_string()))?;
        let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(unquoted) if value.len() >= 2 => unquoted,
            _ => value,
        };
        map.insert(key.to_string(), value.to_string());
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential_of(record: &MetadataRecord) -> (&str, ScramMechanism, &ScramCredential) {
        match record {
            MetadataRecord::UserScramCredential {
                name,
                mechanism,
                credential,
            } => (name, *mechanism, credential),
            other => panic!("not a credential record: {other:?}"),
        }
    }

    #[test]
    fn a_password_makes_a_credential_with_a_random_salt_and_kafkas_default_iterations() {
        let record = parse("SCRAM-SHA-512=[name=alice,password=alice-secret]").expect("valid");
        let (name, mechanism, credential) = credential_of(&record);
        assert_eq!((name, mechanism), ("alice", ScramMechanism::Sha512));
        assert_eq!(credential.iterations, 4096);
        // The salt's form is Kafka's: 130 random bits in base 36.
        assert!(!credential.salt.is_empty() && credential.salt.len() <= 26);
        let again = parse("SCRAM-SHA-512=[name=alice,password=alice-secret]").expect("valid");
        assert_ne!(
            credential_of(&again).2.salt,
            credential.salt,
            "a new salt each time"
        );
        let expected = ScramCredential::from_password(
            ScramMechanism::Sha512,
            "alice-secret",
            &credential.salt,
            4096,
        )
        .expect("valid");
        assert_eq!(*credential, expected);
    }

    #[test]
    fn given_salt_and_iterations_are_used() {
        // "N3E=" is "7q"; the trailing comma and the quotes are Kafka's syntax too.
        let record =
            parse(r#" SCRAM-SHA-256=[name="bob",iterations=8192,salt="N3E=",password=pw,] "#)
                .expect("valid");
        let (name, mechanism, credential) = credential_of(&record);
        assert_eq!((name, mechanism), ("bob", ScramMechanism::Sha256));
        let expected =
            ScramCredential::from_password(ScramMechanism::Sha256, "pw", b"7q", 8192).expect("ok");
        assert_eq!(*credential, expected);
    }

    #[test]
    fn a_salted_password_is_taken_as_given() {
        let salted = vec![5u8; 64];
        let arg = format!(
            "SCRAM-SHA-512=[name=alice,iterations=8192,salt=N3E,saltedpassword={}]",
            base64::engine::general_purpose::STANDARD.encode(&salted)
        );
        let record = parse(&arg).expect("valid");
        let expected =
            ScramCredential::from_salted_password(ScramMechanism::Sha512, b"7q", &salted, 8192)
                .expect("ok");
        assert_eq!(*credential_of(&record).2, expected);
        // With a password as well, the password wins, as in Kafka.
        let both = parse(&format!("{},password=pw]", arg.trim_end_matches(']'))).expect("valid");
        assert_ne!(*credential_of(&both).2, expected);
    }

    #[test]
    fn malformed_arguments_get_kafkas_messages() {
        let cases = [
            (
                "SCRAM-SHA-256",
                "Failed to find equals sign in SCRAM argument 'SCRAM-SHA-256'",
            ),
            (
                "SCRAM-SHA-1=[name=a,password=b]",
                "The add-scram mechanism SCRAM-SHA-1 is not supported.",
            ),
            (
                "scram-sha-256=[name=a,password=b]",
                "The add-scram mechanism scram-sha-256 is not supported.",
            ),
            (
                "SCRAM-SHA-256=name=a",
                "Expected configuration string to start with [",
            ),
            (
                "SCRAM-SHA-256=[name=a",
                "Expected configuration string to end with ]",
            ),
            (
                "SCRAM-SHA-256=[password=x]",
                "You must supply 'name' to add-scram",
            ),
            (
                "SCRAM-SHA-256=[name=a]",
                "You must supply one of 'password' or 'saltedpassword' to add-scram",
            ),
            (
                // Components are not trimmed: " password" is not "password".
                "SCRAM-SHA-256=[name=a, password=b]",
                "You must supply one of 'password' or 'saltedpassword' to add-scram",
            ),
            (
                "SCRAM-SHA-256=[name=a,saltedpassword=YWJj]",
                "You must supply 'salt' with 'saltedpassword' to add-scram",
            ),
            (
                "SCRAM-SHA-256=[name=a,password=b,foo=1,bar=2]",
                "Unknown SCRAM configurations: bar, foo",
            ),
            (
                "SCRAM-SHA-256=[name=a,password]",
                "No equals sign found in SCRAM component: password",
            ),
            (
                "SCRAM-SHA-256=[]",
                "No equals sign found in SCRAM component: ",
            ),
            ("SCRAM-SHA-256=[,,]", "You must supply 'name' to add-scram"),
            (
                "SCRAM-SHA-256=[name=a,salt=!!,password=b]",
                "Failed to decode given salt: !!",
            ),
            (
                "SCRAM-SHA-256=[name=a,salt=N3E=,saltedpassword=%%]",
                "Failed to decode given saltedPassword: %%",
            ),
            (
                "SCRAM-SHA-256=[name=a,iterations=x,password=b]",
                "Failed to parse iterations count: x",
            ),
            (
                "SCRAM-SHA-256=[name=alice,iterations=100,password=x]",
                "The 'iterations' value must be >= 4096 for add-scram using SCRAM-SHA-256",
            ),
            (
                "SCRAM-SHA-512=[name=alice,iterations=-1,password=x]",
                "The 'iterations' value must be >= 4096 for add-scram using SCRAM-SHA-512",
            ),
            (
                "SCRAM-SHA-256=[name=a,iterations=20000,password=b]",
                "The 'iterations' value must be <= 16384 for add-scram using SCRAM-SHA-256",
            ),
            // Strom's own refusals.
            (
                "SCRAM-SHA-256=[name=,password=b]",
                "The 'name' given to add-scram must not be empty",
            ),
            (
                "SCRAM-SHA-256=[name=a,salt=,password=b]",
                "Cannot make a SCRAM credential for add-scram: Salt must not be empty",
            ),
            (
                "SCRAM-SHA-512=[name=a,salt=N3E=,saltedpassword=YCE=]",
                "Cannot make a SCRAM credential for add-scram: Salted password must be 64 bytes for SCRAM-SHA-512, got 2",
            ),
        ];
        for (argument, message) in cases {
            let e = parse(argument).expect_err(argument);
            assert_eq!(e.to_string(), message, "{argument}");
        }
    }

    #[test]
    fn a_repeated_key_takes_its_last_value() {
        let record = parse("SCRAM-SHA-256=[name=a,name=b,password=pw]").expect("valid");
        assert_eq!(credential_of(&record).0, "b");
    }
}
