//! Malformed and hostile request frames, fed through `FrameHarness` (the same
//! `protocol::handle_frame` a connection uses). For every case the broker must not panic,
//! must close the connection with a reason naming the problem, answer with the exact Kafka
//! error code, or (bytes after a complete request) answer as Kafka does, and must
//! afterwards still answer ApiVersions and Metadata correctly: a bad frame costs one
//! connection, never the broker.
//!
//! The checked-in corpus lives in `tests/corpus/malformed/` (one frame body per file, no
//! size prefix; each file's expectation is in `CORPUS` below) and `tests/corpus/crashes/`
//! (size-prefixed frame streams that killed the process, or ate its memory, when they
//! were found; each runs in a bounded child process). Regenerate the built files with
//! `cargo test -p strom-broker --test malformed_frames -- --ignored regenerate_corpus`.

use std::path::{Path, PathBuf};

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use strom_broker::harness::FrameHarness;
use strom_test_support::records;

/// The same allocator the broker binary runs with: it is what keeps the crash corpus below
/// (hostile array counts) from aborting the process.
#[global_allocator]
static ALLOCATOR: strom_broker::alloc::LazyLargeAlloc = strom_broker::alloc::LazyLargeAlloc;
use strom_broker::net::frame::{read_frame, FrameError};
use strom_broker::protocol::Reply;

// Kafka error codes, spelled out so a change in any mapping shows up here.
const CORRUPT_MESSAGE: i16 = 2;
const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const INVALID_REQUIRED_ACKS: i16 = 21;
const UNSUPPORTED_VERSION: i16 = 35;
const ILLEGAL_SASL_STATE: i16 = 34;
const INVALID_REPLICATION_FACTOR: i16 = 38;

const TIMESTAMP: i64 = 1_700_000_000_000;

// ---------------------------------------------------------------------------------------
// Harness and codec helpers

/// A broker over a temporary data dir (dropped after the harness).
struct TestBroker {
    harness: FrameHarness,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for TestBroker {
    type Target = FrameHarness;
    fn deref(&self) -> &FrameHarness {
        &self.harness
    }
}

fn start(extra: &[(&str, &str)]) -> TestBroker {
    let dir = tempfile::tempdir().expect("temp dir");
    let harness = FrameHarness::new(dir.path(), extra).expect("start the in-process broker");
    TestBroker { harness, _dir: dir }
}

fn str(s: &'static str) -> StrBytes {
    StrBytes::from_static_str(s)
}

fn topic(s: &'static str) -> TopicName {
    TopicName(str(s))
}

/// A request frame body: header (at the version the API requires) plus request.
fn request<R: Encodable>(api_key: ApiKey, version: i16, correlation_id: i32, body: &R) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(str("malformed-frames")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, api_key.request_header_version(version))
        .expect("encode header");
    body.encode(&mut buf, version).expect("encode request");
    buf.to_vec()
}

