//! The authorizer's broker keys: `authorizer.class.name` turns Kafka's StandardAuthorizer
//! on, `super.users` and `allow.everyone.if.no.acl.found` configure it. Without an
//! authorizer the two others are not read, as in Kafka (they are the authorizer's own
//! settings, not the broker's).

use crate::auth::acl::{
    AuthorizerConfig, ALLOW_EVERYONE_IF_NO_ACL_FOUND_CONFIG, SUPER_USERS_CONFIG,
};

use super::{bad, ConfigError};

pub const AUTHORIZER_CLASS_NAME_CONFIG: &str = "authorizer.class.name";
/// Kafka 4's KRaft authorizer; Strom's implements its decisions, so a `server.properties`
/// written for Kafka starts Strom unchanged.
pub const KAFKA_STANDARD_AUTHORIZER: &str =
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer";
/// Strom's own name for the same authorizer.
pub const STROM_STANDARD_AUTHORIZER: &str = "strom.StandardAuthorizer";

/// The keys this module reads; none has a default in `server.properties`' sense (unset
/// means no authorizer, no super users, deny when no ACL is found).
pub const AUTHORIZER_KEYS: &[&str] = &[
    AUTHORIZER_CLASS_NAME_CONFIG,
    SUPER_USERS_CONFIG,
    ALLOW_EVERYONE_IF_NO_ACL_FOUND_CONFIG,
];

/// `None` without an authorizer (`authorizer.class.name` unset or empty); an error for a
/// class Strom does not have, since running without the authorization the operator asked
/// for would be worse than not starting.
pub fn parse(
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<AuthorizerConfig>, ConfigError> {
    let class = get(AUTHORIZER_CLASS_NAME_CONFIG).unwrap_or_default();
    match class.trim() {
        "" => return Ok(None),
        KAFKA_STANDARD_AUTHORIZER | STROM_STANDARD_AUTHORIZER => {}
        other => {
            return Err(bad(
                AUTHORIZER_CLASS_NAME_CONFIG,
                format!(
                    "'{other}' is not an authorizer Strom has: use \
                     {KAFKA_STANDARD_AUTHORIZER} (or {STROM_STANDARD_AUTHORIZER}), \
                     or leave it empty for none"
                ),
            ))
        }
    }
    let super_users = get(SUPER_USERS_CONFIG);
    let allow_everyone = get(ALLOW_EVERYONE_IF_NO_ACL_FOUND_CONFIG);
    AuthorizerConfig::from_settings(super_users.as_deref(), allow_everyone.as_deref())
        .map(Some)
        .map_err(|e| bad(SUPER_USERS_CONFIG, e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn parse_pairs(pairs: &[(&str, &str)]) -> Result<Option<AuthorizerConfig>, ConfigError> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(&|k| map.get(k).cloned())
    }

    #[test]
    fn empty_or_unset_means_no_authorizer() {
        assert_eq!(parse_pairs(&[]).unwrap(), None);
        assert_eq!(
            parse_pairs(&[
                (AUTHORIZER_CLASS_NAME_CONFIG, " "),
                (SUPER_USERS_CONFIG, "bad")
            ])
            .unwrap(),
            None,
            "without an authorizer its settings are not read"
        );
    }

    #[test]
    fn both_names_turn_it_on_with_its_settings() {
        for class in [KAFKA_STANDARD_AUTHORIZER, STROM_STANDARD_AUTHORIZER] {
            let config = parse_pairs(&[
                (AUTHORIZER_CLASS_NAME_CONFIG, class),
                (SUPER_USERS_CONFIG, "User:admin; User:ops"),
                (ALLOW_EVERYONE_IF_NO_ACL_FOUND_CONFIG, "TRUE"),
            ])
            .unwrap()
            .expect("on");
            assert!(config.super_users.contains("User:admin"));
            assert!(config.super_users.contains("User:ops"));
            assert!(config.allow_everyone_if_no_acl_found);
        }
        let config = parse_pairs(&[(AUTHORIZER_CLASS_NAME_CONFIG, KAFKA_STANDARD_AUTHORIZER)])
            .unwrap()
            .expect("on");
        assert!(config.super_users.is_empty());
        assert!(!config.allow_everyone_if_no_acl_found, "Kafka's default");
    }

    #[test]
    fn another_class_or_a_bad_principal_stops_start_up() {
        let e = parse_pairs(&[(
            AUTHORIZER_CLASS_NAME_CONFIG,
            "kafka.security.authorizer.AclAuthorizer",
        )])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("authorizer.class.name") && e.contains("AclAuthorizer"),
            "{e}"
        );
        let e = parse_pairs(&[
            (AUTHORIZER_CLASS_NAME_CONFIG, STROM_STANDARD_AUTHORIZER),
            (SUPER_USERS_CONFIG, "admin"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("super.users"), "{e}");
    }
    #[test]
    fn the_broker_config_knows_the_keys() {
        let given: crate::config::Properties = [
            (AUTHORIZER_CLASS_NAME_CONFIG, KAFKA_STANDARD_AUTHORIZER),
            (SUPER_USERS_CONFIG, "User:ANONYMOUS"),
            (ALLOW_EVERYONE_IF_NO_ACL_FOUND_CONFIG, "false"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let (config, warnings) = crate::config::BrokerConfig::from_properties(given).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let authorizer = config.authorizer.expect("on");
        assert!(authorizer.super_users.contains("User:ANONYMOUS"));
        let (config, _) = crate::config::BrokerConfig::from_properties(Default::default()).unwrap();
        assert!(config.authorizer.is_none());
    }
}
