//! The atomic swap of a staged skill tree into `<target>/<name>`, and the
//! repair of whatever a crash left behind.
//!
//! A new tree is unpacked (and fsynced) into a staging directory in the same
//! parent as the skill, so the swap is a rename within one filesystem:
//!
//! 1. nothing installed yet: `renameat2(staging, name, RENAME_NOREPLACE)`;
//! 2. an older tree installed: `renameat2(staging, name, RENAME_EXCHANGE)`,
//!    after which the staging name holds the old tree, which is deleted;
//! 3. a filesystem without exchange: a journaled two-rename fallback
//!    (`name` → old, staging → `name`) whose short gap [`recover`] repairs
//!    at start-up from the journal.
//!
//! After each rename the parent directory is fsynced so the new entry is
//! durable. An agent reading `<target>/<name>` sees the old complete tree or
//! the new complete tree, never a mix and (outside the fallback) never
//! nothing. Every temporary name starts with `.skillsync-` so recovery
//! touches only what this module created.

use std::ffi::OsStr;
use std::fs::File;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use rustix::fs::{renameat_with, RenameFlags, CWD};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::fs::{sync_dir, unique};

/// Prefix of staging directories (new trees being prepared).
pub const STAGING_PREFIX: &str = ".skillsync-staging.";
/// Prefix of old trees waiting to be deleted.
pub const OLD_PREFIX: &str = ".skillsync-old.";
/// Prefix of fallback-swap journals.
pub const JOURNAL_PREFIX: &str = ".skillsync-journal.";

/// How a tree went into place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swap {
    /// Nothing was there; a plain rename.
    Created,
    /// An older tree was exchanged atomically and removed.
    Exchanged,
    /// The filesystem refused the exchange; the journaled fallback was used.
    Fallback,
}

/// Creates `target_dir` if needed and a fresh, empty staging dir in it for
/// skill `name`.
pub fn prepare_staging(target_dir: &Path, name: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(target_dir).ctx("creating target directory", target_dir)?;
    let staging = target_dir.join(format!("{STAGING_PREFIX}{name}.{:x}", unique()));
    std::fs::create_dir(&staging).ctx("creating staging directory", &staging)?;
    Ok(staging)
}

/// Makes everything written to `dir`'s filesystem so far durable, with
/// one `syncfs(2)`: a staged tree written without fsyncs, before it is
/// swapped in.
#[cfg(target_os = "linux")]
pub fn sync_filesystem(dir: &Path) -> Result<()> {
    let d = File::open(dir).ctx("opening", dir)?;
    rustix::fs::syncfs(&d)
        .map_err(std::io::Error::from)
        .ctx("syncing the filesystem of", dir)
}

fn refused(e: Errno) -> bool {
    e == Errno::INVAL || e == Errno::NOSYS || e == Errno::NOTSUP || e == Errno::OPNOTSUPP
}

/// Swaps the fully written and fsynced `staging` tree into
/// `<target_dir>/<name>`, replacing what is there. The caller has checked
/// that what is there (if anything) is ours.
pub fn swap_into_place(target_dir: &Path, name: &str, staging: &Path) -> Result<Swap> {
    let dest = target_dir.join(name);
    sync_dir(staging)?;
    // First install: never clobber something that appeared meanwhile.
    match renameat_with(CWD, staging, CWD, &dest, RenameFlags::NOREPLACE) {
        Ok(()) => {
            after_swap(target_dir, None);
            return Ok(Swap::Created);
        }
        Err(Errno::EXIST) | Err(Errno::NOTEMPTY) => {}
        Err(e) if refused(e) => {
            if std::fs::symlink_metadata(&dest).is_err() {
                std::fs::rename(staging, &dest).ctx("renaming into place", &dest)?;
                after_swap(target_dir, None);
                return Ok(Swap::Created);
            }
        }
        Err(e) => return Err(Error::io("renaming into place", dest, e.into())),
    }
    match renameat_with(CWD, staging, CWD, &dest, RenameFlags::EXCHANGE) {
        Ok(()) => {
            // `staging` now names the old tree.
            after_swap(target_dir, Some(staging));
            Ok(Swap::Exchanged)
        }
        Err(e) if refused(e) => {
            fallback_swap(target_dir, name, staging)?;
            Ok(Swap::Fallback)
        }
        Err(e) => Err(Error::io("exchanging", dest, e.into())),
    }
}

