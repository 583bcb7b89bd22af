//! The gateway's client of the orchestrator's gRPC API (`Workflows`):
//! a deadline and the caller's trace on every call, a lazy channel
//! (workflow calls answer 503 while the orchestrator is down).

use std::time::Duration;

use sluice_proto::v1::workflows_client::WorkflowsClient;
use tonic::transport::Channel;

use crate::error::ApiError;

/// Clients of the orchestrator.
#[derive(Debug, Clone)]
pub struct Orchestrator {
    workflows: WorkflowsClient<Channel>,
    timeout: Duration,
}

impl Orchestrator {
    /// A client of the orchestrator at `url` (no connection is made yet).
    pub fn new(url: &str, timeout: Duration) -> Result<Self, tonic::transport::Error> {
        let channel = crate::transformer::lazy_channel(url)?;
        Ok(Self {
            workflows: WorkflowsClient::new(channel),
            timeout,
        })
    }

    /// The `Workflows` client.
    pub fn workflows(&self) -> WorkflowsClient<Channel> {
        self.workflows.clone()
    }

    /// A request with the deadline and the current trace context.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        crate::transformer::request(message, self.timeout)
    }
}

/// Maps a status from the orchestrator to the API's problem.
pub fn problem(status: tonic::Status) -> ApiError {
    crate::transformer::problem_from(status, "", "the orchestrator")
}
