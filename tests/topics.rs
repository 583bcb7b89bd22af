//! Topics end to end: created, read, listed and deleted through the
//! gateway and the notifier; publishes checked as SNS checks them and
//! stored in JetStream before they are acknowledged, against real NATS and
//! DynamoDB Local.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};
use sluice_e2e::{Stack, READER_KEY};

/// The stored message published last to `topic`, if any.
async fn last_stored(stack: &Stack, topic: &str) -> Option<Value> {
    let names = stack.bus.names();
    let stream = stack
        .bus
        .jetstream()
        .get_stream_no_info(names.notify())
        .await
        .unwrap();
    let subject = names.subject(&sluice_bus::subjects::notify(topic));
    match stream.direct_get_last_for_subject(&subject).await {
        Ok(m) => Some(serde_json::from_slice(&m.payload).unwrap()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn topics_are_created_read_listed_and_deleted() {
    let stack = Stack::start_with("topics", &[], false).await.unwrap();
    let (code, t) = stack
        .put("/v1/topics/orders", &json!({"display_name": "Shop"}))
        .await;
    assert_eq!(code, 201, "{t}");
    assert_eq!(t["name"], "orders");
    assert_eq!(t["display_name"], "Shop");
    let created_at = t["created_at"].as_str().unwrap().to_string();
    assert!(!created_at.is_empty());
    let (code, t) = stack
        .put("/v1/topics/orders", &json!({"display_name": "Shop 2"}))
        .await;
    assert_eq!(code, 200, "a second PUT updates: {t}");
    assert_eq!(t["display_name"], "Shop 2");
    assert_eq!(t["created_at"], created_at.as_str(), "creation time kept");
    stack.put("/v1/topics/alerts", &json!({})).await;

    let (code, list) = stack.get("/v1/topics").await;
    assert_eq!(code, 200);
    let names: Vec<&str> = list["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alerts", "orders"]);
    let (code, one) = stack.get("/v1/topics/orders").await;
    assert_eq!(code, 200);
    assert_eq!(one["display_name"], "Shop 2");

    // Bad names and attributes are refused, naming what is wrong.
    let (code, p) = stack.put("/v1/topics/has.dot", &json!({})).await;
    assert_eq!(code, 400, "{p}");
    let (code, p) = stack
        .put("/v1/topics/x", &json!({"display_name": "d".repeat(101)}))
        .await;
    assert_eq!(code, 400, "{p}");
    assert_eq!(p["pointer"], "/display_name");
    let (code, p) = stack.put("/v1/topics/x", &json!({"colour": "red"})).await;
    assert!(code == 400 || code == 422, "{code} {p}");
    assert_eq!(stack.get("/v1/topics/x").await.0, 404, "nothing written");

    // A principal without the scope is refused.
    let r = stack
        .http
        .get(format!("{}/v1/topics", stack.url))
        .header("x-api-key", READER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    assert_eq!(stack.delete("/v1/topics/orders").await, 204);
    assert_eq!(stack.get("/v1/topics/orders").await.0, 404);
    assert_eq!(stack.delete("/v1/topics/orders").await, 404);
}

#[tokio::test]
async fn a_publish_is_stored_before_it_is_acknowledged_and_checked_as_sns_checks_it() {
    let stack = Stack::start_with("publish", &[], false).await.unwrap();
    stack.put("/v1/topics/orders", &json!({})).await;
    let (code, _, got) = stack
        .post(
            "/v1/topics/orders/messages",
            &json!({
                "message": "{\"order\": 42}",
                "subject": "Order 42",
                "message_attributes": {
                    "colour": {"Type": "String", "Value": "red"},
                    "price": {"Type": "Number", "Value": "12.5"},
                    "sizes": {"Type": "String.Array", "Value": "[\"s\", \"m\"]"}
                }
            }),
        )
        .await;
    assert_eq!(code, 202, "{got}");
    let message_id = got["message_id"].as_str().unwrap();
    assert!(!message_id.is_empty());
    let stored = last_stored(&stack, "orders").await.expect("stored");
    assert_eq!(
        stored,
        json!({
            "message": "{\"order\": 42}",
            "subject": "Order 42",
            "message_attributes": {
                "colour": {"Type": "String", "Value": "red"},
                "price": {"Type": "Number", "Value": "12.5"},
                "sizes": {"Type": "String.Array", "Value": "[\"s\", \"m\"]"}
            },
            "origin": "gateway/admin"
        })
    );
    let stored_before = stack.stream_messages("NOTIFY").await;
    assert_eq!(stored_before, 1);

    // Refused: each names the field, and nothing is stored.
    for (body, pointer) in [
        (json!({"message": ""}), "/message"),
        (
            json!({"message": "m", "message_attributes": {"price": {"Type": "Number", "Value": "cheap"}}}),
            "/message_attributes/price/Value",
        ),
        (
            json!({"message": "m", "message_attributes": {"AWS.x": {"Type": "String", "Value": "v"}}}),
            "/message_attributes/AWS.x",
        ),
        (
            json!({"message": "m", "message_attributes": {"b": {"Type": "Binary", "Value": "%%"}}}),
            "/message_attributes/b/Value",
        ),
        (json!({"message": "m", "subject": "two\nlines"}), "/subject"),
        (json!({"message": "m", "subject": " indented"}), "/subject"),
        (
            json!({"message": "m", "message_attributes": {"n": {"Type": "Number", "Value": "1e-400"}}}),
            "/message_attributes/n/Value",
        ),
        (json!({"message": "x".repeat(256 * 1024 + 1)}), ""),
    ] {
        let (code, _, p) = stack.post("/v1/topics/orders/messages", &body).await;
        assert_eq!(code, 422, "{body}: {p}");
        assert_eq!(p["pointer"], pointer, "{p}");
    }
    let (code, _, p) = stack
        .post("/v1/topics/missing/messages", &json!({"message": "m"}))
        .await;
    assert_eq!(code, 404, "{p}");
    assert_eq!(stack.stream_messages("NOTIFY").await, stored_before);
}

#[tokio::test]
async fn a_batch_publishes_each_entry_on_its_own() {
    let stack = Stack::start_with("pubbatch", &[], false).await.unwrap();
    stack.put("/v1/topics/orders", &json!({})).await;
    let (code, _, out) = stack
        .post(
            "/v1/topics/orders/messages/batch",
            &json!({"entries": [
                {"id": "a", "message": "one"},
                {"id": "b", "message": "two", "message_attributes": {"n": {"Type": "Number", "Value": "x"}}},
                {"id": "c", "message": "three"}
            ]}),
        )
        .await;
    assert_eq!(code, 200, "{out}");
    let r = out["results"].as_array().unwrap();
    assert_eq!(r.len(), 3);
    assert_eq!(r[0]["id"], "a");
    assert!(r[0]["message_id"].is_string(), "{out}");
    assert_eq!(r[1]["id"], "b");
    assert_eq!(r[1]["error_code"], "InvalidParameter");
    assert_eq!(
        r[1]["error_pointer"],
        "/entries/1/message_attributes/n/Value"
    );
    assert!(r[1].get("message_id").is_none());
    assert!(r[2]["message_id"].is_string());
    assert_ne!(r[0]["message_id"], r[2]["message_id"]);
    assert_eq!(stack.stream_messages("NOTIFY").await, 2);
    assert_eq!(
        last_stored(&stack, "orders").await.unwrap()["message"],
        "three"
    );

    // The batch itself: 1 to 10 entries with unique ids.
    let eleven: Vec<Value> = (0..11)
        .map(|i| json!({"id": format!("e{i}"), "message": "m"}))
        .collect();
    for (body, pointer) in [
        (json!({"entries": eleven}), "/entries"),
        (json!({"entries": []}), "/entries"),
        (
            json!({"entries": [{"id": "a", "message": "m"}, {"id": "a", "message": "m"}]}),
            "/entries/1/id",
        ),
        (
            json!({"entries": [{"id": "no spaces", "message": "m"}]}),
            "/entries/0/id",
        ),
    ] {
        let (code, _, p) = stack.post("/v1/topics/orders/messages/batch", &body).await;
        assert_eq!(code, 422, "{body}: {p}");
        assert_eq!(p["pointer"], pointer, "{p}");
    }
    assert_eq!(
        stack.stream_messages("NOTIFY").await,
        2,
        "nothing more stored"
    );
}
