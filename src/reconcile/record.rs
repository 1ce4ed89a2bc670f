//! What the state file gets from a pass ([`PassRecord`]: the skill's
//! record as the pass leaves it, and whether that is worth a write), what
//! each target's outcome does to it ([`PassRecord::settle`]), and the one
//! way a record is written ([`Engine::commit_state`]).
//!
//! Must NOT touch a target folder or decide what a target needs: it only
//! edits records in memory and saves them.

use std::collections::HashMap;
use std::path::Path;

use crate::channel::Status;
use crate::control::protocol::EventKind;
use crate::error::{blocking, Result};
use crate::reference::Digest;
use crate::state::{Backup, Hold, HoldReason, Installed, SkillRecord, TargetRecord, Verification};
use crate::tree::TreeRecord;

use super::plan::{Planned, TargetPlan};
use super::report::{installed_line, now_rfc3339, SkillReport, TargetReport};
use super::{Engine, TargetState};

/// One skill's record through a pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct PassRecord {
    /// The record as the pass leaves it.
    pub(super) skill: SkillRecord,
    /// Something a later pass relies on changed: the record must be written.
    changed: bool,
    /// Only fresh file stamps (files read again, unchanged): worth keeping,
    /// not worth a write of its own nor failing the pass over.
    restamped: bool,
}

/// What the end of a pass does with its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Write {
    /// Nothing changed.
    Nothing,
    /// Fresh file stamps only: written, a failure only logged.
    Stamps,
    /// Written, or the pass fails.
    Record,
}

/// What one target's install came to.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Swapped in; the tree as installed.
    Swapped(TreeRecord),
    /// Failed, with nothing changed in the target; whether a folder is
    /// still at the skill's path.
    Failed {
        /// Why.
        error: String,
        /// Something is at the skill's path (what was there before).
        present: bool,
    },
}

/// What [`PassRecord::settle`] needs to know of the pass.
pub(super) struct Settle<'a> {
    /// The skill's name.
    pub(super) skill: &'a str,
    /// `name version`, for messages.
    pub(super) label: &'a str,
    /// What the pass installs.
    pub(super) known: &'a Installed,
    /// Plan only.
    pub(super) dry_run: bool,
    /// Earlier generations to keep.
    pub(super) keep: usize,
}

/// A target's record before anything is installed there.
fn empty_target(path: &Path) -> Box<TargetRecord> {
    Box::new(TargetRecord {
        path: path.to_path_buf(),
        installed: None,
        pending: None,
        tree: None,
    })
}

/// Target `target`'s record in `skill`, made empty (for `path`) if it has
/// none yet.
fn target_entry<'a>(skill: &'a mut SkillRecord, target: &str, path: &Path) -> &'a mut TargetRecord {
    skill
        .targets
        .entry(target.to_string())
        .or_insert_with(|| empty_target(path))
}

impl PassRecord {
    /// The record a pass of a skill following `image` starts from: the one
    /// recorded (`prev`), or a new one; `archived` as resolution found it.
    pub(super) fn start(image: &str, prev: Option<SkillRecord>, archived: bool) -> PassRecord {
        let mut skill = prev.unwrap_or_default();
        skill.image = image.to_string();
        let changed = skill.archived != archived;
        skill.archived = archived;
        PassRecord {
            skill,
            changed,
            restamped: false,
        }
    }

    /// Notes fresh file stamps in a target's tree record.
    pub(super) fn restamped(&mut self, restamped: bool) {
        self.restamped |= restamped;
    }

    /// A folder recognised by its marker is managed again.
    pub(super) fn recognised(&mut self, target: &str, record: TargetRecord) {
        self.skill
            .targets
            .insert(target.to_string(), Box::new(record));
        self.changed = true;
    }

    /// A copy of `target`'s folder was kept at `path`.
    pub(super) fn backed_up(&mut self, target: &str, path: &Path, reason: &str) {
        self.skill.backups.push(Backup {
            target: target.to_string(),
            path: path.to_path_buf(),
            reason: reason.into(),
            at: now_rfc3339(),
        });
        self.changed = true;
    }

    /// An adopted folder is ours from here on: the install replaces it.
    pub(super) fn adopted(&mut self, target: &str, path: &Path) {
        self.skill
            .targets
            .insert(target.to_string(), empty_target(path));
        self.changed = true;
    }

