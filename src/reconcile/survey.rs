//! A look at what is in a target's folder ([`survey`]): whether something
//! is there, our marker on a folder with no state record, and drift from
//! the recorded tree.
//!
//! Must NOT change anything on disk or decide what to do about it (that is
//! plan.rs): it only reads, and notes what it read in the pass's record.

use std::path::Path;

use crate::error::{blocking, Result};
use crate::ownership::{Marker, MARKER_FILE};
use crate::state::{Installed, TargetRecord};
use crate::tree::{self, TreeRecord};

use super::exists;
use super::plan::Seen;
use super::record::PassRecord;
use super::report::SkillReport;

/// What is in target `tname`'s folder for `skill` (at `path`): a folder
/// the record does not know but our marker names is recorded again, and a
/// folder of ours is compared with its recorded tree.
pub(super) async fn survey(
    skill: &str,
    (tname, target): (&str, &str),
    path: &Path,
    pass: &mut PassRecord,
    report: &mut SkillReport,
) -> Result<Seen> {
    let present = exists(path);
    let mut drift: Option<String> = None;
    if present && !pass.skill.targets.contains_key(tname) {
        if let Some((rec, edited)) = recognise(path, skill).await {
            report.changes.push(format!(
                "{skill} in {target} carries skillsyncd's marker: managed again"
            ));
            if edited {
                drift = Some("edited since it was installed".into());
            }
            pass.recognised(tname, rec);
        }
    }
    if drift.is_none() {
        drift = drift_of(tname, path, present, pass).await?;
    }
    Ok(Seen { present, drift })
}

/// How target `tname`'s folder of ours drifted from what was installed.
async fn drift_of(
    tname: &str,
    path: &Path,
    present: bool,
    pass: &mut PassRecord,
) -> Result<Option<String>> {
    let Some(t) = pass.skill.targets.get_mut(tname) else {
        return Ok(None);
    };
    if t.installed.is_none() || t.pending.is_some() {
        return Ok(None);
    }
    if !present {
        return Ok(Some("deleted".into()));
    }
    let Some(tree) = t.tree.as_mut() else {
        return Ok(None);
    };
    let check = check_tree(path, tree).await?;
    pass.restamped(check.restamped > 0);
    Ok((!check.is_clean()).then(|| format!("edited: {}", check.summary())))
}

/// A folder without a state record, recognised by its marker: the record
/// rebuilt from it, and whether the folder was edited since.
async fn recognise(path: &Path, name: &str) -> Option<(TargetRecord, bool)> {
    let path = path.to_path_buf();
    let name = name.to_string();
    blocking("recognising a folder", move || {
        let marker = Marker::read(&path, &name)?;
        let tree = tree::record(&path, &[MARKER_FILE]).ok()?;
        let edited = tree.hash != marker.tree_hash;
        let state = TargetRecord {
            path: path.clone(),
            installed: Some(Installed {
                manifest_digest: marker.manifest_digest,
                layer_digest: marker.layer_digest,
                version: marker.version,
                status: marker.status,
                installed_at: marker.installed_at,
            }),
            pending: None,
            // An edited tree is not a baseline: restore or resume records
            // a new one.
            tree: (!edited).then_some(tree),
        };
        Some((state, edited))
    })
    .await
    .ok()
    .flatten()
}

/// Compares a folder with its recorded tree (re-hashing only what changed).
async fn check_tree(path: &Path, record: &mut TreeRecord) -> Result<tree::Drift> {
    let path = path.to_path_buf();
    let mut rec = record.clone();
    let (drift, rec) = blocking("drift check", move || {
        tree::check(&path, &mut rec, &[MARKER_FILE]).map(|d| (d, rec))
    })
    .await??;
    *record = rec;
    Ok(drift)
}
