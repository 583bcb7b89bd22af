//! Schedule expressions, as EventBridge writes them: `rate(value unit)` and
//! `cron(minutes hours day-of-month month day-of-week year)`, evaluated in a
//! time zone.
//!
//! - A rate ticks every `value unit`, counted from the rule's creation, so
//!   every replica computes the same ticks. A day is 24 hours, whatever the
//!   time zone does.
//! - A cron expression has six fields: `*`, `?`, lists, ranges, steps
//!   (`0/15` and `*/15`), month and weekday names, weekdays 1–7 from Sunday,
//!   `L` (last day of the month, or `6L` the last Friday), `W` (`15W`, the
//!   weekday nearest the 15th) and `#` (`6#3`, the third Friday). One of the
//!   two day fields must be `?`.
//! - Daylight saving time, as EventBridge Scheduler: a local time the clock
//!   skips does not fire that day; a local time that occurs twice fires
//!   once, at its first occurrence.
//!
//! Evaluation is croner's; this module holds EventBridge's syntax and rules
//! on top of it.

use std::str::FromStr as _;
use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// Longest schedule expression (EventBridge's limit).
pub const MAX_EXPRESSION: usize = 256;

/// How often a schedule ticks.
#[derive(Debug, Clone)]
enum Every {
    /// A fixed period from an anchor.
    Rate(Duration),
    /// Calendar times in the schedule's zone.
    Cron(Box<Cron>),
}

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    every: Every,
    zone: Tz,
    /// Milliseconds since the epoch that rate ticks count from.
    anchor_ms: i64,
}

/// What parsing allows besides EventBridge's syntax.
#[derive(Debug, Clone, Copy, Default)]
pub struct Allow {
    /// `rate(n second|seconds)`: off unless `SLUICE_SCHEDULE_ALLOW_SECONDS`
    /// says so (for tests; EventBridge's shortest rate is a minute).
    pub seconds: bool,
}

/// Parses `expression` in time zone `zone` (an IANA name; `UTC` when
/// empty). Rate ticks count from `anchor` (the rule's creation).
pub fn parse(
    expression: &str,
    zone: &str,
    anchor: DateTime<Utc>,
    allow: Allow,
) -> Result<Schedule, String> {
    if expression.len() > MAX_EXPRESSION {
        return Err(format!(
            "is {} characters; a schedule expression may have at most {MAX_EXPRESSION}",
            expression.len()
        ));
    }
    let zone = parse_zone(zone)?;
    let every = if let Some(inner) = inside(expression, "rate") {
        Every::Rate(parse_rate(inner, allow)?)
    } else if let Some(inner) = inside(expression, "cron") {
        Every::Cron(Box::new(parse_cron(inner)?))
    } else {
        return Err(
            "must be rate(value unit) or cron(minutes hours day-of-month month day-of-week year)"
                .into(),
        );
    };
    Ok(Schedule {
        every,
        zone,
        anchor_ms: anchor.timestamp_millis(),
    })
}

/// The time zone named `name` (`UTC` when empty).
pub fn parse_zone(name: &str) -> Result<Tz, String> {
    if name.is_empty() {
        return Ok(Tz::UTC);
    }
    Tz::from_str(name).map_err(|_| {
        format!("{name:?} is not a time zone of the IANA database (e.g. Europe/Berlin)")
    })
}

fn inside<'a>(expression: &'a str, word: &str) -> Option<&'a str> {
    expression
        .trim()
        .strip_prefix(word)?
        .strip_prefix('(')?
        .strip_suffix(')')
        .map(str::trim)
}

fn parse_rate(inner: &str, allow: Allow) -> Result<Duration, String> {
    let mut parts = inner.split_whitespace();
    let (Some(value), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err("a rate is rate(value unit), e.g. rate(5 minutes)".into());
    };
    let value: u64 = match value.parse() {
        Ok(v) if v > 0 => v,
        _ => {
            return Err(format!(
                "the rate's value must be a positive whole number, not {value:?}"
            ))
        }
    };
    let seconds = match unit {
        "second" | "seconds" if allow.seconds => 1,
        "second" | "seconds" => {
            return Err("a rate in seconds is allowed only when SLUICE_SCHEDULE_ALLOW_SECONDS is set; the shortest rate is 1 minute".into())
        }
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86_400,
        _ => return Err(format!("the rate's unit must be minutes, hours or days, not {unit:?}")),
    };
    // EventBridge: the unit is singular for 1 and plural otherwise.
    let plural = unit.ends_with('s');
    if (value == 1) == plural {
        return Err(if value == 1 {
            format!(
                "a rate of 1 takes a singular unit: rate(1 {})",
                unit.trim_end_matches('s')
            )
        } else {
            format!("a rate of {value} takes a plural unit: rate({value} {unit}s)")
        });
    }
    value
        .checked_mul(seconds)
        .filter(|s| *s <= 10 * 365 * 86_400)
        .map(Duration::from_secs)
        .ok_or_else(|| "the rate may be at most 10 years".to_string())
}

