//! `POST /v1/events` (one event or a batch) and `GET /v1/events/{id}`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sluice_bus::subjects;
use sluice_model::event::{check_size, MAX_BATCH};
use sluice_model::ids::{derive_id, new_id};
use sluice_model::{EventInput, EventStatus, FieldError};
use utoipa::ToSchema;

use crate::auth::{scope, Principal};
use crate::body::JsonBody;
use crate::error::{ApiError, Problem};
use crate::idempotency::idempotent;
use crate::Shared;

/// A batch of events.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchInput {
    /// 1 to 100 events.
    #[schema(value_type = Vec<EventInput>, min_items = 1, max_items = 100)]
    pub entries: Vec<Value>,
}

/// `POST /v1/events` body: one event, or a batch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum EventsBody {
    /// One event.
    One(EventInput),
    /// A batch.
    Batch(BatchInput),
}

/// The answer for one accepted event.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// The event id.
    pub id: String,
}

/// One entry of a batch's answer: the id, or why it was not accepted.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchEntry {
    /// Accepted.
    Accepted(Accepted),
    /// Not accepted.
    Failed {
        /// `ResourceNotFoundException` (no such bus), `ServiceUnavailable`, ...
        error_code: String,
        /// What happened.
        error_message: String,
    },
}

/// The answer for a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchAccepted {
    /// Entries not accepted.
    pub failed_count: usize,
    /// One per entry, in order.
    pub entries: Vec<BatchEntry>,
}

/// The answer to `POST /v1/events`: one id, or the batch's entries.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum AcceptedBody {
    /// One event.
    One(Accepted),
    /// A batch.
    Batch(BatchAccepted),
}

/// An event's status.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// Event id.
    pub id: String,
    /// `accepted`, `processed`, `failed` or `dead_lettered`.
    #[schema(value_type = String)]
    pub status: EventStatus,
    /// Deliveries so far.
    pub attempts: u32,
    /// Other facts (source, detail-type, times, last error).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub more: Value,
}

