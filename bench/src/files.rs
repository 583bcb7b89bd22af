//! The files benchmark, in one run against the same servers (NATS,
//! DynamoDB Local, Temporal's dev server, MinIO) and release builds of the
//! orchestrator, file-ingest and the gateway:
//!
//! 1. the object store's raw GET throughput: one 1 GiB CSV object read
//!    whole with the S3 SDK;
//! 2. the file pipeline on the same bytes: from the end of the upload to
//!    the file's `processed` status (MinIO's notification, file-ingest, the
//!    workflow: validate streams the object once, transform streams it
//!    again and writes its JSON-lines copy), as MB/s of the object, with
//!    file-ingest's resident set idle and at its peak;
//! 3. pipelines of tiny files (trivial activities): one at a time, the
//!    upload → processed latency p50/p99 (`SEQUENTIAL` files); then a burst
//!    of `SMALL_FILES` uploads, 16 in flight, and the pipelines completed
//!    per second until every one is processed.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use hdrhistogram::Histogram;
use sluice_config::{Env, StoreConfig};
use sluice_model::file::FileStatus;
use sluice_store::Store;
use sluice_testkit::{
    free_port, start_service_from, unique_prefix, ObjectStore, Servers, Temporal,
};

use crate::{ms, rss_mib, Args, Round};

const OBJECT_MIB: usize = 1024;
const PART_MIB: usize = 16;
const SMALL_FILES: usize = 200;
const SEQUENTIAL: usize = 30;

