//! The ACL set and the decisions taken from it: Kafka's `StandardAuthorizer` /
//! `StandardAuthorizerData` (`authorize`), `Authorizer.authorizeByResourceType`, and the
//! listing behind DescribeAcls/DeleteAcls (`AclCache.acls`).
//!
//! Decision rules, as `StandardAuthorizerData.authorize`/`findResult` apply them:
//! - a super user (`super.users` holds its `type:name`) is allowed everything;
//! - the ACLs that apply to a resource are those of its type that are LITERAL with its
//!   name, LITERAL `*`, or PREFIXED with a prefix of its name (the empty prefix too);
//! - of those, an ACL matches the request when its principal is the requester's or
//!   `User:*`, its host is the client's address string or `*`, and its operation is ALL,
//!   the requested one, or — for ALLOW ACLs only — one that implies it (READ, WRITE,
//!   DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS);
//! - any matching DENY denies; else any matching ALLOW allows; else, if any ACL applies
//!   to the resource at all (whoever and whatever it is for), deny; else
//!   `allow.everyone.if.no.acl.found` decides.
//!
//! The ACLs are indexed per resource type and pattern type by name, and the PREFIXED ones
//! also by name length, so a decision costs one lookup per distinct prefix length rather
//! than a scan (Kafka walks a reverse-sorted set for the same effect).
//!
//! Not here: Kafka's "not ready until the initial metadata load" refusal
//! (`AuthorizerNotReadyException` for everyone but super users) and audit logging; the
//! caller owns both, [`Decision::rule`] says which rule decided.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};

use thiserror::Error;
use uuid::Uuid;

use super::filter::AclBindingFilter;
use super::model::{
    operations_bitfield, supported_operations, AclBinding, AclOperation, AclPermissionType,
    AuthorizationResult, KafkaPrincipal, PatternType, PrincipalParseError, ResourcePattern,
    ResourceType, WILDCARD_HOST, WILDCARD_RESOURCE,
};

/// The broker setting listing the super users, `;`-separated.
pub const SUPER_USERS_CONFIG: &str = "super.users";
/// The broker setting deciding resources no ACL applies to.
pub const ALLOW_EVERYONE_IF_NO_ACL_FOUND_CONFIG: &str = "allow.everyone.if.no.acl.found";

/// The resource name `Authorizer.authorizeByResourceType` first authorizes, so that super
/// users (and the no-ACL default) are honoured before the ACL scan.
const BY_TYPE_PROBE_NAME: &str = "hardcode";

/// `StandardAuthorizer.getConfiguredSuperUsers`: split at `;`, trim, skip empty pieces;
/// each must parse as a principal, and is kept as written (trimmed), since the check
/// compares strings.
pub fn parse_super_users(value: &str) -> Result<HashSet<String>, PrincipalParseError> {
    let mut users = HashSet::new();
    for piece in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        KafkaPrincipal::parse(piece)?;
        users.insert(piece.to_owned());
    }
    Ok(users)
}

/// `StandardAuthorizer.getDefaultResult`: Java's `Boolean.parseBoolean` of the trimmed
/// value, so only `true` in any case means true; anything else, even `yes`, is false.
pub fn parse_allow_everyone_if_no_acl_found(value: &str) -> bool {
    value.trim().eq_ignore_ascii_case("true")
}

/// The authorizer's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// `type:name` strings, compared with the requester's `type:name`.
    pub super_users: HashSet<String>,
    pub allow_everyone_if_no_acl_found: bool,
}

impl AuthorizerConfig {
    /// From the two settings' raw values (`None` when unset: no super users, default deny).
    pub fn from_settings(
        super_users: Option<&str>,
        allow_everyone_if_no_acl_found: Option<&str>,
    ) -> Result<AuthorizerConfig, PrincipalParseError> {
        Ok(AuthorizerConfig {
            super_users: super_users
                .map(parse_super_users)
                .transpose()?
                .unwrap_or_default(),
            allow_everyone_if_no_acl_found: allow_everyone_if_no_acl_found
                .is_some_and(parse_allow_everyone_if_no_acl_found),
        })
    }
}

