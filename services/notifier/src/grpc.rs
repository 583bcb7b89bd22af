//! `sluice.v1.Topics`: topics kept in the store, publishes checked as SNS
//! checks them and stored in JetStream before they are acknowledged. Every
//! call runs in a span that continues the caller's trace and is bounded by
//! the caller's deadline and the server's own limit.

use prost::Message as _;
use sluice_model::topic::{self, Attribute, Publish, TopicMessage};
use sluice_model::FieldError;
use sluice_proto::v1;
use sluice_proto::v1::topics_server::{Topics, TopicsServer};
use sluice_runtime::grpc::{AdminError, AdminResult, Violation};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use tower_http::trace::TraceLayer;

use crate::Shared;

/// Longest display name (SNS's).
pub const MAX_DISPLAY_NAME: usize = 100;

/// The service.
#[derive(Debug, Clone)]
pub struct TopicsApi {
    /// Shared state.
    pub state: Shared,
}

/// Serves until `shutdown`; health turns NOT_SERVING first, so balancers
/// stop sending calls while the last ones finish.
pub async fn serve(
    state: Shared,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<TopicsServer<TopicsApi>>().await;
    let stop = shutdown.clone();
    let draining = async move {
        stop.cancelled().await;
        health.set_not_serving::<TopicsServer<TopicsApi>>().await;
    };
    tonic::transport::Server::builder()
        .timeout(sluice_runtime::grpc::SERVER_TIMEOUT)
        .layer(
            TraceLayer::new_for_grpc()
                .make_span_with(sluice_runtime::grpc::span_for("notifier"))
                .on_failure(()),
        )
        .add_service(health_service)
        .add_service(TopicsServer::new(TopicsApi { state }))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), draining)
        .await?;
    Ok(())
}

/// Checks a topic's attributes, filling in nothing the caller did not set.
pub fn check_topic(t: &v1::Topic) -> Result<v1::Topic, Violation> {
    sluice_model::names::check_topic(&t.name).map_err(|e| Violation::new("", e))?;
    if t.display_name.chars().count() > MAX_DISPLAY_NAME {
        return Err(Violation::new(
            "/display_name",
            format!("must be at most {MAX_DISPLAY_NAME} characters"),
        ));
    }
    if t.display_name.chars().any(char::is_control) {
        return Err(Violation::new(
            "/display_name",
            "must not hold control characters",
        ));
    }
    Ok(v1::Topic {
        name: t.name.clone(),
        display_name: t.display_name.clone(),
        created_at: String::new(),
    })
}

fn violation(e: FieldError) -> Violation {
    Violation::new(e.pointer, e.detail)
}

/// A publish entry as the model checks it.
fn publish_of(entry: &v1::PublishEntry) -> Publish {
    Publish {
        message: entry.message.clone(),
        subject: entry.subject.clone(),
        attributes: entry
            .message_attributes
            .iter()
            .map(|(name, a)| {
                (
                    name.clone(),
                    Attribute {
                        kind: a.r#type.clone(),
                        value: a.value.clone(),
                    },
                )
            })
            .collect(),
    }
}

impl TopicsApi {
    fn read(rec: &sluice_store::topics::TopicRecord) -> AdminResult<v1::Topic> {
        let mut t = v1::Topic::decode(rec.spec.as_slice()).map_err(|e| {
            AdminError::Internal(format!("topic {} cannot be decoded: {e}", rec.name))
        })?;
        t.created_at = rec.created_at.clone();
        Ok(t)
    }

    async fn exists(&self, name: &str) -> AdminResult<bool> {
        if sluice_model::names::check_topic(name).is_err() {
            return Ok(false);
        }
        Ok(self.state.store.topic(name).await?.is_some())
    }

    /// Checks one entry and stores it in JetStream; returns its message id.
    async fn publish_one(
        &self,
        topic_name: &str,
        entry: &v1::PublishEntry,
        origin: &str,
    ) -> AdminResult<String> {
        let p = publish_of(entry);
        topic::check_publish(&p).map_err(violation)?;
        let message = TopicMessage {
            message: p.message,
            subject: p.subject,
            message_attributes: p
                .attributes
                .into_iter()
                .map(|(name, a)| (name, serde_json::json!({"Type": a.kind, "Value": a.value})))
                .collect(),
            origin: (!origin.is_empty()).then(|| origin.to_string()),
        };
        let body = serde_json::to_vec(&message)
            .map_err(|e| AdminError::Internal(format!("encoding a topic message: {e}")))?;
        let message_id = sluice_model::ids::new_id();
        match self
            .state
            .bus
            .publish(
                &sluice_bus::subjects::notify(topic_name),
                &message_id,
                body.into(),
                async_nats::HeaderMap::new(),
            )
            .await
        {
            Ok(_) => {}
            // Within SNS's limits, but too large once encoded (JSON escapes
            // control characters six bytes each): the same message would
            // fail again, so it is the caller's to change.
            Err(sluice_bus::BusError::TooLarge { .. }) => {
                return Err(AdminError::Invalid(Violation::new(
                    "/message",
                    "too large to store once encoded (control characters count six bytes each)",
                )))
            }
            Err(e) => return Err(e.into()),
        }
        metrics::counter!("sluice.notifier.published").increment(1);
        Ok(message_id)
    }
}

