//! Archives and replays (EventBridge's): an archive names which of a bus's
//! events stay replayable and for how long; a replay sends the archive's
//! events of a time range through the bus's rules again.
//!
//! The events themselves are the bus stream's: it keeps every event for
//! `SLUICE_BUS_RETENTION` (the design's "archive = stream retention"), so
//! an archive copies nothing. A replay reads the stream with an ordered
//! consumer from its start time, keeps the events of its bus that the
//! archive's pattern matches and that arrived after the archive was made,
//! marks each with `"replay-name"`, matches it against the bus's rules (or
//! the ones named) and stores one delivery per (rule, target), exactly as
//! the router does, with delivery ids derived from the event and the
//! replay. A rule that must not see replays says `"replay-name": [{"exists":
//! false}]`.
//!
//! A replay runs on one replica at a time, under a lease in the store; its
//! progress (the last stream sequence done and the counts) is written every
//! second, so a replica that dies is replaced within the lease and the
//! successor resumes where the last write left off. Events between that
//! write and the death are sent again, with the same delivery ids, so
//! JetStream keeps one copy of each delivery.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use futures::StreamExt;
use prost::Message as _;
use sluice_bus::headers as h;
use sluice_model::ids::derive_id;
use sluice_model::names::{self, DEFAULT_BUS};
use sluice_patterns::Pattern;
use sluice_proto::v1;
use sluice_store::replays::{state, ArchiveRecord, ReplayRecord};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::model::{self, Violation};
use crate::Shared;

/// How long a runner's claim on a replay lasts without a progress write.
const LEASE: Duration = Duration::from_secs(15);
/// How often progress is written (and the lease renewed).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// How often each replica looks for replays nobody runs.
const SCAN_EVERY: Duration = Duration::from_secs(3);
/// Deliveries stored at once.
const IN_FLIGHT: usize = 256;
/// The field that marks a replayed event.
pub const REPLAY_NAME: &str = "replay-name";

fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn parse_time(at: &str, text: &str) -> Result<OffsetDateTime, Violation> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|_| Violation::new(at, "must be an RFC 3339 time, e.g. 2026-12-04T10:00:00Z"))
}

/// Checks an archive for `PutArchive`; `bus_retention` bounds its retention.
pub fn check_archive(
    a: &v1::Archive,
    bus_retention: Duration,
) -> Result<Option<Pattern>, Violation> {
    names::check_bus(&a.bus).map_err(|e| Violation::new("", e))?;
    names::check_rule(&a.name)
        .map_err(|e| Violation::new("", e.replace("a rule name", "an archive name")))?;
    let pattern = if a.event_pattern.trim().is_empty() {
        None
    } else {
        Some(model::compile_pattern("/event_pattern", &a.event_pattern)?)
    };
    let most = bus_retention.as_secs() / 86_400;
    if u64::from(a.retention_days) > most {
        return Err(Violation::new(
            "/retention_days",
            format!(
                "may be at most {most}: the bus stream keeps events for {most} days (SLUICE_BUS_RETENTION); 0 keeps them that long"
            ),
        ));
    }
    model::check_description("/description", &a.description)?;
    Ok(pattern)
}

/// The archive as stored, with its server-set fields.
pub fn archive_of(rec: &ArchiveRecord) -> Option<v1::Archive> {
    let mut a = v1::Archive::decode(rec.spec.as_slice()).ok()?;
    a.bus.clone_from(&rec.bus);
    a.name.clone_from(&rec.name);
    a.created_at.clone_from(&rec.created_at);
    Some(a)
}

/// The replay as clients see it.
pub fn replay_of(rec: &ReplayRecord) -> Option<v1::Replay> {
    let mut r = v1::Replay::decode(rec.spec.as_slice()).ok()?;
    r.bus.clone_from(&rec.bus);
    r.name.clone_from(&rec.name);
    r.state = match rec.state.as_str() {
        state::STARTING => v1::ReplayState::Starting,
        state::RUNNING => v1::ReplayState::Running,
        state::CANCELLING => v1::ReplayState::Cancelling,
        state::COMPLETED => v1::ReplayState::Completed,
        state::CANCELLED => v1::ReplayState::Cancelled,
        _ => v1::ReplayState::Failed,
    } as i32;
    r.reason.clone_from(&rec.reason);
    r.events_replayed = rec.events_replayed;
    r.deliveries = rec.deliveries;
    r.created_at.clone_from(&rec.created_at);
    r.started_at.clone_from(&rec.started_at);
    r.ended_at.clone_from(&rec.ended_at);
    r.last_event_time.clone_from(&rec.last_event_time);
    Some(r)
}

