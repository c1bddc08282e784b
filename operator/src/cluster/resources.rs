//! Desired Kubernetes objects for a KafkaCluster: a pure function of the spec and the
//! observed external addresses, so it is tested without a cluster and applied as is with
//! server-side apply. `desired` assumes `validate()` found no errors.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort,
    EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    SecretVolumeSource, SecurityContext, Service, ServiceAccount, ServicePort, ServiceSpec, Volume,
    VolumeMount, VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;

use crate::certs::names as cert_names;
use crate::cluster::config::{
    broker_hashes, broker_properties, config_hash, encode_broker_hashes, ExternalAddresses,
};
use crate::cluster::{names, security};
use crate::crd::cluster::{
    KafkaCluster, KafkaClusterSpec, ListenerSpec, ListenerType, StorageType,
};

/// Operator-wide settings that shape the objects.
#[derive(Clone, Debug)]
pub struct RenderOptions {
    /// Broker image when the spec names neither `image` nor `version`, e.g.
    /// `ghcr.io/strom-dev/strom:0.1.0`. With `version` set, its tag is replaced.
    pub default_image: String,
}

/// Every object the operator applies for one cluster.
#[derive(Clone, Debug)]
pub struct Desired {
    pub service_account: ServiceAccount,
    pub config_map: ConfigMap,
    pub headless_service: Service,
    pub bootstrap_service: Service,
    /// Per nodeport/loadbalancer listener in spec order: its bootstrap Service, then one
    /// per broker by ordinal.
    pub external_services: Vec<Service>,
    pub stateful_set: StatefulSet,
    pub pod_disruption_budget: PodDisruptionBudget,
    pub network_policy: Option<NetworkPolicy>,
    /// Cluster-scoped, so not owned by the KafkaCluster: the finalizer deletes it.
    pub rack_binding: Option<ClusterRoleBinding>,
}

/// Label the StatefulSet controller puts on each pod; per-broker Services select by it.
const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// Annotation on the cluster-scoped rack binding naming the KafkaCluster it belongs to.
const OWNER_ANNOTATION: &str = "kafka.strom.dev/owner";
/// UID and GID of the distroless `nonroot` user the image runs as.
const NONROOT_ID: i64 = 65532;
/// Controlled shutdown moves partition leadership away before the broker stops.
const TERMINATION_GRACE_SECONDS: i64 = 120;

/// Port names of the operator's own ports, in pods and Services.
const REPLICATION_PORT_NAME: &str = "replication";
const CONTROLLER_PORT_NAME: &str = "controller";
const ADMIN_PORT_NAME: &str = "admin";

const CONFIG_VOLUME: &str = "config";
const RUNTIME_CONFIG_VOLUME: &str = "runtime-config";
const DATA_VOLUME: &str = "data";
const CLUSTER_CA_VOLUME: &str = "cluster-ca";
const CLIENTS_CA_VOLUME: &str = "clients-ca";
const BROKER_CERTS_VOLUME: &str = "broker-certs";

/// The broker image: `spec.image`, else the default with its tag replaced by
/// `spec.version`, else the default.
pub fn image(spec: &KafkaClusterSpec, opts: &RenderOptions) -> String {
    if let Some(image) = spec.image.as_deref().filter(|i| !i.trim().is_empty()) {
        return image.to_string();
    }
    match spec.version.as_deref().filter(|v| !v.trim().is_empty()) {
        Some(version) => format!("{}:{version}", repository(&opts.default_image)),
        None => opts.default_image.clone(),
    }
}

/// An image reference without tag or digest. A colon before the last `/` belongs to a
/// registry port (`localhost:5000/strom`), not a tag.
fn repository(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    let name_start = image.rfind('/').map_or(0, |i| i + 1);
    match image[name_start..].rfind(':') {
        Some(colon) => &image[..name_start + colon],
        None => image,
    }
}

/// Every object for a cluster whose spec passed `validate()`.
pub fn desired(
    cluster: &KafkaCluster,
    opts: &RenderOptions,
    external: &ExternalAddresses,
) -> Desired {
    Desired {
        service_account: service_account(cluster),
        config_map: config_map(cluster, external),
        headless_service: headless_service(cluster),
        bootstrap_service: bootstrap_service(cluster),
        external_services: external_services(cluster),
        stateful_set: stateful_set(cluster, opts, external),
        pod_disruption_budget: pod_disruption_budget(cluster),
        network_policy: network_policy(cluster),
        rack_binding: rack_binding(cluster),
    }
}

// --- metadata --------------------------------------------------------------------------

fn name(cluster: &KafkaCluster) -> String {
    names::cluster_name(cluster)
}

/// Metadata of a namespaced object: owned by the cluster, so Kubernetes garbage-collects
/// it with the KafkaCluster, and `blockOwnerDeletion` keeps foreground deletion honest.
pub(crate) fn meta(cluster: &KafkaCluster, object_name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(object_name),
        namespace: Some(names::namespace(cluster)),
        labels: Some(names::labels(&name(cluster))),
        owner_references: owner_reference(cluster).map(|r| vec![r]),
        ..ObjectMeta::default()
    }
}

fn owner_reference(cluster: &KafkaCluster) -> Option<OwnerReference> {
    cluster.controller_owner_ref(&()).map(|r| OwnerReference {
        block_owner_deletion: Some(true),
        ..r
    })
}

fn selector(cluster: &KafkaCluster) -> LabelSelector {
    LabelSelector {
        match_labels: Some(names::selector_labels(&name(cluster))),
        ..LabelSelector::default()
    }
}

// --- ports -----------------------------------------------------------------------------