    /// Holds the skill at what a target has installed (a drifted target,
    /// `on_drift = "keep"`), unless it is held already or nothing is
    /// installed; the hold, when one was made.
    pub(super) fn hold_for_drift(&mut self) -> Option<Hold> {
        if self.skill.hold.is_some() {
            return None;
        }
        let installed = self
            .skill
            .targets
            .values()
            .find_map(|t| t.installed.clone())?;
        let hold = Hold {
            reason: HoldReason::Drift,
            installed,
            since: now_rfc3339(),
        };
        self.skill.hold = Some(hold.clone());
        self.changed = true;
        Some(hold)
    }

    /// What resolution chose: `ref_digest`, pointing at `known`.
    pub(super) fn want(&mut self, ref_digest: &Digest, known: &Installed) {
        self.changed |= self.skill.ref_digest.as_ref() != Some(ref_digest)
            || self
                .skill
                .current
                .as_ref()
                .map(|c| (&c.manifest_digest, c.status))
                != Some((&known.manifest_digest, known.status));
        self.skill.ref_digest = Some(ref_digest.clone());
        self.skill.current = Some(known.clone());
    }

    /// Marks every folder about to be installed ours (`pending`: `layer`)
    /// before any appears, so a crash after a swap cannot make it a
    /// stranger's.
    pub(super) fn mark_pending(&mut self, plans: &[Planned], layer: &Digest) {
        for p in plans.iter().filter(|p| p.plan == TargetPlan::Install) {
            let entry = target_entry(&mut self.skill, &p.target, &p.path);
            entry.path = p.path.clone();
            entry.pending = Some(layer.clone());
        }
    }

    /// Same layer, new manifest: records `known` for `target`; the status
    /// it had, when it had one.
    pub(super) fn record_only(&mut self, target: &str, known: &Installed) -> Option<Status> {
        self.changed = true;
        let i = self.skill.targets.get_mut(target)?.installed.as_mut()?;
        let was = i.status;
        i.manifest_digest = known.manifest_digest.clone();
        i.status = known.status;
        i.version = known.version.clone();
        Some(was)
    }

    /// `known` swapped into `target` at `path` as `tree`; what it replaced.
    /// A replaced layer joins the history (`keep` generations).
    pub(super) fn installed(
        &mut self,
        target: &str,
        path: &Path,
        tree: TreeRecord,
        known: &Installed,
        keep: usize,
    ) -> Option<Installed> {
        let entry = target_entry(&mut self.skill, target, path);
        entry.pending = None;
        entry.tree = Some(tree);
        let replaced = entry.installed.replace(Installed {
            installed_at: now_rfc3339(),
            ..known.clone()
        });
        if let Some(old) = replaced
            .clone()
            .filter(|o| o.layer_digest != known.layer_digest)
        {
            self.skill.remember(old, keep);
        }
        self.changed = true;
        replaced
    }

    /// Undoes the `pending` mark of an install that did not happen (the
    /// record goes if nothing was installed there before and nothing is
    /// at the skill's path).
    pub(super) fn install_failed(&mut self, target: &str, present: bool) {
        if let Some(entry) = self.skill.targets.get_mut(target) {
            entry.pending = None;
            if entry.installed.is_none() && !present {
                self.skill.targets.remove(target);
            }
        }
        self.changed = true;
    }

    /// Under a key policy: the verification, and the highest version
    /// installed (rollback protection).
    pub(super) fn verified(&mut self, v: Verification, known: &Installed) {
        let installed = self.skill.targets.values().any(|t| {
            t.installed
                .as_ref()
                .is_some_and(|i| i.manifest_digest == known.manifest_digest)
        });
        let parse = |v: &str| semver::Version::parse(v).ok();
        if let Some(offered) = known.version.as_deref().and_then(parse) {
            let higher = self
                .skill
                .highest_version
                .as_deref()
                .and_then(parse)
                .is_none_or(|h| offered > h);
            if installed && higher {
                self.skill.highest_version = Some(offered.to_string());
                self.changed = true;
            }
        }
        if self.skill.verified.as_ref() != Some(&v) {
            self.skill.verified = Some(v);
            self.changed = true;
        }
    }

    /// What the end of the pass writes.
    pub(super) fn write(&self) -> Write {
        if self.changed {
            Write::Record
        } else if self.restamped {
            Write::Stamps
        } else {
            Write::Nothing
        }
    }

