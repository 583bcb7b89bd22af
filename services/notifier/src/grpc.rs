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
use tonic::{Request, Response, Status};

use crate::Shared;

/// Longest display name (SNS's).
pub const MAX_DISPLAY_NAME: usize = 100;
/// A subscription that receives messages.
pub const CONFIRMED: &str = "confirmed";
/// A subscription waiting for its endpoint to confirm it.
pub const PENDING: &str = "pending_confirmation";
/// How long a rotated-out signing secret keeps signing, by default.
pub const DEFAULT_OVERLAP: u32 = 86_400;
/// The longest overlap.
pub const MAX_OVERLAP: u32 = 604_800;

fn now_text() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A new link token: 32 random bytes, base64url.
fn new_token() -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Compares two secrets without a timing difference that depends on where
/// they first differ (their hashes are compared).
fn same_secret(a: &str, b: &str) -> bool {
    use sha2::Digest as _;
    sha2::Sha256::digest(a.as_bytes()) == sha2::Sha256::digest(b.as_bytes())
}

fn no_subscription(topic: &str, id: &str) -> AdminError {
    AdminError::NotFound(format!("topic {topic:?} has no subscription {id:?}"))
}

fn decode_subscription(spec: &[u8], id: &str) -> AdminResult<v1::Subscription> {
    v1::Subscription::decode(spec)
        .map_err(|e| AdminError::Internal(format!("subscription {id} cannot be decoded: {e}")))
}

/// A subscription as callers see it: never its token or a rotated-out
/// secret; its signing secret only when `with_secret`.
pub fn shown(mut sub: v1::Subscription, with_secret: bool) -> v1::Subscription {
    sub.token.clear();
    sub.previous_signing_secret.clear();
    if !with_secret {
        sub.signing_secret.clear();
    }
    sub
}

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
    use tonic::server::NamedService;
    sluice_runtime::grpc::serve(
        "notifier",
        &[<TopicsServer<TopicsApi> as NamedService>::NAME],
        tonic::service::Routes::new(TopicsServer::new(TopicsApi { state })),
        listener,
        shutdown,
    )
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
    let fifo = sluice_model::names::is_fifo_topic(&t.name);
    if t.fifo_topic != fifo {
        return Err(Violation::new(
            "/fifo_topic",
            if fifo {
                "a topic whose name ends in .fifo is a FIFO topic"
            } else {
                "a FIFO topic's name must end in .fifo"
            },
        ));
    }
    if t.content_based_deduplication && !fifo {
        return Err(Violation::new(
            "/content_based_deduplication",
            "is only for FIFO topics",
        ));
    }
    if let Some(p) = &t.delivery_policy {
        crate::subscriptions::check_delivery_policy(p)?;
    }
    Ok(v1::Topic {
        name: t.name.clone(),
        display_name: t.display_name.clone(),
        created_at: String::new(),
        fifo_topic: fifo,
        content_based_deduplication: t.content_based_deduplication,
        deduplication_window_seconds: if fifo {
            sluice_bus::streams::FIFO_DEDUPE_WINDOW.as_secs() as u32
        } else {
            0
        },
        delivery_policy: t.delivery_policy,
    })
}

/// Longest message group or de-duplication id (SNS's).
pub const MAX_FIFO_ID: usize = 128;

/// SNS's message group and de-duplication ids: 1 to 128 letters, digits
/// and ASCII punctuation.
fn check_fifo_id(pointer: &str, id: &str) -> Result<(), Violation> {
    if id.is_empty() || id.len() > MAX_FIFO_ID {
        return Err(Violation::new(
            pointer,
            format!("must be 1 to {MAX_FIFO_ID} characters"),
        ));
    }
    if !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Violation::new(
            pointer,
            "may hold only letters, digits and ASCII punctuation",
        ));
    }
    Ok(())
}

