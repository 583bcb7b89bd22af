//! Archives and replays end to end: events through the gateway, the
//! processor and the bus (real NATS JetStream), an archive and replays
//! through the API, deliveries to a real HTTP receiver, replays' state in
//! DynamoDB Local; a replay cancelled, and one whose transformer is killed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::{json, Value};
use sluice_e2e::receiver::Receiver;
use sluice_e2e::{assert_eventually, Stack};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

fn now() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap()
}

async fn rule(stack: &Stack, name: &str, pattern: Value, url: String) {
    let (code, body) = stack
        .put(
            &format!("/v1/buses/default/rules/{name}"),
            &json!({"event_pattern": pattern, "targets": [{"type": "http", "id": "hook", "url": url}]}),
        )
        .await;
    assert_eq!(code, 201, "{body}");
}

async fn post_events(stack: &Stack, source: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let entries: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"source": source, "detail-type": "Sold", "detail": {"n": i}}))
            .collect();
        let (code, _, resp) = stack.post("/v1/events", &json!({"entries": entries})).await;
        assert_eq!(code, 202, "{resp}");
        for e in resp["entries"].as_array().unwrap() {
            ids.push(e["id"].as_str().unwrap().to_string());
        }
    }
    ids
}

/// The requests `hook` got on `path`: (event id, replay name) of each body.
fn seen(hook: &Receiver, path: &str) -> Vec<(String, Option<String>)> {
    hook.requests()
        .iter()
        .filter(|r| r.path == path)
        .map(|r| {
            let b = r.json();
            (
                b["id"].as_str().unwrap_or_default().to_string(),
                b["replay-name"].as_str().map(str::to_string),
            )
        })
        .collect()
}

