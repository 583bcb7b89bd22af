//! The rules every replica routes by: read from the store, compiled, and
//! swapped in whole, so routing never waits on the store or sees half a
//! change.
//!
//! A replica reloads a rule when it is told it changed (a core NATS notice
//! on `control.rules` that the replica serving the admin call publishes
//! after writing the store; only the changed bus's matcher is rebuilt), and every rule of every bus every
//! `SLUICE_TRANSFORMER_RELOAD_INTERVAL`, so a missed notice heals. A
//! rule that no longer compiles (written by an older version) is skipped
//! and counted, never half-applied.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use prost::Message;
use serde_json::Value;
use sluice_patterns::{Matcher, Scratch};
use sluice_proto::v1;
use sluice_store::rules::RuleRecord;
use tokio::sync::watch;

use crate::model::{compile_rule, CompiledRule, CompiledTarget, Ctx};

/// One bus's enabled rules, indexed for matching.
#[derive(Debug, Default)]
pub struct BusRules {
    matcher: Matcher,
    /// Aligned with the matcher's rule indexes.
    rules: Vec<Arc<CompiledRule>>,
}

/// Everything routing and delivery need, at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Per bus: every rule (enabled or not), by name.
    rules: HashMap<String, HashMap<String, Arc<CompiledRule>>>,
    /// Per bus: the enabled rules' matcher.
    matchers: HashMap<String, Arc<BusRules>>,
    /// Every target of every rule, by key.
    targets: HashMap<String, Arc<CompiledTarget>>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<(Scratch, Vec<usize>)> = Default::default();
}

fn bus_rules(by_name: &HashMap<String, Arc<CompiledRule>>) -> BusRules {
    let mut names: Vec<&String> = by_name.keys().collect();
    names.sort();
    let mut br = BusRules::default();
    for name in names {
        let rule = &by_name[name];
        if let (true, Some(pattern)) = (rule.enabled, &rule.pattern) {
            br.matcher.add(rule.name.as_str(), pattern);
            br.rules.push(rule.clone());
        }
    }
    br
}

impl Snapshot {
    /// A snapshot of `rules`, reusing the matchers of `previous` for every
    /// bus not in `changed` (all are rebuilt when `changed` is `None`).
    fn build(
        rules: HashMap<String, HashMap<String, Arc<CompiledRule>>>,
        previous: Option<(&Snapshot, &str)>,
    ) -> Self {
        let mut matchers = HashMap::new();
        let mut targets = HashMap::new();
        for (bus, by_name) in &rules {
            for rule in by_name.values() {
                for t in &rule.targets {
                    targets.insert(t.key.clone(), t.clone());
                }
            }
            let reused = match previous {
                Some((prev, changed)) if changed != bus => prev.matchers.get(bus).cloned(),
                _ => None,
            };
            matchers.insert(
                bus.clone(),
                reused.unwrap_or_else(|| Arc::new(bus_rules(by_name))),
            );
        }
        Self {
            rules,
            matchers,
            targets,
        }
    }

    /// The enabled rules of `bus` that `event` matches.
    pub fn route(
        &self,
        bus: &str,
        event: &Value,
    ) -> Result<Vec<Arc<CompiledRule>>, sluice_patterns::EventError> {
        self.route_by(bus, |m, scratch, out| m.matches_with(event, scratch, out))
    }

    /// The enabled rules of `bus` that the event in JSON text `event` (an
    /// object) matches; reads only the values the rules name.
    pub fn route_json(
        &self,
        bus: &str,
        event: &str,
    ) -> Result<Vec<Arc<CompiledRule>>, sluice_patterns::EventError> {
        self.route_by(bus, |m, scratch, out| m.matches_json(event, scratch, out))
    }

