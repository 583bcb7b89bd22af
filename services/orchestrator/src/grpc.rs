//! `sluice.v1.Workflows` on Temporal: start (a workflow id started twice
//! starts once: ALREADY_EXISTS), describe, signal, cancel, list. Every
//! call runs in a span that continues the caller's trace.

use std::time::SystemTime;

use futures::StreamExt as _;
use sluice_proto::v1;
use sluice_proto::v1::workflows_server::{Workflows, WorkflowsServer};
use sluice_runtime::grpc::{AdminError, AdminResult, Violation};
use temporalio_client::errors::{
    WorkflowGetResultError, WorkflowInteractionError, WorkflowStartError,
};
use temporalio_client::{
    UntypedWorkflow, WorkflowCancelOptions, WorkflowDescribeOptions, WorkflowExecutionStatus,
    WorkflowGetResultOptions, WorkflowIdConflictPolicy, WorkflowIdReusePolicy, WorkflowListOptions,
    WorkflowSignalOptions, WorkflowStartOptions,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::approval::{self, Approval};
use crate::files::{self, FilePipeline};
use crate::saga::{self, OrderSaga};
use crate::Shared;

/// The workflow types this orchestrator runs.
pub const TYPES: &[&str] = &[approval::TYPE, files::TYPE, saga::TYPE];

/// Most workflows one list returns.
pub const MAX_LIST: u32 = 100;

/// The service.
#[derive(Debug, Clone)]
pub struct WorkflowsApi {
    /// Shared state.
    pub state: Shared,
}

/// Serves until `shutdown`; health turns NOT_SERVING first.
pub async fn serve(
    state: Shared,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    use tonic::server::NamedService;
    sluice_runtime::grpc::serve(
        "orchestrator",
        &[<WorkflowsServer<WorkflowsApi> as NamedService>::NAME],
        tonic::service::Routes::new(WorkflowsServer::new(WorkflowsApi { state })),
        listener,
        shutdown,
    )
    .await?;
    Ok(())
}

fn status_name(s: WorkflowExecutionStatus) -> &'static str {
    match s {
        WorkflowExecutionStatus::Running => "RUNNING",
        WorkflowExecutionStatus::Completed => "COMPLETED",
        WorkflowExecutionStatus::Failed => "FAILED",
        WorkflowExecutionStatus::Canceled => "CANCELED",
        WorkflowExecutionStatus::Terminated => "TERMINATED",
        WorkflowExecutionStatus::ContinuedAsNew => "CONTINUED_AS_NEW",
        WorkflowExecutionStatus::TimedOut => "TIMED_OUT",
        WorkflowExecutionStatus::Paused => "PAUSED",
        _ => "UNKNOWN",
    }
}

/// The visibility query value of a status name.
fn status_query(name: &str) -> Option<&'static str> {
    Some(match name {
        "RUNNING" => "Running",
        "COMPLETED" => "Completed",
        "FAILED" => "Failed",
        "CANCELED" => "Canceled",
        "TERMINATED" => "Terminated",
        "TIMED_OUT" => "TimedOut",
        "CONTINUED_AS_NEW" => "ContinuedAsNew",
        _ => return None,
    })
}

