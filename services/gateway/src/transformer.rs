//! The gateway's client of the transformer's gRPC admin API (`EventBus`,
//! `Queues`). Every call carries a deadline and the caller's trace; the
//! channel connects lazily, so the gateway serves events while the
//! transformer is down (admin calls then answer 503).

use std::time::Duration;

use sluice_model::FieldError;
use sluice_proto::v1::event_bus_client::EventBusClient;
use sluice_proto::v1::queues_client::QueuesClient;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;
use tonic_types::StatusExt;

use crate::error::ApiError;

/// Clients of the transformer.
#[derive(Debug, Clone)]
pub struct Transformer {
    bus: EventBusClient<Channel>,
    queues: QueuesClient<Channel>,
    timeout: Duration,
}

/// A channel to the service at `url` that connects on first use (and
/// again after a failure), so the gateway starts whatever is down.
pub fn lazy_channel(url: &str) -> Result<Channel, tonic::transport::Error> {
    Ok(Endpoint::from_shared(url.to_string())?
        .connect_timeout(Duration::from_secs(2))
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .connect_lazy())
}

impl Transformer {
    /// A client of the transformer at `url` (no connection is made yet).
    pub fn new(url: &str, timeout: Duration) -> Result<Self, tonic::transport::Error> {
        let channel = lazy_channel(url)?;
        Ok(Self {
            bus: EventBusClient::new(channel.clone()),
            queues: QueuesClient::new(channel),
            timeout,
        })
    }

    /// The `EventBus` client.
    pub fn bus(&self) -> EventBusClient<Channel> {
        self.bus.clone()
    }

    /// The `Queues` client.
    pub fn queues(&self) -> QueuesClient<Channel> {
        self.queues.clone()
    }

    /// A request with the deadline and the current trace context.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        request(message, self.timeout)
    }
}

/// A request to another service with deadline `timeout` and the current
/// trace context.
pub fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.set_timeout(timeout);
    sluice_telemetry::inject_current(|k, v| {
        if let (Ok(key), Ok(value)) = (
            k.parse::<tonic::metadata::MetadataKey<tonic::metadata::Ascii>>(),
            v.parse(),
        ) {
            req.metadata_mut().insert(key, value);
        }
    });
    req
}

/// Maps a status from the transformer to the API's problem: the
/// transformer's field violations become 400s naming the field, under
/// `prefix` (the JSON pointer of the part of the body sent).
pub fn problem(status: tonic::Status, prefix: &str) -> ApiError {
    problem_from(status, prefix, "the event bus")
}

/// Maps a status from `service` (named in a 503's detail: "the event
/// bus", "the notifier") to the API's problem, as [`problem`] does.
pub fn problem_from(status: tonic::Status, prefix: &str, service: &str) -> ApiError {
    let message = status.message().to_string();
    match status.code() {
        Code::InvalidArgument => {
            let (pointer, detail) = status
                .get_details_bad_request()
                .and_then(|br| br.field_violations.into_iter().next())
                .map(|v| (v.field, v.description))
                .unwrap_or_else(|| (String::new(), message));
            ApiError::BadRequest(FieldError::new(format!("{prefix}{pointer}"), detail))
        }
        Code::NotFound => ApiError::NotFound(message),
        Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => {
            ApiError::Conflict(message)
        }
        Code::DeadlineExceeded => ApiError::Timeout,
        Code::Unavailable | Code::ResourceExhausted | Code::Cancelled | Code::Unknown => {
            ApiError::Unavailable(format!("{service} is unavailable: {message}"))
        }
        _ => ApiError::Internal(format!("{service}: {:?}: {message}", status.code())),
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        problem(status, "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::ErrorDetails;

    #[test]
    fn field_violations_become_400s_naming_the_field() {
        let s = tonic::Status::with_error_details(
            Code::InvalidArgument,
            "bad",
            ErrorDetails::with_bad_request_violation("/targets/0/url", "is not a URL"),
        );
        match problem(s, "") {
            ApiError::BadRequest(f) => {
                assert_eq!(f.pointer, "/targets/0/url");
                assert_eq!(f.detail, "is not a URL");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn statuses_map_to_problems_a_client_can_act_on() {
        assert_eq!(problem(tonic::Status::not_found("x"), "").status(), 404);
        assert_eq!(
            problem(tonic::Status::failed_precondition("x"), "").status(),
            409
        );
        assert_eq!(problem(tonic::Status::unavailable("x"), "").status(), 503);
        assert_eq!(
            problem(tonic::Status::deadline_exceeded("x"), "").status(),
            504
        );
        assert_eq!(problem(tonic::Status::internal("x"), "").status(), 500);
    }
}
