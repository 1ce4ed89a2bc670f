//! Recognising a skill folder as skillsyncd's own, even without the state
//! file.
//!
//! Every installed folder carries a small marker, `.skillsyncd.json`, written
//! into the staging tree before the swap (so it appears atomically with the
//! skill). It names the skill, the image and digests installed, and the hash
//! of the tree as installed (marker excluded). If the state file is lost, a
//! folder whose marker names this skill is ours; whether it was edited since
//! is a matter of comparing its tree hash with the marker's. A folder without
//! a marker (written by hand, or by `skillctl install`) is never ours.
//!
//! Hidden files are skipped by `skillctl build`, so a marker never travels
//! into a skill re-published from an installed copy.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::reference::Digest;

/// The marker's file name, directly in the skill folder.
pub const MARKER_FILE: &str = ".skillsyncd.json";

/// What the marker says. Field names are part of the on-disk format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// Always `skillsyncd`.
    pub managed_by: String,
    /// The skill (folder) name.
    pub skill: String,
    /// The image it came from.
    pub image: String,
    /// The manifest installed.
    pub manifest_digest: Digest,
    /// The layer installed.
    pub layer_digest: Digest,
    /// The version annotation installed.
    pub version: Option<String>,
    /// Its lifecycle status then.
    pub status: crate::channel::Status,
    /// The tree hash of the folder as installed, marker excluded
    /// ([`crate::tree`]).
    pub tree_hash: Digest,
    /// When (RFC 3339).
    pub installed_at: String,
}

/// The value of [`Marker::managed_by`].
pub const MANAGED_BY: &str = "skillsyncd";

/// Markers larger than this are not ours.
const MAX_MARKER: u64 = 64 * 1024;

impl Marker {
    /// Writes the marker into `dir` (a staging tree), mode 0644; fsynced
    /// with `sync` (else the caller makes the tree durable as a whole).
    pub fn write(&self, dir: &Path, sync: bool) -> Result<()> {
        let path = dir.join(MARKER_FILE);
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| Error::State {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        std::fs::write(&path, bytes).ctx("writing", &path)?;
        if !sync {
            return Ok(());
        }
        std::fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .ctx("syncing", &path)
    }

    /// Reads the marker of `dir`, if it has one that skillsyncd wrote for
    /// skill `name`. Anything else (no marker, unreadable, another skill's,
    /// a symlink) is `None`: not ours.
    pub fn read(dir: &Path, name: &str) -> Option<Marker> {
        let path = dir.join(MARKER_FILE);
        let meta = std::fs::symlink_metadata(&path).ok()?;
        if !meta.is_file() || meta.len() > MAX_MARKER {
            return None;
        }
        let bytes = std::fs::read(&path).ok()?;
        let marker: Marker = serde_json::from_slice(&bytes).ok()?;
        (marker.managed_by == MANAGED_BY && marker.skill == name).then_some(marker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(skill: &str) -> Marker {
        Marker {
            managed_by: MANAGED_BY.into(),
            skill: skill.into(),
            image: "r/x".into(),
            manifest_digest: Digest::of(b"m"),
            layer_digest: Digest::of(b"l"),
            version: Some("1.0.0".into()),
            status: crate::channel::Status::Published,
            tree_hash: Digest::of(b"t"),
            installed_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn round_trips_and_refuses_what_is_not_ours() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        assert_eq!(Marker::read(dir, "x"), None);
        marker("x").write(dir, true).unwrap();
        assert_eq!(Marker::read(dir, "x"), Some(marker("x")));
        assert_eq!(Marker::read(dir, "y"), None, "another skill's marker");
        std::fs::write(dir.join(MARKER_FILE), b"{\"managed_by\":\"someone\"}").unwrap();
        assert_eq!(Marker::read(dir, "x"), None);
        std::fs::remove_file(dir.join(MARKER_FILE)).unwrap();
        let elsewhere = tmp.path().join("elsewhere.json");
        std::fs::write(&elsewhere, serde_json::to_vec(&marker("x")).unwrap()).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.join(MARKER_FILE)).unwrap();
        assert_eq!(
            Marker::read(dir, "x"),
            None,
            "a symlinked marker is not ours"
        );
    }
}
