//! The task-management application: tasks, what a client may send, and
//! the events every change emits (`TaskCreated`, `TaskUpdated`,
//! `TaskCompleted`, `TaskDeleted`, source `sluice.tasks`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::envelope::{Envelope, VERSION};
use crate::ids::derive_id;
use crate::FieldError;

/// The source of task events.
pub const TASK_SOURCE: &str = "sluice.tasks";
/// A task was created.
pub const TASK_CREATED: &str = "TaskCreated";
/// A task was changed.
pub const TASK_UPDATED: &str = "TaskUpdated";
/// A task reached `completed` (sent with its `TaskUpdated`).
pub const TASK_COMPLETED: &str = "TaskCompleted";
/// A task was deleted.
pub const TASK_DELETED: &str = "TaskDeleted";
/// Longest title.
pub const MAX_TITLE: usize = 200;
/// Longest description.
pub const MAX_DESCRIPTION: usize = 4000;

/// How urgent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = TaskPriority)]
pub enum Priority {
    /// Low.
    Low,
    /// Medium (the default).
    #[default]
    Medium,
    /// High: starts the approval workflow (the default rules).
    High,
}

/// Where a task stands. `completed` and `rejected` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = TaskStatus)]
pub enum Status {
    /// New.
    #[default]
    Pending,
    /// Being worked on.
    InProgress,
    /// Done (final).
    Completed,
    /// Turned down (final).
    Rejected,
}

impl Status {
    /// As stored and queried.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Rejected => "rejected",
        }
    }

    /// Parses a stored or queried status.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::InProgress,
            Self::Completed,
            Self::Rejected,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// Whether the task can no longer change.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Rejected)
    }
}

/// A task as stored and returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Task {
    /// Its id.
    #[serde(rename = "taskId")]
    pub task_id: String,
    /// What to do.
    pub title: String,
    /// More about it.
    pub description: String,
    /// How urgent.
    pub priority: Priority,
    /// Where it stands.
    pub status: Status,
    /// Whose it is.
    #[serde(rename = "userId")]
    pub user_id: String,
    /// Bumped by every change; the `ETag` is `"<version>"`.
    pub version: u64,
    /// RFC 3339.
    #[serde(rename = "createdAt")]
    pub created_at: String,
    /// RFC 3339.
    #[serde(rename = "updatedAt")]
    pub updated_at: String,
    /// When a completed or rejected task is removed (RFC 3339).
    #[serde(rename = "expiresAt", skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// `POST /v1/tasks` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    /// What to do: 1 to 200 characters, no control characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*[^\\s\\x00-\\x1F\\x7F-\\x9F][^\\x00-\\x1F\\x7F-\\x9F]*$"
    )]
    pub title: String,
    /// More about it: up to 4000 characters.
    #[serde(default)]
    #[schema(max_length = 4000)]
    pub description: String,
    /// Default `medium`.
    #[serde(default)]
    pub priority: Priority,
    /// Whose it is: 1 to 128 of letters, digits and `-_.@+`.
    #[serde(rename = "userId")]
    #[schema(pattern = "^[-_.@+A-Za-z0-9]{1,128}$")]
    pub user_id: String,
}

/// `PUT /v1/tasks/{id}` body: the fields to change (at least one).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct TaskChange {
    /// As for a new task.
    #[serde(default, deserialize_with = "present")]
    #[schema(
        nullable = false,
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*[^\\s\\x00-\\x1F\\x7F-\\x9F][^\\x00-\\x1F\\x7F-\\x9F]*$"
    )]
    pub title: Option<String>,
    /// As for a new task.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false, max_length = 4000)]
    pub description: Option<String>,
    /// As for a new task.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    pub priority: Option<Priority>,
    /// The new status; `completed` and `rejected` are final.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    pub status: Option<Status>,
    /// As for a new task.
    #[serde(default, rename = "userId", deserialize_with = "present")]
    #[schema(nullable = false, pattern = "^[-_.@+A-Za-z0-9]{1,128}$")]
    pub user_id: Option<String>,
}