fn size_prefixed(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn correlation_id_of(frame: &[u8]) -> i32 {
    i32::from_be_bytes(frame[4..8].try_into().unwrap())
}

/// Checks the framing of a response and returns the body after the response header.
fn response_body(reply: Reply, header_version: i16, correlation_id: i32) -> Bytes {
    let frame = match reply {
        Reply::Frame(f) => f,
        other => panic!("expected a response frame, got {other:?}"),
    };
    let mut buf = frame.clone();
    let size = buf.get_i32();
    assert_eq!(
        size as usize,
        buf.remaining(),
        "size prefix disagrees with the frame"
    );
    let header = ResponseHeader::decode(&mut buf, header_version).expect("decode response header");
    assert_eq!(
        header.correlation_id, correlation_id,
        "correlation id not echoed"
    );
    buf
}

/// Decodes a whole response frame as `R` at `version`; every byte must be consumed.
fn decode_response<R: Decodable>(
    reply: Reply,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
) -> R {
    let mut body = response_body(
        reply,
        api_key.response_header_version(version),
        correlation_id,
    );
    let response = R::decode(&mut body, version).expect("decode response body");
    assert!(
        !body.has_remaining(),
        "{} bytes left after the response",
        body.remaining()
    );
    response
}

/// Sends a valid request and decodes its response.
fn roundtrip<Q: Encodable, R: Decodable>(
    h: &FrameHarness,
    api_key: ApiKey,
    version: i16,
    req: &Q,
) -> R {
    let frame = request(api_key, version, 4242, req);
    decode_response(h.handle(&frame), api_key, version, 4242)
}

fn expect_close(reply: Reply, needle: &str) -> String {
    match reply {
        Reply::Close(reason) => {
            assert!(
                reason.contains(needle),
                "close reason {reason:?} does not mention {needle:?}"
            );
            reason
        }
        other => panic!("expected the connection to close ({needle}), got {other:?}"),
    }
}

/// The broker keeps serving: ApiVersions and Metadata answer correctly.
fn assert_still_serving(h: &FrameHarness) {
    let api: ApiVersionsResponse = roundtrip(
        h,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(str("malformed-frames"))
            .with_client_software_version(str("1.0")),
    );
    assert_eq!(api.error_code, 0, "ApiVersions error");
    for (key, version) in [
        (ApiKey::ApiVersions, 3),
        (ApiKey::Metadata, 9),
        (ApiKey::Produce, 9),
    ] {
        assert!(
            api.api_keys.iter().any(|k| k.api_key == key as i16
                && k.min_version <= version
                && version <= k.max_version),
            "ApiVersions does not advertise {key:?} v{version}: {:?}",
            api.api_keys
        );
    }

    let md: MetadataResponse = roundtrip(
        h,
        ApiKey::Metadata,
        9,
        &MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic("still-serving")))
            ]))
            .with_allow_auto_topic_creation(true),
    );
    assert_eq!(md.brokers.len(), 1, "brokers: {:?}", md.brokers);
    assert_eq!(md.brokers[0].node_id, BrokerId(0));
    assert!(md.brokers[0].port > 0);
    assert_eq!(md.controller_id, BrokerId(0));
    assert_eq!(md.topics.len(), 1, "topics: {:?}", md.topics);
    let t = &md.topics[0];
    assert_eq!(t.name.as_ref().map(|n| n.0.as_str()), Some("still-serving"));
    // Auto-creation answers at once: LEADER_NOT_AVAILABLE (5) while the topic is being
    // created in the background, as Kafka does; a later call finds it created.
    if t.error_code == 5 {
        assert!(t.partitions.is_empty(), "partitions: {:?}", t.partitions);
        return;
    }
    assert_eq!(t.error_code, 0, "still-serving topic error");
    assert_eq!(t.partitions.len(), 1);
    assert_eq!(t.partitions[0].error_code, 0);
    assert_eq!(t.partitions[0].leader_id, BrokerId(0));
}

// ---------------------------------------------------------------------------------------
// Request builders (also what `regenerate_corpus` writes)

fn record_batch(value_len: usize) -> BytesMut {
    let batch = records::encode_batch(&[records::record(
        0,
        TIMESTAMP,
        Some(Bytes::from_static(b"k")),
        Some(Bytes::from(vec![b'v'; value_len])),
    )]);
    BytesMut::from(&batch[..])
}

fn produce(topic_name: &'static str, acks: i16, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(1000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic(topic_name))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
}

fn api_versions_v3() -> Vec<u8> {
    request(
        ApiKey::ApiVersions,
        3,
        1,
        &ApiVersionsRequest::default()
            .with_client_software_name(str("malformed-frames"))
            .with_client_software_version(str("1.0")),
    )
}

fn metadata_v9() -> Vec<u8> {
    request(
        ApiKey::Metadata,
        9,
        2,
        &MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic("some-topic")))
            ]))
            .with_allow_auto_topic_creation(false),
    )
}

fn produce_v9_valid() -> Vec<u8> {
    request(
        ApiKey::Produce,
        9,
        3,
        &produce("valid", 1, record_batch(10).freeze()),
    )
}

fn create_topics_v5(name: &'static str, partitions: i32, replication_factor: i16) -> Vec<u8> {
    request(
        ApiKey::CreateTopics,
        5,
        4,
        &CreateTopicsRequest::default()
            .with_timeout_ms(1000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic(name))
                .with_num_partitions(partitions)
                .with_replication_factor(replication_factor)]),
    )
}

