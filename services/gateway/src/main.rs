//! `sluice-gateway`: reads config, starts telemetry, binds, serves until SIGTERM.

use sluice_gateway::{run, Config};

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--openapi") {
        println!(
            "{}",
            serde_json::to_string_pretty(&sluice_gateway::app::openapi()).unwrap_or_default()
        );
        return;
    }
    let config = sluice_config::load_or_exit("gateway", Config::from_env);
    let telemetry = match sluice_telemetry::init("gateway", &config.telemetry) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("sluice-gateway: {e}");
            std::process::exit(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "sluice-gateway: cannot listen on {} (SLUICE_GATEWAY_LISTEN): {e}",
                config.listen
            );
            std::process::exit(2);
        }
    };
    tracing::info!(listen = %config.listen, "gateway starting");
    let shutdown = sluice_telemetry::shutdown_on_signals();
    let code = match run(config, listener, shutdown).await {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "gateway stopped");
            1
        }
    };
    telemetry.shutdown(std::time::Duration::from_secs(5)).await;
    std::process::exit(code);
}
