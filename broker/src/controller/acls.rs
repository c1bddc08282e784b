//! CreateAcls and DeleteAcls on the active controller (Kafka's `AclControlManager`): the
//! image's ACLs and a request in, records and per-item results out.
//!
//! - A creation is checked again (`validate_new_acl`; the broker checked it first, but the
//!   controller must not trust that). An ACL identical to one already stored, or to an
//!   earlier creation of the same request, succeeds without a record: Kafka keeps one copy.
//! - A deletion filter is checked (`validate_delete_filter`) and removes every stored ACL
//!   it matches; its result lists them. Two filters matching one ACL both list it, and it
//!   gets one `RemoveAcl` record.
//! - One request writes at most `MAX_RECORDS_PER_USER_OP` records, as Kafka bounds one user
//!   operation: past it a creation request fails as a whole and a deletion filter fails.

use std::collections::{BTreeSet, HashSet};

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use crate::auth::acl::authorizer::kafka_order;
use crate::auth::acl::{
    validate_delete_filter, validate_new_acl, AclBinding, AclBindingFilter, AclError,
};
use crate::error::{ApiError, ApiResult};
use crate::metadata::{MetadataImage, MetadataRecord};

/// Kafka's `QuorumController.MAX_RECORDS_PER_USER_OP`.
pub const MAX_RECORDS_PER_USER_OP: usize = 10_000;

/// An [`AclError`] as the item's answer. Kafka sends no message with UNKNOWN_SERVER_ERROR;
/// `ApiError` always carries one, and the handler leaves it out of that response.
pub fn acl_api_error(e: &AclError) -> ApiError {
    ApiError::new(e.error(), e.response_message().unwrap_or_default())
}

/// Per creation: done (or already there), or why not.
pub type Created = Vec<Result<(), ApiError>>;

/// The records for a CreateAcls and one result per binding, in order. `new_id` gives
/// candidate ids (random in service; fixed in tests); one already in use is skipped.
pub fn create_acls(
    image: &MetadataImage,
    bindings: &[AclBinding],
    mut new_id: impl FnMut() -> Uuid,
) -> ApiResult<(Vec<MetadataRecord>, Created)> {
    let mut existing: HashSet<&AclBinding> = image.acls.values().collect();
    let mut taken: HashSet<Uuid> = HashSet::new();
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(bindings.len());
    for binding in bindings {
        if let Err(e) = validate_new_acl(binding) {
            results.push(Err(acl_api_error(&e)));
            continue;
        }
        if existing.insert(binding) {
            if records.len() == MAX_RECORDS_PER_USER_OP {
                return Err(too_many(MAX_RECORDS_PER_USER_OP));
            }
            let id = loop {
                let id = new_id();
                if !image.acls.contains_key(&id) && taken.insert(id) {
                    break id;
                }
            };
            records.push(MetadataRecord::Acl {
                id,
                binding: binding.clone(),
            });
        }
        results.push(Ok(()));
    }
    Ok((records, results))
}

/// What one DeleteAcls filter removed: the ACLs with their ids, in Kafka's listing order.
pub type Deleted = Vec<(Uuid, AclBinding)>;

/// The records for a DeleteAcls and one result per filter, in order.
pub fn delete_acls(
    image: &MetadataImage,
    filters: &[AclBindingFilter],
) -> (Vec<MetadataRecord>, Vec<Result<Deleted, ApiError>>) {
    let mut removed: BTreeSet<Uuid> = BTreeSet::new();
    let mut results = Vec::with_capacity(filters.len());
    for filter in filters {
        if let Err(e) = validate_delete_filter(filter) {
            results.push(Err(acl_api_error(&e)));
            continue;
        }
        let mut matched: Deleted = image
            .acls
            .iter()
            .filter(|(_, b)| filter.matches(b))
            .map(|(id, b)| (*id, b.clone()))
            .collect();
        matched.sort_by(|a, b| kafka_order(&a.1, &b.1));
        let fresh: Vec<Uuid> = matched
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| !removed.contains(id))
            .collect();
        // Kafka fails the filter once the request's removals pass the bound (keeping
        // what earlier filters removed); this filter's own removals are not written.
        if removed.len() + fresh.len() > MAX_RECORDS_PER_USER_OP {
            results.push(Err(too_many(MAX_RECORDS_PER_USER_OP)));
            continue;
        }
        removed.extend(fresh);
        results.push(Ok(matched));
    }
    let records = removed
        .into_iter()
        .map(|id| MetadataRecord::RemoveAcl { id })
        .collect();
    (records, results)
}

