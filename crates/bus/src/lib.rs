//! NATS JetStream as sluice's queues and bus: the SQS and EventBridge layer.
//!
//! - [`subjects`]: every subject sluice uses, as constants and builders.
//! - [`streams`]: stream and consumer definitions with explicit limits (the
//!   one place where they are defined), and the queue settings users tune.
//! - [`Bus`]: a connection with the streams declared, publishing with
//!   `Nats-Msg-Id` de-duplication and W3C trace context in the headers.
//! - [`dlq`]: dead-lettering, listing and redriving.
//! - [`queues`]: sluice queues (SQS semantics) for workers in any language.
//! - [`work`]: the consuming loop every worker runs.

#![forbid(unsafe_code)]

pub mod dlq;
pub mod headers;
pub mod queues;
pub mod streams;
pub mod subjects;
pub mod work;

use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use async_nats::HeaderMap;
use bytes::Bytes;
use sluice_config::NatsConfig;
use tracing::Instrument as _;

pub use async_nats;
pub use streams::QueueConfig;

/// Errors talking to JetStream.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Could not connect to the server.
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect {
        /// The URL tried.
        url: String,
        /// Why.
        reason: String,
    },
    /// A stream or consumer could not be declared.
    #[error("cannot declare {what}: {reason}")]
    Declare {
        /// Stream or consumer name.
        what: String,
        /// Why.
        reason: String,
    },
    /// A publish was not acknowledged by JetStream (nothing was accepted).
    #[error("publish to {subject} not acknowledged: {reason}")]
    Publish {
        /// Subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// The subject, or its stream, holds as many messages as allowed.
    #[error("{subject} is full")]
    SubjectFull {
        /// Subject.
        subject: String,
    },
    /// The message is larger than the stream accepts.
    #[error("the message is too large for {subject}")]
    TooLarge {
        /// Subject.
        subject: String,
    },
    /// No stream stores the subject (a queue that does not exist).
    #[error("no stream stores {subject}")]
    NoStream {
        /// Subject.
        subject: String,
    },
    /// A receipt handle that is not one of the queue's.
    #[error("{0}")]
    Receipt(String),
    /// Any other JetStream request failed.
    #[error("jetstream: {0}")]
    Request(String),
}

impl BusError {
    pub(crate) fn request(e: impl std::fmt::Display) -> Self {
        Self::Request(e.to_string())
    }
}

/// A JetStream connection with sluice's streams known by name.
#[derive(Clone, Debug)]
pub struct Bus {
    client: async_nats::Client,
    js: jetstream::Context,
    names: streams::Names,
}

impl Bus {
    /// Connects to NATS (retrying in the background if the server is not up yet).
    pub async fn connect(config: &NatsConfig, client_name: &str) -> Result<Self, BusError> {
        let err = |e: &dyn std::fmt::Display| BusError::Connect {
            url: config.url.clone(),
            reason: e.to_string(),
        };
        let mut options = async_nats::ConnectOptions::new()
            .name(client_name)
            .connection_timeout(Duration::from_secs(5))
            .retry_on_initial_connect();
        if let Some(path) = &config.creds_file {
            options = options.credentials_file(path).await.map_err(|e| err(&e))?;
        }
        if let (Some(user), Some(password)) = (&config.user, &config.password) {
            // Replies (JetStream's answers, pulled messages) come to an inbox
            // only this user may subscribe to: with the shared `_INBOX.`, any
            // user could read every other service's pulls.
            options = options
                .user_and_password(user.clone(), password.clone())
                .custom_inbox_prefix(format!("_INBOX_{user}"));
        }
        let client = options
            .connect(config.url.as_str())
            .await
            .map_err(|e| err(&e))?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(Duration::from_secs(10));
        Ok(Self {
            client,
            js,
            names: streams::Names::new(&config.stream_prefix),
        })
    }

    /// The underlying client.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The JetStream context.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// Stream and consumer names (with the configured prefix).
    pub fn names(&self) -> &streams::Names {
        &self.names
    }

    /// True while the connection to the server is up.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Declares (creates or updates) the shared streams: ingest, dead
    /// letters, the bus, deliveries, topic messages (standard and FIFO) and
    /// object store notifications.
    pub async fn declare_streams(
        &self,
        queue: &QueueConfig,
        replicas: usize,
    ) -> Result<(), BusError> {
        for config in [
            streams::ingest_stream(&self.names, queue, replicas),
            streams::dlq_stream(&self.names, queue, replicas),
            streams::bus_stream(&self.names, queue, replicas),
            streams::deliveries_stream(&self.names, queue, replicas),
            streams::notify_stream(&self.names, queue, replicas),
            streams::notify_fifo_stream(&self.names, queue, replicas),
            streams::files_stream(&self.names, queue, replicas),
        ] {
            let name = config.name.clone();
            self.js
                .create_or_update_stream(config)
                .await
                .map_err(|e| BusError::Declare {
                    what: format!("stream {name}"),
                    reason: e.to_string(),
                })?;
        }
        Ok(())
    }

