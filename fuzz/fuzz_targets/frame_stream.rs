//! A raw byte stream as a client would send it: split into frames by
//! `strom_broker::net::frame::read_frame` (size prefixes, `socket.request.max.bytes`,
//! truncation), then each frame handled in order until the broker would close the
//! connection.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strom_broker::protocol::Reply;

fuzz_target!(|data: &[u8]| {
    let (frames, _error) = strom_fuzz::split_frames(data);
    let harness = strom_fuzz::harness();
    for frame in frames {
        let reply = harness.handle(&frame);
        strom_fuzz::check_reply(&frame, &reply);
        if matches!(reply, Reply::Close(_)) {
            break;
        }
    }
});
