//! What is installed where: one state file per skill, written atomically.
//!
//! `<state dir>/skills/<name>.json` records, per target, the manifest
//! digest, layer digest, version and lifecycle status installed, and the
//! tree as installed. A target whose install has begun but not been
//! recorded carries `pending`, so a crash between the swap and the record
//! does not turn our own folder into a stranger's.
//!
//! A file per skill keeps each write the size of one skill's record (one
//! file for everything made installing n skills cost O(n²)), and lets the
//! daemon read a skill's record when it works on it instead of keeping
//! every record in memory. The single `state.json` of format 1 is split
//! into per-skill files the first time a [`Store`] opens the directory.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::channel::Status;
use crate::error::{Error, IoContext, Result};
use crate::fs::{sync_dir, Options};
use crate::reference::Digest;
use crate::tree::TreeRecord;

/// The format of the single `state.json` earlier versions wrote; read
/// only to migrate it ([`Store::open`]).
pub const FORMAT_VERSION: u32 = 1;

/// The format of the per-skill files.
pub const SKILL_FORMAT_VERSION: u32 = 2;

/// The per-skill files' directory below the state dir.
pub const SKILLS_DIR: &str = "skills";

/// The format-1 state file below the state dir.
pub const LEGACY_FILE: &str = "state.json";

/// The whole state file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// Per skill name.
    #[serde(default)]
    pub skills: BTreeMap<String, SkillRecord>,
}

/// One skill's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SkillRecord {
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
    pub targets: BTreeMap<String, Box<TargetRecord>>,
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

impl SkillRecord {
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
pub struct TargetRecord {
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
}

/// One skill's state file: the format, then the record's fields.
#[derive(Serialize)]
struct SkillFileOut<'a> {
    version: u32,
    #[serde(flatten)]
    skill: &'a SkillRecord,
}

#[derive(Deserialize)]
struct SkillFileIn {
    version: u32,
    #[serde(flatten)]
    skill: SkillRecord,
}

/// Where the state is kept.
#[derive(Debug)]
pub enum Store {
    /// One file per skill in this directory (`<state dir>/skills`).
    Files(PathBuf),
    /// A private copy in memory, never written (dry runs).
    Memory(std::sync::Mutex<State>),
}

impl Store {
    /// Opens the per-skill files below `state_dir`, first splitting a
    /// format-1 `state.json` into them if one is there. Every record is
    /// read once, so a damaged file stops the start with its name rather
    /// than a later pass.
    pub fn open(state_dir: &Path) -> Result<Store> {
        let store = Store::Files(state_dir.join(SKILLS_DIR));
        let legacy = state_dir.join(LEGACY_FILE);
        if legacy.exists() {
            let old = State::load(&legacy)?;
            for (name, skill) in &old.skills {
                store.save(name, skill)?;
            }
            // Only once every record is in its own file: a crash before
            // this repeats the migration, which writes the same files.
            std::fs::remove_file(&legacy).ctx("removing", &legacy)?;
            sync_dir(state_dir)?;
            tracing::info!(
                skills = old.skills.len(),
                "state moved from {} to one file per skill in {}",
                legacy.display(),
                state_dir.join(SKILLS_DIR).display()
            );
        }
        store.visit(|_, _| {})?;
        Ok(store)
    }

    /// A private in-memory copy of `state`, for a dry run.
    pub fn memory(state: State) -> Store {
        Store::Memory(std::sync::Mutex::new(state))
    }

    fn file(dir: &Path, name: &str) -> Result<PathBuf> {
        if !crate::name::is_valid(name) {
            return Err(Error::State {
                path: dir.to_path_buf(),
                reason: format!("{name:?} is not a skill name"),
            });
        }
        Ok(dir.join(format!("{name}.json")))
    }

    fn memory_state(m: &std::sync::Mutex<State>) -> std::sync::MutexGuard<'_, State> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Skill `name`'s record, if it has one.
    pub fn load(&self, name: &str) -> Result<Option<SkillRecord>> {
        match self {
            Store::Memory(m) => Ok(Self::memory_state(m).skills.get(name).cloned()),
            Store::Files(dir) => {
                let path = Self::file(dir, name)?;
                let bytes = match std::fs::read(&path) {
                    Ok(b) => b,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(Error::io("reading", &path, e)),
                };
                let file: SkillFileIn =
                    serde_json::from_slice(&bytes).map_err(|e| Error::State {
                        path: path.clone(),
                        reason: format!("not valid: {e}"),
                    })?;
                if file.version != SKILL_FORMAT_VERSION {
                    return Err(Error::State {
                        path,
                        reason: format!(
                            "format version {} is not {SKILL_FORMAT_VERSION} (written by another skillsyncd?)",
                            file.version
                        ),
                    });
                }
                Ok(Some(file.skill))
            }
        }
    }

    /// Records `skill` as skill `name`'s state, durably.
    pub fn save(&self, name: &str, skill: &SkillRecord) -> Result<()> {
        match self {
            Store::Memory(m) => {
                Self::memory_state(m)
                    .skills
                    .insert(name.to_string(), skill.clone());
                Ok(())
            }
            Store::Files(dir) => {
                let path = Self::file(dir, name)?;
                crate::fs::write_atomic_with(&path, Options::DURABLE, |out| {
                    let mut buffered = std::io::BufWriter::new(out);
                    let file = SkillFileOut {
                        version: SKILL_FORMAT_VERSION,
                        skill,
                    };
                    serde_json::to_writer_pretty(&mut buffered, &file).map_err(|e| {
                        Error::State {
                            path: path.clone(),
                            reason: e.to_string(),
                        }
                    })?;
                    buffered.flush().ctx("writing", path.clone())
                })
            }
        }
    }

