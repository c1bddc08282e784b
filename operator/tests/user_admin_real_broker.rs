//! The security admin calls (`strom_client::admin_security`) against a real strom-broker
//! started in this test process with the standard authorizer on: ACLs created, described
//! by principal and deleted with exact filters, a binding Kafka refuses surfacing as a
//! typed refusal, SCRAM credentials upserted, described and deleted, user quotas set,
//! described and removed.

use std::future::Future;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use strom_broker::harness::start_plaintext_with;
use strom_client::admin::Admin;
use strom_client::admin_security::{
    AclBinding, AclFilter, AclOperation, AclPermission, PatternType, QuotaOp, ResourceType,
    ScramDeletion, ScramMechanism, ScramUpsertion,
};

/// Bounds every wait for the broker's metadata to show a change it accepted.
const SETTLE: Duration = Duration::from_secs(60);

async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + SETTLE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what} not reached in {SETTLE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn binding(principal: &str, rt: ResourceType, name: &str, op: AclOperation) -> AclBinding {
    AclBinding {
        resource_type: rt,
        resource_name: name.into(),
        pattern_type: PatternType::Literal,
        principal: principal.into(),
        host: "*".into(),
        operation: op,
        permission: AclPermission::Allow,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_scram_credentials_and_quotas_on_a_real_broker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, address) = start_plaintext_with(
        dir.path(),
        &[
            (
                "authorizer.class.name",
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            ),
            ("super.users", "User:ANONYMOUS"),
        ],
        SETTLE,
    )
    .await
    .expect("broker starts");
    let bootstrap = vec![address];
    let connect = || {
        Admin::connect(
            &bootstrap,
            "test",
            Duration::from_secs(5),
            Duration::from_secs(30),
        )
    };
    let mut admin = connect().await.expect("connect");

    // ACLs: create, describe by principal, and an exact delete takes only its own.
    let read = binding(
        "User:alice",
        ResourceType::Topic,
        "orders",
        AclOperation::Read,
    );
    let prefixed = AclBinding {
        pattern_type: PatternType::Prefixed,
        permission: AclPermission::Deny,
        ..binding("User:alice", ResourceType::Group, "app-", AclOperation::All)
    };
    let cluster = binding(
        "User:alice",
        ResourceType::Cluster,
        "kafka-cluster",
        AclOperation::IdempotentWrite,
    );
    let bobs = binding(
        "User:bob",
        ResourceType::Topic,
        "orders",
        AclOperation::Read,
    );
    let created = admin
        .create_acls(&[
            read.clone(),
            prefixed.clone(),
            cluster.clone(),
            bobs.clone(),
        ])
        .await
        .expect("CreateAcls");
    assert_eq!(created, vec![Ok(()), Ok(()), Ok(()), Ok(())]);
    let mut seen = eventually("alice's ACLs", || async {
        let acls = connect()
            .await
            .ok()?
            .describe_acls(&AclFilter::principal("User:alice"))
            .await
            .ok()?;
        (acls.len() == 3).then_some(acls)
    })
    .await;
    seen.sort();
    let mut expected = vec![read.clone(), prefixed.clone(), cluster.clone()];
    expected.sort();
    assert_eq!(seen, expected);

    let deleted = admin
        .delete_acls(&[AclFilter::exact(&read)])
        .await
        .expect("DeleteAcls");
    assert_eq!(deleted, vec![Ok(vec![read.clone()])]);
    let left = eventually("read ACL gone", || async {
        let acls = connect()
            .await
            .ok()?
            .describe_acls(&AclFilter::principal("User:alice"))
            .await
            .ok()?;
        (acls.len() == 2).then_some(acls)
    })
    .await;
    assert!(!left.contains(&read));
    let bob = admin
        .describe_acls(&AclFilter::principal("User:bob"))
        .await
        .expect("DescribeAcls");
    assert_eq!(bob, vec![bobs]);

    // A binding Kafka refuses: the cluster resource under another name.
    let refused = admin
        .create_acls(&[binding(
            "User:alice",
            ResourceType::Cluster,
            "not-the-cluster",
            AclOperation::Alter,
        )])
        .await
        .expect("CreateAcls answers");
    let refusal = refused[0].clone().expect_err("refused");
    assert_eq!(refusal.error(), Some(ResponseError::InvalidRequest));
    assert_eq!(refusal.api, "CreateAcls");

    // SCRAM: none, upserted, described, deleted; deleting none is refused by name.
    let users = vec!["alice".to_string()];
    let none = admin
        .describe_user_scram_credentials(&users)
        .await
        .expect("DescribeUserScramCredentials");
    assert_eq!(none["alice"], Ok(vec![]));
    let upsert =
        ScramUpsertion::new("alice", ScramMechanism::Sha512, "hunter2", 4096).expect("randomness");
    let answers = admin
        .alter_user_scram_credentials(&[upsert], &[])
        .await
        .expect("AlterUserScramCredentials");
    assert_eq!(answers["alice"], Ok(()));
    let infos = eventually("alice's credential", || async {
        let mut d = connect()
            .await
            .ok()?
            .describe_user_scram_credentials(&users)
            .await
            .ok()?;
        d.remove("alice")?.ok().filter(|i| !i.is_empty())
    })
    .await;
    assert_eq!(infos[0].mechanism, ScramMechanism::Sha512);
    assert_eq!(infos[0].iterations, 4096);
    let too_few =
        ScramUpsertion::new("alice", ScramMechanism::Sha512, "pw", 1).expect("randomness");
    let answers = admin
        .alter_user_scram_credentials(&[too_few], &[])
        .await
        .expect("AlterUserScramCredentials answers");
    assert!(
        answers["alice"].is_err(),
        "1 iteration is below Kafka's minimum"
    );
    let deletion = ScramDeletion {
        user: "alice".into(),
        mechanism: ScramMechanism::Sha512,
    };
    let answers = admin
        .alter_user_scram_credentials(&[], std::slice::from_ref(&deletion))
        .await
        .expect("AlterUserScramCredentials");
    assert_eq!(answers["alice"], Ok(()));
    eventually("alice's credential gone", || async {
        let mut d = connect()
            .await
            .ok()?
            .describe_user_scram_credentials(&users)
            .await
            .ok()?;
        d.remove("alice")?.ok().filter(|i| i.is_empty())
    })
    .await;
    let again = admin
        .alter_user_scram_credentials(&[], &[deletion])
        .await
        .expect("AlterUserScramCredentials answers");
    assert_eq!(
        again["alice"]
            .clone()
            .expect_err("nothing to delete")
            .error(),
        Some(ResponseError::ResourceNotFound)
    );

    // Quotas on the user entity: set, described, one removed.
    let set = admin
        .alter_user_quotas(
            "alice",
            &[
                QuotaOp::Set {
                    key: "producer_byte_rate".into(),
                    value: 1024.0,
                },
                QuotaOp::Set {
                    key: "request_percentage".into(),
                    value: 50.0,
                },
            ],
        )
        .await
        .expect("AlterClientQuotas");
    assert_eq!(set, Ok(()));
    eventually("alice's quotas", || async {
        let q = connect()
            .await
            .ok()?
            .describe_user_quotas("alice")
            .await
            .ok()?;
        (q.len() == 2 && q.get("producer_byte_rate") == Some(&1024.0)).then_some(())
    })
    .await;
    let removed = admin
        .alter_user_quotas(
            "alice",
            &[QuotaOp::Remove {
                key: "request_percentage".into(),
            }],
        )
        .await
        .expect("AlterClientQuotas");
    assert_eq!(removed, Ok(()));
    eventually("one quota left", || async {
        let q = connect()
            .await
            .ok()?
            .describe_user_quotas("alice")
            .await
            .ok()?;
        (q.len() == 1).then_some(())
    })
    .await;
    let unknown = admin
        .alter_user_quotas(
            "alice",
            &[QuotaOp::Set {
                key: "no_such_quota".into(),
                value: 1.0,
            }],
        )
        .await
        .expect("AlterClientQuotas answers");
    assert!(unknown.is_err(), "an unknown quota key is refused");

    drop(admin);
    running.shutdown().await.expect("shutdown");
}
