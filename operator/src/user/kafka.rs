//! The broker calls of a user reconcile, through `strom_client::admin_security`: observe
//! what the brokers hold for one principal (DescribeUserScramCredentials, DescribeAcls,
//! DescribeClientQuotas) and change it (AlterUserScramCredentials, CreateAcls,
//! DeleteAcls, AlterClientQuotas). Behind the `UserAdmin` trait so the reconcile tests
//! put a fake in its place. Every call takes the brokers as `bootstrap`, the one argument
//! to swap when connections get TLS or SASL.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use kafka_protocol::ResponseError;
use strom_client::admin::{Admin, AdminError, Refused};

use crate::access::Brokers;
use strom_client::admin_security::{
    AclBinding, AclFilter, QuotaOp, ScramDeletion, ScramMechanism, ScramUpsertion,
};

const CLIENT_ID: &str = "strom-operator";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CALL_TIMEOUT: Duration = Duration::from_secs(35);
/// The mechanism of `authentication.type: scram-sha-512`.
pub const MECHANISM: ScramMechanism = ScramMechanism::Sha512;
/// Kafka's minimum for SCRAM-SHA-512, and what its tools use.
pub const ITERATIONS: u32 = 4096;

/// What the brokers hold for one user.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// A SCRAM-SHA-512 credential exists for the user name.
    pub scram: bool,
    /// Every ACL naming the principal.
    pub acls: Vec<AclBinding>,
    /// The quotas set on the user entity.
    pub quotas: BTreeMap<String, f64>,
}

/// The broker calls for one user, to the brokers `bootstrap` names.
pub trait UserAdmin: Send + Sync {
    /// The credential, ACLs and quotas of `username` (principal `User:<username>`).
    fn observe<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Observed, AdminError>>;
    /// Creates or replaces the SCRAM-SHA-512 credential for `password`.
    fn upsert_scram<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        username: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<(), AdminError>>;
    /// Removes the SCRAM-SHA-512 credential; none counts as removed.
    fn delete_scram<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        username: &'a str,
    ) -> BoxFuture<'a, Result<(), AdminError>>;
    /// Creates ACLs, stopping at the first refusal.
    fn create_acls<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        acls: &'a [AclBinding],
    ) -> BoxFuture<'a, Result<(), AdminError>>;
    /// Deletes exactly these ACLs (one exact filter each).
    fn delete_acls<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        acls: &'a [AclBinding],
    ) -> BoxFuture<'a, Result<(), AdminError>>;
    /// Sets and removes quotas of the user entity `username`.
    fn alter_quotas<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        username: &'a str,
        ops: &'a [QuotaOp],
    ) -> BoxFuture<'a, Result<(), AdminError>>;
}

/// The real thing: a fresh connection per call.
#[derive(Debug, Default, Clone, Copy)]
pub struct KafkaUserAdmin;

impl UserAdmin for KafkaUserAdmin {
    fn observe<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Observed, AdminError>> {
        Box::pin(observe(bootstrap, username))
    }
    fn upsert_scram<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        username: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(upsert_scram(bootstrap, username, password))
    }
    fn delete_scram<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        username: &'a str,
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(delete_scram(bootstrap, username))
    }
    fn create_acls<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        acls: &'a [AclBinding],
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(create_acls(bootstrap, acls))
    }
    fn delete_acls<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        acls: &'a [AclBinding],
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(delete_acls(bootstrap, acls))
    }
    fn alter_quotas<'a>(
        &'a self,
        bootstrap: &'a Brokers,
        username: &'a str,
        ops: &'a [QuotaOp],
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(alter_quotas(bootstrap, username, ops))
    }
}

async fn connect(bootstrap: &Brokers) -> Result<Admin, AdminError> {
    Admin::connect_with(
        &bootstrap.addresses,
        &bootstrap.security,
        CLIENT_ID,
        CONNECT_TIMEOUT,
        CALL_TIMEOUT,
    )
    .await
}

fn missing(api: &'static str, username: &str) -> AdminError {
    AdminError::Refused(Refused {
        api,
        resource: format!("user {username}"),
        code: ResponseError::UnknownServerError.code(),
        message: Some("the broker's answer did not name the user".into()),
    })
}

pub async fn observe(bootstrap: &Brokers, username: &str) -> Result<Observed, AdminError> {
    let mut admin = connect(bootstrap).await?;
    let mut credentials = admin
        .describe_user_scram_credentials(&[username.to_string()])
        .await?;
    let scram = credentials
        .remove(username)
        .ok_or_else(|| missing("DescribeUserScramCredentials", username))??
        .iter()
        .any(|c| c.mechanism == MECHANISM);
    let acls = admin
        .describe_acls(&AclFilter::principal(format!("User:{username}")))
        .await?;
    let quotas = admin.describe_user_quotas(username).await?;
    Ok(Observed {
        scram,
        acls,
        quotas,
    })
}

pub async fn upsert_scram(
    bootstrap: &Brokers,
    username: &str,
    password: &str,
) -> Result<(), AdminError> {
    let upsertion =
        ScramUpsertion::new(username, MECHANISM, password, ITERATIONS).map_err(|e| {
            AdminError::Refused(Refused {
                api: "AlterUserScramCredentials",
                resource: format!("user {username}"),
                code: ResponseError::UnknownServerError.code(),
                message: Some(e.to_string()),
            })
        })?;
    let mut admin = connect(bootstrap).await?;
    let mut answers = admin
        .alter_user_scram_credentials(&[upsertion], &[])
        .await?;
    answers
        .remove(username)
        .ok_or_else(|| missing("AlterUserScramCredentials", username))??;
    Ok(())
}

pub async fn delete_scram(bootstrap: &Brokers, username: &str) -> Result<(), AdminError> {
    let mut admin = connect(bootstrap).await?;
    let deletion = ScramDeletion {
        user: username.to_string(),
        mechanism: MECHANISM,
    };
    let mut answers = admin.alter_user_scram_credentials(&[], &[deletion]).await?;
    match answers.remove(username) {
        Some(Err(r)) if r.error() == Some(ResponseError::ResourceNotFound) => Ok(()),
        Some(outcome) => Ok(outcome?),
        None => Err(missing("AlterUserScramCredentials", username)),
    }
}

pub async fn create_acls(bootstrap: &Brokers, acls: &[AclBinding]) -> Result<(), AdminError> {
    if acls.is_empty() {
        return Ok(());
    }
    let mut admin = connect(bootstrap).await?;
    for outcome in admin.create_acls(acls).await? {
        outcome?;
    }
    Ok(())
}

pub async fn delete_acls(bootstrap: &Brokers, acls: &[AclBinding]) -> Result<(), AdminError> {
    if acls.is_empty() {
        return Ok(());
    }
    let filters: Vec<AclFilter> = acls.iter().map(AclFilter::exact).collect();
    let mut admin = connect(bootstrap).await?;
    for outcome in admin.delete_acls(&filters).await? {
        outcome?;
    }
    Ok(())
}

pub async fn alter_quotas(
    bootstrap: &Brokers,
    username: &str,
    ops: &[QuotaOp],
) -> Result<(), AdminError> {
    if ops.is_empty() {
        return Ok(());
    }
    let mut admin = connect(bootstrap).await?;
    admin.alter_user_quotas(username, ops).await??;
    Ok(())
}
