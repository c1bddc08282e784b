//! Quota entities and keys as Kafka stores them (`ClientQuotaEntity`, `QuotaConfig`), and
//! the checks Kafka's controller makes before it writes a `ClientQuotaRecord`
//! (`ClientQuotaControlManager`).

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// A quota's owner: entity type (`user`, `client-id`, `ip`) to name, `None` naming the
/// type's default (`--entity-default`). Kafka's `ClientQuotaEntity`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaEntity(pub BTreeMap<String, Option<String>>);

impl QuotaEntity {
    /// A user and/or client-id entity; `Some(None)` is the default of that type.
    pub fn user_client(user: Option<Option<&str>>, client_id: Option<Option<&str>>) -> Self {
        let mut map = BTreeMap::new();
        if let Some(user) = user {
            map.insert(USER.to_string(), user.map(str::to_string));
        }
        if let Some(client_id) = client_id {
            map.insert(CLIENT_ID.to_string(), client_id.map(str::to_string));
        }
        QuotaEntity(map)
    }
}

impl fmt::Display for QuotaEntity {
    /// As Kafka's `ClientQuotaEntity.toString` shows it in messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries: Vec<String> = self
            .0
            .iter()
            .map(|(t, n)| format!("{t}={}", n.as_deref().unwrap_or("null")))
            .collect();
        write!(f, "ClientQuotaEntity(entries={{{}}})", entries.join(", "))
    }
}

/// How Kafka's `QuotaConfig` types a key: integral keys refuse fractions.
#[derive(Debug, Clone, Copy, PartialEq)]
enum KeyType {
    Long,
    Int,
    Double,
}

/// The keys an entity may carry: user/client-id entities take the four client quotas, an
/// ip entity only `connection_creation_rate`.
fn keys_for(entity: &QuotaEntity) -> Result<&'static [(&'static str, KeyType)], ApiError> {
    const CLIENT_KEYS: &[(&str, KeyType)] = &[
        (PRODUCER_BYTE_RATE, KeyType::Long),
        (CONSUMER_BYTE_RATE, KeyType::Long),
        (REQUEST_PERCENTAGE, KeyType::Double),
        (CONTROLLER_MUTATION_RATE, KeyType::Double),
    ];
    const IP_KEYS: &[(&str, KeyType)] = &[(CONNECTION_CREATION_RATE, KeyType::Int)];
    let has = |t: &str| entity.0.contains_key(t);
    if has(IP) {
        if has(USER) || has(CLIENT_ID) {
            // Kafka's message, its missing space included.
            return Err(invalid(
                "Invalid quota entity combination, IP entity shouldnot be combined with User or ClientId"
                    .into(),
            ));
        }
        Ok(IP_KEYS)
    } else if has(USER) || has(CLIENT_ID) {
        Ok(CLIENT_KEYS)
    } else {
        Err(invalid("Invalid empty client quota entity".into()))
    }
}

/// The name of an ip entity that is a host name rather than an address literal: Kafka
/// accepts it only if it resolves (`InetAddress.getByName`), which the caller finds out
/// before deciding, so that no decision waits on a resolver.
pub fn ip_host_name(entity: &[(String, Option<String>)]) -> Option<&str> {
    entity
        .iter()
        .find(|(t, _)| t == IP)
        .and_then(|(_, name)| name.as_deref())
        .filter(|name| name.parse::<std::net::IpAddr>().is_err())
}

fn invalid(message: String) -> ApiError {
    ApiError::new(ResponseError::InvalidRequest, message)
}

/// An entity as a request names it: `(entity type, name)` pairs, in request order.
/// Kafka's checks (`validateEntity`): not empty, no type twice, known types, no empty
/// names.
pub fn validate_entity(components: &[(String, Option<String>)]) -> Result<QuotaEntity, ApiError> {
    if components.is_empty() {
        return Err(invalid("Invalid empty client quota entity".into()));
    }
    let mut map = BTreeMap::new();
    for (entity_type, name) in components {
        if map.contains_key(entity_type) {
            return Err(invalid(format!(
                "Invalid client quota entity, duplicate entity entry {entity_type}"
            )));
        }
        if ![USER, CLIENT_ID, IP].contains(&entity_type.as_str()) {
            return Err(invalid(format!(
                "Unhandled client quota entity type: {entity_type}"
            )));
        }
        map.insert(entity_type.clone(), name.clone());
        if name.as_deref() == Some("") {
            return Err(invalid(format!("Empty {entity_type} not supported")));
        }
    }
    Ok(QuotaEntity(map))
}

/// Kafka's `validateQuotaKeyValue`, for a value being set (removals are not checked).
pub fn validate_key_value(entity: &QuotaEntity, key: &str, value: f64) -> Result<(), ApiError> {
    let keys = keys_for(entity)?;
    let Some((_, key_type)) = keys.iter().find(|(k, _)| *k == key) else {
        return Err(invalid(format!("Invalid configuration key {key}")));
    };
    if value.is_nan() || value <= 0.0 {
        // NaN fails Kafka's `value <= 0.0` test too, but then passes as a DOUBLE; a NaN
        // quota would make every rate comparison false, so Strom refuses it here.
        return Err(invalid(format!("Quota {key} must be greater than 0")));
    }
    let limit = match key_type {
        KeyType::Double => return Ok(()),
        KeyType::Int => (i32::MAX as f64, "an INT"),
        KeyType::Long => (i64::MAX as f64, "a LONG"),
    };
    if value > limit.0 {
        return Err(invalid(format!(
            "Proposed value for {key} is too large for {}.",
            limit.1
        )));
    }
    if (value % 1.0).abs() > 1e-6 {
        return Err(invalid(format!("{key} cannot be a fractional value.")));
    }
    Ok(())
}

