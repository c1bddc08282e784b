//! Shared pieces of Strom's fuzz targets: one in-process broker per fuzzing process, the
//! frame splitter the `frame_stream` target uses, the invariants every reply must keep,
//! and request builders for the seed corpus (`examples/gen_seeds.rs`).

use std::path::PathBuf;
use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};
use strom_broker::harness::FrameHarness;
use strom_broker::net::frame::{read_frame, FrameError};
use strom_broker::protocol::Reply;

/// `socket.request.max.bytes` of the fuzzed broker. Small, so a size prefix near the limit
/// costs a 1 MiB buffer rather than Kafka's default 100 MiB on every execution.
pub const MAX_REQUEST_BYTES: i32 = 1 << 20;

struct Fuzzed {
    harness: FrameHarness,
    dir: PathBuf,
}

static HARNESS: OnceLock<Fuzzed> = OnceLock::new();

/// The process's broker, with its data under `$TMPDIR/strom-fuzz/<pid>` (wiped at start;
/// left behind at exit for inspection, removed by the next run once that pid is gone).
pub fn harness() -> &'static FrameHarness {
    &HARNESS
        .get_or_init(|| {
            let root = std::env::temp_dir().join("strom-fuzz");
            remove_stale_dirs(&root);
            let dir = root.join(std::process::id().to_string());
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("create the fuzz broker's data dir");
            let max = MAX_REQUEST_BYTES.to_string();
            let harness = FrameHarness::new(&dir, &[("socket.request.max.bytes", &max)])
                .expect("start the in-process broker");
            Fuzzed { harness, dir }
        })
        .harness
}

/// Removes data dirs of fuzzing processes that no longer run (Linux: no `/proc/<pid>`).
fn remove_stale_dirs(root: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Where the process's broker keeps its data.
pub fn data_dir() -> Option<&'static PathBuf> {
    HARNESS.get().map(|f| &f.dir)
}

/// Splits a byte stream into request frames exactly as a connection does
/// (`net::frame::read_frame`); stops at the first framing error, as the connection would.
pub fn split_frames(stream: &[u8]) -> (Vec<Bytes>, Option<FrameError>) {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let rt = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("build the framing runtime")
    });
    rt.block_on(async {
        let mut reader = stream;
        let mut frames = Vec::new();
        loop {
            match read_frame(&mut reader, MAX_REQUEST_BYTES).await {
                Ok(Some(frame)) => {
                    assert!(
                        frame.len() <= MAX_REQUEST_BYTES as usize,
                        "frame over the limit"
                    );
                    frames.push(frame);
                }
                Ok(None) => return (frames, None),
                Err(e) => return (frames, Some(e)),
            }
        }
    })
}

/// What must hold for every reply, whatever the request: a response frame is well framed
/// and echoes the request's correlation id; only Produce may go unanswered (acks=0); a
/// close always says why. A throttled reply (a client over its quota) obeys the same.
pub fn check_reply(request: &[u8], reply: &Reply) {
    match reply {
        Reply::Frame(frame) | Reply::Throttled(Some(frame), _) => check_frame(request, frame),
        Reply::Nothing | Reply::Throttled(None, _) => {
            assert!(
                request.len() >= 2 && request[0..2] == [0, 0],
                "only Produce (acks=0) may go unanswered"
            );
        }
        Reply::Close(reason) => assert!(!reason.is_empty(), "connection closed without a reason"),
        Reply::Final(_) => panic!("only the SASL gate answers and closes, never a request handler"),
    }
}

fn check_frame(request: &[u8], frame: &[u8]) {
    assert!(frame.len() >= 8, "response frame of {} bytes", frame.len());
    let size = i32::from_be_bytes(frame[0..4].try_into().unwrap());
    assert_eq!(
        size as usize,
        frame.len() - 4,
        "size prefix disagrees with the frame"
    );
    assert!(
        request.len() >= 8,
        "a response to a frame too short for a header"
    );
    assert_eq!(
        &frame[4..8],
        &request[4..8],
        "response does not echo the correlation id"
    );
}

/// Encodes a request frame body (header + request, no size prefix).
pub fn request_body<R: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    request: &R,
) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("strom-fuzz")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, api_key.request_header_version(version))
        .expect("encode request header");
    request.encode(&mut buf, version).expect("encode request");
    buf.to_vec()
}

/// Prefixes a body with its 4-byte size, as on the wire.
pub fn with_size_prefix(body: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::with_capacity(body.len() + 4);
    buf.put_i32(body.len() as i32);
    buf.put_slice(body);
    buf.to_vec()
}

/// The broker binary's own allocator, so the fuzzer sees what production sees: a hostile
/// array count becomes an untouched reservation instead of an abort.
#[global_allocator]
static ALLOCATOR: strom_broker::alloc::LazyLargeAlloc = strom_broker::alloc::LazyLargeAlloc;
