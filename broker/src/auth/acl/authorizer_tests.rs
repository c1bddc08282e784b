//! The authorizer's cases, each naming the Kafka test (StandardAuthorizerTest,
//! StandardAuthorizerPropertyTest, BaseAuthorizerTest) or source rule it mirrors.

use super::*;
use crate::auth::acl::filter::{AccessControlEntryFilter, ResourcePatternFilter};
use crate::auth::acl::model::host_address;
use AclOperation as Op;
use AclPermissionType as Perm;
use AuthorizationResult::{Allowed, Denied};
use PatternType as Pt;
use ResourceType as Rt;

const LOCALHOST: &str = "127.0.0.1";

fn user(name: &str) -> KafkaPrincipal {
    KafkaPrincipal::user(name)
}

fn binding(
    rt: Rt,
    name: &str,
    pt: Pt,
    principal: &str,
    host: &str,
    op: Op,
    perm: Perm,
) -> AclBinding {
    AclBinding::new(rt, name, pt, principal, host, op, perm)
}

/// An ACL from "TYPE name PATTERN principal host OPERATION PERMISSION" (Kafka's enum names;
/// `""` stands for an empty name or host), so case tables stay one line per ACL.
fn acl(spec: &str) -> AclBinding {
    let field = |f: &str| {
        if f == "\"\"" {
            String::new()
        } else {
            f.to_owned()
        }
    };
    let parts: Vec<String> = spec.split_whitespace().map(field).collect();
    let [rt, name, pt, principal, host, op, perm] = parts.as_slice() else {
        panic!("an ACL spec has 7 fields: {spec:?}");
    };
    let acl = binding(
        Rt::from_name(rt),
        name,
        Pt::from_name(pt),
        principal,
        host,
        Op::from_name(op),
        Perm::from_name(perm),
    );
    assert!(!acl.is_unknown(), "a misspelt spec: {spec:?}");
    acl
}

/// StandardAuthorizerTest.createAndInitializeStandardAuthorizer: super user "User:superman".
fn authorizer_with(acls: &[AclBinding]) -> Authorizer {
    let config = AuthorizerConfig::from_settings(Some("User:superman"), None).unwrap();
    let mut a = Authorizer::new(config);
    for b in acls {
        a.add(Uuid::new_v4(), b.clone()).unwrap();
    }
    a
}

/// Authorizes each (principal, op, type, name) from LOCALHOST.
fn results(
    a: &Authorizer,
    principal: &str,
    actions: &[(Op, Rt, &str)],
) -> Vec<AuthorizationResult> {
    results_from(a, principal, LOCALHOST, actions)
}

fn results_from(
    a: &Authorizer,
    principal: &str,
    host: &str,
    actions: &[(Op, Rt, &str)],
) -> Vec<AuthorizationResult> {
    actions
        .iter()
        .map(|(op, rt, name)| a.authorize(&user(principal), host, *op, *rt, name))
        .collect()
}

/// StandardAuthorizerTest.newFooAcl: TOPIC "foo_" PREFIXED for User:bob from any host.
fn foo_acl(op: Op, perm: Perm) -> AclBinding {
    binding(Rt::Topic, "foo_", Pt::Prefixed, "User:bob", "*", op, perm)
}

/// StandardAuthorizerTest.newBarAcl: GROUP "bar" LITERAL for User:* from any host.
fn bar_acl(op: Op, perm: Perm) -> AclBinding {
    binding(Rt::Group, "bar", Pt::Literal, "User:*", "*", op, perm)
}

/// What one ACL says about bob's `op` on topic "foo_bar": Some(result) when it matches
/// (findResult non-null), None when it applies to the topic but does not match.
fn find_result(binding: AclBinding, op: Op) -> Option<AuthorizationResult> {
    let a = authorizer_with(&[binding]);
    let d = a.decide(&user("bob"), LOCALHOST, op, Rt::Topic, "foo_bar");
    match d.rule {
        MatchingRule::Acl(_) => Some(d.result),
        MatchingRule::NoMatchingAcl => None,
        other => panic!("unexpected rule {other:?}"),
    }
}

/// StandardAuthorizerTest.testFindResultImplication, plus the pairs it leaves out: ALL
/// both ways, ALTER does not imply DESCRIBE_CONFIGS, ALTER_CONFIGS does not imply DESCRIBE.
#[test]
fn implication_is_for_allow_only() {
    for op in [
        Op::Describe,
        Op::Read,
        Op::Write,
        Op::Delete,
        Op::Alter,
        Op::All,
    ] {
        assert_eq!(
            find_result(foo_acl(op, Perm::Allow), Op::Describe),
            Some(Allowed),
            "{op}"
        );
    }
    for op in [
        Op::Create,
        Op::AlterConfigs,
        Op::DescribeConfigs,
        Op::ClusterAction,
    ] {
        assert_eq!(
            find_result(foo_acl(op, Perm::Allow), Op::Describe),
            None,
            "{op}"
        );
    }
    // Deny ACLs don't do "implication".
    for op in [Op::Read, Op::Write, Op::Delete, Op::Alter] {
        assert_eq!(
            find_result(foo_acl(op, Perm::Deny), Op::Describe),
            None,
            "{op}"
        );
    }
    assert_eq!(
        find_result(foo_acl(Op::Describe, Perm::Deny), Op::Describe),
        Some(Denied)
    );
    assert_eq!(
        find_result(foo_acl(Op::All, Perm::Deny), Op::Describe),
        Some(Denied)
    );
    for op in [Op::DescribeConfigs, Op::AlterConfigs, Op::All] {
        assert_eq!(
            find_result(foo_acl(op, Perm::Allow), Op::DescribeConfigs),
            Some(Allowed),
            "{op}"
        );
    }
    assert_eq!(
        find_result(foo_acl(Op::Alter, Perm::Allow), Op::DescribeConfigs),
        None
    );
    assert_eq!(
        find_result(foo_acl(Op::AlterConfigs, Perm::Deny), Op::DescribeConfigs),
        None
    );
    assert_eq!(
        find_result(foo_acl(Op::AlterConfigs, Perm::Deny), Op::AlterConfigs),
        Some(Denied)
    );
    // Implication runs one way: DESCRIBE does not give READ.
    assert_eq!(
        find_result(foo_acl(Op::Describe, Perm::Allow), Op::Read),
        None
    );
    assert_eq!(
        find_result(foo_acl(Op::All, Perm::Allow), Op::IdempotentWrite),
        Some(Allowed)
    );
}