/// Why the ACL set refused a change. The texts are Kafka's `AclCache` ones.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AclStoreError {
    #[error("An ACL with ID {0} already exists.")]
    DuplicateId(Uuid),
    /// Kafka keeps one copy of an ACL: the controller answers a second CreateAcls for it
    /// with success and no record (see [`Authorizer::contains`]).
    #[error("Unable to add the ACL with ID {0} to aclsByResource")]
    DuplicateAcl(Uuid),
    #[error("ID {0} not found in aclsById.")]
    UnknownId(Uuid),
    /// Only LITERAL and PREFIXED ACLs can be stored (validation refuses the rest).
    #[error("Unable to add the ACL with ID {0}: pattern type {1} cannot be stored")]
    UnstorablePatternType(Uuid, PatternType),
}

/// `authorizeByResourceType` was asked about a filter value
/// (`SecurityUtils.authorizeByResourceTypeCheckArgs`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct InvalidQuery(pub &'static str);

/// Which rule decided (what Kafka's audit log prints after "based on rule").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchingRule {
    /// "SuperUser".
    SuperUser,
    /// No ACL applies to the resource: `allow.everyone.if.no.acl.found` decided
    /// ("DefaultAllow"/"DefaultDeny").
    NoAclFound,
    /// ACLs apply to the resource but none matched this request: denied ("DefaultDeny").
    NoMatchingAcl,
    /// This ACL decided ("MatchingAcl(acl=…)").
    Acl(Uuid),
}

/// A decision and the rule behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub result: AuthorizationResult,
    pub rule: MatchingRule,
}

/// One stored ACL as decisions need it: the principal parsed once, at add time.
#[derive(Debug, Clone)]
struct Entry {
    id: Uuid,
    /// `None` for a principal without ':' (Kafka 4.0 refuses those at creation; an older
    /// log could hold one). Kafka's authorizer throws when it meets one; here it matches
    /// nobody, but still counts as an ACL of its resource.
    principal: Option<KafkaPrincipal>,
    host: String,
    operation: AclOperation,
    permission_type: AclPermissionType,
}

impl Entry {
    fn new(id: Uuid, binding: &AclBinding) -> Entry {
        Entry {
            id,
            principal: KafkaPrincipal::parse(&binding.entry.principal).ok(),
            host: binding.entry.host.clone(),
            operation: binding.entry.operation,
            permission_type: binding.entry.permission_type,
        }
    }

    /// `matchingPrincipals` is {requester, User:*}: only `User:*` is a wildcard.
    fn principal_matches(&self, principal: &KafkaPrincipal) -> bool {
        self.principal
            .as_ref()
            .is_some_and(|p| p == principal || p.is_wildcard())
    }

    fn host_matches(&self, host: &str) -> bool {
        self.host == WILDCARD_HOST || self.host == host
    }

    fn is_allow(&self) -> bool {
        self.permission_type == AclPermissionType::Allow
    }

    /// `findResult`'s operation rule. Implication is for ALLOW only: a DENY of READ does
    /// not deny DESCRIBE, while a DENY of ALL denies everything.
    fn operation_applies(&self, requested: AclOperation) -> bool {
        use AclOperation::*;
        if self.operation == All || self.operation == requested {
            return true;
        }
        if !self.is_allow() {
            return false;
        }
        match requested {
            Describe => matches!(self.operation, Read | Write | Delete | Alter),
            DescribeConfigs => self.operation == AlterConfigs,
            _ => false,
        }
    }

    /// `findResult`: `None` when this ACL says nothing about the request. Any permission
    /// other than ALLOW denies, as in Kafka.
    fn verdict(
        &self,
        principal: &KafkaPrincipal,
        host: &str,
        op: AclOperation,
    ) -> Option<AuthorizationResult> {
        if !self.principal_matches(principal)
            || !self.host_matches(host)
            || !self.operation_applies(op)
        {
            return None;
        }
        Some(if self.is_allow() {
            AuthorizationResult::Allowed
        } else {
            AuthorizationResult::Denied
        })
    }
}

