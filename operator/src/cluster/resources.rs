//! Desired Kubernetes objects for a KafkaCluster. (stub)