#[tonic::async_trait]
impl Topics for TopicsApi {
    async fn put_topic(
        &self,
        request: Request<v1::PutTopicRequest>,
    ) -> Result<Response<v1::PutTopicResponse>, Status> {
        let t = request
            .into_inner()
            .topic
            .ok_or_else(|| AdminError::Invalid(Violation::new("", "a topic is required")))?;
        let checked = check_topic(&t).map_err(AdminError::from)?;
        let store = &self.state.store;
        if store
            .topic(&checked.name)
            .await
            .map_err(AdminError::from)?
            .is_none()
        {
            let count = store.topics().await.map_err(AdminError::from)?.len();
            let max = self.state.config.max_topics;
            if count >= max {
                return Err(AdminError::Conflict(format!(
                    "there are {count} topics, the most allowed (SLUICE_NOTIFIER_MAX_TOPICS is {max})"
                ))
                .into());
            }
        }
        let (rec, created) = store
            .put_topic(&checked.name, checked.encode_to_vec())
            .await
            .map_err(AdminError::from)?;
        Ok(Response::new(v1::PutTopicResponse {
            topic: Some(Self::read(&rec)?),
            created,
        }))
    }

    async fn get_topic(
        &self,
        request: Request<v1::GetTopicRequest>,
    ) -> Result<Response<v1::Topic>, Status> {
        let name = request.into_inner().name;
        let not_found = || AdminError::NotFound(format!("no topic named {name:?}"));
        if sluice_model::names::check_topic(&name).is_err() {
            return Err(not_found().into());
        }
        match self
            .state
            .store
            .topic(&name)
            .await
            .map_err(AdminError::from)?
        {
            Some(rec) => Ok(Response::new(Self::read(&rec)?)),
            None => Err(not_found().into()),
        }
    }

    async fn list_topics(
        &self,
        _request: Request<v1::ListTopicsRequest>,
    ) -> Result<Response<v1::ListTopicsResponse>, Status> {
        let topics = self
            .state
            .store
            .topics()
            .await
            .map_err(AdminError::from)?
            .iter()
            .map(Self::read)
            .collect::<AdminResult<Vec<_>>>()?;
        Ok(Response::new(v1::ListTopicsResponse { topics }))
    }

    async fn delete_topic(
        &self,
        request: Request<v1::DeleteTopicRequest>,
    ) -> Result<Response<v1::DeleteTopicResponse>, Status> {
        let name = request.into_inner().name;
        let not_found = || AdminError::NotFound(format!("no topic named {name:?}"));
        if sluice_model::names::check_topic(&name).is_err() {
            return Err(not_found().into());
        }
        // Its subscriptions go with it, as in SNS: removed first, so a
        // failure part-way leaves the topic to delete again.
        let store = &self.state.store;
        for rec in store
            .subscriptions_of(&name)
            .await
            .map_err(AdminError::from)?
        {
            store
                .delete_subscription(&name, &rec.id)
                .await
                .map_err(AdminError::from)?;
        }
        if !store.delete_topic(&name).await.map_err(AdminError::from)? {
            return Err(not_found().into());
        }
        Ok(Response::new(v1::DeleteTopicResponse {}))
    }

