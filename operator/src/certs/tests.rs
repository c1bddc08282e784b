use std::time::{Duration, SystemTime};

use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use time::OffsetDateTime;

use super::*;

const CLUSTER: &str = "prod";
const NS: &str = "kafka";
const DAY: Duration = Duration::from_secs(86_400);

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn brokers(n: u32) -> Vec<BrokerIdentity> {
    (0..n)
        .map(|ordinal| BrokerIdentity {
            ordinal,
            extra_names: Vec::new(),
        })
        .collect()
}

/// The Secrets as the API server would hold them after the caller applied an output.
#[derive(Clone, Default)]
struct Stored {
    cluster_ca_cert: Option<SecretData>,
    cluster_ca_key: Option<SecretData>,
    clients_ca_cert: Option<SecretData>,
    clients_ca_key: Option<SecretData>,
    broker_certs: Option<SecretData>,
    operator_certs: Option<SecretData>,
}

impl Stored {
    fn view(&self) -> ExistingSecrets<'_> {
        ExistingSecrets {
            cluster_ca_cert: self.cluster_ca_cert.as_ref(),
            cluster_ca_key: self.cluster_ca_key.as_ref(),
            clients_ca_cert: self.clients_ca_cert.as_ref(),
            clients_ca_key: self.clients_ca_key.as_ref(),
            broker_certs: self.broker_certs.as_ref(),
            operator_certs: self.operator_certs.as_ref(),
        }
    }

    fn apply(&mut self, out: &CertsOutput) {
        if let Some(ca) = &out.cluster_ca {
            self.cluster_ca_cert = Some(ca.cert.clone());
            self.cluster_ca_key = Some(ca.key.clone());
        }
        if let Some(ca) = &out.clients_ca {
            self.clients_ca_cert = Some(ca.cert.clone());
            self.clients_ca_key = Some(ca.key.clone());
        }
        self.broker_certs = Some(out.broker_certs.clone());
        self.operator_certs = Some(out.operator_certs.clone());
    }
}

struct Run {
    brokers: Vec<BrokerIdentity>,
    cluster_ca: CaSettings,
    clients_ca: CaSettings,
    brokers_current: bool,
    forced_cluster_ca: Forced,
    forced_clients_ca: Forced,
}

impl Default for Run {
    fn default() -> Self {
        Self {
            brokers: brokers(3),
            cluster_ca: CaSettings::default(),
            clients_ca: CaSettings::default(),
            brokers_current: true,
            forced_cluster_ca: Forced::default(),
            forced_clients_ca: Forced::default(),
        }
    }
}

impl Run {
    fn call(&self, stored: &Stored, now: SystemTime) -> Result<CertsOutput, CertError> {
        reconcile_certificates(&CertsRequest {
            cluster: CLUSTER,
            namespace: NS,
            brokers: &self.brokers,
            cluster_ca: self.cluster_ca,
            clients_ca: self.clients_ca,
            existing: stored.view(),
            now,
            brokers_current: self.brokers_current,
            forced_cluster_ca: self.forced_cluster_ca,
            forced_clients_ca: self.forced_clients_ca,
        })
    }

    /// Calls and applies, like one reconcile.
    fn step(&self, stored: &mut Stored, now: SystemTime) -> CertsOutput {
        let out = self.call(stored, now).expect("reconcile_certificates");
        stored.apply(&out);
        out
    }
}

fn text<'a>(data: &'a SecretData, key: &str) -> &'a str {
    let bytes = &data.get(key).unwrap_or_else(|| panic!("{key} missing")).0;
    std::str::from_utf8(bytes).expect("utf-8")
}

fn pems(data: &SecretData, key: &str) -> Vec<Vec<u8>> {
    x509::parse_cert_pems(text(data, key).as_bytes()).expect("PEM certificates")
}

fn bundle(out: &CertsOutput, kind: CaKind) -> Vec<Vec<u8>> {
    let ca = match kind {
        CaKind::Cluster => out.cluster_ca.as_ref(),
        CaKind::Clients => out.clients_ca.as_ref(),
    };
    pems(&ca.expect("generated CA").cert, names::CA_CRT)
}

fn unix(now: SystemTime) -> UnixTime {
    UnixTime::since_unix_epoch(
        now.duration_since(SystemTime::UNIX_EPOCH)
            .expect("after epoch"),
    )
}

/// Path validation as rustls does it: the leaf against the given CA certificates only.
fn verify(
    leaf: &[u8],
    anchors: &[Vec<u8>],
    now: SystemTime,
    usage: webpki::KeyUsage,
) -> Result<(), webpki::Error> {
    let ders: Vec<CertificateDer<'_>> = anchors
        .iter()
        .map(|d| CertificateDer::from(d.as_slice()))
        .collect();
    let anchors = ders
        .iter()
        .map(webpki::anchor_from_trusted_cert)
        .collect::<Result<Vec<_>, _>>()?;
    let leaf = CertificateDer::from(leaf);
    let ee = webpki::EndEntityCert::try_from(&leaf)?;
    ee.verify_for_usage(
        &[webpki::ring::ECDSA_P256_SHA256],
        &anchors,
        &[],
        unix(now),
        usage,
        None,
        None,
    )?;
    Ok(())
}

