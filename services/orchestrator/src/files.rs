//! The file pipeline (the design's example, an S3 trigger feeding Step
//! Functions): validate → transform → store → notify, each step an
//! activity run by file-ingest (task queue `SLUICE_FILES_TASK_QUEUE`)
//! with exponential backoff. A step whose attempts run out, or content
//! that fails validation, ends the run in the dead-letter queue with the
//! file, the step, the row and the reason, and the owner is told; the
//! workflow then ends FAILED. A redrive of that dead letter starts a new
//! run. The workflow code is deterministic: activities, nothing else.

use std::time::Duration;

use sluice_files::activities::FileActivities;
use sluice_files::inspect::Inspection;
use sluice_files::pipeline::{
    self, step, Ended, Failed, Input, Notice, Object, Outcome, Processed,
};
use temporalio_common::error::RetryState;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{ActivityOptions, ApplicationFailure, WorkflowContext, WorkflowResult};
use temporalio_workflow::{
    ActivityExecutionError, RetryPolicy, WorkflowCancellationToken, WorkflowTermination,
};

/// The workflow type.
pub const TYPE: &str = pipeline::TYPE;

/// The file pipeline (no state besides its input).
#[workflow]
#[derive(Default)]
pub struct FilePipeline;

/// A step's options: `max_attempts` with exponential backoff from
/// `retry_initial_ms`, on file-ingest's task queue. A streaming step
/// (validate, transform) may take 30 minutes on a large object and
/// heartbeats, so a worker that died mid-file is noticed within a minute;
/// the others get a minute.
fn step_options(input: &Input, streaming: bool) -> ActivityOptions {
    let retry = RetryPolicy::builder()
        .initial_interval(Duration::from_millis(input.retry_initial_ms.max(1)))
        .backoff_coefficient(2.0)
        .maximum_interval(Duration::from_secs(300))
        .maximum_attempts(input.max_attempts.max(1))
        .build();
    let mut o = if streaming {
        ActivityOptions::with_start_to_close_timeout(Duration::from_secs(1800))
            .heartbeat_timeout(Duration::from_secs(60))
            .retry_policy(retry)
            .build()
    } else {
        ActivityOptions::with_start_to_close_timeout(Duration::from_secs(60))
            .retry_policy(retry)
            .build()
    };
    o.task_queue = Some(input.task_queue.clone());
    o
}

/// Options of what must happen once the outcome is known (dead letter,
/// notice): retried without limit, and not cancelled with the workflow.
fn must_options(input: &Input) -> ActivityOptions {
    let retry = RetryPolicy::builder()
        .initial_interval(Duration::from_secs(1))
        .backoff_coefficient(2.0)
        .maximum_interval(Duration::from_secs(60))
        .build();
    let mut o = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(60))
        .retry_policy(retry)
        .build();
    o.task_queue = Some(input.task_queue.clone());
    o.cancellation_token = Some(WorkflowCancellationToken::new());
    o
}

/// A step that failed: the activity's own error and the attempts made.
struct StepFailure {
    reason: String,
    row: Option<u64>,
    attempts: u32,
    terminal: bool,
}

fn step_failure(input: &Input, e: &ActivityExecutionError) -> StepFailure {
    let failure = e.failure();
    let reason = failure
        .and_then(|f| f.cause.as_deref())
        .map(|c| c.message.clone())
        .or_else(|| failure.map(|f| f.message.clone()))
        .unwrap_or_else(|| e.to_string());
    let (attempts, terminal) = match e {
        ActivityExecutionError::Failed(f) => match f.retry_state() {
            RetryState::MaximumAttemptsReached => (input.max_attempts, false),
            RetryState::NonRetryableFailure => (1, true),
            _ => (input.max_attempts, false),
        },
        _ => (1, true),
    };
    StepFailure {
        reason,
        row: None,
        attempts,
        terminal,
    }
}

