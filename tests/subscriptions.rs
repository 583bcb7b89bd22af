//! Webhook and email subscriptions end to end, against real NATS, DynamoDB
//! Local, a real HTTP endpoint and a real SMTP server (the mailbox):
//! confirmation, Standard Webhooks signatures verified as a receiver would
//! with the secret, rotation, filter policies, retries, dead letters and
//! redrive, per-subscription concurrency, STARTTLS and TLS with AUTH,
//! unsubscribe links, an SMTP outage.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use sluice_e2e::receiver::{Receiver, Request, TestCa};
use sluice_e2e::Stack;
use sluice_testkit::Mailbox;

/// Verifies a Standard Webhooks request with `secret`, as a receiver
/// would: HMAC-SHA256 of `id.timestamp.body` with the base64-decoded key,
/// compared with each `v1,` signature of the header.
fn verifies(req: &Request, secret: &str) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let (Some(id), Some(ts), Some(sigs)) = (
        req.header("webhook-id"),
        req.header("webhook-timestamp"),
        req.header("webhook-signature"),
    ) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{}", req.body).as_bytes());
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    let fresh = ts
        .parse::<i64>()
        .map(|t| (time::OffsetDateTime::now_utc().unix_timestamp() - t).abs() < 300)
        .unwrap_or(false);
    fresh && sigs.split(' ').any(|s| s == expected)
}

/// Waits until `f` holds, or panics with `what`.
async fn until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn notifications(r: &Receiver) -> Vec<Request> {
    r.requests()
        .into_iter()
        .filter(|q| q.header("sluice-message-type") == Some("Notification"))
        .collect()
}

