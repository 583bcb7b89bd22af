//! `tasks`: one item per task (`taskId`), the task as JSON in `doc` beside
//! the attributes its indexes read, and its **outbox**: the events of its
//! changes not yet known to be on the bus.
//!
//! A write and its events are one conditional single-item write (the
//! store has no multi-item transactions), so there is never an event
//! without its write nor a write without its events; whoever wrote the
//! task then publishes the outbox and clears it, and if it dies first the
//! outbox relay does (it finds pending outboxes through the sparse
//! `outbox` index).
//!
//! Lists are served by global secondary indexes, never by a scan: by
//! status, by user, by user and status, and all tasks (newest first).
//! A deleted task leaves a tombstone (out of every list) that starts to
//! expire, within the hour, only once its `TaskDeleted` event is published.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType,
};
use serde::{Deserialize, Serialize};
use sluice_model::task::{Status, Task};

use crate::{applied, classify, get_n, get_s, n, s, Item, Store, StoreError};

/// The sparse index of items with a pending outbox.
pub const OUTBOX_INDEX: &str = "outbox";
const PENDING: &str = "pending";
const KIND: &str = "task";

/// An event waiting in a task's outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The bus subject.
    pub subject: String,
    /// The event id (the publish's `Nats-Msg-Id`).
    pub id: String,
    /// The event, as published.
    pub payload: String,
}

/// A stored task with what its outbox holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTask {
    /// The task.
    pub task: Task,
    /// Events not yet known to be published.
    pub outbox: Vec<OutboxEntry>,
    /// A tombstone: deleted, kept until its event is out.
    pub deleted: bool,
}

/// Which tasks to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskQuery {
    /// Every task.
    All,
    /// Tasks in a status.
    Status(Status),
    /// A user's tasks.
    User(String),
    /// A user's tasks in a status.
    UserStatus(String, Status),
}

impl TaskQuery {
    /// The index and its partition key attribute and value.
    fn index(&self) -> (&'static str, &'static str, String) {
        match self {
            Self::All => ("all", "kind", KIND.into()),
            Self::Status(st) => ("by_status", "status", st.as_str().into()),
            Self::User(u) => ("by_user", "userId", u.clone()),
            Self::UserStatus(u, st) => ("by_user_status", "user_status", user_status(u, *st)),
        }
    }
}

fn user_status(user: &str, status: Status) -> String {
    format!("{user}#{}", status.as_str())
}

/// Where a page ends: the last key, as the next request gives it back.
pub type Cursor = BTreeMap<String, String>;

/// The indexes of the tasks table: (name, partition key, sort key).
pub(crate) const INDEXES: &[(&str, &str, &str)] = &[
    ("all", "kind", "created_key"),
    ("by_status", "status", "created_key"),
    ("by_user", "userId", "created_key"),
    ("by_user_status", "user_status", "created_key"),
    (OUTBOX_INDEX, "outbox_shard", "outbox_since"),
];

