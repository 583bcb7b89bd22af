//! Least-privilege NATS users: the whole stack runs with one user per
//! service (and one for the object store), each allowed only the subjects
//! the permission table gives it: the table the Helm chart renders into
//! the server's `authorization` block (`nats.auth.users` of its values).
//!
//! A round trip through every service must work without the server
//! refusing anything, and a service reaching for another's streams must
//! be refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice_bus::{async_nats, Bus};
use sluice_config::{Env, NatsConfig};
use sluice_e2e::nats_auth::{self, OBJECT_STORE, SERVICES};
use sluice_e2e::receiver::Receiver;
use sluice_e2e::{assert_eventually, Stack};
use sluice_testkit::{Mailbox, Servers};

const APPROVER: &str = "approver@example.com";
const OWNER: &str = "files-owner@example.com";

#[test]
fn the_table_names_every_service_and_never_grants_everything() {
    let (table, source) = nats_auth::table().unwrap();
    let names: Vec<&str> = table.iter().map(|p| p.name.as_str()).collect();
    for user in SERVICES.iter().chain([&OBJECT_STORE]) {
        assert!(
            names.contains(user),
            "{} has no user {user}",
            source.display()
        );
    }
    assert_eq!(names.len(), SERVICES.len() + 1, "{names:?}");
    for p in &table {
        for s in p.publish.iter().chain(&p.subscribe) {
            assert!(
                !matches!(
                    s.as_str(),
                    ">" | "$JS.>" | "$JS.API.>" | "*.>" | "$JS.API.*.>"
                ) && !s.starts_with("$SYS"),
                "{} may {s}: far more than it needs",
                p.name
            );
        }
        assert!(!p.publish.is_empty(), "{} publishes nothing", p.name);
        assert!(
            p.subscribe.iter().any(|s| s.starts_with("_INBOX")),
            "{} needs its replies",
            p.name
        );
    }
}

#[tokio::test]
async fn every_service_can_declare_the_streams_when_it_is_the_first_to_start() {
    // In the cluster any service may start first, so each must be able to
    // create the shared streams (not only update them).
    let dir = tempfile::tempdir().unwrap();
    let nats = sluice_testkit::Nats::start_users(
        dir.path(),
        false,
        sluice_testkit::DEFAULT_MAX_STORE,
        nats_auth::users().unwrap(),
    )
    .await
    .unwrap();
    let queue = sluice_bus::QueueConfig::from_env(&Env::default()).unwrap();
    let connect = |user: &str| {
        let u = nats.user(user).unwrap();
        let env = Env::from_pairs([
            ("SLUICE_NATS_URL", nats.url()),
            ("SLUICE_NATS_USER", u.name.clone()),
            ("SLUICE_NATS_PASSWORD", u.password.clone()),
        ]);
        let config = NatsConfig::from_env(&env).unwrap();
        async move { Bus::connect(&config, "sluice-e2e").await.unwrap() }
    };
    let admin = connect(nats_auth::ADMIN).await;
    for service in SERVICES {
        let bus = connect(service).await;
        tokio::time::timeout(Duration::from_secs(30), bus.declare_streams(&queue, 1))
            .await
            .unwrap_or_else(|_| panic!("{service}: declaring timed out"))
            .unwrap_or_else(|e| panic!("{service}: {e}\n{:#?}", nats.violations()));
        // Again: now they exist, so they are updated.
        bus.declare_streams(&queue, 1)
            .await
            .unwrap_or_else(|e| panic!("{service}: {e}\n{:#?}", nats.violations()));
        let names = admin.names();
        for stream in [
            names.ingest(),
            names.dlq(),
            names.bus(),
            names.deliveries(),
            names.notify(),
            names.notify_fifo(),
            names.files(),
        ] {
            admin.jetstream().delete_stream(stream).await.unwrap();
        }
    }
    assert!(nats.violations().is_empty(), "{:#?}", nats.violations());
}

