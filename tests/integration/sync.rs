//! End-to-end syncs against a real registry (through the counting, fault
//! injecting proxy) with the real `skillsyncd` binary: installs into several
//! targets, upgrades, lifecycle promotion and deprecation, pins, indexes,
//! OCI layouts, and bad registry data that must leave the installed version
//! in place.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use crate::support::proxy::Proxy;
use crate::support::registry::Registry;
use crate::support::skillimage::{write_oci_layout, Publisher, RawTar, SkillImage, Status};
use crate::support::{read_tree, wait_until, write_file, KillOnDrop, TestEnv};

/// A registry, a proxy in front of it, a publisher and a sandbox.
struct World {
    env: TestEnv,
    registry: Registry,
    proxy: Proxy,
    publisher: Publisher,
}

impl World {
    fn new() -> World {
        let registry = Registry::start();
        let proxy = Proxy::start(&registry.host());
        let publisher = Publisher::new(registry.host());
        World {
            env: TestEnv::new(),
            registry,
            proxy,
            publisher,
        }
    }

    /// The image reference for `repo` through the proxy.
    fn image(&self, repo: &str) -> String {
        format!("{}/{repo}", self.proxy.host())
    }

    /// Writes a config with the proxy marked insecure, then `skills`.
    fn config(&self, skills: &str) -> PathBuf {
        self.config_with("", skills)
    }

    /// [`World::config`] with more `[daemon]` settings.
    fn config_with(&self, daemon: &str, skills: &str) -> PathBuf {
        self.env.write_config(&format!(
            "[daemon]\npoll_interval = \"1s\"\n{daemon}\n[registries.\"{}\"]\ninsecure = true\n\n\
             [targets.project-x]\npath = \"~/src/project-x/.claude/skills\"\n\n{skills}",
            self.proxy.host()
        ))
    }

    fn once(&self) -> Output {
        self.env.once()
    }

    fn project_x(&self, skill: &str) -> PathBuf {
        self.env
            .home()
            .join("src/project-x/.claude/skills")
            .join(skill)
    }
}

/// Asserts the requests a pass made besides the version check (`GET /v2/`)
/// that a new process's registry client makes once.
fn assert_registry_calls(proxy: &Proxy, expected: usize) {
    let c = proxy.counts();
    let pings = c.for_path("/v2/");
    assert!(pings <= 1, "{}", c.summary());
    assert_eq!(c.total() - pings, expected, "{}", c.summary());
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn hello(version: &str) -> SkillImage {
    SkillImage::new("hello", version)
        .description("Says hello.")
        .file("docs/guide.md", format!("# Guide for {version}\n"))
        .file("scripts/run.sh", "#!/bin/sh\necho hello\n")
}

/// Names in a target dir that skillsyncd uses for temporary trees.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".skillsync-"))
                .collect()
        })
        .unwrap_or_default()
}

/// Inode numbers of every file in a tree: equal before and after means
/// nothing was reinstalled.
fn inodes(dir: &Path) -> BTreeMap<PathBuf, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir") {
            let e = e.expect("dir entry");
            let m = e.metadata().expect("metadata");
            if m.is_dir() {
                stack.push(e.path());
            }
            out.insert(e.path(), m.ino());
        }
    }
    out.insert(
        dir.to_path_buf(),
        std::fs::metadata(dir).expect("metadata").ino(),
    );
    out
}

