//! What is installed where: the state file, written atomically.
//!
//! `<state dir>/state.json` records, per skill and target, the manifest
//! digest, layer digest, version and lifecycle status installed. A target
//! whose install has begun but not been recorded carries `pending`, so a
//! crash between the swap and the record does not turn our own folder into
//! a stranger's.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::channel::Status;
use crate::error::{Error, IoContext, Result};
use crate::reference::Digest;
use crate::tree::TreeRecord;

/// The current state file format.
pub const FORMAT_VERSION: u32 = 1;

/// The whole state file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// Per skill name.
    #[serde(default)]
    pub skills: BTreeMap<String, SkillState>,
}

/// One skill's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SkillState {
    /// The image (repository) it was installed from.
    pub image: String,
    /// The digest the followed tag pointed at last time (an index or a
    /// manifest): lets a poll that finds the same digest skip every fetch.
    #[serde(default)]
    pub ref_digest: Option<Digest>,
    /// What `ref_digest` resolved to (the image manifest and its layer).
    #[serde(default)]
    pub current: Option<Installed>,
    /// Per target name. Boxed: a map node has room for eleven values,
    /// and most skills have one or two targets.
    #[serde(default)]
    pub targets: BTreeMap<String, Box<TargetState>>,
    /// Earlier installed generations, newest first (bounded by
    /// `[daemon] generations`); their layers stay cached for rollback.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Installed>,
    /// Set while the skill is frozen (`skillsyncctl hold` or `rollback`):
    /// no resolution, the held version is kept installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
    /// Copies kept of folders replaced by hand-edit restores and adoptions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backups: Vec<Backup>,
    /// The installed version's tag was gone at the last check (archived).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub archived: bool,
    /// The last manifest verified against the trust policy, and how; a
    /// poll that finds the same digest under the same policy does not
    /// verify it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<Verification>,
    /// The highest version ever installed: with a key policy, a lower one
    /// is not installed unless the config pins it (rollback protection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub highest_version: Option<String>,
}

/// A manifest that satisfied the trust policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// The manifest digest verified.
    pub manifest_digest: Digest,
    /// The policy's fingerprint then ([`crate::verify::Requirements::fingerprint`]).
    pub policy: String,
    /// How, for status (`verified: cosign signature by …`).
    pub by: String,
}

/// A copy of a folder skillsyncd replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    /// The target it was in.
    pub target: String,
    /// Where the copy is.
    pub path: PathBuf,
    /// `adopted` or `restored`.
    pub reason: String,
    /// When (RFC 3339).
    pub at: String,
}

/// Why and where a skill is frozen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    /// `hold` or `rollback`.
    pub reason: HoldReason,
    /// The version kept installed.
    pub installed: Installed,
    /// Since when (RFC 3339).
    pub since: String,
}

/// How a hold came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldReason {
    /// `skillsyncctl hold`: frozen at the version installed then.
    Hold,
    /// `skillsyncctl rollback`: the previous generation, reinstalled.
    Rollback,
    /// `on_drift = "keep"`: a folder was edited by hand and is kept.
    Drift,
}

impl Hold {
    /// One line for status: `held at 1.0.0 since …`.
    pub fn describe(&self) -> String {
        let version = self.installed.version.as_deref().unwrap_or("(no version)");
        match self.reason {
            HoldReason::Hold => format!("held at {version} since {}", self.since),
            HoldReason::Rollback => format!("rolled back to {version} at {}", self.since),
            HoldReason::Drift => {
                format!("held at {version}: edited by hand (since {})", self.since)
            }
        }
    }
}

impl SkillState {
    /// Remembers `old` as the most recent earlier generation, keeping at
    /// most `keep` of them (distinct layers only).
    pub fn remember(&mut self, old: Installed, keep: usize) {
        self.history.retain(|h| h.layer_digest != old.layer_digest);
        self.history.insert(0, old);
        self.history.truncate(keep);
    }
}