fn build_empty() -> Vec<u8> {
    Vec::new()
}

fn build_three_bytes() -> Vec<u8> {
    vec![0, 18, 0]
}

fn build_unknown_api_key_999() -> Vec<u8> {
    // api key 999, version 0, correlation id 5, null client id.
    let mut f = Vec::new();
    f.extend_from_slice(&999i16.to_be_bytes());
    f.extend_from_slice(&0i16.to_be_bytes());
    f.extend_from_slice(&5i32.to_be_bytes());
    f.extend_from_slice(&(-1i16).to_be_bytes());
    f
}

fn build_metadata_v9_truncated_body() -> Vec<u8> {
    let mut f = metadata_v9();
    f.truncate(f.len() - 3);
    f
}

fn build_api_versions_v3_truncated_header() -> Vec<u8> {
    // The client id claims 16 bytes; 3 follow.
    let mut f = Vec::new();
    f.extend_from_slice(&18i16.to_be_bytes());
    f.extend_from_slice(&3i16.to_be_bytes());
    f.extend_from_slice(&6i32.to_be_bytes());
    f.extend_from_slice(&16i16.to_be_bytes());
    f.extend_from_slice(b"abc");
    f
}

fn build_api_versions_v3_trailing_garbage() -> Vec<u8> {
    let mut f = api_versions_v3();
    f.extend_from_slice(b"\xde\xad\xbe\xef garbage");
    f
}

fn build_metadata_v1_negative_array_length() -> Vec<u8> {
    // Metadata v1 topics: a nullable int32-counted array; -1 is null, -5 is nothing.
    let mut f = request(
        ApiKey::Metadata,
        1,
        7,
        &MetadataRequest::default().with_topics(Some(vec![])),
    );
    let n = f.len();
    f[n - 4..].copy_from_slice(&(-5i32).to_be_bytes());
    f
}

fn build_metadata_v1_invalid_utf8_topic() -> Vec<u8> {
    let mut f = request(
        ApiKey::Metadata,
        1,
        8,
        &MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic("abcd")))
        ])),
    );
    let n = f.len();
    f[n - 4..].copy_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
    f
}

fn build_fetch_v99() -> Vec<u8> {
    let mut f = request(ApiKey::Fetch, 12, 9, &FetchRequest::default());
    f[2..4].copy_from_slice(&99i16.to_be_bytes());
    f
}

fn build_api_versions_v99() -> Vec<u8> {
    // What a client newer than the broker sends: header v2 and a v3-shaped body.
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(99)
        .with_correlation_id(10)
        .with_client_id(Some(str("future-client")));
    let mut buf = BytesMut::new();
    header.encode(&mut buf, 2).unwrap();
    ApiVersionsRequest::default()
        .with_client_software_name(str("future-client"))
        .with_client_software_version(str("9.9"))
        .encode(&mut buf, 3)
        .unwrap();
    buf.to_vec()
}

fn build_describe_delegation_token_v3() -> Vec<u8> {
    request(
        ApiKey::DescribeDelegationToken,
        3,
        11,
        &DescribeDelegationTokenRequest::default().with_owners(Some(vec![
            describe_delegation_token_request::DescribeDelegationTokenOwner::default()
                .with_principal_type(str("User"))
                .with_principal_name(str("alice")),
        ])),
    )
}

fn build_sasl_handshake_v1() -> Vec<u8> {
    request(
        ApiKey::SaslHandshake,
        1,
        12,
        &SaslHandshakeRequest::default().with_mechanism(str("PLAIN")),
    )
}

fn build_alter_replica_log_dirs_v1() -> Vec<u8> {
    request(
        ApiKey::AlterReplicaLogDirs,
        1,
        13,
        &AlterReplicaLogDirsRequest::default().with_dirs(vec![
            alter_replica_log_dirs_request::AlterReplicaLogDir::default()
                .with_path(str("/data/other"))
                .with_topics(vec![
                    alter_replica_log_dirs_request::AlterReplicaLogDirTopic::default()
                        .with_name(TopicName(str("t")))
                        .with_partitions(vec![0]),
                ]),
        ]),
    )
}