#[test]
fn installs_into_several_targets_with_one_download_then_polls_cheaply() {
    let w = World::new();
    let img = hello("1.0.0").build();
    let pushed = w.publisher.push(&img);
    w.config(&format!(
        "[skills.hello]\nimage = \"{}\"\ntargets = [\"claude\", \"cursor\", \"project-x\"]\n",
        w.image("examples/hello")
    ));
    let out = w.once();
    assert_eq!(code(&out), 0);
    assert!(
        stdout(&out).contains("installed hello 1.0.0"),
        "{}",
        stdout(&out)
    );
    for dir in [
        w.env.skill_dir("claude", "hello"),
        w.env.skill_dir("cursor", "hello"),
        w.project_x("hello"),
    ] {
        assert_eq!(read_tree(&dir), img.files, "{}", dir.display());
        assert!(leftovers(dir.parent().unwrap()).is_empty());
        let mode = std::fs::metadata(dir.join("scripts/run.sh"))
            .unwrap()
            .mode()
            & 0o7777;
        assert_eq!(mode, 0o644, "modes are normalised");
    }
    let c = w.proxy.counts();
    assert_eq!(
        c.blob_gets_of(&pushed.layer_digest),
        1,
        "one download serves every target: {}",
        c.summary()
    );

    // Steady state with nothing new: one tag list and one HEAD, nothing else.
    let before = inodes(&w.env.skill_dir("claude", "hello"));
    w.proxy.reset();
    let out = w.once();
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("hello 1.0.0 is up to date"));
    let c = w.proxy.counts();
    assert_eq!(
        (
            c.tag_lists(),
            c.manifest_heads(),
            c.manifest_gets(),
            c.blob_gets()
        ),
        (1, 1, 0, 0),
        "{}",
        c.summary()
    );
    assert_registry_calls(&w.proxy, 2);
    assert_eq!(
        inodes(&w.env.skill_dir("claude", "hello")),
        before,
        "nothing reinstalled"
    );

    // The state records, per target, what is installed.
    let state: serde_json::Value = w.env.recorded_state();
    let rec = &state["skills"]["hello"]["targets"]["cursor"]["installed"];
    assert_eq!(rec["manifest_digest"], pushed.manifest_digest.as_str());
    assert_eq!(rec["layer_digest"], pushed.layer_digest.as_str());
    assert_eq!(rec["version"], "1.0.0");
    assert_eq!(rec["status"], "published");
}

#[test]
fn the_single_state_file_of_an_earlier_version_is_carried_over() {
    let w = World::new();
    w.publisher.push(&hello("1.0.0").build());
    w.config(&format!(
        "[skills.hello]\nimage = \"{}\"\ntargets = [\"claude\", \"cursor\"]\n",
        w.image("examples/hello")
    ));
    assert_eq!(code(&w.once()), 0);
    // What an earlier skillsyncd kept: every skill in one `state.json`.
    let state_dir = w.env.state_home().join("skillsync");
    let mut record = w.env.recorded_state()["skills"]["hello"].clone();
    record.as_object_mut().unwrap().remove("version");
    let legacy = serde_json::json!({"version": 1, "skills": {"hello": record}});
    std::fs::write(
        state_dir.join("state.json"),
        serde_json::to_vec_pretty(&legacy).unwrap(),
    )
    .unwrap();
    std::fs::remove_dir_all(state_dir.join("skills")).unwrap();
    let before = inodes(&w.env.skill_dir("claude", "hello"));

    w.proxy.reset();
    let out = w.once();
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("hello 1.0.0 is up to date"),
        "{}",
        stdout(&out)
    );
    // Known from the record, not recognised anew by its marker.
    assert!(!stdout(&out).contains("marker"), "{}", stdout(&out));
    assert_eq!(w.proxy.counts().blob_gets(), 0);
    assert_eq!(inodes(&w.env.skill_dir("claude", "hello")), before);
    assert!(!state_dir.join("state.json").exists());
    let now = w.env.recorded_state();
    for target in ["claude", "cursor"] {
        assert_eq!(
            now["skills"]["hello"]["targets"][target]["installed"],
            record["targets"][target]["installed"],
            "{target}"
        );
    }
}

#[test]
fn a_new_version_replaces_the_old_in_every_target() {
    replaces_the_old_in_every_target("");
}

#[test]
fn with_one_syncfs_per_tree_a_new_version_replaces_the_old_too() {
    replaces_the_old_in_every_target("durability = \"syncfs\"\n");
}