/// What is installed in one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetState {
    /// The skill folder, `<target dir>/<name>`.
    pub path: PathBuf,
    /// What is installed there, once the install is complete.
    #[serde(default)]
    pub installed: Option<Installed>,
    /// A layer being installed: the folder is ours even if the swap
    /// finished and the record did not.
    #[serde(default)]
    pub pending: Option<Digest>,
    /// The tree as installed, to detect local edits ([`crate::tree`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<TreeRecord>,
}

/// One installed version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Installed {
    /// The image manifest's digest.
    pub manifest_digest: Digest,
    /// The layer's digest.
    pub layer_digest: Digest,
    /// The version annotation, when present.
    pub version: Option<String>,
    /// The lifecycle status on that manifest.
    pub status: Status,
    /// When it was installed (RFC 3339).
    pub installed_at: String,
}

impl State {
    /// Reads the state file; a missing file is an empty state.
    pub fn load(path: &Path) -> Result<State> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(State {
                    version: FORMAT_VERSION,
                    ..Default::default()
                })
            }
            Err(e) => return Err(Error::io("reading", path, e)),
        };
        let state: State = serde_json::from_slice(&bytes).map_err(|e| Error::State {
            path: path.to_path_buf(),
            reason: format!("not valid: {e}"),
        })?;
        if state.version != FORMAT_VERSION {
            return Err(Error::State {
                path: path.to_path_buf(),
                reason: format!(
                    "format version {} is not {FORMAT_VERSION} (written by another skillsyncd?)",
                    state.version
                ),
            });
        }
        Ok(state)
    }

    /// Writes the state file atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic_with(path, |out| self.write_json(out, path))
    }

    /// Streams the state file's contents to `out` (never the whole file in
    /// memory: it grows with every skill and file installed); `path`
    /// (where it goes) names it in errors.
    pub fn write_json(&self, out: &mut dyn Write, path: &Path) -> Result<()> {
        let mut buffered = std::io::BufWriter::new(out);
        serde_json::to_writer_pretty(&mut buffered, self).map_err(|e| Error::State {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        buffered.flush().ctx("writing", path.to_path_buf())
    }
}

/// Writes `bytes` to `path` atomically: a temp file in the same directory,
/// fsynced, renamed over `path`, then the directory fsynced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |out| {
        out.write_all(bytes).ctx("writing", path.to_path_buf())
    })
}

/// [`write_atomic`], the contents streamed by `write`; its value is
/// returned once the file is in place.
pub fn write_atomic_with<T>(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<T>,
) -> Result<T> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).ctx("creating directory", dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .ctx("creating temporary file in", dir)?;
    let value = write(tmp.as_file_mut())?;
    tmp.as_file().sync_all().ctx("syncing", path)?;
    tmp.persist(path)
        .map_err(|e| Error::io("renaming into place", path, e.error))?;
    crate::install::sync_dir(dir)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("state/state.json");
        let mut s = State::load(&path).unwrap();
        assert!(s.skills.is_empty());
        s.skills.insert(
            "hello".into(),
            SkillState {
                image: "r/x".into(),
                ref_digest: Some(Digest::of(b"m")),
                current: None,
                history: Vec::new(),
                hold: None,
                backups: Vec::new(),
                archived: false,
                verified: None,
                highest_version: None,
                targets: BTreeMap::from([(
                    "claude".into(),
                    Box::new(TargetState {
                        path: "/x/hello".into(),
                        installed: Some(Installed {
                            manifest_digest: Digest::of(b"m"),
                            layer_digest: Digest::of(b"l"),
                            version: Some("1.0.0".into()),
                            status: Status::Published,
                            installed_at: "2026-01-01T00:00:00Z".into(),
                        }),
                        pending: None,
                        tree: None,
                    }),
                )]),
            },
        );
        s.save(&path).unwrap();
        assert_eq!(State::load(&path).unwrap(), s);
        std::fs::write(&path, b"{").unwrap();
        let err = State::load(&path).unwrap_err().to_string();
        assert!(err.contains("state.json"), "{err}");
    }
}