    async fn subscribe(
        &self,
        request: Request<v1::SubscribeRequest>,
    ) -> Result<Response<v1::Subscription>, Status> {
        let sub = request
            .into_inner()
            .subscription
            .ok_or_else(|| AdminError::Invalid(Violation::new("", "a subscription is required")))?;
        crate::subscriptions::check(&sub).map_err(AdminError::from)?;
        if !self.exists(&sub.topic).await? {
            return Err(AdminError::NotFound(format!("no topic named {:?}", sub.topic)).into());
        }
        if sub.protocol == "queue"
            && self
                .state
                .bus
                .queue_state(&sub.endpoint)
                .await
                .map_err(AdminError::from)?
                .is_none()
        {
            return Err(AdminError::Invalid(Violation::new(
                "/endpoint",
                format!("there is no queue named {:?}", sub.endpoint),
            ))
            .into());
        }
        // One subscription per (protocol, endpoint), as in SNS: asking
        // again returns it; asking with other attributes is a conflict.
        let id = sluice_model::ids::derive_id(
            &sub.topic,
            &format!("subscription/{}/{}", sub.protocol, sub.endpoint),
        );
        let store = &self.state.store;
        let existing = store
            .subscriptions_of(&sub.topic)
            .await
            .map_err(AdminError::from)?;
        let scope = if sub.filter_policy_scope.is_empty() {
            "MessageAttributes".to_string()
        } else {
            sub.filter_policy_scope.clone()
        };
        if let Some(rec) = existing.iter().find(|r| r.id == id) {
            let old = v1::Subscription::decode(rec.spec.as_slice()).map_err(|e| {
                AdminError::Internal(format!("subscription {} cannot be decoded: {e}", rec.id))
            })?;
            let same_policy = match (
                serde_json::from_str::<serde_json::Value>(&old.filter_policy),
                serde_json::from_str::<serde_json::Value>(&sub.filter_policy),
            ) {
                (Ok(a), Ok(b)) => a == b,
                _ => old.filter_policy == sub.filter_policy,
            };
            if same_policy
                && old.filter_policy_scope == scope
                && old.raw_message_delivery == sub.raw_message_delivery
            {
                return Ok(Response::new(old));
            }
            return Err(AdminError::Conflict(format!(
                "{} {:?} is already subscribed to {:?} with other attributes; unsubscribe it first",
                sub.protocol, sub.endpoint, sub.topic
            ))
            .into());
        }
        let count = existing.len();
        let max = self.state.config.max_subscriptions;
        if count >= max {
            return Err(AdminError::Conflict(format!(
                "topic {:?} has {count} subscriptions, the most allowed (SLUICE_NOTIFIER_MAX_SUBSCRIPTIONS is {max})",
                sub.topic
            ))
            .into());
        }
        let stored = v1::Subscription {
            subscription_id: id,
            status: "confirmed".into(),
            created_at: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            filter_policy_scope: scope,
            ..sub
        };
        store
            .put_subscription(
                &stored.topic,
                &stored.subscription_id,
                stored.encode_to_vec(),
            )
            .await
            .map_err(AdminError::from)?;
        Ok(Response::new(stored))
    }

    async fn list_subscriptions(
        &self,
        request: Request<v1::ListSubscriptionsRequest>,
    ) -> Result<Response<v1::ListSubscriptionsResponse>, Status> {
        let topic = request.into_inner().topic;
        if !self.exists(&topic).await? {
            return Err(AdminError::NotFound(format!("no topic named {topic:?}")).into());
        }
        let subscriptions = self
            .state
            .store
            .subscriptions_of(&topic)
            .await
            .map_err(AdminError::from)?
            .iter()
            .map(|r| {
                v1::Subscription::decode(r.spec.as_slice()).map_err(|e| {
                    AdminError::Internal(format!("subscription {} cannot be decoded: {e}", r.id))
                })
            })
            .collect::<AdminResult<Vec<_>>>()?;
        Ok(Response::new(v1::ListSubscriptionsResponse {
            subscriptions,
        }))
    }

    async fn unsubscribe(
        &self,
        request: Request<v1::UnsubscribeRequest>,
    ) -> Result<Response<v1::UnsubscribeResponse>, Status> {
        let req = request.into_inner();
        let not_found = || {
            AdminError::NotFound(format!(
                "topic {:?} has no subscription {:?}",
                req.topic, req.subscription_id
            ))
        };
        if sluice_model::names::check_topic(&req.topic).is_err() || req.subscription_id.is_empty() {
            return Err(not_found().into());
        }
        if !self
            .state
            .store
            .delete_subscription(&req.topic, &req.subscription_id)
            .await
            .map_err(AdminError::from)?
        {
            return Err(not_found().into());
        }
        Ok(Response::new(v1::UnsubscribeResponse {}))
    }

    async fn publish(
        &self,
        request: Request<v1::PublishRequest>,
    ) -> Result<Response<v1::PublishResponse>, Status> {
        let req = request.into_inner();
        let entry = req
            .entry
            .ok_or_else(|| AdminError::Invalid(Violation::new("", "an entry is required")))?;
        if !self.exists(&req.topic).await? {
            return Err(AdminError::NotFound(format!("no topic named {:?}", req.topic)).into());
        }
        let message_id = self.publish_one(&req.topic, &entry, &req.origin).await?;
        Ok(Response::new(v1::PublishResponse { message_id }))
    }

