//! Watching the config file, so an edit is picked up without a restart.
//!
//! Editors save by writing a new file and renaming it over the old one, so
//! the watch is on the file's *directory* (a watch on the file itself would
//! follow the old inode), events are filtered by file name, and bursts are
//! debounced into one reload. [`watch_all`] watches several files (every
//! file a layered config read) and include patterns such as
//! `skills.d/*.toml`, so a file added to such a directory is seen too.
//!
//! Reading a file (as every reload does) raises events as well; only a new
//! stamp (inode, size, mtime, ctime), or a file appearing or going, counts
//! as a change, or each reload would ask for the next one.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{new_debouncer, DebounceEventResult, Debouncer};
use tokio::sync::mpsc::UnboundedSender;

/// How long events are gathered before one reload is asked for.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// Watches one file; dropping it stops the watch.
pub struct ConfigWatcher {
    _debouncer: Debouncer<RecommendedWatcher>,
}

/// Why the watch could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("watching {path} for changes: {source}")]
pub struct WatchError {
    /// The directory watched.
    pub path: std::path::PathBuf,
    /// The underlying error.
    #[source]
    pub source: notify::Error,
}

/// What identifies one version of a file.
type Stamp = (u64, u64, u64, i64, i64, i64, i64);

/// Device, inode, size, mtime and ctime (with nanoseconds) of `path`;
/// `None` when it is missing.
fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    ))
}

/// Sends `()` on `tx` (debounced) whenever `file` is created, written,
/// renamed or removed.
pub fn watch(file: &Path, tx: UnboundedSender<()>) -> Result<ConfigWatcher, WatchError> {
    watch_all(&[file.to_path_buf()], tx)
}

/// Sends `()` on `tx` (debounced) whenever one of `files` is created,
/// written, renamed or removed. A file name with `*` or `?` is a pattern
/// matched against every file of its directory. Directories that do not
/// exist are skipped.
pub fn watch_all(files: &[PathBuf], tx: UnboundedSender<()>) -> Result<ConfigWatcher, WatchError> {
    let mut by_dir: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for file in files {
        let dir = match file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        by_dir.entry(dir).or_default().push(name);
    }
    by_dir.retain(|dir, _| dir.is_dir());
    let patterns = by_dir.clone();
    let matches = move |path: &Path| {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return false;
        };
        let name = name.to_string_lossy();
        patterns.get(dir).is_some_and(|names| {
            names
                .iter()
                .any(|p| crate::config::layers::wildcard_match(p, &name))
        })
    };
    // The stamps of every watched file as they are now.
    let mut stamps: HashMap<PathBuf, Option<Stamp>> = HashMap::new();
    for dir in by_dir.keys() {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
                if matches(&path) {
                    stamps.insert(path.clone(), stamp(&path));
                }
            }
        }
    }
    let first = by_dir.keys().next().cloned().unwrap_or_default();
    let err = |path: PathBuf| move |source| WatchError { path, source };
    let mut debouncer = new_debouncer(DEBOUNCE, move |res: DebounceEventResult| {
        if let Ok(events) = res {
            let mut changed = false;
            for e in events.iter().filter(|e| matches(&e.path)) {
                let now = stamp(&e.path);
                let before = stamps.insert(e.path.clone(), now).flatten();
                changed |= before != now;
            }
            if changed {
                let _ = tx.send(());
            }
        }
    })
    .map_err(err(first))?;
    for dir in by_dir.keys() {
        debouncer
            .watcher()
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(err(dir.clone()))?;
    }
    Ok(ConfigWatcher {
        _debouncer: debouncer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_edit_by_rename_is_seen_once_and_other_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("skills.toml");
        std::fs::write(&file, "a").unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let _w = watch(&file, tx).unwrap();
        std::fs::write(dir.path().join("other.toml"), "x").unwrap();
        let tmp = dir.path().join(".skills.toml.swp");
        std::fs::write(&tmp, "b").unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        assert_eq!(got.unwrap(), Some(()));
        // The burst was one event.
        tokio::time::sleep(DEBOUNCE * 3).await;
        assert!(rx.try_recv().is_err());
        // Reading the file is not a change.
        let _ = std::fs::read(&file).unwrap();
        tokio::time::sleep(DEBOUNCE * 3).await;
        assert!(rx.try_recv().is_err(), "a read is not an edit");
    }

    #[tokio::test]
    async fn included_files_and_patterns_are_watched() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("skills.toml");
        let d = dir.path().join("skills.d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(&main, "a").unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let _w = watch_all(
            &[
                main.clone(),
                d.join("*.toml"),
                dir.path().join("missing/x.toml"),
            ],
            tx,
        )
        .unwrap();
        std::fs::write(d.join("notes.txt"), "x").unwrap();
        tokio::time::sleep(DEBOUNCE * 3).await;
        assert!(rx.try_recv().is_err(), "other files are ignored");
        std::fs::write(d.join("new.toml"), "x").unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        assert_eq!(got.unwrap(), Some(()));
        // Reading an included file is not a change; removing it is.
        let _ = std::fs::read(d.join("new.toml")).unwrap();
        tokio::time::sleep(DEBOUNCE * 3).await;
        assert!(rx.try_recv().is_err(), "a read is not an edit");
        std::fs::remove_file(d.join("new.toml")).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        assert_eq!(got.unwrap(), Some(()));
    }
}
