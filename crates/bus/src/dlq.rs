//! The dead-letter queue: what could not be processed, kept with its error,
//! listable and redrivable. Nothing leaves it except by redrive or retention.
//!
//! A dead letter is the original payload and headers, plus `Sluice-Dlq-*`
//! headers (reason, attempts, subject, original id, times), on subject
//! `dlq.<queue>`. Its `Nats-Msg-Id` is derived from the original stream and
//! sequence, so a processor that dead-letters the same delivery twice (a
//! crash between publish and ack) stores it once.

use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::DirectGetErrorKind;
use async_nats::HeaderMap;
use bytes::Bytes;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::headers as h;
use crate::{Bus, BusError};

/// Everything known about a failed message when it is dead-lettered.
#[derive(Debug, Clone)]
pub struct Failure<'a> {
    /// Subject it was consumed from (without stream prefix).
    pub subject: &'a str,
    /// Its `Nats-Msg-Id` (the event id).
    pub msg_id: &'a str,
    /// Payload as received.
    pub payload: &'a Bytes,
    /// Headers as received.
    pub headers: Option<&'a HeaderMap>,
    /// Why it failed.
    pub reason: &'a str,
    /// Delivery attempts made.
    pub attempts: u32,
    /// True when it could never succeed; false when retries ran out.
    pub terminal: bool,
    /// When the queue accepted it.
    pub accepted_at: OffsetDateTime,
    /// Its stream and sequence in the source queue (for a stable DLQ id).
    pub source_stream: &'a str,
    /// Sequence in the source stream.
    pub source_seq: u64,
    /// The last response of the target, for deliveries (status and the start of the body).
    pub last_response: Option<&'a str>,
}

impl<'a> Failure<'a> {
    /// A delivery its subject refused before any attempt (its backlog is
    /// full), dead-lettered in place of storing it. `source` names where it
    /// came from for its stable dead-letter id (with `seq`).
    #[allow(clippy::too_many_arguments)]
    pub fn refused(
        subject: &'a str,
        msg_id: &'a str,
        payload: &'a Bytes,
        headers: &'a HeaderMap,
        reason: &'a str,
        accepted_at: OffsetDateTime,
        source: &'a str,
        seq: u64,
    ) -> Self {
        Self {
            subject,
            msg_id,
            payload,
            headers: Some(headers),
            reason,
            attempts: 0,
            terminal: false,
            accepted_at,
            source_stream: source,
            source_seq: seq,
            last_response: None,
        }
    }
}

/// One dead letter as listed.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// Position in the DLQ; the cursor for paging and the handle for redrive.
    pub seq: u64,
    /// The original message id: the event id, or for a target's delivery
    /// the delivery id. Redrive takes these.
    pub id: String,
    /// For a target's delivery: the event's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// For a target's delivery: the bus of the rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
    /// For a target's delivery: the rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// For a target's delivery: the target's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// For a subscription's delivery: the topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// For a subscription's delivery: the subscription's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
    /// For a target's or subscription's delivery: its last response
    /// (status and the start of the body, or the SMTP reply).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_response: Option<String>,
    /// For the file pipeline: the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    /// For the file pipeline: the step that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// For a workflow: the workflow that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
    /// Subject it was consumed from.
    pub subject: String,
    /// Why it failed.
    pub reason: String,
    /// Delivery attempts made.
    pub attempts: u32,
    /// True when it could never succeed; false when retries ran out.
    pub terminal: bool,
    /// When the queue accepted the original.
    pub accepted_at: Option<String>,
    /// When it was dead-lettered.
    pub failed_at: Option<String>,
    /// The original payload, as JSON when it is JSON, else as a string.
    pub payload: serde_json::Value,
    #[serde(skip)]
    raw_payload: Bytes,
    #[serde(skip)]
    headers: HeaderMap,
}

