//! SASL on SASL_PLAINTEXT and SASL_SSL listeners, in the order Kafka's
//! `SaslServerAuthenticator` enforces: ApiVersions (at most once) and SaslHandshake
//! before anything else, then the mechanism's tokens in SaslAuthenticate requests (or, after
//! a v0 handshake, as bare frames), and only then ordinary requests under the
//! authenticated principal. With `connections.max.reauth.ms` (KIP-368) a session ends: the
//! client re-authenticates over the same connection (same mechanism, same principal), and a
//! connection whose session ended without that is closed at its next request.
//!
//! The gate is a state machine over whole frames with no I/O of its own; the connection
//! task feeds it and carries out its answer (`Step`).

use std::sync::Arc;

use bytes::{Buf, Bytes};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, ResponseKind, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use tokio::time::Instant;

use crate::auth::plain::PlainUsers;
use crate::auth::scram::{ScramCredential, ScramMechanism, ScramServer};
use crate::config::security::SaslSettings;
use crate::protocol::{encode_frame, unsupported};

/// What the connection does with a frame the gate looked at.
#[derive(Debug)]
pub enum Step {
    /// Serve it as an ordinary request (ApiVersions before the handshake, or anything once
    /// authenticated).
    Dispatch,
    /// Send this answer; the exchange goes on.
    Reply(Bytes),
    /// Send this answer: the client is now `principal` (`User:<name>`). `renewed` when
    /// this was a KIP-368 re-authentication of an established session.
    Authenticated {
        reply: Bytes,
        principal: String,
        renewed: bool,
    },
    /// Authentication failed: send the answer, if there is one, after the failure delay,
    /// then close. `reason` is for the log, never for the client.
    Fail {
        reply: Option<Bytes>,
        reason: String,
    },
}

enum Mechanism {
    Plain(Arc<PlainUsers>),
    Scram(Box<ScramServer>),
}

impl Mechanism {
    fn name(&self) -> String {
        match self {
            Mechanism::Plain(_) => crate::auth::plain::MECHANISM.to_string(),
            Mechanism::Scram(s) => s.mechanism().name().to_string(),
        }
    }
}

enum State {
    /// Waiting for SaslHandshake (ApiVersions may come first, once).
    Handshake {
        versions_seen: bool,
    },
    /// Tokens of `mechanism`; `wrapped` after a v1 handshake (SaslAuthenticate requests).
    Authenticate {
        mechanism: Mechanism,
        wrapped: bool,
    },
    Complete,
}

/// One connection's SASL state.
pub struct SaslGate {
    settings: SaslSettings,
    state: State,
    /// The authenticated principal and mechanism, kept across re-authentications.
    session: Option<Session>,
    /// Whether the client sent SaslAuthenticate v1+ and so knows about session lifetimes.
    supports_reauth: bool,
}

struct Session {
    principal: String,
    mechanism: String,
    /// When the session ends (`connections.max.reauth.ms`); `None` for never.
    ends: Option<Instant>,
}

/// The bits of a request header the gate needs.
struct Header {
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
}

