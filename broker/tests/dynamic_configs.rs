//! Dynamic broker configs and group configs on a real three-broker cluster: a value set on
//! the cluster default or on one broker reaches every broker through the metadata log,
//! takes effect without a restart (message.max.bytes refuses a big record; the replication
//! throttles hold back a catching-up replica the topic's throttled-replica lists name),
//! survives a restart of the whole cluster, and keys that cannot change at run time are
//! refused with Kafka's error.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{call, create_placed_topic, Cluster};
use common::kafka::{produce, try_produce, Rec};
use common::wait_for;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const GROUP: i8 = 32;

const SOURCE_DYNAMIC_BROKER: i8 = 2;
const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
const SOURCE_DEFAULT: i8 = 5;
const SOURCE_DYNAMIC_GROUP: i8 = 8;

const SET: i8 = 0;
const DELETE: i8 = 1;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// IncrementalAlterConfigs on one resource: (error code, message).
fn alter(port: u16, kind: i8, name: &str, ops: &[(&str, i8, Option<&str>)]) -> (i16, String) {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(s(name))
            .with_configs(
                ops.iter()
                    .map(|(k, op, v)| {
                        AlterableConfig::default()
                            .with_name(s(k))
                            .with_config_operation(*op)
                            .with_value(v.map(s))
                    })
                    .collect(),
            ),
    ]);
    let response = call(port, 1, &request);
    let r = &response.responses[0];
    (
        r.error_code,
        r.error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

fn alter_ok(port: u16, kind: i8, name: &str, ops: &[(&str, i8, Option<&str>)]) {
    let (code, message) = alter(port, kind, name, ops);
    assert_eq!(code, 0, "altering {kind}/{name}: {message}");
}

/// DescribeConfigs of one key: (value, source, read_only, number of synonyms).
fn describe(port: u16, kind: i8, name: &str, key: &str) -> (Option<String>, i8, bool, usize) {
    try_describe(port, kind, name, key)
        .unwrap_or_else(|| panic!("{key} is described for {kind}/{name}"))
}

/// DescribeConfigs of one key, None when the broker does not list it: the replication
/// quota rates, as on Kafka, are listed only once set, and a broker other than the
/// controller sees a change a moment after the controller answered it.
fn try_describe(
    port: u16,
    kind: i8,
    name: &str,
    key: &str,
) -> Option<(Option<String>, i8, bool, usize)> {
    let request = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(s(name))
            .with_configuration_keys(Some(vec![s(key)]))]);
    let response = call(port, 4, &request);
    let r = &response.results[0];
    assert_eq!(
        r.error_code, 0,
        "describing {kind}/{name}: {:?}",
        r.error_message
    );
    let e = r.configs.iter().find(|e| e.name.as_str() == key)?;
    Some((
        e.value.as_ref().map(|v| v.to_string()),
        e.config_source,
        e.read_only,
        e.synonyms.len(),
    ))
}

/// Waits until `key` of a resource reads `value` from `source` on the broker at `port`.
fn wait_described(port: u16, kind: i8, name: &str, key: &str, value: &str, source: i8) {
    wait_for(
        &format!("{kind}/{name} {key}={value} (source {source}) on port {port}"),
        Duration::from_secs(20),
        || {
            let (v, src, _, _) = try_describe(port, kind, name, key)?;
            (v.as_deref() == Some(value) && src == source).then_some(())
        },
    );
}

fn isr(port: u16, topic: &str) -> Vec<i32> {
    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(TopicName(s(topic)))),
    ]));
    let response = call(port, 12, &request);
    response.topics[0]
        .partitions
        .iter()
        .find(|p| p.partition_index == 0)
        .map(|p| p.isr_nodes.iter().map(|b| b.0).collect())
        .unwrap_or_default()
}