    fn route_by(
        &self,
        bus: &str,
        matches: impl FnOnce(
            &Matcher,
            &mut Scratch,
            &mut Vec<usize>,
        ) -> Result<(), sluice_patterns::EventError>,
    ) -> Result<Vec<Arc<CompiledRule>>, sluice_patterns::EventError> {
        let Some(br) = self.matchers.get(bus) else {
            return Ok(Vec::new());
        };
        if br.rules.is_empty() {
            return Ok(Vec::new());
        }
        SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let (scratch, out) = &mut *guard;
            matches(&br.matcher, scratch, out)?;
            Ok(out.iter().map(|&i| br.rules[i].clone()).collect())
        })
    }

    /// A target by key.
    pub fn target(&self, key: &str) -> Option<&Arc<CompiledTarget>> {
        self.targets.get(key)
    }

    /// Every target.
    pub fn targets(&self) -> impl Iterator<Item = &Arc<CompiledTarget>> {
        self.targets.values()
    }

    /// Every enabled rule with a schedule.
    pub fn scheduled(&self) -> impl Iterator<Item = &Arc<CompiledRule>> {
        self.rules
            .values()
            .flat_map(HashMap::values)
            .filter(|r| r.enabled && r.schedule.is_some())
    }

    /// Rules loaded, enabled or not.
    pub fn rule_count(&self) -> usize {
        self.rules.values().map(HashMap::len).sum()
    }
}

/// Compiles stored rules; those that fail are logged, counted and skipped.
fn compile_records(records: &[RuleRecord], ctx: &Ctx<'_>) -> Vec<Arc<CompiledRule>> {
    let mut out = Vec::with_capacity(records.len());
    for rec in records {
        let compiled = v1::Rule::decode(rec.spec.as_slice())
            .map_err(|e| e.to_string())
            .and_then(|mut r| {
                // Stored apart from the encoding; a schedule counts from them.
                r.created_at.clone_from(&rec.created_at);
                r.updated_at.clone_from(&rec.updated_at);
                r.version = rec.version;
                compile_rule(&r, ctx).map_err(|e| e.to_string())
            });
        match compiled {
            Ok(r) => out.push(Arc::new(r)),
            Err(e) => {
                metrics::counter!("sluice.transformer.rules.invalid").increment(1);
                tracing::error!(bus = %rec.bus, rule = %rec.name, error = %e,
                    "stored rule does not compile; it is not routed");
            }
        }
    }
    out
}

