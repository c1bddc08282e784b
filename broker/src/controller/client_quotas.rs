//! AlterClientQuotas on the active controller (Kafka's `ClientQuotaControlManager`): the
//! image's quotas and the requested alterations in, `ClientQuota` records and one result
//! per entity out.
//!
//! Kafka's rules, in its order: a key named twice in one entity fails that entity
//! ("Duplicate quota key"), an entity named twice fails ("Ignoring duplicate entity"), the
//! entity is checked (types, combination, names), then every set value (known key for the
//! entity kind, above 0, integral where the key is). An entity fails or succeeds as a
//! whole; a removal of an absent key or a set to the current value writes no record.
//! `validate_only` is the caller's: it decides and commits nothing. An ip entity's host
//! name is resolved before the decision ([`resolve_ip_host_names`]), never inside it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};

use super::acls::MAX_RECORDS_PER_USER_OP;
use crate::error::{ApiError, ApiResult};
use crate::metadata::{MetadataImage, MetadataRecord};
use crate::quota::entity::{
    ip_host_name, validate_combination, validate_entity, validate_key_value, QuotaEntity,
};

/// How long one ip entity's host name may take to resolve; a name that has not resolved
/// by then is refused as one that does not resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// One entity's requested changes, as the request carries them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaAlteration {
    /// (entity type, name or `None` for the default), in request order.
    pub entity: Vec<(String, Option<String>)>,
    /// (key, new value or `None` to remove), in request order.
    pub ops: Vec<(String, Option<f64>)>,
}

/// Per alteration, in request order: done, or why not.
pub type QuotaResults = Vec<Result<(), ApiError>>;

fn invalid(message: String) -> ApiError {
    ApiError::new(ResponseError::InvalidRequest, message)
}

/// The host names among `alterations`' ip entities that resolve (Kafka's
/// `InetAddress.getByName` check), each bounded by [`RESOLVE_TIMEOUT`]. Asked before the
/// controller decides, so that a slow resolver holds this request and nothing else.
pub async fn resolve_ip_host_names(alterations: &[QuotaAlteration]) -> HashSet<String> {
    let mut resolved = HashSet::new();
    for name in alterations.iter().filter_map(|a| ip_host_name(&a.entity)) {
        if resolved.contains(name) {
            continue;
        }
        let lookup = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, 0)));
        let why = match lookup.await {
            Ok(Ok(mut addresses)) => {
                if addresses.next().is_some() {
                    resolved.insert(name.to_string());
                    continue;
                }
                "no addresses".to_string()
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {RESOLVE_TIMEOUT:?}"),
        };
        tracing::info!(host = name, reason = %why, "ip quota entity does not resolve");
    }
    resolved
}

/// The records for an AlterClientQuotas and one result per alteration. `resolved` holds
/// the ip entities' host names that resolve ([`resolve_ip_host_names`]).
pub fn alter_client_quotas(
    image: &MetadataImage,
    alterations: &[QuotaAlteration],
    resolved: &HashSet<String>,
) -> ApiResult<(Vec<MetadataRecord>, QuotaResults)> {
    let mut per_entity: Vec<Vec<MetadataRecord>> = Vec::with_capacity(alterations.len());
    let mut results: Vec<Result<(), ApiError>> = Vec::with_capacity(alterations.len());
    // Kafka keys its results by entity: a second alteration of an entity fails, and so
    // does the first one's reported result (the map holds one answer per entity).
    let mut seen: HashMap<Vec<(String, Option<String>)>, usize> = HashMap::new();
    for alteration in alterations {
        let mut key = alteration.entity.clone();
        key.sort();
        if let Some(&first) = seen.get(&key) {
            let e = invalid(format!(
                "Ignoring duplicate entity {}",
                display(&alteration.entity)
            ));
            results[first] = Err(e.clone());
            results.push(Err(e));
            per_entity.push(Vec::new());
            continue;
        }
        seen.insert(key, results.len());
        let mut new_records = Vec::new();
        results.push(alter_entity(image, alteration, resolved, &mut new_records));
        per_entity.push(new_records);
    }
    // Only entities reported done are written (Kafka would also write the first of two
    // alterations of one entity, which it reports failed).
    let records: Vec<MetadataRecord> = per_entity
        .into_iter()
        .zip(&results)
        .filter(|(_, r)| r.is_ok())
        .flat_map(|(records, _)| records)
        .collect();
    if records.len() > MAX_RECORDS_PER_USER_OP {
        return Err(ApiError::new(
            ResponseError::PolicyViolation,
            format!(
                "Cannot alter more than {MAX_RECORDS_PER_USER_OP} client quotas in one request"
            ),
        ));
    }
    Ok((records, results))
}

fn display(entity: &[(String, Option<String>)]) -> String {
    QuotaEntity(entity.iter().cloned().collect()).to_string()
}

