//! The Secret names, data keys and certificate subjects of a KafkaCluster's PKI. Brokers,
//! the cluster reconcile and the KafkaUser controller all read these Secrets, so the
//! strings here are a contract: change one and every mounted path changes with it.

/// PEM bundle of trusted CA certificates (current first, then a renewed-away one).
pub const CA_CRT: &str = "ca.crt";
/// The same bundle as a PKCS#12 truststore, for Java clients.
pub const CA_P12: &str = "ca.p12";
/// Password of `ca.p12`.
pub const CA_PASSWORD: &str = "ca.password";
/// PKCS#8 PEM private key of the current CA.
pub const CA_KEY: &str = "ca.key";

/// Set to `"true"` on a generated CA's certificate Secret (`<cluster>-<kind>-ca-cert`):
/// the CA is renewed at the next reconcile as its expiration policy says, whatever the
/// dates. The operator removes the annotation once the renewed Secrets are written.
pub const FORCE_RENEW_ANNOTATION: &str = "kafka.strom.dev/force-renew";
/// Set to `"true"` on a generated CA's key Secret (`<cluster>-<kind>-ca`): the CA gets a
/// new key at the next reconcile, whatever its expiration policy; removed once done.
pub const FORCE_REPLACE_ANNOTATION: &str = "kafka.strom.dev/force-replace";

/// Operator client certificate (leaf then CA), key and the cluster CA bundle.
pub const OPERATOR_CRT: &str = "operator.crt";
pub const OPERATOR_KEY: &str = "operator.key";

/// KafkaUser Secret keys (Strimzi's names, so existing client configs keep working).
pub const USER_CRT: &str = "user.crt";
pub const USER_KEY: &str = "user.key";
pub const USER_P12: &str = "user.p12";
pub const USER_PASSWORD: &str = "user.password";

/// Every certificate this module issues carries this O, and a KafkaUser certificate never
/// does, so a user named like a broker (`CN=<cluster>-broker`) still gets a different
/// principal (`User:CN=<cluster>-broker` against `User:CN=<cluster>-broker,O=strom.dev`).
pub const ORGANIZATION: &str = "strom.dev";
/// CN of the operator's client certificate; the broker config names it a super user.
pub const OPERATOR_COMMON_NAME: &str = "strom-operator";

pub fn cluster_ca_cert_secret(cluster: &str) -> String {
    format!("{cluster}-cluster-ca-cert")
}
pub fn cluster_ca_key_secret(cluster: &str) -> String {
    format!("{cluster}-cluster-ca")
}
pub fn clients_ca_cert_secret(cluster: &str) -> String {
    format!("{cluster}-clients-ca-cert")
}
pub fn clients_ca_key_secret(cluster: &str) -> String {
    format!("{cluster}-clients-ca")
}
pub fn broker_certs_secret(cluster: &str) -> String {
    format!("{cluster}-broker-certs")
}
pub fn operator_certs_secret(cluster: &str) -> String {
    format!("{cluster}-operator-certs")
}

/// `broker-<i>.crt`: the broker's leaf certificate followed by its issuing CA.
pub fn broker_crt(ordinal: u32) -> String {
    format!("broker-{ordinal}.crt")
}
/// `broker-<i>.key`: PKCS#8 PEM.
pub fn broker_key(ordinal: u32) -> String {
    format!("broker-{ordinal}.key")
}
/// `broker-<i>.pem`: the key, then the chain, in one file: the PEM keystore Kafka's
/// `ssl.keystore.location` names, which the broker reloads when the Secret changes.
pub fn broker_keystore(ordinal: u32) -> String {
    format!("broker-{ordinal}.pem")
}

pub fn broker_common_name(cluster: &str) -> String {
    format!("{cluster}-broker")
}

/// The principal Kafka derives from the operator's certificate (RFC 2253 order, as the
/// broker's default `ssl.principal.mapping.rules` prints it), for `super.users`.
pub fn operator_principal() -> String {
    format!("User:CN={OPERATOR_COMMON_NAME},O={ORGANIZATION}")
}

/// DNS names every broker certificate carries: the pod's own name under the headless
/// Service, and the bootstrap and headless Services in each of their resolvable forms, so
/// that a client may connect through any of them with hostname verification on.
pub fn broker_dns_names(cluster: &str, namespace: &str, ordinal: u32) -> Vec<String> {
    let headless = crate::cluster::names::headless_service(cluster);
    let bootstrap = crate::cluster::names::bootstrap_service(cluster);
    let pod = format!(
        "{}-{ordinal}.{headless}.{namespace}.svc",
        crate::cluster::names::broker_set(cluster)
    );
    let mut names = vec![pod.clone(), format!("{pod}.cluster.local")];
    for service in [bootstrap, headless] {
        names.push(service.clone());
        names.push(format!("{service}.{namespace}"));
        names.push(format!("{service}.{namespace}.svc"));
        names.push(format!("{service}.{namespace}.svc.cluster.local"));
    }
    names
}
