//! Rules and targets: what the admin API accepts, checked and compiled into
//! what routing and delivery use.
//!
//! Every problem is a [`Violation`] naming the field by JSON pointer into the
//! request's JSON form (the gateway's REST body): `/event_pattern/detail/x/0`,
//! `/targets/2/url`, `/targets/0/retry_policy/maximum_retry_attempts`.
//! Nothing here does I/O.

pub mod schedule;
mod target;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use sluice_patterns::Pattern;
use sluice_proto::v1;

pub use target::{
    check_kafka_topic, compile_target, keep_secrets, Auth, Destination, Http, InputSpec, Kafka,
    OAuth,
};

/// Most targets a rule may have (EventBridge's limit).
pub const MAX_TARGETS: usize = 5;
/// Longest rule or bus description.
pub const MAX_DESCRIPTION: usize = 512;
/// What a secret reads as.
pub const REDACTED: &str = "********";
/// Largest rule, encoded (well under the store's item limit).
pub const MAX_RULE_BYTES: usize = 256 * 1024;

pub use sluice_runtime::grpc::Violation;

/// What compiling needs besides the rule.
#[derive(Debug, Clone)]
pub struct Ctx<'a> {
    /// Which addresses HTTP targets may reach.
    pub policy: &'a crate::address::Policy,
    /// Concurrency of a target that sets none.
    pub default_concurrency: u32,
    /// What schedule expressions may use besides EventBridge's syntax.
    pub schedules: schedule::Allow,
    /// The rule was accepted before (it is being loaded from the store):
    /// limits that apply to new input only (wildcard complexity, the
    /// seconds setting, the size) are not applied again, so an upgrade or a
    /// setting changed later never silently stops a stored rule.
    pub stored: bool,
}

/// How often and how long a target's deliveries are retried (0–185 retries).
pub use sluice_outbound::retry::Retry;

/// A target ready to deliver to.
#[derive(Debug)]
pub struct CompiledTarget {
    /// Names its subject, consumer and dead letters.
    pub key: String,
    /// Bus of the rule.
    pub bus: String,
    /// The rule.
    pub rule: String,
    /// The target's id.
    pub id: String,
    /// Where deliveries go.
    pub destination: Destination,
    /// What the target receives.
    pub input: InputSpec,
    /// Retry policy.
    pub retry: Retry,
    /// In flight at once, across replicas.
    pub max_concurrency: u32,
    /// Deliveries per second across replicas.
    pub rate_per_second: Option<f64>,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Where the event's message group is (`ordering_key`): deliveries of
    /// one group are made one at a time, in order.
    pub ordering: Option<sluice_patterns::transform::JsonPath>,
    /// Changes whenever anything a delivery worker holds changes.
    pub fingerprint: u64,
}

