//! Config reload (file watch, SIGHUP, the control socket, a remote
//! include that changed), keeping the last good config running when a new
//! one fails. Must not run passes itself: it starts and stops slots.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::{Config, Skill};
use crate::control::protocol::ReloadResponse;
use crate::reconcile::Engine;

use super::guard::lock;
use super::outcome::rfc3339;
use super::{refresh_team, Daemon};

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

    pub(super) async fn reload_config(&self) -> ReloadResponse {
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
        let config = match Config::load(&self.config_path) {
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
}

/// What to watch for `config`: every file read and include pattern, and
/// the main file.
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
