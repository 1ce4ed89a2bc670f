//! Config reload (file watch, SIGHUP, the control socket, a remote
//! include that changed), keeping the last good config running when a new
//! one fails. Must not run passes itself: it starts and stops slots.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex, RwLock};
use std::time::SystemTime;

use crate::config::{Config, Skill};
use tokio::sync::watch;

use crate::control::protocol::{ReloadResponse, UnmanagedSkill};
use crate::paths::Paths;
use crate::reconcile::Engine;

use super::guard::lock;
use super::outcome::rfc3339;
use super::scheduler::Slot;
use super::{refresh_team, Daemon};

/// The daemon's config part: the running config's engine, what status
/// shows of its loading, and what keeps reloads and refreshes one at a
/// time.
pub(super) struct Running {
    /// The config file.
    pub(super) path: PathBuf,
    /// Where files live (for the team cache).
    pub(super) paths: Paths,
    /// Replaced only with the slot list locked, so the two always agree.
    pub(super) engine: RwLock<Arc<Engine>>,
    /// When it loaded, why the last reload was rejected, and the folders
    /// it no longer manages.
    pub(super) status: StdMutex<ConfigStatus>,
    /// One reload at a time.
    pub(super) reloading: tokio::sync::Mutex<()>,
    /// One refresh of remote includes and collections at a time.
    pub(super) team_refresh: tokio::sync::Mutex<()>,
    /// The files and include patterns of the running config, for the
    /// watch.
    pub(super) files: watch::Sender<Vec<PathBuf>>,
}

/// What status shows of the running config.
pub(super) struct ConfigStatus {
    /// When it was loaded (RFC 3339).
    pub(super) loaded_at: String,
    /// Why the last reload was rejected, until a good config loads.
    pub(super) error: Option<String>,
    /// Installed folders it no longer names, kept.
    pub(super) unmanaged: Vec<UnmanagedSkill>,
}

impl Running {
    /// The part for `engine`'s config, read from `path`, loaded at `now`.
    pub(super) fn new(engine: Engine, path: PathBuf, paths: &Paths, now: String) -> Running {
        let files = watched(engine.config(), &path);
        Running {
            path,
            paths: paths.clone(),
            engine: RwLock::new(Arc::new(engine)),
            status: StdMutex::new(ConfigStatus {
                loaded_at: now,
                error: None,
                unmanaged: Vec::new(),
            }),
            reloading: tokio::sync::Mutex::new(()),
            team_refresh: tokio::sync::Mutex::new(()),
            files: watch::channel(files).0,
        }
    }
}

impl Daemon {
    pub(super) fn target_paths(engine: &Engine, skill: &Skill) -> Vec<PathBuf> {
        skill
            .targets
            .iter()
            .filter_map(|t| engine.config().targets.get(t))
            .map(|t| t.path.join(&skill.name))
            .collect()
    }

