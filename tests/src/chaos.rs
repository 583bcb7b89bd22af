//! Chaos: the topology as local processes under steady load while its
//! parts are SIGKILLed and stopped at random, then a reckoning from the
//! system's own records and the target's log.
//!
//! The load is events put through `POST /v1/events` (each with its own
//! `Idempotency-Key`, retried until the gateway answers 202, as a client
//! would), and a rule delivers every one to an HTTP target. The faults,
//! one every `fault_every` (with jitter): SIGKILL of the gateway, the
//! processor, the transformer, the notifier, the orchestrator or NATS
//! (each started again at once), the store or Temporal stopped for a
//! few seconds, the target answering 503 for a few seconds.
//!
//! The reckoning: every accepted event (a 202) must be processed and
//! delivered to the target, or dead-lettered with a reason; an event is
//! duplicated when the target took it under two delivery ids, or one
//! idempotency key was accepted as two events. `SLUICE_CHAOS_EVENTS` sets
//! the count; `make chaos` runs 100,000, `make test` a bounded run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde_json::{json, Value};
use sluice_testkit::Servers;

use crate::receiver::Receiver;
use crate::{Stack, ADMIN_KEY};

/// What a run does.
#[derive(Debug, Clone)]
pub struct Options {
    /// Events to accept.
    pub events: usize,
    /// Events put per second.
    pub rate: u32,
    /// Time between faults (each waits this, plus up to half again).
    pub fault_every: Duration,
    /// Seeds the choice of faults, so a run can be repeated.
    pub seed: u64,
    /// How long the system may take to settle after the load.
    pub settle: Duration,
}

impl Options {
    /// From `SLUICE_CHAOS_EVENTS`, `SLUICE_CHAOS_RATE`,
    /// `SLUICE_CHAOS_FAULT_EVERY` (seconds) and `SLUICE_CHAOS_SEED`, with
    /// `events` and `rate` as the defaults.
    pub fn from_env(events: usize, rate: u32) -> Self {
        let num = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
        let events = num("SLUICE_CHAOS_EVENTS").map_or(events, |n| n as usize);
        let rate = num("SLUICE_CHAOS_RATE").map_or(rate, |n| n as u32).max(1);
        Self {
            events,
            rate,
            fault_every: Duration::from_secs(num("SLUICE_CHAOS_FAULT_EVERY").unwrap_or(4)),
            seed: num("SLUICE_CHAOS_SEED").unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(1)
            }),
            // The transformer's retries back off up to 5 s here; the
            // processor's redeliveries wait for their visibility timeout.
            settle: Duration::from_secs(120 + (events as u64) / 200),
        }
    }
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Report {
    /// Events the gateway answered 202.
    pub accepted: usize,
    /// Events the store records as processed.
    pub processed: usize,
    /// Accepted events the target took.
    pub delivered: usize,
    /// Deliveries the target took again under the same delivery id (a
    /// retry after its answer was lost: at-least-once, not a duplicate).
    pub redelivered: usize,
    /// Entries in the dead-letter queues, by reason.
    pub dead_lettered: BTreeMap<String, usize>,
    /// Accepted events neither delivered nor dead-lettered.
    pub lost: usize,
    /// Effects applied twice (see the module's docs).
    pub duplicated: usize,
    /// The faults injected, in order.
    pub faults: Vec<String>,
    /// Some lost or duplicated ids, to look for in the logs.
    pub examples: Vec<String>,
    /// The load's duration.
    pub load_seconds: f64,
}

impl Report {
    /// The last line a run prints.
    pub fn line(&self) -> String {
        format!(
            "chaos: accepted={} processed={} lost={} duplicated={}",
            self.accepted, self.processed, self.lost, self.duplicated
        )
    }

