//! Files end to end, against real MinIO (its bucket notifications in
//! JetStream), Temporal, NATS, DynamoDB Local and SMTP: an upload through
//! a presigned URL is validated, transformed, stored and its owner told;
//! invalid content and a step that always fails end in the DLQ with the
//! reason and are redriven; a notification delivered twice starts one
//! pipeline; file-ingest killed while uploads arrive loses none.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::Digest;
use sluice_e2e::Stack;
use sluice_testkit::Mailbox;

const OWNER_EMAIL: &str = "files-owner@example.com";

fn people_schema() -> Value {
    json!({
        "type": "object",
        "required": ["id", "name"],
        "properties": {"id": {"type": "integer", "minimum": 1}, "name": {"type": "string"}}
    })
}

/// Registers a file and uploads `body` to its URL with plain PUT.
async fn upload(
    stack: &Stack,
    name: &str,
    content_type: &str,
    schema: Option<Value>,
    body: Vec<u8>,
) -> String {
    let mut req = json!({"name": name, "content_type": content_type});
    if let Some(s) = schema {
        req["schema"] = s;
    }
    let (code, _, created) = stack.post("/v1/files", &req).await;
    assert_eq!(code, 201, "{created}");
    let url = created["upload_url"].as_str().unwrap();
    assert!(created["expires_at"].is_string());
    let put = reqwest::Client::new()
        .put(url)
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{:?}", put.text().await);
    created["file_id"].as_str().unwrap().to_string()
}

