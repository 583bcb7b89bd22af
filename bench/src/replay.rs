//! The replay benchmark, in one run against the same servers:
//!
//! 1. raw JetStream consume: a durable pull consumer reading and
//!    acknowledging stored 1 KiB messages (the issue's peer);
//! 2. raw read and republish: an ordered consumer reading stored messages
//!    and publishing each to another stream, acknowledgements awaited, 256
//!    in flight: the least any replay over JetStream does (read the
//!    archive, store a delivery), without matching or bookkeeping;
//! 3. a replay of `--events` archived events through one rule with an HTTP
//!    target: events replayed per second from the start request to
//!    COMPLETED (the replay's own records, read through the API), and from
//!    the start request to the last delivery at the target.
//!
//! The transformer runs as its own process, as in production;
//! `SLUICE_TRANSFORMER_REPLAY_RATE` is left at its default (no limit).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures::StreamExt;
use sluice_proto::v1;
use sluice_testkit::{unique_prefix, Servers};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::bus::{publish, raw_consume, start_transformer};
use crate::{rss_mib, Args, Round};

/// Reads `n` stored messages with an ordered consumer and publishes each to
/// another stream (acks awaited, 256 in flight); messages/s.
async fn raw_republish(
    js: &async_nats::jetstream::Context,
    n: usize,
    epoch: Instant,
) -> Result<f64> {
    use async_nats::jetstream::stream::{Config, StorageType};
    let source = js
        .create_stream(Config {
            name: "RAWR".into(),
            subjects: vec!["rawr.>".into()],
            storage: StorageType::File,
            ..Default::default()
        })
        .await?;
    js.create_stream(Config {
        name: "RAWD".into(),
        subjects: vec!["rawd.>".into()],
        storage: StorageType::File,
        ..Default::default()
    })
    .await?;
    publish(js, "rawr.x", 0, n, 1, None, epoch).await;
    let consumer = source
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await?;
    let started = Instant::now();
    let mut messages = consumer.messages().await?;
    let mut acks = futures::stream::FuturesUnordered::new();
    let mut got = 0;
    while got < n {
        let Some(Ok(m)) = messages.next().await else {
            break;
        };
        let seq = m.info().map(|i| i.stream_sequence).unwrap_or_default();
        let msg = async_nats::jetstream::message::PublishMessage::build()
            .payload(m.payload.clone())
            .message_id(format!("r-{seq}"));
        if let Ok(ack) = js.send_publish("rawd.x".to_string(), msg).await {
            acks.push(std::future::IntoFuture::into_future(ack));
        }
        while acks.len() > 256 {
            acks.next().await;
        }
        got += 1;
    }
    while acks.next().await.is_some() {}
    let rate = got as f64 / started.elapsed().as_secs_f64();
    js.delete_stream("RAWR").await.ok();
    js.delete_stream("RAWD").await.ok();
    Ok(rate)
}

fn stamp(t: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(t, &Rfc3339).ok()
}

