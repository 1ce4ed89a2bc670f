//! Per-endpoint backoff: a registry (or mirror) that rate-limits us or is
//! down is left alone until its next try.
//!
//! An endpoint that answers 429 or 503 with `Retry-After` is asked again
//! only after that many seconds (or that HTTP date), capped at an hour.
//! Without it, and on 5xx, timeouts, refused connections and DNS failures,
//! the wait grows exponentially from the poll interval with full jitter
//! (a random point between a floor and the exponential bound), so a fleet
//! of machines that saw the same outage does not come back in the same
//! second. Until the next try, requests to that endpoint fail at once with
//! [`SourceError::Unavailable`] and cost the registry nothing; the first
//! answer after it clears the outage.
//!
//! The arithmetic is pure ([`next_delay`], [`parse_retry_after`]) and the
//! clock is passed in, so both are tested without waiting.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use super::SourceError;

/// The longest any endpoint is left alone, `Retry-After` included.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// The shortest wait after a failure (full jitter could otherwise pick
/// zero and retry at once).
pub const MIN_BACKOFF: Duration = Duration::from_secs(5);

/// One endpoint's current outage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    /// When the first failure of this outage happened.
    pub since: SystemTime,
    /// Failures in a row.
    pub failures: u32,
    /// No request goes to the endpoint before this.
    pub next_try: SystemTime,
    /// The last failure, in one line.
    pub cause: String,
}

/// The wait before the next try after `failures` failures in a row.
///
/// `retry_after` (from the server) wins, capped at [`MAX_BACKOFF`].
/// Otherwise the bound is `base * 2^(failures-1)` capped at `cap`, and the
/// wait a point of it chosen by `random` (in `[0, 1)`), never below
/// [`MIN_BACKOFF`] (or the bound, if that is smaller).
pub fn next_delay(
    failures: u32,
    base: Duration,
    cap: Duration,
    retry_after: Option<Duration>,
    random: f64,
) -> Duration {
    if let Some(after) = retry_after {
        return after.min(MAX_BACKOFF);
    }
    let cap = cap.min(MAX_BACKOFF);
    let exp = failures.saturating_sub(1).min(20);
    let bound = base.saturating_mul(1u32 << exp).min(cap);
    let floor = MIN_BACKOFF.min(bound);
    let random = if random.is_finite() {
        random.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let span = bound.saturating_sub(floor);
    floor + span.mul_f64(random)
}

/// A `Retry-After` value: delay-seconds or an HTTP date, relative to `now`;
/// `None` when it is neither. A date in the past means "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_BACKOFF));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_BACKOFF),
    )
}

/// Outages of every endpoint one source talks to.
#[derive(Debug)]
pub struct Backoff {
    /// The exponential wait starts here (the poll interval).
    base: Duration,
    outages: Mutex<HashMap<String, Outage>>,
}

impl Backoff {
    /// Waits start at `base` (the poll interval) and double per failure.
    pub fn new(base: Duration) -> Backoff {
        Backoff {
            base,
            outages: Mutex::new(HashMap::new()),
        }
    }

