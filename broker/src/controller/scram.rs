//! KIP-554's AlterUserScramCredentials on the controller: which alterations of a request
//! become records, and the per-user error of each one that does not, with the codes and
//! messages of Kafka's `ScramControlManager`. Also DescribeUserScramCredentials' answer
//! from a broker's image (Kafka's `ScramImage.describe`), so the SCRAM rules sit together.
//!
//! Kafka's rules, in the order it applies them:
//! - Alterations are grouped by user name, deletions before upsertions. A user named a
//!   second time in one request, whatever the mechanism, fails with DUPLICATE_RESOURCE "A
//!   user credential cannot be altered twice in the same request" and none of that user's
//!   alterations happens. (So `kafka-configs --add-config 'SCRAM-SHA-256=[..],
//!   SCRAM-SHA-512=[..]'` fails on Kafka too.) Once a user has an error, its later
//!   alterations are not looked at: the first error is the one reported.
//! - Each alteration: an empty name is UNACCEPTABLE_CREDENTIAL "Username must not be
//!   empty"; a mechanism code other than SCRAM-SHA-256 (1) or SCRAM-SHA-512 (2) is
//!   UNSUPPORTED_SASL_MECHANISM "Unknown SCRAM mechanism"; an upsertion below 4096 or above
//!   16384 iterations is UNACCEPTABLE_CREDENTIAL "Too few iterations" / "Too many
//!   iterations"; a deletion of a credential the image does not hold is RESOURCE_NOT_FOUND
//!   "Attempt to delete a user credential that does not exist".
//! - Every user gets exactly one result. The records of all successful users are
//!   committed together.
//!
//! Stricter than Kafka, on purpose: an upsertion with an empty salt, or with a salted
//! password that is not one hash long, is refused with UNACCEPTABLE_CREDENTIAL (the
//! message says which). Kafka stores an empty salt, and a salted password of the wrong
//! length as a credential no client can ever match; for an empty salted password its
//! HMAC fails and it answers UNKNOWN_SERVER_ERROR (checked against Kafka 4.4 by
//! `broker/tests/scram_credentials.rs`). Kafka also answers UNSUPPORTED_VERSION to every
//! alteration while `metadata.version` is below 3.5-IV2; Strom has no such gate.
//!
//! The salted password is turned into the stored and server keys on the broker that took
//! the request ([`ScramUpsertion::prepare`]); only those keys travel to the controller,
//! as only they go into the metadata log.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};

use crate::auth::scram::{ScramCredential, ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};
use crate::error::ApiError;
use crate::metadata::{MetadataImage, MetadataRecord};

const DUPLICATE: &str = "A user credential cannot be altered twice in the same request";
const EMPTY_NAME: &str = "Username must not be empty";
const UNKNOWN_MECHANISM: &str = "Unknown SCRAM mechanism";
const TOO_FEW: &str = "Too few iterations";
const TOO_MANY: &str = "Too many iterations";
const NOT_FOUND: &str = "Attempt to delete a user credential that does not exist";

/// One user's result of an alteration request: done, or why not.
pub type UserOutcome = (String, Result<(), ApiError>);

/// One user's described credentials (mechanism and iterations), or why there are none.
pub type UserCredentials = (String, Result<Vec<(ScramMechanism, u32)>, ApiError>);

/// A deletion as the request carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramDeletion {
    pub name: String,
    /// The KIP-554 mechanism code; an unknown one is refused by the decision.
    pub mechanism: i8,
}

/// An upsertion as the controller decides on it: the request's name, mechanism code and
/// iterations, and the credential the receiving broker derived (or why it could not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramUpsertion {
    pub name: String,
    pub mechanism: i8,
    pub iterations: i32,
    /// The credential, or the message of UNACCEPTABLE_CREDENTIAL if the salt and salted
    /// password make none. Only consulted once the checks above have passed.
    pub credential: Result<ScramCredential, String>,
}

