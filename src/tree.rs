//! What an installed skill tree holds, and whether it still holds it.
//!
//! [`record`] walks a freshly installed skill folder and keeps, per file, its
//! size, execute bit and sha256, plus a [`Stamp`] (mtime, ctime, inode) used
//! only as a cache hint. The [`TreeRecord`] goes into the state file; its
//! [`hash`](TreeRecord::hash) identifies the content and recognises a folder
//! as ours.
//!
//! [`check`] compares a folder with its record. Every directory is listed
//! and every entry `lstat`ed, but a file is read and hashed only when its
//! size and execute bit still match and its stamp does not, so a pass over
//! an untouched tree reads no file content at all. A file whose size or
//! execute bit differ is changed without being read.
//!
//! # The tree hash
//!
//! The hash is a sha256 over a domain string, then every entry in byte order
//! of its path: a kind byte (`d` directory, `f` file, `x` executable file),
//! the path's length as 8 big-endian bytes, the path, and for files the 64
//! hex digits of the content's sha256. Lengths are explicit, so no two trees
//! share an encoding; mtimes, inodes, owners and modes other than the
//! execute bit play no part, so the same layer unpacked twice, anywhere,
//! hashes the same. The skill directory itself is not an entry.
//!
//! # What counts as drift
//!
//! A file's content or execute bit changed, a file or directory (empty or
//! not) added or removed, an entry replaced by one of another kind, and any
//! symbolic link, fifo, socket or device inside (an installed tree holds
//! only regular files and directories). Symbolic links are never followed:
//! every open is relative to its parent's descriptor with `O_NOFOLLOW`. A
//! new directory is reported as one entry without looking inside; a removed
//! or replaced directory is reported without its former contents. Modes
//! other than the execute bit, owners and timestamps are not drift.
//!
//! # The fast path's limits
//!
//! A stamp is trusted only while it matches exactly: any write, `chmod`,
//! rename over the file or new hard link moves the ctime or the inode, and
//! ctime cannot be set from user space, so restoring a file's size and mtime
//! (`touch -d`) does not hide an edit. Two cases remain, as in git's index:
//!
//! - **Timestamp granularity.** Kernels stamp files from a coarse clock, so
//!   a write right after a file was stamped can leave mtime and ctime as they
//!   were. A stamp is therefore kept only when the file's mtime and ctime are
//!   at least two seconds older than the walk that took it; younger files get
//!   no stamp and are hashed on the next check, which stamps them once they
//!   have settled. In practice the first check after an install reads the
//!   tree once more, and later checks read nothing.
//! - **Forged metadata.** Someone who sets the system clock back, or writes
//!   to the block device, can change content behind an unchanged stamp.
//!   Only a full hash ([`hash_only`], or [`check`] after
//!   [`TreeRecord::forget_stamps`]) catches that.
//!
//! A file whose content differs from the record keeps its recorded stamp and
//! so is hashed again on every check until it is reinstalled; a file whose
//! content matches but whose stamp moved (a `touch`, a `chmod` back and
//! forth) gets a fresh stamp in the record, and [`Drift::restamped`] tells
//! the caller to save it.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, CWD};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::reference::Digest;

/// What an installed tree held, entry by entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeRecord {
    /// The tree hash: a function of the paths, kinds, execute bits and
    /// contents in `entries` (see the module documentation).
    pub hash: Digest,
    /// Every file and directory below the skill directory, keyed by its
    /// path relative to it, components joined with `/`.
    pub entries: BTreeMap<String, EntryRecord>,
}

impl TreeRecord {
    /// Drops every file's stamp, so the next [`check`] reads and hashes the
    /// whole tree (and stamps it afresh): a full verification.
    pub fn forget_stamps(&mut self) {
        for entry in self.entries.values_mut() {
            if let EntryRecord::File { stamp, .. } = entry {
                *stamp = None;
            }
        }
    }

    /// Whether [`hash`](Self::hash) is the hash of
    /// [`entries`](Self::entries), as it is for any record this module made.
    pub fn is_consistent(&self) -> bool {
        hash_entries(&self.entries) == self.hash
    }
}

/// One entry of a [`TreeRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum EntryRecord {
    /// A directory.
    Dir,
    /// A regular file.
    File {
        /// Its size in bytes.
        size: u64,
        /// Whether any execute bit was set.
        executable: bool,
        /// The sha256 of its content.
        sha256: Digest,
        /// How it looked on disk when its content last matched, if that
        /// can be trusted to reveal a change (see the module documentation).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stamp: Option<Stamp>,
    },
}

