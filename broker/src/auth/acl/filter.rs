//! ACL filters, as DescribeAcls and DeleteAcls carry them: Kafka's `ResourcePatternFilter`,
//! `AccessControlEntryFilter` and `AclBindingFilter`, with their `matches`,
//! `isUnknown` and `findIndefiniteField`.
//!
//! A `None` name, principal or host matches anything (Kafka's null). The principal and
//! host are compared as strings: a filter for `User:*` finds the ACLs written for
//! `User:*`, not every ACL.

use serde::{Deserialize, Serialize};

use super::model::{
    AccessControlEntry, AclBinding, AclOperation, AclPermissionType, PatternType, ResourcePattern,
    ResourceType, WILDCARD_RESOURCE,
};

/// Which resource patterns a filter selects (`ResourcePatternFilter`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResourcePatternFilter {
    pub resource_type: ResourceType,
    pub name: Option<String>,
    pub pattern_type: PatternType,
}

impl ResourcePatternFilter {
    /// `ResourcePatternFilter.ANY`.
    pub fn any() -> ResourcePatternFilter {
        ResourcePatternFilter {
            resource_type: ResourceType::Any,
            name: None,
            pattern_type: PatternType::Any,
        }
    }

    /// `isUnknown()`: UNKNOWN resource type or pattern type.
    pub fn is_unknown(&self) -> bool {
        self.resource_type.is_unknown() || self.pattern_type.is_unknown()
    }

    /// `ResourcePatternFilter.matches`, rule by rule:
    /// - the resource type must be equal unless the filter's is ANY;
    /// - the pattern type must be equal unless the filter's is ANY or MATCH;
    /// - no name matches every name;
    /// - with ANY, or the pattern's own type, the names must be equal (so ANY "foo" finds
    ///   LITERAL "foo" and PREFIXED "foo", but not LITERAL "*" nor PREFIXED "fo");
    /// - with MATCH, the patterns that would apply to a resource named so: LITERAL of
    ///   that name or "*", and PREFIXED whose name starts the filter's.
    pub fn matches(&self, pattern: &ResourcePattern) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != pattern.resource_type {
            return false;
        }
        if !matches!(self.pattern_type, PatternType::Any | PatternType::Match)
            && self.pattern_type != pattern.pattern_type
        {
            return false;
        }
        let Some(name) = &self.name else {
            return true;
        };
        if self.pattern_type == PatternType::Any || self.pattern_type == pattern.pattern_type {
            return *name == pattern.name;
        }
        match pattern.pattern_type {
            PatternType::Literal => *name == pattern.name || pattern.name == WILDCARD_RESOURCE,
            PatternType::Prefixed => name.starts_with(&pattern.name),
            // Kafka throws ("Unsupported PatternType") for a MATCH filter against a stored
            // pattern that is neither; no such pattern can be stored, so it matches nothing.
            _ => false,
        }
    }

    /// `findIndefiniteField()`: why this filter could match more than one pattern, with
    /// Kafka's wording. Kafka does not count pattern type ANY as indefinite.
    pub fn find_indefinite_field(&self) -> Option<&'static str> {
        if self.resource_type == ResourceType::Any {
            return Some("Resource type is ANY.");
        }
        if self.resource_type == ResourceType::Unknown {
            return Some("Resource type is UNKNOWN.");
        }
        if self.name.is_none() {
            return Some("Resource name is NULL.");
        }
        if self.pattern_type == PatternType::Match {
            return Some("Resource pattern type is MATCH.");
        }
        if self.pattern_type == PatternType::Unknown {
            return Some("Resource pattern type is UNKNOWN.");
        }
        None
    }

    pub fn matches_at_most_one(&self) -> bool {
        self.find_indefinite_field().is_none()
    }
}

/// Which entries a filter selects (`AccessControlEntryFilter`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AccessControlEntryFilter {
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission_type: AclPermissionType,
}

impl AccessControlEntryFilter {
    /// `AccessControlEntryFilter.ANY`.
    pub fn any() -> AccessControlEntryFilter {
        AccessControlEntryFilter {
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission_type: AclPermissionType::Any,
        }
    }

    /// `isUnknown()`: UNKNOWN operation or permission.
    pub fn is_unknown(&self) -> bool {
        self.operation.is_unknown() || self.permission_type.is_unknown()
    }

