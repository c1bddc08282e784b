//! Connection limits and per-connection memory against a real `strom-broker` process:
//! idle expiry (`connections.max.idle.ms`), the partial-request bound
//! (`socket.request.read.timeout.ms`), `max.connections.per.ip` with its overrides,
//! `max.connections`, `connection_creation_rate` per IP (by address or host name), the
//! resident memory of idle connections, and a consumer that never reads its fetch
//! responses. Hostile clients are raw TCP sockets speaking the protocol through
//! `common::request_frame`.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use common::kafka::{produce, Rec};
use common::{request_frame, wait_for, BrokerProcess};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiVersionsRequest, BrokerId, FetchRequest, RequestKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;

// ---------------------------------------------------------------------------------------
// Helpers

fn connect(broker: &BrokerProcess) -> TcpStream {
    let stream = TcpStream::connect(broker.bootstrap()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    stream
}

/// Sends ApiVersions v2 and reads its answer; an error means the broker did not serve it.
fn api_versions(stream: &mut TcpStream, correlation: i32) -> std::io::Result<()> {
    let frame = request_frame(
        correlation,
        2,
        &RequestKind::ApiVersions(ApiVersionsRequest::default()),
    );
    stream.write_all(&frame)?;
    read_response(stream, correlation)
}

/// Reads one response and checks it answers `correlation`.
fn read_response(stream: &mut TcpStream, correlation: i32) -> std::io::Result<()> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let mut body = vec![0u8; i32::from_be_bytes(size).max(0) as usize];
    stream.read_exact(&mut body)?;
    let got = body
        .get(..4)
        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    if got != Some(correlation) {
        return Err(std::io::Error::other(format!(
            "response for correlation {got:?}, expected {correlation}"
        )));
    }
    Ok(())
}

