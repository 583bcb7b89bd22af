//! The schedules benchmark: `--rules` scheduled rules (10,000 in `make
//! bench`), every one `cron(* * * * ? *)` with its own HTTP target, so all
//! of them tick at the same instant, the top of each minute: the hardest
//! case for being on time (a rate spreads its rules' ticks over the
//! period).
//!
//! For `--ticks` whole minutes it measures, for every tick of every rule:
//! - fired: from the tick's time to its delivery being stored in JetStream
//!   (seen by a plain NATS subscription on the delivery subjects, which
//!   JetStream's stored messages are published on);
//! - delivered: from the tick's time to its arrival at the HTTP target;
//!
//! and counts the ticks fired, missing and delivered twice. The
//! transformer runs as its own process (one replica).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use bytes::Bytes;
use futures::StreamExt;
use hdrhistogram::Histogram;
use sluice_proto::v1;
use sluice_testkit::{unique_prefix, Servers};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::bus::start_transformer;
use crate::{ms, rss_mib, Args, Round};

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A tick event's id and its tick time (ms since the epoch).
fn tick_of(payload: &[u8]) -> Option<(String, i64)> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let t = OffsetDateTime::parse(v["time"].as_str()?, &Rfc3339).ok()?;
    let ms = i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()?;
    Some((v["id"].as_str()?.to_string(), ms))
}

/// What one observer saw: each tick event's id, its tick and how late it
/// came (ms), in arrival order.
type Seen = Arc<Mutex<Vec<(String, i64, i64)>>>;

fn note(seen: &Seen, payload: &[u8]) {
    let now = now_ms();
    if let Some((id, tick)) = tick_of(payload) {
        seen.lock().unwrap().push((id, tick, now - tick));
    }
}

/// Lateness of the ticks in `[first, last]`: a histogram (µs), the events
/// seen, the distinct ids and the ticks seen per minute.
fn summarise(seen: &Seen, first: i64, last: i64) -> Result<(Histogram<u64>, usize, usize)> {
    let mut h = Histogram::<u64>::new(3)?;
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut n = 0;
    for (id, tick, late) in seen.lock().unwrap().iter() {
        if *tick < first || *tick > last {
            continue;
        }
        n += 1;
        h.record(((*late).max(0) as u64 * 1000).max(1)).ok();
        *ids.entry(id.clone()).or_default() += 1;
    }
    Ok((h, n, ids.len()))
}

