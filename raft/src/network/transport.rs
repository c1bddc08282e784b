//! What a quorum connection runs over. Plain TCP unless the embedding application gives a
//! [`Transport`]: the broker wraps connections in TLS (and checks the peer's principal)
//! there, so this crate needs no TLS library and no idea of Kafka's security settings.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A connected byte stream (TCP, or TLS over TCP).
pub trait PeerStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> PeerStream for T {}

pub type BoxedStream = Box<dyn PeerStream>;
pub type BoxedFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Secures quorum connections in both directions. Both calls run under the caller's
/// deadline: a peer that stalls a handshake costs a timeout, not a stuck task.
pub trait Transport: Send + Sync + std::fmt::Debug + 'static {
    /// Wraps an outbound connection to `host` (the name from the voter list, for SNI and
    /// certificate checks). An error means the peer cannot be reached securely.
    fn connect(&self, stream: TcpStream, host: &str) -> BoxedFuture<std::io::Result<BoxedStream>>;

    /// Wraps an inbound connection from `peer`, or refuses it with the reason (logged by
    /// the listener, which then closes the connection).
    fn accept(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> BoxedFuture<Result<BoxedStream, String>>;
}

/// The host part of a `host:port` voter address (IPv6 brackets removed).
pub(crate) fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_of_voter_addresses() {
        assert_eq!(super::host_of("broker-0.example:9093"), "broker-0.example");
        assert_eq!(super::host_of("127.0.0.1:9093"), "127.0.0.1");
        assert_eq!(super::host_of("[::1]:9093"), "::1");
    }
}
