//! SASL/SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) with the semantics of
//! Kafka's `ScramSaslServer`, `ScramSaslClient`, `ScramMessages` and `ScramFormatter`.
//!
//! Pure logic, no I/O: [`ScramServer`] is the broker's side of one exchange, fed the
//! client's two SaslAuthenticate payloads; [`ScramClient`] is the other side, which lives
//! in `strom_client::scram` with the primitives both sides share (the mechanism, the
//! salted password, HMAC and hash, nonces), so the broker's inter-broker connections,
//! the operator and the tools use one implementation; it is re-exported here.
//! [`ScramCredential`] is what the metadata log keeps per
//! user and mechanism (KIP-554), built from a password or from the salted password an
//! AlterUserScramCredentials upsertion carries.
//!
//! The exchange (RFC 5802 §3), with `H` the mechanism's hash and `HMAC` its HMAC:
//!
//! ```text
//! client-first  n,[a=authzid],n=user,r=cnonce[,ext...]
//! server-first  r=cnonce+snonce,s=base64(salt),i=iterations
//! client-final  c=base64(gs2-header),r=cnonce+snonce[,ext...],p=base64(ClientProof)
//! server-final  v=base64(ServerSignature)
//!
//! SaltedPassword  = PBKDF2(HMAC, password, salt, iterations)
//! ClientKey       = HMAC(SaltedPassword, "Client Key");  StoredKey = H(ClientKey)
//! ServerKey       = HMAC(SaltedPassword, "Server Key")
//! AuthMessage     = client-first-bare "," server-first "," client-final-without-proof
//! ClientProof     = ClientKey XOR HMAC(StoredKey, AuthMessage)
//! ServerSignature = HMAC(ServerKey, AuthMessage)
//! ```
//!
//! Errors: a failed step returns a [`ScramError`] whose `Display` is the detail for the
//! broker's log, and [`ScramError::client_message`] is what Kafka would put in the
//! SaslAuthenticate response. Kafka throws a plain `SaslException` for nearly every SCRAM
//! failure, and for those the client only sees "Authentication failed during
//! authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"; the one
//! exception whose text reaches the client is the authorization-id mismatch.
//!
//! Differences from Kafka, all stricter, and why:
//! - **Unknown users.** Kafka fails at client-first for an unknown user and at
//!   client-final for a wrong password; the client-visible text is the same, but *when*
//!   it fails tells an attacker whether the user exists. Here an unknown user gets a
//!   decoy credential (salt derived from the user name under a per-process secret, 4096
//!   iterations, keys nobody can match), a normal server-first, and the same
//!   [`ScramError::InvalidCredentials`] at client-final as a wrong password. Limitation:
//!   the decoy salt is stable per process, but differs between brokers and across
//!   restarts, whereas a real user's salt is the same everywhere; someone comparing
//!   answers from two brokers can still tell.
//! - **Authorization id** is compared with the user name *before* the credential lookup
//!   (Kafka looks up first, so its specific mismatch message revealed that the user
//!   exists). The authzid is SASLname-decoded before the comparison (Kafka compares the
//!   raw encoded form, so `a=` could never match a name containing `,` or `=`).
//! - **Channel binding**: `c=` must decode to the GS2 header the client sent (RFC 5802
//!   requires this; Kafka does not check it).
//! - **`m=` (mandatory extensions)** is refused, as RFC 5802 §5.1 requires (Kafka's
//!   pattern accepts and ignores it).
//! - **`tokenauth=true`** (Kafka's delegation-token extension) is refused: Strom has no
//!   delegation tokens. Kafka, for a token it does not know, also fails with the generic
//!   message. Other extensions are ignored, as in Kafka.
//! - **AuthMessage** uses the client's messages as received (RFC 5802); Kafka rebuilds
//!   them from the parsed fields, which is the same for every message its own and other
//!   common clients send.
//! - **User names** may be any UTF-8 (RFC 5802); Kafka's pattern only takes ASCII.
//! - The client refuses a server-first asking for more than 16384 iterations (a hostile
//!   server could otherwise make it spin) and a server nonce that adds nothing to its own.
//!
//! As in Kafka, passwords are used as UTF-8 without SASLprep.
//!
//! Random strings (server and client nonces, generated salts) have Kafka's form: 130
//! random bits written in base 36 (`new BigInteger(130, random).toString(36)`), so a
//! salt generated here, a decoy salt and a salt made by Kafka's tools look alike.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ring::hmac;
use ring::rand::SystemRandom;
use strom_client::scram::{
    client_key_of, constant_time_eq, decode_base64, hash_of, hmac_of, is_printable_nonce,
    kafka_random_string, kafka_random_string_from, parse_extension, salted_password, server_key_of,
    xor, NonceSource,
};
pub use strom_client::scram::{
    ScramClient, ScramError, ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS,
};

/// The iteration count given to decoy credentials: Kafka's minimum, which is also the
/// default of Kafka's `kafka-configs` and `kafka-storage` tools, so the most common value.
const DECOY_ITERATIONS: u32 = MIN_ITERATIONS;

/// Kafka's extension name for delegation-token authentication.
const TOKEN_AUTH_EXTENSION: &str = "tokenauth";

/// A credential that cannot be made. `Display` texts for the iteration limits are the
/// messages Kafka's controller returns with UNACCEPTABLE_CREDENTIAL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("Too few iterations")]
    TooFewIterations { iterations: u32, minimum: u32 },
    #[error("Too many iterations")]
    TooManyIterations { iterations: u32, maximum: u32 },
    /// Kafka accepts an empty salt; it defeats the salt's purpose, so it is refused here.
    #[error("Salt must not be empty")]
    EmptySalt,
    /// A salted password of another length can never match what a client derives (the
    /// PBKDF2 output is one hash long); Kafka would store such a credential silently.
    #[error("Salted password must be {expected} bytes for {mechanism}, got {actual}")]
    SaltedPasswordLength {
        mechanism: ScramMechanism,
        expected: usize,
        actual: usize,
    },
    #[error("the system's random number generator failed")]
    Random,
}

