//! `/healthz` (the process is alive), `/readyz` (NATS and the store answer), `/metrics`.

use axum::extract::State;
use axum::http::StatusCode;

use crate::Shared;

/// Liveness.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: NATS connected and the store answering.
pub async fn readyz(State(state): State<Shared>) -> (StatusCode, String) {
    sluice_runtime::readiness(&state.bus, &state.store).await
}

/// Prometheus metrics.
pub async fn metrics() -> String {
    sluice_telemetry::metrics_handle().render()
}
