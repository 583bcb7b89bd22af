//! What every sluice gRPC server shares.
//!
//! How calls fail, mapped in one place to gRPC statuses: a client mistake
//! is INVALID_ARGUMENT with a `google.rpc.BadRequest` naming the field by
//! JSON pointer, NOT_FOUND, or FAILED_PRECONDITION (a state the request
//! conflicts with, such as a limit reached); only the service's own faults
//! are INTERNAL, and the store or NATS being down is UNAVAILABLE. And the
//! span every call runs in, continuing the caller's trace.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use std::time::Duration;

use tracing::{field, info_span};

/// One thing wrong with a request, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer into the request's JSON form; `""` for the request as a whole.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

impl Violation {
    /// A violation at `pointer`.
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.pointer.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.pointer, self.message)
        }
    }
}

/// A call's failure.
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
    /// A fault of the service.
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
                tracing::error!(error = %m, "call failed");
                Status::internal("the service failed; the call may be retried")
            }
        }
    }
}

/// Shorthand for call results.
pub type AdminResult<T> = Result<T, AdminError>;

/// Longest any call may take, whatever the caller's deadline.
pub const SERVER_TIMEOUT: Duration = Duration::from_secs(30);

/// The span of one call to `service`'s gRPC server, continuing the
/// caller's trace (`traceparent` in the metadata).
pub fn span_for(
    service: &'static str,
) -> impl Fn(&http::Request<tonic::body::Body>) -> tracing::Span + Clone {
    move |req| {
        let path = req.uri().path().to_string();
        let span = info_span!(
            "sluice.grpc",
            otel.name = %path,
            service,
            rpc.system = "grpc",
            rpc.method = %path,
            trace_id = field::Empty,
        );
        sluice_telemetry::set_parent(&span, sluice_telemetry::http_context(req.headers()));
        span.record("trace_id", sluice_telemetry::trace_id_of(&span));
        span
    }
}

/// Serves `routes` (the service's gRPC services, named `names` for the
/// standard health service) on `listener` until `shutdown`. Health turns
/// NOT_SERVING first, so balancers stop sending calls while the last ones
/// finish. Every call runs in [`span_for`]`(service)` and is bounded by
/// [`SERVER_TIMEOUT`]; failures are logged where they are understood (an
/// internal fault by the error mapping), so a NOT_FOUND is no error line.
pub async fn serve(
    service: &'static str,
    names: &[&'static str],
    routes: tonic::service::Routes,
    listener: tokio::net::TcpListener,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), tonic::transport::Error> {
    use tonic_health::ServingStatus;
    let (health, health_service) = tonic_health::server::health_reporter();
    for name in names {
        health
            .set_service_status(*name, ServingStatus::Serving)
            .await;
    }
    let names = names.to_vec();
    let draining = async move {
        shutdown.cancelled().await;
        for name in names {
            health
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
    };
    tonic::transport::Server::builder()
        .timeout(SERVER_TIMEOUT)
        .layer(
            tower_http::trace::TraceLayer::new_for_grpc()
                .make_span_with(span_for(service))
                .on_failure(()),
        )
        .add_routes(routes.add_service(health_service))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            draining,
        )
        .await
}

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