/// One page of dead letters.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    /// Dead letters in order.
    pub entries: Vec<DeadLetter>,
    /// Pass as `after` for the next page; absent at the end.
    pub next: Option<u64>,
}

/// What a redrive did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RedriveReport {
    /// Ids re-published to their queue and removed from the DLQ.
    pub redriven: Vec<String>,
    /// Ids asked for that are not in the DLQ.
    pub not_found: Vec<String>,
    /// Whether more dead letters remain beyond the limit of this call.
    pub more: bool,
    /// Dead letters that could not be redriven (their queue is gone, say);
    /// they stay in the DLQ.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<RedriveFailure>,
}

/// A dead letter that could not be redriven, and why.
#[derive(Debug, Clone, Serialize)]
pub struct RedriveFailure {
    /// Its id.
    pub id: String,
    /// Why.
    pub reason: String,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

impl Bus {
    /// Puts a failed message in the DLQ (under `dlq.<queue>`) and waits for
    /// JetStream's acknowledgement. Acknowledge the original only after this.
    pub async fn dead_letter(&self, queue: &str, f: &Failure<'_>) -> Result<(), BusError> {
        self.dead_letter_to(&crate::subjects::dlq(queue), f).await
    }

    /// [`Bus::dead_letter`] under the dead-letter subject `dlq_subject`.
    pub async fn dead_letter_to(&self, dlq_subject: &str, f: &Failure<'_>) -> Result<(), BusError> {
        let mut headers = HeaderMap::new();
        if let Some(orig) = f.headers {
            for (k, values) in orig.iter() {
                let name: &str = k.as_ref();
                if name.starts_with("Nats-") {
                    continue;
                }
                for v in values {
                    headers.append(name, v.as_str());
                }
            }
        }
        let reason: String = f
            .reason
            .chars()
            .filter(|c| !c.is_control())
            .take(1024)
            .collect();
        headers.insert(h::DLQ_REASON, reason.as_str());
        headers.insert(h::DLQ_ATTEMPTS, f.attempts.to_string().as_str());
        headers.insert(h::DLQ_SUBJECT, f.subject);
        headers.insert(h::DLQ_MSG_ID, f.msg_id);
        headers.insert(h::DLQ_ACCEPTED_AT, rfc3339(f.accepted_at).as_str());
        headers.insert(
            h::DLQ_FAILED_AT,
            rfc3339(OffsetDateTime::now_utc()).as_str(),
        );
        headers.insert(h::DLQ_TERMINAL, if f.terminal { "true" } else { "false" });
        if let Some(r) = f.last_response {
            let r: String = r
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .take(1024)
                .collect();
            headers.insert(h::DLQ_RESPONSE, r.as_str());
        }
        let dlq_id = format!("dlq:{}:{}", f.source_stream, f.source_seq);
        self.publish_raw(dlq_subject, &dlq_id, f.payload.clone(), headers)
            .await?;
        Ok(())
    }

    /// Lists dead letters after position `after`, at most `limit`.
    pub async fn dlq_list(&self, after: u64, limit: usize) -> Result<Page, BusError> {
        let stream = self
            .js
            .get_stream_no_info(self.names.dlq())
            .await
            .map_err(BusError::request)?;
        let subject = self.names.subject(crate::subjects::DLQ_ALL);
        let mut entries = Vec::new();
        let mut next_seq = after.saturating_add(1);
        let mut more = false;
        loop {
            let msg = match stream
                .direct_get_next_for_subject(&subject, Some(next_seq))
                .await
            {
                Ok(m) => m,
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => break,
                Err(e) => return Err(BusError::request(e)),
            };
            if entries.len() == limit {
                more = true;
                break;
            }
            next_seq = msg.sequence + 1;
            entries.push(self.to_dead_letter(msg));
        }
        let next = if more {
            entries.last().map(|e: &DeadLetter| e.seq)
        } else {
            None
        };
        Ok(Page { entries, next })
    }

