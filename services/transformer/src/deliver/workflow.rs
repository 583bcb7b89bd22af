//! `workflow` targets: start a workflow through the orchestrator's
//! `Workflows` gRPC API, with the delivery id as the workflow id, so a
//! repeated delivery starts it once (ALREADY_EXISTS counts as done).

use sluice_proto::v1;
use tonic::Code;

use super::retry::Outcome;
use super::Meta;
use crate::model::CompiledTarget;
use crate::State;

/// Starts `workflow_type` with `input`.
pub async fn start(
    state: &State,
    target: &CompiledTarget,
    workflow_type: &str,
    meta: &Meta<'_>,
    input: String,
) -> Outcome {
    let Some(client) = state.workflows.clone() else {
        return Outcome::Retry {
            reason: "no orchestrator is configured (SLUICE_ORCHESTRATOR_URL)".into(),
            response: None,
        };
    };
    let mut client = client;
    let mut req = tonic::Request::new(v1::StartWorkflowRequest {
        workflow_type: workflow_type.to_string(),
        workflow_id: meta.delivery_id.to_string(),
        input,
        origin: format!(
            "bus/{}/rule/{}/target/{}",
            target.bus, target.rule, target.id
        ),
    });
    req.set_timeout(state.config.grpc_timeout.min(target.timeout));
    sluice_telemetry::inject_current(|k, v| {
        if let (Ok(key), Ok(value)) = (
            k.parse::<tonic::metadata::MetadataKey<tonic::metadata::Ascii>>(),
            v.parse(),
        ) {
            req.metadata_mut().insert(key, value);
        }
    });
    match client.start_workflow(req).await {
        Ok(_) => Outcome::Delivered,
        Err(s) if s.code() == Code::AlreadyExists => Outcome::Delivered,
        Err(s) => {
            let reason = format!("the orchestrator answered {:?}: {}", s.code(), s.message());
            match s.code() {
                Code::InvalidArgument
                | Code::NotFound
                | Code::FailedPrecondition
                | Code::PermissionDenied
                | Code::Unauthenticated
                | Code::OutOfRange => Outcome::Terminal {
                    reason,
                    response: None,
                },
                _ => Outcome::Retry {
                    reason,
                    response: None,
                },
            }
        }
    }
}