    /// `AccessControlEntryFilter.matches`: each field equal, unless null/ANY. No wildcard
    /// meaning: the principal and host are plain strings here.
    pub fn matches(&self, entry: &AccessControlEntry) -> bool {
        if self
            .principal
            .as_ref()
            .is_some_and(|p| *p != entry.principal)
        {
            return false;
        }
        if self.host.as_ref().is_some_and(|h| *h != entry.host) {
            return false;
        }
        if self.operation != AclOperation::Any && self.operation != entry.operation {
            return false;
        }
        self.permission_type == AclPermissionType::Any
            || self.permission_type == entry.permission_type
    }

    /// `AccessControlEntryData.findIndefiniteField()`, with Kafka's wording (these have no
    /// final period, unlike the pattern filter's).
    pub fn find_indefinite_field(&self) -> Option<&'static str> {
        if self.principal.is_none() {
            return Some("Principal is NULL");
        }
        if self.host.is_none() {
            return Some("Host is NULL");
        }
        match self.operation {
            AclOperation::Any => return Some("Operation is ANY"),
            AclOperation::Unknown => return Some("Operation is UNKNOWN"),
            _ => {}
        }
        match self.permission_type {
            AclPermissionType::Any => Some("Permission type is ANY"),
            AclPermissionType::Unknown => Some("Permission type is UNKNOWN"),
            _ => None,
        }
    }

    pub fn matches_at_most_one(&self) -> bool {
        self.find_indefinite_field().is_none()
    }
}

/// A DescribeAcls/DeleteAcls filter (`AclBindingFilter`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AclBindingFilter {
    pub pattern: ResourcePatternFilter,
    pub entry: AccessControlEntryFilter,
}

impl AclBindingFilter {
    /// `AclBindingFilter.ANY`: every ACL.
    pub fn any() -> AclBindingFilter {
        AclBindingFilter {
            pattern: ResourcePatternFilter::any(),
            entry: AccessControlEntryFilter::any(),
        }
    }

    /// The seven filter fields in DescribeAcls/DeleteAcls order.
    pub fn new(
        resource_type: ResourceType,
        resource_name: Option<&str>,
        pattern_type: PatternType,
        principal: Option<&str>,
        host: Option<&str>,
        operation: AclOperation,
        permission_type: AclPermissionType,
    ) -> AclBindingFilter {
        AclBindingFilter {
            pattern: ResourcePatternFilter {
                resource_type,
                name: resource_name.map(str::to_owned),
                pattern_type,
            },
            entry: AccessControlEntryFilter {
                principal: principal.map(str::to_owned),
                host: host.map(str::to_owned),
                operation,
                permission_type,
            },
        }
    }

    /// `AclBindingFilter.matches`: both halves match.
    pub fn matches(&self, binding: &AclBinding) -> bool {
        self.pattern.matches(&binding.pattern) && self.entry.matches(&binding.entry)
    }

    /// `isUnknown()`: either half has an UNKNOWN element.
    pub fn is_unknown(&self) -> bool {
        self.pattern.is_unknown() || self.entry.is_unknown()
    }

    /// `findIndefiniteField()`: the pattern half's reason first, then the entry's.
    pub fn find_indefinite_field(&self) -> Option<&'static str> {
        self.pattern
            .find_indefinite_field()
            .or_else(|| self.entry.find_indefinite_field())
    }

    pub fn matches_at_most_one(&self) -> bool {
        self.pattern.matches_at_most_one() && self.entry.matches_at_most_one()
    }
}

