//! The scheduler: every skill's slot, the timer queue, the passes (at most
//! [`CONCURRENCY`] at a time, never two of a skill at once), retry delays
//! and poll offsets. Must not load config nor answer the control socket.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::config::Skill;
use crate::control::protocol::SkillStatus;
use crate::control::protocol::{Event, EventKind};
use crate::reconcile::{Engine, SkillReport, SkillState, TargetState};

use super::guard::lock;
use super::outcome::{kept, nothing, rfc3339, skill_status, Progress};
use super::{log_report, Daemon};

/// How many skills are synced at once.
pub const CONCURRENCY: usize = 8;

/// While passes run, the service manager's status line is refreshed at
/// most this often (and always when the last pass ends).
pub(super) const STATUS_EVERY: Duration = Duration::from_secs(1);

/// First retry delay after a failed pass; doubles up to the poll interval.
pub const RETRY_MIN: Duration = Duration::from_secs(15);

/// The longest wait a deadline of the daemon's is given (as tokio does for
/// its own timers): the config bounds every wait far below it, and a wait
/// past it is clamped rather than overflowing the clock.
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// `now + wait`, never panicking: `wait` is clamped to [`FAR_FUTURE`], and
/// a deadline the clock cannot hold even then is `now`.
pub(super) fn deadline(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait.min(FAR_FUTURE)).unwrap_or(now)
}

/// The wait before the next try after `failures` failed passes in a row:
/// doubling from [`RETRY_MIN`], never longer than the poll interval.
pub(super) fn retry_delay(failures: u32, interval: Duration) -> Duration {
    RETRY_MIN
        .saturating_mul(1u32 << failures.min(16).saturating_sub(1))
        .min(interval)
}

/// This machine's name for spreading polls: `/etc/machine-id`, else the
/// host name. Read once.
pub(super) fn machine_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(read_machine_id)
}

pub(super) fn read_machine_id() -> String {
    std::fs::read_to_string("/etc/machine-id")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned()
        })
}

/// A skill's stable poll offset on this machine: up to `fraction` of the
/// interval, the same across restarts, different across machines and
/// skills.
pub fn poll_offset(skill: &str, interval: Duration, fraction: f64) -> Duration {
    offset_for(machine_id(), skill, interval, fraction)
}

pub(super) fn offset_for(
    machine: &str,
    skill: &str,
    interval: Duration,
    fraction: f64,
) -> Duration {
    use sha2::Digest as _;
    let span = interval.mul_f64(fraction.clamp(0.0, 0.5));
    let span_ms = span.as_millis() as u64;
    if span_ms == 0 {
        return Duration::ZERO;
    }
    let hash = sha2::Sha256::digest(format!("{machine}\0{skill}").as_bytes());
    let mut eight = [0u8; 8];
    eight.copy_from_slice(&hash[..8]);
    Duration::from_millis(u64::from_le_bytes(eight) % span_ms)
}

/// What status shows of one slot, and where it is in its schedule.
#[derive(Debug, Default)]
pub(super) struct SlotView {
    /// A pass is running.
    pub(super) running: bool,
    /// Passes finished since the slot started.
    pub(super) done: u64,
    /// What status keeps of the last pass's report, or of one made from
    /// the state file before the first pass.
    pub(super) report: Option<SkillReport>,
    /// Whether `report` came from a pass (as opposed to the state file).
    pub(super) checked: bool,
    pub(super) last_checked: Option<SystemTime>,
    pub(super) next_check: Option<SystemTime>,
    /// Failed passes in a row, for the backoff.
    pub(super) failures: u32,
    /// Waiting in the scheduler's queue for one of the [`CONCURRENCY`]
    /// passes.
    pub(super) queued: bool,
    /// Triggered while a pass ran (or before the scheduler heard that it
    /// ended): one more pass follows.
    pub(super) again: bool,
    /// Its key in the scheduler's timer queue, while it waits there.
    pub(super) due: Option<(Instant, u64)>,
    /// Removed by a reload, or the daemon is stopping: no pass starts.
    pub(super) stopped: bool,
}