/// The ACLs of one resource type.
#[derive(Debug, Default, Clone)]
struct Section {
    literal: HashMap<String, Vec<Entry>>,
    prefixed: HashMap<String, Vec<Entry>>,
    /// Byte length of PREFIXED names → how many distinct names have it, so a decision
    /// looks up only the prefix lengths that exist.
    prefix_lengths: BTreeMap<usize, usize>,
}

impl Section {
    fn names(&self, pattern_type: PatternType) -> Option<&HashMap<String, Vec<Entry>>> {
        match pattern_type {
            PatternType::Literal => Some(&self.literal),
            PatternType::Prefixed => Some(&self.prefixed),
            _ => None,
        }
    }

    /// Where ACLs of this pattern type live. [`Authorizer::add`] lets only LITERAL and
    /// PREFIXED in, so anything not PREFIXED is LITERAL here.
    fn names_mut(&mut self, pattern_type: PatternType) -> &mut HashMap<String, Vec<Entry>> {
        match pattern_type {
            PatternType::Prefixed => &mut self.prefixed,
            _ => &mut self.literal,
        }
    }

    fn insert(&mut self, pattern: &ResourcePattern, entry: Entry) {
        let entries = self
            .names_mut(pattern.pattern_type)
            .entry(pattern.name.clone())
            .or_default();
        let new_name = entries.is_empty();
        entries.push(entry);
        if new_name && pattern.pattern_type == PatternType::Prefixed {
            *self.prefix_lengths.entry(pattern.name.len()).or_default() += 1;
        }
    }

    fn remove(&mut self, pattern: &ResourcePattern, id: Uuid) {
        let names = self.names_mut(pattern.pattern_type);
        let Some(entries) = names.get_mut(&pattern.name) else {
            return;
        };
        entries.retain(|e| e.id != id);
        if !entries.is_empty() {
            return;
        }
        names.remove(&pattern.name);
        if pattern.pattern_type == PatternType::Prefixed {
            self.forget_prefix_length(pattern.name.len());
        }
    }

    fn forget_prefix_length(&mut self, len: usize) {
        if let Some(count) = self.prefix_lengths.get_mut(&len) {
            *count -= 1;
            if *count == 0 {
                self.prefix_lengths.remove(&len);
            }
        }
    }

    /// Every group of ACLs that applies to a resource of this type named `name`: its
    /// LITERAL name, each PREFIXED prefix of it, and LITERAL `*`.
    fn applicable<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [Entry]> + 'a {
        let exact = self.literal.get(name);
        // A resource literally named "*" already found its group as `exact`.
        let wildcard = (name != WILDCARD_RESOURCE)
            .then(|| self.literal.get(WILDCARD_RESOURCE))
            .flatten();
        let prefixes = self
            .prefix_lengths
            .range(..=name.len())
            .filter_map(move |(&len, _)| name.get(..len))
            .filter_map(move |prefix| self.prefixed.get(prefix));
        exact
            .into_iter()
            .chain(prefixes)
            .chain(wildcard)
            .map(Vec::as_slice)
    }

    fn all(&self) -> impl Iterator<Item = (PatternType, &str, &Entry)> {
        let literal = self.literal.iter().flat_map(|(n, es)| {
            es.iter()
                .map(move |e| (PatternType::Literal, n.as_str(), e))
        });
        let prefixed = self.prefixed.iter().flat_map(|(n, es)| {
            es.iter()
                .map(move |e| (PatternType::Prefixed, n.as_str(), e))
        });
        literal.chain(prefixed)
    }
}

/// The current ACLs and the settings decisions use. Plain data: callers share it behind a
/// lock or swap whole copies, as Kafka swaps immutable snapshots.
#[derive(Debug, Clone, Default)]
pub struct Authorizer {
    config: AuthorizerConfig,
    by_id: HashMap<Uuid, AclBinding>,
    /// Indexed by `ResourceType::code()`; every variant's code is 0..=7.
    sections: [Section; 8],
}

impl Authorizer {
    pub fn new(config: AuthorizerConfig) -> Authorizer {
        Authorizer {
            config,
            ..Authorizer::default()
        }
    }

