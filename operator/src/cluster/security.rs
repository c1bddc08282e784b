//! What a secured cluster adds to each broker's server.properties, and where the
//! certificates it names are mounted.
//!
//! A cluster is secured as soon as any client listener asks for TLS or authentication, or
//! the spec turns the authorizer on. Then the replication and controller listeners use
//! mutual TLS with the cluster CA (only brokers and the operator hold its certificates),
//! client listeners with `authentication: tls` trust the clients CA (which signs KafkaUser
//! certificates, so a user can never present a broker's identity), and the brokers and
//! the operator are super users. Kafka reads per-listener `listener.name.<l>.` keys before
//! the unprefixed ones, so each listener's settings stay its own.

use crate::certs::names as cert_names;
use crate::cluster::names;
use crate::crd::cluster::{ClusterAuthorizationType, KafkaClusterSpec, ListenerSpec};

/// Kafka's StandardAuthorizer; strom-broker accepts Kafka's class name.
pub const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// Where the broker pods see the Secrets (see `certs::names` for what each holds).
pub const CERTS_DIR: &str = "/etc/strom/certs";
pub const CLUSTER_CA_DIR: &str = "/etc/strom/certs/cluster-ca";
pub const CLIENTS_CA_DIR: &str = "/etc/strom/certs/clients-ca";
pub const BROKER_CERTS_DIR: &str = "/etc/strom/certs/broker";

/// The brokers' mTLS principal, in the RFC 4514 form Kafka's default principal builder
/// gives (most specific first). The organisation keeps any KafkaUser certificate (only
/// `CN=<user>`) from colliding with it.
pub fn broker_principal(cluster: &str) -> String {
    format!(
        "User:CN={},O={}",
        cert_names::broker_common_name(cluster),
        cert_names::ORGANIZATION
    )
}

/// Whether the cluster runs with certificates, authentication or ACLs.
pub fn is_secured(spec: &KafkaClusterSpec) -> bool {
    spec.authorization.is_some()
        || spec
            .effective_listeners()
            .iter()
            .any(|l| l.tls || l.authentication.is_some())
}

/// `authentication.type` of a listener, as validate() accepts it.
fn authentication(listener: &ListenerSpec) -> Option<&str> {
    listener.authentication.as_ref().map(|a| a.kind.as_str())
}

/// Kafka's security protocol for a client listener. mTLS (`authentication.type: tls`) is
/// SSL with client certificates, not SASL.
pub fn security_protocol(listener: &ListenerSpec) -> &'static str {
    let auth = authentication(listener);
    let sasl = auth == Some("scram-sha-512");
    let tls = listener.tls || auth == Some("tls");
    match (tls, sasl) {
        (false, false) => "PLAINTEXT",
        (true, false) => "SSL",
        (false, true) => "SASL_PLAINTEXT",
        (true, true) => "SASL_SSL",
    }
}

/// Protocol of the replication and controller listeners.
pub fn internal_protocol(spec: &KafkaClusterSpec) -> &'static str {
    if is_secured(spec) {
        "SSL"
    } else {
        "PLAINTEXT"
    }
}

/// The PEM keystore (key, then certificate chain) of broker `ordinal` in the mounted
/// broker Secret; `ordinal` is text so the config hash can use a placeholder.
pub fn broker_keystore(ordinal: &str) -> String {
    format!("{BROKER_CERTS_DIR}/broker-{ordinal}.pem")
}

fn cluster_ca_bundle() -> String {
    format!("{CLUSTER_CA_DIR}/ca.crt")
}

fn clients_ca_bundle() -> String {
    format!("{CLIENTS_CA_DIR}/ca.crt")
}