/// A field that may be absent but not null.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

fn check_title(t: &str, pointer: &str) -> Result<(), FieldError> {
    if t.trim().is_empty() || t.chars().count() > MAX_TITLE {
        return Err(FieldError::new(
            pointer,
            "must be 1 to 200 characters, not blank",
        ));
    }
    if t.chars().any(char::is_control) {
        return Err(FieldError::new(pointer, "must not hold control characters"));
    }
    Ok(())
}

fn check_description(d: &str) -> Result<(), FieldError> {
    if d.chars().count() > MAX_DESCRIPTION {
        return Err(FieldError::new(
            "/description",
            "must be at most 4000 characters",
        ));
    }
    Ok(())
}

/// Checks a user id: 1 to 128 of letters, digits and `-_.@+`.
pub fn check_user_id(u: &str) -> Result<(), String> {
    let ok = (1..=128).contains(&u.len())
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@+".contains(&b));
    if ok {
        Ok(())
    } else {
        Err("must be 1 to 128 of letters, digits and -_.@+".into())
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl NewTask {
    /// The task it creates, with id `task_id`, at `now`.
    pub fn into_task(self, task_id: String, now: OffsetDateTime) -> Result<Task, FieldError> {
        check_title(&self.title, "/title")?;
        check_description(&self.description)?;
        check_user_id(&self.user_id).map_err(|e| FieldError::new("/userId", e))?;
        let now = rfc3339(now);
        Ok(Task {
            task_id,
            title: self.title,
            description: self.description,
            priority: self.priority,
            status: Status::Pending,
            user_id: self.user_id,
            version: 1,
            created_at: now.clone(),
            updated_at: now,
            expires_at: None,
        })
    }
}

/// Why a change cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeError {
    /// The request itself is wrong.
    Invalid(FieldError),
    /// The task is completed or rejected.
    Final(Status),
}

impl TaskChange {
    /// Checks the change on its own (before any task is read).
    pub fn check(&self) -> Result<(), FieldError> {
        if self.title.is_none()
            && self.description.is_none()
            && self.priority.is_none()
            && self.status.is_none()
            && self.user_id.is_none()
        {
            return Err(FieldError::new(
                "",
                "give at least one of title, description, priority, status, userId",
            ));
        }
        if let Some(t) = &self.title {
            check_title(t, "/title")?;
        }
        if let Some(d) = &self.description {
            check_description(d)?;
        }
        if let Some(u) = &self.user_id {
            check_user_id(u).map_err(|e| FieldError::new("/userId", e))?;
        }
        Ok(())
    }

    /// `task` with this change applied at `now` (the version bumped; a
    /// task reaching a final status expires `ttl` later). `None` when the
    /// change changes nothing.
    pub fn apply(
        &self,
        task: &Task,
        now: OffsetDateTime,
        ttl: time::Duration,
    ) -> Result<Option<Task>, ChangeError> {
        self.check().map_err(ChangeError::Invalid)?;
        let mut next = task.clone();
        if let Some(t) = &self.title {
            next.title = t.clone();
        }
        if let Some(d) = &self.description {
            next.description = d.clone();
        }
        if let Some(p) = self.priority {
            next.priority = p;
        }
        if let Some(s) = self.status {
            next.status = s;
        }
        if let Some(u) = &self.user_id {
            next.user_id = u.clone();
        }
        if next == *task {
            return Ok(None);
        }
        if task.status.is_final() {
            return Err(ChangeError::Final(task.status));
        }
        next.version = task.version + 1;
        next.updated_at = rfc3339(now);
        if next.status.is_final() {
            next.expires_at = Some(rfc3339(now + ttl));
        }
        Ok(Some(next))
    }
}

/// The event `kind` about `task` (as it is after the change). Its id is
/// derived from the task, the kind and the version, so the same change
/// always makes the same event (JetStream and consumers de-duplicate it).
pub fn event(kind: &str, task: &Task, account: &str, region: &str) -> Envelope {
    Envelope {
        version: VERSION.into(),
        id: derive_id(&task.task_id, &format!("{kind}/{}", task.version)),
        detail_type: kind.into(),
        source: TASK_SOURCE.into(),
        account: account.into(),
        time: OffsetDateTime::now_utc(),
        region: region.into(),
        resources: vec![format!("task/{}", task.task_id)],
        detail: serde_json::to_value(task).unwrap_or_default(),
    }
}

/// The events a change from `before` (none: created) to `after` emits.
pub fn events_of(before: Option<&Task>, after: &Task) -> Vec<&'static str> {
    match before {
        None => vec![TASK_CREATED],
        Some(b) => {
            let mut out = vec![TASK_UPDATED];
            if after.status == Status::Completed && b.status != Status::Completed {
                out.push(TASK_COMPLETED);
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_task() -> Task {
        NewTask {
            title: "Write the report".into(),
            description: String::new(),
            priority: Priority::High,
            user_id: "alice@example.com".into(),
        }
        .into_task("t1".into(), OffsetDateTime::UNIX_EPOCH)
        .unwrap()
    }

    #[test]
    fn a_new_task_is_pending_at_version_one_with_camel_case_fields() {
        let t = new_task();
        assert_eq!(t.status, Status::Pending);
        assert_eq!(t.version, 1);
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["taskId"], "t1");
        assert_eq!(v["userId"], "alice@example.com");
        assert_eq!(v["priority"], "high");
        assert!(v.get("expiresAt").is_none());
        let bad = NewTask {
            title: "  ".into(),
            description: String::new(),
            priority: Priority::Low,
            user_id: "u".into(),
        };
        assert_eq!(
            bad.into_task("t".into(), OffsetDateTime::UNIX_EPOCH)
                .unwrap_err()
                .pointer,
            "/title"
        );
    }

    #[test]
    fn changes_bump_the_version_and_completion_expires() {
        let t = new_task();
        let day = time::Duration::days(1);
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::hours(1);
        let started = TaskChange {
            status: Some(Status::InProgress),
            ..Default::default()
        }
        .apply(&t, now, day)
        .unwrap()
        .unwrap();
        assert_eq!(started.version, 2);
        assert_eq!(events_of(Some(&t), &started), vec![TASK_UPDATED]);
        let done = TaskChange {
            status: Some(Status::Completed),
            ..Default::default()
        }
        .apply(&started, now, day)
        .unwrap()
        .unwrap();
        assert_eq!(done.expires_at.as_deref(), Some("1970-01-02T01:00:00Z"));
        assert_eq!(
            events_of(Some(&started), &done),
            vec![TASK_UPDATED, TASK_COMPLETED]
        );
        let again = TaskChange {
            title: Some("x".into()),
            ..Default::default()
        };
        assert_eq!(
            again.apply(&done, now, day).unwrap_err(),
            ChangeError::Final(Status::Completed)
        );
        assert_eq!(
            TaskChange {
                status: Some(Status::InProgress),
                ..Default::default()
            }
            .apply(&started, now, day)
            .unwrap(),
            None,
            "no change, no new version"
        );
        assert!(matches!(
            TaskChange::default().apply(&t, now, day),
            Err(ChangeError::Invalid(_))
        ));
    }

    #[test]
    fn events_have_stable_ids_per_version_and_kind() {
        let t = new_task();
        let a = event(TASK_CREATED, &t, "0", "local");
        let b = event(TASK_CREATED, &t, "0", "local");
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, event(TASK_UPDATED, &t, "0", "local").id);
        assert_eq!(a.source, TASK_SOURCE);
        assert_eq!(a.detail["taskId"], "t1");
    }
}
