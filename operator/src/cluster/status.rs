//! KafkaCluster status from what the API server reports: pure functions, so each outcome
//! (refused spec, waiting for addresses, brokers starting, ready) is tested directly.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::config::ExternalAddresses;
use super::names;
use super::validate::Problem;
use crate::conditions::{self, READY};
use crate::crd::cluster::{ListenerStatus, ListenerType};
use crate::crd::{KafkaCluster, KafkaClusterStatus};

/// Status for a spec the operator will not apply: Ready=False with the reason; the
/// observed fields keep what was last seen, since nothing changed in the cluster.
pub fn refused(
    cluster: &KafkaCluster,
    reason: &str,
    message: &str,
    warnings: &[Problem],
    now: Timestamp,
) -> KafkaClusterStatus {
    with_conditions(
        cluster,
        base(cluster),
        Some((reason, message.to_string())),
        "",
        warnings,
        now,
    )
}

/// Status while the operator waits for something outside its control (a load balancer).
pub fn pending(
    cluster: &KafkaCluster,
    reason: &str,
    message: &str,
    warnings: &[Problem],
    now: Timestamp,
) -> KafkaClusterStatus {
    refused(cluster, reason, message, warnings, now)
}

/// Status from the applied StatefulSet: Ready when every desired broker is ready on the
/// current StatefulSet generation.
pub fn observed(
    cluster: &KafkaCluster,
    set: &StatefulSet,
    external_services: &[Service],
    warnings: &[Problem],
    now: Timestamp,
) -> KafkaClusterStatus {
    let name = cluster.name_any();
    let mut status = base(cluster);
    let set_status = set.status.clone().unwrap_or_default();
    status.replicas = set_status.replicas;
    status.ready_replicas = set_status.ready_replicas.unwrap_or(0);
    status.selector = Some(names::selector_string(&name));
    status.version = image_version(set);
    status.listeners = listener_addresses(cluster, external_services);

    let desired = cluster.spec.replicas;
    let current =
        set_status.observed_generation.unwrap_or(0) >= set.metadata.generation.unwrap_or(0);
    let message = format!("{}/{desired} brokers ready", status.ready_replicas);
    let problem = if status.ready_replicas < desired {
        Some(("BrokersNotReady", message.clone()))
    } else if !current {
        Some((
            "StatefulSetUpdating",
            "the StatefulSet controller has not seen the latest spec yet".to_string(),
        ))
    } else {
        None
    };
    // No warning from the StatefulSet's updatedReplicas: with per-broker hashes in the
    // template, a scale or one broker's change makes every older pod "not updated" though
    // nothing about it changed, and in-place updates never recreate pods. The roller
    // decides which brokers need a restart and says so in the RollingRestart condition.
    with_conditions(cluster, status, problem, &message, warnings, now)
}

/// The previous status with its observed fields, or an empty one.
fn base(cluster: &KafkaCluster) -> KafkaClusterStatus {
    let mut status = cluster.status.clone().unwrap_or_default();
    status.selector = Some(names::selector_string(&cluster.name_any()));
    status
}

fn with_conditions(
    cluster: &KafkaCluster,
    mut status: KafkaClusterStatus,
    problem: Option<(&str, String)>,
    ready_message: &str,
    warnings: &[Problem],
    now: Timestamp,
) -> KafkaClusterStatus {
    let warnings: Vec<(&str, String)> = warnings
        .iter()
        .map(|w| (w.reason, w.message.clone()))
        .collect();
    let decided = conditions::decide(problem, ready_message, &warnings);
    let previous = cluster
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or(&[]);
    status.conditions = conditions::merge(previous, decided, cluster.metadata.generation, now);
    // The roller owns RollingRestart; a reconcile that stops before the roller keeps it.
    status.conditions.extend(
        previous
            .iter()
            .filter(|c| c.type_ == conditions::ROLLING_RESTART)
            .cloned(),
    );
    status.observed_generation = cluster.metadata.generation;
    status
}

