//! The cluster's metadata as a log of records applied to an in-memory image: Kafka's KRaft
//! idea. On a single node the log is a local journal; the cluster issue puts the same
//! records behind openraft without changing the image or the records.

pub mod add_scram;
pub mod bootstrap;
pub mod image;
pub mod journal;
pub mod records;

pub use image::{BrokerRegistration, MetadataImage, PartitionImage, TopicImage, NO_LEADER};
pub use records::{BrokerEndpoint, ConfigResource, MetadataRecord};
