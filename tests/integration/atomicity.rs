//! Atomicity of the swap, seen from an agent: while the real binary swaps
//! one skill between two versions again and again, readers that keep
//! opening `SKILL.md` and every other file of the skill by path never find
//! the folder or a file missing, and never read a file that mixes the two
//! versions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::support::skillimage::{write_oci_layout, BuiltImage, SkillImage};
use crate::support::{read_tree, TestEnv};

/// How many times the installed version changes.
const SWAPS: u64 = 120;
/// How many threads read the skill concurrently.
const READERS: usize = 1;

/// The skill's files besides `SKILL.md` and `skill.yaml`: a few at the
/// root, a few in nested directories.
const FILES: &[&str] = &[
    "reference.md",
    "checklist.md",
    "docs/guide.md",
    "docs/faq.md",
    "docs/api/details.md",
    "scripts/run.sh",
    "examples/one/input.txt",
    "examples/one/expected.txt",
];

/// Text of `size` bytes or a little more, every line naming the file and
/// the version, so a read that mixes two versions cannot pass for either.
fn contents(version: &str, path: &str, size: usize) -> String {
    let mut text = String::with_capacity(size + 64);
    let mut line = 0u32;
    while text.len() < size {
        text.push_str(&format!("{path} version {version} line {line:06}\n"));
        line += 1;
    }
    text
}

fn version(v: &str) -> BuiltImage {
    let mut image = SkillImage::new("flip", v)
        .description("Swapped back and forth while being read.")
        .file(
            "SKILL.md",
            format!(
                "---\nname: flip\ndescription: Swapped back and forth while being read.\n---\n\n{}",
                contents(v, "SKILL.md", 48 * 1024)
            ),
        );
    for (i, path) in FILES.iter().enumerate() {
        image = image.file(path, contents(v, path, 16 * 1024 + i * 6 * 1024));
    }
    image.build()
}

fn config(layout: &Path, target: &Path, tag: &str) -> String {
    format!(
        "[registries.demo]\nlayout = {layout:?}\n\n\
         [targets.sandbox]\npath = {target:?}\n\n\
         [skills.flip]\nimage = \"demo/examples/flip\"\ntag = {tag:?}\ntargets = [\"sandbox\"]\n",
        layout = layout.display().to_string(),
        target = target.display().to_string(),
    )
}

fn leftovers(target: &Path) -> Vec<String> {
    std::fs::read_dir(target)
        .expect("read the target directory")
        .map(|e| e.expect("a directory entry").file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".skillsync-"))
        .collect()
}

/// What the readers saw.
#[derive(Debug, Default)]
struct Seen {
    /// Full passes over every file.
    passes: u64,
    /// Passes that began and ended within one run of the binary.
    passes_within_a_run: u64,
    /// Passes that read some files of one version and some of the other
    /// (the swap happened between two opens of the pass).
    mixed_passes: u64,
    /// Files read, per version.
    files_v1: u64,
    files_v2: u64,
    /// Times a reader's `SKILL.md` changed version from its previous pass.
    changes_seen: u64,
    /// What went wrong, if anything (the first few).
    failures: Vec<String>,
}

struct Shared {
    stop: AtomicBool,
    /// Odd while a run of the binary is under way; incremented at each
    /// start and each end.
    run_clock: AtomicU64,
    /// Passes completed, per reader; `u64::MAX` once a reader has stopped.
    passes: Vec<AtomicU64>,
    seen: Mutex<Seen>,
}