    /// Reloads the config file. A config that fails to load is rejected
    /// and the running one kept; its error is shown in status until a good
    /// config loads.
    pub async fn reload(&self) -> ReloadResponse {
        let _one_at_a_time = self.config.reloading.lock().await;
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

    pub(super) async fn reload_config(&self) -> ReloadResponse {
        let rejected = |daemon: &Daemon, error: String| {
            tracing::error!("config rejected, keeping the last good one:\n{error}");
            lock(&daemon.config.status).error = Some(error.clone());
            ReloadResponse {
                ok: false,
                error: Some(error),
                added: Vec::new(),
                removed: Vec::new(),
                changed: Vec::new(),
            }
        };
        let config =
            match crate::config::load(&self.config.path, &crate::config::LoadOptions::from_env()) {
                Ok(c) => c,
                Err(e) => return rejected(self, e.to_string()),
            };
        let old = self.engine();
        warn_restart_settings(old.config(), &config);
        let engine = match old.reconfigured(config) {
            Ok(e) => Arc::new(e),
            Err(e) => return rejected(self, e.to_string()),
        };
        let (swap, stopped) = self.swap_engine(&old, &engine);
        // Passes of removed or changed skills under way finish first, then
        // what the config no longer names is pruned.
        for slot in &stopped {
            self.wait_view(slot, |view| !view.running).await;
        }
        self.start_swapped(&engine, swap).await
    }

    /// Puts `engine` in `old`'s place with the slot list locked, and stops
    /// the slots of skills it removed or changed: what changed, and the
    /// slots stopped.
    fn swap_engine(&self, old: &Engine, engine: &Arc<Engine>) -> (Swap, Vec<Arc<Slot>>) {
        let mut swap = Swap::default();
        let mut stopped = Vec::new();
        let mut slots = lock(&self.sched.slots);
        // Swapped with the slot list locked: every slot left in it is
        // one the new config names with the same settings.
        *self
            .config
            .engine
            .write()
            .unwrap_or_else(|e| e.into_inner()) = engine.clone();
        let names: Vec<Arc<str>> = slots.keys().cloned().collect();
        for name in names {
            // Every slot was made for the old config's skill.
            let keep = match (
                old.config().skills.get(&*name),
                engine.config().skills.get(&*name),
            ) {
                (Some(was), Some(now)) => {
                    was == now && Self::target_paths(old, was) == Self::target_paths(engine, now)
                }
                _ => false,
            };
            if !keep {
                if let Some(slot) = slots.remove(&name) {
                    self.stop_slot(&slot);
                    stopped.push(slot);
                }
                if engine.config().skills.contains_key(&*name) {
                    swap.changed.push(name.to_string());
                } else {
                    swap.removed.push(name.to_string());
                }
            }
        }
        let changed_names: HashSet<&str> = swap.changed.iter().map(String::as_str).collect();
        for name in engine.config().skills.keys() {
            if !slots.contains_key(name.as_str()) && !changed_names.contains(name.as_str()) {
                swap.added.push(name.clone());
            }
        }
        (swap, stopped)
    }

    /// After a swap: prunes, starts the slots of skills added or changed,
    /// and shows the new config in status and to the watch.
    async fn start_swapped(&self, engine: &Arc<Engine>, swap: Swap) -> ReloadResponse {
        let Swap {
            added,
            removed,
            changed,
        } = swap;
        let names = added.iter().chain(changed.iter()).cloned().collect();
        let mut records = self.prune_and_read(engine, names).await;
        for name in added.iter().chain(changed.iter()) {
            if let Some(skill) = engine.config().skills.get(name) {
                self.add_slot(skill, records.outcomes.remove(name));
            }
        }
        {
            let mut status = lock(&self.config.status);
            status.unmanaged = records.unmanaged;
            status.error = None;
            status.loaded_at = rfc3339(SystemTime::now());
        }
        let files = watched(engine.config(), &self.config.path);
        self.config.files.send_if_modified(|old| {
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

    /// Checks the remote includes and collections now, and reloads the
    /// config when one of them changed (a fragment can add a collection,
    /// so this goes round at most three times). Returns how many changed.
    pub async fn refresh_team(&self) -> usize {
        let _one_at_a_time = self.config.team_refresh.lock().await;
        let mut total = 0;
        for _ in 0..3 {
            let engine = self.engine();
            let refreshed =
                refresh_team(engine.config(), &self.config.paths, Some(engine.sources())).await;
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
}

/// What to watch for `config`: every file read and include pattern, and
/// the main file.
/// What a reload changed: skill names added, removed, and changed.
#[derive(Default)]
struct Swap {
    added: Vec<String>,
    removed: Vec<String>,
    changed: Vec<String>,
}

/// Warns of `[daemon]` settings that `now` changes from `was`: they take
/// effect at the next restart only.
fn warn_restart_settings(was: &Config, now: &Config) {
    for (what, was, now) in [
        ("state_dir", &was.daemon.state_dir, &now.daemon.state_dir),
        ("cache_dir", &was.daemon.cache_dir, &now.daemon.cache_dir),
        ("socket", &was.daemon.socket, &now.daemon.socket),
    ] {
        if was != now {
            tracing::warn!("[daemon] {what} changed; it takes effect at the next restart");
        }
    }
}

pub(super) fn watched(config: &Config, main: &std::path::Path) -> Vec<PathBuf> {
    let mut files = config.layers.watch.clone();
    if !files.iter().any(|f| f == main) {
        files.push(main.to_path_buf());
    }
    files
}

pub(super) fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}
