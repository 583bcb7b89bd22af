//! How admin calls fail, mapped in one place to gRPC statuses. A client
//! mistake is INVALID_ARGUMENT with a `google.rpc.BadRequest` naming the
//! field by JSON pointer, NOT_FOUND, or FAILED_PRECONDITION (a state the
//! request conflicts with, such as a limit reached); only the transformer's
//! own faults are INTERNAL, and the store or NATS being down is UNAVAILABLE.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::model::Violation;

/// An admin call's failure.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Something in the request is wrong.
    #[error("{0}")]
    Invalid(Violation),
    /// What the request names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (a limit, a dependent).
    #[error("{0}")]
    Conflict(String),
    /// The store or NATS is unavailable; nothing was changed.
    #[error("{0}")]
    Unavailable(String),
    /// A fault of the transformer.
    #[error("{0}")]
    Internal(String),
}

impl From<Violation> for AdminError {
    fn from(v: Violation) -> Self {
        Self::Invalid(v)
    }
}

impl From<sluice_store::StoreError> for AdminError {
    fn from(e: sluice_store::StoreError) -> Self {
        if e.is_transient() {
            Self::Unavailable(e.to_string())
        } else {
            Self::Internal(e.to_string())
        }
    }
}

impl From<sluice_bus::BusError> for AdminError {
    fn from(e: sluice_bus::BusError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl From<AdminError> for Status {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Invalid(v) => {
                let details = ErrorDetails::with_bad_request_violation(&v.pointer, &v.message);
                Status::with_error_details(Code::InvalidArgument, v.to_string(), details)
            }
            AdminError::NotFound(m) => Status::not_found(m),
            AdminError::Conflict(m) => Status::failed_precondition(m),
            AdminError::Unavailable(m) => Status::unavailable(m),
            AdminError::Internal(m) => {
                tracing::error!(error = %m, "admin call failed");
                Status::internal("the transformer failed; the call may be retried")
            }
        }
    }
}

/// Shorthand for admin results.
pub type AdminResult<T> = Result<T, AdminError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_requests_carry_the_pointer_in_bad_request_details() {
        let s: Status =
            AdminError::Invalid(Violation::new("/targets/0/url", "is not a URL")).into();
        assert_eq!(s.code(), Code::InvalidArgument);
        let br = s.get_details_bad_request().unwrap();
        assert_eq!(br.field_violations[0].field, "/targets/0/url");
        assert_eq!(br.field_violations[0].description, "is not a URL");
    }

    #[test]
    fn internal_faults_do_not_leak_their_cause() {
        let s: Status = AdminError::Internal("secret detail".into()).into();
        assert_eq!(s.code(), Code::Internal);
        assert!(!s.message().contains("secret"));
    }
}
