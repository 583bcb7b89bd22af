//! Sluice queues over HTTP, so a worker in any language can use them like
//! SQS: create and delete (through the transformer), send, receive with
//! long polling, delete by receipt handle, change visibility (straight on
//! JetStream).

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use sluice_bus::BusError;
use sluice_model::{names, FieldError};
use sluice_proto::v1;
use utoipa::ToSchema;

use super::rules::check_path;
use crate::auth::{scope, Principal};
use crate::body::JsonBody;
use crate::error::{ApiError, Problem};
use crate::Shared;

/// Longest long poll (SQS's).
pub const MAX_WAIT_SECONDS: u64 = 20;
/// Most messages per receive (SQS's).
pub const MAX_MESSAGES: usize = 10;
/// Largest message body (SQS's).
pub const MAX_BODY: usize = 256 * 1024;

/// A queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct Queue {
    /// Its name.
    pub name: String,
    /// Seconds a received message stays invisible.
    pub visibility_timeout_seconds: u32,
    /// Receives before a message goes to the dead-letter queue.
    pub max_receive_count: u32,
    /// Seconds an unreceived message is kept.
    pub retention_seconds: u32,
    /// Messages waiting or in flight.
    pub messages: u64,
    /// RFC 3339.
    pub created_at: String,
}

impl From<v1::Queue> for Queue {
    fn from(q: v1::Queue) -> Self {
        Self {
            name: q.name,
            visibility_timeout_seconds: q.visibility_timeout_seconds.unwrap_or_default(),
            max_receive_count: q.max_receive_count.unwrap_or_default(),
            retention_seconds: q.retention_seconds.unwrap_or_default(),
            messages: q.messages,
            created_at: q.created_at,
        }
    }
}

/// `PUT /v1/queues/{queue}` body (SQS's bounds and defaults).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueInput {
    /// 0 to 43200. Default 30.
    #[serde(default, deserialize_with = "sluice_model::input::int::optional")]
    #[schema(minimum = 0, maximum = 43200)]
    pub visibility_timeout_seconds: Option<u32>,
    /// 1 to 1000. Default 5.
    #[serde(default, deserialize_with = "sluice_model::input::int::optional")]
    #[schema(minimum = 1, maximum = 1000)]
    pub max_receive_count: Option<u32>,
    /// 60 to 1209600 (14 days). Default 345600 (4 days).
    #[serde(default, deserialize_with = "sluice_model::input::int::optional")]
    #[schema(minimum = 60, maximum = 1209600)]
    pub retention_seconds: Option<u32>,
}

/// The queues.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueList {
    /// By name.
    pub queues: Vec<Queue>,
}

/// `POST /v1/queues/{queue}/messages` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendInput {
    /// The message, up to 256 KiB.
    #[schema(max_length = 262144)]
    pub body: String,
    /// Your id for it: a repeated send with the same id within two minutes
    /// is stored once. Generated if absent.
    #[serde(default)]
    #[schema(pattern = "^[-_.:A-Za-z0-9]{1,128}$")]
    pub id: Option<String>,
}

/// A sent message.
#[derive(Debug, Serialize, ToSchema)]
pub struct Sent {
    /// Its id.
    pub message_id: String,
}

/// `POST /v1/queues/{queue}/receive` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiveInput {
    /// 1 to 10. Default 1.
    #[serde(default, deserialize_with = "sluice_model::input::int::optional")]
    #[schema(minimum = 1, maximum = 10)]
    pub max_messages: Option<usize>,
    /// Seconds to wait for a first message, 0 to 20. Default 0.
    #[serde(default, deserialize_with = "sluice_model::input::int::optional")]
    #[schema(minimum = 0, maximum = 20)]
    pub wait_time_seconds: Option<u64>,
}

/// A received message.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceivedMessage {
    /// Its id (for rule deliveries, the delivery id: de-duplicate by it).
    pub message_id: String,
    /// Delete it, or change its visibility, with this.
    pub receipt_handle: String,
    /// The body as sent (a rule delivery's input, usually JSON).
    pub body: String,
    /// Times received, this one included.
    pub receive_count: u64,
    /// When the queue accepted it (RFC 3339).
    pub sent_at: String,
    /// For rule deliveries: the bus, rule, target and event ids; for topic
    /// subscriptions: the topic, subscription and topic message ids.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub attributes: std::collections::BTreeMap<String, String>,
    /// A raw delivery from a topic: the message's SNS message attributes
    /// (`{"name": {"Type": ..., "Value": ...}}`), as SQS keeps them beside
    /// the body.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub message_attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

/// What a receive returned.
#[derive(Debug, Serialize, ToSchema)]
pub struct Received {
    /// 0 to `max_messages` messages.
    pub messages: Vec<ReceivedMessage>,
}