// ---------------------------------------------------------------------------------------
// Credential
// ---------------------------------------------------------------------------------------

/// What the broker stores for one user and mechanism (Kafka's `ScramCredential`, the
/// `UserScramCredentialRecord` fields). The password itself is not derivable from it.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: u32,
}

impl fmt::Debug for ScramCredential {
    // As Kafka's `ScramCredentialValue.toString`: nothing of it goes to logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ScramCredential([hidden])")
    }
}

impl ScramCredential {
    /// Derives the credential for `password` with the given salt and iteration count.
    pub fn from_password(
        mechanism: ScramMechanism,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, CredentialError> {
        let rounds = checked_iterations(mechanism, iterations)?;
        check_salt(salt)?;
        let salted = salted_password(mechanism, password, salt, rounds);
        Ok(Self::from_checked_salted_password(
            mechanism, salt, &salted, iterations,
        ))
    }

    /// As [`from_password`](Self::from_password) with a fresh random salt in Kafka's
    /// form (`ScramFormatter.secureRandomBytes`: the UTF-8 of 130 random bits in base
    /// 36, at most 26 bytes).
    pub fn generate(
        mechanism: ScramMechanism,
        password: &str,
        iterations: u32,
    ) -> Result<Self, CredentialError> {
        let salt = kafka_random_string().ok_or(CredentialError::Random)?;
        Self::from_password(mechanism, password, salt.as_bytes(), iterations)
    }

    /// The credential for a KIP-554 AlterUserScramCredentials upsertion, which carries
    /// the salt and SaltedPassword the client derived; the broker only derives the keys
    /// (as Kafka's `ScramControlManager`). `iterations` is the request's int32: callers
    /// refuse negative values before converting (they are below the minimum anyway).
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salt: &[u8],
        salted_password: &[u8],
        iterations: u32,
    ) -> Result<Self, CredentialError> {
        checked_iterations(mechanism, iterations)?;
        check_salt(salt)?;
        if salted_password.len() != mechanism.output_len() {
            return Err(CredentialError::SaltedPasswordLength {
                mechanism,
                expected: mechanism.output_len(),
                actual: salted_password.len(),
            });
        }
        Ok(Self::from_checked_salted_password(
            mechanism,
            salt,
            salted_password,
            iterations,
        ))
    }

    fn from_checked_salted_password(
        mechanism: ScramMechanism,
        salt: &[u8],
        salted_password: &[u8],
        iterations: u32,
    ) -> Self {
        let client_key = client_key_of(mechanism, salted_password);
        ScramCredential {
            salt: salt.to_vec(),
            stored_key: hash_of(mechanism, &client_key),
            server_key: server_key_of(mechanism, salted_password),
            iterations,
        }
    }
}

/// Kafka's controller limits for an upsertion ("Too few iterations" / "Too many").
fn checked_iterations(
    mechanism: ScramMechanism,
    iterations: u32,
) -> Result<NonZeroU32, CredentialError> {
    if iterations < mechanism.min_iterations() {
        return Err(CredentialError::TooFewIterations {
            iterations,
            minimum: mechanism.min_iterations(),
        });
    }
    if iterations > mechanism.max_iterations() {
        return Err(CredentialError::TooManyIterations {
            iterations,
            maximum: mechanism.max_iterations(),
        });
    }
    NonZeroU32::new(iterations).ok_or(CredentialError::TooFewIterations {
        iterations,
        minimum: mechanism.min_iterations(),
    })
}

fn check_salt(salt: &[u8]) -> Result<(), CredentialError> {
    if salt.is_empty() {
        return Err(CredentialError::EmptySalt);
    }
    Ok(())
}

/// The credential an unknown user is given so that the exchange fails where a wrong
/// password would (see the module docs). Everything is derived from the user name under
/// a per-process secret, so asking twice gives the same salt, as for a real user.
fn decoy_credential(
    mechanism: ScramMechanism,
    username: &str,
) -> Result<ScramCredential, ScramError> {
    let key = decoy_key().ok_or(ScramError::Random)?;
    let derive = |label: &[u8]| {
        let mut context = hmac::Context::with_key(key);
        for part in [label, mechanism.name().as_bytes(), username.as_bytes()] {
            context.update(part);
            context.update(&[0]);
        }
        context.sign()
    };
    let salt = kafka_random_string_from(derive(b"salt").as_ref());
    let output_len = mechanism.output_len();
    Ok(ScramCredential {
        salt: salt.into_bytes(),
        stored_key: derive(b"stored key").as_ref()[..output_len].to_vec(),
        server_key: derive(b"server key").as_ref()[..output_len].to_vec(),
        iterations: DECOY_ITERATIONS,
    })
}

/// The per-process secret behind decoy credentials. HMAC-SHA-512 so that one tag is long
/// enough for either mechanism's keys. `None` only if the system's RNG failed.
fn decoy_key() -> Option<&'static hmac::Key> {
    static KEY: OnceLock<Option<hmac::Key>> = OnceLock::new();
    KEY.get_or_init(|| hmac::Key::generate(hmac::HMAC_SHA512, &SystemRandom::new()).ok())
        .as_ref()
}

// ---------------------------------------------------------------------------------------
// Message syntax
// ---------------------------------------------------------------------------------------

/// Decodes a SASLname: `=2C` is `,` and `=3D` is `=`; any other `=` is invalid, as is
/// NUL or an empty name. (`,` cannot occur: the caller split the message at commas.)
fn decode_saslname(encoded: &str) -> Result<String, &'static str> {
    if encoded.is_empty() {
        return Err("empty name");
    }
    let mut decoded = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(index) = rest.find(['=', '\0']) {
        decoded.push_str(&rest[..index]);
        let tail = &rest[index..];
        if let Some(after) = tail.strip_prefix("=2C") {
            decoded.push(',');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("=3D") {
            decoded.push('=');
            rest = after;
        } else {
            return Err("invalid escape in name (only =2C and =3D are allowed)");
        }
    }
    decoded.push_str(rest);
    Ok(decoded)
}