fn parse_cron(inner: &str) -> Result<Cron, String> {
    let fields: Vec<&str> = inner.split_whitespace().collect();
    if fields.len() != 6 {
        return Err(format!(
            "a cron expression has 6 fields (minutes hours day-of-month month day-of-week year), not {}",
            fields.len()
        ));
    }
    let (dom, dow) = (fields[2], fields[4]);
    match (dom == "?", dow == "?") {
        (true, true) => {
            return Err("only one of day-of-month and day-of-week may be ?".into());
        }
        (false, false) => {
            return Err(
                "one of day-of-month and day-of-week must be ? (they cannot both be set)".into(),
            );
        }
        _ => {}
    }
    let year = fields[5];
    for part in year.split(',') {
        for bound in part.split(['-', '/']) {
            if let Ok(y) = bound.parse::<u32>() {
                let is_step = part.contains('/') && part.split('/').nth(1) == Some(bound);
                if !is_step && !(1970..=2199).contains(&y) {
                    return Err(format!("the year {y} is outside 1970-2199"));
                }
            }
        }
    }
    // Seconds are always 0; weekdays count 1-7 from Sunday (Quartz's
    // numbering, which is EventBridge's).
    let pattern = format!("0 {}", fields.join(" "));
    CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Required)
        .alternative_weekdays(true)
        .sloppy_ranges(true)
        .build()
        .parse(&pattern)
        .map_err(|e| format!("is not a valid cron expression: {e}"))
}

/// Enough candidates to step over any daylight-saving gap.
const MAX_SKIPS: usize = 8;

impl Schedule {
    /// Whether `t` is the second of two instants with the same local time
    /// (the hour a daylight-saving change repeats).
    fn repeats(&self, t: &DateTime<Tz>) -> bool {
        self.first_of(t) != *t
    }

    /// The earlier of the instants that share `t`'s local time.
    fn first_of(&self, t: &DateTime<Tz>) -> DateTime<Tz> {
        use chrono::TimeZone as _;
        match self.zone.from_local_datetime(&t.naive_local()) {
            chrono::LocalResult::Ambiguous(a, b) => a.min(b),
            _ => *t,
        }
    }

    /// The period of a rate schedule.
    pub fn rate(&self) -> Option<Duration> {
        match &self.every {
            Every::Rate(d) => Some(*d),
            Every::Cron(_) => None,
        }
    }