    /// Everything, one fact per line, the last being [`Report::line`].
    pub fn text(&self) -> String {
        let mut faults: BTreeMap<&str, usize> = BTreeMap::new();
        for f in &self.faults {
            *faults.entry(f.as_str()).or_default() += 1;
        }
        let mut out = String::new();
        out += &format!(
            "chaos: load {:.0} s; faults {} ({})\n",
            self.load_seconds,
            self.faults.len(),
            faults
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        out += &format!(
            "chaos: delivered to the target {} (again under the same delivery id: {})\n",
            self.delivered, self.redelivered
        );
        out += &format!(
            "chaos: dead-lettered {} {:?}\n",
            self.dead_lettered.values().sum::<usize>(),
            self.dead_lettered
        );
        if !self.examples.is_empty() {
            out += &format!("chaos: for example {}\n", self.examples.join(", "));
        }
        out += &self.line();
        out
    }

    /// Whether nothing was lost or applied twice.
    pub fn passed(&self) -> bool {
        self.lost == 0 && self.duplicated == 0
    }
}

/// A small deterministic generator (xorshift), so faults repeat by seed.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const FAULTS: [&str; 9] = [
    "kill gateway",
    "kill processor",
    "kill transformer",
    "kill notifier",
    "kill orchestrator",
    "kill nats",
    "stop store",
    "stop temporal",
    "target 503",
];

