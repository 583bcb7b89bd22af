//! The tasks API benchmark, in one run against the same store:
//!
//! 1. the store's raw rates: one conditional PutItem per task (what a
//!    create writes), and one Query of 20 items on the by-user index (what
//!    a list reads), 32 in flight, closed loop;
//! 2. the gateway: `POST /v1/tasks` (the write, then the TaskCreated event
//!    published to JetStream and the outbox cleared) and
//!    `GET /v1/tasks?userId=&limit=20`, 32 in flight, closed loop:
//!    requests/s and latency.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use sluice_config::{Env, StoreConfig};
use sluice_model::task::{NewTask, Priority};
use sluice_store::tasks::TaskQuery;
use sluice_store::Store;
use sluice_testkit::{free_port, start_service_from, unique_prefix, Servers};

use crate::{ms, rss_mib, Args, Round};

const IN_FLIGHT: usize = 32;
const USERS: usize = 20;

/// Runs `op` with `IN_FLIGHT` in flight for `seconds`; returns ops/s and latency.
async fn closed_loop<F, Fut>(seconds: u64, op: F) -> Result<(f64, Histogram<u64>)>
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let ok = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|w| {
            let (op, hist, ok) = (op.clone(), hist.clone(), ok.clone());
            tokio::spawn(async move {
                let mut i = w;
                while Instant::now() < until {
                    let t = Instant::now();
                    if op(i).await {
                        hist.lock()
                            .unwrap()
                            .record(t.elapsed().as_micros() as u64)
                            .ok();
                        ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    i += IN_FLIGHT;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.ok();
    }
    let n = ok.load(std::sync::atomic::Ordering::Relaxed) as f64;
    let h = hist.lock().unwrap().clone();
    Ok((n / started.elapsed().as_secs_f64(), h))
}

fn new_task(i: usize) -> NewTask {
    NewTask {
        title: format!("task {i}"),
        description: "x".repeat(800),
        priority: Priority::Medium,
        user_id: format!("user{}", i % USERS),
    }
}

/// Runs the tasks benchmark once.
pub async fn run(args: &Args, bin: &Path) -> Result<Round> {
    let servers = Servers::start_with(args.fsync_always).await?;
    let prefix = unique_prefix("tasks");
    let port = free_port();
    let mut env = servers.env(&prefix);
    env.extend([
        ("SLUICE_GATEWAY_LISTEN".into(), format!("127.0.0.1:{port}")),
        (
            "SLUICE_GATEWAY_API_KEYS".into(),
            r#"[{"principal":"bench","key":"bench","scopes":["*"]}]"#.into(),
        ),
        // The load generator is one principal: no rate limit in the way.
        ("SLUICE_GATEWAY_RATE".into(), "1000000".into()),
        ("SLUICE_GATEWAY_BURST".into(), "1000000".into()),
        ("SLUICE_LOG".into(), "warn".into()),
    ]);
    let gateway = start_service_from(
        bin,
        "sluice-gateway",
        &env,
        port,
        servers.dir.path().join("gateway.log"),
    )
    .await
    .context("starting the gateway")?;
    let store = Store::connect(&StoreConfig::from_env(&Env::from_pairs(env.clone()))?).await;
    let secs = args.seconds;

    // Raw store: one conditional PutItem per task, then Query on the index.
    let raw_store = store.clone();
    let (raw_write, raw_write_lat) = closed_loop(secs, move |i| {
        let store = raw_store.clone();
        async move {
            let t = new_task(i)
                .into_task(format!("raw-{i}"), time::OffsetDateTime::now_utc())
                .expect("valid");
            store.create_task(&t, &[]).await.unwrap_or(false)
        }
    })
    .await?;
    let raw_store = store.clone();
    let (raw_query, raw_query_lat) = closed_loop(secs, move |i| {
        let store = raw_store.clone();
        async move {
            store
                .tasks_page(&TaskQuery::User(format!("user{}", i % USERS)), 20, None)
                .await
                .is_ok()
        }
    })
    .await?;
    println!("store: {raw_write:.0} writes/s, {raw_query:.0} queries/s");

    // The gateway.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()?;
    let base = format!("http://127.0.0.1:{port}");
    let idle = rss_mib(gateway.pid());
    let (c_http, c_base) = (http.clone(), base.clone());
    let (create, create_lat) = closed_loop(secs, move |i| {
        let (http, base) = (c_http.clone(), c_base.clone());
        async move {
            let t = new_task(i);
            http.post(format!("{base}/v1/tasks"))
                .header("x-api-key", "bench")
                .json(
                    &serde_json::json!({"title": t.title, "description": t.description,
                    "userId": t.user_id}),
                )
                .send()
                .await
                .is_ok_and(|r| r.status().as_u16() == 201)
        }
    })
    .await?;
    let peak = rss_mib(gateway.pid());
    let (l_http, l_base) = (http.clone(), base.clone());
    let (list, list_lat) = closed_loop(secs, move |i| {
        let (http, base) = (l_http.clone(), l_base.clone());
        async move {
            http.get(format!("{base}/v1/tasks?userId=user{}&limit=20", i % USERS))
                .header("x-api-key", "bench")
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await?;
    // Every created task's event reached the bus (the outbox cleared).
    let pending = store
        .pending_outboxes("9999-12-31T00:00:00Z", 10)
        .await
        .map(|p| p.len())
        .unwrap_or(0);
    println!(
        "gateway: {create:.0} creates/s (p99 {:.2} ms), {list:.0} lists/s (p99 {:.2} ms)",
        ms(&create_lat, 0.99),
        ms(&list_lat, 0.99)
    );

    let mode = if args.fsync_always {
        "sync_interval: always (fsync per write)"
    } else {
        "server default sync (no fsync per write)"
    };
    let report = format!(
        "# sluice tasks API benchmark\n\nCommand: `{cmd}`  \nMachine: {cores} cores; DynamoDB Local (the store in tests and `make up`); NATS JetStream {mode}; the gateway as its own process (release build); the load generator on the same machine. {IN_FLIGHT} requests in flight, closed loop, {secs}s each; tasks of about 1 KiB over {USERS} users.\n\n\
| what | per second | p50 ms | p99 ms | peer in this run | peer per second | ratio |\n|---|---|---|---|---|---|---|\n\
| `POST /v1/tasks` (write + TaskCreated published + outbox cleared) | {create:.0} | {cp50:.2} | {cp99:.2} | store: one conditional PutItem | {raw_write:.0} | {r1:.0}% |\n\
| `GET /v1/tasks?userId=&limit=20` | {list:.0} | {lp50:.2} | {lp99:.2} | store: one Query of 20 on the index | {raw_query:.0} | {r2:.0}% |\n\
| store: conditional PutItem | {raw_write:.0} | {wp50:.2} | {wp99:.2} | | | |\n\
| store: Query of 20 on the by-user index | {raw_query:.0} | {qp50:.2} | {qp99:.2} | | | |\n\n\
A create is two store writes (the task with its outbox, then the outbox cleared) with the event published to JetStream between them, so the store's write rate bounds it at about half. The list and raw-query ratio can pass 100%: the raw query runs first, on a colder DynamoDB Local (a JVM). Outboxes left pending after the run: {pending}.\n\n\
## Gateway memory (RSS, MiB)\n\n| idle | after the create run |\n|---|---|\n| {idle:.1} | {peak:.1} |\n",
        cmd = std::env::args().collect::<Vec<_>>().join(" "),
        cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        cp50 = ms(&create_lat, 0.5),
        cp99 = ms(&create_lat, 0.99),
        lp50 = ms(&list_lat, 0.5),
        lp99 = ms(&list_lat, 0.99),
        wp50 = ms(&raw_write_lat, 0.5),
        wp99 = ms(&raw_write_lat, 0.99),
        qp50 = ms(&raw_query_lat, 0.5),
        qp99 = ms(&raw_query_lat, 0.99),
        r1 = 100.0 * create / raw_write,
        r2 = 100.0 * list / raw_query,
    );
    let figures = vec![
        (
            "store conditional PutItem (writes/s)".to_string(),
            raw_write,
        ),
        ("POST /v1/tasks (requests/s)".to_string(), create),
        (
            "POST /v1/tasks / store writes (%)".to_string(),
            100.0 * create / raw_write,
        ),
        ("POST /v1/tasks p99 (ms)".to_string(), ms(&create_lat, 0.99)),
        ("store Query of 20 (queries/s)".to_string(), raw_query),
        ("GET /v1/tasks?userId (requests/s)".to_string(), list),
        (
            "GET /v1/tasks / store queries (%)".to_string(),
            100.0 * list / raw_query,
        ),
        ("GET /v1/tasks p99 (ms)".to_string(), ms(&list_lat, 0.99)),
    ];
    println!("{report}");
    Ok(Round { report, figures })
}
