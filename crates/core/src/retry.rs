//! Retry rules: what an HTTP outcome means, and when the next attempt is due.
//!
//! The default is ConnectMachine's: network errors, timeouts, 408, 425, 429 and 5xx are retried;
//! every other non-2xx answer is final; 3 retries 6 minutes apart. A webhook that must be sent once
//! and never retried (as Customermates does) says `retry_schedule: []`.

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

    /// Parses `6m,6m,6m` (the environment-variable form). An empty string means no retries.
    pub fn parse_list(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Ok(RetrySchedule(Vec::new()));
        }
        let delays = s
            .split(',')
            .map(|p| parse_delay(p.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Self::checked(delays)
    }

    /// Parses the JSON form: an array of numbers (seconds) or strings with a unit.
    pub fn from_json(v: &Value) -> Result<Self, String> {
        let items = v
            .as_array()
            .ok_or("retry_schedule must be an array of delays, e.g. [\"30s\", \"6m\", 3600]")?;
        let delays = items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Number(n) => n.as_u64().map(Duration::from_secs).ok_or_else(|| {
                    format!("retry_schedule[{i}]: seconds must be a whole number ≥ 0")
                }),
                Value::String(s) => parse_delay(s).map_err(|e| format!("retry_schedule[{i}]: {e}")),
                _ => Err(format!(
                    "retry_schedule[{i}]: expected seconds or a string like \"6m\""
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
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

/// Decides the next step after attempt number `attempt` (1-based). A `Retry-After` answer stretches
/// the scheduled delay (never shortens it), capped at `retry_after_cap` so a receiver can't park a
/// delivery for ever.
pub fn next_step(
    verdict: Verdict,
    attempt: usize,
    schedule: &RetrySchedule,
    retry_after: Option<Duration>,
    retry_after_cap: Duration,
) -> Next {
    match verdict {
        Verdict::Delivered => Next::Delivered,
        Verdict::Failed => Next::Failed,
        Verdict::Retry => match schedule.delay_before_retry(attempt) {
            None => Next::Failed,
            Some(delay) => {
                let asked = retry_after
                    .map(|r| r.min(retry_after_cap))
                    .unwrap_or_default();
                Next::RetryIn(delay.max(asked))
            }
        },
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
            next_step(Verdict::Delivered, 1, &s, None, cap),
            Next::Delivered
        );
        assert_eq!(next_step(Verdict::Failed, 1, &s, None, cap), Next::Failed);
        assert_eq!(
            next_step(Verdict::Retry, 1, &s, None, cap),
            Next::RetryIn(Duration::from_secs(360))
        );
        assert_eq!(
            next_step(Verdict::Retry, 3, &s, None, cap),
            Next::RetryIn(Duration::from_secs(360))
        );
        assert_eq!(next_step(Verdict::Retry, 4, &s, None, cap), Next::Failed);
        let later = Some(Duration::from_secs(900));
        assert_eq!(
            next_step(Verdict::Retry, 1, &s, later, cap),
            Next::RetryIn(Duration::from_secs(900))
        );
        let sooner = Some(Duration::from_secs(5));
        assert_eq!(
            next_step(Verdict::Retry, 1, &s, sooner, cap),
            Next::RetryIn(Duration::from_secs(360))
        );
        let huge = Some(Duration::from_secs(86400 * 30));
        assert_eq!(
            next_step(Verdict::Retry, 1, &s, huge, cap),
            Next::RetryIn(cap)
        );
        assert_eq!(
            next_step(Verdict::Retry, 1, &RetrySchedule(vec![]), None, cap),
            Next::Failed
        );
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