/// What the fallback journal records.
#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    name: String,
    staging: String,
    old: String,
}

/// Two renames with a journal: `name` → old, then staging → `name`. If the
/// process dies between them, [`recover`] finishes the swap.
fn fallback_swap(target_dir: &Path, name: &str, staging: &Path) -> Result<()> {
    let dest = target_dir.join(name);
    let old_name = format!("{OLD_PREFIX}{name}.{:x}", unique());
    let old = target_dir.join(&old_name);
    let staging_name = staging
        .file_name()
        .and_then(OsStr::to_str)
        .unwrap_or_default()
        .to_string();
    let journal_path = target_dir.join(format!("{JOURNAL_PREFIX}{name}"));
    let journal = Journal {
        name: name.to_string(),
        staging: staging_name,
        old: old_name,
    };
    let bytes = serde_json::to_vec(&journal).map_err(|e| Error::State {
        path: journal_path.clone(),
        reason: e.to_string(),
    })?;
    crate::fs::write_atomic(&journal_path, &bytes)?;
    std::fs::rename(&dest, &old).ctx("moving aside", &dest)?;
    std::fs::rename(staging, &dest).ctx("renaming into place", &dest)?;
    if let Err(e) = std::fs::remove_file(&journal_path) {
        tracing::warn!(
            "removing {}: {e}; it is cleaned at the next start",
            journal_path.display()
        );
    }
    after_swap(target_dir, Some(&old));
    Ok(())
}

/// What follows a successful rename: fsync the parent so the new entry is
/// durable, then delete the old tree. The new tree is in place whatever
/// happens here, so a failure is logged, not returned: reporting the swap
/// as failed would record the old version over the new one. A leftover old
/// tree is removed by [`recover`] at the next start.
fn after_swap(target_dir: &Path, old: Option<&Path>) {
    if let Err(e) = sync_dir(target_dir) {
        tracing::warn!("{e}; the new tree is in place but may not survive a power loss");
    }
    if let Some(old) = old {
        if let Err(e) = remove_tree(old) {
            tracing::warn!("{e}; it is removed at the next start");
        }
    }
}

/// Removes a tree this module created. Does not follow symlinks.
pub fn remove_tree(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("removing", path, e)),
    }
}

/// Copies a tree of regular files and directories (a backup); anything
/// else (a symlink, a device) is skipped, not followed.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).ctx("creating directory", to)?;
    for entry in std::fs::read_dir(from).ctx("reading", from)? {
        let entry = entry.ctx("reading", from)?;
        let kind = entry.file_type().ctx("reading", entry.path())?;
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &dest).ctx("copying", entry.path())?;
        }
    }
    Ok(())
}

/// Moves `<target_dir>/<name>` out of the way atomically and deletes it.
pub fn uninstall(target_dir: &Path, name: &str) -> Result<()> {
    let dest = target_dir.join(name);
    let old = target_dir.join(format!("{OLD_PREFIX}{name}.{:x}", unique()));
    match std::fs::rename(&dest, &old) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("moving aside", dest, e)),
    }
    sync_dir(target_dir)?;
    remove_tree(&old)
}

/// What [`recover`] repaired in one target directory.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Interrupted fallback swaps completed (skill names).
    pub completed: Vec<String>,
    /// Leftover staging and old trees removed.
    pub removed: usize,
}

