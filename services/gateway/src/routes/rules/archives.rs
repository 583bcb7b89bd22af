//! Archives and replays of a bus (EventBridge's), served by the
//! transformer over gRPC.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_model::names;
use sluice_proto::v1;
use utoipa::ToSchema;

use super::check_path;
use crate::auth::{scope, Principal};
use crate::body::JsonBody;
use crate::error::{ApiError, Problem};
use crate::Shared;

/// `PUT /v1/buses/{bus}/archives/{name}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchiveInput {
    /// Only the events this EventBridge pattern matches; all when absent.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub event_pattern: Option<serde_json::Map<String, Value>>,
    /// Days an event stays replayable, at most the bus stream's retention
    /// (`SLUICE_BUS_RETENTION`, 7 days by default); 0 or absent: that long.
    #[serde(default, deserialize_with = "sluice_model::input::int::optional")]
    #[schema(minimum = 0, maximum = 36500)]
    pub retention_days: Option<u32>,
    /// At most 512 characters.
    #[serde(default)]
    #[schema(max_length = 512, pattern = "^[^\\x00-\\x08\\x0B-\\x1F\\x7F-\\x9F]*$")]
    pub description: Option<String>,
}

/// An archive: the events of its bus, from its creation on, that match its
/// pattern, replayable for `retention_days`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Archive {
    /// Its bus.
    pub bus: String,
    /// Its name.
    pub name: String,
    /// Its pattern (absent: every event of the bus).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub event_pattern: Option<Value>,
    /// Days an event stays replayable (0: as long as the bus stream keeps it).
    pub retention_days: u32,
    /// What it is for.
    pub description: String,
    /// RFC 3339.
    pub created_at: String,
}

impl From<v1::Archive> for Archive {
    fn from(a: v1::Archive) -> Self {
        Self {
            event_pattern: (!a.event_pattern.is_empty())
                .then(|| serde_json::from_str(&a.event_pattern).unwrap_or(Value::Null)),
            bus: a.bus,
            name: a.name,
            retention_days: a.retention_days,
            description: a.description,
            created_at: a.created_at,
        }
    }
}

/// A bus's archives.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArchiveList {
    /// By name.
    pub archives: Vec<Archive>,
}

/// `POST /v1/buses/{bus}/replays` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayInput {
    /// The replay's name, unique on the bus.
    #[schema(pattern = "^[.\\-_A-Za-z0-9]{1,64}$")]
    pub name: String,
    /// The archive whose events are replayed.
    #[schema(pattern = "^[.\\-_A-Za-z0-9]{1,64}$")]
    pub archive: String,
    /// Events the archive received from this time (RFC 3339)...
    pub start_time: String,
    /// ...until this one, excluded; not in the future.
    pub end_time: String,
    /// Only these rules of the bus (at most 300); all of them when absent.
    #[serde(default)]
    #[schema(max_items = 300)]
    pub rules: Option<Vec<String>>,
    /// At most 512 characters.
    #[serde(default)]
    #[schema(max_length = 512, pattern = "^[^\\x00-\\x08\\x0B-\\x1F\\x7F-\\x9F]*$")]
    pub description: Option<String>,
}

/// Where a replay is.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReplayState {
    /// Accepted, not picked up yet.
    Starting,
    /// Sending events.
    Running,
    /// Asked to stop.
    Cancelling,
    /// Every event of the range was sent.
    Completed,
    /// Stopped by a cancel.
    Cancelled,
    /// Stopped by an error (see `reason`).
    Failed,
}

/// A replay.
#[derive(Debug, Serialize, ToSchema)]
pub struct Replay {
    /// Its bus.
    pub bus: String,
    /// Its name.
    pub name: String,
    /// The archive replayed.
    pub archive: String,
    /// RFC 3339.
    pub start_time: String,
    /// RFC 3339.
    pub end_time: String,
    /// The rules replayed to (empty: all).
    pub rules: Vec<String>,
    /// What it is for.
    pub description: String,
    /// Where it is.
    pub state: ReplayState,
    /// Why it failed or stopped.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Archive events sent through the rules so far (each marked with `replay-name`).
    pub events_replayed: u64,
    /// Deliveries those made.
    pub deliveries: u64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, once picked up.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub started_at: String,
    /// RFC 3339, once ended.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ended_at: String,
    /// RFC 3339: when the last event replayed reached the bus.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_event_time: String,
}

