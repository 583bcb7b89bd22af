//! The task-management application end to end, against real NATS and
//! DynamoDB Local: CRUD with ETags, lists from the secondary indexes with
//! paging, the events of every change on the bus (and none for a refused
//! change), bad input, and a gateway killed between a write and its
//! events.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use sluice_e2e::{Stack, READER_KEY};

async fn create(stack: &Stack, title: &str, user: &str, priority: &str) -> Value {
    let (code, headers, t) = stack
        .post(
            "/v1/tasks",
            &json!({"title": title, "description": "", "priority": priority, "userId": user}),
        )
        .await;
    assert_eq!(code, 201, "{t}");
    assert_eq!(headers["etag"], "\"1\"");
    t
}

async fn put(
    stack: &Stack,
    id: &str,
    body: Value,
    if_match: Option<&str>,
) -> (u16, Option<String>, Value) {
    let mut req = stack
        .req(Method::PUT, &format!("/v1/tasks/{id}"))
        .json(&body);
    if let Some(m) = if_match {
        req = req.header("if-match", m);
    }
    let r = req.send().await.unwrap();
    let code = r.status().as_u16();
    let etag = r
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_string());
    (code, etag, r.json().await.unwrap_or(Value::Null))
}

/// The task events on the bus: (task id, detail-type, version), in order.
async fn task_events(stack: &Stack) -> Vec<(String, String, u64)> {
    stack
        .bus_events()
        .await
        .into_iter()
        .filter(|e| e["source"] == "sluice.tasks")
        .map(|e| {
            (
                e["detail"]["taskId"].as_str().unwrap().to_string(),
                e["detail-type"].as_str().unwrap().to_string(),
                e["detail"]["version"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn tasks_change_with_etags_and_every_change_is_one_event_on_the_bus() {
    let stack = Stack::start_with("tasks", &[("SLUICE_TASKS_TTL", "1h")], false)
        .await
        .unwrap();
    let t = create(&stack, "Write the report", "alice", "high").await;
    let id = t["taskId"].as_str().unwrap().to_string();
    assert_eq!(t["status"], "pending");
    assert_eq!(t["priority"], "high");
    assert_eq!(t["version"], 1);

    let r = stack
        .req(Method::GET, &format!("/v1/tasks/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], "\"1\"");

    let (code, etag, t2) = put(&stack, &id, json!({"status": "in_progress"}), Some("\"1\"")).await;
    assert_eq!(code, 200, "{t2}");
    assert_eq!(etag.as_deref(), Some("\"2\""));
    assert_eq!(t2["status"], "in_progress");

    // A stale ETag changes nothing and emits nothing.
    let (code, _, p) = put(&stack, &id, json!({"title": "Stale"}), Some("\"1\"")).await;
    assert_eq!(code, 412, "{p}");
    assert_eq!(p["type"], "urn:sluice:problem:precondition-failed");
    let (code, _, p) = put(&stack, &id, json!({"title": "Bad"}), Some("not-an-etag")).await;
    assert_eq!(code, 412, "{p}");
    let (_, now) = stack.get(&format!("/v1/tasks/{id}")).await;
    assert_eq!(now["title"], "Write the report");
    assert_eq!(now["version"], 2);

    // Completing sets the expiry (SLUICE_TASKS_TTL) and emits two events.
    let (code, _, done) = put(&stack, &id, json!({"status": "completed"}), None).await;
    assert_eq!(code, 200, "{done}");
    let expires = time::OffsetDateTime::parse(
        done["expiresAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let in_an_hour = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    assert!(
        (expires - in_an_hour).abs() < time::Duration::minutes(1),
        "{done}"
    );
    // Final: no more changes (409), and a no-op is not a change.
    let (code, _, p) = put(&stack, &id, json!({"title": "Again"}), None).await;
    assert_eq!(code, 409, "{p}");
    let (code, etag, same) = put(&stack, &id, json!({"status": "completed"}), None).await;
    assert_eq!((code, etag.as_deref()), (200, Some("\"3\"")), "{same}");

    // Delete: a stale ETag is refused, then it is gone.
    let t = create(&stack, "Throw away", "bob", "low").await;
    let gone = t["taskId"].as_str().unwrap().to_string();
    let r = stack
        .req(Method::DELETE, &format!("/v1/tasks/{gone}"))
        .header("if-match", "\"7\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    let r = stack
        .req(Method::DELETE, &format!("/v1/tasks/{gone}"))
        .header("if-match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(stack.get(&format!("/v1/tasks/{gone}")).await.0, 404);
    assert_eq!(stack.delete(&format!("/v1/tasks/{gone}")).await, 404);
    let (code, _, _) = put(&stack, &gone, json!({"title": "x"}), None).await;
    assert_eq!(code, 404);

    // Exactly the events of the changes that happened, once each.
    let want = vec![
        (id.clone(), "TaskCreated".to_string(), 1),
        (id.clone(), "TaskUpdated".to_string(), 2),
        (id.clone(), "TaskUpdated".to_string(), 3),
        (id.clone(), "TaskCompleted".to_string(), 3),
        (gone.clone(), "TaskCreated".to_string(), 1),
        (gone.clone(), "TaskDeleted".to_string(), 2),
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = task_events(&stack).await;
    while got.len() < want.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        got = task_events(&stack).await;
    }
    assert_eq!(got, want);
    // Every outbox was cleared by the writer.
    let pending = stack
        .store
        .pending_outboxes("9999-12-31T00:00:00Z", 10)
        .await
        .unwrap();
    assert!(pending.is_empty(), "{pending:?}");

    // The table expires tasks through TTL on expires_at.
    let ttl = stack
        .store
        .client()
        .describe_time_to_live()
        .table_name(&stack.store.tables().tasks)
        .send()
        .await
        .unwrap();
    let d = ttl.time_to_live_description().unwrap();
    assert_eq!(d.attribute_name(), Some("expires_at"));
}

#[tokio::test]
async fn lists_come_from_the_indexes_in_pages_and_bad_input_writes_nothing() {
    let stack = Stack::start_with("tasklist", &[], false).await.unwrap();
    let mut alice = Vec::new();
    for i in 0..5 {
        alice.push(create(&stack, &format!("a{i}"), "alice", "medium").await);
    }
    let bob = create(&stack, "b0", "bob", "low").await;
    let bid = bob["taskId"].as_str().unwrap();
    let (code, _, _) = put(&stack, bid, json!({"status": "in_progress"}), None).await;
    assert_eq!(code, 200);
    let aid = alice[0]["taskId"].as_str().unwrap();
    let (code, _, _) = put(&stack, aid, json!({"status": "in_progress"}), None).await;
    assert_eq!(code, 200);

    // Pages of 2, newest first, until no `next`.
    async fn all_pages(stack: &Stack, query: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..20 {
            let mut path = format!("/v1/tasks?limit=2{query}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (code, page) = stack.get(&path).await;
            assert_eq!(code, 200, "{path}: {page}");
            let items = page["items"].as_array().unwrap();
            assert!(items.len() <= 2);
            ids.extend(
                items
                    .iter()
                    .map(|t| t["title"].as_str().unwrap().to_string()),
            );
            match page["next"].as_str() {
                Some(n) => cursor = Some(n.to_string()),
                None => return ids,
            }
        }
        panic!("more pages than tasks");
    }
    assert_eq!(
        all_pages(&stack, "&userId=alice").await,
        ["a4", "a3", "a2", "a1", "a0"]
    );
    assert_eq!(
        all_pages(&stack, "&status=pending").await,
        ["a4", "a3", "a2", "a1"]
    );
    assert_eq!(all_pages(&stack, "&status=in_progress").await, ["b0", "a0"]);
    assert_eq!(
        all_pages(&stack, "&userId=alice&status=in_progress").await,
        ["a0"]
    );
    assert_eq!(all_pages(&stack, "").await.len(), 6);

    // A cursor from another listing, or made up, is refused.
    let (_, page) = stack.get("/v1/tasks?limit=1&userId=alice").await;
    let c = page["next"].as_str().unwrap();
    let (code, p) = stack
        .get(&format!("/v1/tasks?limit=1&userId=bob&cursor={c}"))
        .await;
    assert_eq!(code, 400, "{p}");
    let (code, _) = stack.get("/v1/tasks?cursor=bm90LWpzb24").await;
    assert_eq!(code, 400);
    // Well formed, but with values the store would refuse: still a 400.
    let forged = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        br#"{"taskId":"","userId":"alice","created_key":"x"}"#,
    );
    let (code, p) = stack
        .get(&format!("/v1/tasks?userId=alice&cursor={forged}"))
        .await;
    assert_eq!(code, 400, "{p}");
    for bad in [
        "status=done",
        "limit=0",
        "limit=101",
        "userId=a%20b",
        "colour=red",
    ] {
        let (code, p) = stack.get(&format!("/v1/tasks?{bad}")).await;
        assert_eq!(code, 400, "{bad}: {p}");
    }

    // Bad input: a problem naming the field, nothing written.
    let before = stack.scan_count(&stack.store.tables().tasks).await;
    for (body, pointer) in [
        (json!({"title": "", "userId": "u"}), "/title"),
        (json!({"title": "   ", "userId": "u"}), "/title"),
        (json!({"title": "x".repeat(201), "userId": "u"}), "/title"),
        (json!({"title": "ok", "userId": "no spaces"}), "/userId"),
        (json!({"title": "ok"}), ""),
        (
            json!({"title": "ok", "userId": "u", "priority": "urgent"}),
            "/priority",
        ),
        (
            json!({"title": "ok", "userId": "u", "status": "completed"}),
            "",
        ),
    ] {
        let (code, _, p) = stack.post("/v1/tasks", &body).await;
        assert_eq!(code, 422, "{body}: {p}");
        assert_eq!(p["type"], "urn:sluice:problem:validation");
        assert!(
            p["pointer"].as_str().unwrap_or("").starts_with(pointer),
            "{body}: {p}"
        );
    }
    let r = stack
        .req(Method::POST, "/v1/tasks")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (code, _, p) = put(&stack, aid, json!({}), None).await;
    assert_eq!(code, 422, "{p}");
    let (code, _, p) = put(&stack, aid, json!({"status": "archived"}), None).await;
    assert_eq!(code, 422, "{p}");
    let (code, _, p) = put(&stack, aid, json!({"title": null}), None).await;
    assert_eq!(code, 422, "null is not a title: {p}");
    assert_eq!(stack.scan_count(&stack.store.tables().tasks).await, before);

    // Scopes: a reader of events may not read tasks.
    let r = stack
        .http
        .get(format!("{}/v1/tasks", stack.url))
        .header("x-api-key", READER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn a_gateway_killed_between_the_write_and_its_event_loses_neither() {
    let stack = Stack::start(
        "taskkill",
        &[
            ("SLUICE_OUTBOX_GRACE", "1s"),
            ("SLUICE_OUTBOX_INTERVAL", "200ms"),
        ],
    )
    .await
    .unwrap();
    // A second gateway on the same servers that aborts right after writing.
    let crashing = stack
        .extra_gateway(&[("SLUICE_CRASH_AT", "task-written")])
        .await
        .unwrap();
    let r = stack
        .http
        .post(format!("{}/v1/tasks", crashing.url))
        .header("x-api-key", sluice_e2e::ADMIN_KEY)
        .json(&json!({"title": "Survive", "userId": "carol", "priority": "high"}))
        .send()
        .await;
    assert!(r.is_err(), "the gateway died before answering: {r:?}");
    // The write happened; its event was not published by the writer...
    let (_, page) = stack.get("/v1/tasks?userId=carol").await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    let id = items[0]["taskId"].as_str().unwrap().to_string();
    // ...and the relay publishes it, exactly once.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mine = |evs: &[(String, String, u64)]| -> Vec<(String, u64)> {
        evs.iter()
            .filter(|(t, _, _)| *t == id)
            .map(|(_, k, v)| (k.clone(), *v))
            .collect()
    };
    loop {
        let evs = task_events(&stack).await;
        if !mine(&evs).is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no event\n{}", stack.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A change through a healthy gateway afterwards: its own event, once.
    let (code, _, _) = put(&stack, &id, json!({"status": "in_progress"}), None).await;
    assert_eq!(code, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let counts: BTreeMap<(String, u64), usize> =
        mine(&task_events(&stack).await)
            .into_iter()
            .fold(BTreeMap::new(), |mut m, k| {
                *m.entry(k).or_default() += 1;
                m
            });
    assert_eq!(
        counts,
        BTreeMap::from([
            (("TaskCreated".to_string(), 1), 1),
            (("TaskUpdated".to_string(), 2), 1)
        ])
    );
    assert!(stack
        .store
        .pending_outboxes("9999-12-31T00:00:00Z", 10)
        .await
        .unwrap()
        .is_empty());
}