fn build_produce_v9_crc_flipped() -> Vec<u8> {
    let mut batch = record_batch(10);
    batch[17] ^= 0x01; // first byte of the CRC-32C
    request(
        ApiKey::Produce,
        9,
        14,
        &produce("crc-test", -1, batch.freeze()),
    )
}

fn build_produce_v9_batch_over_message_max_bytes() -> Vec<u8> {
    // A 300-byte value makes a batch well over message.max.bytes=200.
    request(
        ApiKey::Produce,
        9,
        15,
        &produce("large-test", -1, record_batch(300).freeze()),
    )
}

fn build_produce_v9_invalid_topic_name() -> Vec<u8> {
    request(
        ApiKey::Produce,
        9,
        16,
        &produce("bad/name", -1, record_batch(10).freeze()),
    )
}

fn build_produce_v9_acks_5() -> Vec<u8> {
    request(
        ApiKey::Produce,
        9,
        17,
        &produce("acks-test", 5, record_batch(10).freeze()),
    )
}

fn build_create_topics_v5_replication_factor_3() -> Vec<u8> {
    create_topics_v5("rf-test", 1, 3)
}

// ---------------------------------------------------------------------------------------
// The checked-in corpus and what each file must produce

#[derive(Debug, Clone, Copy)]
enum Expect {
    /// The connection closes with a reason containing this text.
    Close(&'static str),
    /// ApiVersions at an unknown version: v0-shaped answer, UNSUPPORTED_VERSION, API list.
    ApiVersionsV0Unsupported,
    /// Answered as the valid request it starts with: bytes after a fully decoded request
    /// are ignored, as Kafka's brokers do (librdkafka relies on it).
    ApiVersionsV3Answered,
    /// A response whose (single) error code is exactly this.
    Error(ApiKey, i16, i16),
}

/// Builds a corpus file's bytes.
type Builder = fn() -> Vec<u8>;

struct CorpusCase {
    file: &'static str,
    extra: &'static [(&'static str, &'static str)],
    build: Builder,
    expect: Expect,
}

const CORPUS: &[CorpusCase] = &[
    CorpusCase {
        file: "empty.bin",
        extra: &[],
        build: build_empty,
        expect: Expect::Close("frame of 0 bytes is too short"),
    },
    CorpusCase {
        file: "three_bytes.bin",
        extra: &[],
        build: build_three_bytes,
        expect: Expect::Close("frame of 3 bytes is too short"),
    },
    CorpusCase {
        file: "unknown_api_key_999.bin",
        extra: &[],
        build: build_unknown_api_key_999,
        expect: Expect::Close("unknown api key 999"),
    },
    CorpusCase {
        file: "metadata_v9_truncated_body.bin",
        extra: &[],
        build: build_metadata_v9_truncated_body,
        expect: Expect::Close("malformed Metadata v9 request"),
    },
    CorpusCase {
        file: "api_versions_v3_truncated_header.bin",
        extra: &[],
        build: build_api_versions_v3_truncated_header,
        expect: Expect::Close("malformed ApiVersions v3 header"),
    },
    CorpusCase {
        file: "api_versions_v3_trailing_garbage.bin",
        extra: &[],
        build: build_api_versions_v3_trailing_garbage,
        expect: Expect::ApiVersionsV3Answered,
    },
    CorpusCase {
        file: "metadata_v1_negative_array_length.bin",
        extra: &[],
        build: build_metadata_v1_negative_array_length,
        expect: Expect::Close("malformed Metadata v1 request"),
    },
    CorpusCase {
        file: "metadata_v1_invalid_utf8_topic.bin",
        extra: &[],
        build: build_metadata_v1_invalid_utf8_topic,
        expect: Expect::Close("malformed Metadata v1 request"),
    },
    CorpusCase {
        file: "fetch_v99.bin",
        extra: &[],
        build: build_fetch_v99,
        expect: Expect::Close("Fetch v99 is outside every version this broker can decode"),
    },
    CorpusCase {
        file: "alter_replica_log_dirs_v1_unserved.bin",
        extra: &[],
        build: build_alter_replica_log_dirs_v1,
        expect: Expect::Close("AlterReplicaLogDirs v1 is not served by this broker"),
    },
    CorpusCase {
        file: "api_versions_v99.bin",
        extra: &[],
        build: build_api_versions_v99,
        expect: Expect::ApiVersionsV0Unsupported,
    },
    CorpusCase {
        file: "describe_delegation_token_v3_unserved.bin",
        extra: &[],
        build: build_describe_delegation_token_v3,
        expect: Expect::Error(ApiKey::DescribeDelegationToken, 3, UNSUPPORTED_VERSION),
    },
    CorpusCase {
        // Kafka answers SaslHandshake on a listener without SASL with ILLEGAL_SASL_STATE.
        file: "sasl_handshake_v1_on_plaintext.bin",
        extra: &[],
        build: build_sasl_handshake_v1,
        expect: Expect::Error(ApiKey::SaslHandshake, 1, ILLEGAL_SASL_STATE),
    },
    CorpusCase {
        file: "produce_v9_crc_flipped.bin",
        extra: &[],
        build: build_produce_v9_crc_flipped,
        expect: Expect::Error(ApiKey::Produce, 9, CORRUPT_MESSAGE),
    },
    CorpusCase {
        file: "produce_v9_batch_over_message_max_bytes_200.bin",
        extra: &[("message.max.bytes", "200")],
        build: build_produce_v9_batch_over_message_max_bytes,
        expect: Expect::Error(ApiKey::Produce, 9, MESSAGE_TOO_LARGE),
    },
    CorpusCase {
        file: "produce_v9_invalid_topic_name.bin",
        extra: &[],
        build: build_produce_v9_invalid_topic_name,
        expect: Expect::Error(ApiKey::Produce, 9, INVALID_TOPIC_EXCEPTION),
    },
    CorpusCase {
        file: "produce_v9_acks_5.bin",
        extra: &[],
        build: build_produce_v9_acks_5,
        expect: Expect::Error(ApiKey::Produce, 9, INVALID_REQUIRED_ACKS),
    },
    CorpusCase {
        file: "create_topics_v5_replication_factor_3.bin",
        extra: &[],
        build: build_create_topics_v5_replication_factor_3,
        expect: Expect::Error(ApiKey::CreateTopics, 5, INVALID_REPLICATION_FACTOR),
    },
];

fn corpus_dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(sub)
}

