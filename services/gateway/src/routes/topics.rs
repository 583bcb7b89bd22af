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
}

impl From<v1::Topic> for Topic {
    fn from(t: v1::Topic) -> Self {
        Self {
            name: t.name,
            display_name: t.display_name,
            created_at: t.created_at,
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
}

/// One entry's outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishBatchResult {
    /// The entry's id.
    pub id: String,
    /// Set when it was published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
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
    params(("topic" = String, Path, pattern = "^[-_A-Za-z0-9]{1,256}$")),
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
        .put_topic(n.request(v1::PutTopicRequest {
            topic: Some(v1::Topic {
                name: topic,
                display_name: input.display_name,
                created_at: String::new(),
            }),
        }))
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
    params(("topic" = String, Path, pattern = "^[-_A-Za-z0-9]{1,256}$")),
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
    params(("topic" = String, Path, pattern = "^[-_A-Za-z0-9]{1,256}$")),
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
    params(("topic" = String, Path, pattern = "^[-_A-Za-z0-9]{1,256}$")),
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
    Ok((
        StatusCode::ACCEPTED,
        Json(Published {
            message_id: out.message_id,
        }),
    ))
}

/// Publishes up to 10 messages; each entry succeeds or fails on its own
/// (200 with a result per entry).
#[utoipa::path(post, path = "/v1/topics/{topic}/messages/batch", tag = "topics", request_body = PublishBatchInput,
    params(("topic" = String, Path, pattern = "^[-_A-Za-z0-9]{1,256}$")),
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
            Some(p) => PublishBatchResult {
                id: r.id,
                message_id: Some(p.message_id),
                error_code: None,
                error_message: None,
                error_pointer: None,
            },
            None => PublishBatchResult {
                id: r.id,
                message_id: None,
                error_pointer: (r.error_code == "InvalidParameter")
                    .then(|| format!("/entries/{i}{}", r.error_pointer)),
                error_code: Some(r.error_code),
                error_message: Some(r.error_message),
            },
        })
        .collect();
    Ok(Json(PublishBatchOutput { results }))
}

/// `POST /v1/topics/{topic}/subscriptions` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscribeInput {
    /// `queue` (a sluice queue); `email`, `email-json` and `https` come next.
    #[schema(pattern = "^queue$")]
    pub protocol: String,
    /// For `queue`: the name of an existing sluice queue.
    #[schema(pattern = "^[-_A-Za-z0-9]{1,80}$")]
    pub endpoint: String,
    /// An SNS filter policy; absent: every message.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter_policy: Option<serde_json::Value>,
    /// `MessageAttributes` (default) or `MessageBody`.
    #[serde(default)]
    #[schema(pattern = "^(MessageAttributes|MessageBody)$")]
    pub filter_policy_scope: Option<String>,
    /// Deliver the message as published instead of the SNS notification JSON.
    #[serde(default)]
    pub raw_message_delivery: bool,
}

/// A subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct Subscription {
    /// Its id.
    pub subscription_id: String,
    /// Its topic.
    pub topic: String,
    /// `queue`.
    pub protocol: String,
    /// For `queue`, the queue's name.
    pub endpoint: String,
    /// Its filter policy, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub filter_policy: Option<serde_json::Value>,
    /// `MessageAttributes` or `MessageBody`.
    pub filter_policy_scope: String,
    /// Delivered as published, not as the SNS notification JSON.
    pub raw_message_delivery: bool,
    /// `confirmed` or `pending_confirmation`.
    pub status: String,
    /// RFC 3339.
    pub created_at: String,
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
            status: s.status,
            created_at: s.created_at,
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
/// confirmed at once and gets every matching message published from then on.
#[utoipa::path(post, path = "/v1/topics/{topic}/subscriptions", tag = "topics", request_body = SubscribeInput,
    params(("topic" = String, Path, pattern = "^[-_A-Za-z0-9]{1,256}$")),
    responses((status = 201, body = Subscription),
        (status = 400, description = "An invalid filter policy, or no such queue", body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)),
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
    params(("topic" = String, Path, pattern = "^[-_A-Za-z0-9]{1,256}$")),
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
    params(("topic" = String, Path, pattern = "^[-_A-Za-z0-9]{1,256}$"), ("id" = String, Path)),
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
        }))
        .await
        .map_err(|s| problem(s, ""))?;
    Ok(StatusCode::NO_CONTENT)
}
