//! `sluice-file-ingest`: config, telemetry, listener, then [`sluice_file_ingest::run`] until SIGTERM.

#[tokio::main]
async fn main() {
    sluice_runtime::main_with(
        "file-ingest",
        sluice_file_ingest::Config::from_env,
        sluice_file_ingest::run,
        sluice_files::temporal::trace_ids,
    )
    .await
}