impl SaslGate {
    pub fn new(settings: SaslSettings) -> SaslGate {
        SaslGate {
            settings,
            state: State::Handshake {
                versions_seen: false,
            },
            session: None,
            supports_reauth: false,
        }
    }

    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, State::Complete)
    }

    /// `sasl.server.max.receive.size`: frames before authentication are held to it.
    pub fn max_receive_size(&self) -> i32 {
        self.settings.max_receive_size
    }

    fn reauthenticating(&self) -> bool {
        self.session.is_some()
    }

    /// Looks at one request frame (without its size prefix). `scram` finds a user's
    /// stored SCRAM credential.
    pub fn on_frame(
        &mut self,
        frame: &Bytes,
        scram: &dyn Fn(&str, ScramMechanism) -> Option<ScramCredential>,
        now: Instant,
    ) -> Step {
        if let State::Authenticate {
            wrapped: false,
            mechanism,
        } = &mut self.state
        {
            // After a v0 handshake the frames are the mechanism's bare tokens.
            let token = frame.to_vec();
            return match evaluate(mechanism, &token, scram) {
                Ok(Evaluated::Continue(answer)) => Step::Reply(bare_frame(&answer)),
                Ok(Evaluated::Done(answer, user)) => {
                    let reply = bare_frame(&answer);
                    self.complete(user, reply, now)
                }
                Err(failure) => Step::Fail {
                    reply: None,
                    reason: failure.log(),
                },
            };
        }
        let Some(header) = peek_header(frame) else {
            return fail_silently("a frame too short for a request header");
        };
        match &self.state {
            State::Complete => self.when_authenticated(&header, frame, now),
            State::Handshake { versions_seen } => match header.api_key {
                ApiKey::ApiVersions if !versions_seen => {
                    self.state = State::Handshake {
                        versions_seen: true,
                    };
                    Step::Dispatch
                }
                ApiKey::SaslHandshake => self.handshake(&header, frame),
                other => fail_silently(&format!(
                    "Unexpected Kafka request of type {} during SASL handshake.",
                    api_name(other)
                )),
            },
            State::Authenticate { .. } => self.authenticate(&header, frame, scram, now),
        }
    }

    /// Once authenticated: requests are served until the session ends; a SaslHandshake
    /// from a client that knows KIP-368 starts a re-authentication.
    fn when_authenticated(&mut self, header: &Header, frame: &Bytes, now: Instant) -> Step {
        if header.api_key == ApiKey::SaslHandshake && self.supports_reauth {
            return self.handshake(header, frame);
        }
        let expired = self
            .session
            .as_ref()
            .and_then(|s| s.ends)
            .is_some_and(|ends| now >= ends);
        if expired {
            return fail_silently(
                "the session ended (connections.max.reauth.ms) without a re-authentication",
            );
        }
        Step::Dispatch
    }

    fn handshake(&mut self, header: &Header, frame: &Bytes) -> Step {
        let mut body = frame.clone();
        let request = match skip_header(&mut body, header)
            .and_then(|()| SaslHandshakeRequest::decode(&mut body, header.version).ok())
        {
            Some(r) => r,
            None => return fail_silently("a malformed SaslHandshake request"),
        };
        let asked = request.mechanism.as_str().to_string();
        let enabled: Vec<StrBytes> = self
            .settings
            .mechanisms
            .iter()
            .map(|m| StrBytes::from_string(m.clone()))
            .collect();
        let answer = |code: i16| {
            ResponseKind::SaslHandshake(
                SaslHandshakeResponse::default()
                    .with_error_code(code)
                    .with_mechanisms(enabled.clone()),
            )
        };
        let changed_mechanism = self
            .session
            .as_ref()
            .filter(|s| s.mechanism != asked)
            .map(|s| s.mechanism.clone());
        let mechanism = if let Some(previous) = changed_mechanism {
            Err(format!(
                "SASL mechanism '{asked}' requested by client is not supported for \
                 re-authentication of mechanism '{previous}'"
            ))
        } else if !self.settings.mechanisms.contains(&asked) {
            Err(format!("Unsupported SASL mechanism {asked}"))
        } else {
            self.mechanism(&asked)
                .ok_or_else(|| format!("Unsupported SASL mechanism {asked}"))
        };
        match mechanism {
            Ok(mechanism) => {
                self.state = State::Authenticate {
                    mechanism,
                    wrapped: header.version >= 1,
                };
                match respond(header, &answer(0)) {
                    Ok(reply) => Step::Reply(reply),
                    Err(reason) => fail_silently(&reason),
                }
            }
            Err(reason) => Step::Fail {
                reply: respond(
                    header,
                    &answer(ResponseError::UnsupportedSaslMechanism.code()),
                )
                .ok(),
                reason,
            },
        }
    }

    fn mechanism(&self, name: &str) -> Option<Mechanism> {
        if name == crate::auth::plain::MECHANISM {
            return self.settings.plain_users.clone().map(Mechanism::Plain);
        }
        ScramMechanism::from_name(name).map(|m| Mechanism::Scram(Box::new(ScramServer::new(m))))
    }

    fn authenticate(
        &mut self,
        header: &Header,
        frame: &Bytes,
        scram: &dyn Fn(&str, ScramMechanism) -> Option<ScramCredential>,
        now: Instant,
    ) -> Step {
        if header.api_key != ApiKey::SaslAuthenticate {
            let reason = format!(
                "Unexpected Kafka request of type {} during SASL authentication.",
                api_name(header.api_key)
            );
            let reply =
                unsupported::error_response(header.api_key, ResponseError::IllegalSaslState.code())
                    .and_then(|r| respond(header, &r).ok());
            return Step::Fail { reply, reason };
        }
        let mut body = frame.clone();
        let Some(request) = skip_header(&mut body, header)
            .and_then(|()| SaslAuthenticateRequest::decode(&mut body, header.version).ok())
        else {
            return fail_silently("a malformed SaslAuthenticate request");
        };
        if header.version > 0 {
            self.supports_reauth = true;
        }
        let reauthenticating = self.reauthenticating();
        let State::Authenticate { mechanism, .. } = &mut self.state else {
            return fail_silently("SaslAuthenticate outside an exchange");
        };
        match evaluate(mechanism, &request.auth_bytes, scram) {
            Ok(Evaluated::Continue(answer)) => match respond(header, &authenticate_ok(answer, 0)) {
                Ok(reply) => Step::Reply(reply),
                Err(reason) => fail_silently(&reason),
            },
            Ok(Evaluated::Done(answer, user)) => {
                let principal = format!("User:{user}");
                if let Some(previous) = self.session.as_ref().map(|s| s.principal.clone()) {
                    if previous != principal {
                        let message = format!(
                            "Cannot change principals during re-authentication from {}: {}",
                            java_principal(&previous),
                            java_principal(&principal)
                        );
                        return self.refuse(header, message.clone(), message);
                    }
                }
                let lifetime = self.settings.max_reauth;
                let lifetime_ms = if header.version > 0 {
                    lifetime.map_or(0, |d| d.as_millis() as i64)
                } else {
                    0
                };
                match respond(header, &authenticate_ok(answer, lifetime_ms)) {
                    Ok(reply) => self.complete(user, reply, now),
                    Err(reason) => fail_silently(&reason),
                }
            }
            Err(failure) => {
                let message = failure.client_message(reauthenticating);
                self.refuse(header, message, failure.log())
            }
        }
    }

    fn refuse(&mut self, header: &Header, client_message: String, reason: String) -> Step {
        let response = ResponseKind::SaslAuthenticate(
            SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                .with_error_message(Some(StrBytes::from_string(client_message))),
        );
        Step::Fail {
            reply: respond(header, &response).ok(),
            reason,
        }
    }

    fn complete(&mut self, user: String, reply: Bytes, now: Instant) -> Step {
        let mechanism = match &self.state {
            State::Authenticate { mechanism, .. } => mechanism.name(),
            _ => String::new(),
        };
        let principal = format!("User:{user}");
        let renewed = self.reauthenticating();
        self.session = Some(Session {
            principal: principal.clone(),
            mechanism,
            ends: self.settings.max_reauth.map(|d| now + d),
        });
        self.state = State::Complete;
        Step::Authenticated {
            reply,
            principal,
            renewed,
        }
    }
}

