//! Hold, rollback and resume: freezing a skill at a version and lifting
//! it; and the backups kept of replaced folders.
//!
//! Must NOT touch a target's skill folder: these only edit the state
//! record (and copy folders out); the next pass does the installing.

use std::path::{Path, PathBuf};

use crate::error::{blocking, Refusal, Result};
use crate::install;
use crate::ownership::MARKER_FILE;
use crate::state::{Hold, HoldReason};
use crate::tree;

use super::report::now_rfc3339;
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
        let hold = Hold {
            reason: HoldReason::Hold,
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
        let hold = Hold {
            reason: HoldReason::Rollback,
            installed: previous,
            since: now_rfc3339(),
        };
        let line = hold.describe();
        skill.hold = Some(hold);
        self.commit_state(name, skill).await?;
        Ok(line)
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