/// Name of a listener's port in pods and Services. Port names are IANA service names:
/// at most 15 characters, and they must be unique per pod. Listener names are unique and
/// contain no `-`, so a short name is used as is; a long one (or one that would collide
/// with the operator's own port names) becomes a prefix plus `-<port>`, unique because
/// listener ports are.
pub fn listener_port_name(listener: &ListenerSpec) -> String {
    let name = listener.name.to_ascii_lowercase();
    let own = [REPLICATION_PORT_NAME, CONTROLLER_PORT_NAME, ADMIN_PORT_NAME];
    if name.len() <= 15 && !own.contains(&name.as_str()) {
        return name;
    }
    let suffix = format!("-{}", listener.port);
    let prefix: String = name.chars().take(15 - suffix.len()).collect();
    format!("{prefix}{suffix}")
}

/// (name, port) of every port a broker listens on: the operator's, then each listener's.
fn broker_ports(spec: &KafkaClusterSpec) -> Vec<(String, i32)> {
    let mut ports = vec![
        (REPLICATION_PORT_NAME.to_string(), names::REPLICATION_PORT),
        (CONTROLLER_PORT_NAME.to_string(), names::CONTROLLER_PORT),
        (ADMIN_PORT_NAME.to_string(), names::ADMIN_PORT),
    ];
    ports.extend(listener_ports(spec));
    ports
}

fn listener_ports(spec: &KafkaClusterSpec) -> Vec<(String, i32)> {
    spec.effective_listeners()
        .iter()
        .map(|l| (listener_port_name(l), l.port))
        .collect()
}

/// Protocol is spelled out: server-side apply keys port lists by port and protocol.
fn service_port((name, port): (String, i32)) -> ServicePort {
    ServicePort {
        name: Some(name),
        port,
        target_port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

// --- ServiceAccount, ConfigMap ---------------------------------------------------------

/// The token is mounted only when pod-init must read its node's labels for the rack.
fn service_account(cluster: &KafkaCluster) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(cluster, names::broker_set(&name(cluster))),
        automount_service_account_token: Some(cluster.spec.rack.is_some()),
        ..ServiceAccount::default()
    }
}

fn config_map(cluster: &KafkaCluster, external: &ExternalAddresses) -> ConfigMap {
    let data = (0..cluster.spec.replicas)
        .map(|i| {
            (
                names::broker_properties_key(i),
                broker_properties(cluster, i, external),
            )
        })
        .collect();
    ConfigMap {
        metadata: meta(cluster, names::config_map(&name(cluster))),
        data: Some(data),
        ..ConfigMap::default()
    }
}

// --- Services --------------------------------------------------------------------------

