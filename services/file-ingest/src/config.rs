//! file-ingest's configuration, from `SLUICE_*` environment variables.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use sluice_config::{serialize_duration, ConfigError, Env};
use sluice_files::FilesConfig;
use sluice_runtime::Common;

/// Everything file-ingest reads at start.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// `SLUICE_FILE_INGEST_LISTEN`: admin endpoints. Default 127.0.0.1:8085.
    pub listen: SocketAddr,
    /// `SLUICE_ORCHESTRATOR_URL`: the orchestrator's Workflows API, where
    /// pipelines are started. Default http://127.0.0.1:9084.
    pub orchestrator_url: String,
    /// `SLUICE_TEMPORAL_URL`: Temporal's frontend (the activity worker
    /// polls it). Default http://127.0.0.1:7233.
    pub temporal_url: String,
    /// `SLUICE_TEMPORAL_NAMESPACE`: default `default`.
    pub namespace: String,
    /// `SLUICE_FILES_NOTIFY_ARN`: the object store's notification target
    /// for the upload bucket (for MinIO, `arn:minio:sqs::<ID>:nats` of its
    /// `MINIO_NOTIFY_NATS_*_<ID>` settings). When set, file-ingest creates
    /// both buckets and points the upload bucket's notifications of
    /// created objects at it; when empty, the buckets and their
    /// notifications are taken to be set up already. Default
    /// `arn:minio:sqs::SLUICE:nats`.
    pub notify_arn: String,
    /// `SLUICE_FILE_INGEST_CONCURRENCY`: notifications handled at once. Default 16.
    pub concurrency: usize,
    /// `SLUICE_FILE_INGEST_ACTIVITIES`: pipeline activities run at once
    /// by this replica. Default 4.
    pub activities: usize,
    /// `SLUICE_GRPC_TIMEOUT`: deadline of a call to the orchestrator. Default 10s.
    #[serde(serialize_with = "serialize_duration")]
    pub grpc_timeout: Duration,
    /// `SLUICE_FILE_INGEST_SHUTDOWN_TIMEOUT`: how long running activities
    /// may finish at shutdown. Default 20s.
    #[serde(serialize_with = "serialize_duration")]
    pub shutdown_timeout: Duration,
    /// The object store and the pipeline.
    pub files: FilesConfig,
    /// NATS, the store, queue limits and telemetry.
    #[serde(flatten)]
    pub common: Common,
}

fn check_url(var: &str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(ConfigError::new(var, "must be an http:// or https:// URL"))
    }
}

impl Config {
    /// Reads the configuration.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let orchestrator_url = env.string("SLUICE_ORCHESTRATOR_URL", "http://127.0.0.1:9084");
        check_url("SLUICE_ORCHESTRATOR_URL", &orchestrator_url)?;
        let temporal_url = env.string("SLUICE_TEMPORAL_URL", "http://127.0.0.1:7233");
        check_url("SLUICE_TEMPORAL_URL", &temporal_url)?;
        Ok(Self {
            listen: env.parse(
                "SLUICE_FILE_INGEST_LISTEN",
                SocketAddr::from(([127, 0, 0, 1], 8085)),
            )?,
            orchestrator_url,
            temporal_url,
            namespace: env.string("SLUICE_TEMPORAL_NAMESPACE", "default"),
            notify_arn: env.string("SLUICE_FILES_NOTIFY_ARN", "arn:minio:sqs::SLUICE:nats"),
            concurrency: env.number("SLUICE_FILE_INGEST_CONCURRENCY", 16, 1..=1024)?,
            activities: env.number("SLUICE_FILE_INGEST_ACTIVITIES", 4, 1..=256)?,
            grpc_timeout: env.duration("SLUICE_GRPC_TIMEOUT", Duration::from_secs(10))?,
            shutdown_timeout: env.duration(
                "SLUICE_FILE_INGEST_SHUTDOWN_TIMEOUT",
                Duration::from_secs(20),
            )?,
            files: FilesConfig::from_env(env)?,
            common: Common::from_env(env)?,
        })
    }
}

impl sluice_runtime::ServiceConfig for Config {
    fn telemetry(&self) -> &sluice_config::TelemetryConfig {
        &self.common.telemetry
    }
    fn listen(&self) -> (SocketAddr, &'static str) {
        (self.listen, "SLUICE_FILE_INGEST_LISTEN")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_work_for_make_up_and_bad_values_name_their_variable() {
        let c = Config::from_env(&Env::from_pairs(Vec::<(String, String)>::new())).unwrap();
        assert_eq!(c.listen.port(), 8085);
        assert_eq!(c.files.task_queue, "sluice-files");
        for (var, value) in [
            ("SLUICE_ORCHESTRATOR_URL", "localhost:9084"),
            ("SLUICE_FILE_INGEST_CONCURRENCY", "0"),
            ("SLUICE_FILES_PROCESSED_BUCKET", "_x"),
        ] {
            let e = Config::from_env(&Env::from_pairs([(var, value)])).unwrap_err();
            assert!(e.to_string().contains(var), "{var}: {e}");
        }
    }
}
