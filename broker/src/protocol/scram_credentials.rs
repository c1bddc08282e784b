//! KIP-554: DescribeUserScramCredentials (API 50), answered from this broker's image, and
//! AlterUserScramCredentials (API 51), decided by the active controller wherever it runs
//! (`controller::scram` has the rules). The credentials are records of the metadata log,
//! so every broker learns them and a SASL/SCRAM exchange checks against its own image.

use std::collections::BTreeSet;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};

use super::{log_refusal, str_bytes, RequestContext};
use crate::auth::scram::ScramMechanism;
use crate::broker::Broker;
use crate::controller::scram::{
    describe_scram_credentials, ScramDeletion, ScramUpsertion, UserOutcome,
};
use crate::error::ApiError;
use crate::metadata::MetadataImage;
use crate::quorum::{ControllerOk, ControllerRequest};

pub fn describe(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    // Kafka requires DESCRIBE on the cluster (checked before dispatch: cluster_gate).
    let users: Option<Vec<String>> = request
        .users
        .map(|users| users.iter().map(|u| u.name.to_string()).collect());
    let image = broker.metadata.image();
    let results = describe_scram_credentials(&image, users.as_deref())
        .into_iter()
        .map(|(user, outcome)| {
            let result = DescribeUserScramCredentialsResult::default().with_user(str_bytes(&user));
            match outcome {
                Ok(mechanisms) => result.with_credential_infos(
                    mechanisms
                        .into_iter()
                        .map(|(mechanism, iterations)| {
                            CredentialInfo::default()
                                .with_mechanism(mechanism.type_code())
                                .with_iterations(i32::try_from(iterations).unwrap_or(i32::MAX))
                        })
                        .collect(),
                ),
                Err(e) => {
                    log_refusal(ctx, &format!("user {user}"), &e);
                    result
                        .with_error_code(e.code())
                        .with_error_message(Some(str_bytes(&e.message)))
                }
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

pub async fn alter(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    // Kafka's controller requires ALTER on the cluster (checked before dispatch:
    // cluster_gate).
    let deletions: Vec<ScramDeletion> = request
        .deletions
        .iter()
        .map(|d| ScramDeletion {
            name: d.name.to_string(),
            mechanism: d.mechanism,
        })
        .collect();
    let upsertions: Vec<ScramUpsertion> = request
        .upsertions
        .iter()
        .map(|u| {
            ScramUpsertion::prepare(
                u.name.to_string(),
                u.mechanism,
                u.iterations,
                &u.salt,
                &u.salted_password,
            )
        })
        .collect();
    let asked = ControllerRequest::AlterScramCredentials {
        deletions: deletions.clone(),
        upsertions: upsertions.clone(),
    };
    let results = match broker.controller(asked).await {
        Ok(ControllerOk::ScramResults(results)) => results,
        Ok(other) => request_failed(
            &deletions,
            &upsertions,
            ApiError::new(
                ResponseError::UnknownServerError,
                format!("the controller answered with an unexpected {other:?}"),
            ),
        ),
        Err(e) => request_failed(&deletions, &upsertions, e),
    };
    // A client that alters and then describes through this broker (kafka-configs does)
    // should see its change: wait, briefly, until this broker's image has it.
    let applied = |image: &MetadataImage| {
        results
            .iter()
            .filter(|(_, r)| r.is_ok())
            .all(|(user, _)| visible(image, user, &deletions, &upsertions))
    };
    if results.iter().any(|(_, r)| r.is_ok()) {
        broker.await_image(applied).await;
    }
    let results = results
        .into_iter()
        .map(|(user, outcome)| {
            let result = AlterUserScramCredentialsResult::default().with_user(str_bytes(&user));
            match outcome {
                Ok(()) => {
                    tracing::info!(user, "SCRAM credential changed");
                    result
                }
                Err(e) => {
                    log_refusal(ctx, &format!("user {user}"), &e);
                    result
                        .with_error_code(e.code())
                        .with_error_message(Some(str_bytes(&e.message)))
                }
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

/// A failure of the whole request (no controller, a timeout) for every user it names,
/// each once and sorted, as Kafka's error response lists them.
fn request_failed(
    deletions: &[ScramDeletion],
    upsertions: &[ScramUpsertion],
    e: ApiError,
) -> Vec<UserOutcome> {
    let users: BTreeSet<&String> = deletions
        .iter()
        .map(|d| &d.name)
        .chain(upsertions.iter().map(|u| &u.name))
        .collect();
    users
        .into_iter()
        .map(|user| (user.clone(), Err(e.clone())))
        .collect()
}

/// Whether `image` shows the accepted alteration of `user` (a user has exactly one).
fn visible(
    image: &MetadataImage,
    user: &str,
    deletions: &[ScramDeletion],
    upsertions: &[ScramUpsertion],
) -> bool {
    if let Some(d) = deletions.iter().find(|d| d.name == user) {
        return ScramMechanism::from_type_code(d.mechanism)
            .is_none_or(|m| image.scram_credential(user, m).is_none());
    }
    upsertions
        .iter()
        .find(|u| u.name == user)
        .and_then(|u| {
            let mechanism = ScramMechanism::from_type_code(u.mechanism)?;
            let credential = u.credential.as_ref().ok()?;
            Some(image.scram_credential(user, mechanism).as_ref() == Some(credential))
        })
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scram::ScramCredential;
    use crate::metadata::MetadataRecord;

    #[test]
    fn a_failed_request_fails_every_user_once_in_name_order() {
        let d = |name: &str| ScramDeletion {
            name: name.into(),
            mechanism: 1,
        };
        let u = |name: &str| ScramUpsertion::prepare(name.into(), 1, 4096, b"s", &[1; 32]);
        let e = ApiError::new(ResponseError::NotController, "no controller");
        let results = request_failed(&[d("bob"), d("alice")], &[u("bob"), u("carol")], e);
        let names: Vec<&str> = results.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["alice", "bob", "carol"]);
        assert!(results.iter().all(|(_, r)| r
            .as_ref()
            .is_err_and(|e| e.error == ResponseError::NotController)));
    }

    #[test]
    fn an_alteration_is_visible_once_the_image_has_it() {
        let upsertion = ScramUpsertion::prepare("alice".into(), 2, 4096, b"s", &[1; 64]);
        let deletion = ScramDeletion {
            name: "bob".into(),
            mechanism: 1,
        };
        let credential = |m: ScramMechanism| {
            ScramCredential::from_salted_password(m, b"s", &vec![1; m.output_len()], 4096)
        };
        let mut image = MetadataImage::default();
        image.apply(&MetadataRecord::UserScramCredential {
            name: "bob".into(),
            mechanism: ScramMechanism::Sha256,
            credential: credential(ScramMechanism::Sha256).expect("valid"),
        });
        let deletions = [deletion];
        let upsertions = [upsertion];
        assert!(!visible(&image, "alice", &deletions, &upsertions));
        assert!(!visible(&image, "bob", &deletions, &upsertions));
        image.apply(&MetadataRecord::UserScramCredential {
            name: "alice".into(),
            mechanism: ScramMechanism::Sha512,
            credential: credential(ScramMechanism::Sha512).expect("valid"),
        });
        image.apply(&MetadataRecord::RemoveUserScramCredential {
            name: "bob".into(),
            mechanism: ScramMechanism::Sha256,
        });
        assert!(visible(&image, "alice", &deletions, &upsertions));
        assert!(visible(&image, "bob", &deletions, &upsertions));
    }
}