impl From<v1::Replay> for Replay {
    fn from(r: v1::Replay) -> Self {
        let state = match v1::ReplayState::try_from(r.state) {
            Ok(v1::ReplayState::Starting) => ReplayState::Starting,
            Ok(v1::ReplayState::Running) => ReplayState::Running,
            Ok(v1::ReplayState::Cancelling) => ReplayState::Cancelling,
            Ok(v1::ReplayState::Completed) => ReplayState::Completed,
            Ok(v1::ReplayState::Cancelled) => ReplayState::Cancelled,
            _ => ReplayState::Failed,
        };
        Self {
            bus: r.bus,
            name: r.name,
            archive: r.archive,
            start_time: r.start_time,
            end_time: r.end_time,
            rules: r.rules,
            description: r.description,
            state,
            reason: r.reason,
            events_replayed: r.events_replayed,
            deliveries: r.deliveries,
            created_at: r.created_at,
            started_at: r.started_at,
            ended_at: r.ended_at,
            last_event_time: r.last_event_time,
        }
    }
}

/// A bus's replays.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayList {
    /// By name.
    pub replays: Vec<Replay>,
}

/// Creates (201) or replaces (200) an archive of the bus's events.
#[utoipa::path(put, path = "/v1/buses/{bus}/archives/{name}", tag = "archives", request_body = ArchiveInput,
    params(("bus" = String, Path, pattern = "^[.\\-_A-Za-z0-9]{1,256}$"),
           ("name" = String, Path, pattern = "^[.\\-_A-Za-z0-9]{1,64}$")),
    responses((status = 200, body = Archive), (status = 201, body = Archive),
        (status = 400, body = Problem), (status = 404, description = "No such bus", body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn put_archive(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path((bus, name)): Path<(String, String)>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    principal.require(scope::RULES_WRITE)?;
    check_path("the bus name", names::check_bus, &bus)?;
    check_path("the archive name", names::check_rule, &name)?;
    let input: ArchiveInput = body.parse()?;
    let event_pattern = match &input.event_pattern {
        Some(p) => serde_json::to_string(p).map_err(|e| ApiError::Internal(e.to_string()))?,
        None => String::new(),
    };
    let t = &state.transformer;
    let out = t
        .bus()
        .put_archive(t.request(v1::PutArchiveRequest {
            archive: Some(v1::Archive {
                bus,
                name,
                event_pattern,
                retention_days: input.retention_days.unwrap_or(0),
                description: input.description.unwrap_or_default(),
                created_at: String::new(),
            }),
        }))
        .await?
        .into_inner();
    let archive = out
        .archive
        .map(Archive::from)
        .ok_or_else(|| ApiError::Internal("no archive in the answer".into()))?;
    let code = if out.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(archive)).into_response())
}

