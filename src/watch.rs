//! Watching the config file, so an edit is picked up without a restart.
//!
//! Editors save by writing a new file and renaming it over the old one, so
//! the watch is on the file's *directory* (a watch on the file itself would
//! follow the old inode), events are filtered by file name, and bursts are
//! debounced into one reload. [`watch_all`] watches several files (every
//! file a layered config read) and include patterns such as
//! `skills.d/*.toml`, so a file added to such a directory is seen too.

use std::collections::BTreeMap;
use std::ffi::OsString;
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

/// Sends `()` on `tx` (debounced) whenever `file` is created, written,
/// renamed or removed.
pub fn watch(file: &Path, tx: UnboundedSender<()>) -> Result<ConfigWatcher, WatchError> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name: OsString = file.file_name().map(OsString::from).unwrap_or_default();
    let err = |source| WatchError {
        path: dir.clone(),
        source,
    };
    let mut debouncer = new_debouncer(DEBOUNCE, move |res: DebounceEventResult| {
        if let Ok(events) = res {
            if events
                .iter()
                .any(|e| e.path.file_name() == Some(name.as_os_str()))
            {
                let _ = tx.send(());
            }
        }
    })
    .map_err(err)?;
    debouncer
        .watcher()
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(err)?;
    Ok(ConfigWatcher {
        _debouncer: debouncer,
    })
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
    let first = by_dir.keys().next().cloned().unwrap_or_default();
    let err = |path: PathBuf| move |source| WatchError { path, source };
    let mut debouncer = new_debouncer(DEBOUNCE, move |res: DebounceEventResult| {
        if let Ok(events) = res {
            let hit = events.iter().any(|e| {
                let (Some(dir), Some(name)) = (e.path.parent(), e.path.file_name()) else {
                    return false;
                };
                let name = name.to_string_lossy();
                patterns.get(dir).is_some_and(|names| {
                    names
                        .iter()
                        .any(|p| crate::layers::wildcard_match(p, &name))
                })
            });
            if hit {
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
    }
}
