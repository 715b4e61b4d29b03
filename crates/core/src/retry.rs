//! Retry rules: what an HTTP outcome means, and when the next attempt is due.
//!
//! The default is ConnectMachine's: network errors, timeouts, 408, 425, 429 and 5xx are retried;
//! every other non-2xx answer is final; 3 retries 6 minutes apart. A webhook that must be sent once
//! and never retried (as Customermates does) says `retry_schedule: []`.
//!
//! A schedule is written as an explicit list (`6m,6m,6m`, `["30s", "6m", 3600]`) or, item by item,
//! as an exponential expression `exp:<first>..<max> x<retries>` that is expanded to the explicit
//! list when parsed (so it is stored and shown back as the list). Every delay gets jitter
//! ([`Jitter`]) when the next due time is computed, so the retries of a mass outage spread out
//! instead of all firing at the same instant.

use serde_json::Value;
use std::time::Duration;

/// What an attempt's outcome means for its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Worth another attempt, if the schedule has one left.
    Retry,
    /// Final: the receiver told us no.
    Failed,
}

/// Classifies an HTTP status code. Redirects are never followed, so 3xx is final like 4xx.
pub fn classify_status(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        408 | 425 | 429 | 500..=599 => Verdict::Retry,
        _ => Verdict::Failed,
    }
}

/// The answer that says the endpoint is gone for good: the webhook is disabled at once
/// (Standard Webhooks' advice) with [`ENDPOINT_GONE`] as its reason.
pub fn endpoint_gone(status: Option<u16>) -> bool {
    status == Some(410)
}

/// `disabled_reason` of a webhook whose receiver answered 410 Gone.
pub const ENDPOINT_GONE: &str = "endpoint_gone";

/// Most retries a schedule may hold, and the longest single delay.
pub const MAX_RETRIES: usize = 50;
pub const MAX_DELAY: Duration = Duration::from_secs(7 * 24 * 3600);

/// Delays before each retry, in order. Empty = no automatic retry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetrySchedule(pub Vec<Duration>);

impl RetrySchedule {
    /// The default (ConnectMachine's): three retries six minutes apart.
    pub fn recommended() -> Self {
        RetrySchedule(vec![Duration::from_secs(360); 3])
    }

    /// Parses `6m,6m,6m` (the environment-variable form); an item may be an exponential expression
    /// (`exp:30s..1d x8`, see [`parse_exp`]). An empty string means no retries.
    pub fn parse_list(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Ok(RetrySchedule(Vec::new()));
        }
        let mut delays = Vec::new();
        for p in s.split(',') {
            delays.extend(parse_item(p.trim())?);
        }
        Self::checked(delays)
    }

    /// Parses the JSON form: an array of numbers (seconds) or strings with a unit, where a string
    /// may be an exponential expression expanded in place. A lone expression outside an array
    /// (`"exp:30s..1d x8"`) is taken as the one-item array.
    pub fn from_json(v: &Value) -> Result<Self, String> {
        let lone;
        let items = match v {
            Value::Array(items) => items.as_slice(),
            Value::String(s) if s.trim_start().starts_with(EXP_PREFIX) => {
                lone = [v.clone()];
                &lone[..]
            }
            _ => {
                return Err(
                    "retry_schedule must be an array of delays, e.g. [\"30s\", \"6m\", 3600], \
                     or an exponential schedule like \"exp:30s..1d x8\""
                        .into(),
                )
            }
        };
        let mut delays = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::Number(n) => {
                    delays.push(n.as_u64().map(Duration::from_secs).ok_or_else(|| {
                        format!("retry_schedule[{i}]: seconds must be a whole number ≥ 0")
                    })?)
                }
                Value::String(s) => {
                    delays.extend(parse_item(s).map_err(|e| format!("retry_schedule[{i}]: {e}"))?)
                }
                _ => {
                    return Err(format!(
                        "retry_schedule[{i}]: expected seconds or a string like \"6m\""
                    ))
                }
            }
        }
        Self::checked(delays)
    }

    fn checked(delays: Vec<Duration>) -> Result<Self, String> {
        if delays.len() > MAX_RETRIES {
            return Err(format!("at most {MAX_RETRIES} retries are allowed"));
        }
        if let Some(d) = delays.iter().find(|d| **d > MAX_DELAY || d.is_zero()) {
            return Err(format!(
                "each delay must be between 1s and 7d (got {})",
                format_delay(*d)
            ));
        }
        Ok(RetrySchedule(delays))
    }

    /// JSON form for storage and the API: strings with the largest exact unit.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.0
                .iter()
                .map(|d| Value::String(format_delay(*d)))
                .collect(),
        )
    }

    /// Delay before retry number `retry` (1-based), or `None` when the schedule is exhausted.
    pub fn delay_before_retry(&self, retry: usize) -> Option<Duration> {
        retry.checked_sub(1).and_then(|i| self.0.get(i)).copied()
    }

    pub fn max_attempts(&self) -> usize {
        self.0.len() + 1
    }
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    /// Try again after this delay.
    RetryIn(Duration),
    /// Final failure: a permanent answer, or the schedule is exhausted.
    Failed,
}

