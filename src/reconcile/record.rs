//! What the state file gets from a pass, and the one way it is written.
//!
//! Must NOT touch a target folder: it only edits and saves records.

use std::path::Path;

use crate::error::{blocking, Result};
use crate::state::{SkillRecord, TargetRecord};

use super::{exists, Engine};

impl Engine {
    /// Target `target`'s record in `skill_state`, made empty (for `path`)
    /// if it has none yet.
    pub(super) fn target_entry<'a>(
        skill_state: &'a mut SkillRecord,
        target: &str,
        path: &Path,
    ) -> &'a mut TargetRecord {
        skill_state
            .targets
            .entry(target.to_string())
            .or_insert_with(|| {
                Box::new(TargetRecord {
                    path: path.to_path_buf(),
                    installed: None,
                    pending: None,
                    tree: None,
                })
            })
    }

    /// Undoes the `pending` mark of an install that did not happen (the
    /// record goes if nothing was installed there before).
    pub(super) fn unmark_pending(skill_state: &mut SkillRecord, target: &str, path: &Path) {
        if let Some(entry) = skill_state.targets.get_mut(target) {
            entry.pending = None;
            if entry.installed.is_none() && !exists(path) {
                skill_state.targets.remove(target);
            }
        }
    }

    /// Records `skill_state` as skill `name`'s state, durably (nothing is
    /// written in a dry run: its store is a private copy in memory).
    pub(super) async fn commit_state(&self, name: &str, skill_state: &SkillRecord) -> Result<()> {
        let (store, name, skill_state) =
            (self.state.clone(), name.to_string(), skill_state.clone());
        blocking("writing the state", move || store.save(&name, &skill_state)).await?
    }
}
