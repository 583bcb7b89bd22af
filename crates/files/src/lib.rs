//! Files, sluice's S3 triggers: the object store spoken through the S3
//! API (any S3-compatible store), the S3-format event notifications it
//! publishes to JetStream (`files.<bucket>`), the streaming inspection that
//! checks an object without holding it in memory, and the activities of
//! the file pipeline (validate → transform → store → notify), which
//! file-ingest runs as a Temporal activity worker while the orchestrator
//! runs the workflow (decision 0015).
//!
//! - `config`: the object store's settings (`SLUICE_S3_*`, `SLUICE_FILES_*`).
//! - `event`: S3 event notifications.
//! - `inspect`: size, SHA-256, sniffed content type, rows and schema
//!   validation, in one pass over the bytes.
//! - `transform`: CSV and JSON lines to normalised JSON lines.
//! - `activities`: the pipeline's activities.
//! - `pipeline`: what the workflow and its activities exchange.
//! - `temporal`: the Temporal client both sides use.

#![forbid(unsafe_code)]

pub mod activities;
pub mod config;
pub mod event;
pub mod inspect;
pub mod pipeline;
pub mod temporal;
pub mod transform;

pub use config::FilesConfig;
