//! The event bus benchmark, in one run against the same servers:
//!
//! 1. raw JetStream consume rate: a durable pull consumer reading and
//!    acknowledging 1 KiB messages already stored (the ceiling any routing
//!    over JetStream works under);
//! 2. routed rate: events published to the bus stream, matched by the
//!    transformer against `--rules` rules (each event matches one; every
//!    rule has an HTTP target), each delivered to an HTTP endpoint of this
//!    process; from the first publish to the last delivery;
//! 3. bus → target latency at 1,000 events/s (open loop), against a direct
//!    JetStream publish → consume at the same rate: the p99 the routed path
//!    adds.
//!
//! The transformer runs as its own process, as in production; the load
//! generator, the receiver, NATS and the store share the machine.

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

/// What the receiver measures.
#[derive(Default)]
struct Received {
    count: AtomicU64,
    last: Mutex<Option<Instant>>,
    latency: Mutex<Option<Histogram<u64>>>,
}

/// Microseconds since `epoch`, carried in events so the receiver can tell
/// how long each took.
fn since(epoch: Instant) -> u64 {
    epoch.elapsed().as_micros() as u64
}

fn event(i: usize, rules: usize, sent_us: u64) -> Bytes {
    // `rules == 0`: the single-rule lane.
    let source = if rules == 0 { "bench-single" } else { "bench" };
    let rules = rules.max(1);
    let v = serde_json::json!({
        "version": "0", "id": format!("bench-{i}"), "detail-type": "Reading", "source": source,
        "account": "000000000000", "time": "2026-01-01T00:00:00Z", "region": "local", "resources": [],
        "detail": {"rule": i % rules, "sent_us": sent_us, "pad": "x".repeat(800)}
    });
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

async fn receiver(epoch: Instant, state: Arc<Received>) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new().fallback(move |body: Bytes| {
        let state = state.clone();
        async move {
            let now = since(epoch);
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
                if let Some(sent) = v["detail"]["sent_us"].as_u64() {
                    if let Some(h) = state.latency.lock().unwrap().as_mut() {
                        h.record(now.saturating_sub(sent).max(1)).ok();
                    }
                }
            }
            *state.last.lock().unwrap() = Some(Instant::now());
            state.count.fetch_add(1, Ordering::Relaxed);
            axum::http::StatusCode::OK
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

/// Publishes `n` events at `rate` per second (open loop), or as fast as
/// JetStream acknowledges when `rate` is `None`.
pub(crate) async fn publish(
    js: &async_nats::jetstream::Context,
    subject: &str,
    from: usize,
    n: usize,
    rules: usize,
    rate: Option<u64>,
    epoch: Instant,
) {
    let start = Instant::now();
    let mut acks = futures::stream::FuturesUnordered::new();
    for i in from..from + n {
        if let Some(r) = rate {
            let due = start + Duration::from_secs_f64((i - from) as f64 / r as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        let msg = async_nats::jetstream::message::PublishMessage::build()
            .payload(event(i, rules, since(epoch)))
            .message_id(format!("bench-{i}"));
        if let Ok(ack) = js.send_publish(subject.to_string(), msg).await {
            acks.push(std::future::IntoFuture::into_future(ack));
        }
        while acks.len() > 256 {
            acks.next().await;
        }
    }
    while acks.next().await.is_some() {}
}

/// Raw JetStream consume: `n` stored 1 KiB messages read and acknowledged
/// by one durable pull consumer (batches of 256); messages/s.
pub(crate) async fn raw_consume(
    js: &async_nats::jetstream::Context,
    n_raw: usize,
    epoch: Instant,
) -> Result<f64> {
    let raw = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "RAWC".into(),
            subjects: vec!["rawc.>".into()],
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    publish(js, "rawc.x", 0, n_raw, 1, None, epoch).await;
    let consumer: async_nats::jetstream::consumer::PullConsumer = raw
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("raw".into()),
            ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await?;
    let started = Instant::now();
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(256)
        .messages()
        .await?;
    let mut got = 0;
    while got < n_raw {
        match messages.next().await {
            Some(Ok(m)) => {
                m.ack().await.ok();
                got += 1;
            }
            _ => break,
        }
    }
    drop(messages);
    let rate = got as f64 / started.elapsed().as_secs_f64();
    js.delete_stream("RAWC").await.ok();
    Ok(rate)
}

/// Raw JetStream fan-out: `consumers` durable pull consumers on one work
/// queue stream, each filtered to its own subject (as the transformer's
/// per-target consumers are), `n` messages published round robin over
/// those subjects; messages/s from the first publish to the last ack.
async fn raw_fan_out(
    js: &async_nats::jetstream::Context,
    consumers: usize,
    n: usize,
    epoch: Instant,
) -> Result<f64> {
    let stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "RAWF".into(),
            subjects: vec!["rawf.>".into()],
            retention: async_nats::jetstream::stream::RetentionPolicy::WorkQueue,
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..consumers {
        let c: async_nats::jetstream::consumer::PullConsumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::Config {
                durable_name: Some(format!("f{i}")),
                filter_subject: format!("rawf.{i}"),
                ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
                ..Default::default()
            })
            .await?;
        let count = count.clone();
        tasks.push(tokio::spawn(async move {
            let mut m = c
                .stream()
                .max_messages_per_batch(16)
                .heartbeat(Duration::from_secs(5))
                .messages()
                .await?;
            while let Some(Ok(msg)) = m.next().await {
                msg.double_ack().await.ok();
                count.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let mut acks = futures::stream::FuturesUnordered::new();
    for i in 0..n {
        let msg = async_nats::jetstream::message::PublishMessage::build()
            .payload(event(i, consumers, since(epoch)))
            .message_id(format!("f-{i}"));
        if let Ok(ack) = js
            .send_publish(format!("rawf.{}", i % consumers), msg)
            .await
        {
            acks.push(std::future::IntoFuture::into_future(ack));
        }
        while acks.len() > 256 {
            acks.next().await;
        }
    }
    while acks.next().await.is_some() {}
    let deadline = Instant::now() + Duration::from_secs(600);
    while count.load(Ordering::Relaxed) < n as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    for t in tasks {
        t.abort();
    }
    js.delete_stream("RAWF").await.ok();
    Ok(rate)
}

/// Publishes `n` events to `subject` as fast as JetStream acknowledges and
/// returns deliveries/s from the first publish to the last delivery.
#[allow(clippy::too_many_arguments)]
async fn routed_rate(
    js: &async_nats::jetstream::Context,
    subject: &str,
    from: usize,
    n: usize,
    rules: usize,
    received: &Received,
    epoch: Instant,
    peak_rss: &mut f64,
    pid: Option<u32>,
) -> (f64, u64) {
    let base = received.count.load(Ordering::Relaxed);
    let started = Instant::now();
    let publisher = {
        let (js, subject) = (js.clone(), subject.to_string());
        tokio::spawn(async move { publish(&js, &subject, from, n, rules, None, epoch).await })
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    while received.count.load(Ordering::Relaxed) < base + n as u64 && Instant::now() < deadline {
        *peak_rss = peak_rss.max(rss_mib(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publisher.await.ok();
    let delivered = received.count.load(Ordering::Relaxed) - base;
    let end = received.last.lock().unwrap().unwrap_or_else(Instant::now);
    (
        delivered as f64 / end.duration_since(started).as_secs_f64(),
        delivered,
    )
}

/// Publishes at `rate`/s for `seconds` and returns the receiver's latency histogram.
#[allow(clippy::too_many_arguments)]
async fn routed_latency(
    js: &async_nats::jetstream::Context,
    subject: &str,
    from: usize,
    rate: u64,
    seconds: u64,
    rules: usize,
    received: &Received,
    epoch: Instant,
) -> Result<Histogram<u64>> {
    let n = (rate * seconds) as usize;
    *received.latency.lock().unwrap() = Some(Histogram::new(3)?);
    let base = received.count.load(Ordering::Relaxed);
    publish(js, subject, from, n, rules, Some(rate), epoch).await;
    let deadline = Instant::now() + Duration::from_secs(300);
    while received.count.load(Ordering::Relaxed) < base + n as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(received
        .latency
        .lock()
        .unwrap()
        .take()
        .unwrap_or(Histogram::new(3)?))
}

/// Starts the transformer as its own process on `servers` under `prefix`,
/// with `extra` settings, and connects to its gRPC API.
pub(crate) async fn start_transformer(
    servers: &Servers,
    prefix: &str,
    bin: &Path,
    extra: &[(&str, String)],
) -> Result<(
    sluice_testkit::Proc,
    v1::event_bus_client::EventBusClient<tonic::transport::Channel>,
)> {
    let (admin, grpc) = (free_port(), free_port());
    let mut env = servers.env(prefix);
    env.extend([
        (
            "SLUICE_TRANSFORMER_LISTEN".into(),
            format!("127.0.0.1:{admin}"),
        ),
        (
            "SLUICE_TRANSFORMER_GRPC_LISTEN".into(),
            format!("127.0.0.1:{grpc}"),
        ),
        ("SLUICE_LOG".into(), "warn".into()),
    ]);
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let transformer = start_service_from(
        bin,
        "sluice-transformer",
        &env,
        admin,
        servers.dir.path().join("transformer.log"),
    )
    .await
    .context("starting the transformer")?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{grpc}"))?
        .connect()
        .await?;
    Ok((
        transformer,
        v1::event_bus_client::EventBusClient::new(channel),
    ))
}

fn rule(name: String, pattern: String, url: String) -> v1::Rule {
    v1::Rule {
        bus: "default".into(),
        name,
        event_pattern: pattern,
        targets: vec![v1::Target {
            id: "http".into(),
            destination: Some(v1::target::Destination::Http(v1::HttpTarget {
                url,
                ..Default::default()
            })),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Runs the bus benchmark once.
pub async fn run(args: &Args, bin: &Path) -> Result<Round> {
    let servers = Servers::start_with(args.fsync_always).await?;
    let mode = if args.fsync_always {
        "sync_interval: always (fsync per write)"
    } else {
        "server default sync (no fsync per write)"
    };
    let nats = async_nats::connect(servers.nats.url()).await?;
    let js = async_nats::jetstream::new(nats.clone());
    let epoch = Instant::now();
    let rate = 1000u64;

    // Raw consume: stored messages read and acknowledged by one durable pull consumer.
    let raw_consume = raw_consume(&js, 20_000, epoch).await?;
    println!("raw JetStream consume: {raw_consume:.0} msg/s");

    // Direct publish → consume latency at the same rate.
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "RAWL".into(),
        subjects: vec!["rawl.>".into()],
        storage: async_nats::jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await?;
    let direct: async_nats::jetstream::consumer::PullConsumer = js
        .get_stream("RAWL")
        .await?
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("direct".into()),
            ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await?;
    let n_lat = (rate * args.seconds) as usize;
    let direct_hist = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let reader = {
        let hist = direct_hist.clone();
        tokio::spawn(async move {
            let mut messages = direct.stream().messages().await?;
            let mut n = 0;
            while n < n_lat {
                let Some(Ok(m)) = messages.next().await else {
                    break;
                };
                let now = since(epoch);
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&m.payload) {
                    if let Some(sent) = v["detail"]["sent_us"].as_u64() {
                        hist.lock()
                            .unwrap()
                            .record(now.saturating_sub(sent).max(1))
                            .ok();
                    }
                }
                m.double_ack().await.ok();
                n += 1;
            }
            anyhow::Ok(())
        })
    };
    publish(&js, "rawl.x", 3_000_000, n_lat, 1, Some(rate), epoch).await;
    let _ = tokio::time::timeout(Duration::from_secs(60), reader).await;
    let direct_lat = direct_hist.lock().unwrap().clone();

    // The transformer and the receiver.
    let received = Arc::new(Received::default());
    let target_url = receiver(epoch, received.clone()).await?;
    let prefix = unique_prefix("bus");
    let (transformer, client) = start_transformer(
        &servers,
        &prefix,
        bin,
        &[(
            "SLUICE_TRANSFORMER_MAX_RULES_PER_BUS",
            (args.rules + 10).to_string(),
        )],
    )
    .await?;
    let idle_empty = rss_mib(transformer.pid());
    let bus_subject = format!("{prefix}.bus.bench.Reading");
    let mut peak_rss = 0f64;

    // One rule, one target: what routing adds to a JetStream hop.
    client
        .clone()
        .put_rule(v1::PutRuleRequest {
            rule: Some(rule(
                "single".into(),
                r#"{"source": ["bench-single"]}"#.into(),
                format!("{target_url}/single"),
            )),
        })
        .await
        .context("creating the single rule")?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (single_rate, _) = routed_rate(
        &js,
        &bus_subject,
        100_000,
        20_000,
        0,
        &received,
        epoch,
        &mut peak_rss,
        transformer.pid(),
    )
    .await;
    let single_lat = routed_latency(
        &js,
        &bus_subject,
        200_000,
        rate,
        args.seconds,
        0,
        &received,
        epoch,
    )
    .await?;
    println!(
        "1 rule: {single_rate:.0} events/s; at {rate}/s p50 {:.2} ms p99 {:.2} ms (direct p99 {:.2} ms)",
        ms(&single_lat, 0.5),
        ms(&single_lat, 0.99),
        ms(&direct_lat, 0.99)
    );

    // `--rules` rules, each with its own HTTP target; each event matches one.
    let setup = Instant::now();
    futures::stream::iter(0..args.rules)
        .map(|i| {
            let mut client = client.clone();
            let url = format!("{target_url}/rule-{i}");
            async move {
                client
                    .put_rule(v1::PutRuleRequest {
                        rule: Some(rule(
                            format!("rule-{i:05}"),
                            format!(r#"{{"source": ["bench"], "detail": {{"rule": [{i}]}}}}"#),
                            url,
                        )),
                    })
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<()>, tonic::Status>>()
        .context("creating rules")?;
    println!(
        "{} rules created in {:.1}s",
        args.rules,
        setup.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_rules = rss_mib(transformer.pid());
    // Warm-up: one event per rule, so every connection and consumer is live.
    publish(&js, &bus_subject, 0, args.rules, args.rules, None, epoch).await;
    let deadline = Instant::now() + Duration::from_secs(300);
    while received.count.load(Ordering::Relaxed) < (args.rules + 20_000 + n_lat) as u64
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let n_routed = 20_000usize;
    let (many_rate, delivered) = routed_rate(
        &js,
        &bus_subject,
        1_000_000,
        n_routed,
        args.rules,
        &received,
        epoch,
        &mut peak_rss,
        transformer.pid(),
    )
    .await;
    let many_lat = routed_latency(
        &js,
        &bus_subject,
        2_000_000,
        rate,
        args.seconds,
        args.rules,
        &received,
        epoch,
    )
    .await?;
    println!(
        "{} rules: {many_rate:.0} events/s ({delivered} of {n_routed}); at {rate}/s p50 {:.2} ms p99 {:.2} ms",
        args.rules,
        ms(&many_lat, 0.5),
        ms(&many_lat, 0.99)
    );
    drop(transformer);

    // The peer of per-target consumers: raw JetStream with as many filtered consumers.
    let fan_out = raw_fan_out(&js, args.rules, n_routed, epoch).await?;
    println!(
        "raw JetStream with {} filtered consumers: {fan_out:.0} msg/s",
        args.rules
    );

    let report = format!(
        "# sluice event bus benchmark\n\nCommand: `{cmd}`  \nMachine: {cores} cores; NATS JetStream {mode}, single node, file storage; the transformer as its own process (release build); the load generator, the HTTP receiver, NATS and DynamoDB Local on the same machine. Events are 1 KiB.\n\n\
## Throughput (20,000 events published as fast as JetStream acknowledges; first publish → last delivery)\n\n\
| what | events/s | peer measured in this run | peer | ratio |\n|---|---|---|---|---|\n\
| bus → 1 rule → HTTP target | {single_rate:.0} | raw JetStream consume (one durable pull consumer, stored messages, acked) | {raw_consume:.0} | {r1:.0}% |\n\
| bus → {rules} rules → HTTP targets (each event matches one rule; each rule has its own target) | {many_rate:.0} | raw JetStream consume | {raw_consume:.0} | {r2:.1}% |\n\
| same | {many_rate:.0} | raw JetStream publish → consume through {rules} filtered consumers on one work queue (the transformer's per-target layout, nothing else) | {fan_out:.0} | {r3:.0}% |\n\n\
A routed event is read from the bus, matched, stored as a delivery on its target's subject (a JetStream write), read by that target's own consumer, POSTed to the receiver and acknowledged. Each target has its own durable consumer, so one target's backlog or failures hold back no other; JetStream's cost per stored message grows with the number of active consumers on the stream (the last row), which is what bounds the rate at {rules} targets.\n\n\
## Latency at {rate} events/s ({secs}s, open loop)\n\n| path | p50 ms | p99 ms | events |\n|---|---|---|---|\n\
| direct: JetStream publish → consume | {dp50:.2} | {dp99:.2} | {dn} |\n\
| routed: bus → 1 rule → HTTP target | {sp50:.2} | {sp99:.2} | {sn} |\n\
| routed: bus → {rules} rules → HTTP target | {mp50:.2} | {mp99:.2} | {mn} |\n\
| routed (1 rule) p99 − direct p99 | | {diff:.2} | |\n\n\
## Transformer memory (RSS, MiB)\n\n| idle, no rules | idle, {rules} rules | peak under load |\n|---|---|---|\n| {idle_empty:.1} | {idle_rules:.1} | {peak_rss:.1} |\n",
        cmd = std::env::args().collect::<Vec<_>>().join(" "),
        cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        rules = args.rules,
        secs = args.seconds,
        r1 = 100.0 * single_rate / raw_consume,
        r2 = 100.0 * many_rate / raw_consume,
        r3 = 100.0 * many_rate / fan_out,
        dp50 = ms(&direct_lat, 0.5),
        dp99 = ms(&direct_lat, 0.99),
        dn = direct_lat.len(),
        sp50 = ms(&single_lat, 0.5),
        sp99 = ms(&single_lat, 0.99),
        sn = single_lat.len(),
        mp50 = ms(&many_lat, 0.5),
        mp99 = ms(&many_lat, 0.99),
        mn = many_lat.len(),
        diff = ms(&single_lat, 0.99) - ms(&direct_lat, 0.99),
    );
    let r = args.rules;
    let figures = vec![
        ("raw JetStream consume (msg/s)".to_string(), raw_consume),
        ("routed, 1 rule (events/s)".to_string(), single_rate),
        (
            "routed, 1 rule / raw consume (%)".to_string(),
            100.0 * single_rate / raw_consume,
        ),
        (format!("routed, {r} rules (events/s)"), many_rate),
        (
            format!("raw JetStream through {r} filtered consumers (msg/s)"),
            fan_out,
        ),
        (
            format!("routed, {r} rules / raw through {r} consumers (%)"),
            100.0 * many_rate / fan_out,
        ),
        (
            format!("routed, {r} rules / raw consume (%)"),
            100.0 * many_rate / raw_consume,
        ),
        (
            "direct publish → consume p99 at 1000/s (ms)".to_string(),
            ms(&direct_lat, 0.99),
        ),
        (
            "routed 1 rule p50 at 1000/s (ms)".to_string(),
            ms(&single_lat, 0.5),
        ),
        (
            "routed 1 rule p99 at 1000/s (ms)".to_string(),
            ms(&single_lat, 0.99),
        ),
        (
            "routed p99 − direct p99 at 1000/s (ms)".to_string(),
            ms(&single_lat, 0.99) - ms(&direct_lat, 0.99),
        ),
        (
            format!("routed {r} rules p50 at 1000/s (ms)"),
            ms(&many_lat, 0.5),
        ),
        (
            format!("routed {r} rules p99 at 1000/s (ms)"),
            ms(&many_lat, 0.99),
        ),
        (
            "transformer idle RSS, no rules (MiB)".to_string(),
            idle_empty,
        ),
        (format!("transformer idle RSS, {r} rules (MiB)"), idle_rules),
    ];
    println!("{report}");
    Ok(Round { report, figures })
}
