//! `topics`: the topics that exist, keyed by `name`, with their attributes
//! as an opaque blob (the notifier's protobuf encoding). Published messages
//! live in JetStream.

use crate::specs::SpecRecord;
use crate::{Store, StoreError};

/// A stored topic.
pub type TopicRecord = SpecRecord;

impl Store {
    /// Reads a topic.
    pub async fn topic(&self, name: &str) -> Result<Option<TopicRecord>, StoreError> {
        self.spec(&self.tables.topics, name).await
    }

    /// Creates or replaces a topic (keeping its creation time). Returns the
    /// record and whether it was created.
    pub async fn put_topic(
        &self,
        name: &str,
        spec: Vec<u8>,
    ) -> Result<(TopicRecord, bool), StoreError> {
        self.put_spec(&self.tables.topics, name, spec).await
    }

    /// Every topic, by name.
    pub async fn topics(&self) -> Result<Vec<TopicRecord>, StoreError> {
        self.specs(&self.tables.topics).await
    }

    /// Deletes a topic's record. Returns `false` when there was none.
    pub async fn delete_topic(&self, name: &str) -> Result<bool, StoreError> {
        self.delete_spec(&self.tables.topics, name).await
    }
}
