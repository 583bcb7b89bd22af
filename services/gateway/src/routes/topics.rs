//! Topics over HTTP (SNS's publish side): create, read, list and delete,
//! publish one message or a batch of up to ten. Every call goes to the
//! notifier over gRPC; a publish is answered once JetStream has stored it.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use sluice_model::names;
use sluice_model::topic::Attribute;
use sluice_proto::v1;
use utoipa::ToSchema;

use super::rules::check_path;
use crate::auth::{scope, Principal};
use crate::body::JsonBody;
use crate::error::{ApiError, Problem};
use crate::notifier::problem;
use crate::Shared;

/// A topic.
#[derive(Debug, Serialize, ToSchema)]
pub struct Topic {
    /// Its name.
    pub name: String,
    /// Shown as the sender of email notifications.
    pub display_name: String,
    /// RFC 3339.
    pub created_at: String,
    /// A FIFO topic (its name ends in `.fifo`): order per message group,
    /// de-duplication within the window, queue subscriptions only.
    pub fifo_topic: bool,
    /// FIFO topics: a message without a de-duplication id is
    /// de-duplicated by the SHA-256 of its message.
    pub content_based_deduplication: bool,
    /// FIFO topics: how long a de-duplication id is remembered (300, as SNS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deduplication_window_seconds: Option<u32>,
    /// The defaults of its subscriptions' delivery policies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_policy: Option<DeliveryPolicy>,
}

impl From<v1::Topic> for Topic {
    fn from(t: v1::Topic) -> Self {
        Self {
            name: t.name,
            display_name: t.display_name,
            created_at: t.created_at,
            fifo_topic: t.fifo_topic,
            content_based_deduplication: t.content_based_deduplication,
            deduplication_window_seconds: t.fifo_topic.then_some(t.deduplication_window_seconds),
            delivery_policy: t.delivery_policy.map(DeliveryPolicy::from),
        }
    }
}

/// `PUT /v1/topics/{topic}` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicInput {
    /// Up to 100 characters, no control characters.
    #[serde(default)]
    #[schema(max_length = 100, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub display_name: String,
    /// A FIFO topic; by default, whether the name ends in `.fifo` (a FIFO
    /// topic's must, and no other's may).
    #[serde(default)]
    pub fifo_topic: Option<bool>,
    /// FIFO topics: de-duplicate messages without a de-duplication id by
    /// the SHA-256 of their message.
    #[serde(default)]
    pub content_based_deduplication: bool,
    /// The defaults of its subscriptions' delivery policies (a field a
    /// subscription sets wins).
    #[serde(default, deserialize_with = "sluice_model::input::object::optional")]
    pub delivery_policy: Option<DeliveryPolicy>,
}

/// The topics.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopicList {
    /// By name.
    pub topics: Vec<Topic>,
}

/// One message to publish.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishInput {
    /// The message, up to 256 KiB with its attributes.
    #[schema(min_length = 1, max_length = 262144)]
    pub message: String,
    /// Email subject line: 1 to 100 printable ASCII characters, not starting with a space.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100, pattern = "^[!-~][ -~]*$")]
    pub subject: Option<String>,
    /// Up to 10, by name (1 to 256 of letters, digits, `_`, `-`, `.`):
    /// `{"Type": "String"|"String.Array"|"Number"|"Binary", "Value": "..."}`.
    #[serde(default)]
    pub message_attributes: BTreeMap<String, Attribute>,
    /// FIFO topics (required there, refused elsewhere): the message's
    /// group, 1 to 128 letters, digits and ASCII punctuation. Messages of
    /// one group are delivered in the order published.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    pub message_group_id: Option<String>,
    /// FIFO topics: a message with an id seen in the last 5 minutes is
    /// accepted and not delivered again. Required unless the topic has
    /// content-based de-duplication.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    pub message_deduplication_id: Option<String>,
}