/// StandardAuthorizerTest.testFindResultPrincipalMatching, and `matchingPrincipals` =
/// {requester, User:*}: only `User:*` is a wildcard, and it matches every principal type.
#[test]
fn principal_matching() {
    assert_eq!(
        find_result(foo_acl(Op::Read, Perm::Allow), Op::Read),
        Some(Allowed)
    );
    let a = authorizer_with(&[foo_acl(Op::Read, Perm::Allow)]);
    assert_eq!(
        a.decide(&user("alice"), LOCALHOST, Op::Read, Rt::Topic, "foo_bar")
            .rule,
        MatchingRule::NoMatchingAcl
    );
    let a = authorizer_with(&[bar_acl(Op::Read, Perm::Deny)]);
    assert_eq!(
        results(&a, "alice", &[(Op::Read, Rt::Group, "bar")]),
        vec![Denied]
    );
    let group_principal = KafkaPrincipal::new("Group", "admins");
    let a = authorizer_with(&[bar_acl(Op::Read, Perm::Allow)]);
    assert_eq!(
        a.authorize(&group_principal, LOCALHOST, Op::Read, Rt::Group, "bar"),
        Allowed
    );

    let cases: &[(&str, KafkaPrincipal, bool)] = &[
        ("Group:*", user("alice"), false),
        ("Group:*", KafkaPrincipal::new("Group", "*"), true),
        ("User:alice", KafkaPrincipal::new("Group", "alice"), false),
        ("User:alice", KafkaPrincipal::new("user", "alice"), false),
        ("User:Alice", user("alice"), false),
        ("User:a:b", user("a:b"), true),
        ("User:", user(""), true),
        ("*", user("alice"), false),
    ];
    for (acl_principal, requester, expected) in cases {
        let a = authorizer_with(&[acl(&format!(
            "TOPIC t LITERAL {acl_principal} * READ ALLOW"
        ))]);
        let got = a.authorize(requester, LOCALHOST, Op::Read, Rt::Topic, "t") == Allowed;
        assert_eq!(
            got, *expected,
            "ACL for {acl_principal}, requester {requester}"
        );
    }
}

/// StandardAuthorizerTest.testListAcls: Kafka's order (TOPIC before GROUP, then operation),
/// removal, and a TOPIC filter.
#[test]
fn listing_in_kafkas_order() {
    let mut a = authorizer_with(&[]);
    let foo = [
        foo_acl(Op::Read, Perm::Allow),
        foo_acl(Op::Write, Perm::Allow),
    ];
    let bar = [
        bar_acl(Op::DescribeConfigs, Perm::Deny),
        bar_acl(Op::AlterConfigs, Perm::Deny),
    ];
    let mut ids = Vec::new();
    for b in bar.iter().chain(foo.iter()) {
        let id = Uuid::new_v4();
        a.add(id, b.clone()).unwrap();
        ids.push(id);
    }
    let listed = |a: &Authorizer, f: &AclBindingFilter| -> Vec<AclBinding> {
        a.acls(f).into_iter().map(|(_, b)| b.clone()).collect()
    };
    let any = AclBindingFilter::any();
    assert_eq!(
        listed(&a, &any),
        vec![
            foo[0].clone(),
            foo[1].clone(),
            bar[0].clone(),
            bar[1].clone()
        ]
    );
    a.remove(ids[3]).unwrap(); // foo WRITE
    assert_eq!(
        listed(&a, &any),
        vec![foo[0].clone(), bar[0].clone(), bar[1].clone()]
    );
    let topics = AclBindingFilter {
        pattern: ResourcePatternFilter {
            resource_type: Rt::Topic,
            name: None,
            pattern_type: Pt::Any,
        },
        entry: AccessControlEntryFilter::any(),
    };
    assert_eq!(listed(&a, &topics), vec![foo[0].clone()]);
    // Names sort descending within a type (StandardAcl.compareTo).
    let b = authorizer_with(&[
        acl("TOPIC a LITERAL User:x * READ ALLOW"),
        acl("TOPIC b LITERAL User:x * READ ALLOW"),
        acl("TOPIC b PREFIXED User:x * READ ALLOW"),
    ]);
    let names: Vec<(String, Pt)> = b
        .acls(&any)
        .iter()
        .map(|(_, b)| (b.pattern.name.clone(), b.pattern.pattern_type))
        .collect();
    assert_eq!(
        names,
        vec![
            ("b".into(), Pt::Literal),
            ("b".into(), Pt::Prefixed),
            ("a".into(), Pt::Literal)
        ]
    );
}

/// StandardAuthorizerTest.testSimpleAuthorizations.
#[test]
fn simple_authorizations() {
    let a = authorizer_with(&[
        foo_acl(Op::Read, Perm::Allow),
        foo_acl(Op::Write, Perm::Allow),
        bar_acl(Op::DescribeConfigs, Perm::Allow),
        bar_acl(Op::AlterConfigs, Perm::Allow),
    ]);
    assert_eq!(
        results(&a, "bob", &[(Op::Read, Rt::Topic, "foo_")]),
        vec![Allowed]
    );
    assert_eq!(
        results(&a, "fred", &[(Op::AlterConfigs, Rt::Group, "bar")]),
        vec![Allowed]
    );
}

/// StandardAuthorizerTest.testDenyPrecedenceWithOperationAll.
#[test]
fn deny_all_takes_precedence() {
    let a = authorizer_with(&[
        acl("TOPIC foo LITERAL User:alice * ALL DENY"),
        acl("TOPIC foo PREFIXED User:alice * READ ALLOW"),
        acl("TOPIC foo LITERAL User:* * ALL DENY"),
        acl("TOPIC foo PREFIXED User:* * DESCRIBE ALLOW"),
    ]);
    assert_eq!(
        results(
            &a,
            "alice",
            &[
                (Op::Write, Rt::Topic, "foo"),
                (Op::Read, Rt::Topic, "foo"),
                (Op::Describe, Rt::Topic, "foo"),
                (Op::Read, Rt::Topic, "foobar"),
            ]
        ),
        vec![Denied, Denied, Denied, Allowed]
    );
    assert_eq!(
        results(
            &a,
            "bob",
            &[
                (Op::Describe, Rt::Topic, "foo"),
                (Op::Read, Rt::Topic, "foo"),
                (Op::Write, Rt::Topic, "foo"),
                (Op::Describe, Rt::Topic, "foobaz"),
                (Op::Read, Rt::Topic, "foobaz"),
            ]
        ),
        vec![Denied, Denied, Denied, Allowed, Denied]
    );
}