/// Decides the next step after attempt number `attempt` (1-based).
///
/// The scheduled delay is spread by `jitter` both ways. A `Retry-After` answer (capped at
/// `retry_after_cap`, so a receiver can't park a delivery for ever) is a floor: jitter only ever
/// lengthens it, so the retry never comes sooner than the receiver asked. `draw` is a uniform
/// random number in `[0, 1)` supplied by the caller (the attempt), so this stays deterministic.
pub fn next_step(
    verdict: Verdict,
    attempt: usize,
    schedule: &RetrySchedule,
    retry_after: Option<Duration>,
    retry_after_cap: Duration,
    jitter: Jitter,
    draw: f64,
) -> Next {
    match verdict {
        Verdict::Delivered => Next::Delivered,
        Verdict::Failed => Next::Failed,
        Verdict::Retry => match schedule.delay_before_retry(attempt) {
            None => Next::Failed,
            Some(delay) => {
                let asked = retry_after
                    .map(|r| jitter.lengthen(r.min(retry_after_cap), draw))
                    .unwrap_or_default();
                Next::RetryIn(jitter.spread(delay, draw).max(asked))
            }
        },
    }
}

/// How far each retry delay is spread at random: a delay `d` becomes a value drawn uniformly from
/// `[d × (1 − f), d × (1 + f)]`. Held in basis points (1/100 of a percent) so it compares exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jitter(u16);

impl Jitter {
    /// The largest fraction allowed: beyond ±50 % a delay could shrink to almost nothing.
    pub const MAX_BASIS_POINTS: u16 = 5000;

    /// The default: ±10 %.
    pub fn recommended() -> Self {
        Jitter(1000)
    }

    /// No jitter: delays are exactly the schedule's.
    pub fn none() -> Self {
        Jitter(0)
    }

    /// From a fraction: `0.1` = ±10 %; 0 to 0.5.
    pub fn from_fraction(f: f64) -> Result<Self, String> {
        if !f.is_finite() || !(0.0..=0.5).contains(&f) {
            return Err(format!(
                "`{f}` is not a jitter; use a fraction from 0 to 0.5 or a percentage from 0% to 50%"
            ));
        }
        Ok(Jitter((f * 10_000.0).round() as u16))
    }

    /// Parses `10%`, `12.5%` or `0.1`; `0` turns jitter off.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let (num, scale) = match t.strip_suffix('%') {
            Some(p) => (p.trim(), 100.0),
            None => (t, 1.0),
        };
        let f: f64 = num.parse().map_err(|_| {
            format!("`{s}` is not a jitter; write a percentage like 10% or a fraction like 0.1")
        })?;
        Self::from_fraction(f / scale)
            .map_err(|_| format!("`{s}` is out of range; jitter goes from 0 (off) to 50% (0.5)"))
    }

    /// The fraction, `0.1` for ±10 %.
    pub fn fraction(self) -> f64 {
        f64::from(self.0) / 10_000.0
    }

    /// `d` scaled by a factor in `[1 − f, 1 + f]` chosen by `draw` (0 → lowest, → 1 highest).
    pub fn spread(self, d: Duration, draw: f64) -> Duration {
        self.scale(d, 1.0 + self.fraction() * (2.0 * clamp_draw(draw) - 1.0))
    }

    /// `d` scaled by a factor in `[1, 1 + f]`: never shorter than `d`.
    pub fn lengthen(self, d: Duration, draw: f64) -> Duration {
        self.scale(d, 1.0 + self.fraction() * clamp_draw(draw))
    }

    fn scale(self, d: Duration, factor: f64) -> Duration {
        if self.0 == 0 {
            return d;
        }
        // Whole milliseconds: due times are stored with millisecond precision.
        Duration::from_millis((d.as_millis() as f64 * factor).round() as u64)
    }
}