/// The parts of a client-first message the server needs.
#[derive(Debug, PartialEq, Eq)]
struct ClientFirst<'a> {
    /// `n,` + optional `a=...` + `,`, as sent; `c=` must carry exactly this.
    gs2_header: &'a str,
    authzid: Option<String>,
    username: String,
    nonce: &'a str,
    /// Everything after the GS2 header, as sent: the start of the AuthMessage.
    bare: &'a str,
    token_auth: bool,
}

fn parse_client_first(message: &str) -> Result<ClientFirst<'_>, ScramError> {
    use ScramError::MalformedClientFirst as Malformed;
    let (flag, rest) = message
        .split_once(',')
        .ok_or(Malformed("missing GS2 header"))?;
    match flag {
        "n" => {}
        "y" => return Err(ScramError::ChannelBindingUnsupported),
        _ if flag.starts_with("p=") => return Err(ScramError::ChannelBindingUnsupported),
        _ => return Err(Malformed("unknown channel binding flag")),
    }
    let (authzid_field, bare) = rest
        .split_once(',')
        .ok_or(Malformed("missing GS2 header"))?;
    let authzid = match authzid_field {
        "" => None,
        _ => {
            let encoded = authzid_field
                .strip_prefix("a=")
                .ok_or(Malformed("invalid authorization id"))?;
            Some(decode_saslname(encoded).map_err(Malformed)?)
        }
    };
    let gs2_header = &message[..message.len() - bare.len()];

    let mut fields = bare.split(',');
    let user_field = fields.next().unwrap_or_default();
    if user_field.starts_with("m=") {
        return Err(Malformed("mandatory extensions (m=) are not supported"));
    }
    let encoded_user = user_field
        .strip_prefix("n=")
        .ok_or(Malformed("expected n=<username>"))?;
    let username = decode_saslname(encoded_user).map_err(Malformed)?;
    let nonce = fields
        .next()
        .and_then(|field| field.strip_prefix("r="))
        .ok_or(Malformed("expected r=<nonce>"))?;
    if !is_printable_nonce(nonce) {
        return Err(Malformed("nonce must be printable ASCII without ','"));
    }
    let mut token_auth = false;
    for field in fields {
        let (name, value) = parse_extension(field).ok_or(Malformed("invalid extension"))?;
        // Java's Boolean.parseBoolean, as Kafka's ScramExtensions.tokenAuthenticated.
        if name == TOKEN_AUTH_EXTENSION && value.eq_ignore_ascii_case("true") {
            token_auth = true;
        }
    }
    Ok(ClientFirst {
        gs2_header,
        authzid,
        username,
        nonce,
        bare,
        token_auth,
    })
}

#[derive(Debug, PartialEq, Eq)]
struct ClientFinal<'a> {
    channel_binding: Vec<u8>,
    nonce: &'a str,
    proof: Vec<u8>,
    /// Everything before `,p=`, as sent: the end of the AuthMessage.
    without_proof: &'a str,
}

fn parse_client_final(message: &str) -> Result<ClientFinal<'_>, ScramError> {
    use ScramError::MalformedClientFinal as Malformed;
    let (without_proof, proof_field) = message
        .rsplit_once(',')
        .ok_or(Malformed("expected c=...,r=...,p=..."))?;
    let proof = proof_field
        .strip_prefix("p=")
        .and_then(decode_base64)
        .ok_or(Malformed("expected p=<base64 proof> last"))?;
    let mut fields = without_proof.split(',');
    let channel_binding = fields
        .next()
        .and_then(|field| field.strip_prefix("c="))
        .and_then(decode_base64)
        .ok_or(Malformed("expected c=<base64 channel binding>"))?;
    let nonce = fields
        .next()
        .and_then(|field| field.strip_prefix("r="))
        .ok_or(Malformed("expected r=<nonce>"))?;
    if !is_printable_nonce(nonce) {
        return Err(Malformed("nonce must be printable ASCII without ','"));
    }
    if fields.any(|field| parse_extension(field).is_none()) {
        return Err(Malformed("invalid extension"));
    }
    Ok(ClientFinal {
        channel_binding,
        nonce,
        proof,
        without_proof,
    })
}

// ---------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------

/// What the server remembers between client-first and client-final.
struct PendingExchange {
    username: String,
    gs2_header: String,
    /// Client nonce + server nonce.
    nonce: String,
    /// `client-first-bare "," server-first`: the AuthMessage up to client-final.
    auth_message_start: String,
    credential: ScramCredential,
    /// True for an unknown user's decoy credential: the exchange must fail however
    /// the proof turns out.
    decoy: bool,
}

enum ServerState {
    ExpectClientFirst,
    ExpectClientFinal(Box<PendingExchange>),
    Complete,
    Failed,
}

impl ServerState {
    fn name(&self) -> &'static str {
        match self {
            ServerState::ExpectClientFirst => "RECEIVE_CLIENT_FIRST_MESSAGE",
            ServerState::ExpectClientFinal(_) => "RECEIVE_CLIENT_FINAL_MESSAGE",
            ServerState::Complete => "COMPLETE",
            ServerState::Failed => "FAILED",
        }
    }
}

/// The broker's side of one SCRAM exchange. Any error leaves it failed (as Kafka's
/// `ScramSaslServer`), and the connection should then be closed.
pub struct ScramServer {
    mechanism: ScramMechanism,
    nonces: NonceSource,
    state: ServerState,
}