#[test]
fn dynamic_broker_and_group_configs_on_a_three_broker_cluster() {
    let mut cluster = Cluster::start(3, &[("auto.leader.rebalance.enable", "false")]);
    let port = |c: &Cluster, id: i32| c.node(id).port;

    // The cluster default, set through broker 1, reaches every broker.
    alter_ok(
        port(&cluster, 1),
        BROKER,
        "",
        &[
            ("log.retention.ms", SET, Some("1234567")),
            ("message.max.bytes", SET, Some("3000")),
        ],
    );
    for id in 0..3 {
        let p = port(&cluster, id);
        wait_described(
            p,
            BROKER,
            &id.to_string(),
            "log.retention.ms",
            "1234567",
            SOURCE_DYNAMIC_DEFAULT_BROKER,
        );
    }
    let (value, source, read_only, _) = describe(port(&cluster, 0), BROKER, "", "log.retention.ms");
    assert_eq!(
        (value.as_deref(), source),
        (Some("1234567"), SOURCE_DYNAMIC_DEFAULT_BROKER)
    );
    assert!(!read_only, "a dynamic key is not read-only");

    // A per-broker value overrides the default on that broker only.
    alter_ok(
        port(&cluster, 2),
        BROKER,
        "2",
        &[("log.retention.ms", SET, Some("7654321"))],
    );
    wait_described(
        port(&cluster, 2),
        BROKER,
        "2",
        "log.retention.ms",
        "7654321",
        SOURCE_DYNAMIC_BROKER,
    );
    let (_, _, _, synonyms) = describe(port(&cluster, 2), BROKER, "2", "log.retention.ms");
    assert!(synonyms >= 3, "per-broker, default, built-in default");
    let (value, _, _, _) = describe(port(&cluster, 0), BROKER, "0", "log.retention.ms");
    assert_eq!(value.as_deref(), Some("1234567"));
    let (_, _, read_only, _) = describe(port(&cluster, 0), BROKER, "0", "log.dirs");
    assert!(read_only, "log.dirs cannot change at run time");

    // Topics take their default from it, with the source that supplied it.
    create_placed_topic(port(&cluster, 0), "dyn", &[0, 1, 2]);
    wait_described(
        port(&cluster, 2),
        TOPIC,
        "dyn",
        "retention.ms",
        "7654321",
        SOURCE_DYNAMIC_BROKER,
    );
    wait_described(
        port(&cluster, 0),
        TOPIC,
        "dyn",
        "retention.ms",
        "1234567",
        SOURCE_DYNAMIC_DEFAULT_BROKER,
    );

    // message.max.bytes applies without a restart: a 5000-byte record is too large.
    let bootstrap = cluster.node(0).bootstrap();
    let big = vec![Rec::keyed("k", &"x".repeat(5000))];
    let outcome = try_produce(&bootstrap, "dyn", &[("acks", "all")], &big);
    let err = outcome[0]
        .clone()
        .expect_err("a record over the dynamic message.max.bytes");
    assert!(err.to_lowercase().contains("too large"), "{err}");

    // Keys that cannot change at run time, and another broker's id, are refused.
    let (code, message) = alter(
        port(&cluster, 0),
        BROKER,
        "0",
        &[("node.id", SET, Some("5")), ("log.dirs", SET, Some("/x"))],
    );
    assert_eq!(code, ResponseError::InvalidRequest.code());
    assert_eq!(
        message,
        "Cannot update these configs dynamically: [log.dirs, node.id]"
    );
    let (code, message) = alter(
        port(&cluster, 0),
        BROKER,
        "",
        &[("log.retention.ms", SET, Some("abc"))],
    );
    assert_eq!(code, ResponseError::InvalidRequest.code());
    assert!(message.contains("Not a number of type LONG"), "{message}");
    let (code, message) = alter(
        port(&cluster, 0),
        BROKER,
        "1",
        &[("log.retention.ms", SET, Some("1"))],
    );
    assert_eq!(code, ResponseError::InvalidRequest.code());
    assert!(message.contains("Unexpected broker id"), "{message}");

    // Group configs: set through one broker, described by another, checked as Kafka does.
    alter_ok(
        port(&cluster, 0),
        GROUP,
        "g",
        &[("consumer.session.timeout.ms", SET, Some("50000"))],
    );
    wait_described(
        port(&cluster, 2),
        GROUP,
        "g",
        "consumer.session.timeout.ms",
        "50000",
        SOURCE_DYNAMIC_GROUP,
    );
    let (value, source, _, _) = describe(
        port(&cluster, 2),
        GROUP,
        "g",
        "consumer.heartbeat.interval.ms",
    );
    assert_eq!((value.as_deref(), source), (Some("5000"), SOURCE_DEFAULT));
    let (code, message) = alter(
        port(&cluster, 1),
        GROUP,
        "g",
        &[("consumer.session.timeout.ms", SET, Some("5"))],
    );
    assert_eq!(code, ResponseError::InvalidConfig.code());
    assert_eq!(
        message,
        "consumer.session.timeout.ms must be in the range 45000 to 60000 inclusive."
    );
    let (code, _) = alter(
        port(&cluster, 1),
        GROUP,
        "g",
        &[("no.such.key", SET, Some("5"))],
    );
    assert_eq!(code, ResponseError::InvalidConfig.code());

    // Everything survives a restart of the whole cluster.
    cluster.restart_all();
    for id in 0..3 {
        let expected = if id == 2 {
            ("7654321", SOURCE_DYNAMIC_BROKER)
        } else {
            ("1234567", SOURCE_DYNAMIC_DEFAULT_BROKER)
        };
        wait_described(
            port(&cluster, id),
            BROKER,
            &id.to_string(),
            "log.retention.ms",
            expected.0,
            expected.1,
        );
        wait_described(
            port(&cluster, id),
            GROUP,
            "g",
            "consumer.session.timeout.ms",
            "50000",
            SOURCE_DYNAMIC_GROUP,
        );
    }

    // Deleting the default lifts the limit, again without a restart.
    alter_ok(
        port(&cluster, 1),
        BROKER,
        "",
        &[("message.max.bytes", DELETE, None)],
    );
    wait_described(
        port(&cluster, 0),
        BROKER,
        "0",
        "message.max.bytes",
        "1048588",
        SOURCE_DEFAULT,
    );
    let bootstrap = cluster.node(0).bootstrap();
    wait_for(
        "a 5000-byte record accepted",
        Duration::from_secs(20),
        || {
            try_produce(&bootstrap, "dyn", &[("acks", "all")], &big)[0]
                .is_ok()
                .then_some(())
        },
    );

    replication_throttle_holds_back_a_listed_replica(&mut cluster);
}

