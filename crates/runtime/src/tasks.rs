//! Changing a task the way every writer must: read it, apply the change,
//! write the task and its events in one conditional write (the events go
//! into its outbox), retrying a few times when another writer got there
//! first. The caller then publishes the outbox ([`crate::outbox::flush`]);
//! a caller that dies first leaves it to the relay. The gateway's `PUT
//! /v1/tasks/{id}` and the orchestrator's approval workflow both change
//! tasks through here.

use sluice_bus::subjects;
use sluice_model::task::{self, ChangeError, Status, Task, TaskChange};
use sluice_model::FieldError;
use sluice_store::tasks::{OutboxEntry, StoredTask};
use sluice_store::{Store, StoreError};
use time::OffsetDateTime;

/// Tries before a change that keeps losing to other writers gives up.
const ATTEMPTS: usize = 3;

/// What events say about where they come from.
#[derive(Debug, Clone)]
pub struct Origin {
    /// In event ARNs.
    pub account: String,
    /// In event ARNs.
    pub region: String,
    /// How long a completed or rejected task stays.
    pub ttl: time::Duration,
}

/// A change that was not made.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// No such task (or it expired, or was deleted).
    #[error("no task with id {0:?}")]
    NotFound(String),
    /// The caller's version is not the task's (`If-Match`).
    #[error("the task is at version {0}")]
    Precondition(u64),
    /// The change itself is wrong.
    #[error("{0}")]
    Invalid(FieldError),
    /// The task is completed or rejected.
    #[error("the task is {}: it can no longer change", .0.as_str())]
    Final(Status),
    /// Other writers kept changing it.
    #[error("the task keeps changing; read it and retry")]
    Busy,
    /// The store did not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A change made (or found already made).
#[derive(Debug, Clone)]
pub struct Changed {
    /// The task as it is now.
    pub task: Task,
    /// Its outbox to publish; empty when nothing changed.
    pub outbox: Vec<OutboxEntry>,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The outbox entry of event `kind` of task `t`.
pub fn entry(origin: &Origin, kind: &str, t: &Task) -> OutboxEntry {
    let e = task::event(kind, t, &origin.account, &origin.region);
    OutboxEntry {
        subject: subjects::bus(&e.source, &e.detail_type),
        id: e.id.clone(),
        payload: String::from_utf8(e.to_bytes()).unwrap_or_default(),
    }
}

/// The task if it is there: not deleted, not past its expiry.
pub fn live(stored: Option<StoredTask>) -> Option<StoredTask> {
    let now = rfc3339(OffsetDateTime::now_utc());
    stored.filter(|s| {
        !s.deleted
            && s.task
                .expires_at
                .as_deref()
                .is_none_or(|at| at > now.as_str())
    })
}

/// Applies `change` to task `id`. `expected` is an `If-Match`: `None`,
/// unconditional (a lost race is retried); `Some(Some(v))`, only at version
/// `v`; `Some(None)` (`*`), at whatever version it is read, a lost race
/// being the caller's to resolve.
pub async fn change(
    store: &Store,
    origin: &Origin,
    id: &str,
    change: &TaskChange,
    expected: Option<Option<u64>>,
) -> Result<Changed, Refused> {
    for _ in 0..ATTEMPTS {
        let stored =
            live(store.stored_task(id).await?).ok_or_else(|| Refused::NotFound(id.to_string()))?;
        let current = stored.task.version;
        if let Some(Some(v)) = expected {
            if v != current {
                return Err(Refused::Precondition(current));
            }
        }
        let now = OffsetDateTime::now_utc();
        let next = match change.apply(&stored.task, now, origin.ttl) {
            Ok(Some(next)) => next,
            Ok(None) => {
                return Ok(Changed {
                    task: stored.task,
                    outbox: Vec::new(),
                })
            }
            Err(ChangeError::Invalid(f)) => return Err(Refused::Invalid(f)),
            Err(ChangeError::Final(s)) => return Err(Refused::Final(s)),
        };
        let mut outbox = stored.outbox.clone();
        outbox.extend(
            task::events_of(Some(&stored.task), &next)
                .into_iter()
                .map(|k| entry(origin, k, &next)),
        );
        if store
            .replace_task(&next, current, &outbox, &rfc3339(now))
            .await?
        {
            return Ok(Changed { task: next, outbox });
        }
        if expected.is_some() {
            // Changed under us: the caller's version is no longer current.
            let now_at = store
                .stored_task(id)
                .await?
                .map(|s| s.task.version)
                .unwrap_or(current);
            return Err(Refused::Precondition(now_at));
        }
    }
    Err(Refused::Busy)
}
