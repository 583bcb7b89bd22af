//! How processing fails: transient (retry with backoff) or permanent (dead-letter now).

use sluice_bus::BusError;
use sluice_store::StoreError;

/// A processing failure.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// May succeed later (store or bus unavailable): retried with backoff,
    /// dead-lettered when the deliveries run out.
    #[error("{0}")]
    Transient(String),
    /// Can never succeed (undecodable, unknown kind): dead-lettered at once.
    #[error("{0}")]
    Permanent(String),
}

impl From<StoreError> for ProcessError {
    fn from(e: StoreError) -> Self {
        if e.is_transient() {
            Self::Transient(e.to_string())
        } else {
            Self::Permanent(e.to_string())
        }
    }
}

impl From<BusError> for ProcessError {
    fn from(e: BusError) -> Self {
        Self::Transient(e.to_string())
    }
}
