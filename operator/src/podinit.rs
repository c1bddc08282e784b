//! `strom-operator pod-init`: the init container of every broker pod. One StatefulSet
//! template serves every broker, so this picks the pod's own server.properties from the
//! ConfigMap by ordinal, fills in what only the node knows (its IP for nodeport listeners,
//! its zone for `broker.rack`) and writes the file strom-broker starts with.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Node;
use kube::{Api, Client};

use crate::cluster::names;

/// Token in advertised addresses of nodeport listeners, replaced by the node's IP.
pub const NODE_IP_TOKEN: &str = "${STROM_NODE_IP}";

#[derive(thiserror::Error, Debug)]
pub enum PodInitError {
    #[error("pod name {0:?} does not end in a StatefulSet ordinal")]
    NoOrdinal(String),
    #[error("reading {path}: {source} (is the ConfigMap up to date with spec.replicas?)")]
    MissingConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the configuration advertises the node's IP but NODE_IP is not set")]
    NoNodeIp,
    #[error("rack awareness needs NODE_NAME")]
    NoNodeName,
    #[error("node {node} has no label {key}, so broker.rack cannot be set")]
    NoRackLabel { node: String, key: String },
    #[error("reading node {node} from the Kubernetes API: {source}")]
    Api { node: String, source: kube::Error },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Inputs from the downward API.
pub struct PodEnv {
    pub pod_name: String,
    pub node_name: Option<String>,
    pub node_ip: Option<String>,
}

impl PodEnv {
    pub fn from_env() -> PodEnv {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        PodEnv {
            pod_name: var("POD_NAME")
                .or_else(|| var("HOSTNAME"))
                .unwrap_or_default(),
            node_name: var("NODE_NAME"),
            node_ip: var("NODE_IP"),
        }
    }
}

/// The broker ordinal from a StatefulSet pod name (`my-cluster-broker-2` is 2).
pub fn ordinal(pod_name: &str) -> Result<i32, PodInitError> {
    pod_name
        .rsplit_once('-')
        .and_then(|(_, n)| n.parse::<i32>().ok())
        .filter(|n| *n >= 0)
        .ok_or_else(|| PodInitError::NoOrdinal(pod_name.to_string()))
}

/// The broker's final properties: the rendered file with node facts filled in.
pub fn compose(
    template: &str,
    node_ip: Option<&str>,
    rack: Option<&str>,
) -> Result<String, PodInitError> {
    let mut out = if template.contains(NODE_IP_TOKEN) {
        template.replace(NODE_IP_TOKEN, node_ip.ok_or(PodInitError::NoNodeIp)?)
    } else {
        template.to_string()
    };
    if let Some(rack) = rack {
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!(
            "# From the node's topology label.\nbroker.rack={rack}\n"
        ));
    }
    Ok(out)
}

/// Runs the init step: read, fill in, write atomically.
pub async fn run(
    config_dir: &Path,
    output: &Path,
    rack_key: Option<&str>,
    env: &PodEnv,
) -> Result<(), PodInitError> {
    let ordinal = ordinal(&env.pod_name)?;
    let path = config_dir.join(names::broker_properties_key(ordinal));
    let template = std::fs::read_to_string(&path)
        .map_err(|source| PodInitError::MissingConfig { path, source })?;
    let rack = match rack_key {
        Some(key) => Some(
            node_label(
                env.node_name.as_deref().ok_or(PodInitError::NoNodeName)?,
                key,
            )
            .await?,
        ),
        None => None,
    };
    let properties = compose(&template, env.node_ip.as_deref(), rack.as_deref())?;
    let tmp = output.with_extension("tmp");
    let write = |p: &Path, data: &str| std::fs::write(p, data);
    write(&tmp, &properties)
        .and_then(|_| std::fs::rename(&tmp, output))
        .map_err(|source| PodInitError::Write {
            path: output.to_path_buf(),
            source,
        })?;
    tracing::info!(ordinal, file = %output.display(), rack = ?rack, "broker configuration written");
    Ok(())
}

async fn node_label(node: &str, key: &str) -> Result<String, PodInitError> {
    let api_error = |source| PodInitError::Api {
        node: node.to_string(),
        source,
    };
    let client = Client::try_default().await.map_err(api_error)?;
    let nodes: Api<Node> = Api::all(client);
    let found = nodes.get(node).await.map_err(api_error)?;
    found
        .metadata
        .labels
        .and_then(|mut labels| labels.remove(key))
        .filter(|v| !v.is_empty())
        .ok_or_else(|| PodInitError::NoRackLabel {
            node: node.to_string(),
            key: key.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinal_from_pod_name() {
        assert_eq!(ordinal("my-cluster-broker-0").ok(), Some(0));
        assert_eq!(ordinal("my-cluster-broker-12").ok(), Some(12));
        assert!(matches!(ordinal("broker"), Err(PodInitError::NoOrdinal(_))));
        assert!(matches!(
            ordinal("my-cluster-broker-x"),
            Err(PodInitError::NoOrdinal(_))
        ));
    }

    #[test]
    fn node_ip_and_rack_are_filled_in() {
        let template = "node.id=1\nadvertised.listeners=EXT://${STROM_NODE_IP}:31001";
        let out = compose(template, Some("10.0.0.7"), Some("zone-a")).expect("composes");
        assert!(out.contains("EXT://10.0.0.7:31001"));
        assert!(out.ends_with("broker.rack=zone-a\n"));
        assert!(matches!(
            compose(template, None, None),
            Err(PodInitError::NoNodeIp)
        ));
        assert_eq!(
            compose("node.id=1\n", None, None).expect("no token needs no IP"),
            "node.id=1\n"
        );
    }

    #[tokio::test]
    async fn picks_the_pods_own_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("broker-0.properties"), "node.id=0\n").expect("write");
        std::fs::write(dir.path().join("broker-1.properties"), "node.id=1\n").expect("write");
        let out = dir.path().join("server.properties");
        let env = PodEnv {
            pod_name: "c-broker-1".into(),
            node_name: None,
            node_ip: None,
        };
        run(dir.path(), &out, None, &env)
            .await
            .expect("pod-init runs");
        assert_eq!(std::fs::read_to_string(&out).expect("read"), "node.id=1\n");

        let env = PodEnv {
            pod_name: "c-broker-5".into(),
            node_name: None,
            node_ip: None,
        };
        let err = run(dir.path(), &out, None, &env)
            .await
            .expect_err("no file for broker 5");
        assert!(err.to_string().contains("broker-5.properties"), "{err}");
    }
}
