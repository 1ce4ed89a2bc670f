//! Unpacking a skill layer as hostile input.
//!
//! A layer is a gzip-compressed tar of the skill directory. It comes from a
//! registry and is treated as hostile even after its digest has been
//! verified: [`unpack_tar_gz`] walks the archive entry by entry instead of
//! using `tar`'s own unpacking (which silently skips `..` entries and creates
//! links as given) and rejects, with the entry's path and the rule broken:
//!
//! - any entry that is not a regular file or a directory (symbolic and hard
//!   links, devices, fifos, sparse files, unknown types); PAX and GNU
//!   long-name headers are understood, PAX global headers ignored;
//! - any path with a component that is not a plain name: absolute paths,
//!   `..`, Windows drive prefixes, empty components, backslashes, NUL bytes,
//!   names that are not UTF-8 (`.` components are skipped, so `./SKILL.md`
//!   is fine);
//! - a path given twice, or used both as a file and as a directory;
//! - archives over the [`Limits`]: total file bytes (checked before anything
//!   is written), entry count (the archive's entries, and every file and
//!   directory created, a directory a file's path implies included), path
//!   depth and length, and the total size of the decompressed stream, so a
//!   huge header or endless padding cannot exhaust memory or time.
//!
//! Owners, mtimes and extended attributes are ignored; modes are normalised
//! (directories 0755, files 0755 if any execute bit is set, else 0644).
//! Everything is created relative to an open handle on the destination,
//! never following a link, with `O_EXCL` for files; files are fsynced as
//! they are written and every directory at the end, unless the caller
//! makes the tree durable itself ([`SyncMode::Caller`]). The whole decompressed
//! stream, end-of-archive padding included, is hashed: its sha256 is the
//! layer's OCI `diff_id`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Cursor, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use flate2::read::MultiGzDecoder;
use rustix::fs::{Mode, OFlags};
use sha2::{Digest as _, Sha256};
use tar::EntryType;

use crate::reference::Digest;

/// Caps on what one layer may contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Total size of all files, in bytes (the sum of the entries' sizes).
    pub max_bytes: u64,
    /// Number of archive entries (files, directories and headers the archive
    /// lists as entries of their own), and of files and directories created:
    /// a directory only implied by a file's path (`a/b/f` implies `a` and
    /// `a/b`) counts too, each directory once however often it is named.
    pub max_entries: u64,
    /// Number of components in an entry's path (`a/b/c.md` has 3).
    pub max_depth: usize,
    /// Length of an entry's path in bytes, as written in the archive.
    pub max_path_len: usize,
}

impl Default for Limits {
    /// 64 MiB, 10 000 entries, 32 levels, 1024-byte paths.
    fn default() -> Self {
        Limits {
            max_bytes: 64 * 1024 * 1024,
            max_entries: 10_000,
            max_depth: 32,
            max_path_len: 1024,
        }
    }
}

impl Limits {
    /// The most decompressed bytes read from a layer: the file bytes plus a
    /// generous allowance for headers (a header, padding and long-name or
    /// PAX records per entry) and end-of-archive padding.
    pub fn max_stream_bytes(&self) -> u64 {
        let per_entry = 4096u64.saturating_add(2u64.saturating_mul(self.max_path_len as u64));
        self.max_bytes
            .saturating_add(self.max_entries.saturating_mul(per_entry))
            .saturating_add(1024 * 1024)
    }

    /// The most bytes read between two entries: headers, long-name and PAX
    /// records, and the padding or skipped data of the previous entry. Bounds
    /// the memory the archive reader spends on one entry's metadata.
    pub fn max_header_bytes(&self) -> u64 {
        (1024 * 1024u64).max(
            (self.max_path_len as u64)
                .saturating_mul(4)
                .saturating_add(64 * 1024),
        )
    }
}

/// What was unpacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// Regular files written.
    pub files: u64,
    /// Directories created below the destination (listed or implied).
    pub dirs: u64,
    /// Total size of the files written.
    pub bytes: u64,
    /// sha256 of the whole uncompressed tar stream: the layer's OCI `diff_id`.
    pub tar_digest: Digest,
}