/// Waits until the broker closes `stream` (end of stream or reset); returns how long that
/// took, or None if it stayed open until `timeout`.
fn wait_closed(stream: &mut TcpStream, timeout: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut byte = [0u8; 1];
    while started.elapsed() < timeout {
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        match stream.read(&mut byte) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => panic!("the broker sent bytes nobody asked for"),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

fn open_connections(broker: &BrokerProcess) -> f64 {
    broker.metric("kafka_server_socketservermetrics_connection_count{listener=\"PLAINTEXT\"}")
}

fn wait_open_connections(broker: &BrokerProcess, n: usize) {
    wait_for(
        &format!("{n} open connections"),
        Duration::from_secs(30),
        || (open_connections(broker) as usize == n).then_some(()),
    );
}

/// The broker's resident memory in bytes.
fn rss(broker: &BrokerProcess) -> u64 {
    let pid = broker.pid().expect("broker running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

/// Raises this process's open-file limit to its hard limit, for thousands of sockets.
fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    limit.rlim_cur
}

// ---------------------------------------------------------------------------------------
// Idle and partial requests

#[test]
fn idle_connections_are_closed_and_active_ones_kept() {
    let broker = BrokerProcess::start(&[("connections.max.idle.ms", "1000")]);
    let mut idle = connect(&broker);
    let mut active = connect(&broker);
    api_versions(&mut idle, 1).expect("served before going idle");

    // The active client asks every 200 ms while the idle one waits to be closed.
    let started = Instant::now();
    let idle_since = started;
    let mut correlation = 1;
    let mut idle_closed_after = None;
    while started.elapsed() < Duration::from_secs(10) {
        correlation += 1;
        api_versions(&mut active, correlation).expect("an active connection stays open");
        if idle_closed_after.is_none() {
            idle_closed_after =
                wait_closed(&mut idle, Duration::from_millis(200)).map(|_| idle_since.elapsed());
        } else if started.elapsed() > Duration::from_millis(2500) {
            break;
        } else {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let after = idle_closed_after.expect("the idle connection was closed");
    assert!(
        started.elapsed() >= Duration::from_millis(2500),
        "the active connection outlived the idle limit"
    );
    assert!(
        after >= Duration::from_millis(800),
        "closed after {after:?}"
    );
    assert!(
        broker.metric("kafka_server_socketservermetrics_connection_broker_close_total{listener=\"PLAINTEXT\",reason=\"idle\"}"
        ) >= 1.0,
        "{}",
        broker.metrics()
    );
}

#[test]
fn half_a_size_prefix_is_closed_after_the_read_timeout() {
    let broker = BrokerProcess::start(&[("socket.request.read.timeout.ms", "1000")]);
    let mut quiet = connect(&broker);
    let mut stalled = connect(&broker);
    stalled.write_all(&[0, 0]).expect("two bytes of a size");
    let took =
        wait_closed(&mut stalled, Duration::from_secs(10)).expect("the stalled request was closed");
    assert!(took >= Duration::from_millis(800), "closed after {took:?}");
    // A connection between requests is governed by the idle limit (10 minutes) instead.
    api_versions(&mut quiet, 1).expect("the quiet connection is still served");

    // The same for a body that stops half way.
    let mut half_body = connect(&broker);
    let frame = request_frame(
        7,
        2,
        &RequestKind::ApiVersions(ApiVersionsRequest::default()),
    );
    half_body
        .write_all(&frame[..frame.len() - 3])
        .expect("most of a request");
    wait_closed(&mut half_body, Duration::from_secs(10)).expect("the half request was closed");
    assert!(
        broker.metric("kafka_server_socketservermetrics_connection_broker_close_total{listener=\"PLAINTEXT\",reason=\"request_read_timeout\"}"
        ) >= 2.0
    );
}

// ---------------------------------------------------------------------------------------
// Connection limits

#[test]
fn per_ip_limit_with_a_host_name_override() {
    // The default allows one connection per address; `localhost` (127.0.0.1 here) is
    // allowed three.
    let broker = BrokerProcess::start(&[
        ("max.connections.per.ip", "1"),
        ("max.connections.per.ip.overrides", "localhost:3,10.9.9.9:5"),
    ]);
    let mut first: Vec<TcpStream> = (0..3).map(|_| connect(&broker)).collect();
    for (i, s) in first.iter_mut().enumerate() {
        api_versions(s, i as i32).expect("within the override");
    }
    let mut extra = connect(&broker);
    let closed = wait_closed(&mut extra, Duration::from_secs(10)).expect("the 4th is closed");
    assert!(closed < Duration::from_secs(2), "closed after {closed:?}");
    for (i, s) in first.iter_mut().enumerate() {
        api_versions(s, 10 + i as i32).expect("the first three keep working");
    }
    assert_eq!(
        broker.metric("kafka_server_socketservermetrics_connection_broker_close_total{listener=\"PLAINTEXT\",reason=\"per_ip_limit\"}"
        ),
        1.0
    );
    // A close frees a place.
    drop(first.pop());
    wait_open_connections(&broker, 2);
    let mut again = connect(&broker);
    api_versions(&mut again, 20).expect("a freed place is usable");
}

/// A connection to the broker made from `source`, another loopback address (all of
/// 127.0.0.0/8 is this host's), so a per-address quota can be tried on it alone.
fn connect_from(source: [u8; 4], broker: &BrokerProcess) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    let stream = runtime
        .block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind((source, 0).into())?;
            socket.connect(([127, 0, 0, 1], broker.port).into()).await
        })
        .expect("connect from another loopback address");
    let stream = runtime
        .block_on(async { stream.into_std() })
        .expect("std stream");
    stream.set_nonblocking(false).expect("blocking");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    stream
}

/// Sets `connection_creation_rate` for the IP entity `ip` (an address or a host name).
fn set_ip_connection_rate(broker: &BrokerProcess, ip: &str, rate: f64) {
    use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
    use kafka_protocol::messages::AlterClientQuotasRequest;

    let quota = AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
        .with_entity(vec![EntityData::default()
            .with_entity_type(StrBytes::from_static_str("ip"))
            .with_entity_name(Some(StrBytes::from_string(ip.to_string())))])
        .with_ops(vec![OpData::default()
            .with_key(StrBytes::from_static_str("connection_creation_rate"))
            .with_value(rate)])]);
    let answer = common::cluster::call(broker.port, 1, &quota);
    assert_eq!(answer.entries[0].error_code, 0, "{answer:?}");
}