/// One entry of a batch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishBatchEntry {
    /// Your id for the entry, unique in the batch: 1 to 80 of letters, digits, `-`, `_`.
    #[schema(pattern = "^[-_A-Za-z0-9]{1,80}$")]
    pub id: String,
    /// The message, up to 256 KiB with its attributes.
    #[schema(min_length = 1, max_length = 262144)]
    pub message: String,
    /// Email subject line: 1 to 100 printable ASCII characters, not starting with a space.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100, pattern = "^[!-~][ -~]*$")]
    pub subject: Option<String>,
    /// Up to 10, by name, as in a single publish.
    #[serde(default)]
    pub message_attributes: BTreeMap<String, Attribute>,
    /// FIFO topics: as in a single publish. A batch's entries are
    /// published in order.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    pub message_group_id: Option<String>,
    /// FIFO topics: as in a single publish.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    pub message_deduplication_id: Option<String>,
}

/// `POST /v1/topics/{topic}/messages/batch` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishBatchInput {
    /// 1 to 10 entries.
    #[schema(min_items = 1, max_items = 10)]
    pub entries: Vec<PublishBatchEntry>,
}

/// A published message.
#[derive(Debug, Serialize, ToSchema)]
pub struct Published {
    /// Its id.
    pub message_id: String,
    /// FIFO topics: its place in the topic's order (decimal; increasing
    /// within a message group).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<String>,
    /// FIFO topics: true when its de-duplication id was seen within the
    /// window (accepted, not delivered again; the original's sequence number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
}

impl From<v1::PublishResponse> for Published {
    fn from(p: v1::PublishResponse) -> Self {
        let fifo = !p.sequence_number.is_empty();
        Self {
            message_id: p.message_id,
            sequence_number: fifo.then_some(p.sequence_number),
            duplicate: fifo.then_some(p.duplicate),
        }
    }
}

/// One entry's outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishBatchResult {
    /// The entry's id.
    pub id: String,
    /// Set when it was published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// FIFO topics, when it was published: as in a single publish.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<String>,
    /// FIFO topics, when it was published: as in a single publish.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
    /// Set when it was not: `InvalidParameter`, `Unavailable` (retry it) or `InternalError`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Why it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// For `InvalidParameter`: JSON pointer to the field, from the request body's root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_pointer: Option<String>,
}

/// What a batch did, entry by entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishBatchOutput {
    /// In the order of the entries.
    pub results: Vec<PublishBatchResult>,
}

fn entry_of(id: String, p: PublishInput) -> v1::PublishEntry {
    v1::PublishEntry {
        id,
        message: p.message,
        subject: p.subject,
        message_attributes: p
            .message_attributes
            .into_iter()
            .map(|(name, a)| {
                (
                    name,
                    v1::MessageAttribute {
                        r#type: a.kind,
                        value: a.value,
                    },
                )
            })
            .collect(),
        message_group_id: p.message_group_id,
        message_deduplication_id: p.message_deduplication_id,
    }
}

