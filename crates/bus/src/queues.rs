//! Sluice queues: SQS semantics on JetStream, for workers in any language.
//!
//! | SQS                      | sluice queue (JetStream)                                  |
//! |--------------------------|-----------------------------------------------------------|
//! | queue                    | stream `QUEUE_<name>`, subject `queue.<name>`, work queue  |
//! | retention period         | stream `max_age`                                          |
//! | visibility timeout       | consumer `ack_wait`                                       |
//! | receive count            | JetStream's delivery count                                |
//! | maxReceiveCount + DLQ    | the receive that would return it moves it to `dlq.queue.<name>` |
//! | receipt handle           | the delivery's acknowledgement subject, base64url         |
//! | DeleteMessage            | ack                                                       |
//! | ChangeMessageVisibility  | nak with a delay (visible again after it)                 |
//! | long polling (≤ 20 s)    | a pull request for one message that waits, then the rest  |
//!
//! One stream per queue so each queue has its own retention, like SQS; one
//! durable consumer per queue shared by every receiver.
//!
//! A queue is bounded by a message count, never by a byte limit: JetStream
//! reserves a stream's `max_bytes` from its store up front, so a byte limit
//! per queue would make the store's size, not the queue quota, decide how
//! many queues can exist (decision 0010).

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::Message;
use async_nats::HeaderMap;
use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use time::OffsetDateTime;

use crate::dlq::Failure;
use crate::streams::Names;
use crate::{subjects, Bus, BusError};

/// Consumer metadata key holding the queue's maxReceiveCount.
const MAX_RECEIVE_KEY: &str = "sluice.max_receive_count";

/// A queue's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSettings {
    /// How long a received message stays invisible before it can be received again.
    pub visibility_timeout: Duration,
    /// Receives after which a message goes to the dead-letter queue.
    pub max_receive: u32,
    /// How long an unreceived message is kept.
    pub retention: Duration,
}

/// What JetStream knows of a queue.
#[derive(Debug, Clone)]
pub struct QueueState {
    /// Its settings, as the stream and consumer hold them.
    pub settings: QueueSettings,
    /// Messages waiting or in flight.
    pub messages: u64,
}

/// One received message.
#[derive(Debug, Clone)]
pub struct Received {
    /// The message's id (`Nats-Msg-Id`: the delivery id for rule deliveries).
    pub message_id: String,
    /// Pass to delete or change visibility. Valid until the visibility timeout ends.
    pub receipt_handle: String,
    /// The body as sent.
    pub body: Bytes,
    /// How many times it has been received, this time included.
    pub receive_count: u64,
    /// When the queue accepted it.
    pub sent_at: OffsetDateTime,
    /// Headers as sent.
    pub headers: Option<HeaderMap>,
}

fn stream_config(
    bus: &Bus,
    name: &str,
    s: QueueSettings,
    max_messages: i64,
    replicas: usize,
) -> Config {
    Config {
        name: bus.names.queue_stream(name),
        subjects: vec![bus.names.subject(&subjects::queue(name))],
        retention: RetentionPolicy::WorkQueue,
        storage: StorageType::File,
        discard: DiscardPolicy::New,
        max_age: s.retention,
        max_messages,
        max_message_size: 256 * 1024 + 4096,
        duplicate_window: Duration::from_secs(120).min(s.retention),
        num_replicas: replicas,
        description: Some(format!("sluice queue {name}")),
        ..Default::default()
    }
}

fn consumer_config(bus: &Bus, name: &str, s: QueueSettings) -> pull::Config {
    pull::Config {
        durable_name: Some(bus.names.queue_consumer(name)),
        description: Some(format!("sluice queue {name}")),
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        // JetStream needs a positive ack wait; SQS allows 0 (visible at once).
        ack_wait: s.visibility_timeout.max(Duration::from_millis(100)),
        max_deliver: -1,
        max_ack_pending: 120_000,
        filter_subject: bus.names.subject(&subjects::queue(name)),
        metadata: [(MAX_RECEIVE_KEY.to_string(), s.max_receive.to_string())].into(),
        ..Default::default()
    }
}

/// The receipt handle of a delivery: its acknowledgement subject, base64url.
fn receipt_of(reply: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(reply)
}