/// A file's modification time, status-change time and inode number: if all
/// three are as they were, its content is taken to be as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    mtime_s: i64,
    mtime_ns: u32,
    ctime_s: i64,
    ctime_ns: u32,
    ino: u64,
}

/// What [`check`] found at the skill directory itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Root {
    /// A directory, compared entry by entry.
    #[default]
    Dir,
    /// Nothing there (nor, possibly, at a parent).
    Missing,
    /// Something other than a directory: a file, a symbolic link (even to a
    /// directory), a socket...
    NotADirectory,
}

/// How a folder differs from its [`TreeRecord`].
///
/// Paths are relative to the skill directory; directories end with `/` in
/// `added` and `removed`. Each list is sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drift {
    /// What is at the skill directory itself. Unless it is [`Root::Dir`],
    /// the lists are empty.
    pub root: Root,
    /// Entries whose content or execute bit changed, or that were replaced
    /// by something of another kind.
    pub changed: Vec<String>,
    /// Entries that were not in the record, including symbolic links,
    /// fifos, sockets and devices. A new directory's contents are not
    /// listed.
    pub added: Vec<String>,
    /// Recorded entries that are gone. The contents of a removed (or
    /// replaced) directory are not listed.
    pub removed: Vec<String>,
    /// Files read and hashed.
    pub files_hashed: u64,
    /// Bytes read and hashed.
    pub bytes_hashed: u64,
    /// Files whose content matched but whose stamp was renewed in the
    /// record: when non-zero, the record should be saved.
    pub restamped: u64,
}

impl Drift {
    /// Whether the folder holds exactly the recorded tree.
    pub fn is_clean(&self) -> bool {
        self.root == Root::Dir
            && self.changed.is_empty()
            && self.added.is_empty()
            && self.removed.is_empty()
    }

    /// A one-line account for people, such as
    /// `2 changed (SKILL.md, docs/a.md); 1 added (notes/)`. At most three
    /// paths per list are named, each shortened past 80 characters.
    pub fn summary(&self) -> String {
        match self.root {
            Root::Missing => return "the skill directory is missing".into(),
            Root::NotADirectory => {
                return "the skill directory was replaced by something that is not a directory"
                    .into()
            }
            Root::Dir => {}
        }
        let mut parts = Vec::new();
        for (what, paths) in [
            ("changed", &self.changed),
            ("added", &self.added),
            ("removed", &self.removed),
        ] {
            if paths.is_empty() {
                continue;
            }
            let mut shown: Vec<String> = paths.iter().take(3).map(|p| shorten(p)).collect();
            if paths.len() > 3 {
                shown.push("…".into());
            }
            parts.push(format!("{} {what} ({})", paths.len(), shown.join(", ")));
        }
        if parts.is_empty() {
            "no changes".into()
        } else {
            parts.join("; ")
        }
    }
}

/// Walks `dir` and records every entry below it, hashing every file.
///
/// `ignore` names entries directly in `dir` to leave out (a marker file,
/// say); names deeper down are never ignored. `dir` must be a directory, not
/// a symbolic link to one. A symbolic link, fifo, socket or device inside, a
/// name that is not UTF-8 or nesting deeper than 128 levels is an error: an
/// installed tree holds none of these. So is any file that cannot be read;
/// every error names the path.
///
/// To record an install, walk the staging directory just before swapping it
/// in: renaming a directory leaves its files' stamps alone.
pub fn record(dir: &Path, ignore: &[&str]) -> Result<TreeRecord> {
    record_at(dir, ignore, now_ns())
}

/// The tree hash of `dir`, as [`record`] would compute it (and with the same
/// errors). Reads every file.
pub fn hash_only(dir: &Path, ignore: &[&str]) -> Result<Digest> {
    record(dir, ignore).map(|r| r.hash)
}

/// Compares `dir` with `recorded`, reading only the files whose stamp moved.
///
/// `ignore` must be the list `recorded` was made with. A missing `dir`, or
/// one that is not a directory, is reported in [`Drift::root`], not as an
/// error. Files whose content still matches get a fresh stamp in `recorded`
/// ([`Drift::restamped`] counts them); nothing else in it changes, so its
/// hash stays that of the installed tree. Errors (a directory that cannot be
/// listed, a file that cannot be read) name the path.
pub fn check(dir: &Path, recorded: &mut TreeRecord, ignore: &[&str]) -> Result<Drift> {
    check_at(dir, recorded, ignore, now_ns())
}

