//! The approval workflow of the tasks app: a high-priority task waits for
//! a person. Each approver in turn gets an email (a message on the
//! approvals topic, which the notifier emails to the subscribed approver)
//! with approve and reject links; a decision arrives as the `decision`
//! signal (from a link, or `POST /v1/workflows/{id}/signals/decision`).
//! No decision within the timeout: the next approver is asked; after the
//! last, the task is rejected. The task's status follows: approved →
//! `in_progress`, rejected → `rejected`.
//!
//! The workflow code is deterministic (timers, signals and activities
//! only); the activities are idempotent: a request's message id and a
//! status change are derived from the workflow id and the round, so a
//! retried or replayed activity has its effect once.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_model::task::{Status, TaskChange};
use sluice_model::topic::TopicMessage;
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{
    ActivityOptions, ApplicationFailure, SyncWorkflowContext, WorkflowContext, WorkflowResult,
};
use temporalio_workflow::{
    RetryPolicy, TimerResult, WorkflowCancellationToken, WorkflowTermination,
};

use crate::links::Links;

/// The workflow type.
pub const TYPE: &str = "approval";
/// The signal carrying a decision.
pub const SIGNAL: &str = "decision";

/// What the workflow starts with (the orchestrator builds it from the
/// caller's input and its configuration, so the workflow reads nothing
/// else).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Input {
    /// The workflow's own id (for its links).
    pub workflow_id: String,
    /// The task waiting.
    pub task_id: String,
    /// Its title, for the email.
    pub title: String,
    /// Its owner.
    #[serde(default)]
    pub owner: String,
    /// Who is asked, in order.
    pub approvers: Vec<String>,
    /// How long each has.
    pub round_timeout_seconds: u64,
}

/// A decision, the `decision` signal's input.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Decision {
    /// Approve (true) or reject (false).
    pub approve: bool,
    /// Who decided, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// How it ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Outcome {
    /// `approved` or `rejected`.
    pub decision: String,
    /// Who decided: the decision's `by`, `link`, or `timeout`.
    pub by: String,
    /// Approvers asked.
    pub rounds: u32,
    /// The task's status afterwards (`in_progress`, `rejected`, or what it
    /// already was; `gone` when it was deleted meanwhile).
    pub task_status: String,
}

/// One approver asked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// The workflow.
    pub workflow_id: String,
    /// The task.
    pub task_id: String,
    /// Its title.
    pub title: String,
    /// Who is asked.
    pub approver: String,
    /// 1 for the first approver.
    pub round: u32,
    /// How long they have.
    pub timeout_seconds: u64,
}

/// The task's status to set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settle {
    /// The task.
    pub task_id: String,
    /// Approved or not.
    pub approved: bool,
}

/// The approval workflow's state: the decision, once one arrived.
#[workflow]
#[derive(Default)]
pub struct Approval {
    decision: Option<Decision>,
}

fn activity_options() -> ActivityOptions {
    // Exponential backoff without a deadline: a person is waiting, and the
    // store or JetStream coming back is worth waiting for (both
    // activities are idempotent).
    let retry = RetryPolicy::builder()
        .initial_interval(Duration::from_secs(1))
        .backoff_coefficient(2.0)
        .maximum_interval(Duration::from_secs(60))
        .build();
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
        .retry_policy(retry)
        .build()
}

#[workflow_methods]
impl Approval {
    /// Asks each approver in turn until one decides; then sets the task's status.
    #[run(name = "approval")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: Input) -> WorkflowResult<Outcome> {
        if input.approvers.is_empty() {
            return Err(ApplicationFailure::non_retryable("no approvers").into());
        }
        let mut rounds = 0;
        for approver in &input.approvers {
            if ctx.state(|s| s.decision.is_some()) {
                break;
            }
            rounds += 1;
            let request = Request {
                workflow_id: input.workflow_id.clone(),
                task_id: input.task_id.clone(),
                title: input.title.clone(),
                approver: approver.clone(),
                round: rounds,
                timeout_seconds: input.round_timeout_seconds,
            };
            // A decision (by signal) may come while the request is still
            // being retried: it is not kept waiting for the email.
            let asked = temporalio_sdk::workflows::select! {
                r = ctx.execute_activity(ApprovalActivities::request, request, activity_options()) => Some(r),
                _ = ctx.wait_condition(|s: &Self| s.decision.is_some()) => None,
            };
            if let Some(Err(e)) = asked {
                return Err(ended(ctx, e.into()));
            }
            if ctx.state(|s| s.decision.is_some()) {
                break;
            }
            let decided = temporalio_sdk::workflows::select! {
                r = ctx.wait_condition(|s: &Self| s.decision.is_some()) => r.map(|()| true),
                t = ctx.timer(Duration::from_secs(input.round_timeout_seconds)) => match t {
                    TimerResult::Fired => Ok(false),
                    TimerResult::Cancelled => Ok(ctx.state(|s| s.decision.is_some())),
                },
            };
            // Cancelled while waiting: the workflow ends CANCELED and the
            // task stays as it is.
            if decided? || ctx.cancellation_token().is_cancelled() {
                break;
            }
        }
        if ctx.cancellation_token().is_cancelled() {
            return Err(WorkflowTermination::cancelled());
        }
        let decision = ctx.state(|s| s.decision.clone());
        let (approved, by) = match decision {
            Some(d) => (d.approve, d.by.unwrap_or_else(|| "link".into())),
            None => (false, "timeout".into()),
        };
        let settle = Settle {
            task_id: input.task_id.clone(),
            approved,
        };
        // Once decided, the task's status is set even if a cancel arrives
        // meanwhile: the activity does not share the workflow's
        // cancellation.
        let mut settle_options = activity_options();
        settle_options.cancellation_token = Some(WorkflowCancellationToken::new());
        let task_status = ctx
            .execute_activity(ApprovalActivities::settle, settle, settle_options)
            .await?;
        Ok(Outcome {
            decision: if approved { "approved" } else { "rejected" }.into(),
            by,
            rounds,
            task_status,
        })
    }

    /// A decision; the first one counts.
    #[signal(name = "decision")]
    pub fn decide(&mut self, _ctx: &mut SyncWorkflowContext<Self>, decision: Decision) {
        if self.decision.is_none() {
            self.decision = Some(decision);
        }
    }
}

