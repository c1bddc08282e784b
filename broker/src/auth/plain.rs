//! SASL/PLAIN (RFC 4616) with the semantics of Kafka's `PlainSaslServer` and
//! `PlainServerCallbackHandler`, plus the small JAAS config parser that the PLAIN user
//! list (and the broker's own inter-broker credentials) come from.
//!
//! Everything here is pure: no I/O, no sockets. The connection layer feeds the client's
//! single SaslAuthenticate payload to [`PlainUsers::authenticate`] and sends the error's
//! `Display` text back as the SaslAuthenticate error message: in Kafka every PLAIN
//! failure is a `SaslAuthenticationException`, whose message the client sees verbatim,
//! so the texts below are Kafka's.
//!
//! Where the credentials come from:
//! - [`PlainUsers::from_jaas_config`]: the value of
//!   `listener.name.<listener>.plain.sasl.jaas.config`, e.g.
//!   `org.apache.kafka.common.security.plain.PlainLoginModule required
//!   username="admin" password="admin-secret" user_admin="admin-secret";`.
//!   Each `user_<name>="<password>"` option is a user; `username`/`password` are the
//!   broker's own credentials as a client of other brokers.
//! - [`PlainUsers::from_file`]: a Strom-specific `name=password` file (see there).
//!
//! Passwords are not kept in plaintext: each is kept as an HMAC-SHA-256 tag under a key
//! made fresh for every [`PlainUsers`]. A login computes the tag of the offered password
//! and `ring::hmac::verify` compares the tags in constant time. Comparing tags rather
//! than the passwords also hides the stored password's length, which a byte-by-byte
//! comparison of different-length strings would reveal.
//!
//! Deviations from Kafka, all on the strict side:
//! - a message that is not UTF-8 is refused (Kafka decodes it lossily, turning bad bytes
//!   into U+FFFD, and would then compare that);
//! - a JAAS config whose login module is not `PlainLoginModule`, or that has an empty
//!   user name or password, or `username` without `password`, is a config error (Kafka
//!   accepts it and those users simply can never log in);
//! - an unterminated quoted value or `/* comment` is an error (Java's `StreamTokenizer`
//!   silently ends the token at the end of the line or input).
//!
//! Kafka's JAAS tokenizer turns an unquoted value starting with a digit into a number and
//! then refuses it ("Value not specified for key"); this parser accepts such values as text.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::iter::Peekable;
use std::str::Chars;

use ring::hmac;
use ring::rand::SystemRandom;

/// The mechanism name clients ask for in SaslHandshake.
pub const MECHANISM: &str = "PLAIN";

/// The login module class whose options define the PLAIN users, as in Kafka.
pub const PLAIN_LOGIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";

/// The option prefix that defines a user in the JAAS config (`user_alice="secret"`).
const USER_OPTION_PREFIX: &str = "user_";

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// A failed PLAIN authentication. `Display` is the message the client should receive in
/// the SaslAuthenticate response (error code SASL_AUTHENTICATION_FAILED): these are
/// Kafka's texts, and a wrong password and an unknown user share one message so the
/// answer does not reveal which users exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlainError {
    /// The message did not split into `authzid NUL authcid NUL passwd`. Like Kafka, the
    /// count stops at 4 (Kafka splits at most four times).
    #[error("Invalid SASL/PLAIN response: expected 3 tokens, got {0}")]
    TokenCount(usize),
    /// Not in Kafka, which decodes lossily; see the module docs.
    #[error("Invalid SASL/PLAIN response: not valid UTF-8")]
    NotUtf8,
    #[error("Authentication failed: username not specified")]
    UsernameMissing,
    #[error("Authentication failed: password not specified")]
    PasswordMissing,
    /// Unknown user or wrong password: deliberately indistinguishable.
    #[error("Authentication failed: Invalid username or password")]
    InvalidCredentials,
    /// Checked after the password, as in Kafka, so only someone who knows the password
    /// learns anything from this message.
    #[error(
        "Authentication failed: Client requested an authorization id that is different from username"
    )]
    AuthorizationIdMismatch,
}