/// The single error code a response carries for these cases.
fn error_code(api: ApiKey, version: i16, reply: Reply, correlation_id: i32) -> i16 {
    match api {
        ApiKey::DescribeDelegationToken => {
            decode_response::<DescribeDelegationTokenResponse>(reply, api, version, correlation_id)
                .error_code
        }
        ApiKey::SaslHandshake => {
            decode_response::<SaslHandshakeResponse>(reply, api, version, correlation_id).error_code
        }
        ApiKey::Produce => {
            let r: ProduceResponse = decode_response(reply, api, version, correlation_id);
            assert_eq!(r.responses.len(), 1, "{r:?}");
            let parts = &r.responses[0].partition_responses;
            assert_eq!(parts.len(), 1, "{r:?}");
            assert_eq!(parts[0].index, 0);
            if parts[0].error_code != 0 {
                assert_eq!(parts[0].base_offset, -1, "a refused batch has no offset");
                assert!(
                    parts[0].error_message.is_some(),
                    "refusal without a message"
                );
            }
            parts[0].error_code
        }
        ApiKey::CreateTopics => {
            let r: CreateTopicsResponse = decode_response(reply, api, version, correlation_id);
            assert_eq!(r.topics.len(), 1, "{r:?}");
            r.topics[0].error_code
        }
        other => panic!("no error-code reader for {other:?}"),
    }
}