/// How an activity's failure ends the workflow: CANCELED when the
/// workflow is being cancelled (the activity was cancelled with it),
/// FAILED otherwise.
fn ended(ctx: &WorkflowContext<Approval>, e: WorkflowTermination) -> WorkflowTermination {
    if ctx.cancellation_token().is_cancelled() {
        WorkflowTermination::cancelled()
    } else {
        e
    }
}

/// What the activities reach: JetStream (the approvals topic) and the store
/// (tasks).
#[derive(Debug)]
pub struct ApprovalActivities {
    /// JetStream.
    pub bus: sluice_bus::Bus,
    /// The store.
    pub store: sluice_store::Store,
    /// Task events' origin.
    pub origin: sluice_runtime::tasks::Origin,
    /// Link signing.
    pub links: Links,
    /// The approvals topic.
    pub topic: String,
}

fn retryable(e: impl std::fmt::Display) -> ActivityError {
    ActivityError::from(anyhow::anyhow!("{e}"))
}

#[activities]
impl ApprovalActivities {
    /// Emails one approver: a message on the approvals topic with the
    /// approver as its `approver` attribute (the notifier delivers it to
    /// the email subscription filtered on it). Its id is derived from the
    /// workflow and the round, so a retry is de-duplicated by JetStream.
    #[activity(name = "approval.request")]
    pub async fn request(
        self: Arc<Self>,
        _ctx: ActivityContext,
        req: Request,
    ) -> Result<(), ActivityError> {
        let approve = self.links.decision_url(&req.workflow_id, true);
        let reject = self.links.decision_url(&req.workflow_id, false);
        let hours = req.timeout_seconds as f64 / 3600.0;
        let text = format!(
            "The task \"{title}\" ({task}) has high priority and needs your approval.\n\n\
             Approve: {approve}\n\
             Reject:  {reject}\n\n\
             Without a decision within {hours:.1} hours it goes to the next approver, \
             and after the last it is rejected.\n",
            title = req.title,
            task = req.task_id,
        );
        let subject: String = format!("Approval needed: {}", req.title)
            .chars()
            .filter(|c| (' '..='~').contains(c))
            .take(100)
            .collect();
        let mut attributes = serde_json::Map::new();
        for (name, value) in [
            ("approver", req.approver.as_str()),
            ("task_id", req.task_id.as_str()),
            ("workflow_id", req.workflow_id.as_str()),
        ] {
            attributes.insert(
                name.into(),
                serde_json::json!({"Type": "String", "Value": value}),
            );
        }
        let message = TopicMessage {
            message: text,
            subject: Some(subject).filter(|s| !s.trim().is_empty()),
            message_attributes: attributes,
            origin: Some(format!("workflow/{}", req.workflow_id)),
        };
        let body = serde_json::to_vec(&message).map_err(retryable)?;
        let id = sluice_model::ids::derive_id(
            &req.workflow_id,
            &format!("approval-request/{}", req.round),
        );
        self.bus
            .publish(
                &sluice_bus::subjects::notify(&self.topic),
                &id,
                body.into(),
                async_nats::HeaderMap::new(),
            )
            .await
            .map_err(retryable)?;
        tracing::info!(workflow_id = %req.workflow_id, task = %req.task_id,
            approver = %req.approver, round = req.round, "approval requested");
        Ok(())
    }

    /// Sets the task's status: `in_progress` when approved, `rejected`
    /// otherwise. A task that already has it (a retry) or is final or
    /// deleted is left as it is; the answer is its status.
    #[activity(name = "approval.settle")]
    pub async fn settle(
        self: Arc<Self>,
        _ctx: ActivityContext,
        req: Settle,
    ) -> Result<String, ActivityError> {
        use sluice_runtime::tasks::Refused;
        let status = if req.approved {
            Status::InProgress
        } else {
            Status::Rejected
        };
        let change = TaskChange {
            status: Some(status),
            ..Default::default()
        };
        match sluice_runtime::tasks::change(&self.store, &self.origin, &req.task_id, &change, None)
            .await
        {
            Ok(changed) => {
                if !changed.outbox.is_empty() {
                    if let Err(e) = sluice_runtime::outbox::flush(
                        &self.bus,
                        &self.store,
                        &req.task_id,
                        changed.task.version,
                        &changed.outbox,
                        false,
                    )
                    .await
                    {
                        tracing::warn!(task = %req.task_id, error = %e,
                            "events not published now; the outbox relay will");
                    }
                }
                Ok(changed.task.status.as_str().to_string())
            }
            Err(Refused::NotFound(_)) => Ok("gone".into()),
            Err(Refused::Final(s)) => Ok(s.as_str().to_string()),
            Err(Refused::Invalid(f)) => Err(ActivityError::application(
                ApplicationFailure::non_retryable(format!("{f}")),
            )),
            Err(e) => Err(retryable(e)),
        }
    }
}