fn replaces_the_old_in_every_target(daemon: &str) {
    let w = World::new();
    w.publisher.push(&hello("1.0.0").build());
    w.config_with(
        daemon,
        &format!(
            "[skills.hello]\nimage = \"{}\"\nversion = \"^1\"\ntargets = [\"claude\", \"project-x\"]\n",
            w.image("examples/hello")
        ),
    );
    assert_eq!(code(&w.once()), 0);
    let v11 = hello("1.1.0").file("docs/new.md", "new in 1.1\n").build();
    w.publisher.push(&v11);
    // Out of the requirement: never chosen.
    w.publisher.push(&hello("2.0.0").build());
    // Junk tags are ignored.
    w.publisher.tag("examples/hello", "1.1.0", "nightly");
    w.publisher.tag("examples/hello", "1.1.0", "v9.9.9");
    let out = w.once();
    assert_eq!(code(&out), 0);
    assert!(
        stdout(&out).contains("updated hello 1.0.0 -> 1.1.0"),
        "{}",
        stdout(&out)
    );
    assert_eq!(w.env.read_skill("claude", "hello"), v11.files);
    assert_eq!(read_tree(&w.project_x("hello")), v11.files);
    assert!(leftovers(&w.env.target_dir("claude")).is_empty());
}

#[test]
fn promotion_moves_each_channel_without_a_second_download() {
    let w = World::new();
    w.publisher.push(&hello("1.0.0").build());
    let v2 = hello("2.0.0").status(Status::Draft).build();
    let pushed = w.publisher.push(&v2);
    w.config(&format!(
        "[skills.on-published]\nimage = \"{0}\"\n\n\
         [skills.on-testing]\nimage = \"{0}\"\nchannel = \"testing\"\n\n\
         [skills.on-draft]\nimage = \"{0}\"\nchannel = \"draft\"\n",
        w.image("examples/hello")
    ));
    let version = |skill: &str| {
        let files = w.env.read_skill("claude", skill);
        String::from_utf8(files["SKILL.md"].clone()).unwrap()
    };
    assert_eq!(code(&w.once()), 0);
    assert!(version("on-published").contains("1.0.0"));
    assert!(version("on-testing").contains("1.0.0"));
    assert_eq!(w.env.read_skill("claude", "on-draft"), v2.files);
    let draft_inodes = inodes(&w.env.skill_dir("claude", "on-draft"));

    // draft -> testing: the testing channel picks it up from the cache.
    let promoted = w
        .publisher
        .promote("examples/hello", "2.0.0", Status::Testing);
    assert_eq!(promoted.layer_digest, pushed.layer_digest);
    assert_ne!(promoted.manifest_digest, pushed.manifest_digest);
    let out = w.once();
    assert_eq!(code(&out), 0);
    assert_eq!(w.env.read_skill("claude", "on-testing"), v2.files);
    assert!(version("on-published").contains("1.0.0"));
    // The draft channel now sees the testing manifest of the same layer:
    // a state update, not a reinstall.
    assert_eq!(inodes(&w.env.skill_dir("claude", "on-draft")), draft_inodes);
    assert!(
        stdout(&out).contains("status draft -> testing"),
        "{}",
        stdout(&out)
    );

    // testing -> published.
    let testing_inodes = inodes(&w.env.skill_dir("claude", "on-testing"));
    w.publisher
        .promote("examples/hello", "2.0.0", Status::Published);
    assert_eq!(code(&w.once()), 0);
    assert_eq!(w.env.read_skill("claude", "on-published"), v2.files);
    assert_eq!(
        inodes(&w.env.skill_dir("claude", "on-testing")),
        testing_inodes
    );
    assert_eq!(inodes(&w.env.skill_dir("claude", "on-draft")), draft_inodes);

    let c = w.proxy.counts();
    assert_eq!(c.blob_gets_of(&pushed.layer_digest), 1, "{}", c.summary());
    let state: serde_json::Value = w.env.recorded_state();
    for skill in ["on-published", "on-testing", "on-draft"] {
        let rec = &state["skills"][skill]["targets"]["claude"]["installed"];
        assert_eq!(rec["status"], "published", "{skill}");
        assert_eq!(rec["version"], "2.0.0", "{skill}");
    }
}