/// Why an entry's path is not a plain relative path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathProblem {
    /// The path starts with `/`.
    Absolute,
    /// A component is `..`.
    ParentDir,
    /// The path starts with a Windows drive prefix such as `C:`.
    WindowsPrefix,
    /// A component is empty (`a//b`), or a file's name ends with `/`.
    EmptyComponent,
    /// The path contains a backslash.
    Backslash,
    /// The path contains a NUL byte.
    Nul,
    /// The path is not valid UTF-8.
    NotUtf8,
    /// A file entry's path names the skill directory itself (`.`).
    NoName,
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathProblem::Absolute => "is an absolute path",
            PathProblem::ParentDir => "escapes the skill directory",
            PathProblem::WindowsPrefix => "starts with a Windows drive prefix",
            PathProblem::EmptyComponent => "has an empty path component",
            PathProblem::Backslash => "contains a backslash",
            PathProblem::Nul => "contains a NUL byte",
            PathProblem::NotUtf8 => "is not valid UTF-8",
            PathProblem::NoName => "is a file without a name",
        })
    }
}

/// Why an archive was rejected.
///
/// Entry paths are shown as written in the archive (lossily decoded and
/// shortened when very long).
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The input does not start with the gzip magic bytes.
    #[error("layer is not gzip-compressed (expected a tar+gzip skill layer)")]
    NotGzip,
    /// The gzip or tar stream is malformed.
    #[error("layer is not a valid tar+gzip archive")]
    Corrupt {
        /// What the decompressor or tar reader reported.
        #[source]
        source: io::Error,
    },
    /// The archive ended inside a file's data.
    #[error("layer ends in the middle of entry {path:?}")]
    Truncated {
        /// The entry being read.
        path: String,
    },
    /// An entry's path is not a plain relative path.
    #[error("layer entry {path:?} {problem}")]
    UnsafePath {
        /// The entry's path.
        path: String,
        /// The rule it breaks.
        problem: PathProblem,
    },
    /// A symbolic or hard link.
    #[error(
        "layer entry {path:?} is a link to {target:?}; \
         skills may contain only regular files and directories"
    )]
    Link {
        /// The entry's path.
        path: String,
        /// Where it points.
        target: String,
    },
    /// A device, fifo, sparse file or unknown entry type.
    #[error(
        "layer entry {path:?} is a {kind}; \
         skills may contain only regular files and directories"
    )]
    UnsupportedType {
        /// The entry's path.
        path: String,
        /// What it is (`character device`, `fifo`, ...).
        kind: String,
    },
    /// The same path appears twice (possibly spelled differently, such as
    /// `a` and `./a`, or differing only in case on a case-insensitive file
    /// system), or as both a file and a directory.
    #[error("layer has more than one entry for {path:?}")]
    Duplicate {
        /// The entry's path.
        path: String,
    },
    /// An entry lies below a path the archive has as a file.
    #[error("layer entry {path:?} is inside {file:?}, which the layer has as a file")]
    NotADirectory {
        /// The entry's path.
        path: String,
        /// The file in the way.
        file: String,
    },
    /// The files add up to more than [`Limits::max_bytes`].
    #[error("layer's files exceed the limit of {limit} bytes (at entry {path:?})")]
    TooLarge {
        /// The entry that crossed the limit.
        path: String,
        /// The limit.
        limit: u64,
    },
    /// More entries, or more files and directories created, than
    /// [`Limits::max_entries`].
    #[error("layer has more than {limit} entries")]
    TooManyEntries {
        /// The limit.
        limit: u64,
    },
    /// A path deeper than [`Limits::max_depth`].
    #[error("layer entry {path:?} is nested deeper than {limit} levels")]
    TooDeep {
        /// The entry's path.
        path: String,
        /// The limit.
        limit: usize,
    },
    /// A path longer than [`Limits::max_path_len`].
    #[error("layer entry {path:?} has a path longer than {limit} bytes")]
    PathTooLong {
        /// The entry's path, shortened.
        path: String,
        /// The limit.
        limit: usize,
    },
    /// One entry's headers (long-name or PAX records, padding) are larger
    /// than [`Limits::max_header_bytes`].
    #[error("layer has an entry whose tar headers exceed {limit} bytes")]
    HeaderTooLarge {
        /// The limit.
        limit: u64,
    },
    /// The decompressed stream is longer than [`Limits::max_stream_bytes`].
    #[error("layer decompresses to more than {limit} bytes")]
    StreamTooLarge {
        /// The limit.
        limit: u64,
    },
    /// The destination directory is not empty.
    #[error("unpacking into {path}: directory is not empty")]
    DestNotEmpty {
        /// The destination.
        path: PathBuf,
    },
    /// I/O failure in the staging dir.
    #[error("unpacking into {path}: {source}")]
    Io {
        /// The path being written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Unpacks a gzip-compressed tar from `reader` into `dest`, an existing empty
/// directory.
///
/// `dest` itself is set to mode 0755 and becomes the skill's root: entry paths
/// are relative to it. Its last component must not be a symbolic link. On
/// error, `dest` may hold part of the archive and should be removed by the
/// caller; nothing is ever written outside it.
pub fn unpack_tar_gz(
    reader: impl Read,
    dest: &Path,
    limits: &Limits,
) -> Result<Unpacked, UnpackError> {
    unpack_tar_gz_with(reader, dest, limits, SyncMode::EachFile)
}

/// Whether [`unpack_tar_gz_with`] makes what it wrote durable itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// fsync every file as it is written and every directory at the end.
    EachFile,
    /// Nothing is synced: the caller makes the tree durable (with one
    /// `syncfs` of its filesystem, say) before it is relied upon.
    Caller,
}