/// Reads file `id` until it exists and its status is one of `until`.
async fn file_until(stack: &Stack, id: &str, until: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (code, f) = stack.get(&format!("/v1/files/{id}")).await;
        assert!(code == 200 || code == 404, "{f}");
        if code == 200 && until.iter().any(|s| f["status"] == *s) {
            return f;
        }
        assert!(Instant::now() < deadline, "{f}\n{}", stack.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reads workflow `id` until it is no longer RUNNING.
async fn workflow_done(stack: &Stack, id: &str) -> Value {
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

async fn dlq_entries(stack: &Stack) -> Vec<Value> {
    let (code, page) = stack.get("/v1/dlq?limit=100").await;
    assert_eq!(code, 200, "{page}");
    page["entries"].as_array().unwrap().clone()
}

async fn pipelines(stack: &Stack) -> Vec<Value> {
    let (code, list) = stack
        .get("/v1/workflows?type=file-pipeline&limit=100")
        .await;
    assert_eq!(code, 200, "{list}");
    list["workflows"].as_array().unwrap().clone()
}

/// Empties and deletes a bucket.
async fn drop_bucket(s3: &aws_sdk_s3::Client, bucket: &str) {
    let listed = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
    for o in listed.contents() {
        s3.delete_object()
            .bucket(bucket)
            .key(o.key().unwrap())
            .send()
            .await
            .unwrap();
    }
    s3.delete_bucket().bucket(bucket).send().await.unwrap();
}

async fn read_object(s3: &aws_sdk_s3::Client, at: &str) -> String {
    let (bucket, key) = at.split_once('/').unwrap();
    let got = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    String::from_utf8(got.body.collect().await.unwrap().to_vec()).unwrap()
}

/// The owner (the admin key's principal) is told by email: subscribes
/// [`OWNER_EMAIL`] to the files topic, filtered on `owner`, and confirms.
async fn subscribe_owner(stack: &Stack, mail: &Mailbox) {
    let (code, _) = stack.put("/v1/topics/file-events", &json!({})).await;
    assert!(code == 200 || code == 201, "{code}");
    let (code, _, sub) = stack
        .post(
            "/v1/topics/file-events/subscriptions",
            &json!({"protocol": "email", "endpoint": OWNER_EMAIL, "filter_policy": {"owner": ["admin"]}}),
        )
        .await;
    assert_eq!(code, 201, "{sub}");
    let confirm = mail
        .wait_for(OWNER_EMAIL, 1, Duration::from_secs(30))
        .await
        .unwrap();
    let link = confirm[0]["text"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .find(|w| w.contains("/confirm?token="))
        .unwrap()
        .to_string();
    assert_eq!(reqwest::get(&link).await.unwrap().status(), 200);
}

async fn emails_with(mail: &Mailbox, subject: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: Vec<Value> = mail
            .messages(Some(OWNER_EMAIL))
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
        assert!(Instant::now() < deadline, "{subject}: {got:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn uploads_are_processed_invalid_and_failing_files_are_dead_lettered_and_redriven() {
    let mail = Mailbox::start().await.unwrap();
    let (smtp, ca) = (mail.starttls_url(), mail.ca_file());
    let stack = Stack::start_with_files(
        "files",
        &[
            ("SLUICE_SMTP_URL", smtp.as_str()),
            ("SLUICE_SMTP_CA_FILE", ca.as_str()),
            ("SLUICE_FILES_RETRY_INITIAL", "200ms"),
        ],
        false,
    )
    .await
    .unwrap();
    subscribe_owner(&stack, &mail).await;
    let s3 = stack.s3();

    // 1. A valid CSV: processed, with what the bytes say.
    let csv = b"id,name\n1,ann\n2,\"bob, jr\"\n3,cy\n".to_vec();
    let good = upload(
        &stack,
        "people.csv",
        "text/csv",
        Some(people_schema()),
        csv.clone(),
    )
    .await;
    let f = file_until(&stack, &good, &["processed", "dead_lettered", "failed"]).await;
    assert_eq!(f["status"], "processed", "{f}\n{}", stack.logs());
    assert_eq!(f["size"], csv.len());
    assert_eq!(f["sha256"], hex_sha256(&csv));
    assert_eq!(f["content_type"], "text/csv");
    assert_eq!(f["rows"], 3);
    assert_eq!(f["owner"], "admin");
    let workflow_id = f["workflow_id"].as_str().unwrap().to_string();
    let w = workflow_done(&stack, &workflow_id).await;
    assert_eq!(w["status"], "COMPLETED", "{w}");
    assert_eq!(w["result"]["rows"], 3);
    let copy = read_object(&s3, f["processed_object"].as_str().unwrap()).await;
    let rows: Vec<Value> = copy
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows[1], json!({"id": 2, "name": "bob, jr"}), "{copy}");
    let told = emails_with(&mail, "File processed: people.csv", 1).await;
    assert!(
        told[0]["text"].as_str().unwrap().contains("3 rows"),
        "{told:?}"
    );

    // 2. A row breaking the schema: dead-lettered at once with the row.
    let bad = upload(
        &stack,
        "bad.csv",
        "text/csv",
        Some(people_schema()),
        b"id,name\n1,ann\n0,zero\n".to_vec(),
    )
    .await;
    let f = file_until(&stack, &bad, &["dead_lettered", "processed"]).await;
    assert_eq!(f["status"], "dead_lettered", "{f}");
    assert_eq!(f["error"]["step"], "validate");
    assert_eq!(f["error"]["row"], 2);
    let bad_workflow = f["workflow_id"].as_str().unwrap().to_string();
    let dl = dlq_entries(&stack)
        .await
        .into_iter()
        .find(|e| e["file_id"] == bad.as_str())
        .expect("the invalid file's dead letter");
    assert_eq!(dl["step"], "validate");
    assert_eq!(dl["id"], bad_workflow.as_str());
    assert!(dl["reason"].as_str().unwrap().contains("row 2"), "{dl}");
    assert_eq!(
        dl["payload"]["Records"][0]["s3"]["bucket"]["name"],
        "uploads"
    );
    let w = workflow_done(&stack, &bad_workflow).await;
    assert_eq!(w["status"], "FAILED", "{w}");
    emails_with(&mail, "File dead lettered: bad.csv", 1).await;

    // 3. The same notification delivered again starts no second pipeline.
    let before = pipelines(&stack).await.len();
    stack
        .bus
        .publish(
            &sluice_bus::subjects::files("uploads"),
            "a-repeated-notification",
            serde_json::to_vec(&dl["payload"]).unwrap().into(),
            Default::default(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        pipelines(&stack).await.len(),
        before,
        "a repeat started a pipeline"
    );
    assert_eq!(
        stack.stream_messages("FILES").await,
        0,
        "the repeat was consumed"
    );

    // 4. A step that always fails (the processed bucket is gone): exactly
    // three attempts, then the DLQ with the reason; redriven once the
    // bucket is back, the file is processed.
    drop_bucket(&s3, "processed").await;
    let doomed = upload(&stack, "later.csv", "text/csv", None, csv.clone()).await;
    let f = file_until(&stack, &doomed, &["dead_lettered", "processed"]).await;
    assert_eq!(f["status"], "dead_lettered", "{f}");
    assert_eq!(f["error"]["step"], "transform");
    assert_eq!(f["error"]["attempts"], 3);
    assert!(
        f["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("NoSuchBucket"),
        "{f}"
    );
    let failed_workflow = f["workflow_id"].as_str().unwrap().to_string();
    let metrics = stack.metrics(stack.file_ingest_port).await;
    let attempts = metrics
        .lines()
        .find(|l| l.starts_with("sluice_files_step_failures{") && l.contains("step=\"transform\""))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(attempts.ends_with(" 3"), "{attempts}");
    let dl = dlq_entries(&stack)
        .await
        .into_iter()
        .find(|e| e["file_id"] == doomed.as_str())
        .expect("the failing file's dead letter");
    assert_eq!(dl["attempts"], 3);
    assert_eq!(dl["terminal"], false);
    emails_with(&mail, "File dead lettered: later.csv", 1).await;
    s3.create_bucket().bucket("processed").send().await.unwrap();
    let (code, _, report) = stack
        .post("/v1/dlq/redrive", &json!({"ids": [failed_workflow]}))
        .await;
    assert_eq!(code, 200, "{report}");
    assert_eq!(report["redriven"], json!([failed_workflow]));
    let deadline = Instant::now() + Duration::from_secs(60);
    let f = loop {
        let f = file_until(&stack, &doomed, &["processed", "dead_lettered"]).await;
        if f["status"] == "processed" {
            break f;
        }
        assert!(Instant::now() < deadline, "{f}\n{}", stack.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let redriven_workflow = f["workflow_id"].as_str().unwrap();
    assert_ne!(redriven_workflow, failed_workflow);
    assert!(
        redriven_workflow.starts_with(&failed_workflow),
        "{redriven_workflow}"
    );
    assert_eq!(f["error"], Value::Null);
    assert!(
        !dlq_entries(&stack)
            .await
            .iter()
            .any(|e| e["file_id"] == doomed.as_str()),
        "a redriven dead letter leaves the DLQ"
    );
    let redriven_workflow = redriven_workflow.to_string();
    workflow_done(&stack, &redriven_workflow).await;
    stack
        .replay(
            "file-pipeline",
            &[
                ("processed", &workflow_id),
                ("invalid", &bad_workflow),
                ("retries-exhausted", &failed_workflow),
                ("redriven", &redriven_workflow),
            ],
        )
        .await;
}

fn hex_sha256(data: &[u8]) -> String {
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn bad_input_is_refused_or_dead_lettered_and_file_ingest_loses_no_upload_when_killed() {
    let mut stack = Stack::start_with_files("filesbad", &[], false)
        .await
        .unwrap();
    for (body, field) in [
        (
            json!({"name": "a/b.csv", "content_type": "text/csv"}),
            "/name",
        ),
        (json!({"name": "", "content_type": "text/csv"}), "/name"),
        (
            json!({"name": "a.csv", "content_type": "csv"}),
            "/content_type",
        ),
        (
            json!({"name": "a.png", "content_type": "image/png", "schema": {"type": "object"}}),
            "/schema",
        ),
        (
            json!({"name": "a.csv", "content_type": "text/csv", "schema": {"type": 12}}),
            "/schema",
        ),
        (
            json!({"name": "a.csv", "content_type": "text/csv", "schema": []}),
            "/schema",
        ),
    ] {
        let (code, _, problem) = stack.post("/v1/files", &body).await;
        assert!(code == 400 || code == 422, "{body}: {code} {problem}");
        assert!(problem.to_string().contains(field), "{body}: {problem}");
    }
    let (code, _, problem) = stack.post("/v1/files", &json!({"name": "x"})).await;
    assert!(code == 400 || code == 422, "{problem}");
    let (code, _) = stack.get("/v1/files/no-such-file").await;
    assert_eq!(code, 404);
    let (code, _, problem) = stack
        .post("/v1/workflows/file-pipeline", &json!({"file_id": "x"}))
        .await;
    assert_eq!(code, 400, "{problem}");

    // Bytes that contradict the declared type: dead-lettered, not a crash.
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01".to_vec();
    let liar = upload(&stack, "table.csv", "text/csv", None, png).await;
    let f = file_until(&stack, &liar, &["dead_lettered", "processed"]).await;
    assert_eq!(f["status"], "dead_lettered", "{f}");
    assert_eq!(f["content_type"], Value::Null);
    assert!(
        f["error"]["reason"].as_str().unwrap().contains("image/png"),
        "{f}"
    );
    // A malformed JSON-lines file names its row.
    let broken = upload(
        &stack,
        "e.jsonl",
        "application/x-ndjson",
        None,
        b"{\"a\":1}\n{\"a\":\n".to_vec(),
    )
    .await;
    let f = file_until(&stack, &broken, &["dead_lettered", "processed"]).await;
    assert_eq!(
        (f["error"]["step"].clone(), f["error"]["row"].clone()),
        (json!("validate"), json!(2)),
        "{f}"
    );
    // A row longer than allowed stops the reading at that row.
    let mut long = b"a,b\n1,2\n".to_vec();
    long.extend(std::iter::repeat_n(b'x', 2 << 20));
    long.extend_from_slice(b",3\n");
    let huge = upload(&stack, "long.csv", "text/csv", None, long).await;
    let f = file_until(&stack, &huge, &["dead_lettered", "processed"]).await;
    assert!(
        f["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("longer than"),
        "{f}"
    );
    assert_eq!(f["error"]["row"], 2);

    // An object uploaded straight to the bucket (no POST /v1/files) is
    // processed too.
    let before = pipelines(&stack).await.len();
    let s3 = stack.s3();
    s3.put_object()
        .bucket("uploads")
        .key("direct/events.jsonl")
        .body(b"{\"n\":1}\n{\"n\":2}\n".to_vec().into())
        .send()
        .await
        .unwrap();

    let direct = sluice_model::ids::derive_id("uploads/direct/events.jsonl", "file");
    let f = file_until(&stack, &direct, &["processed", "dead_lettered"]).await;
    assert_eq!(
        (f["status"].clone(), f["rows"].clone()),
        (json!("processed"), json!(2)),
        "{f}"
    );
    assert_eq!(f["content_type"], "application/x-ndjson");

    // file-ingest killed while uploads arrive: every object processed, once.
    let mut ids = Vec::new();
    ids.push(upload(&stack, "k0.csv", "text/csv", None, b"a\n1\n".to_vec()).await);
    stack.kill_file_ingest().await;
    for n in 1..6 {
        ids.push(
            upload(
                &stack,
                &format!("k{n}.csv"),
                "text/csv",
                None,
                format!("a\n{n}\n").into_bytes(),
            )
            .await,
        );
    }
    stack.start_file_ingest().await.unwrap();
    for id in &ids {
        let f = file_until(&stack, id, &["processed", "dead_lettered"]).await;
        assert_eq!(f["status"], "processed", "{f}");
        assert_eq!(f["rows"], 1);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = pipelines(&stack).await;
        if all.len() >= before + 1 + ids.len() && all.iter().all(|w| w["status"] != "RUNNING") {
            break;
        }
        assert!(Instant::now() < deadline, "{all:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        pipelines(&stack).await.len(),
        before + ids.len() + 1,
        "one pipeline per object"
    );
}

/// file-ingest's peak resident memory (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test]
async fn a_file_much_larger_than_memory_streams_through() {
    // 160 MiB of CSV through validate and transform: file-ingest holds a
    // row and a part at a time, so its peak resident set grows by far less
    // than the file (a debug build idles near 60 MiB; `make bench` measures
    // the release build's total for 1 GiB against the 64 MiB budget).
    let stack = Stack::start_with_files("filesbig", &[], false)
        .await
        .unwrap();
    let pid = stack.file_ingest.as_ref().unwrap().pid().unwrap();
    let row = format!("{},{}\n", "7".repeat(9), "x".repeat(1014));
    let rows = (160usize << 20) / row.len();
    let mut body = Vec::with_capacity(rows * row.len() + 16);
    body.extend_from_slice(b"n,text\n");
    for _ in 0..rows {
        body.extend_from_slice(row.as_bytes());
    }
    let size = body.len();
    let before = peak_rss(pid);
    let id = upload(&stack, "big.csv", "text/csv", None, body).await;
    let f = file_until(&stack, &id, &["processed", "dead_lettered"]).await;
    assert_eq!(f["status"], "processed", "{f}");
    assert_eq!(f["size"], size);
    assert_eq!(f["rows"], rows);
    let grown = peak_rss(pid).saturating_sub(before);
    assert!(
        grown < 32 << 20,
        "file-ingest's peak RSS grew by {} MiB for a {} MiB file",
        grown >> 20,
        size >> 20
    );
}

#[tokio::test]
async fn pipelines_survive_the_orchestrator_and_temporal_being_killed() {
    let mail = Mailbox::start().await.unwrap();
    let (smtp, ca) = (mail.starttls_url(), mail.ca_file());
    let mut stack = Stack::start_with_files(
        "fileskill",
        &[
            ("SLUICE_SMTP_URL", smtp.as_str()),
            ("SLUICE_SMTP_CA_FILE", ca.as_str()),
        ],
        false,
    )
    .await
    .unwrap();
    subscribe_owner(&stack, &mail).await;
    let mut ids = Vec::new();
    // The orchestrator SIGKILLed while pipelines run, then started again.
    for n in 0..4 {
        ids.push(
            upload(
                &stack,
                &format!("o{n}.csv"),
                "text/csv",
                None,
                format!("a,b\n{n},x\n").into_bytes(),
            )
            .await,
        );
    }
    stack.kill_orchestrator().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stack.start_orchestrator().await.unwrap();
    // Temporal itself SIGKILLed while uploads arrive, then started again
    // on its history.
    for n in 4..8 {
        ids.push(
            upload(
                &stack,
                &format!("o{n}.csv"),
                "text/csv",
                None,
                format!("a,b\n{n},x\n").into_bytes(),
            )
            .await,
        );
        if n == 5 {
            let temporal = stack.temporal.as_mut().unwrap();
            temporal.stop().await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            temporal.resume().await.unwrap();
        }
    }
    for id in &ids {
        let f = file_until(&stack, id, &["processed", "dead_lettered", "failed"]).await;
        assert_eq!(f["status"], "processed", "{f}\n{}", stack.logs());
        assert_eq!(f["rows"], 1);
    }
    // Each file's pipeline ran once and each owner notice went out once.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = pipelines(&stack).await;
        if all.len() == ids.len() && all.iter().all(|w| w["status"] == "COMPLETED") {
            break;
        }
        assert!(all.len() <= ids.len(), "{all:?}");
        assert!(Instant::now() < deadline, "{all:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    emails_with(&mail, "File processed:", ids.len()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let told = emails_with(&mail, "File processed:", ids.len()).await;
    assert_eq!(told.len(), ids.len(), "a notice went out twice: {told:?}");
}
