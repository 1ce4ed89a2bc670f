//! The daemon's one way to take a std mutex: a panic while one was held
//! leaves plain data behind, and the daemon carries on with it. Knows
//! nothing of what the mutexes guard.

use std::sync::Mutex as StdMutex;

pub(super) fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind;
    // carry on with it rather than poisoning the whole daemon.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