/// How much older than the walk a file's mtime and ctime must be for its
/// stamp to be trusted: no less than the coarsest timestamps of a local
/// filesystem (FAT's two seconds; ext4, XFS, btrfs and tmpfs tick at most
/// every few milliseconds).
const SETTLE: Duration = Duration::from_secs(2);

/// How deep [`record`] and [`check`] descend.
const MAX_DEPTH: usize = 128;

/// Domain separation for the tree hash; the version changes with the format.
const HASH_DOMAIN: &[u8] = b"skillsyncd tree v1\0";

fn record_at(dir: &Path, ignore: &[&str], now_ns: i128) -> Result<TreeRecord> {
    let root = match open_root(dir)? {
        Opened::Dir(fd) => fd,
        Opened::Missing => {
            return Err(Error::io(
                "recording",
                dir,
                io::Error::from(io::ErrorKind::NotFound),
            ))
        }
        Opened::NotADirectory => return Err(Error::io("recording", dir, not_a_directory())),
    };
    let mut walk = Walk::new(dir, ignore, now_ns);
    let mut entries = BTreeMap::new();
    walk.record_dir(root, "", 0, &mut entries)?;
    Ok(TreeRecord {
        hash: hash_entries(&entries),
        entries,
    })
}

fn check_at(dir: &Path, recorded: &mut TreeRecord, ignore: &[&str], now_ns: i128) -> Result<Drift> {
    let root = match open_root(dir)? {
        Opened::Dir(fd) => fd,
        Opened::Missing => {
            return Ok(Drift {
                root: Root::Missing,
                ..Drift::default()
            })
        }
        Opened::NotADirectory => {
            return Ok(Drift {
                root: Root::NotADirectory,
                ..Drift::default()
            })
        }
    };
    let mut walk = Walk::new(dir, ignore, now_ns);
    let mut seen = Seen::default();
    walk.check_dir(root, "", 0, &mut recorded.entries, &mut seen)?;

    // A recorded entry not seen is gone; it is listed only if its parent was
    // there to look in (else the parent is listed as removed or changed).
    for (path, entry) in &recorded.entries {
        if seen.entries.contains(path.as_str()) {
            continue;
        }
        let (parent, top) = match path.rsplit_once('/') {
            Some((parent, _)) => (parent, false),
            None => ("", true),
        };
        if top && ignore.contains(&path.as_str()) {
            continue;
        }
        if top || seen.descended.contains(parent) {
            walk.drift
                .removed
                .push(shown(path, matches!(entry, EntryRecord::Dir)));
        }
    }
    let mut drift = walk.drift;
    drift.changed.sort();
    drift.added.sort();
    drift.removed.sort();
    Ok(drift)
}

/// The tree hash of a set of entries.
fn hash_entries(entries: &BTreeMap<String, EntryRecord>) -> Digest {
    let mut h = Sha256::new();
    h.update(HASH_DOMAIN);
    for (path, entry) in entries {
        let kind: &[u8] = match entry {
            EntryRecord::Dir => b"d",
            EntryRecord::File {
                executable: true, ..
            } => b"x",
            EntryRecord::File { .. } => b"f",
        };
        h.update(kind);
        h.update((path.len() as u64).to_be_bytes());
        h.update(path.as_bytes());
        if let EntryRecord::File { sha256, .. } = entry {
            h.update(sha256.hex().as_bytes());
        }
    }
    Digest::from_hasher(h)
}

/// Recorded paths met during a check.
#[derive(Default)]
struct Seen {
    /// Recorded paths found on disk (as anything).
    entries: HashSet<String>,
    /// Recorded directories found as directories and looked into.
    descended: HashSet<String>,
}

/// The skill directory, opened without following a link.
enum Opened {
    Dir(OwnedFd),
    Missing,
    NotADirectory,
}

fn open_root(dir: &Path) -> Result<Opened> {
    match rustix::fs::openat(CWD, dir, dir_flags(), Mode::empty()) {
        Ok(fd) => Ok(Opened::Dir(fd)),
        Err(Errno::NOENT) => Ok(Opened::Missing),
        // A symbolic link (`O_NOFOLLOW`), or not a directory; but ENOTDIR
        // also means a parent component is a file.
        Err(Errno::LOOP) | Err(Errno::MLINK) => Ok(Opened::NotADirectory),
        Err(Errno::NOTDIR) => match rustix::fs::statat(CWD, dir, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(Opened::NotADirectory),
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => Ok(Opened::Missing),
            Err(e) => Err(Error::io("examining", dir, e.into())),
        },
        Err(e) => Err(Error::io("opening", dir, e.into())),
    }
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

fn file_flags() -> OFlags {
    // NONBLOCK: should a fifo take the file's place between the `lstat` and
    // the open, the open must not wait for a writer.
    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC
}

fn not_a_directory() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "not a directory")
}

