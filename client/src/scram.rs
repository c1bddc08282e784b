//! The client's side of SASL/SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) with
//! the semantics of Kafka's `ScramSaslClient`, and the primitives both sides share: the
//! broker's `ScramServer` and credential store build on this module, so a password hashed
//! here (for AlterUserScramCredentials, see [`salted_password`]) and one checked there
//! always agree.
//!
//! Pure logic, no I/O. The exchange (RFC 5802 §3), with `H` the mechanism's hash and
//! `HMAC` its HMAC:
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
//! The client refuses a server-first asking for more than 16384 iterations (a hostile
//! server could otherwise make it spin) and a server nonce that adds nothing to its own.
//! As in Kafka, passwords are used as UTF-8 without SASLprep. Random strings (nonces,
//! salts) have Kafka's form: 130 random bits written in base 36
//! (`new BigInteger(130, random).toString(36)`).

use std::fmt;
use std::num::NonZeroU32;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac, pbkdf2};

/// Kafka's minimum iteration count for both mechanisms (`ScramMechanism.minIterations`).
pub const MIN_ITERATIONS: u32 = 4096;
/// Kafka's maximum iteration count (`ScramMechanism.maxIterations`, enforced by the
/// controller on AlterUserScramCredentials upsertions).
pub const MAX_ITERATIONS: u32 = 16384;

// ---------------------------------------------------------------------------------------
// Mechanism
// ---------------------------------------------------------------------------------------

