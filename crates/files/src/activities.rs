//! The file pipeline's activities, run by file-ingest's activity worker.
//! Each is idempotent: validate only reads; transform overwrites the
//! file's own copy; store and dead-letter change the record only for the
//! run that owns it (its `workflow_id`); notices and dead letters carry ids
//! derived from the run, so JetStream keeps one of each.

use std::sync::Arc;

use bytes::Bytes;
use sluice_model::file::{FileError, FileStatus};
use sluice_model::topic::TopicMessage;
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::ApplicationFailure;

use crate::inspect::{format_of, Inspection, Inspector, Invalid, Schema};
use crate::pipeline::{step, Ended, Failed, Notice, Object, Processed};
use crate::transform::TransformError;
use crate::FilesConfig;

/// Bytes between two heartbeats of a streaming step.
pub const HEARTBEAT_BYTES: u64 = 8 << 20;

/// What the activities reach.
#[derive(Debug)]
pub struct FileActivities {
    /// The object store.
    pub s3: aws_sdk_s3::Client,
    /// The store (file records).
    pub store: sluice_store::Store,
    /// JetStream (notices, dead letters).
    pub bus: sluice_bus::Bus,
    /// Settings.
    pub config: FilesConfig,
}

/// An error and its sources, one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        src = inner.source();
    }
    s
}

fn retryable(step: &str, e: impl std::fmt::Display) -> ActivityError {
    metrics::counter!("sluice.files.step.failures", "step" => step.to_string()).increment(1);
    tracing::warn!(step, error = %e, "file step failed; Temporal retries it");
    ActivityError::from(anyhow::anyhow!("{e}"))
}

fn final_failure(step: &str, e: impl std::fmt::Display) -> ActivityError {
    metrics::counter!("sluice.files.step.failures", "step" => step.to_string()).increment(1);
    ActivityError::application(ApplicationFailure::non_retryable(e.to_string()))
}

fn invalid(reason: String) -> Inspection {
    Inspection {
        size: 0,
        sha256: String::new(),
        content_type: String::new(),
        rows: None,
        invalid: Some(Invalid { row: None, reason }),
    }
}

impl FileActivities {
    async fn record(
        &self,
        file_id: &str,
        step: &str,
    ) -> Result<sluice_model::file::FileRecord, ActivityError> {
        match self.store.file(file_id).await {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(final_failure(step, format!("there is no file {file_id}"))),
            Err(e) => Err(retryable(step, e)),
        }
    }

    fn schema(record: &sluice_model::file::FileRecord) -> Result<Option<Schema>, String> {
        record
            .schema
            .as_ref()
            .map(|s| Schema::compile(s).map_err(|e| format!("the file's schema: {e}")))
            .transpose()
    }
}