/// Where a publish goes: a standard topic's subject with a fresh message
/// id, or, for a FIFO topic, its group's partition with a JetStream id
/// derived from the de-duplication id (so a repeat within the window is
/// the same message to JetStream; its public id adds its sequence).
#[derive(Debug, PartialEq, Eq)]
struct Route {
    subject: String,
    message_id: String,
    group: Option<String>,
    dedupe: Option<String>,
}

fn route(t: &v1::Topic, entry: &v1::PublishEntry) -> Result<Route, Violation> {
    if !t.fifo_topic {
        for (pointer, v) in [
            ("/message_group_id", &entry.message_group_id),
            ("/message_deduplication_id", &entry.message_deduplication_id),
        ] {
            if v.is_some() {
                return Err(Violation::new(pointer, "is only for FIFO topics"));
            }
        }
        return Ok(Route {
            subject: sluice_bus::subjects::notify(&t.name),
            message_id: sluice_model::ids::new_id(),
            group: None,
            dedupe: None,
        });
    }
    let group = entry
        .message_group_id
        .as_deref()
        .ok_or_else(|| Violation::new("/message_group_id", "is required by a FIFO topic"))?;
    check_fifo_id("/message_group_id", group)?;
    let dedupe = match &entry.message_deduplication_id {
        Some(d) => {
            check_fifo_id("/message_deduplication_id", d)?;
            d.clone()
        }
        None if t.content_based_deduplication => {
            use sha2::Digest as _;
            hex_of(&sha2::Sha256::digest(entry.message.as_bytes()))
        }
        None => {
            return Err(Violation::new(
                "/message_deduplication_id",
                "is required: the topic has no content-based de-duplication",
            ))
        }
    };
    // The topic's creation time makes a topic deleted and made again a
    // new scope for de-duplication.
    let message_id = sluice_model::ids::derive_id(
        &format!("{}\0{}\0{dedupe}", t.name, t.created_at),
        "fifo-message",
    );
    Ok(Route {
        subject: sluice_bus::subjects::fifo(&t.name, group),
        message_id,
        group: Some(group.to_string()),
        dedupe: Some(dedupe),
    })
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

    /// A stored subscription, or NOT_FOUND.
    async fn find(&self, topic: &str, id: &str) -> AdminResult<v1::Subscription> {
        if sluice_model::names::check_topic(topic).is_err() || id.is_empty() {
            return Err(no_subscription(topic, id));
        }
        let rec = self
            .state
            .store
            .get_subscription(topic, id)
            .await?
            .ok_or_else(|| no_subscription(topic, id))?;
        decode_subscription(&rec.spec, &rec.id)
    }

    /// The subscription whose token `token` is; NOT_FOUND otherwise (a
    /// wrong token learns nothing more than a missing subscription).
    async fn with_token(
        &self,
        topic: &str,
        id: &str,
        token: &str,
    ) -> AdminResult<v1::Subscription> {
        let sub = self.find(topic, id).await?;
        if sub.token.is_empty() || !same_secret(&sub.token, token) {
            return Err(no_subscription(topic, id));
        }
        Ok(sub)
    }

    /// Writes a changed subscription back over `old`, unless it was
    /// removed (404) or changed (409: read it and ask again) meanwhile.
    async fn replace(&self, old: &v1::Subscription, sub: &v1::Subscription) -> AdminResult<()> {
        if !self
            .state
            .store
            .replace_subscription(
                &sub.topic,
                &sub.subscription_id,
                old.encode_to_vec(),
                sub.encode_to_vec(),
            )
            .await?
        {
            return match self
                .state
                .store
                .get_subscription(&sub.topic, &sub.subscription_id)
                .await?
            {
                None => Err(no_subscription(&sub.topic, &sub.subscription_id)),
                Some(_) => Err(AdminError::Conflict(format!(
                    "subscription {:?} changed meanwhile; ask again",
                    sub.subscription_id
                ))),
            };
        }
        crate::deliver::announce(&self.state, &sub.topic, &sub.subscription_id).await;
        Ok(())
    }

    /// Removes a subscription and whatever still waits for it. Returns
    /// `false` when there was none.
    async fn remove_subscription(&self, topic: &str, id: &str) -> AdminResult<bool> {
        if sluice_model::names::check_topic(topic).is_err() || id.is_empty() {
            return Ok(false);
        }
        let removed = self.state.store.delete_subscription(topic, id).await?;
        // This replica's worker stops (and will not declare the consumer
        // again) before its consumer and backlog go.
        crate::deliver::announce(&self.state, topic, id).await;
        let key = sluice_bus::subjects::subscription_key(topic, id);
        // Also when it was already gone: a removal that failed half-way is
        // finished by the next one.
        crate::deliver::discard(&self.state, &key).await?;
        Ok(removed)
    }

    /// Sends (again) the confirmation request or email of a pending
    /// subscription, through its own delivery subject so it is retried and
    /// dead-lettered like any delivery.
    async fn request_confirmation(&self, sub: &v1::Subscription) -> AdminResult<()> {
        let key = sluice_bus::subjects::subscription_key(&sub.topic, &sub.subscription_id);
        let mut headers = async_nats::HeaderMap::new();
        // A new id per request: asking again sends it again, and a receiver
        // de-duplicating on webhook-id does not drop it.
        let delivery_id = format!(
            "confirm-{}-{}",
            sub.subscription_id,
            sluice_model::ids::new_id()
        );
        headers.insert(
            sluice_bus::headers::MESSAGE_TYPE,
            "SubscriptionConfirmation",
        );
        headers.insert(sluice_bus::headers::DELIVERY_ID, delivery_id.as_str());
        headers.insert(sluice_bus::headers::TOPIC, sub.topic.as_str());
        headers.insert(
            sluice_bus::headers::SUBSCRIPTION,
            sub.subscription_id.as_str(),
        );
        self.state
            .bus
            .publish(
                &sluice_bus::subjects::deliver(&key),
                &delivery_id,
                crate::links::confirmation(&self.state, sub).into(),
                headers,
            )
            .await?;
        Ok(())
    }

    /// The topic named `name`, or NOT_FOUND.
    async fn topic(&self, name: &str) -> AdminResult<v1::Topic> {
        let not_found = || AdminError::NotFound(format!("no topic named {name:?}"));
        if sluice_model::names::check_topic(name).is_err() {
            return Err(not_found());
        }
        match self.state.store.topic(name).await? {
            Some(rec) => Self::read(&rec),
            None => Err(not_found()),
        }
    }

    /// Checks one entry and stores it in JetStream.
    async fn publish_one(
        &self,
        t: &v1::Topic,
        entry: &v1::PublishEntry,
        origin: &str,
    ) -> AdminResult<v1::PublishResponse> {
        let p = publish_of(entry);
        topic::check_publish(&p).map_err(violation)?;
        let route = route(t, entry)?;
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
        let mut headers = async_nats::HeaderMap::new();
        if let (Some(group), Some(dedupe)) = (&route.group, &route.dedupe) {
            headers.insert(sluice_bus::headers::TOPIC, t.name.as_str());
            headers.insert(sluice_bus::headers::MESSAGE_GROUP_ID, group.as_str());
            headers.insert(sluice_bus::headers::DEDUPLICATION_ID, dedupe.as_str());
        }
        let ack = match self
            .state
            .bus
            .publish(&route.subject, &route.message_id, body.into(), headers)
            .await
        {
            Ok(ack) => ack,
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
        };
        let fifo = t.fifo_topic;
        metrics::counter!("sluice.notifier.published",
            "kind" => if fifo { "fifo" } else { "standard" },
            "outcome" => if ack.duplicate { "duplicate" } else { "stored" })
        .increment(1);
        Ok(v1::PublishResponse {
            // A FIFO message's id: its de-duplication key and its place in
            // the stream (a repeat within the window gets the original's;
            // the same key after the window is a new message, a new id).
            message_id: if fifo {
                crate::fanout::fifo_message_id(&route.message_id, ack.sequence)
            } else {
                route.message_id
            },
            sequence_number: if fifo {
                ack.sequence.to_string()
            } else {
                String::new()
            },
            duplicate: ack.duplicate,
        })
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
        // Its delivery policy is the default of its subscriptions' workers.
        crate::deliver::announce(&self.state, &checked.name, "").await;
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
            self.remove_subscription(&name, &rec.id).await?;
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
        let checks = crate::subscriptions::Checks {
            policy: &self.state.policy,
            email: self.state.mailer.is_some(),
        };
        crate::subscriptions::check(&sub, checks).map_err(AdminError::from)?;
        let t = self.topic(&sub.topic).await?;
        if t.fifo_topic && sub.protocol != "queue" {
            return Err(AdminError::Invalid(Violation::new(
                "/protocol",
                "a FIFO topic delivers only to queue subscriptions (as SNS FIFO topics deliver only to SQS queues)",
            ))
            .into());
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
            let old = decode_subscription(&rec.spec, &rec.id)?;
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
                && old.delivery_policy.unwrap_or_default()
                    == sub.delivery_policy.unwrap_or_default()
            {
                // Asked again while pending: the confirmation is sent again.
                if old.status == PENDING {
                    self.request_confirmation(&old).await?;
                }
                return Ok(Response::new(shown(old, true)));
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
        let confirms = crate::subscriptions::delivered(&sub.protocol);
        let webhook = matches!(sub.protocol.as_str(), "http" | "https");
        let stored = v1::Subscription {
            subscription_id: id,
            status: if confirms { PENDING } else { CONFIRMED }.into(),
            created_at: now_text(),
            filter_policy_scope: scope,
            token: new_token(),
            signing_secret: if webhook {
                crate::webhook::new_secret()
            } else {
                String::new()
            },
            previous_signing_secret: String::new(),
            previous_secret_expires_at: String::new(),
            confirmed_at: if confirms { String::new() } else { now_text() },
            ..sub
        };
        if !store
            .put_subscription(
                &stored.topic,
                &stored.subscription_id,
                stored.encode_to_vec(),
            )
            .await
            .map_err(AdminError::from)?
        {
            return Err(AdminError::Conflict(format!(
                "{} {:?} was subscribed at the same moment; ask again",
                stored.protocol, stored.endpoint
            ))
            .into());
        }
        // Every replica's fan-out and workers learn of it before this returns
        // (this one) or within moments (the others).
        crate::deliver::announce(&self.state, &stored.topic, &stored.subscription_id).await;
        if confirms {
            self.request_confirmation(&stored).await?;
        }
        Ok(Response::new(shown(stored, true)))
    }

    async fn list_subscriptions(
        &self,
        request: Request<v1::ListSubscriptionsRequest>,
    ) -> Result<Response<v1::ListSubscriptionsResponse>, Status> {
        let topic = request.into_inner().topic;
        self.topic(&topic).await?;
        let subscriptions = self
            .state
            .store
            .subscriptions_of(&topic)
            .await
            .map_err(AdminError::from)?
            .iter()
            .map(|r| decode_subscription(&r.spec, &r.id).map(|s| shown(s, false)))
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
        if !req.token.is_empty() {
            self.with_token(&req.topic, &req.subscription_id, &req.token)
                .await?;
        }
        if !self
            .remove_subscription(&req.topic, &req.subscription_id)
            .await?
        {
            return Err(no_subscription(&req.topic, &req.subscription_id).into());
        }
        Ok(Response::new(v1::UnsubscribeResponse {}))
    }

    async fn confirm_subscription(
        &self,
        request: Request<v1::ConfirmSubscriptionRequest>,
    ) -> Result<Response<v1::Subscription>, Status> {
        let req = request.into_inner();
        let sub = self
            .with_token(&req.topic, &req.subscription_id, &req.token)
            .await?;
        if sub.status == CONFIRMED {
            return Ok(Response::new(shown(sub, false)));
        }
        let confirmed = v1::Subscription {
            status: CONFIRMED.into(),
            confirmed_at: now_text(),
            ..sub.clone()
        };
        self.replace(&sub, &confirmed).await?;
        tracing::info!(topic = %confirmed.topic, subscription = %confirmed.subscription_id,
            protocol = %confirmed.protocol, "subscription confirmed");
        Ok(Response::new(shown(confirmed, false)))
    }

    async fn rotate_signing_secret(
        &self,
        request: Request<v1::RotateSigningSecretRequest>,
    ) -> Result<Response<v1::Subscription>, Status> {
        let req = request.into_inner();
        let overlap = req.overlap_seconds.unwrap_or(DEFAULT_OVERLAP);
        if overlap > MAX_OVERLAP {
            return Err(AdminError::Invalid(Violation::new(
                "/overlap_seconds",
                format!("must be 0 to {MAX_OVERLAP}"),
            ))
            .into());
        }
        let sub = self.find(&req.topic, &req.subscription_id).await?;
        if !matches!(sub.protocol.as_str(), "http" | "https") {
            return Err(AdminError::Invalid(Violation::new(
                "",
                "only http and https subscriptions have a signing secret",
            ))
            .into());
        }
        let until = time::OffsetDateTime::now_utc() + time::Duration::seconds(i64::from(overlap));
        let rotated = v1::Subscription {
            previous_signing_secret: if overlap > 0 {
                sub.signing_secret.clone()
            } else {
                String::new()
            },
            previous_secret_expires_at: if overlap > 0 {
                until
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            } else {
                String::new()
            },
            signing_secret: crate::webhook::new_secret(),
            ..sub.clone()
        };
        self.replace(&sub, &rotated).await?;
        Ok(Response::new(shown(rotated, true)))
    }

    async fn publish(
        &self,
        request: Request<v1::PublishRequest>,
    ) -> Result<Response<v1::PublishResponse>, Status> {
        let req = request.into_inner();
        let entry = req
            .entry
            .ok_or_else(|| AdminError::Invalid(Violation::new("", "an entry is required")))?;
        let t = self.topic(&req.topic).await?;
        Ok(Response::new(
            self.publish_one(&t, &entry, &req.origin).await?,
        ))
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
        let t = self.topic(&req.topic).await?;
        let results = futures_results(self, &t, &req).await;
        Ok(Response::new(v1::PublishBatchResponse { results }))
    }
}

/// Publishes every entry (concurrently; a FIFO topic's one after the
/// other, in the batch's order); each succeeds or fails on its own.
async fn futures_results(
    api: &TopicsApi,
    t: &v1::Topic,
    req: &v1::PublishBatchRequest,
) -> Vec<v1::PublishBatchResultEntry> {
    let mut out = Vec::with_capacity(req.entries.len());
    let published = if t.fifo_topic {
        // An entry that failed holds back the later entries of its group:
        // stored after it, they would come before it once it is sent again.
        let mut done = Vec::with_capacity(req.entries.len());
        let mut failed: std::collections::HashSet<Option<&str>> = Default::default();
        for e in &req.entries {
            let group = e.message_group_id.as_deref();
            let r = if failed.contains(&group) {
                Err(AdminError::Unavailable(
                    "an earlier entry of its message group was not published; send them again in order"
                        .into(),
                ))
            } else {
                api.publish_one(t, e, &req.origin).await
            };
            if r.is_err() {
                failed.insert(group);
            }
            done.push(r);
        }
        done
    } else {
        futures::future::join_all(
            req.entries
                .iter()
                .map(|e| api.publish_one(t, e, &req.origin)),
        )
        .await
    };
    for (entry, result) in req.entries.iter().zip(published) {
        let mut r = v1::PublishBatchResultEntry {
            id: entry.id.clone(),
            ..Default::default()
        };
        match result {
            Ok(published) => r.published = Some(published),
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
            ..Default::default()
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
    fn fifo_topics_are_named_so_and_only_they_deduplicate() {
        let fifo = check_topic(&v1::Topic {
            name: "orders.fifo".into(),
            fifo_topic: true,
            content_based_deduplication: true,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(fifo.deduplication_window_seconds, 300);
        for (t, ptr) in [
            (
                v1::Topic {
                    name: "orders.fifo".into(),
                    ..Default::default()
                },
                "/fifo_topic",
            ),
            (
                v1::Topic {
                    name: "orders".into(),
                    fifo_topic: true,
                    ..Default::default()
                },
                "/fifo_topic",
            ),
            (
                v1::Topic {
                    name: "orders".into(),
                    content_based_deduplication: true,
                    ..Default::default()
                },
                "/content_based_deduplication",
            ),
            (
                v1::Topic {
                    name: "orders".into(),
                    delivery_policy: Some(v1::DeliveryPolicy {
                        max_concurrency: Some(0),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                "/delivery_policy/max_concurrency",
            ),
        ] {
            assert_eq!(check_topic(&t).unwrap_err().pointer, ptr, "{t:?}");
        }
    }

    #[test]
    fn fifo_publishes_need_a_group_and_a_deduplication_id() {
        let fifo = |content: bool| v1::Topic {
            name: "t.fifo".into(),
            fifo_topic: true,
            content_based_deduplication: content,
            created_at: "2026-11-23T00:00:00Z".into(),
            ..Default::default()
        };
        let entry = |group: Option<&str>, dedupe: Option<&str>, message: &str| v1::PublishEntry {
            message: message.into(),
            message_group_id: group.map(str::to_string),
            message_deduplication_id: dedupe.map(str::to_string),
            ..Default::default()
        };
        let pointer = |t: &v1::Topic, e: &v1::PublishEntry| route(t, e).unwrap_err().pointer;
        assert_eq!(
            pointer(&fifo(false), &entry(None, Some("d"), "m")),
            "/message_group_id"
        );
        assert_eq!(
            pointer(&fifo(false), &entry(Some("g"), None, "m")),
            "/message_deduplication_id"
        );
        assert_eq!(
            pointer(&fifo(true), &entry(Some("a b"), None, "m")),
            "/message_group_id"
        );
        let long = "d".repeat(129);
        assert_eq!(
            pointer(&fifo(true), &entry(Some("g"), Some(&long), "m")),
            "/message_deduplication_id"
        );
        let standard = v1::Topic {
            name: "t".into(),
            ..Default::default()
        };
        assert_eq!(
            pointer(&standard, &entry(Some("g"), None, "m")),
            "/message_group_id"
        );
        // The same de-duplication id is the same message; content-based
        // de-duplication uses the message's hash.
        let a = route(&fifo(false), &entry(Some("g"), Some("d-1"), "m")).unwrap();
        let b = route(&fifo(false), &entry(Some("g"), Some("d-1"), "other")).unwrap();
        assert_eq!(a.message_id, b.message_id);
        assert_eq!(a.subject, sluice_bus::subjects::fifo("t.fifo", "g"));
        let c = route(&fifo(true), &entry(Some("g"), None, "m")).unwrap();
        let d = route(&fifo(true), &entry(Some("g"), None, "m")).unwrap();
        let e = route(&fifo(true), &entry(Some("g"), None, "n")).unwrap();
        assert_eq!(c.message_id, d.message_id);
        assert_ne!(c.message_id, e.message_id);
        // A topic made again is a new de-duplication scope.
        let again = v1::Topic {
            created_at: "2026-11-24T00:00:00Z".into(),
            ..fifo(false)
        };
        assert_ne!(
            route(&again, &entry(Some("g"), Some("d-1"), "m"))
                .unwrap()
                .message_id,
            a.message_id
        );
        // Standard topics: a fresh id every time.
        let s1 = route(&standard, &entry(None, None, "m")).unwrap();
        let s2 = route(&standard, &entry(None, None, "m")).unwrap();
        assert_ne!(s1.message_id, s2.message_id);
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
            ..Default::default()
        });
        let e = topic::check_publish(&p).unwrap_err();
        assert_eq!(e.pointer, "/message_attributes/colour/Value");
    }
}
