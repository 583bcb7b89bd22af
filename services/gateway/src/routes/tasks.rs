//! The task-management application: `/v1/tasks`, served from the store
//! synchronously (the design's CRUD path).
//!
//! Every change writes the task and its events in one conditional write
//! (the events go into the task's outbox, crates/store `tasks`), then
//! publishes them and clears the outbox; a gateway that dies in between
//! leaves them to the processor's outbox relay. Optimistic concurrency:
//! every task carries its `version` as a strong `ETag`; `If-Match` makes a
//! change or a delete conditional on it (412 otherwise).

use axum::extract::{Path, Query, State};
use axum::http::header::{ETAG, IF_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sluice_model::ids::{check_client_id, derive_id, new_id};
use sluice_model::task::{self, NewTask, Status, Task, TaskChange, TASK_DELETED};
use sluice_store::tasks::{Cursor, OutboxEntry, StoredTask, TaskQuery};
use sluice_store::Store;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{scope, Principal};
use crate::body::JsonBody;
use crate::error::{ApiError, Problem};
use crate::idempotency::idempotent;
use crate::Shared;

/// Attempts of a change without `If-Match` that keeps meeting other changes.
const ATTEMPTS: usize = 3;

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn origin(state: &Shared) -> sluice_runtime::tasks::Origin {
    sluice_runtime::tasks::Origin {
        account: state.config.account.clone(),
        region: state.config.region.clone(),
        ttl: time::Duration::try_from(state.config.tasks_ttl).unwrap_or(time::Duration::DAY),
    }
}

fn entry(state: &Shared, kind: &str, t: &Task) -> OutboxEntry {
    sluice_runtime::tasks::entry(&origin(state), kind, t)
}

/// A test hook: `SLUICE_CRASH_AT=<point>` makes the gateway abort there, as
/// a SIGKILL would stop it (the chaos tests prove nothing is lost).
fn crash_point(point: &str) {
    if std::env::var("SLUICE_CRASH_AT").is_ok_and(|p| p == point) {
        tracing::error!(point, "SLUICE_CRASH_AT: aborting here");
        std::process::abort();
    }
}

/// Publishes what was just written and clears the outbox; on failure the
/// relay does it later (the write, and so its events, stand).
async fn publish(state: &Shared, id: &str, version: u64, outbox: &[OutboxEntry], tombstone: bool) {
    crash_point("task-written");
    if let Err(e) =
        sluice_runtime::outbox::flush(&state.bus, &state.store, id, version, outbox, tombstone)
            .await
    {
        tracing::warn!(task = %id, error = %e, "events not published now; the outbox relay will");
        metrics::counter!("sluice.gateway.tasks.outbox.deferred").increment(1);
    }
}

fn etag(t: &Task) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{}\"", t.version))
        .unwrap_or(HeaderValue::from_static("\"0\""))
}

fn with_etag(status: StatusCode, t: Task) -> Response {
    let tag = etag(&t);
    let mut res = (status, Json(t)).into_response();
    res.headers_mut().insert(ETAG, tag);
    res
}

/// `If-Match`: `None` when absent, `Some(None)` for `*`, `Some(Some(v))`
/// for a version; anything else matches no version (412).
fn if_match(headers: &HeaderMap) -> Option<Option<u64>> {
    let raw = headers.get(IF_MATCH)?.to_str().unwrap_or("").trim();
    if raw == "*" {
        return Some(None);
    }
    Some(Some(
        raw.strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    ))
}

fn live(stored: Option<StoredTask>) -> Option<StoredTask> {
    sluice_runtime::tasks::live(stored)
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no task with id {id:?}"))
}

fn precondition(id: &str, current: u64) -> ApiError {
    ApiError::PreconditionFailed(format!(
        "task {id:?} is at version {current} (ETag \"{current}\"); read it again and retry"
    ))
}