/// Kafka prints principals in the re-authentication error as `type.name`.
fn java_principal(principal: &str) -> String {
    match principal.split_once(':') {
        Some((kind, name)) => format!("{kind}.{name}"),
        None => principal.to_string(),
    }
}

enum Evaluated {
    Continue(Vec<u8>),
    /// The exchange is complete: the last answer and the user.
    Done(Vec<u8>, String),
}

/// A mechanism's refusal: its `Display` is for the log.
enum Failure {
    /// PLAIN's texts are Kafka's and go to the client as they are.
    Plain(crate::auth::plain::PlainError),
    /// SCRAM's client text is Kafka's generic one, except for an authzid mismatch.
    Scram(ScramMechanism, crate::auth::scram::ScramError),
}

impl Failure {
    fn log(&self) -> String {
        match self {
            Failure::Plain(e) => e.to_string(),
            Failure::Scram(_, e) => e.to_string(),
        }
    }

    fn client_message(&self, reauthenticating: bool) -> String {
        match self {
            Failure::Plain(e) => e.to_string(),
            Failure::Scram(mechanism, e) => e.client_message(*mechanism, reauthenticating),
        }
    }
}

fn evaluate(
    mechanism: &mut Mechanism,
    token: &[u8],
    scram: &dyn Fn(&str, ScramMechanism) -> Option<ScramCredential>,
) -> Result<Evaluated, Failure> {
    match mechanism {
        Mechanism::Plain(users) => users
            .authenticate(token)
            .map(|user| Evaluated::Done(Vec::new(), user))
            .map_err(Failure::Plain),
        Mechanism::Scram(server) => {
            let kind = server.mechanism();
            let failure = |e| Failure::Scram(kind, e);
            if server.awaits_client_first() {
                server
                    .client_first(token, |user| scram(user, kind))
                    .map(Evaluated::Continue)
                    .map_err(failure)
            } else {
                server
                    .client_final(token)
                    .map(|(answer, user)| Evaluated::Done(answer, user))
                    .map_err(failure)
            }
        }
    }
}