/// Repairs a target directory after a crash: finishes interrupted fallback
/// swaps and deletes leftover staging and old trees. Touches only names
/// with this module's prefixes.
pub fn recover(target_dir: &Path) -> Result<Recovery> {
    let mut report = Recovery::default();
    let entries = match std::fs::read_dir(target_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(report),
        Err(e) => return Err(Error::io("reading", target_dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.ctx("reading", target_dir)?;
        if let Some(name) = entry.file_name().to_str() {
            if name.starts_with(".skillsync-") {
                names.push(name.to_string());
            }
        }
    }
    // Journals first: they may need the staging or old trees.
    for name in names.iter().filter(|n| n.starts_with(JOURNAL_PREFIX)) {
        let path = target_dir.join(name);
        let journal: Option<Journal> = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if let Some(j) = journal {
            let plain = |s: &str| !s.is_empty() && !s.contains('/') && s != "." && s != "..";
            if plain(&j.name) && plain(&j.staging) && plain(&j.old) {
                let dest = target_dir.join(&j.name);
                if std::fs::symlink_metadata(&dest).is_err() {
                    let staging = target_dir.join(&j.staging);
                    let old = target_dir.join(&j.old);
                    if staging.is_dir() {
                        std::fs::rename(&staging, &dest).ctx("completing swap", &dest)?;
                    } else if old.is_dir() {
                        std::fs::rename(&old, &dest).ctx("restoring", &dest)?;
                    }
                    report.completed.push(j.name.clone());
                }
            }
        }
        std::fs::remove_file(&path).ctx("removing", &path)?;
    }
    for name in &names {
        if name.starts_with(STAGING_PREFIX) || name.starts_with(OLD_PREFIX) {
            let path = target_dir.join(name);
            if std::fs::symlink_metadata(&path).is_ok() {
                remove_tree(&path)?;
                report.removed += 1;
            }
        }
    }
    if !report.completed.is_empty() || report.removed > 0 {
        sync_dir(target_dir)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(target: &Path, name: &str, content: &str) -> PathBuf {
        let s = prepare_staging(target, name).unwrap();
        std::fs::write(s.join("SKILL.md"), content).unwrap();
        s
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn first_install_then_exchange() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("skills");
        let s = stage(&target, "hello", "v1");
        assert_eq!(
            swap_into_place(&target, "hello", &s).unwrap(),
            Swap::Created
        );
        assert_eq!(
            std::fs::read_to_string(target.join("hello/SKILL.md")).unwrap(),
            "v1"
        );
        let s = stage(&target, "hello", "v2");
        let how = swap_into_place(&target, "hello", &s).unwrap();
        assert!(matches!(how, Swap::Exchanged | Swap::Fallback));
        assert_eq!(
            std::fs::read_to_string(target.join("hello/SKILL.md")).unwrap(),
            "v2"
        );
        assert_eq!(listing(&target), vec!["hello"]);
    }

    #[test]
    fn fallback_swap_and_uninstall() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path();
        let s = stage(target, "x", "v1");
        swap_into_place(target, "x", &s).unwrap();
        let s = stage(target, "x", "v2");
        fallback_swap(target, "x", &s).unwrap();
        assert_eq!(
            std::fs::read_to_string(target.join("x/SKILL.md")).unwrap(),
            "v2"
        );
        assert_eq!(listing(target), vec!["x"]);
        uninstall(target, "x").unwrap();
        assert!(listing(target).is_empty());
    }

    #[test]
    fn recovery_completes_an_interrupted_fallback() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path();
        let s = stage(target, "x", "v1");
        swap_into_place(target, "x", &s).unwrap();
        // Crash after `x` was moved aside, before staging was renamed in.
        let staged = stage(target, "x", "v2");
        let old = target.join(format!("{OLD_PREFIX}x.1"));
        let j = Journal {
            name: "x".into(),
            staging: staged.file_name().unwrap().to_str().unwrap().into(),
            old: format!("{OLD_PREFIX}x.1"),
        };
        std::fs::write(
            target.join(format!("{JOURNAL_PREFIX}x")),
            serde_json::to_vec(&j).unwrap(),
        )
        .unwrap();
        std::fs::rename(target.join("x"), &old).unwrap();
        let r = recover(target).unwrap();
        assert_eq!(r.completed, vec!["x".to_string()]);
        assert_eq!(
            std::fs::read_to_string(target.join("x/SKILL.md")).unwrap(),
            "v2"
        );
        assert_eq!(listing(target), vec!["x"]);
    }

    #[test]
    fn recovery_removes_leftovers_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path();
        stage(target, "a", "half");
        std::fs::create_dir(target.join(format!("{OLD_PREFIX}b.2"))).unwrap();
        std::fs::create_dir(target.join("users-own")).unwrap();
        std::fs::create_dir(target.join(".hidden")).unwrap();
        let r = recover(target).unwrap();
        assert_eq!(r.removed, 2);
        assert_eq!(listing(target), vec![".hidden", "users-own"]);
    }
}