impl Bus {
    /// Creates a queue, or changes its settings. `max_messages` bounds what
    /// it holds; past it a send is refused ([`BusError::SubjectFull`]).
    pub async fn declare_queue(
        &self,
        name: &str,
        settings: QueueSettings,
        max_messages: u64,
        replicas: usize,
    ) -> Result<(), BusError> {
        let max_messages = i64::try_from(max_messages).unwrap_or(i64::MAX);
        self.js
            .create_or_update_stream(stream_config(self, name, settings, max_messages, replicas))
            .await
            .map_err(|e| BusError::Declare {
                what: format!("queue {name}"),
                reason: e.to_string(),
            })?;
        self.js
            .create_consumer_on_stream(
                consumer_config(self, name, settings),
                self.names.queue_stream(name),
            )
            .await
            .map_err(|e| BusError::Declare {
                what: format!("consumer of queue {name}"),
                reason: e.to_string(),
            })?;
        Ok(())
    }

    /// Deletes a queue and its messages. `false` when there was none.
    pub async fn delete_queue(&self, name: &str) -> Result<bool, BusError> {
        match self.js.delete_stream(self.names.queue_stream(name)).await {
            Ok(_) => Ok(true),
            Err(e) if e.to_string().contains("not found") => Ok(false),
            Err(e) => Err(BusError::request(e)),
        }
    }

    async fn queue_consumer(&self, name: &str) -> Result<Option<PullConsumer>, BusError> {
        match self
            .js
            .get_consumer_from_stream(
                self.names.queue_consumer(name),
                self.names.queue_stream(name),
            )
            .await
        {
            Ok(c) => Ok(Some(c)),
            Err(e) if e.to_string().contains("not found") => Ok(None),
            Err(e) => Err(BusError::request(e)),
        }
    }

    /// The queue's settings and depth, if it exists.
    pub async fn queue_state(&self, name: &str) -> Result<Option<QueueState>, BusError> {
        let Some(mut consumer) = self.queue_consumer(name).await? else {
            return Ok(None);
        };
        let info = consumer.info().await.map_err(BusError::request)?.clone();
        let mut stream = match self.js.get_stream(self.names.queue_stream(name)).await {
            Ok(s) => s,
            Err(e) => return Err(BusError::request(e)),
        };
        let sinfo = stream.info().await.map_err(BusError::request)?;
        Ok(Some(QueueState {
            settings: QueueSettings {
                visibility_timeout: info.config.ack_wait,
                max_receive: max_receive_of(&info.config),
                retention: sinfo.config.max_age,
            },
            messages: sinfo.state.messages,
        }))
    }

