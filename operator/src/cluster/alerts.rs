//! The PrometheusRule (monitoring.coreos.com/v1) of one KafkaCluster: the chart's rule
//! file (charts/strom-operator/files/prometheus-rules.yaml, the only copy of the rules)
//! narrowed to this cluster's pods and volumes. Created when the cluster has metrics on
//! and the Prometheus Operator's CRD is served; deleted when metrics are turned off.

use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{json, Value};

use super::names::{self, FIELD_MANAGER};
use crate::crd::KafkaCluster;

/// The rule file the chart ships.
pub const RULES: &str = include_str!("../../../charts/strom-operator/files/prometheus-rules.yaml");
/// The selectors the rule file is written with, matching every Strom cluster.
pub const ANY_BROKER_POD: &str = r#"pod=~".+-broker-[0-9]+""#;
pub const ANY_BROKER_VOLUME: &str = r#"persistentvolumeclaim=~"data-.+-broker-[0-9]+""#;

const GROUP_VERSION: &str = "monitoring.coreos.com/v1";
const PLURAL: &str = "prometheusrules";

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("the rule file is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

pub fn rule_name(cluster: &str) -> String {
    format!("{cluster}-kafka-rules")
}

/// Kubernetes names are lower-case letters, digits, `-` and `.`; only `.` means something
/// in a regular expression.
fn regex_literal(s: &str) -> String {
    s.replace('.', "\\\\.")
}

/// The rule groups with every selector narrowed to one cluster's pods and volumes.
pub fn scoped_rules(namespace: &str, cluster: &str) -> Result<Value, RulesError> {
    let c = regex_literal(cluster);
    let pod = format!(r#"namespace="{namespace}",pod=~"{c}-broker-[0-9]+""#);
    let volume =
        format!(r#"namespace="{namespace}",persistentvolumeclaim=~"data-{c}-broker-[0-9]+""#);
    let text = RULES
        .replace(ANY_BROKER_POD, &pod)
        .replace(ANY_BROKER_VOLUME, &volume);
    Ok(serde_yaml::from_str(&text)?)
}

/// The PrometheusRule object for `cluster`.
pub fn prometheus_rule(cluster: &KafkaCluster) -> Result<Value, RulesError> {
    let name = names::cluster_name(cluster);
    let namespace = names::namespace(cluster);
    let groups = scoped_rules(&namespace, &name)?;
    let owner = cluster.controller_owner_ref(&()).map(|mut r| {
        r.block_owner_deletion = Some(true);
        vec![r]
    });
    Ok(json!({
        "apiVersion": GROUP_VERSION,
        "kind": "PrometheusRule",
        "metadata": {
            "name": rule_name(&name),
            "namespace": namespace,
            "labels": names::labels(&name),
            "ownerReferences": owner,
        },
        "spec": groups,
    }))
}

fn api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("monitoring.coreos.com", "v1", "PrometheusRule"),
        PLURAL,
    )
}

/// Whether the API server serves PrometheusRules (discovery of the group version).
pub async fn served(client: &Client) -> Result<bool, kube::Error> {
    match client.list_api_group_resources(GROUP_VERSION).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == PLURAL)),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

/// What to do with the cluster's PrometheusRule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    Apply,
    Delete,
    Nothing,
}

/// Pure: rules when the operator may create them, metrics are on and the CRD is served;
/// removal when metrics are off (or the operator's rules are turned off) and the CRD is
/// served; nothing without the CRD.
pub fn plan(enabled_in_operator: bool, metrics_on: bool, crd_served: bool) -> Plan {
    match (crd_served, enabled_in_operator && metrics_on) {
        (false, _) => Plan::Nothing,
        (true, true) => Plan::Apply,
        (true, false) => Plan::Delete,
    }
}

