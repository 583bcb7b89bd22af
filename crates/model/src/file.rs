//! Files: objects uploaded to the object store and the pipeline that
//! processes each (validate → transform → store → notify).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a file is in its life.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// Its upload URL was handed out; nothing is uploaded yet.
    Pending,
    /// Uploaded; its pipeline runs.
    Processing,
    /// Validated, transformed and stored.
    Processed,
    /// Its pipeline ended without a dead letter (it was cancelled or
    /// terminated).
    Failed,
    /// Its pipeline failed and the file waits in the DLQ for a redrive.
    DeadLettered,
}

impl FileStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Processing => "processing",
            Self::Processed => "processed",
            Self::Failed => "failed",
            Self::DeadLettered => "dead_lettered",
        }
    }
}

/// Why a file's pipeline failed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct FileError {
    /// The step: `validate`, `transform`, `store` or `notify`.
    pub step: String,
    /// What went wrong.
    pub reason: String,
    /// For a validation failure, the 1-based data row (the header of a
    /// CSV file is not counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<u64>,
    /// Attempts made at the step.
    pub attempts: u32,
}

/// A file, as stored and as `GET /v1/files/{file_id}` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct FileRecord {
    /// Its id.
    pub file_id: String,
    /// The name given at creation.
    pub name: String,
    /// Who created it (the principal), notified when it is processed.
    pub owner: String,
    /// The bucket holding it.
    pub bucket: String,
    /// Its object key.
    pub key: String,
    /// The content type declared at creation.
    pub declared_content_type: String,
    /// The JSON Schema rows are validated against, if one was declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<serde_json::Value>,
    /// Where it is.
    pub status: FileStatus,
    /// Bytes, once inspected.
    #[serde(default)]
    pub size: Option<u64>,
    /// Hex SHA-256 of the content, once inspected.
    #[serde(default)]
    pub sha256: Option<String>,
    /// The content type sniffed from the bytes, once inspected.
    #[serde(default)]
    pub content_type: Option<String>,
    /// Data rows of a CSV or JSON-lines file, once inspected.
    #[serde(default)]
    pub rows: Option<u64>,
    /// The pipeline workflow of its latest upload (or redrive).
    #[serde(default)]
    pub workflow_id: Option<String>,
    /// Where the transformed copy is (`bucket/key`), once processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_object: Option<String>,
    /// Why its pipeline failed.
    #[serde(default)]
    pub error: Option<FileError>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// When the upload URL stops working (RFC 3339).
    pub upload_expires_at: String,
    /// The W3C `traceparent` of the request that registered it: its
    /// pipeline continues that trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}