/// What a TLS client does with a broker (rustls' `WebPkiServerVerifier` makes the same
/// calls): the presented chain (leaf, then the CA certificate shipped with it, as an
/// intermediate) against the client's trust anchors, then the broker's name.
fn verify_presented(
    chain: &[Vec<u8>],
    anchors: &[Vec<u8>],
    now: SystemTime,
) -> Result<(), webpki::Error> {
    let ders: Vec<CertificateDer<'_>> = anchors
        .iter()
        .map(|d| CertificateDer::from(d.as_slice()))
        .collect();
    let anchors = ders
        .iter()
        .map(webpki::anchor_from_trusted_cert)
        .collect::<Result<Vec<_>, _>>()?;
    let leaf = CertificateDer::from(chain[0].as_slice());
    let intermediates: Vec<CertificateDer<'_>> = chain[1..]
        .iter()
        .map(|d| CertificateDer::from(d.as_slice()))
        .collect();
    let ee = webpki::EndEntityCert::try_from(&leaf)?;
    ee.verify_for_usage(
        &[webpki::ring::ECDSA_P256_SHA256],
        &anchors,
        &intermediates,
        unix(now),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )?;
    let name = ServerName::try_from("prod-bootstrap.kafka.svc").expect("server name");
    ee.verify_is_valid_for_subject_name(&name)
}

fn subject_der(der: &[u8]) -> Vec<u8> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("certificate");
    cert.subject().as_raw().to_vec()
}

fn serial(der: &[u8]) -> Vec<u8> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("certificate");
    cert.raw_serial().to_vec()
}

fn ca_key(out: &CertsOutput, kind: CaKind) -> String {
    let ca = match kind {
        CaKind::Cluster => out.cluster_ca.as_ref(),
        CaKind::Clients => out.clients_ca.as_ref(),
    };
    text(&ca.expect("generated CA").key, names::CA_KEY).to_owned()
}