#[test]
fn a_deprecated_version_is_kept_and_reported_but_never_newly_chosen() {
    let w = World::new();
    let v1 = hello("1.0.0").build();
    w.publisher.push(&v1);
    let v11 = hello("1.1.0").build();
    w.publisher.push(&v11);
    w.config(&format!(
        "[skills.hello]\nimage = \"{}\"\n",
        w.image("examples/hello")
    ));
    assert_eq!(code(&w.once()), 0);
    assert_eq!(w.env.read_skill("claude", "hello"), v11.files);
    let before = inodes(&w.env.skill_dir("claude", "hello"));

    // 1.1.0 deprecated; `latest` still points at its published manifest.
    w.publisher
        .promote("examples/hello", "1.1.0", Status::Deprecated);
    let out = w.once();
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("deprecated"), "{}", stdout(&out));
    assert_eq!(
        inodes(&w.env.skill_dir("claude", "hello")),
        before,
        "not reinstalled"
    );

    // A machine without it installed gets 1.0.0, not the deprecated 1.1.0
    // (and not what the stale `latest` says).
    let fresh = TestEnv::new();
    write_file(
        &fresh.config_path(),
        std::fs::read(w.env.config_path()).unwrap().as_slice(),
    );
    let out = fresh.daemon().arg("--once").output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(fresh.read_skill("claude", "hello"), v1.files);

    // A newer published version replaces the deprecated one.
    let v12 = hello("1.2.0").build();
    w.publisher.push(&v12);
    assert_eq!(code(&w.once()), 0);
    assert_eq!(w.env.read_skill("claude", "hello"), v12.files);
}

#[test]
fn a_corrupted_blob_is_rejected_and_the_installed_version_stays() {
    let w = World::new();
    let v1 = hello("1.0.0").build();
    w.publisher.push(&v1);
    w.config(&format!(
        "[skills.hello]\nimage = \"{}\"\ntargets = [\"claude\", \"cursor\"]\n",
        w.image("examples/hello")
    ));
    assert_eq!(code(&w.once()), 0);
    let v2 = hello("2.0.0").build();
    let pushed = w.publisher.push(&v2);

    // Same length, one byte flipped.
    let fault = w.proxy.corrupt_blob(&pushed.layer_digest);
    let out = w.once();
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("hello"), "{}", stderr(&out));
    assert!(stderr(&out).contains("digest mismatch"), "{}", stderr(&out));
    for agent in ["claude", "cursor"] {
        assert_eq!(w.env.read_skill(agent, "hello"), v1.files);
        assert!(leftovers(&w.env.target_dir(agent)).is_empty());
    }
    let blobs = w.env.cache_home().join("skillsync/blobs/sha256");
    let cached: Vec<String> = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let hex = pushed.layer_digest.trim_start_matches("sha256:");
    assert!(
        !cached.iter().any(|n| n.starts_with(hex)),
        "nothing unverified kept: {cached:?}"
    );
    w.proxy.remove(fault);

    // Longer than the descriptor: cut off at the descriptor's size.
    let mut longer = v2.layer().bytes.clone();
    longer.extend(std::iter::repeat_n(0u8, 1 << 20));
    let fault = w.proxy.replace_blob(&pushed.layer_digest, longer);
    let out = w.once();
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("larger than"), "{}", stderr(&out));
    assert_eq!(w.env.read_skill("claude", "hello"), v1.files);
    w.proxy.remove(fault);

    // Truncated.
    let fault = w.proxy.truncate_blob(&pushed.layer_digest, 10);
    assert_eq!(code(&w.once()), 1);
    assert_eq!(w.env.read_skill("claude", "hello"), v1.files);
    w.proxy.remove(fault);

    // The registry heals: the new version goes in.
    assert_eq!(code(&w.once()), 0);
    assert_eq!(w.env.read_skill("cursor", "hello"), v2.files);
}

#[test]
fn a_blob_corrupted_on_the_registry_disk_is_rejected() {
    let w = World::new();
    let v1 = hello("1.0.0").build();
    w.publisher.push(&v1);
    w.config(&format!(
        "[skills.hello]\nimage = \"{}\"\n",
        w.image("examples/hello")
    ));
    assert_eq!(code(&w.once()), 0);
    let pushed = w.publisher.push(&hello("1.1.0").build());
    let data = w.registry.blob_data_path(&pushed.layer_digest);
    let mut bytes = std::fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();
    let out = w.once();
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("digest mismatch"), "{}", stderr(&out));
    assert_eq!(w.env.read_skill("claude", "hello"), v1.files);
}