/// Creates an email subscription to `topic` for `to` (filtered by
/// `filter`) and follows its confirmation link.
async fn subscribe_email(stack: &Stack, mail: &Mailbox, topic: &str, to: &str, filter: Value) {
    let (code, _) = stack.put(&format!("/v1/topics/{topic}"), &json!({})).await;
    assert!(code == 200 || code == 201, "{code}");
    let (code, _, sub) = stack
        .post(
            &format!("/v1/topics/{topic}/subscriptions"),
            &json!({"protocol": "email", "endpoint": to, "filter_policy": filter}),
        )
        .await;
    assert_eq!(code, 201, "{sub}");
    let got = mail
        .wait_for(to, 1, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));
    let text = got[0]["text"].as_str().unwrap();
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/confirm?token="))
        .unwrap_or_else(|| panic!("no confirmation link in {text}"));
    assert_eq!(reqwest::get(link).await.unwrap().status(), 200);
}

/// Creates queue `queue` and subscribes it to `topic`.
async fn subscribe_queue(stack: &Stack, topic: &str, queue: &str) {
    let (code, q) = stack.put(&format!("/v1/queues/{queue}"), &json!({})).await;
    assert!(code == 200 || code == 201, "{q}");
    let (code, _, sub) = stack
        .post(
            &format!("/v1/topics/{topic}/subscriptions"),
            &json!({"protocol": "queue", "endpoint": queue}),
        )
        .await;
    assert_eq!(code, 201, "{sub}");
}

/// Receives one message from `queue` (long polling) and deletes it.
async fn receive_one(stack: &Stack, queue: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, r) = stack
            .send(
                reqwest::Method::POST,
                &format!("/v1/queues/{queue}/receive"),
                Some(&json!({"wait_time_seconds": 5, "max_messages": 1})),
            )
            .await;
        assert_eq!(code, 200, "{r}");
        if let Some(m) = r["messages"].as_array().and_then(|m| m.first()) {
            let receipt = m["receipt_handle"].as_str().unwrap();
            assert_eq!(
                stack
                    .delete(&format!("/v1/queues/{queue}/messages/{receipt}"))
                    .await,
                204
            );
            return m.clone();
        }
        assert!(
            Instant::now() < deadline,
            "nothing reached queue {queue}\n{}",
            stack.logs()
        );
    }
}