/// Not-ready reasons that are ordinary progress (brokers starting), not worth an Event.
pub fn is_progress(reason: &str) -> bool {
    matches!(
        reason,
        "BrokersNotReady" | "StatefulSetUpdating" | "WaitingForLoadBalancer"
    )
}

/// (ready, reason, message) of the Ready condition, to tell a transition from a resync.
pub fn ready_summary(status: &KafkaClusterStatus) -> Option<(bool, String, String)> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == READY)
        .map(|c| (c.status == "True", c.reason.clone(), c.message.clone()))
        .map(|(ready, reason, message)| {
            (
                ready,
                reason,
                if ready {
                    message
                } else {
                    message.chars().take(200).collect()
                },
            )
        })
}

/// The version the brokers run: the image tag.
fn image_version(set: &StatefulSet) -> Option<String> {
    let image = set
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == "broker")?
        .image
        .clone()?;
    // A digest names no version; a registry port (`host:5000/strom`) is not a tag.
    let name = image
        .split_once('@')
        .map_or(image.as_str(), |(name, _)| name);
    let tag = name.rsplit_once(':').map(|(_, tag)| tag)?;
    (!tag.contains('/') && !image.contains('@')).then(|| tag.to_string())
}

/// Bootstrap address per listener. Internal listeners use the bootstrap Service's DNS name;
/// nodeport listeners any node's address with the bootstrap node port; load balancers
/// their ingress address.
fn listener_addresses(
    cluster: &KafkaCluster,
    external_services: &[Service],
) -> Vec<ListenerStatus> {
    let name = cluster.name_any();
    let ns = names::namespace(cluster);
    cluster
        .spec
        .effective_listeners()
        .iter()
        .map(|l| {
            let bootstrap = |svc: &str| external_services.iter().find(|s| s.name_any() == svc);
            let address = match l.kind {
                ListenerType::Internal => Some(format!(
                    "{}.{ns}.svc:{}",
                    names::bootstrap_service(&name),
                    l.port
                )),
                ListenerType::Nodeport => {
                    bootstrap(&names::external_bootstrap_service(&name, &l.name))
                        .and_then(node_port)
                        .map(|port| format!("<node-address>:{port}"))
                }
                ListenerType::Loadbalancer => {
                    bootstrap(&names::external_bootstrap_service(&name, &l.name))
                        .and_then(ingress_host)
                        .map(|host| format!("{host}:{}", l.port))
                }
            };
            ListenerStatus {
                name: l.name.clone(),
                bootstrap_servers: address.unwrap_or_else(|| "pending".into()),
            }
        })
        .collect()
}

fn node_port(service: &Service) -> Option<i32> {
    service.spec.as_ref()?.ports.as_ref()?.first()?.node_port
}

fn ingress_host(service: &Service) -> Option<String> {
    let ingress = service
        .status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .first()?
        .clone();
    ingress.ip.or(ingress.hostname)
}

/// What each broker advertises on its nodeport and loadbalancer listeners, from the
/// per-broker Services as applied. A missing load-balancer address yields a message
/// naming the Services still waiting.
pub fn external_addresses(
    cluster: &KafkaCluster,
    services: &[Service],
) -> (ExternalAddresses, Option<String>) {
    let name = cluster.name_any();
    let mut addresses = ExternalAddresses::default();
    let mut waiting = Vec::new();
    for listener in cluster.spec.effective_listeners() {
        for ordinal in 0..cluster.spec.replicas {
            let svc_name = names::external_broker_service(&name, &listener.name, ordinal);
            let svc = services.iter().find(|s| s.name_any() == svc_name);
            let address = match (listener.kind, svc) {
                (ListenerType::Internal, _) => continue,
                // pod-init replaces the token with the node's IP (downward API status.hostIP).
                (ListenerType::Nodeport, Some(svc)) => {
                    node_port(svc).map(|p| ("${STROM_NODE_IP}".to_string(), p))
                }
                (ListenerType::Loadbalancer, Some(svc)) => {
                    ingress_host(svc).map(|h| (h, listener.port))
                }
                (_, None) => None,
            };
            match address {
                Some(a) => {
                    addresses
                        .by_broker
                        .insert((listener.name.clone(), ordinal), a);
                }
                None => waiting.push(svc_name),
            }
        }
    }
    let message = (!waiting.is_empty())
        .then(|| format!("waiting for addresses of Services {}", waiting.join(", ")));
    (addresses, message)
}

