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

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use tokio::sync::watch;

use crate::config::{Config, Skill};
use crate::control::server;
use crate::error::Result;
use crate::paths::Paths;
use crate::reconcile::{Engine, SkillReport, SkillState};
use crate::service::Notifier;

use events::EventLog;
use guard::lock;
use outcome::rfc3339;
use reload::{first_line, Running};
use scheduler::{deadline, Command, Scheduler};

mod control;
mod events;
mod guard;
mod outcome;
mod records;
mod reload;
mod scheduler;
mod sources;
#[cfg(test)]
mod tests;

pub use events::{EVENTS_FILE, EVENTS_KEPT};
pub use outcome::follows;
pub use scheduler::{poll_offset, CONCURRENCY, RETRY_MIN};
pub use sources::config_sources;

/// How long passes under way may take to finish after a shutdown request.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub use crate::config::{load_config, refresh_team};

/// Builds the engine for a config and repairs what a crash left behind.
/// State and cache go where `[daemon]` says, unless the environment
/// overrides it (see [`Paths::with_dirs`]).
pub fn start_engine(config: Config, paths: &Paths) -> Result<Engine> {
    let paths = paths.clone().with_dirs(
        config.daemon.state_dir.as_deref(),
        config.daemon.cache_dir.as_deref(),
    );
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

/// The daemon's shared core, in parts each owned by a file of this
/// module: the running config ([`reload`]), the slots and their passes
/// ([`scheduler`]), the recent events ([`events`]).
pub struct Daemon {
    /// The running config and its reloads.
    config: Running,
    /// Every slot and the passes under way.
    sched: Scheduler,
    /// The recent events.
    events: Arc<EventLog>,
    /// Hears of passes and reloads (systemd's STATUS=, RELOADING=).
    notifier: Arc<Notifier>,
    /// When the daemon started (RFC 3339).
    started_at: String,
    /// Where the state and cache went at start (for status).
    state_dir: PathBuf,
    cache_dir: PathBuf,
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
        let dirs = paths.clone().with_dirs(
            engine.config().daemon.state_dir.as_deref(),
            engine.config().daemon.cache_dir.as_deref(),
        );
        let now = rfc3339(SystemTime::now());
        let (sched, commands_rx) = Scheduler::new();
        let daemon = Arc::new(Daemon {
            config: Running::new(engine, config_path, paths, now.clone()),
            sched,
            events: Arc::new(EventLog::open(dirs.state_dir.join(EVENTS_FILE))),
            notifier,
            started_at: now,
            state_dir: dirs.state_dir,
            cache_dir: dirs.cache_dir,
        });
        daemon.events.start_writer();
        *lock(&daemon.sched.task) = Some(tokio::spawn(daemon.clone().schedule(commands_rx)));
        let engine = daemon.engine();
        let names = engine.config().skills.keys().cloned().collect();
        let mut records = daemon.prune_and_read(&engine, names).await;
        lock(&daemon.config.status).unmanaged = records.unmanaged;
        for skill in engine.config().skills.values() {
            daemon.add_slot(skill, records.outcomes.remove(&skill.name));
        }
        tracing::info!(
            skills = engine.config().skills.len(),
            poll_interval = %humantime::format_duration(engine.config().daemon.poll_interval),
            config = %daemon.config.path.display(),
            "skillsyncd started"
        );
        daemon
    }

    /// The engine of the running config.
    pub fn engine(&self) -> Arc<Engine> {
        self.config
            .engine
            .read()
            .map(|e| e.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Stops every slot: no new pass starts; passes under way get
    /// [`SHUTDOWN_GRACE`] to finish, then are cut off (installs are atomic
    /// and recorded as pending first, so nothing is left half-written).
    pub async fn shutdown(&self) {
        for slot in lock(&self.sched.slots).values() {
            self.stop_slot(slot);
        }
        let _ = self.sched.commands.send(Command::Shutdown);
        let Some(scheduler) = lock(&self.sched.task).take() else {
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
            for slot in lock(&self.sched.slots).values() {
                lock(&slot.view).running = false;
            }
            self.sched.slot_changed.notify_waiters();
        }
        self.events.stop_writer();
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
    let watch = FileWatch::start(&daemon);
    let hangup = signal(SignalKind::hangup()).map_err(|e| {
        crate::Error::io("installing the SIGHUP handler for", &options.config_path, e)
    })?;
    // What passes free goes back to the system once none is running.
    let limit = daemon.sched.limit.clone();
    let trimmer = tokio::spawn(crate::memory::trim_loop(move || {
        limit.available_permits() == CONCURRENCY
    }));

    notifier.ready();
    notifier.status(&daemon.summary());
    tracing::info!(socket = %options.socket.display(), "control socket listening");

    serve_until(&daemon, &notifier, watch, hangup, shutdown).await;

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

/// [`run`]'s loop until `shutdown`: watchdog pings, the config files'
/// watch, the remote includes' refresh once per poll interval, and
/// reloads on an edit or SIGHUP.
async fn serve_until(
    daemon: &Arc<Daemon>,
    notifier: &Notifier,
    mut watch: FileWatch,
    mut hangup: tokio::signal::unix::Signal,
    shutdown: impl Future<Output = ()>,
) {
    // Remote includes and collections are checked once per poll interval
    // (they were checked just before start).
    let mut next_team = deadline(
        tokio::time::Instant::now(),
        daemon.engine().config().daemon.poll_interval,
    );
    // Watchdog pings come from this loop itself, so a stuck loop is not
    // masked by a healthy timer task.
    let mut watchdog = notifier.watchdog_interval().map(tokio::time::interval);
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
            Ok(()) = watch.files.changed() => {
                watch.restart();
                continue;
            }
            _ = tokio::time::sleep_until(next_team) => {
                next_team = deadline(
                    tokio::time::Instant::now(),
                    daemon.engine().config().daemon.poll_interval,
                );
                // Off this loop: a slow registry must not hold up the
                // watchdog or a shutdown.
                let daemon = daemon.clone();
                tokio::spawn(async move { daemon.refresh_team().await });
                continue;
            }
            Some(()) = watch.edits.recv() => "the config file changed",
            _ = hangup.recv() => "SIGHUP",
        };
        reload_for(daemon, notifier, why).await;
    }
}

/// The watch on the running config's files: restarted when a reload
/// changes which files those are.
struct FileWatch {
    /// The files to watch, as reloads change them.
    files: watch::Receiver<Vec<PathBuf>>,
    /// An edit to one of them.
    edits: tokio::sync::mpsc::UnboundedReceiver<()>,
    edited: tokio::sync::mpsc::UnboundedSender<()>,
    /// Kept while it watches; none if it could not be set up.
    _watcher: Option<crate::watch::ConfigWatcher>,
}

impl FileWatch {
    /// Watches `daemon`'s config files.
    fn start(daemon: &Daemon) -> FileWatch {
        let (edited, edits) = tokio::sync::mpsc::unbounded_channel();
        let mut watch = FileWatch {
            files: daemon.config.files.subscribe(),
            edits,
            edited,
            _watcher: None,
        };
        watch.restart();
        watch
    }

    /// Watches the files as they are now.
    fn restart(&mut self) {
        let files = self.files.borrow_and_update().clone();
        self._watcher = match crate::watch::watch_all(&files, self.edited.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("{e}; edits are picked up on SIGHUP or `skillsyncctl reload` only");
                None
            }
        };
    }
}

/// Reloads the config for `why` (an edit, SIGHUP), telling the service
/// manager.
async fn reload_for(daemon: &Daemon, notifier: &Notifier, why: &str) {
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
