//! The transformer's admin endpoints: `/healthz`, `/readyz`, `/metrics`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::Shared;

/// The admin router.
pub fn app(state: Shared) -> Router {
    sluice_runtime::admin(get(readyz)).with_state(state)
}

/// Ready when NATS and the store answer and the rules have been loaded once.
async fn readyz(State(state): State<Shared>) -> (StatusCode, String) {
    if !state.loaded.load(std::sync::atomic::Ordering::Acquire) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "rules not loaded yet".into(),
        );
    }
    sluice_runtime::readiness(&state.bus, &state.store).await
}
