//! `sluice-orchestrator`: config, telemetry, listener, then [`sluice_orchestrator::run`] until SIGTERM.

#[tokio::main]
async fn main() {
    sluice_runtime::main_with(
        "orchestrator",
        sluice_orchestrator::Config::from_env,
        sluice_orchestrator::run,
        sluice_files::temporal::trace_ids,
    )
    .await
}
