//! The ingest benchmark: raw JetStream and store baselines, the gateway at
//! saturation and at fixed rates, the processor draining a backlog, memory.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use futures::StreamExt;
use hdrhistogram::Histogram;
use sluice_testkit::{free_port, start_service_from, unique_prefix, Servers};

use crate::{ms, payload, rss_mib, Args, Round};

/// Runs the ingest benchmark once.
pub async fn run(args: &Args, bin: &Path) -> Result<Round> {
    let bin = bin.to_path_buf();
    let servers = Servers::start_with(args.fsync_always).await?;
    let mut report = String::new();
    let mode = if args.fsync_always {
        "sync_interval: always (fsync per write)"
    } else {
        "server default sync (no fsync per write)"
    };
    report.push_str(&format!(
        "# sluice ingest benchmark\n\nCommand: `{}`  \nMachine: {} cores; NATS JetStream {mode}, single node, file storage; store: DynamoDB Local (SQLite) on the same machine; load generator on the same machine.\n\n",
        std::env::args().collect::<Vec<_>>().join(" "),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    ));

    // 1. raw JetStream durable publish.
    let nats = async_nats::connect(servers.nats.url()).await?;
    let js = async_nats::jetstream::new(nats.clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "RAW".into(),
        subjects: vec!["raw.>".into()],
        storage: async_nats::jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await?;
    let body = bytes::Bytes::from(vec![b'x'; 1024]);
    let n_raw = 30_000usize;
    let started = Instant::now();
    futures::stream::iter(0..n_raw)
        .map(|i| {
            let js = js.clone();
            let body = body.clone();
            async move {
                let publish = async_nats::jetstream::message::PublishMessage::build()
                    .payload(body)
                    .message_id(i.to_string());
                js.send_publish("raw.x", publish)
                    .await
                    .unwrap()
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(256)
        .collect::<Vec<_>>()
        .await;
    let raw_js = n_raw as f64 / started.elapsed().as_secs_f64();
    println!("raw JetStream durable publish: {raw_js:.0} msg/s");

    // 2. raw store writes.
    let env = sluice_config::Env::from_pairs(servers.env(&unique_prefix("raw")));
    let store = sluice_store::Store::connect(&sluice_config::StoreConfig::from_env(&env)?).await;
    store.ensure_tables().await?;
    let table = store.tables().events.clone();
    let n_store = 6_000usize;
    let started = Instant::now();
    futures::stream::iter(0..n_store)
        .map(|i| {
            let (c, t) = (store.client().clone(), table.clone());
            async move {
                c.put_item()
                    .table_name(t)
                    .item("id", sluice_store::AttributeValue::S(format!("raw-{i}")))
                    .item("pad", sluice_store::AttributeValue::S("x".repeat(1000)))
                    .send()
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let raw_store = n_store as f64 / started.elapsed().as_secs_f64();
    println!("raw store writes: {raw_store:.0} writes/s");

    // The services.
    let prefix = unique_prefix("bench");
    let (gw_port, pr_port) = (free_port(), free_port());
    let mut env = servers.env(&prefix);
    env.extend([
        (
            "SLUICE_GATEWAY_LISTEN".to_string(),
            format!("127.0.0.1:{gw_port}"),
        ),
        (
            "SLUICE_PROCESSOR_LISTEN".to_string(),
            format!("127.0.0.1:{pr_port}"),
        ),
        (
            "SLUICE_GATEWAY_API_KEYS".to_string(),
            r#"[{"principal":"bench","key":"bench","scopes":["*"]}]"#.to_string(),
        ),
        ("SLUICE_GATEWAY_RATE".to_string(), "1000000".to_string()),
        ("SLUICE_GATEWAY_BURST".to_string(), "1000000".to_string()),
        ("SLUICE_LOG".to_string(), "warn".to_string()),
    ]);
    let logs = servers.dir.path().to_path_buf();
    let gateway = start_service_from(
        &bin,
        "sluice-gateway",
        &env,
        gw_port,
        logs.join("gateway.log"),
    )
    .await?;
    let mut processor = start_service_from(
        &bin,
        "sluice-processor",
        &env,
        pr_port,
        logs.join("processor.log"),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = (rss_mib(gateway.pid()), rss_mib(processor.pid()));
    let url = format!("http://127.0.0.1:{gw_port}/v1/events");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()?;

    // Bus arrivals, for end-to-end latency and processor throughput.
    let arrivals: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut sub = nats.subscribe(format!("{prefix}.bus.>")).await?;
    let arr = arrivals.clone();
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&m.payload) {
                if let Some(id) = v["id"].as_str() {
                    arr.lock().unwrap().insert(id.to_string(), Instant::now());
                }
            }
        }
    });

    // 3. saturation, processor stopped (pure ingest).
    processor.kill().await;
    let mut peak_gw = 0f64;
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let accepted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sat_hist = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let started = Instant::now();
    let workers: Vec<_> = (0..128)
        .map(|w| {
            let (http, url, accepted, hist) = (
                http.clone(),
                url.clone(),
                accepted.clone(),
                sat_hist.clone(),
            );
            tokio::spawn(async move {
                let mut n = w * 1_000_000;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let r = http
                        .post(&url)
                        .header("x-api-key", "bench")
                        .json(&payload(n))
                        .send()
                        .await;
                    n += 1;
                    if r.map(|r| r.status() == 202).unwrap_or(false) {
                        accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        hist.lock()
                            .unwrap()
                            .record(t.elapsed().as_micros() as u64)
                            .ok();
                    }
                }
            })
        })
        .collect();
    while Instant::now() < deadline {
        peak_gw = peak_gw.max(rss_mib(gateway.pid()));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    futures::future::join_all(workers).await;
    let sat_rate = accepted.load(std::sync::atomic::Ordering::Relaxed) as f64
        / started.elapsed().as_secs_f64();
    let sat = sat_hist.lock().unwrap().clone();
    println!(
        "gateway saturation: {sat_rate:.0} events/s, p50 {:.2} ms, p99 {:.2} ms",
        ms(&sat, 0.5),
        ms(&sat, 0.99)
    );

    // 5. processor draining the backlog the saturation run left.
    let backlog = accepted.load(std::sync::atomic::Ordering::Relaxed) as usize;
    arrivals.lock().unwrap().clear();
    let started = Instant::now();
    processor = start_service_from(
        &bin,
        "sluice-processor",
        &env,
        pr_port,
        logs.join("processor.log"),
    )
    .await?;
    let mut peak_pr = 0f64;
    let drain_deadline = Instant::now() + Duration::from_secs(600);
    while arrivals.lock().unwrap().len() < backlog && Instant::now() < drain_deadline {
        peak_pr = peak_pr.max(rss_mib(processor.pid()));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drained = arrivals.lock().unwrap().len();
    let proc_rate = drained as f64 / started.elapsed().as_secs_f64();
    println!("processor: {proc_rate:.0} events/s ({drained} of {backlog})");

    // 4. fixed rates, everything running.
    let mut rows = String::new();
    let mut rate_figures = Vec::new();
    for &rate in &args.rates {
        arrivals.lock().unwrap().clear();
        let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
        let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let total = rate * args.seconds;
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(total as usize);
        for i in 0..total {
            let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
            tokio::time::sleep_until(due.into()).await;
            let (http, url, sent, hist, errors) = (
                http.clone(),
                url.clone(),
                sent.clone(),
                hist.clone(),
                errors.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let r = http
                    .post(&url)
                    .header("x-api-key", "bench")
                    .json(&payload(i as usize))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 202 => {
                        let done = Instant::now();
                        hist.lock()
                            .unwrap()
                            .record(done.duration_since(due).as_micros() as u64)
                            .ok();
                        if let Ok(v) = r.json::<serde_json::Value>().await {
                            if let Some(id) = v["id"].as_str() {
                                sent.lock().unwrap().insert(id.to_string(), done);
                            }
                        }
                    }
                    _ => {
                        errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }));
            if i % 200 == 0 {
                peak_gw = peak_gw.max(rss_mib(gateway.pid()));
                peak_pr = peak_pr.max(rss_mib(processor.pid()));
            }
        }
        futures::future::join_all(tasks).await;
        let achieved = total as f64 / start.elapsed().as_secs_f64();
        // Wait for the processing to catch up, then compute 202 → processed.
        let wait_until = Instant::now() + Duration::from_secs(120);
        while arrivals.lock().unwrap().len() < sent.lock().unwrap().len()
            && Instant::now() < wait_until
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut e2e = Histogram::<u64>::new(3)?;
        {
            let sent = sent.lock().unwrap();
            let arr = arrivals.lock().unwrap();
            for (id, t202) in sent.iter() {
                if let Some(t) = arr.get(id) {
                    e2e.record(t.saturating_duration_since(*t202).as_micros() as u64)
                        .ok();
                }
            }
        }
        let h = hist.lock().unwrap().clone();
        println!(
            "rate {rate}/s: achieved {achieved:.0}/s, 202 p50 {:.2} ms p99 {:.2} ms, e2e p50 {:.1} ms p99 {:.1} ms, errors {}",
            ms(&h, 0.5), ms(&h, 0.99), ms(&e2e, 0.5), ms(&e2e, 0.99), errors.load(std::sync::atomic::Ordering::Relaxed)
        );
        rate_figures.push((format!("202 p99 at {rate} events/s (ms)"), ms(&h, 0.99)));
        rows.push_str(&format!(
            "| {rate} | {achieved:.0} | {:.2} | {:.2} | {:.1} | {:.1} | {} | {} |\n",
            ms(&h, 0.5),
            ms(&h, 0.99),
            ms(&e2e, 0.5),
            ms(&e2e, 0.99),
            e2e.len(),
            errors.load(std::sync::atomic::Ordering::Relaxed)
        ));
    }

    report.push_str(&format!(
        "## Raw baselines\n\n| what | rate |\n|---|---|\n| JetStream durable publish (1 KiB, acked, 256 in flight) | {raw_js:.0} msg/s |\n| store PutItem (1 KiB, 64 in flight) | {raw_store:.0} writes/s |\n\n\
## Gateway at saturation (128 clients, processor stopped, {}s)\n\n| accepted events/s | ratio to raw JetStream | 202 p50 ms | 202 p99 ms |\n|---|---|---|---|\n| {sat_rate:.0} | {:.0}% | {:.2} | {:.2} |\n\n\
## Processor draining a backlog of {backlog}\n\n| processed events/s | ratio to raw store writes |\n|---|---|\n| {proc_rate:.0} | {:.0}% |\n\n\
Each event costs the processor one conditional UpdateItem and one JetStream publish (the bus event).\n\n\
## Fixed rates (everything running, {}s each; 202 latency from the scheduled send time)\n\n| target/s | achieved/s | 202 p50 ms | 202 p99 ms | 202→processed p50 ms | 202→processed p99 ms | events traced | errors |\n|---|---|---|---|---|---|---|---|\n{rows}\n\
## Memory (RSS, MiB)\n\n| service | idle | peak under load |\n|---|---|---|\n| gateway | {:.1} | {:.1} |\n| processor | {:.1} | {:.1} |\n",
        args.seconds,
        100.0 * sat_rate / raw_js,
        ms(&sat, 0.5),
        ms(&sat, 0.99),
        100.0 * proc_rate / raw_store,
        args.seconds,
        idle.0, peak_gw, idle.1, peak_pr,
    ));
    drop(gateway);
    drop(processor);
    let mut figures = vec![
        ("raw JetStream durable publish (msg/s)".to_string(), raw_js),
        ("raw store writes (writes/s)".to_string(), raw_store),
        (
            "gateway ingest at saturation (events/s)".to_string(),
            sat_rate,
        ),
        (
            "gateway saturation / raw JetStream (%)".to_string(),
            100.0 * sat_rate / raw_js,
        ),
        (
            "processor draining a backlog (events/s)".to_string(),
            proc_rate,
        ),
        (
            "processor / raw store writes (%)".to_string(),
            100.0 * proc_rate / raw_store,
        ),
    ];
    figures.extend(rate_figures);
    figures.push(("idle RSS gateway (MiB)".to_string(), idle.0));
    figures.push(("idle RSS processor (MiB)".to_string(), idle.1));
    Ok(Round { report, figures })
}
