//! `files`: uploaded files and their pipeline's outcome, keyed by
//! `file_id`. The record is kept as one JSON document (`doc`) with a
//! revision (`rev`); every change is a conditional write on the revision
//! it read, so concurrent writers (a redrive racing a late activity) never
//! lose each other's changes.

use sluice_model::file::FileRecord;

use crate::{applied, get_n, get_s, n, now_rfc3339, s, Store, StoreError};

/// Attempts at a contended change before giving up (each rereads).
const MAX_TRIES: usize = 16;

fn decode(table: &str, item: &crate::Item) -> Result<(FileRecord, u64), StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        table: table.to_string(),
        reason,
    };
    let doc = get_s(item, "doc").ok_or_else(|| corrupt("a file lacks its doc".into()))?;
    let record: FileRecord =
        serde_json::from_str(&doc).map_err(|e| corrupt(format!("a file's doc: {e}")))?;
    Ok((record, get_n(item, "rev").unwrap_or(0)))
}

impl Store {
    /// Creates a file's record. Returns `false` when the id exists.
    pub async fn create_file(&self, record: &FileRecord) -> Result<bool, StoreError> {
        let doc = serde_json::to_string(record).map_err(|e| StoreError::Rejected(e.to_string()))?;
        applied(
            self.client
                .put_item()
                .table_name(&self.tables.files)
                .item("file_id", s(&record.file_id))
                .item("doc", s(doc))
                .item("rev", n(1))
                .condition_expression("attribute_not_exists(file_id)")
                .send()
                .await,
        )
    }

    /// Reads a file's record.
    pub async fn file(&self, file_id: &str) -> Result<Option<FileRecord>, StoreError> {
        match self.get(&self.tables.files, "file_id", file_id).await? {
            None => Ok(None),
            Some(item) => decode(&self.tables.files, &item).map(|(r, _)| Some(r)),
        }
    }

    /// Changes a file's record with `change`, which answers whether there
    /// is anything to write (`false` leaves it as it is). Contended writes
    /// are retried on a fresh read. `None` when there is no such file;
    /// otherwise the record as it now is.
    pub async fn update_file<F>(
        &self,
        file_id: &str,
        mut change: F,
    ) -> Result<Option<FileRecord>, StoreError>
    where
        F: FnMut(&mut FileRecord) -> bool,
    {
        let table = &self.tables.files;
        for _ in 0..MAX_TRIES {
            let Some(item) = self.get(table, "file_id", file_id).await? else {
                return Ok(None);
            };
            let (mut record, rev) = decode(table, &item)?;
            if !change(&mut record) {
                return Ok(Some(record));
            }
            record.updated_at = now_rfc3339();
            let doc =
                serde_json::to_string(&record).map_err(|e| StoreError::Rejected(e.to_string()))?;
            let written = applied(
                self.client
                    .put_item()
                    .table_name(table)
                    .item("file_id", s(file_id))
                    .item("doc", s(doc))
                    .item("rev", n(rev + 1))
                    .condition_expression("rev = :rev")
                    .expression_attribute_values(":rev", n(rev))
                    .send()
                    .await,
            )?;
            if written {
                return Ok(Some(record));
            }
        }
        Err(StoreError::Unavailable(format!(
            "file {file_id}: too many concurrent changes"
        )))
    }
}