/// Where in the JAAS config text a problem is (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// A JAAS config that does not parse. Where Kafka has a message for the same mistake
/// (`JaasConfig`), the text starts with Kafka's; a position is added where it helps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JaasError {
    #[error("Login module not specified in JAAS config")]
    NoLoginModule,
    #[error("Login module name expected in JAAS config, found {found} at {at}")]
    LoginModuleExpected { found: String, at: Position },
    #[error("Login module control flag not specified in JAAS config")]
    ControlFlagMissing,
    #[error("Invalid login module control flag '{flag}' in JAAS config at {at}")]
    InvalidControlFlag { flag: String, at: Position },
    #[error("Option name expected in JAAS config, found {found} at {at}")]
    OptionNameExpected { found: String, at: Position },
    #[error("Value not specified for key '{key}' in JAAS config at {at}")]
    ValueMissing { key: String, at: Position },
    #[error("JAAS config entry not terminated by semi-colon")]
    NotTerminated,
    #[error("Unterminated quoted value in JAAS config starting at {at}")]
    UnterminatedQuote { at: Position },
    #[error("Unterminated /* comment in JAAS config starting at {at}")]
    UnterminatedComment { at: Position },
    #[error("Unexpected character '{ch}' in JAAS config at {at}")]
    UnexpectedChar { ch: char, at: Position },
}

/// A PLAIN credential source (JAAS config or users file) that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlainConfigError {
    #[error(transparent)]
    Jaas(#[from] JaasError),
    /// Kafka's `JaasContext` check for a listener's `sasl.jaas.config` property.
    #[error("JAAS config property contains {0} login modules, should be 1 module")]
    ModuleCount(usize),
    #[error("Login module '{0}' is not {PLAIN_LOGIN_MODULE}; it defines no PLAIN users")]
    WrongLoginModule(String),
    #[error("JAAS option 'user_' defines a user with an empty name")]
    EmptyUsername,
    #[error("PLAIN user '{0}' has an empty password, so it could never log in")]
    EmptyPassword(String),
    #[error(
        "JAAS config has only one of 'username' and 'password' (both non-empty are needed for the broker's own client credentials)"
    )]
    IncompleteClientCredentials,
    #[error("PLAIN users file, line {line}: {reason}")]
    FileLine { line: usize, reason: &'static str },
    #[error("PLAIN users file, line {line}: user '{user}' is defined twice")]
    DuplicateUser { line: usize, user: String },
    #[error("the system's random number generator failed")]
    Random,
}

// ---------------------------------------------------------------------------------------
// The PLAIN message
// ---------------------------------------------------------------------------------------

/// The three fields of a PLAIN message, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PlainMessage<'a> {
    authzid: &'a str,
    username: &'a str,
    password: &'a str,
}

/// Splits `authzid NUL authcid NUL passwd` with Kafka's checks, in Kafka's order: the
/// token count, then an empty username, then an empty password.
fn parse_message(message: &[u8]) -> Result<PlainMessage<'_>, PlainError> {
    let text = std::str::from_utf8(message).map_err(|_| PlainError::NotUtf8)?;
    let tokens: Vec<&str> = text.split('\0').collect();
    let [authzid, username, password] = tokens[..] else {
        // Kafka splits at most four times, so it never reports more than 4 tokens.
        return Err(PlainError::TokenCount(tokens.len().min(4)));
    };
    if username.is_empty() {
        return Err(PlainError::UsernameMissing);
    }
    if password.is_empty() {
        return Err(PlainError::PasswordMissing);
    }
    Ok(PlainMessage {
        authzid,
        username,
        password,
    })
}

/// The client's PLAIN message: `authzid NUL username NUL password`, built by the
/// client crate (one encoder for the broker's inter-broker connections, tools and tests).
pub use strom_client::sasl::plain_message as client_message;

// ---------------------------------------------------------------------------------------
// The user store
// ---------------------------------------------------------------------------------------

/// The PLAIN users one listener accepts, and the broker's own client credentials.
#[derive(Clone)]
pub struct PlainUsers {
    /// Fresh per store; the tags below are only meaningful under it.
    key: hmac::Key,
    /// user name → HMAC tag of the password.
    users: HashMap<String, hmac::Tag>,
    /// Compared against for unknown users so they cost the same work as known ones.
    decoy: hmac::Tag,
    client: Option<(String, String)>,
}

impl fmt::Debug for PlainUsers {
    // Never print passwords (or tags of them); the user count is enough for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainUsers")
            .field("users", &self.users.len())
            .field(
                "client_username",
                &self.client.as_ref().map(|(user, _)| user.as_str()),
            )
            .finish_non_exhaustive()
    }
}