#[test]
fn a_hostile_layer_is_rejected_before_anything_is_renamed() {
    let w = World::new();
    let v1 = hello("1.0.0").build();
    w.publisher.push(&v1);
    w.config(&format!(
        "[skills.hello]\nimage = \"{}\"\ntargets = [\"claude\", \"cursor\"]\n",
        w.image("examples/hello")
    ));
    assert_eq!(code(&w.once()), 0);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "1.1.0",
            RawTar::new()
                .file("SKILL.md", b"x")
                .symlink("evil", "/etc/passwd")
                .build(),
            "evil",
        ),
        (
            "1.2.0",
            RawTar::new()
                .file("SKILL.md", b"x")
                .file("../escape", b"x")
                .build(),
            "escape",
        ),
        (
            "1.3.0",
            RawTar::new()
                .file("SKILL.md", b"x")
                .file("SKILL.md", b"y")
                .build(),
            "SKILL.md",
        ),
        (
            "1.4.0",
            RawTar::new().file("README.md", b"no skill here").build(),
            "SKILL.md",
        ),
    ];
    for (version, tar, needle) in cases {
        w.publisher.push(&hello(version).raw_tar(tar).build());
        let out = w.once();
        assert_eq!(code(&out), 1, "{version}");
        assert!(stderr(&out).contains(needle), "{version}: {}", stderr(&out));
        for agent in ["claude", "cursor"] {
            assert_eq!(w.env.read_skill(agent, "hello"), v1.files, "{version}");
            assert!(leftovers(&w.env.target_dir(agent)).is_empty(), "{version}");
        }
        assert!(!w.env.home().join("escape").exists());
        assert!(!w.env.target_dir("claude").join("escape").exists());
    }
}

#[test]
fn wrong_image_shapes_are_refused_before_any_blob_is_fetched() {
    let w = World::new();
    let two_layers = hello("1.0.0")
        .extra_layer(hello("9.9.9").build().layer().clone())
        .build();
    w.publisher.push(&two_layers);
    let zstd = hello("1.0.0")
        .layer_media_type("application/vnd.oci.image.layer.v1.tar+zstd")
        .build();
    w.publisher.push_to("examples/zstd", &zstd, &["1.0.0"]);
    let unlabelled = hello("1.0.0").without_status().build();
    w.publisher
        .push_to("examples/nostatus", &unlabelled, &["1.0.0"]);
    w.config(&format!(
        "[skills.two]\nimage = \"{}\"\n\n[skills.zstd]\nimage = \"{}\"\n\n[skills.nostatus]\nimage = \"{}\"\n",
        w.image("examples/hello"),
        w.image("examples/zstd"),
        w.image("examples/nostatus"),
    ));
    let out = w.once();
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(err.contains("exactly one layer"), "{err}");
    assert!(err.contains("not a skill layer"), "{err}");
    assert!(err.contains("io.skillimage.status"), "{err}");
    assert_eq!(
        w.proxy.counts().blob_gets(),
        0,
        "{}",
        w.proxy.counts().summary()
    );
    assert!(!w.env.target_dir("claude").join("two").exists());
}

#[test]
fn an_image_index_is_followed_to_its_linux_manifest() {
    let w = World::new();
    let img = hello("1.0.0").build();
    let pushed = w.publisher.push_index(&img);
    w.config(&format!(
        "[skills.hello]\nimage = \"{}\"\n",
        w.image("examples/hello")
    ));
    assert_eq!(code(&w.once()), 0);
    assert_eq!(w.env.read_skill("claude", "hello"), img.files);
    let state: serde_json::Value = w.env.recorded_state();
    let rec = &state["skills"]["hello"]["targets"]["claude"]["installed"];
    assert_eq!(rec["manifest_digest"], pushed.manifest_digest.as_str());
    // Steady state: HEAD finds the same index digest, nothing else.
    w.proxy.reset();
    assert_eq!(code(&w.once()), 0);
    assert_registry_calls(&w.proxy, 2);
}