    pub fn config(&self) -> &AuthorizerConfig {
        &self.config
    }

    /// New settings, same ACLs (`copyWithNewConfig`).
    pub fn reconfigure(&mut self, config: AuthorizerConfig) {
        self.config = config;
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn get(&self, id: Uuid) -> Option<&AclBinding> {
        self.by_id.get(&id)
    }

    fn section(&self, resource_type: ResourceType) -> &Section {
        &self.sections[resource_type.code() as usize]
    }

    fn section_mut(&mut self, resource_type: ResourceType) -> &mut Section {
        &mut self.sections[resource_type.code() as usize]
    }

    /// Whether an identical ACL is stored (the controller's `existingAcls`: a CreateAcls
    /// for it succeeds without adding a copy).
    pub fn contains(&self, binding: &AclBinding) -> bool {
        self.id_of(binding).is_some()
    }

    /// The id of the stored ACL identical to `binding`.
    pub fn id_of(&self, binding: &AclBinding) -> Option<Uuid> {
        let names = self
            .section(binding.pattern.resource_type)
            .names(binding.pattern.pattern_type)?;
        names
            .get(&binding.pattern.name)?
            .iter()
            .map(|e| e.id)
            .find(|id| self.by_id.get(id) == Some(binding))
    }

    /// Adds an ACL under its id (`AclCache.addAcl`): refused if the id is taken or the same
    /// ACL is already stored.
    pub fn add(&mut self, id: Uuid, binding: AclBinding) -> Result<(), AclStoreError> {
        if self.by_id.contains_key(&id) {
            return Err(AclStoreError::DuplicateId(id));
        }
        if !binding.pattern.pattern_type.is_specific() {
            return Err(AclStoreError::UnstorablePatternType(
                id,
                binding.pattern.pattern_type,
            ));
        }
        if self.contains(&binding) {
            return Err(AclStoreError::DuplicateAcl(id));
        }
        let entry = Entry::new(id, &binding);
        self.section_mut(binding.pattern.resource_type)
            .insert(&binding.pattern, entry);
        self.by_id.insert(id, binding);
        Ok(())
    }

    /// Removes the ACL with this id and returns it (`AclCache.removeAcl`).
    pub fn remove(&mut self, id: Uuid) -> Result<AclBinding, AclStoreError> {
        let binding = self.by_id.remove(&id).ok_or(AclStoreError::UnknownId(id))?;
        self.section_mut(binding.pattern.resource_type)
            .remove(&binding.pattern, id);
        Ok(binding)
    }

    /// Replaces every ACL (`loadSnapshot`); on error nothing changes.
    pub fn load_snapshot(
        &mut self,
        acls: impl IntoIterator<Item = (Uuid, AclBinding)>,
    ) -> Result<(), AclStoreError> {
        let mut fresh = Authorizer::new(self.config.clone());
        for (id, binding) in acls {
            fresh.add(id, binding)?;
        }
        *self = fresh;
        Ok(())
    }

    /// The ACLs a DescribeAcls/DeleteAcls filter selects, with their ids, in Kafka's order
    /// (`StandardAcl.compareTo`: resource type, name descending, pattern type, operation,
    /// principal, host, permission).
    pub fn acls(&self, filter: &AclBindingFilter) -> Vec<(Uuid, &AclBinding)> {
        let mut found: Vec<(Uuid, &AclBinding)> = self
            .by_id
            .iter()
            .filter(|(_, b)| filter.matches(b))
            .map(|(id, b)| (*id, b))
            .collect();
        found.sort_by(|a, b| kafka_order(a.1, b.1));
        found
    }

    fn is_super_user(&self, principal: &KafkaPrincipal) -> bool {
        self.config.super_users.contains(principal.as_str())
    }

    fn default_result(&self) -> AuthorizationResult {
        if self.config.allow_everyone_if_no_acl_found {
            AuthorizationResult::Allowed
        } else {
            AuthorizationResult::Denied
        }
    }

    /// May `principal`, connected from `host` (the client address as
    /// [`super::host_address`] writes it), do `op` on the resource `resource_type`
    /// `resource_name`?
    pub fn authorize(
        &self,
        principal: &KafkaPrincipal,
        host: &str,
        op: AclOperation,
        resource_type: ResourceType,
        resource_name: &str,
    ) -> AuthorizationResult {
        self.decide(principal, host, op, resource_type, resource_name)
            .result
    }

    /// [`Authorizer::authorize`], with the rule that decided.
    pub fn decide(
        &self,
        principal: &KafkaPrincipal,
        host: &str,
        op: AclOperation,
        resource_type: ResourceType,
        resource_name: &str,
    ) -> Decision {
        if self.is_super_user(principal) {
            return Decision {
                result: AuthorizationResult::Allowed,
                rule: MatchingRule::SuperUser,
            };
        }
        let mut applies = false;
        let mut allowed_by = None;
        for group in self.section(resource_type).applicable(resource_name) {
            applies |= !group.is_empty();
            for entry in group {
                match entry.verdict(principal, host, op) {
                    Some(AuthorizationResult::Denied) => {
                        return Decision {
                            result: AuthorizationResult::Denied,
                            rule: MatchingRule::Acl(entry.id),
                        }
                    }
                    Some(AuthorizationResult::Allowed) => {
                        allowed_by.get_or_insert(entry.id);
                    }
                    None => {}
                }
            }
        }
        match (allowed_by, applies) {
            (Some(id), _) => Decision {
                result: AuthorizationResult::Allowed,
                rule: MatchingRule::Acl(id),
            },
            (None, true) => Decision {
                result: AuthorizationResult::Denied,
                rule: MatchingRule::NoMatchingAcl,
            },
            (None, false) => Decision {
                result: self.default_result(),
                rule: MatchingRule::NoAclFound,
            },
        }
    }

    /// `AuthHelper.authorizedOperations`: the bitfield of the resource type's supported
    /// operations this principal is allowed (0 for ANY/UNKNOWN, which have none).
    pub fn authorized_operations(
        &self,
        principal: &KafkaPrincipal,
        host: &str,
        resource_type: ResourceType,
        resource_name: &str,
    ) -> i32 {
        let supported = supported_operations(resource_type).unwrap_or(&[]);
        operations_bitfield(supported.iter().copied().filter(|op| {
            self.authorize(principal, host, *op, resource_type, resource_name)
                == AuthorizationResult::Allowed
        }))
    }

    /// `Authorizer.authorizeByResourceType`: may the principal do `op` on at least one
    /// resource of this type? (Kafka asks it for WRITE on TOPIC when a producer uses
    /// transactions or idempotence without the cluster-level permission.)
    ///
    /// Kafka's rules, quirks included:
    /// - first, a normal authorization of the resource named "hardcode": super users, and
    ///   `allow.everyone.if.no.acl.found` when no ACL applies to that name, allow;
    /// - then only ACLs of this principal (or `User:*`) and host (or `*`) for exactly
    ///   `op` or ALL count; no implication (ALLOW READ does not give DESCRIBE here);
    /// - a DENY on LITERAL `*` denies; an ALLOW on LITERAL `*` allows;
    /// - otherwise allowed if some ALLOW pattern is not dominated: a LITERAL allow is
    ///   dominated by a DENY of the same LITERAL name, and any allow by a DENY PREFIXED
    ///   that is a non-empty prefix of its name. A longer DENY prefix, or a LITERAL deny
    ///   of a PREFIXED allow's name, does not dominate.
    pub fn authorize_by_resource_type(
        &self,
        principal: &KafkaPrincipal,
        host: &str,
        op: AclOperation,
        resource_type: ResourceType,
    ) -> Result<AuthorizationResult, InvalidQuery> {
        check_by_type_args(op, resource_type)?;
        if self.authorize(principal, host, op, resource_type, BY_TYPE_PROBE_NAME)
            == AuthorizationResult::Allowed
        {
            return Ok(AuthorizationResult::Allowed);
        }
        let mut patterns = TypePatterns::default();
        for (pattern_type, name, entry) in self.section(resource_type).all() {
            if !entry.host_matches(host)
                || !entry.principal_matches(principal)
                || !(entry.operation == op || entry.operation == AclOperation::All)
            {
                continue;
            }
            if patterns.record(pattern_type, name, entry.permission_type) {
                return Ok(AuthorizationResult::Denied);
            }
        }
        Ok(patterns.result())
    }
}

/// The patterns `authorizeByResourceType` collects for one principal, host and operation.
#[derive(Default)]
struct TypePatterns<'a> {
    deny_literal: HashSet<&'a str>,
    deny_prefixed: HashSet<&'a str>,
    allow_literal: HashSet<&'a str>,
    allow_prefixed: HashSet<&'a str>,
    wildcard_allow: bool,
}