    /// Forgets skill `name`.
    pub fn remove(&self, name: &str) -> Result<()> {
        match self {
            Store::Memory(m) => {
                Self::memory_state(m).skills.remove(name);
                Ok(())
            }
            Store::Files(dir) => {
                let path = Self::file(dir, name)?;
                match std::fs::remove_file(&path) {
                    Ok(()) => Ok(sync_dir(dir)?),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(Error::io("removing", &path, e)),
                }
            }
        }
    }

    /// Every skill's record, all in memory: for a dry run's copy. Prefer
    /// [`Store::visit`], which holds one record at a time.
    pub fn load_all(&self) -> Result<State> {
        let mut state = State {
            version: FORMAT_VERSION,
            skills: BTreeMap::new(),
        };
        self.visit(|name, skill| {
            state.skills.insert(name.to_string(), skill);
        })?;
        Ok(state)
    }

    /// The names of the skills with a record, sorted.
    pub fn names(&self) -> Result<Vec<String>> {
        let mut names = match self {
            Store::Memory(m) => Self::memory_state(m).skills.keys().cloned().collect(),
            Store::Files(dir) => {
                let entries = match std::fs::read_dir(dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => return Err(Error::io("reading", dir, e)),
                };
                let mut names = Vec::new();
                for entry in entries {
                    let entry = entry.ctx("reading", dir)?;
                    // Temporary files (`.tmp-…`) and anything else that is
                    // not a skill's record are not read.
                    if let Some(name) = entry
                        .file_name()
                        .to_str()
                        .and_then(|f| f.strip_suffix(".json"))
                        .filter(|n| crate::name::is_valid(n))
                    {
                        names.push(name.to_string());
                    }
                }
                names
            }
        };
        names.sort();
        Ok(names)
    }

    /// Calls `f` with each skill's record in name order, one at a time
    /// (a daemon with thousands of skills never holds them all).
    pub fn visit(&self, mut f: impl FnMut(&str, SkillRecord)) -> Result<()> {
        for name in self.names()? {
            if let Some(skill) = self.load(&name)? {
                f(&name, skill);
            }
        }
        Ok(())
    }

    /// The directory of the per-skill files (`None` in memory).
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Store::Files(dir) => Some(dir),
            Store::Memory(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SkillRecord {
        SkillRecord {
            image: "r/x".into(),
            ref_digest: Some(Digest::of(b"m")),
            targets: BTreeMap::from([(
                "claude".into(),
                Box::new(TargetRecord {
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
            ..Default::default()
        }
    }

    #[test]
    fn one_file_per_skill_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        assert!(store.load_all().unwrap().skills.is_empty());
        assert_eq!(store.load("hello").unwrap(), None);
        store.save("hello", &sample()).unwrap();
        assert_eq!(store.load("hello").unwrap(), Some(sample()));
        let file = tmp.path().join("skills/hello.json");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("\"version\": 2"), "{text}");
        // A leftover temporary file is not a record.
        std::fs::write(tmp.path().join("skills/.tmp-abc"), b"{").unwrap();
        let all = Store::open(tmp.path()).unwrap().load_all().unwrap();
        assert_eq!(all.skills.keys().collect::<Vec<_>>(), ["hello"]);
        store.remove("hello").unwrap();
        store.remove("hello").unwrap();
        assert!(!file.exists());
    }

    #[test]
    fn a_damaged_record_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("skills")).unwrap();
        std::fs::write(tmp.path().join("skills/hello.json"), b"{").unwrap();
        let err = Store::open(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("skills/hello.json"), "{err}");
        std::fs::write(
            tmp.path().join("skills/hello.json"),
            br#"{"version": 9, "image": "r/x"}"#,
        )
        .unwrap();
        let err = Store::open(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("format version 9"), "{err}");
    }

    #[test]
    fn names_cannot_leave_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        assert!(store.save("../escape", &sample()).is_err());
        assert!(store.load("../escape").is_err());
        assert!(!tmp.path().join("escape.json").exists());
    }

    #[test]
    fn the_single_state_file_of_format_1_is_split() {
        let tmp = tempfile::tempdir().unwrap();
        let legacy = State {
            version: FORMAT_VERSION,
            skills: BTreeMap::from([("hello".into(), sample()), ("other".into(), sample())]),
        };
        let path = tmp.path().join(LEGACY_FILE);
        std::fs::write(&path, serde_json::to_vec_pretty(&legacy).unwrap()).unwrap();
        let store = Store::open(tmp.path()).unwrap();
        assert!(!path.exists(), "state.json is gone once split");
        assert_eq!(store.load_all().unwrap(), legacy);
        // A damaged format-1 file stops the start and stays as it is.
        std::fs::write(&path, b"{").unwrap();
        let err = Store::open(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("state.json"), "{err}");
        assert!(path.exists());
    }

    #[test]
    fn a_memory_store_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::memory(State::default());
        store.save("hello", &sample()).unwrap();
        assert_eq!(store.load("hello").unwrap(), Some(sample()));
        assert_eq!(store.load_all().unwrap().skills.len(), 1);
        store.remove("hello").unwrap();
        assert_eq!(store.load("hello").unwrap(), None);
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}
