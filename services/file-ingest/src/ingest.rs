//! The notifications: each created object gets a file record (when
//! nobody registered it through `POST /v1/files`) and its pipeline, with
//! the workflow id `file-<file_id>-<version>` (plus `-r<n>` for the n-th
//! dead letter redriven), so a notification delivered twice starts one
//! pipeline. A notification is acknowledged once every object in it has
//! its pipeline; while the orchestrator is down it waits in JetStream.
//! One that is not a notification is dead-lettered.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{AckKind, Message};
use sluice_bus::work::{keep_pulling, Pull};
use sluice_files::event::{self, Created};
use sluice_files::pipeline;
use sluice_model::file::{FileRecord, FileStatus};
use sluice_proto::v1;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tracing::Instrument as _;

use crate::{Shared, State};

/// How long a notification may be held before JetStream redelivers it.
const ACK_WAIT: Duration = Duration::from_secs(60);

/// Consumes notifications until `shutdown`.
pub async fn run(state: Shared, shutdown: CancellationToken) {
    let concurrency = state.config.concurrency;
    let declare = || {
        let state = state.clone();
        async move {
            let names = state.bus.names();
            state
                .bus
                .declare_consumer(
                    sluice_bus::streams::file_ingest_consumer(
                        names,
                        ACK_WAIT,
                        i64::try_from(concurrency * 4).unwrap_or(i64::MAX),
                    ),
                    names.files(),
                    "file-ingest's consumer",
                )
                .await
        }
    };
    let pull = Pull {
        batch: concurrency,
        what: "object store notifications",
    };
    let slots = Arc::new(Semaphore::new(concurrency));
    let tracker = tokio_util::task::TaskTracker::new();
    keep_pulling(declare, pull, slots, None, &shutdown, |msg, permit| {
        let state = state.clone();
        tracker.spawn(async move {
            handle(&state, msg).await;
            drop(permit);
        });
    })
    .await;
    tracker.close();
    tracker.wait().await;
}

/// Why an object's pipeline did not start.
enum NotStarted {
    /// Try again later.
    Retry(String),
    /// It never will: dead-letter the notification.
    Never(String),
}

async fn handle(state: &State, msg: Message) {
    let subject = state.bus.names().unprefix(&msg.subject).to_string();
    let redriven = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(sluice_bus::headers::REDRIVEN_FROM))
        .map(|v| v.as_str().to_string());
    let info = msg.info().ok().map(|i| (i.stream_sequence, i.delivered));
    let (seq, delivered) = info.unwrap_or((0, 1));
    let outcome = match event::parse(&msg.payload) {
        Err(reason) => Err(NotStarted::Never(reason)),
        Ok(created) => {
            let mut result = Ok(());
            for c in &created {
                if let Err(e) = start(state, c, redriven.as_deref()).await {
                    result = Err(e);
                    break;
                }
            }
            result
        }
    };
    match outcome {
        Ok(()) => {
            metrics::counter!("sluice.files.notifications", "outcome" => "started").increment(1);
            if let Err(e) = msg.double_ack().await {
                tracing::warn!(error = %e, "a notification's ack was lost; it comes again and starts nothing new");
            }
        }
        Err(NotStarted::Retry(reason)) => {
            metrics::counter!("sluice.files.notifications", "outcome" => "retried").increment(1);
            let delay = state
                .config
                .common
                .queue
                .retry_delay(u32::try_from(delivered).unwrap_or(u32::MAX));
            tracing::warn!(%reason, ?delay, "a pipeline could not be started; the notification waits");
            let _ = msg.ack_with(AckKind::Nak(Some(delay))).await;
        }
        Err(NotStarted::Never(reason)) => {
            metrics::counter!("sluice.files.notifications", "outcome" => "dead_lettered")
                .increment(1);
            let bucket = subject
                .strip_prefix("files.")
                .unwrap_or("unknown")
                .to_string();
            let msg_id = format!("notification:{seq}");
            let stream = state.bus.names().files();
            let failure = sluice_bus::dlq::Failure {
                subject: &subject,
                msg_id: &msg_id,
                payload: &msg.payload,
                headers: msg.headers.as_ref(),
                reason: &reason,
                attempts: 1,
                terminal: true,
                accepted_at: time::OffsetDateTime::now_utc(),
                source_stream: &stream,
                source_seq: seq,
                last_response: None,
            };
            match state
                .bus
                .dead_letter_to(&sluice_bus::subjects::dlq_files(&bucket), &failure)
                .await
            {
                Ok(()) => {
                    tracing::warn!(%reason, "a notification that starts nothing was dead-lettered");
                    let _ = msg.double_ack().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot dead-letter a notification; it waits");
                    let _ = msg
                        .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                        .await;
                }
            }
        }
    }
}