fn check(case: &str, h: &FrameHarness, frame: &[u8], expect: Expect) {
    let reply = h.handle(frame);
    match expect {
        Expect::Close(needle) => {
            expect_close(reply, needle);
        }
        Expect::ApiVersionsV0Unsupported => {
            // v0 shape: header v0 (correlation id only), then ApiVersionsResponse v0.
            let mut body = response_body(reply, 0, correlation_id_of(frame));
            let r = ApiVersionsResponse::decode(&mut body, 0).expect("decode as ApiVersions v0");
            assert!(!body.has_remaining(), "{case}: not a v0-shaped response");
            assert_eq!(r.error_code, UNSUPPORTED_VERSION, "{case}");
            let api_versions = r
                .api_keys
                .iter()
                .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                .expect("the list names ApiVersions");
            assert_eq!(api_versions.min_version, 0, "{case}");
            assert!(api_versions.max_version >= 3, "{case}");
            assert!(r
                .api_keys
                .iter()
                .any(|k| k.api_key == ApiKey::Metadata as i16));
            assert!(r
                .api_keys
                .iter()
                .any(|k| k.api_key == ApiKey::Produce as i16));
        }
        Expect::ApiVersionsV3Answered => {
            let r: ApiVersionsResponse =
                decode_response(reply, ApiKey::ApiVersions, 3, correlation_id_of(frame));
            assert_eq!(r.error_code, 0, "{case}");
            assert!(
                r.api_keys
                    .iter()
                    .any(|k| k.api_key == ApiKey::Produce as i16),
                "{case}"
            );
        }
        Expect::Error(api, version, code) => {
            let got = error_code(api, version, reply, correlation_id_of(frame));
            assert_eq!(got, code, "{case}: error code");
        }
    }
    assert_still_serving(h);
}

#[test]
fn malformed_corpus() {
    let dir = corpus_dir("malformed");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = CORPUS.iter().map(|c| c.file.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "corpus files and CORPUS entries differ");

    for case in CORPUS {
        let frame = std::fs::read(dir.join(case.file)).unwrap();
        assert!(frame.len() < 1024, "{}: keep corpus files small", case.file);
        let h = start(case.extra);
        check(case.file, &h, &frame, case.expect);
    }
}

/// The same cases built in code, all through one broker (except the one that needs its
/// own config), so a bad frame never leaves state that breaks the next.
#[test]
fn malformed_cases_built_in_code_share_one_broker() {
    let h = start(&[]);
    for case in CORPUS.iter().filter(|c| c.extra.is_empty()) {
        check(case.file, &h, &(case.build)(), case.expect);
    }
    // Valid requests still do what they should on that broker.
    let created = h.handle(&create_topics_v5("made-after-abuse", 2, 1));
    assert_eq!(error_code(ApiKey::CreateTopics, 5, created, 4), 0);
    assert_eq!(
        error_code(ApiKey::Produce, 9, h.handle(&produce_v9_valid()), 3),
        0
    );
}

#[test]
fn every_truncation_of_a_valid_request_closes() {
    let h = start(&[]);
    // Metadata asks for a topic with auto-creation off, so none of these creates one.
    let valid = [
        ("ApiVersions", api_versions_v3()),
        ("Metadata", metadata_v9()),
        ("Produce", produce_v9_valid()),
        ("CreateTopics", create_topics_v5("truncated", 1, 1)),
    ];
    for (name, frame) in &valid {
        for len in 0..frame.len() {
            match h.handle(&frame[..len]) {
                Reply::Close(reason) => assert!(!reason.is_empty()),
                other => panic!(
                    "{name} cut to {len} of {} bytes was answered: {other:?}",
                    frame.len()
                ),
            }
        }
    }
    assert_still_serving(&h);
    // Nothing above reached a handler: no topic was created.
    let md: MetadataResponse = roundtrip(
        &h,
        ApiKey::Metadata,
        9,
        &MetadataRequest::default().with_topics(None),
    );
    let names: Vec<&str> = md
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref())
        .map(|n| n.0.as_str())
        .collect();
    // (`still-serving` itself may still be on its way: auto-creation answers at once.)
    assert!(
        names.iter().all(|n| *n == "still-serving"),
        "topics: {names:?}"
    );
}

#[test]
fn every_byte_flip_of_a_produce_frame_is_survived() {
    // Not every flip is an error (a flipped key byte is still a valid record), but every
    // one must be answered or refused without harm.
    let h = start(&[]);
    let frame = produce_v9_valid();
    for i in 0..frame.len() {
        let mut bad = frame.clone();
        bad[i] ^= 0xff;
        match h.handle(&bad) {
            Reply::Frame(f) => {
                assert_eq!(&f[4..8], &bad[4..8], "byte {i}: correlation id");
            }
            Reply::Nothing => {
                assert_eq!(
                    i16::from_be_bytes([bad[0], bad[1]]),
                    0,
                    "byte {i}: only Produce may go unanswered"
                )
            }
            Reply::Close(reason) => assert!(!reason.is_empty()),
            Reply::Final(_) => panic!("byte {i}: only a failed authentication answers and closes"),
            Reply::Throttled(..) => panic!("byte {i}: no client quota is set"),
        }
    }
    assert_still_serving(&h);
}