impl PlainUsers {
    /// A store of the given `(name, password)` pairs with no client credentials. Empty
    /// names or passwords are refused: PLAIN refuses them at login anyway.
    pub fn new(
        users: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, PlainConfigError> {
        Self::build(users, None)
    }

    /// Reads a listener's `plain.sasl.jaas.config` value, which (as in Kafka) must hold
    /// exactly one login module, and it must be [`PLAIN_LOGIN_MODULE`]. Options named
    /// `user_<name>` define users; `username` and `password` are the broker's own client
    /// credentials; other options are ignored, as Kafka's PLAIN handler ignores them.
    pub fn from_jaas_config(text: &str) -> Result<Self, PlainConfigError> {
        let entries = parse_jaas_config(text)?;
        let [entry] = &entries[..] else {
            return Err(PlainConfigError::ModuleCount(entries.len()));
        };
        if entry.login_module != PLAIN_LOGIN_MODULE {
            return Err(PlainConfigError::WrongLoginModule(
                entry.login_module.clone(),
            ));
        }
        let users = entry.options.iter().filter_map(|(key, value)| {
            let name = key.strip_prefix(USER_OPTION_PREFIX)?;
            Some((name.to_owned(), value.clone()))
        });
        let client = client_credentials_of(entry)?;
        Self::build(users, client)
    }

    /// Reads a PLAIN users file's text (the caller reads the file). The format, Strom's
    /// own:
    /// - one user per line, `name=password`, split at the first `=`;
    /// - the name is trimmed of surrounding whitespace and must not be empty;
    /// - the password is everything after the `=`, verbatim (spaces included; only a
    ///   trailing `\r` from CRLF line endings is dropped) and must not be empty;
    /// - blank lines and lines whose first non-blank character is `#` are skipped;
    /// - a name may appear only once.
    ///
    /// The file gives no client credentials.
    pub fn from_file(contents: &str) -> Result<Self, PlainConfigError> {
        let mut users: BTreeMap<String, String> = BTreeMap::new();
        for (index, raw_line) in contents.lines().enumerate() {
            let line_number = index + 1;
            let Some((name, password)) = parse_users_file_line(raw_line, line_number)? else {
                continue;
            };
            if users.insert(name.to_owned(), password.to_owned()).is_some() {
                return Err(PlainConfigError::DuplicateUser {
                    line: line_number,
                    user: name.to_owned(),
                });
            }
        }
        Self::build(users, None)
    }

    fn build(
        users: impl IntoIterator<Item = (String, String)>,
        client: Option<(String, String)>,
    ) -> Result<Self, PlainConfigError> {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .map_err(|_| PlainConfigError::Random)?;
        let mut tags = HashMap::new();
        for (name, password) in users {
            if name.is_empty() {
                return Err(PlainConfigError::EmptyUsername);
            }
            if password.is_empty() {
                return Err(PlainConfigError::EmptyPassword(name));
            }
            let tag = hmac::sign(&key, password.as_bytes());
            tags.insert(name, tag);
        }
        let decoy = hmac::sign(&key, b"");
        Ok(PlainUsers {
            key,
            users: tags,
            decoy,
            client,
        })
    }

    /// The broker's own `(username, password)` for connecting to other brokers, from
    /// the JAAS config's `username`/`password` options.
    pub fn client_credentials(&self) -> Option<(String, String)> {
        self.client.clone()
    }

    /// How many users this store accepts (for startup logs).
    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Checks a client's PLAIN message and returns the authenticated user name. The
    /// checks and their order are Kafka's: message shape, empty user, empty password,
    /// the password, and only then the authorization id.
    pub fn authenticate(&self, message: &[u8]) -> Result<String, PlainError> {
        let message = parse_message(message)?;
        if !self.password_matches(message.username, message.password) {
            return Err(PlainError::InvalidCredentials);
        }
        if !message.authzid.is_empty() && message.authzid != message.username {
            return Err(PlainError::AuthorizationIdMismatch);
        }
        Ok(message.username.to_owned())
    }

    /// Constant-time password check that costs the same for unknown users: their
    /// offered password is still HMACed and compared, against a tag that is never
    /// accepted.
    fn password_matches(&self, username: &str, password: &str) -> bool {
        match self.users.get(username) {
            Some(tag) => hmac::verify(&self.key, password.as_bytes(), tag.as_ref()).is_ok(),
            None => {
                let _ = hmac::verify(&self.key, password.as_bytes(), self.decoy.as_ref());
                false
            }
        }
    }
}

/// The `username`/`password` pair of a JAAS entry: both (non-empty) or neither.
fn client_credentials_of(entry: &JaasEntry) -> Result<Option<(String, String)>, PlainConfigError> {
    let username = entry.options.get("username");
    let password = entry.options.get("password");
    match (username, password) {
        (None, None) => Ok(None),
        (Some(user), Some(password)) if !user.is_empty() && !password.is_empty() => {
            Ok(Some((user.clone(), password.clone())))
        }
        _ => Err(PlainConfigError::IncompleteClientCredentials),
    }
}

/// One line of a users file: `None` for blank and comment lines.
fn parse_users_file_line(
    raw_line: &str,
    line: usize,
) -> Result<Option<(&str, &str)>, PlainConfigError> {
    let text = raw_line.strip_suffix('\r').unwrap_or(raw_line);
    let trimmed = text.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let Some((name, password)) = text.split_once('=') else {
        return Err(PlainConfigError::FileLine {
            line,
            reason: "expected name=password",
        });
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(PlainConfigError::FileLine {
            line,
            reason: "empty user name",
        });
    }
    if password.is_empty() {
        return Err(PlainConfigError::FileLine {
            line,
            reason: "empty password",
        });
    }
    Ok(Some((name, password)))
}

// ---------------------------------------------------------------------------------------
// JAAS config
// ---------------------------------------------------------------------------------------

/// A JAAS login module's control flag. It has no effect on PLAIN; it is parsed because
/// the syntax requires it and a typo in it should be reported, as Kafka does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlFlag {
    Required,
    Requisite,
    Sufficient,
    Optional,
}