#[test]
fn new_connections_are_held_to_their_ip_connection_rate() {
    let broker = BrokerProcess::start(&[]);
    // connection_creation_rate=2 for 127.0.0.2 only, set from 127.0.0.1.
    set_ip_connection_rate(&broker, "127.0.0.2", 2.0);

    // Kafka's rate counts a young sensor as spanning quota.window.num - 1 windows (10 s):
    // at 2/s, 20 connections fit at once.
    let limited = [127, 0, 0, 2];
    let mut served: Vec<TcpStream> = (0..20).map(|_| connect_from(limited, &broker)).collect();
    for (i, s) in served.iter_mut().enumerate() {
        api_versions(s, i as i32)
            .unwrap_or_else(|e| panic!("connection {} not served: {e}", i + 1));
    }
    // The 21st is accepted but not served, and closed after its throttle time:
    // (2.1 - 2) / 2 × 10 s = 500 ms.
    let mut over = connect_from(limited, &broker);
    let frame = request_frame(
        99,
        2,
        &RequestKind::ApiVersions(ApiVersionsRequest::default()),
    );
    over.write_all(&frame).expect("the request is sent");
    let closed = wait_closed(&mut over, Duration::from_secs(10))
        .expect("the connection over the rate is closed");
    assert!(
        (Duration::from_millis(300)..Duration::from_secs(3)).contains(&closed),
        "closed after {closed:?}, not after the 500 ms throttle time"
    );
    assert_eq!(
        broker.metric("kafka_server_socketservermetrics_connection_broker_close_total{listener=\"PLAINTEXT\",reason=\"ip_connection_rate\"}"),
        1.0
    );
    // Other addresses have no quota; the served connections keep being served.
    let mut other = connect(&broker);
    api_versions(&mut other, 1).expect("127.0.0.1 has no quota");
    for (i, s) in served.iter_mut().enumerate() {
        api_versions(s, 100 + i as i32).expect("an admitted connection stays served");
    }
}

#[test]
fn an_ip_quota_named_by_a_host_name_holds_the_addresses_it_resolves_to() {
    let broker = BrokerProcess::start(&[]);
    set_ip_connection_rate(&broker, "localhost", 2.0);
    // The broker resolves the name once the quota is applied, in the background; until
    // then connections from 127.0.0.1 are not counted. From then on 20 fit, as for an
    // address, and the next one is closed unserved.
    let mut served = Vec::new();
    wait_for(
        "a connection from 127.0.0.1 closed over localhost's rate",
        Duration::from_secs(30),
        || {
            let mut stream = connect(&broker);
            match api_versions(&mut stream, served.len() as i32) {
                Ok(()) => {
                    served.push(stream);
                    None
                }
                Err(_) => Some(()),
            }
        },
    );
    assert!(
        served.len() >= 20,
        "closed after {} connections, within the 20 a fresh rate of 2/s allows",
        served.len()
    );
    assert_eq!(
        broker.metric("kafka_server_socketservermetrics_connection_broker_close_total{listener=\"PLAINTEXT\",reason=\"ip_connection_rate\"}"),
        1.0
    );
    // 127.0.0.2 is not what localhost resolves to: no quota there.
    let mut other = connect_from([127, 0, 0, 2], &broker);
    api_versions(&mut other, 1).expect("127.0.0.2 has no quota");
    for (i, s) in served.iter_mut().enumerate() {
        api_versions(s, 100 + i as i32).expect("an admitted connection stays served");
    }
}