#[test]
fn tags_and_digests_pin() {
    let w = World::new();
    let v1 = hello("1.0.0").build();
    let p1 = w.publisher.push(&v1);
    let draft = hello("2.0.0").status(Status::Draft).build();
    w.publisher.push(&draft);
    w.config(&format!(
        "[skills.by-tag]\nimage = \"{0}\"\ntag = \"2.0.0-draft\"\n\n\
         [skills.by-digest]\nimage = \"{0}\"\ndigest = \"{1}\"\n",
        w.image("examples/hello"),
        p1.manifest_digest
    ));
    assert_eq!(code(&w.once()), 0);
    assert_eq!(
        w.env.read_skill("claude", "by-tag"),
        draft.files,
        "a followed tag takes any status"
    );
    assert_eq!(w.env.read_skill("claude", "by-digest"), v1.files);

    // Steady state: one HEAD for the tag, nothing for the digest.
    w.proxy.reset();
    assert_eq!(code(&w.once()), 0);
    let c = w.proxy.counts();
    assert_eq!(c.manifest_heads(), 1, "{}", c.summary());
    assert_registry_calls(&w.proxy, 1);

    // The tag moves: it is followed.
    let moved = hello("2.0.0")
        .status(Status::Draft)
        .file("docs/extra.md", "moved\n")
        .build();
    w.publisher.push(&moved);
    assert_eq!(code(&w.once()), 0);
    assert_eq!(w.env.read_skill("claude", "by-tag"), moved.files);
}

#[test]
fn a_folder_that_is_not_ours_is_a_conflict_and_the_other_targets_sync() {
    let w = World::new();
    let img = hello("1.0.0").build();
    w.publisher.push(&img);
    let mine = w.env.skill_dir("claude", "hello");
    write_file(&mine.join("SKILL.md"), b"my own hand-written skill");
    w.config(&format!(
        "[skills.hello]\nimage = \"{}\"\ntargets = [\"claude\", \"cursor\"]\n",
        w.image("examples/hello")
    ));
    let out = w.once();
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("not installed by skillsyncd"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(mine.join("SKILL.md")).unwrap(),
        b"my own hand-written skill"
    );
    assert_eq!(read_tree(&mine).len(), 1);
    assert_eq!(w.env.read_skill("cursor", "hello"), img.files);
}

#[test]
fn one_failing_skill_does_not_stop_the_others() {
    let w = World::new();
    let img = hello("1.0.0").build();
    w.publisher.push(&img);
    w.config(&format!(
        "[skills.hello]\nimage = \"{}\"\n\n[skills.missing]\nimage = \"{}\"\n\n\
         [skills.unreachable]\nimage = \"127.0.0.1:1/examples/hello\"\n",
        w.image("examples/hello"),
        w.image("examples/does-not-exist"),
    ));
    let out = w.once();
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(err.contains("error: missing:"), "{err}");
    assert!(err.contains("error: unreachable:"), "{err}");
    assert!(err.contains("2 of 3 skills failed"), "{err}");
    assert_eq!(w.env.read_skill("claude", "hello"), img.files);
}

#[test]
fn a_bad_config_exits_2_naming_file_line_and_column() {
    let env = TestEnv::new();
    let path =
        env.write_config("[skills.hello]\nimage = \"127.0.0.1:5000/x\"\ntargets = [\"curser\"]\n");
    let out = env.daemon().arg("--once").output().unwrap();
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(err.contains(&format!("{}:3:12:", path.display())), "{err}");
    assert!(err.contains("curser"), "{err}");
    // skillsyncctl check agrees.
    let out = env.ctl().args(["check"]).output().unwrap();
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains(":3:12:"));
}

#[test]
fn the_bundled_demo_installs_from_its_oci_layout() {
    let env = TestEnv::new();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = env.root().join("demo");
    copy_tree(&repo.join("config/demo"), &work.join("config/demo"));
    std::fs::copy(repo.join("config/demo.toml"), work.join("config/demo.toml")).unwrap();
    let out = env
        .daemon()
        .args(["--once", "--config"])
        .arg(work.join("config/demo.toml"))
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let skills = work.join("demo-out/skills");
    for (ref_name, image) in crate::support::demo::entries() {
        let name = ref_name.split(['/', ':']).nth(1).unwrap();
        if ref_name.ends_with(":1.0.0") || ref_name.ends_with("-testing") {
            assert_eq!(read_tree(&skills.join(name)), image.files, "{ref_name}");
        }
    }
    assert!(stdout(&out).contains("installed hello-world 1.0.0"));
    // Nothing written outside the sandbox's demo-out (and the sandbox HOME
    // stays untouched).
    assert!(!env.home().join(".claude").exists());
}

