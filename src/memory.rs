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
//! - [`trim_loop`]: every [`TRIM_EVERY`], when a pass ended since the last
//!   look and none is running, `malloc_trim(0)` returns the free pages.
//!
//! Both are no-ops off glibc.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often an idle daemon looks whether there is heap to give back.
pub const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Set by every pass; cleared by the trim that follows.
static PENDING: AtomicBool = AtomicBool::new(false);

/// Caps glibc's malloc arenas at two; call once, early in `main`.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; M_ARENA_MAX takes
    // any positive count and is safe to set at any time.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// A pass ended: what it freed may be given back once the daemon is idle.
pub fn after_pass() {
    PENDING.store(true, Ordering::Relaxed);
}

/// Gives free heap back when a pass ended since the last time and `idle`
/// says none is running; true when it did.
pub fn trim_if_due(idle: bool) -> bool {
    if !idle || !PENDING.swap(false, Ordering::Relaxed) {
        return false;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory at the top of the heap
    // and unused pages inside it; it takes the allocator's own locks.
    unsafe {
        libc::malloc_trim(0);
    }
    true
}

/// Every [`TRIM_EVERY`], gives back what the passes since freed, while
/// `idle()`; runs until the runtime stops.
pub async fn trim_loop(idle: impl Fn() -> bool) {
    loop {
        tokio::time::sleep(TRIM_EVERY).await;
        trim_if_due(idle());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_after_a_pass_and_only_when_idle() {
        limit_arenas();
        after_pass();
        assert!(!trim_if_due(false), "busy: no trim");
        assert!(trim_if_due(true));
        assert!(!trim_if_due(true), "nothing new since");
    }
}