// ---------------------------------------------------------------------------------------
// Framing: the size prefix against socket.request.max.bytes

fn read_all(stream: &[u8], max: i32) -> (Vec<Bytes>, Option<FrameError>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut reader = stream;
        let mut frames = Vec::new();
        loop {
            match read_frame(&mut reader, max).await {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => return (frames, None),
                Err(e) => return (frames, Some(e)),
            }
        }
    })
}

#[test]
fn size_prefix_over_socket_request_max_bytes_is_refused() {
    let h = start(&[("socket.request.max.bytes", "1000")]);
    let max = h.broker().config.socket_request_max_bytes;
    assert_eq!(max, 1000);

    // A valid request, then a frame claiming 1001 bytes: the first is read, the second
    // refused before its body is read.
    let mut stream = size_prefixed(&api_versions_v3());
    stream.extend_from_slice(&1001i32.to_be_bytes());
    stream.extend_from_slice(&[0u8; 1001]);
    let (frames, err) = read_all(&stream, max);
    assert_eq!(frames.len(), 1);
    match err {
        Some(FrameError::BadSize { size, max }) => assert_eq!((size, max), (1001, 1000)),
        other => panic!("expected BadSize for 1001 > 1000, got {other:?}"),
    }
    assert!(matches!(h.handle(&frames[0]), Reply::Frame(_)));

    // Exactly the limit is fine (and then handled like any other bad body).
    let mut at_limit = 1000i32.to_be_bytes().to_vec();
    at_limit.extend_from_slice(&[0u8; 1000]);
    let (frames, err) = read_all(&at_limit, max);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].len(), 1000);
    expect_close(h.handle(&frames[0]), "");

    // Negative sizes, and a body shorter than its prefix.
    let (_, err) = read_all(&(-1i32).to_be_bytes(), max);
    assert!(
        matches!(
            err,
            Some(FrameError::BadSize {
                size: -1,
                max: 1000
            })
        ),
        "{err:?}"
    );
    let (_, err) = read_all(&[0, 0, 0, 20, 1, 2, 3], max);
    assert!(matches!(err, Some(FrameError::Truncated(_))), "{err:?}");
    // i32::MAX is refused without trying to allocate it.
    let (_, err) = read_all(&i32::MAX.to_be_bytes(), max);
    assert!(matches!(err, Some(FrameError::BadSize { .. })), "{err:?}");

    assert_still_serving(&h);
}

// ---------------------------------------------------------------------------------------
// Inputs that once took the whole process down (tests/corpus/crashes/). An abort cannot be
// caught in-process, so each runs in a child process: this test binary, re-run with
// STROM_CRASH_INPUT naming the file and only `crash_corpus_child` selected.

#[test]
fn crash_corpus_child() {
    // A no-op unless started by `crash_corpus_runs_without_killing_the_broker`.
    let Ok(path) = std::env::var("STROM_CRASH_INPUT") else {
        return;
    };
    let stream = std::fs::read(&path).unwrap();
    let h = start(&[]);
    let (frames, _) = read_all(&stream, h.broker().config.socket_request_max_bytes);
    assert!(!frames.is_empty(), "{path}: no frame in the stream");
    for frame in frames {
        if let Reply::Close(reason) = h.handle(&frame) {
            assert!(!reason.is_empty());
            break;
        }
    }
    assert_still_serving(&h);
}

