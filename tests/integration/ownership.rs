//! Installed skills have an owner and a history: ownership that survives a
//! lost state dir, local edits (drift) under each `on_drift` policy, and
//! pruning of what the config no longer names — with the real binary and
//! a real registry.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::registry::Registry;
use crate::support::skillimage::{BuiltImage, Publisher, SkillImage};
use crate::support::{read_tree, write_file, TestEnv};

struct World {
    env: TestEnv,
    _registry: Registry,
    host: String,
    publisher: Publisher,
}

impl World {
    fn new() -> World {
        let registry = Registry::start();
        let host = registry.host();
        let publisher = Publisher::new(host.clone());
        World {
            env: TestEnv::new(),
            _registry: registry,
            host,
            publisher,
        }
    }

    /// A config with `skills` (name, extra lines) all from
    /// `examples/<name>`, into claude and cursor.
    fn config(&self, daemon: &str, skills: &[(&str, &str)]) {
        let mut text = format!(
            "[daemon]\n{daemon}\n\n[registries.\"{}\"]\ninsecure = true\n\n[defaults]\ntargets = [\"claude\", \"cursor\"]\n",
            self.host
        );
        for (name, extra) in skills {
            text.push_str(&format!(
                "\n[skills.{name}]\nimage = \"{}/examples/{name}\"\n{extra}\n",
                self.host
            ));
        }
        self.env.write_config(&text);
    }

    fn once(&self) -> Output {
        self.env.once()
    }

    fn dir(&self, agent: &str, skill: &str) -> PathBuf {
        self.env.skill_dir(agent, skill)
    }

    fn state(&self) -> serde_json::Value {
        self.env.recorded_state()
    }
}

fn skill(name: &str, version: &str) -> BuiltImage {
    SkillImage::new(name, version)
        .description("An owned skill.")
        .file("docs/guide.md", format!("guide {version}\n"))
        .build()
}

