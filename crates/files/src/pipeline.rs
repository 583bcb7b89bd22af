//! What the file pipeline's workflow (in the orchestrator) and its
//! activities (in file-ingest) exchange. Changing these shapes changes
//! recorded histories: keep fields additive, with defaults.

use serde::{Deserialize, Serialize};

use crate::inspect::Inspection;

/// The workflow type.
pub const TYPE: &str = "file-pipeline";

/// The steps, as dead letters and file errors name them.
pub mod step {
    /// Inspection and validation.
    pub const VALIDATE: &str = "validate";
    /// The transformed copy.
    pub const TRANSFORM: &str = "transform";
    /// The file's record.
    pub const STORE: &str = "store";
}

/// How file-ingest (or a caller of `POST /v1/workflows/file-pipeline`)
/// starts a pipeline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Start {
    /// The file.
    pub file_id: String,
    /// Its bucket.
    pub bucket: String,
    /// Its key.
    pub key: String,
    /// The S3 notification of this version of the object (one record):
    /// dead-lettered as it is, so a redrive starts the pipeline again.
    #[serde(default)]
    pub notification: serde_json::Value,
}

/// The workflow's input: the start, plus the orchestrator's settings
/// (so the workflow reads nothing else).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Input {
    /// The workflow's own id.
    pub workflow_id: String,
    /// What to process.
    #[serde(flatten)]
    pub start: Start,
    /// The task queue of the file activities.
    pub task_queue: String,
    /// Attempts at each step.
    pub max_attempts: u32,
    /// Milliseconds before a step's second attempt (doubling after).
    pub retry_initial_ms: u64,
}

/// One object of one run: what validate and transform take.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Object {
    /// The run.
    pub workflow_id: String,
    /// The file.
    pub file_id: String,
    /// Its bucket.
    pub bucket: String,
    /// Its key.
    pub key: String,
    /// The sniffed content type (for transform).
    #[serde(default)]
    pub content_type: String,
}

/// What store takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Processed {
    /// The run.
    pub workflow_id: String,
    /// The file.
    pub file_id: String,
    /// What validate found.
    pub inspection: Inspection,
    /// The transformed copy (`bucket/key`).
    pub processed_object: String,
}

/// What notify takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Notice {
    /// The run.
    pub workflow_id: String,
    /// The file.
    pub file_id: String,
    /// `processed` or `dead_lettered`.
    pub status: String,
    /// For a failure: why.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A failed run, for the dead-letter queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failed {
    /// The run.
    pub workflow_id: String,
    /// The file.
    pub file_id: String,
    /// Its bucket.
    pub bucket: String,
    /// The notification that started the run.
    pub notification: serde_json::Value,
    /// The step.
    pub step: String,
    /// Why.
    pub reason: String,
    /// The data row, for a validation failure.
    #[serde(default)]
    pub row: Option<u64>,
    /// Attempts made at the step.
    pub attempts: u32,
    /// Whether retrying cannot help (invalid content).
    pub terminal: bool,
}

/// A run that ended without a dead letter (cancelled).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ended {
    /// The run.
    pub workflow_id: String,
    /// The file.
    pub file_id: String,
    /// Why.
    pub reason: String,
}

/// What a completed run returns.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Outcome {
    /// The file.
    pub file_id: String,
    /// Bytes.
    pub size: u64,
    /// Hex SHA-256.
    pub sha256: String,
    /// Sniffed content type.
    pub content_type: String,
    /// Data rows, for CSV and JSON lines.
    pub rows: Option<u64>,
    /// The transformed copy.
    pub processed_object: String,
}
