//! The scheduler: each skill on its own schedule, on-demand passes, live
//! reload, status for the control socket, and a clean shutdown.
//!
//! Every configured skill has a *slot*: it has a pass at start, then waits
//! until its next check (the poll interval, or a backoff after a failure)
//! or until it is triggered. A trigger that arrives while a pass runs is
//! remembered once, so a burst of sync requests for the same skill is
//! coalesced into one more pass. Passes of all skills share a limit of
//! [`CONCURRENCY`] at a time, and passes of the same skill never overlap
//! (not even across a reload).
//!
//! One scheduler task keeps every waiting slot in a timer queue and starts
//! a task per pass; between passes a slot is only its status and its place
//! in that queue, so an idle daemon's memory grows little per skill. The
//! skill's settings are not copied into the slot: they are looked up in
//! the running config, which the slots always match (a reload swaps the
//! config and stops the slots it changed in one step).
//!
//! A reload parses the config file; a config that fails keeps the last good
//! one running and its error is shown in status. Skills added start at
//! once, skills whose settings changed are re-resolved, skills removed are
//! pruned where ours and unedited (kept and reported as unmanaged
//! otherwise, or with `prune = false`).
//!
//! [`run`] wires it to the outside: the control socket, the config file
//! watch, signals (SIGHUP reloads, SIGTERM/SIGINT stop) and systemd's
//! notifications. It takes its shutdown signal from the caller, as
//! mini-redis does.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex, RwLock};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::channel::Status;
use crate::config::{Config, Selector, Skill};
use crate::control::protocol::{
    ConfigSource, DaemonStatus, Event, EventKind, EventsResponse, HoldAction, HoldResponse,
    PlanResponse, PlannedSkill, ReloadResponse, SkillStatus, StatusResponse, SyncResponse,
    TargetStatus, UnmanagedSkill,
};
use crate::control::{server, ActionError, Controller};
use crate::error::{Error, Result};
use crate::paths::Paths;
use crate::reconcile::{Engine, SkillReport, SkillState, TargetState};
use crate::reference::Digest;
use crate::service::Notifier;
use crate::state::SkillRecord;

/// How many skills are synced at once.
pub const CONCURRENCY: usize = 8;
/// How long passes under way may take to finish after a shutdown request.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How many recent events status keeps.
pub const EVENTS_KEPT: usize = 256;
/// The file in the state dir that keeps them across restarts.
pub const EVENTS_FILE: &str = "events.json";
/// While passes run, the service manager's status line is refreshed at
/// most this often (and always when the last pass ends).
const STATUS_EVERY: Duration = Duration::from_secs(1);
/// New events are written to [`EVENTS_FILE`] this long after the first of
/// them, together, off the passes' way.
const EVENTS_WRITE_DELAY: Duration = Duration::from_millis(200);

/// The recent events: in memory for status, at most [`EVENTS_KEPT`], and
/// in [`EVENTS_FILE`] across restarts, written by a task of their own
/// shortly after they come (see [`EventLog::write_loop`]).
struct EventLog {
    /// Oldest first.
    list: StdMutex<VecDeque<Event>>,
    path: PathBuf,
    /// Events came since they were last written.
    dirty: AtomicBool,
    /// Wakes the writer.
    added: Notify,
    /// Held while they are written, so a later list is never overwritten
    /// by an earlier one.
    writing: StdMutex<()>,
}

impl EventLog {
    /// The events kept in `path`; a missing or unreadable file is an empty
    /// list (events are a convenience, never a reason not to start).
    fn open(path: PathBuf) -> EventLog {
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
        }
    }

    /// Adds `new` to the list; the writer keeps them shortly after.
    fn push(&self, new: Vec<Event>) {
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
    fn recent(&self) -> Vec<Event> {
        lock(&self.list).iter().cloned().collect()
    }

    /// Writes new events [`EVENTS_WRITE_DELAY`] after the first of them,
    /// those of a burst of passes together, on the blocking pool; runs
    /// until aborted (a stopping daemon then calls [`EventLog::write`]).
    async fn write_loop(self: Arc<Self>) {
        loop {
            self.added.notified().await;
            tokio::time::sleep(EVENTS_WRITE_DELAY).await;
            let log = self.clone();
            let _ = tokio::task::spawn_blocking(move || log.write()).await;
        }
    }

    /// Writes the list to [`EVENTS_FILE`] if events came since the last
    /// write.
    fn write(&self) {
        let _one_at_a_time = lock(&self.writing);
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        let bytes = serde_json::to_vec(&*lock(&self.list));
        let result = bytes.map_err(|e| e.to_string()).and_then(|bytes| {
            crate::state::write_atomic(&self.path, &bytes).map_err(|e| e.to_string())
        });
        if let Err(e) = result {
            tracing::warn!("keeping events in {}: {e}", self.path.display());
        }
    }
}
/// First retry delay after a failed pass; doubles up to the poll interval.
pub const RETRY_MIN: Duration = Duration::from_secs(15);

/// The wait before the next try after `failures` failed passes in a row:
/// doubling from [`RETRY_MIN`], never longer than the poll interval.
fn retry_delay(failures: u32, interval: Duration) -> Duration {
    RETRY_MIN
        .saturating_mul(1u32 << failures.min(16).saturating_sub(1))
        .min(interval)
}

pub use crate::config::{load_config, refresh_team};

/// Included files, remote includes and collections, for status.
pub fn config_sources(config: &Config) -> Vec<ConfigSource> {
    let mut out = Vec::new();
    for f in config.layers.files.iter().filter(|f| **f != config.path) {
        out.push(ConfigSource {
            kind: "file".into(),
            name: f.display().to_string(),
            detail: None,
            error: None,
        });
    }
    let copy = |c: &Option<crate::config::layers::CachedCopy>| {
        c.as_ref().map(|c| {
            format!(
                "copy of {} fetched {}",
                c.digest.get(..19).unwrap_or(&c.digest),
                c.fetched_at
            )
        })
    };
    // A failed refresh over a cached copy: that copy is in force.
    let problems = |refresh: &Option<String>,
                    cached: &Option<crate::config::layers::CachedCopy>,
                    other: &Option<String>| {
        let mut parts = Vec::new();
        match (refresh, cached) {
            (Some(e), Some(c)) => parts.push(format!(
                "refresh failed: {e}; using cached copy from {}",
                c.fetched_at
            )),
            (Some(e), None) => parts.push(format!("refresh failed: {e}")),
            _ => {}
        }
        parts.extend(other.clone());
        (!parts.is_empty()).then(|| parts.join("\n"))
    };
    for r in &config.layers.remote {
        out.push(ConfigSource {
            kind: "remote".into(),
            name: r.reference.clone(),
            detail: copy(&r.cached),
            error: problems(&r.refresh_error, &r.cached, &r.error),
        });
    }
    for c in &config.layers.collections {
        let mut detail = Vec::new();
        if let Some(v) = &c.version {
            detail.push(v.clone());
        }
        if let Some(copy) = copy(&c.cached) {
            detail.push(copy);
        }
        if c.cached.is_some() {
            detail.push(format!("skills: {}", c.skills.join(", ")));
        }
        out.push(ConfigSource {
            kind: "collection".into(),
            name: format!("{} ({})", c.name, c.image),
            detail: (!detail.is_empty()).then(|| detail.join("; ")),
            error: problems(&c.refresh_error, &c.cached, &c.error),
        });
    }
    out
}