    /// Creates (or updates) the durable pull consumer `config` on `stream`;
    /// `what` names it in the error.
    pub async fn declare_consumer(
        &self,
        config: jetstream::consumer::pull::Config,
        stream: String,
        what: &str,
    ) -> Result<jetstream::consumer::PullConsumer, BusError> {
        self.js
            .create_consumer_on_stream(config, stream)
            .await
            .map_err(|e| BusError::Declare {
                what: what.to_string(),
                reason: e.to_string(),
            })
    }

    /// Publishes `payload` to `subject` (unprefixed, e.g. `ingest.event`) with
    /// `msg_id` as `Nats-Msg-Id` and the current trace context, and waits for
    /// JetStream's acknowledgement; `ack.duplicate` tells a de-duplicated retry.
    pub async fn publish(
        &self,
        subject: &str,
        msg_id: &str,
        payload: Bytes,
        mut headers: HeaderMap,
    ) -> Result<jetstream::publish::PublishAck, BusError> {
        // A producer span per publish, named by the subject's first token
        // (`publish ingest`, `publish deliver`): the rest may hold ids.
        let kind = subject.split('.').next().unwrap_or(subject);
        let span = tracing::info_span!(
            "sluice.bus.publish",
            otel.name = format!("publish {kind}"),
            otel.kind = "producer",
            messaging.system = "nats",
            messaging.destination.name = %subject,
        );
        async {
            sluice_telemetry::nats_inject(&mut headers);
            self.publish_raw(subject, msg_id, payload, headers).await
        }
        .instrument(span)
        .await
    }

    /// [`Bus::publish`] with the headers exactly as given.
    pub async fn publish_raw(
        &self,
        subject: &str,
        msg_id: &str,
        payload: Bytes,
        headers: HeaderMap,
    ) -> Result<jetstream::publish::PublishAck, BusError> {
        let subject = self.names.subject(subject);
        let publish = PublishMessage::build()
            .payload(payload)
            .headers(headers)
            .message_id(msg_id);
        let err = |e: jetstream::context::PublishError| {
            let subject = subject.clone();
            let text = e.to_string();
            match e.kind() {
                jetstream::context::PublishErrorKind::StreamNotFound => {
                    BusError::NoStream { subject }
                }
                jetstream::context::PublishErrorKind::MaxPayloadExceeded => {
                    BusError::TooLarge { subject }
                }
                _ if text.contains("maximum messages per subject")
                    || text.contains("maximum messages exceeded") =>
                {
                    BusError::SubjectFull { subject }
                }
                _ if text.contains("maximum message size") => BusError::TooLarge { subject },
                _ => BusError::Publish {
                    subject,
                    reason: text,
                },
            }
        };
        let ack = self
            .js
            .send_publish(subject.clone(), publish)
            .await
            .map_err(err)?;
        ack.await.map_err(err)
    }

    /// The queue kind of the event `id` if it is still in the ingest queue
    /// (waiting, or being processed).
    pub async fn queued_kind(&self, id: &str) -> Result<Option<&'static str>, BusError> {
        let stream = self
            .js
            .get_stream_no_info(self.names.ingest())
            .await
            .map_err(BusError::request)?;
        for kind in subjects::KINDS {
            let subject = self.names.subject(&subjects::ingest(kind, id));
            match stream.direct_get_last_for_subject(&subject).await {
                Ok(_) => return Ok(Some(kind)),
                Err(e)
                    if e.kind() == async_nats::jetstream::stream::DirectGetErrorKind::NotFound => {}
                Err(e) => return Err(BusError::request(e)),
            }
        }
        Ok(None)
    }

    /// Messages waiting for, or held by, the processor's consumer (queue lag).
    pub async fn queue_lag(&self, consumer: &str) -> Result<u64, BusError> {
        self.consumer_lag(&self.names.ingest(), consumer).await
    }

    /// Messages waiting for, or held by, a consumer of a stream.
    pub async fn consumer_lag(&self, stream: &str, consumer: &str) -> Result<u64, BusError> {
        let stream = self
            .js
            .get_stream(stream)
            .await
            .map_err(BusError::request)?;
        let info = stream
            .consumer_info(consumer)
            .await
            .map_err(BusError::request)?;
        Ok(info.num_pending + info.num_ack_pending as u64)
    }

    /// Messages in the dead-letter stream.
    pub async fn dlq_depth(&self) -> Result<u64, BusError> {
        let mut stream = self
            .js
            .get_stream(self.names.dlq())
            .await
            .map_err(BusError::request)?;
        let info = stream.info().await.map_err(BusError::request)?;
        Ok(info.state.messages)
    }
}
