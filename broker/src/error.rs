//! The error a request handler reports to a client: a Kafka error code and a message that
//! says why, for responses that carry one and for the broker's log line.

use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};

/// Serializable (the active controller's refusals travel to the broker that forwarded the
/// request); the error goes over the wire as its Kafka code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    #[serde(with = "error_code")]
    pub error: ResponseError,
    pub message: String,
    /// KIP-467: the records that made a produced batch fail, which Produce v8+ reports so
    /// a client fails only those and retries the rest. Empty for every other error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub record_errors: Vec<RecordError>,
}

/// One refused record: its index in the batch, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordError {
    pub batch_index: i32,
    pub message: String,
}

mod error_code {
    use kafka_protocol::error::ResponseError;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(error: &ResponseError, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i16(error.code())
    }

    /// Code 0 means "no error", which an `ApiError` cannot hold: it is refused rather than
    /// turned into some other error.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ResponseError, D::Error> {
        let code = i16::deserialize(d)?;
        ResponseError::try_from_code(code)
            .ok_or_else(|| serde::de::Error::custom("error code 0 is not an error"))
    }
}

impl ApiError {
    pub fn new(error: ResponseError, message: impl Into<String>) -> ApiError {
        ApiError {
            error,
            message: message.into(),
            record_errors: Vec::new(),
        }
    }

    pub fn with_record_errors(mut self, record_errors: Vec<RecordError>) -> ApiError {
        self.record_errors = record_errors;
        self
    }

    pub fn code(&self) -> i16 {
        self.error.code()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.error, self.message)
    }
}

impl std::error::Error for ApiError {}

/// Shorthand for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn travels_as_its_kafka_code() {
        let e = ApiError::new(ResponseError::IneligibleReplica, "broker 3 is fenced");
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains("107"), "{json}");
        assert_eq!(serde_json::from_str::<ApiError>(&json).unwrap(), e);
        let unknown = ApiError::new(ResponseError::Unknown(9999), "from the future");
        let json = serde_json::to_string(&unknown).unwrap();
        assert_eq!(serde_json::from_str::<ApiError>(&json).unwrap(), unknown);
        assert!(serde_json::from_str::<ApiError>(r#"{"error":0,"message":""}"#).is_err());
    }
}