    async fn publish_batch(
        &self,
        request: Request<v1::PublishBatchRequest>,
    ) -> Result<Response<v1::PublishBatchResponse>, Status> {
        let req = request.into_inner();
        if req.entries.is_empty() || req.entries.len() > topic::MAX_BATCH {
            return Err(AdminError::Invalid(Violation::new(
                "/entries",
                format!("must hold 1 to {} entries", topic::MAX_BATCH),
            ))
            .into());
        }
        let mut seen = std::collections::HashSet::new();
        for (i, e) in req.entries.iter().enumerate() {
            if sluice_model::names::check_batch_entry_id(&e.id).is_err() {
                return Err(AdminError::Invalid(Violation::new(
                    format!("/entries/{i}/id"),
                    "must be 1 to 80 of letters, digits, '-' and '_'",
                ))
                .into());
            }
            if !seen.insert(e.id.as_str()) {
                return Err(AdminError::Invalid(Violation::new(
                    format!("/entries/{i}/id"),
                    "ids must be unique in a batch",
                ))
                .into());
            }
        }
        let total: usize = req
            .entries
            .iter()
            .map(|e| topic::publish_size(&publish_of(e)))
            .sum();
        if total > topic::MAX_MESSAGE_BYTES {
            return Err(AdminError::Invalid(Violation::new(
                "/entries",
                format!(
                    "the batch takes {total} bytes; at most {} in all",
                    topic::MAX_MESSAGE_BYTES
                ),
            ))
            .into());
        }
        if !self.exists(&req.topic).await? {
            return Err(AdminError::NotFound(format!("no topic named {:?}", req.topic)).into());
        }
        let results = futures_results(self, &req).await;
        Ok(Response::new(v1::PublishBatchResponse { results }))
    }
}

/// Publishes every entry (concurrently); each succeeds or fails on its own.
async fn futures_results(
    api: &TopicsApi,
    req: &v1::PublishBatchRequest,
) -> Vec<v1::PublishBatchResultEntry> {
    let mut out = Vec::with_capacity(req.entries.len());
    let published = futures::future::join_all(
        req.entries
            .iter()
            .map(|e| api.publish_one(&req.topic, e, &req.origin)),
    )
    .await;
    for (entry, result) in req.entries.iter().zip(published) {
        let mut r = v1::PublishBatchResultEntry {
            id: entry.id.clone(),
            ..Default::default()
        };
        match result {
            Ok(message_id) => r.published = Some(v1::PublishResponse { message_id }),
            Err(AdminError::Invalid(v)) => {
                r.error_code = "InvalidParameter".into();
                r.error_message = v.message;
                r.error_pointer = v.pointer;
            }
            Err(AdminError::Internal(m)) => {
                tracing::error!(error = %m, "publishing a batch entry failed");
                r.error_code = "InternalError".into();
                r.error_message = "the notifier failed; the entry may be retried".into();
            }
            Err(e) => {
                r.error_code = "Unavailable".into();
                r.error_message = e.to_string();
            }
        }
        out.push(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_attributes_follow_sns_bounds() {
        let ok = check_topic(&v1::Topic {
            name: "orders-shipped_1".into(),
            display_name: "Shop".into(),
            created_at: "ignored".into(),
        })
        .unwrap();
        assert_eq!(ok.created_at, "", "set by the server only");
        for (t, ptr) in [
            (
                v1::Topic {
                    name: "a.b".into(),
                    ..Default::default()
                },
                "",
            ),
            (
                v1::Topic {
                    name: "a".repeat(257),
                    ..Default::default()
                },
                "",
            ),
            (
                v1::Topic {
                    name: "a".into(),
                    display_name: "x".repeat(101),
                    ..Default::default()
                },
                "/display_name",
            ),
            (
                v1::Topic {
                    name: "a".into(),
                    display_name: "two\nlines".into(),
                    ..Default::default()
                },
                "/display_name",
            ),
        ] {
            assert_eq!(check_topic(&t).unwrap_err().pointer, ptr, "{t:?}");
        }
    }

    #[test]
    fn entries_become_what_the_model_checks() {
        let mut attrs = std::collections::BTreeMap::new();
        attrs.insert(
            "colour".to_string(),
            v1::MessageAttribute {
                r#type: "Number".into(),
                value: "x".into(),
            },
        );
        let p = publish_of(&v1::PublishEntry {
            id: String::new(),
            message: "m".into(),
            subject: None,
            message_attributes: attrs,
        });
        let e = topic::check_publish(&p).unwrap_err();
        assert_eq!(e.pointer, "/message_attributes/colour/Value");
    }
}