#[test]
fn crash_corpus_runs_without_killing_the_broker() {
    let exe = std::env::current_exe().unwrap();
    let mut failures = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir("crashes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for file in files {
        // Bounded in time, so an input that loops cannot hang the suite. (Not by address
        // space: the broker's allocator answers hostile counts with untouched
        // reservations, which a `ulimit -v` would refuse.)
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(r#"exec timeout 120 "$@""#)
            .arg("sh")
            .arg(&exe)
            .args([
                "crash_corpus_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("STROM_CRASH_INPUT", &file)
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !stdout.contains("1 passed") {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let why = stderr
                .lines()
                .find(|l| l.contains("memory allocation of") || l.contains("panicked at"))
                .or_else(|| stderr.lines().last())
                .unwrap_or("");
            failures.push(format!("{}: {}: {why}", file.display(), out.status));
        }
    }
    assert!(
        failures.is_empty(),
        "inputs that kill the broker:\n{}",
        failures.join("\n")
    );
}

/// Produce a valid-CRC batch whose header claims i32::MAX records (the broker accepts it:
/// the count is only checked to be positive), then ListOffsets by timestamp, which decodes
/// the stored batch with kafka-protocol's `RecordBatchDecoder`.
fn build_records_count_i32_max_then_list_offsets() -> Vec<u8> {
    let mut batch = record_batch(10);
    batch[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    let mut stream = size_prefixed(&request(
        ApiKey::Produce,
        9,
        1,
        &produce("records-count", -1, batch.freeze()),
    ));
    stream.extend(size_prefixed(&request(
        ApiKey::ListOffsets,
        7,
        2,
        &ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic("records-count"))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(TIMESTAMP)])]),
    )));
    stream
}

fn build_metadata_v1_topic_array_len_i32_max() -> Vec<u8> {
    let mut f = request(
        ApiKey::Metadata,
        1,
        1,
        &MetadataRequest::default().with_topics(Some(vec![])),
    );
    let n = f.len();
    f[n - 4..].copy_from_slice(&i32::MAX.to_be_bytes());
    size_prefixed(&f)
}

fn build_create_topics_v5_compact_array_len_u32_max() -> Vec<u8> {
    // Header v2 with a null client id, then a compact array length of u32::MAX (varint).
    let mut f = Vec::new();
    f.extend_from_slice(&(ApiKey::CreateTopics as i16).to_be_bytes());
    f.extend_from_slice(&5i16.to_be_bytes());
    f.extend_from_slice(&1i32.to_be_bytes());
    f.extend_from_slice(&(-1i16).to_be_bytes());
    f.push(0); // no tagged fields in the header
    f.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    size_prefixed(&f)
}

fn build_create_topics_v5_num_partitions_i32_max() -> Vec<u8> {
    size_prefixed(&create_topics_v5("many-partitions", i32::MAX, 1))
}

fn build_create_partitions_v3_count_i32_max() -> Vec<u8> {
    let mut stream = size_prefixed(&create_topics_v5("grows", 1, 1));
    stream.extend(size_prefixed(&request(
        ApiKey::CreatePartitions,
        3,
        5,
        &CreatePartitionsRequest::default()
            .with_timeout_ms(1000)
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic("grows"))
                .with_count(i32::MAX)
                .with_assignments(None)]),
    )));
    stream
}

const CRASHES: &[(&str, Builder)] = &[
    (
        "create_topics_v5_num_partitions_i32_max.stream",
        build_create_topics_v5_num_partitions_i32_max,
    ),
    (
        "create_partitions_v3_count_i32_max.stream",
        build_create_partitions_v3_count_i32_max,
    ),
    (
        "metadata_v1_topic_array_len_i32_max.stream",
        build_metadata_v1_topic_array_len_i32_max,
    ),
    (
        "create_topics_v5_compact_array_len_u32_max.stream",
        build_create_topics_v5_compact_array_len_u32_max,
    ),
    (
        "produce_records_count_i32_max_then_list_offsets.stream",
        build_records_count_i32_max_then_list_offsets,
    ),
];

#[test]
#[ignore = "writes the corpus files; run by hand after changing a builder"]
fn regenerate_corpus() {
    let dir = corpus_dir("malformed");
    std::fs::create_dir_all(&dir).unwrap();
    for case in CORPUS {
        std::fs::write(dir.join(case.file), (case.build)()).unwrap();
    }
    let dir = corpus_dir("crashes");
    std::fs::create_dir_all(&dir).unwrap();
    for (file, build) in CRASHES {
        std::fs::write(dir.join(file), build()).unwrap();
    }
}