/// A SCRAM mechanism, with Kafka's names and KIP-554 type codes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The SASL mechanism name, as clients send it in SaslHandshake.
    pub const fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// Exact, case-sensitive match, as Kafka's `forMechanismName`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|mechanism| mechanism.name() == name)
    }

    /// The `Mechanism` int8 of the KIP-554 requests and of `UserScramCredentialRecord`.
    /// (0 is Kafka's `UNKNOWN`, which has no mechanism.)
    pub const fn type_code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_type_code(code: i8) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|mechanism| mechanism.type_code() == code)
    }

    pub const fn min_iterations(self) -> u32 {
        MIN_ITERATIONS
    }

    pub const fn max_iterations(self) -> u32 {
        MAX_ITERATIONS
    }

    /// The length of the hash, and so of SaltedPassword, the keys and the proof.
    pub const fn output_len(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }

    fn hmac_algorithm(self) -> hmac::Algorithm {
        match self {
            ScramMechanism::Sha256 => hmac::HMAC_SHA256,
            ScramMechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest_algorithm(self) -> &'static digest::Algorithm {
        match self {
            ScramMechanism::Sha256 => &digest::SHA256,
            ScramMechanism::Sha512 => &digest::SHA512,
        }
    }

    fn pbkdf2_algorithm(self) -> pbkdf2::Algorithm {
        match self {
            ScramMechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramMechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }
}

impl fmt::Display for ScramMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// A failed SCRAM exchange step, on either side. `Display` is for the log; send
/// [`ScramError::client_message`] to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    // --- the server's errors -----------------------------------------------------------
    #[error("Invalid SCRAM client first message format: {0}")]
    MalformedClientFirst(&'static str),
    /// GS2 flag `y` or `p=`: Strom offers no `-PLUS` mechanism (as Kafka).
    #[error("Invalid SCRAM client first message format: channel binding is not supported")]
    ChannelBindingUnsupported,
    /// Kafka's only SCRAM error whose message the client sees.
    #[error(
        "Authentication failed: Client requested an authorization id that is different from username"
    )]
    AuthorizationIdMismatch,
    #[error("Token Authentication failed: delegation tokens are not supported")]
    TokenAuthUnsupported,
    /// A stored credential below the mechanism's minimum (Kafka's check at client-first).
    #[error("Iterations {iterations} is less than the minimum {minimum} for {mechanism}")]
    CredentialIterations {
        iterations: u32,
        minimum: u32,
        mechanism: ScramMechanism,
    },
    #[error("Invalid SCRAM client final message format: {0}")]
    MalformedClientFinal(&'static str),
    #[error("Invalid client nonce in the final client message.")]
    NonceMismatch,
    #[error("Invalid channel binding in the final client message.")]
    ChannelBindingMismatch,
    /// Wrong password *or* unknown user: deliberately one variant, one text.
    #[error("Authentication failed: Invalid user credentials")]
    InvalidCredentials,
    /// A message arrived in a state that expects none (or another one).
    #[error("Unexpected SCRAM message in state {0}")]
    UnexpectedMessage(&'static str),

    // --- the client's errors -----------------------------------------------------------
    #[error("Invalid SCRAM server first message format: {0}")]
    MalformedServerFirst(&'static str),
    #[error("Invalid server nonce: does not start with client nonce")]
    ServerNonceMismatch,
    #[error("Requested iterations {iterations} is outside [{minimum}, {maximum}] for {mechanism}")]
    ServerIterations {
        iterations: u32,
        minimum: u32,
        maximum: u32,
        mechanism: ScramMechanism,
    },
    #[error("Invalid SCRAM server final message format: {0}")]
    MalformedServerFinal(&'static str),
    /// The server answered `e=<error>`.
    #[error("Sasl authentication using {mechanism} failed with error: {error}")]
    ServerError {
        mechanism: ScramMechanism,
        error: String,
    },
    #[error("Invalid server signature in server final message")]
    InvalidServerSignature,

    // --- either side -------------------------------------------------------------------
    #[error("the system's random number generator failed")]
    Random,
}

impl ScramError {
    /// The SaslAuthenticate error message Kafka's broker would send for this failure
    /// (`SaslServerAuthenticator`): the exception's own text only for the
    /// authorization-id mismatch, otherwise a fixed text that says nothing about the
    /// user. `reauthentication` is true for a KIP-368 re-authentication.
    pub fn client_message(&self, mechanism: ScramMechanism, reauthentication: bool) -> String {
        match self {
            ScramError::AuthorizationIdMismatch => self.to_string(),
            _ => {
                let phase = if reauthentication {
                    "re-authentication"
                } else {
                    "authentication"
                };
                format!(
                    "Authentication failed during {phase} due to invalid credentials with SASL mechanism {mechanism}"
                )
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Crypto helpers (all primitives are ring's)
// ---------------------------------------------------------------------------------------

pub fn hmac_of(mechanism: ScramMechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(mechanism.hmac_algorithm(), key);
    hmac::sign(&key, data).as_ref().to_vec()
}

pub fn hash_of(mechanism: ScramMechanism, data: &[u8]) -> Vec<u8> {
    digest::digest(mechanism.digest_algorithm(), data)
        .as_ref()
        .to_vec()
}

/// RFC 5802's `Hi()`, which is PBKDF2 with one output block: the SaltedPassword an
/// AlterUserScramCredentials upsertion carries.
pub fn salted_password(
    mechanism: ScramMechanism,
    password: &str,
    salt: &[u8],
    iterations: NonZeroU32,
) -> Vec<u8> {
    let mut out = vec![0; mechanism.output_len()];
    pbkdf2::derive(
        mechanism.pbkdf2_algorithm(),
        iterations,
        salt,
        password.as_bytes(),
        &mut out,
    );
    out
}

pub fn client_key_of(mechanism: ScramMechanism, salted_password: &[u8]) -> Vec<u8> {
    hmac_of(mechanism, salted_password, b"Client Key")
}

pub fn server_key_of(mechanism: ScramMechanism, salted_password: &[u8]) -> Vec<u8> {
    hmac_of(mechanism, salted_password, b"Server Key")
}

/// Byte-wise XOR; callers check that the lengths are equal.
pub fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// Equality of secrets without an early exit, so the time taken does not tell how many
/// leading bytes matched. ring's own slice comparison is deprecated for outside use and
/// `hmac::verify` needs the HMAC input rather than the output we hold, hence this fold.
/// The lengths are public (fixed by the mechanism), so returning early on them is fine.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold back into an early exit.
    std::hint::black_box(difference) == 0
}

/// Big-endian unsigned bytes written in base 36 with no leading zeros, as Java's
/// `BigInteger.toString(36)` does (lower-case digits, "0" for zero).
fn base36(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut number = bytes.to_vec();
    let mut digits = Vec::new();
    while number.iter().any(|&b| b != 0) {
        // Long division of the whole number by 36; the remainder is the next digit.
        let mut remainder = 0u32;
        for byte in number.iter_mut() {
            let value = (remainder << 8) | u32::from(*byte);
            *byte = (value / 36) as u8;
            remainder = value % 36;
        }
        digits.push(DIGITS[remainder as usize]);
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    digits.reverse();
    digits.into_iter().map(char::from).collect()
}

/// Kafka's random string: 130 bits in base 36. `seed` must hold at least 17 bytes; the
/// first 17 give 136 bits, of which the top 6 are cleared.
pub fn kafka_random_string_from(seed: &[u8]) -> String {
    let mut bits = [0u8; 17];
    let len = bits.len().min(seed.len());
    bits[..len].copy_from_slice(&seed[..len]);
    bits[0] &= 0x03;
    base36(&bits)
}

/// `None` only if the system's RNG failed.
pub fn kafka_random_string() -> Option<String> {
    let mut seed = [0u8; 17];
    SystemRandom::new().fill(&mut seed).ok()?;
    Some(kafka_random_string_from(&seed))
}

// ---------------------------------------------------------------------------------------
// Message syntax
// ---------------------------------------------------------------------------------------

/// RFC 5802 `printable`: the nonce's characters.
pub fn is_printable_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// The SASLname of a user name (Kafka's `ScramFormatter.saslName`).
pub fn encode_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// An extension attribute `name=value`: name letters only, value non-empty ASCII
/// (Kafka's `ALPHA` and `VALUE` patterns).
pub fn parse_extension(field: &str) -> Option<(&str, &str)> {
    let (name, value) = field.split_once('=')?;
    let name_ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphabetic());
    let value_ok = !value.is_empty() && value.bytes().all(|b| (0x01..=0x7f).contains(&b));
    (name_ok && value_ok).then_some((name, value))
}

pub fn decode_base64(value: &str) -> Option<Vec<u8>> {
    BASE64.decode(value).ok()
}

#[derive(Debug, PartialEq, Eq)]
pub struct ServerFirst<'a> {
    pub nonce: &'a str,
    pub salt: Vec<u8>,
    pub iterations: u32,
}

pub fn parse_server_first(message: &str) -> Result<ServerFirst<'_>, ScramError> {
    use ScramError::MalformedServerFirst as Malformed;
    let mut fields = message.split(',');
    let nonce_field = fields.next().unwrap_or_default();
    if nonce_field.starts_with("m=") {
        return Err(Malformed("mandatory extensions (m=) are not supported"));
    }
    let nonce = nonce_field
        .strip_prefix("r=")
        .ok_or(Malformed("expected r=<nonce>"))?;
    if !is_printable_nonce(nonce) {
        return Err(Malformed("nonce must be printable ASCII without ','"));
    }
    let salt = fields
        .next()
        .and_then(|field| field.strip_prefix("s="))
        .and_then(decode_base64)
        .ok_or(Malformed("expected s=<base64 salt>"))?;
    let iterations = fields
        .next()
        .and_then(|field| field.strip_prefix("i="))
        .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|digits| digits.parse::<u32>().ok())
        .ok_or(Malformed("expected i=<iteration count>"))?;
    // Extensions after i= are ignored, as in Kafka.
    Ok(ServerFirst {
        nonce,
        salt,
        iterations,
    })
}

/// What a server-final message says.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerFinal {
    Verifier(Vec<u8>),
    Error(String),
}

pub fn parse_server_final(message: &str) -> Result<ServerFinal, ScramError> {
    use ScramError::MalformedServerFinal as Malformed;
    let first = message.split(',').next().unwrap_or_default();
    if let Some(error) = first.strip_prefix("e=") {
        return Ok(ServerFinal::Error(error.to_owned()));
    }
    first
        .strip_prefix("v=")
        .and_then(decode_base64)
        .map(ServerFinal::Verifier)
        .ok_or(Malformed("expected v=<base64 signature> or e=<error>"))
}

/// Where nonces come from: the system's RNG, or for test vectors a fixed string.
#[derive(Debug, Clone)]
pub enum NonceSource {
    Random,
    Fixed(String),
}

impl NonceSource {
    pub fn nonce(&self) -> Result<String, ScramError> {
        match self {
            NonceSource::Random => kafka_random_string().ok_or(ScramError::Random),
            NonceSource::Fixed(nonce) => Ok(nonce.clone()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------

enum ClientState {
    Start,
    ExpectServerFirst {
        nonce: String,
        client_first_bare: String,
    },
    ExpectServerFinal {
        server_signature: Vec<u8>,
    },
    Complete,
    Failed,
}

impl ClientState {
    fn name(&self) -> &'static str {
        match self {
            ClientState::Start => "SEND_CLIENT_FIRST_MESSAGE",
            ClientState::ExpectServerFirst { .. } => "RECEIVE_SERVER_FIRST_MESSAGE",
            ClientState::ExpectServerFinal { .. } => "RECEIVE_SERVER_FINAL_MESSAGE",
            ClientState::Complete => "COMPLETE",
            ClientState::Failed => "FAILED",
        }
    }
}

/// The client's side of one SCRAM exchange, as Kafka's `ScramSaslClient`: no
/// authorization id (`n,,`), no extensions. Any error leaves it failed.
pub struct ScramClient {
    mechanism: ScramMechanism,
    username: String,
    password: String,
    nonces: NonceSource,
    state: ClientState,
}

impl fmt::Debug for ScramClient {
    // Not the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramClient")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("state", &self.state.name())
            .finish_non_exhaustive()
    }
}

/// The GS2 header the client sends, and so what its `c=` carries (`biws`).
const CLIENT_GS2_HEADER: &str = "n,,";

impl ScramClient {
    pub fn new(mechanism: ScramMechanism, username: &str, password: &str) -> Self {
        ScramClient {
            mechanism,
            username: username.to_owned(),
            password: password.to_owned(),
            nonces: NonceSource::Random,
            state: ClientState::Start,
        }
    }

    /// A client whose nonce is `nonce`, for test vectors.
    #[cfg(test)]
    fn with_nonce(mechanism: ScramMechanism, username: &str, password: &str, nonce: &str) -> Self {
        ScramClient {
            nonces: NonceSource::Fixed(nonce.to_owned()),
            ..Self::new(mechanism, username, password)
        }
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// True once the server's signature was verified.
    pub fn is_complete(&self) -> bool {
        matches!(self.state, ClientState::Complete)
    }

    /// The client-first message. Fails only if called twice or if the RNG fails.
    pub fn client_first(&mut self) -> Result<Vec<u8>, ScramError> {
        match std::mem::replace(&mut self.state, ClientState::Failed) {
            ClientState::Start => {}
            other => return Err(ScramError::UnexpectedMessage(other.name())),
        }
        let nonce = self.nonces.nonce()?;
        let client_first_bare = format!("n={},r={nonce}", encode_saslname(&self.username));
        let message = format!("{CLIENT_GS2_HEADER}{client_first_bare}");
        self.state = ClientState::ExpectServerFirst {
            nonce,
            client_first_bare,
        };
        Ok(message.into_bytes())
    }

    /// Takes server-first and returns client-final with the proof.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        let (client_nonce, client_first_bare) =
            match std::mem::replace(&mut self.state, ClientState::Failed) {
                ClientState::ExpectServerFirst {
                    nonce,
                    client_first_bare,
                } => (nonce, client_first_bare),
                other => return Err(ScramError::UnexpectedMessage(other.name())),
            };
        let text = std::str::from_utf8(server_first)
            .map_err(|_| ScramError::MalformedServerFirst("not valid UTF-8"))?;
        let parsed = parse_server_first(text)?;
        // Kafka's order: the nonce, then the iteration count.
        match parsed.nonce.strip_prefix(client_nonce.as_str()) {
            Some(server_part) if !server_part.is_empty() => {}
            _ => return Err(ScramError::ServerNonceMismatch),
        }
        let iterations = self.accepted_iterations(parsed.iterations)?;

        let salted = salted_password(self.mechanism, &self.password, &parsed.salt, iterations);
        let client_key = client_key_of(self.mechanism, &salted);
        let stored_key = hash_of(self.mechanism, &client_key);
        let without_proof = format!("c={},r={}", BASE64.encode(CLIENT_GS2_HEADER), parsed.nonce);
        let auth_message = format!("{client_first_bare},{text},{without_proof}");
        let client_signature = hmac_of(self.mechanism, &stored_key, auth_message.as_bytes());
        let proof = xor(&client_key, &client_signature);
        let server_key = server_key_of(self.mechanism, &salted);
        let server_signature = hmac_of(self.mechanism, &server_key, auth_message.as_bytes());

        self.state = ClientState::ExpectServerFinal { server_signature };
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }

    /// Checks server-final: the server's signature proves it knows the credential.
    /// An `e=` answer becomes [`ScramError::ServerError`].
    pub fn verify_server_final(&mut self, server_final: &[u8]) -> Result<(), ScramError> {
        let expected = match std::mem::replace(&mut self.state, ClientState::Failed) {
            ClientState::ExpectServerFinal { server_signature } => server_signature,
            other => return Err(ScramError::UnexpectedMessage(other.name())),
        };
        let text = std::str::from_utf8(server_final)
            .map_err(|_| ScramError::MalformedServerFinal("not valid UTF-8"))?;
        match parse_server_final(text)? {
            ServerFinal::Error(error) => Err(ScramError::ServerError {
                mechanism: self.mechanism,
                error,
            }),
            ServerFinal::Verifier(signature) if constant_time_eq(&signature, &expected) => {
                self.state = ClientState::Complete;
                Ok(())
            }
            ServerFinal::Verifier(_) => Err(ScramError::InvalidServerSignature),
        }
    }

    /// Kafka's client refuses fewer than the minimum; the maximum is Strom's addition.
    fn accepted_iterations(&self, iterations: u32) -> Result<NonZeroU32, ScramError> {
        let mechanism = self.mechanism;
        let out_of_range = ScramError::ServerIterations {
            iterations,
            minimum: mechanism.min_iterations(),
            maximum: mechanism.max_iterations(),
            mechanism,
        };
        if !(mechanism.min_iterations()..=mechanism.max_iterations()).contains(&iterations) {
            return Err(out_of_range);
        }
        NonZeroU32::new(iterations).ok_or(out_of_range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7677 §3.
    const RFC_USER: &str = "user";
    const RFC_PASSWORD: &str = "pencil";
    const RFC_CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const RFC_SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
    const RFC_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const RFC_SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const RFC_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const RFC_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc_client_after_final() -> ScramClient {
        let mut client = ScramClient::with_nonce(
            ScramMechanism::Sha256,
            RFC_USER,
            RFC_PASSWORD,
            RFC_CLIENT_NONCE,
        );
        client.client_first().unwrap();
        client.client_final(RFC_SERVER_FIRST.as_bytes()).unwrap();
        client
    }

    /// The public `salted_password` gives RFC 7677's SaltedPassword: the server
    /// signature derived from it is the RFC's.
    #[test]
    fn salted_password_matches_rfc7677() {
        let salt = BASE64.decode(RFC_SALT).unwrap();
        let iterations = NonZeroU32::new(4096).unwrap();
        let salted = salted_password(ScramMechanism::Sha256, RFC_PASSWORD, &salt, iterations);
        assert_eq!(salted.len(), ScramMechanism::Sha256.output_len());
        let bare = RFC_CLIENT_FIRST.strip_prefix("n,,").unwrap();
        let without_proof = RFC_CLIENT_FINAL.rsplit_once(",p=").unwrap().0;
        let auth_message = format!("{bare},{RFC_SERVER_FIRST},{without_proof}");
        let server_key = server_key_of(ScramMechanism::Sha256, &salted);
        let signature = hmac_of(ScramMechanism::Sha256, &server_key, auth_message.as_bytes());
        assert_eq!(format!("v={}", BASE64.encode(signature)), RFC_SERVER_FINAL);
    }

    #[test]
    fn rfc7677_client_side() {
        let mut client = ScramClient::with_nonce(
            ScramMechanism::Sha256,
            RFC_USER,
            RFC_PASSWORD,
            RFC_CLIENT_NONCE,
        );
        assert_eq!(client.client_first().unwrap(), RFC_CLIENT_FIRST.as_bytes());
        let client_final = client.client_final(RFC_SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(client_final).unwrap(), RFC_CLIENT_FINAL);
        client
            .verify_server_final(RFC_SERVER_FINAL.as_bytes())
            .unwrap();
        assert!(client.is_complete());
    }

    #[test]
    fn base36_matches_java_biginteger() {
        assert_eq!(base36(&[]), "0");
        assert_eq!(base36(&[0, 0]), "0");
        assert_eq!(base36(&[35]), "z");
        assert_eq!(base36(&[36]), "10");
        assert_eq!(base36(&[0x01, 0x00]), "74");
        // 2^130 - 1, the largest 130-bit value, is 26 digits in base 36.
        let mut max = [0xffu8; 17];
        max[0] = 0x03;
        assert_eq!(base36(&max), "1omfro7zwmumr3umxudzyj6scf");
        assert_eq!(kafka_random_string_from(&[0xff; 17]), base36(&max));
    }

    #[test]
    fn out_of_order_client_calls() {
        let mut client = ScramClient::new(ScramMechanism::Sha256, "u", "p");
        assert_eq!(
            client.client_final(RFC_SERVER_FIRST.as_bytes()),
            Err(ScramError::UnexpectedMessage("SEND_CLIENT_FIRST_MESSAGE"))
        );
        let mut client = ScramClient::new(ScramMechanism::Sha256, "u", "p");
        assert_eq!(
            client.verify_server_final(RFC_SERVER_FINAL.as_bytes()),
            Err(ScramError::UnexpectedMessage("SEND_CLIENT_FIRST_MESSAGE"))
        );
        client = ScramClient::new(ScramMechanism::Sha256, "u", "p");
        client.client_first().unwrap();
        assert_eq!(
            client.client_first(),
            Err(ScramError::UnexpectedMessage(
                "RECEIVE_SERVER_FIRST_MESSAGE"
            ))
        );
    }

    #[test]
    fn client_refuses_server_iterations_out_of_range() {
        for iterations in ["4095", "16385", "0"] {
            let mut client =
                ScramClient::with_nonce(ScramMechanism::Sha256, "user", "pencil", "abc");
            client.client_first().unwrap();
            let server_first = format!("r=abcdef,s=QSXCR+Q6sek8bf92,i={iterations}");
            assert!(
                matches!(
                    client.client_final(server_first.as_bytes()),
                    Err(ScramError::ServerIterations { .. })
                ),
                "{iterations}"
            );
        }
    }

    #[test]
    fn client_checks_server_first() {
        let cases: [(&str, ScramError); 8] = [
            (
                "r=xyzdef,s=QSXCR+Q6sek8bf92,i=4096",
                ScramError::ServerNonceMismatch,
            ),
            (
                "r=abc,s=QSXCR+Q6sek8bf92,i=4096",
                ScramError::ServerNonceMismatch,
            ),
            (
                "m=x,r=abcdef,s=QSXCR+Q6sek8bf92,i=4096",
                ScramError::MalformedServerFirst("mandatory extensions (m=) are not supported"),
            ),
            (
                "r=abcdef,s=QSXCR+Q6sek8bf92",
                ScramError::MalformedServerFirst("expected i=<iteration count>"),
            ),
            (
                "r=abcdef,s=QSXCR+Q6sek8bf92,i=+4096",
                ScramError::MalformedServerFirst("expected i=<iteration count>"),
            ),
            (
                "r=abcdef,s=QSXCR+Q6sek8bf92,i=99999999999",
                ScramError::MalformedServerFirst("expected i=<iteration count>"),
            ),
            (
                "r=abcdef,s=!!,i=4096",
                ScramError::MalformedServerFirst("expected s=<base64 salt>"),
            ),
            (
                "s=QSXCR+Q6sek8bf92,r=abcdef,i=4096",
                ScramError::MalformedServerFirst("expected r=<nonce>"),
            ),
        ];
        for (server_first, expected) in cases {
            let mut client =
                ScramClient::with_nonce(ScramMechanism::Sha256, "user", "pencil", "abc");
            client.client_first().unwrap();
            assert_eq!(
                client.client_final(server_first.as_bytes()),
                Err(expected),
                "{server_first}"
            );
        }
    }

    #[test]
    fn client_checks_server_final() {
        let mut client = rfc_client_after_final();
        let err = client.verify_server_final(b"e=invalid-proof").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Sasl authentication using SCRAM-SHA-256 failed with error: invalid-proof"
        );

        let mut client = rfc_client_after_final();
        let forged = format!("v={}", BASE64.encode([0u8; 32]));
        assert_eq!(
            client.verify_server_final(forged.as_bytes()),
            Err(ScramError::InvalidServerSignature)
        );
        assert!(!client.is_complete());

        let mut client = rfc_client_after_final();
        assert!(matches!(
            client.verify_server_final(b"x=1"),
            Err(ScramError::MalformedServerFinal(_))
        ));

        // Extensions after v= are ignored.
        let mut client = rfc_client_after_final();
        let with_extension = format!("{RFC_SERVER_FINAL},ext=1");
        assert_eq!(
            client.verify_server_final(with_extension.as_bytes()),
            Ok(())
        );
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
