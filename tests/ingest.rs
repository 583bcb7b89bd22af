//! The happy path at volume, idempotency and trace propagation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::StreamExt;
use serde_json::json;
use sluice_e2e::{assert_eventually, event, Stack};

#[tokio::test]
async fn thousand_concurrent_events_are_each_processed_exactly_once() {
    let stack = Stack::start("thousand", &[]).await.unwrap();
    let ids: Vec<String> = futures::stream::iter(0..1000)
        .map(|n| {
            let stack = &stack;
            async move {
                let (status, _, body) = stack.post("/v1/events", &event(n)).await;
                assert_eq!(status, 202, "{body}");
                body["id"].as_str().unwrap().to_string()
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), 1000, "every event gets its own id");

    assert_eventually!(
        stack.processed_count().await == 1000,
        "not all events processed: {} of 1000\n{}",
        stack.processed_count().await,
        stack.logs()
    );
    for id in ids.iter().step_by(50) {
        let (code, body) = stack.get(&format!("/v1/events/{id}")).await;
        assert_eq!(code, 200);
        assert_eq!(body["status"], "processed", "{body}");
        assert_eq!(body["attempts"], 1, "{body}");
    }
    // One record per event, one bus event per event, nothing left queued.
    let bus_ids = stack.bus_event_ids().await;
    let bus_unique: std::collections::HashSet<_> = bus_ids.iter().collect();
    assert_eq!(bus_ids.len(), 1000, "each event reaches the bus once");
    assert_eq!(bus_unique.len(), 1000);
    assert_eq!(stack.stream_messages("INGEST").await, 0);
    assert_eq!(stack.stream_messages("DLQ").await, 0);
}

#[tokio::test]
async fn the_same_idempotency_key_twice_makes_one_event() {
    let stack = Stack::start_with("idem", &[], false).await.unwrap();
    let send = |body: serde_json::Value| {
        stack
            .req(reqwest::Method::POST, "/v1/events")
            .header("idempotency-key", "order-42-attempt")
            .json(&body)
            .send()
    };
    let first = send(event(1)).await.unwrap();
    assert_eq!(first.status(), 202);
    let first: serde_json::Value = first.json().await.unwrap();

    let second = send(event(1)).await.unwrap();
    assert_eq!(second.status(), 202);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    let second: serde_json::Value = second.json().await.unwrap();
    assert_eq!(first, second, "the original response is replayed");
    assert_eq!(stack.stream_messages("INGEST").await, 1, "one event queued");

    let conflict = send(event(2)).await.unwrap();
    assert_eq!(conflict.status(), 409);
    assert_eq!(stack.stream_messages("INGEST").await, 1);

    // Another principal's identical key is its own.
    let other = stack
        .http
        .post(format!("{}/v1/events", stack.url))
        .bearer_auth(token(&["events:write"], 600))
        .header("idempotency-key", "order-42-attempt")
        .json(&event(1))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 202);
    assert_eq!(stack.stream_messages("INGEST").await, 2);
}

#[tokio::test]
async fn a_retried_publish_with_the_same_event_id_is_deduplicated() {
    let stack = Stack::start_with("dedupe", &[], false).await.unwrap();
    let body = json!({"source": "e2e", "detail-type": "T", "detail": {}, "id": "client-chosen-1"});
    for _ in 0..3 {
        let (status, _, resp) = stack.post("/v1/events", &body).await;
        assert_eq!(status, 202);
        assert_eq!(resp["id"], "client-chosen-1");
    }
    assert_eq!(stack.stream_messages("INGEST").await, 1);
}

#[tokio::test]
async fn one_trace_spans_the_gateway_request_and_the_processing() {
    let stack = Stack::start("trace", &[("SLUICE_LOG", "info,sluice_processor=debug")])
        .await
        .unwrap();
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = stack
        .req(reqwest::Method::POST, "/v1/events")
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&event(7))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert!(r.headers().contains_key("x-request-id"));
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eventually!(
        stack.event_status(&id).await.as_deref() == Some("processed"),
        "event not processed\n{}",
        stack.logs()
    );
    // The processor's log line for this event carries the caller's trace id.
    // It is written after the status, so it may trail it by a moment.
    let log_path = stack.servers.dir.path().join("processor.log");
    let processor_line = || {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|l| l["span"]["event_id"] == id.as_str())
    };
    assert_eventually!(
        processor_line().is_some(),
        "no processor log line for {id}\n{}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    let line = processor_line().unwrap();
    assert_eq!(line["span"]["trace_id"], trace_id, "{line}");
    // And the event it put on the bus continues the same trace.
    let stream = stack
        .bus
        .jetstream()
        .get_stream(stack.bus.names().bus())
        .await
        .unwrap();
    let subject = stack.bus.names().subject("bus.>");
    let m = stream
        .direct_get_next_for_subject(&subject, Some(1))
        .await
        .unwrap();
    let tp = m
        .headers
        .get("traceparent")
        .map(|v| v.as_str().to_string())
        .unwrap_or_default();
    assert!(tp.contains(trace_id), "bus event traceparent {tp:?}");
}

#[tokio::test]
async fn processor_drains_and_exits_cleanly_on_sigterm() {
    let mut stack = Stack::start("sigterm", &[]).await.unwrap();
    for n in 0..20 {
        assert_eq!(stack.post("/v1/events", &event(n)).await.0, 202);
    }
    let mut p = stack.processor.take().unwrap();
    let status = p.terminate(std::time::Duration::from_secs(30)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}"
    );
    stack.start_processor().await.unwrap();
    assert_eventually!(
        stack.processed_count().await == 20,
        "events lost across a restart"
    );
}

/// An HS256 bearer token.
fn token(scopes: &[&str], ttl: i64) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + ttl;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "jwt-user", "exp": exp, "scope": scopes.join(" ")}),
        &jsonwebtoken::EncodingKey::from_secret(sluice_e2e::JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn a_queued_event_reads_accepted_and_a_queued_order_pending_until_processed() {
    let mut stack = Stack::start_with("accepted", &[], false).await.unwrap();
    let (status, _, body) = stack.post("/v1/events", &event(1)).await;
    assert_eq!(status, 202);
    let id = body["id"].as_str().unwrap().to_string();
    let (code, view) = stack.get(&format!("/v1/events/{id}")).await;
    assert_eq!(code, 200, "{view}");
    assert_eq!(view["status"], "accepted");
    assert_eq!(view["attempts"], 0);

    let order = json!({"customer_id": "c", "currency": "EUR",
        "items": [{"sku": "NONE", "quantity": 1, "unit_price": "1"}]});
    let (status, _, body) = stack.post("/v1/orders", &order).await;
    assert_eq!(status, 202);
    let order_id = body["order_id"].as_str().unwrap().to_string();
    let (code, view) = stack.get(&format!("/v1/orders/{order_id}")).await;
    assert_eq!((code, &view["status"]), (200, &json!("PENDING")), "{view}");
    // An order id is not an event of the events kind, and unknown ids stay 404.
    assert_eq!(stack.get("/v1/orders/not-queued").await.0, 404);
    assert_eq!(stack.get(&format!("/v1/orders/{id}")).await.0, 404);

    stack.start_processor().await.unwrap();
    assert_eventually!(
        stack.event_status(&id).await.as_deref() == Some("processed"),
        "not processed\n{}",
        stack.logs()
    );
    assert_eventually!(
        stack.get(&format!("/v1/orders/{order_id}")).await.1["status"] == "REJECTED",
        "order not settled"
    );
}
