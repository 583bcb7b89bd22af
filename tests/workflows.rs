//! Workflows end to end, against a real Temporal dev server, NATS,
//! DynamoDB Local and a real SMTP server: the tasks app's approval
//! workflow started by its rule and over REST, decided from the emailed
//! link and by signal, escalated and rejected when nobody answers, and the
//! Workflows API's errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice_e2e::Stack;
use sluice_testkit::Mailbox;

const FIRST: &str = "first@example.com";
const SECOND: &str = "second@example.com";

/// Subscribes `to` to the approvals topic, filtered on its own address,
/// and confirms it from the confirmation email.
async fn subscribe_approver(stack: &Stack, mail: &Mailbox, to: &str) {
    let (code, _, sub) = stack
        .post(
            "/v1/topics/task-approvals/subscriptions",
            &json!({"protocol": "email", "endpoint": to, "filter_policy": {"approver": [to]}}),
        )
        .await;
    assert_eq!(code, 201, "{sub}");
    let got = mail.wait_for(to, 1, Duration::from_secs(30)).await.unwrap();
    let text = got[0]["text"].as_str().unwrap();
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/confirm?token="))
        .unwrap_or_else(|| panic!("no confirmation link in {text}"));
    assert_eq!(reqwest::get(link).await.unwrap().status(), 200);
}

/// The approval emails `to` received (not the confirmation).
async fn approval_emails(mail: &Mailbox, to: &str, n: usize) -> Vec<Value> {
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
                    .is_some_and(|s| s.starts_with("Approval needed"))
            })
            .collect();
        if got.len() >= n {
            return got;
        }
        assert!(Instant::now() < deadline, "{to}: {got:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn link(email: &Value, approve: bool) -> String {
    let text = email["text"].as_str().unwrap();
    text.split_whitespace()
        .find(|w| w.contains(&format!("/decision?approve={approve}&token=")))
        .unwrap_or_else(|| panic!("no link in {text}"))
        .to_string()
}

async fn new_task(stack: &Stack, title: &str, priority: &str) -> String {
    let (code, _, t) = stack
        .post(
            "/v1/tasks",
            &json!({"title": title, "priority": priority, "userId": "owner@example.com"}),
        )
        .await;
    assert_eq!(code, 201, "{t}");
    t["taskId"].as_str().unwrap().to_string()
}

