//! `rate_limit`: a token bucket over every request the server answers.
//!
//! The toolkit fills the bucket with one request per `interval`, up to `burst` of them, and
//! turns the limit off when `interval` is zero or absent.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::Problem;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RateLimitSection {
    interval: Option<GoDuration>,
    burst: Option<i64>,
}

/// A duration as Go's YAML reads one: text such as `1m30s`, or a count of nanoseconds.
#[derive(Debug)]
enum GoDuration {
    Nanoseconds(i64),
    Text(String),
}

/// By hand rather than `untagged`, whose error would name neither form.
impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(GoDurationVisitor)
    }
}

struct GoDurationVisitor;

impl serde::de::Visitor<'_> for GoDurationVisitor {
    type Value = GoDuration;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a duration such as 100ms, 1s or 1m30s")
    }

    fn visit_i64<E: serde::de::Error>(self, count: i64) -> Result<GoDuration, E> {
        Ok(GoDuration::Nanoseconds(count))
    }

    fn visit_u64<E: serde::de::Error>(self, count: u64) -> Result<GoDuration, E> {
        let count = i64::try_from(count).map_err(|_| E::custom("duration out of range"))?;
        Ok(GoDuration::Nanoseconds(count))
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<GoDuration, E> {
        Ok(GoDuration::Text(text.to_owned()))
    }
}

impl RateLimitSection {
    /// The limit, or `None` when it is off.
    pub(super) fn into_rate_limit(self) -> Result<Option<RateLimit>, Problem> {
        let key = "rate_limit.interval";
        let nanoseconds = match self.interval {
            None => 0,
            Some(GoDuration::Nanoseconds(count)) => i128::from(count),
            Some(GoDuration::Text(text)) => parse_go_duration(&text).ok_or_else(|| {
                let message = format!("{text:?} is not a duration (such as 100ms, 1s or 1m30s)");
                Problem::new(key, message)
            })?,
        };
        if nanoseconds < 0 {
            return Err(Problem::new(key, "must not be negative"));
        }
        if nanoseconds == 0 {
            return Ok(None);
        }
        let interval = Duration::from_nanos(u64::try_from(nanoseconds).unwrap_or(u64::MAX));

        // NOTE: with no burst, Go's limiter never admits a request; that is refused here.
        let burst = self.burst.unwrap_or(0);
        let Some(burst) = u32::try_from(burst).ok().filter(|burst| *burst > 0) else {
            let message = "must be at least 1 when rate_limit.interval is set, or no request \
                           would ever be answered";
            return Err(Problem::new("rate_limit.burst", message));
        };
        Ok(Some(RateLimit::new(interval, burst, Instant::now())))
    }
}

/// Go's `time.ParseDuration`: an optional sign, then numbers with optional fractions, each
/// with a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`); a bare `0` is allowed. Nanoseconds.
fn parse_go_duration(text: &str) -> Option<i128> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }

    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        // The number, with its fraction.
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number = &rest[..digits];
        if number.is_empty() || number == "." {
            return None;
        }
        let number: f64 = number.parse().ok()?;
        rest = &rest[digits..];

        // Its unit, the longest that matches.
        let unit = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit..];
        total += number * scale;
    }
    // Go refuses durations past about 292 years; so does this.
    if total > i64::MAX as f64 {
        return None;
    }
    let total = total.round() as i128;
    Some(if negative { -total } else { total })
}

/// A token bucket: `burst` requests at once, refilled at one per `interval`.
#[derive(Debug)]
pub(super) struct RateLimit {
    interval: Duration,
    burst: u32,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    filled_at: Instant,
}

impl RateLimit {
    fn new(interval: Duration, burst: u32, now: Instant) -> RateLimit {
        let bucket = Bucket { tokens: f64::from(burst), filled_at: now };
        RateLimit { interval, burst, bucket: Mutex::new(bucket) }
    }

    pub(super) fn admit(&self) -> bool {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> bool {
        let mut bucket = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let elapsed = now.saturating_duration_since(bucket.filled_at);
        let refill = elapsed.as_secs_f64() / self.interval.as_secs_f64();
        bucket.tokens = (bucket.tokens + refill).min(f64::from(self.burst));
        bucket.filled_at = now;
        if bucket.tokens < 1.0 {
            return false;
        }
        bucket.tokens -= 1.0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        let second = 1_000_000_000;
        let cases = [
            ("0", 0),
            ("1s", second),
            ("100ms", second / 10),
            ("1m30s", 90 * second),
            ("1.5h", 5400 * second),
            ("-2us", -2000),
            ("3µs", 3000),
            ("250ns", 250),
        ];
        for (text, nanoseconds) in cases {
            assert_eq!(parse_go_duration(text), Some(nanoseconds), "{text}");
        }
        for text in ["", "1", "s", "1d", "1.s.", "1 s", "-", "9999999999h"] {
            assert_eq!(parse_go_duration(text), None, "{text}");
        }
    }

    #[test]
    fn the_bucket_admits_a_burst_then_one_per_interval() {
        let start = Instant::now();
        let limit = RateLimit::new(Duration::from_secs(1), 2, start);
        assert!(limit.admit_at(start));
        assert!(limit.admit_at(start));
        assert!(!limit.admit_at(start));
        assert!(!limit.admit_at(start + Duration::from_millis(500)));
        assert!(limit.admit_at(start + Duration::from_millis(1000)));
        assert!(!limit.admit_at(start + Duration::from_millis(1000)));
        // A long pause refills no more than the burst.
        let later = start + Duration::from_secs(60);
        assert!(limit.admit_at(later) && limit.admit_at(later));
        assert!(!limit.admit_at(later));
    }

    #[test]
    fn an_interval_without_burst_is_refused() {
        let section =
            RateLimitSection { interval: Some(GoDuration::Text("1s".into())), burst: None };
        let problem = section.into_rate_limit().expect_err("no burst");
        assert_eq!(problem.key, "rate_limit.burst");
        let section = RateLimitSection { interval: Some(GoDuration::Nanoseconds(0)), burst: None };
        assert!(section.into_rate_limit().expect("off").is_none());
    }
}
