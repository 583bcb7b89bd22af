//! Scheduled rules end to end: `rate(...)` and `cron(...)` rules put through
//! the gateway, ticks delivered by real transformers (two replicas) to a
//! real HTTP receiver through NATS JetStream, with the rules in DynamoDB
//! Local. The next-fire-time table (L, W, #, time zones, DST) is a unit test
//! of the transformer (`model::schedule`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};
use sluice_e2e::receiver::{Receiver, Request};
use sluice_e2e::Stack;
use time::OffsetDateTime;

const ALLOW_SECONDS: (&str, &str) = ("SLUICE_SCHEDULE_ALLOW_SECONDS", "true");

fn tick_time(r: &Request) -> OffsetDateTime {
    let body = r.json();
    OffsetDateTime::parse(
        body["time"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

/// Tick times received, sorted, and whether any tick came twice.
fn ticks(hook: &Receiver) -> (Vec<OffsetDateTime>, usize) {
    let requests = hook.requests();
    let mut times: Vec<OffsetDateTime> = requests.iter().map(tick_time).collect();
    times.sort();
    let distinct: HashSet<OffsetDateTime> = times.iter().copied().collect();
    let repeated = times.len() - distinct.len();
    (times, repeated)
}

/// `sluice_transformer_schedule_fired` of one replica.
fn fired(metrics: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("sluice_transformer_schedule_fired "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_rate_rule_fires_once_per_tick_across_two_transformers_and_skips_downtime() {
    let mut stack = Stack::start("schedrate", &[ALLOW_SECONDS]).await.unwrap();
    let (mut second, second_port) = stack.extra_transformer(1).await.unwrap();
    let hook = Receiver::start().await;
    let (code, rule) = stack
        .put(
            "/v1/buses/default/rules/every-two-seconds",
            &json!({
                "schedule": "rate(2 seconds)",
                "targets": [{"type": "http", "id": "hook", "url": format!("{}/tick", hook.url)}],
            }),
        )
        .await;
    assert_eq!(code, 201, "{rule}");
    assert_eq!(rule["schedule"], "rate(2 seconds)");
    assert!(rule.get("event_pattern").is_none(), "{rule}");

    tokio::time::sleep(Duration::from_secs(13)).await;
    let (times, repeated) = ticks(&hook);
    assert_eq!(repeated, 0, "a tick was delivered twice: {times:?}");
    assert!(
        (5..=8).contains(&times.len()),
        "about one tick every 2 s over 13 s, got {}: {times:?}",
        times.len()
    );
    for pair in times.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            time::Duration::seconds(2),
            "ticks are 2 s apart with none missing: {times:?}"
        );
    }
    let first = hook.requests()[0].json();
    assert_eq!(first["detail-type"], "Scheduled Event");
    assert_eq!(first["source"], "sluice.events");
    assert_eq!(first["detail"], json!({}));
    assert_eq!(
        first["resources"],
        json!(["arn:sluice:events:local:000000000000:rule/every-two-seconds"])
    );
    // Both replicas fired the ticks; the ids made the second copy a no-op.
    for port in [stack.transformer_port, second_port] {
        let fired = fired(&stack.metrics(port).await);
        assert!(fired >= 4.0, "replica on {port} fired {fired} ticks");
    }
    let r0 = &hook.requests()[0];
    assert!(r0.header("sluice-delivery-id").is_some());
    assert_eq!(r0.header("sluice-event-id"), first["id"].as_str());
    assert_eq!(r0.header("sluice-rule"), Some("every-two-seconds"));

    // Both replicas down for 10 s: the ticks of that time are not fired in a
    // burst when one comes back; at most the latest missed one is.
    stack.kill_transformer().await;
    second.kill().await;
    let down_from = OffsetDateTime::now_utc();
    let before = hook.count();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let up_at = OffsetDateTime::now_utc();
    stack.start_transformer().await.unwrap();
    tokio::time::sleep(Duration::from_secs(7)).await;
    let (times, repeated) = ticks(&hook);
    assert_eq!(repeated, 0, "a tick was delivered twice: {times:?}");
    let during: Vec<_> = times
        .iter()
        .filter(|t| **t > down_from + time::Duration::seconds(1) && **t < up_at)
        .collect();
    assert!(
        during.len() <= 1,
        "only the latest missed tick may fire after downtime, got {during:?}"
    );
    let after: Vec<_> = times.iter().filter(|t| **t >= up_at).collect();
    assert!(
        (2..=5).contains(&after.len()),
        "ticks resume at the rate after the restart: {after:?}"
    );
    let burst = hook
        .requests()
        .iter()
        .skip(before)
        .filter(|r| r.at.elapsed() > Duration::from_secs(6))
        .count();
    assert!(
        burst <= 2,
        "no burst of missed ticks at restart ({burst} in the first second)"
    );

    // Disabled: no more ticks.
    let (code, _) = stack
        .put(
            "/v1/buses/default/rules/every-two-seconds",
            &json!({
                "schedule": "rate(2 seconds)",
                "state": "DISABLED",
                "targets": [{"type": "http", "id": "hook", "url": format!("{}/tick", hook.url)}],
            }),
        )
        .await;
    assert_eq!(code, 200);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let settled = hook.count();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(hook.count(), settled, "a disabled schedule fires nothing");
}

#[tokio::test]
async fn cron_rules_are_shown_with_their_time_zone_and_bad_rules_name_the_field() {
    let stack = Stack::start("schedcron", &[]).await.unwrap();
    let hook = Receiver::start().await;
    let target = json!([{"type": "http", "id": "hook", "url": format!("{}/tick", hook.url)}]);
    let (code, rule) = stack
        .put(
            "/v1/buses/default/rules/last-friday",
            &json!({"schedule": "cron(0 18 ? * 6L *)", "schedule_timezone": "Europe/Berlin", "targets": target}),
        )
        .await;
    assert_eq!(code, 201, "{rule}");
    let (code, got) = stack.get("/v1/buses/default/rules/last-friday").await;
    assert_eq!(code, 200);
    assert_eq!(got["schedule"], "cron(0 18 ? * 6L *)");
    assert_eq!(got["schedule_timezone"], "Europe/Berlin");

    // Each mistake is a 400 naming the field.
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"schedule": "cron(0 18 * * * *)"}),
            "/schedule",
            "must be ?",
        ),
        (
            json!({"schedule": "rate(1 minutes)"}),
            "/schedule",
            "singular",
        ),
        (
            json!({"schedule": "rate(30 seconds)"}),
            "/schedule",
            "SLUICE_SCHEDULE_ALLOW_SECONDS",
        ),
        (
            json!({"schedule": "cron(0 12 * * ? *)", "schedule_timezone": "Mars/Olympus"}),
            "/schedule_timezone",
            "IANA",
        ),
        (
            json!({"schedule": "rate(5 minutes)", "event_pattern": {"source": ["a"]}}),
            "/schedule",
            "not both",
        ),
        (
            json!({"event_pattern": {"source": ["a"]}, "schedule_timezone": "UTC"}),
            "/schedule_timezone",
            "only to a rule with a schedule",
        ),
        (json!({}), "", "event_pattern or a schedule"),
        // EventBridge's wildcard complexity limit (decision 0005).
        (
            json!({"event_pattern": {"arn": [{"wildcard": "*:*:*:*:*:event-bus/*"}]}}),
            "/event_pattern",
            "Rule is too complex",
        ),
    ];
    for (body, pointer, words) in cases {
        let (code, resp) = stack.put("/v1/buses/default/rules/bad", &body).await;
        assert_eq!(code, 400, "{body} → {resp}");
        assert_eq!(resp["pointer"], pointer, "{body} → {resp}");
        assert!(resp.to_string().contains(words), "{body} → {resp}");
    }
    assert_eq!(stack.get("/v1/buses/default/rules/bad").await.0, 404);
}