#[activities]
impl FileActivities {
    /// Streams the object once: size, SHA-256, sniffed content type, rows
    /// and their validation against the file's schema. Invalid content is
    /// an answer (`invalid`), not an error: retrying cannot change it.
    #[activity(name = "file.validate")]
    pub async fn validate(
        self: Arc<Self>,
        ctx: ActivityContext,
        object: Object,
    ) -> Result<Inspection, ActivityError> {
        // The run claims the file: it is the one the record follows now
        // (a redrive's run takes over from the dead-lettered one).
        let claimed = self
            .store
            .update_file(&object.file_id, |r| {
                if r.workflow_id.as_deref() == Some(object.workflow_id.as_str()) {
                    return false;
                }
                r.workflow_id = Some(object.workflow_id.clone());
                r.status = FileStatus::Processing;
                r.error = None;
                true
            })
            .await
            .map_err(|e| retryable(step::VALIDATE, e))?;
        let Some(record) = claimed else {
            return Err(final_failure(
                step::VALIDATE,
                format!("there is no file {}", object.file_id),
            ));
        };
        let schema = match Self::schema(&record) {
            Ok(s) => s,
            Err(reason) => return Ok(invalid(reason)),
        };
        let got = self
            .s3
            .get_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .send()
            .await;
        let got = match got {
            Ok(g) => g,
            Err(e) if e.as_service_error().is_some_and(|se| se.is_no_such_key()) => {
                return Ok(invalid(format!(
                    "the object {}/{} is gone",
                    object.bucket, object.key
                )))
            }
            Err(e) => return Err(retryable(step::VALIDATE, error_chain(&e))),
        };
        let max_row = usize::try_from(self.config.max_row_bytes).unwrap_or(usize::MAX);
        let mut inspector = Inspector::new(&record.declared_content_type, schema, max_row);
        let mut body = got.body;
        let (mut read, mut beat) = (0u64, 0u64);
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| retryable(step::VALIDATE, error_chain(&e)))?
        {
            metrics::counter!("sluice.files.bytes.inspected").increment(chunk.len() as u64);
            read += chunk.len() as u64;
            // Alive, for the step's heartbeat timeout: a worker that died
            // mid-file is noticed in seconds, not after the whole timeout.
            if read - beat >= HEARTBEAT_BYTES {
                beat = read;
                let _ = ctx.record_heartbeat(read).await;
            }
            if !inspector.feed(&chunk) {
                break;
            }
        }
        let found = inspector.finish();
        tracing::info!(file_id = %object.file_id, size = found.size, rows = ?found.rows,
            content_type = %found.content_type, valid = found.invalid.is_none(), "file inspected");
        Ok(found)
    }

    /// Writes the transformed copy to the processed bucket; answers where
    /// (`bucket/key`).
    #[activity(name = "file.transform")]
    pub async fn transform(
        self: Arc<Self>,
        ctx: ActivityContext,
        object: Object,
    ) -> Result<String, ActivityError> {
        let record = self.record(&object.file_id, step::TRANSFORM).await?;
        let dest_bucket = &self.config.processed_bucket;
        let max_row = usize::try_from(self.config.max_row_bytes).unwrap_or(usize::MAX);
        let done = match format_of(&object.content_type) {
            Some(format) => {
                let schema =
                    Self::schema(&record).map_err(|e| final_failure(step::TRANSFORM, e))?;
                let dest_key = format!("{}.jsonl", object.file_id);
                crate::transform::to_json_lines(
                    &ctx,
                    &self.s3,
                    &object.bucket,
                    &object.key,
                    format,
                    schema.as_ref(),
                    max_row,
                    dest_bucket,
                    &dest_key,
                )
                .await
                .map(|_| dest_key)
            }
            None => {
                let dest_key = format!("{}/{}", object.file_id, record.name);
                crate::transform::copy(
                    &self.s3,
                    &object.bucket,
                    &object.key,
                    dest_bucket,
                    &dest_key,
                )
                .await
                .map(|()| dest_key)
            }
        };
        match done {
            Ok(key) => Ok(format!("{dest_bucket}/{key}")),
            Err(TransformError::Store(e)) => Err(retryable(step::TRANSFORM, e)),
            Err(e @ TransformError::Content(_)) => Err(final_failure(step::TRANSFORM, e)),
        }
    }

    /// Records the outcome on the file: `processed`, with what validate
    /// found. Only the run that owns the file (its latest) writes.
    #[activity(name = "file.store")]
    pub async fn store(
        self: Arc<Self>,
        _ctx: ActivityContext,
        done: Processed,
    ) -> Result<(), ActivityError> {
        let updated = self
            .store
            .update_file(&done.file_id, |r| {
                if r.workflow_id.as_deref() != Some(done.workflow_id.as_str())
                    || r.status == FileStatus::Processed
                {
                    return false;
                }
                r.status = FileStatus::Processed;
                r.size = Some(done.inspection.size);
                r.sha256 = Some(done.inspection.sha256.clone());
                r.content_type = Some(done.inspection.content_type.clone());
                r.rows = done.inspection.rows;
                r.processed_object = Some(done.processed_object.clone());
                r.error = None;
                true
            })
            .await
            .map_err(|e| retryable(step::STORE, e))?;
        if updated.is_none() {
            return Err(final_failure(
                step::STORE,
                format!("there is no file {}", done.file_id),
            ));
        }
        metrics::counter!("sluice.files.processed").increment(1);
        Ok(())
    }

    /// Tells the file's owner: a message on the files topic with the
    /// attributes `owner`, `file_id` and `status` (an email subscription
    /// filtered on `owner` mails it). Its id is derived from the run and
    /// the status, so a retry is de-duplicated.
    #[activity(name = "file.notify")]
    pub async fn notify(
        self: Arc<Self>,
        _ctx: ActivityContext,
        notice: Notice,
    ) -> Result<(), ActivityError> {
        let record = self.record(&notice.file_id, "notify").await?;
        if record.owner.is_empty() {
            return Ok(());
        }
        let text = match notice.status.as_str() {
            "processed" => format!(
                "Your file \"{}\" ({}) is processed: {} bytes, {} rows, content type {}.\n",
                record.name,
                record.file_id,
                record.size.unwrap_or(0),
                record.rows.map_or_else(|| "no".to_string(), |r| r.to_string()),
                record.content_type.as_deref().unwrap_or("unknown"),
            ),
            _ => format!(
                "Your file \"{}\" ({}) could not be processed and waits in the dead-letter queue: {}\n",
                record.name,
                record.file_id,
                notice.reason.as_deref().unwrap_or("unknown reason"),
            ),
        };
        let mut attributes = serde_json::Map::new();
        for (name, value) in [
            ("owner", record.owner.as_str()),
            ("file_id", record.file_id.as_str()),
            ("status", notice.status.as_str()),
        ] {
            attributes.insert(
                name.into(),
                serde_json::json!({"Type": "String", "Value": value}),
            );
        }
        let subject: String = format!("File {}: {}", notice.status.replace('_', " "), record.name)
            .chars()
            .filter(|c| (' '..='~').contains(c))
            .take(sluice_model::topic::MAX_SUBJECT)
            .collect();
        let message = TopicMessage {
            message: text,
            subject: Some(subject),
            message_attributes: attributes,
            origin: Some(format!("workflow/{}", notice.workflow_id)),
        };
        let body = serde_json::to_vec(&message).map_err(|e| retryable("notify", e))?;
        let id = sluice_model::ids::derive_id(
            &notice.workflow_id,
            &format!("file-notify/{}", notice.status),
        );
        self.bus
            .publish(
                &sluice_bus::subjects::notify(&self.config.topic),
                &id,
                body.into(),
                async_nats::HeaderMap::new(),
            )
            .await
            .map_err(|e| retryable("notify", e))?;
        Ok(())
    }

    /// Puts the failed run in the dead-letter queue (`dlq.files.<bucket>`,
    /// its id the workflow id, its payload the notification that started
    /// it, so a redrive starts the pipeline again) and marks the file
    /// `dead_lettered` with the step, row and reason.
    #[activity(name = "file.dead_letter")]
    pub async fn dead_letter(
        self: Arc<Self>,
        _ctx: ActivityContext,
        failed: Failed,
    ) -> Result<(), ActivityError> {
        let payload = Bytes::from(
            serde_json::to_vec(&failed.notification).map_err(|e| retryable("dead_letter", e))?,
        );
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(sluice_bus::headers::FILE_ID, failed.file_id.as_str());
        headers.insert(sluice_bus::headers::FILE_STEP, failed.step.as_str());
        headers.insert(
            sluice_bus::headers::WORKFLOW_ID,
            failed.workflow_id.as_str(),
        );
        let reason = match failed.row {
            Some(row) => format!("{} failed at row {row}: {}", failed.step, failed.reason),
            None => format!("{} failed: {}", failed.step, failed.reason),
        };
        let subject = sluice_bus::subjects::files(&failed.bucket);
        self.bus
            .dead_letter_to(
                &sluice_bus::subjects::dlq_files(&failed.bucket),
                &sluice_bus::dlq::Failure {
                    subject: &subject,
                    msg_id: &failed.workflow_id,
                    payload: &payload,
                    headers: Some(&headers),
                    reason: &reason,
                    attempts: failed.attempts,
                    terminal: failed.terminal,
                    accepted_at: time::OffsetDateTime::now_utc(),
                    // One dead letter per run.
                    source_stream: &failed.workflow_id,
                    source_seq: 0,
                    last_response: None,
                },
            )
            .await
            .map_err(|e| retryable("dead_letter", e))?;
        self.store
            .update_file(&failed.file_id, |r| {
                if r.workflow_id.as_deref() != Some(failed.workflow_id.as_str()) {
                    return false;
                }
                r.status = FileStatus::DeadLettered;
                r.error = Some(FileError {
                    step: failed.step.clone(),
                    reason: failed.reason.clone(),
                    row: failed.row,
                    attempts: failed.attempts,
                });
                true
            })
            .await
            .map_err(|e| retryable("dead_letter", e))?;
        metrics::counter!("sluice.files.dead_lettered", "step" => failed.step.clone()).increment(1);
        tracing::warn!(file_id = %failed.file_id, workflow_id = %failed.workflow_id,
            step = %failed.step, reason = %reason, "file dead-lettered");
        Ok(())
    }

    /// Marks the file `failed` when its run ended without a dead letter
    /// (it was cancelled).
    #[activity(name = "file.end")]
    pub async fn end(
        self: Arc<Self>,
        _ctx: ActivityContext,
        ended: Ended,
    ) -> Result<(), ActivityError> {
        self.store
            .update_file(&ended.file_id, |r| {
                if r.workflow_id.as_deref() != Some(ended.workflow_id.as_str())
                    || r.status != FileStatus::Processing
                {
                    return false;
                }
                r.status = FileStatus::Failed;
                r.error = Some(FileError {
                    step: "workflow".into(),
                    reason: ended.reason.clone(),
                    row: None,
                    attempts: 0,
                });
                true
            })
            .await
            .map_err(|e| retryable("end", e))?;
        Ok(())
    }
}
