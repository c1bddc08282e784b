//! The quorum's TCP transport: message types, the pooled client and the listener, over
//! plain TCP or whatever an application-given [`transport::Transport`] makes of it.
//!
//! Frames are length-delimited (`tokio_util`'s `LengthDelimitedCodec`) and carry JSON:
//! openraft's messages are serde types already, and this protocol is internal to Strom, so a
//! self-describing encoding that needs no schema code is worth its extra bytes.

pub(crate) mod client;
pub(crate) mod raft_network;
pub(crate) mod server;
pub mod transport;
pub(crate) mod wire;

use tokio_util::codec::LengthDelimitedCodec;

/// Largest frame either side accepts. The biggest message is a full snapshot of the
/// metadata state, far below this.
pub(crate) const MAX_FRAME_BYTES: usize = 256 * 1024 * 1024;

pub(crate) fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec()
}
