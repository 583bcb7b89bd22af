//! The fan-out benchmark, in one run against the same servers:
//!
//! 1. raw JetStream fan-out: one stored message read by `--subscriptions`
//!    durable consumers (each reads every message and acknowledges it):
//!    deliveries/s, and publish → consume latency at a fixed rate;
//! 2. sluice: one topic with `--subscriptions` confirmed webhook
//!    subscriptions on an HTTP endpoint of this process; messages published
//!    through the notifier's gRPC API (stored in JetStream before the
//!    answer), fanned out, signed and POSTed to every subscription:
//!    deliveries/s from the first publish to the last delivery, and
//!    publish → delivered latency at the same fixed rate.
//!
//! The notifier and the gateway (which serves the confirmation links) run
//! as their own processes; the load generator, the receiver, NATS and the
//! store share the machine.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use futures::StreamExt;
use hdrhistogram::Histogram;
use sluice_proto::v1;
use sluice_testkit::{free_port, start_service_from, unique_prefix, Servers};

use crate::{ms, rss_mib, Args, Round};

#[derive(Default)]
struct Received {
    count: AtomicU64,
    last: Mutex<Option<Instant>>,
    latency: Mutex<Option<Histogram<u64>>>,
}

fn since(epoch: Instant) -> u64 {
    epoch.elapsed().as_micros() as u64
}

fn body(sent_us: u64) -> String {
    serde_json::json!({"sent_us": sent_us, "pad": "x".repeat(900)}).to_string()
}

fn record(state: &Received, sent: Option<u64>, now: u64) {
    if let Some(sent) = sent {
        if let Some(h) = state.latency.lock().unwrap().as_mut() {
            h.record(now.saturating_sub(sent).max(1)).ok();
        }
    }
    *state.last.lock().unwrap() = Some(Instant::now());
    state.count.fetch_add(1, Ordering::Relaxed);
}