impl AclBinding {
    /// `AclBinding.toFilter()`: the filter that finds exactly this binding.
    pub fn to_filter(&self) -> AclBindingFilter {
        AclBindingFilter {
            pattern: ResourcePatternFilter {
                resource_type: self.pattern.resource_type,
                name: Some(self.pattern.name.clone()),
                pattern_type: self.pattern.pattern_type,
            },
            entry: AccessControlEntryFilter {
                principal: Some(self.entry.principal.clone()),
                host: Some(self.entry.host.clone()),
                operation: self.entry.operation,
                permission_type: self.entry.permission_type,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AclOperation as Op;
    use AclPermissionType as Perm;
    use PatternType as Pt;
    use ResourceType as Rt;

    fn pattern(rt: Rt, name: &str, pt: Pt) -> ResourcePattern {
        ResourcePattern {
            resource_type: rt,
            name: name.to_owned(),
            pattern_type: pt,
        }
    }

    fn pfilter(rt: Rt, name: Option<&str>, pt: Pt) -> ResourcePatternFilter {
        ResourcePatternFilter {
            resource_type: rt,
            name: name.map(str::to_owned),
            pattern_type: pt,
        }
    }

    /// ResourcePatternFilterTest, case for case (shouldBeUnknownIfResourceTypeUnknown …
    /// shouldMatchPrefixedIfNamePrefixedAnyFilterTypeIsMatch), plus the MATCH rules the
    /// test does not spell out (prefixed "*" and empty-prefix names, ANY type).
    #[test]
    fn resource_pattern_filter_matches_as_kafka() {
        let cases: &[(ResourcePatternFilter, ResourcePattern, bool)] = &[
            // shouldNotMatchIfDifferentResourceType
            (
                pfilter(Rt::Topic, Some("Name"), Pt::Literal),
                pattern(Rt::Group, "Name", Pt::Literal),
                false,
            ),
            // shouldNotMatchIfDifferentName
            (
                pfilter(Rt::Topic, Some("Different"), Pt::Prefixed),
                pattern(Rt::Topic, "Name", Pt::Prefixed),
                false,
            ),
            // shouldNotMatchIfDifferentNameCase
            (
                pfilter(Rt::Topic, Some("NAME"), Pt::Literal),
                pattern(Rt::Topic, "Name", Pt::Literal),
                false,
            ),
            // shouldNotMatchIfDifferentPatternType
            (
                pfilter(Rt::Topic, Some("Name"), Pt::Literal),
                pattern(Rt::Topic, "Name", Pt::Prefixed),
                false,
            ),
            // shouldMatchWhereResourceTypeIsAny
            (
                pfilter(Rt::Any, Some("Name"), Pt::Prefixed),
                pattern(Rt::Topic, "Name", Pt::Prefixed),
                true,
            ),
            // shouldMatchWhereResourceNameIsAny
            (
                pfilter(Rt::Topic, None, Pt::Prefixed),
                pattern(Rt::Topic, "Name", Pt::Prefixed),
                true,
            ),
            // shouldMatchWherePatternTypeIsAny
            (
                pfilter(Rt::Topic, None, Pt::Any),
                pattern(Rt::Topic, "Name", Pt::Prefixed),
                true,
            ),
            // shouldMatchWherePatternTypeIsMatch
            (
                pfilter(Rt::Topic, None, Pt::Match),
                pattern(Rt::Topic, "Name", Pt::Prefixed),
                true,
            ),
            // shouldMatchLiteralIfExactMatch
            (
                pfilter(Rt::Topic, Some("Name"), Pt::Literal),
                pattern(Rt::Topic, "Name", Pt::Literal),
                true,
            ),
            // shouldMatchLiteralIfNameMatchesAndPatternIsAny
            (
                pfilter(Rt::Topic, Some("Name"), Pt::Any),
                pattern(Rt::Topic, "Name", Pt::Literal),
                true,
            ),
            // shouldMatchLiteralIfNameMatchesAndPatternIsMatch
            (
                pfilter(Rt::Topic, Some("Name"), Pt::Match),
                pattern(Rt::Topic, "Name", Pt::Literal),
                true,
            ),
            // shouldNotMatchLiteralIfNamePrefixed
            (
                pfilter(Rt::Topic, Some("Name-something"), Pt::Match),
                pattern(Rt::Topic, "Name", Pt::Literal),
                false,
            ),
            // shouldMatchLiteralWildcardIfExactMatch
            (
                pfilter(Rt::Topic, Some("*"), Pt::Literal),
                pattern(Rt::Topic, "*", Pt::Literal),
                true,
            ),
            // shouldNotMatchLiteralWildcardAgainstOtherName
            (
                pfilter(Rt::Topic, Some("Name"), Pt::Literal),
                pattern(Rt::Topic, "*", Pt::Literal),
                false,
            ),
            // shouldNotMatchLiteralWildcardTheWayAround
            (
                pfilter(Rt::Topic, Some("*"), Pt::Literal),
                pattern(Rt::Topic, "Name", Pt::Literal),
                false,
            ),
            // shouldNotMatchLiteralWildcardIfFilterHasPatternTypeOfAny
            (
                pfilter(Rt::Topic, Some("Name"), Pt::Any),
                pattern(Rt::Topic, "*", Pt::Literal),
                false,
            ),
            // shouldMatchLiteralWildcardIfFilterHasPatternTypeOfMatch
            (
                pfilter(Rt::Topic, Some("Name"), Pt::Match),
                pattern(Rt::Topic, "*", Pt::Literal),
                true,
            ),
            // shouldMatchPrefixedIfExactMatch
            (
                pfilter(Rt::Topic, Some("Name"), Pt::Prefixed),
                pattern(Rt::Topic, "Name", Pt::Prefixed),
                true,
            ),
            // shouldNotMatchIfBothPrefixedAndFilterIsPrefixOfResource
            (
                pfilter(Rt::Topic, Some("Name"), Pt::Prefixed),
                pattern(Rt::Topic, "Name-something", Pt::Prefixed),
                false,
            ),
            // shouldNotMatchIfBothPrefixedAndResourceIsPrefixOfFilter
            (
                pfilter(Rt::Topic, Some("Name-something"), Pt::Prefixed),
                pattern(Rt::Topic, "Name", Pt::Prefixed),
                false,
            ),
            // shouldNotMatchPrefixedIfNamePrefixedAnyFilterTypeIsAny
            (
                pfilter(Rt::Topic, Some("Name-something"), Pt::Any),
                pattern(Rt::Topic, "Name", Pt::Prefixed),
                false,
            ),
            // shouldMatchPrefixedIfNamePrefixedAnyFilterTypeIsMatch
            (
                pfilter(Rt::Topic, Some("Name-something"), Pt::Match),
                pattern(Rt::Topic, "Name", Pt::Prefixed),
                true,
            ),
            // MATCH: a PREFIXED pattern longer than the name does not apply to it.
            (
                pfilter(Rt::Topic, Some("Na"), Pt::Match),
                pattern(Rt::Topic, "Name", Pt::Prefixed),
                false,
            ),
            // MATCH: a PREFIXED "*" is a prefix like any other, not a wildcard.
            (
                pfilter(Rt::Topic, Some("Name"), Pt::Match),
                pattern(Rt::Topic, "*", Pt::Prefixed),
                false,
            ),
            // MATCH with resource type ANY keeps the type free.
            (
                pfilter(Rt::Any, Some("Name"), Pt::Match),
                pattern(Rt::Group, "*", Pt::Literal),
                true,
            ),
            // ANY with a name finds the PREFIXED pattern of exactly that name too.
            (
                pfilter(Rt::Topic, Some("Name"), Pt::Any),
                pattern(Rt::Topic, "Name", Pt::Prefixed),
                true,
            ),
        ];
        for (i, (filter, pattern, expected)) in cases.iter().enumerate() {
            assert_eq!(
                filter.matches(pattern),
                *expected,
                "case {i}: {filter:?} vs {pattern:?}"
            );
        }
    }

    /// ResourcePatternFilterTest.shouldBeUnknownIfResourceTypeUnknown /
    /// shouldBeUnknownIfPatternTypeUnknown.
    #[test]
    fn resource_pattern_filter_unknowns() {
        assert!(pfilter(Rt::Unknown, None, Pt::Literal).is_unknown());
        assert!(pfilter(Rt::Group, None, Pt::Unknown).is_unknown());
        assert!(!pfilter(Rt::Any, None, Pt::Any).is_unknown());
    }

    fn acl(name: &str, principal: &str, host: &str, op: Op, perm: Perm) -> AclBinding {
        AclBinding::new(Rt::Topic, name, Pt::Literal, principal, host, op, perm)
    }

    /// AclBindingTest.testMatching, testUnknowns, testMatchesAtMostOne.
    #[test]
    fn binding_filters_match_as_kafka() {
        let acl1 = acl("mytopic", "User:ANONYMOUS", "", Op::All, Perm::Allow);
        let acl2 = acl("mytopic", "User:*", "", Op::Read, Perm::Allow);
        let acl3 = acl(
            "mytopic2",
            "User:ANONYMOUS",
            "127.0.0.1",
            Op::Read,
            Perm::Deny,
        );
        let unknown_acl = acl(
            "mytopic2",
            "User:ANONYMOUS",
            "127.0.0.1",
            Op::Unknown,
            Perm::Deny,
        );
        let any = AclBindingFilter::any();
        let any_anonymous = AclBindingFilter {
            pattern: ResourcePatternFilter::any(),
            entry: AccessControlEntryFilter {
                principal: Some("User:ANONYMOUS".into()),
                ..AccessControlEntryFilter::any()
            },
        };
        let any_deny = AclBindingFilter {
            pattern: ResourcePatternFilter::any(),
            entry: AccessControlEntryFilter {
                permission_type: Perm::Deny,
                ..AccessControlEntryFilter::any()
            },
        };
        let any_mytopic = AclBindingFilter {
            pattern: pfilter(Rt::Topic, Some("mytopic"), Pt::Literal),
            entry: AccessControlEntryFilter::any(),
        };
        for b in [&acl1, &acl2, &acl3] {
            assert!(any.matches(b));
        }
        assert!(any_anonymous.matches(&acl1));
        // The filter's principal is a string: "User:ANONYMOUS" does not find "User:*".
        assert!(!any_anonymous.matches(&acl2));
        assert!(any_anonymous.matches(&acl3));
        assert!(!any_deny.matches(&acl1));
        assert!(!any_deny.matches(&acl2));
        assert!(any_deny.matches(&acl3));
        assert!(any_mytopic.matches(&acl1));
        assert!(any_mytopic.matches(&acl2));
        assert!(!any_mytopic.matches(&acl3));
        assert!(any_anonymous.matches(&unknown_acl));
        assert!(any_deny.matches(&unknown_acl));
        assert!(!any_mytopic.matches(&unknown_acl));

        for b in [&acl1, &acl2, &acl3] {
            assert!(!b.is_unknown());
            assert_eq!(b.to_filter().find_indefinite_field(), None);
            assert!(b.to_filter().matches(b));
        }
        assert!(unknown_acl.is_unknown());
        for f in [&any_anonymous, &any_deny, &any_mytopic] {
            assert!(!f.is_unknown());
            assert!(!f.matches_at_most_one());
        }
    }

    /// The host filter is a string too: "*" finds ACLs for host "*", not every host.
    #[test]
    fn entry_filter_host_is_a_string() {
        let f = AccessControlEntryFilter {
            host: Some("*".into()),
            ..AccessControlEntryFilter::any()
        };
        assert!(!f.matches(&acl("t", "User:a", "10.0.0.1", Op::Read, Perm::Allow).entry));
        assert!(f.matches(&acl("t", "User:a", "*", Op::Read, Perm::Allow).entry));
        let op = AccessControlEntryFilter {
            operation: Op::Read,
            ..AccessControlEntryFilter::any()
        };
        // ALL in an ACL is not "any" for a filter: READ does not find an ALL ACL.
        assert!(!op.matches(&acl("t", "User:a", "*", Op::All, Perm::Allow).entry));
    }

    /// findIndefiniteField's order and wording (ResourcePatternFilter,
    /// AccessControlEntryData).
    #[test]
    fn indefinite_fields_in_kafkas_order() {
        let full = acl("t", "User:a", "*", Op::Read, Perm::Allow).to_filter();
        let with = |f: &dyn Fn(&mut AclBindingFilter)| {
            let mut c = full.clone();
            f(&mut c);
            c.find_indefinite_field()
        };
        assert_eq!(
            with(&|c| c.pattern.resource_type = Rt::Any),
            Some("Resource type is ANY.")
        );
        assert_eq!(
            with(&|c| c.pattern.resource_type = Rt::Unknown),
            Some("Resource type is UNKNOWN.")
        );
        assert_eq!(
            with(&|c| c.pattern.name = None),
            Some("Resource name is NULL.")
        );
        assert_eq!(
            with(&|c| c.pattern.pattern_type = Pt::Match),
            Some("Resource pattern type is MATCH.")
        );
        assert_eq!(
            with(&|c| c.pattern.pattern_type = Pt::Unknown),
            Some("Resource pattern type is UNKNOWN.")
        );
        assert_eq!(with(&|c| c.pattern.pattern_type = Pt::Any), None);
        assert_eq!(
            with(&|c| c.entry.principal = None),
            Some("Principal is NULL")
        );
        assert_eq!(with(&|c| c.entry.host = None), Some("Host is NULL"));
        assert_eq!(
            with(&|c| c.entry.operation = Op::Any),
            Some("Operation is ANY")
        );
        assert_eq!(
            with(&|c| c.entry.operation = Op::Unknown),
            Some("Operation is UNKNOWN")
        );
        assert_eq!(
            with(&|c| c.entry.permission_type = Perm::Any),
            Some("Permission type is ANY")
        );
        assert_eq!(
            with(&|c| c.entry.permission_type = Perm::Unknown),
            Some("Permission type is UNKNOWN")
        );
        // The pattern half speaks first.
        assert_eq!(
            with(&|c| {
                c.entry.host = None;
                c.pattern.name = None;
            }),
            Some("Resource name is NULL.")
        );
        assert!(AclBindingFilter::any().find_indefinite_field().is_some());
    }
}