    fn outages(&self) -> std::sync::MutexGuard<'_, HashMap<String, Outage>> {
        self.outages.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(Unavailable)` while `endpoint` waits for its next try.
    pub fn check(&self, endpoint: &str, now: SystemTime) -> Result<(), SourceError> {
        match self.outages().get(endpoint) {
            Some(o) if now < o.next_try => Err(SourceError::Unavailable {
                endpoint: endpoint.to_string(),
                since: o.since,
                next_try: o.next_try,
                cause: o.cause.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Records the outcome of a request to `endpoint`: a success clears its
    /// outage, a transient failure extends it (`random` in `[0, 1)`), any
    /// other failure (not found, unauthorized) leaves it as it is.
    pub fn record(
        &self,
        endpoint: &str,
        outcome: Result<(), &SourceError>,
        now: SystemTime,
        random: f64,
    ) {
        let mut outages = self.outages();
        match outcome {
            Ok(()) => {
                if outages.remove(endpoint).is_some() {
                    tracing::info!(endpoint, "registry answers again");
                }
            }
            Err(e) if e.is_transient() && !matches!(e, SourceError::Unavailable { .. }) => {
                let (since, failures) = outages
                    .get(endpoint)
                    .map(|o| (o.since, o.failures))
                    .unwrap_or((now, 0));
                let failures = failures.saturating_add(1);
                let delay = next_delay(failures, self.base, MAX_BACKOFF, e.retry_after(), random);
                // `delay` is at most MAX_BACKOFF; a clock too near its end
                // to add it tries again at once rather than panicking.
                let next_try = now.checked_add(delay).unwrap_or(now);
                tracing::warn!(
                    endpoint,
                    failures,
                    next_try = %humantime::format_rfc3339_seconds(next_try),
                    "registry unavailable: {e}"
                );
                outages.insert(
                    endpoint.to_string(),
                    Outage {
                        since,
                        failures,
                        next_try,
                        cause: e.to_string(),
                    },
                );
            }
            Err(_) => {}
        }
    }

    /// Takes over `earlier`'s outages: the sources of a reloaded config go
    /// on waiting out what the old ones were told (a `Retry-After` is
    /// owed to the registry, whatever the config says now).
    pub fn carry_over(&self, earlier: &Backoff) {
        let theirs = earlier.outages().clone();
        self.outages().extend(theirs);
    }

    /// The outage of `endpoint`, if any.
    pub fn outage(&self, endpoint: &str) -> Option<Outage> {
        self.outages().get(endpoint).cloned()
    }

    /// The earliest time an endpoint in `endpoints` may be asked again,
    /// when every one of them is waiting.
    pub fn all_waiting_until(&self, endpoints: &[String], now: SystemTime) -> Option<SystemTime> {
        let outages = self.outages();
        let mut earliest: Option<SystemTime> = None;
        for e in endpoints {
            let o = outages.get(e).filter(|o| now < o.next_try)?;
            earliest = Some(earliest.map_or(o.next_try, |t| t.min(o.next_try)));
        }
        earliest
    }
}

/// A number in `[0, 1)` for jitter.
pub fn random() -> f64 {
    fastrand::f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn status(code: u16, retry_after: Option<Duration>) -> SourceError {
        SourceError::Status {
            endpoint: "r".into(),
            what: "tag list".into(),
            status: code,
            message: String::new(),
            retry_after,
        }
    }

    #[test]
    fn retry_after_wins_and_is_capped() {
        let d = next_delay(3, MIN, MAX_BACKOFF, Some(Duration::from_secs(7)), 0.9);
        assert_eq!(d, Duration::from_secs(7));
        let d = next_delay(1, MIN, MAX_BACKOFF, Some(Duration::from_secs(86_400)), 0.0);
        assert_eq!(d, MAX_BACKOFF);
    }

    #[test]
    fn full_jitter_grows_exponentially_and_is_capped() {
        // The bound doubles; random picks a point between the floor and it.
        assert_eq!(
            next_delay(1, MIN, MAX_BACKOFF, None, 0.999_999).as_secs(),
            59
        );
        assert_eq!(
            next_delay(2, MIN, MAX_BACKOFF, None, 0.999_999).as_secs(),
            119
        );
        assert_eq!(next_delay(3, MIN, MAX_BACKOFF, None, 0.5).as_secs(), 122);
        assert_eq!(next_delay(1, MIN, MAX_BACKOFF, None, 0.0), MIN_BACKOFF);
        // Capped at an hour however many failures.
        assert!(next_delay(40, MIN, MAX_BACKOFF, None, 0.999_999) <= MAX_BACKOFF);
        assert!(next_delay(u32::MAX, MIN, MAX_BACKOFF, None, 1.0) <= MAX_BACKOFF);
        // A short poll interval still waits at least its own length's floor.
        assert_eq!(
            next_delay(1, Duration::from_secs(2), MAX_BACKOFF, None, 0.0),
            Duration::from_secs(2)
        );
        // Nonsense randomness cannot produce nonsense waits.
        assert_eq!(next_delay(1, MIN, MAX_BACKOFF, None, f64::NAN), MIN_BACKOFF);
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let now = httpdate::parse_http_date("Wed, 25 Nov 2026 12:00:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 5 ", now), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_retry_after("Wed, 25 Nov 2026 12:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        // A past date: try now. A far date or huge number: an hour.
        assert_eq!(
            parse_retry_after("Wed, 25 Nov 2026 11:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("99999999", now), Some(MAX_BACKOFF));
        assert_eq!(
            parse_retry_after("Thu, 26 Nov 2026 12:00:00 GMT", now),
            Some(MAX_BACKOFF)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn outage_blocks_until_next_try_then_clears_on_success() {
        let b = Backoff::new(MIN);
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        b.check("r", t0).unwrap();
        b.record(
            "r",
            Err(&status(429, Some(Duration::from_secs(30)))),
            t0,
            0.5,
        );
        let err = b.check("r", t0 + Duration::from_secs(29)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("unavailable since"), "{text}");
        assert!(text.contains("next try at"), "{text}");
        b.check("r", t0 + Duration::from_secs(30)).unwrap();
        // Another failure keeps `since` and counts up.
        let t1 = t0 + Duration::from_secs(31);
        b.record("r", Err(&status(503, None)), t1, 0.0);
        let o = b.outage("r").unwrap();
        assert_eq!((o.since, o.failures), (t0, 2));
        assert_eq!(o.next_try, t1 + MIN_BACKOFF);
        // Other endpoints are unaffected.
        b.check("mirror", t1).unwrap();
        // Success clears it.
        b.record("r", Ok(()), t1 + MIN_BACKOFF, 0.0);
        assert!(b.outage("r").is_none());
    }

    #[test]
    fn a_new_backoff_carries_over_the_outages_it_replaces() {
        let old = Backoff::new(MIN);
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        old.record(
            "r",
            Err(&status(429, Some(Duration::from_secs(600)))),
            t0,
            0.5,
        );
        let new = Backoff::new(Duration::from_secs(5));
        new.carry_over(&old);
        assert_eq!(new.outage("r"), old.outage("r"));
        new.check("r", t0 + Duration::from_secs(599)).unwrap_err();
        new.check("other", t0).unwrap();
    }

    #[test]
    fn only_transient_failures_count() {
        let b = Backoff::new(MIN);
        let now = SystemTime::UNIX_EPOCH;
        let not_found = SourceError::NotFound {
            what: "tag".into(),
            endpoint: "r".into(),
        };
        b.record("r", Err(&not_found), now, 0.0);
        b.record("r", Err(&status(400, None)), now, 0.0);
        assert!(b.outage("r").is_none());
        let down = SourceError::Network {
            endpoint: "r".into(),
            message: "connection refused".into(),
        };
        b.record("r", Err(&down), now, 0.0);
        assert_eq!(b.outage("r").unwrap().failures, 1);
    }

    #[test]
    fn all_waiting_until_needs_every_endpoint_waiting() {
        let b = Backoff::new(MIN);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let eps = vec!["m".to_string(), "r".to_string()];
        b.record(
            "r",
            Err(&status(503, Some(Duration::from_secs(50)))),
            now,
            0.0,
        );
        assert_eq!(b.all_waiting_until(&eps, now), None);
        b.record(
            "m",
            Err(&status(503, Some(Duration::from_secs(20)))),
            now,
            0.0,
        );
        assert_eq!(
            b.all_waiting_until(&eps, now),
            Some(now + Duration::from_secs(20))
        );
    }
}