/// The webhook endpoint: confirms subscriptions by opening their link and
/// counts notifications, measuring each from the time in its message.
async fn receiver(epoch: Instant, state: Arc<Received>) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let http = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |body: Bytes| {
        let (state, http) = (state.clone(), http.clone());
        async move {
            let now = since(epoch);
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if v["type"] == "SubscriptionConfirmation" {
                if let Some(link) = v["confirm_url"].as_str() {
                    let link = link.to_string();
                    tokio::spawn(async move { http.get(link).send().await });
                }
            } else {
                let sent = v["Message"]
                    .as_str()
                    .and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok())
                    .and_then(|m| m["sent_us"].as_u64());
                record(&state, sent, now);
            }
            axum::http::StatusCode::OK
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

/// Raw JetStream: `consumers` durable consumers each reading every
/// message of one stream. Publishes `n` messages (at `rate`/s, or as fast
/// as acknowledged) and returns (deliveries/s, latency).
async fn raw_fan_out(
    js: &async_nats::jetstream::Context,
    consumers: usize,
    n: usize,
    rate: Option<u64>,
    name: &str,
    epoch: Instant,
) -> Result<(f64, Histogram<u64>)> {
    let stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: name.into(),
            subjects: vec![format!("{name}.>")],
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    let state = Arc::new(Received::default());
    *state.latency.lock().unwrap() = Some(Histogram::new(3)?);
    let mut tasks = Vec::new();
    for i in 0..consumers {
        let c: async_nats::jetstream::consumer::PullConsumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::Config {
                durable_name: Some(format!("c{i}")),
                ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
                ..Default::default()
            })
            .await?;
        let state = state.clone();
        tasks.push(tokio::spawn(async move {
            let mut m = c
                .stream()
                .max_messages_per_batch(64)
                .heartbeat(Duration::from_secs(5))
                .messages()
                .await?;
            while let Some(Ok(msg)) = m.next().await {
                let now = since(epoch);
                let sent = serde_json::from_slice::<serde_json::Value>(&msg.payload)
                    .ok()
                    .and_then(|v| v["sent_us"].as_u64());
                msg.ack().await.ok();
                record(&state, sent, now);
            }
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    let mut acks = futures::stream::FuturesUnordered::new();
    for i in 0..n {
        if let Some(r) = rate {
            let due = started + Duration::from_secs_f64(i as f64 / r as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        if let Ok(ack) = js
            .publish(format!("{name}.x"), Bytes::from(body(since(epoch))))
            .await
        {
            acks.push(std::future::IntoFuture::into_future(ack));
        }
        while acks.len() > 64 {
            acks.next().await;
        }
    }
    while acks.next().await.is_some() {}
    let want = (n * consumers) as u64;
    let deadline = Instant::now() + Duration::from_secs(300);
    while state.count.load(Ordering::Relaxed) < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let end = state.last.lock().unwrap().unwrap_or_else(Instant::now);
    let rate =
        state.count.load(Ordering::Relaxed) as f64 / end.duration_since(started).as_secs_f64();
    for t in tasks {
        t.abort();
    }
    js.delete_stream(name).await.ok();
    let hist = state
        .latency
        .lock()
        .unwrap()
        .take()
        .unwrap_or(Histogram::new(3)?);
    Ok((rate, hist))
}

/// Publishes `n` messages through the notifier (at `rate`/s, or 32 in
/// flight as fast as answered) and waits for their `n × subs` deliveries.
#[allow(clippy::too_many_arguments)]
async fn sluice_fan_out(
    client: &v1::topics_client::TopicsClient<tonic::transport::Channel>,
    received: &Received,
    n: usize,
    subs: usize,
    rate: Option<u64>,
    epoch: Instant,
    peak_rss: &mut f64,
    pid: Option<u32>,
) -> Result<(f64, Histogram<u64>)> {
    *received.latency.lock().unwrap() = Some(Histogram::new(3)?);
    let base = received.count.load(Ordering::Relaxed);
    let started = Instant::now();
    let publisher = {
        let client = client.clone();
        tokio::spawn(async move {
            let publish = |client: v1::topics_client::TopicsClient<tonic::transport::Channel>| async move {
                let mut client = client;
                client
                    .publish(v1::PublishRequest {
                        topic: "bench".into(),
                        entry: Some(v1::PublishEntry {
                            message: body(since(epoch)),
                            ..Default::default()
                        }),
                        origin: "bench".into(),
                    })
                    .await
                    .map(|_| ())
            };
            match rate {
                Some(r) => {
                    // Each publish on its own task, so it is sent when due
                    // (an unpolled future would send nothing).
                    let mut sent = Vec::with_capacity(n);
                    for i in 0..n {
                        let due = started + Duration::from_secs_f64(i as f64 / r as f64);
                        tokio::time::sleep_until(due.into()).await;
                        sent.push(tokio::spawn(publish(client.clone())));
                    }
                    for s in sent {
                        let _ = s.await;
                    }
                }
                None => {
                    futures::stream::iter(0..n)
                        .map(|_| publish(client.clone()))
                        .buffer_unordered(32)
                        .collect::<Vec<_>>()
                        .await;
                }
            }
        })
    };
    let want = base + (n * subs) as u64;
    let deadline = Instant::now() + Duration::from_secs(600);
    while received.count.load(Ordering::Relaxed) < want && Instant::now() < deadline {
        *peak_rss = peak_rss.max(rss_mib(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publisher.await.ok();
    let delivered = received.count.load(Ordering::Relaxed) - base;
    let end = received.last.lock().unwrap().unwrap_or_else(Instant::now);
    let hist = received
        .latency
        .lock()
        .unwrap()
        .take()
        .unwrap_or(Histogram::new(3)?);
    Ok((
        delivered as f64 / end.duration_since(started).as_secs_f64(),
        hist,
    ))
}

/// Runs the fan-out benchmark once.
pub async fn run(args: &Args, bin: &Path) -> Result<Round> {
    let subs = args.subscriptions;
    let servers = Servers::start_with(args.fsync_always).await?;
    let mode = if args.fsync_always {
        "sync_interval: always (fsync per write)"
    } else {
        "server default sync (no fsync per write)"
    };
    let nats = async_nats::connect(servers.nats.url()).await?;
    let js = async_nats::jetstream::new(nats.clone());
    let epoch = Instant::now();
    // Messages per second in the latency runs: `subs` deliveries each.
    let msg_rate = 3u64;
    let n_rate = 200usize;
    let n_lat = (msg_rate * args.seconds) as usize;

    let (raw_rate, _) = raw_fan_out(&js, subs, n_rate, None, "RAWFT", epoch).await?;
    let (_, raw_lat) = raw_fan_out(&js, subs, n_lat, Some(msg_rate), "RAWFL", epoch).await?;
    println!(
        "raw JetStream 1 → {subs}: {raw_rate:.0} deliveries/s; p99 {:.2} ms",
        ms(&raw_lat, 0.99)
    );

    // The notifier, the gateway (confirmation links) and the receiver.
    let received = Arc::new(Received::default());
    let hook = receiver(epoch, received.clone()).await?;
    let prefix = unique_prefix("fanout");
    let (n_admin, n_grpc, g_port) = (free_port(), free_port(), free_port());
    let mut env = servers.env(&prefix);
    env.extend([
        (
            "SLUICE_NOTIFIER_LISTEN".into(),
            format!("127.0.0.1:{n_admin}"),
        ),
        (
            "SLUICE_NOTIFIER_GRPC_LISTEN".into(),
            format!("127.0.0.1:{n_grpc}"),
        ),
        (
            "SLUICE_NOTIFIER_URL".into(),
            format!("http://127.0.0.1:{n_grpc}"),
        ),
        (
            "SLUICE_NOTIFIER_MAX_SUBSCRIPTIONS".into(),
            (subs + 10).to_string(),
        ),
        (
            "SLUICE_GATEWAY_LISTEN".into(),
            format!("127.0.0.1:{g_port}"),
        ),
        (
            "SLUICE_PUBLIC_URL".into(),
            format!("http://127.0.0.1:{g_port}"),
        ),
        (
            "SLUICE_GATEWAY_API_KEYS".into(),
            r#"[{"principal":"bench","key":"bench","scopes":["*"]}]"#.into(),
        ),
        // A 127.0.0.1 test transformer URL the gateway never calls here.
        (
            "SLUICE_TRANSFORMER_URL".into(),
            format!("http://127.0.0.1:{}", free_port()),
        ),
        ("SLUICE_LOG".into(), "warn".into()),
    ]);
    let notifier = start_service_from(
        bin,
        "sluice-notifier",
        &env,
        n_admin,
        servers.dir.path().join("notifier.log"),
    )
    .await
    .context("starting the notifier")?;
    let _gateway = start_service_from(
        bin,
        "sluice-gateway",
        &env,
        g_port,
        servers.dir.path().join("gateway.log"),
    )
    .await
    .context("starting the gateway")?;
    let idle = rss_mib(notifier.pid());
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{n_grpc}"))?
        .connect()
        .await?;
    let mut client = v1::topics_client::TopicsClient::new(channel);
    client
        .put_topic(v1::PutTopicRequest {
            topic: Some(v1::Topic {
                name: "bench".into(),
                ..Default::default()
            }),
        })
        .await?;
    for i in 0..subs {
        client
            .subscribe(v1::SubscribeRequest {
                subscription: Some(v1::Subscription {
                    topic: "bench".into(),
                    protocol: "http".into(),
                    endpoint: format!("{hook}/{i}"),
                    delivery_policy: Some(v1::DeliveryPolicy {
                        max_concurrency: Some(16),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            })
            .await
            .context("subscribing")?;
    }
    // Every subscription confirmed (the receiver opens each link).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list = client
            .list_subscriptions(v1::ListSubscriptionsRequest {
                topic: "bench".into(),
            })
            .await?
            .into_inner();
        let confirmed = list
            .subscriptions
            .iter()
            .filter(|s| s.status == "confirmed")
            .count();
        if confirmed == subs {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {confirmed} of {subs} subscriptions confirmed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every worker running and every connection open.
    let mut peak_rss = 0f64;
    sluice_fan_out(
        &client,
        &received,
        5,
        subs,
        None,
        epoch,
        &mut peak_rss,
        notifier.pid(),
    )
    .await?;
    let (rate, _) = sluice_fan_out(
        &client,
        &received,
        n_rate,
        subs,
        None,
        epoch,
        &mut peak_rss,
        notifier.pid(),
    )
    .await?;
    let (_, lat) = sluice_fan_out(
        &client,
        &received,
        n_lat,
        subs,
        Some(msg_rate),
        epoch,
        &mut peak_rss,
        notifier.pid(),
    )
    .await?;
    println!(
        "sluice 1 → {subs} webhooks: {rate:.0} deliveries/s; at {msg_rate} msg/s p50 {:.2} ms p99 {:.2} ms",
        ms(&lat, 0.5),
        ms(&lat, 0.99)
    );

    let report = format!(
        "# sluice fan-out benchmark\n\nCommand: `{cmd}`  \nMachine: {cores} cores; NATS JetStream {mode}, single node, file storage; the notifier and the gateway as their own processes (release build); the load generator, the webhook receiver, NATS and DynamoDB Local on the same machine. Messages are 1 KiB; every webhook request is signed (Standard Webhooks) and carries the SNS notification JSON.\n\n\
## Throughput ({n_rate} messages to {subs} subscriptions: {total} deliveries; first publish → last delivery)\n\n\
| what | deliveries/s |\n|---|---|\n\
| raw JetStream: 1 stream, {subs} durable consumers each reading every message | {raw_rate:.0} |\n\
| sluice: publish → fan-out → {subs} signed webhook POSTs | {rate:.0} |\n\
| sluice / raw | {ratio:.1}% |\n\n\
A sluice delivery is the fan-out storing the copy on the subscription's own subject (a JetStream write), that subscription's consumer reading it, an HMAC-signed HTTP POST, and the ack; the raw peer is only the JetStream read.\n\n\
## Latency at {msg_rate} messages/s × {subs} subscriptions ({secs}s, open loop)\n\n| path | p50 ms | p99 ms | deliveries |\n|---|---|---|---|\n\
| raw: JetStream publish → each of {subs} consumers | {rp50:.2} | {rp99:.2} | {rn} |\n\
| sluice: publish (gRPC) → each of {subs} webhooks | {sp50:.2} | {sp99:.2} | {sn} |\n\n\
## Notifier memory (RSS, MiB)\n\n| idle, {subs} subscriptions | peak under load |\n|---|---|\n| {idle:.1} | {peak_rss:.1} |\n",
        cmd = std::env::args().collect::<Vec<_>>().join(" "),
        cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        total = n_rate * subs,
        ratio = 100.0 * rate / raw_rate,
        secs = args.seconds,
        rp50 = ms(&raw_lat, 0.5),
        rp99 = ms(&raw_lat, 0.99),
        rn = raw_lat.len(),
        sp50 = ms(&lat, 0.5),
        sp99 = ms(&lat, 0.99),
        sn = lat.len(),
    );
    let figures = vec![
        (format!("raw JetStream 1 → {subs} (deliveries/s)"), raw_rate),
        (format!("sluice 1 → {subs} webhooks (deliveries/s)"), rate),
        ("sluice / raw (%)".to_string(), 100.0 * rate / raw_rate),
        (
            format!("raw publish → consume p99 at {msg_rate} msg/s (ms)"),
            ms(&raw_lat, 0.99),
        ),
        (
            format!("sluice publish → delivered p50 at {msg_rate} msg/s (ms)"),
            ms(&lat, 0.5),
        ),
        (
            format!("sluice publish → delivered p99 at {msg_rate} msg/s (ms)"),
            ms(&lat, 0.99),
        ),
        ("notifier idle RSS (MiB)".to_string(), idle),
        ("notifier peak RSS (MiB)".to_string(), peak_rss),
    ];
    println!("{report}");
    Ok(Round { report, figures })
}
