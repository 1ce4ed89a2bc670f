//! Crash safety: the real binary is killed with SIGKILL at pseudo-random
//! points of passes that install a new version into three targets. After
//! each kill every target holds one complete version (or nothing, before
//! its first install); after a restart every target holds the pinned
//! version and nothing temporary is left behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::skillimage::{write_oci_layout, BuiltImage, SkillImage};
use crate::support::{read_tree, KillOnDrop, TestEnv};

/// How many times the binary is killed.
const KILLS: u64 = 50;
/// How many of those kills must land while an install is under way.
const MIN_MID_INSTALL: u64 = 10;
/// Files in the skill besides `SKILL.md` and `skill.yaml`.
const FILES: usize = 150;
const TARGETS: [&str; 3] = ["alpha", "beta", "gamma"];

fn version(v: &str) -> BuiltImage {
    let mut image = SkillImage::new("bulk", v)
        .description("Many files, so an install takes a while.")
        .file(
            "SKILL.md",
            format!(
                "---\nname: bulk\ndescription: Many files, so an install takes a while.\n---\n\n\
                 # Bulk, version {v}\n"
            ),
        );
    for i in 0..FILES {
        // A third at the root, the rest spread over nested directories.
        let path = match i % 3 {
            0 => format!("part-{i:03}.md"),
            1 => format!("sections/s{}/part-{i:03}.md", i % 7),
            _ => format!("sections/s{}/deep/part-{i:03}.md", i % 5),
        };
        let line = format!("{path}: version {v}\n");
        image = image.file(&path, line.repeat(1 + (i * 37) % 80));
    }
    image.build()
}

fn config(layout: &Path, targets: &BTreeMap<&str, PathBuf>, tag: &str) -> String {
    let mut toml = format!(
        "[registries.demo]\nlayout = {:?}\n\n",
        layout.display().to_string()
    );
    for (name, path) in targets {
        toml.push_str(&format!(
            "[targets.{name}]\npath = {:?}\n\n",
            path.display().to_string()
        ));
    }
    let names: Vec<String> = targets.keys().map(|n| format!("{n:?}")).collect();
    toml.push_str(&format!(
        "[skills.bulk]\nimage = \"demo/examples/bulk\"\ntag = {tag:?}\ntargets = [{}]\n",
        names.join(", ")
    ));
    toml
}

/// A pseudo-random fraction of `span` from a small linear congruential
/// generator seeded with `seed`: the same delays on every run.
fn pseudo_random_delay(seed: u64, span: Duration) -> Duration {
    let mut x = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
    }
    // The top 31 bits, as a fraction of 2^31.
    span.mul_f64((x >> 33) as f64 / (1u64 << 31) as f64)
}

/// Entries in `dir` whose names contain `marker`.
fn entries_with(dir: &Path, marker: &str) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.expect("a directory entry").file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| n.contains(marker))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("read {}: {e}", dir.display()),
    }
}

/// The sandbox: the layout with both versions, three targets, and where
/// the binary keeps its state and cache.
struct Setup {
    env: TestEnv,
    layout: PathBuf,
    targets: BTreeMap<&'static str, PathBuf>,
}

impl Setup {
    fn new(v1: &BuiltImage, v2: &BuiltImage) -> Setup {
        let env = TestEnv::new();
        let layout = env.root().join("layout");
        write_oci_layout(
            &layout,
            &[("examples/bulk:1.0.0", v1), ("examples/bulk:2.0.0", v2)],
        );
        let targets = TARGETS
            .iter()
            .map(|name| (*name, env.root().join("agents").join(name)))
            .collect();
        Setup {
            env,
            layout,
            targets,
        }
    }

    fn pin(&self, tag: &str) {
        self.env
            .write_config(&config(&self.layout, &self.targets, tag));
    }

    fn state(&self) -> serde_json::Value {
        self.env.recorded_state()
    }

    fn blob_dir(&self) -> PathBuf {
        self.env.cache_home().join("skillsync/blobs/sha256")
    }

    /// `.skillsync-*` entries in any target.
    fn temporaries(&self) -> Vec<String> {
        self.targets
            .values()
            .flat_map(|dir| entries_with(dir, ".skillsync-"))
            .collect()
    }

    /// Which version each target's skill folder holds: `None` when there is
    /// no folder; panics when the folder is anything but one complete
    /// version.
    fn versions(&self, v1: &BuiltImage, v2: &BuiltImage, when: &str) -> Vec<Option<u8>> {
        self.targets
            .iter()
            .map(|(name, dir)| {
                let skill = dir.join("bulk");
                if !skill.exists() {
                    return None;
                }
                let files = read_tree(&skill);
                if files == v1.files {
                    Some(1)
                } else if files == v2.files {
                    Some(2)
                } else {
                    let differ = files
                        .keys()
                        .chain(v1.files.keys())
                        .filter(|p| files.get(*p) != v1.files.get(*p))
                        .filter(|p| files.get(*p) != v2.files.get(*p))
                        .take(5)
                        .collect::<Vec<_>>();
                    panic!(
                        "{when}: target {name} holds {} files that are neither version \
                         (first differences: {differ:?})",
                        files.len()
                    )
                }
            })
            .collect()
    }
}