/// Kafka's `BoundedListTooLongException`, which is no `ApiException`: the client sees
/// UNKNOWN_SERVER_ERROR.
fn too_many(limit: usize) -> ApiError {
    ApiError::new(
        ResponseError::UnknownServerError,
        format!("Cannot change more than {limit} acls in a single operation."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::acl::{AclOperation, AclPermissionType, PatternType, ResourceType};
    use crate::controller::testkit::apply;

    fn acl(name: &str, pattern_type: PatternType, principal: &str) -> AclBinding {
        AclBinding::new(
            ResourceType::Topic,
            name,
            pattern_type,
            principal,
            "*",
            AclOperation::Read,
            AclPermissionType::Allow,
        )
    }

    fn ids() -> impl FnMut() -> Uuid {
        let mut n = 0u128;
        move || {
            n += 1;
            Uuid::from_u128(n)
        }
    }

    #[test]
    fn creates_one_record_per_new_acl_and_none_for_a_copy() {
        let a = acl("orders", PatternType::Literal, "User:alice");
        let b = acl("ord", PatternType::Prefixed, "User:alice");
        let (records, results) = create_acls(
            &MetadataImage::default(),
            &[a.clone(), b.clone(), a.clone()],
            ids(),
        )
        .unwrap();
        assert_eq!(results, vec![Ok(()), Ok(()), Ok(())]);
        assert_eq!(
            records,
            vec![
                MetadataRecord::Acl {
                    id: Uuid::from_u128(1),
                    binding: a.clone()
                },
                MetadataRecord::Acl {
                    id: Uuid::from_u128(2),
                    binding: b.clone()
                },
            ],
            "the second copy of `a` in one request adds nothing"
        );
        let image = apply(&MetadataImage::default(), &records);
        assert_eq!(image.acls.len(), 2);
        // Again, on the image that holds them: success, no record (Kafka's existingAcls).
        let (records, results) = create_acls(&image, &[b], ids()).unwrap();
        assert!(records.is_empty());
        assert_eq!(results, vec![Ok(())]);
    }

    #[test]
    fn a_taken_id_is_not_reused() {
        let image = apply(
            &MetadataImage::default(),
            &[MetadataRecord::Acl {
                id: Uuid::from_u128(1),
                binding: acl("a", PatternType::Literal, "User:x"),
            }],
        );
        let (records, _) =
            create_acls(&image, &[acl("b", PatternType::Literal, "User:x")], ids()).unwrap();
        assert!(
            matches!(records[..], [MetadataRecord::Acl { id, .. }] if id == Uuid::from_u128(2))
        );
    }

    #[test]
    fn invalid_creations_fail_alone_with_kafkas_answer() {
        let empty = acl("", PatternType::Literal, "User:alice");
        let no_colon = acl("t", PatternType::Literal, "alice");
        let good = acl("t", PatternType::Literal, "User:alice");
        let (records, results) =
            create_acls(&MetadataImage::default(), &[empty, good, no_colon], ids()).unwrap();
        assert_eq!(records.len(), 1);
        let errors: Vec<_> = results
            .iter()
            .map(|r| r.as_ref().err().map(|e| (e.error, e.message.clone())))
            .collect();
        assert_eq!(
            errors[0],
            Some((
                ResponseError::InvalidRequest,
                "Invalid empty resource name".to_string()
            ))
        );
        assert_eq!(errors[1], None);
        assert_eq!(
            errors[2].as_ref().map(|e| e.0),
            Some(ResponseError::InvalidRequest)
        );
    }

    #[test]
    fn too_many_creations_fail_the_request() {
        let bindings: Vec<AclBinding> = (0..=MAX_RECORDS_PER_USER_OP)
            .map(|i| acl(&format!("t{i}"), PatternType::Literal, "User:a"))
            .collect();
        let e = create_acls(&MetadataImage::default(), &bindings, ids()).unwrap_err();
        assert_eq!(e.error, ResponseError::UnknownServerError);
        assert!(create_acls(&MetadataImage::default(), &bindings[1..], ids()).is_ok());
    }

    fn stored() -> MetadataImage {
        let (records, _) = create_acls(
            &MetadataImage::default(),
            &[
                acl("orders", PatternType::Literal, "User:alice"),
                acl("ord", PatternType::Prefixed, "User:alice"),
                acl("orders", PatternType::Literal, "User:bob"),
                acl("payments", PatternType::Literal, "User:bob"),
            ],
            ids(),
        )
        .unwrap();
        apply(&MetadataImage::default(), &records)
    }

    fn filter(
        name: Option<&str>,
        pattern_type: PatternType,
        principal: Option<&str>,
    ) -> AclBindingFilter {
        AclBindingFilter::new(
            ResourceType::Topic,
            name,
            pattern_type,
            principal,
            None,
            AclOperation::Any,
            AclPermissionType::Any,
        )
    }

    #[test]
    fn delete_filters_match_stored_acls_and_share_records() {
        let image = stored();
        let (records, results) = delete_acls(
            &image,
            &[
                // MATCH: the literal name, and prefixes of it.
                filter(Some("orders"), PatternType::Match, Some("User:alice")),
                filter(None, PatternType::Any, Some("User:alice")),
                filter(Some("nothing"), PatternType::Literal, None),
            ],
        );
        let names = |r: &Result<Deleted, ApiError>| -> Vec<(String, PatternType)> {
            r.as_ref()
                .unwrap()
                .iter()
                .map(|(_, b)| (b.pattern.name.clone(), b.pattern.pattern_type))
                .collect()
        };
        let expected = vec![
            ("orders".to_string(), PatternType::Literal),
            ("ord".to_string(), PatternType::Prefixed),
        ];
        assert_eq!(
            names(&results[0]),
            expected,
            "Kafka's order: name descending"
        );
        assert_eq!(
            names(&results[1]),
            expected,
            "both filters list what they match"
        );
        assert!(
            names(&results[2]).is_empty(),
            "no match is success with nothing"
        );
        assert_eq!(
            records.len(),
            2,
            "one RemoveAcl per ACL, however many filters"
        );
        let after = apply(&image, &records);
        assert_eq!(after.acls.len(), 2);
        assert!(after.acls.values().all(|b| b.entry.principal == "User:bob"));
    }

    #[test]
    fn an_unknown_filter_fails_alone() {
        let image = stored();
        let mut bad = filter(None, PatternType::Any, None);
        bad.pattern.pattern_type = PatternType::Unknown;
        let (records, results) = delete_acls(
            &image,
            &[bad, filter(Some("payments"), PatternType::Literal, None)],
        );
        let e = results[0].as_ref().unwrap_err();
        assert_eq!(
            (e.error, e.message.as_str()),
            (ResponseError::InvalidRequest, "Unknown patternFilter.")
        );
        assert_eq!(results[1].as_ref().unwrap().len(), 1);
        assert_eq!(records.len(), 1);
    }
}
