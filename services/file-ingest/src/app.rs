//! file-ingest's admin endpoints: `/healthz`, `/readyz`, `/metrics`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::Shared;

/// The admin router.
pub fn app(state: Shared) -> Router {
    sluice_runtime::admin(get(readyz)).with_state(state)
}

/// Ready when NATS, the store, the object store and Temporal answer.
async fn readyz(State(state): State<Shared>) -> (StatusCode, String) {
    let (code, text) = sluice_runtime::readiness(&state.bus, &state.store).await;
    if code != StatusCode::OK {
        return (code, text);
    }
    if let Err(e) = state
        .s3
        .head_bucket()
        .bucket(&state.config.files.bucket)
        .send()
        .await
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the object store does not answer for bucket {}: {}",
                state.config.files.bucket,
                sluice_files::activities::error_chain(&e)
            ),
        );
    }
    match state.temporal.describe_namespace().await {
        Ok(()) => (StatusCode::OK, "ready".into()),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Temporal does not answer: {e}"),
        ),
    }
}
