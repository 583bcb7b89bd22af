//! The event bus when things go wrong: failing and stuck targets, rule
//! changes under two replicas, a transformer killed mid-stream, hostile
//! admin input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};
use sluice_e2e::receiver::Receiver;
use sluice_e2e::{assert_eventually, Stack};

/// Fast retries so a policy runs out within a test.
const FAST: &[(&str, &str)] = &[
    ("SLUICE_TRANSFORMER_RETRY_BASE", "100ms"),
    ("SLUICE_TRANSFORMER_RETRY_MAX_DELAY", "300ms"),
];

fn event(n: u64) -> Value {
    json!({"source": "shop", "detail-type": "Tick", "detail": {"n": n}})
}

async fn put_rule(stack: &Stack, name: &str, body: Value) {
    let (code, resp) = stack
        .put(&format!("/v1/buses/default/rules/{name}"), &body)
        .await;
    assert!(code == 200 || code == 201, "PUT rule {name}: {code} {resp}");
}

async fn post(stack: &Stack, n: u64) -> String {
    let (code, _, resp) = stack.post("/v1/events", &event(n)).await;
    assert_eq!(code, 202, "{resp}");
    resp["id"].as_str().unwrap().to_string()
}

async fn dead_letters(stack: &Stack) -> Vec<Value> {
    let (_, page) = stack.get("/v1/dlq?limit=100").await;
    page["entries"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_stuck_then_failing_target_never_holds_back_a_healthy_one() {
    let stack = Stack::start("tgtiso", FAST).await.unwrap();
    let healthy = Receiver::start().await;
    let stuck = Receiver::start().await;
    stuck.hold();
    stuck.set_status(503);
    put_rule(
        &stack,
        "two",
        json!({"event_pattern": {"source": ["shop"]}, "targets": [
            {"type": "http", "id": "healthy", "url": healthy.url},
            {"type": "http", "id": "stuck", "url": stuck.url, "timeout_seconds": 60, "max_concurrency": 1,
             "retry_policy": {"maximum_retry_attempts": 2}}
        ]}),
    )
    .await;
    let mut ids = HashSet::new();
    for n in 0..20 {
        ids.insert(post(&stack, n).await);
    }
    // Every event reaches the healthy target while the other one holds its
    // first delivery and has taken no other.
    assert_eventually!(
        healthy.count() == 20,
        "healthy target starved\n{}",
        stack.logs()
    );
    let got: HashSet<String> = healthy
        .requests()
        .iter()
        .map(|r| r.header("sluice-event-id").unwrap().to_string())
        .collect();
    assert_eq!(got, ids);
    assert_eq!(
        stuck.count(),
        1,
        "the stuck target is capped at one in flight"
    );

    // Released, it answers 503: retried twice, then dead-lettered with its response.
    stuck.release();
    assert_eventually!(
        dead_letters(&stack).await.len() == 20,
        "not dead-lettered\n{}",
        stack.logs()
    );
    assert_eq!(stuck.count(), 60, "three attempts per event (two retries)");
    let entry = &dead_letters(&stack).await[0];
    assert_eq!(entry["bus"], "default");
    assert_eq!(entry["rule"], "two");
    assert_eq!(entry["target"], "stuck");
    assert_eq!(entry["attempts"], 3);
    assert_eq!(entry["terminal"], false);
    assert!(
        entry["reason"].as_str().unwrap().contains("HTTP 503"),
        "{entry}"
    );
    assert!(
        entry["last_response"].as_str().unwrap().starts_with("503"),
        "{entry}"
    );
    assert!(ids.contains(entry["event_id"].as_str().unwrap()));
    assert_eq!(
        entry["payload"]["source"], "shop",
        "the original event is kept"
    );
    assert_eq!(
        healthy.count(),
        20,
        "the healthy target got each event once"
    );
}

#[tokio::test]
async fn a_target_with_a_full_backlog_refuses_new_deliveries_and_holds_back_no_other() {
    let stack = Stack::start("tgtfull", &[("SLUICE_TARGET_MAX_BACKLOG", "3")])
        .await
        .unwrap();
    let healthy = Receiver::start().await;
    let stuck = Receiver::start().await;
    stuck.hold();
    put_rule(
        &stack,
        "two",
        json!({"event_pattern": {"source": ["shop"]}, "targets": [
            {"type": "http", "id": "healthy", "url": healthy.url},
            {"type": "http", "id": "stuck", "url": stuck.url, "timeout_seconds": 60, "max_concurrency": 1}
        ]}),
    )
    .await;
    // One event at a time, so the healthy target's own backlog never fills.
    for n in 0..10 {
        post(&stack, n).await;
        assert_eventually!(
            healthy.count() == n as usize + 1,
            "healthy target held back\n{}",
            stack.logs()
        );
    }
    // The stuck one's subject holds three (one in flight, two waiting); the
    // rest were dead-lettered at once.
    assert_eventually!(
        dead_letters(&stack).await.len() == 7,
        "refused deliveries not dead-lettered: {}\n{}",
        dead_letters(&stack).await.len(),
        stack.logs()
    );
    let entry = &dead_letters(&stack).await[0];
    assert_eq!(entry["target"], "stuck");
    assert!(
        entry["reason"]
            .as_str()
            .unwrap()
            .contains("SLUICE_TARGET_MAX_BACKLOG"),
        "{entry}"
    );
    stuck.release();
    assert_eventually!(
        stuck.count() == 3,
        "the held backlog is delivered: {}",
        stuck.count()
    );
}

#[tokio::test]
async fn a_terminal_4xx_is_dead_lettered_at_once_and_redrive_delivers() {
    let stack = Stack::start("tgt4xx", FAST).await.unwrap();
    let target = Receiver::start().await;
    target.set_status(422);
    put_rule(
        &stack,
        "r",
        json!({"event_pattern": {"source": ["shop"]}, "targets": [{"type": "http", "id": "t", "url": target.url}]}),
    )
    .await;
    let event_id = post(&stack, 1).await;
    assert_eventually!(
        dead_letters(&stack).await.len() == 1,
        "not dead-lettered\n{}",
        stack.logs()
    );
    let entry = &dead_letters(&stack).await[0];
    assert_eq!(entry["attempts"], 1, "a terminal failure is not retried");
    assert_eq!(entry["terminal"], true);
    assert_eq!(target.count(), 1);
    let delivery_id = entry["id"].as_str().unwrap().to_string();
    assert_eq!(entry["event_id"], event_id.as_str());

    // The endpoint is fixed; redrive delivers the same delivery id.
    target.set_status(200);
    let (code, _, rep) = stack
        .post("/v1/dlq/redrive", &json!({"ids": [delivery_id]}))
        .await;
    assert_eq!(code, 200, "{rep}");
    assert_eq!(rep["redriven"], json!([delivery_id]));
    assert_eventually!(
        target.count() == 2,
        "redrive not delivered\n{}",
        stack.logs()
    );
    let last = target.requests().pop().unwrap();
    assert_eq!(
        last.header("sluice-delivery-id"),
        Some(delivery_id.as_str())
    );
    assert_eq!(last.header("sluice-attempt"), Some("1"));
    assert!(dead_letters(&stack).await.is_empty());
}

#[tokio::test]
async fn a_rate_limited_target_is_paced() {
    let stack = Stack::start("tgtrate", &[]).await.unwrap();
    let hook = Receiver::start().await;
    put_rule(
        &stack,
        "paced",
        json!({"event_pattern": {"source": ["shop"]},
               "targets": [{"type": "http", "id": "h", "url": hook.url, "rate_per_second": 4}]}),
    )
    .await;
    for n in 0..9 {
        post(&stack, n).await;
    }
    assert_eventually!(hook.count() == 9, "not delivered\n{}", stack.logs());
    let reqs = hook.requests();
    let span = reqs[8].at.duration_since(reqs[0].at);
    // Nine deliveries at four a second cannot take less than two seconds
    // (a slow machine only makes it longer).
    assert!(
        span >= Duration::from_millis(1800),
        "9 deliveries in {span:?} at 4/s"
    );
}

#[tokio::test]
async fn rule_changes_reach_every_transformer_within_a_second() {
    let stack = Stack::start("tgttwo", &[]).await.unwrap();
    let (_second, second_port) = stack.extra_transformer(2).await.unwrap();
    let hook = Receiver::start().await;
    let rule = |state: &str| {
        json!({"event_pattern": {"source": ["shop"]}, "state": state,
               "targets": [{"type": "http", "id": "h", "url": hook.url}]})
    };
    put_rule(&stack, "flip", rule("ENABLED")).await;
    // Both replicas route (the bus consumer spreads events over them).
    let mut n = 0;
    assert_eventually!(
        {
            n += 1;
            post(&stack, n).await;
            let routed = |m: String| m.contains("sluice_transformer_routed{outcome=\"matched\"}");
            routed(stack.metrics(stack.transformer_port).await)
                && routed(stack.metrics(second_port).await)
        },
        "both replicas should route:\n{}\n---\n{}\n{}",
        stack.metrics(stack.transformer_port).await,
        stack.metrics(second_port).await,
        stack.logs()
    );
    assert_eventually!(hook.count() as u64 == n, "not all delivered");

    // Disabled: one second later neither replica matches anything.
    put_rule(&stack, "flip", rule("DISABLED")).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = hook.count();
    for i in 0..20 {
        post(&stack, 1000 + i).await;
    }
    // Routing happens when an event reaches the bus: wait until all 20 have.
    let unmatched = |m: &str| -> u64 {
        m.lines()
            .find(|l| l.starts_with("sluice_transformer_routed{outcome=\"unmatched\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    assert_eventually!(
        unmatched(&stack.metrics(stack.transformer_port).await)
            + unmatched(&stack.metrics(second_port).await)
            == 20,
        "the 20 events were not all routed (as unmatched)"
    );
    // Enabled again: one second later both match again.
    put_rule(&stack, "flip", rule("ENABLED")).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in 0..20 {
        post(&stack, 2000 + i).await;
    }
    assert_eventually!(
        hook.count() >= before + 20,
        "enabled rule not matching: {} of {}\n{}",
        hook.count(),
        before + 20,
        stack.logs()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let numbers: Vec<u64> = hook.requests()[before..]
        .iter()
        .map(|r| r.json()["detail"]["n"].as_u64().unwrap())
        .collect();
    assert!(
        numbers.iter().all(|n| *n >= 2000),
        "events sent while the rule was disabled were delivered: {numbers:?}"
    );
}

#[tokio::test]
async fn a_transformer_killed_mid_stream_loses_no_delivery() {
    let mut stack = Stack::start("tgtkill", &[("SLUICE_TRANSFORMER_ROUTER_ACK_WAIT", "3s")])
        .await
        .unwrap();
    let hook = Receiver::start().await;
    put_rule(
        &stack,
        "all",
        json!({"event_pattern": {"source": ["shop"]},
               "targets": [{"type": "http", "id": "h", "url": hook.url, "timeout_seconds": 1}]}),
    )
    .await;
    let total = 300;
    let mut ids = HashSet::new();
    let posts = (0..total).map(|n| {
        let stack = &stack;
        async move { post(stack, n).await }
    });
    for id in futures::future::join_all(posts).await {
        ids.insert(id);
    }
    // Killed while deliveries are under way.
    assert_eventually!(hook.count() >= 30, "nothing delivered\n{}", stack.logs());
    stack.kill_transformer().await;
    let at_kill = hook.delivery_ids().len();
    assert!(
        at_kill < total as usize,
        "killed too late to prove anything ({at_kill})"
    );
    stack.start_transformer().await.unwrap();
    assert_eventually!(
        hook.delivery_ids().len() == total as usize,
        "deliveries lost: {} of {total}\n{}",
        hook.delivery_ids().len(),
        stack.logs()
    );
    let got: HashSet<String> = hook
        .requests()
        .iter()
        .map(|r| r.header("sluice-event-id").unwrap().to_string())
        .collect();
    assert_eq!(got, ids, "every event delivered");
    // A receiver that applies each delivery id once applies each event once,
    // however many times a delivery was retried.
    assert!(hook.count() >= total as usize);
    assert_eq!(hook.delivery_ids().len(), total as usize);
    assert_eventually!(
        stack.stream_messages("DELIVERIES").await == 0,
        "deliveries left"
    );
    assert!(dead_letters(&stack).await.is_empty());
}

#[tokio::test]
async fn hostile_admin_input_is_refused_and_nothing_is_stored() {
    let stack = Stack::start_with("tgthostile", &[], false).await.unwrap();
    let http = |url: &str| json!({"type": "http", "id": "t", "url": url});
    let deep = {
        let mut v = json!(["x"]);
        for _ in 0..200 {
            v = json!({ "a": v });
        }
        v
    };
    let many: Vec<Value> = (0..2000)
        .map(|i| json!({"type": "topic", "id": format!("t{i}"), "topic": "x"}))
        .collect();
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "huge pattern",
            json!({"event_pattern": {"a": ["x".repeat(5000)]}}),
            400,
            "/event_pattern",
        ),
        ("deep pattern", json!({"event_pattern": deep}), 400, ""),
        (
            "2000 targets",
            json!({"event_pattern": {"a": ["x"]}, "targets": many}),
            400,
            "/targets",
        ),
        (
            "6 targets",
            json!({"event_pattern": {"a": ["x"]}, "targets": (0..6).map(|i| json!({"type": "topic", "id": format!("t{i}"), "topic": "x"})).collect::<Vec<_>>()}),
            400,
            "/targets",
        ),
        (
            "not a url",
            json!({"event_pattern": {"a": ["x"]}, "targets": [http("http://")]}),
            400,
            "/targets/0/url",
        ),
        (
            "ftp",
            json!({"event_pattern": {"a": ["x"]}, "targets": [http("ftp://example.com/x")]}),
            400,
            "/targets/0/url",
        ),
        (
            "metadata",
            json!({"event_pattern": {"a": ["x"]}, "targets": [http("http://169.254.169.254/latest/meta-data/")]}),
            400,
            "/targets/0/url",
        ),
        (
            "link-local v6",
            json!({"event_pattern": {"a": ["x"]}, "targets": [http("http://[fe80::1]:80/")]}),
            400,
            "/targets/0/url",
        ),
        (
            "gateway port",
            json!({"event_pattern": {"a": ["x"]}, "targets": [http(&stack.url)]}),
            400,
            "/targets/0/url",
        ),
        (
            "own grpc port",
            json!({"event_pattern": {"a": ["x"]}, "targets": [http(&format!("http://localhost:{}/", stack.grpc_port))]}),
            400,
            "/targets/0/url",
        ),
        (
            "bad pattern",
            json!({"event_pattern": {"a": [{"numeric": [">", "x"]}]}}),
            400,
            "/event_pattern/a/0/numeric/1",
        ),
        (
            "unknown queue",
            json!({"event_pattern": {"a": ["x"]}, "targets": [{"type": "queue", "id": "q", "queue": "nope"}]}),
            400,
            "/targets/0/queue",
        ),
        (
            "too many retries",
            json!({"event_pattern": {"a": ["x"]}, "targets": [{"type": "topic", "id": "t", "topic": "x", "retry_policy": {"maximum_retry_attempts": 186}}]}),
            400,
            "/targets/0/retry_policy/maximum_retry_attempts",
        ),
        (
            "two inputs",
            json!({"event_pattern": {"a": ["x"]}, "targets": [{"type": "topic", "id": "t", "topic": "x", "input": 1, "input_path": "$.a"}]}),
            400,
            "/targets/0",
        ),
        (
            "bad template",
            json!({"event_pattern": {"a": ["x"]}, "targets": [{"type": "topic", "id": "t", "topic": "x", "input_transformer": {"input_template": "<missing>"}}]}),
            400,
            "/targets/0/input_transformer/input_template",
        ),
        (
            "unknown field",
            json!({"event_pattern": {"a": ["x"]}, "extra": 1}),
            422,
            "",
        ),
    ];
    for (what, body, status, pointer) in cases {
        let (code, resp) = stack.put("/v1/buses/default/rules/hostile", &body).await;
        assert_eq!(code, status, "{what}: {resp}");
        assert_eq!(
            resp["type"]
                .as_str()
                .map(|t| t.starts_with("urn:sluice:problem:")),
            Some(true),
            "{what}: {resp}"
        );
        if !pointer.is_empty() {
            assert!(
                resp["pointer"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with(pointer),
                "{what}: pointer {} (want {pointer})",
                resp["pointer"]
            );
        }
        assert_eq!(
            stack.get("/v1/buses/default/rules/hostile").await.0,
            404,
            "{what}: stored"
        );
    }
    // Names in the path that cannot be right.
    let (code, _) = stack
        .put(
            "/v1/buses/default/rules/has%20space",
            &json!({"event_pattern": {"a": ["x"]}}),
        )
        .await;
    assert_eq!(code, 400);
    let (code, _) = stack.put("/v1/buses/a%2Fb", &json!({})).await;
    assert_eq!(code, 400);
    // A rule on a bus that does not exist.
    let (code, _) = stack
        .put(
            "/v1/buses/nope/rules/r",
            &json!({"event_pattern": {"a": ["x"]}}),
        )
        .await;
    assert_eq!(code, 404);
    // The gateway is still up.
    assert_eq!(stack.get("/v1/buses").await.0, 200);
}