/// Checks a replay request (its archive and rules are checked against the
/// store by the caller). Returns the definition to store.
pub fn check_replay(r: &v1::Replay) -> Result<v1::Replay, Violation> {
    names::check_bus(&r.bus).map_err(|e| Violation::new("", e))?;
    names::check_rule(&r.name)
        .map_err(|e| Violation::new("/name", e.replace("a rule name", "a replay name")))?;
    names::check_rule(&r.archive)
        .map_err(|e| Violation::new("/archive", e.replace("a rule name", "an archive name")))?;
    let start = parse_time("/start_time", &r.start_time)?;
    let end = parse_time("/end_time", &r.end_time)?;
    if end <= start {
        return Err(Violation::new("/end_time", "must be after start_time"));
    }
    if end > OffsetDateTime::now_utc() + time::Duration::seconds(1) {
        return Err(Violation::new("/end_time", "must not be in the future"));
    }
    if r.rules.len() > 300 {
        return Err(Violation::new("/rules", "at most 300 rules"));
    }
    for (i, rule) in r.rules.iter().enumerate() {
        names::check_rule(rule).map_err(|e| Violation::new(format!("/rules/{i}"), e))?;
    }
    model::check_description("/description", &r.description)?;
    Ok(v1::Replay {
        archive: r.archive.clone(),
        start_time: rfc3339(start),
        end_time: rfc3339(end),
        rules: r.rules.clone(),
        description: r.description.clone(),
        ..Default::default()
    })
}

/// The replays this replica runs, by (bus, name).
#[derive(Debug, Default)]
pub struct Running {
    owner: String,
    keys: Mutex<HashSet<(String, String)>>,
}

impl Running {
    /// An empty set, with a fresh owner id for this replica.
    pub fn new() -> Self {
        Self {
            owner: format!("transformer-{}", uuid::Uuid::new_v4()),
            keys: Mutex::default(),
        }
    }
}

/// Claims `(bus, name)` and runs it in the background, unless this
/// replica runs it already or another replica holds a live claim.
pub async fn try_start(state: &Shared, bus: &str, name: &str) {
    let key = (bus.to_string(), name.to_string());
    {
        let mut keys = state.replays.keys.lock().unwrap_or_else(|p| p.into_inner());
        if !keys.insert(key.clone()) {
            return;
        }
    }
    let end_seq = match state
        .bus
        .jetstream()
        .get_stream(state.bus.names().bus())
        .await
    {
        Ok(mut s) => match s.info().await {
            Ok(i) => i.state.last_sequence,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the bus stream's end; the replay starts later");
                release(state, &key);
                return;
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the bus stream; the replay starts later");
            release(state, &key);
            return;
        }
    };
    let now = now_ms();
    let lease_ms = i64::try_from(LEASE.as_millis()).unwrap_or(15_000);
    let claimed = state
        .store
        .claim_replay(
            bus,
            name,
            &state.replays.owner,
            now,
            now + lease_ms,
            end_seq,
        )
        .await;
    match claimed {
        Ok(Some(rec)) => {
            let state2 = state.clone();
            state.tracker.spawn(async move {
                let key = (rec.bus.clone(), rec.name.clone());
                run_one(&state2, rec).await;
                release(&state2, &key);
            });
        }
        Ok(None) => release(state, &key),
        Err(e) => {
            tracing::warn!(%bus, replay = %name, error = %e, "cannot claim the replay; retrying later");
            release(state, &key);
        }
    }
}

fn release(state: &Shared, key: &(String, String)) {
    state
        .replays
        .keys
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(key);
}