fn authenticate_ok(answer: Vec<u8>, session_lifetime_ms: i64) -> ResponseKind {
    ResponseKind::SaslAuthenticate(
        SaslAuthenticateResponse::default()
            .with_auth_bytes(Bytes::from(answer))
            .with_session_lifetime_ms(session_lifetime_ms),
    )
}

fn fail_silently(reason: &str) -> Step {
    Step::Fail {
        reply: None,
        reason: reason.to_string(),
    }
}

/// A bare token as a v0 exchange sends it: size-prefixed, no header.
fn bare_frame(token: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(4 + token.len());
    out.extend_from_slice(&(token.len() as i32).to_be_bytes());
    out.extend_from_slice(token);
    Bytes::from(out)
}

fn respond(header: &Header, response: &ResponseKind) -> Result<Bytes, String> {
    encode_frame(
        header.api_key,
        header.version,
        header.correlation_id,
        response,
    )
    .map_err(|e| format!("cannot encode the {:?} response: {e}", header.api_key))
}

fn peek_header(frame: &Bytes) -> Option<Header> {
    if frame.len() < 8 {
        return None;
    }
    let mut peek = &frame[..8];
    let api_key = ApiKey::try_from(peek.get_i16()).ok()?;
    let version = peek.get_i16();
    let correlation_id = peek.get_i32();
    Some(Header {
        api_key,
        version,
        correlation_id,
    })
}

/// Moves `body` past the request header of `header`'s api key and version.
fn skip_header(body: &mut Bytes, header: &Header) -> Option<()> {
    let valid = header.api_key.valid_versions();
    if header.version < valid.min || header.version > valid.max {
        return None;
    }
    let header_version = header.api_key.request_header_version(header.version);
    kafka_protocol::messages::RequestHeader::decode(body, header_version).ok()?;
    Some(())
}