impl Default for Jitter {
    fn default() -> Self {
        Self::recommended()
    }
}

impl std::fmt::Display for Jitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}%", self.fraction() * 100.0)
    }
}

fn clamp_draw(draw: f64) -> f64 {
    if draw.is_finite() {
        draw.clamp(0.0, 1.0)
    } else {
        0.5
    }
}

/// When a webhook whose deliveries keep failing is switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisablePolicy {
    pub max_consecutive_failures: u64,
    pub max_failing_for: Duration,
}

impl Default for DisablePolicy {
    fn default() -> Self {
        DisablePolicy {
            max_consecutive_failures: 1000,
            max_failing_for: Duration::from_secs(5 * 86400),
        }
    }
}

impl DisablePolicy {
    /// The reason to disable, given the failure streak after the latest failed attempt.
    pub fn verdict(&self, consecutive_failures: u64, failing_for: Duration) -> Option<String> {
        if consecutive_failures >= self.max_consecutive_failures {
            Some(format!(
                "{consecutive_failures} consecutive failed attempts"
            ))
        } else if failing_for >= self.max_failing_for {
            Some(format!(
                "every attempt failed for {}",
                format_delay(Duration::from_secs(failing_for.as_secs()))
            ))
        } else {
            None
        }
    }
}

/// `30s`, `6m`, `2h`, `1d`, or a bare number of seconds.
pub fn parse_delay(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a delay; use seconds or a number with s, m, h or d"))?;
    let mult = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("`{s}` has an unknown unit; use s, m, h or d")),
    };
    n.checked_mul(mult)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// What starts an exponential schedule item.
const EXP_PREFIX: &str = "exp:";

/// One item of a written schedule: a delay, or an exponential expression (several delays).
fn parse_item(s: &str) -> Result<Vec<Duration>, String> {
    match s.trim().strip_prefix(EXP_PREFIX) {
        Some(_) => parse_exp(s),
        None => parse_delay(s).map(|d| vec![d]),
    }
}

/// Expands `exp:<first>..<max> x<retries>`: `retries` delays, the first `first`, each one double
/// the one before, none longer than `max`. `exp:30s..1h x8` → 30s, 1m, 2m, 4m, 8m, 16m, 32m, 1h;
/// `exp:30s..1d x8` → 30s, 1m, 2m, 4m, 8m, 16m, 32m, 64m (doubling stops short of the cap).
pub fn parse_exp(s: &str) -> Result<Vec<Duration>, String> {
    let shape = || {
        format!(
            "`{}` is not an exponential schedule; write exp:<first>..<max> x<retries>, e.g. exp:30s..1d x8",
            s.trim()
        )
    };
    let body = s.trim().strip_prefix(EXP_PREFIX).ok_or_else(shape)?;
    let (first, rest) = body.split_once("..").ok_or_else(shape)?;
    let (max, count) = rest.rsplit_once('x').ok_or_else(shape)?;
    let (first, max) = (parse_delay(first)?, parse_delay(max)?);
    let count: usize = count.trim().parse().map_err(|_| shape())?;
    if count == 0 || count > MAX_RETRIES {
        return Err(format!(
            "`{}`: the number of retries must be 1 to {MAX_RETRIES} (got {count})",
            s.trim()
        ));
    }
    if first.is_zero() {
        return Err(format!(
            "`{}`: the first delay must be at least 1s",
            s.trim()
        ));
    }
    // The cap is refused on its own even when the doubling never reaches it: it is a mistake.
    if max > MAX_DELAY {
        return Err(format!(
            "`{}`: each delay must be between 1s and 7d (the maximum is {})",
            s.trim(),
            format_delay(max)
        ));
    }
    if first > max {
        return Err(format!(
            "`{}`: the first delay ({}) is longer than the maximum ({})",
            s.trim(),
            format_delay(first),
            format_delay(max)
        ));
    }
    let mut delays = Vec::with_capacity(count);
    let mut d = first;
    for _ in 0..count {
        delays.push(d);
        d = d.saturating_mul(2).min(max);
    }
    Ok(delays)
}

