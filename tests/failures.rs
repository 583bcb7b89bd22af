//! Failures: poison messages, exhausted retries, store outages, crashes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use sluice_e2e::{assert_eventually, event, Stack};

/// Fast retries so exhaustion happens within a test.
const FAST: &[(&str, &str)] = &[
    ("SLUICE_QUEUE_MAX_RECEIVE", "3"),
    ("SLUICE_QUEUE_BACKOFF", "200ms"),
    ("SLUICE_QUEUE_VISIBILITY_TIMEOUT", "3s"),
    ("SLUICE_STORE_TIMEOUT", "1s"),
];

#[tokio::test]
async fn an_undecodable_message_is_dead_lettered_at_once_with_its_reason() {
    let stack = Stack::start("poison", FAST).await.unwrap();
    // Another producer put garbage on the ingest queue.
    stack
        .bus
        .publish(
            "ingest.event",
            "garbage-1",
            bytes::Bytes::from_static(b"{not json"),
            Default::default(),
        )
        .await
        .unwrap();
    assert_eventually!(
        stack.stream_messages("DLQ").await == 1,
        "not dead-lettered\n{}",
        stack.logs()
    );
    let (code, page) = stack.get("/v1/dlq").await;
    assert_eq!(code, 200);
    let entry = &page["entries"][0];
    assert_eq!(entry["id"], "garbage-1");
    assert_eq!(entry["terminal"], true);
    assert_eq!(entry["attempts"], 1, "a permanent failure is not retried");
    assert!(
        entry["reason"]
            .as_str()
            .unwrap()
            .contains("not an event envelope"),
        "{entry}"
    );
    assert_eq!(entry["payload"], "{not json");
    assert_eventually!(
        stack.stream_messages("INGEST").await == 0,
        "dead letter not acknowledged"
    );
}

#[tokio::test]
async fn exhausted_retries_dead_letter_and_redrive_brings_the_event_back() {
    let mut stack = Stack::start("exhaust", FAST).await.unwrap();
    stack.servers.dynamo.stop().await;
    let (status, _, body) = stack.post("/v1/events", &event(1)).await;
    assert_eq!(status, 202, "ingest does not need the store: {body}");
    let id = body["id"].as_str().unwrap().to_string();

    assert_eventually!(
        stack.stream_messages("DLQ").await == 1,
        "not dead-lettered\n{}",
        stack.logs()
    );
    stack.servers.dynamo.resume().await.unwrap();
    let (_, page) = stack.get("/v1/dlq").await;
    let entry = &page["entries"][0];
    assert_eq!(entry["id"], id.as_str());
    assert_eq!(
        entry["attempts"], 3,
        "dead-lettered after max receive: {entry}"
    );
    assert_eq!(entry["terminal"], false);
    assert!(
        entry["reason"]
            .as_str()
            .unwrap()
            .contains("store unavailable"),
        "{entry}"
    );
    assert_eq!(entry["payload"]["id"], id.as_str(), "original payload kept");

    // Redrive by id: the event goes back to its queue, is processed, leaves the DLQ.
    let (code, _, report) = stack
        .post("/v1/dlq/redrive", &json!({"ids": [id, "not-there"]}))
        .await;
    assert_eq!(code, 200, "{report}");
    assert_eq!(report["redriven"], json!([id]));
    assert_eq!(report["not_found"], json!(["not-there"]));
    assert_eventually!(
        stack.event_status(&id).await.as_deref() == Some("processed"),
        "redriven event not processed\n{}",
        stack.logs()
    );
    assert_eq!(stack.stream_messages("DLQ").await, 0);
    assert_eventually!(
        stack.bus_event_ids().await == vec![id.clone()],
        "not on the bus once"
    );
}