impl<'a> TypePatterns<'a> {
    /// Notes one matching ACL; true when it is a DENY of LITERAL `*`, which settles it.
    fn record(
        &mut self,
        pattern_type: PatternType,
        name: &'a str,
        permission: AclPermissionType,
    ) -> bool {
        let literal = pattern_type == PatternType::Literal;
        let wildcard = literal && name == WILDCARD_RESOURCE;
        match permission {
            AclPermissionType::Deny if wildcard => return true,
            AclPermissionType::Deny if literal => {
                self.deny_literal.insert(name);
            }
            AclPermissionType::Deny => {
                self.deny_prefixed.insert(name);
            }
            AclPermissionType::Allow if wildcard => self.wildcard_allow = true,
            AclPermissionType::Allow if literal => {
                self.allow_literal.insert(name);
            }
            AclPermissionType::Allow => {
                self.allow_prefixed.insert(name);
            }
            // Kafka skips any other permission.
            _ => {}
        }
        false
    }

    fn result(&self) -> AuthorizationResult {
        if self.wildcard_allow {
            return AuthorizationResult::Allowed;
        }
        let literal = self
            .allow_literal
            .iter()
            .filter(|name| !self.deny_literal.contains(*name));
        let mut candidates = literal.chain(self.allow_prefixed.iter());
        if candidates.any(|name| !self.dominated_by_prefix_deny(name)) {
            AuthorizationResult::Allowed
        } else {
            AuthorizationResult::Denied
        }
    }

