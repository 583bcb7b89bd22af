//! The object store's settings, shared by the gateway (presigned upload
//! URLs), file-ingest (notifications, inspection) and the orchestrator.

use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_s3::config::{BehaviorVersion, Region};
use serde::Serialize;
use sluice_config::{serialize_duration, ConfigError, Env};

/// Variables: `SLUICE_S3_*` and `SLUICE_FILES_*`.
#[derive(Debug, Clone, Serialize)]
pub struct FilesConfig {
    /// `SLUICE_S3_ENDPOINT`: the S3 API of the object store, as the
    /// services reach it. Default http://127.0.0.1:9000.
    pub endpoint: String,
    /// `SLUICE_S3_PUBLIC_URL`: the same, as clients reach it (upload URLs
    /// are signed for it). Default: `SLUICE_S3_ENDPOINT`.
    pub public_url: String,
    /// `SLUICE_S3_REGION`: default `us-east-1`.
    pub region: String,
    /// `SLUICE_S3_ACCESS_KEY_ID`: default `sluice` (the local store's).
    pub access_key_id: String,
    /// `SLUICE_S3_SECRET_ACCESS_KEY`: default the local store's.
    #[serde(skip)]
    pub secret_access_key: String,
    /// `SLUICE_FILES_BUCKET`: where uploads go. Default `uploads`.
    pub bucket: String,
    /// `SLUICE_FILES_PROCESSED_BUCKET`: where the pipeline writes
    /// transformed copies. Default `processed`.
    pub processed_bucket: String,
    /// `SLUICE_FILES_UPLOAD_EXPIRY`: how long an upload URL works. Default 15m.
    #[serde(serialize_with = "serialize_duration")]
    pub upload_expiry: Duration,
    /// `SLUICE_FILES_TASK_QUEUE`: the Temporal task queue of the file
    /// activities (file-ingest polls it). Default: `<SLUICE_TEMPORAL_TASK_QUEUE>-files`.
    pub task_queue: String,
    /// `SLUICE_FILES_TOPIC`: the topic owners are notified on (with
    /// attributes `owner`, `file_id`, `status`). Default `file-events`.
    pub topic: String,
    /// `SLUICE_FILES_MAX_ROW_BYTES`: the longest row accepted. Default 1MiB.
    pub max_row_bytes: u64,
    /// `SLUICE_FILES_RETRY_INITIAL`: the delay before a step's second
    /// attempt (doubling after). Default 1s.
    #[serde(serialize_with = "serialize_duration")]
    pub retry_initial: Duration,
    /// `SLUICE_FILES_MAX_ATTEMPTS`: attempts at each step before the file
    /// is dead-lettered. Default 3.
    pub max_attempts: u32,
}

impl FilesConfig {
    /// Reads the variables.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let endpoint = env.string("SLUICE_S3_ENDPOINT", "http://127.0.0.1:9000");
        check_url("SLUICE_S3_ENDPOINT", &endpoint)?;
        let public_url = env
            .opt_string("SLUICE_S3_PUBLIC_URL")
            .unwrap_or_else(|| endpoint.clone());
        check_url("SLUICE_S3_PUBLIC_URL", &public_url)?;
        let bucket = env.string("SLUICE_FILES_BUCKET", "uploads");
        check_bucket("SLUICE_FILES_BUCKET", &bucket)?;
        let processed_bucket = env.string("SLUICE_FILES_PROCESSED_BUCKET", "processed");
        check_bucket("SLUICE_FILES_PROCESSED_BUCKET", &processed_bucket)?;
        let upload_expiry = env.duration("SLUICE_FILES_UPLOAD_EXPIRY", Duration::from_secs(900))?;
        if upload_expiry < Duration::from_secs(1) || upload_expiry > Duration::from_secs(7 * 86_400)
        {
            return Err(ConfigError::new(
                "SLUICE_FILES_UPLOAD_EXPIRY",
                "must be 1s to 7d (S3's limit for presigned URLs)",
            ));
        }
        let workflows_queue = env.string("SLUICE_TEMPORAL_TASK_QUEUE", "sluice");
        let task_queue = env
            .opt_string("SLUICE_FILES_TASK_QUEUE")
            .unwrap_or_else(|| format!("{workflows_queue}-files"));
        let topic = env.string("SLUICE_FILES_TOPIC", "file-events");
        sluice_model::names::check_topic(&topic)
            .map_err(|e| ConfigError::new("SLUICE_FILES_TOPIC", e))?;
        let max_row_bytes = env.bytes("SLUICE_FILES_MAX_ROW_BYTES", 1 << 20)?;
        if !(1024..=64 << 20).contains(&max_row_bytes) {
            return Err(ConfigError::new(
                "SLUICE_FILES_MAX_ROW_BYTES",
                "must be 1KiB to 64MiB",
            ));
        }
        Ok(Self {
            endpoint,
            public_url,
            region: env.string("SLUICE_S3_REGION", "us-east-1"),
            access_key_id: env.string("SLUICE_S3_ACCESS_KEY_ID", "sluice"),
            secret_access_key: env.string("SLUICE_S3_SECRET_ACCESS_KEY", "sluice-local-secret"),
            bucket,
            processed_bucket,
            upload_expiry,
            task_queue,
            topic,
            max_row_bytes,
            retry_initial: env.duration("SLUICE_FILES_RETRY_INITIAL", Duration::from_secs(1))?,
            max_attempts: env.number("SLUICE_FILES_MAX_ATTEMPTS", 3, 1..=100)?,
        })
    }

    /// A client of the store at `SLUICE_S3_ENDPOINT` (path-style, as
    /// S3-compatible stores expect).
    pub fn client(&self) -> aws_sdk_s3::Client {
        self.client_for(&self.endpoint)
    }

    /// A client that signs URLs for `SLUICE_S3_PUBLIC_URL` (no request is
    /// made through it).
    pub fn public_client(&self) -> aws_sdk_s3::Client {
        self.client_for(&self.public_url)
    }

    fn client_for(&self, endpoint: &str) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new(self.region.clone()))
            .credentials_provider(Credentials::new(
                self.access_key_id.clone(),
                self.secret_access_key.clone(),
                None,
                None,
                "sluice",
            ))
            .force_path_style(true)
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .build(),
            )
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }
}

fn check_url(var: &str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(ConfigError::new(var, "must be an http:// or https:// URL"))
    }
}

/// S3's bucket naming rules (3 to 63 lowercase letters, digits, dots and
/// hyphens, starting and ending with a letter or digit).
pub fn check_bucket(var: &str, name: &str) -> Result<(), ConfigError> {
    let ok = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            var,
            "must be a valid bucket name: 3 to 63 lowercase letters, digits, dots and hyphens",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_refusals() {
        let c = FilesConfig::from_env(&Env::from_pairs(Vec::<(String, String)>::new())).unwrap();
        assert_eq!(c.bucket, "uploads");
        assert_eq!(c.task_queue, "sluice-files");
        assert_eq!(c.public_url, c.endpoint);
        for (var, value) in [
            ("SLUICE_FILES_BUCKET", "Uploads"),
            ("SLUICE_FILES_BUCKET", "a"),
            ("SLUICE_S3_ENDPOINT", "localhost:9000"),
            ("SLUICE_FILES_UPLOAD_EXPIRY", "8d"),
            ("SLUICE_FILES_TOPIC", "bad topic"),
        ] {
            let e = FilesConfig::from_env(&Env::from_pairs([(var, value)])).unwrap_err();
            assert!(e.to_string().contains(var), "{e}");
        }
    }
}