fn peak_mib(pid: Option<u32>) -> f64 {
    let Some(pid) = pid else { return 0.0 };
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// One part of the CSV: rows of about 1 KiB.
fn part(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(PART_MIB << 20);
    if n == 0 {
        out.extend_from_slice(b"id,name,score\n");
    }
    let mut i = n * 20_000;
    while out.len() + 1100 < PART_MIB << 20 {
        out.extend_from_slice(format!("{i},{},{}\n", "n".repeat(1000), i % 97).as_bytes());
        i += 1;
    }
    out
}

/// Uploads the 1 GiB CSV to `bucket/key` in parts; its size.
async fn upload_big(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<u64> {
    let id = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await?
        .upload_id
        .context("an upload id")?;
    let mut parts = Vec::new();
    let mut size = 0u64;
    for n in 0..OBJECT_MIB / PART_MIB {
        let data = part(n);
        size += data.len() as u64;
        let number = i32::try_from(n + 1)?;
        let done = s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(&id)
            .part_number(number)
            .body(ByteStream::from(data))
            .send()
            .await?;
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(done.e_tag)
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await?;
    Ok(size)
}

async fn register(http: &reqwest::Client, gateway: &str, name: &str) -> Result<(String, String)> {
    let created: serde_json::Value = http
        .post(format!("{gateway}/v1/files"))
        .header("x-api-key", "bench")
        .json(&serde_json::json!({"name": name, "content_type": "text/csv"}))
        .send()
        .await?
        .json()
        .await?;
    let id = created["file_id"]
        .as_str()
        .context("a file id")?
        .to_string();
    let url = created["upload_url"]
        .as_str()
        .context("an upload URL")?
        .to_string();
    Ok((id, url))
}

async fn wait_processed(store: &Store, id: &str, limit: Duration) -> Result<Instant> {
    let until = Instant::now() + limit;
    loop {
        if let Some(f) = store.file(id).await? {
            match f.status {
                FileStatus::Processed => return Ok(Instant::now()),
                FileStatus::Failed | FileStatus::DeadLettered => {
                    bail!("file {id} ended {:?}: {:?}", f.status, f.error)
                }
                _ => {}
            }
        }
        if Instant::now() > until {
            bail!("file {id} not processed within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One round.
pub async fn run(args: &Args, bin: &Path) -> Result<Round> {
    let servers = Servers::start_with(args.fsync_always).await?;
    let temporal = Temporal::start(servers.dir.path()).await?;
    let prefix = unique_prefix("files");
    let subject =
        sluice_bus::streams::Names::new(&prefix).subject(&sluice_bus::subjects::files("uploads"));
    let objects = ObjectStore::start(servers.dir.path(), &servers.nats.url(), &subject).await?;
    let (gateway_port, orchestrator_port, file_ingest_port) =
        (free_port(), free_port(), free_port());
    let orchestrator_grpc = free_port();
    let mut env = servers.env(&prefix);
    env.extend(objects.env());
    env.extend([
        (
            "SLUICE_TEMPORAL_URL".into(),
            format!("http://{}", temporal.address()),
        ),
        ("SLUICE_TEMPORAL_TASK_QUEUE".into(), prefix.clone()),
        (
            "SLUICE_GATEWAY_LISTEN".into(),
            format!("127.0.0.1:{gateway_port}"),
        ),
        (
            "SLUICE_ORCHESTRATOR_LISTEN".into(),
            format!("127.0.0.1:{orchestrator_port}"),
        ),
        (
            "SLUICE_ORCHESTRATOR_GRPC_LISTEN".into(),
            format!("127.0.0.1:{orchestrator_grpc}"),
        ),
        (
            "SLUICE_ORCHESTRATOR_URL".into(),
            format!("http://127.0.0.1:{orchestrator_grpc}"),
        ),
        (
            "SLUICE_FILE_INGEST_LISTEN".into(),
            format!("127.0.0.1:{file_ingest_port}"),
        ),
        ("SLUICE_FILES_BUCKET".into(), "uploads".into()),
        (
            "SLUICE_GATEWAY_API_KEYS".into(),
            r#"[{"principal":"bench","key":"bench","scopes":["*"]}]"#.into(),
        ),
        ("SLUICE_GATEWAY_RATE".into(), "1000000".into()),
        ("SLUICE_GATEWAY_BURST".into(), "1000000".into()),
        ("SLUICE_LOG".into(), "warn".into()),
    ]);
    let dir = servers.dir.path();
    let _orchestrator = start_service_from(
        bin,
        "sluice-orchestrator",
        &env,
        orchestrator_port,
        dir.join("orchestrator.log"),
    )
    .await
    .context("starting the orchestrator")?;
    let file_ingest = start_service_from(
        bin,
        "sluice-file-ingest",
        &env,
        file_ingest_port,
        dir.join("file-ingest.log"),
    )
    .await
    .context("starting file-ingest")?;
    let _gateway = start_service_from(
        bin,
        "sluice-gateway",
        &env,
        gateway_port,
        dir.join("gateway.log"),
    )
    .await
    .context("starting the gateway")?;
    let config_env = Env::from_pairs(env.clone());
    let store = Store::connect(&StoreConfig::from_env(&config_env)?).await;
    let s3 = sluice_files::FilesConfig::from_env(&config_env)?.client();
    let http = reqwest::Client::new();
    let gateway = format!("http://127.0.0.1:{gateway_port}");
    // file-ingest creates the buckets; wait for them.
    let until = Instant::now() + Duration::from_secs(30);
    while s3.head_bucket().bucket("processed").send().await.is_err() {
        if Instant::now() > until {
            bail!("file-ingest did not create the buckets");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 1. The store's raw GET of 1 GiB (a bucket without notifications).
    s3.create_bucket().bucket("raw").send().await?;
    let size = upload_big(&s3, "raw", "big.csv").await?;
    let t = Instant::now();
    let mut body = s3
        .get_object()
        .bucket("raw")
        .key("big.csv")
        .send()
        .await?
        .body;
    let mut read = 0u64;
    while let Some(chunk) = body.try_next().await? {
        read += chunk.len() as u64;
    }
    let raw_s = t.elapsed().as_secs_f64();
    anyhow::ensure!(read == size, "read {read} of {size} bytes");
    let mb = size as f64 / 1e6;

    // 2. The same bytes through the pipeline.
    let idle = rss_mib(file_ingest.pid());
    let (id, _) = register(&http, &gateway, "big.csv").await?;
    let key = format!("{id}/big.csv");
    upload_big(&s3, "uploads", &key).await?;
    let uploaded = Instant::now();
    let done = wait_processed(&store, &id, Duration::from_secs(1800)).await?;
    let pipeline_s = done.duration_since(uploaded).as_secs_f64();
    let peak = peak_mib(file_ingest.pid());
    let record = store.file(&id).await?.context("the big file")?;

    // 3. Tiny files: one at a time (latency), then a burst (throughput).
    let mut latency = Histogram::<u64>::new(3)?;
    let mut workflow = Histogram::<u64>::new(3)?;
    for n in 0..SEQUENTIAL {
        let (id, url) = register(&http, &gateway, &format!("l{n}.csv")).await?;
        http.put(url)
            .body(format!("a,b\n{n},x\n"))
            .send()
            .await?
            .error_for_status()?;
        let at = Instant::now();
        let done = wait_processed(&store, &id, Duration::from_secs(60)).await?;
        latency
            .record(done.duration_since(at).as_micros() as u64)
            .ok();
        // The workflow alone: Temporal's start and close times.
        let wf = store
            .file(&id)
            .await?
            .and_then(|f| f.workflow_id)
            .context("a workflow id")?;
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let w: serde_json::Value = http
                .get(format!("{gateway}/v1/workflows/{wf}"))
                .header("x-api-key", "bench")
                .send()
                .await?
                .json()
                .await?;
            if w["status"] == "COMPLETED" {
                let t = |k: &str| {
                    time::OffsetDateTime::parse(
                        w[k].as_str().unwrap_or_default(),
                        &time::format_description::well_known::Rfc3339,
                    )
                };
                let took = t("closed_at")? - t("started_at")?;
                workflow
                    .record(u64::try_from(took.whole_microseconds()).unwrap_or(0))
                    .ok();
                break;
            }
            if Instant::now() > until {
                bail!("workflow {wf} did not complete: {w}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    use futures::StreamExt as _;
    let started = Instant::now();
    let ids: Vec<String> = futures::stream::iter(0..SMALL_FILES)
        .map(|n| {
            let (http, gateway) = (http.clone(), gateway.clone());
            async move {
                let (id, url) = register(&http, &gateway, &format!("s{n}.csv")).await?;
                http.put(url)
                    .body(format!("a,b\n{n},x\n"))
                    .send()
                    .await?
                    .error_for_status()?;
                Ok::<_, anyhow::Error>(id)
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    for id in &ids {
        wait_processed(&store, id, Duration::from_secs(600)).await?;
    }
    let small_s = started.elapsed().as_secs_f64();
    let rate = SMALL_FILES as f64 / small_s;

    let report = format!(
        "# sluice files benchmark\n\n\
## 1 GiB CSV ({mb:.0} MB, {} rows)\n\n\
| | seconds | MB/s |\n|---|---|---|\n\
| object store raw GET (S3 SDK, whole object) | {raw_s:.2} | {:.0} |\n\
| file pipeline, upload complete → processed (validate + transform + store) | {pipeline_s:.2} | {:.0} |\n\n\
file-ingest resident set: {idle:.1} MiB idle, {peak:.1} MiB at its peak (VmHWM).\n\n\
## Tiny files (trivial activities; file-ingest runs 4 steps at once, the default)\n\n\
one at a time ({SEQUENTIAL} files): workflow start → completed (Temporal's times) p50 {:.0} ms, p99 {:.0} ms; \
upload → processed p50 {:.0} ms, p99 {:.0} ms (MinIO sends notifications from its durable queue, \
which it scans every 3 s).\n\n\
a burst of {SMALL_FILES} uploads, 16 in flight: {rate:.1} pipelines completed per second.\n",
        record.rows.unwrap_or(0),
        mb / raw_s,
        mb / pipeline_s,
        ms(&workflow, 0.5),
        ms(&workflow, 0.99),
        ms(&latency, 0.5),
        ms(&latency, 0.99),
    );
    println!("{report}");
    let figures = vec![
        ("raw GET MB/s".into(), mb / raw_s),
        ("pipeline MB/s (1 GiB CSV)".into(), mb / pipeline_s),
        ("pipeline ÷ raw GET".into(), raw_s / pipeline_s),
        ("file-ingest peak RSS MiB".into(), peak),
        ("pipelines/s (tiny files, burst)".into(), rate),
        (
            "workflow start → completed p50 ms".into(),
            ms(&workflow, 0.5),
        ),
        (
            "workflow start → completed p99 ms".into(),
            ms(&workflow, 0.99),
        ),
        ("upload → processed p50 ms".into(), ms(&latency, 0.5)),
        ("upload → processed p99 ms".into(), ms(&latency, 0.99)),
    ];
    Ok(Round { report, figures })
}