impl ScramUpsertion {
    /// Derives the keys from the request's salt and salted password (KIP-554: the client
    /// sends SaltedPassword, the broker keeps StoredKey and ServerKey).
    pub fn prepare(
        name: String,
        mechanism: i8,
        iterations: i32,
        salt: &[u8],
        salted_password: &[u8],
    ) -> ScramUpsertion {
        let credential = match (
            ScramMechanism::from_type_code(mechanism),
            u32::try_from(iterations),
        ) {
            (Some(m), Ok(n)) => ScramCredential::from_salted_password(m, salt, salted_password, n)
                .map_err(|e| e.to_string()),
            // Both are refused before the credential is looked at.
            (None, _) => Err(UNKNOWN_MECHANISM.to_string()),
            (_, Err(_)) => Err(TOO_FEW.to_string()),
        };
        ScramUpsertion {
            name,
            mechanism,
            iterations,
            credential,
        }
    }
}

/// The decision: the records to commit, and one result per user named in the request
/// (successful users first, deletions before upsertions, then the refused ones, as Kafka
/// lists them; within each group in the order the request first names them).
pub fn alter_scram_credentials(
    image: &MetadataImage,
    deletions: &[ScramDeletion],
    upsertions: &[ScramUpsertion],
) -> (Vec<MetadataRecord>, Vec<UserOutcome>) {
    let mut plan = Plan::default();
    for deletion in deletions {
        plan.consider(&deletion.name, |plan| {
            if plan.deleting.remove(&deletion.name).is_some() {
                return Err(duplicate());
            }
            let mechanism = check_name_and_mechanism(&deletion.name, deletion.mechanism)?;
            if image.scram_credential(&deletion.name, mechanism).is_none() {
                return Err(ApiError::new(ResponseError::ResourceNotFound, NOT_FOUND));
            }
            plan.deleting.insert(deletion.name.clone(), mechanism);
            Ok(())
        });
    }
    for upsertion in upsertions {
        plan.consider(&upsertion.name, |plan| {
            let was_deleting = plan.deleting.remove(&upsertion.name).is_some();
            let was_upserting = plan.upserting.remove(&upsertion.name).is_some();
            if was_deleting || was_upserting {
                return Err(duplicate());
            }
            let mechanism = check_name_and_mechanism(&upsertion.name, upsertion.mechanism)?;
            check_iterations(upsertion.iterations)?;
            plan.upserting
                .insert(upsertion.name.clone(), (mechanism, &upsertion.credential));
            Ok(())
        });
    }
    plan.finish()
}

/// What a request comes to while it is read: users to delete or upsert, users refused.
#[derive(Default)]
struct Plan<'a> {
    deleting: HashMap<String, ScramMechanism>,
    upserting: HashMap<String, (ScramMechanism, &'a Result<ScramCredential, String>)>,
    refused: HashMap<String, ApiError>,
    /// Each user once, in the order the request first names them.
    order: Vec<String>,
}

impl<'a> Plan<'a> {
    /// Runs `check` for one alteration of `name`, unless that user is already refused.
    fn consider(&mut self, name: &str, check: impl FnOnce(&mut Self) -> Result<(), ApiError>) {
        if self.refused.contains_key(name) {
            return;
        }
        if !self.order.iter().any(|n| n == name) {
            self.order.push(name.to_string());
        }
        if let Err(e) = check(self) {
            self.refused.insert(name.to_string(), e);
        }
    }

    fn finish(mut self) -> (Vec<MetadataRecord>, Vec<UserOutcome>) {
        let mut records = Vec::new();
        let mut results = Vec::new();
        for name in &self.order {
            if let Some(mechanism) = self.deleting.get(name) {
                records.push(MetadataRecord::RemoveUserScramCredential {
                    name: name.clone(),
                    mechanism: *mechanism,
                });
                results.push((name.clone(), Ok(())));
            }
        }
        for name in &self.order {
            let Some((mechanism, credential)) = self.upserting.get(name) else {
                continue;
            };
            match credential {
                Ok(credential) => {
                    records.push(MetadataRecord::UserScramCredential {
                        name: name.clone(),
                        mechanism: *mechanism,
                        credential: credential.clone(),
                    });
                    results.push((name.clone(), Ok(())));
                }
                Err(reason) => {
                    let e = ApiError::new(ResponseError::UnacceptableCredential, reason.clone());
                    self.refused.insert(name.clone(), e);
                }
            }
        }
        for name in &self.order {
            if let Some(e) = self.refused.remove(name) {
                results.push((name.clone(), Err(e)));
            }
        }
        (records, results)
    }
}

