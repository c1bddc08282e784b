//! One client connection, served by a single task that reads requests, runs them one at a
//! time in arrival order (so responses leave in order, as Kafka's brokers send them) and
//! writes responses while the next request is read.
//!
//! Memory: an idle connection holds only this task's small state. The size prefix is read
//! into a 4-byte array and the body buffer is allocated at the announced size (`frame`);
//! the request's handler future is boxed only while it runs; responses queue as the
//! `Bytes` the handler produced. Like Kafka muting a channel, the next request is not read
//! while one is being handled or while more than `MAX_UNSENT_BYTES` of responses wait for
//! the client to read them, so a client that never reads cannot make the broker buffer
//! without bound; what it already sent waits in its socket.
//!
//! Timeouts: a connection with nothing in flight and no bytes moving for
//! `connections.max.idle.ms` is closed, and a request whose first byte arrived must be
//! complete within `socket.request.read.timeout.ms`.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::frame::{FrameError, FrameReader, ReadStep};
use super::quotas::ConnectionSlot;
use super::sasl::{SaslGate, Step};
use super::tls::TlsListener;
use crate::broker::Broker;
use crate::protocol::{self, ConnectionContext, Reply};

/// Responses queued before reading pauses (Kafka clients pipeline up to five in-flight
/// requests; a few more absorbs bursts).
const MAX_QUEUED_RESPONSES: usize = 16;
/// Unsent response bytes above which the next request is not read.
const MAX_UNSENT_BYTES: usize = 1 << 20;

/// How long responses already queued may take to leave once the connection is closing.
const FLUSH_ON_CLOSE: Duration = Duration::from_secs(30);

/// How long a client has to finish the TLS handshake (Kafka has no separate limit; a
/// client that stalls mid-handshake must not hold its connection slot for ever).
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type InFlight = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// Why the broker ended a connection itself, as the close metric labels it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expiry {
    Idle,
    RequestReadTimeout,
}

impl Expiry {
    fn label(self) -> &'static str {
        match self {
            Expiry::Idle => "idle",
            Expiry::RequestReadTimeout => "request_read_timeout",
        }
    }
}

/// Serves `stream` until the client leaves, a limit closes it, or the broker shuts down
/// (then after the in-flight request's response is sent). On a TLS listener the
/// handshake comes first. `slot` holds the connection's place under `max.connections`
/// and `max.connections.per.ip` until it ends.
pub async fn serve(
    broker: Arc<Broker>,
    stream: TcpStream,
    mut ctx: ConnectionContext,
    slot: ConnectionSlot,
    tls: Option<Arc<TlsListener>>,
) {
    let _ = stream.set_nodelay(true);
    let events = broker.metrics.connection_events().clone();
    let listener = ctx.listener.clone();
    events.created(&listener);
    broker.metrics.connection_opened(&listener);
    match tls {
        None => {
            let (read_half, write_half) = stream.into_split();
            run(&broker, read_half, write_half, ctx).await;
        }
        Some(tls) => {
            if let Some(stream) = handshake(&broker, stream, &ctx, &tls).await {
                match tls.principal(&stream) {
                    Ok(principal) => {
                        ctx.principal = principal;
                        // One task owns both halves; the split's lock is never contended.
                        let (read_half, write_half) = tokio::io::split(stream);
                        run(&broker, read_half, write_half, ctx).await;
                    }
                    Err(e) => {
                        tracing::warn!(peer = %ctx.peer, listener = %ctx.listener, reason = %e,
                            "client certificate refused; closing the connection");
                        broker
                            .metrics
                            .connection_events()
                            .failed_authentication(&listener);
                    }
                }
            }
        }
    }
    broker.metrics.connection_closed(&listener);
    events.closed(&listener);
    drop(slot);
}

/// The TLS handshake, bounded in time. A failure (a plaintext client, an untrusted or
/// missing client certificate, no common version or suite) is a failed authentication
/// as Kafka counts it: logged with the peer and the reason, the connection closed.
async fn handshake(
    broker: &Broker,
    stream: TcpStream,
    ctx: &ConnectionContext,
    tls: &TlsListener,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let accepted = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.acceptor().accept(stream)).await;
    let why = match accepted {
        Ok(Ok(stream)) => return Some(stream),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("not complete within {TLS_HANDSHAKE_TIMEOUT:?}"),
    };
    tracing::warn!(peer = %ctx.peer, listener = %ctx.listener, reason = %why,
        "TLS handshake failed; closing the connection");
    broker
        .metrics
        .connection_events()
        .failed_authentication(&ctx.listener);
    None
}