/// One configured skill's slot, shared by the slot list, the scheduler and
/// the pass under way.
pub(super) struct Slot {
    /// The skill's name (the same allocation as its key in the slot list).
    pub(super) name: Arc<str>,
    pub(super) view: StdMutex<SlotView>,
    /// Held by a pass, and by a hold, rollback or resume of the skill: a
    /// pass under way would otherwise write its record over the edit.
    pub(super) record: tokio::sync::Mutex<()>,
}

/// What the scheduler is told.
pub(super) enum Command {
    /// A new slot: its first pass is due now.
    Start(Arc<Slot>),
    /// A sync request: a pass as soon as the limit allows, or one more
    /// after the one under way.
    Trigger(Arc<Slot>),
    /// A stopped slot: drop it from the timer queue.
    Stop(Arc<Slot>),
    /// The daemon stops: no more passes start.
    Shutdown,
}

/// Passes under way; each returns its slot and the wait until the next.
pub(super) type Passes = JoinSet<(Arc<Slot>, Duration)>;

/// The events of a pass that ended at `now` (taken from `report`): what
/// it did, and each conflict or drift that `view`'s last checked report
/// did not already have (an event when it appears, not on every poll).
fn new_events(view: &SlotView, report: &mut SkillReport, now: SystemTime) -> Vec<Event> {
    let mut events = std::mem::take(&mut report.events);
    for t in report
        .targets
        .iter()
        .filter(|t| matches!(t.state, TargetState::Conflict | TargetState::Drifted))
    {
        let was = view.checked
            && view.report.as_ref().is_some_and(|r| {
                r.targets
                    .iter()
                    .any(|p| p.name == t.name && p.state == t.state)
            });
        if !was {
            events.push(Event {
                at: rfc3339(now),
                skill: report.name.clone(),
                kind: if t.state == TargetState::Conflict {
                    EventKind::Conflict
                } else {
                    EventKind::Drift
                },
                target: Some(t.name.clone()),
                version: report.version.clone(),
                digest: report.digest.as_ref().map(|d| d.to_string()),
                message: t.error.clone().unwrap_or_default(),
            });
        }
    }
    events
}

/// The scheduler task's own queue: slots due, in the order they came
/// due, and waiting slots by when they are due.
#[derive(Default)]
struct Queue {
    ready: VecDeque<Arc<Slot>>,
    /// The number keeps keys unique.
    timers: BTreeMap<(Instant, u64), Arc<Slot>>,
    keys: u64,
}

impl Queue {
    /// Moves the slots due by `now` from the timers to the ready list.
    fn take_due(&mut self, now: Instant) {
        while let Some(entry) = self.timers.first_entry().filter(|e| e.key().0 <= now) {
            let slot = entry.remove();
            let mut view = lock(&slot.view);
            view.due = None;
            view.queued = true;
            drop(view);
            self.ready.push_back(slot);
        }
    }

    /// A sync request: a waiting slot is due now; a running one gets one
    /// more pass after this one.
    fn trigger(&mut self, slot: Arc<Slot>) {
        let mut view = lock(&slot.view);
        if let Some(key) = view.due.take() {
            self.timers.remove(&key);
            view.queued = true;
            drop(view);
            self.ready.push_back(slot);
        } else if !view.queued && !view.stopped {
            // Running, or its end is not handled yet.
            view.again = true;
        }
    }

    /// A stopped slot leaves the timers.
    fn stop(&mut self, slot: &Slot) {
        if let Some(key) = lock(&slot.view).due.take() {
            self.timers.remove(&key);
        }
    }

    /// A pass of `slot` ended: one more at once if it was triggered
    /// meanwhile, else it waits `delay` (unless stopped).
    fn ended(&mut self, slot: Arc<Slot>, delay: Duration) {
        let mut view = lock(&slot.view);
        if std::mem::take(&mut view.again) {
            view.queued = true;
            drop(view);
            self.ready.push_back(slot);
        } else if !view.stopped {
            self.keys += 1;
            let key = (deadline(Instant::now(), delay), self.keys);
            view.due = Some(key);
            drop(view);
            self.timers.insert(key, slot);
        }
    }
}