#[workflow_methods]
impl FilePipeline {
    /// Runs the steps; dead-letters the file when one fails.
    #[run(name = "file-pipeline")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: Input) -> WorkflowResult<Outcome> {
        let object = Object {
            workflow_id: input.workflow_id.clone(),
            file_id: input.start.file_id.clone(),
            bucket: input.start.bucket.clone(),
            key: input.start.key.clone(),
            content_type: String::new(),
        };
        let inspection: Inspection = match ctx
            .execute_activity(
                FileActivities::validate,
                object.clone(),
                step_options(&input, true),
            )
            .await
        {
            Ok(i) => i,
            Err(e) => return fail(ctx, &input, step::VALIDATE, step_failure(&input, &e)).await,
        };
        if let Some(bad) = &inspection.invalid {
            let f = StepFailure {
                reason: bad.reason.clone(),
                row: bad.row,
                attempts: 1,
                terminal: true,
            };
            return fail(ctx, &input, step::VALIDATE, f).await;
        }
        let object = Object {
            content_type: inspection.content_type.clone(),
            ..object
        };
        let processed_object = match ctx
            .execute_activity(
                FileActivities::transform,
                object,
                step_options(&input, true),
            )
            .await
        {
            Ok(p) => p,
            Err(e) => return fail(ctx, &input, step::TRANSFORM, step_failure(&input, &e)).await,
        };
        let done = Processed {
            workflow_id: input.workflow_id.clone(),
            file_id: input.start.file_id.clone(),
            inspection: inspection.clone(),
            processed_object: processed_object.clone(),
        };
        if let Err(e) = ctx
            .execute_activity(FileActivities::store, done, step_options(&input, false))
            .await
        {
            return fail(ctx, &input, step::STORE, step_failure(&input, &e)).await;
        }
        let notice = Notice {
            workflow_id: input.workflow_id.clone(),
            file_id: input.start.file_id.clone(),
            status: "processed".into(),
            reason: None,
        };
        ctx.execute_activity(FileActivities::notify, notice, must_options(&input))
            .await?;
        Ok(Outcome {
            file_id: input.start.file_id.clone(),
            size: inspection.size,
            sha256: inspection.sha256,
            content_type: inspection.content_type,
            rows: inspection.rows,
            processed_object,
        })
    }
}

/// Ends a run whose step failed: CANCELED (the file marked `failed`) when
/// the workflow is being cancelled; otherwise the dead letter, the notice
/// to the owner, and FAILED with the reason.
async fn fail(
    ctx: &mut WorkflowContext<FilePipeline>,
    input: &Input,
    step: &str,
    f: StepFailure,
) -> WorkflowResult<Outcome> {
    if ctx.cancellation_token().is_cancelled() {
        let ended = Ended {
            workflow_id: input.workflow_id.clone(),
            file_id: input.start.file_id.clone(),
            reason: "the pipeline was canceled".into(),
        };
        ctx.execute_activity(FileActivities::end, ended, must_options(input))
            .await?;
        return Err(WorkflowTermination::cancelled());
    }
    let failed = Failed {
        workflow_id: input.workflow_id.clone(),
        file_id: input.start.file_id.clone(),
        bucket: input.start.bucket.clone(),
        notification: input.start.notification.clone(),
        step: step.to_string(),
        reason: f.reason.clone(),
        row: f.row,
        attempts: f.attempts,
        terminal: f.terminal,
    };
    ctx.execute_activity(FileActivities::dead_letter, failed, must_options(input))
        .await?;
    let notice = Notice {
        workflow_id: input.workflow_id.clone(),
        file_id: input.start.file_id.clone(),
        status: "dead_lettered".into(),
        reason: Some(f.reason.clone()),
    };
    ctx.execute_activity(FileActivities::notify, notice, must_options(input))
        .await?;
    let row = f.row.map(|r| format!(" at row {r}")).unwrap_or_default();
    Err(ApplicationFailure::non_retryable(format!(
        "{step} failed{row} after {} attempt(s): {}; the file is in the dead-letter queue",
        f.attempts, f.reason
    ))
    .into())
}
