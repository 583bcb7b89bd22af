//! Scheduled rules: every replica keeps every enabled schedule's next tick
//! and, when it comes, stores one delivery of a "Scheduled Event" per
//! target.
//!
//! Exactly once per tick, whatever the number of replicas: a tick's event id
//! is derived from the rule and the tick's time, so every replica stores the
//! same deliveries under the same ids and JetStream keeps the first (the
//! deliveries stream's de-duplication window, `SLUICE_QUEUE_DEDUPE_WINDOW`,
//! 2 minutes by default, is far wider than the replicas' distance in time).
//!
//! No burst after downtime: a replica that starts (or finds it fell behind)
//! fires only the latest tick it missed, and only when that tick is recent
//! (within half the de-duplication window, at most a minute), so a replica
//! that restarts quickly loses no tick and one that was down for an hour
//! does not fire sixty. Older missed ticks are counted as skipped.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sluice_model::envelope::{Envelope, VERSION};
use sluice_model::ids::derive_id;
use tokio_util::sync::CancellationToken;

use crate::model::CompiledRule;
use crate::Shared;

/// What EventBridge calls a tick's event.
pub const DETAIL_TYPE: &str = "Scheduled Event";
/// The source of tick events.
pub const SOURCE: &str = "sluice.events";

/// The id of the event of `rule`'s tick at `tick`.
pub fn tick_id(bus: &str, rule: &str, tick: DateTime<Utc>) -> String {
    derive_id(
        &format!("{bus}/{rule}"),
        &format!("tick/{}", tick.timestamp_millis()),
    )
}

/// How late a missed tick may still fire.
fn catch_up(state: &Shared) -> Duration {
    (state.config.common.queue.dedupe_window / 2).min(Duration::from_secs(60))
}

/// One scheduled rule's plan.
#[derive(Debug)]
struct Planned {
    rule: Arc<CompiledRule>,
    next: DateTime<Utc>,
}

/// Keeps every schedule's next tick and fires it, until `shutdown`.
pub async fn run(state: Shared, shutdown: CancellationToken) {
    let mut changes = state.registry.subscribe();
    let mut plan: HashMap<(String, String), Planned> = HashMap::new();
    let mut due: BinaryHeap<Reverse<(DateTime<Utc>, String, String)>> = BinaryHeap::new();
    let grace = catch_up(&state);
    let mut dirty = true;
    loop {
        if dirty {
            changes.borrow_and_update();
            replan(&state, &mut plan, &mut due, grace);
            dirty = false;
        }
        let wait = match due.peek() {
            Some(Reverse((at, _, _))) => (*at - Utc::now()).to_std().unwrap_or(Duration::ZERO),
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = changes.changed() => {
                if r.is_err() {
                    return;
                }
                dirty = true;
                continue;
            }
            _ = tokio::time::sleep(wait) => {}
        }
        let now = Utc::now();
        while let Some(Reverse((at, bus, name))) = due.peek().cloned() {
            if at > now {
                break;
            }
            due.pop();
            let key = (bus, name);
            let Some(p) = plan.get_mut(&key) else {
                continue;
            };
            if p.next != at {
                continue; // re-planned since
            }
            fire(&state, p.rule.clone(), at);
            p.next = match following(&p.rule, at, now, grace) {
                Some(next) => next,
                None => {
                    plan.remove(&key);
                    continue;
                }
            };
            due.push(Reverse((p.next, key.0, key.1)));
        }
        metrics::gauge!("sluice.transformer.schedules").set(plan.len() as f64);
    }
}

/// The tick after `fired`; when that one is already past the catch-up
/// window (the replica was paused), the latest recent tick instead.
fn following(
    rule: &CompiledRule,
    fired: DateTime<Utc>,
    now: DateTime<Utc>,
    grace: Duration,
) -> Option<DateTime<Utc>> {
    let schedule = rule.schedule.as_ref()?;
    let next = schedule.next_after(fired)?;
    if now - next <= chrono::Duration::from_std(grace).ok()? {
        return Some(next);
    }
    metrics::counter!("sluice.transformer.schedule.skipped").increment(1);
    first_tick(rule, now, grace)
}

/// The first tick a replica fires for `rule` from `now`: the latest tick of
/// the last `grace` that came after the rule's last change, or else the
/// next one.
fn first_tick(rule: &CompiledRule, now: DateTime<Utc>, grace: Duration) -> Option<DateTime<Utc>> {
    let schedule = rule.schedule.as_ref()?;
    let grace = chrono::Duration::from_std(grace).ok()?;
    if let Some(latest) = schedule.latest_at_or_before(now) {
        let after_change = rule.changed_at.is_none_or(|c| latest > c);
        if now - latest <= grace && after_change {
            return Some(latest);
        }
    }
    schedule.next_after(now)
}