async fn wait_state(stack: &Stack, name: &str, states: &[&str], within: Duration) -> Value {
    let deadline = std::time::Instant::now() + within;
    loop {
        let (code, r) = stack
            .get(&format!("/v1/buses/default/replays/{name}"))
            .await;
        assert_eq!(code, 200, "{r}");
        if states.contains(&r["state"].as_str().unwrap_or_default()) {
            return r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "replay {name} stayed {r}\n{}",
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_replay_sends_the_archived_events_again_marked_and_only_to_the_rules_that_want_them() {
    let stack = Stack::start("replay", &[]).await.unwrap();
    let hook = Receiver::start().await;
    rule(
        &stack,
        "all-sales",
        json!({"source": ["shop"]}),
        format!("{}/all", hook.url),
    )
    .await;
    rule(
        &stack,
        "live-only",
        json!({"source": ["shop"], "replay-name": [{"exists": false}]}),
        format!("{}/live", hook.url),
    )
    .await;
    rule(
        &stack,
        "audit",
        json!({"source": ["shop"]}),
        format!("{}/audit", hook.url),
    )
    .await;

    // An archive of the shop's events; the bus stream keeps 7 days.
    let (code, a) = stack
        .put(
            "/v1/buses/default/archives/sales",
            &json!({"event_pattern": {"source": ["shop"]}, "retention_days": 7, "description": "every sale"}),
        )
        .await;
    assert_eq!(code, 201, "{a}");
    assert_eq!(a["event_pattern"], json!({"source": ["shop"]}));
    let (code, p) = stack
        .put(
            "/v1/buses/default/archives/too-long",
            &json!({"retention_days": 30}),
        )
        .await;
    assert_eq!(
        (code, p["pointer"].as_str()),
        (400, Some("/retention_days")),
        "{p}"
    );
    let (code, list) = stack.get("/v1/buses/default/archives").await;
    assert_eq!(code, 200);
    assert_eq!(list["archives"].as_array().unwrap().len(), 1);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let start = now();
    let shop = post_events(&stack, "shop", 20).await;
    post_events(&stack, "elsewhere", 5).await;
    assert_eventually!(
        seen(&hook, "/all").len() == 20
            && seen(&hook, "/live").len() == 20
            && seen(&hook, "/audit").len() == 20,
        "the live events reach every rule: {:?}",
        hook.count()
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let end = now();

    // Bad replays name the field.
    for (body, pointer) in [
        (
            json!({"name": "x", "archive": "nope", "start_time": start, "end_time": end}),
            "/archive",
        ),
        (
            json!({"name": "x", "archive": "sales", "start_time": end, "end_time": start}),
            "/end_time",
        ),
        (
            json!({"name": "x", "archive": "sales", "start_time": "today", "end_time": end}),
            "/start_time",
        ),
        (
            json!({"name": "x", "archive": "sales", "start_time": start, "end_time": "2999-01-01T00:00:00Z"}),
            "/end_time",
        ),
        (
            json!({"name": "x", "archive": "sales", "start_time": start, "end_time": end, "rules": ["missing"]}),
            "/rules/0",
        ),
    ] {
        let (code, _, p) = stack.post("/v1/buses/default/replays", &body).await;
        assert_eq!(code, 400, "{body}: {p}");
        assert_eq!(p["pointer"], pointer, "{p}");
    }

    // Every rule: the archive's 20 events again, marked; the rule that
    // excludes replays sees none.
    let (code, _, r) = stack
        .post(
            "/v1/buses/default/replays",
            &json!({"name": "fix-1", "archive": "sales", "start_time": start, "end_time": end}),
        )
        .await;
    assert_eq!(code, 202, "{r}");
    assert!(
        ["STARTING", "RUNNING", "COMPLETED"].contains(&r["state"].as_str().unwrap()),
        "{r}"
    );
    let done = wait_state(
        &stack,
        "fix-1",
        &["COMPLETED", "FAILED"],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(done["state"], "COMPLETED", "{done}");
    assert_eq!(done["events_replayed"], 20, "{done}");
    assert_eq!(done["deliveries"], 40, "all-sales and audit: {done}");
    assert!(!done["ended_at"].as_str().unwrap().is_empty());
    assert_eventually!(
        seen(&hook, "/all").len() == 40 && seen(&hook, "/audit").len() == 40,
        "replayed deliveries arrive: {}",
        hook.count()
    );
    let replayed: Vec<_> = seen(&hook, "/all")
        .into_iter()
        .filter(|(_, r)| r.is_some())
        .collect();
    assert!(replayed.iter().all(|(_, r)| r.as_deref() == Some("fix-1")));
    let replayed_ids: HashSet<String> = replayed.into_iter().map(|(id, _)| id).collect();
    assert_eq!(
        replayed_ids,
        shop.iter().cloned().collect::<HashSet<_>>(),
        "the same events"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(seen(&hook, "/live").len(), 20, "a rule can exclude replays");

    // The same name again: 409. Only the rules named: audit hears nothing.
    let (code, _, p) = stack
        .post(
            "/v1/buses/default/replays",
            &json!({"name": "fix-1", "archive": "sales", "start_time": start, "end_time": end}),
        )
        .await;
    assert_eq!(code, 409, "{p}");
    let (code, _, r) = stack
        .post(
            "/v1/buses/default/replays",
            &json!({"name": "fix-2", "archive": "sales", "start_time": start, "end_time": end, "rules": ["all-sales"]}),
        )
        .await;
    assert_eq!(code, 202, "{r}");
    let done = wait_state(
        &stack,
        "fix-2",
        &["COMPLETED", "FAILED"],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        (done["events_replayed"].clone(), done["deliveries"].clone()),
        (json!(20), json!(20)),
        "{done}"
    );
    assert_eventually!(seen(&hook, "/all").len() == 60, "{}", hook.count());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(seen(&hook, "/audit").len(), 40, "only the rules named");
    let (code, list) = stack.get("/v1/buses/default/replays").await;
    assert_eq!(code, 200);
    assert_eq!(list["replays"].as_array().unwrap().len(), 2);
    // An ended replay cannot be cancelled.
    let (code, _, p) = stack
        .post("/v1/buses/default/replays/fix-2/cancel", &json!({}))
        .await;
    assert_eq!(code, 409, "{p}");
}

#[tokio::test]
async fn a_cancelled_replay_stops_and_a_killed_one_resumes_without_doubling_a_delivery() {
    // 40 events a second, so the replays of 200 events take 5 s each.
    let mut stack = Stack::start("replaykill", &[("SLUICE_TRANSFORMER_REPLAY_RATE", "40")])
        .await
        .unwrap();
    let hook = Receiver::start().await;
    rule(
        &stack,
        "sales",
        json!({"source": ["shop"]}),
        format!("{}/all", hook.url),
    )
    .await;
    let (code, _) = stack
        .put("/v1/buses/default/archives/sales", &json!({}))
        .await;
    assert_eq!(code, 201);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let start = now();
    let shop = post_events(&stack, "shop", 200).await;
    assert_eventually!(hook.count() == 200, "{}", hook.count());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let end = now();

    // Cancelled after a second: it stops part way.
    let (code, _, _) = stack
        .post(
            "/v1/buses/default/replays",
            &json!({"name": "stop-me", "archive": "sales", "start_time": start, "end_time": end}),
        )
        .await;
    assert_eq!(code, 202);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (code, _, r) = stack
        .post("/v1/buses/default/replays/stop-me/cancel", &json!({}))
        .await;
    assert_eq!(code, 200, "{r}");
    assert!(
        ["CANCELLING", "CANCELLED"].contains(&r["state"].as_str().unwrap()),
        "{r}"
    );
    let stopped = wait_state(&stack, "stop-me", &["CANCELLED"], Duration::from_secs(10)).await;
    let sent = stopped["events_replayed"].as_u64().unwrap();
    assert!(sent > 0 && sent < 200, "stopped part way: {stopped}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let marked = |name: &str| {
        hook.requests()
            .iter()
            .filter(|r| r.json()["replay-name"] == name)
            .count()
    };
    assert!(
        marked("stop-me") as u64 <= sent + 40,
        "nothing is sent after the cancel: {} delivered, {stopped}",
        marked("stop-me")
    );

    // Killed part way: another start of the transformer takes it over once
    // the claim runs out, resumes where it left off, and every event is
    // delivered once (by delivery id).
    let (code, _, _) = stack
        .post(
            "/v1/buses/default/replays",
            &json!({"name": "survive", "archive": "sales", "start_time": start, "end_time": end}),
        )
        .await;
    assert_eq!(code, 202);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stack.kill_transformer().await;
    stack.start_transformer().await.unwrap();
    let done = wait_state(
        &stack,
        "survive",
        &["COMPLETED", "FAILED"],
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(done["state"], "COMPLETED", "{done}");
    assert_eq!(done["events_replayed"], 200, "{done}");
    assert_eventually!(marked("survive") >= 200, "{}", marked("survive"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut by_delivery: BTreeMap<String, usize> = BTreeMap::new();
    let mut events = HashSet::new();
    for r in hook.requests() {
        if r.json()["replay-name"] == "survive" {
            *by_delivery
                .entry(r.header("sluice-delivery-id").unwrap().to_string())
                .or_default() += 1;
            events.insert(r.json()["id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(
        events,
        shop.iter().cloned().collect::<HashSet<_>>(),
        "every event, once"
    );
    assert_eq!(by_delivery.len(), 200, "one delivery per event");
    let repeated: Vec<_> = by_delivery.iter().filter(|(_, n)| **n > 1).collect();
    // A delivery in flight at the kill may reach the receiver twice, with
    // the same delivery id (at-least-once to HTTP); nothing else may.
    assert!(
        repeated.len() <= 16,
        "deliveries repeated beyond those in flight: {repeated:?}"
    );
}
