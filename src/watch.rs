//! Watching the config file, so an edit is picked up without a restart.
//!
//! Editors save by writing a new file and renaming it over the old one, so
//! the watch is on the file's *directory* (a watch on the file itself would
//! follow the old inode), events are filtered by file name, and bursts are
//! debounced into one reload. Opening or reading the file is an event too
//! (inotify's `IN_OPEN`), and the reload itself reads the file: so a burst
//! counts only when the file's identity, size or times moved, or a reload
//! would cause the next one, forever.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
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
    let path = dir.join(&name);
    let mut last = stamp(&path);
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
                let now = stamp(&path);
                if now != last {
                    last = now;
                    let _ = tx.send(());
                }
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

/// What changes when a file is written, replaced, created or removed, and
/// not when it is only opened or read: device, inode, size, mtime and
/// ctime (`None` when it does not exist or cannot be read).
fn stamp(path: &Path) -> Option<[i64; 7]> {
    let m = std::fs::metadata(path).ok()?;
    Some([
        m.dev() as i64,
        m.ino() as i64,
        m.size() as i64,
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    ])
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
    async fn reading_the_file_is_not_an_edit() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("skills.toml");
        std::fs::write(&file, "a").unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let _w = watch(&file, tx).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"a");
        tokio::time::sleep(DEBOUNCE * 3).await;
        assert!(rx.try_recv().is_err(), "a read asked for a reload");
        std::fs::write(&file, "b").unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        assert_eq!(got.unwrap(), Some(()));
    }
}