/// [`unpack_tar_gz`], syncing as `sync` says.
pub fn unpack_tar_gz_with(
    reader: impl Read,
    dest: &Path,
    limits: &Limits,
    sync: SyncMode,
) -> Result<Unpacked, UnpackError> {
    let mut reader = reader;
    let mut magic = [0u8; 2];
    let got =
        read_prefix(&mut reader, &mut magic).map_err(|source| UnpackError::Corrupt { source })?;
    if got < magic.len() || magic != [0x1f, 0x8b] {
        return Err(UnpackError::NotGzip);
    }
    // Several gzip members are read as one stream, as Go's readers (and so
    // most registries' clients) do.
    let gz = MultiGzDecoder::new(Cursor::new(magic).chain(reader));
    let meter = Rc::new(RefCell::new(Meter::new(limits)));
    let metered = Metered {
        inner: gz,
        meter: Rc::clone(&meter),
    };

    let mut tree = Tree::open(dest, sync, limits.max_entries)?;
    let mut archive = tar::Archive::new(metered);
    let mut entries_seen = 0u64;
    {
        let mut entries = archive
            .entries()
            .map_err(|source| UnpackError::Corrupt { source })?;
        loop {
            meter.borrow_mut().header_window(true);
            let next = entries.next();
            meter.borrow_mut().header_window(false);
            let entry = match next {
                None => break,
                Some(Ok(entry)) => entry,
                Some(Err(e)) => return Err(meter.borrow().read_error(e)),
            };
            entries_seen += 1;
            if entries_seen > limits.max_entries {
                return Err(UnpackError::TooManyEntries {
                    limit: limits.max_entries,
                });
            }
            unpack_entry(entry, &mut tree, limits, &meter)?;
        }
    }
    // Read past the end-of-archive marker to the end of the stream, so the
    // digest covers all of it and the gzip trailer (CRC, size) is checked.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| meter.borrow().read_error(e))?;

    if sync == SyncMode::EachFile {
        tree.sync_dirs()?;
    }
    let hasher = std::mem::take(&mut meter.borrow_mut().hasher);
    Ok(Unpacked {
        files: tree.files,
        dirs: tree.dirs.len() as u64,
        bytes: tree.bytes,
        tar_digest: Digest::from_hasher(hasher),
    })
}