/// Posts one event (`{"source","detail-type","detail",...}`) or a batch (`{"entries":[...]}`).
#[utoipa::path(post, path = "/v1/events", tag = "events",
    request_body(content = EventsBody, description = "One event, or {\"entries\": [event, ...]} (at most 100)"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe for 24 h",
        pattern = "^[\\x21-\\x7E]{1,255}$")),
    responses(
        (status = 202, description = "Accepted (queued durably)", body = AcceptedBody),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, description = "The event names a bus that does not exist", body = Problem),
        (status = 409, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 422, body = Problem), (status = 429, body = Problem), (status = 503, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn post_events(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response, ApiError> {
    principal.require(scope::EVENTS_WRITE)?;
    let is_batch = body.value.get("entries").is_some();
    let (state2, principal2, headers2) = (state.clone(), principal.clone(), headers.clone());
    let bytes = body.bytes.clone();
    idempotent(
        &state,
        &principal.name,
        "events",
        &headers,
        &bytes,
        |seed| async move {
            if is_batch {
                let batch: BatchInput = body.parse()?;
                batch_events(&state2, &principal2, &headers2, batch.entries, seed).await
            } else {
                let input: EventInput = body.parse()?;
                input.validate()?;
                if !bus_exists(&state2, input.event_bus_name.as_deref()).await? {
                    return Err(no_bus(input.event_bus_name.as_deref()));
                }
                let id = seed
                    .map(|s| derive_id(&s, "event/0"))
                    .unwrap_or_else(new_id);
                let id = publish_event(&state2, &principal2, &headers2, input, id).await?;
                Ok((StatusCode::ACCEPTED, json!({ "id": id })))
            }
        },
    )
    .await
}

async fn batch_events(
    state: &Shared,
    principal: &Principal,
    headers: &HeaderMap,
    entries: Vec<Value>,
    seed: Option<String>,
) -> Result<(StatusCode, Value), ApiError> {
    if entries.is_empty() || entries.len() > MAX_BATCH {
        return Err(
            FieldError::new("/entries", format!("must hold 1 to {MAX_BATCH} events")).into(),
        );
    }
    // Every entry is checked before any is published: a client mistake never
    // leaves a partly written batch. Per-entry errors are left for an
    // unknown bus and for failures of the queue itself.
    let mut inputs = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let input: EventInput = sluice_model::from_value(entry)
            .and_then(|e: EventInput| e.validate().map(|()| e))
            .map_err(|e| ApiError::Invalid(e.under(&format!("/entries/{i}"))))?;
        inputs.push(input);
    }
    // An entry naming a bus that does not exist fails on its own, as a
    // PutEvents entry does; the others are accepted.
    let mut known = Vec::with_capacity(inputs.len());
    for input in &inputs {
        known.push(bus_exists(state, input.event_bus_name.as_deref()).await?);
    }
    let publishes = inputs
        .into_iter()
        .zip(known)
        .enumerate()
        .map(|(i, (input, known))| {
            let id = seed
                .as_ref()
                .map(|s| derive_id(s, &format!("event/{i}")))
                .unwrap_or_else(new_id);
            async move {
                if !known {
                    return Err(no_bus(input.event_bus_name.as_deref()));
                }
                publish_event(state, principal, headers, input, id).await
            }
        });
    let results = futures::future::join_all(publishes).await;
    let mut failed = 0;
    let mut unavailable = 0;
    let out: Vec<Value> = results
        .into_iter()
        .map(|r| match r {
            Ok(id) => json!({ "id": id }),
            Err(e) => {
                failed += 1;
                let code = match e {
                    ApiError::Unavailable(_) => {
                        unavailable += 1;
                        "ServiceUnavailable"
                    }
                    ApiError::Invalid(_) => "ValidationError",
                    ApiError::NotFound(_) => "ResourceNotFoundException",
                    _ => "InternalFailure",
                };
                json!({ "error_code": code, "error_message": e.to_string() })
            }
        })
        .collect();
    if unavailable > 0 && unavailable == out.len() {
        return Err(ApiError::Unavailable(
            "the queue accepted none of the events".into(),
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        json!({ "failed_count": failed, "entries": out }),
    ))
}

/// Whether the bus an event names exists (no name: the default bus).
async fn bus_exists(state: &Shared, bus: Option<&str>) -> Result<bool, ApiError> {
    match bus {
        None => Ok(true),
        Some(bus) => Ok(state.buses.exists(&state.store, bus).await?),
    }
}

/// An event naming a bus that does not exist: 404, as EventBridge answers
/// ResourceNotFoundException.
fn no_bus(bus: Option<&str>) -> ApiError {
    ApiError::NotFound(format!(
        "there is no bus named {:?}",
        bus.unwrap_or_default()
    ))
}

/// Publishes one validated event; returns its id once JetStream has it.
async fn publish_event(
    state: &Shared,
    principal: &Principal,
    headers: &HeaderMap,
    input: EventInput,
    id: String,
) -> Result<String, ApiError> {
    let event_bus = input.event_bus_name.clone();
    let envelope = input.into_envelope(
        id,
        &state.config.account,
        &state.config.region,
        time::OffsetDateTime::now_utc(),
    );
    let bytes = envelope.to_bytes();
    check_size(&bytes)?;
    let mut msg_headers = super::message_headers(principal, super::request_id(headers));
    if let Some(bus) = event_bus.filter(|b| b != sluice_model::names::DEFAULT_BUS) {
        msg_headers.insert(sluice_bus::headers::EVENT_BUS, bus.as_str());
    }
    let ack = state
        .bus
        .publish(
            &subjects::ingest(subjects::KIND_EVENT, &envelope.id),
            &envelope.id,
            bytes.into(),
            msg_headers,
        )
        .await?;
    metrics::counter!("sluice.gateway.events.accepted", "kind" => "event",
        "duplicate" => if ack.duplicate { "true" } else { "false" })
    .increment(1);
    Ok(envelope.id)
}

/// The status of an event.
#[utoipa::path(get, path = "/v1/events/{id}", tag = "events",
    params(("id" = String, Path, description = "Event id")),
    responses((status = 200, body = EventView), (status = 404, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn get_event(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<EventView>, ApiError> {
    principal.require(scope::EVENTS_READ)?;
    let not_found = || ApiError::NotFound(format!("no event with id {id:?}"));
    if sluice_model::ids::check_client_id(&id).is_err() {
        return Err(not_found());
    }
    if let Some(rec) = state.store.event(&id).await? {
        let more = json!({
            "kind": rec.kind, "source": rec.source, "detail-type": rec.detail_type,
            "accepted_at": rec.accepted_at, "processed_at": rec.processed_at,
            "last_error": rec.last_error, "updated_at": rec.updated_at,
        });
        return Ok(Json(EventView {
            id,
            status: rec.status,
            attempts: rec.attempts,
            more,
        }));
    }
    // Not recorded yet: is it still in the queue?
    match state.bus.queued_kind(&id).await? {
        Some(kind) => Ok(Json(EventView {
            id,
            status: EventStatus::Accepted,
            attempts: 0,
            more: json!({ "kind": kind }),
        })),
        None => Err(not_found()),
    }
}
