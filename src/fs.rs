//! The one place files are written atomically: a temporary file in the
//! destination's directory, filled, then renamed over the destination, so
//! a reader sees the old file or the new one, never a part. Also the
//! fsync of a directory and the unique numbers temporary names are made
//! of.
//!
//! The temporary file comes from `tempfile` (an exclusive create with a
//! random name, removed again if the write fails) and is renamed with
//! [`tempfile::NamedTempFile::persist`]; what `tempfile` does not do is
//! durability, so the fsyncs are ours, chosen per caller with
//! [`Durability`]: the state must survive a crash, a cached manifest need
//! not.
//!
//! This module knows nothing of what the files hold and depends on no
//! other module of the crate: its [`FsError`] becomes the caller's error
//! (`crate::Error::Io`, or `provenance`'s own) through `From`, so modules
//! that `crate::error` itself wraps can use it too.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

/// A filesystem operation that failed, with what was being done and to
/// which path; shown as "`action` `path`".
#[derive(Debug, thiserror::Error)]
#[error("{action} {}", path.display())]
pub struct FsError {
    /// What was being done ("creating temporary file in", ...).
    pub action: &'static str,
    /// The path involved.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: std::io::Error,
}

/// A result with an [`FsError`].
pub type Result<T, E = FsError> = std::result::Result<T, E>;

/// Attaches an action and a path to an I/O result.
trait Ctx<T> {
    fn ctx(self, action: &'static str, path: &Path) -> Result<T>;
}

impl<T> Ctx<T> for std::io::Result<T> {
    fn ctx(self, action: &'static str, path: &Path) -> Result<T> {
        self.map_err(|source| FsError {
            action,
            path: path.to_path_buf(),
            source,
        })
    }
}

/// How much of an atomic write survives a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Nothing is fsynced: the file may be lost or empty after a crash
    /// (content a reader checks by digest).
    None,
    /// The contents are fsynced before the rename, so the name never shows
    /// a file that is not complete; the rename itself may be lost.
    Contents,
    /// The contents before the rename and the directory after it: once
    /// the write returns, the new file is there after a crash.
    Full,
}

/// How an atomic write is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options<'a> {
    /// What is fsynced.
    pub durability: Durability,
    /// The start of the temporary file's name (what start-up cleaning
    /// recognises).
    pub prefix: &'a str,
    /// The mode the temporary file is created with (the umask applies);
    /// `None` for owner-only (0600).
    pub mode: Option<u32>,
}

/// The prefix of the temporary files of [`Options::DURABLE`] and
/// [`Options::CACHED`], which start-up cleaning removes.
pub const TEMP_PREFIX: &str = ".tmp-";

impl Options<'static> {
    /// A `.tmp-` file, fsynced with its directory: records that must
    /// survive a crash.
    pub const DURABLE: Options<'static> = Options {
        durability: Durability::Full,
        prefix: TEMP_PREFIX,
        mode: None,
    };

    /// A `.tmp-` file, nothing fsynced: content checked by digest when it
    /// is read, fetched again if lost.
    pub const CACHED: Options<'static> = Options {
        durability: Durability::None,
        prefix: TEMP_PREFIX,
        mode: None,
    };
}

/// Writes `bytes` to `path` atomically and durably ([`Options::DURABLE`]):
/// a temporary file in the same directory, fsynced, renamed over `path`,
/// then the directory fsynced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_bytes_atomic(path, bytes, Options::DURABLE)
}

/// Writes `bytes` to `path` atomically, as `options` say.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8], options: Options<'_>) -> Result<()> {
    use std::io::Write as _;
    write_atomic_with(path, options, |out| {
        out.write_all(bytes).ctx("writing", path)
    })
}

/// Writes `path` atomically, its contents written by `write` into the
/// temporary file; `write`'s value is returned once the file is in place.
/// The directory is created if needed.
pub fn write_atomic_with<T, E: From<FsError>>(
    path: &Path,
    options: Options<'_>,
    write: impl FnOnce(&mut File) -> Result<T, E>,
) -> Result<T, E> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = temp_in(dir, options.prefix, options.mode)?;
    let value = write(tmp.as_file_mut())?;
    persist(tmp, path, options.durability)?;
    Ok(value)
}

/// A new temporary file in `dir` (created if needed) whose name starts
/// with `prefix`, for a write that [`persist`] finishes; it is removed if
/// dropped before.
pub fn temp_in(dir: &Path, prefix: &str, mode: Option<u32>) -> Result<NamedTempFile> {
    std::fs::create_dir_all(dir).ctx("creating directory", dir)?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    if let Some(mode) = mode {
        builder.permissions(std::fs::Permissions::from_mode(mode));
    }
    builder
        .tempfile_in(dir)
        .ctx("creating temporary file in", dir)
}

/// Renames the written temporary file `tmp` over `path`, with the fsyncs
/// `durability` asks for.
pub fn persist(tmp: NamedTempFile, path: &Path, durability: Durability) -> Result<()> {
    if durability != Durability::None {
        tmp.as_file().sync_all().ctx("syncing", path)?;
    }
    tmp.persist(path)
        .map_err(|e| e.error)
        .ctx("renaming into place", path)?;
    if durability == Durability::Full {
        sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    }
    Ok(())
}

/// fsyncs a directory, so renames and creations inside it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .ctx("syncing directory", dir)
}

/// A per-process unique number for temporary names.
pub fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    (NEXT.fetch_add(1, Ordering::Relaxed) << 32) ^ nanos
}
