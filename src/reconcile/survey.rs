//! A look at what is in a target's folder: our marker on a folder with no
//! state record, and drift from the recorded tree.
//!
//! Must NOT change anything on disk or decide what to do about it (that is
//! plan.rs): it only reads.

use std::path::Path;

use crate::error::{blocking, Result};
use crate::ownership::{Marker, MARKER_FILE};
use crate::state::{Installed, TargetRecord};
use crate::tree::{self, TreeRecord};

/// A folder without a state record, recognised by its marker: the record
/// rebuilt from it, and whether the folder was edited since.
pub(super) async fn recognise(path: &Path, name: &str) -> Option<(TargetRecord, bool)> {
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
pub(super) async fn check_tree(path: &Path, record: &mut TreeRecord) -> Result<tree::Drift> {
    let path = path.to_path_buf();
    let mut rec = record.clone();
    let (drift, rec) = blocking("drift check", move || {
        tree::check(&path, &mut rec, &[MARKER_FILE]).map(|d| (d, rec))
    })
    .await??;
    *record = rec;
    Ok(drift)
}