    /// Sends a message to a queue; `msg_id` de-duplicates retries.
    /// `Ok(None)` when there is no such queue.
    pub async fn send_to_queue(
        &self,
        name: &str,
        msg_id: &str,
        body: Bytes,
        headers: HeaderMap,
    ) -> Result<Option<async_nats::jetstream::publish::PublishAck>, BusError> {
        match self
            .publish(&subjects::queue(name), msg_id, body, headers)
            .await
        {
            Ok(ack) => Ok(Some(ack)),
            // No stream stores the subject: the queue does not exist.
            Err(BusError::NoStream { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Receives up to `max` messages, waiting up to `wait` for the first.
    /// Messages received more than the queue's maxReceiveCount times are
    /// moved to its dead-letter queue instead of returned. `Ok(None)` when
    /// there is no such queue.
    pub async fn receive(
        &self,
        name: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Option<Vec<Received>>, BusError> {
        let Some(mut consumer) = self.queue_consumer(name).await? else {
            return Ok(None);
        };
        if max == 0 {
            return Ok(Some(Vec::new()));
        }
        let max_receive = max_receive_of(&consumer.cached_info().config);
        let _ = consumer.info().await;
        let mut got: Vec<Message> = Vec::with_capacity(max);
        if !wait.is_zero() {
            // Long polling: one message, waiting; then whatever else is there.
            let mut first = consumer
                .batch()
                .max_messages(1)
                .expires(wait)
                .messages()
                .await
                .map_err(BusError::request)?;
            if let Some(m) = first.next().await {
                got.push(m.map_err(BusError::request)?);
            }
            drop(first);
        }
        let rest = max - got.len();
        if rest > 0 && (wait.is_zero() || !got.is_empty()) {
            // From here on, what was pulled is returned whatever fails:
            // a message dropped here would stay invisible, its receive
            // count raised, unseen.
            match consumer.fetch().max_messages(rest).messages().await {
                Ok(mut more) => {
                    while let Some(m) = more.next().await {
                        match m {
                            Ok(m) => got.push(m),
                            Err(e) => {
                                tracing::debug!(error = %e, "queue fetch ended early");
                                break;
                            }
                        }
                    }
                }
                Err(e) if got.is_empty() => return Err(BusError::request(e)),
                Err(e) => {
                    tracing::debug!(error = %e, "queue fetch failed; returning what was received")
                }
            }
        }
        let mut out = Vec::with_capacity(got.len());
        for msg in got {
            let Ok(info) = msg.info() else {
                let _ = msg.ack_with(async_nats::jetstream::AckKind::Term).await;
                continue;
            };
            let (delivered, published, stream, seq) = (
                u64::try_from(info.delivered).unwrap_or(0),
                info.published,
                info.stream.to_string(),
                info.stream_sequence,
            );
            let msg_id = msg
                .headers
                .as_ref()
                .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                .map(|v| v.as_str().to_string())
                .unwrap_or_else(|| format!("{stream}-{seq}"));
            if delivered > u64::from(max_receive) {
                let reason = format!(
                    "received {} times without being deleted (max receive count {max_receive})",
                    delivered - 1
                );
                let subject = subjects::queue(name);
                let failure = Failure {
                    subject: &subject,
                    msg_id: &msg_id,
                    payload: &msg.payload,
                    headers: msg.headers.as_ref(),
                    reason: &reason,
                    attempts: u32::try_from(delivered - 1).unwrap_or(u32::MAX),
                    terminal: false,
                    accepted_at: published,
                    source_stream: &stream,
                    source_seq: seq,
                    last_response: None,
                };
                match self
                    .dead_letter_to(&subjects::dlq_queue(name), &failure)
                    .await
                {
                    Ok(()) => {
                        let _ = msg.double_ack().await;
                        metrics::counter!("sluice.queues.dead_lettered").increment(1);
                    }
                    Err(e) => {
                        // Visible again at once; the next receive tries again.
                        tracing::warn!(error = %e, "cannot dead-letter a queue message");
                        let _ = msg
                            .ack_with(async_nats::jetstream::AckKind::Nak(None))
                            .await;
                    }
                }
                continue;
            }
            let Some(reply) = msg.reply.as_ref() else {
                continue;
            };
            out.push(Received {
                message_id: msg_id,
                receipt_handle: receipt_of(reply.as_str()),
                body: msg.payload.clone(),
                receive_count: delivered,
                sent_at: published,
                headers: msg.headers.clone(),
            });
        }
        Ok(Some(out))
    }

    /// Deletes a received message. `Err(BusError::Receipt)` when the handle
    /// is not one of this queue's, or no longer names a message in flight.
    pub async fn delete_received(&self, name: &str, receipt: &str) -> Result<(), BusError> {
        let (reply, seq) = check_receipt(&self.names, name, receipt)?;
        match self.settle(&reply, Bytes::from_static(b"+ACK")).await {
            Settled::Done => Ok(()),
            Settled::QueueGone => Err(BusError::Receipt(format!(
                "there is no queue named {name:?}"
            ))),
            // No answer: the delivery is not in flight. If the message is
            // gone, it was deleted (perhaps by this very call): done.
            Settled::NoAnswer => match self.queue_holds(name, seq).await? {
                false => Ok(()),
                true => Err(not_in_flight()),
            },
        }
    }

    /// Makes a received message visible again after `timeout` (0: at once).
    /// `Err(BusError::Receipt)` when the handle no longer names a message in flight.
    pub async fn change_visibility(
        &self,
        name: &str,
        receipt: &str,
        timeout: Duration,
    ) -> Result<(), BusError> {
        let (reply, _) = check_receipt(&self.names, name, receipt)?;
        let payload = if timeout.is_zero() {
            Bytes::from_static(b"-NAK")
        } else {
            Bytes::from(format!("-NAK {{\"delay\":{}}}", timeout.as_nanos()))
        };
        match self.settle(&reply, payload).await {
            Settled::Done => Ok(()),
            Settled::QueueGone => Err(BusError::Receipt(format!(
                "there is no queue named {name:?}"
            ))),
            Settled::NoAnswer => Err(not_in_flight()),
        }
    }

    /// Sends an acknowledgement and waits (briefly) for JetStream's answer.
    async fn settle(&self, reply: &str, payload: Bytes) -> Settled {
        let req = async_nats::Request::new()
            .payload(payload)
            .timeout(Some(SETTLE_TIMEOUT));
        match self.client.send_request(reply.to_string(), req).await {
            Ok(_) => Settled::Done,
            Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => Settled::QueueGone,
            Err(_) => Settled::NoAnswer,
        }
    }

    /// Whether the queue still stores the message at `seq`.
    async fn queue_holds(&self, name: &str, seq: u64) -> Result<bool, BusError> {
        let stream = match self
            .js
            .get_stream_no_info(self.names.queue_stream(name))
            .await
        {
            Ok(s) => s,
            Err(_) => return Ok(false),
        };
        match stream.get_raw_message(seq).await {
            Ok(_) => Ok(true),
            Err(e) if e.to_string().contains("not found") => Ok(false),
            Err(e) => Err(BusError::request(e)),
        }
    }
}

/// How long an acknowledgement waits for JetStream's answer. JetStream
/// answers at once for a delivery in flight, and not at all for one that
/// is not, so a short wait tells the two apart.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);

enum Settled {
    Done,
    QueueGone,
    NoAnswer,
}

fn not_in_flight() -> BusError {
    BusError::Receipt(
        "the receipt handle no longer names a message in flight (its visibility timeout ended, or it was received again)"
            .into(),
    )
}

/// The acknowledgement subject inside a receipt handle, if it belongs to
/// queue `name` (so a handle can never acknowledge anything else).
/// Returns the subject and the message's stream sequence.
fn check_receipt(names: &Names, name: &str, receipt: &str) -> Result<(String, u64), BusError> {
    let bad = || BusError::Receipt(format!("not a receipt handle of queue {name}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(receipt.trim())
        .map_err(|_| bad())?;
    let reply = String::from_utf8(raw).map_err(|_| bad())?;
    let tokens: Vec<&str> = reply.split('.').collect();
    // $JS.ACK.<stream>.<consumer>.<5 numbers>, or with domain and
    // account hash before the stream and a token after (12 tokens).
    let (stream, consumer, numbers) = match tokens.len() {
        9 => (tokens[2], tokens[3], &tokens[4..9]),
        11 | 12 => (tokens[4], tokens[5], &tokens[6..11]),
        _ => return Err(bad()),
    };
    let ok = tokens[0] == "$JS"
        && tokens[1] == "ACK"
        && stream == names.queue_stream(name)
        && consumer == names.queue_consumer(name)
        && numbers
            .iter()
            .all(|n| n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty());
    let seq = numbers[1].parse::<u64>().map_err(|_| bad())?;
    if ok {
        Ok((reply, seq))
    } else {
        Err(bad())
    }
}

fn max_receive_of(config: &async_nats::jetstream::consumer::Config) -> u32 {
    config
        .metadata
        .get(MAX_RECEIVE_KEY)
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_acknowledges_only_its_own_queue() {
        let names = Names::new("");
        let own = receipt_of("$JS.ACK.QUEUE_jobs.queue_jobs.1.7.3.1700000000000000000.0");
        assert!(check_receipt(&names, "jobs", &own).is_ok());
        assert!(check_receipt(&names, "other", &own).is_err());
        for forged in [
            "$JS.ACK.INGEST.processor.1.7.3.1700000000000000000.0",
            "$JS.ACK.QUEUE_jobs.queue_jobs.1.7.3.x.0",
            "$JS.ACK.QUEUE_jobs.queue_jobs.1.7",
            "other.subject",
        ] {
            assert!(
                check_receipt(&names, "jobs", &receipt_of(forged)).is_err(),
                "{forged}"
            );
        }
        assert!(check_receipt(&names, "jobs", "!!not base64!!").is_err());
        let v2 =
            receipt_of("$JS.ACK.hub.ACCHASH.QUEUE_jobs.queue_jobs.1.7.3.1700000000000000000.0.tok");
        assert!(check_receipt(&names, "jobs", &v2).is_ok());
    }

    #[test]
    fn receipts_round_trip_and_name_their_queue() {
        let r = receipt_of("$JS.ACK.QUEUE_jobs.queue_jobs.1.7.3.1700000000000000000.0");
        assert!(!r.contains('.') && !r.contains('/') && !r.contains('+'));
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&r)
            .unwrap();
        assert_eq!(
            String::from_utf8(raw).unwrap(),
            "$JS.ACK.QUEUE_jobs.queue_jobs.1.7.3.1700000000000000000.0"
        );
    }
}
