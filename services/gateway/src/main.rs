//! `sluice-gateway`: config, telemetry, listener, then [`sluice_gateway::run`] until SIGTERM.

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--openapi") {
        let doc = sluice_gateway::app::openapi();
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return;
    }
    sluice_runtime::main(
        "gateway",
        sluice_gateway::Config::from_env,
        sluice_gateway::run,
    )
    .await
}