/// An archive.
#[utoipa::path(get, path = "/v1/buses/{bus}/archives/{name}", tag = "archives",
    params(("bus" = String, Path, pattern = "^[.\\-_A-Za-z0-9]{1,256}$"), ("name" = String, Path, pattern = "^[.\\-_A-Za-z0-9]{1,64}$")),
    responses((status = 200, body = Archive), (status = 404, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn get_archive(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path((bus, name)): Path<(String, String)>,
) -> Result<Json<Archive>, ApiError> {
    principal.require(scope::RULES_READ)?;
    let t = &state.transformer;
    let out = t
        .bus()
        .get_archive(t.request(v1::GetArchiveRequest { bus, name }))
        .await?;
    Ok(Json(out.into_inner().into()))
}

/// A bus's archives.
#[utoipa::path(get, path = "/v1/buses/{bus}/archives", tag = "archives",
    params(("bus" = String, Path, pattern = "^[.\\-_A-Za-z0-9]{1,256}$")),
    responses((status = 200, body = ArchiveList), (status = 404, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn list_archives(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(bus): Path<String>,
) -> Result<Json<ArchiveList>, ApiError> {
    principal.require(scope::RULES_READ)?;
    let t = &state.transformer;
    let out = t
        .bus()
        .list_archives(t.request(v1::ListArchivesRequest { bus }))
        .await?;
    Ok(Json(ArchiveList {
        archives: out
            .into_inner()
            .archives
            .into_iter()
            .map(Archive::from)
            .collect(),
    }))
}

/// Deletes an archive (the events stay in the bus stream until it drops
/// them); a replay of it that is running fails.
#[utoipa::path(delete, path = "/v1/buses/{bus}/archives/{name}", tag = "archives",
    params(("bus" = String, Path, pattern = "^[.\\-_A-Za-z0-9]{1,256}$"), ("name" = String, Path, pattern = "^[.\\-_A-Za-z0-9]{1,64}$")),
    responses((status = 204, description = "Deleted"), (status = 404, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn delete_archive(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path((bus, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    principal.require(scope::RULES_WRITE)?;
    let t = &state.transformer;
    t.bus()
        .delete_archive(t.request(v1::DeleteArchiveRequest { bus, name }))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts a replay: the archive's events of the range go through the bus's
/// rules (or the ones named) again, each marked with `replay-name`. 202: it
/// runs in the background; `GET` it for its state and counts.
#[utoipa::path(post, path = "/v1/buses/{bus}/replays", tag = "archives", request_body = ReplayInput,
    params(("bus" = String, Path, pattern = "^[.\\-_A-Za-z0-9]{1,256}$")),
    responses((status = 202, body = Replay), (status = 400, body = Problem),
        (status = 404, description = "No such bus", body = Problem),
        (status = 409, description = "The name is taken", body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn start_replay(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(bus): Path<String>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    principal.require(scope::RULES_WRITE)?;
    check_path("the bus name", names::check_bus, &bus)?;
    let input: ReplayInput = body.parse()?;
    let t = &state.transformer;
    let out = t
        .bus()
        .start_replay(t.request(v1::StartReplayRequest {
            replay: Some(v1::Replay {
                bus,
                name: input.name,
                archive: input.archive,
                start_time: input.start_time,
                end_time: input.end_time,
                rules: input.rules.unwrap_or_default(),
                description: input.description.unwrap_or_default(),
                ..Default::default()
            }),
        }))
        .await?
        .into_inner();
    Ok((StatusCode::ACCEPTED, Json(Replay::from(out))).into_response())
}

/// A replay: its state and counts.
#[utoipa::path(get, path = "/v1/buses/{bus}/replays/{name}", tag = "archives",
    params(("bus" = String, Path, pattern = "^[.\\-_A-Za-z0-9]{1,256}$"), ("name" = String, Path, pattern = "^[.\\-_A-Za-z0-9]{1,64}$")),
    responses((status = 200, body = Replay), (status = 404, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn get_replay(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path((bus, name)): Path<(String, String)>,
) -> Result<Json<Replay>, ApiError> {
    principal.require(scope::RULES_READ)?;
    let t = &state.transformer;
    let out = t
        .bus()
        .get_replay(t.request(v1::GetReplayRequest { bus, name }))
        .await?;
    Ok(Json(out.into_inner().into()))
}

/// A bus's replays.
#[utoipa::path(get, path = "/v1/buses/{bus}/replays", tag = "archives",
    params(("bus" = String, Path, pattern = "^[.\\-_A-Za-z0-9]{1,256}$")),
    responses((status = 200, body = ReplayList), (status = 404, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn list_replays(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(bus): Path<String>,
) -> Result<Json<ReplayList>, ApiError> {
    principal.require(scope::RULES_READ)?;
    let t = &state.transformer;
    let out = t
        .bus()
        .list_replays(t.request(v1::ListReplaysRequest { bus }))
        .await?;
    Ok(Json(ReplayList {
        replays: out
            .into_inner()
            .replays
            .into_iter()
            .map(Replay::from)
            .collect(),
    }))
}

/// Stops a replay that has not ended: one not picked up yet is CANCELLED
/// at once, a running one CANCELLING until its runner stops (within a
/// second). 409 when it has ended.
#[utoipa::path(post, path = "/v1/buses/{bus}/replays/{name}/cancel", tag = "archives",
    params(("bus" = String, Path, pattern = "^[.\\-_A-Za-z0-9]{1,256}$"), ("name" = String, Path, pattern = "^[.\\-_A-Za-z0-9]{1,64}$")),
    responses((status = 200, body = Replay), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn cancel_replay(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path((bus, name)): Path<(String, String)>,
) -> Result<Json<Replay>, ApiError> {
    principal.require(scope::RULES_WRITE)?;
    let t = &state.transformer;
    let out = t
        .bus()
        .cancel_replay(t.request(v1::CancelReplayRequest { bus, name }))
        .await?;
    Ok(Json(out.into_inner().into()))
}