    /// Step 5: records and reports every target's outcome; the first
    /// install error, if any.
    pub(super) fn settle(
        &mut self,
        pass: &Settle,
        plans: Vec<Planned>,
        mut outcomes: HashMap<String, Outcome>,
        report: &mut SkillReport,
    ) -> Option<String> {
        let mut first_error = None;
        for p in plans {
            let mut tr = TargetReport {
                name: p.target.clone(),
                path: p.path.clone(),
                state: TargetState::InSync,
                error: None,
            };
            match p.plan {
                TargetPlan::UpToDate => {}
                TargetPlan::RecordOnly if pass.dry_run => {
                    report.changes.push(format!(
                        "would record {} ({}) in {}: same content, new manifest (annotation only)",
                        pass.label, pass.known.status, p.target
                    ));
                }
                TargetPlan::Install if pass.dry_run => {
                    report
                        .changes
                        .push(self.would_install(pass, &p.target, &p.path));
                    tr.state = TargetState::Pending;
                }
                TargetPlan::RecordOnly => self.settle_record_only(pass, &p.target, report),
                TargetPlan::Conflict => {
                    tr.state = TargetState::Conflict;
                    tr.error = Some(format!(
                        "{} exists and was not installed by skillsyncd; move it away to let skillsyncd manage it",
                        p.path.display()
                    ));
                }
                TargetPlan::Drifted(why) => {
                    tr.state = TargetState::Drifted;
                    tr.error = Some(why);
                }
                TargetPlan::Install => {
                    let Some(outcome) = outcomes.remove(&p.target) else {
                        continue;
                    };
                    if let Some(e) = self.settle_install(pass, &p.target, &p.path, outcome, report)
                    {
                        tr.state = TargetState::Error;
                        tr.error = Some(e.clone());
                        first_error.get_or_insert(e);
                    }
                }
            }
            report.targets.push(tr);
        }
        first_error
    }

    /// A dry run's line for an install into `target`.
    fn would_install(&self, pass: &Settle, target: &str, path: &Path) -> String {
        let from = self
            .skill
            .targets
            .get(target)
            .and_then(|t| t.installed.as_ref())
            .and_then(|i| i.version.clone());
        match from {
            Some(v) => format!(
                "would update {} {v} -> {} in {target}",
                pass.skill,
                pass.known.version.as_deref().unwrap_or("(no version)"),
            ),
            None => format!(
                "would install {} into {target} ({})",
                pass.label,
                path.display()
            ),
        }
    }

    fn settle_record_only(&mut self, pass: &Settle, target: &str, report: &mut SkillReport) {
        let known = pass.known;
        match self.record_only(target, known) {
            Some(was) if was != known.status => report.record(
                EventKind::StatusChange,
                Some(target),
                known,
                format!(
                    "{} in {target}: status {was} -> {} (same content, nothing downloaded)",
                    pass.label, known.status
                ),
            ),
            _ => {}
        }
    }

    /// Records an install's outcome; its error, if it failed.
    fn settle_install(
        &mut self,
        pass: &Settle,
        target: &str,
        path: &Path,
        outcome: Outcome,
        report: &mut SkillReport,
    ) -> Option<String> {
        match outcome {
            Outcome::Swapped(tree) => {
                let replaced = self.installed(target, path, tree, pass.known, pass.keep);
                let (kind, message) =
                    installed_line(pass.skill, pass.label, pass.known, replaced, target, path);
                report.record(kind, Some(target), pass.known, message);
                None
            }
            Outcome::Failed { error, present } => {
                self.install_failed(target, present);
                Some(error)
            }
        }
    }
}

impl Engine {
    /// Writes what a pass leaves in `pass` as skill `name`'s record, if
    /// anything worth a write changed.
    pub(super) async fn commit_pass(&self, name: &str, pass: &PassRecord) -> Result<()> {
        match pass.write() {
            Write::Record => self.commit_state(name, &pass.skill).await?,
            Write::Stamps => {
                // Fresh stamps only: worth keeping (the next check need not
                // read those files again), not worth failing the pass over.
                if let Err(e) = self.commit_state(name, &pass.skill).await {
                    tracing::warn!(skill = %name, "recording fresh file stamps: {e}");
                }
            }
            Write::Nothing => {}
        }
        Ok(())
    }

    /// Records `skill_state` as skill `name`'s state, durably (nothing is
    /// written in a dry run: its store is a private copy in memory).
    pub(super) async fn commit_state(&self, name: &str, skill_state: &SkillRecord) -> Result<()> {
        let (store, name, skill_state) =
            (self.state.clone(), name.to_string(), skill_state.clone());
        blocking("writing the state", move || store.save(&name, &skill_state)).await?
    }
}

#[cfg(test)]
#[path = "record/tests.rs"]
mod tests;