/// StandardAuthorizerTest.testTopicAclWithOperationAll.
#[test]
fn allow_all_covers_every_operation() {
    let a = authorizer_with(&[
        acl("TOPIC foo LITERAL User:* * ALL ALLOW"),
        acl("TOPIC bar PREFIXED User:alice * ALL ALLOW"),
        acl("TOPIC baz LITERAL User:bob * ALL ALLOW"),
    ]);
    type Case<'a> = (&'a str, [(Op, &'a str); 3], [AuthorizationResult; 3]);
    let cases: &[Case] = &[
        (
            "alice",
            [
                (Op::Write, "foo"),
                (Op::DescribeConfigs, "bar"),
                (Op::Describe, "baz"),
            ],
            [Allowed, Allowed, Denied],
        ),
        (
            "bob",
            [(Op::Write, "foo"), (Op::Read, "bar"), (Op::Describe, "baz")],
            [Allowed, Denied, Allowed],
        ),
        (
            "malory",
            [(Op::Describe, "foo"), (Op::Write, "bar"), (Op::Read, "baz")],
            [Allowed, Denied, Denied],
        ),
    ];
    for (who, actions, expected) in cases {
        let actions: Vec<(Op, Rt, &str)> =
            actions.iter().map(|(op, n)| (*op, Rt::Topic, *n)).collect();
        assert_eq!(results(&a, who, &actions), expected.to_vec(), "{who}");
    }
}

/// StandardAuthorizerTest.testHostAddressAclValidation (its "localhost" is 127.0.0.1 here).
#[test]
fn host_rules() {
    let (host1, host2) = ("192.168.1.1", "192.168.1.2");
    let a = authorizer_with(&[
        acl(&format!("TOPIC foo LITERAL User:alice {host1} READ DENY")),
        acl("TOPIC foo LITERAL User:alice * READ ALLOW"),
        acl(&format!("TOPIC bar LITERAL User:bob {host2} READ ALLOW")),
        acl(&format!(
            "TOPIC bar LITERAL User:* {LOCALHOST} DESCRIBE ALLOW"
        )),
    ]);
    let actions = [
        (Op::Read, Rt::Topic, "foo"),
        (Op::Read, Rt::Topic, "bar"),
        (Op::Describe, Rt::Topic, "bar"),
    ];
    let cases = [
        ("alice", LOCALHOST, [Allowed, Denied, Allowed]),
        ("alice", host1, [Denied, Denied, Denied]),
        ("alice", host2, [Allowed, Denied, Denied]),
        ("bob", LOCALHOST, [Denied, Denied, Allowed]),
        ("bob", host1, [Denied, Denied, Denied]),
        ("bob", host2, [Denied, Allowed, Allowed]),
    ];
    for (who, host, expected) in cases {
        assert_eq!(
            results_from(&a, who, host, &actions),
            expected.to_vec(),
            "{who}@{host}"
        );
    }
}

/// Hosts are compared as strings with Java's `getHostAddress()` form: an ACL written "::1"
/// never matches an IPv6 loopback client, whose address reads "0:0:0:0:0:0:0:1".
#[test]
fn ipv6_hosts_compare_as_java_prints_them() {
    let a = authorizer_with(&[
        acl("TOPIC short LITERAL User:alice ::1 READ ALLOW"),
        acl("TOPIC long LITERAL User:alice 0:0:0:0:0:0:0:1 READ ALLOW"),
    ]);
    let client = host_address(&"[::1]:50000".parse().unwrap());
    assert_eq!(
        results_from(
            &a,
            "alice",
            &client,
            &[
                (Op::Read, Rt::Topic, "short"),
                (Op::Read, Rt::Topic, "long")
            ]
        ),
        vec![Denied, Allowed]
    );
}

/// StandardAuthorizerTest.addManyAcls / testAuthorizationWithManyAcls.
#[test]
fn many_acls() {
    let a = authorizer_with(&[
        acl("TOPIC green2 LITERAL User:* * READ ALLOW"),
        acl("TOPIC green PREFIXED User:bob * READ ALLOW"),
        acl("TOPIC betamax4 LITERAL User:bob * READ ALLOW"),
        acl("TOPIC betamax LITERAL User:bob * READ ALLOW"),
        acl("TOPIC beta PREFIXED User:* * READ ALLOW"),
        acl("TOPIC alpha PREFIXED User:* * READ ALLOW"),
        acl("TOPIC alp PREFIXED User:bob * READ DENY"),
        acl("GROUP * LITERAL User:bob * WRITE ALLOW"),
        acl("GROUP wheel LITERAL User:* * WRITE DENY"),
    ]);
    assert_eq!(
        results(
            &a,
            "bob",
            &[
                (Op::Read, Rt::Topic, "green1"),
                (Op::Write, Rt::Group, "wheel")
            ]
        ),
        vec![Allowed, Denied]
    );
    assert_eq!(
        results(
            &a,
            "bob",
            &[
                (Op::Read, Rt::Topic, "alpha"),
                (Op::Write, Rt::Group, "arbitrary"),
                (Op::Read, Rt::Topic, "ala")
            ]
        ),
        vec![Denied, Allowed, Denied]
    );
    // testDenyAuditLogging / testAllowAuditLogging: the rule that decided.
    let deny = a.decide(&user("bob"), LOCALHOST, Op::Read, Rt::Topic, "alpha");
    let MatchingRule::Acl(id) = deny.rule else {
        panic!("{deny:?}")
    };
    assert_eq!(a.get(id).unwrap().pattern.name, "alp");
    let allow = a.decide(&user("bob"), LOCALHOST, Op::Read, Rt::Topic, "green1");
    let MatchingRule::Acl(id) = allow.rule else {
        panic!("{allow:?}")
    };
    assert_eq!(a.get(id).unwrap().pattern.name, "green");
}

/// StandardAuthorizerTest.testPrefixAcls.
#[test]
fn prefix_acls() {
    let a = authorizer_with(&[
        acl("TOPIC fooa PREFIXED User:alice * ALL ALLOW"),
        acl("TOPIC foobar LITERAL User:bob * ALL ALLOW"),
        acl("TOPIC f PREFIXED User:bob * ALL ALLOW"),
    ]);
    assert_eq!(
        results(
            &a,
            "bob",
            &[
                (Op::Write, Rt::Topic, "foobarr"),
                (Op::Read, Rt::Topic, "goobar"),
                (Op::Read, Rt::Topic, "fooa")
            ]
        ),
        vec![Allowed, Denied, Allowed]
    );
    assert_eq!(
        results(
            &a,
            "alice",
            &[
                (Op::Describe, Rt::Topic, "fooa"),
                (Op::Write, Rt::Topic, "bar"),
                (Op::Read, Rt::Topic, "baz")
            ]
        ),
        vec![Allowed, Denied, Denied]
    );
}

/// DENY wins over ALLOW whichever pattern carries each (findAclRule scans LITERAL, every
/// PREFIXED prefix and LITERAL "*" alike; StandardAuthorizerPropertyTest
/// matchingPrefixDenyOverridesAllAllowRules / matchingLiteralDenyOverridesAllAllowRules),
/// and a DENY that does not match the request does not deny it.
#[test]
fn deny_beats_allow_across_patterns() {
    let allow_literal = acl("TOPIC orders LITERAL User:alice * READ ALLOW");
    let allow_prefixed = acl("TOPIC ord PREFIXED User:alice * READ ALLOW");
    let allow_wildcard = acl("TOPIC * LITERAL User:alice * READ ALLOW");
    #[rustfmt::skip]
    let cases: &[(&str, AclBinding, AuthorizationResult)] = &[
        ("prefixed deny",                 acl("TOPIC or PREFIXED User:alice * READ DENY"),           Denied),
        ("prefixed deny, full name",      acl("TOPIC orders PREFIXED User:alice * READ DENY"),       Denied),
        ("wildcard deny",                 acl("TOPIC * LITERAL User:* * READ DENY"),                 Denied),
        ("literal deny",                  acl("TOPIC orders LITERAL User:* * ALL DENY"),             Denied),
        ("longer prefix deny",            acl("TOPIC orders2 PREFIXED User:alice * READ DENY"),      Allowed),
        ("literal deny of a prefix",      acl("TOPIC ord LITERAL User:alice * READ DENY"),           Allowed),
        ("prefixed \"*\" is no wildcard", acl("TOPIC * PREFIXED User:alice * READ DENY"),            Allowed),
        ("deny for someone else",         acl("TOPIC or PREFIXED User:bob * READ DENY"),             Allowed),
        ("deny from another host",        acl("TOPIC or PREFIXED User:alice 10.9.9.9 READ DENY"),    Allowed),
        ("deny of another operation",     acl("TOPIC or PREFIXED User:alice * WRITE DENY"),          Allowed),
        ("deny on another type",          acl("GROUP * LITERAL User:* * ALL DENY"),                  Allowed),
    ];
    for allow in [&allow_literal, &allow_prefixed, &allow_wildcard] {
        for (what, deny, expected) in cases {
            let a = authorizer_with(&[allow.clone(), deny.clone()]);
            assert_eq!(
                a.authorize(&user("alice"), LOCALHOST, Op::Read, Rt::Topic, "orders"),
                *expected,
                "{what} against {allow:?}"
            );
        }
    }
}

/// StandardAuthorizerTest.testAllowEveryoneIfNoAclFoundConfigEnabled / …Disabled, and
/// the exact condition (MatchingRuleBuilder.hasResourceAcls): any ACL that applies to the
/// resource — any principal, host, operation or permission — turns the default off.
#[test]
fn allow_everyone_only_where_no_acl_applies() {
    let topic1 = acl("TOPIC topic1 LITERAL User:Alice * READ ALLOW");
    for (allow_everyone, expected) in [(true, [Denied, Allowed]), (false, [Denied, Denied])] {
        let config = AuthorizerConfig::from_settings(
            Some("User:alice;User:chris"),
            Some(&allow_everyone.to_string()),
        )
        .unwrap();
        let mut a = Authorizer::new(config);
        a.add(Uuid::new_v4(), topic1.clone()).unwrap();
        assert_eq!(
            results(
                &a,
                "Bob",
                &[
                    (Op::Read, Rt::Topic, "topic1"),
                    (Op::Read, Rt::Topic, "topic2")
                ]
            ),
            expected.to_vec(),
            "allow.everyone {allow_everyone}"
        );
    }

    let config = AuthorizerConfig {
        allow_everyone_if_no_acl_found: true,
        ..AuthorizerConfig::default()
    };
    #[rustfmt::skip]
    let cases: &[(&str, AclBinding, AuthorizationResult)] = &[
        ("a prefix for someone else's DENY", acl("TOPIC top PREFIXED User:x 1.2.3.4 WRITE DENY"),       Denied),
        ("the wildcard, other operation",    acl("TOPIC * LITERAL User:x * ALTER ALLOW"),               Denied),
        ("the empty prefix",                 acl(r#"TOPIC "" PREFIXED User:x * ALTER ALLOW"#),          Denied),
        ("another literal",                  acl("TOPIC topic LITERAL User:x * READ ALLOW"),            Allowed),
        ("a longer prefix",                  acl("TOPIC topic22 PREFIXED User:x * READ ALLOW"),         Allowed),
        ("another type's wildcard",          acl("GROUP * LITERAL User:x * READ ALLOW"),                Allowed),
        ("a matching ALLOW",                 acl("TOPIC topic2 LITERAL User:bob * READ ALLOW"),         Allowed),
        ("a matching DENY",                  acl("TOPIC topic2 LITERAL User:bob * READ DENY"),          Denied),
    ];
    for (what, binding, expected) in cases {
        let mut a = Authorizer::new(config.clone());
        a.add(Uuid::new_v4(), binding.clone()).unwrap();
        assert_eq!(
            results(&a, "bob", &[(Op::Read, Rt::Topic, "topic2")]),
            vec![*expected],
            "{what}"
        );
    }
    let empty = Authorizer::new(config);
    assert_eq!(
        empty
            .decide(&user("bob"), LOCALHOST, Op::Read, Rt::Topic, "t")
            .rule,
        MatchingRule::NoAclFound
    );
}

/// StandardAuthorizerTest.testGetConfiguredSuperUsers and testConfigure.
#[test]
fn super_users_setting() {
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<HashSet<String>>();
    assert_eq!(parse_super_users(" ").unwrap(), set(&[]));
    assert_eq!(
        parse_super_users("User:bob;User:alice ").unwrap(),
        set(&["User:bob", "User:alice"])
    );
    assert_eq!(
        parse_super_users(";  User:bob  ;  User:alice ").unwrap(),
        set(&["User:bob", "User:alice"])
    );
    assert_eq!(
        parse_super_users("bob;:alice").unwrap_err().to_string(),
        "expected a string in format principalType:principalName but got bob"
    );
    let c = AuthorizerConfig::from_settings(Some("User:alice;User:chris"), Some("true")).unwrap();
    assert_eq!(c.super_users, set(&["User:alice", "User:chris"]));
    assert!(c.allow_everyone_if_no_acl_found);
    assert_eq!(
        AuthorizerConfig::from_settings(None, None).unwrap(),
        AuthorizerConfig::default()
    );
}

/// StandardAuthorizerTest.testGetDefaultResult, with Boolean.parseBoolean's rules.
#[test]
fn allow_everyone_setting() {
    for (value, expected) in [
        ("true", true),
        ("false", false),
        (" TRUE ", true),
        ("True", true),
        ("yes", false),
        ("1", false),
        ("", false),
    ] {
        assert_eq!(
            parse_allow_everyone_if_no_acl_found(value),
            expected,
            "{value:?}"
        );
    }
}

/// Super users are allowed whatever the ACLs say (SuperUserRule; BaseAuthorizerTest
/// testAuthorizeByResourceTypeSuperUserHasAccess's DENY ALL), matched by their `type:name`.
#[test]
fn super_users_bypass_acls() {
    let a = authorizer_with(&[
        acl("TOPIC * LITERAL User:* * ALL DENY"),
        acl("GROUP * LITERAL User:superman * ALL DENY"),
    ]);
    let d = a.decide(&user("superman"), LOCALHOST, Op::Write, Rt::Topic, "green1");
    assert_eq!(
        d,
        Decision {
            result: Allowed,
            rule: MatchingRule::SuperUser
        }
    );
    assert_eq!(
        results(&a, "superman", &[(Op::Write, Rt::Group, "wheel")]),
        vec![Allowed]
    );
    assert_eq!(
        a.authorize(
            &KafkaPrincipal::new("Group", "superman"),
            LOCALHOST,
            Op::Write,
            Rt::Topic,
            "t"
        ),
        Denied
    );
    assert_eq!(
        results(&a, "Superman", &[(Op::Write, Rt::Topic, "t")]),
        vec![Denied]
    );
}

/// Prefixes at character boundaries; the empty prefix applies to everything; a resource
/// literally named "*" is found once.
#[test]
fn prefix_boundaries() {
    let a = authorizer_with(&[
        acl("TOPIC é PREFIXED User:alice * READ ALLOW"),
        acl(r#"GROUP "" PREFIXED User:alice * READ ALLOW"#),
        acl("TRANSACTIONAL_ID * LITERAL User:alice * WRITE ALLOW"),
    ]);
    assert_eq!(
        results(
            &a,
            "alice",
            &[
                (Op::Read, Rt::Topic, "été"),
                (Op::Read, Rt::Topic, "e"),
                (Op::Read, Rt::Group, "anything"),
                (Op::Read, Rt::Group, ""),
                (Op::Write, Rt::TransactionalId, "*"),
                (Op::Write, Rt::TransactionalId, "tx"),
            ]
        ),
        vec![Allowed, Denied, Allowed, Allowed, Allowed, Allowed]
    );
}

/// Kafka 4.0 refuses a principal without ':' at creation; an older log may hold one, on
/// which Kafka's authorizer throws. Here it matches nobody, yet still counts as an ACL of
/// its resource (so allow.everyone does not apply there).
#[test]
fn stored_unparseable_principal() {
    let config = AuthorizerConfig {
        allow_everyone_if_no_acl_found: true,
        ..AuthorizerConfig::default()
    };
    let mut a = Authorizer::new(config);
    a.add(Uuid::new_v4(), acl("TOPIC t LITERAL alice * READ ALLOW"))
        .unwrap();
    assert_eq!(
        results(
            &a,
            "alice",
            &[(Op::Read, Rt::Topic, "t"), (Op::Read, Rt::Topic, "u")]
        ),
        vec![Denied, Allowed]
    );
    assert_eq!(
        a.authorize_by_resource_type(&user("alice"), LOCALHOST, Op::Read, Rt::Topic),
        Ok(Allowed) // "hardcode" has no ACL, and allow.everyone is on
    );
}

/// AclCache.addAcl/removeAcl refusals, the controller's duplicate check, loadSnapshot.
#[test]
fn store_changes() {
    let mut a = authorizer_with(&[]);
    let b = foo_acl(Op::Read, Perm::Allow);
    let (id, other) = (Uuid::new_v4(), Uuid::new_v4());
    a.add(id, b.clone()).unwrap();
    assert_eq!(
        a.add(id, bar_acl(Op::Read, Perm::Allow)),
        Err(AclStoreError::DuplicateId(id))
    );
    assert_eq!(
        a.add(other, b.clone()),
        Err(AclStoreError::DuplicateAcl(other))
    );
    assert!(a.contains(&b));
    assert_eq!(a.id_of(&b), Some(id));
    assert!(!a.contains(&foo_acl(Op::Read, Perm::Deny)));
    let mut odd = b.clone();
    odd.pattern.pattern_type = Pt::Match;
    assert_eq!(
        a.add(other, odd),
        Err(AclStoreError::UnstorablePatternType(other, Pt::Match))
    );
    assert_eq!(a.len(), 1);
    assert_eq!(
        results(&a, "bob", &[(Op::Read, Rt::Topic, "foo_1")]),
        vec![Allowed]
    );
    assert_eq!(a.remove(id), Ok(b.clone()));
    assert_eq!(a.remove(id), Err(AclStoreError::UnknownId(id)));
    assert_eq!(
        AclStoreError::UnknownId(id).to_string(),
        format!("ID {id} not found in aclsById.")
    );
    assert!(a.is_empty());
    // The prefix index forgot "foo_": nothing applies, so the default (deny) decides.
    assert_eq!(
        a.decide(&user("bob"), LOCALHOST, Op::Read, Rt::Topic, "foo_1")
            .rule,
        MatchingRule::NoAclFound
    );

    a.load_snapshot([(id, b.clone()), (other, bar_acl(Op::Read, Perm::Allow))])
        .unwrap();
    assert_eq!(a.len(), 2);
    let before = a.len();
    assert!(a
        .load_snapshot([(id, b.clone()), (other, b.clone())])
        .is_err());
    assert_eq!(a.len(), before, "a failed snapshot load changes nothing");
    a.load_snapshot([]).unwrap();
    assert!(a.is_empty());
    assert_eq!(
        a.config().super_users.len(),
        1,
        "loading keeps the settings"
    );
}

/// AuthHelper.authorizedOperations: each supported operation authorized, as a bitfield.
#[test]
fn authorized_operations_bitfield() {
    let a = authorizer_with(&[
        acl("TOPIC t LITERAL User:alice * READ ALLOW"),
        acl("TOPIC t LITERAL User:alice * ALTER_CONFIGS ALLOW"),
    ]);
    let bits = a.authorized_operations(&user("alice"), LOCALHOST, Rt::Topic, "t");
    assert_eq!(bits, (1 << 3) | (1 << 8) | (1 << 10) | (1 << 11)); // READ, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS
    assert_eq!(
        a.authorized_operations(&user("bob"), LOCALHOST, Rt::Topic, "t"),
        0
    );
    assert_eq!(
        a.authorized_operations(&user("superman"), LOCALHOST, Rt::TransactionalId, "x"),
        (1 << 8) | (1 << 4)
    );
    assert_eq!(
        a.authorized_operations(&user("superman"), LOCALHOST, Rt::Any, "x"),
        0
    );
}

fn by_type(a: &Authorizer, who: &str, host: &str, op: Op, rt: Rt) -> bool {
    a.authorize_by_resource_type(&user(who), host, op, rt)
        .unwrap()
        == Allowed
}

const H1: &str = "192.168.1.1";
const H2: &str = "192.168.1.2";

/// Adds each spec under a fresh id.
fn add_all(a: &mut Authorizer, specs: &[&str]) {
    for spec in specs {
        a.add(Uuid::new_v4(), acl(spec)).unwrap();
    }
}

/// BaseAuthorizerTest.testAuthorizeByResourceTypeMultipleAddAndRemove.
#[test]
fn by_type_add_and_remove() {
    let mut a = authorizer_with(&[]);
    let deny = acl("TOPIC sb1 LITERAL User:user1 192.168.1.1 READ DENY");
    let allow = acl("TOPIC sb1 LITERAL User:user1 192.168.1.1 READ ALLOW");
    for _ in 0..3 {
        assert!(!by_type(&a, "user1", H1, Op::Read, Rt::Topic));
        let allow_id = Uuid::new_v4();
        a.add(allow_id, allow.clone()).unwrap();
        assert!(by_type(&a, "user1", H1, Op::Read, Rt::Topic));
        for _ in 0..3 {
            let deny_id = Uuid::new_v4();
            a.add(deny_id, deny.clone()).unwrap();
            assert!(!by_type(&a, "user1", H1, Op::Read, Rt::Topic));
            a.remove(deny_id).unwrap();
            assert!(by_type(&a, "user1", H1, Op::Read, Rt::Topic));
        }
        a.remove(allow_id).unwrap();
        assert!(!by_type(&a, "user1", H1, Op::Read, Rt::Topic));
    }
}

/// BaseAuthorizerTest.testAuthorizeByResourceTypeIsolationUnrelatedDenyWontDominateAllow.
#[test]
fn by_type_unrelated_deny_does_not_dominate() {
    let mut a = authorizer_with(&[]);
    add_all(
        &mut a,
        &[
            "TOPIC sb1 LITERAL User:user1 192.168.1.1 READ DENY",
            "TOPIC sb1 LITERAL User:user2 192.168.1.1 READ DENY",
            "TOPIC sb1 LITERAL User:user1 192.168.1.2 WRITE DENY",
            "TOPIC sb1 LITERAL User:user2 192.168.1.2 READ DENY",
            "TOPIC sb1 LITERAL User:user1 192.168.1.2 READ ALLOW",
            "TOPIC sb2 LITERAL User:user1 192.168.1.2 READ DENY",
            "GROUP s PREFIXED User:user1 192.168.1.2 READ DENY",
        ],
    );
    assert!(!by_type(&a, "user1", H1, Op::Read, Rt::Topic));
    assert!(!by_type(&a, "user1", H1, Op::Read, Rt::Group));
    assert!(!by_type(&a, "user1", H1, Op::Read, Rt::TransactionalId));
    assert!(!by_type(&a, "user1", H1, Op::Read, Rt::Cluster));
    assert!(by_type(&a, "user1", H2, Op::Read, Rt::Topic));
}

/// Adds each step's ACL in turn and checks `authorize_by_resource_type` after it.
fn by_type_steps(op: Op, rt: Rt, steps: &[(&str, bool)]) {
    let mut a = authorizer_with(&[]);
    for (i, (spec, expected)) in steps.iter().enumerate() {
        add_all(&mut a, &[spec]);
        assert_eq!(
            by_type(&a, "user1", H1, op, rt),
            *expected,
            "step {i}: {spec}"
        );
    }
}

/// BaseAuthorizerTest.testAuthorizeByResourceTypeDenyTakesPrecedence.
#[test]
fn by_type_deny_takes_precedence() {
    by_type_steps(
        Op::Write,
        Rt::Topic,
        &[
            ("TOPIC sb1 LITERAL User:user1 192.168.1.1 WRITE ALLOW", true),
            ("TOPIC sb1 LITERAL User:user1 192.168.1.1 WRITE DENY", false),
        ],
    );
}

/// BaseAuthorizerTest.testAuthorizeByResourceTypePrefixedResourceDenyDominate.
#[test]
fn by_type_prefixed_deny_dominates() {
    by_type_steps(
        Op::Read,
        Rt::Group,
        &[
            (
                "GROUP abcde PREFIXED User:user1 192.168.1.1 READ ALLOW",
                true,
            ),
            (
                "GROUP abcd PREFIXED User:user1 192.168.1.1 READ DENY",
                false,
            ),
            ("GROUP abc PREFIXED User:user1 192.168.1.1 READ ALLOW", true),
            ("GROUP a PREFIXED User:user1 192.168.1.1 READ DENY", false),
            ("GROUP ab PREFIXED User:user1 192.168.1.1 READ ALLOW", false),
        ],
    );
}

/// BaseAuthorizerTest.testAuthorizeByResourceTypeWildcardResourceDenyDominate.
#[test]
fn by_type_wildcard_deny_dominates() {
    by_type_steps(
        Op::Write,
        Rt::Group,
        &[
            (
                "GROUP hello PREFIXED User:user1 192.168.1.1 WRITE ALLOW",
                true,
            ),
            ("GROUP * LITERAL User:user1 192.168.1.1 WRITE DENY", false),
            ("GROUP * LITERAL User:user1 192.168.1.1 WRITE ALLOW", false),
            (
                "GROUP aloha LITERAL User:user1 192.168.1.1 WRITE ALLOW",
                false,
            ),
        ],
    );
}

/// BaseAuthorizerTest.testAuthorizeByResourceTypeWithAllOperationAce.
#[test]
fn by_type_all_operation() {
    let mut a = authorizer_with(&[]);
    assert!(!by_type(&a, "user1", H1, Op::Read, Rt::Topic));
    add_all(
        &mut a,
        &[
            "TOPIC sb1 LITERAL User:user1 192.168.1.1 WRITE DENY",
            "TOPIC sb1 LITERAL User:user1 192.168.1.1 ALL ALLOW",
        ],
    );
    assert!(by_type(&a, "user1", H1, Op::Read, Rt::Topic));
    add_all(
        &mut a,
        &["TOPIC sb1 LITERAL User:user1 192.168.1.1 ALL DENY"],
    );
    assert!(!by_type(&a, "user1", H1, Op::Read, Rt::Topic));
}

/// BaseAuthorizerTest.testAuthorizeByResourceTypeWithAllHostAce.
#[test]
fn by_type_all_hosts() {
    let mut a = authorizer_with(&[]);
    assert!(!by_type(&a, "user1", H1, Op::Read, Rt::Topic));
    add_all(
        &mut a,
        &["TOPIC sb1 LITERAL User:user1 192.168.1.1 READ ALLOW"],
    );
    assert!(by_type(&a, "user1", H1, Op::Read, Rt::Topic));
    add_all(&mut a, &["TOPIC sb1 LITERAL User:user1 * READ DENY"]);
    assert!(!by_type(&a, "user1", H1, Op::Read, Rt::Topic));
    add_all(
        &mut a,
        &["TOPIC sb2 LITERAL User:user1 192.168.1.1 READ DENY"],
    );
    assert!(!by_type(&a, "user1", H1, Op::Read, Rt::Topic));
    assert!(!by_type(&a, "user1", H2, Op::Read, Rt::Topic));
    add_all(&mut a, &["TOPIC sb2 LITERAL User:user1 * READ ALLOW"]);
    assert!(by_type(&a, "user1", H2, Op::Read, Rt::Topic));
    add_all(&mut a, &["TOPIC sb2 LITERAL User:user1 * READ DENY"]);
    assert!(!by_type(&a, "user1", H2, Op::Read, Rt::Topic));
}

/// BaseAuthorizerTest.testAuthorizeByResourceTypeWithAllPrincipalAce.
#[test]
fn by_type_all_principals() {
    let mut a = authorizer_with(&[]);
    assert!(!by_type(&a, "user1", H1, Op::Read, Rt::Topic));
    add_all(
        &mut a,
        &["TOPIC sb1 LITERAL User:user1 192.168.1.1 READ ALLOW"],
    );
    assert!(by_type(&a, "user1", H1, Op::Read, Rt::Topic));
    add_all(&mut a, &["TOPIC sb1 LITERAL User:* 192.168.1.1 READ DENY"]);
    assert!(!by_type(&a, "user1", H1, Op::Read, Rt::Topic));
    add_all(
        &mut a,
        &["TOPIC sb2 LITERAL User:user1 192.168.1.1 READ DENY"],
    );
    assert!(!by_type(&a, "user1", H1, Op::Read, Rt::Topic));
    assert!(!by_type(&a, "user2", H1, Op::Read, Rt::Topic));
    add_all(&mut a, &["TOPIC sb2 LITERAL User:* 192.168.1.1 READ ALLOW"]);
    assert!(by_type(&a, "user2", H1, Op::Read, Rt::Topic));
    add_all(&mut a, &["TOPIC sb2 LITERAL User:* 192.168.1.1 READ DENY"]);
    assert!(!by_type(&a, "user2", H1, Op::Read, Rt::Topic));
}

/// BaseAuthorizerTest.testAuthorizeByResourceTypeSuperUserHasAccess.
#[test]
fn by_type_super_user() {
    let a = authorizer_with(&[
        acl("TOPIC * LITERAL User:* * ALL DENY"),
        acl("CLUSTER * LITERAL User:* * ALL DENY"),
        acl("GROUP * LITERAL User:* * ALL DENY"),
        acl("TRANSACTIONAL_ID * LITERAL User:* * ALL DENY"),
    ]);
    for rt in [Rt::Topic, Rt::Cluster, Rt::Group, Rt::TransactionalId] {
        assert!(by_type(&a, "superman", "192.0.4.4", Op::Read, rt), "{rt}");
        assert!(!by_type(&a, "user1", "192.0.4.4", Op::Read, rt), "{rt}");
    }
}

/// Authorizer.authorizeByResourceType's own rules: the "hardcode" probe (so
/// allow.everyone answers when no ACL applies to that name), no implication, a LITERAL
/// deny does not dominate a PREFIXED allow of the same name, and the argument checks.
#[test]
fn by_type_quirks() {
    let everyone = AuthorizerConfig {
        allow_everyone_if_no_acl_found: true,
        ..AuthorizerConfig::default()
    };
    let mut a = Authorizer::new(everyone);
    assert!(by_type(&a, "bob", H1, Op::Write, Rt::Topic));
    add_all(&mut a, &["TOPIC h PREFIXED User:x * READ ALLOW"]);
    assert!(
        !by_type(&a, "bob", H1, Op::Write, Rt::Topic),
        "an ACL now applies to \"hardcode\""
    );

    let a = authorizer_with(&[acl("TOPIC t LITERAL User:bob * READ ALLOW")]);
    assert!(by_type(&a, "bob", H1, Op::Read, Rt::Topic));
    assert!(
        !by_type(&a, "bob", H1, Op::Describe, Rt::Topic),
        "no implication"
    );

    let a = authorizer_with(&[
        acl("TOPIC t PREFIXED User:bob * READ ALLOW"),
        acl("TOPIC t LITERAL User:bob * READ DENY"),
    ]);
    assert!(by_type(&a, "bob", H1, Op::Read, Rt::Topic));
    let a = authorizer_with(&[
        acl("TOPIC tx LITERAL User:bob * READ ALLOW"),
        acl("TOPIC t PREFIXED User:bob * READ DENY"),
    ]);
    assert!(!by_type(&a, "bob", H1, Op::Read, Rt::Topic));
    // The probe itself is a normal authorization: READ on hard* implies DESCRIBE of "hardcode".
    let a = authorizer_with(&[acl("TOPIC hard PREFIXED User:bob * READ ALLOW")]);
    assert!(by_type(&a, "bob", H1, Op::Describe, Rt::Topic));

    let err = |op, rt| {
        a.authorize_by_resource_type(&user("bob"), H1, op, rt)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err(Op::Read, Rt::Any),
        "Must specify a non-filter resource type for authorizeByResourceType"
    );
    assert_eq!(err(Op::Read, Rt::Unknown), "Unknown resource type");
    assert_eq!(
        err(Op::Any, Rt::Topic),
        "Must specify a non-filter operation type for authorizeByResourceType"
    );
    assert_eq!(err(Op::Unknown, Rt::Topic), "Unknown operation type");
}

/// A small deterministic generator (xorshift64*), so the model check needs no crate.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// Kafka's decision rules stated directly over the full ACL list, the way the module docs
/// (and StandardAuthorizerData's comments) state them: the ACLs that apply are what a MATCH
/// filter for the resource finds; DENY over ALLOW; any applicable ACL turns the default off.
fn model_decision(
    acls: &[AclBinding],
    config: &AuthorizerConfig,
    principal: &KafkaPrincipal,
    host: &str,
    op: Op,
    rt: Rt,
    name: &str,
) -> AuthorizationResult {
    if config.super_users.contains(principal.as_str()) {
        return Allowed;
    }
    let filter = AclBindingFilter {
        pattern: ResourcePatternFilter {
            resource_type: rt,
            name: Some(name.into()),
            pattern_type: Pt::Match,
        },
        entry: AccessControlEntryFilter::any(),
    };
    let applicable: Vec<&AclBinding> = acls.iter().filter(|b| filter.matches(b)).collect();
    if applicable.is_empty() {
        return if config.allow_everyone_if_no_acl_found {
            Allowed
        } else {
            Denied
        };
    }
    let matching = |b: &&&AclBinding| {
        let e = &b.entry;
        let principal_ok = e.principal == principal.as_str() || e.principal == "User:*";
        let host_ok = e.host == "*" || e.host == host;
        let implied = e.permission_type == Perm::Allow
            && ((op == Op::Describe
                && [Op::Read, Op::Write, Op::Delete, Op::Alter].contains(&e.operation))
                || (op == Op::DescribeConfigs && e.operation == Op::AlterConfigs));
        principal_ok && host_ok && (e.operation == Op::All || e.operation == op || implied)
    };
    let matched: Vec<&&AclBinding> = applicable.iter().filter(matching).collect();
    if matched
        .iter()
        .any(|b| b.entry.permission_type == Perm::Deny)
    {
        Denied
    } else if matched
        .iter()
        .any(|b| b.entry.permission_type == Perm::Allow)
    {
        Allowed
    } else {
        Denied
    }
}

/// The indexed decisions agree with the model on random ACL sets, before and after
/// removing some (StandardAuthorizerPropertyTest's idea, widened to every rule).
#[test]
fn decisions_agree_with_the_rules_on_random_acls() {
    let acl_names = ["", "*", "a", "ab", "abc", "abd", "b", "é", "éa", "a*"];
    let resource_names = ["a", "ab", "abc", "abcd", "b", "*", "é", "éa", "x", "a*", ""];
    let principals = ["User:alice", "User:bob", "User:*", "Group:*", "Group:alice"];
    let requesters = [
        user("alice"),
        user("bob"),
        KafkaPrincipal::new("Group", "alice"),
        user("root"),
    ];
    let hosts = ["*", "10.0.0.1", "10.0.0.2"];
    let ops: Vec<Op> = Op::VALUES
        .iter()
        .copied()
        .filter(|o| !matches!(o, Op::Any | Op::Unknown))
        .collect();
    let types = [Rt::Topic, Rt::Group];
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for round in 0..150 {
        let config = AuthorizerConfig {
            super_users: if round % 7 == 0 {
                ["User:root".to_string()].into()
            } else {
                HashSet::new()
            },
            allow_everyone_if_no_acl_found: round % 2 == 0,
        };
        let mut a = Authorizer::new(config.clone());
        let mut stored: Vec<(Uuid, AclBinding)> = Vec::new();
        for _ in 0..rng.below(14) {
            let b = binding(
                rng.pick(&types),
                rng.pick(&acl_names),
                rng.pick(&[Pt::Literal, Pt::Prefixed]),
                rng.pick(&principals),
                rng.pick(&hosts),
                rng.pick(&ops),
                rng.pick(&[Perm::Allow, Perm::Deny]),
            );
            if !a.contains(&b) {
                let id = Uuid::new_v4();
                a.add(id, b.clone()).unwrap();
                stored.push((id, b));
            }
        }
        for phase in 0..2 {
            if phase == 1 {
                stored.retain(|(id, _)| {
                    let keep = id.as_bytes()[0] % 2 == 0;
                    if !keep {
                        a.remove(*id).unwrap();
                    }
                    keep
                });
            }
            let acls: Vec<AclBinding> = stored.iter().map(|(_, b)| b.clone()).collect();
            for requester in &requesters {
                for host in ["10.0.0.1", "10.0.0.2"] {
                    for rt in types {
                        for name in resource_names {
                            for op in &ops {
                                let got = a.authorize(requester, host, *op, rt, name);
                                let want =
                                    model_decision(&acls, &config, requester, host, *op, rt, name);
                                assert_eq!(got, want, "round {round}/{phase}: {requester} {host} {op} {rt} {name:?} with {acls:#?}");
                            }
                        }
                    }
                }
            }
        }
    }
}