/// Applies or removes the rule; returns what changed, for the Applied event.
pub async fn reconcile(
    client: &Client,
    cluster: &KafkaCluster,
    enabled_in_operator: bool,
) -> Result<Option<String>, kube::Error> {
    let crd = served(client).await?;
    let name = rule_name(&cluster.name_any());
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &names::namespace(cluster), &api_resource());
    match plan(enabled_in_operator, cluster.spec.metrics.enabled, crd) {
        Plan::Nothing => Ok(None),
        Plan::Apply => {
            let desired = match prometheus_rule(cluster) {
                Ok(d) => d,
                Err(e) => {
                    // The file is compiled in and tested; this cannot happen at run time.
                    tracing::error!(error = %e, "bad built-in rule file");
                    return Ok(None);
                }
            };
            if let Some(live) = api.get_opt(&name).await? {
                let live = serde_json::to_value(&live).unwrap_or(Value::Null);
                if crate::apply::contains(&live, &desired) {
                    return Ok(None);
                }
            }
            let params = PatchParams::apply(FIELD_MANAGER).force();
            api.patch(&name, &params, &Patch::Apply(&desired)).await?;
            Ok(Some(format!("PrometheusRule {name}")))
        }
        Plan::Delete => {
            if api.get_opt(&name).await?.is_none() {
                return Ok(None);
            }
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => Ok(Some(format!("deleted PrometheusRule {name}"))),
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
                Err(e) => Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_names_a_selector_the_operator_narrows() {
        let groups: Value = serde_yaml::from_str(RULES).unwrap();
        let rules = groups["groups"][0]["rules"].as_array().unwrap();
        assert!(rules.len() >= 9, "{rules:?}");
        for rule in rules {
            let expr = rule["expr"].as_str().unwrap();
            assert!(
                expr.contains(ANY_BROKER_POD) || expr.contains(ANY_BROKER_VOLUME),
                "{} selects no Strom pod or volume: {expr}",
                rule["alert"]
            );
        }
        let names: Vec<&str> = rules.iter().map(|r| r["alert"].as_str().unwrap()).collect();
        for strimzi in [
            "UnderReplicatedPartitions",
            "UnderMinIsrPartitionCount",
            "OfflinePartitions",
            "AbnormalControllerState",
            "OfflineLogDirectoryCount",
            "KafkaRunningOutOfSpace",
            "TooLargeConsumerGroupLag",
            "ScrapeProblem",
            "KafkaBrokerContainersDown",
        ] {
            assert!(names.contains(&strimzi), "{strimzi} missing: {names:?}");
        }
    }

    #[test]
    fn scoped_rules_select_one_cluster_only() {
        let groups = scoped_rules("kafka", "my.cluster").unwrap();
        let text = serde_json::to_string(&groups).unwrap();
        assert!(!text.contains(".+-broker"), "{text}");
        for rule in groups["groups"][0]["rules"].as_array().unwrap() {
            let expr = rule["expr"].as_str().unwrap();
            assert!(
                expr.contains(r#"namespace="kafka",pod=~"my\\.cluster-broker-[0-9]+""#)
                    || expr.contains(
                        r#"namespace="kafka",persistentvolumeclaim=~"data-my\\.cluster-broker-[0-9]+""#
                    ),
                "{expr}"
            );
        }
    }

    #[test]
    fn the_object_is_owned_by_the_cluster() {
        let c = crate::fixtures::cluster(json!({"replicas": 3}));
        let rule = prometheus_rule(&c).unwrap();
        assert_eq!(rule["metadata"]["name"], "my-cluster-kafka-rules");
        assert_eq!(rule["metadata"]["namespace"], "kafka");
        assert_eq!(rule["metadata"]["ownerReferences"][0]["uid"], "0000-1111");
        assert_eq!(rule["spec"]["groups"][0]["name"], "strom-kafka");
    }

    #[test]
    fn plan_follows_metrics_and_the_crd() {
        assert_eq!(plan(true, true, true), Plan::Apply);
        assert_eq!(plan(true, false, true), Plan::Delete);
        assert_eq!(plan(false, true, true), Plan::Delete);
        assert_eq!(plan(true, true, false), Plan::Nothing);
        assert_eq!(plan(false, false, false), Plan::Nothing);
    }
}