/// Lists the topics.
#[utoipa::path(get, path = "/v1/topics", tag = "topics",
    responses((status = 200, body = TopicList)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn list(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<TopicList>, ApiError> {
    principal.require(scope::TOPICS_ADMIN)?;
    let n = &state.notifier;
    let out = n
        .topics()
        .list_topics(n.request(v1::ListTopicsRequest {}))
        .await
        .map_err(|s| problem(s, ""))?;
    Ok(Json(TopicList {
        topics: out
            .into_inner()
            .topics
            .into_iter()
            .map(Topic::from)
            .collect(),
    }))
}

/// Creates a topic (201) or changes its attributes (200).
#[utoipa::path(put, path = "/v1/topics/{topic}", tag = "topics", request_body = TopicInput,
    params(("topic" = String, Path, pattern = "^([-_A-Za-z0-9]{1,256}|[-_A-Za-z0-9]{1,251}\\.fifo)$")),
    responses((status = 200, body = Topic), (status = 201, body = Topic),
        (status = 400, description = "A bad topic name or display name", body = Problem), (status = 409, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn put(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(topic): Path<String>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    principal.require(scope::TOPICS_ADMIN)?;
    check_path("the topic name", names::check_topic, &topic)?;
    let input: TopicInput = body.parse()?;
    let n = &state.notifier;
    let out = n
        .topics()
        .put_topic(
            n.request(v1::PutTopicRequest {
                topic: Some(v1::Topic {
                    fifo_topic: input
                        .fifo_topic
                        .unwrap_or_else(|| names::is_fifo_topic(&topic)),
                    name: topic,
                    display_name: input.display_name,
                    content_based_deduplication: input.content_based_deduplication,
                    delivery_policy: input.delivery_policy.map(v1::DeliveryPolicy::from),
                    ..Default::default()
                }),
            }),
        )
        .await
        .map_err(|s| problem(s, ""))?
        .into_inner();
    let t = out
        .topic
        .map(Topic::from)
        .ok_or_else(|| ApiError::Internal("no topic in the answer".into()))?;
    let status = if out.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(t)).into_response())
}

/// A topic.
#[utoipa::path(get, path = "/v1/topics/{topic}", tag = "topics",
    params(("topic" = String, Path, pattern = "^([-_A-Za-z0-9]{1,256}|[-_A-Za-z0-9]{1,251}\\.fifo)$")),
    responses((status = 200, body = Topic), (status = 404, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn get(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(topic): Path<String>,
) -> Result<Json<Topic>, ApiError> {
    principal.require(scope::TOPICS_ADMIN)?;
    let n = &state.notifier;
    let out = n
        .topics()
        .get_topic(n.request(v1::GetTopicRequest { name: topic }))
        .await
        .map_err(|s| problem(s, ""))?;
    Ok(Json(out.into_inner().into()))
}

/// Deletes a topic. Messages already published are still delivered.
#[utoipa::path(delete, path = "/v1/topics/{topic}", tag = "topics",
    params(("topic" = String, Path, pattern = "^([-_A-Za-z0-9]{1,256}|[-_A-Za-z0-9]{1,251}\\.fifo)$")),
    responses((status = 204, description = "Deleted"), (status = 404, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn delete(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(topic): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(scope::TOPICS_ADMIN)?;
    let n = &state.notifier;
    n.topics()
        .delete_topic(n.request(v1::DeleteTopicRequest { name: topic }))
        .await
        .map_err(|s| problem(s, ""))?;
    Ok(StatusCode::NO_CONTENT)
}

/// A publish's field violations are 422s, as every other message's are.
fn publish_problem(status: tonic::Status, prefix: &str) -> ApiError {
    match problem(status, prefix) {
        ApiError::BadRequest(f) => ApiError::Invalid(f),
        other => other,
    }
}

/// Publishes a message; 202 once JetStream has stored it.
#[utoipa::path(post, path = "/v1/topics/{topic}/messages", tag = "topics", request_body = PublishInput,
    params(("topic" = String, Path, pattern = "^([-_A-Za-z0-9]{1,256}|[-_A-Za-z0-9]{1,251}\\.fifo)$")),
    responses((status = 202, body = Published), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn publish(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(topic): Path<String>,
    body: JsonBody,
) -> Result<(StatusCode, Json<Published>), ApiError> {
    principal.require(scope::TOPICS_PUBLISH)?;
    let input: PublishInput = body.parse()?;
    let n = &state.notifier;
    let out = n
        .topics()
        .publish(n.request(v1::PublishRequest {
            topic,
            entry: Some(entry_of(String::new(), input)),
            origin: format!("gateway/{}", principal.name),
        }))
        .await
        .map_err(|s| publish_problem(s, ""))?
        .into_inner();
    Ok((StatusCode::ACCEPTED, Json(Published::from(out))))
}

/// Publishes up to 10 messages; each entry succeeds or fails on its own
/// (200 with a result per entry).
#[utoipa::path(post, path = "/v1/topics/{topic}/messages/batch", tag = "topics", request_body = PublishBatchInput,
    params(("topic" = String, Path, pattern = "^([-_A-Za-z0-9]{1,256}|[-_A-Za-z0-9]{1,251}\\.fifo)$")),
    responses((status = 200, body = PublishBatchOutput), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn publish_batch(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(topic): Path<String>,
    body: JsonBody,
) -> Result<Json<PublishBatchOutput>, ApiError> {
    principal.require(scope::TOPICS_PUBLISH)?;
    let input: PublishBatchInput = body.parse()?;
    let n = &state.notifier;
    let out = n
        .topics()
        .publish_batch(
            n.request(v1::PublishBatchRequest {
                topic,
                entries: input
                    .entries
                    .into_iter()
                    .map(|e| {
                        entry_of(
                            e.id,
                            PublishInput {
                                message: e.message,
                                subject: e.subject,
                                message_attributes: e.message_attributes,
                                message_group_id: e.message_group_id,
                                message_deduplication_id: e.message_deduplication_id,
                            },
                        )
                    })
                    .collect(),
                origin: format!("gateway/{}", principal.name),
            }),
        )
        .await
        .map_err(|s| publish_problem(s, ""))?
        .into_inner();
    let results = out
        .results
        .into_iter()
        .enumerate()
        .map(|(i, r)| match r.published {
            Some(p) => {
                let p = Published::from(p);
                PublishBatchResult {
                    id: r.id,
                    message_id: Some(p.message_id),
                    sequence_number: p.sequence_number,
                    duplicate: p.duplicate,
                    error_code: None,
                    error_message: None,
                    error_pointer: None,
                }
            }
            None => PublishBatchResult {
                id: r.id,
                message_id: None,
                sequence_number: None,
                duplicate: None,
                error_pointer: (r.error_code == "InvalidParameter")
                    .then(|| format!("/entries/{i}{}", r.error_pointer)),
                error_code: Some(r.error_code),
                error_message: Some(r.error_message),
            },
        })
        .collect();
    Ok(Json(PublishBatchOutput { results }))
}

/// How one subscription's deliveries are made; unset fields take the
/// notifier's defaults (10 retries, 1 day, 10 at once, 15 s).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryPolicy {
    /// Retries after the first attempt.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "sluice_model::input::int::optional"
    )]
    #[schema(minimum = 0, maximum = 100)]
    pub max_retries: Option<u32>,
    /// A delivery older than this is dead-lettered instead of retried.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "sluice_model::input::int::optional"
    )]
    #[schema(minimum = 60, maximum = 1209600)]
    pub max_age_seconds: Option<u32>,
    /// Deliveries in flight at once, per notifier replica.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "sluice_model::input::int::optional"
    )]
    #[schema(minimum = 1, maximum = 1000)]
    pub max_concurrency: Option<u32>,
    /// How long one attempt (a webhook call, an email) may take.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "sluice_model::input::int::optional"
    )]
    #[schema(minimum = 1, maximum = 60)]
    pub timeout_seconds: Option<u32>,
}

