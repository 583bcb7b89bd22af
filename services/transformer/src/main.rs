//! `sluice-transformer`: config, telemetry, listener, then [`sluice_transformer::run`] until SIGTERM.

#[tokio::main]
async fn main() {
    sluice_runtime::main(
        "transformer",
        sluice_transformer::Config::from_env,
        sluice_transformer::run,
    )
    .await
}