/// The skill whose passes panic, in the test of a pass that panics.
#[cfg(test)]
pub(super) static PANIC_IN: StdMutex<Option<&'static str>> = StdMutex::new(None);

/// A bug, on request: panics in a pass of the skill named in
/// [`PANIC_IN`].
#[cfg(test)]
fn maybe_panic(skill: &str) {
    if *lock(&PANIC_IN) == Some(skill) {
        panic!("a test's bug in {skill}");
    }
}

/// The daemon's scheduler part: the slots and what runs their passes.
pub(super) struct Scheduler {
    /// Every configured skill's slot, by name.
    pub(super) slots: StdMutex<BTreeMap<Arc<str>, Arc<Slot>>>,
    /// Held by each pass under way: all free means idle.
    pub(super) limit: Arc<Semaphore>,
    /// To the scheduler task.
    pub(super) commands: mpsc::UnboundedSender<Command>,
    /// The scheduler task; it hands back the passes under way when it
    /// stops.
    pub(super) task: StdMutex<Option<JoinHandle<Passes>>>,
    /// Wakes whoever waits on a slot's view: a pass ended or a slot
    /// stopped.
    pub(super) slot_changed: Notify,
    /// When the status line was last sent after a pass.
    pub(super) status_sent: StdMutex<Option<Instant>>,
}

impl Scheduler {
    /// No slots yet; its task is started with the receiver of the
    /// commands.
    pub(super) fn new() -> (Scheduler, mpsc::UnboundedReceiver<Command>) {
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let scheduler = Scheduler {
            slots: StdMutex::new(BTreeMap::new()),
            limit: Arc::new(Semaphore::new(CONCURRENCY)),
            commands,
            task: StdMutex::new(None),
            slot_changed: Notify::new(),
            status_sent: StdMutex::new(None),
        };
        (scheduler, commands_rx)
    }
}

impl Daemon {
    pub(super) fn add_slot(&self, skill: &Skill, outcome: Option<SkillReport>) {
        let name: Arc<str> = skill.name.as_str().into();
        let slot = Arc::new(Slot {
            name: name.clone(),
            view: StdMutex::new(SlotView {
                report: outcome,
                // Its first pass is due at once.
                queued: true,
                ..Default::default()
            }),
            record: tokio::sync::Mutex::new(()),
        });
        lock(&self.sched.slots).insert(name, slot.clone());
        let _ = self.sched.commands.send(Command::Start(slot));
    }

    /// Stops a slot taken out of the slot list: no pass of it starts any
    /// more (one under way finishes).
    pub(super) fn stop_slot(&self, slot: &Arc<Slot>) {
        lock(&slot.view).stopped = true;
        let _ = self.sched.commands.send(Command::Stop(slot.clone()));
        self.sched.slot_changed.notify_waiters();
    }

    /// Waits until `ready` holds of `slot`'s view.
    pub(super) async fn wait_view(&self, slot: &Slot, ready: impl Fn(&SlotView) -> bool) {
        loop {
            // Registered before the check, so a change right after it is
            // not missed.
            let changed = self.sched.slot_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let is_ready = ready(&lock(&slot.view));
            if is_ready {
                return;
            }
            changed.await;
        }
    }

