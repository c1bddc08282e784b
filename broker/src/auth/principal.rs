//! Principals as Kafka builds them: `User:ANONYMOUS` without authentication, the SASL user
//! name, or a TLS client certificate's distinguished name passed through
//! `ssl.principal.mapping.rules`.
//!
//! The rules are Kafka's: a comma-separated list of `RULE:pattern/replacement/[L|U]` and
//! `DEFAULT`, tried in order; the first whose pattern matches the whole DN gives the name
//! (the replacement may use `$1`.. groups; `L`/`U` lower- or upper-case it), `DEFAULT`
//! takes the DN as it is, and a DN no rule matches is refused. Patterns are Java regular
//! expressions in Kafka; Strom compiles them with the `regex` crate, which accepts the
//! forms these rules use (groups, lazy quantifiers, classes, anchors) but not
//! look-around or back-references, refused at start-up with the reason.

use regex::Regex;
use thiserror::Error;

/// Kafka's principal for a client that did not authenticate.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

#[derive(Debug, Error, PartialEq)]
pub enum RuleError {
    #[error("invalid rule at '{0}': expected RULE:pattern/replacement/[LU] or DEFAULT")]
    Syntax(String),
    #[error("invalid pattern in rule '{rule}': {why}")]
    Pattern { rule: String, why: String },
}

#[derive(Debug, Error, PartialEq)]
#[error("no ssl.principal.mapping.rules rule applies to {0}")]
pub struct NoMatchingRule(pub String);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Map {
        pattern: Regex,
        /// In the `regex` crate's syntax (`${1}`), translated from Java's `$1`.
        replacement: String,
        case: Case,
    },
}

/// `ssl.principal.mapping.rules`, compiled.
#[derive(Debug, Clone)]
pub struct SslPrincipalMapper {
    rules: Vec<Rule>,
}

impl SslPrincipalMapper {
    pub fn parse(rules: &str) -> Result<SslPrincipalMapper, RuleError> {
        let mut parsed = Vec::new();
        let mut rest = rules.trim();
        while !rest.is_empty() {
            let (rule, after) = if let Some(after) = rest.strip_prefix("DEFAULT") {
                (Rule::Default, after)
            } else if let Some(body) = rest.strip_prefix("RULE:") {
                parse_mapping(body).ok_or_else(|| RuleError::Syntax(rest.to_string()))??
            } else {
                return Err(RuleError::Syntax(rest.to_string()));
            };
            parsed.push(rule);
            let after = after.trim_start();
            rest = match after.strip_prefix(',') {
                Some(next) => next.trim_start(),
                None if after.is_empty() => after,
                None => return Err(RuleError::Syntax(after.to_string())),
            };
        }
        if parsed.is_empty() {
            parsed.push(Rule::Default);
        }
        Ok(SslPrincipalMapper { rules: parsed })
    }

    /// The principal name for `dn` (without the `User:` type).
    pub fn name_for(&self, dn: &str) -> Result<String, NoMatchingRule> {
        for rule in &self.rules {
            match rule {
                Rule::Default => return Ok(dn.to_string()),
                Rule::Map {
                    pattern,
                    replacement,
                    case,
                } => {
                    // Anchored at compile time: Java's matches(), the whole DN.
                    if !pattern.is_match(dn) {
                        continue;
                    }
                    let name = pattern.replace_all(dn, replacement.as_str());
                    return Ok(match case {
                        Case::Keep => name.into_owned(),
                        Case::Lower => name.to_lowercase(),
                        Case::Upper => name.to_uppercase(),
                    });
                }
            }
        }
        Err(NoMatchingRule(dn.to_string()))
    }
}

