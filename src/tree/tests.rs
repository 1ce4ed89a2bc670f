//! Tests of `tree`: what a record holds, the tree hash, and which edits a
//! check finds while reading as little as it can.
//!
//! Built for `cargo test` only: no code outside tests may use anything here.

use super::*;
use std::os::unix::fs::{symlink, PermissionsExt};

/// A moment long after every file in a test was written: stamps taken
/// "then" are trusted.
fn later() -> i128 {
    now_ns() + 3600 * 1_000_000_000
}

/// A skill folder in a temp dir.
struct Skill {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Skill {
    fn empty() -> Skill {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("hello");
        std::fs::create_dir(&dir).unwrap();
        Skill { _tmp: tmp, dir }
    }

    /// SKILL.md, docs/{a,b}.md, an executable scripts/run.sh and an
    /// empty directory, every file's mtime set far in the past (so an
    /// edit always moves it, however coarse the clock).
    fn standard() -> Skill {
        let s = Skill::empty();
        s.write("SKILL.md", b"hello skill");
        s.write("docs/a.md", b"aaa");
        s.write("docs/b.md", b"bbbb");
        s.write("scripts/run.sh", b"#!/bin/sh\necho hi\n");
        s.chmod("scripts/run.sh", 0o755);
        s.mkdir("empty");
        s.age_all();
        s
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn write(&self, rel: &str, content: &[u8]) {
        let p = self.p(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(p, content).unwrap();
    }

    fn mkdir(&self, rel: &str) {
        std::fs::create_dir_all(self.p(rel)).unwrap();
    }

    fn chmod(&self, rel: &str, mode: u32) {
        std::fs::set_permissions(self.p(rel), std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn set_mtime(&self, rel: &str, secs: u64) {
        let f = File::options().write(true).open(self.p(rel)).unwrap();
        f.set_modified(UNIX_EPOCH + Duration::from_secs(secs))
            .unwrap();
    }

    fn age_all(&self) {
        for rel in self.files() {
            self.set_mtime(&rel, 1_577_836_800);
        }
    }

    fn files(&self) -> Vec<String> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                let t = e.file_type().unwrap();
                if t.is_dir() {
                    walk(base, &e.path(), out);
                } else if t.is_file() {
                    let rel = e.path().strip_prefix(base).unwrap().to_owned();
                    out.push(rel.to_str().unwrap().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.dir, &self.dir, &mut out);
        out
    }

    /// A record whose stamps are all trusted.
    fn record(&self) -> TreeRecord {
        record_at(&self.dir, &[], later()).unwrap()
    }

    fn check(&self, rec: &mut TreeRecord) -> Drift {
        check_at(&self.dir, rec, &[], later()).unwrap()
    }
}

/// Records the standard tree, applies `change`, and checks.
fn drift_after(change: impl FnOnce(&Skill)) -> Drift {
    let s = Skill::standard();
    let mut rec = s.record();
    change(&s);
    s.check(&mut rec)
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn records_every_entry() {
    let s = Skill::standard();
    let rec = s.record();
    let kinds: Vec<(&str, &str)> = rec
        .entries
        .iter()
        .map(|(p, e)| {
            let k = match e {
                EntryRecord::Dir => "dir",
                EntryRecord::File {
                    executable: true, ..
                } => "exec",
                EntryRecord::File { .. } => "file",
            };
            (p.as_str(), k)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("SKILL.md", "file"),
            ("docs", "dir"),
            ("docs/a.md", "file"),
            ("docs/b.md", "file"),
            ("empty", "dir"),
            ("scripts", "dir"),
            ("scripts/run.sh", "exec"),
        ]
    );
    match &rec.entries["SKILL.md"] {
        EntryRecord::File {
            size,
            sha256,
            stamp,
            ..
        } => {
            assert_eq!(*size, 11);
            assert_eq!(*sha256, Digest::of(b"hello skill"));
            assert!(stamp.is_some());
        }
        other => panic!("{other:?}"),
    }
    assert!(rec.is_consistent());
}

#[test]
fn same_content_same_hash_whatever_the_order_times_and_place() {
    let a = Skill::standard();
    // The same tree built in another order, with other mtimes.
    let b = Skill::empty();
    b.mkdir("empty");
    b.write("scripts/run.sh", b"#!/bin/sh\necho hi\n");
    b.chmod("scripts/run.sh", 0o700);
    b.write("docs/b.md", b"bbbb");
    b.write("SKILL.md", b"hello skill");
    b.write("docs/a.md", b"aaa");
    b.set_mtime("docs/a.md", 42);
    b.chmod("docs/a.md", 0o600);
    let (ra, rb) = (a.record(), record(&b.dir, &[]).unwrap());
    assert_eq!(ra.hash, rb.hash);
    assert_eq!(hash_only(&a.dir, &[]).unwrap(), ra.hash);
    // Pinned: installs recorded by earlier versions must still be
    // recognised. Changing the format means changing HASH_DOMAIN.
    assert_eq!(
        ra.hash.as_str(),
        "sha256:05a89d26013aba40d40f843fa37d98b37c4718c0e3f9c6554696ca2015f075a7"
    );
}

#[test]
fn the_hash_covers_paths_kinds_exec_bits_and_contents() {
    let file = |exec: bool, content: &[u8]| EntryRecord::File {
        size: content.len() as u64,
        executable: exec,
        sha256: Digest::of(content),
        stamp: None,
    };
    let base = BTreeMap::from([
        ("a".to_string(), EntryRecord::Dir),
        ("a/b".to_string(), file(false, b"x")),
    ]);
    let variants = [
        BTreeMap::new(),
        BTreeMap::from([("a".to_string(), EntryRecord::Dir)]),
        BTreeMap::from([
            ("a".to_string(), EntryRecord::Dir),
            ("a/c".to_string(), file(false, b"x")),
        ]),
        BTreeMap::from([
            ("a".to_string(), EntryRecord::Dir),
            ("a/b".to_string(), file(true, b"x")),
        ]),
        BTreeMap::from([
            ("a".to_string(), EntryRecord::Dir),
            ("a/b".to_string(), file(false, b"y")),
        ]),
        BTreeMap::from([
            ("a".to_string(), EntryRecord::Dir),
            ("a/b".to_string(), EntryRecord::Dir),
        ]),
        BTreeMap::from([
            ("a".to_string(), EntryRecord::Dir),
            ("a/b".to_string(), file(false, b"x")),
            ("a/b2".to_string(), EntryRecord::Dir),
        ]),
        // Same bytes if paths were simply concatenated.
        BTreeMap::from([("aa/b".to_string(), file(false, b"x"))]),
        BTreeMap::from([("a".to_string(), file(false, b"x"))]),
    ];
    let h = hash_entries(&base);
    let mut all = vec![h.clone()];
    for v in &variants {
        all.push(hash_entries(v));
    }
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(distinct.len(), all.len(), "{all:#?}");
    // Stamps and recorded sizes are not part of it.
    let mut stamped = base.clone();
    if let Some(EntryRecord::File { stamp, .. }) = stamped.get_mut("a/b") {
        *stamp = Some(Stamp {
            mtime_s: 1,
            mtime_ns: 2,
            ctime_s: 3,
            ctime_ns: 4,
            ino: 5,
        });
    }
    assert_eq!(hash_entries(&stamped), h);
}

#[test]
fn nothing_changed_reads_nothing() {
    let s = Skill::standard();
    let mut rec = s.record();
    let before = rec.clone();
    let d = s.check(&mut rec);
    assert!(d.is_clean(), "{d:?}");
    assert_eq!((d.files_hashed, d.bytes_hashed, d.restamped), (0, 0, 0));
    assert_eq!(rec, before);
    assert_eq!(d.summary(), "no changes");
}

#[test]
fn content_change_of_the_same_size_reads_only_that_file() {
    let d = drift_after(|s| s.write("docs/a.md", b"AAA"));
    assert_eq!(strs(&d.changed), ["docs/a.md"]);
    assert!(d.added.is_empty() && d.removed.is_empty());
    assert_eq!((d.files_hashed, d.bytes_hashed), (1, 3));
    assert!(!d.is_clean());
    assert_eq!(d.summary(), "1 changed (docs/a.md)");
}

#[test]
fn size_and_exec_bit_changes_need_no_read() {
    let d = drift_after(|s| s.write("SKILL.md", b"hello skill, longer"));
    assert_eq!(strs(&d.changed), ["SKILL.md"]);
    assert_eq!(d.files_hashed, 0);

    let d = drift_after(|s| {
        s.chmod("docs/a.md", 0o755);
        s.chmod("scripts/run.sh", 0o644);
    });
    assert_eq!(strs(&d.changed), ["docs/a.md", "scripts/run.sh"]);
    assert_eq!(d.files_hashed, 0);

    // Other mode bits are not drift.
    let s = Skill::standard();
    let mut rec = s.record();
    s.chmod("docs/a.md", 0o600);
    s.chmod("scripts/run.sh", 0o700);
    let d = s.check(&mut rec);
    assert!(d.is_clean(), "{d:?}");
    assert_eq!((d.files_hashed, d.restamped), (2, 2));
}

#[test]
fn a_touched_file_is_read_once_then_restamped() {
    let s = Skill::standard();
    let mut rec = s.record();
    s.set_mtime("SKILL.md", 1_700_000_000);
    let d = s.check(&mut rec);
    assert!(d.is_clean(), "{d:?}");
    assert_eq!((d.files_hashed, d.bytes_hashed, d.restamped), (1, 11, 1));
    let d = s.check(&mut rec);
    assert_eq!((d.files_hashed, d.restamped), (0, 0));
    assert!(rec.is_consistent());
}

#[test]
fn a_restored_size_and_mtime_do_not_hide_an_edit() {
    let s = Skill::standard();
    let mut rec = s.record();
    // Past any coarse timestamp tick, so the ctime moves.
    std::thread::sleep(Duration::from_millis(50));
    s.write("SKILL.md", b"HELLO SKILL");
    s.set_mtime("SKILL.md", 1_577_836_800);
    let d = s.check(&mut rec);
    assert_eq!(strs(&d.changed), ["SKILL.md"]);
    assert_eq!(d.files_hashed, 1);
}

#[test]
fn a_file_replaced_under_the_same_times_is_caught_by_its_inode() {
    let d = drift_after(|s| {
        let tmp = s.p("new");
        std::fs::write(&tmp, b"aaX").unwrap();
        std::fs::rename(&tmp, s.p("docs/a.md")).unwrap();
        s.set_mtime("docs/a.md", 1_577_836_800);
    });
    assert_eq!(strs(&d.changed), ["docs/a.md"]);
}

#[test]
fn fresh_files_are_not_trusted_until_they_settle() {
    let start = now_ns();
    let s = Skill::empty();
    s.write("SKILL.md", b"fresh");
    s.write("a/b.md", b"fresh too");
    // Recorded within a second of the writes (a fixed moment, however
    // slow the machine): no stamps.
    let soon = start + 1_000_000_000;
    let mut rec = record_at(&s.dir, &[], soon).unwrap();
    assert!(rec
        .entries
        .values()
        .all(|e| matches!(e, EntryRecord::File { stamp: None, .. } | EntryRecord::Dir)));
    let d = check_at(&s.dir, &mut rec, &[], soon).unwrap();
    assert!(d.is_clean());
    assert_eq!((d.files_hashed, d.restamped), (2, 0));
    // Checked once they have settled: read once more and stamped.
    let d = check_at(&s.dir, &mut rec, &[], later()).unwrap();
    assert_eq!((d.files_hashed, d.restamped), (2, 2));
    let d = check_at(&s.dir, &mut rec, &[], later()).unwrap();
    assert_eq!((d.files_hashed, d.restamped), (0, 0));
    // A full verification on demand.
    rec.forget_stamps();
    let d = check_at(&s.dir, &mut rec, &[], later()).unwrap();
    assert_eq!((d.files_hashed, d.bytes_hashed), (2, 14));
    assert!(d.is_clean());
}

#[test]
fn added_and_removed_files_and_empty_dirs() {
    let d = drift_after(|s| s.write("docs/new.md", b"new"));
    assert_eq!(strs(&d.added), ["docs/new.md"]);
    assert!(d.changed.is_empty() && d.removed.is_empty());
    assert_eq!(d.files_hashed, 0);

    let d = drift_after(|s| std::fs::remove_file(s.p("docs/b.md")).unwrap());
    assert_eq!(strs(&d.removed), ["docs/b.md"]);
    assert!(d.changed.is_empty() && d.added.is_empty());

    let d = drift_after(|s| s.mkdir("more"));
    assert_eq!(strs(&d.added), ["more/"]);

    let d = drift_after(|s| std::fs::remove_dir(s.p("empty")).unwrap());
    assert_eq!(strs(&d.removed), ["empty/"]);

    // A new directory is one entry; its contents are not looked at.
    let d = drift_after(|s| {
        s.write("extra/x.md", b"x");
        s.write("extra/deep/y.md", b"y");
    });
    assert_eq!(strs(&d.added), ["extra/"]);
    assert_eq!(d.files_hashed, 0);
}

#[test]
fn a_deleted_directory_is_one_entry() {
    let d = drift_after(|s| std::fs::remove_dir_all(s.p("docs")).unwrap());
    assert_eq!(strs(&d.removed), ["docs/"]);
    assert!(d.changed.is_empty() && d.added.is_empty());
    assert_eq!(d.summary(), "1 removed (docs/)");
}

#[test]
fn an_entry_of_another_kind_is_a_change() {
    // A file replaced by a directory.
    let d = drift_after(|s| {
        std::fs::remove_file(s.p("SKILL.md")).unwrap();
        s.write("SKILL.md/inner", b"x");
    });
    assert_eq!(strs(&d.changed), ["SKILL.md"]);
    assert!(d.added.is_empty() && d.removed.is_empty());

    // A directory replaced by a file: its old contents are not listed.
    let d = drift_after(|s| {
        std::fs::remove_dir_all(s.p("docs")).unwrap();
        s.write("docs", b"x");
    });
    assert_eq!(strs(&d.changed), ["docs"]);
    assert!(d.added.is_empty() && d.removed.is_empty(), "{d:?}");

    // A file replaced by a symbolic link to identical content.
    let d = drift_after(|s| {
        let copy = s._tmp.path().join("copy");
        std::fs::write(&copy, b"hello skill").unwrap();
        std::fs::remove_file(s.p("SKILL.md")).unwrap();
        symlink(&copy, s.p("SKILL.md")).unwrap();
    });
    assert_eq!(strs(&d.changed), ["SKILL.md"]);
    assert_eq!(d.files_hashed, 0);

    // A directory replaced by a symbolic link to an identical one.
    let d = drift_after(|s| {
        let elsewhere = s._tmp.path().join("docs");
        std::fs::rename(s.p("docs"), &elsewhere).unwrap();
        symlink(&elsewhere, s.p("docs")).unwrap();
    });
    assert_eq!(strs(&d.changed), ["docs"]);
    assert!(d.removed.is_empty(), "{d:?}");
}

#[test]
fn links_and_special_files_are_added_entries() {
    let d = drift_after(|s| {
        symlink("SKILL.md", s.p("link")).unwrap();
        symlink("docs", s.p("dirlink")).unwrap();
        symlink("/nonexistent", s.p("docs/dangling")).unwrap();
        std::os::unix::net::UnixListener::bind(s.p("sock")).unwrap();
    });
    assert_eq!(strs(&d.added), ["dirlink", "docs/dangling", "link", "sock"]);
    assert!(d.changed.is_empty() && d.removed.is_empty());
}

#[cfg(target_os = "linux")]
#[test]
fn a_fifo_in_place_of_a_file_is_a_change_and_does_not_block() {
    let d = drift_after(|s| {
        std::fs::remove_file(s.p("docs/a.md")).unwrap();
        rustix::fs::mknodat(
            CWD,
            s.p("docs/a.md"),
            FileType::Fifo,
            Mode::from_bits_truncate(0o644),
            0,
        )
        .unwrap();
    });
    assert_eq!(strs(&d.changed), ["docs/a.md"]);
}

#[test]
fn a_name_that_is_not_utf8_is_added() {
    use std::os::unix::ffi::OsStrExt;
    let d = drift_after(|s| {
        let name = std::ffi::OsStr::from_bytes(b"bad\xff");
        std::fs::write(s.dir.join(name), b"x").unwrap();
    });
    assert_eq!(strs(&d.added), ["bad\u{fffd}"]);
}

#[test]
fn the_skill_directory_itself() {
    let s = Skill::standard();
    let mut rec = s.record();

    let gone = s._tmp.path().join("gone");
    std::fs::rename(&s.dir, &gone).unwrap();
    let d = s.check(&mut rec);
    assert_eq!(d.root, Root::Missing);
    assert!(!d.is_clean());
    assert_eq!(d.summary(), "the skill directory is missing");
    // A missing parent, or a file as a parent, is missing too.
    let d = check_at(&s.dir.join("deeper"), &mut rec, &[], later()).unwrap();
    assert_eq!(d.root, Root::Missing);

    // A symbolic link to the very same tree is not followed.
    symlink(&gone, &s.dir).unwrap();
    let d = s.check(&mut rec);
    assert_eq!(d.root, Root::NotADirectory);
    assert!(d.changed.is_empty());
    assert!(!d.is_clean());

    std::fs::remove_file(&s.dir).unwrap();
    std::fs::write(&s.dir, b"x").unwrap();
    assert_eq!(s.check(&mut rec).root, Root::NotADirectory);
    let d = check_at(&s.dir.join("deeper"), &mut rec, &[], later()).unwrap();
    assert_eq!(d.root, Root::Missing);

    // record refuses all of these.
    let err = record(&s.dir, &[]).unwrap_err().to_string();
    assert!(err.contains(s.dir.to_str().unwrap()), "{err}");
    let err = record(&gone.join("nope"), &[]).unwrap_err().to_string();
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn ignored_names_are_left_out_at_the_top_only() {
    let s = Skill::standard();
    s.write(".skillsync", b"marker v1");
    s.write("docs/.skillsync", b"not a marker");
    let ignore = [".skillsync"];
    let mut rec = record_at(&s.dir, &ignore, later()).unwrap();
    assert!(!rec.entries.contains_key(".skillsync"));
    assert!(rec.entries.contains_key("docs/.skillsync"));
    // The marker plays no part in the hash.
    std::fs::remove_file(s.p(".skillsync")).unwrap();
    std::fs::remove_file(s.p("docs/.skillsync")).unwrap();
    let without = Skill::standard();
    without.write("docs/.skillsync", b"not a marker");
    assert_eq!(hash_only(&without.dir, &[]).unwrap(), rec.hash);
    // Nor in a check, whatever happens to it.
    let d = check_at(&s.dir, &mut rec, &ignore, later()).unwrap();
    assert_eq!(strs(&d.removed), ["docs/.skillsync"]);
    s.write(".skillsync", b"marker v2, longer");
    s.write("docs/.skillsync", b"not a marker");
    let d = check_at(&s.dir, &mut rec, &ignore, later()).unwrap();
    assert!(d.is_clean(), "{d:?}");
    // Without the ignore list it is an added file.
    let d = check_at(&s.dir, &mut rec, &[], later()).unwrap();
    assert_eq!(strs(&d.added), [".skillsync"]);
}

#[test]
fn round_trips_through_json() {
    let s = Skill::standard();
    let rec = s.record();
    let json = serde_json::to_string_pretty(&rec).unwrap();
    let mut back: TreeRecord = serde_json::from_str(&json).unwrap();
    assert_eq!(back, rec);
    assert!(back.is_consistent());
    let d = s.check(&mut back);
    assert!(d.is_clean());
    assert_eq!(d.files_hashed, 0);

    // The shape of an entry in the state file; a missing stamp is left
    // out.
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["entries"]["docs"], serde_json::json!({"kind": "dir"}));
    let f = &v["entries"]["SKILL.md"];
    assert_eq!(f["kind"], "file");
    assert_eq!(f["size"], 11);
    assert_eq!(f["executable"], false);
    assert_eq!(f["sha256"], Digest::of(b"hello skill").as_str());
    assert!(f["stamp"]["ino"].is_u64());
    let mut unstamped = rec.clone();
    unstamped.forget_stamps();
    let json = serde_json::to_string(&unstamped).unwrap();
    assert!(!json.contains("stamp"), "{json}");
    assert_eq!(
        serde_json::from_str::<TreeRecord>(&json).unwrap(),
        unstamped
    );
    // A bad digest is refused.
    let bad = json.replacen("sha256:", "sha256:zz", 1);
    assert!(serde_json::from_str::<TreeRecord>(&bad).is_err());
    // A tampered record no longer matches its hash.
    let mut tampered = rec;
    tampered.entries.remove("docs/b.md");
    assert!(!tampered.is_consistent());
}

#[test]
fn record_refuses_links_and_special_files() {
    let s = Skill::standard();
    symlink("SKILL.md", s.p("docs/link")).unwrap();
    let err = record(&s.dir, &[]).unwrap_err();
    let msg = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(msg.contains("docs/link"), "{msg}");
    assert!(
        msg.contains("neither a regular file nor a directory"),
        "{msg}"
    );
}

#[test]
fn an_unreadable_file_is_an_error_naming_it() {
    let s = Skill::standard();
    s.chmod("docs/a.md", 0o000);
    let attempt = |dir: PathBuf, mut rec: TreeRecord| -> (String, String) {
        let rerr = record(&dir, &[]).unwrap_err().to_string();
        rec.forget_stamps();
        let cerr = check(&dir, &mut rec, &[]).unwrap_err().to_string();
        (rerr, cerr)
    };
    let mut rec = s.record();
    if let Some(EntryRecord::File { stamp, .. }) = rec.entries.get_mut("docs/a.md") {
        *stamp = None;
    }
    let (rerr, cerr) = if rustix::process::geteuid().is_root() {
        // Root reads anything: look as `nobody`, from a thread of its own
        // (the change is per thread and final).
        for dir in [s._tmp.path(), s.dir.as_path()] {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let dir = s.dir.clone();
        std::thread::spawn(move || {
            rustix::thread::set_thread_uid(rustix::process::Uid::from_raw(65534)).unwrap();
            attempt(dir, rec)
        })
        .join()
        .unwrap()
    } else {
        attempt(s.dir.clone(), rec)
    };
    for err in [rerr, cerr] {
        assert!(err.contains("docs/a.md"), "{err}");
    }
}

#[test]
fn summary_is_bounded() {
    let long = "x".repeat(500);
    let d = Drift {
        changed: vec!["SKILL.md".into(), "docs/a.md".into()],
        added: (0..100).map(|i| format!("{long}{i}")).collect(),
        removed: vec!["old/".into()],
        ..Drift::default()
    };
    let s = d.summary();
    assert!(
        s.starts_with("2 changed (SKILL.md, docs/a.md); 100 added (xxx"),
        "{s}"
    );
    assert!(s.ends_with(", …); 1 removed (old/)"), "{s}");
    assert!(s.chars().count() < 400, "{}", s.len());
    let d = Drift {
        root: Root::NotADirectory,
        ..Drift::default()
    };
    assert!(d.summary().contains("not a directory"));
}