pub fn format_delay(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".into(),
        s if s % 86400 == 0 => format!("{}d", s / 86400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classifies_statuses_like_connectmachine() {
        for s in [200, 201, 204, 299] {
            assert_eq!(classify_status(s), Verdict::Delivered, "{s}");
        }
        for s in [408, 425, 429, 500, 502, 503, 504, 599] {
            assert_eq!(classify_status(s), Verdict::Retry, "{s}");
        }
        for s in [
            100, 301, 302, 304, 307, 400, 401, 403, 404, 409, 410, 413, 422, 600,
        ] {
            assert_eq!(classify_status(s), Verdict::Failed, "{s}");
        }
    }

    #[test]
    fn next_step_follows_the_schedule_and_retry_after() {
        let s = RetrySchedule::recommended();
        let cap = Duration::from_secs(3600);
        assert_eq!(
            next_step(Verdict::Delivered, 1, &s, None, cap, Jitter::none(), 0.0),
            Next::Delivered
        );
        assert_eq!(
            next_step(Verdict::Failed, 1, &s, None, cap, Jitter::none(), 0.0),
            Next::Failed
        );
        assert_eq!(
            next_step(Verdict::Retry, 1, &s, None, cap, Jitter::none(), 0.0),
            Next::RetryIn(Duration::from_secs(360))
        );
        assert_eq!(
            next_step(Verdict::Retry, 3, &s, None, cap, Jitter::none(), 0.0),
            Next::RetryIn(Duration::from_secs(360))
        );
        assert_eq!(
            next_step(Verdict::Retry, 4, &s, None, cap, Jitter::none(), 0.0),
            Next::Failed
        );
        let later = Some(Duration::from_secs(900));
        assert_eq!(
            next_step(Verdict::Retry, 1, &s, later, cap, Jitter::none(), 0.0),
            Next::RetryIn(Duration::from_secs(900))
        );
        let sooner = Some(Duration::from_secs(5));
        assert_eq!(
            next_step(Verdict::Retry, 1, &s, sooner, cap, Jitter::none(), 0.0),
            Next::RetryIn(Duration::from_secs(360))
        );
        let huge = Some(Duration::from_secs(86400 * 30));
        assert_eq!(
            next_step(Verdict::Retry, 1, &s, huge, cap, Jitter::none(), 0.0),
            Next::RetryIn(cap)
        );
        assert_eq!(
            next_step(
                Verdict::Retry,
                1,
                &RetrySchedule(vec![]),
                None,
                cap,
                Jitter::none(),
                0.0
            ),
            Next::Failed
        );
    }

    #[test]
    fn jitter_spreads_retries_within_the_band() {
        let s = RetrySchedule::recommended();
        let cap = Duration::from_secs(3600);
        let jitter = Jitter::recommended();
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..1000 {
            let draw = f64::from(i) / 1000.0;
            let Next::RetryIn(d) = next_step(Verdict::Retry, 1, &s, None, cap, jitter, draw) else {
                panic!("a retryable outcome with retries left must retry");
            };
            assert!(
                d >= Duration::from_secs(324) && d <= Duration::from_secs(396),
                "{d:?}"
            );
            seen.insert(d);
        }
        // 1000 evenly spaced draws over a 72 s band at millisecond precision are all different.
        assert_eq!(seen.len(), 1000);
        assert_eq!(seen.first(), Some(&Duration::from_secs(324)));
        assert!(*seen.last().unwrap() > Duration::from_millis(395_900));
    }

    #[test]
    fn no_jitter_gives_the_exact_delays() {
        let s = RetrySchedule::parse_list("30s,6m").unwrap();
        let cap = Duration::from_secs(3600);
        let off = Jitter::parse("0").unwrap();
        assert_eq!(off, Jitter::none());
        for draw in [0.0, 0.25, 0.999] {
            assert_eq!(
                next_step(Verdict::Retry, 1, &s, None, cap, off, draw),
                Next::RetryIn(Duration::from_secs(30))
            );
            assert_eq!(
                next_step(Verdict::Retry, 2, &s, None, cap, off, draw),
                Next::RetryIn(Duration::from_secs(360))
            );
        }
    }

    #[test]
    fn jitter_never_retries_sooner_than_retry_after_asks() {
        let s = RetrySchedule::recommended();
        let cap = Duration::from_secs(3600);
        let jitter = Jitter::parse("20%").unwrap();
        let asked = Some(Duration::from_secs(900));
        for i in 0..100 {
            let draw = f64::from(i) / 100.0;
            let Next::RetryIn(d) = next_step(Verdict::Retry, 1, &s, asked, cap, jitter, draw)
            else {
                panic!("must retry");
            };
            assert!(
                d >= Duration::from_secs(900) && d <= Duration::from_secs(1080),
                "{d:?}"
            );
        }
        // The lowest draw keeps exactly what the receiver asked; a capped Retry-After is the floor.
        assert_eq!(
            next_step(Verdict::Retry, 1, &s, asked, cap, jitter, 0.0),
            Next::RetryIn(Duration::from_secs(900))
        );
        let huge = Some(Duration::from_secs(86400));
        assert_eq!(
            next_step(Verdict::Retry, 1, &s, huge, cap, jitter, 0.5),
            Next::RetryIn(Duration::from_secs(3960))
        );
    }

    #[test]
    fn parses_jitter_as_percentage_or_fraction() {
        assert_eq!(Jitter::parse("10%"), Ok(Jitter::recommended()));
        assert_eq!(Jitter::parse("0.1"), Ok(Jitter::recommended()));
        assert_eq!(Jitter::parse(" 12.5 % ").unwrap().fraction(), 0.125);
        assert_eq!(Jitter::parse("50%").unwrap().fraction(), 0.5);
        assert_eq!(Jitter::parse("0%"), Ok(Jitter::none()));
        for bad in ["51%", "0.6", "-1%", "-0.1", "ten", "", "%", "NaN", "inf"] {
            assert!(Jitter::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Jitter::recommended().to_string(), "10%");
    }

    #[test]
    fn exponential_schedules_double_up_to_the_cap() {
        let secs = |v: &[u64]| {
            v.iter()
                .map(|s| Duration::from_secs(*s))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            parse_exp("exp:30s..1h x8"),
            Ok(secs(&[30, 60, 120, 240, 480, 960, 1920, 3600]))
        );
        assert_eq!(
            parse_exp("exp:30s..1d x8"),
            Ok(secs(&[30, 60, 120, 240, 480, 960, 1920, 3840]))
        );
        assert_eq!(parse_exp("exp:1m..1m x3"), Ok(secs(&[60, 60, 60])));
        assert_eq!(parse_exp("exp:5s..7d x1"), Ok(secs(&[5])));
        // 50 doublings of one second would overflow without the cap.
        let long = parse_exp("exp:1s..7d x50").unwrap();
        assert_eq!(long.len(), 50);
        assert_eq!(long[49], MAX_DELAY);
        // Expanded where schedules are read: the list form, JSON items, a lone JSON string.
        let s = RetrySchedule::parse_list("exp:30s..1h x8").unwrap();
        assert_eq!(
            s.to_json(),
            json!(["30s", "1m", "2m", "4m", "8m", "16m", "32m", "1h"])
        );
        assert_eq!(
            RetrySchedule::from_json(&json!("exp:30s..1h x8")),
            Ok(s.clone())
        );
        assert_eq!(RetrySchedule::from_json(&json!(["exp:30s..1h x8"])), Ok(s));
        assert_eq!(
            RetrySchedule::from_json(&json!([10, "exp:1m..4m x3", "1h"]))
                .unwrap()
                .to_json(),
            json!(["10s", "1m", "2m", "4m", "1h"])
        );
        assert_eq!(
            RetrySchedule::parse_list("10s, exp:1m..2m x2")
                .unwrap()
                .to_json(),
            json!(["10s", "1m", "2m"])
        );
    }

    #[test]
    fn refuses_bad_exponential_schedules_with_a_reason() {
        let err = |s: &str| RetrySchedule::parse_list(s).unwrap_err();
        assert!(err("exp:30s..1d x0").contains("1 to 50"));
        assert!(err("exp:30s..1d x51").contains("1 to 50"));
        assert!(err("exp:1d..30s x3").contains("longer than the maximum"));
        assert!(err("exp:0s..1m x3").contains("at least 1s"));
        assert!(err("exp:1m..8d x3").contains("between 1s and 7d"));
        assert!(err("exp:30s x3").contains("exp:<first>..<max> x<retries>"));
        assert!(err("exp:30s..1d").contains("exp:<first>..<max> x<retries>"));
        assert!(err("exp:30s..1d xmany").contains("exp:<first>..<max> x<retries>"));
        assert!(err("exp:30s..1q x3").contains("unknown unit"));
        // Expansions count toward the maximum number of retries like explicit items.
        assert!(err("exp:1s..1m x30, exp:1s..1m x30").contains("at most 50"));
        let e = RetrySchedule::from_json(&json!(["1m", "exp:1d..30s x3"])).unwrap_err();
        assert!(e.starts_with("retry_schedule[1]:"), "{e}");
        assert!(RetrySchedule::from_json(&json!("6m")).is_err());
    }

    #[test]
    fn only_410_means_the_endpoint_is_gone() {
        assert!(endpoint_gone(Some(410)));
        for s in [None, Some(200), Some(400), Some(404), Some(500)] {
            assert!(!endpoint_gone(s), "{s:?}");
        }
    }

    #[test]
    fn disable_policy_counts_streaks_and_duration() {
        let p = DisablePolicy::default();
        assert_eq!(p.verdict(999, Duration::from_secs(3600)), None);
        assert!(p.verdict(1000, Duration::ZERO).unwrap().contains("1000"));
        assert!(p
            .verdict(3, Duration::from_secs(5 * 86400))
            .unwrap()
            .contains("5d"));
    }

    #[test]
    fn parses_delays() {
        assert_eq!(parse_delay("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_delay("6m"), Ok(Duration::from_secs(360)));
        assert_eq!(parse_delay("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_delay("1d"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_delay("45"), Ok(Duration::from_secs(45)));
        assert!(parse_delay("5x").is_err());
        assert!(parse_delay("m").is_err());
        assert!(parse_delay("-5s").is_err());
        assert!(parse_delay("99999999999999999999d").is_err());
    }

    #[test]
    fn schedules_from_env_and_json() {
        assert_eq!(
            RetrySchedule::parse_list("6m,6m,6m"),
            Ok(RetrySchedule::recommended())
        );
        assert_eq!(RetrySchedule::parse_list(""), Ok(RetrySchedule(vec![])));
        let s = RetrySchedule::from_json(&json!(["30s", 120, "1h"])).unwrap();
        assert_eq!(s.to_json(), json!(["30s", "2m", "1h"]));
        assert_eq!(s.max_attempts(), 4);
        assert_eq!(s.delay_before_retry(1), Some(Duration::from_secs(30)));
        assert_eq!(s.delay_before_retry(3), Some(Duration::from_secs(3600)));
        assert_eq!(s.delay_before_retry(4), None);
        assert_eq!(s.delay_before_retry(0), None);
        assert!(RetrySchedule::from_json(&json!("6m")).is_err());
        assert!(RetrySchedule::from_json(&json!([true])).is_err());
        assert!(RetrySchedule::from_json(&json!([-1])).is_err());
        assert!(RetrySchedule::from_json(&json!(["8d"])).is_err());
        assert!(RetrySchedule::from_json(&json!([0])).is_err());
        assert!(RetrySchedule::from_json(&json!(vec![1; 51])).is_err());
    }
}
