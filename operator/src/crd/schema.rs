//! Schema pieces the derives cannot express: a free-form config map and a conditions list
//! that server-side apply merges by `type`.

use schemars::{json_schema, Schema, SchemaGenerator};

/// Kafka properties: string keys, scalar values. Kubernetes' structural schemas cannot say
/// "string, number or boolean", so unknown fields are preserved and the operator rejects
/// non-scalar values with a condition, as Strimzi does.
pub fn config_map(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Standard `metav1.Condition`s, a map keyed by `type` so two writers never clobber each
/// other's conditions under server-side apply.
pub fn conditions_list(generator: &mut SchemaGenerator) -> Schema {
    let item =
        generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>();
    json_schema!({
        "type": "array",
        "items": item,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    })
}
