//! What a pass tells people and the daemon: [`SkillReport`] and
//! [`TargetReport`], and the wording of what a pass did.
//!
//! Must NOT do I/O or decide anything: it only words and collects what the
//! other steps decided and did.

use std::fmt::Display;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::channel::Status;
use crate::config::Skill;
use crate::control::protocol::{Event, EventKind, SkillState, TargetState};
use crate::reference::Digest;
use crate::state::{Backup, Installed, SkillRecord};

/// One target's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    /// The target name.
    pub name: String,
    /// The skill folder in it.
    pub path: PathBuf,
    /// Its state.
    pub state: TargetState,
    /// Why it is not in sync, if it is not.
    pub error: Option<String>,
}

/// One skill's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct SkillReport {
    /// The skill name.
    pub name: String,
    /// The image it follows.
    pub image: String,
    /// The version installed (or selected).
    pub version: Option<String>,
    /// The manifest digest installed (or selected).
    pub digest: Option<Digest>,
    /// The lifecycle status of that manifest.
    pub status: Option<Status>,
    /// Overall state.
    pub state: SkillState,
    /// Why the skill is not in sync, in one line.
    pub error: Option<String>,
    /// Per target.
    pub targets: Vec<TargetReport>,
    /// What this pass changed, one line each, for people.
    pub changes: Vec<String>,
    /// Layer bytes downloaded by this pass.
    pub downloaded: u64,
    /// Set while the skill is held or rolled back (`held at 1.0.0 since …`).
    pub held: Option<String>,
    /// What this pass did, typed (the same as `changes`).
    pub events: Vec<Event>,
    /// The installed version's tag is gone from the registry.
    pub archived: bool,
    /// Copies kept of replaced folders (`claude adopted at …: /path`).
    pub backups: Vec<String>,
    /// The endpoint that answered (a mirror, or the registry itself).
    pub served_by: Option<String>,
    /// How the version shown was verified (`verified: cosign signature by
    /// …`), or `unverified` when no key policy applies.
    pub verification: Option<String>,
}

/// Backups as status lists them.
pub fn describe_backups(backups: &[Backup]) -> Vec<String> {
    backups
        .iter()
        .map(|b| {
            format!(
                "{} {} at {}: {}",
                b.target,
                b.reason,
                b.at,
                b.path.display()
            )
        })
        .collect()
}

impl SkillReport {
    /// A report for a pass of `skill`: in sync until a step says otherwise.
    pub(super) fn new(skill: &Skill) -> SkillReport {
        SkillReport::blank(&skill.name, skill.image.to_string(), SkillState::InSync)
    }

    /// A report of skill `name` (image `image`) in `state` that says
    /// nothing else yet.
    pub fn blank(name: &str, image: String, state: SkillState) -> SkillReport {
        SkillReport {
            name: name.to_string(),
            image,
            version: None,
            digest: None,
            status: None,
            state,
            error: None,
            targets: Vec::new(),
            changes: Vec::new(),
            downloaded: 0,
            held: None,
            events: Vec::new(),
            archived: false,
            backups: Vec::new(),
            served_by: None,
            verification: None,
        }
    }

    /// Shows `installed` as the skill's version.
    pub(super) fn show(&mut self, installed: &Installed) {
        self.version = installed.version.clone();
        self.digest = Some(installed.manifest_digest.clone());
        self.status = Some(installed.status);
    }

    /// The pass failed: the skill is in error, for `why`.
    pub(super) fn fail(&mut self, why: impl Display) {
        self.state = SkillState::Error;
        self.error = Some(why.to_string());
    }

    /// Says when the version resolution chose is deprecated (kept, nothing
    /// newer qualifies) or archived (its tag gone), once: not again while
    /// the record (`prev`) already says so.
    pub(super) fn note_lifecycle(
        &mut self,
        label: &str,
        known: &Installed,
        (kept_deprecated, archived): (bool, bool),
        prev: Option<&SkillRecord>,
    ) {
        let was_deprecated =
            prev.and_then(|p| p.current.as_ref()).map(|c| c.status) == Some(Status::Deprecated);
        if kept_deprecated && !was_deprecated {
            self.record(
                EventKind::Deprecated,
                None,
                known,
                format!("{label} is deprecated; kept installed (no newer version qualifies)"),
            );
        }
        if archived && !prev.is_some_and(|p| p.archived) {
            self.record(
                EventKind::Archived,
                None,
                known,
                format!("{label} was archived (its tag is gone from the registry); kept installed"),
            );
        }
    }

    /// The skill's state from its targets': a conflict first, then drift
    /// (when nothing else is wrong), and an install error over both.
    pub(super) fn conclude(&mut self, first_error: Option<String>) {
        if let Some(c) = self
            .targets
            .iter()
            .find(|t| t.state == TargetState::Conflict)
        {
            self.state = SkillState::Conflict;
            self.error = c.error.clone();
        }
        if let Some(d) = self
            .targets
            .iter()
            .find(|t| t.state == TargetState::Drifted)
        {
            if self.state == SkillState::InSync {
                self.state = SkillState::Drifted;
                self.error = d.error.clone();
            }
        }
        if let Some(e) = first_error {
            self.fail(e);
        }
    }

    /// Records one thing this pass did, as a line for people and an event.
    pub(super) fn record(
        &mut self,
        kind: EventKind,
        target: Option<&str>,
        known: &Installed,
        message: String,
    ) {
        self.events.push(Event {
            at: now_rfc3339(),
            skill: self.name.clone(),
            kind,
            target: target.map(str::to_string),
            version: known.version.clone(),
            digest: Some(known.manifest_digest.to_string()),
            message: message.clone(),
        });
        self.changes.push(message);
    }
}

/// `name version` (or `name (no version)`), as messages name what a pass
/// installs.
pub(super) fn label(name: &str, known: &Installed) -> String {
    format!(
        "{name} {}",
        known.version.as_deref().unwrap_or("(no version)")
    )
}

/// The event and line for `known` swapped into `target` (at `path`),
/// replacing `replaced` if something was installed there.
pub(super) fn installed_line(
    skill: &str,
    label: &str,
    known: &Installed,
    replaced: Option<Installed>,
    target: &str,
    path: &Path,
) -> (EventKind, String) {
    match replaced {
        Some(old) => (
            EventKind::Update,
            format!(
                "updated {skill} {} -> {} ({} -> {}) in {target} ({})",
                old.version.as_deref().unwrap_or("?"),
                known.version.as_deref().unwrap_or("?"),
                old.manifest_digest.short(),
                known.manifest_digest.short(),
                path.display()
            ),
        ),
        None => (
            EventKind::Install,
            format!(
                "installed {label} ({}) into {target} ({})",
                known.manifest_digest.short(),
                path.display()
            ),
        ),
    }
}

/// The backups `prev` records, as status lists them.
pub(super) fn prev_backups(prev: Option<&SkillRecord>) -> Vec<String> {
    prev.map(|p| describe_backups(&p.backups))
        .unwrap_or_default()
}

/// Now, as events and records stamp it.
pub(super) fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
