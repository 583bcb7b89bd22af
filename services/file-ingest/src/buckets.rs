//! The buckets: the upload bucket with its notifications of created
//! objects pointed at the object store's JetStream target, and the
//! processed bucket. Done at start when `SLUICE_FILES_NOTIFY_ARN` is set
//! (idempotent: what exists is kept).

use std::time::Duration;

use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
use sluice_files::activities::error_chain;
use tokio_util::sync::CancellationToken;

use crate::State;

/// Creates `bucket` unless it exists.
pub async fn create(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<(), String> {
    match s3.create_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error().is_some_and(|se| {
                se.is_bucket_already_owned_by_you() || se.is_bucket_already_exists()
            }) =>
        {
            Ok(())
        }
        Err(e) => Err(format!("creating bucket {bucket}: {}", error_chain(&e))),
    }
}

/// Sets the buckets up once.
pub async fn ensure(state: &State) -> Result<(), String> {
    let files = &state.config.files;
    if state.config.notify_arn.is_empty() {
        return Ok(());
    }
    create(&state.s3, &files.bucket).await?;
    create(&state.s3, &files.processed_bucket).await?;
    let queue = QueueConfiguration::builder()
        .id("sluice-file-ingest")
        .queue_arn(&state.config.notify_arn)
        .events(Event::from("s3:ObjectCreated:*"))
        .build()
        .map_err(|e| e.to_string())?;
    state
        .s3
        .put_bucket_notification_configuration()
        .bucket(&files.bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(queue)
                .build(),
        )
        .send()
        .await
        .map_err(|e| {
            format!(
                "pointing the notifications of bucket {} at {}: {}",
                files.bucket,
                state.config.notify_arn,
                error_chain(&e)
            )
        })?;
    tracing::info!(bucket = %files.bucket, target = %state.config.notify_arn,
        "the bucket's created objects are notified");
    Ok(())
}

/// [`ensure`], retried every 2 seconds until it succeeds (`true`) or
/// `stop` fires (`false`).
pub async fn ensure_retrying(state: &State, stop: &CancellationToken) -> bool {
    loop {
        match ensure(state).await {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(error = %e, "the object store is not set up yet; will retry");
                tokio::select! {
                    _ = stop.cancelled() => return false,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    }
}