fn rfc3339(t: Option<SystemTime>) -> String {
    t.map(time::OffsetDateTime::from)
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// A status from Temporal as this API's: its outages are UNAVAILABLE (the
/// caller retries), what it refuses is the caller's to change.
fn from_temporal(s: tonic::Status) -> AdminError {
    let message = format!("Temporal: {}", s.message());
    match s.code() {
        tonic::Code::Unavailable
        | tonic::Code::DeadlineExceeded
        | tonic::Code::ResourceExhausted
        | tonic::Code::Aborted => AdminError::Unavailable(message),
        tonic::Code::InvalidArgument | tonic::Code::OutOfRange => {
            AdminError::Invalid(Violation::new("/input", message))
        }
        tonic::Code::NotFound => AdminError::NotFound(message),
        tonic::Code::FailedPrecondition | tonic::Code::AlreadyExists => {
            AdminError::Conflict(message)
        }
        _ => AdminError::Internal(message),
    }
}

/// FAILED_PRECONDITION (409) for a workflow that has closed, saying `why`
/// that matters.
fn still_running(w: &v1::Workflow, why: &str) -> AdminResult<()> {
    if w.status == "RUNNING" {
        return Ok(());
    }
    Err(AdminError::Conflict(format!(
        "workflow {:?} is {}: {why}",
        w.workflow_id, w.status
    )))
}

fn no_workflow(id: &str) -> AdminError {
    AdminError::NotFound(format!("no workflow with id {id:?}"))
}

fn interaction(id: &str, e: WorkflowInteractionError) -> AdminError {
    match e {
        WorkflowInteractionError::NotFound(_) => no_workflow(id),
        WorkflowInteractionError::Rpc(s) => from_temporal(s),
        other => AdminError::Internal(format!("Temporal: {other}")),
    }
}

/// The approval input: from a TaskCreated event (as a rule's `workflow`
/// target sends it) or a task given directly (`{"taskId", "title"}`).
fn approval_input(
    state: &crate::State,
    workflow_id: &str,
    input: &str,
) -> Result<approval::Input, Violation> {
    let value: serde_json::Value = if input.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(input)
            .map_err(|e| Violation::new("/input", format!("is not JSON: {e}")))?
    };
    let task = value.get("detail").unwrap_or(&value);
    let text = |field: &str| {
        task.get(field)
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    };
    let task_id = text("taskId").ok_or_else(|| {
        Violation::new(
            "/input/taskId",
            "an approval needs the task: a TaskCreated event or {\"taskId\", \"title\"}",
        )
    })?;
    sluice_model::ids::check_client_id(&task_id).map_err(|e| Violation::new("/input/taskId", e))?;
    Ok(approval::Input {
        workflow_id: workflow_id.to_string(),
        task_id,
        title: text("title").unwrap_or_default(),
        owner: text("userId").unwrap_or_default(),
        approvers: state.config.approvers.clone(),
        round_timeout_seconds: state.config.approval_timeout.as_secs().max(1),
    })
}

/// The file pipeline's input: `{"file_id", "bucket", "key",
/// "notification"?}` (file-ingest sends it for each uploaded object).
fn file_input(
    state: &crate::State,
    workflow_id: &str,
    input: &str,
) -> Result<sluice_files::pipeline::Input, Violation> {
    let start: sluice_files::pipeline::Start = serde_json::from_str(input).map_err(|e| {
        Violation::new(
            "/input",
            format!("a file pipeline needs {{\"file_id\", \"bucket\", \"key\"}}: {e}"),
        )
    })?;
    sluice_model::ids::check_client_id(&start.file_id)
        .map_err(|e| Violation::new("/input/file_id", e))?;
    if start.bucket.is_empty() || start.key.is_empty() {
        return Err(Violation::new("/input", "bucket and key must not be empty"));
    }
    let files = &state.config.files;
    Ok(sluice_files::pipeline::Input {
        workflow_id: workflow_id.to_string(),
        start,
        task_queue: files.task_queue.clone(),
        max_attempts: files.max_attempts,
        retry_initial_ms: u64::try_from(files.retry_initial.as_millis()).unwrap_or(u64::MAX),
    })
}

/// The order saga's input: `{"order": <the placed order>, "placed": <its
/// OrderPlaced event>}` (the processor sends it with
/// `SLUICE_ORDER_FLOW=saga`).
fn saga_input(state: &crate::State, input: &str) -> Result<saga::Input, Violation> {
    #[derive(serde::Deserialize)]
    struct Start {
        order: sluice_model::PlacedOrder,
        placed: sluice_model::Envelope,
    }
    let start: Start = serde_json::from_str(input).map_err(|e| {
        Violation::new(
            "/input",
            format!("an order saga needs {{\"order\", \"placed\"}}: {e}"),
        )
    })?;
    start
        .order
        .check()
        .map_err(|e| Violation::new("/input/order", e))?;
    Ok(saga::Input {
        order: start.order,
        placed: start.placed,
        payment_attempts: state.config.payment_attempts,
    })
}

