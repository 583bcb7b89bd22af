//! The processor's admin endpoints: `/healthz`, `/readyz`, `/metrics`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::Shared;

/// The admin router.
pub fn app(state: Shared) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(|| async { sluice_telemetry::metrics_handle().render() }),
        )
        .with_state(state)
}

async fn readyz(State(state): State<Shared>) -> (StatusCode, String) {
    if !state.bus.is_connected() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "nats: not connected".into(),
        );
    }
    if let Err(e) = state.store.ping().await {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}"));
    }
    (StatusCode::OK, "ready".into())
}