impl Shared {
    /// Waits until every reader has completed a pass that began after this
    /// call (or has stopped).
    fn wait_for_fresh_passes(&self) {
        let start: Vec<u64> = self
            .passes
            .iter()
            .map(|p| p.load(Ordering::SeqCst))
            .collect();
        for (p, start) in self.passes.iter().zip(start) {
            while p.load(Ordering::SeqCst) < start.saturating_add(2) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }
}

fn reader(
    id: usize,
    shared: Arc<Shared>,
    skill: PathBuf,
    paths: Vec<String>,
    v1: BTreeMap<String, Vec<u8>>,
    v2: BTreeMap<String, Vec<u8>>,
) {
    let mut local = Seen::default();
    let mut last_skill_md: Option<u8> = None;
    let mut buf = Vec::with_capacity(128 * 1024);
    while !shared.stop.load(Ordering::SeqCst) {
        let clock_before = shared.run_clock.load(Ordering::SeqCst);
        let mut versions_in_pass = [false; 2];
        match std::fs::File::open(&skill).and_then(|dir| dir.metadata()) {
            Ok(m) if m.is_dir() => {}
            Ok(m) => local
                .failures
                .push(format!("{} is not a directory: {m:?}", skill.display())),
            Err(e) => local
                .failures
                .push(format!("{} cannot be opened: {e}", skill.display())),
        }
        for path in &paths {
            buf.clear();
            let read = std::fs::File::open(skill.join(path))
                .and_then(|mut f| std::io::Read::read_to_end(&mut f, &mut buf));
            if let Err(e) = read {
                local.failures.push(format!("{path}: {e}"));
                continue;
            }
            // The installed skill.yaml carries provenance; the reader checks
            // the card it holds, which must still be wholly one version's.
            if path == "skill.yaml" {
                let card = crate::support::card_without_provenance(&buf);
                buf.clear();
                buf.extend_from_slice(&card);
            }
            let which = if buf == v1[path] {
                local.files_v1 += 1;
                0
            } else if buf == v2[path] {
                local.files_v2 += 1;
                1
            } else {
                let head = String::from_utf8_lossy(&buf[..buf.len().min(80)]).into_owned();
                local.failures.push(format!(
                    "{path}: {} bytes equal to neither version, starting {head:?}",
                    buf.len()
                ));
                continue;
            };
            versions_in_pass[which] = true;
            if path == "SKILL.md" {
                if last_skill_md.is_some_and(|last| last != which as u8) {
                    local.changes_seen += 1;
                }
                last_skill_md = Some(which as u8);
            }
        }
        let clock_after = shared.run_clock.load(Ordering::SeqCst);
        local.passes += 1;
        if clock_before == clock_after && clock_before % 2 == 1 {
            local.passes_within_a_run += 1;
        }
        if versions_in_pass[0] && versions_in_pass[1] {
            local.mixed_passes += 1;
        }
        shared.passes[id].fetch_add(1, Ordering::SeqCst);
        if local.failures.len() >= 10 {
            break;
        }
    }
    shared.passes[id].store(u64::MAX, Ordering::SeqCst);
    let mut seen = shared.seen.lock().expect("the readers' tally");
    seen.passes += local.passes;
    seen.passes_within_a_run += local.passes_within_a_run;
    seen.mixed_passes += local.mixed_passes;
    seen.files_v1 += local.files_v1;
    seen.files_v2 += local.files_v2;
    seen.changes_seen += local.changes_seen;
    seen.failures.extend(local.failures);
}

#[test]
fn readers_never_see_a_missing_or_torn_skill_while_versions_swap() {
    let env = TestEnv::new();
    let v1 = version("1.0.0");
    let v2 = version("2.0.0");
    let paths: Vec<String> = v1.files.keys().cloned().collect();
    assert_eq!(
        paths,
        v2.files.keys().cloned().collect::<Vec<_>>(),
        "both versions hold the same files"
    );
    assert!(paths.iter().any(|p| p == "SKILL.md") && paths.len() >= 10);
    for path in &paths {
        assert_ne!(v1.files[path], v2.files[path], "{path} differs by version");
    }

    let layout = env.root().join("layout");
    write_oci_layout(
        &layout,
        &[("examples/flip:1.0.0", &v1), ("examples/flip:2.0.0", &v2)],
    );
    let target = env.root().join("agent-skills");
    let skill = target.join("flip");

    // The first install is a plain rename into an empty target; swaps
    // start from there, with the readers already running.
    env.write_config(&config(&layout, &target, "1.0.0"));
    env.once_ok();
    assert_eq!(read_tree(&skill), v1.files);

    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        run_clock: AtomicU64::new(0),
        passes: (0..READERS).map(|_| AtomicU64::new(0)).collect(),
        seen: Mutex::new(Seen::default()),
    });
    let readers: Vec<_> = (0..READERS)
        .map(|id| {
            let (shared, skill, paths) = (shared.clone(), skill.clone(), paths.clone());
            let (f1, f2) = (v1.files.clone(), v2.files.clone());
            std::thread::spawn(move || reader(id, shared, skill, paths, f1, f2))
        })
        .collect();
    // Every reader has seen 1.0.0 before the first swap.
    shared.wait_for_fresh_passes();

    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for swap in 1..=SWAPS {
            let (tag, expected) = if swap % 2 == 1 {
                ("2.0.0", &v2)
            } else {
                ("1.0.0", &v1)
            };
            env.write_config(&config(&layout, &target, tag));
            shared.run_clock.fetch_add(1, Ordering::SeqCst);
            env.once_ok();
            shared.run_clock.fetch_add(1, Ordering::SeqCst);
            assert_eq!(
                leftovers(&target),
                Vec::<String>::new(),
                "temporary entries left in the target after swap {swap}"
            );
            // Every reader sees the new version before the next swap.
            shared.wait_for_fresh_passes();
            assert_eq!(
                std::fs::read(skill.join("SKILL.md")).expect("read SKILL.md"),
                expected.files["SKILL.md"],
                "after swap {swap}"
            );
        }
    }));
    shared.stop.store(true, Ordering::SeqCst);
    for r in readers {
        r.join().expect("a reader thread panicked");
    }
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }

    let seen = shared.seen.lock().expect("the readers' tally");
    eprintln!("{SWAPS} swaps; readers: {seen:?}");
    assert!(
        seen.failures.is_empty(),
        "a reader saw a missing or torn skill: {:#?}",
        seen.failures
    );
    assert_eq!(
        read_tree(&skill),
        v1.files,
        "an even number of swaps ends on 1.0.0"
    );
    // The readers read throughout: many passes, many of them entirely
    // inside a run of the binary, and they saw the version change.
    assert!(
        seen.passes >= SWAPS * READERS as u64,
        "too few passes: {seen:?}"
    );
    assert!(
        seen.passes_within_a_run >= SWAPS / 2,
        "too few passes during runs: {seen:?}"
    );
    assert_eq!(
        seen.changes_seen,
        SWAPS * READERS as u64,
        "every reader saw every swap: {seen:?}"
    );
    assert!(seen.files_v1 > 0 && seen.files_v2 > 0, "{seen:?}");
}
