//! What each target needs ([`plan_target`]), decided from the state record
//! and a look at the disk the caller made.
//!
//! Must NOT do I/O: everything it decides on is passed in, so every case is
//! a unit test.

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

#[cfg(test)]
#[path = "plan/tests.rs"]
mod tests;