fn duplicate() -> ApiError {
    ApiError::new(ResponseError::DuplicateResource, DUPLICATE)
}

fn check_name_and_mechanism(name: &str, code: i8) -> Result<ScramMechanism, ApiError> {
    if name.is_empty() {
        return Err(ApiError::new(
            ResponseError::UnacceptableCredential,
            EMPTY_NAME,
        ));
    }
    ScramMechanism::from_type_code(code)
        .ok_or_else(|| ApiError::new(ResponseError::UnsupportedSaslMechanism, UNKNOWN_MECHANISM))
}

fn check_iterations(iterations: i32) -> Result<(), ApiError> {
    let refuse = |message| {
        Err(ApiError::new(
            ResponseError::UnacceptableCredential,
            message,
        ))
    };
    if i64::from(iterations) < i64::from(MIN_ITERATIONS) {
        return refuse(TOO_FEW);
    }
    if i64::from(iterations) > i64::from(MAX_ITERATIONS) {
        return refuse(TOO_MANY);
    }
    Ok(())
}

/// DescribeUserScramCredentials on a broker's image (Kafka's `ScramImage.describe`): for
/// `None` or an empty list every user with a credential, by name; otherwise each named
/// user once, in request order, with RESOURCE_NOT_FOUND for one without credentials and
/// DUPLICATE_RESOURCE for one named more than once. Only mechanisms and iteration counts
/// are given out, never salts or keys.
pub fn describe_scram_credentials(
    image: &MetadataImage,
    users: Option<&[String]>,
) -> Vec<UserCredentials> {
    let describe = |mechanisms: &BTreeMap<ScramMechanism, ScramCredential>| {
        mechanisms
            .iter()
            .map(|(mechanism, credential)| (*mechanism, credential.iterations))
            .collect::<Vec<_>>()
    };
    let Some(users) = users.filter(|u| !u.is_empty()) else {
        return image
            .scram_credentials
            .iter()
            .map(|(name, mechanisms)| (name.clone(), Ok(describe(mechanisms))))
            .collect();
    };
    let mut named: Vec<(&String, usize)> = Vec::new();
    for user in users {
        match named.iter_mut().find(|(n, _)| *n == user) {
            Some((_, times)) => *times += 1,
            None => named.push((user, 1)),
        }
    }
    named
        .into_iter()
        .map(|(name, times)| {
            let result = if times > 1 {
                Err(ApiError::new(
                    ResponseError::DuplicateResource,
                    format!(
                        "Cannot describe SCRAM credentials for the same user twice in a single request: {name}"
                    ),
                ))
            } else {
                match image.scram_credentials.get(name) {
                    Some(mechanisms) => Ok(describe(mechanisms)),
                    None => Err(ApiError::new(
                        ResponseError::ResourceNotFound,
                        format!("Attempt to describe a user credential that does not exist: {name}"),
                    )),
                }
            };
            (name.clone(), result)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256: i8 = 1;
    const SHA512: i8 = 2;

    fn salted(mechanism: ScramMechanism) -> Vec<u8> {
        vec![7; mechanism.output_len()]
    }

    fn upsert(name: &str, mechanism: i8, iterations: i32) -> ScramUpsertion {
        let len = ScramMechanism::from_type_code(mechanism).map_or(32, |m| m.output_len());
        ScramUpsertion::prepare(name.into(), mechanism, iterations, b"salt", &vec![7; len])
    }

    fn delete(name: &str, mechanism: i8) -> ScramDeletion {
        ScramDeletion {
            name: name.into(),
            mechanism,
        }
    }

    fn image_with(users: &[(&str, ScramMechanism)]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for (name, mechanism) in users {
            let credential =
                ScramCredential::from_salted_password(*mechanism, b"s", &salted(*mechanism), 4096)
                    .expect("valid");
            image.apply(&MetadataRecord::UserScramCredential {
                name: name.to_string(),
                mechanism: *mechanism,
                credential,
            });
        }
        image
    }

    /// (user, error code, message) per result, for compact assertions.
    fn outcome(results: &[UserOutcome]) -> Vec<(&str, i16, &str)> {
        results
            .iter()
            .map(|(name, r)| match r {
                Ok(()) => (name.as_str(), 0, ""),
                Err(e) => (name.as_str(), e.code(), e.message.as_str()),
            })
            .collect()
    }

    fn apply(image: &MetadataImage, records: &[MetadataRecord]) -> MetadataImage {
        let mut next = image.clone();
        for r in records {
            next.apply(r);
        }
        next
    }

    #[test]
    fn an_upsertion_becomes_a_credential_record_with_the_derived_keys() {
        let image = MetadataImage::default();
        let u = upsert("alice", SHA512, 8192);
        let (records, results) = alter_scram_credentials(&image, &[], std::slice::from_ref(&u));
        assert_eq!(outcome(&results), vec![("alice", 0, "")]);
        let expected = ScramCredential::from_salted_password(
            ScramMechanism::Sha512,
            b"salt",
            &salted(ScramMechanism::Sha512),
            8192,
        )
        .expect("valid");
        assert_eq!(
            records,
            vec![MetadataRecord::UserScramCredential {
                name: "alice".into(),
                mechanism: ScramMechanism::Sha512,
                credential: expected.clone(),
            }]
        );
        let next = apply(&image, &records);
        assert_eq!(
            next.scram_credential("alice", ScramMechanism::Sha512),
            Some(expected)
        );
    }

    #[test]
    fn a_deletion_of_an_existing_credential_becomes_a_removal() {
        let image = image_with(&[
            ("alice", ScramMechanism::Sha256),
            ("alice", ScramMechanism::Sha512),
        ]);
        let (records, results) = alter_scram_credentials(&image, &[delete("alice", SHA256)], &[]);
        assert_eq!(outcome(&results), vec![("alice", 0, "")]);
        let next = apply(&image, &records);
        assert!(next
            .scram_credential("alice", ScramMechanism::Sha256)
            .is_none());
        assert!(next
            .scram_credential("alice", ScramMechanism::Sha512)
            .is_some());
    }

    #[test]
    fn kafka_refusals_with_its_codes_and_messages() {
        let image = image_with(&[("alice", ScramMechanism::Sha256)]);
        type Case = (Vec<ScramDeletion>, Vec<ScramUpsertion>, (i16, &'static str));
        let cases: Vec<Case> = vec![
            (
                vec![],
                vec![upsert("", SHA256, 4096)],
                (ResponseError::UnacceptableCredential.code(), EMPTY_NAME),
            ),
            (
                vec![delete("", SHA256)],
                vec![],
                (ResponseError::UnacceptableCredential.code(), EMPTY_NAME),
            ),
            (
                vec![],
                vec![upsert("bob", 0, 4096)],
                (
                    ResponseError::UnsupportedSaslMechanism.code(),
                    UNKNOWN_MECHANISM,
                ),
            ),
            (
                vec![delete("alice", 3)],
                vec![],
                (
                    ResponseError::UnsupportedSaslMechanism.code(),
                    UNKNOWN_MECHANISM,
                ),
            ),
            (
                vec![],
                vec![upsert("bob", SHA256, 4095)],
                (ResponseError::UnacceptableCredential.code(), TOO_FEW),
            ),
            (
                vec![],
                vec![upsert("bob", SHA512, -1)],
                (ResponseError::UnacceptableCredential.code(), TOO_FEW),
            ),
            (
                vec![],
                vec![upsert("bob", SHA512, 16385)],
                (ResponseError::UnacceptableCredential.code(), TOO_MANY),
            ),
            (
                vec![delete("bob", SHA256)],
                vec![],
                (ResponseError::ResourceNotFound.code(), NOT_FOUND),
            ),
            (
                // The user exists, but not with this mechanism.
                vec![delete("alice", SHA512)],
                vec![],
                (ResponseError::ResourceNotFound.code(), NOT_FOUND),
            ),
        ];
        for (deletions, upsertions, (code, message)) in cases {
            let (records, results) = alter_scram_credentials(&image, &deletions, &upsertions);
            assert!(records.is_empty(), "{deletions:?} {upsertions:?}");
            assert_eq!(results.len(), 1);
            let (_, c, m) = outcome(&results)[0];
            assert_eq!((c, m), (code, message), "{deletions:?} {upsertions:?}");
        }
    }

    #[test]
    fn the_limits_themselves_are_accepted() {
        let image = MetadataImage::default();
        let (records, results) = alter_scram_credentials(
            &image,
            &[],
            &[upsert("min", SHA256, 4096), upsert("max", SHA512, 16384)],
        );
        assert_eq!(outcome(&results), vec![("min", 0, ""), ("max", 0, "")]);
        assert_eq!(records.len(), 2);
    }

    #[test]
    fn a_user_altered_twice_is_refused_whatever_the_mechanisms() {
        let image = image_with(&[
            ("alice", ScramMechanism::Sha256),
            ("alice", ScramMechanism::Sha512),
        ]);
        let dup = (ResponseError::DuplicateResource.code(), DUPLICATE);
        // Upserted and deleted for the same mechanism.
        let (records, results) = alter_scram_credentials(
            &image,
            &[delete("alice", SHA256)],
            &[upsert("alice", SHA256, 4096)],
        );
        assert!(records.is_empty());
        assert_eq!(outcome(&results), vec![("alice", dup.0, dup.1)]);
        // Two mechanisms upserted at once (kafka-configs with both, on Kafka too).
        let (records, results) = alter_scram_credentials(
            &image,
            &[],
            &[upsert("bob", SHA256, 4096), upsert("bob", SHA512, 4096)],
        );
        assert!(records.is_empty());
        assert_eq!(outcome(&results), vec![("bob", dup.0, dup.1)]);
        // Two deletions.
        let (records, results) = alter_scram_credentials(
            &image,
            &[delete("alice", SHA256), delete("alice", SHA512)],
            &[],
        );
        assert!(records.is_empty());
        assert_eq!(outcome(&results), vec![("alice", dup.0, dup.1)]);
        // A third alteration does not turn the duplicate into something else.
        let (_, results) = alter_scram_credentials(
            &image,
            &[delete("alice", SHA256), delete("alice", SHA512)],
            &[upsert("alice", SHA256, 4096)],
        );
        assert_eq!(outcome(&results), vec![("alice", dup.0, dup.1)]);
    }

    #[test]
    fn the_first_error_of_a_user_is_the_one_reported() {
        let image = MetadataImage::default();
        // The failed deletion (not found) stops the user; the later upsertion is not even
        // counted as a duplicate.
        let (records, results) = alter_scram_credentials(
            &image,
            &[delete("bob", SHA256)],
            &[upsert("bob", SHA256, 4096)],
        );
        assert!(records.is_empty());
        assert_eq!(
            outcome(&results),
            vec![("bob", ResponseError::ResourceNotFound.code(), NOT_FOUND)]
        );
        let (_, results) = alter_scram_credentials(
            &image,
            &[],
            &[upsert("bob", SHA256, 10), upsert("bob", SHA256, 4096)],
        );
        assert_eq!(
            outcome(&results),
            vec![("bob", ResponseError::UnacceptableCredential.code(), TOO_FEW)]
        );
    }

    #[test]
    fn users_are_decided_independently_and_listed_successes_first() {
        let image = image_with(&[("carol", ScramMechanism::Sha256)]);
        let (records, results) = alter_scram_credentials(
            &image,
            &[delete("dave", SHA256), delete("carol", SHA256)],
            &[upsert("erin", SHA256, 100), upsert("alice", SHA512, 4096)],
        );
        assert_eq!(
            outcome(&results),
            vec![
                ("carol", 0, ""),
                ("alice", 0, ""),
                ("dave", ResponseError::ResourceNotFound.code(), NOT_FOUND),
                (
                    "erin",
                    ResponseError::UnacceptableCredential.code(),
                    TOO_FEW
                ),
            ]
        );
        assert_eq!(records.len(), 2);
        let next = apply(&image, &records);
        assert!(!next.scram_credentials.contains_key("carol"));
        assert!(next
            .scram_credential("alice", ScramMechanism::Sha512)
            .is_some());
    }

    #[test]
    fn salts_and_salted_passwords_that_make_no_credential_are_refused() {
        let image = MetadataImage::default();
        let cases = [
            (b"".as_slice(), vec![7u8; 32], "Salt must not be empty"),
            (
                b"salt".as_slice(),
                vec![],
                "Salted password must be 32 bytes for SCRAM-SHA-256, got 0",
            ),
            (
                b"salt".as_slice(),
                vec![7u8; 64],
                "Salted password must be 32 bytes for SCRAM-SHA-256, got 64",
            ),
        ];
        for (salt, salted_password, message) in cases {
            let u = ScramUpsertion::prepare("bob".into(), SHA256, 4096, salt, &salted_password);
            let (records, results) = alter_scram_credentials(&image, &[], &[u]);
            assert!(records.is_empty());
            assert_eq!(
                outcome(&results),
                vec![("bob", ResponseError::UnacceptableCredential.code(), message)]
            );
        }
        // The iteration check comes first, as in Kafka.
        let u = ScramUpsertion::prepare("bob".into(), SHA256, 1, b"", &[]);
        let (_, results) = alter_scram_credentials(&image, &[], &[u]);
        assert_eq!(outcome(&results)[0].2, TOO_FEW);
    }

    #[test]
    fn an_upsertion_travels_without_its_salted_password() {
        let u = upsert("alice", SHA256, 4096);
        let json = serde_json::to_string(&u).expect("serializes");
        let back: ScramUpsertion = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, u);
        assert!(!json.contains("salted"), "{json}");
    }

    type Described = Result<Vec<(ScramMechanism, u32)>, (i16, String)>;

    fn described(image: &MetadataImage, users: Option<&[String]>) -> Vec<(String, Described)> {
        describe_scram_credentials(image, users)
            .into_iter()
            .map(|(n, r)| (n, r.map_err(|e| (e.code(), e.message))))
            .collect()
    }

    #[test]
    fn describe_lists_every_user_for_no_names() {
        let image = image_with(&[
            ("bob", ScramMechanism::Sha512),
            ("alice", ScramMechanism::Sha512),
            ("alice", ScramMechanism::Sha256),
        ]);
        let all = vec![
            (
                "alice".to_string(),
                Ok(vec![
                    (ScramMechanism::Sha256, 4096),
                    (ScramMechanism::Sha512, 4096),
                ]),
            ),
            ("bob".to_string(), Ok(vec![(ScramMechanism::Sha512, 4096)])),
        ];
        assert_eq!(described(&image, None), all);
        assert_eq!(described(&image, Some(&[])), all);
        assert!(described(&MetadataImage::default(), None).is_empty());
    }

    #[test]
    fn describe_of_named_users_refuses_unknown_and_repeated_names() {
        let image = image_with(&[("alice", ScramMechanism::Sha256)]);
        let names: Vec<String> = ["nobody", "alice", "bob", "bob", "bob"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            described(&image, Some(&names)),
            vec![
                (
                    "nobody".to_string(),
                    Err((
                        ResponseError::ResourceNotFound.code(),
                        "Attempt to describe a user credential that does not exist: nobody"
                            .to_string()
                    ))
                ),
                (
                    "alice".to_string(),
                    Ok(vec![(ScramMechanism::Sha256, 4096)])
                ),
                (
                    "bob".to_string(),
                    Err((
                        ResponseError::DuplicateResource.code(),
                        "Cannot describe SCRAM credentials for the same user twice in a single request: bob"
                            .to_string()
                    ))
                ),
            ]
        );
    }
}