impl ControlFlag {
    /// Case-insensitive, as in Kafka's `JaasConfig`.
    fn parse(word: &str) -> Option<Self> {
        match word.to_ascii_lowercase().as_str() {
            "required" => Some(ControlFlag::Required),
            "requisite" => Some(ControlFlag::Requisite),
            "sufficient" => Some(ControlFlag::Sufficient),
            "optional" => Some(ControlFlag::Optional),
            _ => None,
        }
    }
}

/// One `LoginModuleClass flag key=value ... ;` entry.
#[derive(Clone, PartialEq, Eq)]
pub struct JaasEntry {
    pub login_module: String,
    pub control_flag: ControlFlag,
    /// A repeated key keeps its last value, as in Kafka (a `HashMap.put` per option).
    pub options: BTreeMap<String, String>,
}

impl fmt::Debug for JaasEntry {
    // Option values are mostly passwords: show only the keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JaasEntry")
            .field("login_module", &self.login_module)
            .field("control_flag", &self.control_flag)
            .field("option_keys", &self.options.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Parses a JAAS config value (the `sasl.jaas.config` syntax Kafka accepts):
///
/// ```text
/// entry  = module-class flag { key "=" value } ";"
/// flag   = required | requisite | sufficient | optional   (any case)
/// value  = word | "double-quoted" | 'single-quoted'
/// ```
///
/// The module class, the flag and the keys are words: letters, digits and `_ $ - .`
/// (Kafka's tokenizer would also take them quoted; nobody writes that, and refusing it
/// keeps a misplaced quoted password out of error messages). Quoted values take backslash escapes
/// (`\"`, `\'`, `\\`, `\n`, `\t`, `\r`; any other escaped character stands for itself)
/// and may not span lines. `//` line comments and `/* */` comments are skipped.
pub fn parse_jaas_config(text: &str) -> Result<Vec<JaasEntry>, JaasError> {
    let mut lexer = Lexer::new(text);
    let mut entries = Vec::new();
    while let Some(first) = lexer.next_token()? {
        entries.push(parse_jaas_entry(&mut lexer, first)?);
    }
    if entries.is_empty() {
        return Err(JaasError::NoLoginModule);
    }
    Ok(entries)
}

fn parse_jaas_entry(
    lexer: &mut Lexer<'_>,
    first: (Token, Position),
) -> Result<JaasEntry, JaasError> {
    let login_module = match first {
        (
            Token::Text {
                value,
                quoted: false,
            },
            _,
        ) => value,
        (token, at) => {
            return Err(JaasError::LoginModuleExpected {
                found: token.describe(),
                at,
            })
        }
    };
    let control_flag = match lexer.next_token()? {
        None => return Err(JaasError::ControlFlagMissing),
        Some((
            Token::Text {
                value,
                quoted: false,
            },
            at,
        )) => {
            ControlFlag::parse(&value).ok_or(JaasError::InvalidControlFlag { flag: value, at })?
        }
        Some((token, at)) => {
            return Err(JaasError::InvalidControlFlag {
                flag: token.describe(),
                at,
            })
        }
    };
    let mut options = BTreeMap::new();
    loop {
        match lexer.next_token()? {
            None => return Err(JaasError::NotTerminated),
            Some((Token::Semicolon, _)) => break,
            Some((
                Token::Text {
                    value: key,
                    quoted: false,
                },
                at,
            )) => {
                let value = parse_option_value(lexer, &key, at)?;
                options.insert(key, value);
            }
            Some((token, at)) => {
                return Err(JaasError::OptionNameExpected {
                    found: token.describe(),
                    at,
                })
            }
        }
    }
    Ok(JaasEntry {
        login_module,
        control_flag,
        options,
    })
}

/// The `= value` after an option's key.
fn parse_option_value(lexer: &mut Lexer<'_>, key: &str, at: Position) -> Result<String, JaasError> {
    let missing = || JaasError::ValueMissing {
        key: key.to_owned(),
        at,
    };
    match lexer.next_token()? {
        Some((Token::Equals, _)) => {}
        _ => return Err(missing()),
    }
    match lexer.next_token()? {
        Some((Token::Text { value, .. }, _)) => Ok(value),
        _ => Err(missing()),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Text { value: String, quoted: bool },
    Equals,
    Semicolon,
}

impl Token {
    /// For error messages. A quoted value is not echoed: it is most likely a password.
    fn describe(&self) -> String {
        match self {
            Token::Text {
                value,
                quoted: false,
            } => format!("'{value}'"),
            Token::Text { quoted: true, .. } => "a quoted value".to_owned(),
            Token::Equals => "'='".to_owned(),
            Token::Semicolon => "';'".to_owned(),
        }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '$' | '-' | '.')
}

/// Splits a JAAS config into tokens, tracking positions for error messages.
struct Lexer<'a> {
    chars: Peekable<Chars<'a>>,
    position: Position,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Lexer {
            chars: text.chars().peekable(),
            position: Position { line: 1, column: 1 },
        }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.position.line += 1;
            self.position.column = 1;
        } else {
            self.position.column += 1;
        }
        Some(c)
    }