/// What an entry will become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
}

fn unpack_entry<R: Read>(
    mut entry: tar::Entry<'_, R>,
    tree: &mut Tree,
    limits: &Limits,
    meter: &Rc<RefCell<Meter>>,
) -> Result<(), UnpackError> {
    let raw_path = entry.path_bytes().into_owned();
    let shown = shown_path(&raw_path);
    let header = entry.header();
    let type_byte = header.as_old().linkflag[0];
    let kind = match header.entry_type() {
        // Old-style archives mark directories with a regular type and a
        // trailing slash, as Go's archive/tar reads them.
        EntryType::Regular if type_byte == 0 && raw_path.ends_with(b"/") => Kind::Dir,
        EntryType::Regular | EntryType::Continuous => Kind::File,
        EntryType::Directory => Kind::Dir,
        // Metadata for the whole archive; nothing to create.
        EntryType::XGlobalHeader => return Ok(()),
        EntryType::Symlink | EntryType::Link => {
            let target = entry
                .link_name_bytes()
                .map(|b| shown_path(&b))
                .unwrap_or_default();
            return Err(UnpackError::Link {
                path: shown,
                target,
            });
        }
        other => {
            return Err(UnpackError::UnsupportedType {
                path: shown,
                kind: describe_type(other, type_byte),
            })
        }
    };

    if raw_path.len() > limits.max_path_len {
        return Err(UnpackError::PathTooLong {
            path: shown,
            limit: limits.max_path_len,
        });
    }
    let components = match plain_components(&raw_path, kind) {
        Ok(c) => c,
        Err(problem) => {
            return Err(UnpackError::UnsafePath {
                path: shown,
                problem,
            })
        }
    };
    if components.len() > limits.max_depth {
        return Err(UnpackError::TooDeep {
            path: shown,
            limit: limits.max_depth,
        });
    }
    if components.is_empty() {
        // `./`: the skill directory itself, which already exists.
        return Ok(());
    }

    match kind {
        Kind::Dir => tree.create_dir(&components, &shown),
        Kind::File => {
            let size = entry.size();
            let total = tree.bytes.checked_add(size);
            if total.is_none_or(|t| t > limits.max_bytes) {
                return Err(UnpackError::TooLarge {
                    path: shown,
                    limit: limits.max_bytes,
                });
            }
            let mode = entry
                .header()
                .mode()
                .map_err(|source| UnpackError::Corrupt { source })?;
            let exec = mode & 0o111 != 0;
            tree.create_file(&components, &shown, exec, size, &mut entry, meter)
        }
    }
}

/// Splits an entry path into plain names, skipping `.` components.
fn plain_components(raw: &[u8], kind: Kind) -> Result<Vec<String>, PathProblem> {
    let path = std::str::from_utf8(raw).map_err(|_| PathProblem::NotUtf8)?;
    if path.contains('\0') {
        return Err(PathProblem::Nul);
    }
    if path.contains('\\') {
        return Err(PathProblem::Backslash);
    }
    if path.starts_with('/') {
        return Err(PathProblem::Absolute);
    }
    let b = path.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        return Err(PathProblem::WindowsPrefix);
    }
    let path = match kind {
        Kind::Dir => path.strip_suffix('/').unwrap_or(path),
        Kind::File => path,
    };
    let mut out = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" => return Err(PathProblem::EmptyComponent),
            "." => {}
            ".." => return Err(PathProblem::ParentDir),
            name => out.push(name.to_string()),
        }
    }
    if out.is_empty() && kind == Kind::File {
        return Err(PathProblem::NoName);
    }
    Ok(out)
}

fn describe_type(t: EntryType, byte: u8) -> String {
    match t {
        EntryType::Char => "character device".into(),
        EntryType::Block => "block device".into(),
        EntryType::Fifo => "fifo".into(),
        EntryType::GNUSparse => "sparse file".into(),
        EntryType::XHeader | EntryType::GNULongName | EntryType::GNULongLink => {
            "stray extended header".into()
        }
        _ if byte.is_ascii_graphic() => format!("entry of unknown type '{}'", byte as char),
        _ => format!("entry of unknown type 0x{byte:02x}"),
    }
}

