//! Workflows over HTTP (Step Functions' executions): start, describe,
//! signal, cancel, list. Every call goes to the orchestrator over gRPC,
//! which runs them on Temporal. The approval links emailed to approvers are
//! here too: `GET .../decision` shows what the link decides and a button;
//! the button's `POST` sends the decision (a mail scanner that opens links
//! decides nothing).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use sluice_proto::v1;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{scope, Principal};
use crate::body::JsonBody;
use crate::error::{ApiError, Problem};
use crate::orchestrator::problem;
use crate::Shared;

/// A workflow.
#[derive(Debug, Serialize, ToSchema)]
pub struct Workflow {
    /// Its id.
    pub workflow_id: String,
    /// The current run's id.
    pub run_id: String,
    /// Its type, e.g. `approval`.
    pub workflow_type: String,
    /// `RUNNING`, `COMPLETED`, `FAILED`, `CANCELED`, `TERMINATED` or `TIMED_OUT`.
    pub status: String,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339, once closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<String>,
    /// `COMPLETED`: what it returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// `FAILED` (and the like): why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

impl From<v1::Workflow> for Workflow {
    fn from(w: v1::Workflow) -> Self {
        Self {
            workflow_id: w.workflow_id,
            run_id: w.run_id,
            workflow_type: w.workflow_type,
            status: w.status,
            started_at: w.started_at,
            closed_at: non_empty(w.closed_at),
            result: non_empty(w.result)
                .map(|r| serde_json::from_str(&r).unwrap_or(serde_json::Value::String(r))),
            error: non_empty(w.error),
        }
    }
}

/// A started workflow.
#[derive(Debug, Serialize, ToSchema)]
pub struct Started {
    /// Its id: read it with `GET /v1/workflows/{workflow_id}`.
    pub workflow_id: String,
}

/// Workflows.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowList {
    /// Newest first.
    pub workflows: Vec<Workflow>,
}

/// `GET /v1/workflows` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only this type.
    #[serde(rename = "type")]
    #[param(rename = "type", pattern = "^[-_.A-Za-z0-9]{1,128}$")]
    pub workflow_type: Option<String>,
    /// Only this status (`RUNNING`, `COMPLETED`, `FAILED`, `CANCELED`,
    /// `TERMINATED`, `TIMED_OUT`).
    #[param(pattern = "^(RUNNING|COMPLETED|FAILED|CANCELED|TERMINATED|TIMED_OUT)$")]
    pub status: Option<String>,
    /// 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// Starts a workflow of type `type` with the request body (any JSON) as its