    /// The scheduler: starts the passes of slots that are due or
    /// triggered, [`CONCURRENCY`] at a time, and keeps the others in a
    /// timer queue until their next check. Runs until told to stop, then
    /// hands back the passes under way.
    pub(super) async fn schedule(
        self: Arc<Self>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) -> Passes {
        let mut queue = Queue::default();
        let mut passes = Passes::new();
        loop {
            queue.take_due(Instant::now());
            while !queue.ready.is_empty() {
                let Ok(permit) = self.sched.limit.clone().try_acquire_owned() else {
                    break;
                };
                let Some(slot) = queue.ready.pop_front() else {
                    break;
                };
                {
                    let mut view = lock(&slot.view);
                    view.queued = false;
                    if view.stopped {
                        continue;
                    }
                    view.running = true;
                }
                passes.spawn(self.clone().guarded_pass(slot, permit));
            }
            let next = queue.timers.first_key_value().map(|(key, _)| key.0);
            let wake = async move {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Start(slot)) => queue.ready.push_back(slot),
                    Some(Command::Trigger(slot)) => queue.trigger(slot),
                    Some(Command::Stop(slot)) => queue.stop(&slot),
                    Some(Command::Shutdown) | None => return passes,
                },
                Some(ended) = passes.join_next() => match ended {
                    Ok((slot, delay)) => queue.ended(slot, delay),
                    // A pass that panicked: its slot stays as it was left.
                    Err(e) => tracing::error!("a pass ended abnormally: {e}"),
                },
                () = wake => {}
            }
        }
    }

    /// [`Self::run_pass`], with a panic in it (a bug) turned into a failed
    /// pass: the slot is not left "updating" for ever, whoever waits on it
    /// hears of the failure, and it is tried again after a backoff.
    pub(super) async fn guarded_pass(
        self: Arc<Self>,
        slot: Arc<Slot>,
        permit: OwnedSemaphorePermit,
    ) -> (Arc<Slot>, Duration) {
        use futures_util::FutureExt as _;
        let pass = std::panic::AssertUnwindSafe(self.clone().run_pass(slot.clone(), permit));
        match pass.catch_unwind().await {
            Ok(ended) => ended,
            Err(panic) => self.pass_panicked(slot, panic.as_ref()),
        }
    }

    /// Records a pass of `slot` that panicked as a failed one; returns the
    /// slot and the wait until its next try.
    pub(super) fn pass_panicked(
        &self,
        slot: Arc<Slot>,
        panic: &(dyn std::any::Any + Send),
    ) -> (Arc<Slot>, Duration) {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_string());
        let error = format!(
            "internal error: the pass stopped on a panic ({what}); this is a bug in skillsyncd, \
             please report it with the daemon's log"
        );
        tracing::error!(skill = %slot.name, "{error}");
        let interval = self.engine().config().daemon.poll_interval;
        let now = SystemTime::now();
        let mut view = lock(&slot.view);
        view.failures = view.failures.saturating_add(1);
        let delay = retry_delay(view.failures, interval);
        let report = view.report.get_or_insert_with(|| nothing(&slot.name));
        report.state = SkillState::Error;
        report.error = Some(error);
        view.running = false;
        view.done += 1;
        view.checked = true;
        view.last_checked = Some(now);
        view.next_check = now.checked_add(delay);
        drop(view);
        self.sched.slot_changed.notify_waiters();
        self.pass_status();
        (slot, delay)
    }

    /// One pass of `slot`'s skill, holding `permit` until its sync is
    /// done; returns the slot and the wait until its next check.
    pub(super) async fn run_pass(
        self: Arc<Self>,
        slot: Arc<Slot>,
        permit: OwnedSemaphorePermit,
    ) -> (Arc<Slot>, Duration) {
        let engine = self.engine();
        let Some(skill) = engine.config().skills.get(&*slot.name) else {
            // Started as a reload took the skill out of the config; the
            // reload stops the slot next.
            lock(&slot.view).running = false;
            self.sched.slot_changed.notify_waiters();
            return (slot, engine.config().daemon.poll_interval);
        };
        // Boxed: the sync's state machine is large, and this future is
        // moved into its task.
        let record = slot.record.lock().await;
        #[cfg(test)]
        maybe_panic(&slot.name);
        let mut report = Box::pin(engine.sync(skill)).await;
        drop(record);
        drop(permit);
        crate::memory::after_pass();
        log_report(&report);
        let delay = self.next_delay(&slot, skill, report.state);
        let now = SystemTime::now();
        let mut view = lock(&slot.view);
        let events = new_events(&view, &mut report, now);
        view.running = false;
        view.done += 1;
        view.report = Some(kept(report));
        view.checked = true;
        view.last_checked = Some(now);
        view.next_check = now.checked_add(delay);
        drop(view);
        self.events.push(events);
        self.sched.slot_changed.notify_waiters();
        self.pass_status();
        (slot, delay)
    }

    /// The wait after a pass of `skill` that ended in `state` until its
    /// next check: the poll interval, or a retry delay after a failure
    /// (no sooner than the registry's own next try); after its first
    /// pass, the skill's poll offset besides.
    fn next_delay(&self, slot: &Slot, skill: &Skill, state: SkillState) -> Duration {
        let current = self.engine();
        let interval = current.config().daemon.poll_interval;
        // Only this pass changes these now.
        let (failures, first) = {
            let mut view = lock(&slot.view);
            view.failures = match state {
                SkillState::Error => view.failures.saturating_add(1),
                _ => 0,
            };
            (view.failures, !view.checked)
        };
        let delay = if state == SkillState::Error {
            let retry = retry_delay(failures, interval);
            // A registry that rate-limits us or is down is not asked
            // before its next try, whatever this skill's own retry.
            let registry_wait = current
                .next_try(&skill.image)
                .and_then(|t| t.duration_since(SystemTime::now()).ok())
                .unwrap_or_default();
            retry.max(registry_wait)
        } else {
            interval
        };
        // After the pass at start, each skill keeps a stable offset of its
        // own, so a fleet restarted at once spreads its polls.
        if first {
            delay.saturating_add(poll_offset(
                &skill.name,
                interval,
                current.config().daemon.jitter,
            ))
        } else {
            delay
        }
    }

    /// What status shows of a slot; `engine` is the running one, read
    /// with the slot list locked (so it names every slot's skill).
    pub(super) fn skill_status(engine: &Engine, slot: &Slot) -> Option<SkillStatus> {
        let skill = engine.config().skills.get(&*slot.name)?;
        let view = lock(&slot.view);
        let progress = Progress {
            running: view.running,
            checked: view.checked,
            last_checked: view.last_checked,
            next_check: view.next_check,
        };
        Some(skill_status(engine, skill, view.report.as_ref(), progress))
    }

    /// Tells the service manager the summary after a pass: at most once
    /// per [`STATUS_EVERY`] while passes run, and always when none is
    /// left, so thousands of passes at start do not each walk every slot.
    pub(super) fn pass_status(&self) {
        if !self.notifier.is_enabled() {
            return;
        }
        let idle = self.sched.limit.available_permits() == CONCURRENCY;
        {
            let mut sent = lock(&self.sched.status_sent);
            if !idle && sent.is_some_and(|at| at.elapsed() < STATUS_EVERY) {
                return;
            }
            *sent = Some(Instant::now());
        }
        self.notifier.status(&self.summary());
    }

    /// A one-line summary: `3 skills: 2 in sync, 1 error`.
    pub fn summary(&self) -> String {
        let slots = lock(&self.sched.slots);
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        for slot in slots.values() {
            let view = lock(&slot.view);
            let word = match (view.running, view.report.as_ref().map(|r| r.state)) {
                (true, _) => "updating",
                (_, Some(SkillState::InSync)) => "in sync",
                (_, Some(SkillState::Error)) => "error",
                (_, Some(SkillState::Conflict)) => "conflict",
                (_, Some(SkillState::Drifted)) => "drifted",
                _ => "pending",
            };
            *counts.entry(word).or_default() += 1;
        }
        let parts: Vec<String> = counts.iter().map(|(w, n)| format!("{n} {w}")).collect();
        let noun = if slots.len() == 1 { "skill" } else { "skills" };
        format!("{} {noun}: {}", slots.len(), parts.join(", "))
    }

    pub(super) fn slot(&self, name: &str) -> Option<Arc<Slot>> {
        lock(&self.sched.slots).get(name).cloned()
    }
}