    /// The first tick strictly after `t`, if there is one.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.every {
            Every::Rate(period) => {
                let p = i64::try_from(period.as_millis()).ok()?.max(1);
                let ms = t.timestamp_millis();
                let k = if ms < self.anchor_ms {
                    1
                } else {
                    (ms - self.anchor_ms) / p + 1
                };
                Utc.timestamp_millis_opt(self.anchor_ms.checked_add(k.checked_mul(p)?)?)
                    .single()
            }
            Every::Cron(cron) => {
                let mut from = t.with_timezone(&self.zone);
                for _ in 0..MAX_SKIPS {
                    let next = cron.find_next_occurrence(&from, false).ok()?;
                    // croner moves a time the clock skips to the first one
                    // after the gap, and may fire a repeated local time
                    // twice; EventBridge skips the first and fires the
                    // second once, at its earlier occurrence.
                    if cron.is_time_matching(&next).unwrap_or(false) && !self.repeats(&next) {
                        return Some(next.with_timezone(&Utc));
                    }
                    from = next;
                }
                None
            }
        }
    }

    /// The last tick at or before `t`, if there is one (never before the anchor).
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.every {
            Every::Rate(period) => {
                let p = i64::try_from(period.as_millis()).ok()?.max(1);
                let ms = t.timestamp_millis();
                if ms < self.anchor_ms + p {
                    return None;
                }
                let k = (ms - self.anchor_ms) / p;
                Utc.timestamp_millis_opt(self.anchor_ms + k * p).single()
            }
            Every::Cron(cron) => {
                let mut from = t.with_timezone(&self.zone);
                let mut inclusive = true;
                for _ in 0..MAX_SKIPS {
                    let prev = cron.find_previous_occurrence(&from, inclusive).ok()?;
                    if cron.is_time_matching(&prev).unwrap_or(false) {
                        // The first of two equal local times is the one that fires.
                        return Some(self.first_of(&prev).with_timezone(&Utc));
                    }
                    from = prev;
                    inclusive = false;
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn cron(expr: &str, zone: &str) -> Schedule {
        parse(expr, zone, at("2026-01-01T00:00:00Z"), Allow::default())
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    /// The next `n` ticks after `from`, in RFC 3339 with the zone's offset.
    fn ticks(s: &Schedule, from: &str, n: usize) -> Vec<String> {
        let mut t = at(from);
        let mut out = Vec::new();
        for _ in 0..n {
            t = s.next_after(t).unwrap();
            out.push(t.with_timezone(&s.zone).to_rfc3339());
        }
        out
    }

    #[test]
    fn cron_next_fire_times_follow_eventbridge() {
        // (expression, zone, after, expected next ticks)
        let table: &[(&str, &str, &str, &[&str])] = &[
            (
                "cron(0 12 * * ? *)",
                "",
                "2026-03-07T12:00:00Z",
                &["2026-03-08T12:00:00+00:00", "2026-03-09T12:00:00+00:00"],
            ),
            (
                "cron(0/15 * * * ? *)",
                "",
                "2026-03-07T10:07:00Z",
                &["2026-03-07T10:15:00+00:00", "2026-03-07T10:30:00+00:00"],
            ),
            (
                "cron(0 18 ? * MON-FRI *)",
                "",
                "2026-03-06T19:00:00Z",
                &["2026-03-09T18:00:00+00:00", "2026-03-10T18:00:00+00:00"],
            ),
            // L: the last day of the month.
            (
                "cron(0 12 L * ? *)",
                "",
                "2026-01-31T13:00:00Z",
                &["2026-02-28T12:00:00+00:00", "2026-03-31T12:00:00+00:00"],
            ),
            // 6L: the last Friday.
            (
                "cron(0 12 ? * 6L *)",
                "",
                "2026-03-01T00:00:00Z",
                &["2026-03-27T12:00:00+00:00", "2026-04-24T12:00:00+00:00"],
            ),
            // W: the weekday nearest the 15th (2026-03-15 is a Sunday).
            (
                "cron(0 12 15W * ? *)",
                "",
                "2026-03-01T00:00:00Z",
                &["2026-03-16T12:00:00+00:00", "2026-04-15T12:00:00+00:00"],
            ),
            // 1W on a Saturday stays in the month: Monday the 3rd.
            (
                "cron(0 9 1W * ? *)",
                "",
                "2026-07-31T00:00:00Z",
                &["2026-08-03T09:00:00+00:00"],
            ),
            // #: the third Friday; 2#1 the first Monday.
            (
                "cron(0 12 ? * 6#3 *)",
                "",
                "2026-03-01T00:00:00Z",
                &["2026-03-20T12:00:00+00:00", "2026-04-17T12:00:00+00:00"],
            ),
            (
                "cron(30 8 ? * 2#1 *)",
                "",
                "2026-03-01T00:00:00Z",
                &["2026-03-02T08:30:00+00:00", "2026-04-06T08:30:00+00:00"],
            ),
            // Lists, names and a year.
            (
                "cron(0 8,17 ? JAN,JUL SUN 2027)",
                "",
                "2026-03-01T00:00:00Z",
                &["2027-01-03T08:00:00+00:00", "2027-01-03T17:00:00+00:00"],
            ),
            // A time zone, across the spring change in New York (2026-03-08).
            (
                "cron(0 9 * * ? *)",
                "America/New_York",
                "2026-03-07T00:00:00Z",
                &[
                    "2026-03-07T09:00:00-05:00",
                    "2026-03-08T09:00:00-04:00",
                    "2026-03-09T09:00:00-04:00",
                ],
            ),
            // 02:30 does not exist on 2026-03-08 in New York: that day is skipped.
            (
                "cron(30 2 * * ? *)",
                "America/New_York",
                "2026-03-07T00:00:00Z",
                &["2026-03-07T02:30:00-05:00", "2026-03-09T02:30:00-04:00"],
            ),
            // 01:30 happens twice on 2026-11-01 in New York: it fires once.
            (
                "cron(30 1 * * ? *)",
                "America/New_York",
                "2026-10-31T12:00:00Z",
                &["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
            ),
            // Europe changes on the last Sunday of March.
            (
                "cron(0 2 ? * 1L *)",
                "Europe/Berlin",
                "2026-03-01T00:00:00Z",
                &["2026-04-26T02:00:00+02:00", "2026-05-31T02:00:00+02:00"],
            ),
            // Southern hemisphere: Sydney leaves summer time on 2026-04-05.
            (
                "cron(0 12 5 4 ? *)",
                "Australia/Sydney",
                "2026-01-01T00:00:00Z",
                &["2026-04-05T12:00:00+10:00", "2027-04-05T12:00:00+10:00"],
            ),
        ];
        for (expr, zone, from, expected) in table {
            let s = cron(expr, zone);
            assert_eq!(
                &ticks(&s, from, expected.len()),
                expected,
                "{expr} in {zone:?} after {from}"
            );
        }
    }

    #[test]
    fn an_interval_in_the_repeated_hour_fires_each_local_time_once() {
        // 01:00-02:00 happens twice in New York on 2026-11-01.
        let s = cron("cron(0/30 * * * ? *)", "America/New_York");
        assert_eq!(
            ticks(&s, "2026-11-01T04:45:00Z", 4),
            [
                "2026-11-01T01:00:00-04:00",
                "2026-11-01T01:30:00-04:00",
                "2026-11-01T02:00:00-05:00",
                "2026-11-01T02:30:00-05:00",
            ]
        );
        // Lord Howe moves by 30 minutes: 01:30-02:00 repeats on 2026-04-05.
        let s = cron("cron(45 1 * * ? *)", "Australia/Lord_Howe");
        let t = s.next_after(at("2026-04-04T12:00:00Z")).unwrap();
        assert_eq!(
            t.with_timezone(&s.zone).to_rfc3339(),
            "2026-04-05T01:45:00+11:00"
        );
        assert_eq!(s.latest_at_or_before(at("2026-04-04T16:00:00Z")), Some(t));
    }

    #[test]
    fn the_latest_tick_is_found_going_back() {
        let s = cron("cron(0/15 * * * ? *)", "");
        assert_eq!(
            s.latest_at_or_before(at("2026-03-07T10:29:59Z")),
            Some(at("2026-03-07T10:15:00Z"))
        );
        assert_eq!(
            s.latest_at_or_before(at("2026-03-07T10:30:00Z")),
            Some(at("2026-03-07T10:30:00Z"))
        );
        let s = cron("cron(30 1 * * ? *)", "America/New_York");
        // After the second 01:30 of the fall change, the one that fired is the first.
        assert_eq!(
            s.latest_at_or_before(at("2026-11-01T07:00:00Z")),
            Some(at("2026-11-01T05:30:00Z"))
        );
    }

    #[test]
    fn rates_tick_from_the_anchor() {
        let anchor = at("2026-03-07T10:00:20Z");
        let s = parse("rate(5 minutes)", "", anchor, Allow::default()).unwrap();
        assert_eq!(s.next_after(anchor), Some(at("2026-03-07T10:05:20Z")));
        assert_eq!(
            s.next_after(at("2026-03-07T10:05:20Z")),
            Some(at("2026-03-07T10:10:20Z"))
        );
        assert_eq!(
            s.next_after(at("2026-03-07T09:00:00Z")),
            Some(at("2026-03-07T10:05:20Z"))
        );
        assert_eq!(s.latest_at_or_before(at("2026-03-07T10:04:00Z")), None);
        assert_eq!(
            s.latest_at_or_before(at("2026-03-07T10:12:00Z")),
            Some(at("2026-03-07T10:10:20Z"))
        );
        // A day is 24 hours, whatever the zone's clock does.
        let s = parse(
            "rate(1 day)",
            "America/New_York",
            at("2026-03-07T12:00:00Z"),
            Allow::default(),
        )
        .unwrap();
        assert_eq!(
            s.next_after(at("2026-03-07T12:00:00Z")),
            Some(at("2026-03-08T12:00:00Z"))
        );
        let s = parse("rate(2 seconds)", "", anchor, Allow { seconds: true }).unwrap();
        assert_eq!(s.rate(), Some(Duration::from_secs(2)));
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        let anchor = at("2026-01-01T00:00:00Z");
        let err = |e: &str, z: &str| parse(e, z, anchor, Allow::default()).unwrap_err();
        assert!(err("every 5 minutes", "").contains("must be rate(value unit) or cron("));
        assert!(err("rate(1 minutes)", "").contains("singular unit"));
        assert!(err("rate(5 minute)", "").contains("plural unit"));
        assert!(err("rate(0 minutes)", "").contains("positive whole number"));
        assert!(err("rate(5 weeks)", "").contains("minutes, hours or days"));
        assert!(err("rate(10 seconds)", "").contains("SLUICE_SCHEDULE_ALLOW_SECONDS"));
        assert!(err("cron(0 12 * * *)", "").contains("6 fields"));
        assert!(err("cron(0 12 * * * *)", "").contains("must be ?"));
        assert!(err("cron(0 12 ? * ? *)", "").contains("only one of"));
        assert!(err("cron(0 25 * * ? *)", "").contains("not a valid cron expression"));
        assert!(err("cron(0 12 * * ? 2300)", "").contains("1970-2199"));
        assert!(err("cron(0 12 * * ? *)", "Mars/Olympus").contains("IANA"));
        assert!(err(&format!("rate({} minutes)", "9".repeat(300)), "").contains("at most 256"));
    }
}