impl fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramServer")
            .field("mechanism", &self.mechanism)
            .field("state", &self.state.name())
            .finish()
    }
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism) -> Self {
        ScramServer {
            mechanism,
            nonces: NonceSource::Random,
            state: ServerState::ExpectClientFirst,
        }
    }

    /// A server whose nonce is `server_nonce`, for test vectors.
    #[cfg(test)]
    fn with_server_nonce(mechanism: ScramMechanism, server_nonce: &str) -> Self {
        ScramServer {
            nonces: NonceSource::Fixed(server_nonce.to_owned()),
            ..Self::new(mechanism)
        }
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// True once client-final was verified.
    pub fn is_complete(&self) -> bool {
        matches!(self.state, ServerState::Complete)
    }

    /// True until client-first arrived: the next token is `client_first`'s.
    pub fn awaits_client_first(&self) -> bool {
        matches!(self.state, ServerState::ExpectClientFirst)
    }

    /// Takes the client-first message and answers with server-first. `lookup` gets the
    /// decoded user name and returns that user's credential for this mechanism, if any.
    /// An unknown user is not revealed here: see the module docs.
    pub fn client_first(
        &mut self,
        message: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<Vec<u8>, ScramError> {
        // Whatever happens below, a failure leaves the state Failed.
        match std::mem::replace(&mut self.state, ServerState::Failed) {
            ServerState::ExpectClientFirst => {}
            other => return Err(ScramError::UnexpectedMessage(other.name())),
        }
        let (server_first, pending) = self.start_exchange(message, lookup)?;
        self.state = ServerState::ExpectClientFinal(Box::new(pending));
        Ok(server_first.into_bytes())
    }

    /// Takes the client-final message, verifies the proof and answers with server-final;
    /// also returns the authenticated user name.
    pub fn client_final(&mut self, message: &[u8]) -> Result<(Vec<u8>, String), ScramError> {
        let pending = match std::mem::replace(&mut self.state, ServerState::Failed) {
            ServerState::ExpectClientFinal(pending) => pending,
            other => return Err(ScramError::UnexpectedMessage(other.name())),
        };
        let server_final = self.finish_exchange(&pending, message)?;
        self.state = ServerState::Complete;
        Ok((server_final.into_bytes(), pending.username))
    }

    fn start_exchange(
        &self,
        message: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<(String, PendingExchange), ScramError> {
        let text = std::str::from_utf8(message)
            .map_err(|_| ScramError::MalformedClientFirst("not valid UTF-8"))?;
        let client_first = parse_client_first(text)?;
        if client_first.token_auth {
            return Err(ScramError::TokenAuthUnsupported);
        }
        // Before the lookup, so the answer cannot depend on whether the user exists.
        if let Some(authzid) = &client_first.authzid {
            if *authzid != client_first.username {
                return Err(ScramError::AuthorizationIdMismatch);
            }
        }
        let (credential, decoy) = match lookup(&client_first.username) {
            Some(credential) => (credential, false),
            None => (
                decoy_credential(self.mechanism, &client_first.username)?,
                true,
            ),
        };
        if credential.iterations < self.mechanism.min_iterations() {
            return Err(ScramError::CredentialIterations {
                iterations: credential.iterations,
                minimum: self.mechanism.min_iterations(),
                mechanism: self.mechanism,
            });
        }
        let nonce = format!("{}{}", client_first.nonce, self.nonces.nonce()?);
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&credential.salt),
            credential.iterations
        );
        let pending = PendingExchange {
            username: client_first.username,
            gs2_header: client_first.gs2_header.to_owned(),
            nonce,
            auth_message_start: format!("{},{server_first}", client_first.bare),
            credential,
            decoy,
        };
        Ok((server_first, pending))
    }

    fn finish_exchange(
        &self,
        pending: &PendingExchange,
        message: &[u8],
    ) -> Result<String, ScramError> {
        let text = std::str::from_utf8(message)
            .map_err(|_| ScramError::MalformedClientFinal("not valid UTF-8"))?;
        let client_final = parse_client_final(text)?;
        // Kafka's rule, not RFC 5802's equality: librdkafka before 2.1 (kcat 1.7 on
        // Debian 12) sends its own nonce again in front of the combined one, and Kafka
        // accepts a client-final nonce that ends with the combined nonce.
        if !client_final.nonce.ends_with(&pending.nonce) {
            return Err(ScramError::NonceMismatch);
        }
        if client_final.channel_binding != pending.gs2_header.as_bytes() {
            return Err(ScramError::ChannelBindingMismatch);
        }
        let auth_message = format!(
            "{},{}",
            pending.auth_message_start, client_final.without_proof
        );
        let credential = &pending.credential;
        let proof_ok = verify_client_proof(
            self.mechanism,
            &credential.stored_key,
            auth_message.as_bytes(),
            &client_final.proof,
        );
        if !proof_ok || pending.decoy {
            return Err(ScramError::InvalidCredentials);
        }
        let signature = hmac_of(
            self.mechanism,
            &credential.server_key,
            auth_message.as_bytes(),
        );
        Ok(format!("v={}", BASE64.encode(signature)))
    }
}

