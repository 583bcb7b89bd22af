//! `queues`: the sluice queues that exist, keyed by `name`, with their
//! settings as an opaque blob (the transformer's protobuf encoding). The
//! messages themselves live in JetStream.

use crate::specs::SpecRecord;
use crate::{Store, StoreError};

/// A stored queue.
pub type QueueRecord = SpecRecord;

impl Store {
    /// Reads a queue.
    pub async fn queue(&self, name: &str) -> Result<Option<QueueRecord>, StoreError> {
        self.spec(&self.tables.queues, name).await
    }

    /// Creates or replaces a queue (keeping its creation time). Returns the
    /// record and whether it was created.
    pub async fn put_queue(
        &self,
        name: &str,
        spec: Vec<u8>,
    ) -> Result<(QueueRecord, bool), StoreError> {
        self.put_spec(&self.tables.queues, name, spec).await
    }

    /// Every queue, by name.
    pub async fn queues(&self) -> Result<Vec<QueueRecord>, StoreError> {
        self.specs(&self.tables.queues).await
    }

    /// Deletes a queue's record. Returns `false` when there was none.
    pub async fn delete_queue(&self, name: &str) -> Result<bool, StoreError> {
        self.delete_spec(&self.tables.queues, name).await
    }
}