/// Looks for replays nobody runs (new ones, or ones whose runner died)
/// every few seconds, until `shutdown`.
pub async fn run(state: Shared, shutdown: CancellationToken) {
    loop {
        match state.store.unfinished_replays().await {
            Ok(list) => {
                let now = now_ms();
                for rec in list {
                    if rec.owner.is_empty() || rec.lease_until < now {
                        try_start(&state, &rec.bus, &rec.name).await;
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot list the replays"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(SCAN_EVERY) => {}
        }
    }
}

/// Why a run stopped early.
enum Stop {
    /// The replay was cancelled (or the claim lost): stop quietly.
    Yielded,
    /// It cannot go on.
    Failed(String),
    /// NATS or the store failed for now: left for a retry once the claim
    /// runs out (the ids make what is sent again harmless).
    Retry(String),
}

async fn run_one(state: &Shared, rec: ReplayRecord) {
    let (bus, name) = (rec.bus.clone(), rec.name.clone());
    let owner = state.replays.owner.clone();
    let mut progress = Progress {
        cursor: rec.cursor,
        events: rec.events_replayed,
        deliveries: rec.deliveries,
        last_event_time: rec.last_event_time.clone(),
        written: Instant::now(),
    };
    let outcome = if rec.state == state::CANCELLING {
        Err(Stop::Yielded)
    } else {
        replay_events(state, &rec, &mut progress).await
    };
    // The final counts include what was sent after the last progress write.
    let counts = (progress.events, progress.deliveries);
    let finish = |final_state: &'static str, reason: String| {
        let (bus, name, owner) = (bus.clone(), name.clone(), owner.clone());
        async move {
            match state
                .store
                .finish_replay(&bus, &name, &owner, final_state, &reason, counts)
                .await
            {
                Ok(true) => {
                    metrics::counter!("sluice.transformer.replays", "outcome" => final_state.to_lowercase())
                        .increment(1);
                    tracing::info!(%bus, replay = %name, state = final_state, %reason, "replay ended");
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(%bus, replay = %name, error = %e, "cannot record the replay's end; it will be taken up again")
                }
            }
        }
    };
    match outcome {
        Ok(()) => finish(state::COMPLETED, String::new()).await,
        Err(Stop::Failed(reason)) => finish(state::FAILED, reason).await,
        Err(Stop::Retry(reason)) => {
            metrics::counter!("sluice.transformer.replays", "outcome" => "retried").increment(1);
            tracing::warn!(%bus, replay = %name, %reason, "replay interrupted; it resumes once its claim runs out");
        }
        Err(Stop::Yielded) => {
            // Cancelled: end it as such; a lost claim is someone else's now.
            if let Ok(Some(now)) = state.store.replay(&bus, &name).await {
                if now.state == state::CANCELLING && now.owner == owner {
                    finish(state::CANCELLED, "cancelled".into()).await;
                }
            }
        }
    }
}

/// Sends the replay's events, writing progress as it goes.
async fn replay_events(
    state: &Shared,
    rec: &ReplayRecord,
    progress: &mut Progress,
) -> Result<(), Stop> {
    let spec = v1::Replay::decode(rec.spec.as_slice())
        .map_err(|e| Stop::Failed(format!("the stored replay cannot be read: {e}")))?;
    let archive = match state.store.archive(&rec.bus, &spec.archive).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            return Err(Stop::Failed(format!(
                "the archive {:?} was deleted",
                spec.archive
            )))
        }
        Err(e) => return Err(Stop::Retry(format!("cannot read the archive: {e}"))),
    };
    let archive_spec = archive_of(&archive)
        .ok_or_else(|| Stop::Failed("the stored archive cannot be read".into()))?;
    let pattern = if archive_spec.event_pattern.is_empty() {
        None
    } else {
        let value: serde_json::Value = serde_json::from_str(&archive_spec.event_pattern)
            .map_err(|e| Stop::Failed(format!("the archive's pattern: {e}")))?;
        // Accepted when the archive was put: limits for new patterns only
        // are not applied again.
        Some(
            Pattern::parse_stored(&value)
                .map_err(|e| Stop::Failed(format!("the archive's pattern: {}", e.message)))?,
        )
    };
    let time = |t: &str| OffsetDateTime::parse(t, &Rfc3339).ok();
    let (Some(start), Some(end)) = (time(&spec.start_time), time(&spec.end_time)) else {
        return Err(Stop::Failed("the replay's range cannot be read".into()));
    };
    let mut from = start;
    if let Some(created) = time(&archive.created_at) {
        from = from.max(created);
    }
    if archive_spec.retention_days > 0 {
        from = from.max(
            OffsetDateTime::now_utc()
                - time::Duration::days(i64::from(archive_spec.retention_days)),
        );
    }
    let only: HashSet<&str> = spec.rules.iter().map(String::as_str).collect();

    if rec.end_seq == 0 || progress.cursor >= rec.end_seq || from >= end {
        return write_progress(state, rec, progress).await;
    }
    let deliver_policy = if progress.cursor > 0 {
        DeliverPolicy::ByStartSequence {
            start_sequence: progress.cursor + 1,
        }
    } else {
        DeliverPolicy::ByStartTime { start_time: from }
    };
    let stream = state
        .bus
        .jetstream()
        .get_stream(state.bus.names().bus())
        .await
        .map_err(|e| Stop::Retry(format!("cannot open the bus stream: {e}")))?;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(|e| Stop::Retry(format!("cannot read the bus stream: {e}")))?;
    if consumer.cached_info().num_pending == 0 {
        return write_progress(state, rec, progress).await;
    }
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| Stop::Retry(format!("cannot read the bus stream: {e}")))?;
    let key = derive_id(&format!("{}/{}", rec.bus, rec.name), "replay");
    let mut batch = Vec::new();
    let mut batch_events = 0u64;
    let paced = Instant::now();
    let mut sent_here = 0u64;
    let mut batch_last = (progress.cursor, progress.last_event_time.clone());
    loop {
        let next = tokio::time::timeout(Duration::from_secs(5), messages.next()).await;
        let msg = match next {
            Ok(Some(Ok(m))) => m,
            Ok(Some(Err(e))) => return Err(Stop::Retry(format!("reading the bus stream: {e}"))),
            Ok(None) => {
                return Err(Stop::Retry("the bus stream's consumer ended".into()));
            }
            // Nothing arrives although the range is not done (a leader
            // election, a consumer being recreated): resume later.
            Err(_) if progress.cursor < rec.end_seq => {
                return Err(Stop::Retry(format!(
                    "no event from the bus stream for 5 s at sequence {}",
                    progress.cursor
                )));
            }
            Err(_) => break,
        };
        let Ok(info) = msg.info() else { continue };
        let (seq, published, pending) = (info.stream_sequence, info.published, info.pending);
        if seq > rec.end_seq || published >= end {
            break;
        }
        batch_last = (seq, rfc3339(published));
        let on_bus = msg
            .headers
            .as_ref()
            .and_then(|hm| hm.get(h::EVENT_BUS))
            .map(|v| v.as_str().to_string())
            .unwrap_or_else(|| DEFAULT_BUS.to_string());
        if on_bus == rec.bus {
            if let Ok(serde_json::Value::Object(mut event)) =
                serde_json::from_slice::<serde_json::Value>(&msg.payload)
            {
                let archived = match &pattern {
                    Some(p) => p
                        .matches(&serde_json::Value::Object(event.clone()))
                        .unwrap_or(false),
                    None => true,
                };
                if archived {
                    let event_id = event
                        .get("id")
                        .and_then(|v| v.as_str())
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("bus-{seq}"));
                    event.insert(
                        REPLAY_NAME.into(),
                        serde_json::Value::String(rec.name.clone()),
                    );
                    let event = serde_json::Value::Object(event);
                    let payload =
                        bytes::Bytes::from(serde_json::to_vec(&event).unwrap_or_default());
                    let dedupe = derive_id(&event_id, &key);
                    let rules = state
                        .registry
                        .snapshot()
                        .route(&rec.bus, &event)
                        .unwrap_or_default();
                    for rule in rules
                        .iter()
                        .filter(|r| only.is_empty() || only.contains(r.name.as_str()))
                    {
                        for target in &rule.targets {
                            let (state, target, event_id, dedupe, payload) = (
                                state.clone(),
                                target.clone(),
                                event_id.clone(),
                                dedupe.clone(),
                                payload.clone(),
                            );
                            batch.push(async move {
                                crate::router::store_delivery(
                                    &state, &target, &event_id, &dedupe, payload, published, seq,
                                )
                                .await
                            });
                        }
                    }
                    batch_events += 1;
                    sent_here += 1;
                    pace(state.config.replay_rate, paced, sent_here).await;
                }
            }
        }
        let last = pending == 0;
        if batch.len() >= IN_FLIGHT || last || progress.written.elapsed() >= PROGRESS_EVERY {
            let stored = batch.len() as u64;
            flush(&mut batch).await?;
            progress.deliveries += stored;
            progress.events += batch_events;
            batch_events = 0;
            (progress.cursor, progress.last_event_time) = batch_last.clone();
            // Recorded as soon as stored, so a resumed replay repeats at
            // most the batch in flight.
            write_progress(state, rec, progress).await?;
        }
        if last {
            break;
        }
    }
    let stored = batch.len() as u64;
    flush(&mut batch).await?;
    progress.deliveries += stored;
    progress.events += batch_events;
    (progress.cursor, progress.last_event_time) = batch_last;
    write_progress(state, rec, progress).await
}

