//! The fault scenarios (`scenarios/faults.rs`) on clusters with every listener secured:
//! SASL_SSL (PLAIN) for the load, the readers and the harness's admin requests, mutual
//! TLS for replication and for the controller quorum, and an authorizer whose super
//! users are the brokers' certificate principal and the harness's admin
//! (`strom_e2e_cluster::security`). The same history checker, the same demand of zero
//! client-visible errors.

mod common;
#[path = "scenarios/faults.rs"]
mod scenarios;

use strom_e2e_cluster::ClusterOptions;

fn options() -> ClusterOptions {
    ClusterOptions::default().secured()
}

fn options_namespaces() -> ClusterOptions {
    ClusterOptions::namespaces().secured()
}
