//! What each target needs ([`plan_target`], [`decide`]), decided from the
//! state record, the skill's settings and what the survey saw of the
//! folder; and the hold a drifted target puts on the whole skill
//! ([`freeze`]).
//!
//! Must NOT do I/O: everything it decides on is passed in, so every case is
//! a unit test.

use std::path::{Path, PathBuf};

use crate::config::OnDrift;
use crate::reference::Digest;
use crate::state::TargetRecord;

/// What a target needs, decided from the state file and the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPlan {
    /// Already holds this layer and this manifest.
    UpToDate,
    /// Holds this layer under another manifest (e.g. after a promotion):
    /// record the new manifest, touch nothing.
    RecordOnly,
    /// Needs the layer unpacked and swapped in.
    Install,
    /// Something not installed by us is at the skill's path.
    Conflict,
    /// Ours, but edited or deleted since it was installed, and the skill's
    /// `on_drift` says to leave it: nothing is touched.
    Drifted(String),
}

/// Decides what one target needs. Pure apart from the caller's look at the
/// disk (`present`: does `<target>/<name>` exist).
///
/// A target with a `pending` install was interrupted (a crash) somewhere
/// around its swap: the folder may hold the recorded tree or the pending
/// one, so `installed` cannot be trusted and the target is installed again.
pub fn plan_target(
    recorded: Option<&TargetRecord>,
    present: bool,
    manifest: &Digest,
    layer: &Digest,
) -> TargetPlan {
    match recorded {
        Some(t) => match &t.installed {
            Some(i) if present && t.pending.is_none() && i.layer_digest == *layer => {
                if i.manifest_digest == *manifest {
                    TargetPlan::UpToDate
                } else {
                    TargetPlan::RecordOnly
                }
            }
            // Ours (installed or pending) but different or missing: install.
            _ => TargetPlan::Install,
        },
        None if present => TargetPlan::Conflict,
        None => TargetPlan::Install,
    }
}

/// What the survey saw of one target's folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Seen {
    /// Something is at the skill's path.
    pub(super) present: bool,
    /// How our folder there differs from what was installed (`deleted`,
    /// `edited: …`), if it does.
    pub(super) drift: Option<String>,
}

/// The settings and names a target's decision depends on.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ask<'a> {
    /// The skill's name.
    pub(super) skill: &'a str,
    /// The target's name.
    pub(super) target: &'a str,
    /// The skill's folder in the target.
    pub(super) path: &'a Path,
    /// What to do with a folder edited or deleted by hand.
    pub(super) on_drift: OnDrift,
    /// Whether a folder that is not ours is backed up and replaced.
    pub(super) adopt: bool,
    /// Plan only: nothing is backed up or installed.
    pub(super) dry_run: bool,
}

/// What must happen to a folder before it is installed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Rescue {
    /// Ours but drifted (`what`), and `on_drift = "restore"`: back it up.
    Restore(String),
    /// Not ours, and `adopt = true`: back it up and make it ours.
    Adopt,
}

/// One target's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Decision {
    /// What the target needs.
    pub(super) plan: TargetPlan,
    /// What must be done to the folder first.
    pub(super) rescue: Option<Rescue>,
    /// A line for the report (what a dry run would do; a deleted folder
    /// put back).
    pub(super) say: Option<String>,
    /// Why the whole skill is held (`on_drift = "keep"`).
    pub(super) hold: Option<String>,
}

impl Decision {
    fn plan(plan: TargetPlan) -> Decision {
        Decision {
            plan,
            rescue: None,
            say: None,
            hold: None,
        }
    }

    fn saying(plan: TargetPlan, say: String) -> Decision {
        Decision {
            say: Some(say),
            ..Decision::plan(plan)
        }
    }

    fn rescuing(rescue: Rescue) -> Decision {
        Decision {
            rescue: Some(rescue),
            ..Decision::plan(TargetPlan::Install)
        }
    }
}

/// Decides what one target needs: the drift policy for a folder that
/// drifted, else [`plan_target`], with a folder that is not ours adopted
/// when the skill says so.
pub(super) fn decide(
    ask: &Ask,
    seen: &Seen,
    recorded: Option<&TargetRecord>,
    manifest: &Digest,
    layer: &Digest,
) -> Decision {
    let (skill, target) = (ask.skill, ask.target);
    let Some(what) = &seen.drift else {
        return match plan_target(recorded, seen.present, manifest, layer) {
            TargetPlan::Conflict if ask.adopt && ask.dry_run => Decision::saying(
                TargetPlan::Install,
                format!(
                    "would adopt {} in {target} (backing up what is there)",
                    ask.path.display()
                ),
            ),
            TargetPlan::Conflict if ask.adopt => Decision::rescuing(Rescue::Adopt),
            other => Decision::plan(other),
        };
    };
    match ask.on_drift {
        OnDrift::Restore if ask.dry_run => Decision::saying(
            TargetPlan::Install,
            format!("would back up {skill} in {target} ({what}) and restore it"),
        ),
        OnDrift::Restore if seen.present => Decision::rescuing(Rescue::Restore(what.clone())),
        OnDrift::Restore => Decision::saying(
            TargetPlan::Install,
            format!("{skill} in {target} was deleted; restored"),
        ),
        OnDrift::Keep => Decision {
            hold: Some(format!("{target} {what}")),
            ..Decision::plan(TargetPlan::Drifted(format!(
                "{} was {what}; kept, and the skill held (skillsyncctl resume {skill} to update it again)",
                ask.path.display()
            )))
        },
        OnDrift::Report => Decision::plan(TargetPlan::Drifted(format!(
            "{} was {what}; left as it is (skillsyncctl resume {skill} accepts it; on_drift = \"restore\" puts the installed version back)",
            ask.path.display()
        ))),
    }
}

/// One target's plan in a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Planned {
    /// The target's name.
    pub(super) target: String,
    /// The target's skills directory.
    pub(super) dir: PathBuf,
    /// The skill's folder in it.
    pub(super) path: PathBuf,
    /// What it needs.
    pub(super) plan: TargetPlan,
}

/// A skill held from now on (a drifted target, `on_drift = "keep"`): no
/// target is updated in this pass either.
pub(super) fn freeze(plans: &mut [Planned]) {
    for p in plans {
        if matches!(p.plan, TargetPlan::Install | TargetPlan::RecordOnly) {
            p.plan = TargetPlan::UpToDate;
        }
    }
}

/// Whether any target needs the layer.
pub(super) fn needs_layer(plans: &[Planned]) -> bool {
    plans.iter().any(|p| p.plan == TargetPlan::Install)
}

#[cfg(test)]
#[path = "plan/tests.rs"]
mod tests;