fn issue_reasons(out: &CertsOutput) -> Vec<IssueReason> {
    out.events
        .iter()
        .filter_map(|e| match e {
            CertEvent::LeafIssued { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

fn broker_leaf(out: &CertsOutput, ordinal: u32) -> Vec<u8> {
    pems(&out.broker_certs, &names::broker_crt(ordinal)).swap_remove(0)
}

fn issued_holders(out: &CertsOutput) -> Vec<String> {
    out.events
        .iter()
        .filter_map(|e| match e {
            CertEvent::LeafIssued { holder, .. } => Some(holder.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn fresh_cluster_gets_every_secret() {
    let mut stored = Stored::default();
    let out = Run::default().step(&mut stored, t0());

    let secrets: Vec<String> = out.secrets(CLUSTER).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        secrets,
        [
            "prod-cluster-ca-cert",
            "prod-cluster-ca",
            "prod-clients-ca-cert",
            "prod-clients-ca",
            "prod-broker-certs",
            "prod-operator-certs"
        ]
    );
    for kind in [CaKind::Cluster, CaKind::Clients] {
        assert_eq!(bundle(&out, kind).len(), 1);
        assert!(out.events.contains(&CertEvent::CaCreated {
            kind,
            reason: "no CA yet".into()
        }));
    }
    let cluster_ca = out.cluster_ca.as_ref().expect("cluster CA");
    assert!(text(&cluster_ca.key, names::CA_KEY).starts_with("-----BEGIN PRIVATE KEY-----"));
    let password = text(&cluster_ca.cert, names::CA_PASSWORD);
    let store = p12_keystore::KeyStore::from_pkcs12(&cluster_ca.cert[names::CA_P12].0, password)
        .expect("ca.p12 opens with ca.password");
    assert_eq!(store.entries_count(), 1);

    assert_eq!(
        issued_holders(&out),
        ["broker-0", "broker-1", "broker-2", "operator"]
    );
    // Per broker: the certificate, the key, and the two as one PEM keystore.
    assert_eq!(out.broker_certs.len(), 9);
    assert_eq!(out.broker_digests.len(), 3);
    assert_eq!(
        text(&out.broker_certs, "broker-1.pem"),
        text(&out.broker_certs, "broker-1.key").to_string()
            + text(&out.broker_certs, "broker-1.crt")
    );

    let ca = bundle(&out, CaKind::Cluster);
    let chain = pems(&out.broker_certs, "broker-1.crt");
    assert_eq!(chain.len(), 2, "leaf then issuing CA");
    assert_eq!(chain[1], ca[0]);
    assert!(text(&out.broker_certs, "broker-1.key").starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(
        x509::subject_cn_o(&chain[0]),
        Some(("prod-broker".into(), Some("strom.dev".into())))
    );
    let sans = x509::subject_alt_names(&chain[0]).expect("SANs");
    for name in [
        "prod-broker-1.prod-brokers.kafka.svc",
        "prod-broker-1.prod-brokers.kafka.svc.cluster.local",
        "prod-bootstrap",
        "prod-bootstrap.kafka",
        "prod-bootstrap.kafka.svc",
        "prod-bootstrap.kafka.svc.cluster.local",
        "prod-brokers",
        "prod-brokers.kafka.svc.cluster.local",
    ] {
        assert!(sans.contains(&format!("dns:{name}")), "{name} in {sans:?}");
    }
    verify(&chain[0], &ca, t0(), webpki::KeyUsage::server_auth()).expect("broker cert verifies");
    verify(&chain[0], &ca, t0(), webpki::KeyUsage::client_auth()).expect("inter-broker mTLS");
    let leaf = CertificateDer::from(chain[0].as_slice());
    let ee = webpki::EndEntityCert::try_from(&leaf).expect("leaf");
    ee.verify_is_valid_for_subject_name(
        &ServerName::try_from("prod-broker-1.prod-brokers.kafka.svc").expect("name"),
    )
    .expect("hostname verification");

    // The principals the broker derives (its own DN printer, Kafka's RFC 4514 form).
    let principal = |der: &[u8]| {
        strom_broker::net::tls::distinguished_name(&CertificateDer::from(der)).expect("DN")
    };
    assert_eq!(principal(&chain[0]), "CN=prod-broker,O=strom.dev");
    let operator = pems(&out.operator_certs, names::OPERATOR_CRT).swap_remove(0);
    assert_eq!(
        format!("User:{}", principal(&operator)),
        names::operator_principal()
    );
    assert_eq!(
        x509::subject_cn_o(&operator),
        Some(("strom-operator".into(), Some("strom.dev".into())))
    );
    verify(&operator, &ca, t0(), webpki::KeyUsage::client_auth()).expect("operator cert");
    assert!(verify(&operator, &ca, t0(), webpki::KeyUsage::server_auth()).is_err());
    assert_eq!(
        text(&out.operator_certs, names::CA_CRT),
        text(&cluster_ca.cert, names::CA_CRT)
    );
}

#[test]
fn second_call_changes_nothing() {
    let run = Run::default();
    let mut stored = Stored::default();
    let first = run.step(&mut stored, t0());
    let second = run.step(&mut stored, t0() + DAY * 10);
    assert_eq!(second.events, []);
    assert_eq!(second.cluster_ca, first.cluster_ca);
    assert_eq!(second.clients_ca, first.clients_ca);
    assert_eq!(second.broker_certs, first.broker_certs);
    assert_eq!(second.operator_certs, first.operator_certs);
    assert_eq!(second.broker_digests, first.broker_digests);
}

#[test]
fn replicas_grown_adds_one_broker_and_leaves_the_others() {
    let mut run = Run::default();
    let mut stored = Stored::default();
    let before = run.step(&mut stored, t0());
    run.brokers = brokers(4);
    let after = run.step(&mut stored, t0() + DAY);
    assert_eq!(issued_holders(&after), ["broker-3"]);
    for i in 0..3 {
        assert_eq!(
            after.broker_certs[&names::broker_crt(i)],
            before.broker_certs[&names::broker_crt(i)]
        );
        assert_eq!(after.broker_digests[&i], before.broker_digests[&i]);
    }
    assert!(after.broker_certs.contains_key("broker-3.key"));
    assert_eq!(after.operator_certs, before.operator_certs);

    // Shrinking drops the entry of the removed broker.
    run.brokers = brokers(2);
    let shrunk = run.step(&mut stored, t0() + DAY * 2);
    assert_eq!(shrunk.broker_certs.len(), 6);
    assert_eq!(shrunk.events, []);
}

#[test]
fn extra_names_reissue_only_that_broker() {
    let mut run = Run::default();
    let mut stored = Stored::default();
    let before = run.step(&mut stored, t0());
    run.brokers[2].extra_names = vec!["kafka-2.example.com".into(), "203.0.113.7".into()];
    let after = run.step(&mut stored, t0() + DAY);
    assert_eq!(
        after.events,
        [CertEvent::LeafIssued {
            holder: "broker-2".into(),
            reason: IssueReason::NamesChanged
        }]
    );
    assert_ne!(after.broker_digests[&2], before.broker_digests[&2]);
    assert_eq!(after.broker_digests[&0], before.broker_digests[&0]);
    let sans = x509::subject_alt_names(&broker_leaf(&after, 2)).expect("SANs");
    assert!(sans.contains("dns:kafka-2.example.com"));
    assert!(sans.contains("ip:203.0.113.7"));
}

#[test]
fn unreadable_leaf_is_reissued() {
    let run = Run::default();
    let mut stored = Stored::default();
    run.step(&mut stored, t0());
    let certs = stored.broker_certs.as_mut().expect("broker certs");
    certs.insert(
        "broker-0.crt".into(),
        ByteString(b"not a certificate".to_vec()),
    );
    let out = run.step(&mut stored, t0());
    assert_eq!(
        out.events,
        [CertEvent::LeafIssued {
            holder: "broker-0".into(),
            reason: IssueReason::Missing
        }]
    );
}

/// A leaf renews on its own when it expires before its CA: here the CA is user-provided
/// and lasts longer than the leaves' validity.
#[test]
fn leaf_in_renewal_window_is_reissued() {
    let ca = Authority::generate(CaKind::Cluster, "own", 0, t0().into(), 1000).expect("CA");
    let mut stored = Stored {
        cluster_ca_cert: Some(SecretData::from([(
            names::CA_CRT.into(),
            ByteString(ca.bundle_pem().into_bytes()),
        )])),
        cluster_ca_key: Some(ca.key_secret_data()),
        ..Stored::default()
    };
    let run = Run {
        cluster_ca: CaSettings {
            validity_days: 100,
            renewal_days: 30,
            generate: false,
            ..CaSettings::default()
        },
        ..Run::default()
    };
    let first = run.step(&mut stored, t0());
    assert_eq!(
        first.cluster_ca, None,
        "a user-provided CA is never written"
    );
    let quiet = run.step(&mut stored, t0() + DAY * 69);
    assert_eq!(quiet.events, []);
    let renewed = run.step(&mut stored, t0() + DAY * 71);
    assert_eq!(
        issued_holders(&renewed),
        ["broker-0", "broker-1", "broker-2", "operator"]
    );
    assert!(renewed.events.iter().all(
        |e| !matches!(e, CertEvent::LeafIssued { reason, .. } if *reason != IssueReason::Expiring)
    ));
    for i in 0..3 {
        assert_ne!(renewed.broker_digests[&i], first.broker_digests[&i]);
        let leaf = broker_leaf(&renewed, i);
        verify(
            &leaf,
            ca.bundle(),
            t0() + DAY * 71,
            webpki::KeyUsage::server_auth(),
        )
        .expect("issued by the user's CA");
    }
}

fn replacing_key() -> CaSettings {
    CaSettings {
        expiration_policy: ExpirationPolicy::ReplaceKey,
        ..CaSettings::default()
    }
}

#[test]
fn replace_key_renewal_trusts_both_then_drops_the_old_one() {
    let mut run = Run {
        cluster_ca: replacing_key(),
        clients_ca: replacing_key(),
        ..Run::default()
    };
    let mut stored = Stored::default();
    let first = run.step(&mut stored, t0());
    let old_cluster_ca = bundle(&first, CaKind::Cluster).swap_remove(0);
    let old_clients_ca = bundle(&first, CaKind::Clients).swap_remove(0);

    // 340 days in: within 30 days of the CAs' expiry.
    let t1 = t0() + DAY * 340;
    run.brokers_current = false;
    let renewed = run.step(&mut stored, t1);
    assert!(renewed.events.contains(&CertEvent::CaRenewed {
        kind: CaKind::Cluster,
        key_replaced: true,
        forced: false,
    }));
    assert!(renewed.events.contains(&CertEvent::CaRenewed {
        kind: CaKind::Clients,
        key_replaced: true,
        forced: false,
    }));
    let cluster_bundle = bundle(&renewed, CaKind::Cluster);
    assert_eq!(cluster_bundle.len(), 2);
    assert_eq!(cluster_bundle[1], old_cluster_ca);
    assert_eq!(bundle(&renewed, CaKind::Clients)[1], old_clients_ca);
    assert_eq!(
        x509::common_name(&cluster_bundle[0]).as_deref(),
        Some("prod-cluster-ca v1")
    );
    let cluster_ca = renewed.cluster_ca.as_ref().expect("cluster CA");
    let store = p12_keystore::KeyStore::from_pkcs12(
        &cluster_ca.cert[names::CA_P12].0,
        text(&cluster_ca.cert, names::CA_PASSWORD),
    )
    .expect("ca.p12");
    assert_eq!(
        store.entries_count(),
        2,
        "the truststore follows the bundle"
    );
    assert_eq!(
        issued_holders(&renewed),
        ["broker-0", "broker-1", "broker-2", "operator"]
    );
    for i in 0..3 {
        assert_ne!(renewed.broker_digests[&i], first.broker_digests[&i]);
        let leaf = broker_leaf(&renewed, i);
        verify(
            &leaf,
            &cluster_bundle[..1],
            t1,
            webpki::KeyUsage::server_auth(),
        )
        .expect("signed by the new CA");
        verify(&leaf, &cluster_bundle, t1, webpki::KeyUsage::server_auth())
            .expect("verifies against the published bundle");
        assert!(verify(
            &leaf,
            std::slice::from_ref(&old_cluster_ca),
            t1,
            webpki::KeyUsage::server_auth()
        )
        .is_err());
        // What a client that loaded only the old ca.crt sees: the new chain fails.
        assert!(verify_presented(
            &pems(&renewed.broker_certs, &names::broker_crt(i)),
            std::slice::from_ref(&old_cluster_ca),
            t1,
        )
        .is_err());
    }
    // Old leaves still verify against the bundle: brokers not yet restarted keep working.
    verify(
        &broker_leaf(&first, 0),
        &cluster_bundle,
        t1,
        webpki::KeyUsage::server_auth(),
    )
    .expect("old leaf still trusted");

    // The brokers have not loaded the new material yet: the old CA stays.
    let waiting = run.step(&mut stored, t1 + DAY);
    assert_eq!(waiting.events, []);
    assert_eq!(bundle(&waiting, CaKind::Cluster).len(), 2);

    // They have: nothing the operator issues uses the old cluster CA any more.
    run.brokers_current = true;
    let retired = run.step(&mut stored, t1 + DAY);
    assert_eq!(
        retired.events,
        [CertEvent::CaRetired {
            kind: CaKind::Cluster,
            count: 1
        }]
    );
    assert_eq!(bundle(&retired, CaKind::Cluster), cluster_bundle[..1]);
    assert_eq!(
        bundle(&retired, CaKind::Clients).len(),
        2,
        "kept until it expires"
    );
    assert_ne!(retired.broker_digests[&0], renewed.broker_digests[&0]);
    assert_eq!(
        retired.broker_certs, renewed.broker_certs,
        "no leaf re-issued"
    );
    assert_eq!(
        text(&retired.operator_certs, names::CA_CRT),
        text(
            &retired.cluster_ca.as_ref().expect("CA").cert,
            names::CA_CRT
        )
    );

    // The old clients CA expires at 365 days.
    let expired = run.step(&mut stored, t0() + DAY * 366);
    assert_eq!(
        expired.events,
        [CertEvent::CaRetired {
            kind: CaKind::Clients,
            count: 1
        }]
    );
    assert_eq!(bundle(&expired, CaKind::Clients).len(), 1);
}

#[test]
fn lost_ca_key_makes_a_new_ca_and_new_leaves() {
    let run = Run::default();
    let mut stored = Stored::default();
    run.step(&mut stored, t0());
    stored.cluster_ca_key = None;
    let out = run.step(&mut stored, t0() + DAY);
    assert!(matches!(
        &out.events[0],
        CertEvent::CaCreated {
            kind: CaKind::Cluster,
            ..
        }
    ));
    assert_eq!(
        issued_holders(&out),
        ["broker-0", "broker-1", "broker-2", "operator"]
    );
}

fn user_provided() -> CaSettings {
    CaSettings {
        generate: false,
        ..CaSettings::default()
    }
}

#[test]
fn user_provided_ca_missing_or_malformed_is_an_error() {
    let run = Run {
        clients_ca: user_provided(),
        ..Run::default()
    };
    let err = run
        .call(&Stored::default(), t0())
        .expect_err("no clients CA");
    assert!(
        matches!(&err, CertError::MissingCaSecret { kind: CaKind::Clients, secret } if secret == "prod-clients-ca-cert"),
        "{err}"
    );

    let garbage = SecretData::from([(names::CA_CRT.into(), ByteString(b"junk".to_vec()))]);
    let key = SecretData::from([(names::CA_KEY.into(), ByteString(b"junk".to_vec()))]);
    let stored = Stored {
        clients_ca_cert: Some(garbage),
        clients_ca_key: Some(key.clone()),
        ..Stored::default()
    };
    let err = run.call(&stored, t0()).expect_err("malformed");
    assert!(
        matches!(err, CertError::MalformedCa { key: "ca.crt", .. }),
        "{err}"
    );

    // A certificate and a key that do not belong together.
    let a = Authority::generate(CaKind::Clients, "a", 0, t0().into(), 365).expect("CA");
    let b = Authority::generate(CaKind::Clients, "b", 0, t0().into(), 365).expect("CA");
    let stored = Stored {
        clients_ca_cert: Some(SecretData::from([(
            names::CA_CRT.into(),
            ByteString(a.bundle_pem().into_bytes()),
        )])),
        clients_ca_key: Some(b.key_secret_data()),
        ..Stored::default()
    };
    let err = run.call(&stored, t0()).expect_err("mismatch");
    assert!(matches!(err, CertError::CaKeyMismatch { .. }), "{err}");
}

#[test]
fn renewal_window_must_be_shorter_than_validity() {
    let run = Run {
        cluster_ca: CaSettings {
            validity_days: 30,
            renewal_days: 30,
            generate: true,
            ..CaSettings::default()
        },
        ..Run::default()
    };
    let err = run.call(&Stored::default(), t0()).expect_err("invalid");
    assert!(matches!(err, CertError::InvalidSettings { .. }), "{err}");
}

fn clients_ca(stored: &Stored) -> Authority {
    Authority::load(
        CaKind::Clients,
        CLUSTER,
        stored.clients_ca_cert.as_ref(),
        stored.clients_ca_key.as_ref(),
    )
    .expect("clients CA")
}

#[test]
fn user_certificate_is_issued_by_the_clients_ca() {
    let mut stored = Stored::default();
    Run::default().step(&mut stored, t0());
    let ca = clients_ca(&stored);
    let cert = issue_user_certificate(&ca, "alice", t0(), 365).expect("user cert");
    assert_eq!(cert.user_password.len(), 32);
    assert!(cert
        .user_password
        .chars()
        .all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(cert.ca_crt, ca.bundle_pem());

    let chain = x509::parse_cert_pems(cert.user_crt.as_bytes()).expect("user.crt");
    assert_eq!(x509::subject_cn_o(&chain[0]), Some(("alice".into(), None)));
    assert_eq!(
        strom_broker::net::tls::distinguished_name(&CertificateDer::from(chain[0].as_slice())),
        Some("CN=alice".into())
    );
    verify(
        &chain[0],
        ca.bundle(),
        t0(),
        webpki::KeyUsage::client_auth(),
    )
    .expect("client cert");

    let store = p12_keystore::KeyStore::from_pkcs12(&cert.user_p12, &cert.user_password)
        .expect("user.p12 opens with user.password");
    let (_, key_chain) = store.private_key_chain().expect("key entry");
    assert_eq!(key_chain.chain()[0].as_der(), chain[0].as_slice());
    let key = rcgen::KeyPair::from_pem(&cert.user_key).expect("user.key");
    assert_eq!(key_chain.key(), key.serialize_der().as_slice());
    assert!(p12_keystore::KeyStore::from_pkcs12(&cert.user_p12, "wrong").is_err());

    let data = cert.into_secret_data();
    assert!(!user_certificate_due(
        Some(&data),
        &ca,
        "alice",
        t0() + DAY * 300,
        30
    ));
    // Within the window but already as long-lived as its CA: a new one could not last
    // longer, so it waits for the CA's own renewal (then `CaChanged` below applies).
    assert!(!user_certificate_due(
        Some(&data),
        &ca,
        "alice",
        t0() + DAY * 336,
        30
    ));
    let short = issue_user_certificate(&ca, "alice", t0(), 100).expect("user cert");
    let short = short.into_secret_data();
    assert!(!user_certificate_due(
        Some(&short),
        &ca,
        "alice",
        t0() + DAY * 69,
        30
    ));
    assert!(user_certificate_due(
        Some(&short),
        &ca,
        "alice",
        t0() + DAY * 71,
        30
    ));
    assert!(
        user_certificate_due(Some(&data), &ca, "bob", t0(), 30),
        "other user"
    );
    assert!(user_certificate_due(None, &ca, "alice", t0(), 30));
    let mut broken = data.clone();
    broken.insert(names::USER_PASSWORD.into(), ByteString(b"nope".to_vec()));
    assert!(user_certificate_due(Some(&broken), &ca, "alice", t0(), 30));
    let mut broken = data.clone();
    broken.insert(names::USER_KEY.into(), ByteString(b"nope".to_vec()));
    assert!(user_certificate_due(Some(&broken), &ca, "alice", t0(), 30));

    // The clients CA renewed: the certificate comes from the old one.
    let other = Authority::generate(CaKind::Clients, CLUSTER, 1, t0().into(), 365).expect("CA");
    assert!(user_certificate_due(Some(&data), &other, "alice", t0(), 30));
}

/// The default policy: the renewed CA certificate has the old key and subject, so a client
/// that loaded the truststore before the renewal accepts brokers that present leaves from
/// the new certificate, and a new truststore accepts brokers not yet on the new leaves.
#[test]
fn renew_certificate_keeps_key_and_subject_so_old_and_new_trust_each_other() {
    let mut run = Run::default();
    let mut stored = Stored::default();
    let first = run.step(&mut stored, t0());
    let old_cluster_ca = bundle(&first, CaKind::Cluster).swap_remove(0);
    let old_clients_ca = bundle(&first, CaKind::Clients).swap_remove(0);
    let old_user = issue_user_certificate(&clients_ca(&stored), "alice", t0(), 365)
        .expect("user cert")
        .into_secret_data();

    let t1 = t0() + DAY * 340;
    run.brokers_current = false;
    let renewed = run.step(&mut stored, t1);
    for kind in [CaKind::Cluster, CaKind::Clients] {
        assert!(
            renewed.events.contains(&CertEvent::CaRenewed {
                kind,
                key_replaced: false,
                forced: false,
            }),
            "{:?}",
            renewed.events
        );
        assert_eq!(ca_key(&renewed, kind), ca_key(&first, kind), "same key");
    }
    let cluster_bundle = bundle(&renewed, CaKind::Cluster);
    assert_eq!(cluster_bundle.len(), 2);
    let new_cluster_ca = cluster_bundle[0].clone();
    assert_eq!(cluster_bundle[1], old_cluster_ca);
    assert_ne!(new_cluster_ca, old_cluster_ca);
    assert_eq!(subject_der(&new_cluster_ca), subject_der(&old_cluster_ca));
    assert_ne!(serial(&new_cluster_ca), serial(&old_cluster_ca));
    assert_eq!(
        x509::common_name(&new_cluster_ca).as_deref(),
        Some("prod-cluster-ca v0")
    );
    let old_expiry = x509::not_after(&old_cluster_ca).expect("expiry");
    let new_expiry = x509::not_after(&new_cluster_ca).expect("expiry");
    assert!(new_expiry > old_expiry + time::Duration::days(300));
    assert!(x509::is_ca(&new_cluster_ca));

    // Every leaf is re-issued under the new certificate, though the key is the same.
    assert_eq!(
        issued_holders(&renewed),
        ["broker-0", "broker-1", "broker-2", "operator"]
    );
    assert!(issue_reasons(&renewed)
        .iter()
        .all(|r| *r == IssueReason::CaChanged));

    // Inside both certificates' validity.
    let t2 = t1 + DAY;
    assert!(OffsetDateTime::from(t2) < old_expiry);
    for i in 0..3 {
        let new_chain = pems(&renewed.broker_certs, &names::broker_crt(i));
        assert_eq!(new_chain[1], new_cluster_ca, "shipped with the new CA");
        verify_presented(&new_chain, std::slice::from_ref(&old_cluster_ca), t2)
            .expect("a client that trusts only the old CA certificate accepts a new leaf");
        verify(
            &new_chain[0],
            std::slice::from_ref(&old_cluster_ca),
            t2,
            webpki::KeyUsage::server_auth(),
        )
        .expect("the new leaf alone, against the old CA alone");
        let old_chain = pems(&first.broker_certs, &names::broker_crt(i));
        verify_presented(&old_chain, std::slice::from_ref(&new_cluster_ca), t2)
            .expect("a client that trusts only the new CA certificate accepts an old leaf");
        verify(
            &old_chain[0],
            std::slice::from_ref(&new_cluster_ca),
            t2,
            webpki::KeyUsage::client_auth(),
        )
        .expect("inter-broker mTLS across the renewal");
    }
    let operator = pems(&renewed.operator_certs, names::OPERATOR_CRT).swap_remove(0);
    verify(
        &operator,
        std::slice::from_ref(&old_cluster_ca),
        t2,
        webpki::KeyUsage::client_auth(),
    )
    .expect("brokers that still trust only the old CA accept the operator");

    // Clients CA: a user certificate from before the renewal is still accepted by brokers
    // that trust only the new certificate, and is re-issued under the new one.
    let new_clients_ca = bundle(&renewed, CaKind::Clients).swap_remove(0);
    assert_ne!(new_clients_ca, old_clients_ca);
    let old_user_leaf = pems(&old_user, names::USER_CRT).swap_remove(0);
    verify(
        &old_user_leaf,
        std::slice::from_ref(&new_clients_ca),
        t2,
        webpki::KeyUsage::client_auth(),
    )
    .expect("old user certificate against the new clients CA");
    let clients = clients_ca(&stored);
    assert_eq!(clients.cert_der(), new_clients_ca.as_slice());
    assert!(user_certificate_due(
        Some(&old_user),
        &clients,
        "alice",
        t2,
        30
    ));
    let new_user = issue_user_certificate(&clients, "alice", t2, 365).expect("user cert");
    let new_user = new_user.into_secret_data();
    assert!(!user_certificate_due(
        Some(&new_user),
        &clients,
        "alice",
        t2,
        30
    ));
    verify(
        &pems(&new_user, names::USER_CRT)[0],
        std::slice::from_ref(&old_clients_ca),
        t2,
        webpki::KeyUsage::client_auth(),
    )
    .expect("new user certificate against the old clients CA");

    // Steady: nothing is renewed or re-issued again.
    let steady = run.step(&mut stored, t2);
    assert_eq!(steady.events, []);
    assert_eq!(steady.broker_certs, renewed.broker_certs);
    assert_eq!(steady.cluster_ca, renewed.cluster_ca);

    // The old certificate leaves the bundle by the usual rules.
    run.brokers_current = true;
    let retired = run.step(&mut stored, t2);
    assert_eq!(
        retired.events,
        [CertEvent::CaRetired {
            kind: CaKind::Cluster,
            count: 1
        }]
    );
    assert_eq!(bundle(&retired, CaKind::Cluster), [new_cluster_ca]);
    let expired = run.step(&mut stored, t0() + DAY * 366);
    assert_eq!(
        expired.events,
        [CertEvent::CaRetired {
            kind: CaKind::Clients,
            count: 1
        }]
    );
    // A year on, the renewed CA renews again, still with the same key.
    let again = run.step(&mut stored, t1 + DAY * 340);
    assert!(again.events.contains(&CertEvent::CaRenewed {
        kind: CaKind::Cluster,
        key_replaced: false,
        forced: false,
    }));
    assert_eq!(
        ca_key(&again, CaKind::Cluster),
        ca_key(&first, CaKind::Cluster)
    );
}

fn forcing(renew: bool, replace_key: bool) -> Forced {
    Forced { renew, replace_key }
}

#[test]
fn forced_renewal_far_from_the_window_follows_the_policy() {
    let mut run = Run {
        brokers_current: false,
        ..Run::default()
    };
    let mut stored = Stored::default();
    let first = run.step(&mut stored, t0());
    let old_ca = bundle(&first, CaKind::Cluster).swap_remove(0);

    // Ten days in: a year from the renewal window.
    let t1 = t0() + DAY * 10;
    run.forced_cluster_ca = forcing(true, false);
    let renewed = run.step(&mut stored, t1);
    assert_eq!(
        renewed.events[0],
        CertEvent::CaRenewed {
            kind: CaKind::Cluster,
            key_replaced: false,
            forced: true,
        }
    );
    assert_eq!(
        issued_holders(&renewed),
        ["broker-0", "broker-1", "broker-2", "operator"]
    );
    assert_eq!(renewed.clients_ca, first.clients_ca, "the other CA is left");
    assert_eq!(
        ca_key(&renewed, CaKind::Cluster),
        ca_key(&first, CaKind::Cluster)
    );
    let cluster_bundle = bundle(&renewed, CaKind::Cluster);
    assert_eq!(cluster_bundle[1], old_ca);
    verify_presented(
        &pems(&renewed.broker_certs, &names::broker_crt(0)),
        std::slice::from_ref(&old_ca),
        t1,
    )
    .expect("same key: the old truststore still works");

    // Done: without the annotation the next call is quiet.
    run.forced_cluster_ca = Forced::default();
    assert_eq!(run.step(&mut stored, t1).events, []);

    // Under replace-key a forced renewal makes a new key.
    run.cluster_ca = replacing_key();
    run.forced_cluster_ca = forcing(true, false);
    let replaced = run.step(&mut stored, t1);
    assert_eq!(
        replaced.events[0],
        CertEvent::CaRenewed {
            kind: CaKind::Cluster,
            key_replaced: true,
            forced: true,
        }
    );
    assert_ne!(
        ca_key(&replaced, CaKind::Cluster),
        ca_key(&first, CaKind::Cluster)
    );
}

#[test]
fn forced_key_replacement_ignores_the_policy() {
    let mut run = Run::default();
    let mut stored = Stored::default();
    let first = run.step(&mut stored, t0());
    let old_ca = bundle(&first, CaKind::Clients).swap_remove(0);

    let t1 = t0() + DAY * 10;
    run.forced_clients_ca = forcing(true, true);
    let replaced = run.step(&mut stored, t1);
    assert_eq!(
        replaced.events,
        [CertEvent::CaRenewed {
            kind: CaKind::Clients,
            key_replaced: true,
            forced: true,
        }],
        "no leaf of the cluster CA changes"
    );
    assert_ne!(
        ca_key(&replaced, CaKind::Clients),
        ca_key(&first, CaKind::Clients)
    );
    let clients_bundle = bundle(&replaced, CaKind::Clients);
    assert_eq!(clients_bundle.len(), 2);
    assert_eq!(clients_bundle[1], old_ca);
    assert_eq!(
        x509::common_name(&clients_bundle[0]).as_deref(),
        Some("prod-clients-ca v1")
    );
    let user = issue_user_certificate(&clients_ca(&stored), "alice", t1, 365)
        .expect("user cert")
        .into_secret_data();
    assert!(
        verify(
            &pems(&user, names::USER_CRT)[0],
            std::slice::from_ref(&old_ca),
            t1,
            webpki::KeyUsage::client_auth()
        )
        .is_err(),
        "a new key is not trusted through the old certificate"
    );
}

#[test]
fn forced_renewal_of_a_user_provided_ca_does_nothing() {
    let ca = Authority::generate(CaKind::Cluster, "own", 0, t0().into(), 1000).expect("CA");
    let mut stored = Stored {
        cluster_ca_cert: Some(SecretData::from([(
            names::CA_CRT.into(),
            ByteString(ca.bundle_pem().into_bytes()),
        )])),
        cluster_ca_key: Some(ca.key_secret_data()),
        ..Stored::default()
    };
    let mut run = Run {
        cluster_ca: user_provided(),
        ..Run::default()
    };
    let first = run.step(&mut stored, t0());
    run.forced_cluster_ca = forcing(true, true);
    let forced = run.step(&mut stored, t0() + DAY);
    assert_eq!(forced.events, []);
    assert_eq!(forced.cluster_ca, None);
    assert_eq!(forced.broker_certs, first.broker_certs);
}

/// A user-provided bundle that holds a CA certificate and its renewal (same key) signs with
/// the renewal, in whichever order they are listed.
#[test]
fn user_provided_bundle_signs_with_the_newest_certificate_of_its_key() {
    let ca = Authority::generate(CaKind::Cluster, "own", 0, t0().into(), 1000).expect("CA");
    let key = ca.key_secret_data();
    let old = ca.cert_der().to_vec();
    let renewed = ca
        .renew_certificate("own", (t0() + DAY).into(), 1000)
        .expect("renewed");
    let new = renewed.cert_der().to_vec();
    let pem: String = [&old, &new]
        .iter()
        .map(|d| x509::encode_cert_pem(d))
        .collect();
    let cert = SecretData::from([(names::CA_CRT.into(), ByteString(pem.into_bytes()))]);
    let loaded = Authority::load(CaKind::Cluster, "own", Some(&cert), Some(&key)).expect("loads");
    assert_eq!(loaded.cert_der(), new.as_slice());
    assert_eq!(loaded.bundle(), [new, old]);
}