/// Brings the plan in line with the registry: new or changed rules get
/// their first tick, removed ones go.
fn replan(
    state: &Shared,
    plan: &mut HashMap<(String, String), Planned>,
    due: &mut BinaryHeap<Reverse<(DateTime<Utc>, String, String)>>,
    grace: Duration,
) {
    let snapshot = state.registry.snapshot();
    let now = Utc::now();
    let mut seen = HashMap::with_capacity(plan.len());
    for rule in snapshot.scheduled() {
        let key = (rule.bus.clone(), rule.name.clone());
        let same = plan.get(&key).is_some_and(|p| p.rule.proto == rule.proto);
        if same {
            if let Some(p) = plan.get_mut(&key) {
                p.rule = rule.clone();
            }
        } else if let Some(next) = first_tick(rule, now, grace) {
            plan.insert(
                key.clone(),
                Planned {
                    rule: rule.clone(),
                    next,
                },
            );
            due.push(Reverse((next, key.0.clone(), key.1.clone())));
        }
        seen.insert(key, ());
    }
    plan.retain(|k, _| seen.contains_key(k));
    // Entries of removed or re-planned rules are skipped when they come up;
    // rebuild when they pile up.
    if due.len() > plan.len() * 2 + 64 {
        *due = plan
            .iter()
            .map(|((b, n), p)| Reverse((p.next, b.clone(), n.clone())))
            .collect();
    }
}

/// Stores the tick's deliveries in the background, retrying until the
/// catch-up window closes (the ids make a repeat harmless).
fn fire(state: &Shared, rule: Arc<CompiledRule>, tick: DateTime<Utc>) {
    let state_ = state.clone();
    let grace = catch_up(state);
    state.tracker.spawn(async move {
        let state = state_;
        let lateness = (Utc::now() - tick).to_std().unwrap_or(Duration::ZERO);
        metrics::histogram!("sluice.transformer.schedule.lateness.seconds")
            .record(lateness.as_secs_f64());
        let id = tick_id(&rule.bus, &rule.name, tick);
        let time = time::OffsetDateTime::from_unix_timestamp(tick.timestamp())
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let envelope = Envelope {
            version: VERSION.into(),
            id: id.clone(),
            detail_type: DETAIL_TYPE.into(),
            source: SOURCE.into(),
            account: state.config.account.clone(),
            time,
            region: state.config.region.clone(),
            resources: vec![crate::model::rule_arn(
                &state.config.region,
                &state.config.account,
                &rule.bus,
                &rule.name,
            )],
            detail: serde_json::json!({}),
        };
        let payload = bytes::Bytes::from(envelope.to_bytes());
        // Retried only while the tick is recent enough for its ids to be
        // de-duplicated against another replica's copy.
        let deadline = tokio::time::Instant::now()
            + grace.saturating_sub((Utc::now() - tick).to_std().unwrap_or(Duration::ZERO));
        let mut delay = Duration::from_millis(100);
        for target in &rule.targets {
            loop {
                match crate::router::store_delivery(&state, target, &id, &id, payload.clone(), time, 0)
                    .await
                {
                    Ok(()) => break,
                    Err(e) if tokio::time::Instant::now() + delay < deadline => {
                        tracing::warn!(bus = %rule.bus, rule = %rule.name, error = %e, "cannot store a tick's delivery yet; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                    Err(e) => {
                        metrics::counter!("sluice.transformer.schedule.failed").increment(1);
                        tracing::error!(bus = %rule.bus, rule = %rule.name, tick = %tick, error = %e, "a tick's delivery could not be stored; the tick is lost for this target");
                        break;
                    }
                }
            }
        }
        metrics::counter!("sluice.transformer.schedule.fired").increment(1);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_ids_are_the_same_on_every_replica_and_differ_per_tick() {
        let t = DateTime::parse_from_rfc3339("2026-03-07T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(tick_id("default", "r", t), tick_id("default", "r", t));
        assert_ne!(
            tick_id("default", "r", t),
            tick_id("default", "r", t + chrono::Duration::minutes(1))
        );
        assert_ne!(tick_id("default", "r", t), tick_id("default", "s", t));
        assert_ne!(tick_id("default", "r", t), tick_id("other", "r", t));
    }
}
