//! What a pass tells people and the daemon: [`SkillReport`] and
//! [`TargetReport`], and the wording of what a pass did.
//!
//! Must NOT do I/O or decide anything: it only words and collects what the
//! other steps decided and did.

use std::path::PathBuf;

use serde::Serialize;

use crate::channel::Status;
use crate::control::protocol::{Event, EventKind};
use crate::reference::Digest;
use crate::state::{Backup, Installed, SkillRecord};

use super::{SkillState, TargetState};

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

pub(super) fn prev_backups(prev: Option<&SkillRecord>) -> Vec<String> {
    prev.map(|p| describe_backups(&p.backups))
        .unwrap_or_default()
}

pub(super) fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