/// A replica that restarts behind, named by the topic's throttled-replica lists, catches
/// up only at the dynamic throttle rate; deleting the rate lets it in at once.
fn replication_throttle_holds_back_a_listed_replica(cluster: &mut Cluster) {
    let port = cluster.node(0).port;
    create_placed_topic(port, "slow", &[0, 1, 2]);
    wait_for("slow-0 fully in sync", Duration::from_secs(30), || {
        (isr(port, "slow").len() == 3).then_some(())
    });
    cluster.nodes[2].kill();
    let value = "x".repeat(1000);
    let records: Vec<Rec> = (0..400)
        .map(|i| Rec::keyed(&i.to_string(), &value))
        .collect();
    // Batches of 10 records (10 KB, under one second of the 20 KB/s rate): a fetch always
    // carries its first batch whole, so one 400 KB batch would pass any throttle at once,
    // on Kafka as here, and the test would measure librdkafka's batching instead.
    produce(
        &cluster.node(0).bootstrap(),
        "slow",
        &[("acks", "all"), ("batch.num.messages", "10")],
        &records,
    );
    wait_for("broker 2 out of the ISR", Duration::from_secs(30), || {
        (!isr(port, "slow").contains(&2)).then_some(())
    });

    alter_ok(
        port,
        TOPIC,
        "slow",
        &[
            ("leader.replication.throttled.replicas", SET, Some("*")),
            ("follower.replication.throttled.replicas", SET, Some("0:2")),
        ],
    );
    alter_ok(
        port,
        BROKER,
        "",
        &[
            ("leader.replication.throttled.rate", SET, Some("20000")),
            ("follower.replication.throttled.rate", SET, Some("20000")),
        ],
    );
    wait_described(
        port,
        BROKER,
        "0",
        "leader.replication.throttled.rate",
        "20000",
        SOURCE_DYNAMIC_DEFAULT_BROKER,
    );

    cluster.launch_node(2);
    // ~400 KB at 20 KB/s takes about 20 s; unthrottled it takes well under one. Broker 2
    // is sampled from its start: registering, and then fetching at the throttled rate.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(6) {
        assert!(
            !isr(port, "slow").contains(&2),
            "broker 2 rejoined the ISR {:?} after restart: the throttle had no effect",
            watched.elapsed(),
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    alter_ok(
        port,
        BROKER,
        "",
        &[
            ("leader.replication.throttled.rate", DELETE, None),
            ("follower.replication.throttled.rate", DELETE, None),
        ],
    );
    wait_for(
        "broker 2 back in the ISR once unthrottled",
        Duration::from_secs(15),
        || isr(port, "slow").contains(&2).then_some(()),
    );
}

/// ListConfigResources (KIP-1142) as Kafka 4.4's `KafkaApis.handleListConfigResources`
/// answers it: v1 lists the types asked for (all when none are named) in Kafka's type order
/// (groups, client metrics, broker loggers, brokers, topics), a group only while it has a
/// config, and refuses a type it does not know with UNSUPPORTED_VERSION for the whole
/// request; v0 (ListClientMetricsResources) lists client-metrics subscriptions, of which
/// Strom has none. `kafka-configs --describe --entity-type groups` adds these groups to
/// the ones the coordinator knows.
#[test]
fn list_config_resources_names_groups_with_configs_brokers_and_topics() {
    const BROKER_LOGGER: i8 = 8;
    const CLIENT_METRICS: i8 = 16;
    let broker = common::BrokerProcess::start(&[]);
    let port = broker.port;
    common::cluster::create_topic_ok(
        port,
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s("listed")))
            .with_num_partitions(1)
            .with_replication_factor(1),
        5000,
    );
    alter_ok(
        port,
        GROUP,
        "configured-group",
        &[("consumer.session.timeout.ms", SET, Some("50000"))],
    );
    let list = |version: i16, types: &[i8]| {
        let r = call(
            port,
            version,
            &ListConfigResourcesRequest::default().with_resource_types(types.to_vec()),
        );
        let rows: Vec<(i8, String)> = r
            .config_resources
            .iter()
            .map(|c| (c.resource_type, c.resource_name.to_string()))
            .collect();
        (r.error_code, rows)
    };
    let rows = wait_for(
        "the group config to be listed",
        Duration::from_secs(10),
        || {
            let (code, rows) = list(1, &[]);
            assert_eq!(code, 0);
            rows.contains(&(GROUP, "configured-group".to_string()))
                .then_some(rows)
        },
    );
    // Every type, in Kafka's order; topics as Metadata lists them.
    let order = [GROUP, CLIENT_METRICS, BROKER_LOGGER, BROKER, TOPIC];
    let ranks: Vec<usize> = rows
        .iter()
        .map(|(t, _)| order.iter().position(|o| o == t).expect("a known type"))
        .collect();
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{rows:?}");
    let of = |t: i8, rows: &[(i8, String)]| -> Vec<String> {
        rows.iter()
            .filter(|(rt, _)| *rt == t)
            .map(|(_, n)| n.clone())
            .collect()
    };
    assert_eq!(of(GROUP, &rows), vec!["configured-group"]);
    assert!(of(CLIENT_METRICS, &rows).is_empty());
    assert_eq!(of(BROKER_LOGGER, &rows), vec!["0"]);
    assert_eq!(of(BROKER, &rows), vec!["0"]);
    let metadata = call(port, 12, &MetadataRequest::default().with_topics(None));
    let mut topics: Vec<String> = metadata
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
        .collect();
    topics.sort();
    assert!(topics.contains(&"listed".to_string()));
    assert_eq!(of(TOPIC, &rows), topics);

    // Named types: only those, still in Kafka's order, each once.
    let (code, named) = list(1, &[TOPIC, GROUP, TOPIC]);
    assert_eq!(code, 0);
    let expected: Vec<(i8, String)> = std::iter::once((GROUP, "configured-group".to_string()))
        .chain(topics.iter().map(|t| (TOPIC, t.clone())))
        .collect();
    assert_eq!(named, expected);

    // v0 asks for client metrics only; an unknown type refuses the whole request.
    assert_eq!(list(0, &[]), (0, vec![]));
    assert_eq!(
        list(1, &[TOPIC, 64]),
        (ResponseError::UnsupportedVersion.code(), vec![])
    );
    assert!(broker.log().contains("resource type not listed"));

    // A group whose last config is deleted is no longer a config resource.
    alter_ok(
        port,
        GROUP,
        "configured-group",
        &[("consumer.session.timeout.ms", DELETE, None)],
    );
    wait_for(
        "the group to leave the list",
        Duration::from_secs(10),
        || list(1, &[GROUP]).1.is_empty().then_some(()),
    );
}