/// RFC 5802 §3: recover ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage) and
/// check H(ClientKey) == StoredKey in constant time.
fn verify_client_proof(
    mechanism: ScramMechanism,
    stored_key: &[u8],
    auth_message: &[u8],
    proof: &[u8],
) -> bool {
    let client_signature = hmac_of(mechanism, stored_key, auth_message);
    if proof.len() != client_signature.len() {
        return false;
    }
    let client_key = xor(proof, &client_signature);
    constant_time_eq(&hash_of(mechanism, &client_key), stored_key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::{digest, pbkdf2};
    use strom_client::scram::{encode_saslname, parse_server_first};

    // RFC 7677 §3.
    const RFC_USER: &str = "user";
    const RFC_PASSWORD: &str = "pencil";
    const RFC_CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const RFC_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const RFC_SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
    const RFC_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const RFC_SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const RFC_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const RFC_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc_credential() -> ScramCredential {
        let salt = BASE64.decode(RFC_SALT).unwrap();
        ScramCredential::from_password(ScramMechanism::Sha256, RFC_PASSWORD, &salt, 4096).unwrap()
    }

    fn rfc_server() -> ScramServer {
        ScramServer::with_server_nonce(ScramMechanism::Sha256, RFC_SERVER_NONCE)
    }

    /// A server past client-first for the RFC user, with the RFC nonces.
    fn rfc_server_after_first() -> ScramServer {
        let mut server = rfc_server();
        server
            .client_first(RFC_CLIENT_FIRST.as_bytes(), |_| Some(rfc_credential()))
            .unwrap();
        server
    }

    fn credential_for(mechanism: ScramMechanism, password: &str) -> ScramCredential {
        ScramCredential::generate(mechanism, password, 4096).unwrap()
    }

    /// A full exchange between a client and a server whose user store is `users`.
    fn exchange(
        mechanism: ScramMechanism,
        client: &mut ScramClient,
        users: &[(&str, ScramCredential)],
    ) -> Result<String, ScramError> {
        let mut server = ScramServer::new(mechanism);
        let first = client.client_first()?;
        let lookup = |name: &str| {
            users
                .iter()
                .find(|(user, _)| *user == name)
                .map(|(_, credential)| credential.clone())
        };
        let server_first = server.client_first(&first, lookup)?;
        let client_final = client.client_final(&server_first)?;
        let (server_final, user) = server.client_final(&client_final)?;
        assert!(server.is_complete());
        client.verify_server_final(&server_final)?;
        assert!(client.is_complete());
        Ok(user)
    }

    fn generic_message(mechanism: ScramMechanism) -> String {
        format!(
            "Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"
        )
    }

    // -- mechanism ------------------------------------------------------------------

    #[test]
    fn mechanism_names_and_codes() {
        assert_eq!(ScramMechanism::Sha256.name(), "SCRAM-SHA-256");
        assert_eq!(ScramMechanism::Sha512.name(), "SCRAM-SHA-512");
        assert_eq!(
            ScramMechanism::from_name("SCRAM-SHA-512"),
            Some(ScramMechanism::Sha512)
        );
        assert_eq!(ScramMechanism::from_name("scram-sha-256"), None);
        assert_eq!(ScramMechanism::from_name("PLAIN"), None);
        assert_eq!(ScramMechanism::Sha256.type_code(), 1);
        assert_eq!(ScramMechanism::Sha512.type_code(), 2);
        for mechanism in ScramMechanism::ALL {
            assert_eq!(
                ScramMechanism::from_type_code(mechanism.type_code()),
                Some(mechanism)
            );
            assert_eq!(ScramMechanism::from_name(mechanism.name()), Some(mechanism));
            assert_eq!(mechanism.min_iterations(), 4096);
            assert_eq!(mechanism.max_iterations(), 16384);
        }
        assert_eq!(ScramMechanism::from_type_code(0), None);
        assert_eq!(ScramMechanism::from_type_code(3), None);
    }

    // -- RFC 7677 test vector -------------------------------------------------------

    #[test]
    fn rfc7677_server_side() {
        let mut server = rfc_server();
        let mut looked_up = None;
        let server_first = server
            .client_first(RFC_CLIENT_FIRST.as_bytes(), |name| {
                looked_up = Some(name.to_owned());
                Some(rfc_credential())
            })
            .unwrap();
        assert_eq!(looked_up.as_deref(), Some(RFC_USER));
        assert_eq!(String::from_utf8(server_first).unwrap(), RFC_SERVER_FIRST);
        assert!(!server.is_complete());
        let (server_final, user) = server.client_final(RFC_CLIENT_FINAL.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(server_final).unwrap(), RFC_SERVER_FINAL);
        assert_eq!(user, RFC_USER);
        assert!(server.is_complete());
    }

    #[test]
    fn credential_from_salted_password_matches_from_password() {
        let salt = BASE64.decode(RFC_SALT).unwrap();
        let rounds = NonZeroU32::new(4096).unwrap();
        let salted = salted_password(ScramMechanism::Sha256, RFC_PASSWORD, &salt, rounds);
        let from_salted =
            ScramCredential::from_salted_password(ScramMechanism::Sha256, &salt, &salted, 4096)
                .unwrap();
        assert_eq!(from_salted, rfc_credential());
        assert_eq!(from_salted.salt, salt);
        assert_eq!(from_salted.iterations, 4096);
        assert_eq!(from_salted.stored_key.len(), 32);
        assert_eq!(from_salted.server_key.len(), 32);
    }

    // -- round trips ----------------------------------------------------------------

    #[test]
    fn sha512_round_trip() {
        let mechanism = ScramMechanism::Sha512;
        let credential = credential_for(mechanism, "alice-secret");
        assert_eq!(credential.stored_key.len(), 64);
        assert_eq!(credential.server_key.len(), 64);
        let mut client = ScramClient::new(mechanism, "alice", "alice-secret");
        let user = exchange(mechanism, &mut client, &[("alice", credential)]).unwrap();
        assert_eq!(user, "alice");
    }

    #[test]
    fn sha256_round_trip_with_escaped_name_and_more_iterations() {
        let mechanism = ScramMechanism::Sha256;
        let name = "a,b=c";
        let credential = ScramCredential::generate(mechanism, "pw", 8192).unwrap();
        let mut client = ScramClient::new(mechanism, name, "pw");
        assert_eq!(
            exchange(mechanism, &mut client, &[(name, credential)]),
            Ok(name.to_owned())
        );
    }

    #[test]
    fn generated_salts_have_kafkas_form_and_differ() {
        let a = credential_for(ScramMechanism::Sha256, "pw");
        let b = credential_for(ScramMechanism::Sha256, "pw");
        assert_ne!(a.salt, b.salt);
        assert_ne!(a.stored_key, b.stored_key);
        for salt in [&a.salt, &b.salt] {
            assert!(!salt.is_empty() && salt.len() <= 26, "{salt:?}");
            assert!(salt
                .iter()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
        }
    }

    // -- failures -------------------------------------------------------------------

    #[test]
    fn wrong_password_fails_at_client_final() {
        let mechanism = ScramMechanism::Sha256;
        let credential = credential_for(mechanism, "right");
        let mut client = ScramClient::new(mechanism, "alice", "wrong");
        let err = exchange(mechanism, &mut client, &[("alice", credential)]).unwrap_err();
        assert_eq!(err, ScramError::InvalidCredentials);
        assert_eq!(
            err.client_message(mechanism, false),
            generic_message(mechanism)
        );
    }

    #[test]
    fn unknown_user_fails_like_a_wrong_password() {
        let mechanism = ScramMechanism::Sha512;
        let mut client = ScramClient::new(mechanism, "nobody", "whatever");
        let mut server = ScramServer::new(mechanism);
        let first = client.client_first().unwrap();
        // A normal server-first: the unknown user is not revealed here.
        let server_first = server.client_first(&first, |_| None).unwrap();
        let parsed = parse_server_first(std::str::from_utf8(&server_first).unwrap()).unwrap();
        assert_eq!(parsed.iterations, 4096);
        assert!(parsed
            .salt
            .iter()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
        let client_final = client.client_final(&server_first).unwrap();
        let err = server.client_final(&client_final).unwrap_err();
        assert_eq!(err, ScramError::InvalidCredentials);
        assert!(!server.is_complete());

        let mut wrong = ScramClient::new(mechanism, "alice", "wrong");
        let wrong_err = exchange(
            mechanism,
            &mut wrong,
            &[("alice", credential_for(mechanism, "right"))],
        )
        .unwrap_err();
        assert_eq!(err, wrong_err);
        assert_eq!(err.to_string(), wrong_err.to_string());
        assert_eq!(
            err.client_message(mechanism, false),
            wrong_err.client_message(mechanism, false)
        );
    }

    #[test]
    fn unknown_user_gets_a_stable_salt() {
        let salt_of = |user: &str| {
            let mut server = ScramServer::new(ScramMechanism::Sha256);
            let first = format!("n,,n={user},r=abc");
            let reply = server.client_first(first.as_bytes(), |_| None).unwrap();
            let text = String::from_utf8(reply).unwrap();
            parse_server_first(&text).unwrap().salt
        };
        assert_eq!(salt_of("ghost"), salt_of("ghost"));
        assert_ne!(salt_of("ghost"), salt_of("spook"));
    }

    #[test]
    fn authzid_equal_to_user_is_accepted_and_bound_by_c() {
        let mut server = rfc_server();
        let first = "n,a=user,n=user,r=rOprNGfwEbeRWgbNEkqO";
        server
            .client_first(first.as_bytes(), |_| Some(rfc_credential()))
            .unwrap();
        // `c=biws` (for `n,,`) no longer matches the header that was sent.
        assert_eq!(
            server.client_final(RFC_CLIENT_FINAL.as_bytes()),
            Err(ScramError::ChannelBindingMismatch)
        );
    }

    #[test]
    fn authzid_mismatch_is_refused_before_the_lookup() {
        let mut server = rfc_server();
        let mut looked_up = false;
        let err = server
            .client_first(b"n,a=admin,n=user,r=abc", |_| {
                looked_up = true;
                Some(rfc_credential())
            })
            .unwrap_err();
        assert_eq!(err, ScramError::AuthorizationIdMismatch);
        assert!(!looked_up);
        let expected =
            "Authentication failed: Client requested an authorization id that is different from username";
        assert_eq!(err.client_message(ScramMechanism::Sha256, false), expected);
        // The authzid is decoded like the user name.
        let mut server = rfc_server();
        assert!(server
            .client_first(b"n,a=a=2Cb,n=a=2Cb,r=abc", |_| Some(rfc_credential()))
            .is_ok());
    }

    #[test]
    fn bad_gs2_headers() {
        let cases: [(&[u8], ScramError); 8] = [
            (b"y,,n=user,r=abc", ScramError::ChannelBindingUnsupported),
            (
                b"p=tls-unique,,n=user,r=abc",
                ScramError::ChannelBindingUnsupported,
            ),
            (
                b"x,,n=user,r=abc",
                ScramError::MalformedClientFirst("unknown channel binding flag"),
            ),
            (b"n", ScramError::MalformedClientFirst("missing GS2 header")),
            (b"", ScramError::MalformedClientFirst("missing GS2 header")),
            (
                b"n,n=user,r=abc",
                ScramError::MalformedClientFirst("invalid authorization id"),
            ),
            (
                b"n,a=,n=user,r=abc",
                ScramError::MalformedClientFirst("empty name"),
            ),
            (
                b"n,a=us=er,n=user,r=abc",
                ScramError::MalformedClientFirst(
                    "invalid escape in name (only =2C and =3D are allowed)",
                ),
            ),
        ];
        for (message, expected) in cases {
            let mut server = rfc_server();
            assert_eq!(
                server.client_first(message, |_| Some(rfc_credential())),
                Err(expected),
                "{:?}",
                String::from_utf8_lossy(message)
            );
        }
    }

    #[test]
    fn malformed_client_first() {
        let cases: [&[u8]; 12] = [
            b"n,,",
            b"n,,r=abc,n=user",
            b"n,,n=user",
            b"n,,n=user,r=",
            b"n,,n=user,r=a b",
            b"n,,n=,r=abc",
            b"n,,m=ext,n=user,r=abc",
            b"n,,n=user,r=abc,",
            b"n,,n=user,r=abc,ext",
            b"n,,n=user,r=abc,e1=x",
            b"n,,n=user,r=abc,ext=",
            b"n,,n=us\xffer,r=abc",
        ];
        for message in cases {
            let mut server = rfc_server();
            let result = server.client_first(message, |_| Some(rfc_credential()));
            assert!(
                matches!(result, Err(ScramError::MalformedClientFirst(_))),
                "{:?}: {result:?}",
                String::from_utf8_lossy(message)
            );
        }
    }

    #[test]
    fn extensions_other_than_tokenauth_are_ignored() {
        let mut server = rfc_server();
        let first = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO,foo=bar,tokenauth=false";
        assert!(server
            .client_first(first.as_bytes(), |_| Some(rfc_credential()))
            .is_ok());
    }

    #[test]
    fn token_auth_is_refused() {
        for value in ["true", "TRUE"] {
            let mut server = rfc_server();
            let first = format!("n,,n=tokenid,r=abc,tokenauth={value}");
            let err = server
                .client_first(first.as_bytes(), |_| Some(rfc_credential()))
                .unwrap_err();
            assert_eq!(err, ScramError::TokenAuthUnsupported);
            assert_eq!(
                err.client_message(ScramMechanism::Sha256, false),
                generic_message(ScramMechanism::Sha256)
            );
        }
    }

    #[test]
    fn saslname_escapes() {
        assert_eq!(decode_saslname("a=2Cb=3Dc"), Ok("a,b=c".to_owned()));
        assert_eq!(decode_saslname("=3D2C"), Ok("=2C".to_owned()));
        assert_eq!(decode_saslname("=2C=2C"), Ok(",,".to_owned()));
        assert_eq!(decode_saslname("jörg"), Ok("jörg".to_owned()));
        for bad in ["", "=", "a=", "a=2", "=2c", "=3d", "=41", "a\0b"] {
            assert!(decode_saslname(bad).is_err(), "{bad:?}");
        }
        assert_eq!(encode_saslname("a,b=c"), "a=2Cb=3Dc");
        assert_eq!(encode_saslname("=2C"), "=3D2C");
        for name in ["plain", "a,b=c", "=2C", ",=,=", "jörg"] {
            assert_eq!(decode_saslname(&encode_saslname(name)).unwrap(), name);
        }
        // The server looks up the decoded name.
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        let mut looked_up = None;
        server
            .client_first(b"n,,n=a=2Cb=3Dc,r=abc", |name| {
                looked_up = Some(name.to_owned());
                None
            })
            .unwrap();
        assert_eq!(looked_up.as_deref(), Some("a,b=c"));
    }

    #[test]
    fn channel_binding_mismatch() {
        for c in ["eSws", "biwsAA==", ""] {
            let mut server = rfc_server_after_first();
            let message = RFC_CLIENT_FINAL.replacen("c=biws", &format!("c={c}"), 1);
            assert_eq!(
                server.client_final(message.as_bytes()),
                Err(ScramError::ChannelBindingMismatch),
                "{c}"
            );
        }
    }

    /// librdkafka before 2.1 repeats its nonce in front of the combined one; Kafka, and
    /// so Strom, accepts that (the proof covers the message as sent).
    #[test]
    fn a_client_final_nonce_that_ends_with_the_combined_nonce_is_accepted() {
        let mut server = rfc_server_after_first();
        let doubled = format!("{RFC_CLIENT_NONCE}{RFC_CLIENT_NONCE}{RFC_SERVER_NONCE}");
        let without_proof = format!("c=biws,r={doubled}");
        let salt = BASE64.decode(RFC_SALT).unwrap();
        let mut salted = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            NonZeroU32::new(4096).unwrap(),
            &salt,
            RFC_PASSWORD.as_bytes(),
            &mut salted,
        );
        let salted_key = hmac::Key::new(hmac::HMAC_SHA256, &salted);
        let client_key = hmac::sign(&salted_key, b"Client Key");
        let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());
        let bare = RFC_CLIENT_FIRST.trim_start_matches("n,,");
        let auth_message = format!("{bare},{RFC_SERVER_FIRST},{without_proof}");
        let signature = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, stored_key.as_ref()),
            auth_message.as_bytes(),
        );
        let proof: Vec<u8> = client_key
            .as_ref()
            .iter()
            .zip(signature.as_ref())
            .map(|(k, s)| k ^ s)
            .collect();
        let message = format!("{without_proof},p={}", BASE64.encode(proof));
        let (_, user) = server.client_final(message.as_bytes()).unwrap();
        assert_eq!(user, "user");
    }

    #[test]
    fn nonce_mismatch() {
        let full = format!("{RFC_CLIENT_NONCE}{RFC_SERVER_NONCE}");
        for nonce in [RFC_CLIENT_NONCE.to_owned(), format!("{full}x")] {
            let mut server = rfc_server_after_first();
            let message = RFC_CLIENT_FINAL.replacen(&full, &nonce, 1);
            assert_eq!(
                server.client_final(message.as_bytes()),
                Err(ScramError::NonceMismatch),
                "{nonce}"
            );
        }
    }

    #[test]
    fn tampered_proof() {
        let proof = BASE64
            .decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        let mut flipped = proof.clone();
        flipped[31] ^= 1;
        let shorter = &proof[..31];
        let mut longer = proof.clone();
        longer.push(0);
        for bad in [flipped.as_slice(), shorter, &longer, &[]] {
            let mut server = rfc_server_after_first();
            let message = format!(
                "c=biws,r={RFC_CLIENT_NONCE}{RFC_SERVER_NONCE},p={}",
                BASE64.encode(bad)
            );
            assert_eq!(
                server.client_final(message.as_bytes()),
                Err(ScramError::InvalidCredentials)
            );
            assert!(!server.is_complete());
        }
    }

    #[test]
    fn tampered_auth_message_fails_the_proof() {
        // An extension added in client-final is part of the AuthMessage the proof covers.
        let mut server = rfc_server_after_first();
        let message = RFC_CLIENT_FINAL.replacen(",p=", ",x=y,p=", 1);
        assert_eq!(
            server.client_final(message.as_bytes()),
            Err(ScramError::InvalidCredentials)
        );
    }

    #[test]
    fn malformed_client_final() {
        let nonce = format!("{RFC_CLIENT_NONCE}{RFC_SERVER_NONCE}");
        let proof = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        let cases = [
            String::new(),
            "garbage".to_owned(),
            format!("c=biws,r={nonce}"),
            format!("c=biws,r={nonce},p=not base64!"),
            format!("c=biws,r={nonce},p=dHzbZapWIk4jUhN"),
            format!("c=biws,p={proof},r={nonce}"),
            format!("r={nonce},c=biws,p={proof}"),
            format!("c=b!ws,r={nonce},p={proof}"),
            format!("c=biws,p={proof}"),
            format!("c=biws,r=,p={proof}"),
            format!("c=biws,r={nonce},bad,p={proof}"),
            format!("c=biws,r={nonce},p={proof},x=y"),
        ];
        for message in cases {
            let mut server = rfc_server_after_first();
            let result = server.client_final(message.as_bytes());
            assert!(
                matches!(result, Err(ScramError::MalformedClientFinal(_))),
                "{message:?}: {result:?}"
            );
        }
        let mut server = rfc_server_after_first();
        assert_eq!(
            server.client_final(b"c=biws,r=\xff,p=AA=="),
            Err(ScramError::MalformedClientFinal("not valid UTF-8"))
        );
    }

    #[test]
    fn out_of_order_server_calls() {
        let mut server = rfc_server();
        assert_eq!(
            server.client_final(RFC_CLIENT_FINAL.as_bytes()),
            Err(ScramError::UnexpectedMessage(
                "RECEIVE_CLIENT_FIRST_MESSAGE"
            ))
        );
        // The failure is final, as in Kafka.
        assert_eq!(
            server.client_first(RFC_CLIENT_FIRST.as_bytes(), |_| Some(rfc_credential())),
            Err(ScramError::UnexpectedMessage("FAILED"))
        );

        let mut server = rfc_server_after_first();
        assert_eq!(
            server.client_first(RFC_CLIENT_FIRST.as_bytes(), |_| Some(rfc_credential())),
            Err(ScramError::UnexpectedMessage(
                "RECEIVE_CLIENT_FINAL_MESSAGE"
            ))
        );

        let mut server = rfc_server_after_first();
        server.client_final(RFC_CLIENT_FINAL.as_bytes()).unwrap();
        assert_eq!(
            server.client_final(RFC_CLIENT_FINAL.as_bytes()),
            Err(ScramError::UnexpectedMessage("COMPLETE"))
        );
        assert!(!server.is_complete());
    }

    #[test]
    fn a_failed_server_stays_failed() {
        let mut server = rfc_server_after_first();
        assert!(server.client_final(b"garbage").is_err());
        assert_eq!(
            server.client_final(RFC_CLIENT_FINAL.as_bytes()),
            Err(ScramError::UnexpectedMessage("FAILED"))
        );
    }

    // -- iteration limits -----------------------------------------------------------

    #[test]
    fn credential_iteration_limits() {
        let mechanism = ScramMechanism::Sha256;
        let too_few = ScramCredential::from_password(mechanism, "pw", b"salt", 4095).unwrap_err();
        assert_eq!(
            too_few,
            CredentialError::TooFewIterations {
                iterations: 4095,
                minimum: 4096
            }
        );
        assert_eq!(too_few.to_string(), "Too few iterations");
        let too_many = ScramCredential::from_password(mechanism, "pw", b"salt", 16385).unwrap_err();
        assert_eq!(too_many.to_string(), "Too many iterations");
        assert!(matches!(
            ScramCredential::generate(mechanism, "pw", 0),
            Err(CredentialError::TooFewIterations { .. })
        ));
        assert!(ScramCredential::from_password(mechanism, "pw", b"salt", 16384).is_ok());
        let salted = [0u8; 32];
        assert!(matches!(
            ScramCredential::from_salted_password(mechanism, b"salt", &salted, 4000),
            Err(CredentialError::TooFewIterations { .. })
        ));
        assert!(matches!(
            ScramCredential::from_salted_password(mechanism, b"salt", &salted, 20000),
            Err(CredentialError::TooManyIterations { .. })
        ));
    }

    #[test]
    fn credential_salt_and_salted_password_checks() {
        assert_eq!(
            ScramCredential::from_password(ScramMechanism::Sha256, "pw", b"", 4096),
            Err(CredentialError::EmptySalt)
        );
        assert_eq!(
            ScramCredential::from_salted_password(ScramMechanism::Sha512, b"salt", &[0; 32], 4096),
            Err(CredentialError::SaltedPasswordLength {
                mechanism: ScramMechanism::Sha512,
                expected: 64,
                actual: 32
            })
        );
    }

    #[test]
    fn server_refuses_a_stored_credential_below_the_minimum() {
        let mut weak = rfc_credential();
        weak.iterations = 4095;
        let mut server = rfc_server();
        let err = server
            .client_first(RFC_CLIENT_FIRST.as_bytes(), |_| Some(weak))
            .unwrap_err();
        assert_eq!(
            err,
            ScramError::CredentialIterations {
                iterations: 4095,
                minimum: 4096,
                mechanism: ScramMechanism::Sha256
            }
        );
        assert_eq!(
            err.to_string(),
            "Iterations 4095 is less than the minimum 4096 for SCRAM-SHA-256"
        );
        assert_eq!(
            err.client_message(ScramMechanism::Sha256, true),
            "Authentication failed during re-authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"
        );
    }

    #[test]
    fn client_fails_against_a_server_without_the_password() {
        // A server with the wrong credential cannot produce the right signature: the
        // client notices even if the server pretends success.
        let mechanism = ScramMechanism::Sha256;
        let mut client = ScramClient::new(mechanism, "alice", "secret");
        let mut server = ScramServer::new(mechanism);
        let first = client.client_first().unwrap();
        let imposter = credential_for(mechanism, "other");
        let server_first = server
            .client_first(&first, |_| Some(imposter.clone()))
            .unwrap();
        client.client_final(&server_first).unwrap();
        let auth_message = "anything";
        let signature = hmac_of(mechanism, &imposter.server_key, auth_message.as_bytes());
        let forged = format!("v={}", BASE64.encode(signature));
        assert_eq!(
            client.verify_server_final(forged.as_bytes()),
            Err(ScramError::InvalidServerSignature)
        );
    }

    #[test]
    fn debug_output_hides_secrets() {
        let credential = rfc_credential();
        assert_eq!(format!("{credential:?}"), "ScramCredential([hidden])");
        let client = ScramClient::new(ScramMechanism::Sha256, "alice", "hunter2");
        assert!(!format!("{client:?}").contains("hunter2"));
    }
}