fn out_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every byte and name under `dir`, for "untouched" checks.
fn fingerprint(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p.clone());
                out.push((p.display().to_string(), Vec::new()));
            } else {
                out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_hand_written_skill_is_untouched_byte_for_byte_while_its_sibling_target_syncs() {
    let w = World::new();
    let img = skill("hello", "1.0.0");
    w.publisher.push(&img);
    let mine = w.dir("claude", "hello");
    write_file(&mine.join("SKILL.md"), b"---\nname: hello\n---\nmine\n");
    write_file(
        &mine.join("skill.yaml"),
        b"kind: SkillCard\n# skillctl install put me here\n",
    );
    write_file(&mine.join("notes/n.md"), b"n");
    let before = fingerprint(&mine);
    w.config("", &[("hello", "")]);
    for _ in 0..2 {
        let out = w.once();
        assert_eq!(out.status.code(), Some(1));
        assert!(out_text(&out).contains("not installed by skillsyncd"));
    }
    assert_eq!(fingerprint(&mine), before);
    assert_eq!(read_tree(&w.dir("cursor", "hello")), img.files);
}

#[test]
fn a_lost_state_dir_turns_nothing_into_a_conflict_and_updates_continue() {
    let w = World::new();
    w.publisher.push(&skill("hello", "1.0.0"));
    w.config("", &[("hello", "")]);
    assert_eq!(w.once().status.code(), Some(0));
    std::fs::remove_dir_all(w.env.state_home().join("skillsync")).unwrap();

    let v2 = skill("hello", "1.1.0");
    w.publisher.push(&v2);
    let out = w.once();
    assert_eq!(out.status.code(), Some(0), "{}", out_text(&out));
    assert!(
        out_text(&out).contains("managed again"),
        "{}",
        out_text(&out)
    );
    for agent in ["claude", "cursor"] {
        assert_eq!(read_tree(&w.dir(agent, "hello")), v2.files);
    }
    let state = w.state();
    assert_eq!(
        state["skills"]["hello"]["targets"]["claude"]["installed"]["version"],
        "1.1.0"
    );
}

#[test]
fn an_edited_skill_is_reported_and_left_alone_by_default() {
    let w = World::new();
    w.publisher.push(&skill("hello", "1.0.0"));
    w.config("", &[("hello", "")]);
    assert_eq!(w.once().status.code(), Some(0));
    let edited = w.dir("claude", "hello").join("SKILL.md");
    std::fs::write(&edited, "my local change\n").unwrap();

    let v2 = skill("hello", "1.1.0");
    w.publisher.push(&v2);
    let out = w.once();
    assert_eq!(out.status.code(), Some(1));
    assert!(out_text(&out).contains("SKILL.md"), "{}", out_text(&out));
    assert_eq!(
        std::fs::read_to_string(&edited).unwrap(),
        "my local change\n"
    );
    // The other target is not held back.
    assert_eq!(read_tree(&w.dir("cursor", "hello")), v2.files);

    // A folder deleted by hand is reported too, not silently restored.
    std::fs::remove_dir_all(w.dir("cursor", "hello")).unwrap();
    let out = w.once();
    assert!(out_text(&out).contains("deleted"), "{}", out_text(&out));
    assert!(!w.dir("cursor", "hello").exists());
}

#[test]
fn restore_backs_up_the_edit_and_puts_the_installed_version_back() {
    let w = World::new();
    let img = skill("hello", "1.0.0");
    w.publisher.push(&img);
    w.config("", &[("hello", "on_drift = \"restore\"")]);
    assert_eq!(w.once().status.code(), Some(0));
    std::fs::write(w.dir("claude", "hello").join("SKILL.md"), "edited\n").unwrap();
    write_file(&w.dir("claude", "hello").join("extra.md"), b"added by hand");
    std::fs::remove_dir_all(w.dir("cursor", "hello")).unwrap();

    let out = w.once();
    assert_eq!(out.status.code(), Some(0), "{}", out_text(&out));
    assert_eq!(read_tree(&w.dir("claude", "hello")), img.files);
    assert_eq!(read_tree(&w.dir("cursor", "hello")), img.files);
    let backups = w.env.state_home().join("skillsync/backups/hello");
    let backup = std::fs::read_dir(&backups)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(
        std::fs::read_to_string(backup.join("SKILL.md")).unwrap(),
        "edited\n"
    );
    assert_eq!(
        std::fs::read_to_string(backup.join("extra.md")).unwrap(),
        "added by hand"
    );
}

#[test]
fn a_removed_skill_and_a_removed_target_are_pruned_unless_edited() {
    let w = World::new();
    for name in ["alpha", "beta", "gamma"] {
        w.publisher.push(&skill(name, "1.0.0"));
    }
    w.config("", &[("alpha", ""), ("beta", ""), ("gamma", "")]);
    assert_eq!(w.once().status.code(), Some(0));
    std::fs::write(w.dir("claude", "gamma").join("SKILL.md"), "edited\n").unwrap();

    // alpha removed, beta loses cursor, gamma (edited) removed.
    w.config("", &[("beta", "targets = [\"claude\"]")]);
    let out = w.once();
    assert_eq!(out.status.code(), Some(0), "{}", out_text(&out));
    let text = out_text(&out);
    assert!(text.contains("removed alpha from claude"), "{text}");
    assert!(!w.dir("claude", "alpha").exists());
    assert!(!w.dir("cursor", "alpha").exists());
    assert!(w.dir("claude", "beta").exists());
    assert!(!w.dir("cursor", "beta").exists());
    // Edited: kept in claude; the unedited copy in cursor goes.
    assert_eq!(
        std::fs::read_to_string(w.dir("claude", "gamma").join("SKILL.md")).unwrap(),
        "edited\n"
    );
    assert!(!w.dir("cursor", "gamma").exists());
    // No staging or old trees left in the target dirs.
    for agent in ["claude", "cursor"] {
        let leftovers: Vec<_> = std::fs::read_dir(w.env.target_dir(agent))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".skillsync"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

#[test]
fn prune_false_keeps_what_the_config_no_longer_names() {
    let w = World::new();
    w.publisher.push(&skill("alpha", "1.0.0"));
    w.publisher.push(&skill("beta", "1.0.0"));
    w.config("prune = false", &[("alpha", ""), ("beta", "")]);
    assert_eq!(w.once().status.code(), Some(0));
    w.config("prune = false", &[("beta", "")]);
    assert_eq!(w.once().status.code(), Some(0));
    assert!(w.dir("claude", "alpha").exists());
    assert!(w.dir("cursor", "alpha").exists());
}

/// Every name, size and byte under `dir`, hashed: equal before and after
/// means nothing was written.
fn tree_hash(dir: &Path) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    for (path, bytes) in fingerprint(dir) {
        h.update(path.as_bytes());
        h.update([0]);
        h.update(&bytes);
        h.update([0]);
    }
    hex::encode(h.finalize())
}

#[test]
fn a_dry_run_says_what_it_would_do_and_writes_nothing() {
    let w = World::new();
    for name in ["alpha", "beta", "gamma"] {
        w.publisher.push(&skill(name, "1.0.0"));
    }
    w.config(
        "",
        &[
            ("alpha", ""),
            ("beta", ""),
            ("gamma", "on_drift = \"restore\""),
        ],
    );
    assert_eq!(w.once().status.code(), Some(0));
    // An update, an annotation-only change, a removed skill, an edit to
    // restore, a new skill, and a folder that is not ours.
    w.publisher.push(&skill("alpha", "1.1.0"));
    w.publisher.promote(
        "examples/beta",
        "1.0.0",
        crate::support::skillimage::Status::Deprecated,
    );
    std::fs::write(w.dir("claude", "gamma").join("SKILL.md"), "edited\n").unwrap();
    w.publisher.push(&skill("delta", "1.0.0"));
    w.publisher.push(&skill("theirs", "1.0.0"));
    write_file(&w.dir("claude", "theirs").join("SKILL.md"), b"not ours");
    w.config(
        "",
        &[
            ("alpha", ""),
            ("gamma", "on_drift = \"restore\""),
            ("delta", ""),
            ("theirs", ""),
            ("beta", "tag = \"1.0.0\""),
        ],
    );
    let home_before = tree_hash(w.env.home());
    let state_before = tree_hash(w.env.state_home());
    let cache_before = tree_hash(w.env.cache_home());

    let out = w
        .env
        .daemon()
        .args(["--once", "--dry-run"])
        .output()
        .unwrap();
    let text = out_text(&out);
    eprintln!("{text}");
    assert!(
        text.contains("would update alpha 1.0.0 -> 1.1.0 in claude"),
        "{text}"
    );
    assert!(
        text.contains("would install delta 1.0.0 into claude"),
        "{text}"
    );
    assert!(text.contains("would record beta"), "{text}");
    assert!(text.contains("would back up gamma in claude"), "{text}");
    assert!(text.contains("not installed by skillsyncd"), "{text}");
    assert_eq!(tree_hash(w.env.home()), home_before, "HOME untouched");
    assert_eq!(
        tree_hash(w.env.state_home()),
        state_before,
        "state untouched"
    );
    assert_eq!(
        tree_hash(w.env.cache_home()),
        cache_before,
        "cache untouched"
    );

    // The real pass then does it.
    w.once();
    assert!(read_tree(&w.dir("claude", "alpha"))["SKILL.md"]
        .windows(5)
        .any(|b| b == b"1.1.0"));
}

#[test]
fn an_archived_version_stays_installed_or_is_removed_on_request() {
    use crate::support::skillimage::Status;
    let w = World::new();
    w.publisher.push(&skill("hello", "1.0.0"));
    let v11 = skill("hello", "1.1.0");
    w.publisher.push(&v11);
    w.config("", &[("hello", "")]);
    assert_eq!(w.once().status.code(), Some(0));
    // skillctl: deprecate, then archive (the version tag is deleted).
    w.publisher
        .promote("examples/hello", "1.1.0", Status::Deprecated);
    w.publisher
        .promote("examples/hello", "1.1.0", Status::Archived);
    assert!(!w
        .publisher
        .tags("examples/hello")
        .contains(&"1.1.0".to_string()));

    let out = w.once();
    assert_eq!(out.status.code(), Some(0), "{}", out_text(&out));
    assert!(
        out_text(&out).contains("was archived"),
        "{}",
        out_text(&out)
    );
    // Not downgraded to 1.0.0: the archived version stays.
    assert_eq!(read_tree(&w.dir("claude", "hello")), v11.files);
    assert!(w.state()["skills"]["hello"]["archived"]
        .as_bool()
        .unwrap_or(false));
    // Said once, not on every pass.
    let out = w.once();
    assert!(
        !out_text(&out).contains("was archived"),
        "{}",
        out_text(&out)
    );

    // on_archived = "remove" uninstalls it.
    w.config("", &[("hello", "on_archived = \"remove\"")]);
    let out = w.once();
    assert_eq!(out.status.code(), Some(0), "{}", out_text(&out));
    assert!(out_text(&out).contains("archived"), "{}", out_text(&out));
    assert!(!w.dir("claude", "hello").exists());
    assert!(!w.dir("cursor", "hello").exists());
}

#[test]
fn adopt_takes_a_foreign_folder_over_keeping_a_backup() {
    let w = World::new();
    let img = skill("hello", "1.0.0");
    w.publisher.push(&img);
    let theirs = w.dir("claude", "hello");
    write_file(&theirs.join("SKILL.md"), b"installed by skillctl install");
    w.config("", &[("hello", "adopt = true")]);
    let out = w.once();
    assert_eq!(out.status.code(), Some(0), "{}", out_text(&out));
    assert!(
        out_text(&out).contains("adopted hello in claude"),
        "{}",
        out_text(&out)
    );
    assert_eq!(read_tree(&theirs), img.files);
    let backups = &w.state()["skills"]["hello"]["backups"];
    assert_eq!(backups[0]["reason"], "adopted", "{backups}");
    let copy = PathBuf::from(backups[0]["path"].as_str().unwrap());
    assert_eq!(
        std::fs::read(copy.join("SKILL.md")).unwrap(),
        b"installed by skillctl install"
    );
    // Ours from now on: updates flow, no conflict, no second backup.
    let v2 = skill("hello", "1.1.0");
    w.publisher.push(&v2);
    assert_eq!(w.once().status.code(), Some(0));
    assert_eq!(read_tree(&theirs), v2.files);
    assert_eq!(
        w.state()["skills"]["hello"]["backups"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
