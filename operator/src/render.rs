//! `strom-operator render --file cluster.yaml`: every object the operator would create for a
//! KafkaCluster, as multi-document YAML — for review, for GitOps diffs, and for validating
//! the operator's output offline against the Kubernetes schemas.

use serde::Serialize;

use crate::cluster::config::ExternalAddresses;
use crate::cluster::resources::{desired, RenderOptions};
use crate::cluster::validate::validate;
use crate::crd::KafkaCluster;

#[derive(thiserror::Error, Debug)]
pub enum RenderError {
    #[error("not a KafkaCluster: {0}")]
    Parse(#[from] serde_yaml::Error),
    #[error("the operator would refuse this KafkaCluster: {0}")]
    Refused(String),
}

/// Renders the objects for `yaml` (one KafkaCluster). Nodeport and loadbalancer listeners
/// advertise pod addresses here, as their Services do not exist yet.
pub fn render(yaml: &str, options: &RenderOptions) -> Result<String, RenderError> {
    let mut cluster: KafkaCluster = serde_yaml::from_str(yaml)?;
    if cluster.metadata.namespace.is_none() {
        cluster.metadata.namespace = Some("default".into());
    }
    if cluster.metadata.uid.is_none() {
        // Owner references need a uid; the API server assigns the real one.
        cluster.metadata.uid = Some("00000000-0000-0000-0000-000000000000".into());
    }
    let validation = validate(&cluster.spec);
    if !validation.errors.is_empty() {
        let reasons: Vec<String> = validation
            .errors
            .iter()
            .map(|p| format!("{}: {}", p.reason, p.message))
            .collect();
        return Err(RenderError::Refused(reasons.join("; ")));
    }
    let d = desired(&cluster, options, &ExternalAddresses::default());
    let mut out = String::new();
    push(&mut out, &d.service_account)?;
    push(&mut out, &d.config_map)?;
    push(&mut out, &d.headless_service)?;
    push(&mut out, &d.bootstrap_service)?;
    for svc in &d.external_services {
        push(&mut out, svc)?;
    }
    push(&mut out, &d.pod_disruption_budget)?;
    if let Some(policy) = &d.network_policy {
        push(&mut out, policy)?;
    }
    if let Some(binding) = &d.rack_binding {
        push(&mut out, binding)?;
    }
    push(&mut out, &d.stateful_set)?;
    Ok(out)
}

fn push<T: Serialize>(out: &mut String, object: &T) -> Result<(), RenderError> {
    out.push_str("---\n");
    out.push_str(&serde_yaml::to_string(object)?);
    Ok(())
}