#[test]
fn a_skillctl_style_layout_works_as_a_source() {
    let env = TestEnv::new();
    let v1 = hello("1.0.0").build();
    let v2 = hello("1.1.0").status(Status::Testing).build();
    let layout = env.root().join("store");
    write_oci_layout(
        &layout,
        &[
            ("examples/hello:1.0.0", &v1),
            ("examples/hello:1.1.0-testing", &v2),
            ("other/thing:1.0.0", &hello("9.0.0").build()),
        ],
    );
    env.write_config(&format!(
        "[registries.local]\nlayout = \"{}\"\n\n[skills.stable]\nimage = \"local/examples/hello\"\n\n\
         [skills.beta]\nimage = \"local/examples/hello\"\nchannel = \"testing\"\n",
        layout.display()
    ));
    let out = env.daemon().arg("--once").output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(env.read_skill("claude", "stable"), v1.files);
    assert_eq!(env.read_skill("claude", "beta"), v2.files);
}

#[test]
fn the_daemon_polls_picks_up_new_versions_and_stops_on_sigterm() {
    let w = World::new();
    w.publisher.push(&hello("1.0.0").build());
    w.config(&format!(
        "[skills.hello]\nimage = \"{}\"\n",
        w.image("examples/hello")
    ));
    let mut daemon = KillOnDrop::spawn(&mut w.env.daemon());
    let skill_md = w.env.skill_dir("claude", "hello").join("SKILL.md");
    let has = |v: &str| std::fs::read_to_string(&skill_md).is_ok_and(|s| s.contains(v));
    wait_until(Duration::from_secs(30), "1.0.0 installed", || has("1.0.0"));
    w.publisher.push(&hello("1.1.0").build());
    wait_until(Duration::from_secs(30), "1.1.0 installed", || has("1.1.0"));
    let pid = daemon.0.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let mut exited = None;
    wait_until(Duration::from_secs(30), "the daemon to exit", || {
        exited = daemon.0.try_wait().unwrap();
        exited.is_some()
    });
    assert_eq!(exited.unwrap().code(), Some(0));
    assert!(leftovers(&w.env.target_dir("claude")).is_empty());
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn every_tag_is_seen_in_a_repository_with_hundreds() {
    let w = World::new();
    w.publisher.push(&hello("1.0.0").build());
    for patch in 1..250 {
        w.publisher
            .tag("examples/hello", "1.0.0", &format!("1.0.{patch}"));
    }
    let newest = hello("3.0.0").build();
    w.publisher.push(&newest);
    w.config(&format!(
        "[skills.hello]\nimage = \"{}\"\n",
        w.image("examples/hello")
    ));
    assert_eq!(code(&w.once()), 0);
    assert_eq!(w.env.read_skill("claude", "hello"), newest.files);
    // distribution 2.8 ignores `n`: a full first page is followed by one
    // more request that adds nothing, and the walk stops there.
    let lists = w.proxy.counts().tag_lists();
    assert!((1..=2).contains(&lists), "{}", w.proxy.counts().summary());
}

#[test]
fn provenance_is_written_as_skillctl_install_writes_it() {
    let w = World::new();
    let img = hello("1.2.0")
        .tags(&["greeting", "demo"])
        .license("Apache-2.0")
        .build();
    let pushed = w.publisher.push(&img);
    // An image without a skill.yaml gets a minimal SkillCard.
    let bare = RawTar::new()
        .file(
            "SKILL.md",
            b"---\nname: bare\ndescription: No card.\n---\nHi.\n",
        )
        .build();
    let bare_pushed = w.publisher.push_to(
        "examples/bare",
        &hello("0.1.0").raw_tar(bare).build(),
        &["0.1.0"],
    );
    w.config(&format!(
        "[skills.hello]\nimage = \"{}\"\n\n[skills.bare]\nimage = \"{}\"\n",
        w.image("examples/hello"),
        w.image("examples/bare")
    ));
    assert_eq!(code(&w.once()), 0);

    let card = |skill: &str| -> yaml_serde::Value {
        let bytes = std::fs::read(w.env.skill_dir("claude", skill).join("skill.yaml")).unwrap();
        yaml_serde::from_slice(&bytes).unwrap()
    };
    let c = card("hello");
    assert_eq!(c["apiVersion"], "skillimage.io/v1alpha1");
    assert_eq!(c["kind"], "SkillCard");
    assert_eq!(c["metadata"]["name"], "hello");
    assert_eq!(c["metadata"]["version"], "1.2.0");
    assert_eq!(c["metadata"]["license"], "Apache-2.0");
    assert_eq!(c["metadata"]["tags"][1], "demo");
    assert_eq!(
        c["provenance"]["source"],
        format!("{}:1.2.0", w.image("examples/hello")).as_str()
    );
    assert_eq!(c["provenance"]["commit"], pushed.manifest_digest.as_str());
    // Every other field kept, in its order, provenance after metadata.
    let keys: Vec<&str> = c
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(keys, ["apiVersion", "kind", "metadata", "provenance"]);

    let b = card("bare");
    assert_eq!(b["kind"], "SkillCard");
    assert_eq!(b["metadata"]["name"], "bare");
    assert_eq!(
        b["provenance"]["commit"],
        bare_pushed.manifest_digest.as_str()
    );
}

#[test]
fn a_registry_that_never_answers_is_cut_off_and_the_installed_version_stays() {
    use crate::support::proxy::{Match, RequestKind};
    let w = World::new();
    let v1 = hello("1.0.0").build();
    w.publisher.push(&v1);
    let other = SkillImage::new("other", "1.0.0").build();
    w.publisher.push(&other);
    let text = |timeout: &str| {
        format!(
            "[daemon]\nrequest_timeout = \"{timeout}\"\n\n[registries.\"{0}\"]\ninsecure = true\n\n\
             [skills.hello]\nimage = \"{0}/examples/hello\"\n\n[skills.other]\nimage = \"{0}/examples/other\"\n",
            w.proxy.host()
        )
    };
    w.env.write_config(&text("1s"));
    assert_eq!(code(&w.once()), 0);
    w.publisher.push(&hello("1.1.0").build());
    // hello's tag list takes far longer than the deadline.
    let slow = w.proxy.delay(
        Match::kind(RequestKind::TagList).and_path("examples/hello"),
        Duration::from_secs(30),
    );
    let out = w.once();
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("no complete answer within 1s"),
        "{}",
        stderr(&out)
    );
    assert_eq!(w.env.read_skill("claude", "hello"), v1.files);
    assert_eq!(w.env.read_skill("claude", "other"), other.files);
    w.proxy.remove(slow);
}