/// An entry path for messages: lossily decoded, shortened past 200 chars.
fn shown_path(raw: &[u8]) -> String {
    const MAX: usize = 200;
    let s = String::from_utf8_lossy(raw);
    if s.chars().count() <= MAX {
        s.into_owned()
    } else {
        let mut short: String = s.chars().take(MAX).collect();
        short.push('…');
        short
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_prefix(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Which cap a read tripped.
#[derive(Debug, Clone, Copy)]
enum Trip {
    Stream(u64),
    Header(u64),
}

/// Counts and hashes the decompressed stream, enforcing the stream cap and,
/// while the archive reader is between entries, the header cap.
struct Meter {
    hasher: Sha256,
    total: u64,
    total_limit: u64,
    window: u64,
    window_limit: Option<u64>,
    header_limit: u64,
    tripped: Option<Trip>,
}

impl Meter {
    fn new(limits: &Limits) -> Self {
        Meter {
            hasher: Sha256::new(),
            total: 0,
            total_limit: limits.max_stream_bytes(),
            window: 0,
            window_limit: None,
            header_limit: limits.max_header_bytes(),
            tripped: None,
        }
    }

    /// Starts (or ends) a stretch of reading that is all headers.
    fn header_window(&mut self, on: bool) {
        self.window = 0;
        self.window_limit = on.then_some(self.header_limit);
    }

    /// How many more bytes may be read before a cap is crossed.
    fn allowance(&self) -> u64 {
        let total = self.total_limit.saturating_sub(self.total);
        match self.window_limit {
            Some(w) => total.min(w.saturating_sub(self.window)),
            None => total,
        }
    }

    fn record(&mut self, bytes: &[u8]) -> io::Result<()> {
        let n = bytes.len() as u64;
        self.total += n;
        self.window += n;
        if self.total > self.total_limit {
            self.tripped = Some(Trip::Stream(self.total_limit));
        } else if self.window_limit.is_some_and(|w| self.window > w) {
            self.tripped = Some(Trip::Header(self.header_limit));
        } else {
            self.hasher.update(bytes);
            return Ok(());
        }
        Err(io::Error::other("layer exceeds a size limit"))
    }

    /// The error to report for a failed read of the stream.
    fn read_error(&self, source: io::Error) -> UnpackError {
        match self.tripped {
            Some(Trip::Stream(limit)) => UnpackError::StreamTooLarge { limit },
            Some(Trip::Header(limit)) => UnpackError::HeaderTooLarge { limit },
            None => UnpackError::Corrupt { source },
        }
    }
}

/// A reader feeding everything it reads through a [`Meter`].
struct Metered<R> {
    inner: R,
    meter: Rc<RefCell<Meter>>,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.meter.borrow().tripped.is_some() {
            return Err(io::Error::other("layer exceeds a size limit"));
        }
        // Read at most one byte past the allowance: enough to notice the
        // crossing without pulling in more.
        let allowance = self.meter.borrow().allowance().saturating_add(1);
        let len = buf
            .len()
            .min(usize::try_from(allowance).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..len])?;
        self.meter.borrow_mut().record(&buf[..n])?;
        Ok(n)
    }
}

/// What the archive has put at a path so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    File,
    /// A directory; `listed` once the archive has had an entry for it.
    Dir {
        listed: bool,
    },
}

/// The tree being built under the destination.
struct Tree {
    dest: PathBuf,
    root: OwnedFd,
    nodes: HashMap<String, Node>,
    /// Directories created, in creation order (parents before children).
    dirs: Vec<String>,
    files: u64,
    /// At most this many files and directories are created (the skill's
    /// root, which exists already, not counted).
    max_created: u64,
    bytes: u64,
    /// The directory the last entry went into, kept open for the next.
    last_parent: Option<(String, OwnedFd)>,
    sync: SyncMode,
}

