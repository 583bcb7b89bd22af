//! `sluice-notifier`: config, telemetry, listener, then [`sluice_notifier::run`] until SIGTERM.

#[tokio::main]
async fn main() {
    sluice_runtime::main(
        "notifier",
        sluice_notifier::Config::from_env,
        sluice_notifier::run,
    )
    .await
}