/// Kafka's upper-case API names in its messages (`METADATA`, `PRODUCE`).
fn api_name(key: ApiKey) -> String {
    let mut out = String::new();
    for (i, c) in format!("{key:?}").chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scram::ScramClient;
    use bytes::BytesMut;
    use kafka_protocol::messages::{ApiVersionsRequest, RequestHeader, RequestKind};
    use kafka_protocol::protocol::Encodable;

    fn settings(mechanisms: &[&str]) -> SaslSettings {
        let users = PlainUsers::new([("alice".to_string(), "alice-secret".to_string())]).unwrap();
        SaslSettings {
            mechanisms: mechanisms.iter().map(|m| m.to_string()).collect(),
            plain_users: Some(Arc::new(users)),
            max_reauth: None,
            max_receive_size: 524_288,
        }
    }

    /// A request frame without its size prefix, as the gate receives it.
    fn frame(api_key: ApiKey, version: i16, request: &RequestKind) -> Bytes {
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7);
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, api_key.request_header_version(version))
            .unwrap();
        request.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    fn handshake(mechanism: &str, version: i16) -> Bytes {
        frame(
            ApiKey::SaslHandshake,
            version,
            &RequestKind::SaslHandshake(
                SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_string(mechanism.into())),
            ),
        )
    }

    fn authenticate(token: &[u8]) -> Bytes {
        frame(
            ApiKey::SaslAuthenticate,
            2,
            &RequestKind::SaslAuthenticate(
                SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token)),
            ),
        )
    }

    /// The auth bytes of a SaslAuthenticate response frame (size prefix included).
    fn auth_bytes(reply: &Bytes) -> Vec<u8> {
        let mut body = reply.slice(4..);
        kafka_protocol::messages::ResponseHeader::decode(
            &mut body,
            ApiKey::SaslAuthenticate.response_header_version(2),
        )
        .unwrap();
        SaslAuthenticateResponse::decode(&mut body, 2)
            .unwrap()
            .auth_bytes
            .to_vec()
    }

    fn no_scram(_: &str, _: ScramMechanism) -> Option<ScramCredential> {
        None
    }

    #[test]
    fn plain_after_a_v0_handshake_uses_bare_tokens() {
        let mut gate = SaslGate::new(settings(&["PLAIN"]));
        let now = Instant::now();
        let versions = frame(
            ApiKey::ApiVersions,
            3,
            &RequestKind::ApiVersions(ApiVersionsRequest::default()),
        );
        assert!(matches!(
            gate.on_frame(&versions, &no_scram, now),
            Step::Dispatch
        ));
        assert!(matches!(
            gate.on_frame(&handshake("PLAIN", 0), &no_scram, now),
            Step::Reply(_)
        ));
        let token = Bytes::from_static(b"\0alice\0alice-secret");
        match gate.on_frame(&token, &no_scram, now) {
            Step::Authenticated {
                reply,
                principal,
                renewed,
            } => {
                assert_eq!(principal, "User:alice");
                assert!(!renewed, "a first authentication");
                assert_eq!(
                    &reply[..],
                    &[0, 0, 0, 0],
                    "an empty bare token answers PLAIN"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(gate.is_authenticated());
        // A second ApiVersions after the handshake is an ordinary request now.
        assert!(matches!(
            gate.on_frame(&versions, &no_scram, now),
            Step::Dispatch
        ));
    }

    #[test]
    fn scram_through_the_gate_with_strom_s_own_client() {
        let stored =
            ScramCredential::from_password(ScramMechanism::Sha256, "pencil", b"salt-1", 4096)
                .unwrap();
        let lookup = |user: &str, m: ScramMechanism| {
            (user == "user" && m == ScramMechanism::Sha256).then(|| stored.clone())
        };
        let mut gate = SaslGate::new(settings(&["SCRAM-SHA-256"]));
        let now = Instant::now();
        assert!(matches!(
            gate.on_frame(&handshake("SCRAM-SHA-256", 1), &lookup, now),
            Step::Reply(_)
        ));
        let mut client = ScramClient::new(ScramMechanism::Sha256, "user", "pencil");
        let first = client.client_first().unwrap();
        let Step::Reply(reply) = gate.on_frame(&authenticate(&first), &lookup, now) else {
            panic!("no server-first")
        };
        let last = client.client_final(&auth_bytes(&reply)).unwrap();
        match gate.on_frame(&authenticate(&last), &lookup, now) {
            Step::Authenticated {
                reply, principal, ..
            } => {
                assert_eq!(principal, "User:user");
                client.verify_server_final(&auth_bytes(&reply)).unwrap();
            }
            other => panic!("{other:?}"),
        }
    }

    /// Every single-byte corruption of a valid exchange is answered or refused, never a
    /// panic, and never an authentication with a wrong password.
    #[test]
    fn corrupted_frames_never_panic_and_never_authenticate_wrongly() {
        let valid = [
            handshake("PLAIN", 1),
            authenticate(b"\0alice\0alice-secret"),
        ];
        for which in 0..valid.len() {
            for i in 0..valid[which].len() {
                for flip in [0x01u8, 0xff] {
                    let mut gate = SaslGate::new(settings(&["PLAIN", "SCRAM-SHA-512"]));
                    let now = Instant::now();
                    let mut frames = valid.to_vec();
                    let mut bad = frames[which].to_vec();
                    bad[i] ^= flip;
                    frames[which] = Bytes::from(bad);
                    for f in &frames {
                        match gate.on_frame(f, &no_scram, now) {
                            Step::Fail { .. } => break,
                            Step::Authenticated { principal, .. } => {
                                assert_eq!(principal, "User:alice", "frame {which} byte {i}");
                            }
                            Step::Reply(_) | Step::Dispatch => {}
                        }
                    }
                }
            }
        }
    }
}