async fn run<R, W>(
    broker: &Arc<Broker>,
    mut read_half: R,
    mut write_half: W,
    ctx: ConnectionContext,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let peer = ctx.peer;
    let limits = &broker.config.connections;
    let mut shutdown = broker.shutdown_signal();
    let mut stopping = *shutdown.borrow();
    // On a SASL listener every frame passes the gate, which also ends expired sessions.
    let mut sasl = broker
        .config
        .security
        .get(&ctx.listener)
        .and_then(|s| s.sasl.clone())
        .map(SaslGate::new);
    let mut ctx = Arc::new(ctx);
    let mut reader = FrameReader::new(match &sasl {
        Some(gate) => gate
            .max_receive_size()
            .min(broker.config.socket_request_max_bytes),
        None => broker.config.socket_request_max_bytes,
    });
    let mut outbox = Outbox::default();
    let mut in_flight: Option<InFlight> = None;
    // Reads, writes and finished requests count as activity for the idle limit.
    let mut last_activity = Instant::now();
    let mut frame_started = last_activity;
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    // Client quotas (KIP-219): a throttled response is sent first; the throttle time
    // starts once it has left (`mute_after_send`), and until it ends nothing more is read.
    let mut mute_after_send: Option<Duration> = None;
    let mut muted_until: Option<Instant> = None;
    let unmute = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(unmute);

    loop {
        if stopping && in_flight.is_none() && !outbox.has_work() {
            break;
        }
        let expiry = if reader.in_frame() {
            Some((
                frame_started + limits.request_read_timeout,
                Expiry::RequestReadTimeout,
            ))
        } else if in_flight.is_none() {
            limits
                .max_idle
                .map(|idle| (last_activity + idle, Expiry::Idle))
        } else {
            None
        };
        if let Some((at, _)) = expiry {
            // Deadlines mostly move later (activity); the timer then fires early once and
            // is pushed back below, instead of being re-armed on every request.
            if at < timer.deadline() {
                timer.as_mut().reset(at);
            }
        }
        let may_read = !stopping
            && in_flight.is_none()
            && outbox.accepts_more()
            && mute_after_send.is_none()
            && muted_until.is_none();
        let was_in_frame = reader.in_frame();

        tokio::select! {
            changed = shutdown.changed(), if !stopping => {
                // A dropped sender also means the broker is going away.
                stopping = changed.is_err() || *shutdown.borrow();
            }
            reply = finish(&mut in_flight), if in_flight.is_some() => {
                in_flight = None;
                last_activity = Instant::now();
                match reply {
                    Reply::Frame(bytes) => outbox.push(bytes),
                    Reply::Nothing => {}
                    Reply::Close(reason) => {
                        tracing::warn!(%peer, %reason, "closing connection");
                        break;
                    }
                    Reply::Final(bytes) => {
                        outbox.push(bytes);
                        break;
                    }
                    Reply::Throttled(bytes, mute) => {
                        if let Some(bytes) = bytes {
                            outbox.push(bytes);
                        }
                        if outbox.is_empty() {
                            let until = Instant::now() + mute;
                            muted_until = Some(until);
                            unmute.as_mut().reset(until);
                        } else {
                            mute_after_send = Some(mute);
                        }
                    }
                }
            }
            () = &mut unmute, if muted_until.is_some() => {
                muted_until = None;
            }
            written = outbox.write_some(&mut write_half), if outbox.has_work() => {
                if let Err(e) = written {
                    tracing::debug!(%peer, error = %e, "client went away while we were writing");
                    return;
                }
                last_activity = Instant::now();
                if outbox.is_empty() {
                    if let Some(mute) = mute_after_send.take() {
                        let until = last_activity + mute;
                        muted_until = Some(until);
                        unmute.as_mut().reset(until);
                    }
                }
            }
            step = reader.read_step(&mut read_half), if may_read => {
                let now = Instant::now();
                match step {
                    Ok(ReadStep::Partial) => {
                        if !was_in_frame {
                            // The first bytes of a frame start its clock.
                            frame_started = now;
                        }
                    }
                    Ok(ReadStep::Frame(frame)) => {
                        let step = match sasl.as_mut() {
                            Some(gate) => {
                                let image = || broker.metadata.image();
                                gate.on_frame(&frame, &|user, mechanism| image().scram_credential(user, mechanism), now)
                            }
                            None => Step::Dispatch,
                        };
                        match step {
                            Step::Dispatch => {
                                let broker = broker.clone();
                                let ctx = ctx.clone();
                                in_flight = Some(Box::pin(async move {
                                    protocol::handle_frame(&broker, &ctx, frame).await
                                }));
                            }
                            Step::Reply(bytes) => outbox.push(bytes),
                            Step::Authenticated { reply, principal, renewed } => {
                                outbox.push(reply);
                                if principal != ctx.principal {
                                    tracing::debug!(%peer, %principal, "authenticated");
                                    ctx = Arc::new(ConnectionContext { principal, ..(*ctx).clone() });
                                }
                                reader.set_max(broker.config.socket_request_max_bytes);
                                let events = broker.metrics.connection_events();
                                if renewed {
                                    events.successful_reauthentication(&ctx.listener);
                                } else {
                                    events.successful_authentication(&ctx.listener);
                                }
                            }
                            Step::Fail { reply, reason } => {
                                tracing::warn!(%peer, listener = %ctx.listener, %reason,
                                    "SASL authentication failed; closing the connection");
                                broker.metrics.connection_events().failed_authentication(&ctx.listener);
                                // Held back against password guessing; this connection
                                // reads nothing meanwhile, others are not affected.
                                let delay = broker.config.failed_authentication_delay;
                                in_flight = Some(Box::pin(async move {
                                    tokio::time::sleep(delay).await;
                                    match reply {
                                        Some(bytes) => Reply::Final(bytes),
                                        None => Reply::Close("authentication failed".into()),
                                    }
                                }));
                            }
                        }
                    }
                    Ok(ReadStep::Closed) => break,
                    Err(FrameError::Io(e)) => {
                        tracing::debug!(%peer, error = %e, "connection read failed");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "closing connection: bad frame");
                        break;
                    }
                }
                last_activity = now;
            }
            () = &mut timer, if expiry.is_some() => {
                let Some((at, why)) = expiry else { continue };
                if Instant::now() < at {
                    timer.as_mut().reset(at);
                    continue;
                }
                match why {
                    Expiry::Idle => tracing::debug!(%peer, "closing idle connection (connections.max.idle.ms)"),
                    Expiry::RequestReadTimeout => tracing::debug!(%peer,
                        "closing connection: request not complete within socket.request.read.timeout.ms"),
                }
                broker.metrics.connection_events().closed_by_broker(&ctx.listener, why.label());
                return;
            }
        }
    }
    // Let queued responses go out before the socket closes, but not wait for ever on a
    // client that stopped reading.
    let flush = async {
        while outbox.has_work() {
            outbox.write_some(&mut write_half).await?;
        }
        write_half.shutdown().await
    };
    if let Err(e) = tokio::time::timeout(FLUSH_ON_CLOSE, flush).await {
        tracing::debug!(%peer, error = %e, "responses left unsent at close");
    }
}