/// The properties a secured cluster adds for broker `ordinal` (text, see
/// `broker_keystore`); nothing for an unsecured one.
pub fn properties(spec: &KafkaClusterSpec, cluster: &str, ordinal: &str) -> Vec<(String, String)> {
    if !is_secured(spec) {
        return Vec::new();
    }
    let keystore = broker_keystore(ordinal);
    let mut props = Vec::new();
    let mut set = |listener: &str, key: &str, value: String| {
        props.push((format!("listener.name.{listener}.{key}"), value));
    };
    for internal in [names::REPLICATION_LISTENER, names::CONTROLLER_LISTENER] {
        let listener = internal.to_ascii_lowercase();
        set(&listener, "ssl.keystore.type", "PEM".into());
        set(&listener, "ssl.keystore.location", keystore.clone());
        set(&listener, "ssl.truststore.type", "PEM".into());
        set(&listener, "ssl.truststore.location", cluster_ca_bundle());
        set(&listener, "ssl.client.auth", "required".into());
    }
    for listener in spec.effective_listeners() {
        let name = listener.name.to_ascii_lowercase();
        let auth = authentication(&listener);
        if listener.tls || auth == Some("tls") {
            set(&name, "ssl.keystore.type", "PEM".into());
            set(&name, "ssl.keystore.location", keystore.clone());
        }
        match auth {
            Some("tls") => {
                set(&name, "ssl.truststore.type", "PEM".into());
                set(&name, "ssl.truststore.location", clients_ca_bundle());
                set(&name, "ssl.client.auth", "required".into());
            }
            Some("scram-sha-512") => {
                set(&name, "sasl.enabled.mechanisms", "SCRAM-SHA-512".into());
            }
            _ => {}
        }
    }
    // The default rules give the full distinguished name, which `super.users` and
    // KafkaUser ACLs (`User:CN=<name>`) rely on; a user's rules would break both.
    props.push(("ssl.principal.mapping.rules".into(), "DEFAULT".into()));
    if let Some(authorization) = &spec.authorization {
        match authorization.kind {
            ClusterAuthorizationType::Simple => {
                props.push(("authorizer.class.name".into(), STANDARD_AUTHORIZER.into()));
            }
        }
        let mut supers = vec![broker_principal(cluster), cert_names::operator_principal()];
        supers.extend(authorization.super_users.iter().map(|u| {
            if u.starts_with("User:") {
                u.clone()
            } else {
                format!("User:{u}")
            }
        }));
        props.push(("super.users".into(), supers.join(";")));
    }
    props
}

/// Config keys a secured spec sets itself; a user value for one is ignored (with the
/// `ManagedConfigIgnored` warning), since it would lock out the brokers or the operator.
pub fn managed_keys(spec: &KafkaClusterSpec) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if is_secured(spec) {
        keys.push("ssl.principal.mapping.rules");
    }
    if spec.authorization.is_some() {
        keys.extend(["authorizer.class.name", "super.users"]);
    }
    keys
}