/// Reads workflow `id` until it is no longer RUNNING.
async fn finished(stack: &Stack, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, w) = stack.get(&format!("/v1/workflows/{id}")).await;
        assert_eq!(code, 200, "{w}");
        if w["status"] != "RUNNING" {
            return w;
        }
        assert!(Instant::now() < deadline, "{w}\n{}", stack.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn task_status(stack: &Stack, id: &str) -> String {
    let (code, t) = stack.get(&format!("/v1/tasks/{id}")).await;
    assert_eq!(code, 200, "{t}");
    t["status"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn approvals_are_decided_by_link_or_signal_or_escalated_then_rejected() {
    let mail = Mailbox::start().await.unwrap();
    let (smtp, ca) = (mail.starttls_url(), mail.ca_file());
    let stack = Stack::start_with_workflows(
        "approval",
        &[
            ("SLUICE_SMTP_URL", smtp.as_str()),
            ("SLUICE_SMTP_CA_FILE", ca.as_str()),
            ("SLUICE_APPROVAL_TIMEOUT", "3s"),
            ("SLUICE_APPROVAL_APPROVERS", &format!("{FIRST},{SECOND}")),
        ],
        false,
    )
    .await
    .unwrap();
    stack.put("/v1/topics/task-approvals", &json!({})).await;
    subscribe_approver(&stack, &mail, FIRST).await;
    subscribe_approver(&stack, &mail, SECOND).await;
    let (code, rule) = stack
        .put(
            "/v1/buses/default/rules/task-approval",
            &json!({"event_pattern": {"source": ["sluice.tasks"], "detail-type": ["TaskCreated"],
                                      "detail": {"priority": ["high"]}},
                    "targets": [{"type": "workflow", "id": "approval", "workflow_type": "approval"}]}),
        )
        .await;
    assert!(code == 200 || code == 201, "{rule}");

    // 1. A high-priority task starts an approval through its rule; the
    //    first approver's link approves it, and the task is in progress.
    let t1 = new_task(&stack, "Ship the release", "high").await;
    let email = approval_emails(&mail, FIRST, 1).await.remove(0);
    assert_eq!(email["subject"], "Approval needed: Ship the release");
    let approve = link(&email, true);
    let page = reqwest::get(&approve).await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<form method=\"post\""), "{html}");
    let id = approve
        .split("/v1/workflows/")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap()
        .to_string();
    assert_eq!(
        stack.get(&format!("/v1/workflows/{id}")).await.1["status"],
        "RUNNING",
        "opening the link decides nothing"
    );
    let forged = approve.replace("token=", "token=x");
    let r = reqwest::Client::new().post(&forged).send().await.unwrap();
    assert_eq!(r.status(), 404, "a wrong token");
    let r = reqwest::Client::new().post(&approve).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let w = finished(&stack, &id).await;
    assert_eq!(w["status"], "COMPLETED", "{w}");
    assert_eq!(w["workflow_type"], "approval");
    assert_eq!(w["result"]["decision"], "approved", "{w}");
    assert_eq!(w["result"]["by"], "link");
    assert_eq!(w["result"]["rounds"], 1);
    assert_eq!(task_status(&stack, &t1).await, "in_progress");
    let r = reqwest::Client::new().post(&approve).send().await.unwrap();
    assert_eq!(r.status(), 409, "decided already");

    // 2. Started over REST (once per Idempotency-Key), rejected by signal.
    let t2 = new_task(&stack, "Buy a boat", "low").await;
    let start = |key: &'static str| {
        let stack = &stack;
        let t2 = t2.clone();
        async move {
            let r = stack
                .req(reqwest::Method::POST, "/v1/workflows/approval")
                .header("idempotency-key", key)
                .json(&json!({"taskId": t2, "title": "Buy a boat"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            r.json::<Value>().await.unwrap()["workflow_id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let id2 = start("boat-1").await;
    assert_eq!(
        start("boat-1").await,
        id2,
        "the same key, the same workflow"
    );
    let (code, _, p) = stack
        .post(&format!("/v1/workflows/{id2}/signals/nudge"), &json!({}))
        .await;
    assert_eq!(code, 400, "an approval takes no such signal: {p}");
    let (code, _, p) = stack
        .post(
            &format!("/v1/workflows/{id2}/signals/decision"),
            &json!({"approve": "maybe"}),
        )
        .await;
    assert_eq!(code, 400, "{p}");
    let (code, _, p) = stack
        .post(
            &format!("/v1/workflows/{id2}/signals/decision"),
            &json!({"approve": false, "by": "ops"}),
        )
        .await;
    assert_eq!(code, 202, "{p}");
    let w = finished(&stack, &id2).await;
    assert_eq!(w["result"]["decision"], "rejected", "{w}");
    assert_eq!(w["result"]["by"], "ops");
    assert_eq!(task_status(&stack, &t2).await, "rejected");
    let (code, _, _) = stack
        .post(
            &format!("/v1/workflows/{id2}/signals/decision"),
            &json!({"approve": true}),
        )
        .await;
    assert_eq!(code, 409, "a closed workflow takes no signal");

    // 3. Nobody answers: the second approver is asked, then it is rejected.
    let t3 = new_task(&stack, "Repaint the office", "low").await;
    let (code, _, started) = stack
        .post(
            "/v1/workflows/approval",
            &json!({"taskId": t3, "title": "Repaint the office"}),
        )
        .await;
    assert_eq!(code, 202, "{started}");
    let id3 = started["workflow_id"].as_str().unwrap().to_string();
    let escalated = approval_emails(&mail, SECOND, 1).await;
    assert_eq!(
        escalated[0]["subject"],
        "Approval needed: Repaint the office"
    );
    let w = finished(&stack, &id3).await;
    assert_eq!(w["result"]["decision"], "rejected", "{w}");
    assert_eq!(w["result"]["by"], "timeout");
    assert_eq!(w["result"]["rounds"], 2);
    assert_eq!(task_status(&stack, &t3).await, "rejected");

    // 4. Cancelled while waiting.
    let t4 = new_task(&stack, "Move the servers", "low").await;
    let (_, _, started) = stack
        .post("/v1/workflows/approval", &json!({"taskId": t4}))
        .await;
    let id4 = started["workflow_id"].as_str().unwrap().to_string();
    let (code, _, p) = stack
        .post(&format!("/v1/workflows/{id4}/cancel"), &json!({}))
        .await;
    assert_eq!(code, 202, "{p}");
    assert_eq!(finished(&stack, &id4).await["status"], "CANCELED");
    assert_eq!(
        task_status(&stack, &t4).await,
        "pending",
        "a cancelled approval decides nothing"
    );

    // Listing by type and status.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, list) = stack
            .get("/v1/workflows?type=approval&status=COMPLETED")
            .await;
        assert_eq!(code, 200, "{list}");
        let ids: Vec<&str> = list["workflows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["workflow_id"].as_str().unwrap())
            .collect();
        if [&id, &id2, &id3].iter().all(|i| ids.contains(&i.as_str())) {
            assert!(!ids.contains(&id4.as_str()), "{ids:?}");
            break;
        }
        assert!(Instant::now() < deadline, "{list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Each history replays against the workflow code as it is (what the
    // checked-in histories of services/orchestrator/tests do for older
    // code); `SLUICE_RECORD_HISTORIES=<dir>` keeps them as new fixtures.
    stack
        .replay(
            "approval",
            &[
                ("link", &id),
                ("signal", &id2),
                ("timeout", &id3),
                ("cancel", &id4),
            ],
        )
        .await;

    // Bad requests are 4xx naming what is wrong, never a crash.
    let (code, _, p) = stack.post("/v1/workflows/nonesuch", &json!({})).await;
    assert_eq!(code, 404, "{p}");
    let (code, _, p) = stack
        .post("/v1/workflows/approval", &json!({"title": "no task"}))
        .await;
    assert_eq!(code, 400, "{p}");
    assert_eq!(p["pointer"], "/input/taskId");
    assert_eq!(stack.get("/v1/workflows/no-such-workflow").await.0, 404);
    assert_eq!(stack.get("/v1/workflows?status=SLEEPING").await.0, 400);
}