impl From<DeliveryPolicy> for v1::DeliveryPolicy {
    fn from(p: DeliveryPolicy) -> Self {
        Self {
            max_retries: p.max_retries,
            max_age_seconds: p.max_age_seconds,
            max_concurrency: p.max_concurrency,
            timeout_seconds: p.timeout_seconds,
        }
    }
}

impl From<v1::DeliveryPolicy> for DeliveryPolicy {
    fn from(p: v1::DeliveryPolicy) -> Self {
        Self {
            max_retries: p.max_retries,
            max_age_seconds: p.max_age_seconds,
            max_concurrency: p.max_concurrency,
            timeout_seconds: p.timeout_seconds,
        }
    }
}

/// `POST /v1/topics/{topic}/subscriptions` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscribeInput {
    /// `queue` (a sluice queue), `http` or `https` (a webhook), `email` or
    /// `email-json`.
    #[schema(pattern = "^(queue|https?|email|email-json)$")]
    pub protocol: String,
    /// The queue's name, the webhook's URL, or the email address.
    #[schema(min_length = 1, max_length = 2048)]
    pub endpoint: String,
    /// An SNS filter policy; absent: every message.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter_policy: Option<serde_json::Value>,
    /// `MessageAttributes` (default) or `MessageBody`.
    #[serde(default)]
    #[schema(pattern = "^(MessageAttributes|MessageBody)$")]
    pub filter_policy_scope: Option<String>,
    /// Deliver the message as published instead of the SNS notification
    /// JSON (queue, http and https only).
    #[serde(default)]
    pub raw_message_delivery: bool,
    /// Retries, age limit, concurrency and timeout of its deliveries.
    #[serde(default, deserialize_with = "sluice_model::input::object::optional")]
    pub delivery_policy: Option<DeliveryPolicy>,
}