/// The emails `to` received whose subject starts with `subject`, once
/// there are `n`.
async fn emails(stack: &Stack, mail: &Mailbox, to: &str, subject: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: Vec<Value> = mail
            .messages(Some(to))
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|m| {
                m["subject"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(subject))
            })
            .collect();
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{to}: no {subject:?} email: {got:?}\n{}",
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads `path` until its `field` is one of `until`.
async fn until(stack: &Stack, path: &str, field: &str, until: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (code, v) = stack.get(path).await;
        if code == 200 && until.iter().any(|s| v[field] == *s) {
            return v;
        }
        assert!(Instant::now() < deadline, "{path}: {v}\n{}", stack.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A client connected as `user` (with its password from the server's table).
async fn connect_as(stack: &Stack, user: &str) -> async_nats::Client {
    let u = stack.servers.nats.user(user).expect("a user of the table");
    // As the service itself connects: replies on the user's own inbox
    // (the object store, MinIO, keeps the plain `_INBOX.`).
    let mut options =
        async_nats::ConnectOptions::with_user_and_password(u.name.clone(), u.password.clone());
    if user != OBJECT_STORE {
        options = options.custom_inbox_prefix(format!("_INBOX_{user}"));
    }
    options.connect(stack.servers.nats.url()).await.unwrap()
}

/// Waits until the server has told `user` it may not touch `subject`.
async fn refused(stack: &Stack, user: &str, what: &str, subject: &str) {
    let needle = format!("Permissions Violation for {what} to \"{subject}\"");
    let who = format!("/user:{user}\"");
    assert_eventually!(
        stack
            .servers
            .nats
            .violations()
            .iter()
            .any(|l| l.contains(&needle) && l.contains(&who)),
        "{user} was not refused {what} to {subject}: {:#?}",
        stack.servers.nats.violations()
    );
}

#[tokio::test]
async fn every_service_works_with_only_its_own_subjects_and_is_refused_the_rest() {
    let (_, source) = nats_auth::table().unwrap();
    eprintln!("permission table: {}", source.display());
    let mail = Mailbox::start().await.unwrap();
    let (smtp, ca) = (mail.starttls_url(), mail.ca_file());
    let servers = Servers::start_with_users(nats_auth::users().unwrap())
        .await
        .unwrap();
    let stack = Stack::start_files_on(
        servers,
        "natsperm",
        &[
            ("SLUICE_SMTP_URL", smtp.as_str()),
            ("SLUICE_SMTP_CA_FILE", ca.as_str()),
            ("SLUICE_APPROVAL_APPROVERS", APPROVER),
            ("SLUICE_FILES_RETRY_INITIAL", "200ms"),
            ("SLUICE_TRANSFORMER_RETRY_BASE", "100ms"),
            ("SLUICE_TRANSFORMER_RETRY_MAX_DELAY", "200ms"),
            ("SLUICE_TRANSFORMER_GAUGE_INTERVAL", "1s"),
        ],
        true,
    )
    .await
    .unwrap();
    let hook = Receiver::start().await;
    let fragile = Receiver::start().await;
    fragile.set_status(422);

    // Email subscriptions (the notifier's own deliveries and consumers,
    // SMTP), a queue (the transformer declares it), a standard topic
    // feeding a queue, a FIFO topic feeding another.
    subscribe_email(
        &stack,
        &mail,
        "task-approvals",
        APPROVER,
        json!({"approver": [APPROVER]}),
    )
    .await;
    subscribe_email(
        &stack,
        &mail,
        "file-events",
        OWNER,
        json!({"owner": ["admin"]}),
    )
    .await;
    let (code, q) = stack.put("/v1/queues/jobs", &json!({})).await;
    assert_eq!(code, 201, "{q}");
    let (code, _) = stack.put("/v1/topics/news", &json!({})).await;
    assert_eq!(code, 201);
    subscribe_queue(&stack, "news", "news-q").await;
    let (code, _) = stack.put("/v1/topics/orders.fifo", &json!({})).await;
    assert_eq!(code, 201);
    subscribe_queue(&stack, "orders.fifo", "ordered").await;

    // Rules: queue, HTTP and topic targets; a failing HTTP target; a
    // workflow target started by a task's event.
    for (name, rule) in [
        (
            "shop",
            json!({"event_pattern": {"source": ["shop"]}, "targets": [
                {"type": "queue", "id": "q", "queue": "jobs", "input_path": "$.detail"},
                {"type": "http", "id": "h", "url": format!("{}/shop", hook.url)},
                {"type": "topic", "id": "t", "topic": "news", "input_path": "$.detail"}]}),
        ),
        (
            "fragile",
            json!({"event_pattern": {"source": ["fragile"]},
                   "targets": [{"type": "http", "id": "f", "url": fragile.url}]}),
        ),
        (
            "task-approval",
            json!({"event_pattern": {"source": ["sluice.tasks"], "detail-type": ["TaskCreated"],
                                     "detail": {"priority": ["high"]}},
                   "targets": [{"type": "workflow", "id": "approval", "workflow_type": "approval"}]}),
        ),
    ] {
        let (code, r) = stack
            .put(&format!("/v1/buses/default/rules/{name}"), &rule)
            .await;
        assert!(code == 200 || code == 201, "{name}: {r}");
    }

    // 1. An event: gateway → processor → bus → transformer → the queue,
    //    the HTTP endpoint and the topic (→ notifier → its queue).
    let (code, _, ev) = stack
        .post(
            "/v1/events",
            &json!({"source": "shop", "detail-type": "Sold", "detail": {"sku": "BOOK"}}),
        )
        .await;
    assert_eq!(code, 202, "{ev}");
    let event_id = ev["id"].as_str().unwrap().to_string();
    let (code, _) = stack.get(&format!("/v1/events/{event_id}")).await;
    assert_eq!(
        code, 200,
        "the gateway finds the event, queued or processed"
    );
    let job = receive_one(&stack, "jobs").await;
    assert_eq!(job["attributes"]["event_id"], event_id.as_str(), "{job}");
    assert_eventually!(
        hook.count() == 1,
        "the HTTP target got nothing\n{}",
        stack.logs()
    );
    let news = receive_one(&stack, "news-q").await;
    assert!(news["body"].as_str().unwrap().contains("BOOK"), "{news}");
    until(
        &stack,
        &format!("/v1/events/{event_id}"),
        "status",
        &["processed"],
    )
    .await;

    // 2. Topic publishes: standard, and FIFO (in its group's partition).
    let (code, _, p) = stack
        .post("/v1/topics/news/messages", &json!({"message": "hello"}))
        .await;
    assert_eq!(code, 202, "{p}");
    let news = receive_one(&stack, "news-q").await;
    assert!(news["body"].as_str().unwrap().contains("hello"), "{news}");
    let (code, _, p) = stack
        .post(
            "/v1/topics/orders.fifo/messages",
            &json!({"message": "first", "message_group_id": "g1", "message_deduplication_id": "d1"}),
        )
        .await;
    assert_eq!(code, 202, "{p}");
    let ordered = receive_one(&stack, "ordered").await;
    assert!(
        ordered["body"].as_str().unwrap().contains("first"),
        "{ordered}"
    );

    // 3. A delivery the endpoint refuses goes to the DLQ; redriven, it
    //    is delivered.
    let (code, _, _) = stack
        .post(
            "/v1/events",
            &json!({"source": "fragile", "detail-type": "X", "detail": {}}),
        )
        .await;
    assert_eq!(code, 202);
    let entry = {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (code, page) = stack.get("/v1/dlq?limit=10").await;
            assert_eq!(code, 200, "{page}");
            if let Some(e) = page["entries"].as_array().and_then(|e| e.first()) {
                break e.clone();
            }
            assert!(
                Instant::now() < deadline,
                "not dead-lettered\n{}",
                stack.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    fragile.set_status(200);
    let id = entry["id"].as_str().unwrap();
    let (code, _, rep) = stack.post("/v1/dlq/redrive", &json!({"ids": [id]})).await;
    assert_eq!(code, 200, "{rep}");
    assert_eq!(rep["redriven"], json!([id]), "{rep}");
    assert_eventually!(
        fragile.count() == 2,
        "the redrive was not delivered\n{}",
        stack.logs()
    );

    // 4. An order: reserved and confirmed by the processor.
    let r = stack
        .req(reqwest::Method::PUT, "/v1/inventory/BOOK")
        .json(&json!({"available": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (code, _, order) = stack
        .post(
            "/v1/orders",
            &json!({"customer_id": "c1", "currency": "EUR",
                    "items": [{"sku": "BOOK", "quantity": 2, "unit_price": "9.90"}]}),
        )
        .await;
    assert_eq!(code, 202, "{order}");
    let order_id = order["order_id"].as_str().unwrap();
    let o = until(
        &stack,
        &format!("/v1/orders/{order_id}"),
        "status",
        &["CONFIRMED", "REJECTED"],
    )
    .await;
    assert_eq!(o["status"], "CONFIRMED", "{o}");

    // 5. A task's event (the gateway's outbox) starts an approval through
    //    its rule's workflow target; the orchestrator asks the approver
    //    on the topic; the link approves, and the task's change is an
    //    event again (the orchestrator's outbox).
    let (code, _, task) = stack
        .post(
            "/v1/tasks",
            &json!({"title": "Ship it", "priority": "high", "userId": "owner@example.com"}),
        )
        .await;
    assert_eq!(code, 201, "{task}");
    let task_id = task["taskId"].as_str().unwrap().to_string();
    let email = emails(&stack, &mail, APPROVER, "Approval needed", 1)
        .await
        .remove(0);
    let text = email["text"].as_str().unwrap();
    let approve = text
        .split_whitespace()
        .find(|w| w.contains("/decision?approve=true&token="))
        .unwrap_or_else(|| panic!("no link in {text}"));
    let r = reqwest::Client::new().post(approve).send().await.unwrap();
    assert_eq!(r.status(), 200);
    until(
        &stack,
        &format!("/v1/tasks/{task_id}"),
        "status",
        &["in_progress"],
    )
    .await;

    // 6. A file: MinIO's notification (as `objectstore`) → file-ingest →
    //    the pipeline → processed, its owner told by email.
    let (code, _, created) = stack
        .post(
            "/v1/files",
            &json!({"name": "people.csv", "content_type": "text/csv"}),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    let put = reqwest::Client::new()
        .put(created["upload_url"].as_str().unwrap())
        .body(b"id,name\n1,ann\n2,bob\n".to_vec())
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    let file_id = created["file_id"].as_str().unwrap();
    let f = until(
        &stack,
        &format!("/v1/files/{file_id}"),
        "status",
        &["processed", "dead_lettered", "failed"],
    )
    .await;
    assert_eq!(f["status"], "processed", "{f}\n{}", stack.logs());
    emails(&stack, &mail, OWNER, "File processed", 1).await;

    // Everything settled, and the gauges read a few times.
    assert_eventually!(
        stack.stream_messages("DELIVERIES").await == 0,
        "deliveries left\n{}",
        stack.logs()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let violations = stack.servers.nats.violations();
    assert!(
        violations.is_empty(),
        "the server refused the services something:\n{}",
        violations.join("\n")
    );

    // The permissions bite: the notifier may not feed the ingest queue
    // nor read it, nor listen to the bus.
    let notifier = connect_as(&stack, "notifier").await;
    let mut js = async_nats::jetstream::new(notifier.clone());
    js.set_timeout(Duration::from_secs(2));
    let sent = match js.publish("ingest.event.intruder", "x".into()).await {
        Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    assert!(sent.is_err(), "the notifier fed the ingest queue");
    refused(&stack, "notifier", "Publish", "ingest.event.intruder").await;
    let consumer = js
        .create_consumer_on_stream(
            async_nats::jetstream::consumer::pull::Config {
                durable_name: Some("intruder".into()),
                filter_subject: "ingest.>".into(),
                ..Default::default()
            },
            "INGEST",
        )
        .await;
    assert!(consumer.is_err(), "the notifier made a consumer on INGEST");
    refused(
        &stack,
        "notifier",
        "Publish",
        "$JS.API.CONSUMER.CREATE.INGEST.intruder.ingest.>",
    )
    .await;
    let _sub = notifier.subscribe("bus.>").await.unwrap();
    notifier.flush().await.unwrap();
    refused(&stack, "notifier", "Subscription", "bus.>").await;
    // Nor can it read another service's replies (what the processor pulls
    // arrives on the processor's own inbox).
    let _inbox = notifier.subscribe("_INBOX_processor.>").await.unwrap();
    notifier.flush().await.unwrap();
    refused(&stack, "notifier", "Subscription", "_INBOX_processor.>").await;

    // The gateway reads user queues, never the processor's; the
    // transformer deletes queues, never a shared stream; the object
    // store only announces uploads.
    let gateway = connect_as(&stack, "gateway").await;
    gateway
        .publish_with_reply(
            "$JS.API.CONSUMER.MSG.NEXT.INGEST.processor",
            "_INBOX.intruder",
            "1".into(),
        )
        .await
        .unwrap();
    gateway.flush().await.unwrap();
    refused(
        &stack,
        "gateway",
        "Publish",
        "$JS.API.CONSUMER.MSG.NEXT.INGEST.processor",
    )
    .await;
    let transformer = connect_as(&stack, "transformer").await;
    let mut tjs = async_nats::jetstream::new(transformer);
    tjs.set_timeout(Duration::from_secs(2));
    assert!(tjs.delete_stream("INGEST").await.is_err());
    refused(
        &stack,
        "transformer",
        "Publish",
        "$JS.API.STREAM.DELETE.INGEST",
    )
    .await;
    let objects = connect_as(&stack, OBJECT_STORE).await;
    objects
        .publish("ingest.event.intruder", "x".into())
        .await
        .unwrap();
    objects.flush().await.unwrap();
    refused(&stack, OBJECT_STORE, "Publish", "ingest.event.intruder").await;

    // Nothing of it took: the ingest queue is whole, with no stranger's
    // consumer.
    let mut ingest = stack.bus.jetstream().get_stream("INGEST").await.unwrap();
    assert!(ingest.info().await.is_ok());
    assert!(ingest.consumer_info("intruder").await.is_err());
    assert_eq!(stack.stream_messages("INGEST").await, 0);
}