/// Subscribes `endpoint` over http or https (the receiver's), answers the confirmation request by
/// opening its link, and returns the subscription (with its secret).
async fn subscribe_confirmed(
    stack: &Stack,
    topic: &str,
    receiver: &Receiver,
    path: &str,
    extra: Value,
) -> Value {
    let protocol = receiver.url.split(':').next().unwrap();
    let mut body = json!({"protocol": protocol, "endpoint": format!("{}{path}", receiver.url)});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (code, _, sub) = stack
        .post(&format!("/v1/topics/{topic}/subscriptions"), &body)
        .await;
    assert_eq!(code, 201, "{sub}");
    assert_eq!(sub["status"], "pending_confirmation");
    let secret = sub["signing_secret"].as_str().unwrap().to_string();
    let confirmation = {
        let mut found = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        while found.is_none() {
            assert!(
                Instant::now() < deadline,
                "no confirmation request\n{}",
                stack.logs()
            );
            found = receiver
                .requests()
                .into_iter()
                .find(|q| q.path == path && q.json()["subscription_id"] == sub["subscription_id"]);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        found.unwrap()
    };
    assert!(verifies(&confirmation, &secret), "confirmation signed");
    let c = confirmation.json();
    assert_eq!(c["type"], "SubscriptionConfirmation");
    let url = c["confirm_url"].as_str().unwrap();
    // The link needs no API key: its token is the proof.
    let r = reqwest::get(url).await.unwrap();
    assert_eq!(r.status(), 200);
    let out: Value = r.json().await.unwrap();
    assert_eq!(out["status"], "confirmed");
    sub
}

async fn publish(stack: &Stack, topic: &str, body: Value) -> String {
    let (code, _, out) = stack
        .post(&format!("/v1/topics/{topic}/messages"), &body)
        .await;
    assert_eq!(code, 202, "{out}");
    out["message_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn webhooks_are_confirmed_signed_filtered_rotated_and_unsubscribed() {
    let stack = Stack::start_with("hooks", &[], false).await.unwrap();
    let hook = Receiver::start().await;
    assert_eq!(stack.put("/v1/topics/alerts", &json!({})).await.0, 201);

    // Nothing reaches a subscription before it is confirmed.
    let (code, _, pending) = stack
        .post(
            "/v1/topics/alerts/subscriptions",
            &json!({"protocol": "http", "endpoint": format!("{}/early", hook.url)}),
        )
        .await;
    assert_eq!(code, 201, "{pending}");
    let pending_secret = pending["signing_secret"].as_str().unwrap();
    assert!(pending_secret.starts_with("whsec_"), "{pending}");
    // Asking again while pending sends the confirmation again, as a new
    // message (a receiver de-duplicating on webhook-id still sees it).
    let (code, _, again) = stack
        .post(
            "/v1/topics/alerts/subscriptions",
            &json!({"protocol": "http", "endpoint": format!("{}/early", hook.url)}),
        )
        .await;
    assert_eq!(code, 201, "{again}");
    assert_eq!(again["subscription_id"], pending["subscription_id"]);
    until("two confirmation requests", Duration::from_secs(30), || {
        let ids: std::collections::HashSet<String> = hook
            .requests()
            .iter()
            .filter(|q| q.path == "/early")
            .filter_map(|q| q.header("webhook-id").map(str::to_string))
            .collect();
        ids.len() == 2
    })
    .await;

    let sub = subscribe_confirmed(
        &stack,
        "alerts",
        &hook,
        "/hook",
        json!({"filter_policy": {"level": ["high"]}}),
    )
    .await;
    let secret = sub["signing_secret"].as_str().unwrap().to_string();
    let id = sub["subscription_id"].as_str().unwrap().to_string();

    // A wrong token confirms nothing and says only "not found".
    let r = reqwest::get(format!(
        "{}/v1/topics/alerts/subscriptions/{}/confirm?token=wrong",
        stack.url,
        pending["subscription_id"].as_str().unwrap()
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 404);

    // Listing shows the status and never a secret.
    let (_, list) = stack.get("/v1/topics/alerts/subscriptions").await;
    let listed: Vec<&Value> = list["subscriptions"].as_array().unwrap().iter().collect();
    assert_eq!(listed.len(), 2);
    assert!(
        listed.iter().all(|s| s.get("signing_secret").is_none()),
        "{list}"
    );
    let status = |sid: &str| {
        listed
            .iter()
            .find(|s| s["subscription_id"] == sid)
            .map(|s| s["status"].clone())
            .unwrap()
    };
    assert_eq!(status(&id), "confirmed");
    assert_eq!(
        status(pending["subscription_id"].as_str().unwrap()),
        "pending_confirmation"
    );

    // The filter policy picks exactly the matching message.
    let high = publish(
        &stack,
        "alerts",
        json!({"message": "disk full", "subject": "Disk",
               "message_attributes": {"level": {"Type": "String", "Value": "high"}}}),
    )
    .await;
    publish(
        &stack,
        "alerts",
        json!({"message": "fyi", "message_attributes": {"level": {"Type": "String", "Value": "low"}}}),
    )
    .await;
    until("the high message", Duration::from_secs(30), || {
        !notifications(&hook).is_empty()
    })
    .await;
    let n = &notifications(&hook)[0];
    assert_eq!(n.path, "/hook");
    assert!(verifies(n, &secret), "signed with the secret: {n:?}");
    assert!(
        !verifies(n, pending_secret),
        "not with another subscription's"
    );
    let body = n.json();
    assert_eq!(body["Type"], "Notification");
    assert_eq!(body["MessageId"], high.as_str());
    assert_eq!(body["Message"], "disk full");
    assert_eq!(body["Subject"], "Disk");
    assert!(body["TopicArn"].as_str().unwrap().ends_with(":alerts"));
    assert_eq!(n.header("sluice-message-id"), Some(high.as_str()));
    assert_eq!(n.header("content-type"), Some("application/json"));

    // Rotation: both signatures during the overlap, then only the new one.
    let (code, _, rotated) = stack
        .post(
            &format!("/v1/topics/alerts/subscriptions/{id}/rotate-secret"),
            &json!({"overlap_seconds": 3600}),
        )
        .await;
    assert_eq!(code, 200, "{rotated}");
    let new_secret = rotated["signing_secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, secret);
    let level_high = json!({"level": {"Type": "String", "Value": "high"}});
    publish(
        &stack,
        "alerts",
        json!({"message": "m2", "message_attributes": level_high}),
    )
    .await;
    until("the second message", Duration::from_secs(30), || {
        notifications(&hook).len() >= 2
    })
    .await;
    let n2 = &notifications(&hook)[1];
    assert_eq!(
        n2.header("webhook-signature").unwrap().split(' ').count(),
        2
    );
    assert!(verifies(n2, &secret) && verifies(n2, &new_secret));
    let (code, _, third) = stack
        .post(
            &format!("/v1/topics/alerts/subscriptions/{id}/rotate-secret"),
            &json!({"overlap_seconds": 0}),
        )
        .await;
    assert_eq!(code, 200, "{third}");
    let third = third["signing_secret"].as_str().unwrap().to_string();
    publish(
        &stack,
        "alerts",
        json!({"message": "m3", "message_attributes": level_high}),
    )
    .await;
    until("the third message", Duration::from_secs(30), || {
        notifications(&hook).len() >= 3
    })
    .await;
    let n3 = &notifications(&hook)[2];
    assert_eq!(
        n3.header("webhook-signature").unwrap().split(' ').count(),
        1
    );
    assert!(verifies(n3, &third));
    assert!(!verifies(n3, &secret) && !verifies(n3, &new_secret));

    // The notification's UnsubscribeURL works without credentials.
    let unsubscribe = n3.json()["UnsubscribeURL"].as_str().unwrap().to_string();
    let r = reqwest::get(&unsubscribe).await.unwrap();
    assert_eq!(r.status(), 200);
    let r = reqwest::get(&unsubscribe).await.unwrap();
    assert_eq!(r.status(), 404, "gone");
    let (_, list) = stack.get("/v1/topics/alerts/subscriptions").await;
    assert_eq!(list["subscriptions"].as_array().unwrap().len(), 1);

    // The unconfirmed subscription never received a notification.
    assert!(hook
        .requests()
        .iter()
        .filter(|q| q.path == "/early")
        .all(|q| q.header("sluice-message-type") == Some("SubscriptionConfirmation")));
    assert_eq!(notifications(&hook).len(), 3);
}

#[tokio::test]
async fn https_webhooks_are_delivered_over_tls_only_to_endpoints_whose_certificate_is_trusted() {
    let dir = std::env::temp_dir().join(format!("sluice-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = TestCa::new("sluice test CA");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let stack = Stack::start_with(
        "hooktls",
        &[("SLUICE_TARGETS_CA_FILE", ca_file.to_str().unwrap())],
        false,
    )
    .await
    .unwrap();
    stack.put("/v1/topics/secure", &json!({})).await;
    let trusted = Receiver::start_tls(&ca).await;
    assert!(trusted.url.starts_with("https://127.0.0.1:"));
    let sub = subscribe_confirmed(&stack, "secure", &trusted, "/hook", json!({})).await;
    assert_eq!(sub["protocol"], "https");
    let secret = sub["signing_secret"].as_str().unwrap();
    let id = publish(&stack, "secure", json!({"message": "over TLS"})).await;
    until("the notification over TLS", Duration::from_secs(30), || {
        !notifications(&trusted).is_empty()
    })
    .await;
    let n = &notifications(&trusted)[0];
    assert!(verifies(n, secret));
    assert_eq!(n.json()["MessageId"], id.as_str());
    assert_eq!(n.json()["Message"], "over TLS");

    // An endpoint whose certificate no trusted CA issued gets nothing: its
    // confirmation request fails the handshake and is dead-lettered.
    let stranger = Receiver::start_tls(&TestCa::new("someone else's CA")).await;
    let (code, _, untrusted) = stack
        .post(
            "/v1/topics/secure/subscriptions",
            &json!({"protocol": "https", "endpoint": format!("{}/hook", stranger.url),
                    "delivery_policy": {"max_retries": 0}}),
        )
        .await;
    assert_eq!(code, 201, "{untrusted}");
    let dead = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, page) = stack.get("/v1/dlq?limit=100").await;
            let found = page["entries"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .find(|d| d["subscription"] == untrusted["subscription_id"]);
            if let Some(d) = found {
                break d;
            }
            assert!(
                Instant::now() < deadline,
                "not dead-lettered\n{}",
                stack.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let reason = dead["reason"].as_str().unwrap().to_lowercase();
    assert!(
        reason.contains("certificate") || reason.contains("tls"),
        "{dead}"
    );
    assert!(stranger.requests().is_empty(), "nothing got through");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn failing_endpoints_are_retried_then_dead_lettered_and_hold_back_no_one() {
    let stack = Stack::start_with(
        "hookfail",
        &[
            ("SLUICE_NOTIFIER_RETRY_BASE", "100ms"),
            ("SLUICE_NOTIFIER_RETRY_MAX_DELAY", "400ms"),
        ],
        false,
    )
    .await
    .unwrap();
    // The topic's delivery policy is the default of its subscriptions'.
    let (code, t) = stack
        .put(
            "/v1/topics/jobs",
            &json!({"delivery_policy": {"max_retries": 2}}),
        )
        .await;
    assert_eq!(code, 201, "{t}");
    assert_eq!(t["delivery_policy"], json!({"max_retries": 2}));
    let good = Receiver::start().await;
    let failing = Receiver::start().await;
    let refusing = Receiver::start().await;
    let slow = Receiver::start().await;
    subscribe_confirmed(&stack, "jobs", &good, "/", json!({})).await;
    let failing_sub = subscribe_confirmed(&stack, "jobs", &failing, "/", json!({})).await;
    subscribe_confirmed(&stack, "jobs", &refusing, "/", json!({})).await;
    subscribe_confirmed(
        &stack,
        "jobs",
        &slow,
        "/",
        json!({"delivery_policy": {"max_concurrency": 2, "timeout_seconds": 60}}),
    )
    .await;
    failing.set_status(503);
    refusing.set_status(400);
    slow.hold();

    for i in 0..5 {
        publish(&stack, "jobs", json!({"message": format!("job {i}")})).await;
    }
    // The healthy endpoint gets all five while the others fail or hang.
    until(
        "five deliveries to the good endpoint",
        Duration::from_secs(30),
        || notifications(&good).len() == 5,
    )
    .await;
    let ids: std::collections::HashSet<String> = notifications(&good)
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 5, "each message once");
    // The slow endpoint never has more than its cap in flight.
    assert_eq!(notifications(&slow).len(), 2, "max_concurrency 2");

    // 503: three attempts each (1 + the topic's max_retries 2), then the dead-letter
    // queue with the last response; 400: one attempt, terminal.
    until("every failing attempt", Duration::from_secs(30), || {
        notifications(&failing).len() == 15 && notifications(&refusing).len() == 5
    })
    .await;
    let dead = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (code, page) = stack.get("/v1/dlq?limit=100").await;
            assert_eq!(code, 200, "{page}");
            let items = page["entries"].as_array().cloned().unwrap_or_default();
            if items.len() >= 10 || Instant::now() > deadline {
                break items;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let of = |sid: &Value| -> Vec<&Value> {
        dead.iter().filter(|d| &d["subscription"] == sid).collect()
    };
    let failed = of(&failing_sub["subscription_id"]);
    assert_eq!(failed.len(), 5, "{dead:?}");
    for d in &failed {
        assert_eq!(d["attempts"], 3);
        assert_eq!(d["terminal"], false);
        assert_eq!(d["topic"], "jobs");
        assert!(d["reason"].as_str().unwrap().contains("503"), "{d}");
        assert!(
            d["last_response"].as_str().unwrap().starts_with("503"),
            "{d}"
        );
    }
    let refused: Vec<&Value> = dead.iter().filter(|d| d["terminal"] == true).collect();
    assert_eq!(refused.len(), 5, "{dead:?}");
    assert!(refused.iter().all(|d| d["attempts"] == 1));
    assert_eq!(notifications(&refusing).len(), 5, "a 400 is not retried");

    // Redriven once the endpoint recovers: each arrives once more, with
    // the webhook-id it had before.
    failing.set_status(200);
    let before: std::collections::HashSet<String> = notifications(&failing)
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_string())
        .collect();
    assert_eq!(before.len(), 5);
    let ids: Vec<Value> = failed.iter().map(|d| d["id"].clone()).collect();
    let (code, _, report) = stack.post("/v1/dlq/redrive", &json!({"ids": ids})).await;
    assert_eq!(code, 200, "{report}");
    assert_eq!(report["redriven"].as_array().unwrap().len(), 5, "{report}");
    until("the redriven deliveries", Duration::from_secs(30), || {
        notifications(&failing).len() == 20
    })
    .await;
    let after: std::collections::HashSet<String> = notifications(&failing)[15..]
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_string())
        .collect();
    assert_eq!(after, before);

    // The slow endpoint gets everything once released.
    slow.release();
    until("the slow endpoint's five", Duration::from_secs(30), || {
        notifications(&slow).len() == 5
    })
    .await;
}

/// Confirms an email subscription from its confirmation email; returns
/// the subscription.
async fn confirm_email(
    stack: &Stack,
    mail: &Mailbox,
    topic: &str,
    protocol: &str,
    to: &str,
) -> Value {
    let (code, _, sub) = stack
        .post(
            &format!("/v1/topics/{topic}/subscriptions"),
            &json!({"protocol": protocol, "endpoint": to}),
        )
        .await;
    assert_eq!(code, 201, "{sub}");
    assert_eq!(sub["status"], "pending_confirmation");
    assert!(sub.get("signing_secret").is_none());
    let got = mail.wait_for(to, 1, Duration::from_secs(30)).await.unwrap();
    let email = &got[0];
    assert_eq!(
        email["subject"],
        format!("Confirm your subscription to {topic}")
    );
    let text = email["text"].as_str().unwrap();
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/confirm?token="))
        .unwrap_or_else(|| panic!("no confirmation link in {text}"));
    let r = reqwest::get(link).await.unwrap();
    assert_eq!(r.status(), 200);
    sub
}

#[tokio::test]
async fn email_is_confirmed_delivered_over_starttls_and_unsubscribed_by_its_link() {
    let mail = Mailbox::start().await.unwrap();
    let ca = mail.ca_file();
    let url = mail.starttls_url();
    let stack = Stack::start_with(
        "mail",
        &[
            ("SLUICE_SMTP_URL", url.as_str()),
            ("SLUICE_SMTP_CA_FILE", ca.as_str()),
            ("SLUICE_SMTP_FROM", "notify@sluice.test"),
        ],
        false,
    )
    .await
    .unwrap();
    stack
        .put("/v1/topics/orders", &json!({"display_name": "Shop"}))
        .await;
    confirm_email(&stack, &mail, "orders", "email", "owner@example.com").await;
    confirm_email(&stack, &mail, "orders", "email-json", "robot@example.com").await;

    let id = publish(
        &stack,
        "orders",
        json!({"message": "Your order 42 shipped.", "subject": "Order shipped"}),
    )
    .await;
    let got = mail
        .wait_for("owner@example.com", 2, Duration::from_secs(30))
        .await
        .unwrap();
    let email = &got[1];
    assert_eq!(email["subject"], "Order shipped");
    assert_eq!(email["listener"], "starttls");
    assert_eq!(email["tls"], true);
    assert_eq!(email["auth_user"], "sluice");
    assert!(email["from"].as_str().unwrap().contains("Shop"), "{email}");
    assert!(email["from"]
        .as_str()
        .unwrap()
        .contains("notify@sluice.test"));
    let text = email["text"].as_str().unwrap();
    assert!(text.starts_with("Your order 42 shipped."), "{text}");
    let link = email["headers"]["List-Unsubscribe"]
        .as_str()
        .unwrap()
        .trim_matches(|c| c == '<' || c == '>')
        .to_string();
    assert!(text.contains(&link), "the link is in the text too");
    assert_eq!(
        email["headers"]["List-Unsubscribe-Post"],
        "List-Unsubscribe=One-Click"
    );

    let json_mail = mail
        .wait_for("robot@example.com", 2, Duration::from_secs(30))
        .await
        .unwrap();
    let n: Value = serde_json::from_str(json_mail[1]["text"].as_str().unwrap().trim()).unwrap();
    assert_eq!(n["Type"], "Notification");
    assert_eq!(n["MessageId"], id.as_str());
    assert_eq!(n["Message"], "Your order 42 shipped.");
    assert!(n["UnsubscribeURL"].as_str().is_some());

    // One-click unsubscribe, as a mail client does it.
    let r = reqwest::Client::new()
        .post(&link)
        .form(&[("List-Unsubscribe", "One-Click")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    publish(&stack, "orders", json!({"message": "second"})).await;
    mail.wait_for("robot@example.com", 3, Duration::from_secs(30))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        mail.messages(Some("owner@example.com"))
            .await
            .unwrap()
            .len(),
        2,
        "nothing after unsubscribing"
    );
}

#[tokio::test]
async fn an_smtp_outage_is_retried_until_delivered_or_dead_lettered() {
    let mut mail = Mailbox::start().await.unwrap();
    let ca = mail.ca_file();
    let url = mail.smtps_url();
    let stack = Stack::start_with(
        "mailout",
        &[
            ("SLUICE_SMTP_URL", url.as_str()),
            ("SLUICE_SMTP_CA_FILE", ca.as_str()),
            ("SLUICE_NOTIFIER_RETRY_BASE", "200ms"),
            ("SLUICE_NOTIFIER_RETRY_MAX_DELAY", "1s"),
        ],
        false,
    )
    .await
    .unwrap();
    stack.put("/v1/topics/patient", &json!({})).await;
    stack.put("/v1/topics/hasty", &json!({})).await;
    confirm_email(&stack, &mail, "patient", "email", "a@example.com").await;
    let (code, _, hasty) = stack
        .post(
            "/v1/topics/hasty/subscriptions",
            &json!({"protocol": "email", "endpoint": "b@example.com",
                    "delivery_policy": {"max_retries": 1}}),
        )
        .await;
    assert_eq!(code, 201, "{hasty}");
    let got = mail
        .wait_for("b@example.com", 1, Duration::from_secs(30))
        .await
        .unwrap();
    let link = got[0]["text"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .find(|w| w.contains("/confirm?token="))
        .unwrap()
        .to_string();
    assert_eq!(reqwest::get(&link).await.unwrap().status(), 200);
    assert_eq!(got[0]["listener"], "smtps");

    mail.stop().await;
    publish(
        &stack,
        "patient",
        json!({"message": "kept trying", "subject": "Retry"}),
    )
    .await;
    publish(&stack, "hasty", json!({"message": "gave up"})).await;
    // The subscription allowing one retry gives up and dead-letters.
    let deadline = Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let (_, page) = stack.get("/v1/dlq?limit=100").await;
        let items = page["entries"].as_array().cloned().unwrap_or_default();
        if let Some(d) = items
            .into_iter()
            .find(|d| d["subscription"] == hasty["subscription_id"])
        {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "no dead letter\n{}",
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dead["attempts"], 2);
    assert!(dead["reason"].as_str().unwrap().contains("SMTP"), "{dead}");
    // The other keeps retrying through the outage and delivers after it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    mail.resume().await.unwrap();
    let got = mail
        .wait_for("a@example.com", 2, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(got[1]["subject"], "Retry");
    assert!(got[1]["text"].as_str().unwrap().starts_with("kept trying"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        mail.messages(Some("b@example.com")).await.unwrap().len(),
        1,
        "the dead-lettered email was not sent after all"
    );
}