    /// The character after the next one, without consuming anything.
    fn peek_second(&self) -> Option<char> {
        let mut ahead = self.chars.clone();
        ahead.next();
        ahead.next()
    }

    fn next_token(&mut self) -> Result<Option<(Token, Position)>, JaasError> {
        self.skip_blanks_and_comments()?;
        let at = self.position;
        let Some(&c) = self.chars.peek() else {
            return Ok(None);
        };
        let token = match c {
            '=' => {
                self.bump();
                Token::Equals
            }
            ';' => {
                self.bump();
                Token::Semicolon
            }
            '"' | '\'' => self.quoted(at)?,
            c if is_word_char(c) => self.word(),
            ch => return Err(JaasError::UnexpectedChar { ch, at }),
        };
        Ok(Some((token, at)))
    }

    fn skip_blanks_and_comments(&mut self) -> Result<(), JaasError> {
        while let Some(&c) = self.chars.peek() {
            if c.is_whitespace() {
                self.bump();
            } else if c == '/' && self.peek_second() == Some('/') {
                while self.bump().is_some_and(|c| c != '\n') {}
            } else if c == '/' && self.peek_second() == Some('*') {
                self.block_comment()?;
            } else {
                break;
            }
        }
        Ok(())
    }

    fn block_comment(&mut self) -> Result<(), JaasError> {
        let at = self.position;
        self.bump();
        self.bump();
        let mut previous = '\0';
        loop {
            match self.bump() {
                None => return Err(JaasError::UnterminatedComment { at }),
                Some('/') if previous == '*' => return Ok(()),
                Some(c) => previous = c,
            }
        }
    }

    fn word(&mut self) -> Token {
        let mut value = String::new();
        while let Some(&c) = self.chars.peek() {
            if !is_word_char(c) {
                break;
            }
            value.push(c);
            self.bump();
        }
        Token::Text {
            value,
            quoted: false,
        }
    }

