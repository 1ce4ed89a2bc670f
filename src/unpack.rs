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
//!   is written), entry count, path depth and length, and the total size of
//!   the decompressed stream, so a huge header or endless padding cannot
//!   exhaust memory or time.
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
    /// lists as entries of their own).
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
    /// More entries than [`Limits::max_entries`].
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

    let mut tree = Tree::open(dest, sync)?;
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
    fn open(dest: &Path, sync: SyncMode) -> Result<Tree, UnpackError> {
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
            bytes: 0,
            last_parent: None,
            sync,
        })
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
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::os::unix::fs::PermissionsExt;

    /// Builds tar streams header by header, so tests can write what
    /// `tar::Builder` refuses to (`..`, links, devices, raw type bytes).
    #[derive(Default)]
    struct Tar(Vec<u8>);

    impl Tar {
        fn new() -> Self {
            Tar::default()
        }

        fn entry(
            &mut self,
            mut h: tar::Header,
            name: &[u8],
            typ: u8,
            mode: u32,
            data: &[u8],
            link: &[u8],
        ) -> &mut Self {
            assert!(name.len() <= 100 && link.len() <= 100);
            h.set_size(data.len() as u64);
            h.set_mode(mode);
            h.set_mtime(1_700_000_000);
            h.set_uid(1234);
            h.set_gid(1234);
            let old = h.as_old_mut();
            old.name = [0; 100];
            old.name[..name.len()].copy_from_slice(name);
            old.linkname = [0; 100];
            old.linkname[..link.len()].copy_from_slice(link);
            old.linkflag = [typ];
            h.set_cksum();
            self.0.extend_from_slice(h.as_bytes());
            self.0.extend_from_slice(data);
            let pad = (512 - data.len() % 512) % 512;
            self.0.extend(std::iter::repeat_n(0u8, pad));
            self
        }

        fn raw(&mut self, name: &[u8], typ: u8, mode: u32, data: &[u8]) -> &mut Self {
            self.entry(tar::Header::new_ustar(), name, typ, mode, data, b"")
        }

        fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
            self.raw(name.as_bytes(), b'0', 0o644, data)
        }

        fn file_mode(&mut self, name: &str, mode: u32, data: &[u8]) -> &mut Self {
            self.raw(name.as_bytes(), b'0', mode, data)
        }

        fn dir(&mut self, name: &str) -> &mut Self {
            self.raw(name.as_bytes(), b'5', 0o755, b"")
        }

        fn link(&mut self, name: &str, typ: u8, target: &str) -> &mut Self {
            self.entry(
                tar::Header::new_ustar(),
                name.as_bytes(),
                typ,
                0o777,
                b"",
                target.as_bytes(),
            )
        }

        /// A GNU long-name record for the next entry.
        fn gnu_long_name(&mut self, name: &[u8]) -> &mut Self {
            let mut data = name.to_vec();
            data.push(0);
            self.entry(
                tar::Header::new_gnu(),
                b"././@LongLink",
                b'L',
                0o644,
                &data,
                b"",
            )
        }

        /// A PAX extended header for the next entry.
        fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
            let data = pax_records(records);
            self.raw(b"PaxHeaders/x", b'x', 0o644, &data)
        }

        fn end(&mut self) -> Vec<u8> {
            let mut out = self.0.clone();
            out.extend_from_slice(&[0; 1024]);
            out
        }
    }

    fn pax_records(records: &[(&str, &[u8])]) -> Vec<u8> {
        let mut data = Vec::new();
        for (k, v) in records {
            // "<len> <key>=<value>\n", where len counts itself.
            let body = k.len() + v.len() + 3;
            let mut len = body + 1;
            while len.to_string().len() + body != len {
                len += 1;
            }
            data.extend_from_slice(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        data
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    /// A destination two levels below a scratch directory, so escapes of one
    /// or two levels would be visible.
    struct Scratch {
        top: tempfile::TempDir,
        dest: PathBuf,
    }

    impl Scratch {
        fn new() -> Self {
            let top = tempfile::tempdir().unwrap();
            let dest = top.path().join("outer").join("dest");
            std::fs::create_dir_all(&dest).unwrap();
            Scratch { top, dest }
        }

        fn unpack(&self, gz_bytes: &[u8], limits: &Limits) -> Result<Unpacked, UnpackError> {
            unpack_tar_gz(gz_bytes, &self.dest, limits)
        }

        /// Nothing exists beside `dest` or beside its parent.
        fn assert_contained(&self) {
            assert_eq!(names(self.top.path()), ["outer"]);
            assert_eq!(names(&self.top.path().join("outer")), ["dest"]);
        }

        fn listing(&self) -> Vec<String> {
            let mut out = Vec::new();
            walk(&self.dest, "", &mut out);
            out.sort();
            out
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
        for name in names(dir) {
            let p = dir.join(&name);
            let rel = format!("{prefix}{name}");
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                out.push(format!("{rel}/"));
                walk(&p, &format!("{rel}/"), out);
            } else {
                assert!(meta.is_file(), "{rel} is neither file nor dir");
                out.push(rel);
            }
        }
    }

    fn mode_of(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    /// Unpacks `tar` (gzipped) with `limits`, expects an error, and checks
    /// that nothing was written outside the destination.
    fn rejected_with(tar: &[u8], limits: &Limits) -> UnpackError {
        let s = Scratch::new();
        let err = s
            .unpack(&gz(tar), limits)
            .expect_err("archive should be rejected");
        s.assert_contained();
        err
    }

    fn rejected(tar: &[u8]) -> UnpackError {
        rejected_with(tar, &Limits::default())
    }

    fn unsafe_path(tar: &[u8]) -> (String, PathProblem) {
        match rejected(tar) {
            UnpackError::UnsafePath { path, problem } => (path, problem),
            other => panic!("expected UnsafePath, got {other:?}"),
        }
    }

    #[test]
    fn unpacks_a_skill_with_nested_and_implicit_dirs() {
        let tar = Tar::new()
            .dir("./")
            .file("./SKILL.md", b"---\nname: hello\n---\nHi\n")
            .file("skill.yaml", b"kind: SkillCard\n")
            .dir("docs/")
            .file("docs/x.md", b"x")
            .raw(b"docs/sub/", b'5', 0o700, b"")
            .file("a/b/c.txt", b"deep")
            .file_mode("./scripts/run.sh", 0o700, b"#!/bin/sh\n")
            .file_mode("private.txt", 0o600, b"p")
            .file_mode("setuid", 0o4755, b"s")
            .end();
        let s = Scratch::new();
        let got = s.unpack(&gz(&tar), &Limits::default()).unwrap();
        s.assert_contained();
        assert_eq!(
            s.listing(),
            [
                "SKILL.md",
                "a/",
                "a/b/",
                "a/b/c.txt",
                "docs/",
                "docs/sub/",
                "docs/x.md",
                "private.txt",
                "scripts/",
                "scripts/run.sh",
                "setuid",
                "skill.yaml",
            ]
        );
        assert_eq!(
            std::fs::read(s.dest.join("SKILL.md")).unwrap(),
            b"---\nname: hello\n---\nHi\n"
        );
        assert_eq!(std::fs::read(s.dest.join("a/b/c.txt")).unwrap(), b"deep");
        assert_eq!(got.files, 7);
        assert_eq!(got.dirs, 5);
        assert_eq!(got.bytes, 23 + 16 + 1 + 4 + 10 + 1 + 1);
        assert_eq!(got.tar_digest, Digest::of(&tar));

        for (path, want) in [
            ("", 0o755),
            ("SKILL.md", 0o644),
            ("docs", 0o755),
            ("docs/sub", 0o755),
            ("a", 0o755),
            ("a/b", 0o755),
            ("scripts", 0o755),
            ("scripts/run.sh", 0o755),
            ("private.txt", 0o644),
            ("setuid", 0o755),
        ] {
            assert_eq!(mode_of(&s.dest.join(path)), want, "mode of {path:?}");
        }
    }

    #[test]
    fn modes_are_normalised_whatever_the_destination_mode() {
        let tar = Tar::new()
            .file_mode("x", 0o010, b"")
            .file_mode("y", 0o666, b"")
            .raw(b"d/", b'5', 0o000, b"")
            .end();
        let s = Scratch::new();
        std::fs::set_permissions(&s.dest, std::fs::Permissions::from_mode(0o700)).unwrap();
        s.unpack(&gz(&tar), &Limits::default()).unwrap();
        assert_eq!(mode_of(&s.dest), 0o755);
        assert_eq!(mode_of(&s.dest.join("x")), 0o755);
        assert_eq!(mode_of(&s.dest.join("y")), 0o644);
        assert_eq!(mode_of(&s.dest.join("d")), 0o755);
    }

    #[test]
    fn explicit_dir_after_its_files_is_fine() {
        let tar = Tar::new().file("a/b.txt", b"b").dir("a/").dir("a/c").end();
        let s = Scratch::new();
        let got = s.unpack(&gz(&tar), &Limits::default()).unwrap();
        assert_eq!(s.listing(), ["a/", "a/b.txt", "a/c/"]);
        assert_eq!((got.files, got.dirs), (1, 2));
    }

    #[test]
    fn tar_digest_covers_trailing_padding_and_gzip_members() {
        let mut tar = Tar::new().file("SKILL.md", b"hello").end();
        // GNU tar pads to a 10 KiB record.
        tar.resize(10240, 0);
        let s = Scratch::new();
        let got = s.unpack(&gz(&tar), &Limits::default()).unwrap();
        assert_eq!(got.tar_digest, Digest::of(&tar));

        // The same stream split over two gzip members.
        let mut two = gz(&tar[..700]);
        two.extend(gz(&tar[700..]));
        let s = Scratch::new();
        let got = s.unpack(&two, &Limits::default()).unwrap();
        assert_eq!(got.tar_digest, Digest::of(&tar));
        assert_eq!(std::fs::read(s.dest.join("SKILL.md")).unwrap(), b"hello");
    }

    #[test]
    fn tar_builder_archives_round_trip() {
        // What a real writer produces, long names included.
        let long = format!("docs/{}/note.md", "d".repeat(150));
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        b.append_data(&mut h, "SKILL.md", &b"body"[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        b.append_data(&mut h, &long, &b"ok"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let s = Scratch::new();
        let got = s.unpack(&gz(&tar), &Limits::default()).unwrap();
        assert_eq!(std::fs::read(s.dest.join(&long)).unwrap(), b"ok");
        assert_eq!((got.files, got.dirs), (2, 2));
        assert_eq!(got.tar_digest, Digest::of(&tar));
    }

    #[test]
    fn pax_path_and_size_are_honoured() {
        let long = format!("{}/file.md", "p".repeat(120));
        let tar = Tar::new()
            .pax(&[
                ("path", long.as_bytes()),
                ("mtime", b"1.5"),
                ("SCHILY.xattr.user.x", b"y"),
            ])
            .file("ignored-name", b"pax!")
            .end();
        let s = Scratch::new();
        s.unpack(&gz(&tar), &Limits::default()).unwrap();
        assert_eq!(s.listing(), [format!("{}/", "p".repeat(120)), long.clone()]);
        assert_eq!(std::fs::read(s.dest.join(&long)).unwrap(), b"pax!");
    }

    #[test]
    fn global_pax_headers_are_ignored() {
        let data = pax_records(&[("comment", b"0123abcd")]);
        let tar = Tar::new()
            .raw(b"pax_global_header", b'g', 0o644, &data)
            .file("SKILL.md", b"x")
            .end();
        let s = Scratch::new();
        let got = s.unpack(&gz(&tar), &Limits::default()).unwrap();
        assert_eq!(s.listing(), ["SKILL.md"]);
        assert_eq!(got.files, 1);
    }

    #[test]
    fn old_style_and_contiguous_entries_are_files() {
        let tar = Tar::new()
            .raw(b"old.txt", 0, 0o644, b"old")
            .raw(b"olddir/", 0, 0o755, b"")
            .raw(b"cont.bin", b'7', 0o644, b"c")
            .end();
        let s = Scratch::new();
        s.unpack(&gz(&tar), &Limits::default()).unwrap();
        assert_eq!(s.listing(), ["cont.bin", "old.txt", "olddir/"]);
    }

    #[test]
    fn rejects_parent_dir_components() {
        for name in [
            "../x",
            "a/../../x",
            "a/..",
            "./../x",
            "..",
            "../../../../../../tmp/x",
        ] {
            let tar = Tar::new().file("ok.md", b"fine").file(name, b"evil").end();
            let (path, problem) = unsafe_path(&tar);
            assert_eq!((path.as_str(), problem), (name, PathProblem::ParentDir));
        }
        let dir = Tar::new().dir("../d/").end();
        assert_eq!(unsafe_path(&dir).1, PathProblem::ParentDir);
    }

    #[test]
    fn escape_message_is_readable() {
        let err = rejected(&Tar::new().file("../x", b"evil").end());
        assert_eq!(
            err.to_string(),
            "layer entry \"../x\" escapes the skill directory"
        );
    }

    #[test]
    fn rejects_absolute_windows_empty_backslash_nul_and_non_utf8_paths() {
        let cases: [(&[u8], PathProblem); 11] = [
            (b"/etc/x", PathProblem::Absolute),
            (b"//x", PathProblem::Absolute),
            (b"C:/x", PathProblem::WindowsPrefix),
            (b"c:x", PathProblem::WindowsPrefix),
            (b"C:\\x", PathProblem::Backslash),
            (b"a\\..\\..\\x", PathProblem::Backslash),
            (b"a//b", PathProblem::EmptyComponent),
            (b"a/", PathProblem::EmptyComponent),
            (b".", PathProblem::NoName),
            (b"a\xffb", PathProblem::NotUtf8),
            (b"\xc0\xae\xc0\xae/x", PathProblem::NotUtf8),
        ];
        for (name, want) in cases {
            let tar = Tar::new().raw(name, b'0', 0o644, b"evil").end();
            let (_, problem) = unsafe_path(&tar);
            assert_eq!(problem, want, "{:?}", String::from_utf8_lossy(name));
        }
        // A NUL can only arrive through a PAX path.
        let tar = Tar::new()
            .pax(&[("path", b"a\0b")])
            .file("plain", b"x")
            .end();
        assert_eq!(unsafe_path(&tar).1, PathProblem::Nul);
        // An empty path.
        let tar = Tar::new().raw(b"", b'0', 0o644, b"x").end();
        assert_eq!(unsafe_path(&tar).1, PathProblem::EmptyComponent);
    }

    #[test]
    fn rejects_hostile_long_names() {
        let evil = format!("../{}", "e".repeat(200));
        let tar = Tar::new()
            .gnu_long_name(evil.as_bytes())
            .file("harmless", b"x")
            .end();
        assert_eq!(unsafe_path(&tar).1, PathProblem::ParentDir);

        let tar = Tar::new()
            .pax(&[("path", b"../evil")])
            .file("harmless", b"x")
            .end();
        let (path, problem) = unsafe_path(&tar);
        assert_eq!(
            (path.as_str(), problem),
            ("../evil", PathProblem::ParentDir)
        );

        let tar = Tar::new()
            .pax(&[("path", b"/abs/evil")])
            .file("harmless", b"x")
            .end();
        assert_eq!(unsafe_path(&tar).1, PathProblem::Absolute);
    }

    #[test]
    fn rejects_links() {
        let tar = Tar::new()
            .file("SKILL.md", b"x")
            .link("link", b'2', "/etc/passwd")
            .end();
        let err = rejected(&tar);
        assert!(
            matches!(&err, UnpackError::Link { path, target } if path == "link" && target == "/etc/passwd"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "layer entry \"link\" is a link to \"/etc/passwd\"; \
             skills may contain only regular files and directories"
        );

        // A link followed by a write through it.
        let tar = Tar::new()
            .link("dir", b'2', "..")
            .file("dir/x", b"evil")
            .end();
        assert!(matches!(rejected(&tar), UnpackError::Link { .. }));

        let tar = Tar::new()
            .file("SKILL.md", b"x")
            .link("hard", b'1', "SKILL.md")
            .end();
        assert!(matches!(rejected(&tar), UnpackError::Link { path, .. } if path == "hard"));

        let tar = Tar::new().link("hard", b'1', "/etc/shadow").end();
        assert!(matches!(rejected(&tar), UnpackError::Link { .. }));
    }

    #[test]
    fn rejects_devices_fifos_sparse_and_unknown_types() {
        for (typ, kind) in [
            (b'3', "character device"),
            (b'4', "block device"),
            (b'6', "fifo"),
            (b'Z', "entry of unknown type 'Z'"),
            (b'V', "entry of unknown type 'V'"),
            (0x01, "entry of unknown type 0x01"),
        ] {
            let tar = Tar::new().raw(b"thing", typ, 0o644, b"").end();
            match rejected(&tar) {
                UnpackError::UnsupportedType { path, kind: k } => {
                    assert_eq!((path.as_str(), k.as_str()), ("thing", kind));
                }
                other => panic!("type {typ}: unexpected {other:?}"),
            }
        }
        let mut gnu = tar::Header::new_gnu();
        if let Some(g) = gnu.as_gnu_mut() {
            g.set_real_size(1 << 20);
            g.sparse[0].set_offset((1 << 20) - 4);
            g.sparse[0].set_length(4);
        }
        let tar = Tar::new()
            .entry(gnu, b"sparse", b'S', 0o644, b"data", b"")
            .end();
        let err = rejected(&tar);
        assert!(
            matches!(&err, UnpackError::UnsupportedType { kind, .. } if kind == "sparse file"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "layer entry \"sparse\" is a sparse file; \
             skills may contain only regular files and directories"
        );
        // An extended header in a pre-POSIX header is not understood by the
        // reader and must not pass as a file.
        let tar = Tar::new()
            .entry(
                tar::Header::new_old(),
                b"x",
                b'x',
                0o644,
                b"11 path=a\n",
                b"",
            )
            .end();
        assert!(matches!(
            rejected(&tar),
            UnpackError::UnsupportedType { kind, .. } if kind == "stray extended header"
        ));
    }

    #[test]
    fn rejects_duplicates() {
        let cases: [Vec<u8>; 6] = [
            Tar::new().file("a", b"1").file("a", b"2").end(),
            Tar::new().file("a", b"1").file("./a", b"2").end(),
            Tar::new().dir("d/").dir("d").end(),
            Tar::new().file("x", b"1").dir("x/").end(),
            Tar::new().dir("x/").file("x", b"1").end(),
            Tar::new().file("d/f", b"1").file("d", b"2").end(),
        ];
        for tar in cases {
            let err = rejected(&tar);
            assert!(matches!(err, UnpackError::Duplicate { .. }), "{err:?}");
        }
        let err = rejected(&Tar::new().file("a", b"1").file("a", b"2").end());
        assert_eq!(err.to_string(), "layer has more than one entry for \"a\"");
    }

    #[test]
    fn rejects_entries_below_a_file() {
        let err = rejected(&Tar::new().file("f", b"1").file("f/g", b"2").end());
        match &err {
            UnpackError::NotADirectory { path, file } => {
                assert_eq!((path.as_str(), file.as_str()), ("f/g", "f"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let err = rejected(&Tar::new().file("a/f", b"1").dir("a/f/d/").end());
        assert!(matches!(err, UnpackError::NotADirectory { .. }), "{err:?}");
    }

    #[test]
    fn caps_total_file_bytes_before_writing() {
        let limits = Limits {
            max_bytes: 10,
            ..Limits::default()
        };
        let tar = Tar::new().file("a", b"123456").file("b", b"123456").end();
        let s = Scratch::new();
        let err = s.unpack(&gz(&tar), &limits).unwrap_err();
        s.assert_contained();
        assert!(
            matches!(&err, UnpackError::TooLarge { path, limit: 10 } if path == "b"),
            "{err:?}"
        );
        // The entry that crossed the limit was never created.
        assert_eq!(s.listing(), ["a"]);
        // Exactly at the limit is fine.
        let tar = Tar::new().file("a", b"12345").file("b", b"12345").end();
        let s = Scratch::new();
        assert_eq!(s.unpack(&gz(&tar), &limits).unwrap().bytes, 10);
    }

    #[test]
    fn size_is_checked_from_the_header_not_the_data() {
        // A header claiming a huge size is refused before any data is read.
        let mut h = tar::Header::new_ustar();
        h.set_path("big").unwrap();
        h.set_size(1 << 40);
        h.set_mode(0o644);
        h.set_cksum();
        let mut tar = h.as_bytes().to_vec();
        tar.extend_from_slice(&[0; 1024]);
        let err = rejected(&tar);
        assert!(matches!(err, UnpackError::TooLarge { .. }), "{err:?}");
    }

    #[test]
    fn caps_entry_count() {
        let limits = Limits {
            max_entries: 2,
            ..Limits::default()
        };
        let tar = Tar::new()
            .file("a", b"")
            .file("b", b"")
            .file("c", b"")
            .end();
        let err = rejected_with(&tar, &limits);
        assert!(
            matches!(err, UnpackError::TooManyEntries { limit: 2 }),
            "{err:?}"
        );
        let tar = Tar::new().file("a", b"").file("b", b"").end();
        let s = Scratch::new();
        s.unpack(&gz(&tar), &limits).unwrap();
    }

    #[test]
    fn caps_depth() {
        let limits = Limits {
            max_depth: 3,
            ..Limits::default()
        };
        let err = rejected_with(&Tar::new().file("a/b/c/d", b"").end(), &limits);
        assert!(
            matches!(&err, UnpackError::TooDeep { path, limit: 3 } if path == "a/b/c/d"),
            "{err:?}"
        );
        let err = rejected_with(&Tar::new().dir("a/b/c/d/").end(), &limits);
        assert!(matches!(err, UnpackError::TooDeep { .. }), "{err:?}");
        let s = Scratch::new();
        s.unpack(&gz(&Tar::new().file("./a/./b/c", b"").end()), &limits)
            .unwrap();
    }

    #[test]
    fn caps_path_length() {
        let limits = Limits {
            max_path_len: 10,
            ..Limits::default()
        };
        let err = rejected_with(&Tar::new().file("abcdefghijk", b"").end(), &limits);
        assert!(
            matches!(err, UnpackError::PathTooLong { limit: 10, .. }),
            "{err:?}"
        );
        let s = Scratch::new();
        s.unpack(&gz(&Tar::new().file("abcdefghij", b"").end()), &limits)
            .unwrap();

        let huge = "n".repeat(5000);
        let tar = Tar::new()
            .gnu_long_name(huge.as_bytes())
            .file("x", b"")
            .end();
        match rejected(&tar) {
            UnpackError::PathTooLong { path, limit } => {
                assert_eq!(limit, 1024);
                assert!(path.chars().count() <= 201, "shown path is shortened");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn caps_header_size() {
        // A 2 MiB PAX record must not be read into memory.
        let junk = vec![b'j'; 2 * 1024 * 1024];
        let tar = Tar::new().pax(&[("comment", &junk)]).file("x", b"").end();
        let err = rejected(&tar);
        assert!(matches!(err, UnpackError::HeaderTooLarge { .. }), "{err:?}");
    }

    #[test]
    fn caps_decompressed_stream() {
        let limits = Limits {
            max_bytes: 1000,
            max_entries: 10,
            max_depth: 8,
            max_path_len: 100,
        };
        assert!(limits.max_stream_bytes() < 2 * 1024 * 1024);
        // A small archive followed by megabytes of zeros (compresses to
        // almost nothing).
        let mut tar = Tar::new().file("SKILL.md", b"x").end();
        tar.resize(8 * 1024 * 1024, 0);
        let err = rejected_with(&tar, &limits);
        assert!(matches!(err, UnpackError::StreamTooLarge { .. }), "{err:?}");
    }

    #[test]
    fn rejects_garbage() {
        let s = Scratch::new();
        for input in [&b""[..], b"\x1f", b"hello, world", b"PK\x03\x04zipzipzip"] {
            let err = s.unpack(input, &Limits::default()).unwrap_err();
            assert!(matches!(err, UnpackError::NotGzip), "{err:?}");
        }
        // An uncompressed tar is not accepted either.
        let tar = Tar::new().file("a", b"x").end();
        let err = s.unpack(&tar[..], &Limits::default()).unwrap_err();
        assert!(matches!(err, UnpackError::NotGzip), "{err:?}");
        assert_eq!(
            err.to_string(),
            "layer is not gzip-compressed (expected a tar+gzip skill layer)"
        );
        // gzip magic followed by garbage.
        let err = s
            .unpack(&b"\x1f\x8bnot really gzip"[..], &Limits::default())
            .unwrap_err();
        assert!(matches!(err, UnpackError::Corrupt { .. }), "{err:?}");
        // Valid gzip around something that is not a tar.
        let err = s
            .unpack(&gz(&[b'z'; 2048]), &Limits::default())
            .unwrap_err();
        assert!(matches!(err, UnpackError::Corrupt { .. }), "{err:?}");
        assert_eq!(err.to_string(), "layer is not a valid tar+gzip archive");
        s.assert_contained();
    }

    #[test]
    fn rejects_truncated_input() {
        let tar = Tar::new().file("a", &[b'a'; 4000]).end();
        let whole = gz(&tar);
        let s = Scratch::new();
        let err = s
            .unpack(&whole[..whole.len() / 2], &Limits::default())
            .unwrap_err();
        assert!(
            matches!(
                err,
                UnpackError::Corrupt { .. } | UnpackError::Truncated { .. }
            ),
            "{err:?}"
        );
        // A tar cut inside a file's data, inside an intact gzip stream.
        let err = rejected(&tar[..512 + 100]);
        assert!(
            matches!(&err, UnpackError::Truncated { path } if path == "a"),
            "{err:?}"
        );
        // gzip trailer damaged: the CRC check at the end of the stream fails.
        let mut bad = gz(&tar);
        let n = bad.len();
        bad[n - 8] ^= 0xff;
        let s = Scratch::new();
        let err = s.unpack(&bad[..], &Limits::default()).unwrap_err();
        assert!(matches!(err, UnpackError::Corrupt { .. }), "{err:?}");
    }

    #[test]
    fn destination_must_be_an_empty_directory() {
        let s = Scratch::new();
        std::fs::write(s.dest.join("stale"), b"").unwrap();
        let err = s
            .unpack(&gz(&Tar::new().file("a", b"").end()), &Limits::default())
            .unwrap_err();
        assert!(matches!(err, UnpackError::DestNotEmpty { .. }), "{err:?}");

        let s = Scratch::new();
        let missing = s.dest.join("missing");
        let err = unpack_tar_gz(
            &gz(&Tar::new().file("a", b"").end())[..],
            &missing,
            &Limits::default(),
        )
        .unwrap_err();
        assert!(matches!(err, UnpackError::Io { .. }), "{err:?}");

        // A symbolic link as the destination is not followed.
        let s = Scratch::new();
        let link = s.top.path().join("link");
        std::os::unix::fs::symlink(&s.dest, &link).unwrap();
        let err = unpack_tar_gz(
            &gz(&Tar::new().file("a", b"").end())[..],
            &link,
            &Limits::default(),
        )
        .unwrap_err();
        assert!(matches!(err, UnpackError::Io { .. }), "{err:?}");
        assert!(names(&s.dest).is_empty());
    }

    #[test]
    fn default_limits() {
        let l = Limits::default();
        assert_eq!(
            (l.max_bytes, l.max_entries, l.max_depth, l.max_path_len),
            (64 << 20, 10_000, 32, 1024)
        );
        assert!(l.max_stream_bytes() > l.max_bytes);
        assert!(l.max_header_bytes() >= 4 * l.max_path_len as u64);
    }
}