/// The attribute definitions and global secondary indexes of the table.
pub(crate) fn indexes() -> Result<(Vec<AttributeDefinition>, Vec<GlobalSecondaryIndex>), StoreError>
{
    let err = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Rejected(e.to_string());
    let mut attrs: Vec<&str> = Vec::new();
    let mut gsis = Vec::new();
    for (name, pk, sk) in INDEXES {
        for a in [pk, sk] {
            if !attrs.contains(a) {
                attrs.push(a);
            }
        }
        gsis.push(
            GlobalSecondaryIndex::builder()
                .index_name(*name)
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(*pk)
                        .key_type(KeyType::Hash)
                        .build()
                        .map_err(err)?,
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(*sk)
                        .key_type(KeyType::Range)
                        .build()
                        .map_err(err)?,
                )
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(err)?,
        );
    }
    let defs = attrs
        .into_iter()
        .map(|a| {
            AttributeDefinition::builder()
                .attribute_name(a)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(err)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((defs, gsis))
}

fn epoch(rfc3339: &str) -> Option<i64> {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

fn outbox_value(outbox: &[OutboxEntry]) -> AttributeValue {
    AttributeValue::L(
        outbox
            .iter()
            .map(|e| s(serde_json::to_string(e).unwrap_or_default()))
            .collect(),
    )
}

/// The item of a live task with `outbox` pending since `since`.
fn item(task: &Task, outbox: &[OutboxEntry], since: &str) -> HashMap<String, AttributeValue> {
    let mut it = HashMap::from([
        ("taskId".to_string(), s(&task.task_id)),
        (
            "doc".to_string(),
            s(serde_json::to_string(task).unwrap_or_default()),
        ),
        ("version".to_string(), n(task.version)),
        ("kind".to_string(), s(KIND)),
        ("status".to_string(), s(task.status.as_str())),
        ("userId".to_string(), s(&task.user_id)),
        (
            "user_status".to_string(),
            s(user_status(&task.user_id, task.status)),
        ),
        (
            "created_key".to_string(),
            s(format!("{}#{}", task.created_at, task.task_id)),
        ),
    ]);
    if let Some(at) = task.expires_at.as_deref().and_then(epoch) {
        it.insert("expires_at".into(), n(at));
    }
    if !outbox.is_empty() {
        it.insert("outbox".into(), outbox_value(outbox));
        it.insert("outbox_shard".into(), s(PENDING));
        it.insert("outbox_since".into(), s(since));
    }
    it
}

fn read(table: &str, it: &Item) -> Result<StoredTask, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        table: table.to_string(),
        reason,
    };
    let doc = get_s(it, "doc").ok_or_else(|| corrupt("a task without doc".into()))?;
    let task: Task = serde_json::from_str(&doc).map_err(|e| corrupt(format!("a task doc: {e}")))?;
    let outbox = match it.get("outbox") {
        Some(AttributeValue::L(l)) => l
            .iter()
            .filter_map(|v| v.as_s().ok())
            .map(|t| serde_json::from_str(t).map_err(|e| corrupt(format!("an outbox entry: {e}"))))
            .collect::<Result<Vec<_>, _>>()?,
        _ => Vec::new(),
    };
    Ok(StoredTask {
        task,
        outbox,
        deleted: matches!(it.get("deleted"), Some(AttributeValue::Bool(true))),
    })
}

impl Store {
    /// Creates a task with its events in the outbox. `false` when the id exists.
    pub async fn create_task(
        &self,
        task: &Task,
        outbox: &[OutboxEntry],
    ) -> Result<bool, StoreError> {
        applied(
            self.client
                .put_item()
                .table_name(&self.tables.tasks)
                .set_item(Some(item(task, outbox, &task.updated_at)))
                .condition_expression("attribute_not_exists(taskId)")
                .send()
                .await,
        )
    }

    /// A task (deleted and expired ones too: see [`StoredTask::deleted`]
    /// and the task's `expires_at`), with a consistent read.
    pub async fn stored_task(&self, id: &str) -> Result<Option<StoredTask>, StoreError> {
        match self.get(&self.tables.tasks, "taskId", id).await? {
            Some(it) => read(&self.tables.tasks, &it).map(Some),
            None => Ok(None),
        }
    }

    /// Replaces a task whose stored version is `expected` with `task`, its
    /// outbox becoming `outbox` (what was pending and the new events).
    /// `false` when the version moved on or the task was deleted.
    pub async fn replace_task(
        &self,
        task: &Task,
        expected: u64,
        outbox: &[OutboxEntry],
        since: &str,
    ) -> Result<bool, StoreError> {
        applied(
            self.client
                .put_item()
                .table_name(&self.tables.tasks)
                .set_item(Some(item(task, outbox, since)))
                .condition_expression("version = :v AND attribute_not_exists(deleted)")
                .expression_attribute_values(":v", n(expected))
                .send()
                .await,
        )
    }

    /// Turns a task at version `expected` into a tombstone carrying its
    /// outbox: out of every list; it starts to expire only once its outbox
    /// is cleared ([`Store::clear_outbox`]), so the store's TTL never
    /// removes an event not yet published. `false` when the version moved
    /// on or it was deleted already.
    pub async fn delete_task(
        &self,
        task: &Task,
        expected: u64,
        outbox: &[OutboxEntry],
        since: &str,
    ) -> Result<bool, StoreError> {
        let mut it = HashMap::from([
            ("taskId".to_string(), s(&task.task_id)),
            (
                "doc".to_string(),
                s(serde_json::to_string(task).unwrap_or_default()),
            ),
            ("version".to_string(), n(task.version)),
            ("deleted".to_string(), AttributeValue::Bool(true)),
        ]);
        if !outbox.is_empty() {
            it.insert("outbox".into(), outbox_value(outbox));
            it.insert("outbox_shard".into(), s(PENDING));
            it.insert("outbox_since".into(), s(since));
        }
        applied(
            self.client
                .put_item()
                .table_name(&self.tables.tasks)
                .set_item(Some(it))
                .condition_expression("version = :v AND attribute_not_exists(deleted)")
                .expression_attribute_values(":v", n(expected))
                .send()
                .await,
        )
    }