/// The in-flight request's reply; never completes when there is none.
async fn finish(in_flight: &mut Option<InFlight>) -> Reply {
    match in_flight {
        Some(request) => request.await,
        None => std::future::pending().await,
    }
}

/// Responses waiting to be written, oldest first.
#[derive(Debug, Default)]
struct Outbox {
    queue: VecDeque<Bytes>,
    unsent: usize,
    /// Bytes were written since the last flush. A TLS stream keeps the records of a
    /// write it could not send at once (the socket was full) until it is written to or
    /// flushed again; without the flush, the end of the last response would wait for
    /// the next one, and a client waiting for that answer would wait until it gave up.
    unflushed: bool,
}

impl Outbox {
    /// No response is waiting to be written (the writer may still hold some: `has_work`).
    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether [`Outbox::write_some`] has anything to do: a response to write or bytes
    /// to flush.
    fn has_work(&self) -> bool {
        !self.queue.is_empty() || self.unflushed
    }

    /// Whether another request may be read: Kafka mutes a channel until its response is
    /// sent; Strom lets a little more through so pipelined clients keep their throughput.
    fn accepts_more(&self) -> bool {
        self.queue.len() < MAX_QUEUED_RESPONSES && self.unsent <= MAX_UNSENT_BYTES
    }

    fn push(&mut self, frame: Bytes) {
        if frame.is_empty() {
            return;
        }
        self.unsent += frame.len();
        self.queue.push_back(frame);
    }