    /// Whether a DENY PREFIXED is a prefix of `name`, counting prefixes of one character
    /// up (Kafka builds them character by character, so the empty prefix never counts here).
    fn dominated_by_prefix_deny(&self, name: &str) -> bool {
        name.char_indices()
            .map(|(i, c)| &name[..i + c.len_utf8()])
            .any(|prefix| self.deny_prefixed.contains(prefix))
    }
}

fn check_by_type_args(op: AclOperation, resource_type: ResourceType) -> Result<(), InvalidQuery> {
    match (resource_type, op) {
        (ResourceType::Any, _) => Err(InvalidQuery(
            "Must specify a non-filter resource type for authorizeByResourceType",
        )),
        (ResourceType::Unknown, _) => Err(InvalidQuery("Unknown resource type")),
        (_, AclOperation::Any) => Err(InvalidQuery(
            "Must specify a non-filter operation type for authorizeByResourceType",
        )),
        (_, AclOperation::Unknown) => Err(InvalidQuery("Unknown operation type")),
        _ => Ok(()),
    }
}

/// `StandardAcl.compareTo`. Names compare by code point here, Java's by UTF-16 unit; the
/// two differ only between supplementary characters and U+E000..U+FFFF.
pub(crate) fn kafka_order(a: &AclBinding, b: &AclBinding) -> Ordering {
    a.pattern
        .resource_type
        .cmp(&b.pattern.resource_type)
        .then_with(|| b.pattern.name.cmp(&a.pattern.name))
        .then_with(|| a.pattern.pattern_type.cmp(&b.pattern.pattern_type))
        .then_with(|| a.entry.operation.cmp(&b.entry.operation))
        .then_with(|| a.entry.principal.cmp(&b.entry.principal))
        .then_with(|| a.entry.host.cmp(&b.entry.host))
        .then_with(|| a.entry.permission_type.cmp(&b.entry.permission_type))
}

#[cfg(test)]
#[path = "authorizer_tests.rs"]
mod tests;
