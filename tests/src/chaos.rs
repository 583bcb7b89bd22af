//! Chaos: the topology as local processes under steady load while its
//! parts are SIGKILLed and stopped at random, then a reckoning from the
//! system's own records and the target's log.
//!
//! The load, each request with its own `Idempotency-Key` and retried until
//! the gateway accepts it, as a client would: events (`POST /v1/events`),
//! which a rule delivers to an HTTP target; every 10th an order (the
//! saga: stock reserved, a payment provider charged, confirmed); every
//! 20th a high-priority task, whose approval workflow emails an approver
//! through the notifier and SMTP. The faults,
//! one every `fault_every` (with jitter): SIGKILL of the gateway, the
//! processor, the transformer, the notifier, the orchestrator or NATS
//! (each started again at once), the store or Temporal stopped for a
//! few seconds, the target answering 503 for a few seconds.
//!
//! The reckoning: every accepted event must be processed and delivered
//! to the target, or dead-lettered with a reason; every accepted order
//! settled (confirmed or rejected), the stock taken exactly once per
//! confirmed order, each order charged under one key at most; every
//! accepted task's approval emailed. Duplicated: an event the target
//! took under two delivery ids, an idempotency key accepted as two
//! things, stock taken twice, a task's approval sent as two messages
//! (two `Message-ID`s; the same message again is counted as resent). `SLUICE_CHAOS_EVENTS` sets
//! the count; `make chaos` runs 100,000, `make test` a bounded run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde_json::{json, Value};
use sluice_testkit::{Mailbox, Servers};

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
    /// Orders accepted, and of them confirmed and rejected.
    pub orders: (usize, usize, usize),
    /// Tasks accepted, and of them whose approval was emailed.
    pub tasks: (usize, usize),
    /// Approval emails received again with the same Message-ID.
    pub resent: usize,
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
            self.accepted + self.orders.0 + self.tasks.0,
            self.processed,
            self.lost,
            self.duplicated
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
            "chaos: orders accepted {}, confirmed {}, rejected {}\n",
            self.orders.0, self.orders.1, self.orders.2
        );
        out += &format!(
            "chaos: tasks accepted {}, approval emailed {} (the same message again: {})\n",
            self.tasks.0, self.tasks.1, self.resent
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

/// What the load had accepted, per kind: `i -> the ids answered for it`
/// (more than one: a key accepted twice).
#[derive(Debug, Default, Clone)]
struct Accepted {
    events: HashMap<usize, HashSet<String>>,
    orders: HashMap<usize, HashSet<String>>,
    tasks: HashMap<usize, HashSet<String>>,
}

/// One request of the load: path, key, body, the status that accepts it,
/// and the field of the answer naming what was made.
fn request(kind: &str, i: usize) -> (&'static str, String, Value, u16, &'static str) {
    match kind {
        "order" => (
            "/v1/orders",
            format!("chaos-order-{i}"),
            json!({"customer_id": format!("c{i}"), "currency": "EUR",
                   "items": [{"sku": SKU, "quantity": 1, "unit_price": "1.00"}]}),
            202,
            "order_id",
        ),
        "task" => (
            "/v1/tasks",
            format!("chaos-task-{i}"),
            json!({"title": task_title(i), "priority": "high", "userId": "owner@example.com"}),
            201,
            "taskId",
        ),
        _ => (
            "/v1/events",
            format!("chaos-{i}"),
            json!({"source": "chaos", "detail-type": "Tick", "detail": {"n": i}}),
            202,
            "id",
        ),
    }
}

const SKU: &str = "CHAOS-1";
const STOCK: i64 = 1_000_000;
const APPROVER: &str = "approver@chaos.example";

fn task_title(i: usize) -> String {
    format!("chaos task {i}")
}

/// The load: `n` events at `rate`/s, with every 10th an order and every
/// 20th a task; each request retried with its key until accepted.
async fn load(url: String, n: usize, rate: u32) -> Accepted {
    let accepted: Arc<Mutex<Accepted>> = Arc::default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    let slots = Arc::new(tokio::sync::Semaphore::new(128));
    let mut tasks = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    for i in 0..n {
        tick.tick().await;
        let mut kinds = vec!["event"];
        if i % 10 == 0 {
            kinds.push("order");
        }
        if i % 20 == 0 {
            kinds.push("task");
        }
        for kind in kinds {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let (http, url, accepted) = (http.clone(), url.clone(), accepted.clone());
            tasks.spawn(async move {
                let (path, key, body, ok, field) = request(kind, i);
                loop {
                    let sent = http
                        .post(format!("{url}{path}"))
                        .header("x-api-key", ADMIN_KEY)
                        .header("idempotency-key", &key)
                        .json(&body)
                        .send()
                        .await;
                    if let Ok(r) = sent {
                        if r.status().as_u16() == ok {
                            let v: Value = r.json().await.unwrap_or(Value::Null);
                            if let Some(id) = v[field].as_str() {
                                let mut a = accepted.lock().unwrap();
                                let map = match kind {
                                    "order" => &mut a.orders,
                                    "task" => &mut a.tasks,
                                    _ => &mut a.events,
                                };
                                map.entry(i).or_default().insert(id.to_string());
                                break;
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                drop(permit);
            });
        }
    }
    while tasks.join_next().await.is_some() {}
    let out = accepted.lock().unwrap().clone();
    out
}

/// Per order id, the idempotency keys it was charged under.
type Charges = Arc<Mutex<HashMap<String, HashSet<String>>>>;

/// The payment provider: `POST /charges`, idempotent by its key, keeping
/// the keys each order was charged under; `POST /refunds`.
async fn payment_provider() -> (String, Charges) {
    let charges: Charges = Arc::default();
    let app = axum::Router::new()
        .route(
            "/charges",
            axum::routing::post(
                |axum::extract::State(charges): axum::extract::State<Charges>,
                 headers: axum::http::HeaderMap,
                 axum::Json(body): axum::Json<Value>| async move {
                    let key = headers
                        .get("idempotency-key")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let order = body["order_id"].as_str().unwrap_or_default().to_string();
                    charges
                        .lock()
                        .unwrap()
                        .entry(order.clone())
                        .or_default()
                        .insert(key.clone());
                    (
                        axum::http::StatusCode::CREATED,
                        axum::Json(json!({"charge_id": format!("ch-{key}"), "order_id": order})),
                    )
                },
            ),
        )
        .route("/refunds", axum::routing::post(|| async { "ok" }))
        .with_state(charges.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, charges)
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
    let mail = Mailbox::start().await?;
    let (smtp, ca) = (mail.starttls_url(), mail.ca_file());
    let (payments, charges) = payment_provider().await;
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
            ("SLUICE_ORDER_FLOW", "saga"),
            ("SLUICE_PAYMENT_URL", payments.as_str()),
            ("SLUICE_SMTP_URL", smtp.as_str()),
            ("SLUICE_SMTP_CA_FILE", ca.as_str()),
            ("SLUICE_APPROVAL_APPROVERS", APPROVER),
            // One email per task within the run.
            ("SLUICE_APPROVAL_TIMEOUT", "24h"),
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
    let (code, rule) = stack
        .put(
            "/v1/buses/default/rules/task-approval",
            &json!({"event_pattern": {"source": ["sluice.tasks"], "detail-type": ["TaskCreated"],
                                      "detail": {"priority": ["high"]}},
                    "targets": [{"type": "workflow", "id": "approval", "workflow_type": "approval"}]}),
        )
        .await;
    anyhow::ensure!(
        code == 200 || code == 201,
        "the approval rule: {code} {rule}"
    );
    let (code, stock) = stack
        .put(
            &format!("/v1/inventory/{SKU}"),
            &json!({"available": STOCK}),
        )
        .await;
    anyhow::ensure!(code == 200, "the stock: {code} {stock}");
    stack.put("/v1/topics/task-approvals", &json!({})).await;
    let (code, _, sub) = stack
        .post(
            "/v1/topics/task-approvals/subscriptions",
            &json!({"protocol": "email", "endpoint": APPROVER}),
        )
        .await;
    anyhow::ensure!(code == 201, "the approver's subscription: {code} {sub}");
    let confirm = mail.wait_for(APPROVER, 1, Duration::from_secs(60)).await?;
    let link = confirm[0]["text"]
        .as_str()
        .unwrap_or_default()
        .split_whitespace()
        .find(|w| w.contains("/confirm?token="))
        .context("a confirmation link")?
        .to_string();
    reqwest::get(&link).await?.error_for_status()?;

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
        .events
        .iter()
        .flat_map(|(n, ids)| ids.iter().map(move |id| (id.clone(), *n)))
        .collect();
    report.accepted = ids.len();
    let order_ids: Vec<String> = accepted.orders.values().flatten().cloned().collect();
    let task_titles: HashSet<String> = accepted.tasks.keys().map(|i| task_title(*i)).collect();
    report.orders.0 = order_ids.len();
    report.tasks.0 = accepted.tasks.values().map(HashSet::len).sum();

    // Settle: every event delivered or dead-lettered, every order
    // settled, every task's approval emailed.
    let deadline = Instant::now() + opts.settle;
    let mut settled: HashMap<String, String> = HashMap::new();
    let (dead, dead_ids, emails) = loop {
        let taken: HashSet<String> = target.taken().into_iter().map(|(_, e)| e).collect();
        let (dead, dead_ids) = dead_letters(&stack).await;
        let open = ids
            .keys()
            .filter(|id| !taken.contains(*id) && !dead_ids.contains(*id))
            .count();
        for id in &order_ids {
            if settled.contains_key(id) {
                continue;
            }
            let (code, o) = stack.get(&format!("/v1/orders/{id}")).await;
            let status = o["status"].as_str().unwrap_or_default();
            if code == 200 && (status == "CONFIRMED" || status == "REJECTED") {
                settled.insert(id.clone(), status.to_string());
            }
        }
        let emails = approval_emails(&mail).await;
        let unmailed = task_titles
            .iter()
            .filter(|t| !emails.contains_key(*t))
            .count();
        if (open == 0 && settled.len() == order_ids.len() && unmailed == 0)
            || Instant::now() > deadline
        {
            break (dead, dead_ids, emails);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        target.forget_requests();
    };
    report.processed = stack.processed_count().await;
    report.dead_lettered = dead;

    // The reckoning: events.
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
                report
                    .examples
                    .push(format!("event {id} (n {n}) not delivered"));
            }
        }
    }
    // Keys accepted twice.
    for (kind, map) in [
        ("chaos-", &accepted.events),
        ("chaos-order-", &accepted.orders),
        ("chaos-task-", &accepted.tasks),
    ] {
        for (n, got) in map {
            if got.len() > 1 {
                report.duplicated += got.len() - 1;
                report
                    .examples
                    .push(format!("key {kind}{n} accepted as {got:?}"));
            }
        }
    }
    // Orders: settled; stock taken once per confirmed order; one charge key.
    let confirmed = settled.values().filter(|s| *s == "CONFIRMED").count();
    report.orders.1 = confirmed;
    report.orders.2 = settled.len() - confirmed;
    for id in order_ids.iter().filter(|id| !settled.contains_key(*id)) {
        report.lost += 1;
        report.examples.push(format!("order {id} not settled"));
    }
    let (_, inv) = stack.get(&format!("/v1/inventory/{SKU}")).await;
    let available = inv["available"].as_i64().unwrap_or(-1);
    let expected = STOCK - confirmed as i64;
    if available < expected {
        report.duplicated += (expected - available) as usize;
        report.examples.push(format!(
            "stock {available}, {expected} expected: taken twice"
        ));
    } else if available > expected {
        report.lost += (available - expected) as usize;
        report.examples.push(format!(
            "stock {available}, {expected} expected: confirmed orders that took none"
        ));
    }
    for (order, keys) in charges.lock().unwrap().iter() {
        if keys.len() > 1 {
            report.duplicated += keys.len() - 1;
            report
                .examples
                .push(format!("order {order} charged under {keys:?}"));
        }
    }
    // Tasks: one approval message each.
    for title in &task_titles {
        match emails.get(title) {
            None => {
                report.lost += 1;
                report.examples.push(format!("{title}: no approval email"));
            }
            Some((messages, copies)) => {
                report.tasks.1 += 1;
                report.resent += copies - messages.len();
                if messages.len() > 1 {
                    report.duplicated += messages.len() - 1;
                    report
                        .examples
                        .push(format!("{title}: approval sent as {messages:?}"));
                }
            }
        }
    }
    report.examples.truncate(10);
    Ok(report)
}

/// The approval emails received, by task title: their distinct
/// Message-IDs and the number of copies.
async fn approval_emails(mail: &Mailbox) -> HashMap<String, (HashSet<String>, usize)> {
    let mut out: HashMap<String, (HashSet<String>, usize)> = HashMap::new();
    for m in mail.messages(Some(APPROVER)).await.unwrap_or_default() {
        let Some(title) = m["subject"]
            .as_str()
            .and_then(|s| s.strip_prefix("Approval needed: "))
        else {
            continue;
        };
        let id = m["headers"]["Message-ID"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let e = out.entry(title.to_string()).or_default();
        e.0.insert(id);
        e.1 += 1;
    }
    out
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