impl WorkflowsApi {
    async fn describe(&self, id: &str) -> AdminResult<v1::Workflow> {
        if sluice_model::ids::check_client_id(id).is_err() {
            return Err(no_workflow(id));
        }
        let client = &self.state.temporal.client;
        let handle = client.get_workflow_handle::<UntypedWorkflow>(id);
        let d = handle
            .describe(WorkflowDescribeOptions::default())
            .await
            .map_err(|e| interaction(id, e))?;
        let mut w = v1::Workflow {
            workflow_id: id.to_string(),
            run_id: d.run_id().to_string(),
            workflow_type: d.workflow_type().to_string(),
            status: status_name(d.status()).into(),
            started_at: rfc3339(d.start_time()),
            closed_at: rfc3339(d.close_time()),
            ..Default::default()
        };
        if d.status() != WorkflowExecutionStatus::Running
            && TYPES.contains(&w.workflow_type.as_str())
        {
            let result = if w.workflow_type == saga::TYPE {
                client
                    .get_workflow_handle::<OrderSaga>(id)
                    .get_result(WorkflowGetResultOptions::default())
                    .await
                    .map(|out| serde_json::to_string(&out).unwrap_or_default())
            } else if w.workflow_type == files::TYPE {
                client
                    .get_workflow_handle::<FilePipeline>(id)
                    .get_result(WorkflowGetResultOptions::default())
                    .await
                    .map(|out| serde_json::to_string(&out).unwrap_or_default())
            } else {
                client
                    .get_workflow_handle::<Approval>(id)
                    .get_result(WorkflowGetResultOptions::default())
                    .await
                    .map(|out| serde_json::to_string(&out).unwrap_or_default())
            };
            match result {
                Ok(out) => w.result = out,
                Err(WorkflowGetResultError::Failed(f)) => w.error = f.to_string(),
                Err(WorkflowGetResultError::Cancelled { .. }) => w.error = "canceled".into(),
                Err(WorkflowGetResultError::Terminated { .. }) => w.error = "terminated".into(),
                Err(WorkflowGetResultError::TimedOut) => w.error = "timed out".into(),
                Err(e) => w.error = e.to_string(),
            }
        }
        Ok(w)
    }
}

#[tonic::async_trait]
impl Workflows for WorkflowsApi {
    async fn start_workflow(
        &self,
        request: Request<v1::StartWorkflowRequest>,
    ) -> Result<Response<v1::StartWorkflowResponse>, Status> {
        let req = request.into_inner();
        if !TYPES.contains(&req.workflow_type.as_str()) {
            return Err(AdminError::NotFound(format!(
                "no workflow type {:?}; there are {TYPES:?}",
                req.workflow_type
            ))
            .into());
        }
        let id = if req.workflow_id.is_empty() {
            sluice_model::ids::new_id()
        } else {
            sluice_model::ids::check_client_id(&req.workflow_id)
                .map_err(|e| AdminError::Invalid(Violation::new("/workflow_id", e)))?;
            req.workflow_id.clone()
        };
        let options = WorkflowStartOptions::new(self.state.config.task_queue.clone(), id.clone())
            .id_conflict_policy(WorkflowIdConflictPolicy::Fail)
            .id_reuse_policy(WorkflowIdReusePolicy::RejectDuplicate)
            .build();
        let client = &self.state.temporal.client;
        let started = if req.workflow_type == saga::TYPE {
            let input = saga_input(&self.state, &req.input).map_err(AdminError::from)?;
            sluice_telemetry::in_current_span(client.start_workflow(OrderSaga::run, input, options))
                .await
                .map(|h| h.run_id().unwrap_or_default().to_string())
        } else if req.workflow_type == files::TYPE {
            let input = file_input(&self.state, &id, &req.input).map_err(AdminError::from)?;
            sluice_telemetry::in_current_span(client.start_workflow(
                FilePipeline::run,
                input,
                options,
            ))
            .await
            .map(|h| h.run_id().unwrap_or_default().to_string())
        } else {
            let input = approval_input(&self.state, &id, &req.input).map_err(AdminError::from)?;
            sluice_telemetry::in_current_span(client.start_workflow(Approval::run, input, options))
                .await
                .map(|h| h.run_id().unwrap_or_default().to_string())
        };
        match started {
            Ok(run_id) => {
                metrics::counter!("sluice.orchestrator.started", "type" => req.workflow_type.clone())
                    .increment(1);
                tracing::info!(workflow_id = %id, workflow_type = %req.workflow_type,
                    origin = %req.origin, "workflow started");
                Ok(Response::new(v1::StartWorkflowResponse {
                    workflow_id: id,
                    run_id,
                }))
            }
            Err(WorkflowStartError::AlreadyStarted { .. }) => Err(Status::already_exists(format!(
                "workflow {id:?} was started already"
            ))),
            Err(WorkflowStartError::Rpc(status)) => Err(from_temporal(status).into()),
            Err(e) => Err(AdminError::Internal(format!("Temporal: {e}")).into()),
        }
    }

    async fn describe_workflow(
        &self,
        request: Request<v1::DescribeWorkflowRequest>,
    ) -> Result<Response<v1::Workflow>, Status> {
        let id = request.into_inner().workflow_id;
        Ok(Response::new(self.describe(&id).await?))
    }