    /// Empties the outbox of a task still at `version` (its events are on
    /// the bus); a tombstone then expires at `tombstone_expires` (epoch
    /// seconds). `false` when the task changed meanwhile: its outbox then
    /// holds newer events too, and stays for whoever wrote them.
    pub async fn clear_outbox(
        &self,
        id: &str,
        version: u64,
        tombstone_expires: Option<i64>,
    ) -> Result<bool, StoreError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.tables.tasks)
            .key("taskId", s(id))
            .condition_expression("version = :v")
            .expression_attribute_values(":v", n(version));
        req = match tombstone_expires {
            Some(at) => req
                .update_expression("REMOVE outbox, outbox_shard, outbox_since SET expires_at = :e")
                .expression_attribute_values(":e", n(at)),
            None => req.update_expression("REMOVE outbox, outbox_shard, outbox_since"),
        };
        applied(req.send().await)
    }

    /// Ids of tasks whose outbox has been pending since before `before`
    /// (RFC 3339), oldest first.
    pub async fn pending_outboxes(
        &self,
        before: &str,
        limit: i32,
    ) -> Result<Vec<String>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.tables.tasks)
            .index_name(OUTBOX_INDEX)
            .key_condition_expression("outbox_shard = :p AND outbox_since < :t")
            .expression_attribute_values(":p", s(PENDING))
            .expression_attribute_values(":t", s(before))
            .limit(limit)
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .items()
            .iter()
            .filter_map(|it| get_s(it, "taskId"))
            .collect())
    }

    /// One page of tasks, newest first, after `cursor`. Expired tasks are
    /// left out (the store removes them some time after they expire).
    pub async fn tasks_page(
        &self,
        query: &TaskQuery,
        limit: i32,
        cursor: Option<Cursor>,
    ) -> Result<(Vec<Task>, Option<Cursor>), StoreError> {
        let (index, pk, value) = query.index();
        let start = cursor.map(|c| {
            c.into_iter()
                .map(|(k, v)| (k, s(v)))
                .collect::<HashMap<_, _>>()
        });
        let out = self
            .client
            .query()
            .table_name(&self.tables.tasks)
            .index_name(index)
            .key_condition_expression("#pk = :v")
            .expression_attribute_names("#pk", pk)
            .expression_attribute_values(":v", s(value))
            .scan_index_forward(false)
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(classify)?;
        let now = crate::epoch_secs();
        let mut tasks = Vec::new();
        for it in out.items() {
            if get_n::<i64>(it, "expires_at").is_some_and(|at| at <= now) {
                continue;
            }
            tasks.push(read(&self.tables.tasks, it)?.task);
        }
        let next = out.last_evaluated_key.filter(|k| !k.is_empty()).map(|k| {
            k.into_iter()
                .filter_map(|(name, v)| v.as_s().ok().map(|t| (name, t.clone())))
                .collect()
        });
        Ok((tasks, next))
    }

    /// Whether `cursor` can continue `query`: exactly the key attributes of
    /// its index, with its partition key.
    pub fn cursor_fits(query: &TaskQuery, cursor: &Cursor) -> bool {
        let (index, pk, value) = query.index();
        let Some((_, _, sk)) = INDEXES.iter().find(|(n, _, _)| *n == index) else {
            return false;
        };
        let mut want = vec!["taskId", pk, sk];
        want.sort_unstable();
        let have: Vec<&str> = cursor.keys().map(String::as_str).collect();
        // Values the store would refuse (empty, oversized) are not ours.
        let sane = cursor
            .values()
            .all(|v| !v.is_empty() && v.len() <= 512 && !v.chars().any(char::is_control));
        have == want && sane && cursor.get(pk) == Some(&value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_fit_only_their_own_index_and_partition() {
        let q = TaskQuery::Status(Status::Pending);
        let c: Cursor = [
            ("taskId", "t1"),
            ("status", "pending"),
            ("created_key", "2026#t1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert!(Store::cursor_fits(&q, &c));
        assert!(!Store::cursor_fits(
            &TaskQuery::Status(Status::Completed),
            &c
        ));
        assert!(!Store::cursor_fits(&TaskQuery::User("u".into()), &c));
        let mut extra = c.clone();
        extra.insert("doc".into(), "{}".into());
        assert!(!Store::cursor_fits(&q, &extra));
        let mut empty = c.clone();
        empty.insert("taskId".into(), String::new());
        assert!(!Store::cursor_fits(&q, &empty));
    }
}