    fn to_dead_letter(&self, m: StreamMessage) -> DeadLetter {
        let get = |name: &str| m.headers.get(name).map(|v| v.as_str().to_string());
        let payload = serde_json::from_slice(&m.payload).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&m.payload).into_owned())
        });
        DeadLetter {
            seq: m.sequence,
            id: get(h::DLQ_MSG_ID).unwrap_or_default(),
            event_id: get(h::EVENT_ID),
            bus: get(h::BUS),
            rule: get(h::RULE),
            target: get(h::TARGET),
            topic: get(h::TOPIC),
            subscription: get(h::SUBSCRIPTION),
            last_response: get(h::DLQ_RESPONSE),
            file_id: get(h::FILE_ID),
            step: get(h::FILE_STEP),
            workflow_id: get(h::WORKFLOW_ID),
            subject: get(h::DLQ_SUBJECT).unwrap_or_default(),
            reason: get(h::DLQ_REASON).unwrap_or_default(),
            attempts: get(h::DLQ_ATTEMPTS)
                .and_then(|a| a.parse().ok())
                .unwrap_or(0),
            terminal: get(h::DLQ_TERMINAL).as_deref() == Some("true"),
            accepted_at: get(h::DLQ_ACCEPTED_AT),
            failed_at: get(h::DLQ_FAILED_AT),
            payload,
            raw_payload: m.payload,
            headers: m.headers,
        }
    }

    /// Re-publishes dead letters to the subject they came from and removes
    /// them from the DLQ: all of them (up to `limit`), or those whose id is in
    /// `ids`. A redriven message gets a fresh `Nats-Msg-Id` derived from its
    /// DLQ position (so the queue's de-duplication window cannot swallow it,
    /// while a repeated redrive of the same entry stays de-duplicated).
    pub async fn dlq_redrive(
        &self,
        ids: Option<&[String]>,
        limit: usize,
    ) -> Result<RedriveReport, BusError> {
        let stream = self
            .js
            .get_stream_no_info(self.names.dlq())
            .await
            .map_err(BusError::request)?;
        let mut report = RedriveReport::default();
        let mut wanted: Option<std::collections::HashSet<&str>> =
            ids.map(|ids| ids.iter().map(String::as_str).collect());
        let mut after = 0;
        'pages: loop {
            let page = self.dlq_list(after, 100).await?;
            for dl in page.entries {
                after = dl.seq;
                if let Some(w) = wanted.as_mut() {
                    if !w.remove(dl.id.as_str()) {
                        continue;
                    }
                }
                if report.redriven.len() == limit {
                    report.more = true;
                    break 'pages;
                }
                let mut headers = HeaderMap::new();
                for (k, values) in dl.headers.iter() {
                    let name: &str = k.as_ref();
                    if name.starts_with("Nats-") || h::DLQ_HEADERS.contains(&name) {
                        continue;
                    }
                    for v in values {
                        headers.append(name, v.as_str());
                    }
                }
                headers.insert(h::REDRIVEN_FROM, dl.seq.to_string().as_str());
                let msg_id = format!("{}:redrive:{}", dl.id, dl.seq);
                if let Err(e) = self
                    .publish_raw(&dl.subject, &msg_id, dl.raw_payload.clone(), headers)
                    .await
                {
                    // One entry that cannot go back does not stop the others.
                    report.failed.push(RedriveFailure {
                        id: dl.id,
                        reason: e.to_string(),
                    });
                    continue;
                }
                stream
                    .delete_message(dl.seq)
                    .await
                    .map_err(BusError::request)?;
                report.redriven.push(dl.id);
            }
            if page.next.is_none() || wanted.as_ref().is_some_and(|w| w.is_empty()) {
                break;
            }
        }
        if let Some(w) = wanted {
            report.not_found = w.into_iter().map(str::to_string).collect();
            report.not_found.sort();
        }
        Ok(report)
    }
}