    async fn signal_workflow(
        &self,
        request: Request<v1::SignalWorkflowRequest>,
    ) -> Result<Response<v1::SignalWorkflowResponse>, Status> {
        let req = request.into_inner();
        // A link's token is checked before anything is read: an
        // unauthenticated caller with a wrong token costs no Temporal call.
        if !req.token.is_empty() {
            let approve = serde_json::from_str::<approval::Decision>(&req.input)
                .map(|d| d.approve)
                .unwrap_or(false);
            if req.name != approval::SIGNAL
                || !self
                    .state
                    .links
                    .verify(&req.workflow_id, approve, &req.token)
            {
                return Err(no_workflow(&req.workflow_id).into());
            }
        }
        let w = self.describe(&req.workflow_id).await?;
        if w.workflow_type != approval::TYPE || req.name != approval::SIGNAL {
            return Err(AdminError::Invalid(Violation::new(
                "/name",
                format!(
                    "a {} workflow takes no signal {:?}",
                    w.workflow_type, req.name
                ),
            ))
            .into());
        }
        let decision: approval::Decision = serde_json::from_str(&req.input).map_err(|e| {
            AdminError::Invalid(Violation::new(
                "/input",
                format!("expected {{\"approve\": true|false, \"by\"?: \"...\"}}: {e}"),
            ))
        })?;
        still_running(&w, "it takes no more signals")?;
        let handle = self
            .state
            .temporal
            .client
            .get_workflow_handle::<Approval>(req.workflow_id.clone());
        sluice_telemetry::in_current_span(handle.signal(
            Approval::decide,
            decision,
            WorkflowSignalOptions::default(),
        ))
        .await
        .map_err(|e| interaction(&req.workflow_id, e))?;
        metrics::counter!("sluice.orchestrator.signals", "type" => w.workflow_type).increment(1);
        Ok(Response::new(v1::SignalWorkflowResponse {}))
    }

    async fn cancel_workflow(
        &self,
        request: Request<v1::CancelWorkflowRequest>,
    ) -> Result<Response<v1::CancelWorkflowResponse>, Status> {
        let req = request.into_inner();
        let w = self.describe(&req.workflow_id).await?;
        still_running(&w, "there is nothing to cancel")?;
        let handle = self
            .state
            .temporal
            .client
            .get_workflow_handle::<UntypedWorkflow>(req.workflow_id.clone());
        let reason = if req.reason.is_empty() {
            "canceled through the Workflows API".to_string()
        } else {
            req.reason.clone()
        };
        handle
            .cancel(WorkflowCancelOptions::builder().reason(reason).build())
            .await
            .map_err(|e| interaction(&req.workflow_id, e))?;
        Ok(Response::new(v1::CancelWorkflowResponse {}))
    }

    async fn list_workflows(
        &self,
        request: Request<v1::ListWorkflowsRequest>,
    ) -> Result<Response<v1::ListWorkflowsResponse>, Status> {
        let req = request.into_inner();
        let limit = match req.limit {
            0 => 50,
            n if n <= MAX_LIST => n,
            _ => {
                return Err(AdminError::Invalid(Violation::new(
                    "/limit",
                    format!("must be 1 to {MAX_LIST}"),
                ))
                .into())
            }
        };
        let mut clauses = Vec::new();
        if !req.workflow_type.is_empty() {
            // Its alphabet keeps the query a query (no quotes).
            sluice_model::names::check_workflow_type(&req.workflow_type)
                .map_err(|e| AdminError::Invalid(Violation::new("/type", e)))?;
            clauses.push(format!("WorkflowType = '{}'", req.workflow_type));
        }
        if !req.status.is_empty() {
            let s = status_query(&req.status).ok_or_else(|| {
                AdminError::Invalid(Violation::new(
                    "/status",
                    "must be RUNNING, COMPLETED, FAILED, CANCELED, TERMINATED or TIMED_OUT",
                ))
            })?;
            clauses.push(format!("ExecutionStatus = '{s}'"));
        }
        let query = clauses.join(" AND ");
        let mut stream = self.state.temporal.client.list_workflows(
            query,
            WorkflowListOptions::builder().limit(limit as usize).build(),
        );
        let mut workflows = Vec::new();
        while let Some(e) = stream.next().await {
            let e = e.map_err(|e| match e {
                temporalio_client::errors::ClientError::Rpc(s) => from_temporal(s),
                other => AdminError::Unavailable(format!("Temporal: {other}")),
            })?;
            workflows.push(v1::Workflow {
                workflow_id: e.id().to_string(),
                run_id: e.run_id().to_string(),
                workflow_type: e.workflow_type().to_string(),
                status: status_name(e.status()).into(),
                started_at: rfc3339(e.start_time()),
                closed_at: rfc3339(e.close_time()),
                ..Default::default()
            });
        }
        Ok(Response::new(v1::ListWorkflowsResponse { workflows }))
    }
}
