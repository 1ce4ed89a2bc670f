//! One daemon per state directory.
//!
//! Two daemons syncing into the same state would race each other's
//! installs and state writes. [`InstanceLock::acquire`] takes an exclusive
//! `flock` on `<state dir>/skillsyncd.lock` without waiting, and writes our
//! pid into the file so a second daemon can say who holds it:
//!
//! ```text
//! another skillsyncd (pid 4242) is already running with state dir /home/me/.local/state/skillsync
//! ```
//!
//! The lock belongs to the open file, not to a path or a pid: it is
//! released when the [`InstanceLock`] is dropped or the process exits,
//! however it exits, so a crash never leaves a stale lock behind. The file
//! itself stays (removing it would let a third process lock a new file
//! while a second still holds the old one).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::FlockOperation;

/// File name of the lock inside the state directory.
pub const LOCK_FILE_NAME: &str = "skillsyncd.lock";

/// How long to wait for the holder's pid to appear in the file (it writes
/// it right after locking) before reporting the holder without one.
const PID_WAIT: Duration = Duration::from_millis(200);

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error(
        "another skillsyncd ({}) is already running with state dir {}",
        describe_pid(*.pid),
        .state_dir.display()
    )]
    AlreadyRunning {
        /// The holder's pid, as read from the lock file; `None` if the file
        /// held no pid.
        pid: Option<u32>,
        /// The state directory both daemons use.
        state_dir: PathBuf,
    },
    /// The state directory could not be created.
    #[error("cannot create the state directory {}", .dir.display())]
    CreateDir {
        /// The state directory.
        dir: PathBuf,
        /// What the filesystem said.
        #[source]
        source: std::io::Error,
    },
    /// The lock file could not be opened, locked or written.
    #[error("cannot {action} the lock file {}", .path.display())]
    Io {
        /// What was being done: `open`, `lock`, `write our pid to`.
        action: &'static str,
        /// The lock file.
        path: PathBuf,
        /// What the filesystem said.
        #[source]
        source: std::io::Error,
    },
}

/// `pid N`, or `pid unknown`.
fn describe_pid(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => "pid unknown".to_owned(),
    }
}

/// Proof that this process is the only skillsyncd using a state directory.
/// Keep it alive for as long as the daemon runs; dropping it releases the
/// lock.
#[derive(Debug)]
pub struct InstanceLock {
    /// The locked file; the lock lives as long as this descriptor.
    _file: File,
    path: PathBuf,
    state_dir: PathBuf,
}

impl InstanceLock {
    /// Locks `<state_dir>/skillsyncd.lock` (creating the directory and the
    /// file as needed) and writes our pid into it. Fails at once, without
    /// waiting, with [`LockError::AlreadyRunning`] if another process holds
    /// it.
    pub fn acquire(state_dir: &Path) -> Result<InstanceLock, LockError> {
        std::fs::create_dir_all(state_dir).map_err(|source| LockError::CreateDir {
            dir: state_dir.to_path_buf(),
            source,
        })?;
        let path = state_dir.join(LOCK_FILE_NAME);
        let io = |action: &'static str| {
            let path = path.clone();
            move |source: std::io::Error| LockError::Io {
                action,
                path,
                source,
            }
        };
        // Not truncated on open: until we hold the lock, the pid in the
        // file is the holder's.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(io("open"))?;
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(LockError::AlreadyRunning {
                    pid: holder_pid(&mut file),
                    state_dir: state_dir.to_path_buf(),
                });
            }
            Err(e) => return Err(io("lock")(e.into())),
        }
        write_pid(&mut file, std::process::id()).map_err(io("write our pid to"))?;
        Ok(InstanceLock {
            _file: file,
            path,
            state_dir: state_dir.to_path_buf(),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state directory this lock guards.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }
}

/// Replaces the file's contents with `pid` and a newline.
fn write_pid(file: &mut File, pid: u32) -> std::io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(format!("{pid}\n").as_bytes())?;
    file.flush()
}

/// The pid the holder wrote, waiting up to [`PID_WAIT`] for it to appear
/// (the holder may have locked the file but not written it yet).
fn holder_pid(file: &mut File) -> Option<u32> {
    let deadline = std::time::Instant::now() + PID_WAIT;
    loop {
        if let Some(pid) = read_pid(file) {
            return Some(pid);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The pid in the file, if it holds one.
fn read_pid(file: &mut File) -> Option<u32> {
    file.seek(SeekFrom::Start(0)).ok()?;
    let mut text = String::new();
    file.take(64).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_the_state_dir_and_writes_our_pid() {
        let root = tempfile::tempdir().unwrap();
        let state = root.path().join("a/b/state");
        let lock = InstanceLock::acquire(&state).unwrap();
        assert_eq!(lock.path(), state.join(LOCK_FILE_NAME));
        assert_eq!(lock.state_dir(), state);
        let text = std::fs::read_to_string(lock.path()).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
    }

    #[test]
    fn a_second_lock_on_the_same_dir_fails_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = InstanceLock::acquire(dir.path()).unwrap();
        // flock locks belong to the open file description, so a second
        // open in the same process conflicts just as another process would.
        let err = InstanceLock::acquire(dir.path()).unwrap_err();
        match &err {
            LockError::AlreadyRunning { pid, state_dir } => {
                assert_eq!(*pid, Some(std::process::id()));
                assert_eq!(state_dir, dir.path());
            }
            other => panic!("expected AlreadyRunning, got {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            format!(
                "another skillsyncd (pid {}) is already running with state dir {}",
                std::process::id(),
                dir.path().display()
            )
        );
        // The failed attempt did not disturb the holder's pid.
        let text = std::fs::read_to_string(first.path()).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
    }

    #[test]
    fn dropping_the_lock_releases_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = InstanceLock::acquire(dir.path()).unwrap();
        drop(first);
        let second = InstanceLock::acquire(dir.path()).unwrap();
        assert!(second.path().exists());
    }

    #[test]
    fn a_stale_pid_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE_NAME), "999999999\nextra junk").unwrap();
        let lock = InstanceLock::acquire(dir.path()).unwrap();
        let text = std::fs::read_to_string(lock.path()).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
    }

    #[test]
    fn a_holder_without_a_pid_is_still_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE_NAME);
        let holder = File::create(&path).unwrap();
        rustix::fs::flock(&holder, FlockOperation::NonBlockingLockExclusive).unwrap();
        let err = InstanceLock::acquire(dir.path()).unwrap_err();
        assert!(
            matches!(err, LockError::AlreadyRunning { pid: None, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("(pid unknown)"), "{err}");
    }

    #[test]
    fn a_state_dir_that_is_a_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state");
        std::fs::write(&file, "").unwrap();
        let err = InstanceLock::acquire(&file).unwrap_err();
        assert!(matches!(err, LockError::CreateDir { .. }), "{err:?}");
        assert!(err.to_string().contains(&file.display().to_string()));
    }
}