/// Runs the replay benchmark once.
pub async fn run(args: &Args, bin: &Path) -> Result<Round> {
    let servers = Servers::start_with(args.fsync_always).await?;
    let nats = async_nats::connect(servers.nats.url()).await?;
    let js = async_nats::jetstream::new(nats.clone());
    let epoch = Instant::now();
    let n = args.events;

    let raw = raw_consume(&js, n, epoch).await?;
    println!("raw JetStream consume: {raw:.0} msg/s");
    let republish = raw_republish(&js, n, epoch).await?;
    println!("raw JetStream read and republish: {republish:.0} msg/s");

    // The receiver: counts deliveries and notes the last one's time.
    let count = Arc::new(AtomicU64::new(0));
    let last = Arc::new(Mutex::new(None::<Instant>));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let target_url = format!("http://{}/replayed", listener.local_addr()?);
    let app = {
        let (count, last) = (count.clone(), last.clone());
        axum::Router::new().fallback(move |_body: Bytes| {
            let (count, last) = (count.clone(), last.clone());
            async move {
                *last.lock().unwrap() = Some(Instant::now());
                count.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::OK
            }
        })
    };
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let prefix = unique_prefix("replay");
    let (transformer, mut client) = start_transformer(&servers, &prefix, bin, &[]).await?;

    // The archive, then the events (no rule yet: nothing is routed live).
    client
        .put_archive(v1::PutArchiveRequest {
            archive: Some(v1::Archive {
                bus: "default".into(),
                name: "bench".into(),
                ..Default::default()
            }),
        })
        .await
        .context("creating the archive")?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let start_time = OffsetDateTime::now_utc();
    publish(
        &js,
        &format!("{prefix}.bus.bench.Reading"),
        0,
        n,
        1,
        None,
        epoch,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let end_time = OffsetDateTime::now_utc();

    // The rule the replay goes through, its target's worker ready.
    client
        .put_rule(v1::PutRuleRequest {
            rule: Some(v1::Rule {
                bus: "default".into(),
                name: "replayed".into(),
                event_pattern: r#"{"source": ["bench"]}"#.into(),
                targets: vec![v1::Target {
                    id: "http".into(),
                    destination: Some(v1::target::Destination::Http(v1::HttpTarget {
                        url: target_url,
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        })
        .await
        .context("creating the rule")?;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut peak_rss = 0f64;
    let asked = Instant::now();
    client
        .start_replay(v1::StartReplayRequest {
            replay: Some(v1::Replay {
                bus: "default".into(),
                name: "bench".into(),
                archive: "bench".into(),
                start_time: start_time.format(&Rfc3339)?,
                end_time: end_time.format(&Rfc3339)?,
                ..Default::default()
            }),
        })
        .await
        .context("starting the replay")?;
    let deadline = Instant::now() + Duration::from_secs(900);
    let (done, replay) = loop {
        peak_rss = peak_rss.max(rss_mib(transformer.pid()));
        let r = client
            .get_replay(v1::GetReplayRequest {
                bus: "default".into(),
                name: "bench".into(),
            })
            .await?
            .into_inner();
        let state = v1::ReplayState::try_from(r.state).unwrap_or_default();
        if state == v1::ReplayState::Completed {
            break (Instant::now(), r);
        }
        if matches!(state, v1::ReplayState::Failed | v1::ReplayState::Cancelled)
            || Instant::now() > deadline
        {
            bail!("the replay ended {state:?}: {}", r.reason);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let replayed = replay.events_replayed;
    if replayed != n as u64 {
        bail!("the replay sent {replayed} events of {n}");
    }
    while count.load(Ordering::Relaxed) < n as u64 && Instant::now() < deadline {
        peak_rss = peak_rss.max(rss_mib(transformer.pid()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = count.load(Ordering::Relaxed);
    let delivered_at = last.lock().unwrap().unwrap_or_else(Instant::now);
    let wall = replayed as f64 / done.duration_since(asked).as_secs_f64();
    let running = match (stamp(&replay.started_at), stamp(&replay.ended_at)) {
        (Some(a), Some(b)) if b > a => replayed as f64 / (b - a).as_seconds_f64(),
        _ => wall,
    };
    let to_target = delivered as f64 / delivered_at.duration_since(asked).as_secs_f64();
    println!(
        "replay of {n}: {wall:.0} events/s request → COMPLETED, {running:.0} events/s while running, {to_target:.0} events/s to the target"
    );
    drop(transformer);

    let report = format!(
        "# sluice replay benchmark\n\nCommand: `{cmd}`  \nMachine: {cores} cores; NATS JetStream {mode}, single node, file storage; the transformer as its own process (release build, no replay rate limit); the load generator, the HTTP receiver, NATS and DynamoDB Local on the same machine. Events are 1 KiB.\n\n\
| what | events/s | peer measured in this run | peer | ratio |\n|---|---|---|---|---|\n\
| replay of {n} archived events through 1 rule, start request → COMPLETED (events read from the bus stream, matched, one delivery stored per event; progress written after every batch of 256) | {wall:.0} | raw JetStream consume (durable pull consumer, stored messages, acked) | {raw:.0} | {r1:.1}% |\n\
| same | {wall:.0} | raw JetStream read and republish (ordered consumer, each message published to another stream, acks awaited, 256 in flight) | {republish:.0} | {r2:.0}% |\n\
| same, between the replay's own started_at and ended_at | {running:.0} | raw read and republish | {republish:.0} | {r3:.0}% |\n\
| replay start request → last delivery at the HTTP target ({delivered} of {n}) | {to_target:.0} | | | |\n\n\
A replay reads the archive (the bus stream) and stores one delivery per matching (rule, target), as the router does; the target's own consumer then delivers them, so the last row is bounded by the HTTP target's delivery rate, not by the replay. Transformer peak RSS during the replay: {peak_rss:.1} MiB.\n",
        cmd = std::env::args().collect::<Vec<_>>().join(" "),
        cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        mode = if args.fsync_always {
            "sync_interval: always (fsync per write)"
        } else {
            "server default sync (no fsync per write)"
        },
        r1 = 100.0 * wall / raw,
        r2 = 100.0 * wall / republish,
        r3 = 100.0 * running / republish,
    );
    let figures = vec![
        ("raw JetStream consume (msg/s)".to_string(), raw),
        (
            "raw JetStream read and republish (msg/s)".to_string(),
            republish,
        ),
        ("replay, request → COMPLETED (events/s)".to_string(), wall),
        ("replay, while running (events/s)".to_string(), running),
        ("replay / raw consume (%)".to_string(), 100.0 * wall / raw),
        (
            "replay / raw read and republish (%)".to_string(),
            100.0 * wall / republish,
        ),
        (
            "replay → last delivery at the target (events/s)".to_string(),
            to_target,
        ),
        ("transformer peak RSS (MiB)".to_string(), peak_rss),
    ];
    println!("{report}");
    Ok(Round { report, figures })
}