/// A subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct Subscription {
    /// Its id.
    pub subscription_id: String,
    /// Its topic.
    pub topic: String,
    /// `queue`, `http`, `https`, `email` or `email-json`.
    pub protocol: String,
    /// The queue's name, the webhook's URL, or the email address.
    pub endpoint: String,
    /// Its filter policy, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub filter_policy: Option<serde_json::Value>,
    /// `MessageAttributes` or `MessageBody`.
    pub filter_policy_scope: String,
    /// Delivered as published, not as the SNS notification JSON.
    pub raw_message_delivery: bool,
    /// As asked for; unset fields take the notifier's defaults.
    pub delivery_policy: DeliveryPolicy,
    /// `confirmed` or `pending_confirmation` (http, https and email wait
    /// until the endpoint opens its confirmation link).
    pub status: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, once confirmed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmed_at: Option<String>,
    /// http and https: the Standard Webhooks secret (`whsec_...`) that
    /// signs every request. Shown only in the answers of subscribing (also
    /// when subscribing again) and of rotating, never in listings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
    /// After a rotation: until when the previous secret also signs (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<String>,
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

impl From<v1::Subscription> for Subscription {
    fn from(s: v1::Subscription) -> Self {
        Self {
            subscription_id: s.subscription_id,
            topic: s.topic,
            protocol: s.protocol,
            endpoint: s.endpoint,
            filter_policy: (!s.filter_policy.is_empty())
                .then(|| serde_json::from_str(&s.filter_policy).ok())
                .flatten(),
            filter_policy_scope: s.filter_policy_scope,
            raw_message_delivery: s.raw_message_delivery,
            delivery_policy: s.delivery_policy.unwrap_or_default().into(),
            status: s.status,
            created_at: s.created_at,
            confirmed_at: non_empty(s.confirmed_at),
            signing_secret: non_empty(s.signing_secret),
            previous_secret_expires_at: non_empty(s.previous_secret_expires_at),
        }
    }
}

/// A topic's subscriptions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionList {
    /// By id.
    pub subscriptions: Vec<Subscription>,
}

