//! `buses`: the custom event buses, keyed by `name`. The `default` bus is
//! not stored: it always exists.

use crate::{applied, classify, get_s, now_rfc3339, s, Item, Store, StoreError};

/// A stored bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusRecord {
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

fn record(item: &Item) -> BusRecord {
    BusRecord {
        name: get_s(item, "name").unwrap_or_default(),
        description: get_s(item, "description").unwrap_or_default(),
        created_at: get_s(item, "created_at").unwrap_or_default(),
    }
}

impl Store {
    /// Reads a bus.
    pub async fn bus(&self, name: &str) -> Result<Option<BusRecord>, StoreError> {
        Ok(self
            .get(&self.tables.buses, "name", name)
            .await?
            .map(|i| record(&i)))
    }

    /// Creates a bus; an existing one keeps its creation time and gets the
    /// new description. Returns the bus and whether it was created.
    pub async fn put_bus(
        &self,
        name: &str,
        description: &str,
    ) -> Result<(BusRecord, bool), StoreError> {
        let now = now_rfc3339();
        let created = applied(
            self.client
                .put_item()
                .table_name(&self.tables.buses)
                .item("name", s(name))
                .item("description", s(description))
                .item("created_at", s(&now))
                .condition_expression("attribute_not_exists(#n)")
                .expression_attribute_names("#n", "name")
                .send()
                .await,
        )?;
        if !created {
            self.client
                .update_item()
                .table_name(&self.tables.buses)
                .key("name", s(name))
                .update_expression("SET description = :d")
                .expression_attribute_values(":d", s(description))
                .send()
                .await
                .map_err(classify)?;
        }
        let rec = self.bus(name).await?.unwrap_or(BusRecord {
            name: name.to_string(),
            description: description.to_string(),
            created_at: now,
        });
        Ok((rec, created))
    }

    /// Every stored bus, by name.
    pub async fn buses(&self) -> Result<Vec<BusRecord>, StoreError> {
        let mut out: Vec<BusRecord> = self
            .scan_all(&self.tables.buses)
            .await?
            .iter()
            .map(record)
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Deletes a bus. Returns `false` when there was none.
    pub async fn delete_bus(&self, name: &str) -> Result<bool, StoreError> {
        applied(
            self.client
                .delete_item()
                .table_name(&self.tables.buses)
                .key("name", s(name))
                .condition_expression("attribute_exists(#n)")
                .expression_attribute_names("#n", "name")
                .send()
                .await,
        )
    }
}