/// `pattern/replacement/[LU]` after `RULE:`; `None` when the slashes are missing. Returns
/// the rule and the text after it.
fn parse_mapping(body: &str) -> Option<Result<(Rule, &str), RuleError>> {
    let (pattern, rest) = until_slash(body)?;
    let (replacement, rest) = until_slash(rest)?;
    let (case, rest) = match rest.chars().next() {
        Some('L') => (Case::Lower, &rest[1..]),
        Some('U') => (Case::Upper, &rest[1..]),
        _ => (Case::Keep, rest),
    };
    let rule_text = &body[..body.len() - rest.len()];
    // Anchored so that a pattern that matches only a part of the DN is not a match, as
    // with Java's matches(); the group keeps alternations whole.
    let compiled = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| RuleError::Pattern {
        rule: format!("RULE:{rule_text}"),
        why: e.to_string(),
    });
    Some(compiled.map(|pattern| {
        (
            Rule::Map {
                pattern,
                replacement: java_replacement(&replacement),
                case,
            },
            rest,
        )
    }))
}

/// The text up to the next unescaped `/` (with `\/` turned into `/`) and what follows it.
fn until_slash(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, '/')) => out.push('/'),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            '/' => return Some((out, &s[i + 1..])),
            _ => out.push(c),
        }
    }
    None
}

/// Java's replacement syntax (`$1`, `\$` for a dollar) in the `regex` crate's (`${1}`,
/// `$$`): `$1a` must stay group 1 followed by `a`, not a group named `1a`.
fn java_replacement(java: &str) -> String {
    let mut out = String::new();
    let mut chars = java.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => {}
            },
            '$' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    out.push_str("$$");
                } else {
                    out.push_str(&format!("${{{digits}}}"));
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(rules: &str, dn: &str) -> Result<String, NoMatchingRule> {
        SslPrincipalMapper::parse(rules).unwrap().name_for(dn)
    }

    /// The examples of Kafka's documentation for ssl.principal.mapping.rules.
    #[test]
    fn kafka_documentation_examples() {
        let rules = "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,\
                     RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,\
                     RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,\
                     DEFAULT";
        assert_eq!(
            map(
                rules,
                "CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown"
            )
            .unwrap(),
            "serviceuser"
        );
        assert_eq!(
            map(
                rules,
                "CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown"
            )
            .unwrap(),
            "adminuser@admin"
        );
        assert_eq!(map(rules, "OU=X,cn=Bob.Smith,O=Y").unwrap(), "bob.smith");
    }

    #[test]
    fn default_and_no_rules_keep_the_dn() {
        assert_eq!(
            map("DEFAULT", "CN=alice,O=Strom").unwrap(),
            "CN=alice,O=Strom"
        );
        assert_eq!(map("", "CN=alice").unwrap(), "CN=alice");
    }

    #[test]
    fn the_whole_dn_must_match_and_unmatched_dns_are_refused() {
        // Matches a part of the DN only: Java's matches() says no, so no rule applies.
        let err = map("RULE:CN=([a-z]+)/$1/", "CN=alice,O=Strom").unwrap_err();
        assert_eq!(err, NoMatchingRule("CN=alice,O=Strom".into()));
        assert_eq!(
            map("RULE:CN=([a-z]+),.*/$1/U", "CN=alice,O=Strom").unwrap(),
            "ALICE"
        );
    }

    #[test]
    fn replacement_syntax_and_escaped_slashes() {
        assert_eq!(
            map("RULE:CN=(.*),O=(.*)/$1a\\$$2/", "CN=x,O=y").unwrap(),
            "xa$y"
        );
        assert_eq!(map("RULE:CN=(.*)\\/(.*)/$2/", "CN=a/b").unwrap(), "b");
        assert_eq!(
            map(" RULE:CN=a|CN=b/ok/ , DEFAULT ", "CN=b").unwrap(),
            "ok",
            "alternations stay inside the anchors"
        );
    }

    #[test]
    fn malformed_rules_are_refused_with_the_reason() {
        for bad in [
            "RULE:abc",
            "RULE:a/b",
            "SOMETHING",
            "DEFAULT x",
            "RULE:(/x/",
        ] {
            assert!(SslPrincipalMapper::parse(bad).is_err(), "{bad}");
        }
        let err = SslPrincipalMapper::parse("RULE:(?<=x)a/b/").unwrap_err();
        assert!(matches!(err, RuleError::Pattern { .. }), "{err}");
    }
}