#[test]
fn new_connections_wait_for_the_broker_connection_creation_rate() {
    let broker = BrokerProcess::start(&[("max.connection.creation.rate", "2")]);
    // As for the IP quota: a young rate spans 10 windows, so 20 connections fit at once.
    let mut served: Vec<TcpStream> = (0..20).map(|_| connect(&broker)).collect();
    for (i, s) in served.iter_mut().enumerate() {
        api_versions(s, i as i32)
            .unwrap_or_else(|e| panic!("connection {} not served: {e}", i + 1));
    }
    // The 21st is held for its throttle time, (2.1 - 2) / 2 × 10 s = 500 ms, then served
    // (Kafka's acceptor waits; it does not close the connection).
    let started = Instant::now();
    let mut held = connect(&broker);
    api_versions(&mut held, 21).expect("the connection over the rate is served after its wait");
    let waited = started.elapsed();
    assert!(
        (Duration::from_millis(300)..Duration::from_secs(3)).contains(&waited),
        "answered after {waited:?}, not after the 500 ms throttle time"
    );
    let blocked =
        broker.metric("kafka_network_acceptor_acceptorblockedpercent{listener=\"PLAINTEXT\"}");
    assert!(blocked >= 300e6, "acceptor blocked for {blocked} ns");
    for (i, s) in served.iter_mut().enumerate() {
        api_versions(s, 100 + i as i32).expect("an admitted connection stays served");
    }
}

#[test]
fn max_connections_blocks_the_acceptor_until_one_closes() {
    let broker = BrokerProcess::start(&[("max.connections", "2")]);
    let mut a = connect(&broker);
    let mut b = connect(&broker);
    api_versions(&mut a, 1).expect("first");
    api_versions(&mut b, 1).expect("second");

    // The third connects (the kernel queues it) but is not served...
    let mut c = connect(&broker);
    let frame = request_frame(
        1,
        2,
        &RequestKind::ApiVersions(ApiVersionsRequest::default()),
    );
    c.write_all(&frame).expect("request queued in the socket");
    c.set_read_timeout(Some(Duration::from_millis(1500)))
        .expect("read timeout");
    let mut byte = [0u8; 1];
    match c.read(&mut byte) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("a connection over max.connections was served or closed: {other:?}"),
    }
    api_versions(&mut a, 2).expect("the first two keep working");

    // ...until one closes: then it is accepted and its queued request answered.
    drop(b);
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    read_response(&mut c, 1).expect("the queued request is answered");
    assert!(
        broker.metric("kafka_network_acceptor_acceptorblockedpercent{listener=\"PLAINTEXT\"}")
            > 0.0
    );
}

// ---------------------------------------------------------------------------------------
// Memory

#[test]
fn idle_connections_cost_little_memory_and_give_it_back() {
    const CONNECTIONS: usize = 2000;
    assert!(
        raise_fd_limit() > CONNECTIONS as u64 + 100,
        "open file limit too low"
    );
    let broker = BrokerProcess::start(&[]);
    // Warm up: the first connections size the runtime's tables.
    let warm: Vec<TcpStream> = (0..50).map(|_| connect(&broker)).collect();
    wait_open_connections(&broker, 50);
    drop(warm);
    wait_open_connections(&broker, 0);
    let before = rss(&broker);

    let conns: Vec<TcpStream> = (0..CONNECTIONS).map(|_| connect(&broker)).collect();
    wait_open_connections(&broker, CONNECTIONS);
    let with = rss(&broker);
    let per_connection = with.saturating_sub(before) / CONNECTIONS as u64;
    eprintln!("RSS before {before}, with {CONNECTIONS} idle connections {with}: {per_connection} bytes each");
    assert!(
        per_connection <= 10 * 1024,
        "{per_connection} bytes per idle connection (RSS {before} -> {with})"
    );

    drop(conns);
    wait_open_connections(&broker, 0);
    // Without handing memory back, 2,000 closed connections leave 3.5 MB behind.
    let limit = before + 2 * 1024 * 1024;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut after = rss(&broker);
    while after > limit {
        assert!(
            Instant::now() < deadline,
            "RSS {after} after closing, more than 2 MiB over {before}"
        );
        std::thread::sleep(Duration::from_millis(100));
        after = rss(&broker);
    }
    eprintln!("RSS after closing them: {after}");
}

