//! Pruning: uninstalling what the config no longer names, and removing an
//! archived version (`on_archived = "remove"`).
//!
//! Must NOT remove a folder that is not ours or was edited: those are kept
//! and reported; and in a dry run nothing is removed.

use std::path::Path;

use crate::config::Skill;
use crate::control::protocol::{Event, EventKind};
use crate::error::{blocking, Result};
use crate::install;
use crate::ownership::{Marker, MARKER_FILE};
use crate::state::{Installed, SkillRecord, TargetRecord};
use crate::tree;

use super::report::{label, now_rfc3339, SkillReport};
use super::{exists, Engine};

/// Whether a managed folder may be removed: `None` when it is ours and
/// unedited, else why it is kept.
async fn removable(name: &str, t: &TargetRecord) -> Result<Option<String>> {
    let mut record = t.tree.clone();
    let path = t.path.clone();
    let skill_name = name.to_string();
    blocking("removal check", move || -> Result<Option<String>> {
        if Marker::read(&path, &skill_name).is_none() && record.is_none() {
            return Ok(Some("it carries no skillsyncd marker".into()));
        }
        match record.as_mut() {
            Some(rec) => {
                let drift = tree::check(&path, rec, &[MARKER_FILE])?;
                Ok((!drift.is_clean()).then(|| format!("it was edited: {}", drift.summary())))
            }
            None => {
                let marker = Marker::read(&path, &skill_name);
                let hash = tree::hash_only(&path, &[MARKER_FILE])?;
                Ok(
                    (marker.map(|m| m.tree_hash) != Some(hash))
                        .then(|| "it was edited".to_string()),
                )
            }
        }
    })
    .await?
}

impl Engine {
    /// Uninstalls what the config no longer names: skills removed from it,
    /// and targets removed from a skill (or moved elsewhere). Only folders
    /// that are ours and unedited are removed (renamed out atomically, then
    /// deleted); an edited one is kept and reported, and with
    /// `[daemon] prune = false` everything is kept (shown as unmanaged).
    /// Returns what was done, as events.
    pub async fn prune(&self) -> Result<Vec<Event>> {
        let store = self.state.clone();
        let names = blocking("reading the state", move || store.names()).await??;
        self.prune_names(names).await
    }

    /// Whether [`Engine::prune`] has anything to do with skill `name`'s
    /// `record`: a target the config no longer wants it in, or a skill no
    /// longer configured with no target left.
    pub fn needs_prune(&self, name: &str, record: &SkillRecord) -> bool {
        (record.targets.is_empty() && !self.config.skills.contains_key(name))
            || record
                .targets
                .iter()
                .any(|(tname, t)| !self.config.wants(name, tname, &t.path))
    }

    /// [`Engine::prune`] of the skills `names` only (those
    /// [`Engine::needs_prune`] picked out while reading the records).
    pub async fn prune_names(&self, names: Vec<String>) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        let _edits = self.edits.lock().await;
        for name in names {
            let mut changed = false;
            let configured = self.config.skills.get(&name);
            let Some(mut recorded) = self.load_state(&name).await? else {
                continue;
            };
            let skill_state = &mut recorded;
            let stale: Vec<String> = skill_state
                .targets
                .iter()
                .filter(|(tname, t)| !self.config.wants(&name, tname, &t.path))
                .map(|(tname, _)| tname.clone())
                .collect();
            for tname in stale {
                let Some(t) = skill_state.targets.get(&tname).cloned() else {
                    continue;
                };
                if !exists(&t.path) {
                    skill_state.targets.remove(&tname);
                    changed = true;
                    continue;
                }
                if !self.config.daemon.prune {
                    continue;
                }
                let verdict = removable(&name, &t).await?;
                let installed = t.installed.clone();
                let event = |kind: EventKind, message: String| Event {
                    at: now_rfc3339(),
                    skill: name.clone(),
                    kind,
                    target: Some(tname.clone()),
                    version: installed.as_ref().and_then(|i| i.version.clone()),
                    digest: installed.as_ref().map(|i| i.manifest_digest.to_string()),
                    message,
                };
                match verdict {
                    Some(why) => {
                        tracing::warn!(skill = %name, target = %tname, "no longer configured, but kept: {why}");
                    }
                    None if self.dry_run => {
                        events.push(event(
                            EventKind::Prune,
                            format!(
                                "would remove {name} from {tname} ({}): no longer configured",
                                t.path.display()
                            ),
                        ));
                    }
                    None => {
                        let dir = t.path.parent().map(Path::to_path_buf).unwrap_or_default();
                        let folder = name.clone();
                        blocking("prune", move || install::uninstall(&dir, &folder)).await??;
                        skill_state.targets.remove(&tname);
                        changed = true;
                        let message = format!(
                            "removed {name} from {tname} ({}): no longer configured",
                            t.path.display()
                        );
                        tracing::info!(skill = %name, "{message}");
                        events.push(event(EventKind::Prune, message));
                    }
                }
            }
            if configured.is_none() && skill_state.targets.is_empty() {
                let store = self.state.clone();
                let forget = name.clone();
                blocking("prune", move || store.remove(&forget)).await??;
            } else if changed {
                self.commit_state(&name, skill_state).await?;
            }
        }
        Ok(events)
    }

    /// `on_archived = "remove"`: uninstalls an archived skill from every
    /// target where it is ours and unedited.
    pub(super) async fn remove_archived(
        &self,
        skill: &Skill,
        prev: Option<SkillRecord>,
        known: &Installed,
        report: &mut SkillReport,
    ) -> Result<()> {
        let Some(mut skill_state) = prev else {
            return Ok(());
        };
        let label = label(&skill.name, known);
        let names: Vec<String> = skill_state.targets.keys().cloned().collect();
        for tname in names {
            let Some(t) = skill_state.targets.get(&tname).cloned() else {
                continue;
            };
            if !exists(&t.path) {
                skill_state.targets.remove(&tname);
                continue;
            }
            if let Some(why) = removable(&skill.name, &t).await? {
                report
                    .changes
                    .push(format!("{label} is archived; kept in {tname}: {why}"));
                continue;
            }
            if self.dry_run {
                report
                    .changes
                    .push(format!("would remove {label} from {tname}: archived"));
                continue;
            }
            let dir = t.path.parent().map(Path::to_path_buf).unwrap_or_default();
            let folder = skill.name.clone();
            blocking("removal", move || install::uninstall(&dir, &folder)).await??;
            skill_state.targets.remove(&tname);
            report.record(
                EventKind::Prune,
                Some(&tname),
                known,
                format!(
                    "removed {label} from {tname} ({}): archived",
                    t.path.display()
                ),
            );
        }
        skill_state.archived = true;
        self.commit_state(&skill.name, &skill_state).await
    }
}
