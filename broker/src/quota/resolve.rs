//! Which quota applies to a request: Kafka's default `ClientQuotaCallback`
//! (`ClientQuotaManager.DefaultQuotaCallback`). A request is keyed by its user (the
//! authenticated principal's name) and client id; the first entity in this list that has
//! a quota of the type decides both the quota and which clients share one rate sensor
//! (the metric tags):
//!
//! 1. /config/users/<user>/clients/<client-id>
//! 2. /config/users/<user>/clients/<default>
//! 3. /config/users/<user>
//! 4. /config/users/<default>/clients/<client-id>
//! 5. /config/users/<default>/clients/<default>
//! 6. /config/users/<default>
//! 7. /config/clients/<client-id>
//! 8. /config/clients/<default>

use std::collections::BTreeMap;

use super::entity::QuotaEntity;

/// Every quota in the metadata image: entity to key to value.
pub type ClientQuotaMap = BTreeMap<QuotaEntity, BTreeMap<String, f64>>;

/// The sensor a request records into: (user, client id), either possibly empty.
pub type MetricTags = (String, String);

fn has(
    quotas: &ClientQuotaMap,
    key: &str,
    user: Option<Option<&str>>,
    client: Option<Option<&str>>,
) -> bool {
    quota(quotas, key, user, client).is_some()
}

fn quota(
    quotas: &ClientQuotaMap,
    key: &str,
    user: Option<Option<&str>>,
    client: Option<Option<&str>>,
) -> Option<f64> {
    quotas
        .get(&QuotaEntity::user_client(user, client))
        .and_then(|values| values.get(key))
        .copied()
}

/// Kafka's `quotaMetricTags`: the (user, client-id) pair whose sensor this request uses.
pub fn metric_tags(quotas: &ClientQuotaMap, key: &str, user: &str, client_id: &str) -> MetricTags {
    let both = || (user.to_string(), client_id.to_string());
    let user_only = || (user.to_string(), String::new());
    let (u, c) = (Some(Some(user)), Some(Some(client_id)));
    let (default_user, default_client) = (Some(None), Some(None));
    if has(quotas, key, u, c) || has(quotas, key, u, default_client) {
        both()
    } else if has(quotas, key, u, None) {
        user_only()
    } else if has(quotas, key, default_user, c) || has(quotas, key, default_user, default_client) {
        both()
    } else if has(quotas, key, default_user, None) {
        user_only()
    } else {
        (String::new(), client_id.to_string())
    }
}

/// Kafka's `quotaLimit`: the quota for a sensor's tags, `None` for unlimited.
pub fn quota_limit(quotas: &ClientQuotaMap, key: &str, tags: &MetricTags) -> Option<f64> {
    let (user, client_id) = (tags.0.as_str(), tags.1.as_str());
    let (u, c) = (Some(Some(user)), Some(Some(client_id)));
    let (default_user, default_client) = (Some(None), Some(None));
    let q = |user, client| quota(quotas, key, user, client);
    if !user.is_empty() && !client_id.is_empty() {
        q(u, c)
            .or_else(|| q(u, default_client))
            .or_else(|| q(default_user, c))
            .or_else(|| q(default_user, default_client))
    } else if !user.is_empty() {
        q(u, None).or_else(|| q(default_user, None))
    } else if !client_id.is_empty() {
        q(None, c).or_else(|| q(None, default_client))
    } else {
        None
    }
}

/// Whether any entity has a quota of this type (Kafka records nothing until one does).
pub fn any_quota(quotas: &ClientQuotaMap, key: &str) -> bool {
    quotas.values().any(|values| values.contains_key(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::entity::PRODUCER_BYTE_RATE as K;

    fn set(
        quotas: &mut ClientQuotaMap,
        user: Option<Option<&str>>,
        client: Option<Option<&str>>,
        v: f64,
    ) {
        quotas
            .entry(QuotaEntity::user_client(user, client))
            .or_default()
            .insert(K.to_string(), v);
    }

    fn resolve(quotas: &ClientQuotaMap, user: &str, client: &str) -> (MetricTags, Option<f64>) {
        let tags = metric_tags(quotas, K, user, client);
        let limit = quota_limit(quotas, K, &tags);
        (tags, limit)
    }

    fn tags(u: &str, c: &str) -> MetricTags {
        (u.to_string(), c.to_string())
    }

    #[test]
    fn the_most_specific_entity_wins_in_kafkas_order() {
        let mut q = ClientQuotaMap::new();
        assert_eq!(resolve(&q, "alice", "app"), (tags("", "app"), None));
        // Added from the least specific (8) to the most (1); each one takes over.
        type Step<'a> = (
            Option<Option<&'a str>>,
            Option<Option<&'a str>>,
            f64,
            MetricTags,
        );
        let steps: [Step; 8] = [
            (None, Some(None), 8.0, tags("", "app")),
            (None, Some(Some("app")), 7.0, tags("", "app")),
            (Some(None), None, 6.0, tags("alice", "")),
            (Some(None), Some(None), 5.0, tags("alice", "app")),
            (Some(None), Some(Some("app")), 4.0, tags("alice", "app")),
            (Some(Some("alice")), None, 3.0, tags("alice", "")),
            (Some(Some("alice")), Some(None), 2.0, tags("alice", "app")),
            (
                Some(Some("alice")),
                Some(Some("app")),
                1.0,
                tags("alice", "app"),
            ),
        ];
        for (user, client, value, expected_tags) in steps {
            set(&mut q, user, client, value);
            assert_eq!(
                resolve(&q, "alice", "app"),
                (expected_tags, Some(value)),
                "after {value}"
            );
        }
        // Another user and client fall back to the defaults.
        assert_eq!(
            resolve(&q, "bob", "other"),
            (tags("bob", "other"), Some(5.0))
        );
    }

    #[test]
    fn a_user_quota_is_shared_by_all_its_client_ids() {
        let mut q = ClientQuotaMap::new();
        set(&mut q, Some(Some("alice")), None, 100.0);
        assert_eq!(resolve(&q, "alice", "a"), (tags("alice", ""), Some(100.0)));
        assert_eq!(resolve(&q, "alice", "b"), (tags("alice", ""), Some(100.0)));
        assert_eq!(resolve(&q, "bob", "a"), (tags("", "a"), None));
        assert!(any_quota(&q, K));
        assert!(!any_quota(&q, "consumer_byte_rate"));
    }

    #[test]
    fn a_client_without_an_id_matches_only_user_entities() {
        let mut q = ClientQuotaMap::new();
        set(&mut q, None, Some(None), 10.0);
        // Kafka's empty client id selects no client-id entity, not even the default.
        assert_eq!(resolve(&q, "alice", ""), (tags("", ""), None));
    }
}