#[tokio::test]
async fn dlq_listing_pages_with_a_cursor() {
    let stack = Stack::start("dlqpage", FAST).await.unwrap();
    for i in 0..5 {
        stack
            .bus
            .publish(
                "ingest.event",
                &format!("bad-{i}"),
                bytes::Bytes::from_static(b"x"),
                Default::default(),
            )
            .await
            .unwrap();
    }
    assert_eventually!(stack.stream_messages("DLQ").await == 5, "not dead-lettered");
    let (_, p1) = stack.get("/v1/dlq?limit=2").await;
    assert_eq!(p1["entries"].as_array().unwrap().len(), 2);
    let next = p1["next"].as_u64().unwrap();
    let (_, p2) = stack.get(&format!("/v1/dlq?limit=2&after={next}")).await;
    let (_, p3) = stack
        .get(&format!("/v1/dlq?limit=2&after={}", p2["next"]))
        .await;
    assert_eq!(p3["entries"].as_array().unwrap().len(), 1);
    assert!(p3["next"].is_null());
    let mut ids: Vec<String> = [&p1, &p2, &p3]
        .iter()
        .flat_map(|p| {
            p["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_string())
        })
        .collect();
    ids.sort();
    assert_eq!(ids, (0..5).map(|i| format!("bad-{i}")).collect::<Vec<_>>());
    assert_eq!(stack.get("/v1/dlq?limit=0").await.0, 400);
    assert_eq!(stack.get("/v1/dlq?after=x").await.0, 400);
    // Redrive all: they fail again (still garbage) and come back, nothing is lost.
    let (code, _, report) = stack.post("/v1/dlq/redrive", &json!({})).await;
    assert_eq!(code, 200);
    assert_eq!(report["redriven"].as_array().unwrap().len(), 5);
    assert_eventually!(
        stack.stream_messages("DLQ").await == 5,
        "redriven poison did not return"
    );
}

#[tokio::test]
async fn a_store_outage_is_retried_until_every_event_is_processed_once() {
    let mut stack = Stack::start(
        "outage",
        &[
            ("SLUICE_QUEUE_MAX_RECEIVE", "1000"),
            ("SLUICE_QUEUE_BACKOFF", "300ms"),
            ("SLUICE_STORE_TIMEOUT", "1s"),
        ],
    )
    .await
    .unwrap();
    stack.servers.dynamo.stop().await;
    let mut ids = Vec::new();
    for n in 0..50 {
        let (status, _, body) = stack.post("/v1/events", &event(n)).await;
        assert_eq!(status, 202);
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        stack.stream_messages("DLQ").await,
        0,
        "still retrying, nothing dead-lettered"
    );
    stack.servers.dynamo.resume().await.unwrap();
    assert_eventually!(
        stack.processed_count().await == 50,
        "events lost in the outage\n{}",
        stack.logs()
    );
    for id in &ids {
        assert_eq!(stack.event_status(id).await.as_deref(), Some("processed"));
    }
    ids.sort();
    let sorted_bus = || async {
        let mut bus = stack.bus_event_ids().await;
        bus.sort();
        bus
    };
    assert_eventually!(
        sorted_bus().await == ids,
        "each event on the bus exactly once"
    );
}

#[tokio::test]
async fn a_sigkilled_processor_loses_nothing_and_applies_nothing_twice() {
    let mut stack = Stack::start_with(
        "sigkill",
        &[("SLUICE_QUEUE_VISIBILITY_TIMEOUT", "2s")],
        false,
    )
    .await
    .unwrap();
    let sku = "KILL-1";
    assert_eq!(
        stack
            .req(reqwest::Method::PUT, &format!("/v1/inventory/{sku}"))
            .json(&json!({"available": 100_000}))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let post_all = |range: std::ops::Range<usize>| {
        let stack = &stack;
        futures::stream::iter(range)
            .map(move |n| async move {
                let body = if n % 5 == 0 {
                    json!({"customer_id": "c", "currency": "EUR",
                           "items": [{"sku": sku, "quantity": 1, "unit_price": "1.00"}]})
                } else {
                    event(n)
                };
                let path = if n % 5 == 0 {
                    "/v1/orders"
                } else {
                    "/v1/events"
                };
                let (status, _, _) = stack.post(path, &body).await;
                assert_eq!(status, 202);
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
    };
    post_all(0..600).await;
    // A backlog is queued; kill the processor twice while it works through it.
    for threshold in [100, 300] {
        stack.start_processor().await.unwrap();
        assert_eventually!(
            stack.processed_count().await > threshold,
            "processor made no progress"
        );
        stack.kill_processor().await;
        let done = stack.processed_count().await;
        assert!(
            done < 600,
            "the kill must land mid-stream ({done} of 600 done)"
        );
    }
    stack.start_processor().await.unwrap();
    assert_eventually!(
        stack.processed_count().await == 600,
        "accepted events lost: {} of 600\n{}",
        stack.processed_count().await,
        stack.logs()
    );
    let ids = stack.bus_event_ids().await;
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(ids.len(), 600, "one bus event per processed event or order");
    assert_eq!(unique.len(), 600);
    // 120 orders of one unit each: stock went down by exactly 120.
    let (_, stock) = stack.get(&format!("/v1/inventory/{sku}")).await;
    assert_eq!(stock["available"], 100_000 - 120, "{stock}");
    assert_eq!(stock["pending_reservations"], 0);
}