/// Subscribes an endpoint to a topic (201). A `queue` subscription is
/// confirmed at once and gets every matching message published from then
/// on. An `http`/`https` endpoint first receives a signed POST
/// `{"type": "SubscriptionConfirmation", "subscription_id", "confirm_url"}`,
/// an email address a confirmation email; it receives messages once
/// `confirm_url` has been opened. Subscribing the same endpoint again
/// returns the subscription (and sends a pending one's confirmation again).
#[utoipa::path(post, path = "/v1/topics/{topic}/subscriptions", tag = "topics", request_body = SubscribeInput,
    params(("topic" = String, Path, pattern = "^([-_A-Za-z0-9]{1,256}|[-_A-Za-z0-9]{1,251}\\.fifo)$")),
    responses((status = 201, body = Subscription),
        (status = 400, description = "Not JSON; or an invalid endpoint, filter policy or delivery policy, or no such queue (naming the field)", body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, description = "A field of the wrong type", body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn subscribe(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(topic): Path<String>,
    body: JsonBody,
) -> Result<(StatusCode, Json<Subscription>), ApiError> {
    principal.require(scope::TOPICS_ADMIN)?;
    let input: SubscribeInput = body.parse()?;
    let n = &state.notifier;
    let out = n
        .topics()
        .subscribe(
            n.request(v1::SubscribeRequest {
                subscription: Some(v1::Subscription {
                    topic,
                    protocol: input.protocol,
                    endpoint: input.endpoint,
                    filter_policy: input
                        .filter_policy
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                    filter_policy_scope: input.filter_policy_scope.unwrap_or_default(),
                    raw_message_delivery: input.raw_message_delivery,
                    delivery_policy: input.delivery_policy.map(Into::into),
                    ..Default::default()
                }),
            }),
        )
        .await
        .map_err(|s| problem(s, ""))?;
    Ok((StatusCode::CREATED, Json(out.into_inner().into())))
}

/// A topic's subscriptions.
#[utoipa::path(get, path = "/v1/topics/{topic}/subscriptions", tag = "topics",
    params(("topic" = String, Path, pattern = "^([-_A-Za-z0-9]{1,256}|[-_A-Za-z0-9]{1,251}\\.fifo)$")),
    responses((status = 200, body = SubscriptionList), (status = 404, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn list_subscriptions(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path(topic): Path<String>,
) -> Result<Json<SubscriptionList>, ApiError> {
    principal.require(scope::TOPICS_ADMIN)?;
    let n = &state.notifier;
    let out = n
        .topics()
        .list_subscriptions(n.request(v1::ListSubscriptionsRequest { topic }))
        .await
        .map_err(|s| problem(s, ""))?;
    Ok(Json(SubscriptionList {
        subscriptions: out
            .into_inner()
            .subscriptions
            .into_iter()
            .map(Subscription::from)
            .collect(),
    }))
}

/// Removes a subscription.
#[utoipa::path(delete, path = "/v1/topics/{topic}/subscriptions/{id}", tag = "topics",
    params(("topic" = String, Path, pattern = "^([-_A-Za-z0-9]{1,256}|[-_A-Za-z0-9]{1,251}\\.fifo)$"), ("id" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 404, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn unsubscribe(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path((topic, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    principal.require(scope::TOPICS_ADMIN)?;
    let n = &state.notifier;
    n.topics()
        .unsubscribe(n.request(v1::UnsubscribeRequest {
            topic,
            subscription_id: id,
            token: String::new(),
        }))
        .await
        .map_err(|s| problem(s, ""))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/topics/{topic}/subscriptions/{id}/rotate-secret` body (`{}`
/// for the default overlap).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateInput {
    /// How long the previous secret keeps signing (both signatures are
    /// sent meanwhile). Default 86400 (a day); 0 ends it at once.
    #[serde(default, deserialize_with = "sluice_model::input::int::optional")]
    #[schema(minimum = 0, maximum = 604800)]
    pub overlap_seconds: Option<u32>,
}

/// Gives an http or https subscription a new signing secret, returned
/// once here. Requests carry signatures with both secrets until the
/// overlap ends.
#[utoipa::path(post, path = "/v1/topics/{topic}/subscriptions/{id}/rotate-secret", tag = "topics",
    request_body = RotateInput,
    params(("topic" = String, Path, pattern = "^([-_A-Za-z0-9]{1,256}|[-_A-Za-z0-9]{1,251}\\.fifo)$"), ("id" = String, Path)),
    responses((status = 200, body = Subscription), (status = 400, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn rotate_secret(
    State(state): State<Shared>,
    Extension(principal): Extension<Principal>,
    Path((topic, id)): Path<(String, String)>,
    body: JsonBody,
) -> Result<Json<Subscription>, ApiError> {
    principal.require(scope::TOPICS_ADMIN)?;
    let input: RotateInput = body.parse()?;
    let n = &state.notifier;
    let out = n
        .topics()
        .rotate_signing_secret(n.request(v1::RotateSigningSecretRequest {
            topic,
            subscription_id: id,
            overlap_seconds: input.overlap_seconds,
        }))
        .await
        .map_err(|s| problem(s, ""))?;
    Ok(Json(out.into_inner().into()))
}

/// The token of a confirmation or unsubscribe link.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkToken {
    /// As the link carries it.
    #[param(min_length = 1)]
    pub token: String,
}

/// What opening a link did.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkOutcome {
    /// The subscription.
    pub subscription_id: String,
    /// Its topic.
    pub topic: String,
    /// `confirmed` or `unsubscribed`.
    pub status: String,
}

fn token_of(
    q: Result<axum::extract::Query<LinkToken>, axum::extract::rejection::QueryRejection>,
) -> Result<String, ApiError> {
    match q {
        Ok(axum::extract::Query(t)) if !t.token.is_empty() => Ok(t.token),
        _ => Err(ApiError::BadParameter("the link has no token".into())),
    }
}

/// Confirms a subscription: the `confirm_url` of a confirmation request or
/// email. Needs no credentials: the token is the proof. Opening it again
/// is harmless.
#[utoipa::path(get, path = "/v1/topics/{topic}/subscriptions/{id}/confirm", tag = "topics",
    params(("topic" = String, Path), ("id" = String, Path), LinkToken),
    responses((status = 200, body = LinkOutcome), (status = 400, body = Problem),
        (status = 404, description = "No such subscription, or not its token", body = Problem),
        (status = 503, body = Problem)))]
pub async fn confirm(
    State(state): State<Shared>,
    Path((topic, id)): Path<(String, String)>,
    q: Result<axum::extract::Query<LinkToken>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<LinkOutcome>, ApiError> {
    let token = token_of(q)?;
    let n = &state.notifier;
    let out = n
        .topics()
        .confirm_subscription(n.request(v1::ConfirmSubscriptionRequest {
            topic,
            subscription_id: id,
            token,
        }))
        .await
        .map_err(|s| problem(s, ""))?
        .into_inner();
    Ok(Json(LinkOutcome {
        subscription_id: out.subscription_id,
        topic: out.topic,
        status: out.status,
    }))
}

async fn unsubscribe_by_link(
    state: Shared,
    topic: String,
    id: String,
    token: String,
) -> Result<Json<LinkOutcome>, ApiError> {
    let n = &state.notifier;
    n.topics()
        .unsubscribe(n.request(v1::UnsubscribeRequest {
            topic: topic.clone(),
            subscription_id: id.clone(),
            token,
        }))
        .await
        .map_err(|s| problem(s, ""))?;
    Ok(Json(LinkOutcome {
        subscription_id: id,
        topic,
        status: "unsubscribed".into(),
    }))
}

/// Removes a subscription: the unsubscribe link of every email and of
/// webhook notifications (`UnsubscribeURL`). Needs no credentials: the
/// token is the proof.
#[utoipa::path(get, path = "/v1/topics/{topic}/subscriptions/{id}/unsubscribe", tag = "topics",
    params(("topic" = String, Path), ("id" = String, Path), LinkToken),
    responses((status = 200, body = LinkOutcome), (status = 400, body = Problem),
        (status = 404, description = "No such subscription, or not its token", body = Problem),
        (status = 503, body = Problem)))]
pub async fn unsubscribe_link(
    State(state): State<Shared>,
    Path((topic, id)): Path<(String, String)>,
    q: Result<axum::extract::Query<LinkToken>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<LinkOutcome>, ApiError> {
    let token = token_of(q)?;
    unsubscribe_by_link(state, topic, id, token).await
}

/// One-click unsubscribe (RFC 8058): mail clients POST to the
/// `List-Unsubscribe` link.
#[utoipa::path(post, path = "/v1/topics/{topic}/subscriptions/{id}/unsubscribe", tag = "topics",
    params(("topic" = String, Path), ("id" = String, Path), LinkToken),
    responses((status = 200, body = LinkOutcome), (status = 400, body = Problem),
        (status = 404, description = "No such subscription, or not its token", body = Problem),
        (status = 503, body = Problem)))]
pub async fn unsubscribe_one_click(
    State(state): State<Shared>,
    Path((topic, id)): Path<(String, String)>,
    q: Result<axum::extract::Query<LinkToken>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<LinkOutcome>, ApiError> {
    let token = token_of(q)?;
    unsubscribe_by_link(state, topic, id, token).await
}