/// A Fetch v11 of partition 0 of `topic` from `offset`, up to `max_bytes`.
fn fetch(topic: &'static str, offset: i64, max_bytes: i32, max_wait_ms: i32) -> RequestKind {
    RequestKind::Fetch(
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str(topic)))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(max_bytes)])]),
    )
}

/// Produces 400 records of 20 KB (8 MB) into `topic`.
fn fill(broker: &BrokerProcess, topic: &str) {
    let value = vec![7u8; 20 * 1024];
    let records: Vec<Rec> = (0..400)
        .map(|_| Rec {
            key: None,
            value: value.clone(),
            timestamp: None,
            partition: None,
        })
        .collect();
    produce(&broker.bootstrap(), topic, &[], &records);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let broker = BrokerProcess::start(&[]);
    fill(&broker, "ordered");
    // A long poll at the log end first, then large fetches (over the unsent-bytes bound,
    // so reading pauses and resumes) between small requests, all sent at once.
    let mut requests = vec![fetch("ordered", 400, 1 << 20, 300)];
    for _ in 0..10 {
        requests.push(fetch("ordered", 0, 4 << 20, 0));
        requests.push(RequestKind::ApiVersions(ApiVersionsRequest::default()));
    }
    let mut stream = connect(&broker);
    let mut bytes = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        let version = if matches!(r, RequestKind::Fetch(_)) {
            11
        } else {
            2
        };
        bytes.extend_from_slice(&request_frame(i as i32, version, r));
    }
    stream.write_all(&bytes).expect("send all requests");
    for i in 0..requests.len() {
        read_response(&mut stream, i as i32).expect("responses come back in request order");
    }
}

#[test]
fn a_consumer_that_never_reads_cannot_grow_broker_memory() {
    let broker = BrokerProcess::start(&[]);
    fill(&broker, "unread");
    let fetches = |b: &BrokerProcess| {
        b.metric("kafka_network_requestmetrics_requests_total{request=\"Fetch\"}")
    };
    let before = rss(&broker);

    // 1,000 pipelined fetches of up to 4 MB each; the answers are never read. A thread
    // writes them because the broker stops reading once answers pile up.
    let request = fetch("unread", 0, 4 << 20, 0);
    let hostile = connect(&broker);
    let mut writer_half = hostile.try_clone().expect("clone socket");
    let writer = std::thread::spawn(move || {
        for correlation in 0..1000 {
            let frame = request_frame(correlation, 11, &request);
            if writer_half.write_all(&frame).is_err() {
                return;
            }
        }
    });

    // Wait until the broker stops taking fetches off this connection.
    let mut last = (fetches(&broker), Instant::now());
    wait_for("fetch handling to pause", Duration::from_secs(60), || {
        let now = fetches(&broker);
        if now != last.0 {
            last = (now, Instant::now());
        }
        (now >= 1.0 && last.1.elapsed() > Duration::from_secs(2)).then_some(())
    });
    let handled = last.0;
    let growth = rss(&broker).saturating_sub(before);
    eprintln!("{handled} fetches handled, RSS grew by {growth} bytes");
    // The old writer queue took 16 answers (64 MB here) before it stopped reading.
    assert!(
        handled < 10.0,
        "{handled} fetches handled without their answers read"
    );
    assert!(
        growth < 24 * 1024 * 1024,
        "RSS grew by {growth} bytes for unread answers"
    );

    // Other clients are still served, fetches included.
    let mut other = connect(&broker);
    api_versions(&mut other, 1).expect("another client is served");
    other
        .write_all(&request_frame(2, 11, &fetch("unread", 0, 1024, 0)))
        .expect("send fetch");
    read_response(&mut other, 2).expect("a fetch on another connection is answered");

    let _ = hostile.shutdown(Shutdown::Both);
    writer.join().expect("writer thread");
}