/// input. With an `Idempotency-Key`, a retry starts nothing new and
/// answers the same id.
#[utoipa::path(post, path = "/v1/workflows/{id}", tag = "workflows",
    params(("id" = String, Path, pattern = "^[-_.A-Za-z0-9]{1,128}$",
            description = "The workflow type to start, e.g. `approval` (the path of a workflow's id when read)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Starts it once: a retry answers the same workflow id",
            pattern = "^[\\x21-\\x7E]{1,255}$")),
    request_body(content = Object, description = "The workflow's input (for `approval`: a TaskCreated event or {\"taskId\", \"title\"})"),
    responses((status = 202, body = Started), (status = 400, body = Problem),
        (status = 404, description = "No such workflow type", body = Problem),
        (status = 503, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn start(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(workflow_type): Path<String>,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<(StatusCode, Json<Started>), ApiError> {
    principal.require(scope::WORKFLOWS_WRITE)?;
    let input: serde_json::Value = body.parse()?;
    let workflow_id = match crate::idempotency::key_of(&headers)? {
        Some(key) => sluice_model::ids::derive_id(
            key,
            &format!("workflow/{workflow_type}/{}", principal.name),
        ),
        None => sluice_model::ids::new_id(),
    };
    let o = &state.orchestrator;
    match o
        .workflows()
        .start_workflow(o.request(v1::StartWorkflowRequest {
            workflow_type,
            workflow_id: workflow_id.clone(),
            input: input.to_string(),
            origin: format!("gateway/{}", principal.name),
        }))
        .await
    {
        Ok(out) => Ok((
            StatusCode::ACCEPTED,
            Json(Started {
                workflow_id: out.into_inner().workflow_id,
            }),
        )),
        // Started before under the same key: the same answer.
        Err(s) if s.code() == tonic::Code::AlreadyExists => {
            Ok((StatusCode::ACCEPTED, Json(Started { workflow_id })))
        }
        Err(s) => Err(problem(s)),
    }
}

/// A workflow: its status, and once it closed, its result or error.
#[utoipa::path(get, path = "/v1/workflows/{id}", tag = "workflows",
    params(("id" = String, Path)),
    responses((status = 200, body = Workflow), (status = 404, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn get(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Workflow>, ApiError> {
    principal.require(scope::WORKFLOWS_READ)?;
    let o = &state.orchestrator;
    let w = o
        .workflows()
        .describe_workflow(o.request(v1::DescribeWorkflowRequest { workflow_id: id }))
        .await
        .map_err(problem)?;
    Ok(Json(w.into_inner().into()))
}

/// Workflows, newest first.
#[utoipa::path(get, path = "/v1/workflows", tag = "workflows", params(ListParams),
    responses((status = 200, body = WorkflowList), (status = 400, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn list(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    q: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<WorkflowList>, ApiError> {
    principal.require(scope::WORKFLOWS_READ)?;
    let Query(q) = q.map_err(|e| ApiError::BadParameter(e.body_text()))?;
    if q.limit.is_some_and(|l| !(1..=100).contains(&l)) {
        return Err(ApiError::BadParameter("limit must be 1 to 100".into()));
    }
    for (name, v) in [("type", &q.workflow_type), ("status", &q.status)] {
        if v.as_deref() == Some("") {
            return Err(ApiError::BadParameter(format!(
                "{name} must not be empty (leave it out for any)"
            )));
        }
    }
    let o = &state.orchestrator;
    let out = o
        .workflows()
        .list_workflows(o.request(v1::ListWorkflowsRequest {
            workflow_type: q.workflow_type.unwrap_or_default(),
            status: q.status.unwrap_or_default(),
            limit: q.limit.unwrap_or(0),
        }))
        .await
        .map_err(problem)?;
    Ok(Json(WorkflowList {
        workflows: out
            .into_inner()
            .workflows
            .into_iter()
            .map(Workflow::from)
            .collect(),
    }))
}

/// Sends signal `name` with the request body (JSON) as its input. For an
/// `approval`: `decision` with `{"approve": true|false, "by"?: "..."}`.
#[utoipa::path(post, path = "/v1/workflows/{id}/signals/{name}", tag = "workflows",
    params(("id" = String, Path), ("name" = String, Path)),
    request_body(content = Object, description = "The signal's input"),
    responses((status = 202, description = "Delivered to the workflow"), (status = 400, body = Problem),
        (status = 404, body = Problem),
        (status = 409, description = "The workflow has closed", body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn signal(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path((id, name)): Path<(String, String)>,
    body: JsonBody,
) -> Result<StatusCode, ApiError> {
    principal.require(scope::WORKFLOWS_WRITE)?;
    let input: serde_json::Value = body.parse()?;
    let o = &state.orchestrator;
    o.workflows()
        .signal_workflow(o.request(v1::SignalWorkflowRequest {
            workflow_id: id,
            name,
            input: input.to_string(),
            token: String::new(),
        }))
        .await
        .map_err(problem)?;
    Ok(StatusCode::ACCEPTED)
}

/// Asks a running workflow to cancel.
#[utoipa::path(post, path = "/v1/workflows/{id}/cancel", tag = "workflows",
    params(("id" = String, Path)),
    responses((status = 202, description = "Cancellation requested"), (status = 404, body = Problem),
        (status = 409, description = "The workflow has closed", body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn cancel(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(scope::WORKFLOWS_WRITE)?;
    let o = &state.orchestrator;
    o.workflows()
        .cancel_workflow(o.request(v1::CancelWorkflowRequest {
            workflow_id: id,
            reason: format!("canceled by {}", principal.name),
        }))
        .await
        .map_err(problem)?;
    Ok(StatusCode::ACCEPTED)
}

/// An approval link's query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DecisionLink {
    /// `true` approves, `false` rejects.
    pub approve: bool,
    /// As the link carries it.
    #[param(min_length = 1)]
    pub token: String,
}

/// What a URL must escape: everything but RFC 3986's unreserved characters.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn link_of(
    q: Result<Query<DecisionLink>, axum::extract::rejection::QueryRejection>,
) -> Result<DecisionLink, ApiError> {
    match q {
        Ok(Query(l)) if !l.token.is_empty() => Ok(l),
        _ => Err(ApiError::BadParameter(
            "the link needs approve=true|false and its token".into(),
        )),
    }
}

/// An approval link, opened: a page with a button that sends the decision
/// (opening the link decides nothing). Needs no credentials.
#[utoipa::path(get, path = "/v1/workflows/{id}/decision", tag = "workflows",
    params(("id" = String, Path), DecisionLink),
    responses((status = 200, description = "A page with the decision's button", content_type = "text/html"),
        (status = 400, body = Problem)))]
pub async fn decision_page(
    Path(id): Path<String>,
    q: Result<Query<DecisionLink>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let link = link_of(q)?;
    let verb = if link.approve { "Approve" } else { "Reject" };
    let action = format!(
        "/v1/workflows/{}/decision?approve={}&token={}",
        percent_encoding::utf8_percent_encode(&id, UNRESERVED),
        link.approve,
        percent_encoding::utf8_percent_encode(&link.token, UNRESERVED),
    );
    let page = format!(
        "<!doctype html><meta charset=\"utf-8\"><title>{verb}</title>\
         <p>{verb} the request of workflow <code>{id}</code>?</p>\
         <form method=\"post\" action=\"{action}\"><button type=\"submit\">{verb}</button></form>",
        id = escape(&id),
        action = escape(&action),
    );
    Ok(Html(page).into_response())
}

/// What a decision link did.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionOutcome {
    /// The workflow.
    pub workflow_id: String,
    /// `approved` or `rejected`.
    pub decision: String,
}

/// Sends an approval link's decision to its workflow. Needs no
/// credentials: the token proves this decision for this workflow.
#[utoipa::path(post, path = "/v1/workflows/{id}/decision", tag = "workflows",
    params(("id" = String, Path), DecisionLink),
    responses((status = 200, body = DecisionOutcome), (status = 400, body = Problem),
        (status = 404, description = "No such workflow, or not its token", body = Problem),
        (status = 409, description = "Decided already, or closed", body = Problem)))]
pub async fn decide(
    State(state): State<Shared>,
    Path(id): Path<String>,
    q: Result<Query<DecisionLink>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DecisionOutcome>, ApiError> {
    let link = link_of(q)?;
    let o = &state.orchestrator;
    o.workflows()
        .signal_workflow(o.request(v1::SignalWorkflowRequest {
            workflow_id: id.clone(),
            name: "decision".into(),
            input: serde_json::json!({"approve": link.approve, "by": "link"}).to_string(),
            token: link.token,
        }))
        .await
        .map_err(problem)?;
    Ok(Json(DecisionOutcome {
        workflow_id: id,
        decision: if link.approve { "approved" } else { "rejected" }.into(),
    }))
}