/// Gives each broker its stable DNS name. Not-ready addresses are published because the
/// brokers must find each other (controller quorum) before any of them is ready.
fn headless_service(cluster: &KafkaCluster) -> Service {
    Service {
        metadata: meta(cluster, names::headless_service(&name(cluster))),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(names::selector_labels(&name(cluster))),
            ports: Some(
                broker_ports(&cluster.spec)
                    .into_iter()
                    .map(service_port)
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// Bootstrap address inside the cluster for every listener, external ones included.
fn bootstrap_service(cluster: &KafkaCluster) -> Service {
    Service {
        metadata: meta(cluster, names::bootstrap_service(&name(cluster))),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(names::selector_labels(&name(cluster))),
            ports: Some(
                listener_ports(&cluster.spec)
                    .into_iter()
                    .map(service_port)
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn external_services(cluster: &KafkaCluster) -> Vec<Service> {
    let mut services = Vec::new();
    for listener in cluster.spec.effective_listeners() {
        let Some(service_type) = external_service_type(listener.kind) else {
            continue;
        };
        services.push(external_bootstrap_service(cluster, &listener, service_type));
        for ordinal in 0..cluster.spec.replicas {
            services.push(external_broker_service(
                cluster,
                &listener,
                service_type,
                ordinal,
            ));
        }
    }
    services
}

fn external_service_type(kind: ListenerType) -> Option<&'static str> {
    match kind {
        ListenerType::Internal => None,
        ListenerType::Nodeport => Some("NodePort"),
        ListenerType::Loadbalancer => Some("LoadBalancer"),
    }
}

fn external_bootstrap_service(
    cluster: &KafkaCluster,
    listener: &ListenerSpec,
    service_type: &str,
) -> Service {
    Service {
        metadata: meta(
            cluster,
            names::external_bootstrap_service(&name(cluster), &listener.name),
        ),
        spec: Some(ServiceSpec {
            type_: Some(service_type.into()),
            selector: Some(names::selector_labels(&name(cluster))),
            ports: Some(vec![service_port((
                listener_port_name(listener),
                listener.port,
            ))]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// One broker's own external Service: clients reach a partition leader through it. A
/// NodePort one keeps traffic on the broker's node (`Local`), since the broker advertises
/// its node's IP.
fn external_broker_service(
    cluster: &KafkaCluster,
    listener: &ListenerSpec,
    service_type: &str,
    ordinal: i32,
) -> Service {
    let mut pod_selector = names::selector_labels(&name(cluster));
    pod_selector.insert(POD_NAME_LABEL.into(), names::pod(&name(cluster), ordinal));
    let local = listener.kind == ListenerType::Nodeport;
    Service {
        metadata: meta(
            cluster,
            names::external_broker_service(&name(cluster), &listener.name, ordinal),
        ),
        spec: Some(ServiceSpec {
            type_: Some(service_type.into()),
            selector: Some(pod_selector),
            ports: Some(vec![service_port((
                listener_port_name(listener),
                listener.port,
            ))]),
            external_traffic_policy: local.then(|| "Local".into()),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

// --- StatefulSet -----------------------------------------------------------------------

/// `OnDelete`: the operator restarts brokers itself, one at a time and only when safe.
/// `Parallel`: brokers start together, since the quorum needs its voters up at once.
fn stateful_set(
    cluster: &KafkaCluster,
    opts: &RenderOptions,
    external: &ExternalAddresses,
) -> StatefulSet {
    StatefulSet {
        metadata: meta(cluster, names::broker_set(&name(cluster))),
        spec: Some(StatefulSetSpec {
            service_name: Some(names::headless_service(&name(cluster))),
            replicas: Some(cluster.spec.replicas),
            selector: selector(cluster),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".into()),
                ..StatefulSetUpdateStrategy::default()
            }),
            pod_management_policy: Some("Parallel".into()),
            template: pod_template(cluster, opts, external),
            volume_claim_templates: volume_claim_templates(&cluster.spec, &name(cluster)),
            persistent_volume_claim_retention_policy: claim_retention(&cluster.spec),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

fn pod_template(
    cluster: &KafkaCluster,
    opts: &RenderOptions,
    external: &ExternalAddresses,
) -> PodTemplateSpec {
    let spec = &cluster.spec;
    let overrides = spec.template.clone().unwrap_or_default();
    let image = image(spec, opts);
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels(cluster)),
            annotations: Some(pod_annotations(cluster, external)),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(names::broker_set(&name(cluster))),
            termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
            affinity: Some(
                overrides
                    .affinity
                    .unwrap_or_else(|| default_affinity(cluster)),
            ),
            tolerations: Some(overrides.tolerations).filter(|t| !t.is_empty()),
            priority_class_name: overrides.priority_class_name,
            security_context: Some(
                overrides
                    .security_context
                    .unwrap_or_else(default_pod_security_context),
            ),
            enable_service_links: Some(false),
            init_containers: Some(vec![pod_init_container(spec, &image)]),
            containers: vec![broker_container(spec, &image)],
            volumes: Some(volumes(cluster)),
            ..PodSpec::default()
        }),
    }
}

/// The user's labels first, the operator's on top: the selector labels must win.
fn pod_labels(cluster: &KafkaCluster) -> BTreeMap<String, String> {
    let mut labels = cluster
        .spec
        .template
        .as_ref()
        .map(|t| t.labels.clone())
        .unwrap_or_default();
    labels.extend(names::labels(&name(cluster)));
    labels
}

fn pod_annotations(
    cluster: &KafkaCluster,
    external: &ExternalAddresses,
) -> BTreeMap<String, String> {
    let mut annotations = cluster
        .spec
        .template
        .as_ref()
        .map(|t| t.annotations.clone())
        .unwrap_or_default();
    // Annotations the roller reads on pods must come from the operator alone: a manual
    // roll request in the template would restart every new pod again, for ever.
    annotations.remove(names::MANUAL_ROLL_ANNOTATION);
    annotations.remove(names::APPLIED_HASH_ANNOTATION);
    annotations.insert(
        names::CONFIG_HASH_ANNOTATION.into(),
        config_hash(cluster, external),
    );
    annotations.insert(
        names::BROKER_HASHES_ANNOTATION.into(),
        encode_broker_hashes(&broker_hashes(cluster, external)),
    );
    if cluster.spec.metrics.enabled {
        annotations.insert("prometheus.io/scrape".into(), "true".into());
        annotations.insert("prometheus.io/port".into(), names::ADMIN_PORT.to_string());
        annotations.insert("prometheus.io/path".into(), "/metrics".into());
    }
    annotations
}

/// Prefer one broker per node, so a node loss costs at most one replica of a partition.
fn default_affinity(cluster: &KafkaCluster) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        topology_key: "kubernetes.io/hostname".into(),
                        label_selector: Some(selector(cluster)),
                        ..PodAffinityTerm::default()
                    },
                },
            ]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    }
}

fn default_pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(NONROOT_ID),
        run_as_group: Some(NONROOT_ID),
        fs_group: Some(NONROOT_ID),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

fn container_security_context(spec: &KafkaClusterSpec) -> SecurityContext {
    spec.template
        .as_ref()
        .and_then(|t| t.container_security_context.clone())
        .unwrap_or_else(|| SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            run_as_non_root: Some(true),
            ..SecurityContext::default()
        })
}

/// Copies the pod's own properties file into place, filling in what only the pod knows
/// (its node's IP for nodeport listeners, its rack).
fn pod_init_container(spec: &KafkaClusterSpec, image: &str) -> Container {
    let mut command = vec![
        "strom-operator".to_string(),
        "pod-init".into(),
        "--config-dir".into(),
        names::CONFIG_DIR.into(),
        "--output".into(),
        names::RUNTIME_CONFIG_FILE.into(),
    ];
    if let Some(rack) = &spec.rack {
        command.extend(["--rack-topology-key".to_string(), rack.topology_key.clone()]);
    }
    Container {
        name: "pod-init".into(),
        image: Some(image.into()),
        command: Some(command),
        env: Some(vec![
            field_env("POD_NAME", "metadata.name"),
            field_env("NODE_NAME", "spec.nodeName"),
            field_env("NODE_IP", "status.hostIP"),
        ]),
        volume_mounts: Some(vec![
            mount(CONFIG_VOLUME, names::CONFIG_DIR, true),
            mount(RUNTIME_CONFIG_VOLUME, names::RUNTIME_CONFIG_DIR, false),
        ]),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity("10m".into())),
                ("memory".to_string(), Quantity("16Mi".into())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_string(),
                Quantity("64Mi".into()),
            )])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(container_security_context(spec)),
        ..Container::default()
    }
}

fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.into(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn mount(volume: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: volume.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

fn broker_container(spec: &KafkaClusterSpec, image: &str) -> Container {
    Container {
        name: "broker".into(),
        image: Some(image.into()),
        command: Some(vec![
            "strom-broker".into(),
            names::RUNTIME_CONFIG_FILE.into(),
        ]),
        ports: Some(
            broker_ports(spec)
                .into_iter()
                .map(|(name, port)| ContainerPort {
                    name: Some(name),
                    container_port: port,
                    protocol: Some("TCP".into()),
                    ..ContainerPort::default()
                })
                .collect(),
        ),
        readiness_probe: Some(Probe {
            period_seconds: Some(5),
            failure_threshold: Some(3),
            ..admin_probe("/ready")
        }),
        liveness_probe: Some(Probe {
            initial_delay_seconds: Some(10),
            period_seconds: Some(10),
            failure_threshold: Some(6),
            ..admin_probe("/health")
        }),
        // Log recovery after an unclean stop can take minutes; liveness waits for it.
        startup_probe: Some(Probe {
            period_seconds: Some(5),
            failure_threshold: Some(60),
            ..admin_probe("/health")
        }),
        resources: spec.resources.clone(),
        volume_mounts: Some(broker_mounts(spec)),
        security_context: Some(container_security_context(spec)),
        ..Container::default()
    }
}

/// The data and runtime config, and in a secured cluster the certificates, read-only:
/// kubelet updates mounted Secrets in place, and the broker reloads changed files.
fn broker_mounts(spec: &KafkaClusterSpec) -> Vec<VolumeMount> {
    let mut mounts = vec![
        mount(DATA_VOLUME, names::DATA_DIR, false),
        mount(RUNTIME_CONFIG_VOLUME, names::RUNTIME_CONFIG_DIR, true),
    ];
    if security::is_secured(spec) {
        mounts.extend([
            mount(CLUSTER_CA_VOLUME, security::CLUSTER_CA_DIR, true),
            mount(CLIENTS_CA_VOLUME, security::CLIENTS_CA_DIR, true),
            mount(BROKER_CERTS_VOLUME, security::BROKER_CERTS_DIR, true),
        ]);
    }
    mounts
}

/// A Secret volume the broker (a non-root user in the pod's fsGroup) can read and nobody
/// else in the container can.
fn secret_volume(volume: &str, secret: String) -> Volume {
    Volume {
        name: volume.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret),
            default_mode: Some(0o440),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn admin_probe(path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(names::ADMIN_PORT),
            ..HTTPGetAction::default()
        }),
        ..Probe::default()
    }
}

fn volumes(cluster: &KafkaCluster) -> Vec<Volume> {
    let mut volumes = vec![
        Volume {
            name: CONFIG_VOLUME.into(),
            config_map: Some(ConfigMapVolumeSource {
                name: names::config_map(&name(cluster)),
                default_mode: Some(0o444),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: RUNTIME_CONFIG_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: Some(Quantity("1Mi".into())),
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        },
    ];
    if cluster.spec.storage.kind == StorageType::Ephemeral {
        volumes.push(Volume {
            name: DATA_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: cluster.spec.storage.size.clone(),
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    if security::is_secured(&cluster.spec) {
        let cluster_name = name(cluster);
        volumes.extend([
            secret_volume(
                CLUSTER_CA_VOLUME,
                cert_names::cluster_ca_cert_secret(&cluster_name),
            ),
            secret_volume(
                CLIENTS_CA_VOLUME,
                cert_names::clients_ca_cert_secret(&cluster_name),
            ),
            secret_volume(
                BROKER_CERTS_VOLUME,
                cert_names::broker_certs_secret(&cluster_name),
            ),
        ]);
    }
    volumes
}

/// Persistent storage: one claim per broker, kept when the pod moves or the StatefulSet
/// scales down (the retention policy stays Kubernetes' default, Retain).
/// The claims of brokers removed by a scale-down are kept (Kubernetes' default, `Retain`)
/// unless `storage.deleteClaimsOnScaleDown` asks for `whenScaled: Delete`. Deleting the
/// cluster never deletes claims: that stays a person's decision.
fn claim_retention(
    spec: &KafkaClusterSpec,
) -> Option<StatefulSetPersistentVolumeClaimRetentionPolicy> {
    (spec.storage.kind == StorageType::PersistentClaim && spec.storage.delete_claims_on_scale_down)
        .then(|| StatefulSetPersistentVolumeClaimRetentionPolicy {
            when_scaled: Some("Delete".into()),
            when_deleted: Some("Retain".into()),
        })
}

fn volume_claim_templates(
    spec: &KafkaClusterSpec,
    cluster_name: &str,
) -> Option<Vec<PersistentVolumeClaim>> {
    if spec.storage.kind != StorageType::PersistentClaim {
        return None;
    }
    Some(vec![PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.into()),
            labels: Some(names::selector_labels(cluster_name)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: spec
                    .storage
                    .size
                    .clone()
                    .map(|size| BTreeMap::from([("storage".to_string(), size)])),
                ..VolumeResourceRequirements::default()
            }),
            storage_class_name: spec.storage.class.clone(),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }])
}

// --- PodDisruptionBudget, NetworkPolicy, rack binding ----------------------------------

/// At most one broker down by eviction, so a drain never takes two replicas at once.
fn pod_disruption_budget(cluster: &KafkaCluster) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(cluster, names::broker_set(&name(cluster))),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(selector(cluster)),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

/// Brokers reach each other on every port; clients reach each listener from its peers
/// (anyone when none are listed); anyone reaches the admin port (kubelet probes,
/// Prometheus, the operator); the operator's pods, in any namespace, reach the
/// inter-broker listener, where it sends its Kafka admin calls (partition moves, throttles,
/// UnregisterBroker) whatever the client listeners require.
fn network_policy(cluster: &KafkaCluster) -> Option<NetworkPolicy> {
    if !cluster.spec.network_policy.enabled {
        return None;
    }
    let same_cluster = NetworkPolicyPeer {
        pod_selector: Some(selector(cluster)),
        ..NetworkPolicyPeer::default()
    };
    let all_ports = broker_ports(&cluster.spec)
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    let mut rules = vec![ingress_rule(Some(vec![same_cluster]), all_ports)];
    for listener in cluster.spec.effective_listeners() {
        let from = Some(listener.network_policy_peers.clone()).filter(|p| !p.is_empty());
        rules.push(ingress_rule(from, vec![listener.port]));
    }
    rules.push(ingress_rule(None, vec![names::ADMIN_PORT]));
    let operator = NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "app.kubernetes.io/name".to_string(),
                names::OPERATOR_APP_NAME.to_string(),
            )])),
            ..LabelSelector::default()
        }),
        namespace_selector: Some(LabelSelector::default()),
        ..NetworkPolicyPeer::default()
    };
    rules.push(ingress_rule(
        Some(vec![operator]),
        vec![names::REPLICATION_PORT],
    ));
    Some(NetworkPolicy {
        metadata: meta(cluster, names::broker_set(&name(cluster))),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(cluster)),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(rules),
            ..NetworkPolicySpec::default()
        }),
    })
}