/// Builds the engine for a config and repairs what a crash left behind.
/// State and cache go where `[daemon]` says, unless the environment
/// overrides it (see [`Paths::with_config`]).
pub fn start_engine(config: Config, paths: &Paths) -> Result<Engine> {
    let paths = paths.clone().with_config(&config.daemon);
    let engine = Engine::new(config, &paths.state_dir, &paths.cache_dir)?;
    for note in engine.recover()? {
        tracing::info!("{note}");
    }
    Ok(engine)
}

/// One pass over every skill, [`CONCURRENCY`] at a time (`--once`).
/// Reports come back in name order.
pub async fn pass(engine: &Engine) -> Vec<SkillReport> {
    let skills: Vec<&Skill> = engine.config().skills.values().collect();
    let mut reports: Vec<SkillReport> = futures_util::stream::iter(skills)
        .map(|s| engine.sync(s))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    reports.sort_by(|a, b| a.name.cmp(&b.name));
    if let Err(e) = engine.collect_garbage().await {
        tracing::warn!("cache clean-up failed: {e}");
    }
    reports
}

/// Logs a report: each change at info, a failure at warn.
pub fn log_report(r: &SkillReport) {
    for c in &r.changes {
        tracing::info!(skill = %r.name, "{c}");
    }
    match r.state {
        SkillState::InSync => tracing::debug!(
            skill = %r.name,
            version = r.version.as_deref().unwrap_or("-"),
            "in sync"
        ),
        _ => tracing::warn!(
            skill = %r.name,
            state = ?r.state,
            "{}",
            r.error.as_deref().unwrap_or("not in sync")
        ),
    }
}

/// This machine's name for spreading polls: `/etc/machine-id`, else the
/// host name. Read once.
fn machine_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(read_machine_id)
}

fn read_machine_id() -> String {
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

fn offset_for(machine: &str, skill: &str, interval: Duration, fraction: f64) -> Duration {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The skill whose passes panic, in [`a_pass_that_panics_fails_and_is_tried_again`].
    static PANIC_IN: StdMutex<Option<&'static str>> = StdMutex::new(None);

    /// A bug, on request: panics in a pass of the skill named in
    /// [`PANIC_IN`].
    pub(super) fn maybe_panic(skill: &str) {
        if *lock(&PANIC_IN) == Some(skill) {
            panic!("a test's bug in {skill}");
        }
    }

    /// A daemon over `root` with the demo layout as its registry, one
    /// target `sandbox`, and `skills` (TOML tables) besides.
    async fn demo_daemon(root: &Path, daemon_settings: &str, skills: &str) -> Arc<Daemon> {
        let layout = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo/layout");
        let text = format!(
            r#"
[daemon]
state_dir = "{root}/state"
cache_dir = "{root}/cache"
{daemon_settings}

[registries.demo]
layout = "{layout}"

[targets.sandbox]
path = "{root}/skills"

[defaults]
targets = ["sandbox"]

{skills}
"#,
            root = root.display(),
            layout = layout.display(),
        );
        let config_path = root.join("skills.toml");
        std::fs::write(&config_path, &text).unwrap();
        let config = Config::parse(&text, &config_path, root).unwrap();
        let paths = Paths {
            home: root.to_path_buf(),
            config_file: config_path.clone(),
            state_dir: root.join("state"),
            cache_dir: root.join("cache"),
            runtime_dir: None,
        };
        let engine = Engine::new(config, &paths.state_dir, &paths.cache_dir).unwrap();
        Daemon::start(engine, config_path, &paths, Arc::new(Notifier::disabled())).await
    }

    const HELLO: &str = "[skills.hello-world]\nimage = \"demo/examples/hello-world\"\n";
    const REVIEW: &str =
        "[skills.code-review]\nimage = \"demo/examples/code-review\"\nchannel = \"testing\"\n";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_the_config_dropped_is_pruned_at_start_or_listed_as_unmanaged() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let both = format!("{HELLO}{REVIEW}");
        let daemon = demo_daemon(root, "", &both).await;
        for name in ["hello-world", "code-review"] {
            let slot = daemon.slot(name).unwrap();
            daemon.wait_view(&slot, |view| view.done >= 1).await;
            let skill = daemon.skill(name).unwrap();
            assert!(
                root.join("skills").join(name).join("SKILL.md").is_file(),
                "{skill:?}"
            );
        }
        daemon.shutdown().await;

        // Restarted without code-review, prune = false: kept, unmanaged;
        // hello-world shows its recorded version before its first pass.
        let daemon = demo_daemon(root, "prune = false", HELLO).await;
        let status = daemon.status();
        assert_eq!(status.unmanaged.len(), 1, "{:?}", status.unmanaged);
        assert_eq!(status.unmanaged[0].name, "code-review");
        assert!(root.join("skills/code-review/SKILL.md").is_file());
        let hello = daemon.skill("hello-world").unwrap();
        assert!(hello.version.is_some(), "{hello:?}");
        daemon.shutdown().await;

        // Restarted with pruning: removed at start, as an event.
        let daemon = demo_daemon(root, "", HELLO).await;
        assert!(daemon.status().unmanaged.is_empty());
        assert!(!root.join("skills/code-review").exists());
        assert!(root.join("skills/hello-world/SKILL.md").is_file());
        let events = daemon.events().events;
        assert!(
            events
                .iter()
                .any(|e| e.kind == EventKind::Prune && e.skill == "code-review"),
            "{events:?}"
        );
        daemon.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pass_that_panics_fails_and_is_tried_again() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        *lock(&PANIC_IN) = Some("panicky");
        // A skill of its own: the other tests run alongside.
        let panicky =
            "[skills.panicky]\nimage = \"demo/examples/code-review\"\nchannel = \"testing\"\n";
        let daemon = demo_daemon(root, "", panicky).await;

        // The pass at start fails, and the skill waits for its retry.
        // A regression would hang here: a bounded wait makes it a failure.
        let bound = Duration::from_secs(60);
        let slot = daemon.slot("panicky").unwrap();
        tokio::time::timeout(
            bound,
            daemon.wait_view(&slot, |view| view.done == 1 && !view.running),
        )
        .await
        .expect("the panicked pass ends");
        let skill = daemon.skill("panicky").unwrap();
        assert_eq!(skill.state, SkillState::Error);
        let error = skill.error.as_deref().unwrap_or_default();
        assert!(error.contains("a test's bug in panicky"), "{error}");
        assert!(error.contains("bug in skillsyncd"), "{error}");
        assert!(skill.next_check.is_some(), "tried again later");
        assert!(daemon.summary().contains("1 error"), "{}", daemon.summary());

        // `sync --wait` comes back with the failure, not never.
        let failed = tokio::time::timeout(bound, daemon.sync(Some("panicky".into()), true))
            .await
            .expect("sync --wait returns")
            .unwrap();
        assert_eq!(failed.skills[0].state, SkillState::Error, "{failed:?}");

        // Once the bug is gone, the next pass installs it: the panic let
        // go of the skill's record lock and of its place in the limit.
        *lock(&PANIC_IN) = None;
        let synced = daemon.sync(Some("panicky".into()), true).await.unwrap();
        assert_eq!(synced.skills[0].state, SkillState::InSync, "{synced:?}");
        assert!(root.join("skills/panicky/SKILL.md").is_file());
        assert_eq!(daemon.limit.available_permits(), CONCURRENCY);
        daemon.shutdown().await;
    }

    #[test]
    fn poll_offsets_are_stable_bounded_and_spread() {
        let hour = Duration::from_secs(3600);
        let a = offset_for("m1", "hello", hour, 0.1);
        assert_eq!(a, offset_for("m1", "hello", hour, 0.1), "stable");
        assert!(a < Duration::from_secs(360), "within 10% of the interval");
        assert_eq!(offset_for("m1", "hello", hour, 0.0), Duration::ZERO);
        // Across 100 machines, offsets spread over the window.
        let offsets: std::collections::BTreeSet<u64> = (0..100)
            .map(|i| offset_for(&format!("m{i}"), "hello", hour, 0.1).as_secs() / 36)
            .collect();
        assert!(offsets.len() >= 8, "spread into most tenths: {offsets:?}");
        assert!(
            offset_for("m1", "x", hour, 0.9) < Duration::from_secs(1800),
            "capped at half"
        );
    }
}