/// Runs the schedules benchmark once.
pub async fn run(args: &Args, bin: &Path) -> Result<Round> {
    let servers = Servers::start_with(args.fsync_always).await?;
    let nats = async_nats::connect(servers.nats.url()).await?;
    let prefix = unique_prefix("sched");

    // Fired: every delivery stored on the deliveries stream.
    let stored: Seen = Arc::default();
    let mut sub = nats.subscribe(format!("{prefix}.deliver.>")).await?;
    {
        let stored = stored.clone();
        tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                note(&stored, &m.payload);
            }
        });
    }
    // Delivered: what the HTTP targets receive.
    let delivered: Seen = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let target_url = format!("http://{}", listener.local_addr()?);
    let app = {
        let delivered = delivered.clone();
        axum::Router::new().fallback(move |body: Bytes| {
            let delivered = delivered.clone();
            async move {
                note(&delivered, &body);
                axum::http::StatusCode::OK
            }
        })
    };
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

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

    let setup = Instant::now();
    futures::stream::iter(0..args.rules)
        .map(|i| {
            let mut client = client.clone();
            let url = format!("{target_url}/rule-{i}");
            async move {
                client
                    .put_rule(v1::PutRuleRequest {
                        rule: Some(v1::Rule {
                            bus: "default".into(),
                            name: format!("tick-{i:05}"),
                            schedule: "cron(* * * * ? *)".into(),
                            targets: vec![v1::Target {
                                id: "http".into(),
                                destination: Some(v1::target::Destination::Http(v1::HttpTarget {
                                    url,
                                    ..Default::default()
                                })),
                                ..Default::default()
                            }],
                            ..Default::default()
                        }),
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
        .context("creating scheduled rules")?;
    let setup_s = setup.elapsed().as_secs_f64();
    println!("{} scheduled rules created in {setup_s:.1}s", args.rules);

    // Measure the ticks of whole minutes that start once every rule is
    // planned and every target's worker runs.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_rules = rss_mib(transformer.pid());
    let first = (now_ms() / 60_000 + 1) * 60_000;
    let last = first + (args.ticks as i64 - 1) * 60_000;
    let mut peak_rss = idle_rules;
    let expected = args.rules * args.ticks;
    let count_in = |seen: &Seen| {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|(_, t, _)| *t >= first && *t <= last)
            .count()
    };
    // Until the last tick, then until every tick is delivered (or 5 minutes).
    let deadline = Instant::now()
        + Duration::from_millis(u64::try_from(last - now_ms()).unwrap_or(0))
        + Duration::from_secs(300);
    while (now_ms() < last + 1000 || count_in(&delivered) < expected) && Instant::now() < deadline {
        peak_rss = peak_rss.max(rss_mib(transformer.pid()));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Anything fired twice would come within the de-duplication window.
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(transformer);

    let (fired, n_stored, ids_stored) = summarise(&stored, first, last)?;
    let (arrived, n_delivered, ids_delivered) = summarise(&delivered, first, last)?;
    let missing = expected.saturating_sub(ids_delivered);
    let twice = n_delivered - ids_delivered;
    println!(
        "{} rules, {} ticks: fired p50 {:.0} ms p99 {:.0} ms max {:.0} ms; delivered p50 {:.0} ms p99 {:.0} ms max {:.0} ms; {ids_stored} fired, {ids_delivered} delivered of {expected}, {twice} twice",
        args.rules,
        args.ticks,
        ms(&fired, 0.5),
        ms(&fired, 0.99),
        ms(&fired, 1.0),
        ms(&arrived, 0.5),
        ms(&arrived, 0.99),
        ms(&arrived, 1.0),
    );
    let report = format!(
        "# sluice schedules benchmark\n\nCommand: `{cmd}`  \nMachine: {cores} cores; NATS JetStream {mode}, single node, file storage; one transformer as its own process (release build); NATS, DynamoDB Local and the HTTP receiver on the same machine.\n\n\
{rules} rules, each `cron(* * * * ? *)` with its own HTTP target: all {rules} tick at the top of every minute. {ticks} minutes measured, {expected} ticks expected ({setup_s:.0}s to create the rules through the gRPC API).\n\n\
| lateness, from the tick's time | p50 ms | p99 ms | max ms | ticks |\n|---|---|---|---|---|\n\
| fired: its delivery stored in JetStream | {fp50:.0} | {fp99:.0} | {fmax:.0} | {ids_stored} ({n_stored} stored) |\n\
| delivered: at the HTTP target | {dp50:.0} | {dp99:.0} | {dmax:.0} | {ids_delivered} |\n\n\
Ticks missing at the targets: {missing}; delivered twice: {twice}.\n\n\
A tick is fired by storing one delivery per target (a JetStream write, fsync per write), all of a minute's {rules} at once; each target's own consumer then delivers it, so the second row adds {rules} consumers' delivery of one message each.\n\n\
## Transformer memory (RSS, MiB)\n\n| idle, no rules | idle, {rules} scheduled rules | peak |\n|---|---|---|\n| {idle_empty:.1} | {idle_rules:.1} | {peak_rss:.1} |\n",
        cmd = std::env::args().collect::<Vec<_>>().join(" "),
        cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        mode = if args.fsync_always {
            "sync_interval: always (fsync per write)"
        } else {
            "server default sync (no fsync per write)"
        },
        rules = args.rules,
        ticks = args.ticks,
        fp50 = ms(&fired, 0.5),
        fp99 = ms(&fired, 0.99),
        fmax = ms(&fired, 1.0),
        dp50 = ms(&arrived, 0.5),
        dp99 = ms(&arrived, 0.99),
        dmax = ms(&arrived, 1.0),
    );
    let r = args.rules;
    let figures = vec![
        (format!("fired p50, {r} rules (ms)"), ms(&fired, 0.5)),
        (format!("fired p99, {r} rules (ms)"), ms(&fired, 0.99)),
        (format!("fired max, {r} rules (ms)"), ms(&fired, 1.0)),
        (format!("delivered p50, {r} rules (ms)"), ms(&arrived, 0.5)),
        (format!("delivered p99, {r} rules (ms)"), ms(&arrived, 0.99)),
        ("ticks missing".to_string(), missing as f64),
        ("ticks delivered twice".to_string(), twice as f64),
        (
            format!("transformer idle RSS, {r} scheduled rules (MiB)"),
            idle_rules,
        ),
    ];
    println!("{report}");
    Ok(Round { report, figures })
}