    fn quoted(&mut self, at: Position) -> Result<Token, JaasError> {
        let Some(quote) = self.bump() else {
            return Err(JaasError::UnterminatedQuote { at });
        };
        let mut value = String::new();
        loop {
            match self.bump() {
                None | Some('\n') => return Err(JaasError::UnterminatedQuote { at }),
                Some(c) if c == quote => break,
                Some('\\') => match self.bump() {
                    None | Some('\n') => return Err(JaasError::UnterminatedQuote { at }),
                    Some('n') => value.push('\n'),
                    Some('t') => value.push('\t'),
                    Some('r') => value.push('\r'),
                    Some(other) => value.push(other),
                },
                Some(c) => value.push(c),
            }
        }
        Ok(Token::Text {
            value,
            quoted: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KAFKA_DOC_EXAMPLE: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";"#;

    fn users() -> PlainUsers {
        PlainUsers::from_jaas_config(KAFKA_DOC_EXAMPLE).expect("valid config")
    }

    // -- the message ----------------------------------------------------------------

    #[test]
    fn authenticates_with_empty_authzid() {
        let message = client_message("", "alice", "alice-secret");
        assert_eq!(users().authenticate(&message), Ok("alice".to_owned()));
    }

    #[test]
    fn authenticates_with_authzid_equal_to_username() {
        let message = client_message("alice", "alice", "alice-secret");
        assert_eq!(users().authenticate(&message), Ok("alice".to_owned()));
    }

    #[test]
    fn authzid_different_from_username_is_refused_after_the_password() {
        let right = client_message("admin", "alice", "alice-secret");
        assert_eq!(
            users().authenticate(&right),
            Err(PlainError::AuthorizationIdMismatch)
        );
        assert_eq!(
            PlainError::AuthorizationIdMismatch.to_string(),
            "Authentication failed: Client requested an authorization id that is different from username"
        );
        // Kafka checks the password first, so a wrong one hides the authzid problem.
        let wrong = client_message("admin", "alice", "nope");
        assert_eq!(
            users().authenticate(&wrong),
            Err(PlainError::InvalidCredentials)
        );
    }

    #[test]
    fn wrong_password_and_unknown_user_look_the_same() {
        let store = users();
        let wrong_password = store.authenticate(&client_message("", "alice", "admin-secret"));
        let unknown_user = store.authenticate(&client_message("", "mallory", "alice-secret"));
        assert_eq!(wrong_password, Err(PlainError::InvalidCredentials));
        assert_eq!(unknown_user, wrong_password);
        assert_eq!(
            PlainError::InvalidCredentials.to_string(),
            "Authentication failed: Invalid username or password"
        );
    }

    #[test]
    fn password_must_match_exactly() {
        let store = users();
        for attempt in [
            "alice-secre",
            "alice-secret ",
            "alice-secretx",
            "ALICE-SECRET",
        ] {
            assert_eq!(
                store.authenticate(&client_message("", "alice", attempt)),
                Err(PlainError::InvalidCredentials),
                "{attempt:?}"
            );
        }
    }

    #[test]
    fn token_counts_follow_kafka() {
        let store = users();
        let cases: [(&[u8], usize); 5] = [
            (b"", 1),
            (b"alice", 1),
            (b"\0alice", 2),
            (b"\0alice\0secret\0more", 4),
            (b"a\0b\0c\0d\0e\0f", 4),
        ];
        for (message, count) in cases {
            assert_eq!(
                store.authenticate(message),
                Err(PlainError::TokenCount(count))
            );
        }
        assert_eq!(
            PlainError::TokenCount(2).to_string(),
            "Invalid SASL/PLAIN response: expected 3 tokens, got 2"
        );
    }

    #[test]
    fn empty_username_and_password_have_kafkas_messages() {
        let store = users();
        let no_user = store.authenticate(b"\0\0secret");
        assert_eq!(no_user, Err(PlainError::UsernameMissing));
        assert_eq!(
            PlainError::UsernameMissing.to_string(),
            "Authentication failed: username not specified"
        );
        let no_password = store.authenticate(b"\0alice\0");
        assert_eq!(no_password, Err(PlainError::PasswordMissing));
        assert_eq!(
            PlainError::PasswordMissing.to_string(),
            "Authentication failed: password not specified"
        );
    }

    #[test]
    fn non_utf8_is_refused() {
        assert_eq!(
            users().authenticate(b"\0alice\0\xff\xfe"),
            Err(PlainError::NotUtf8)
        );
    }

    #[test]
    fn client_message_layout() {
        assert_eq!(client_message("", "u", "p"), b"\0u\0p".to_vec());
        assert_eq!(client_message("z", "u", "p"), b"z\0u\0p".to_vec());
    }

    #[test]
    fn non_ascii_credentials_work() {
        let store = PlainUsers::new([("jörg".to_owned(), "päss wört".to_owned())]).unwrap();
        assert_eq!(
            store.authenticate(&client_message("", "jörg", "päss wört")),
            Ok("jörg".to_owned())
        );
    }

    // -- the store ------------------------------------------------------------------

    #[test]
    fn jaas_config_gives_users_and_client_credentials() {
        let store = users();
        assert_eq!(store.len(), 2);
        assert_eq!(
            store.client_credentials(),
            Some(("admin".to_owned(), "admin-secret".to_owned()))
        );
        assert_eq!(
            store.authenticate(&client_message("", "admin", "admin-secret")),
            Ok("admin".to_owned())
        );
        // `username`/`password` are not a user of their own.
        let only_client = PlainUsers::from_jaas_config(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" password="pw";"#,
        )
        .unwrap();
        assert!(only_client.is_empty());
        assert_eq!(
            only_client.authenticate(&client_message("", "broker", "pw")),
            Err(PlainError::InvalidCredentials)
        );
    }

    #[test]
    fn jaas_config_without_client_credentials() {
        let store = PlainUsers::from_jaas_config(
            "org.apache.kafka.common.security.plain.PlainLoginModule required user_bob=\"b\";",
        )
        .unwrap();
        assert_eq!(store.client_credentials(), None);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn jaas_config_must_hold_one_plain_module() {
        let two = format!("{KAFKA_DOC_EXAMPLE} {KAFKA_DOC_EXAMPLE}");
        let err = PlainUsers::from_jaas_config(&two).unwrap_err();
        assert_eq!(err, PlainConfigError::ModuleCount(2));
        assert_eq!(
            err.to_string(),
            "JAAS config property contains 2 login modules, should be 1 module"
        );
        let scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;";
        assert_eq!(
            PlainUsers::from_jaas_config(scram).unwrap_err(),
            PlainConfigError::WrongLoginModule(
                "org.apache.kafka.common.security.scram.ScramLoginModule".to_owned()
            )
        );
        assert_eq!(
            PlainUsers::from_jaas_config("  ").unwrap_err(),
            PlainConfigError::Jaas(JaasError::NoLoginModule)
        );
    }

    #[test]
    fn jaas_config_refuses_half_client_credentials_and_empty_users() {
        let module = PLAIN_LOGIN_MODULE;
        for options in [
            r#"username="a""#,
            r#"password="a""#,
            r#"username="" password="a""#,
        ] {
            let text = format!("{module} required {options};");
            assert_eq!(
                PlainUsers::from_jaas_config(&text).unwrap_err(),
                PlainConfigError::IncompleteClientCredentials,
                "{options}"
            );
        }
        let empty_name = format!("{module} required user_=\"x\";");
        assert_eq!(
            PlainUsers::from_jaas_config(&empty_name).unwrap_err(),
            PlainConfigError::EmptyUsername
        );
        let empty_password = format!("{module} required user_bob=\"\";");
        assert_eq!(
            PlainUsers::from_jaas_config(&empty_password).unwrap_err(),
            PlainConfigError::EmptyPassword("bob".to_owned())
        );
    }

    #[test]
    fn debug_output_hides_passwords() {
        let text = format!("{:?}", users());
        assert!(!text.contains("secret"), "{text}");
        let entry = &parse_jaas_config(KAFKA_DOC_EXAMPLE).unwrap()[0];
        let text = format!("{entry:?}");
        assert!(
            text.contains("user_alice") && !text.contains("secret"),
            "{text}"
        );
    }

    #[test]
    fn users_file() {
        let text = "# PLAIN users\n\nalice=alice-secret\r\n  bob = has = and spaces \n\t# indented comment\n";
        let store = PlainUsers::from_file(text).unwrap();
        assert_eq!(store.len(), 2);
        assert_eq!(store.client_credentials(), None);
        assert_eq!(
            store.authenticate(&client_message("", "alice", "alice-secret")),
            Ok("alice".to_owned())
        );
        assert_eq!(
            store.authenticate(&client_message("", "bob", " has = and spaces ")),
            Ok("bob".to_owned())
        );
        assert!(PlainUsers::from_file("").unwrap().is_empty());
    }

    #[test]
    fn users_file_errors_name_the_line() {
        let cases = [
            ("alice=a\nbob\n", 2, "expected name=password"),
            ("=secret\n", 1, "empty user name"),
            ("alice=\n", 1, "empty password"),
        ];
        for (text, line, reason) in cases {
            assert_eq!(
                PlainUsers::from_file(text).unwrap_err(),
                PlainConfigError::FileLine { line, reason },
                "{text:?}"
            );
        }
        assert_eq!(
            PlainUsers::from_file("a=1\n# c\na=2\n").unwrap_err(),
            PlainConfigError::DuplicateUser {
                line: 3,
                user: "a".to_owned()
            }
        );
        assert_eq!(
            PlainUsers::from_file("bob\n").unwrap_err().to_string(),
            "PLAIN users file, line 1: expected name=password"
        );
    }

    // -- the JAAS parser ------------------------------------------------------------

    #[test]
    fn jaas_parses_the_kafka_example() {
        let entries = parse_jaas_config(KAFKA_DOC_EXAMPLE).unwrap();
        assert_eq!(entries.len(), 1);
        let entry = &entries[0];
        assert_eq!(entry.login_module, PLAIN_LOGIN_MODULE);
        assert_eq!(entry.control_flag, ControlFlag::Required);
        let options: Vec<(&str, &str)> = entry
            .options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            options,
            [
                ("password", "admin-secret"),
                ("user_admin", "admin-secret"),
                ("user_alice", "alice-secret"),
                ("username", "admin"),
            ]
        );
    }

    #[test]
    fn jaas_quotes_escapes_words_comments_and_flags() {
        let text = "// leading comment\n\
            com.example.First REQUIRED /* block\n comment */ a=\"x \\\"y\\\" \\\\ z\" b='it\\'s' c=plain-word_1.$ d=4096\n\
            ;\ncom.example.Second optional;\ncom.example.Third Sufficient e=\"\";\ncom.example.Fourth requisite e=1 e=2;";
        let entries = parse_jaas_config(text).unwrap();
        assert_eq!(entries.len(), 4);
        let first = &entries[0];
        assert_eq!(first.login_module, "com.example.First");
        assert_eq!(first.control_flag, ControlFlag::Required);
        assert_eq!(first.options["a"], "x \"y\" \\ z");
        assert_eq!(first.options["b"], "it's");
        assert_eq!(first.options["c"], "plain-word_1.$");
        assert_eq!(first.options["d"], "4096");
        assert_eq!(entries[1].control_flag, ControlFlag::Optional);
        assert!(entries[1].options.is_empty());
        assert_eq!(entries[2].control_flag, ControlFlag::Sufficient);
        assert_eq!(entries[2].options["e"], "");
        assert_eq!(entries[3].control_flag, ControlFlag::Requisite);
        assert_eq!(entries[3].options["e"], "2", "last value wins, as in Kafka");
    }

    #[test]
    fn jaas_errors() {
        let at = |line, column| Position { line, column };
        let cases: Vec<(&str, JaasError)> = vec![
            ("", JaasError::NoLoginModule),
            ("/* only */ // comments", JaasError::NoLoginModule),
            ("Module", JaasError::ControlFlagMissing),
            (
                "Module mandatory;",
                JaasError::InvalidControlFlag {
                    flag: "mandatory".to_owned(),
                    at: at(1, 8),
                },
            ),
            ("Module required a=\"b\"", JaasError::NotTerminated),
            (
                "Module required a;",
                JaasError::ValueMissing {
                    key: "a".to_owned(),
                    at: at(1, 17),
                },
            ),
            (
                "Module required a=;",
                JaasError::ValueMissing {
                    key: "a".to_owned(),
                    at: at(1, 17),
                },
            ),
            (
                "Module required\n  a=",
                JaasError::ValueMissing {
                    key: "a".to_owned(),
                    at: at(2, 3),
                },
            ),
            (
                "Module required =x;",
                JaasError::OptionNameExpected {
                    found: "'='".to_owned(),
                    at: at(1, 17),
                },
            ),
            (
                "; Module required;",
                JaasError::LoginModuleExpected {
                    found: "';'".to_owned(),
                    at: at(1, 1),
                },
            ),
            (
                "\"Module\" required;",
                JaasError::LoginModuleExpected {
                    found: "a quoted value".to_owned(),
                    at: at(1, 1),
                },
            ),
            (
                "Module \"required\";",
                JaasError::InvalidControlFlag {
                    flag: "a quoted value".to_owned(),
                    at: at(1, 8),
                },
            ),
            (
                "Module required \"a\"=b;",
                JaasError::OptionNameExpected {
                    found: "a quoted value".to_owned(),
                    at: at(1, 17),
                },
            ),
            (
                "Module required a=\"secret",
                JaasError::UnterminatedQuote { at: at(1, 19) },
            ),
            (
                "Module required a=\"sec\nret\";",
                JaasError::UnterminatedQuote { at: at(1, 19) },
            ),
            (
                "Module required /* a=b;",
                JaasError::UnterminatedComment { at: at(1, 17) },
            ),
            (
                "Module required a=b, c=d;",
                JaasError::UnexpectedChar {
                    ch: ',',
                    at: at(1, 20),
                },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_jaas_config(text), Err(expected), "{text:?}");
        }
    }

    #[test]
    fn jaas_error_messages_start_with_kafkas() {
        let message = |text: &str| parse_jaas_config(text).unwrap_err().to_string();
        assert_eq!(message(""), "Login module not specified in JAAS config");
        assert_eq!(
            message("M"),
            "Login module control flag not specified in JAAS config"
        );
        assert_eq!(
            message("M x;"),
            "Invalid login module control flag 'x' in JAAS config at line 1, column 3"
        );
        assert_eq!(
            message("M required k;"),
            "Value not specified for key 'k' in JAAS config at line 1, column 12"
        );
        assert_eq!(
            message("M required"),
            "JAAS config entry not terminated by semi-colon"
        );
        // A quoted value in the wrong place is not echoed: it may be a password.
        assert_eq!(
            message("M required \"hunter2\";"),
            "Option name expected in JAAS config, found a quoted value at line 1, column 12"
        );
    }
}