/// The workflow id of one object version's pipeline.
pub fn workflow_id(file_id: &str, version: &str, redriven: Option<&str>) -> String {
    let safe = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    };
    let version = if safe(version) {
        version.to_string()
    } else {
        sluice_model::ids::derive_id(version, "version")
    };
    match redriven {
        Some(n) if safe(n) => format!("file-{file_id}-{version}-r{n}"),
        Some(n) => format!(
            "file-{file_id}-{version}-r{}",
            sluice_model::ids::derive_id(n, "redrive")
        ),
        None => format!("file-{file_id}-{version}"),
    }
}

/// The file an object belongs to: the one registered for its key (keys
/// handed out are `<file_id>/<name>`), with the `traceparent` of the
/// request that registered it, else a record made now for an object
/// uploaded by other means.
async fn file_of(state: &State, c: &Created) -> Result<(String, Option<String>), NotStarted> {
    let retry = |e: sluice_store::StoreError| NotStarted::Retry(format!("the store: {e}"));
    if let Some((candidate, _)) = c.key.split_once('/') {
        if sluice_model::ids::check_client_id(candidate).is_ok() {
            if let Some(r) = state.store.file(candidate).await.map_err(retry)? {
                if r.bucket == c.bucket && r.key == c.key {
                    return Ok((r.file_id, r.traceparent));
                }
            }
        }
    }
    let file_id = sluice_model::ids::derive_id(&format!("{}/{}", c.bucket, c.key), "file");
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let record = FileRecord {
        file_id: file_id.clone(),
        name: c.key.rsplit('/').next().unwrap_or(&c.key).to_string(),
        owner: String::new(),
        bucket: c.bucket.clone(),
        key: c.key.clone(),
        declared_content_type: "application/octet-stream".into(),
        schema: None,
        status: FileStatus::Pending,
        size: None,
        sha256: None,
        content_type: None,
        rows: None,
        workflow_id: None,
        processed_object: None,
        error: None,
        created_at: now.clone(),
        updated_at: now.clone(),
        upload_expires_at: now,
        traceparent: None,
    };
    state.store.create_file(&record).await.map_err(retry)?;
    Ok((file_id, None))
}

async fn start(state: &State, c: &Created, redriven: Option<&str>) -> Result<(), NotStarted> {
    let (file_id, traceparent) = file_of(state, c).await?;
    // The object store's notification carries no trace: an upload through
    // a URL from `POST /v1/files` continues that request's trace.
    let span = tracing::info_span!(
        "sluice.file_ingest.object",
        otel.kind = "consumer",
        file_id = %file_id,
        key = %c.key,
        trace_id = tracing::field::Empty,
    );
    if let Some(tp) = &traceparent {
        sluice_telemetry::set_parent(&span, sluice_telemetry::traceparent_context(tp));
    }
    span.record("trace_id", sluice_telemetry::trace_id_of(&span));
    start_pipeline(state, c, redriven, file_id)
        .instrument(span)
        .await
}

async fn start_pipeline(
    state: &State,
    c: &Created,
    redriven: Option<&str>,
    file_id: String,
) -> Result<(), NotStarted> {
    let id = workflow_id(&file_id, c.version(), redriven);
    let input = pipeline::Start {
        file_id: file_id.clone(),
        bucket: c.bucket.clone(),
        key: c.key.clone(),
        notification: c.notification(),
    };
    let mut req = tonic::Request::new(v1::StartWorkflowRequest {
        workflow_type: pipeline::TYPE.into(),
        workflow_id: id.clone(),
        input: serde_json::to_string(&input).unwrap_or_default(),
        origin: format!("files/{}", c.bucket),
    });
    req.set_timeout(state.config.grpc_timeout);
    sluice_telemetry::inject_current(|k, v| {
        if let (Ok(key), Ok(value)) = (
            k.parse::<tonic::metadata::MetadataKey<tonic::metadata::Ascii>>(),
            v.parse(),
        ) {
            req.metadata_mut().insert(key, value);
        }
    });
    match state.workflows.clone().start_workflow(req).await {
        Ok(_) => {
            tracing::info!(%file_id, workflow_id = %id, key = %c.key, "file pipeline started");
            Ok(())
        }
        Err(s) if s.code() == Code::AlreadyExists => Ok(()),
        Err(s) => {
            let reason = format!("the orchestrator answered {:?}: {}", s.code(), s.message());
            match s.code() {
                Code::InvalidArgument | Code::NotFound | Code::OutOfRange => {
                    Err(NotStarted::Never(reason))
                }
                _ => Err(NotStarted::Retry(reason)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::workflow_id;

    #[test]
    fn workflow_ids_follow_the_version_and_the_redrive() {
        assert_eq!(workflow_id("f1", "18EA", None), "file-f1-18EA");
        assert_eq!(workflow_id("f1", "18EA", Some("7")), "file-f1-18EA-r7");
        let odd = workflow_id("f1", "a/b c", None);
        assert!(odd.starts_with("file-f1-") && !odd.contains(' '), "{odd}");
        assert_ne!(
            workflow_id("f1", "a/b c", None),
            workflow_id("f1", "a/b d", None)
        );
    }
}
