//! Hold, rollback and resume: freezing a skill at a version and lifting
//! it, and the pass of a held skill; and the backups kept of folders about
//! to be replaced (a drifted folder restored, a stranger's adopted).
//!
//! Must NOT install anything itself: these edit the state record and copy
//! folders out; the pass does the installing.

use std::path::{Path, PathBuf};

use crate::config::Skill;
use crate::control::protocol::EventKind;
use crate::error::{blocking, Refusal, Result};
use crate::install;
use crate::ownership::MARKER_FILE;
use crate::source::Source;
use crate::state::{Hold, HoldReason, Installed, SkillRecord};
use crate::tree;

use super::plan::{Ask, Rescue};
use super::record::PassRecord;
use super::report::{now_rfc3339, SkillReport};
use super::resolve::Desired;
use super::trust::trust_line;
use super::{exists, Engine};

impl Engine {
    /// Copies an edited skill folder to
    /// `<state dir>/backups/<skill>/<target>-<time>/` before it is replaced.
    pub async fn backup(&self, skill: &str, target: &str, path: &Path) -> Result<PathBuf> {
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            .to_string()
            .replace(':', "");
        let dest = self
            .state_dir
            .join("backups")
            .join(skill)
            .join(format!("{target}-{stamp}"));
        let from = path.to_path_buf();
        let to = dest.clone();
        blocking("backup", move || install::copy_tree(&from, &to)).await??;
        Ok(dest)
    }

    /// Backs a folder up before it is installed over (`rescue`), records
    /// the backup (and an adopted folder as ours), and says so.
    pub(super) async fn rescue(
        &self,
        rescue: &Rescue,
        (ask, tname): (&Ask<'_>, &str),
        known: &Installed,
        pass: &mut PassRecord,
        report: &mut SkillReport,
    ) -> Result<()> {
        let (skill, target) = (ask.skill, ask.target);
        let backup = self.backup(skill, target, ask.path).await?;
        match rescue {
            Rescue::Restore(what) => {
                pass.backed_up(target, &backup, "restored");
                report.changes.push(format!(
                    "{skill} in {target} was {what}; backed up to {} and restored",
                    backup.display()
                ));
            }
            Rescue::Adopt => {
                pass.backed_up(target, &backup, "adopted");
                pass.adopted(tname, ask.path);
                report.record(
                    EventKind::Adopt,
                    Some(target),
                    known,
                    format!(
                        "adopted {skill} in {target}: what was there is backed up to {}",
                        backup.display()
                    ),
                );
            }
        }
        Ok(())
    }

    /// A pass of a held skill: no resolution, no network; the held version
    /// is kept (and put back from the cache where a target lost it).
    pub(super) async fn sync_held(
        &self,
        source: &impl Source,
        skill: &Skill,
        prev: Option<SkillRecord>,
        hold: Hold,
        report: &mut SkillReport,
    ) {
        report.held = Some(hold.describe());
        report.show(&hold.installed);
        report.verification = Some(trust_line(prev.as_ref(), &hold.installed.manifest_digest));
        let desired = Desired::held(hold.installed);
        if let Err(e) = self.apply(source, skill, prev, desired, None, report).await {
            report.fail(e);
        }
    }

    /// Freezes a skill at the version installed now: later passes keep it
    /// and resolve nothing until [`Engine::resume`].
    pub async fn hold(&self, name: &str) -> Result<String> {
        let _edits = self.edits.lock().await;
        let mut recorded = self.load_state(name).await?;
        let not_installed = || Refusal::NotInstalled {
            name: name.to_string(),
            action: "hold",
        };
        let skill = recorded.as_mut().ok_or_else(not_installed)?;
        let installed = skill
            .targets
            .values()
            .find_map(|t| t.installed.clone())
            .ok_or_else(not_installed)?;
        self.hold_at(name, skill, HoldReason::Hold, installed).await
    }

    /// Records `skill` (named `name`) held at `installed`; the hold's line.
    async fn hold_at(
        &self,
        name: &str,
        skill: &mut SkillRecord,
        reason: HoldReason,
        installed: Installed,
    ) -> Result<String> {
        let hold = Hold {
            reason,
            installed,
            since: now_rfc3339(),
        };
        let line = hold.describe();
        skill.hold = Some(hold);
        self.commit_state(name, skill).await?;
        Ok(line)
    }

    /// Holds a skill at its previous generation; the next pass reinstalls
    /// it from the cache, with no network.
    pub async fn rollback(&self, name: &str) -> Result<String> {
        let _edits = self.edits.lock().await;
        let mut recorded = self.load_state(name).await?;
        let skill = recorded.as_mut().ok_or_else(|| Refusal::NotInstalled {
            name: name.to_string(),
            action: "roll back",
        })?;
        let installed_layer = skill
            .targets
            .values()
            .find_map(|t| t.installed.as_ref().map(|i| i.layer_digest.clone()));
        let previous = skill
            .history
            .iter()
            .find(|h| Some(&h.layer_digest) != installed_layer.as_ref())
            .cloned()
            .ok_or_else(|| Refusal::NoEarlierGeneration {
                name: name.to_string(),
            })?;
        if !self.cache.blob_path(&previous.layer_digest).is_file() {
            return Err(Refusal::GenerationEvicted {
                name: name.to_string(),
                version: previous
                    .version
                    .as_deref()
                    .unwrap_or(previous.manifest_digest.short())
                    .to_string(),
            }
            .into());
        }
        self.hold_at(name, skill, HoldReason::Rollback, previous)
            .await
    }

    /// Lifts a hold or rollback: the next pass follows the config again.
    /// Local edits are accepted as they are (their trees become the new
    /// baseline, so they no longer count as drift), and a folder deleted by
    /// hand is installed again. Returns whether anything changed.
    pub async fn resume(&self, name: &str) -> Result<bool> {
        let _edits = self.edits.lock().await;
        let Some(mut skill) = self.load_state(name).await? else {
            return Ok(false);
        };
        let mut changed = skill.hold.take().is_some();
        for t in skill.targets.values_mut() {
            if t.installed.is_none() {
                continue;
            }
            let path = t.path.clone();
            let rebased = blocking("resume", move || {
                if exists(&path) {
                    tree::record(&path, &[MARKER_FILE]).map(Some)
                } else {
                    Ok(None)
                }
            })
            .await??;
            match rebased {
                Some(tree) => {
                    if t.tree.as_ref().map(|r| &r.hash) != Some(&tree.hash) {
                        changed = true;
                    }
                    t.tree = Some(tree);
                }
                None => {
                    // Deleted by hand: forget it, so the next pass installs it.
                    t.installed = None;
                    t.tree = None;
                    changed = true;
                }
            }
        }
        self.commit_state(name, &skill).await?;
        Ok(changed)
    }
}