/// `from: None` admits any source.
fn ingress_rule(from: Option<Vec<NetworkPolicyPeer>>, ports: Vec<i32>) -> NetworkPolicyIngressRule {
    NetworkPolicyIngressRule {
        from,
        ports: Some(
            ports
                .into_iter()
                .map(|p| NetworkPolicyPort {
                    port: Some(IntOrString::Int(p)),
                    protocol: Some("TCP".into()),
                    ..NetworkPolicyPort::default()
                })
                .collect(),
        ),
    }
}

/// Lets pod-init read node labels. Cluster-scoped, so no owner reference (Kubernetes
/// forbids a namespaced owner); the annotation says whose it is and the finalizer
/// deletes it.
fn rack_binding(cluster: &KafkaCluster) -> Option<ClusterRoleBinding> {
    cluster.spec.rack.as_ref()?;
    let namespace = names::namespace(cluster);
    Some(ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(names::rack_binding(&name(cluster), &namespace)),
            labels: Some(names::labels(&name(cluster))),
            annotations: Some(BTreeMap::from([(
                OWNER_ANNOTATION.to_string(),
                format!("{namespace}/{}", name(cluster)),
            )])),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: names::RACK_CLUSTER_ROLE.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: names::broker_set(&name(cluster)),
            namespace: Some(namespace),
            ..Subject::default()
        }]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeSet;

    use crate::fixtures::cluster;

    fn opts() -> RenderOptions {
        RenderOptions {
            default_image: "ghcr.io/strom-dev/strom:0.1.0".into(),
        }
    }

    fn render(spec: serde_json::Value) -> (KafkaCluster, Desired) {
        let c = cluster(spec);
        let d = desired(&c, &opts(), &ExternalAddresses::default());
        (c, d)
    }

    fn full() -> serde_json::Value {
        json!({
            "replicas": 3,
            "listeners": [
                {"name": "plain", "port": 9092},
                {"name": "external", "port": 9094, "type": "nodeport"},
            ],
            "storage": {"type": "persistent-claim", "size": "10Gi", "class": "fast"},
            "rack": {"topologyKey": "topology.kubernetes.io/zone"},
            "networkPolicy": {"enabled": true},
        })
    }

    fn pod_spec(d: &Desired) -> &PodSpec {
        d.stateful_set
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .expect("pod spec")
    }

    fn container<'a>(d: &'a Desired, name: &str) -> &'a Container {
        let pod = pod_spec(d);
        pod.containers
            .iter()
            .chain(pod.init_containers.iter().flatten())
            .find(|c| c.name == name)
            .expect("container")
    }

    /// Every namespaced object, serialized.
    fn namespaced(d: &Desired) -> Vec<serde_json::Value> {
        let to = |v: serde_json::Result<serde_json::Value>| v.expect("serialize");
        let mut objects = vec![
            to(serde_json::to_value(&d.service_account)),
            to(serde_json::to_value(&d.config_map)),
            to(serde_json::to_value(&d.headless_service)),
            to(serde_json::to_value(&d.bootstrap_service)),
            to(serde_json::to_value(&d.stateful_set)),
            to(serde_json::to_value(&d.pod_disruption_budget)),
        ];
        objects.extend(
            d.external_services
                .iter()
                .map(|s| to(serde_json::to_value(s))),
        );
        objects.extend(d.network_policy.iter().map(|n| to(serde_json::to_value(n))));
        objects
    }

    #[test]
    fn image_choice() {
        let spec =
            |v: serde_json::Value| -> KafkaClusterSpec { serde_json::from_value(v).expect("spec") };
        let o = opts();
        assert_eq!(
            image(&spec(json!({"replicas": 1})), &o),
            "ghcr.io/strom-dev/strom:0.1.0"
        );
        assert_eq!(
            image(&spec(json!({"replicas": 1, "version": "0.2.0"})), &o),
            "ghcr.io/strom-dev/strom:0.2.0"
        );
        assert_eq!(
            image(
                &spec(json!({"replicas": 1, "version": "0.2.0", "image": "me/strom:x"})),
                &o
            ),
            "me/strom:x"
        );
        assert_eq!(repository("localhost:5000/strom"), "localhost:5000/strom");
        assert_eq!(
            repository("localhost:5000/strom:1@sha256:ab"),
            "localhost:5000/strom"
        );
    }

    #[test]
    fn stateful_set_is_on_delete_and_parallel() {
        let (_, d) = render(full());
        let spec = d.stateful_set.spec.as_ref().expect("spec");
        assert_eq!(
            spec.update_strategy
                .as_ref()
                .and_then(|u| u.type_.as_deref()),
            Some("OnDelete")
        );
        assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
        assert_eq!(spec.service_name.as_deref(), Some("my-cluster-brokers"));
        assert_eq!(spec.replicas, Some(3));
        assert!(spec.persistent_volume_claim_retention_policy.is_none());
        assert_eq!(pod_spec(&d).termination_grace_period_seconds, Some(120));
        assert_eq!(pod_spec(&d).enable_service_links, Some(false));
    }

    #[test]
    fn owner_references_on_namespaced_objects_only() {
        let (_, d) = render(full());
        for object in namespaced(&d) {
            let refs = &object["metadata"]["ownerReferences"];
            assert_eq!(refs.as_array().map(Vec::len), Some(1), "{object}");
            assert_eq!(refs[0]["kind"], "KafkaCluster");
            assert_eq!(refs[0]["name"], "my-cluster");
            assert_eq!(refs[0]["uid"], "0000-1111");
            assert_eq!(refs[0]["controller"], true);
            assert_eq!(refs[0]["blockOwnerDeletion"], true);
            assert_eq!(object["metadata"]["namespace"], "kafka");
            assert_eq!(
                object["metadata"]["labels"]["app.kubernetes.io/instance"],
                "my-cluster"
            );
        }
        let binding = d.rack_binding.as_ref().expect("rack binding");
        assert!(binding.metadata.owner_references.is_none());
        assert!(binding.metadata.namespace.is_none());
        assert_eq!(
            binding
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kafka.strom.dev/owner")),
            Some(&"kafka/my-cluster".to_string())
        );
    }

    #[test]
    fn every_object_has_api_version_and_kind() {
        let (_, d) = render(full());
        let mut objects = namespaced(&d);
        objects.push(serde_json::to_value(&d.rack_binding).expect("serialize"));
        let kinds: BTreeSet<String> = objects
            .iter()
            .map(|o| {
                assert!(o["apiVersion"].is_string(), "{o}");
                o["kind"].as_str().expect("kind").to_string()
            })
            .collect();
        let expected = [
            "ClusterRoleBinding",
            "ConfigMap",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",
            "StatefulSet",
        ];
        assert_eq!(kinds, expected.iter().map(|k| k.to_string()).collect());
    }

    #[test]
    fn rack_binding_only_with_rack() {
        let (_, d) = render(full());
        let binding = d.rack_binding.expect("binding");
        assert_eq!(
            binding.metadata.name.as_deref(),
            Some("strom-kafka-my-cluster-rack")
        );
        assert_eq!(binding.role_ref.name, "strom-broker-rack");
        let subject = &binding.subjects.expect("subjects")[0];
        assert_eq!(subject.kind, "ServiceAccount");
        assert_eq!(subject.name, "my-cluster-broker");
        assert_eq!(subject.namespace.as_deref(), Some("kafka"));
        assert_eq!(
            d.service_account.automount_service_account_token,
            Some(true)
        );
        let init = container(&render(full()).1, "pod-init")
            .command
            .clone()
            .expect("command");
        assert!(init.ends_with(&[
            "--rack-topology-key".into(),
            "topology.kubernetes.io/zone".into()
        ]));

        let (_, d) = render(json!({"replicas": 1}));
        assert!(d.rack_binding.is_none());
        assert_eq!(
            d.service_account.automount_service_account_token,
            Some(false)
        );
        let init = container(&d, "pod-init").command.clone().expect("command");
        assert!(!init.contains(&"--rack-topology-key".to_string()));
    }

    #[test]
    fn claims_of_removed_brokers_are_kept_unless_deletion_is_asked_for() {
        let policy = |d: &Desired| {
            d.stateful_set
                .spec
                .as_ref()
                .and_then(|s| s.persistent_volume_claim_retention_policy.clone())
        };
        assert!(policy(&render(full()).1).is_none());
        let mut spec = full();
        spec["storage"]["deleteClaimsOnScaleDown"] = json!(true);
        let p = policy(&render(spec).1).expect("a retention policy");
        assert_eq!(p.when_scaled.as_deref(), Some("Delete"));
        assert_eq!(p.when_deleted.as_deref(), Some("Retain"));
        // An emptyDir has no claim to keep.
        let p = policy(
            &render(json!({"replicas": 1, "storage": {"type": "ephemeral", "deleteClaimsOnScaleDown": true}})).1,
        );
        assert!(p.is_none());
    }

    #[test]
    fn persistent_storage_uses_claim_templates() {
        let (_, d) = render(full());
        let claims = d
            .stateful_set
            .spec
            .as_ref()
            .and_then(|s| s.volume_claim_templates.clone())
            .expect("claims");
        assert_eq!(claims.len(), 1);
        let claim = serde_json::to_value(&claims[0]).expect("serialize");
        assert_eq!(claim["metadata"]["name"], "data");
        assert_eq!(claim["spec"]["accessModes"], json!(["ReadWriteOnce"]));
        assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "10Gi");
        assert_eq!(claim["spec"]["storageClassName"], "fast");
        let volumes = pod_spec(&d).volumes.clone().expect("volumes");
        assert!(volumes.iter().all(|v| v.name != "data"));
    }

    #[test]
    fn ephemeral_storage_uses_empty_dir() {
        let (_, d) =
            render(json!({"replicas": 1, "storage": {"type": "ephemeral", "size": "5Gi"}}));
        assert!(d
            .stateful_set
            .spec
            .as_ref()
            .expect("spec")
            .volume_claim_templates
            .is_none());
        let volumes = pod_spec(&d).volumes.clone().expect("volumes");
        let data = volumes
            .iter()
            .find(|v| v.name == "data")
            .expect("data volume");
        assert_eq!(
            data.empty_dir.as_ref().and_then(|e| e.size_limit.clone()),
            Some(Quantity("5Gi".into()))
        );
        let config = volumes
            .iter()
            .find(|v| v.name == "config")
            .expect("config volume");
        assert_eq!(
            config.config_map.as_ref().map(|c| c.name.as_str()),
            Some("my-cluster-config")
        );
        assert_eq!(
            config.config_map.as_ref().and_then(|c| c.default_mode),
            Some(0o444)
        );
    }

    #[test]
    fn operator_labels_win_over_template_labels() {
        let mut spec = full();
        spec["template"] = json!({
            "labels": {"team": "data", "app.kubernetes.io/name": "mine"},
            "annotations": {"note": "x", "kafka.strom.dev/config-hash": "forged",
                "kafka.strom.dev/manual-rolling-update": "true",
                "kafka.strom.dev/applied-config-hash": "forged"},
        });
        let (c, d) = render(spec);
        let meta = d
            .stateful_set
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.clone())
            .expect("template metadata");
        let labels = meta.labels.expect("labels");
        assert_eq!(labels["team"], "data");
        assert_eq!(labels["app.kubernetes.io/name"], "strom-broker");
        let annotations = meta.annotations.expect("annotations");
        assert_eq!(annotations["note"], "x");
        assert_eq!(
            annotations["kafka.strom.dev/config-hash"],
            config_hash(&c, &ExternalAddresses::default())
        );
        assert_eq!(
            annotations["kafka.strom.dev/broker-config-hashes"],
            encode_broker_hashes(&broker_hashes(&c, &ExternalAddresses::default()))
        );
        assert!(!annotations.contains_key("kafka.strom.dev/manual-rolling-update"));
        assert!(!annotations.contains_key("kafka.strom.dev/applied-config-hash"));
        assert_eq!(annotations["prometheus.io/scrape"], "true");
        assert_eq!(annotations["prometheus.io/port"], "9644");
        assert_eq!(annotations["prometheus.io/path"], "/metrics");
    }

    #[test]
    fn no_scrape_annotations_without_metrics() {
        let (_, d) = render(json!({"replicas": 1, "metrics": {"enabled": false}}));
        let annotations = d
            .stateful_set
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.clone())
            .and_then(|m| m.annotations)
            .expect("annotations");
        assert!(!annotations.contains_key("prometheus.io/scrape"));
        assert!(annotations.contains_key(names::CONFIG_HASH_ANNOTATION));
    }

    #[test]
    fn probes_use_the_admin_port() {
        let (_, d) = render(full());
        let broker = container(&d, "broker");
        let probe = |p: &Option<Probe>| {
            let get = p
                .as_ref()
                .and_then(|p| p.http_get.clone())
                .expect("httpGet");
            (get.path.expect("path"), get.port)
        };
        let admin = IntOrString::Int(9644);
        assert_eq!(
            probe(&broker.readiness_probe),
            ("/ready".into(), admin.clone())
        );
        assert_eq!(
            probe(&broker.liveness_probe),
            ("/health".into(), admin.clone())
        );
        assert_eq!(probe(&broker.startup_probe), ("/health".into(), admin));
        assert_eq!(
            broker
                .startup_probe
                .as_ref()
                .and_then(|p| p.failure_threshold),
            Some(60)
        );
        assert_eq!(
            broker.command,
            Some(vec![
                "strom-broker".into(),
                names::RUNTIME_CONFIG_FILE.into()
            ])
        );
    }

    #[test]
    fn config_map_has_one_file_per_broker() {
        let c = cluster(full());
        let d = desired(&c, &opts(), &ExternalAddresses::default());
        let data = d.config_map.data.expect("data");
        let keys: Vec<&String> = data.keys().collect();
        assert_eq!(
            keys,
            [
                "broker-0.properties",
                "broker-1.properties",
                "broker-2.properties"
            ]
        );
        assert_eq!(
            data["broker-1.properties"],
            broker_properties(&c, 1, &ExternalAddresses::default())
        );
    }

    #[test]
    fn network_policy_only_when_enabled() {
        assert!(render(json!({"replicas": 1})).1.network_policy.is_none());
        let mut spec = full();
        spec["listeners"][1]["networkPolicyPeers"] =
            json!([{"namespaceSelector": {"matchLabels": {"team": "a"}}}]);
        let (_, d) = render(spec);
        let policy = serde_json::to_value(d.network_policy.expect("policy")).expect("json");
        let rules = policy["spec"]["ingress"].as_array().expect("rules").clone();
        assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress"]));
        assert_eq!(rules.len(), 5);
        let ports = |rule: &serde_json::Value| -> Vec<i64> {
            rule["ports"]
                .as_array()
                .expect("ports")
                .iter()
                .filter_map(|p| p["port"].as_i64())
                .collect()
        };
        assert_eq!(
            rules[0]["from"][0]["podSelector"]["matchLabels"]["kafka.strom.dev/cluster"],
            "my-cluster"
        );
        assert_eq!(ports(&rules[0]), vec![9091, 9093, 9644, 9092, 9094]);
        assert!(rules[1].get("from").is_none(), "plain: anyone");
        assert_eq!(ports(&rules[1]), vec![9092]);
        assert_eq!(
            rules[2]["from"][0]["namespaceSelector"]["matchLabels"]["team"],
            "a"
        );
        assert_eq!(ports(&rules[2]), vec![9094]);
        assert!(rules[3].get("from").is_none());
        assert_eq!(ports(&rules[3]), vec![9644]);
        // The operator, from its own namespace, for its admin calls.
        assert_eq!(
            rules[4]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
            "strom-operator"
        );
        assert_eq!(rules[4]["from"][0]["namespaceSelector"], json!({}));
        assert_eq!(ports(&rules[4]), vec![9091]);
    }

    #[test]
    fn nodeport_listener_gets_external_services() {
        let (_, d) = render(full());
        let names: Vec<String> = d
            .external_services
            .iter()
            .map(|s| s.metadata.name.clone().expect("name"))
            .collect();
        assert_eq!(
            names,
            [
                "my-cluster-external-bootstrap",
                "my-cluster-external-0",
                "my-cluster-external-1",
                "my-cluster-external-2",
            ]
        );
        for (i, service) in d.external_services.iter().enumerate() {
            let spec = service.spec.as_ref().expect("spec");
            assert_eq!(spec.type_.as_deref(), Some("NodePort"));
            let port = &spec.ports.as_ref().expect("ports")[0];
            assert_eq!(
                (port.port, port.target_port.clone()),
                (9094, Some(IntOrString::Int(9094)))
            );
            let pod = spec.selector.as_ref().and_then(|s| s.get(POD_NAME_LABEL));
            if i == 0 {
                assert!(pod.is_none());
            } else {
                assert_eq!(pod, Some(&format!("my-cluster-broker-{}", i - 1)));
                assert_eq!(spec.external_traffic_policy.as_deref(), Some("Local"));
            }
        }
        assert!(render(json!({"replicas": 3}))
            .1
            .external_services
            .is_empty());
    }

    #[test]
    fn services() {
        let (_, d) = render(full());
        let headless = d.headless_service.spec.as_ref().expect("spec");
        assert_eq!(headless.cluster_ip.as_deref(), Some("None"));
        assert_eq!(headless.publish_not_ready_addresses, Some(true));
        let ports: Vec<i32> = headless.ports.iter().flatten().map(|p| p.port).collect();
        assert_eq!(ports, vec![9091, 9093, 9644, 9092, 9094]);
        let bootstrap = d.bootstrap_service.spec.as_ref().expect("spec");
        assert_eq!(bootstrap.type_.as_deref(), Some("ClusterIP"));
        let ports: Vec<i32> = bootstrap.ports.iter().flatten().map(|p| p.port).collect();
        assert_eq!(ports, vec![9092, 9094]);
        assert_eq!(
            d.pod_disruption_budget
                .spec
                .as_ref()
                .and_then(|s| s.max_unavailable.clone()),
            Some(IntOrString::Int(1))
        );
    }

    #[test]
    fn port_names_are_short_and_unique() {
        let (_, d) = render(json!({"replicas": 1, "listeners": [
            {"name": "plain", "port": 9092},
            {"name": "admin", "port": 9095},
            {"name": "averyveryverylonglistener", "port": 10001},
            {"name": "averyveryverylonglistenes", "port": 10002},
            {"name": "fifteencharsxyz", "port": 10003},
        ]}));
        let ports = container(&d, "broker").ports.clone().expect("ports");
        let names: Vec<String> = ports
            .iter()
            .map(|p| p.name.clone().expect("name"))
            .collect();
        assert_eq!(
            names,
            [
                "replication",
                "controller",
                "admin",
                "plain",
                "admin-9095",
                "averyvery-10001",
                "averyvery-10002",
                "fifteencharsxyz",
            ]
        );
        let unique: BTreeSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        for name in &names {
            assert!(name.len() <= 15, "{name}");
            assert!(name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        }
        let service: Vec<String> = d
            .headless_service
            .spec
            .and_then(|s| s.ports)
            .expect("ports")
            .into_iter()
            .map(|p| p.name.expect("name"))
            .collect();
        assert_eq!(service, names);
    }

    #[test]
    fn default_security_and_affinity() {
        let (_, d) = render(json!({"replicas": 1}));
        let pod = pod_spec(&d);
        let security = pod.security_context.as_ref().expect("security context");
        assert_eq!(security.run_as_non_root, Some(true));
        assert_eq!(security.fs_group, Some(65532));
        let anti = pod
            .affinity
            .as_ref()
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .expect("anti-affinity");
        assert_eq!(anti[0].weight, 100);
        assert_eq!(
            anti[0].pod_affinity_term.topology_key,
            "kubernetes.io/hostname"
        );
        for name in ["broker", "pod-init"] {
            let sc = container(&d, name).security_context.clone().expect("sc");
            assert_eq!(sc.read_only_root_filesystem, Some(true));
            assert_eq!(sc.allow_privilege_escalation, Some(false));
        }
        let env: Vec<String> = container(&d, "pod-init")
            .env
            .iter()
            .flatten()
            .map(|e| e.name.clone())
            .collect();
        assert_eq!(env, ["POD_NAME", "NODE_NAME", "NODE_IP"]);
    }
}