/// What a skill follows, for people: `published`, `testing ^1.0`,
/// `tag 1.0.0`, `digest sha256:…`.
pub fn follows(skill: &Skill) -> String {
    match &skill.selector {
        Selector::Channel {
            channel,
            version: Some(v),
        } => format!("{channel} {v}"),
        Selector::Channel {
            channel,
            version: None,
        } => channel.to_string(),
        Selector::Tag(t) => format!("tag {t}"),
        Selector::Digest(d) => format!("digest {}", d.short()),
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// What status shows of one slot, and where it is in its schedule.
#[derive(Debug, Default)]
struct SlotView {
    /// A pass is running.
    running: bool,
    /// Passes finished since the slot started.
    done: u64,
    /// What status keeps of the last pass's report, or of one made from
    /// the state file before the first pass.
    report: Option<Outcome>,
    /// Whether `report` came from a pass (as opposed to the state file).
    checked: bool,
    last_checked: Option<SystemTime>,
    next_check: Option<SystemTime>,
    /// Failed passes in a row, for the backoff.
    failures: u32,
    /// Waiting in the scheduler's queue for one of the [`CONCURRENCY`]
    /// passes.
    queued: bool,
    /// Triggered while a pass ran (or before the scheduler heard that it
    /// ended): one more pass follows.
    again: bool,
    /// Its key in the scheduler's timer queue, while it waits there.
    due: Option<(Instant, u64)>,
    /// Removed by a reload, or the daemon is stopping: no pass starts.
    stopped: bool,
}

/// What a slot keeps of a report: all that status shows, less what only
/// the pass itself needed (its changes and events) and what the config
/// says (the skill's name and image), in strings and lists sized to fit.
#[derive(Debug)]
struct Outcome {
    version: Option<Box<str>>,
    digest: Option<Digest>,
    status: Option<Status>,
    archived: bool,
    state: SkillState,
    error: Option<Box<str>>,
    targets: Box<[TargetOutcome]>,
    held: Option<Box<str>>,
    backups: Box<[Box<str>]>,
    served_by: Option<Box<str>>,
    verification: Option<Box<str>>,
}

/// One target of an [`Outcome`].
#[derive(Debug)]
struct TargetOutcome {
    name: Box<str>,
    path: Box<Path>,
    state: TargetState,
    error: Option<Box<str>>,
}

impl Outcome {
    /// Nothing known of the skill yet.
    fn nothing() -> Outcome {
        Outcome {
            version: None,
            digest: None,
            status: None,
            archived: false,
            state: SkillState::Pending,
            error: None,
            targets: Box::new([]),
            held: None,
            backups: Box::new([]),
            served_by: None,
            verification: None,
        }
    }
}

impl From<SkillReport> for Outcome {
    fn from(r: SkillReport) -> Self {
        let text = |s: Option<String>| s.map(String::into_boxed_str);
        Outcome {
            version: text(r.version),
            digest: r.digest,
            status: r.status,
            archived: r.archived,
            state: r.state,
            error: text(r.error),
            targets: r
                .targets
                .into_iter()
                .map(|t| TargetOutcome {
                    name: t.name.into_boxed_str(),
                    path: t.path.into_boxed_path(),
                    state: t.state,
                    error: text(t.error),
                })
                .collect(),
            held: text(r.held),
            backups: r.backups.into_iter().map(String::into_boxed_str).collect(),
            served_by: text(r.served_by),
            verification: text(r.verification),
        }
    }
}

/// One configured skill's slot, shared by the slot list, the scheduler and
/// the pass under way.
struct Slot {
    /// The skill's name (the same allocation as its key in the slot list).
    name: Arc<str>,
    view: StdMutex<SlotView>,
    /// Held by a pass, and by a hold, rollback or resume of the skill: a
    /// pass under way would otherwise write its record over the edit.
    record: tokio::sync::Mutex<()>,
}

/// What the scheduler is told.
enum Command {
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

/// What the state records say before the first passes: what status shows
/// of the skills until then, and the folders no longer managed.
#[derive(Default)]
struct Records {
    outcomes: HashMap<String, Outcome>,
    unmanaged: Vec<UnmanagedSkill>,
}

impl Records {
    /// Takes in skill `name`'s `record`: its outcome if it is `wanted`
    /// (which it leaves), its folders the config no longer wants.
    fn take(
        &mut self,
        engine: &Engine,
        wanted: &mut HashSet<String>,
        name: &str,
        record: &SkillRecord,
    ) {
        if let Some(skill) = wanted
            .take(name)
            .and_then(|_| engine.config().skills.get(name))
        {
            let report = Daemon::recorded_report(engine, skill, Some(record));
            self.outcomes.insert(name.to_string(), report.into());
        }
        self.unmanaged
            .extend(Daemon::unmanaged_of(engine, name, record));
    }
}

/// Passes under way; each returns its slot and the wait until the next.
type Passes = JoinSet<(Arc<Slot>, Duration)>;

/// The daemon's shared core: the running config's engine and every slot.
pub struct Daemon {
    config_path: PathBuf,
    started_at: String,
    /// Replaced only with the slot list locked, so the two always agree.
    engine: RwLock<Arc<Engine>>,
    config_loaded_at: StdMutex<String>,
    config_error: StdMutex<Option<String>>,
    slots: StdMutex<BTreeMap<Arc<str>, Arc<Slot>>>,
    unmanaged: StdMutex<Vec<UnmanagedSkill>>,
    /// Held by each pass under way: all free means idle.
    limit: Arc<Semaphore>,
    /// To the scheduler.
    commands: mpsc::UnboundedSender<Command>,
    /// The scheduler task; it hands back the passes under way when it
    /// stops.
    scheduler: StdMutex<Option<JoinHandle<Passes>>>,
    /// Wakes whoever waits on a slot's view: a pass ended or a slot
    /// stopped.
    slot_changed: Notify,
    reloading: tokio::sync::Mutex<()>,
    state_dir: PathBuf,
    cache_dir: PathBuf,
    notifier: Arc<Notifier>,
    /// When the status line was last sent after a pass.
    status_sent: StdMutex<Option<Instant>>,
    /// The recent events.
    events: Arc<EventLog>,
    /// The task that writes them.
    events_writer: StdMutex<Option<JoinHandle<()>>>,
    /// Where files live (for the team cache).
    paths: Paths,
    /// The files and include patterns of the running config, for the
    /// watch.
    files: watch::Sender<Vec<PathBuf>>,
    /// One refresh of remote includes and collections at a time.
    team_refresh: tokio::sync::Mutex<()>,
}

fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind;
    // carry on with it rather than poisoning the whole daemon.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Daemon {
    /// Starts the daemon's slots for `engine`'s config: every skill's first
    /// pass begins at once. `notifier` gets a one-line summary after every
    /// pass (systemd's STATUS=) and hears of reloads.
    pub async fn start(
        engine: Engine,
        config_path: PathBuf,
        paths: &Paths,
        notifier: Arc<Notifier>,
    ) -> Arc<Daemon> {
        let dirs = paths.clone().with_config(&engine.config().daemon);
        let now = rfc3339(SystemTime::now());
        let files = watched(engine.config(), &config_path);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let daemon = Arc::new(Daemon {
            config_path,
            started_at: now.clone(),
            engine: RwLock::new(Arc::new(engine)),
            config_loaded_at: StdMutex::new(now),
            config_error: StdMutex::new(None),
            slots: StdMutex::new(BTreeMap::new()),
            unmanaged: StdMutex::new(Vec::new()),
            limit: Arc::new(Semaphore::new(CONCURRENCY)),
            commands,
            scheduler: StdMutex::new(None),
            slot_changed: Notify::new(),
            reloading: tokio::sync::Mutex::new(()),
            state_dir: dirs.state_dir.clone(),
            cache_dir: dirs.cache_dir,
            notifier,
            status_sent: StdMutex::new(None),
            events: Arc::new(EventLog::open(dirs.state_dir.join(EVENTS_FILE))),
            events_writer: StdMutex::new(None),
            paths: paths.clone(),
            files: watch::channel(files).0,
            team_refresh: tokio::sync::Mutex::new(()),
        });
        *lock(&daemon.events_writer) = Some(tokio::spawn(daemon.events.clone().write_loop()));
        *lock(&daemon.scheduler) = Some(tokio::spawn(daemon.clone().schedule(commands_rx)));
        let engine = daemon.engine();
        let names = engine.config().skills.keys().cloned().collect();
        let mut records = daemon.prune_and_read(&engine, names).await;
        *lock(&daemon.unmanaged) = records.unmanaged;
        for skill in engine.config().skills.values() {
            daemon.add_slot(skill, records.outcomes.remove(&skill.name));
        }
        tracing::info!(
            skills = engine.config().skills.len(),
            poll_interval = %humantime::format_duration(engine.config().daemon.poll_interval),
            config = %daemon.config_path.display(),
            "skillsyncd started"
        );
        daemon
    }

    /// The engine of the running config.
    pub fn engine(&self) -> Arc<Engine> {
        self.engine
            .read()
            .map(|e| e.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    fn target_paths(engine: &Engine, skill: &Skill) -> Vec<PathBuf> {
        skill
            .targets
            .iter()
            .filter_map(|t| engine.config().targets.get(t))
            .map(|t| t.path.join(&skill.name))
            .collect()
    }

    /// A report made from the state file, shown before the first pass.
    fn recorded_report(engine: &Engine, skill: &Skill, prev: Option<&SkillRecord>) -> SkillReport {
        let current = prev.and_then(|p| p.current.as_ref());
        let targets = skill
            .targets
            .iter()
            .filter_map(|t| engine.config().targets.get(t))
            .map(|t| {
                let installed = prev
                    .and_then(|p| p.targets.get(&t.name))
                    .and_then(|r| r.installed.as_ref());
                crate::reconcile::TargetReport {
                    name: t.name.clone(),
                    path: t.path.join(&skill.name),
                    state: match (installed, current) {
                        (Some(i), Some(c)) if i.layer_digest == c.layer_digest => {
                            TargetState::InSync
                        }
                        _ => TargetState::Pending,
                    },
                    error: None,
                }
            })
            .collect();
        SkillReport {
            name: skill.name.clone(),
            image: skill.image.to_string(),
            version: current.and_then(|c| c.version.clone()),
            digest: current.map(|c| c.manifest_digest.clone()),
            status: current.map(|c| c.status),
            state: SkillState::Pending,
            error: None,
            targets,
            changes: Vec::new(),
            downloaded: 0,
            held: prev.and_then(|p| p.hold.as_ref()).map(|h| h.describe()),
            events: Vec::new(),
            archived: prev.is_some_and(|p| p.archived),
            backups: prev
                .map(|p| crate::reconcile::describe_backups(&p.backups))
                .unwrap_or_default(),
            served_by: None,
            verification: current.map(|c| {
                prev.and_then(|p| p.verified.as_ref())
                    .filter(|v| v.manifest_digest == c.manifest_digest)
                    .map_or("unverified".into(), |v| v.by.clone())
            }),
        }
    }

    /// Prunes what the config no longer wants and reads the state records,
    /// each once: what status shows of each skill in `names` until its
    /// first pass, and the unmanaged folders. Only the records prune has
    /// work with are read a second time, as it left them.
    async fn prune_and_read(&self, engine: &Arc<Engine>, names: Vec<String>) -> Records {
        let e = engine.clone();
        let read = tokio::task::spawn_blocking(move || {
            let mut records = Records::default();
            let mut wanted: HashSet<String> = names.into_iter().collect();
            let mut to_prune = Vec::new();
            let visited = e.visit_state(|name, record| {
                if e.needs_prune(name, &record) {
                    to_prune.push(name.to_string());
                } else {
                    records.take(&e, &mut wanted, name, &record);
                }
            });
            if let Err(err) = visited {
                tracing::warn!("reading the state: {err}");
            }
            (records, wanted, to_prune)
        })
        .await;
        let (mut records, mut wanted, to_prune) = read.unwrap_or_else(|err| {
            tracing::warn!("reading the state: {err}");
            Default::default()
        });
        if !to_prune.is_empty() {
            match engine.prune_names(to_prune.clone()).await {
                Ok(events) => self.events.push(events),
                Err(err) => tracing::warn!("removing skills no longer configured: {err}"),
            }
            let e = engine.clone();
            let again = tokio::task::spawn_blocking(move || {
                for name in to_prune {
                    match e.read_state(&name) {
                        Ok(Some(record)) => records.take(&e, &mut wanted, &name, &record),
                        Ok(None) => {}
                        Err(err) => tracing::warn!("reading the state: {err}"),
                    }
                }
                (records, wanted)
            })
            .await;
            (records, wanted) = again.unwrap_or_else(|err| {
                tracing::warn!("reading the state: {err}");
                Default::default()
            });
        }
        // Never recorded: pending.
        for name in wanted {
            if let Some(skill) = engine.config().skills.get(&name) {
                let report = Self::recorded_report(engine, skill, None);
                records.outcomes.insert(name, report.into());
            }
        }
        records
    }

    fn add_slot(&self, skill: &Skill, outcome: Option<Outcome>) {
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
        lock(&self.slots).insert(name, slot.clone());
        let _ = self.commands.send(Command::Start(slot));
    }

    /// Stops a slot taken out of the slot list: no pass of it starts any
    /// more (one under way finishes).
    fn stop_slot(&self, slot: &Arc<Slot>) {
        lock(&slot.view).stopped = true;
        let _ = self.commands.send(Command::Stop(slot.clone()));
        self.slot_changed.notify_waiters();
    }

    /// Waits until `ready` holds of `slot`'s view.
    async fn wait_view(&self, slot: &Slot, ready: impl Fn(&SlotView) -> bool) {
        loop {
            // Registered before the check, so a change right after it is
            // not missed.
            let changed = self.slot_changed.notified();
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
    async fn schedule(self: Arc<Self>, mut commands: mpsc::UnboundedReceiver<Command>) -> Passes {
        // Slots due, in the order they came due.
        let mut ready: VecDeque<Arc<Slot>> = VecDeque::new();
        // Waiting slots by when they are due; the number keeps keys unique.
        let mut timers: BTreeMap<(Instant, u64), Arc<Slot>> = BTreeMap::new();
        let mut keys: u64 = 0;
        let mut passes = Passes::new();
        loop {
            let now = Instant::now();
            while let Some(entry) = timers.first_entry().filter(|e| e.key().0 <= now) {
                let slot = entry.remove();
                let mut view = lock(&slot.view);
                view.due = None;
                view.queued = true;
                drop(view);
                ready.push_back(slot);
            }
            while !ready.is_empty() {
                let Ok(permit) = self.limit.clone().try_acquire_owned() else {
                    break;
                };
                let Some(slot) = ready.pop_front() else {
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
            let next = timers.first_key_value().map(|(key, _)| key.0);
            let wake = async move {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Start(slot)) => ready.push_back(slot),
                    Some(Command::Trigger(slot)) => {
                        let mut view = lock(&slot.view);
                        if let Some(key) = view.due.take() {
                            timers.remove(&key);
                            view.queued = true;
                            drop(view);
                            ready.push_back(slot);
                        } else if !view.queued && !view.stopped {
                            // Running, or its end is not handled yet.
                            view.again = true;
                        }
                    }
                    Some(Command::Stop(slot)) => {
                        if let Some(key) = lock(&slot.view).due.take() {
                            timers.remove(&key);
                        }
                    }
                    Some(Command::Shutdown) | None => return passes,
                },
                Some(ended) = passes.join_next() => match ended {
                    Ok((slot, delay)) => {
                        let mut view = lock(&slot.view);
                        if std::mem::take(&mut view.again) {
                            view.queued = true;
                            drop(view);
                            ready.push_back(slot);
                        } else if !view.stopped {
                            keys += 1;
                            let key = (Instant::now() + delay, keys);
                            view.due = Some(key);
                            drop(view);
                            timers.insert(key, slot);
                        }
                    }
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
    async fn guarded_pass(
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
    fn pass_panicked(
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
        let report = view.report.get_or_insert_with(Outcome::nothing);
        report.state = SkillState::Error;
        report.error = Some(error.into());
        view.running = false;
        view.done += 1;
        view.checked = true;
        view.last_checked = Some(now);
        view.next_check = Some(now + delay);
        drop(view);
        self.slot_changed.notify_waiters();
        self.pass_status();
        (slot, delay)
    }

    /// One pass of `slot`'s skill, holding `permit` until its sync is
    /// done; returns the slot and the wait until its next check.
    async fn run_pass(
        self: Arc<Self>,
        slot: Arc<Slot>,
        permit: OwnedSemaphorePermit,
    ) -> (Arc<Slot>, Duration) {
        let engine = self.engine();
        let Some(skill) = engine.config().skills.get(&*slot.name) else {
            // Started as a reload took the skill out of the config; the
            // reload stops the slot next.
            lock(&slot.view).running = false;
            self.slot_changed.notify_waiters();
            return (slot, engine.config().daemon.poll_interval);
        };
        // Boxed: the sync's state machine is large, and this future is
        // moved into its task.
        let record = slot.record.lock().await;
        #[cfg(test)]
        tests::maybe_panic(&slot.name);
        let mut report = Box::pin(engine.sync(skill)).await;
        drop(record);
        drop(permit);
        crate::memory::after_pass();
        log_report(&report);
        let current = self.engine();
        let interval = current.config().daemon.poll_interval;
        // Only this pass changes these now.
        let (failures, first) = {
            let mut view = lock(&slot.view);
            view.failures = match report.state {
                SkillState::Error => view.failures.saturating_add(1),
                _ => 0,
            };
            (view.failures, !view.checked)
        };
        let delay = if report.state == SkillState::Error {
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
        let delay = if first {
            delay + poll_offset(&skill.name, interval, current.config().daemon.jitter)
        } else {
            delay
        };
        let now = SystemTime::now();
        let mut view = lock(&slot.view);
        let mut events = std::mem::take(&mut report.events);
        // A conflict or a drift is an event when it appears, not on every
        // poll.
        for t in report
            .targets
            .iter()
            .filter(|t| matches!(t.state, TargetState::Conflict | TargetState::Drifted))
        {
            let was = view.checked
                && view.report.as_ref().is_some_and(|r| {
                    r.targets
                        .iter()
                        .any(|p| *p.name == *t.name && p.state == t.state)
                });
            if !was {
                events.push(Event {
                    at: rfc3339(now),
                    skill: skill.name.clone(),
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
        view.running = false;
        view.done += 1;
        view.report = Some(report.into());
        view.checked = true;
        view.last_checked = Some(now);
        view.next_check = Some(now + delay);
        drop(view);
        self.events.push(events);
        self.slot_changed.notify_waiters();
        self.pass_status();
        (slot, delay)
    }

    /// Tells the service manager the summary after a pass: at most once
    /// per [`STATUS_EVERY`] while passes run, and always when none is
    /// left, so thousands of passes at start do not each walk every slot.
    fn pass_status(&self) {
        if !self.notifier.is_enabled() {
            return;
        }
        let idle = self.limit.available_permits() == CONCURRENCY;
        {
            let mut sent = lock(&self.status_sent);
            if !idle && sent.is_some_and(|at| at.elapsed() < STATUS_EVERY) {
                return;
            }
            *sent = Some(Instant::now());
        }
        self.notifier.status(&self.summary());
    }

    /// A one-line summary: `3 skills: 2 in sync, 1 error`.
    pub fn summary(&self) -> String {
        let slots = lock(&self.slots);
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

    /// What status shows of a slot; `engine` is the running one, read
    /// with the slot list locked (so it names every slot's skill).
    fn skill_status(engine: &Engine, slot: &Slot) -> Option<SkillStatus> {
        let skill = engine.config().skills.get(&*slot.name)?;
        let view = lock(&slot.view);
        let report = view.report.as_ref();
        let text = |s: &Option<Box<str>>| s.as_deref().map(str::to_string);
        // Running now: updating; never checked (a report from the state
        // file): pending, whatever it recorded.
        let state = match report.map(|r| r.state) {
            _ if view.running => SkillState::Updating,
            Some(SkillState::InSync) if !view.checked => SkillState::Pending,
            Some(state) => state,
            None => SkillState::Pending,
        };
        Some(SkillStatus {
            name: skill.name.clone(),
            image: skill.image.to_string(),
            follows: follows(skill),
            version: report.and_then(|r| text(&r.version)),
            digest: report.and_then(|r| r.digest.as_ref().map(|d| d.to_string())),
            status: report.and_then(|r| {
                if r.archived {
                    Some("archived".to_string())
                } else {
                    r.status.map(|s| s.to_string())
                }
            }),
            state,
            error: report.and_then(|r| text(&r.error)),
            last_checked: view.last_checked.map(rfc3339),
            next_check: if view.running {
                None
            } else {
                view.next_check.map(rfc3339)
            },
            targets: report
                .map(|r| {
                    r.targets
                        .iter()
                        .map(|t| TargetStatus {
                            name: t.name.to_string(),
                            path: t.path.display().to_string(),
                            state: t.state,
                            error: text(&t.error),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            held: report.and_then(|r| text(&r.held)),
            backups: report
                .map(|r| r.backups.iter().map(|b| b.to_string()).collect())
                .unwrap_or_default(),
            served_by: report.and_then(|r| text(&r.served_by)),
            insecure: engine
                .config()
                .registries
                .get(&skill.image.registry)
                .is_some_and(|r| r.insecure),
            verification: report.and_then(|r| text(&r.verification)),
            origin: engine
                .config()
                .layers
                .origins
                .get(&skill.name)
                .map(|o| o.defined_at.clone()),
        })
    }

    /// Installed folders the config no longer names and that were kept
    /// (`prune = false`, or edited by hand).
    /// The folders of skill `name` that the config no longer wants but
    /// that are still there (kept by `prune = false` or because edited).
    fn unmanaged_of(engine: &Engine, name: &str, record: &SkillRecord) -> Option<UnmanagedSkill> {
        let paths: Vec<String> = record
            .targets
            .iter()
            .filter(|(tname, t)| !engine.config().wants(name, tname, &t.path))
            .map(|(_, t)| t)
            .filter(|t| t.installed.is_some() && t.path.exists())
            .map(|t| t.path.display().to_string())
            .collect();
        (!paths.is_empty()).then(|| UnmanagedSkill {
            name: name.to_string(),
            paths,
        })
    }

    /// Reloads the config file. A config that fails to load is rejected
    /// and the running one kept; its error is shown in status until a good
    /// config loads.
    pub async fn reload(&self) -> ReloadResponse {
        let _one_at_a_time = self.reloading.lock().await;
        self.notifier.reloading();
        let outcome = self.reload_config().await;
        self.notifier.ready_after_reload();
        match &outcome.error {
            Some(e) => self.notifier.status(&format!(
                "config rejected (last good config running): {}",
                first_line(e)
            )),
            None => self.notifier.status(&self.summary()),
        }
        outcome
    }

    async fn reload_config(&self) -> ReloadResponse {
        let rejected = |daemon: &Daemon, error: String| {
            tracing::error!("config rejected, keeping the last good one:\n{error}");
            *lock(&daemon.config_error) = Some(error.clone());
            ReloadResponse {
                ok: false,
                error: Some(error),
                added: Vec::new(),
                removed: Vec::new(),
                changed: Vec::new(),
            }
        };
        let config =
            match crate::config::load(&self.config_path, &crate::config::LoadOptions::from_env()) {
                Ok(c) => c,
                Err(e) => return rejected(self, e.to_string()),
            };
        let old = self.engine();
        for (what, was, now) in [
            (
                "state_dir",
                &old.config().daemon.state_dir,
                &config.daemon.state_dir,
            ),
            (
                "cache_dir",
                &old.config().daemon.cache_dir,
                &config.daemon.cache_dir,
            ),
            ("socket", &old.config().daemon.socket, &config.daemon.socket),
        ] {
            if was != now {
                tracing::warn!("[daemon] {what} changed; it takes effect at the next restart");
            }
        }
        let engine = match old.reconfigured(config) {
            Ok(e) => Arc::new(e),
            Err(e) => return rejected(self, e.to_string()),
        };
        let mut added = Vec::new();
        let mut removed = Vec::new();
        let mut changed = Vec::new();
        let mut stopped = Vec::new();
        {
            let mut slots = lock(&self.slots);
            // Swapped with the slot list locked: every slot left in it is
            // one the new config names with the same settings.
            *self.engine.write().unwrap_or_else(|e| e.into_inner()) = engine.clone();
            let names: Vec<Arc<str>> = slots.keys().cloned().collect();
            for name in names {
                // Every slot was made for the old config's skill.
                let keep = match (
                    old.config().skills.get(&*name),
                    engine.config().skills.get(&*name),
                ) {
                    (Some(was), Some(now)) => {
                        was == now
                            && Self::target_paths(&old, was) == Self::target_paths(&engine, now)
                    }
                    _ => false,
                };
                if !keep {
                    if let Some(slot) = slots.remove(&name) {
                        self.stop_slot(&slot);
                        stopped.push(slot);
                    }
                    if engine.config().skills.contains_key(&*name) {
                        changed.push(name.to_string());
                    } else {
                        removed.push(name.to_string());
                    }
                }
            }
            let changed_names: HashSet<&str> = changed.iter().map(String::as_str).collect();
            for name in engine.config().skills.keys() {
                if !slots.contains_key(name.as_str()) && !changed_names.contains(name.as_str()) {
                    added.push(name.clone());
                }
            }
        }
        // Passes of removed or changed skills under way finish first, then
        // what the config no longer names is pruned.
        for slot in &stopped {
            self.wait_view(slot, |view| !view.running).await;
        }
        let names = added.iter().chain(changed.iter()).cloned().collect();
        let mut records = self.prune_and_read(&engine, names).await;
        for name in added.iter().chain(changed.iter()) {
            if let Some(skill) = engine.config().skills.get(name) {
                self.add_slot(skill, records.outcomes.remove(name));
            }
        }
        *lock(&self.unmanaged) = records.unmanaged;
        *lock(&self.config_error) = None;
        *lock(&self.config_loaded_at) = rfc3339(SystemTime::now());
        let files = watched(engine.config(), &self.config_path);
        self.files.send_if_modified(|old| {
            let changed = *old != files;
            *old = files;
            changed
        });
        tracing::info!(
            added = ?added,
            removed = ?removed,
            changed = ?changed,
            "config reloaded"
        );
        for name in &removed {
            tracing::info!(skill = %name, "no longer configured; left installed (unmanaged)");
        }
        ReloadResponse {
            ok: true,
            error: None,
            added,
            removed,
            changed,
        }
    }

    /// Stops every slot: no new pass starts; passes under way get
    /// [`SHUTDOWN_GRACE`] to finish, then are cut off (installs are atomic
    /// and recorded as pending first, so nothing is left half-written).
    pub async fn shutdown(&self) {
        for slot in lock(&self.slots).values() {
            self.stop_slot(slot);
        }
        let _ = self.commands.send(Command::Shutdown);
        let Some(scheduler) = lock(&self.scheduler).take() else {
            return;
        };
        let mut passes = match scheduler.await {
            Ok(passes) => passes,
            Err(e) => {
                tracing::error!("the scheduler ended abnormally: {e}");
                return;
            }
        };
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while passes.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "passes still running after {}s; stopping them (installs are atomic, nothing is half-written)",
                SHUTDOWN_GRACE.as_secs()
            );
            passes.abort_all();
            while passes.join_next().await.is_some() {}
            // Whoever waits on them (`sync --wait`) is let go.
            for slot in lock(&self.slots).values() {
                lock(&slot.view).running = false;
            }
            self.slot_changed.notify_waiters();
        }
        if let Some(writer) = lock(&self.events_writer).take() {
            writer.abort();
        }
        self.events.write();
    }

    /// Checks the remote includes and collections now, and reloads the
    /// config when one of them changed (a fragment can add a collection,
    /// so this goes round at most three times). Returns how many changed.
    pub async fn refresh_team(&self) -> usize {
        let _one_at_a_time = self.team_refresh.lock().await;
        let mut total = 0;
        for _ in 0..3 {
            let engine = self.engine();
            let refreshed =
                refresh_team(engine.config(), &self.paths, Some(engine.sources())).await;
            if refreshed.changed == 0 {
                break;
            }
            total += refreshed.changed;
            tracing::info!(
                "{} remote includes or collections changed; reloading",
                refreshed.changed
            );
            self.reload().await;
            if refreshed.updated == 0 {
                break;
            }
        }
        total
    }

    fn slot(&self, name: &str) -> Option<Arc<Slot>> {
        lock(&self.slots).get(name).cloned()
    }
}

impl Controller for Daemon {
    fn status(&self) -> StatusResponse {
        let slots = lock(&self.slots);
        let engine = self.engine();
        let skills = slots
            .values()
            .filter_map(|s| Self::skill_status(&engine, s))
            .collect();
        drop(slots);
        StatusResponse {
            daemon: DaemonStatus {
                version: env!("CARGO_PKG_VERSION").to_string(),
                pid: std::process::id(),
                config: self.config_path.display().to_string(),
                config_error: lock(&self.config_error).clone(),
                started_at: self.started_at.clone(),
                config_loaded_at: lock(&self.config_loaded_at).clone(),
                poll_interval_secs: engine.config().daemon.poll_interval.as_secs(),
                state_dir: self.state_dir.display().to_string(),
                cache_dir: self.cache_dir.display().to_string(),
            },
            skills,
            unmanaged: lock(&self.unmanaged).clone(),
            config_sources: config_sources(engine.config()),
        }
    }

    fn skill(&self, name: &str) -> Option<SkillStatus> {
        let slots = lock(&self.slots);
        let engine = self.engine();
        slots.get(name).and_then(|s| Self::skill_status(&engine, s))
    }

    async fn sync(&self, name: Option<String>, wait: bool) -> Result<SyncResponse, String> {
        if name.is_none() {
            // Every skill: collections and remote includes first.
            self.refresh_team().await;
        }
        let names: Vec<String> = match &name {
            Some(n) => {
                if !lock(&self.slots).contains_key(n.as_str()) {
                    return Err(format!("no skill named {n:?} is configured"));
                }
                vec![n.clone()]
            }
            None => lock(&self.slots).keys().map(|n| n.to_string()).collect(),
        };
        // For each skill: the pass count that proves a pass *started after
        // this request* has finished.
        let mut waits = Vec::new();
        for n in &names {
            let Some(slot) = self.slot(n) else {
                continue;
            };
            let target = {
                let view = lock(&slot.view);
                view.done + if view.running { 2 } else { 1 }
            };
            let _ = self.commands.send(Command::Trigger(slot.clone()));
            waits.push((slot, target));
        }
        if wait {
            for (slot, target) in &waits {
                // A slot stopped by a reload ends the wait once its last
                // pass is over.
                self.wait_view(slot, |view| {
                    view.done >= *target || (view.stopped && !view.running)
                })
                .await;
            }
        }
        let slots = lock(&self.slots);
        let engine = self.engine();
        let skills = names
            .iter()
            .filter_map(|n| slots.get(n.as_str()))
            .filter_map(|s| Self::skill_status(&engine, s))
            .collect();
        Ok(SyncResponse {
            waited: wait,
            skills,
        })
    }

    async fn reload(&self) -> ReloadResponse {
        Daemon::reload(self).await
    }

    async fn hold(&self, name: String, action: HoldAction) -> Result<HoldResponse, ActionError> {
        let Some(slot) = lock(&self.slots).get(name.as_str()).cloned() else {
            return Err(ActionError::NotFound(format!(
                "no skill named {name:?} is configured"
            )));
        };
        let engine = self.engine();
        let record = slot.record.lock().await;
        let message = match action {
            HoldAction::Hold => engine.hold(&name).await,
            HoldAction::Rollback => engine.rollback(&name).await,
            HoldAction::Resume => engine.resume(&name).await.map(|was| {
                if was {
                    format!("{name} resumed: it follows the config again")
                } else {
                    format!("{name} was not held")
                }
            }),
        }
        .map_err(|e| match e {
            Error::Refused(refusal) => ActionError::Refused(refusal.to_string()),
            other => ActionError::Failed(crate::error::chain(&other)),
        })?;
        drop(record);
        tracing::info!(skill = %name, "{message}");
        let kind = match action {
            HoldAction::Hold => EventKind::Hold,
            HoldAction::Rollback => EventKind::Rollback,
            HoldAction::Resume => EventKind::Resume,
        };
        // Apply it now: a rollback reinstalls, a resume re-resolves, and
        // status shows the hold.
        let synced = self
            .sync(Some(name.clone()), true)
            .await
            .map_err(ActionError::NotFound)?;
        let skill = synced.skills.into_iter().next().ok_or_else(|| {
            ActionError::NotFound(format!("no skill named {name:?} is configured"))
        })?;
        self.events.push(vec![Event {
            at: rfc3339(SystemTime::now()),
            skill: name.clone(),
            kind,
            target: None,
            version: skill.version.clone(),
            digest: skill.digest.clone(),
            message: message.clone(),
        }]);
        Ok(HoldResponse { message, skill })
    }

    async fn plan(&self) -> Result<PlanResponse, String> {
        let engine = self.engine().dry_run().await.map_err(|e| e.to_string())?;
        let prune = engine
            .prune()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|e| e.message)
            .collect();
        // Built in a loop, not a closure: a closure over `engine` here trips
        // the compiler's Send check for this trait method.
        let mut passes = Vec::new();
        for skill in engine.config().skills.values() {
            passes.push(engine.sync(skill));
        }
        let mut reports: Vec<SkillReport> = futures_util::stream::iter(passes)
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        reports.sort_by(|a, b| a.name.cmp(&b.name));
        let skills = reports
            .into_iter()
            .map(|r| PlannedSkill {
                name: r.name,
                changes: r.changes,
                error: r.error,
            })
            .collect();
        Ok(PlanResponse { prune, skills })
    }

    fn events(&self) -> EventsResponse {
        EventsResponse {
            events: self.events.recent(),
        }
    }
}

/// How [`run`] should behave.
pub struct RunOptions {
    /// The config file (watched for changes).
    pub config_path: PathBuf,
    /// The control socket's path.
    pub socket: PathBuf,
}

/// Runs the daemon until `shutdown` completes: every skill on its schedule,
/// the control socket, reload on config edits and SIGHUP, systemd's
/// notifications (READY, STATUS, WATCHDOG, RELOADING, STOPPING).
pub async fn run(
    engine: Engine,
    paths: &Paths,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};

    let notifier = Arc::new(Notifier::from_env());
    let listener = server::bind(&options.socket)?;
    let daemon = Daemon::start(engine, options.config_path.clone(), paths, notifier.clone()).await;

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut server_stop = stop_rx.clone();
    let server_task = tokio::spawn(server::serve(listener, daemon.clone(), async move {
        let _ = server_stop.wait_for(|stop| *stop).await;
    }));

    let (reload_tx, mut reload_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut files_rx = daemon.files.subscribe();
    let start_watch = |files: &[PathBuf]| match crate::watch::watch_all(files, reload_tx.clone()) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!("{e}; edits are picked up on SIGHUP or `skillsyncctl reload` only");
            None
        }
    };
    let mut _watcher = start_watch(&files_rx.borrow_and_update());
    // Remote includes and collections are checked once per poll interval
    // (they were checked just before start).
    let mut next_team = tokio::time::Instant::now() + daemon.engine().config().daemon.poll_interval;
    let mut hangup = signal(SignalKind::hangup()).map_err(|e| {
        crate::Error::io("installing the SIGHUP handler for", &options.config_path, e)
    })?;
    // Watchdog pings come from this loop itself, so a stuck loop is not
    // masked by a healthy timer task.
    let mut watchdog = notifier.watchdog_interval().map(tokio::time::interval);
    // What passes free goes back to the system once none is running.
    let limit = daemon.limit.clone();
    let trimmer = tokio::spawn(crate::memory::trim_loop(move || {
        limit.available_permits() == CONCURRENCY
    }));

    notifier.ready();
    notifier.status(&daemon.summary());
    tracing::info!(socket = %options.socket.display(), "control socket listening");

    tokio::pin!(shutdown);
    loop {
        let tick = async {
            match watchdog.as_mut() {
                Some(w) => {
                    w.tick().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let why = tokio::select! {
            _ = &mut shutdown => break,
            _ = tick => {
                notifier.watchdog();
                continue;
            }
            Ok(()) = files_rx.changed() => {
                let files = files_rx.borrow_and_update().clone();
                _watcher = start_watch(&files);
                continue;
            }
            _ = tokio::time::sleep_until(next_team) => {
                next_team = tokio::time::Instant::now() + daemon.engine().config().daemon.poll_interval;
                // Off this loop: a slow registry must not hold up the
                // watchdog or a shutdown.
                let daemon = daemon.clone();
                tokio::spawn(async move { daemon.refresh_team().await });
                continue;
            }
            Some(()) = reload_rx.recv() => "the config file changed",
            _ = hangup.recv() => "SIGHUP",
        };
        tracing::info!("reloading the config: {why}");
        notifier.reloading();
        let outcome = daemon.reload().await;
        notifier.ready_after_reload();
        if let Some(e) = outcome.error {
            notifier.status(&format!(
                "config rejected (last good config running): {}",
                first_line(&e)
            ));
        } else {
            notifier.status(&daemon.summary());
        }
    }

    tracing::info!("shutting down");
    notifier.stopping();
    trimmer.abort();
    let _ = stop_tx.send(true);
    daemon.shutdown().await;
    if let Err(e) = server_task.await {
        tracing::warn!("control socket task failed: {e}");
    }
    tracing::info!("stopped");
    Ok(())
}

/// What to watch for `config`: every file read and include pattern, and
/// the main file.
fn watched(config: &Config, main: &std::path::Path) -> Vec<PathBuf> {
    let mut files = config.layers.watch.clone();
    if !files.iter().any(|f| f == main) {
        files.push(main.to_path_buf());
    }
    files
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}
