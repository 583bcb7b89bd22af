//! The gateway's client of the notifier's gRPC API (`Topics`). Like the
//! transformer's: a deadline and the caller's trace on every call, a lazy
//! channel (topic calls answer 503 while the notifier is down).

use std::time::Duration;

use sluice_proto::v1::topics_client::TopicsClient;
use tonic::transport::Channel;

use crate::error::ApiError;

/// Clients of the notifier.
#[derive(Debug, Clone)]
pub struct Notifier {
    topics: TopicsClient<Channel>,
    timeout: Duration,
}

impl Notifier {
    /// A client of the notifier at `url` (no connection is made yet).
    pub fn new(url: &str, timeout: Duration) -> Result<Self, tonic::transport::Error> {
        let channel = crate::transformer::lazy_channel(url)?;
        Ok(Self {
            topics: TopicsClient::new(channel),
            timeout,
        })
    }

    /// The `Topics` client.
    pub fn topics(&self) -> TopicsClient<Channel> {
        self.topics.clone()
    }

    /// A request with the deadline and the current trace context.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        crate::transformer::request(message, self.timeout)
    }
}

/// Maps a status from the notifier to the API's problem; field violations
/// name the field under `prefix`.
pub fn problem(status: tonic::Status, prefix: &str) -> ApiError {
    crate::transformer::problem_from(status, prefix, "the notifier")
}
