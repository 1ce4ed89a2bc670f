//! `[daemon]`: intervals, sizes, directories, durability.

use std::time::Duration;

use super::Checker;
use crate::config::raw::{RawDaemon, RawSize};
use crate::config::{DaemonSettings, Durability, MIN_POLL_INTERVAL};

impl Checker<'_> {
    pub(super) fn check_daemon(&mut self, raw: RawDaemon) -> DaemonSettings {
        let mut out = DaemonSettings::default();
        if let Some(v) = &raw.poll_interval {
            let s = v.get_ref();
            match humantime::parse_duration(s) {
                Ok(d) if d < MIN_POLL_INTERVAL => self.error(
                    v.span(),
                    format!("poll_interval {s:?} is too short: the minimum is \"1s\""),
                ),
                Ok(d) => out.poll_interval = d,
                Err(e) => self.error(
                    v.span(),
                    format!(
                        "invalid poll_interval {s:?} ({e}): use a duration such as \"30s\", \"5m\" or \"1h\""
                    ),
                ),
            }
        }
        if let Some(v) = &raw.request_timeout {
            let s = v.get_ref();
            match humantime::parse_duration(s) {
                Ok(d) if d >= Duration::from_secs(1) => out.request_timeout = d,
                Ok(_) => self.error(
                    v.span(),
                    format!("request_timeout {s:?} is too short: the minimum is \"1s\""),
                ),
                Err(e) => self.error(
                    v.span(),
                    format!("invalid request_timeout {s:?} ({e}): use a duration such as \"30s\" or \"2m\""),
                ),
            }
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