/// Creates a task: 201 with the task and its `ETag`; a
/// `TaskCreated` event follows on the bus.
#[utoipa::path(post, path = "/v1/tasks", tag = "tasks", request_body = NewTask,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Makes retries safe for 24 h: the same key and body answer the same task",
        pattern = "^[\\x21-\\x7E]{1,255}$")),
    responses((status = 201, body = Task), (status = 400, body = Problem),
        (status = 409, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn create(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response, ApiError> {
    principal.require(scope::TASKS_WRITE)?;
    let input: NewTask = body.parse()?;
    let state2 = state.clone();
    // With an Idempotency-Key the task's id comes from the key, so a retry
    // whose first attempt stopped after the write (before its answer was
    // kept) finds that task rather than making a second one.
    let mut res = idempotent(
        &state,
        &principal.name,
        "tasks",
        &headers,
        &body.bytes,
        |seed| async move {
            let now = OffsetDateTime::now_utc();
            let id = seed.map(|s| derive_id(&s, "task")).unwrap_or_else(new_id);
            let t = input.into_task(id, now)?;
            let outbox: Vec<OutboxEntry> = task::events_of(None, &t)
                .into_iter()
                .map(|k| entry(&state2, k, &t))
                .collect();
            if !state2.store.create_task(&t, &outbox).await? {
                // Written by an earlier attempt with this key: that task, its
                // events following from its outbox.
                return match state2.store.stored_task(&t.task_id).await? {
                    Some(stored) => Ok((StatusCode::CREATED, task_json(&stored.task)?)),
                    None => Err(ApiError::Internal("a new task id already exists".into())),
                };
            }
            publish(&state2, &t.task_id, t.version, &outbox, false).await;
            metrics::counter!("sluice.gateway.tasks.written", "op" => "create").increment(1);
            Ok((StatusCode::CREATED, task_json(&t)?))
        },
    )
    .await?;
    // A new task is at version 1.
    if res.status() == StatusCode::CREATED {
        res.headers_mut()
            .insert(ETAG, HeaderValue::from_static("\"1\""));
    }
    Ok(res)
}

fn task_json(t: &Task) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(t).map_err(|e| ApiError::Internal(e.to_string()))
}

/// A task, with its `ETag`.
#[utoipa::path(get, path = "/v1/tasks/{id}", tag = "tasks",
    params(("id" = String, Path)),
    responses((status = 200, body = Task), (status = 404, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn get(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    principal.require(scope::TASKS_READ)?;
    if check_client_id(&id).is_err() {
        return Err(not_found(&id));
    }
    let stored = live(state.store.stored_task(&id).await?).ok_or_else(|| not_found(&id))?;
    Ok(with_etag(StatusCode::OK, stored.task))
}

/// Changes a task: the fields given (at least one). With `If-Match`, only
/// if the task is still at that version (412 otherwise). `completed` and
/// `rejected` are final (409). A `TaskUpdated` event follows, and a
/// `TaskCompleted` when it reaches `completed`; a change that changes
/// nothing answers the task as it is and emits nothing.
#[utoipa::path(put, path = "/v1/tasks/{id}", tag = "tasks", request_body = TaskChange,
    params(("id" = String, Path),
        ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    responses((status = 200, body = Task), (status = 400, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 412, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn update(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response, ApiError> {
    principal.require(scope::TASKS_WRITE)?;
    let change: TaskChange = body.parse()?;
    change.check()?;
    if check_client_id(&id).is_err() {
        return Err(not_found(&id));
    }
    use sluice_runtime::tasks::Refused;
    match sluice_runtime::tasks::change(
        &state.store,
        &origin(&state),
        &id,
        &change,
        if_match(&headers),
    )
    .await
    {
        Ok(changed) => {
            if !changed.outbox.is_empty() {
                publish(&state, &id, changed.task.version, &changed.outbox, false).await;
                metrics::counter!("sluice.gateway.tasks.written", "op" => "update").increment(1);
            }
            Ok(with_etag(StatusCode::OK, changed.task))
        }
        Err(Refused::NotFound(_)) => Err(not_found(&id)),
        Err(Refused::Precondition(current)) => Err(precondition(&id, current)),
        Err(Refused::Invalid(f)) => Err(f.into()),
        Err(Refused::Final(s)) => Err(ApiError::Conflict(format!(
            "task {id:?} is {}: it can no longer change",
            s.as_str()
        ))),
        Err(Refused::Busy) => Err(ApiError::Conflict(format!(
            "task {id:?} keeps changing; read it and retry with If-Match"
        ))),
        Err(Refused::Store(e)) => Err(e.into()),
    }
}

/// Deletes a task (with `If-Match`, only at that version). A
/// `TaskDeleted` event follows.
#[utoipa::path(delete, path = "/v1/tasks/{id}", tag = "tasks",
    params(("id" = String, Path),
        ("If-Match" = Option<String>, Header, description = "The ETag the delete is based on")),
    responses((status = 204, description = "Deleted"), (status = 404, body = Problem),
        (status = 412, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn delete(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    principal.require(scope::TASKS_WRITE)?;
    if check_client_id(&id).is_err() {
        return Err(not_found(&id));
    }
    let wanted = if_match(&headers);
    for _ in 0..ATTEMPTS {
        let stored = live(state.store.stored_task(&id).await?).ok_or_else(|| not_found(&id))?;
        let current = stored.task.version;
        if let Some(Some(v)) = wanted {
            if v != current {
                return Err(precondition(&id, current));
            }
        }
        let now = OffsetDateTime::now_utc();
        let mut gone = stored.task.clone();
        gone.version = current + 1;
        gone.updated_at = rfc3339(now);
        let mut outbox = stored.outbox.clone();
        outbox.push(entry(&state, TASK_DELETED, &gone));
        if state
            .store
            .delete_task(&gone, current, &outbox, &rfc3339(now))
            .await?
        {
            publish(&state, &id, gone.version, &outbox, true).await;
            metrics::counter!("sluice.gateway.tasks.written", "op" => "delete").increment(1);
            return Ok(StatusCode::NO_CONTENT);
        }
        if wanted.is_some() {
            return Err(precondition(&id, current + 1));
        }
    }
    Err(ApiError::Conflict(format!(
        "task {id:?} keeps changing; read it and retry with If-Match"
    )))
}

/// `GET /v1/tasks` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only tasks in this status.
    #[param(pattern = "^(pending|in_progress|completed|rejected)$")]
    pub status: Option<String>,
    /// Only this user's tasks.
    #[serde(rename = "userId")]
    #[param(rename = "userId", pattern = "^[-_.@+A-Za-z0-9]{1,128}$")]
    pub user_id: Option<String>,
    /// Page size, 1 to 100. Default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i32>,
    /// The `next` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

/// A page of tasks.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskPage {
    /// Newest first.
    pub items: Vec<Task>,
    /// Give it back as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Lists tasks, newest first, by status, by user, by both or all, each
/// from its own index (never a scan).
#[utoipa::path(get, path = "/v1/tasks", tag = "tasks", params(ListParams),
    responses((status = 200, body = TaskPage), (status = 400, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn list(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<TaskPage>, ApiError> {
    principal.require(scope::TASKS_READ)?;
    let Query(p) = params.map_err(|e| ApiError::BadParameter(e.body_text()))?;
    let status = match p.status.as_deref() {
        None => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            ApiError::BadParameter(
                "status must be pending, in_progress, completed or rejected".into(),
            )
        })?),
    };
    if let Some(u) = &p.user_id {
        task::check_user_id(u).map_err(|e| ApiError::BadParameter(format!("userId {e}")))?;
    }
    let limit = p.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::BadParameter("limit must be 1 to 100".into()));
    }
    let query = match (p.user_id, status) {
        (None, None) => TaskQuery::All,
        (None, Some(s)) => TaskQuery::Status(s),
        (Some(u), None) => TaskQuery::User(u),
        (Some(u), Some(s)) => TaskQuery::UserStatus(u, s),
    };
    let cursor = match p.cursor {
        None => None,
        Some(c) => {
            let bad = || ApiError::BadParameter("cursor is not one this listing gave".into());
            let bytes = URL_SAFE_NO_PAD.decode(c.as_bytes()).map_err(|_| bad())?;
            let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
            if !Store::cursor_fits(&query, &cursor) {
                return Err(bad());
            }
            Some(cursor)
        }
    };
    let (items, next) = state.store.tasks_page(&query, limit, cursor).await?;
    Ok(Json(TaskPage {
        items,
        next: next.map(|c| URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap_or_default())),
    }))
}
