//! `[daemon]`: intervals, sizes, directories, durability.

use std::time::Duration;

use toml::Spanned;

use super::Checker;
use crate::config::raw::{RawDaemon, RawSize};
use crate::config::{
    DaemonSettings, Durability, MAX_POLL_INTERVAL, MAX_REQUEST_TIMEOUT, MIN_POLL_INTERVAL,
    MIN_REQUEST_TIMEOUT,
};

/// A duration setting: its name, its bounds (each also as the user would
/// write it, for the message) and examples of valid values.
struct DurationRule {
    name: &'static str,
    min: (Duration, &'static str),
    max: (Duration, &'static str),
    examples: &'static str,
}

/// `[daemon] poll_interval`.
const POLL_INTERVAL: DurationRule = DurationRule {
    name: "poll_interval",
    min: (MIN_POLL_INTERVAL, "1s"),
    max: (MAX_POLL_INTERVAL, "7d"),
    examples: "\"30s\", \"5m\" or \"1h\"",
};

/// `[daemon] request_timeout`.
const REQUEST_TIMEOUT: DurationRule = DurationRule {
    name: "request_timeout",
    min: (MIN_REQUEST_TIMEOUT, "1s"),
    max: (MAX_REQUEST_TIMEOUT, "1h"),
    examples: "\"30s\" or \"2m\"",
};

impl Checker<'_> {
    /// A duration setting within `rule`'s bounds; `None` (the problem
    /// reported) when it is not one. The upper bound keeps every deadline
    /// computed from a setting far from the clock's limits.
    fn duration(&mut self, v: &Spanned<String>, rule: &DurationRule) -> Option<Duration> {
        let (name, s) = (rule.name, v.get_ref());
        let message = match humantime::parse_duration(s) {
            Ok(d) if d < rule.min.0 => {
                format!(
                    "{name} {s:?} is too short: the minimum is \"{}\"",
                    rule.min.1
                )
            }
            Ok(d) if d > rule.max.0 => {
                format!(
                    "{name} {s:?} is too long: the maximum is \"{}\"",
                    rule.max.1
                )
            }
            Ok(d) => return Some(d),
            Err(e) => format!(
                "invalid {name} {s:?} ({e}): use a duration such as {}",
                rule.examples
            ),
        };
        self.error(v.span(), message);
        None
    }

    pub(super) fn check_daemon(&mut self, raw: RawDaemon) -> DaemonSettings {
        let mut out = DaemonSettings::default();
        if let Some(d) = raw
            .poll_interval
            .as_ref()
            .and_then(|v| self.duration(v, &POLL_INTERVAL))
        {
            out.poll_interval = d;
        }
        if let Some(d) = raw
            .request_timeout
            .as_ref()
            .and_then(|v| self.duration(v, &REQUEST_TIMEOUT))
        {
            out.request_timeout = d;
        }
        if let Some(v) = &raw.max_skill_size {
            match parse_size(v.get_ref()) {
                Ok(n) => out.max_skill_size = n,
                Err(msg) => self.error(v.span(), format!("invalid max_skill_size: {msg}")),
            }
        }
        if let Some(v) = &raw.max_entries {
            match u64::try_from(*v.get_ref()) {
                Ok(n) if n >= 1 => out.max_entries = n,
                _ => self.error(
                    v.span(),
                    format!(
                        "invalid max_entries {}: it must be a positive number of archive entries",
                        v.get_ref()
                    ),
                ),
            }
        }
        if let Some(v) = &raw.state_dir {
            out.state_dir = self.path_setting(v, "state_dir");
        }
        if let Some(v) = &raw.cache_dir {
            out.cache_dir = self.path_setting(v, "cache_dir");
        }
        if let Some(v) = &raw.socket {
            out.socket = self.path_setting(v, "socket");
        }
        if let Some(v) = raw.prune {
            out.prune = v;
        }
        if let Some(v) = &raw.durability {
            match v.get_ref().as_str() {
                "syncfs" => out.durability = Durability::Syncfs,
                "fsync" => out.durability = Durability::Fsync,
                other => self.error(
                    v.span(),
                    format!("invalid durability {other:?}: \"syncfs\" or \"fsync\""),
                ),
            }
        }
        if let Some(v) = &raw.jitter {
            let j = *v.get_ref();
            if (0.0..=0.5).contains(&j) {
                out.jitter = j;
            } else {
                self.error(
                    v.span(),
                    format!("invalid jitter {j}: a fraction of the poll interval from 0.0 to 0.5"),
                );
            }
        }
        if let Some(v) = &raw.generations {
            match u32::try_from(*v.get_ref()) {
                Ok(n) if (1..=100).contains(&n) => out.generations = n,
                _ => self.error(
                    v.span(),
                    format!(
                        "invalid generations {}: keep 1 to 100 installed generations per skill",
                        v.get_ref()
                    ),
                ),
            }
        }
        out
    }
}

/// Parses `max_skill_size`: a positive integer of bytes, or a string of
/// digits followed by B, KB, MB, GB, KiB, MiB or GiB (any case, spaces
/// allowed before the unit).
fn parse_size(raw: &RawSize) -> Result<u64, String> {
    const HINT: &str = "use e.g. \"64MiB\", \"500KB\" or an integer number of bytes";
    let n = match raw {
        RawSize::Bytes(n) => u64::try_from(*n).map_err(|_| format!("{n} is negative; {HINT}"))?,
        RawSize::Text(s) => {
            let t = s.trim();
            let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
            let (digits, unit) = t.split_at(digits_end);
            let unit = unit.trim_start();
            if digits.is_empty() {
                return Err(format!("{s:?} does not start with a number; {HINT}"));
            }
            let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
                "b" => 1,
                "kb" => 1000,
                "mb" => 1000 * 1000,
                "gb" => 1000 * 1000 * 1000,
                "kib" => 1 << 10,
                "mib" => 1 << 20,
                "gib" => 1 << 30,
                "" => {
                    return Err(format!(
                        "{s:?} has no unit; add one (B, KB, MB, GB, KiB, MiB, GiB) or write the bytes as an integer without quotes"
                    ))
                }
                _ => {
                    return Err(format!(
                        "{s:?} has an unknown unit {unit:?}; use B, KB, MB, GB, KiB, MiB or GiB"
                    ))
                }
            };
            digits
                .parse::<u64>()
                .ok()
                .and_then(|d| d.checked_mul(multiplier))
                .ok_or_else(|| format!("{s:?} is too large"))?
        }
    };
    if n == 0 {
        return Err(format!("the size must be at least 1 byte; {HINT}"));
    }
    Ok(n)
}