/// Waits until sending `sent` events since `since` keeps to `rate` per
/// second (0: no limit).
async fn pace(rate: u32, since: Instant, sent: u64) {
    if rate == 0 {
        return;
    }
    let due = Duration::from_secs_f64(sent as f64 / f64::from(rate));
    if let Some(wait) = due.checked_sub(since.elapsed()) {
        tokio::time::sleep(wait).await;
    }
}

struct Progress {
    cursor: u64,
    events: u64,
    deliveries: u64,
    last_event_time: String,
    written: Instant,
}

/// Stores a batch of deliveries (retrying a few times).
async fn flush<F>(batch: &mut Vec<F>) -> Result<(), Stop>
where
    F: std::future::Future<Output = Result<(), sluice_bus::BusError>>,
{
    let results = futures::future::join_all(batch.drain(..)).await;
    if let Some(e) = results.into_iter().find_map(Result::err) {
        // The ids make a retry after a new claim harmless.
        return Err(Stop::Retry(format!("a delivery could not be stored: {e}")));
    }
    Ok(())
}

async fn write_progress(state: &Shared, rec: &ReplayRecord, p: &mut Progress) -> Result<(), Stop> {
    let lease_ms = i64::try_from(LEASE.as_millis()).unwrap_or(15_000);
    let ok = state
        .store
        .replay_progress(
            &rec.bus,
            &rec.name,
            &state.replays.owner,
            p.cursor,
            p.events,
            p.deliveries,
            &p.last_event_time,
            now_ms() + lease_ms,
        )
        .await
        .map_err(|e| Stop::Retry(format!("cannot record progress: {e}")))?;
    p.written = Instant::now();
    metrics::gauge!("sluice.transformer.replay.events").set(p.events as f64);
    if ok {
        Ok(())
    } else {
        Err(Stop::Yielded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(start: &str, end: &str) -> v1::Replay {
        v1::Replay {
            bus: "default".into(),
            name: "r1".into(),
            archive: "a1".into(),
            start_time: start.into(),
            end_time: end.into(),
            ..Default::default()
        }
    }

    #[test]
    fn replays_need_a_range_in_the_past() {
        assert!(check_replay(&replay("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")).is_ok());
        let e = check_replay(&replay("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z")).unwrap_err();
        assert_eq!(e.pointer, "/end_time");
        let e = check_replay(&replay("yesterday", "2026-01-01T00:00:00Z")).unwrap_err();
        assert_eq!(e.pointer, "/start_time");
        let e = check_replay(&replay("2026-01-01T00:00:00Z", "2999-01-01T00:00:00Z")).unwrap_err();
        assert!(e.message.contains("future"), "{e:?}");
        let mut r = replay("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z");
        r.rules = vec!["ok".into(), "not ok!".into()];
        assert_eq!(check_replay(&r).unwrap_err().pointer, "/rules/1");
    }

    #[test]
    fn archives_keep_at_most_what_the_bus_keeps() {
        let a = v1::Archive {
            bus: "default".into(),
            name: "all".into(),
            retention_days: 8,
            ..Default::default()
        };
        let e = check_archive(&a, Duration::from_secs(7 * 86_400)).unwrap_err();
        assert_eq!(e.pointer, "/retention_days");
        assert!(e.message.contains("SLUICE_BUS_RETENTION"));
        let a = v1::Archive {
            retention_days: 7,
            event_pattern: r#"{"source": ["shop"]}"#.into(),
            ..a
        };
        assert!(check_archive(&a, Duration::from_secs(7 * 86_400))
            .unwrap()
            .is_some());
        let bad = v1::Archive {
            event_pattern: r#"{"source": "shop"}"#.into(),
            ..a
        };
        assert!(check_archive(&bad, Duration::from_secs(7 * 86_400))
            .unwrap_err()
            .pointer
            .starts_with("/event_pattern"));
    }
}