/// A file's record, as [`Walk::check_file`] compares it; its stamp is
/// updated in place.
struct Recorded<'a> {
    size: u64,
    executable: bool,
    sha256: &'a Digest,
    stamp: &'a mut Option<Stamp>,
}

/// What reading one file gave.
enum Contents {
    /// The file was read to the end.
    Hashed {
        sha256: Digest,
        size: u64,
        executable: bool,
        /// The stamp, if the file did not change while being read and has
        /// settled.
        stamp: Option<Stamp>,
    },
    /// The name no longer exists.
    Gone,
    /// The name is no longer a regular file.
    NotAFile,
}

/// One walk over a tree.
struct Walk<'a> {
    root: &'a Path,
    ignore: &'a [&'a str],
    now_ns: i128,
    buf: Vec<u8>,
    drift: Drift,
}

impl<'a> Walk<'a> {
    fn new(root: &'a Path, ignore: &'a [&'a str], now_ns: i128) -> Self {
        Walk {
            root,
            ignore,
            now_ns,
            buf: vec![0; 64 * 1024],
            drift: Drift::default(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.root.to_path_buf()
        } else {
            self.root.join(rel)
        }
    }

    /// The names in a directory (but `.` and `..`), sorted, minus the
    /// ignored ones at the top. Takes ownership of the descriptor and hands
    /// it back for the `*at` calls that follow.
    fn list(&self, fd: OwnedFd, rel: &str) -> Result<(Dir, Vec<Vec<u8>>)> {
        let mut dir = Dir::new(fd).map_err(|e| Error::io("listing", self.path(rel), e.into()))?;
        let mut names = Vec::new();
        for entry in &mut dir {
            let entry = entry.map_err(|e| Error::io("listing", self.path(rel), e.into()))?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            if rel.is_empty() && self.ignore.iter().any(|i| i.as_bytes() == name) {
                continue;
            }
            names.push(name.to_vec());
        }
        names.sort();
        Ok((dir, names))
    }

    fn record_dir(
        &mut self,
        fd: OwnedFd,
        rel: &str,
        depth: usize,
        entries: &mut BTreeMap<String, EntryRecord>,
    ) -> Result<()> {
        if depth >= MAX_DEPTH {
            return Err(too_deep("recording", self.path(rel)));
        }
        let (dir, names) = self.list(fd, rel)?;
        let dir_fd = dir
            .fd()
            .map_err(|e| Error::io("listing", self.path(rel), e.into()))?;
        for raw in names {
            let Ok(name) = std::str::from_utf8(&raw) else {
                let lossy = String::from_utf8_lossy(&raw).into_owned();
                return Err(Error::io(
                    "recording",
                    self.path(&join(rel, &lossy)),
                    io::Error::new(io::ErrorKind::InvalidData, "name is not valid UTF-8"),
                ));
            };
            let child = join(rel, name);
            let st = match rustix::fs::statat(dir_fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(Error::io("examining", self.path(&child), e.into())),
            };
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => {
                    let sub = self.open_dir(dir_fd, name, &child)?;
                    entries.insert(child.clone(), EntryRecord::Dir);
                    self.record_dir(sub, &child, depth + 1, entries)?;
                }
                FileType::RegularFile => match self.read_file(dir_fd, name, &child)? {
                    Contents::Hashed {
                        sha256,
                        size,
                        executable,
                        stamp,
                    } => {
                        entries.insert(
                            child,
                            EntryRecord::File {
                                size,
                                executable,
                                sha256,
                                stamp,
                            },
                        );
                    }
                    Contents::Gone => {}
                    Contents::NotAFile => {
                        return Err(Error::io("recording", self.path(&child), not_a_file()))
                    }
                },
                _ => return Err(Error::io("recording", self.path(&child), not_a_file())),
            }
        }
        Ok(())
    }

    fn check_dir(
        &mut self,
        fd: OwnedFd,
        rel: &str,
        depth: usize,
        entries: &mut BTreeMap<String, EntryRecord>,
        seen: &mut Seen,
    ) -> Result<()> {
        if depth >= MAX_DEPTH {
            return Err(too_deep("checking", self.path(rel)));
        }
        let (dir, names) = self.list(fd, rel)?;
        let dir_fd = dir
            .fd()
            .map_err(|e| Error::io("listing", self.path(rel), e.into()))?;
        for raw in names {
            // A name that is not UTF-8 cannot be in the record.
            let Ok(name) = std::str::from_utf8(&raw) else {
                let lossy = String::from_utf8_lossy(&raw).into_owned();
                self.drift.added.push(join(rel, &lossy));
                continue;
            };
            let child = join(rel, name);
            let st = match rustix::fs::statat(dir_fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(Error::io("examining", self.path(&child), e.into())),
            };
            let kind = FileType::from_raw_mode(st.st_mode);
            let Some(entry) = entries.get_mut(&child) else {
                self.drift
                    .added
                    .push(shown(&child, kind == FileType::Directory));
                continue;
            };
            match (entry, kind) {
                (EntryRecord::Dir, FileType::Directory) => {
                    self.check_subdir(dir_fd, name, child, depth, entries, seen)?;
                }
                (
                    EntryRecord::File {
                        size,
                        executable,
                        sha256,
                        stamp,
                    },
                    FileType::RegularFile,
                ) => {
                    let recorded = Recorded {
                        size: *size,
                        executable: *executable,
                        sha256,
                        stamp,
                    };
                    self.check_file((dir_fd, name), child, &st, recorded, seen)?;
                }
                // Replaced by something of another kind; not looked into.
                (_, _) => {
                    seen.entries.insert(child.clone());
                    self.drift.changed.push(child);
                }
            }
        }
        Ok(())
    }

    /// Checks the recorded directory `name` in `dir_fd` (`child` in the
    /// tree) and what it holds.
    fn check_subdir(
        &mut self,
        dir_fd: BorrowedFd<'_>,
        name: &str,
        child: String,
        depth: usize,
        entries: &mut BTreeMap<String, EntryRecord>,
        seen: &mut Seen,
    ) -> Result<()> {
        seen.entries.insert(child.clone());
        match rustix::fs::openat(dir_fd, name, dir_flags(), Mode::empty()) {
            Ok(sub) => {
                seen.descended.insert(child.clone());
                self.check_dir(sub, &child, depth + 1, entries, seen)?;
            }
            Err(Errno::NOENT) => {
                seen.entries.remove(&child);
            }
            Err(Errno::NOTDIR) | Err(Errno::LOOP) | Err(Errno::MLINK) => {
                self.drift.changed.push(child);
            }
            Err(e) => return Err(Error::io("opening", self.path(&child), e.into())),
        }
        Ok(())
    }

    /// Checks the recorded regular file `name` in `dir_fd` (`child` in the
    /// tree, `st` its stat): unchanged by size, mode and stamp, else read
    /// and hashed; a file whose content matches gets its new stamp.
    fn check_file(
        &mut self,
        (dir_fd, name): (BorrowedFd<'_>, &str),
        child: String,
        st: &rustix::fs::Stat,
        recorded: Recorded<'_>,
        seen: &mut Seen,
    ) -> Result<()> {
        if to_u64(st.st_size) != recorded.size || is_exec(st.st_mode) != recorded.executable {
            seen.entries.insert(child.clone());
            self.drift.changed.push(child);
            return Ok(());
        }
        if recorded.stamp.is_some() && *recorded.stamp == Some(Stamp::of(st)) {
            seen.entries.insert(child);
            return Ok(());
        }
        match self.read_file(dir_fd, name, &child)? {
            Contents::Hashed {
                sha256: now_sha,
                size: now_size,
                executable: now_exec,
                stamp: now_stamp,
            } => {
                seen.entries.insert(child.clone());
                if now_sha == *recorded.sha256
                    && now_size == recorded.size
                    && now_exec == recorded.executable
                {
                    if *recorded.stamp != now_stamp {
                        *recorded.stamp = now_stamp;
                        self.drift.restamped += 1;
                    }
                } else {
                    self.drift.changed.push(child);
                }
            }
            Contents::Gone => {}
            Contents::NotAFile => {
                seen.entries.insert(child.clone());
                self.drift.changed.push(child);
            }
        }
        Ok(())
    }

    fn open_dir(&self, parent: BorrowedFd<'_>, name: &str, rel: &str) -> Result<OwnedFd> {
        rustix::fs::openat(parent, name, dir_flags(), Mode::empty())
            .map_err(|e| Error::io("opening", self.path(rel), e.into()))
    }

    /// Reads and hashes `name` in `parent`, never following a link.
    fn read_file(&mut self, parent: BorrowedFd<'_>, name: &str, rel: &str) -> Result<Contents> {
        let fd = match rustix::fs::openat(parent, name, file_flags(), Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(Contents::Gone),
            // A symbolic link (`O_NOFOLLOW`) or a socket now.
            Err(Errno::LOOP) | Err(Errno::MLINK) | Err(Errno::NXIO) => {
                return Ok(Contents::NotAFile)
            }
            Err(e) => return Err(Error::io("opening", self.path(rel), e.into())),
        };
        let before =
            rustix::fs::fstat(&fd).map_err(|e| Error::io("examining", self.path(rel), e.into()))?;
        if FileType::from_raw_mode(before.st_mode) != FileType::RegularFile {
            return Ok(Contents::NotAFile);
        }
        let mut file = File::from(fd);
        let mut h = Sha256::new();
        let mut size = 0u64;
        loop {
            match file.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => {
                    h.update(&self.buf[..n]);
                    size += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("reading", self.path(rel), e)),
            }
        }
        let after = rustix::fs::fstat(file.as_fd())
            .map_err(|e| Error::io("examining", self.path(rel), e.into()))?;
        self.drift.files_hashed += 1;
        self.drift.bytes_hashed += size;
        let stamp = Stamp::of(&before);
        let steady = stamp == Stamp::of(&after)
            && to_u64(before.st_size) == size
            && to_u64(after.st_size) == size;
        Ok(Contents::Hashed {
            sha256: Digest::from_hasher(h),
            size,
            executable: is_exec(before.st_mode),
            stamp: (steady && stamp.settled(self.now_ns)).then_some(stamp),
        })
    }
}

impl Stamp {
    fn of(st: &rustix::fs::Stat) -> Stamp {
        Stamp {
            mtime_s: to_i64(st.st_mtime),
            mtime_ns: to_u32(st.st_mtime_nsec),
            ctime_s: to_i64(st.st_ctime),
            ctime_ns: to_u32(st.st_ctime_nsec),
            ino: to_u64(st.st_ino),
        }
    }

