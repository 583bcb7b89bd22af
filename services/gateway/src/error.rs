//! Every error the API returns, mapped in one place to RFC 9457
//! `application/problem+json`. Client mistakes are 4xx with the offending
//! field named; only the gateway's own faults are 5xx.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sluice_model::{FieldError, InputError};

/// An API error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// JSON of the wrong shape or values.
    #[error("{0}")]
    Invalid(FieldError),
    /// A rule, policy or template that does not compile (HTTP 400, as AWS answers).
    #[error("{0}")]
    BadRequest(FieldError),
    /// A path or query parameter that cannot be right (a bad name in a
    /// write, a bad receipt handle, a query value out of range).
    #[error("{0}")]
    BadParameter(String),
    /// Not `application/json`.
    #[error("expected content-type application/json")]
    UnsupportedMediaType,
    /// Body over the limit.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(u64),
    /// No or bad credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but without the scope.
    #[error("this operation needs the {0:?} scope")]
    Forbidden(&'static str),
    /// Nothing there.
    #[error("{0}")]
    NotFound(String),
    /// Conflicts with an earlier request (idempotency key reuse).
    #[error("{0}")]
    Conflict(String),
    /// An `If-Match` that does not match the current version.
    #[error("{0}")]
    PreconditionFailed(String),
    /// Over the principal's rate.
    #[error("rate limit exceeded")]
    Throttled {
        /// Seconds until a request would be accepted.
        retry_after: u64,
    },
    /// A bounded queue holds all it may; nothing was accepted.
    #[error("{0}")]
    Full(String),
    /// A dependency (NATS, the store) is unavailable; nothing was accepted.
    #[error("{0}")]
    Unavailable(String),
    /// Too many requests in flight.
    #[error("the gateway is at capacity")]
    Overloaded,
    /// The request took longer than the timeout.
    #[error("the request timed out")]
    Timeout,
    /// A fault of the gateway itself.
    #[error("internal error")]
    Internal(String),
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        match e {
            InputError::Syntax(s) => Self::MalformedJson(s),
            InputError::Invalid(f) => Self::Invalid(f),
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        Self::Invalid(e)
    }
}

impl From<sluice_store::StoreError> for ApiError {
    fn from(e: sluice_store::StoreError) -> Self {
        if e.is_transient() {
            Self::Unavailable(format!("the store is unavailable: {e}"))
        } else {
            Self::Internal(e.to_string())
        }
    }
}

impl From<sluice_bus::BusError> for ApiError {
    fn from(e: sluice_bus::BusError) -> Self {
        match e {
            sluice_bus::BusError::SubjectFull { .. } => Self::Full(
                "the queue holds as many messages as it may; receive and delete some, then retry"
                    .into(),
            ),
            e => Self::Unavailable(format!("the queue did not accept the message: {e}")),
        }
    }
}

/// The problem document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Problem type (a URN per kind of problem).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What happened in this case.
    pub detail: String,
    /// JSON pointer to the offending field, for validation problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
}

impl ApiError {
    /// Status, problem type slug and title.
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        match self {
            Self::MalformedJson(_) => (S::BAD_REQUEST, "malformed-json", "Malformed JSON"),
            Self::Invalid(_) => (S::UNPROCESSABLE_ENTITY, "validation", "Invalid request"),
            Self::BadRequest(_) => (S::BAD_REQUEST, "invalid-definition", "Invalid definition"),
            Self::BadParameter(_) => (S::BAD_REQUEST, "invalid-parameter", "Invalid parameter"),
            Self::UnsupportedMediaType => (
                S::UNSUPPORTED_MEDIA_TYPE,
                "media-type",
                "Unsupported media type",
            ),
            Self::PayloadTooLarge(_) => (S::PAYLOAD_TOO_LARGE, "too-large", "Payload too large"),
            Self::Unauthorized(_) => (S::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Self::Forbidden(_) => (S::FORBIDDEN, "forbidden", "Forbidden"),
            Self::NotFound(_) => (S::NOT_FOUND, "not-found", "Not found"),
            Self::Conflict(_) => (S::CONFLICT, "conflict", "Conflict"),
            Self::PreconditionFailed(_) => (
                S::PRECONDITION_FAILED,
                "precondition-failed",
                "Precondition failed",
            ),
            Self::Throttled { .. } => (S::TOO_MANY_REQUESTS, "throttled", "Too many requests"),
            Self::Full(_) => (S::TOO_MANY_REQUESTS, "queue-full", "Queue full"),
            Self::Unavailable(_) => (S::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable"),
            Self::Overloaded => (S::SERVICE_UNAVAILABLE, "overloaded", "Overloaded"),
            Self::Timeout => (S::GATEWAY_TIMEOUT, "timeout", "Timeout"),
            Self::Internal(_) => (S::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.parts();
        let (detail, pointer) = match &self {
            Self::Invalid(f) | Self::BadRequest(f) => (f.to_string(), Some(f.pointer.clone())),
            Self::Internal(e) => {
                tracing::error!(error = %e, "internal error");
                (
                    "the gateway failed; the request may be retried".to_string(),
                    None,
                )
            }
            other => (other.to_string(), None),
        };
        let problem = Problem {
            kind: format!("urn:sluice:problem:{slug}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail,
            pointer,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut res = (status, body).into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match &self {
            Self::Throttled { retry_after } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            Self::Unavailable(_) | Self::Overloaded | Self::Full(_) => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::Unauthorized(_) => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer, ApiKey"),
                );
            }
            _ => {}
        }
        res
    }
}