const DIR_MODE: u32 = 0o755;
const FILE_MODE: u32 = 0o644;
const EXEC_MODE: u32 = 0o755;

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

fn mode(bits: u32) -> Mode {
    Mode::from_bits_truncate(bits as _)
}

impl Tree {
    fn open(dest: &Path, sync: SyncMode, max_created: u64) -> Result<Tree, UnpackError> {
        let io_err = |source: io::Error| UnpackError::Io {
            path: dest.to_path_buf(),
            source,
        };
        let root = rustix::fs::openat(rustix::fs::CWD, dest, dir_flags(), Mode::empty())
            .map_err(|e| io_err(e.into()))?;
        if std::fs::read_dir(dest).map_err(io_err)?.next().is_some() {
            return Err(UnpackError::DestNotEmpty {
                path: dest.to_path_buf(),
            });
        }
        rustix::fs::fchmod(&root, mode(DIR_MODE)).map_err(|e| io_err(e.into()))?;
        Ok(Tree {
            dest: dest.to_path_buf(),
            root,
            nodes: HashMap::new(),
            dirs: Vec::new(),
            files: 0,
            max_created,
            bytes: 0,
            last_parent: None,
            sync,
        })
    }

    /// Refuses to create one more file or directory past the cap. Called
    /// before each creation, so a layer of a few entries with deep paths
    /// cannot create directories by the thousand: every directory counts
    /// once, when it is created, whether listed or implied by a path.
    fn reserve(&self) -> Result<(), UnpackError> {
        let created = self.files.saturating_add(self.dirs.len() as u64);
        if created >= self.max_created {
            return Err(UnpackError::TooManyEntries {
                limit: self.max_created,
            });
        }
        Ok(())
    }

    fn io_err(&self, rel: &str) -> impl FnOnce(io::Error) -> UnpackError {
        let path = self.dest.join(rel);
        move |source| UnpackError::Io { path, source }
    }