/// Where kills landed.
#[derive(Debug, Default)]
struct Landed {
    /// Nothing had changed yet.
    before: u64,
    /// An install was under way: temporaries, a pending marker, a partial
    /// download, or only some targets switched.
    during: u64,
    /// Every target held the new version and nothing was pending.
    after: u64,
    /// Restarts that pinned the previous version again (a rollback after a
    /// crash).
    rollbacks: u64,
}

#[test]
fn killed_installs_leave_a_complete_version_and_recover_on_restart() {
    let started = Instant::now();
    let v1 = version("1.0.0");
    let v2 = version("2.0.0");
    assert_eq!(
        v1.files.keys().collect::<Vec<_>>(),
        v2.files.keys().collect::<Vec<_>>()
    );
    let image = |v: u8| if v == 1 { &v1 } else { &v2 };
    let tag = |v: u8| if v == 1 { "1.0.0" } else { "2.0.0" };

    // How long a pass that swaps every target takes here (the shorter of
    // two), measured in a separate sandbox so the crashes below start from
    // empty targets.
    let typical = {
        let probe = Setup::new(&v1, &v2);
        probe.pin("1.0.0");
        probe.env.once_ok();
        let mut shortest = Duration::MAX;
        for v in [2, 1] {
            probe.pin(tag(v));
            let t = Instant::now();
            probe.env.once_ok();
            shortest = shortest.min(t.elapsed());
            assert_eq!(probe.versions(&v1, &v2, "probe"), vec![Some(v); 3]);
        }
        shortest
    };
    // Kills spread from process start to well past a typical pass.
    let span = typical.mul_f64(1.5);

    let setup = Setup::new(&v1, &v2);
    let mut installed: Vec<Option<u8>> = vec![None; TARGETS.len()];
    let mut current: u8 = 2;
    let mut landed = Landed::default();
    for i in 0..KILLS {
        let next = 3 - current;
        setup.pin(tag(next));
        let delay = pseudo_random_delay(i, span);
        let mut child = KillOnDrop::spawn(
            setup
                .env
                .daemon()
                .arg("--once")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null()),
        );
        std::thread::sleep(delay);
        child.kill().expect("send SIGKILL");
        child.wait().expect("reap the killed skillsyncd");
        drop(child);

        let when = format!("after kill {i} (delay {delay:?}, installing {})", tag(next));
        let after_kill = setup.versions(&v1, &v2, &when);
        for (t, (was, now)) in installed.iter().zip(&after_kill).enumerate() {
            assert!(
                now.is_some() || was.is_none(),
                "{when}: target {} lost its skill folder",
                TARGETS[t]
            );
        }
        let pending = setup.state()["skills"]["bulk"]["targets"]
            .as_object()
            .is_some_and(|t| t.values().any(|t| !t["pending"].is_null()));
        let traces = !setup.temporaries().is_empty()
            || !entries_with(&setup.blob_dir(), ".partial-").is_empty()
            || pending;
        let changed = installed
            .iter()
            .zip(&after_kill)
            .filter(|(was, now)| was != now)
            .count();
        if traces || (changed > 0 && changed < TARGETS.len()) {
            landed.during += 1;
        } else if changed == 0 {
            landed.before += 1;
        } else {
            landed.after += 1;
        }

        // Every third restart goes back to the version pinned before the
        // crash, as a user reverting a change would.
        let wanted = if i % 3 == 2 {
            landed.rollbacks += 1;
            current
        } else {
            next
        };
        setup.pin(tag(wanted));
        setup.env.once_ok();
        let when = format!(
            "after the restart following kill {i} (pinned {})",
            tag(wanted)
        );
        assert_eq!(
            setup.versions(&v1, &v2, &when),
            vec![Some(wanted); TARGETS.len()],
            "{when}"
        );
        assert_eq!(setup.temporaries(), Vec::<String>::new(), "{when}");
        assert_eq!(
            entries_with(&setup.blob_dir(), ".partial-"),
            Vec::<String>::new(),
            "{when}"
        );
        let state = setup.state();
        let recorded = &state["skills"]["bulk"]["targets"];
        for name in TARGETS {
            assert_eq!(
                recorded[name]["installed"]["manifest_digest"],
                image(wanted).manifest_digest.as_str(),
                "{when}: the state's record of {name}: {state:#}"
            );
            assert!(recorded[name]["pending"].is_null(), "{when}: {state:#}");
        }
        installed = vec![Some(wanted); TARGETS.len()];
        current = wanted;
    }

    eprintln!(
        "{KILLS} kills over 0..{span:?} (a typical pass took {typical:?}): {landed:?}; \
         {:?} in all",
        started.elapsed()
    );
    assert!(
        landed.during >= MIN_MID_INSTALL,
        "only {} of {KILLS} kills landed during an install: {landed:?}",
        landed.during
    );
}
