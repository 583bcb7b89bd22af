//! `sluice-processor`: config, telemetry, listener, then [`sluice_processor::run`] until SIGTERM.

#[tokio::main]
async fn main() {
    sluice_runtime::main(
        "processor",
        sluice_processor::Config::from_env,
        sluice_processor::run,
    )
    .await
}