impl CompiledTarget {
    /// The subject a delivery of `event` (JSON) to this target is stored on:
    /// its message group's partition for an ordered target.
    pub fn subject_for(&self, event: &[u8]) -> String {
        match &self.ordering {
            None => sluice_bus::subjects::deliver(&self.key),
            Some(path) => {
                let group = serde_json::from_slice::<serde_json::Value>(event)
                    .ok()
                    .and_then(|e| {
                        path.select(&e).map(|v| match v {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                    })
                    .unwrap_or_default();
                let p = crate::deliver::kafka::murmur2(group.as_bytes()) as u32 & 0x7fff_ffff;
                sluice_bus::subjects::deliver_ordered(
                    &self.key,
                    p % sluice_bus::subjects::ORDER_PARTITIONS,
                )
            }
        }
    }
}

/// A rule ready to match.
#[derive(Debug)]
pub struct CompiledRule {
    /// Its bus.
    pub bus: String,
    /// Its name.
    pub name: String,
    /// Whether it matches at all.
    pub enabled: bool,
    /// Its event pattern (none for a scheduled rule).
    pub pattern: Option<Pattern>,
    /// Its schedule (none for a rule with an event pattern).
    pub schedule: Option<Arc<schedule::Schedule>>,
    /// When the rule last changed (its ticks before then are not its own).
    pub changed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Its targets.
    pub targets: Vec<Arc<CompiledTarget>>,
    /// The rule as stored.
    pub proto: v1::Rule,
}

pub(crate) fn check_description(pointer: &str, text: &str) -> Result<(), Violation> {
    if text.chars().count() > MAX_DESCRIPTION {
        return Err(Violation::new(
            pointer,
            format!("must be at most {MAX_DESCRIPTION} characters"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(Violation::new(
            pointer,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Checks a bus for `PutBus`.
pub fn check_bus(name: &str, description: &str) -> Result<(), Violation> {
    sluice_model::names::check_bus(name).map_err(|e| Violation::new("", e))?;
    check_description("/description", description)
}

/// Parses and checks an event pattern given as JSON text; the pointer of a
/// problem is under `at`.
pub fn compile_pattern(at: &str, text: &str) -> Result<Pattern, Violation> {
    compile_pattern_as(at, text, false)
}

fn compile_pattern_as(at: &str, text: &str, stored: bool) -> Result<Pattern, Violation> {
    if text.trim().is_empty() {
        return Err(Violation::new(at, "an event pattern is required"));
    }
    if text.len() > sluice_patterns::limits::MAX_PATTERN_BYTES {
        return Err(Violation::new(
            at,
            format!(
                "is {} bytes; an event pattern may have at most {}",
                text.len(),
                sluice_patterns::limits::MAX_PATTERN_BYTES
            ),
        ));
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Violation::new(at, format!("is not JSON: {e}")))?;
    let parsed = if stored {
        Pattern::parse_stored(&value)
    } else {
        Pattern::parse(&value)
    };
    parsed.map_err(|e| Violation::new(format!("{at}{}", e.pointer), e.message))
}

/// Checks and compiles a rule (its names, pattern, state, description and
/// targets).
pub fn compile_rule(rule: &v1::Rule, ctx: &Ctx<'_>) -> Result<CompiledRule, Violation> {
    sluice_model::names::check_bus(&rule.bus).map_err(|e| Violation::new("", e))?;
    sluice_model::names::check_rule(&rule.name).map_err(|e| Violation::new("", e))?;
    let (pattern, schedule) = match (
        rule.event_pattern.trim().is_empty(),
        rule.schedule.trim().is_empty(),
    ) {
        (false, true) => (
            Some(compile_pattern_as(
                "/event_pattern",
                &rule.event_pattern,
                ctx.stored,
            )?),
            None,
        ),
        (true, false) => (None, Some(Arc::new(compile_schedule(rule, ctx)?))),
        (true, true) => {
            return Err(Violation::new(
                "",
                "a rule needs an event_pattern or a schedule",
            ))
        }
        (false, false) => {
            return Err(Violation::new(
                "/schedule",
                "a rule has an event_pattern or a schedule, not both",
            ))
        }
    };
    if schedule.is_none() && !rule.schedule_timezone.is_empty() {
        return Err(Violation::new(
            "/schedule_timezone",
            "applies only to a rule with a schedule",
        ));
    }
    let enabled = match v1::RuleState::try_from(rule.state) {
        Ok(v1::RuleState::Unspecified | v1::RuleState::Enabled) => true,
        Ok(v1::RuleState::Disabled) => false,
        Err(_) => return Err(Violation::new("/state", "must be ENABLED or DISABLED")),
    };
    check_description("/description", &rule.description)?;
    if rule.targets.len() > MAX_TARGETS {
        return Err(Violation::new(
            "/targets",
            format!(
                "a rule may have at most {MAX_TARGETS} targets, not {}",
                rule.targets.len()
            ),
        ));
    }
    let mut targets = Vec::with_capacity(rule.targets.len());
    for (i, t) in rule.targets.iter().enumerate() {
        let at = format!("/targets/{i}");
        if rule.targets[..i].iter().any(|o| o.id == t.id) {
            return Err(Violation::new(
                format!("{at}/id"),
                format!("another target of this rule has the id {:?}", t.id),
            ));
        }
        targets.push(Arc::new(compile_target(
            &rule.bus, &rule.name, t, &at, ctx,
        )?));
    }
    let size = prost::Message::encoded_len(rule);
    if size > MAX_RULE_BYTES && !ctx.stored {
        return Err(Violation::new(
            "",
            format!("the rule is {size} bytes; a rule may have at most {MAX_RULE_BYTES}"),
        ));
    }
    let mut proto = rule.clone();
    proto.state = if enabled {
        v1::RuleState::Enabled as i32
    } else {
        v1::RuleState::Disabled as i32
    };
    Ok(CompiledRule {
        bus: rule.bus.clone(),
        name: rule.name.clone(),
        enabled,
        pattern,
        schedule,
        changed_at: rfc3339(&rule.updated_at),
        targets,
        proto,
    })
}

fn rfc3339(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// Parses a rule's schedule; rate ticks count from its creation (now, for
/// a rule not stored yet).
fn compile_schedule(rule: &v1::Rule, ctx: &Ctx<'_>) -> Result<schedule::Schedule, Violation> {
    let anchor = rfc3339(&rule.created_at).unwrap_or_else(chrono::Utc::now);
    let allow = schedule::Allow {
        seconds: ctx.schedules.seconds || ctx.stored,
    };
    schedule::parse(&rule.schedule, &rule.schedule_timezone, anchor, allow).map_err(|e| {
        let at = if e.contains("time zone") {
            "/schedule_timezone"
        } else {
            "/schedule"
        };
        Violation::new(at, e)
    })
}

/// The rule as clients may see it: secrets replaced by [`REDACTED`].
pub fn redacted(rule: &v1::Rule) -> v1::Rule {
    let mut r = rule.clone();
    for t in &mut r.targets {
        target::redact(t);
    }
    r
}

/// The rule's identifier as predefined input variables show it.
pub fn rule_arn(region: &str, account: &str, bus: &str, rule: &str) -> String {
    if bus == sluice_model::names::DEFAULT_BUS {
        format!("arn:sluice:events:{region}:{account}:rule/{rule}")
    } else {
        format!("arn:sluice:events:{region}:{account}:rule/{bus}/{rule}")
    }
}