/// A change the StatefulSet API would reject: its volume claim templates are immutable, so
/// a new storage size or a switch between ephemeral and persistent storage is refused
/// before anything is applied.
pub fn immutable_change(desired: &StatefulSet, live: Option<&StatefulSet>) -> Option<Problem> {
    let live = live?;
    let claims = |s: &StatefulSet| {
        s.spec
            .as_ref()
            .and_then(|spec| spec.volume_claim_templates.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|c| {
                let spec = c.spec.unwrap_or_default();
                let size = spec
                    .resources
                    .and_then(|r| r.requests)
                    .and_then(|r| r.get("storage").cloned());
                (c.metadata.name, size.map(|q| q.0), spec.storage_class_name)
            })
            .collect::<Vec<_>>()
    };
    let (want, have) = (claims(desired), claims(live));
    if want == have {
        return None;
    }
    // The API server fills in the default class; only a class we set can differ.
    let same_but_class = want.len() == have.len()
        && want
            .iter()
            .zip(&have)
            .all(|(w, h)| w.0 == h.0 && w.1 == h.1 && (w.2.is_none() || w.2 == h.2));
    if same_but_class {
        return None;
    }
    Some(Problem {
        reason: "StorageChangeNotSupported",
        message: format!(
            "the brokers' volume claims are {} but the spec asks for {}; StatefulSet claim templates cannot change, so storage stays as it is",
            describe_claims(&have),
            describe_claims(&want)
        ),
    })
}

fn describe_claims(claims: &[(Option<String>, Option<String>, Option<String>)]) -> String {
    if claims.is_empty() {
        return "ephemeral (no claims)".into();
    }
    claims
        .iter()
        .map(|(name, size, class)| {
            format!(
                "{} {}{}",
                name.as_deref().unwrap_or("?"),
                size.as_deref().unwrap_or("?"),
                class
                    .as_deref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::StatefulSetSpec;
    use k8s_openapi::api::core::v1::{
        Container, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSpec, PodTemplateSpec,
        VolumeResourceRequirements,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn set(image: &str, claim: Option<(&str, Option<&str>)>) -> StatefulSet {
        let claims = claim.map(|(size, class)| {
            vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("data".into()),
                    ..Default::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    storage_class_name: class.map(String::from),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some([("storage".to_string(), Quantity(size.into()))].into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]
        });
        StatefulSet {
            spec: Some(StatefulSetSpec {
                template: PodTemplateSpec {
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "broker".into(),
                            image: Some(image.into()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                volume_claim_templates: claims,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn version_is_the_image_tag() {
        assert_eq!(
            image_version(&set("ghcr.io/strom-dev/strom:0.2.0", None)).as_deref(),
            Some("0.2.0")
        );
        assert_eq!(image_version(&set("registry:5000/strom", None)), None);
        assert_eq!(
            image_version(&set("ghcr.io/strom-dev/strom:0.2.0@sha256:abcd", None)),
            None
        );
    }

    #[test]
    fn claim_templates_cannot_change() {
        let live = set("i", Some(("10Gi", Some("standard"))));
        assert!(
            immutable_change(&set("i", Some(("10Gi", None))), Some(&live)).is_none(),
            "server-filled default class"
        );
        assert!(
            immutable_change(&set("i", Some(("10Gi", None))), None).is_none(),
            "nothing live yet"
        );
        let resized =
            immutable_change(&set("i", Some(("20Gi", None))), Some(&live)).expect("resize refused");
        assert_eq!(resized.reason, "StorageChangeNotSupported");
        assert!(
            immutable_change(&set("i", None), Some(&live)).is_some(),
            "persistent to ephemeral refused"
        );
    }
}
