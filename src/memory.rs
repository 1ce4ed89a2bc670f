//! Giving freed heap back to the system once the daemon is idle.
//!
//! A pass over many skills allocates freely (manifests, tree records, the
//! state file being written) and frees it all at the end, but glibc's
//! allocator keeps freed memory in its arenas, one per thread that ever
//! allocated, so a daemon that did one big pass would sit at its peak
//! resident size for the rest of its life. Two settings keep the resident
//! size close to what is actually in use:
//!
//! - [`limit_arenas`] at start: at most two arenas (the runtime's worker
//!   and blocking threads share them), so freed memory is not scattered
//!   over a dozen.
//! - [`trim_when_idle`] after a pass: when no other pass runs, and at most
//!   once per [`TRIM_EVERY`], `malloc_trim(0)` returns the free pages.
//!
//! Both are no-ops off glibc.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The shortest time between two trims.
pub const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Seconds since the epoch of the last trim.
static LAST_TRIM: AtomicU64 = AtomicU64::new(0);

/// Caps glibc's malloc arenas at two; call once, early in `main`.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; M_ARENA_MAX takes
    // any positive count and is safe to set at any time.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Returns free heap pages to the system, unless that was done less than
/// [`TRIM_EVERY`] ago; `idle` says no pass is running.
pub fn trim_when_idle(idle: bool) {
    if !idle {
        return;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let last = LAST_TRIM.load(Ordering::Relaxed);
    if now.saturating_sub(last) < TRIM_EVERY.as_secs()
        || LAST_TRIM
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory at the top of the heap
    // and unused pages inside it; it takes the allocator's own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_at_most_once_per_period_and_only_when_idle() {
        limit_arenas();
        LAST_TRIM.store(0, Ordering::Relaxed);
        trim_when_idle(false);
        assert_eq!(LAST_TRIM.load(Ordering::Relaxed), 0, "busy: no trim");
        trim_when_idle(true);
        let first = LAST_TRIM.load(Ordering::Relaxed);
        assert!(first > 0);
        trim_when_idle(true);
        assert_eq!(
            LAST_TRIM.load(Ordering::Relaxed),
            first,
            "not twice in a period"
        );
    }
}