/// The load: events `0..n` put at `rate`/s, each retried with its key
/// until accepted; answers `n -> ids the gateway gave it`.
async fn load(url: String, n: usize, rate: u32) -> HashMap<usize, HashSet<String>> {
    let accepted: Arc<Mutex<HashMap<usize, HashSet<String>>>> = Arc::default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    let slots = Arc::new(tokio::sync::Semaphore::new(128));
    let mut tasks = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    for i in 0..n {
        tick.tick().await;
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let (http, url, accepted) = (http.clone(), url.clone(), accepted.clone());
        tasks.spawn(async move {
            let body = json!({"source": "chaos", "detail-type": "Tick", "detail": {"n": i}});
            loop {
                let sent = http
                    .post(format!("{url}/v1/events"))
                    .header("x-api-key", ADMIN_KEY)
                    .header("idempotency-key", format!("chaos-{i}"))
                    .json(&body)
                    .send()
                    .await;
                if let Ok(r) = sent {
                    if r.status().as_u16() == 202 {
                        let v: Value = r.json().await.unwrap_or(Value::Null);
                        if let Some(id) = v["id"].as_str() {
                            accepted
                                .lock()
                                .unwrap()
                                .entry(i)
                                .or_default()
                                .insert(id.to_string());
                            break;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            drop(permit);
        });
    }
    while tasks.join_next().await.is_some() {}
    let out = accepted.lock().unwrap().clone();
    out
}

/// Injects one fault; answers what it did.
async fn fault(stack: &mut Stack, target: &Receiver, which: &str) -> Result<()> {
    match which {
        "kill gateway" => stack.restart_gateway().await?,
        "kill processor" => {
            stack.kill_processor().await;
            stack.start_processor().await?;
        }
        "kill transformer" => {
            stack.kill_transformer().await;
            stack.start_transformer().await?;
        }
        "kill notifier" => stack.restart_notifier().await?,
        "kill orchestrator" => {
            if let Some(mut p) = stack.orchestrator.take() {
                p.kill().await;
            }
            stack.start_orchestrator().await?;
        }
        "kill nats" => stack.servers.nats.kill_and_restart().await?,
        "stop store" => {
            stack.servers.dynamo.stop().await;
            tokio::time::sleep(Duration::from_secs(3)).await;
            stack.servers.dynamo.resume().await?;
        }
        "stop temporal" => {
            if let Some(t) = stack.temporal.as_mut() {
                t.stop().await;
                tokio::time::sleep(Duration::from_secs(3)).await;
                t.resume().await?;
            }
        }
        "target 503" => {
            target.set_status(503);
            tokio::time::sleep(Duration::from_secs(4)).await;
            target.set_status(200);
        }
        other => anyhow::bail!("no fault {other}"),
    }
    Ok(())
}

/// Runs the load and the faults, waits for the system to settle, and
/// reckons.
pub async fn run(opts: &Options) -> Result<Report> {
    let servers = Servers::start_with(true).await?;
    let mut stack = Stack::start_workflows_on(
        servers,
        "chaos",
        &[
            // A store outage is waited out, not dead-lettered.
            ("SLUICE_QUEUE_MAX_RECEIVE", "100"),
            ("SLUICE_QUEUE_BACKOFF", "200ms"),
            ("SLUICE_QUEUE_VISIBILITY_TIMEOUT", "10s"),
            ("SLUICE_TRANSFORMER_RETRY_BASE", "200ms"),
            ("SLUICE_TRANSFORMER_RETRY_MAX_DELAY", "5s"),
        ],
        true,
    )
    .await?;
    let target = Receiver::start().await;
    let (code, rule) = stack
        .put(
            "/v1/buses/default/rules/chaos",
            &json!({"event_pattern": {"source": ["chaos"]},
                    "targets": [{"type": "http", "id": "sink", "url": format!("{}/sink", target.url)}]}),
        )
        .await;
    anyhow::ensure!(code == 200 || code == 201, "the rule: {code} {rule}");

    let started = Instant::now();
    let load = tokio::spawn(load(stack.url.clone(), opts.events, opts.rate));
    let mut dice = Dice(opts.seed);
    let mut report = Report::default();
    while !load.is_finished() {
        let wait = opts.fault_every + opts.fault_every.mul_f64(dice.below(50) as f64 / 100.0);
        tokio::time::sleep(wait).await;
        if load.is_finished() {
            break;
        }
        let which = FAULTS[dice.below(FAULTS.len() as u64) as usize];
        fault(&mut stack, &target, which)
            .await
            .with_context(|| format!("injecting {which}"))?;
        report.faults.push(which.to_string());
    }
    let accepted = load.await.context("the load")?;
    report.load_seconds = started.elapsed().as_secs_f64();
    target.set_status(200);

    let ids: HashMap<String, usize> = accepted
        .iter()
        .flat_map(|(n, ids)| ids.iter().map(move |id| (id.clone(), *n)))
        .collect();
    report.accepted = ids.len();
    // Settle: every accepted event delivered or dead-lettered.
    let deadline = Instant::now() + opts.settle;
    let (dead, dead_ids) = loop {
        let taken: HashSet<String> = target.taken().into_iter().map(|(_, e)| e).collect();
        let (dead, dead_ids) = dead_letters(&stack).await;
        let open = ids
            .keys()
            .filter(|id| !taken.contains(*id) && !dead_ids.contains(*id))
            .count();
        if open == 0 || Instant::now() > deadline {
            break (dead, dead_ids);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        target.forget_requests();
    };
    report.processed = stack.processed_count().await;
    report.dead_lettered = dead;

    // The reckoning.
    let mut deliveries: HashMap<&str, HashMap<&str, usize>> = HashMap::new();
    let taken = target.taken();
    for (delivery, event) in &taken {
        *deliveries
            .entry(event.as_str())
            .or_default()
            .entry(delivery.as_str())
            .or_default() += 1;
    }
    for (id, n) in &ids {
        match deliveries.get(id.as_str()) {
            Some(by_delivery) => {
                report.delivered += 1;
                report.redelivered += by_delivery.values().map(|c| c - 1).sum::<usize>();
                if by_delivery.len() > 1 {
                    report.duplicated += by_delivery.len() - 1;
                    report
                        .examples
                        .push(format!("event {id} (n {n}) taken {by_delivery:?}"));
                }
            }
            None if dead_ids.contains(id) => {}
            None => {
                report.lost += 1;
                if report.examples.len() < 10 {
                    report
                        .examples
                        .push(format!("event {id} (n {n}) not delivered"));
                }
            }
        }
    }
    for (n, got) in &accepted {
        if got.len() > 1 {
            report.duplicated += got.len() - 1;
            report
                .examples
                .push(format!("key chaos-{n} accepted as {got:?}"));
        }
    }
    report.examples.truncate(10);
    Ok(report)
}

/// The dead-letter queues' entries: count by reason, and the event ids
/// they hold.
async fn dead_letters(stack: &Stack) -> (BTreeMap<String, usize>, HashSet<String>) {
    let mut by_reason = BTreeMap::new();
    let mut ids = HashSet::new();
    let mut after: Option<u64> = None;
    loop {
        let path = match after {
            Some(a) => format!("/v1/dlq?limit=100&after={a}"),
            None => "/v1/dlq?limit=100".to_string(),
        };
        let (code, page) = stack.get(&path).await;
        if code != 200 {
            break;
        }
        for e in page["entries"].as_array().into_iter().flatten() {
            let reason = e["reason"].as_str().unwrap_or("?").to_string();
            *by_reason.entry(reason).or_default() += 1;
            for k in ["event_id", "id"] {
                if let Some(id) = e[k].as_str() {
                    ids.insert(id.to_string());
                }
            }
        }
        match page["next"].as_u64() {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    (by_reason, ids)
}
