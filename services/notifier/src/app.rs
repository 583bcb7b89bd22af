//! The notifier's admin endpoints: `/healthz`, `/readyz`, `/metrics`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::Shared;

/// The admin router.
pub fn app(state: Shared) -> Router {
    sluice_runtime::admin(get(readyz)).with_state(state)
}

/// Ready when NATS and the store answer.
async fn readyz(State(state): State<Shared>) -> (StatusCode, String) {
    sluice_runtime::readiness(&state.bus, &state.store).await
}
