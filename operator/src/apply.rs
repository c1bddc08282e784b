//! Server-side apply that writes only when something differs, so a resync of an unchanged
//! resource makes no writes at all (no resourceVersion churn, no audit noise).

use std::fmt::Debug;

use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::cluster::names::FIELD_MANAGER;

/// A typed Kubernetes object the operator can apply.
pub trait Object:
    Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug
{
}
impl<K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug> Object for K {}

/// What an apply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Unchanged,
    Applied,
}

/// Applies `desired` under the operator's field manager unless the live object already has
/// every field `desired` sets, with the same value. Returns the live (or applied) object.
pub async fn apply<K: Object>(api: &Api<K>, desired: &K) -> Result<(K, Outcome), kube::Error> {
    let name = desired.name_any();
    if let Some(live) = api.get_opt(&name).await? {
        if contains(&to_value(&live), &to_value(desired)) {
            return Ok((live, Outcome::Unchanged));
        }
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let applied = api.patch(&name, &params, &Patch::Apply(desired)).await?;
    Ok((applied, Outcome::Applied))
}

/// Deletes `name` if it exists; true when something was deleted.
pub async fn delete_if_present<K: Object>(api: &Api<K>, name: &str) -> Result<bool, kube::Error> {
    if api.get_opt(name).await?.is_none() {
        return Ok(false);
    }
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

fn to_value<K: Serialize>(object: &K) -> Value {
    // Typed Kubernetes objects always serialize; a failure here is a bug in k8s-openapi.
    serde_json::to_value(object).expect("Kubernetes objects serialize to JSON")
}

/// Whether `live` holds everything `desired` says. The API server adds defaults and status,
/// so extra fields in `live` are fine; lists must match item by item.
pub fn contains(live: &Value, desired: &Value) -> bool {
    match (live, desired) {
        (Value::Object(live), Value::Object(desired)) => desired
            .iter()
            .all(|(k, d)| live.get(k).is_some_and(|l| contains(l, d)) || is_empty(d)),
        (Value::Array(live), Value::Array(desired)) => {
            live.len() == desired.len() && live.iter().zip(desired).all(|(l, d)| contains(l, d))
        }
        (Value::Number(l), Value::Number(d)) => l.as_f64() == d.as_f64(),
        (l, d) => l == d,
    }
}

/// Empty maps and lists, and nulls, are what the API server drops on the way in.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn live_with_defaults_contains_desired() {
        let desired = json!({"spec": {"ports": [{"port": 9092, "name": "plain"}], "labels": {}}});
        let live = json!({"spec": {"ports": [{"port": 9092, "name": "plain", "protocol": "TCP"}], "clusterIP": "10.0.0.1"}, "status": {}});
        assert!(contains(&live, &desired));
    }

    #[test]
    fn a_changed_or_missing_value_differs() {
        let desired = json!({"spec": {"replicas": 3, "ports": [{"port": 9092}]}});
        assert!(!contains(
            &json!({"spec": {"replicas": 1, "ports": [{"port": 9092}]}}),
            &desired
        ));
        assert!(!contains(&json!({"spec": {"replicas": 3}}), &desired));
        assert!(!contains(
            &json!({"spec": {"replicas": 3, "ports": [{"port": 9092}, {"port": 9093}]}}),
            &desired
        ));
    }
}