/// The entity-combination check alone (Kafka runs it before looking at any key, so an
/// entity with only removals still fails on a bad combination), then an ip entity's name:
/// an address literal, or a host name among `resolved` (see [`ip_host_name`]).
pub fn validate_combination(
    entity: &QuotaEntity,
    resolved: &HashSet<String>,
) -> Result<(), ApiError> {
    keys_for(entity)?;
    match entity.0.get(IP) {
        Some(Some(ip)) if ip.parse::<std::net::IpAddr>().is_err() && !resolved.contains(ip) => Err(
            invalid(format!("{ip} is not a valid IP or resolvable host.")),
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(parts: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        parts
            .iter()
            .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
            .collect()
    }

    #[test]
    fn entities_are_checked_as_kafka_checks_them() {
        let e = |parts| validate_entity(&entity(parts)).map_err(|e| e.message);
        assert!(e(&[(USER, Some("alice")), (CLIENT_ID, None)]).is_ok());
        assert_eq!(e(&[]).unwrap_err(), "Invalid empty client quota entity");
        assert_eq!(
            e(&[(USER, Some("a")), (USER, Some("b"))]).unwrap_err(),
            "Invalid client quota entity, duplicate entity entry user"
        );
        assert_eq!(
            e(&[("group", Some("g"))]).unwrap_err(),
            "Unhandled client quota entity type: group"
        );
        assert_eq!(
            e(&[(USER, Some(""))]).unwrap_err(),
            "Empty user not supported"
        );
    }

    #[test]
    fn keys_and_values_are_checked_per_entity_kind() {
        let user = validate_entity(&entity(&[(USER, Some("alice"))])).unwrap();
        let ip = validate_entity(&entity(&[(IP, Some("10.0.0.1"))])).unwrap();
        let check = |e: &QuotaEntity, k: &str, v: f64| {
            validate_key_value(e, k, v).map_err(|e| (e.error, e.message))
        };
        assert!(check(&user, PRODUCER_BYTE_RATE, 1024.0).is_ok());
        assert!(check(&user, REQUEST_PERCENTAGE, 12.5).is_ok());
        assert!(check(&ip, CONNECTION_CREATION_RATE, 10.0).is_ok());
        let bad = [
            (&user, "bogus", 1.0, "Invalid configuration key bogus"),
            (
                &user,
                CONNECTION_CREATION_RATE,
                1.0,
                "Invalid configuration key connection_creation_rate",
            ),
            (
                &ip,
                PRODUCER_BYTE_RATE,
                1.0,
                "Invalid configuration key producer_byte_rate",
            ),
            (
                &user,
                PRODUCER_BYTE_RATE,
                -5.0,
                "Quota producer_byte_rate must be greater than 0",
            ),
            (
                &user,
                PRODUCER_BYTE_RATE,
                0.0,
                "Quota producer_byte_rate must be greater than 0",
            ),
            (
                &user,
                PRODUCER_BYTE_RATE,
                1.5,
                "producer_byte_rate cannot be a fractional value.",
            ),
            (
                &ip,
                CONNECTION_CREATION_RATE,
                3e9,
                "Proposed value for connection_creation_rate is too large for an INT.",
            ),
        ];
        for (e, k, v, message) in bad {
            assert_eq!(
                check(e, k, v),
                Err((ResponseError::InvalidRequest, message.to_string()))
            );
        }
        let mixed = validate_entity(&entity(&[(IP, None), (USER, None)])).unwrap();
        assert!(validate_combination(&mixed, &HashSet::new()).is_err());
    }

    #[test]
    fn an_ip_entity_is_an_address_or_a_host_name_that_resolved() {
        let resolved = HashSet::from(["broker.example".to_string()]);
        let check = |name: &str| {
            let parts = entity(&[(IP, Some(name))]);
            let e = validate_entity(&parts).unwrap();
            (
                ip_host_name(&parts).map(str::to_string),
                validate_combination(&e, &resolved).map_err(|e| e.message),
            )
        };
        assert_eq!(check("10.1.2.3"), (None, Ok(())));
        assert_eq!(check("::1"), (None, Ok(())));
        assert_eq!(
            check("broker.example"),
            (Some("broker.example".to_string()), Ok(()))
        );
        assert_eq!(
            check("nowhere.invalid"),
            (
                Some("nowhere.invalid".to_string()),
                Err("nowhere.invalid is not a valid IP or resolvable host.".to_string())
            )
        );
        let default = validate_entity(&entity(&[(IP, None)])).unwrap();
        assert_eq!(ip_host_name(&entity(&[(IP, None)])), None);
        assert!(validate_combination(&default, &HashSet::new()).is_ok());
    }
}