fn alter_entity(
    image: &MetadataImage,
    alteration: &QuotaAlteration,
    resolved: &HashSet<String>,
    records: &mut Vec<MetadataRecord>,
) -> Result<(), ApiError> {
    let mut ops: BTreeMap<&str, Option<f64>> = BTreeMap::new();
    for (key, value) in &alteration.ops {
        if ops.insert(key.as_str(), *value).is_some() {
            return Err(invalid(format!(
                "Duplicate quota key {key} not updating quota for this entity {}",
                display(&alteration.entity)
            )));
        }
    }
    let entity = validate_entity(&alteration.entity)?;
    validate_combination(&entity, resolved)?;
    let current = image.client_quotas.get(&entity);
    for (key, value) in ops {
        let now = current.and_then(|values| values.get(key)).copied();
        match value {
            None if now.is_some() => records.push(MetadataRecord::ClientQuota {
                entity: entity.clone(),
                key: key.to_string(),
                value: None,
            }),
            None => {}
            Some(value) => {
                validate_key_value(&entity, key, value)?;
                if now != Some(value) {
                    records.push(MetadataRecord::ClientQuota {
                        entity: entity.clone(),
                        key: key.to_string(),
                        value: Some(value),
                    });
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alteration(entity: &[(&str, Option<&str>)], ops: &[(&str, Option<f64>)]) -> QuotaAlteration {
        QuotaAlteration {
            entity: entity
                .iter()
                .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
                .collect(),
            ops: ops.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    fn run(image: &mut MetadataImage, alterations: &[QuotaAlteration]) -> Vec<Result<(), String>> {
        let (records, results) =
            alter_client_quotas(image, alterations, &HashSet::new()).expect("decided");
        for r in &records {
            image.apply(r);
        }
        results
            .into_iter()
            .map(|r| r.map_err(|e| e.message))
            .collect()
    }

    #[tokio::test]
    async fn ip_host_names_are_resolved_before_the_decision() {
        let ip = |name| {
            alteration(
                &[("ip", Some(name))],
                &[("connection_creation_rate", Some(5.0))],
            )
        };
        let alterations = [ip("localhost"), ip("127.0.0.1"), ip("nowhere.invalid")];
        let resolved = resolve_ip_host_names(&alterations).await;
        // RFC 6761: names under .invalid never resolve; literals need no resolving.
        assert_eq!(resolved, HashSet::from(["localhost".to_string()]));
        let image = MetadataImage::default();
        let (_, results) = alter_client_quotas(&image, &alterations, &resolved).unwrap();
        let messages: Vec<_> = results
            .into_iter()
            .map(|r| r.map_err(|e| e.message))
            .collect();
        assert_eq!(
            messages,
            [
                Ok(()),
                Ok(()),
                Err("nowhere.invalid is not a valid IP or resolvable host.".to_string())
            ]
        );
    }

    #[test]
    fn sets_changes_and_removes_write_only_what_changes() {
        let mut image = MetadataImage::default();
        let alice = [("user", Some("alice"))];
        let a = alteration(
            &alice,
            &[
                ("producer_byte_rate", Some(1024.0)),
                ("consumer_byte_rate", None),
            ],
        );
        assert_eq!(run(&mut image, std::slice::from_ref(&a)), [Ok(())]);
        let entity = QuotaEntity::user_client(Some(Some("alice")), None);
        assert_eq!(image.client_quotas[&entity].len(), 1);
        // The same again writes nothing.
        let (records, _) = alter_client_quotas(&image, &[a], &HashSet::new()).unwrap();
        assert!(records.is_empty());
        let remove = alteration(&alice, &[("producer_byte_rate", None)]);
        assert_eq!(run(&mut image, &[remove]), [Ok(())]);
        assert!(image.client_quotas.is_empty());
    }

    #[test]
    fn a_bad_value_fails_its_entity_as_a_whole_and_only_it() {
        let mut image = MetadataImage::default();
        let results = run(
            &mut image,
            &[
                alteration(
                    &[("client-id", None)],
                    &[("producer_byte_rate", Some(10.0)), ("bogus", Some(1.0))],
                ),
                alteration(
                    &[("client-id", Some("app"))],
                    &[("consumer_byte_rate", Some(-1.0))],
                ),
                alteration(
                    &[("user", None), ("client-id", None)],
                    &[("request_percentage", Some(25.0))],
                ),
                alteration(
                    &[("ip", Some("10.0.0.1"))],
                    &[("connection_creation_rate", Some(5.0))],
                ),
                alteration(
                    &[("user", Some("bob"))],
                    &[
                        ("producer_byte_rate", Some(1.0)),
                        ("producer_byte_rate", None),
                    ],
                ),
            ],
        );
        assert_eq!(
            results,
            [
                Err("Invalid configuration key bogus".into()),
                Err("Quota consumer_byte_rate must be greater than 0".into()),
                Ok(()),
                Ok(()),
                Err("Duplicate quota key producer_byte_rate not updating quota for this entity ClientQuotaEntity(entries={user=bob})".into()),
            ]
        );
        assert_eq!(image.client_quotas.len(), 2);
    }

    #[test]
    fn an_entity_named_twice_fails_both_times() {
        let mut image = MetadataImage::default();
        let a = alteration(
            &[("user", Some("a")), ("client-id", Some("c"))],
            &[("producer_byte_rate", Some(1.0))],
        );
        let b = alteration(
            &[("client-id", Some("c")), ("user", Some("a"))],
            &[("consumer_byte_rate", Some(1.0))],
        );
        let results = run(&mut image, &[a, b]);
        assert!(results.iter().all(|r| r
            .as_ref()
            .is_err_and(|m| m.starts_with("Ignoring duplicate entity"))));
    }
}