#[test]
fn steady_state_polling_of_50_skills_costs_one_list_and_one_head_each() {
    let w = World::new();
    let mut config = String::new();
    for i in 0..50 {
        let name = format!("s{i:02}");
        w.publisher.push(&SkillImage::new(&name, "1.0.0").build());
        config.push_str(&format!(
            "[skills.{name}]\nimage = \"{}\"\n\n",
            w.image(&format!("examples/{name}"))
        ));
    }
    // Ten more following a tag, ten pinned by digest.
    for i in 0..10 {
        let name = format!("t{i:02}");
        let pushed = w.publisher.push(&SkillImage::new(&name, "1.0.0").build());
        config.push_str(&format!(
            "[skills.{name}]\nimage = \"{}\"\ntag = \"1.0.0\"\n\n[skills.d{i:02}]\nimage = \"{}\"\ndigest = \"{}\"\n\n",
            w.image(&format!("examples/{name}")),
            w.image(&format!("examples/{name}")),
            pushed.manifest_digest
        ));
    }
    w.config(&config);
    assert_eq!(code(&w.once()), 0);
    for pass in 0..3 {
        w.proxy.reset();
        let out = w.once();
        assert_eq!(code(&out), 0, "pass {pass}");
        let c = w.proxy.counts();
        assert_eq!(c.tag_lists(), 50, "pass {pass}: {}", c.summary());
        assert_eq!(c.manifest_heads(), 60, "pass {pass}: {}", c.summary());
        assert_eq!(
            (c.manifest_gets(), c.blob_gets()),
            (0, 0),
            "pass {pass}: {}",
            c.summary()
        );
        assert!(
            c.total() <= 111,
            "one version check per process at most: {}",
            c.summary()
        );
    }
}
