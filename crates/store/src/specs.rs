//! Tables of named definitions: a `name` key, the definition as an opaque
//! blob (its owner's protobuf encoding) and the creation time. Sluice
//! queues and topics are kept this way; what they hold lives in JetStream.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::{applied, get_s, now_rfc3339, s, Item, Store, StoreError};

/// A stored definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecRecord {
    /// Its name.
    pub name: String,
    /// Its definition's encoding.
    pub spec: Vec<u8>,
    /// RFC 3339.
    pub created_at: String,
}

fn record(item: &Item) -> Option<SpecRecord> {
    Some(SpecRecord {
        name: get_s(item, "name")?,
        spec: item.get("spec")?.as_b().ok()?.as_ref().to_vec(),
        created_at: get_s(item, "created_at").unwrap_or_default(),
    })
}

impl Store {
    /// Reads the definition `name` from `table`.
    pub(crate) async fn spec(
        &self,
        table: &str,
        name: &str,
    ) -> Result<Option<SpecRecord>, StoreError> {
        match self.get(table, "name", name).await? {
            None => Ok(None),
            Some(item) => record(&item).map(Some).ok_or_else(|| StoreError::Corrupt {
                table: table.to_string(),
                reason: format!("{name} lacks its spec"),
            }),
        }
    }

    /// Creates or replaces a definition (keeping its creation time).
    /// Returns the record and whether it was created.
    pub(crate) async fn put_spec(
        &self,
        table: &str,
        name: &str,
        spec: Vec<u8>,
    ) -> Result<(SpecRecord, bool), StoreError> {
        let existing = self.spec(table, name).await?;
        let created_at = existing
            .as_ref()
            .map(|q| q.created_at.clone())
            .unwrap_or_else(now_rfc3339);
        self.client
            .put_item()
            .table_name(table)
            .item("name", s(name))
            .item("spec", AttributeValue::B(Blob::new(spec.clone())))
            .item("created_at", s(&created_at))
            .send()
            .await
            .map_err(crate::classify)?;
        Ok((
            SpecRecord {
                name: name.to_string(),
                spec,
                created_at,
            },
            existing.is_none(),
        ))
    }

    /// Every definition in `table`, by name.
    pub(crate) async fn specs(&self, table: &str) -> Result<Vec<SpecRecord>, StoreError> {
        let mut out: Vec<SpecRecord> = self
            .scan_all(table)
            .await?
            .iter()
            .filter_map(record)
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Deletes a definition. Returns `false` when there was none.
    pub(crate) async fn delete_spec(&self, table: &str, name: &str) -> Result<bool, StoreError> {
        applied(
            self.client
                .delete_item()
                .table_name(table)
                .key("name", s(name))
                .condition_expression("attribute_exists(#n)")
                .expression_attribute_names("#n", "name")
                .send()
                .await,
        )
    }
}