    /// Creates `name` as a directory in `parent` with mode 0755 and returns
    /// it open.
    fn make_dir(
        &self,
        parent_fd: BorrowedFd<'_>,
        name: &str,
        rel: &str,
        shown: &str,
    ) -> Result<OwnedFd, UnpackError> {
        match rustix::fs::mkdirat(parent_fd, name, mode(DIR_MODE)) {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST) => {
                return Err(UnpackError::Duplicate {
                    path: shown.to_string(),
                })
            }
            Err(e) => return Err(self.io_err(rel)(e.into())),
        }
        let fd = rustix::fs::openat(parent_fd, name, dir_flags(), Mode::empty())
            .map_err(|e| self.io_err(rel)(e.into()))?;
        // mkdir's mode is filtered by the umask; set it exactly.
        rustix::fs::fchmod(&fd, mode(DIR_MODE)).map_err(|e| self.io_err(rel)(e.into()))?;
        Ok(fd)
    }

    /// Makes `last_parent` the open directory that holds `components`' last
    /// name, creating missing ancestors (mode 0755) on the way.
    fn parent(&mut self, components: &[String], shown: &str) -> Result<(), UnpackError> {
        let ancestors = &components[..components.len() - 1];
        let parent_rel = ancestors.join("/");
        if self
            .last_parent
            .as_ref()
            .is_some_and(|(rel, _)| *rel == parent_rel)
        {
            return Ok(());
        }
        self.last_parent = None;
        let mut cur: Option<OwnedFd> = None;
        let mut rel = String::new();
        for name in ancestors {
            if !rel.is_empty() {
                rel.push('/');
            }
            rel.push_str(name);
            let parent = cur.as_ref().map_or(self.root.as_fd(), |fd| fd.as_fd());
            let next = match self.nodes.get(&rel) {
                Some(Node::File) => {
                    return Err(UnpackError::NotADirectory {
                        path: shown.to_string(),
                        file: rel,
                    })
                }
                Some(Node::Dir { .. }) => {
                    rustix::fs::openat(parent, name.as_str(), dir_flags(), Mode::empty())
                        .map_err(|e| self.io_err(&rel)(e.into()))?
                }
                None => {
                    self.reserve()?;
                    let fd = self.make_dir(parent, name, &rel, shown)?;
                    self.nodes.insert(rel.clone(), Node::Dir { listed: false });
                    self.dirs.push(rel.clone());
                    fd
                }
            };
            cur = Some(next);
        }
        let fd = match cur {
            Some(fd) => fd,
            None => self.root.try_clone().map_err(self.io_err(""))?,
        };
        self.last_parent = Some((parent_rel, fd));
        Ok(())
    }

    fn create_dir(&mut self, components: &[String], shown: &str) -> Result<(), UnpackError> {
        let rel = components.join("/");
        match self.nodes.get(&rel) {
            None => {}
            Some(Node::Dir { listed: false }) => {
                self.nodes.insert(rel, Node::Dir { listed: true });
                return Ok(());
            }
            Some(_) => {
                return Err(UnpackError::Duplicate {
                    path: shown.to_string(),
                })
            }
        }
        self.parent(components, shown)?;
        let Some((_, parent)) = &self.last_parent else {
            return Err(self.io_err(&rel)(io::Error::other(
                "parent directory not open",
            )));
        };
        let name = &components[components.len() - 1];
        self.reserve()?;
        self.make_dir(parent.as_fd(), name, &rel, shown)?;
        self.nodes.insert(rel.clone(), Node::Dir { listed: true });
        self.dirs.push(rel);
        Ok(())
    }

    fn create_file(
        &mut self,
        components: &[String],
        shown: &str,
        exec: bool,
        size: u64,
        data: &mut impl Read,
        meter: &Rc<RefCell<Meter>>,
    ) -> Result<(), UnpackError> {
        let rel = components.join("/");
        if self.nodes.contains_key(&rel) {
            return Err(UnpackError::Duplicate {
                path: shown.to_string(),
            });
        }
        self.parent(components, shown)?;
        let Some((_, parent)) = &self.last_parent else {
            return Err(self.io_err(&rel)(io::Error::other(
                "parent directory not open",
            )));
        };
        let name = components[components.len() - 1].as_str();
        self.reserve()?;
        let file_mode = if exec { EXEC_MODE } else { FILE_MODE };
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(parent, name, flags, mode(file_mode)) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::EXIST) => {
                return Err(UnpackError::Duplicate {
                    path: shown.to_string(),
                })
            }
            Err(e) => return Err(self.io_err(&rel)(e.into())),
        };
        self.nodes.insert(rel.clone(), Node::File);
        // The create mode is filtered by the umask; set it exactly.
        rustix::fs::fchmod(&fd, mode(file_mode)).map_err(|e| self.io_err(&rel)(e.into()))?;
        let mut file = File::from(fd);

        let mut buf = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        while written < size {
            let want = usize::try_from(size - written).map_or(buf.len(), |r| r.min(buf.len()));
            let n = match data.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(UnpackError::Truncated {
                        path: shown.to_string(),
                    })
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(meter.borrow().read_error(e)),
            };
            file.write_all(&buf[..n]).map_err(self.io_err(&rel))?;
            written += n as u64;
        }
        if self.sync == SyncMode::EachFile {
            file.sync_all().map_err(self.io_err(&rel))?;
        }
        self.files += 1;
        self.bytes += size;
        Ok(())
    }

    /// fsyncs every directory created, deepest first, then the root.
    fn sync_dirs(&mut self) -> Result<(), UnpackError> {
        self.last_parent = None;
        let mut dirs: Vec<&String> = self.dirs.iter().collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
        for rel in dirs {
            let fd = rustix::fs::openat(&self.root, rel.as_str(), dir_flags(), Mode::empty())
                .map_err(|e| self.io_err(rel)(e.into()))?;
            rustix::fs::fsync(&fd).map_err(|e| self.io_err(rel)(e.into()))?;
        }
        rustix::fs::fsync(&self.root).map_err(|e| self.io_err("")(e.into()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
