//! Tests of `unpack`: layers unpacked whole, and hostile archives (escaping
//! paths, links, devices, duplicates, oversized entries) refused.
//!
//! Built for `cargo test` only: no code outside tests may use anything here.

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

/// `count` files `x{i}/a/.../f`, 30 path components each: 29 directories
/// that only the file's path implies, and the file.
fn deep_paths(count: usize) -> Tar {
    let middle = "a/".repeat(28);
    let mut tar = Tar::new();
    for i in 0..count {
        tar.file(&format!("x{i}/{middle}f"), b"");
    }
    tar
}

#[test]
fn directories_implied_by_paths_count_as_entries() {
    // 1,002 entries that would create 29,058 directories: refused at the
    // default cap of 10,000, and nothing is created outside the staging
    // directory.
    let tar = deep_paths(1002).end();
    let err = rejected(&tar);
    assert!(
        matches!(err, UnpackError::TooManyEntries { limit: 10_000 }),
        "{err:?}"
    );

    // Just under and at the cap: 333 such paths create 9,990 directories
    // and files, ten more files make 10,000.
    let mut tar = deep_paths(333);
    for i in 0..10 {
        tar.file(&format!("f{i}"), b"");
    }
    let tar = tar.end();
    let s = Scratch::new();
    let got =
        unpack_tar_gz_with(&gz(&tar)[..], &s.dest, &Limits::default(), SyncMode::Caller).unwrap();
    s.assert_contained();
    assert_eq!((got.files, got.dirs), (343, 333 * 29));
}

#[test]
fn each_directory_counts_once_whether_listed_or_implied() {
    let limits = Limits {
        max_entries: 3,
        ..Limits::default()
    };
    // `a` and `a/b` are implied by the file, then listed: 3 created.
    let tar = Tar::new().file("a/b/f", b"").dir("a/").dir("a/b/").end();
    let s = Scratch::new();
    let got = s.unpack(&gz(&tar), &limits).unwrap();
    assert_eq!((got.files, got.dirs), (1, 2));
    // One entry, but four things to create.
    let err = rejected_with(&Tar::new().file("a/b/c/f", b"").end(), &limits);
    assert!(
        matches!(err, UnpackError::TooManyEntries { limit: 3 }),
        "{err:?}"
    );
    let err = rejected_with(&Tar::new().dir("a/b/c/d/").end(), &limits);
    assert!(
        matches!(err, UnpackError::TooManyEntries { limit: 3 }),
        "{err:?}"
    );
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