    /// One write of the oldest response, or, once all are written, the flush that sends
    /// what the writer still holds. Cancel safe: the queue only changes after a write
    /// completed, and a cancelled flush is simply flushed again.
    async fn write_some<W: AsyncWrite + Unpin>(&mut self, writer: &mut W) -> std::io::Result<()> {
        let Some(front) = self.queue.front_mut() else {
            if self.unflushed {
                writer.flush().await?;
                self.unflushed = false;
            }
            return Ok(());
        };
        self.unflushed = true;
        let written = writer.write(front).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        front.advance(written);
        self.unsent -= written;
        if front.is_empty() {
            self.queue.pop_front();
            if self.queue.is_empty() {
                // A burst of pipelined responses should not keep its queue's capacity.
                self.queue = VecDeque::new();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn outbox_writes_in_order_and_mutes_reading_on_unsent_bytes() {
        let mut outbox = Outbox::default();
        assert!(outbox.accepts_more());
        outbox.push(Bytes::from_static(b"first"));
        outbox.push(Bytes::new());
        outbox.push(Bytes::from(vec![7u8; MAX_UNSENT_BYTES]));
        assert_eq!(outbox.queue.len(), 2, "empty responses are not queued");
        assert!(!outbox.accepts_more(), "over the unsent bytes bound");

        // A writer that takes at most 3 bytes at a time: partial writes resume in place.
        let (mut client, mut server) = tokio::io::duplex(3);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut client, &mut got)
                .await
                .unwrap();
            got
        });
        while !outbox.is_empty() {
            outbox.write_some(&mut server).await.unwrap();
            if outbox.unsent <= MAX_UNSENT_BYTES {
                assert!(outbox.accepts_more());
            }
        }
        drop(server);
        let got = reader.await.unwrap();
        assert_eq!(&got[..5], b"first");
        assert_eq!(got.len(), 5 + MAX_UNSENT_BYTES);
        assert_eq!(outbox.unsent, 0);
    }

    #[tokio::test]
    async fn written_responses_are_flushed_out_of_a_buffering_writer() {
        // A BufWriter keeps what it accepted until flushed, as a TLS stream keeps the
        // records its full socket did not take.
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut writer = tokio::io::BufWriter::new(server);
        let mut outbox = Outbox::default();
        outbox.push(Bytes::from_static(b"answer"));
        while outbox.has_work() {
            outbox.write_some(&mut writer).await.unwrap();
        }
        let mut got = [0u8; 6];
        let read = tokio::io::AsyncReadExt::read_exact(&mut client, &mut got);
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("the answer left the writer")
            .unwrap();
        assert_eq!(&got, b"answer");
    }

    /// The same through a real TLS stream whose pipe is full: rustls accepts the last
    /// bytes of the answer but cannot send them yet; the flush sends them once the
    /// client reads.
    #[tokio::test]
    async fn a_large_answer_leaves_a_tls_stream_whole() {
        use crate::config::security::{ClientAuth, PemSource, TlsSettings, TlsVersion};
        use rustls_pki_types::pem::PemObject;

        let ca = strom_test_certs::Authority::new("Strom test CA");
        let leaf = ca.broker();
        let listener = crate::net::tls::TlsListener::new(
            "SSL",
            &TlsSettings {
                certificate_chain: PemSource::Inline(leaf.cert_pem.clone()),
                private_key: PemSource::Inline(leaf.key_pem.clone()),
                key_password: None,
                truststore: None,
                client_auth: ClientAuth::None,
                versions: vec![TlsVersion::Tls12, TlsVersion::Tls13],
                cipher_suites: Vec::new(),
                principal_mapping_rules: "DEFAULT".into(),
            },
        )
        .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca.pem().as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();

        // A pipe that holds 4 KiB: the server's writes block as a full socket's do.
        let (client_io, server_io) = tokio::io::duplex(4096);
        let answer = Bytes::from((0..1_000_000u32).map(|i| i as u8).collect::<Vec<u8>>());
        let want = answer.clone();
        let server = tokio::spawn(async move {
            let stream = listener.acceptor().accept(server_io).await.unwrap();
            let (_read_half, mut write_half) = tokio::io::split(stream);
            let mut outbox = Outbox::default();
            outbox.push(answer);
            while outbox.has_work() {
                outbox.write_some(&mut write_half).await.unwrap();
            }
            write_half // kept open: the client must get the answer without a close
        });
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut client = tokio_rustls::TlsConnector::from(Arc::new(client_config))
            .connect(name, client_io)
            .await
            .unwrap();
        let mut got = vec![0u8; want.len()];
        let read = tokio::io::AsyncReadExt::read_exact(&mut client, &mut got);
        tokio::time::timeout(Duration::from_secs(20), read)
            .await
            .expect("the whole answer arrived")
            .unwrap();
        assert!(got == want[..], "the answer arrived changed");
        drop(server.await.unwrap());
    }

    #[test]
    fn queued_responses_are_bounded_by_count_too() {
        let mut outbox = Outbox::default();
        for _ in 0..MAX_QUEUED_RESPONSES {
            assert!(outbox.accepts_more());
            outbox.push(Bytes::from_static(b"x"));
        }
        assert!(!outbox.accepts_more());
    }
}