/// The live rules of this replica.
#[derive(Debug)]
pub struct Registry {
    current: RwLock<Arc<Snapshot>>,
    changed: watch::Sender<u64>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            current: RwLock::new(Arc::new(Snapshot::default())),
            changed: watch::channel(0).0,
        }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Told (with a new generation number) after every swap.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn swap(&self, next: Snapshot) {
        metrics::gauge!("sluice.transformer.rules").set(next.rule_count() as f64);
        let next = Arc::new(next);
        match self.current.write() {
            Ok(mut g) => *g = next,
            Err(p) => *p.into_inner() = next,
        }
        self.changed.send_modify(|g| *g += 1);
    }

    /// Replaces every rule with `records`.
    pub fn load_all(&self, records: &[RuleRecord], ctx: &Ctx<'_>) {
        let mut rules: HashMap<String, HashMap<String, Arc<CompiledRule>>> = HashMap::new();
        for r in compile_records(records, ctx) {
            rules
                .entry(r.bus.clone())
                .or_default()
                .insert(r.name.clone(), r);
        }
        self.swap(Snapshot::build(rules, None));
    }

    /// Replaces one rule (`None`: removes it).
    pub fn load_rule(&self, bus: &str, name: &str, record: Option<&RuleRecord>, ctx: &Ctx<'_>) {
        let current = self.snapshot();
        let mut rules = current.rules.clone();
        let by_name = rules.entry(bus.to_string()).or_default();
        by_name.remove(name);
        if let Some(rec) = record {
            for r in compile_records(std::slice::from_ref(rec), ctx) {
                by_name.insert(r.name.clone(), r);
            }
        }
        if by_name.is_empty() {
            rules.remove(bus);
        }
        self.swap(Snapshot::build(rules, Some((&current, bus))));
    }

    /// Replaces the rules of `bus` with `records`.
    pub fn load_bus(&self, bus: &str, records: &[RuleRecord], ctx: &Ctx<'_>) {
        let current = self.snapshot();
        let mut rules = current.rules.clone();
        let mine: HashMap<String, Arc<CompiledRule>> = compile_records(records, ctx)
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
        if mine.is_empty() {
            rules.remove(bus);
        } else {
            rules.insert(bus.to_string(), mine);
        }
        self.swap(Snapshot::build(rules, Some((&current, bus))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::Policy;
    use serde_json::json;

    fn record(bus: &str, name: &str, pattern: Value, enabled: bool) -> RuleRecord {
        let rule = v1::Rule {
            bus: bus.into(),
            name: name.into(),
            event_pattern: pattern.to_string(),
            state: if enabled {
                v1::RuleState::Enabled as i32
            } else {
                v1::RuleState::Disabled as i32
            },
            targets: vec![v1::Target {
                id: "t".into(),
                destination: Some(v1::target::Destination::Topic(v1::TopicTarget {
                    topic: "x".into(),
                })),
                ..Default::default()
            }],
            ..Default::default()
        };
        RuleRecord {
            bus: bus.into(),
            name: name.into(),
            spec: rule.encode_to_vec(),
            version: 1,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn routing_sees_enabled_rules_of_the_events_bus_only() {
        let reg = Registry::new();
        let policy = Policy::default();
        let ctx = Ctx {
            policy: &policy,
            default_concurrency: 4,
            schedules: Default::default(),
            stored: false,
        };
        reg.load_all(
            &[
                record("default", "a", json!({"source": ["s"]}), true),
                record("default", "off", json!({"source": ["s"]}), false),
                record("other", "b", json!({"source": ["s"]}), true),
            ],
            &ctx,
        );
        let snap = reg.snapshot();
        let ev = json!({"source": "s"});
        let names =
            |v: Vec<Arc<CompiledRule>>| v.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(snap.route("default", &ev).unwrap()), ["a"]);
        assert_eq!(names(snap.route("other", &ev).unwrap()), ["b"]);
        assert!(snap.route("nobus", &ev).unwrap().is_empty());
        let text = ev.to_string();
        assert_eq!(names(snap.route_json("default", &text).unwrap()), ["a"]);
        assert_eq!(names(snap.route_json("other", &text).unwrap()), ["b"]);
        assert!(snap.route_json("default", "[1]").is_err());
        assert_eq!(
            snap.targets().count(),
            3,
            "disabled rules keep their targets"
        );

        let rx = reg.subscribe();
        reg.load_bus(
            "default",
            &[record("default", "off", json!({"source": ["s"]}), true)],
            &ctx,
        );
        assert!(rx.has_changed().unwrap());
        let snap = reg.snapshot();
        assert_eq!(names(snap.route("default", &ev).unwrap()), ["off"]);
        assert_eq!(
            names(snap.route("other", &ev).unwrap()),
            ["b"],
            "other buses untouched"
        );
    }

    #[test]
    fn a_stored_rule_that_no_longer_compiles_is_skipped() {
        let reg = Registry::new();
        let policy = Policy::default();
        let ctx = Ctx {
            policy: &policy,
            default_concurrency: 4,
            schedules: Default::default(),
            stored: false,
        };
        let mut bad = record("default", "bad", json!({"source": ["s"]}), true);
        bad.spec = b"\xff\xff not protobuf".to_vec();
        reg.load_all(
            &[
                bad,
                record("default", "good", json!({"source": ["s"]}), true),
            ],
            &ctx,
        );
        assert_eq!(reg.snapshot().rule_count(), 1);
    }
}