    /// Whether mtime and ctime are far enough behind `now_ns` that a later
    /// write cannot reproduce them.
    fn settled(&self, now_ns: i128) -> bool {
        let ns = |s: i64, n: u32| i128::from(s) * 1_000_000_000 + i128::from(n);
        let latest = ns(self.mtime_s, self.mtime_ns).max(ns(self.ctime_s, self.ctime_ns));
        latest + SETTLE.as_nanos() as i128 <= now_ns
    }
}

fn not_a_file() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "neither a regular file nor a directory (a skill holds only those)",
    )
}

fn now_ns() -> i128 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
        Err(e) => -i128::try_from(e.duration().as_nanos()).unwrap_or(i128::MAX),
    }
}

fn is_exec<M: Into<u32>>(mode: M) -> bool {
    mode.into() & 0o111 != 0
}

// `struct stat`'s field types differ between platforms; these convert
// whatever they are.
fn to_i64<T: TryInto<i64>>(v: T) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

fn to_u32<T: TryInto<u32>>(v: T) -> u32 {
    v.try_into().unwrap_or(u32::MAX)
}

fn to_u64<T: TryInto<u64>>(v: T) -> u64 {
    v.try_into().unwrap_or(u64::MAX)
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        format!("{rel}/{name}")
    }
}

/// A path as listed in a [`Drift`]: directories end with `/`.
fn shown(path: &str, dir: bool) -> String {
    if dir {
        format!("{path}/")
    } else {
        path.to_string()
    }
}

/// A path for a summary, shortened past 80 characters.
fn shorten(path: &str) -> String {
    const MAX: usize = 80;
    if path.chars().count() <= MAX {
        path.to_string()
    } else {
        let mut s: String = path.chars().take(MAX).collect();
        s.push('…');
        s
    }
}

/// A tree nested deeper than [`MAX_DEPTH`], which no installed skill is.
fn too_deep(action: &'static str, path: PathBuf) -> Error {
    Error::io(
        action,
        path,
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("nested deeper than {MAX_DEPTH} levels"),
        ),
    )
}

#[cfg(test)]
mod tests;
