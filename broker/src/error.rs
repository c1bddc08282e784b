//! The error a request handler reports to a client: a Kafka error code and a message that
//! says why, for responses that carry one and for the broker's log line.

use kafka_protocol::error::ResponseError;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub error: ResponseError,
    pub message: String,
}

impl ApiError {
    pub fn new(error: ResponseError, message: impl Into<String>) -> ApiError {
        ApiError {
            error,
            message: message.into(),
        }
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
