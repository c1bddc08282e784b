//! Kafka's feature flags (KIP-584): what ApiVersions v3+ advertises as supported and
//! finalized, and UpdateFeatures, which Strom answers but cannot act on: each feature is
//! fixed at the level Strom implements, so only a no-op update succeeds and anything else
//! gets Kafka's INVALID_UPDATE_VERSION with Kafka's wording.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::{FinalizedFeatureKey, SupportedFeatureKey};
use kafka_protocol::messages::update_features_response::UpdatableFeatureResult;
use kafka_protocol::messages::{
    ApiVersionsResponse, UpdateFeaturesRequest, UpdateFeaturesResponse,
};

use super::{log_refusal, str_bytes, RequestContext};
use crate::broker::Broker;
use crate::error::ApiError;

/// One feature at the single level Strom implements.
struct Feature {
    name: &'static str,
    level: i16,
}

/// Every feature Kafka 4.4 lists (`kafka-features describe` on a 4.4 broker), each at the
/// level of what Strom really does.
const FEATURES: &[Feature] = &[
    // Level 7 is 3.3-IV3, the lowest metadata.version Kafka 4.x knows (its tools cannot
    // name a lower one). Strom's API versions are older still in places (Fetch stops at
    // v12, before topic ids; no KIP-848 or transactions), so no higher level is true: each
    // later level promises records and RPC versions Strom does not serve.
    Feature {
        name: "metadata.version",
        level: 7,
    },
    // 0: the voters are static (`controller.quorum.voters`); no KIP-853 dynamic quorum.
    Feature {
        name: "kraft.version",
        level: 0,
    },
    // 0: no transactions yet.
    Feature {
        name: "transaction.version",
        level: 0,
    },
    // 0: the classic group protocol only, no KIP-848 consumer groups.
    Feature {
        name: "group.version",
        level: 0,
    },
    // 0: no eligible leader replicas (KIP-966).
    Feature {
        name: "eligible.leader.replicas.version",
        level: 0,
    },
    // 0: no share groups (KIP-932).
    Feature {
        name: "share.version",
        level: 0,
    },
    // 0: no streams groups (KIP-1071).
    Feature {
        name: "streams.version",
        level: 0,
    },
];

/// Adds the feature fields to an ApiVersions answer (ignored by the codec below v3).
/// The epoch is the metadata log position the answer reflects, as Kafka's is.
pub fn advertise(response: ApiVersionsResponse, metadata_epoch: i64) -> ApiVersionsResponse {
    let supported = FEATURES
        .iter()
        .map(|f| {
            SupportedFeatureKey::default()
                .with_name(str_bytes(f.name))
                .with_min_version(f.level)
                .with_max_version(f.level)
        })
        .collect();
    // Kafka finalizes only the features set above level 0.
    let finalized = FEATURES
        .iter()
        .filter(|f| f.level > 0)
        .map(|f| {
            FinalizedFeatureKey::default()
                .with_name(str_bytes(f.name))
                .with_min_version_level(f.level)
                .with_max_version_level(f.level)
        })
        .collect();
    response
        .with_supported_features(supported)
        .with_finalized_features_epoch(metadata_epoch)
        .with_finalized_features(finalized)
}

/// Why one requested update cannot be made, in Kafka's controller's words.
fn refusal(controller: i32, feature: &str, level: i16) -> Option<String> {
    match FEATURES.iter().find(|f| f.name == feature) {
        Some(f) if f.level == level => None,
        Some(f) => Some(format!(
            "Invalid update version {level} for feature {feature}. Local controller {controller} only supports versions {}-{}",
            f.level, f.level
        )),
        // Kafka treats removing (level 0) an unknown feature as nothing to do.
        None if level == 0 => None,
        None => Some(format!(
            "Invalid update version {level} for feature {feature}. Local controller {controller} does not support this feature."
        )),
    }
}

pub fn update_features(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    request: UpdateFeaturesRequest,
) -> UpdateFeaturesResponse {
    let controller = broker
        .metadata
        .active_controller()
        .unwrap_or(broker.config.node_id);
    // As Kafka's controller: the updates are all or nothing, and the first refused one
    // fails them all.
    let error = request.feature_updates.iter().find_map(|update| {
        refusal(controller, update.feature.as_str(), update.max_version_level).map(|why| {
            ApiError::new(
                ResponseError::InvalidUpdateVersion,
                format!(
                    "The update failed for all features since the following feature had an error: {why}"
                ),
            )
        })
    });
    let (code, message) = match &error {
        Some(e) => {
            log_refusal(ctx, "UpdateFeatures", e);
            (e.code(), Some(str_bytes(&e.message)))
        }
        None => (0, None),
    };
    let mut response = UpdateFeaturesResponse::default()
        .with_error_code(code)
        .with_error_message(message.clone());
    // v2 dropped the per-feature results; before it each feature repeats the outcome.
    if ctx.version() < 2 {
        response = response.with_results(
            request
                .feature_updates
                .iter()
                .map(|u| {
                    UpdatableFeatureResult::default()
                        .with_feature(u.feature.clone())
                        .with_error_code(code)
                        .with_error_message(message.clone())
                })
                .collect(),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_implemented_level_is_accepted() {
        assert_eq!(refusal(1, "metadata.version", 7), None);
        assert_eq!(refusal(1, "group.version", 0), None);
        assert_eq!(
            refusal(1, "transaction.version", 2).as_deref(),
            Some("Invalid update version 2 for feature transaction.version. Local controller 1 only supports versions 0-0")
        );
        assert_eq!(
            refusal(3, "foo.version", 1).as_deref(),
            Some("Invalid update version 1 for feature foo.version. Local controller 3 does not support this feature.")
        );
        assert_eq!(refusal(3, "foo.version", 0), None);
    }

    #[test]
    fn only_features_above_level_zero_are_finalized() {
        let response = advertise(ApiVersionsResponse::default(), 5);
        assert_eq!(response.supported_features.len(), FEATURES.len());
        assert_eq!(response.finalized_features.len(), 1);
        assert_eq!(
            response.finalized_features[0].name.as_str(),
            "metadata.version"
        );
        assert_eq!(response.finalized_features_epoch, 5);
    }
}