/// Whether a user config key would change the replication or controller listener's
/// security, which the operator owns once the cluster is secured.
pub fn is_internal_listener_key(key: &str) -> bool {
    [names::REPLICATION_LISTENER, names::CONTROLLER_LISTENER]
        .iter()
        .any(|l| key.starts_with(&format!("listener.name.{}.", l.to_ascii_lowercase())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: serde_json::Value) -> KafkaClusterSpec {
        serde_json::from_value(value).expect("spec")
    }

    fn get<'a>(props: &'a [(String, String)], key: &str) -> Option<&'a str> {
        props
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_plain_cluster_adds_nothing() {
        let plain = spec(json!({"replicas": 3}));
        assert!(!is_secured(&plain));
        assert!(properties(&plain, "c", "0").is_empty());
        assert_eq!(internal_protocol(&plain), "PLAINTEXT");
        assert!(managed_keys(&plain).is_empty());
    }

    #[test]
    fn any_secured_listener_or_the_authorizer_secures_the_cluster() {
        for extra in [
            json!({"listeners": [{"name": "tls", "port": 9094, "tls": true}]}),
            json!({"listeners": [{"name": "s", "port": 9094,
                                  "authentication": {"type": "scram-sha-512"}}]}),
            json!({"authorization": {"type": "simple"}}),
        ] {
            let mut value = json!({"replicas": 3});
            value
                .as_object_mut()
                .expect("object")
                .extend(extra.as_object().expect("object").clone());
            let secured = spec(value);
            assert!(is_secured(&secured), "{secured:?}");
            assert_eq!(internal_protocol(&secured), "SSL");
        }
    }

    #[test]
    fn internal_listeners_use_mutual_tls_with_the_cluster_ca() {
        let s = spec(json!({"replicas": 3, "authorization": {"type": "simple"}}));
        let props = properties(&s, "c", "2");
        for listener in ["replication", "controller"] {
            let key = |k: &str| format!("listener.name.{listener}.{k}");
            assert_eq!(
                get(&props, &key("ssl.keystore.location")),
                Some("/etc/strom/certs/broker/broker-2.pem")
            );
            assert_eq!(
                get(&props, &key("ssl.truststore.location")),
                Some("/etc/strom/certs/cluster-ca/ca.crt")
            );
            assert_eq!(get(&props, &key("ssl.client.auth")), Some("required"));
        }
    }

    #[test]
    fn client_listeners_get_what_their_spec_asks_for() {
        let s = spec(json!({"replicas": 1, "listeners": [
            {"name": "plain", "port": 9092},
            {"name": "scram", "port": 9094, "tls": true,
             "authentication": {"type": "scram-sha-512"}},
            {"name": "mtls", "port": 9095, "authentication": {"type": "tls"}},
        ]}));
        let props = properties(&s, "c", "0");
        assert!(props
            .iter()
            .all(|(k, _)| !k.starts_with("listener.name.plain.")));
        assert_eq!(
            get(&props, "listener.name.scram.sasl.enabled.mechanisms"),
            Some("SCRAM-SHA-512")
        );
        assert_eq!(
            get(&props, "listener.name.scram.ssl.keystore.location"),
            Some("/etc/strom/certs/broker/broker-0.pem")
        );
        assert_eq!(get(&props, "listener.name.scram.ssl.client.auth"), None);
        assert_eq!(
            get(&props, "listener.name.mtls.ssl.truststore.location"),
            Some("/etc/strom/certs/clients-ca/ca.crt")
        );
        assert_eq!(
            get(&props, "listener.name.mtls.ssl.client.auth"),
            Some("required")
        );
        assert_eq!(get(&props, "authorizer.class.name"), None);
        assert_eq!(get(&props, "ssl.principal.mapping.rules"), Some("DEFAULT"));
    }

    #[test]
    fn super_users_are_the_brokers_the_operator_and_the_specs() {
        let s = spec(json!({"replicas": 1, "authorization": {"type": "simple",
            "superUsers": ["CN=admin", "User:ops", "bob"]}}));
        let props = properties(&s, "my-cluster", "0");
        assert_eq!(
            get(&props, "authorizer.class.name"),
            Some(STANDARD_AUTHORIZER)
        );
        assert_eq!(
            get(&props, "super.users"),
            Some(
                "User:CN=my-cluster-broker,O=strom.dev;User:CN=strom-operator,O=strom.dev;\
                 User:CN=admin;User:ops;User:bob"
            )
        );
        assert_eq!(
            managed_keys(&s),
            vec![
                "ssl.principal.mapping.rules",
                "authorizer.class.name",
                "super.users"
            ]
        );
    }

    #[test]
    fn security_protocols_follow_tls_and_authentication() {
        let listener = |tls: bool, auth: Option<&str>| -> ListenerSpec {
            serde_json::from_value(json!({
                "name": "x", "port": 9092, "tls": tls,
                "authentication": auth.map(|a| json!({"type": a})),
            }))
            .expect("listener")
        };
        assert_eq!(security_protocol(&listener(false, None)), "PLAINTEXT");
        assert_eq!(security_protocol(&listener(true, None)), "SSL");
        assert_eq!(security_protocol(&listener(true, Some("tls"))), "SSL");
        assert_eq!(security_protocol(&listener(false, Some("tls"))), "SSL");
        assert_eq!(
            security_protocol(&listener(false, Some("scram-sha-512"))),
            "SASL_PLAINTEXT"
        );
        assert_eq!(
            security_protocol(&listener(true, Some("scram-sha-512"))),
            "SASL_SSL"
        );
    }

    #[test]
    fn internal_listener_keys_are_recognised() {
        assert!(is_internal_listener_key(
            "listener.name.replication.ssl.client.auth"
        ));
        assert!(is_internal_listener_key(
            "listener.name.controller.ssl.keystore.location"
        ));
        assert!(!is_internal_listener_key(
            "listener.name.plain.ssl.client.auth"
        ));
    }
}
