//! The recent events: kept in memory for status and in the state dir's
//! events file across restarts. Must not decide what is an event (the
//! passes and the control handlers do) nor block a pass on the disk.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::control::protocol::Event;
use crate::error::blocking;

use super::guard::lock;

/// How many recent events status keeps.
pub const EVENTS_KEPT: usize = 256;

/// The file in the state dir that keeps them across restarts.
pub const EVENTS_FILE: &str = "events.json";

/// New events are written to [`EVENTS_FILE`] this long after the first of
/// them, together, off the passes' way.
pub(super) const EVENTS_WRITE_DELAY: Duration = Duration::from_millis(200);

/// The recent events: in memory for status, at most [`EVENTS_KEPT`], and
/// in [`EVENTS_FILE`] across restarts, written by a task of their own
/// shortly after they come (see [`EventLog::write_loop`]).
pub(super) struct EventLog {
    /// Oldest first.
    pub(super) list: StdMutex<VecDeque<Event>>,
    pub(super) path: PathBuf,
    /// Events came since they were last written.
    pub(super) dirty: AtomicBool,
    /// Wakes the writer.
    pub(super) added: Notify,
    /// Held while they are written, so a later list is never overwritten
    /// by an earlier one.
    pub(super) writing: StdMutex<()>,
    /// The task that writes them, while it runs.
    writer: StdMutex<Option<JoinHandle<()>>>,
}

impl EventLog {
    /// The events kept in `path`; a missing or unreadable file is an empty
    /// list (events are a convenience, never a reason not to start).
    pub(super) fn open(path: PathBuf) -> EventLog {
        let list = match std::fs::read(&path) {
            Err(_) => VecDeque::new(),
            Ok(bytes) => match serde_json::from_slice::<Vec<Event>>(&bytes) {
                Ok(mut events) => {
                    let excess = events.len().saturating_sub(EVENTS_KEPT);
                    events.drain(..excess);
                    events.into()
                }
                Err(e) => {
                    tracing::warn!("ignoring {}: {e}", path.display());
                    VecDeque::new()
                }
            },
        };
        EventLog {
            list: StdMutex::new(list),
            path,
            dirty: AtomicBool::new(false),
            added: Notify::new(),
            writing: StdMutex::new(()),
            writer: StdMutex::new(None),
        }
    }

    /// Adds `new` to the list; the writer keeps them shortly after.
    pub(super) fn push(&self, new: Vec<Event>) {
        if new.is_empty() {
            return;
        }
        let mut list = lock(&self.list);
        for e in new {
            if list.len() == EVENTS_KEPT {
                list.pop_front();
            }
            list.push_back(e);
        }
        drop(list);
        self.dirty.store(true, Ordering::Release);
        self.added.notify_one();
    }

    /// The events, oldest first.
    pub(super) fn recent(&self) -> Vec<Event> {
        lock(&self.list).iter().cloned().collect()
    }

    /// Writes new events [`EVENTS_WRITE_DELAY`] after the first of them,
    /// those of a burst of passes together, on the blocking pool; runs
    /// until aborted (a stopping daemon then calls [`EventLog::write`]).
    pub(super) async fn write_loop(self: Arc<Self>) {
        loop {
            self.added.notified().await;
            tokio::time::sleep(EVENTS_WRITE_DELAY).await;
            let log = self.clone();
            let _ = blocking("writing the events", move || log.write()).await;
        }
    }

    /// Writes the list to [`EVENTS_FILE`] if events came since the last
    /// write.
    pub(super) fn write(&self) {
        let _one_at_a_time = lock(&self.writing);
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        let bytes = serde_json::to_vec(&*lock(&self.list));
        let result = bytes.map_err(|e| e.to_string()).and_then(|bytes| {
            crate::fs::write_atomic(&self.path, &bytes).map_err(|e| e.to_string())
        });
        if let Err(e) = result {
            tracing::warn!("keeping events in {}: {e}", self.path.display());
        }
    }

    /// Starts the task that writes new events (see
    /// [`EventLog::write_loop`]).
    pub(super) fn start_writer(self: &Arc<Self>) {
        *lock(&self.writer) = Some(tokio::spawn(self.clone().write_loop()));
    }

    /// Stops that task and writes what it had not written yet.
    pub(super) fn stop_writer(&self) {
        if let Some(writer) = lock(&self.writer).take() {
            writer.abort();
        }
        self.write();
    }
}
