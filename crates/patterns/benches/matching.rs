//! Matching throughput: events/s against 1, 100, 1,000 and 10,000 rules,
//! for the multi-rule [`Matcher`] and for a naive loop that evaluates every
//! rule. The corpus (rules and 1–4 KiB events, generated deterministically)
//! is also written to `target/patterns-bench/` so the event-ruler harness
//! (`bench/event-ruler`) measures the same rules on the same events.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::{json, Value};
use sluice_patterns::{Matcher, Pattern, Scratch};

/// A small deterministic generator (xorshift64*), so every run and the Java
/// harness see the same corpus.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const SOURCES: &[&str] = &[
    "shop",
    "billing",
    "shipping",
    "auth",
    "inventory",
    "search",
    "catalog",
    "crm",
];
const STATES: &[&str] = &[
    "pending",
    "running",
    "stopped",
    "failed",
    "shipped",
    "cancelled",
];
const REGIONS: &[&str] = &["eu-west-1", "us-east-1", "ap-south-1", "sa-east-1"];

fn detail_type(i: u64) -> String {
    format!("Type{i}")
}

/// An event of 1–4 KiB.
fn event(rng: &mut Rng) -> Value {
    let source = rng.pick(SOURCES);
    let items: Vec<Value> = (0..1 + rng.below(8))
        .map(|i| {
            json!({"sku": format!("SKU-{}", rng.below(500)), "qty": 1 + rng.below(5),
                   "price": (rng.below(100_000) as f64) / 100.0, "line": i,
                   "tags": [rng.pick(&["gift", "sale", "new", "bulk"]), rng.pick(&["red", "blue", "green"])]})
        })
        .collect();
    let mut note = String::new();
    for _ in 0..rng.below(24) {
        let _ = write!(
            note,
            "{} ",
            rng.pick(&["lorem", "ipsum", "dolor", "sit", "amet", "consectetur"])
        );
    }
    json!({
        "version": "0",
        "id": format!("{:016x}", rng.next()),
        "detail-type": detail_type(rng.below(200)),
        "source": source,
        "account": "123456789012",
        "time": "2026-11-21T12:00:00Z",
        "region": rng.pick(REGIONS),
        "resources": [format!("arn:sluice:{source}:{}", rng.below(1000))],
        "detail": {
            "state": rng.pick(STATES),
            "customer": {"id": format!("c-{}", rng.below(10_000)), "tier": rng.pick(&["gold", "silver", "bronze"]),
                         "email": format!("user{}@example.com", rng.below(10_000))},
            "total": (rng.below(1_000_000) as f64) / 100.0,
            "items": items,
            "ip": format!("10.{}.{}.{}", rng.below(256), rng.below(256), rng.below(256)),
            "note": note,
            "flags": {"express": rng.below(2) == 0, "coupon": if rng.below(3) == 0 { Value::Null } else { json!("SAVE10") }}
        }
    })
}

/// A rule of the kinds teams write: source and detail-type, often with a
/// condition on the detail.
fn rule(rng: &mut Rng) -> Value {
    let mut r =
        json!({"source": [rng.pick(SOURCES)], "detail-type": [detail_type(rng.below(200))]});
    let detail = match rng.below(8) {
        0 => json!({"state": [rng.pick(STATES), rng.pick(STATES)]}),
        1 => json!({"total": [{"numeric": [">", rng.below(5000), "<=", 5000 + rng.below(5000)]}]}),
        2 => json!({"customer": {"tier": [{"anything-but": ["bronze"]}]}}),
        3 => json!({"items": {"sku": [{"prefix": format!("SKU-{}", rng.below(50))}]}}),
        4 => json!({"ip": [{"cidr": format!("10.{}.0.0/16", rng.below(256))}]}),
        5 => {
            json!({"flags": {"coupon": [{"exists": true}]}, "customer": {"email": [{"suffix": "@example.com"}]}})
        }
        6 => json!({"$or": [{"state": ["failed"]}, {"total": [{"numeric": [">", 9000]}]}]}),
        _ => Value::Null,
    };
    if !detail.is_null() {
        r["detail"] = detail;
    }
    if rng.below(10) == 0 {
        r["region"] = json!([{"equals-ignore-case": rng.pick(REGIONS).to_uppercase()}]);
    }
    r
}

fn corpus() -> (Vec<Value>, Vec<Value>) {
    let mut rng = Rng(0x5a1c_e5a1_ce00_0001);
    let rules = (0..10_000).map(|_| rule(&mut rng)).collect();
    let events = (0..500).map(|_| event(&mut rng)).collect();
    (rules, events)
}

fn write_corpus(rules: &[Value], events: &[Value]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/patterns-bench");
    let _ = std::fs::create_dir_all(&dir);
    let lines = |vs: &[Value]| {
        vs.iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let _ = std::fs::write(dir.join("rules.jsonl"), lines(rules));
    let _ = std::fs::write(dir.join("events.jsonl"), lines(events));
}

fn matching(c: &mut Criterion) {
    let (rules, events) = corpus();
    write_corpus(&rules, &events);
    // Events arrive as text: every measurement includes reading them, as
    // event-ruler's rulesForJSONEvent does (the matcher reads only the
    // values its rules name; the naive loop parses the whole event).
    let texts: Vec<String> = events.iter().map(Value::to_string).collect();
    let compiled: Vec<Pattern> = rules
        .iter()
        .map(|r| Pattern::parse(r).expect("valid rule"))
        .collect();
    let mut group = c.benchmark_group("matching");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.sample_size(10);
    for n in [1usize, 100, 1000, 10_000] {
        let mut m = Matcher::new();
        for (i, p) in compiled[..n].iter().enumerate() {
            m.add(format!("r{i}"), p);
        }
        let mut scratch = Scratch::default();
        let mut out = Vec::new();
        let mut total = 0usize;
        let mut parsed = Vec::new();
        for (e, t) in events.iter().zip(&texts) {
            m.matches_with(e, &mut scratch, &mut parsed).expect("match");
            m.matches_json(t, &mut scratch, &mut out).expect("match");
            assert_eq!(out, parsed, "text and value disagree on {t}");
            total += out.len();
        }
        println!("matches with {n} rules: {total}");
        group.bench_with_input(BenchmarkId::new("matcher", n), &n, |b, _| {
            b.iter(|| {
                for t in &texts {
                    m.matches_json(black_box(t), &mut scratch, &mut out)
                        .expect("match");
                }
            })
        });
        if n <= 1000 {
            group.bench_with_input(BenchmarkId::new("naive", n), &n, |b, _| {
                b.iter(|| {
                    for t in &texts {
                        let e: Value = serde_json::from_str(black_box(t)).expect("json");
                        for p in &compiled[..n] {
                            black_box(p.matches(&e).expect("match"));
                        }
                    }
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, matching);
criterion_main!(benches);