/// `POST /v1/queues/{queue}/messages/{receipt}/visibility` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisibilityInput {
    /// Seconds until it can be received again, 0 to 43200 (0: at once).
    #[serde(deserialize_with = "sluice_model::input::int::required")]
    #[schema(minimum = 0, maximum = 43200)]
    pub visibility_timeout_seconds: u64,
}

fn no_queue(name: &str) -> ApiError {
    ApiError::NotFound(format!("no queue named {name:?}"))
}

fn bus_error(e: BusError) -> ApiError {
    match e {
        // A handle this queue did not give out names nothing here.
        BusError::Receipt(m) => ApiError::NotFound(m),
        other => other.into(),
    }
}

/// Lists the queues.
#[utoipa::path(get, path = "/v1/queues", tag = "queues",
    responses((status = 200, body = QueueList)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn list(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<QueueList>, ApiError> {
    principal.require(scope::QUEUES_ADMIN)?;
    let t = &state.transformer;
    let out = t
        .queues()
        .list_queues(t.request(v1::ListQueuesRequest {}))
        .await?;
    Ok(Json(QueueList {
        queues: out
            .into_inner()
            .queues
            .into_iter()
            .map(Queue::from)
            .collect(),
    }))
}

/// Creates a queue (201) or changes its settings (200).
#[utoipa::path(put, path = "/v1/queues/{queue}", tag = "queues", request_body = QueueInput,
    params(("queue" = String, Path, pattern = "^[-_A-Za-z0-9]{1,80}$")),
    responses((status = 200, body = Queue), (status = 201, body = Queue), (status = 409, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn put(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(queue): Path<String>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    principal.require(scope::QUEUES_ADMIN)?;
    check_path("the queue name", names::check_queue, &queue)?;
    let input: QueueInput = body.parse()?;
    let t = &state.transformer;
    let out = t
        .queues()
        .put_queue(t.request(v1::PutQueueRequest {
            queue: Some(v1::Queue {
                name: queue,
                visibility_timeout_seconds: input.visibility_timeout_seconds,
                max_receive_count: input.max_receive_count,
                retention_seconds: input.retention_seconds,
                ..Default::default()
            }),
        }))
        .await?
        .into_inner();
    let q = out
        .queue
        .map(Queue::from)
        .ok_or_else(|| ApiError::Internal("no queue in the answer".into()))?;
    let status = if out.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(q)).into_response())
}

/// A queue, with its depth.
#[utoipa::path(get, path = "/v1/queues/{queue}", tag = "queues",
    params(("queue" = String, Path, pattern = "^[-_A-Za-z0-9]{1,80}$")),
    responses((status = 200, body = Queue), (status = 404, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn get(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(queue): Path<String>,
) -> Result<Json<Queue>, ApiError> {
    principal.require(scope::QUEUES_ADMIN)?;
    let t = &state.transformer;
    let out = t
        .queues()
        .get_queue(t.request(v1::GetQueueRequest { name: queue }))
        .await?;
    Ok(Json(out.into_inner().into()))
}

/// Deletes a queue and its messages (409 while a rule's target sends to it).
#[utoipa::path(delete, path = "/v1/queues/{queue}", tag = "queues",
    params(("queue" = String, Path, pattern = "^[-_A-Za-z0-9]{1,80}$")),
    responses((status = 204, description = "Deleted"), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn delete(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(queue): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(scope::QUEUES_ADMIN)?;
    let t = &state.transformer;
    t.queues()
        .delete_queue(t.request(v1::DeleteQueueRequest { name: queue }))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a message; 200 once it is stored.
#[utoipa::path(post, path = "/v1/queues/{queue}/messages", tag = "queues", request_body = SendInput,
    params(("queue" = String, Path, pattern = "^[-_A-Za-z0-9]{1,80}$")),
    responses((status = 200, body = Sent), (status = 404, body = Problem),
        (status = 429, body = Problem, description = "Over the principal's rate, or the queue holds all it may (see Retry-After)")),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn send(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(queue): Path<String>,
    body: JsonBody,
) -> Result<Json<Sent>, ApiError> {
    principal.require(scope::QUEUES_SEND)?;
    let input: SendInput = body.parse()?;
    if names::check_queue(&queue).is_err() {
        return Err(no_queue(&queue));
    }
    if input.body.len() > MAX_BODY {
        return Err(FieldError::new("/body", format!("must be at most {MAX_BODY} bytes")).into());
    }
    let id = match input.id {
        Some(id) => {
            sluice_model::ids::check_client_id(&id).map_err(|e| FieldError::new("/id", e))?;
            id
        }
        None => sluice_model::ids::new_id(),
    };
    let headers = super::message_headers(&principal, None);
    match state
        .bus
        .send_to_queue(&queue, &id, input.body.into_bytes().into(), headers)
        .await?
    {
        Some(_) => Ok(Json(Sent { message_id: id })),
        None => Err(no_queue(&queue)),
    }
}

/// Receives up to `max_messages`, waiting up to `wait_time_seconds` for the
/// first. A received message is invisible for the visibility timeout;
/// delete it when done, or it is received again (and after the queue's
/// max receive count it goes to the dead-letter queue).
#[utoipa::path(post, path = "/v1/queues/{queue}/receive", tag = "queues", request_body = ReceiveInput,
    params(("queue" = String, Path, pattern = "^[-_A-Za-z0-9]{1,80}$")),
    responses((status = 200, body = Received), (status = 404, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn receive(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(queue): Path<String>,
    body: JsonBody,
) -> Result<Json<Received>, ApiError> {
    principal.require(scope::QUEUES_CONSUME)?;
    let input: ReceiveInput = body.parse()?;
    let max = input.max_messages.unwrap_or(1);
    if !(1..=MAX_MESSAGES).contains(&max) {
        return Err(
            FieldError::new("/max_messages", format!("must be 1 to {MAX_MESSAGES}")).into(),
        );
    }
    let wait = input.wait_time_seconds.unwrap_or(0);
    if wait > MAX_WAIT_SECONDS {
        return Err(FieldError::new(
            "/wait_time_seconds",
            format!("must be 0 to {MAX_WAIT_SECONDS}"),
        )
        .into());
    }
    if names::check_queue(&queue).is_err() {
        return Err(no_queue(&queue));
    }
    let got = state
        .bus
        .receive(&queue, max, Duration::from_secs(wait))
        .await
        .map_err(bus_error)?
        .ok_or_else(|| no_queue(&queue))?;
    let messages = got
        .into_iter()
        .map(|m| {
            let mut attributes = std::collections::BTreeMap::new();
            if let Some(h) = &m.headers {
                use sluice_bus::headers as hn;
                for (key, name) in [
                    ("delivery_id", hn::DELIVERY_ID),
                    ("event_id", hn::EVENT_ID),
                    ("bus", hn::BUS),
                    ("rule", hn::RULE),
                    ("target", hn::TARGET),
                    ("topic", hn::TOPIC),
                    ("subscription", hn::SUBSCRIPTION),
                    ("topic_message_id", hn::MESSAGE_ID),
                    ("message_group_id", hn::MESSAGE_GROUP_ID),
                    ("sequence_number", hn::SEQUENCE_NUMBER),
                ] {
                    if let Some(v) = h.get(name) {
                        attributes.insert(key.to_string(), v.as_str().to_string());
                    }
                }
            }
            let message_attributes = m
                .headers
                .as_ref()
                .and_then(|h| h.get(sluice_bus::headers::MESSAGE_ATTRIBUTES))
                .and_then(|v| serde_json::from_str(v.as_str()).ok());
            ReceivedMessage {
                message_attributes,
                message_id: m.message_id,
                receipt_handle: m.receipt_handle,
                body: String::from_utf8_lossy(&m.body).into_owned(),
                receive_count: m.receive_count,
                sent_at: m
                    .sent_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                attributes,
            }
        })
        .collect();
    Ok(Json(Received { messages }))
}

/// Deletes a received message by its receipt handle.
#[utoipa::path(delete, path = "/v1/queues/{queue}/messages/{receipt_handle}", tag = "queues",
    params(("queue" = String, Path, pattern = "^[-_A-Za-z0-9]{1,80}$"), ("receipt_handle" = String, Path, pattern = "^[-_A-Za-z0-9]{16,1024}$")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "Not a receipt handle of this queue", body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn delete_message(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path((queue, receipt)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    principal.require(scope::QUEUES_CONSUME)?;
    state
        .bus
        .delete_received(&queue, &receipt)
        .await
        .map_err(bus_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Makes a received message visible again after `visibility_timeout_seconds`.
#[utoipa::path(post, path = "/v1/queues/{queue}/messages/{receipt_handle}/visibility", tag = "queues",
    request_body = VisibilityInput,
    params(("queue" = String, Path, pattern = "^[-_A-Za-z0-9]{1,80}$"), ("receipt_handle" = String, Path, pattern = "^[-_A-Za-z0-9]{16,1024}$")),
    responses((status = 204, description = "Changed"), (status = 404, description = "Not a receipt handle of this queue", body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn change_visibility(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path((queue, receipt)): Path<(String, String)>,
    body: JsonBody,
) -> Result<StatusCode, ApiError> {
    principal.require(scope::QUEUES_CONSUME)?;
    let input: VisibilityInput = body.parse()?;
    if input.visibility_timeout_seconds > 43_200 {
        return Err(FieldError::new("/visibility_timeout_seconds", "must be 0 to 43200").into());
    }
    state
        .bus
        .change_visibility(
            &queue,
            &receipt,
            Duration::from_secs(input.visibility_timeout_seconds),
        )
        .await
        .map_err(bus_error)?;
    Ok(StatusCode::NO_CONTENT)
}
