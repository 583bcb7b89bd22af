//! `sluice-processor`: reads config, starts telemetry, binds, runs until SIGTERM.

use sluice_processor::{run, Config};

#[tokio::main]
async fn main() {
    let config = sluice_config::load_or_exit("processor", Config::from_env);
    let telemetry = match sluice_telemetry::init("processor", &config.telemetry) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("sluice-processor: {e}");
            std::process::exit(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "sluice-processor: cannot listen on {} (SLUICE_PROCESSOR_LISTEN): {e}",
                config.listen
            );
            std::process::exit(2);
        }
    };
    tracing::info!(listen = %config.listen, "processor starting");
    let shutdown = sluice_telemetry::shutdown_on_signals();
    let code = match run(config, listener, shutdown).await {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "processor stopped");
            1
        }
    };
    telemetry.shutdown(std::time::Duration::from_secs(5)).await;
    std::process::exit(code);
}
