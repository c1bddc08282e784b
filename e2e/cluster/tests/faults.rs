//! The fault scenarios (`scenarios/faults.rs`) on plaintext clusters.

mod common;
#[path = "scenarios/faults.rs"]
mod scenarios;

use strom_e2e_cluster::ClusterOptions;

fn options() -> ClusterOptions {
    ClusterOptions::default()
}

fn options_namespaces() -> ClusterOptions {
    ClusterOptions::namespaces()
}
