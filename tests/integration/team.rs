//! Teams sharing one skills.toml, against a real registry: includes with
//! globs and a system layer, overrides of a team skill, `config explain`,
//! skill collections in skillctl's format (installed, updated, polled with
//! one HEAD), and remote team files (installed, restricted, and kept from
//! the cache while the registry is down).

use std::path::PathBuf;
use std::process::Output;

use crate::support::proxy::{Match, Proxy, RequestKind};
use crate::support::registry::Registry;
use crate::support::skillimage::{Blob, Publisher, SkillImage, Status, MANIFEST_MEDIA_TYPE};
use crate::support::{write_file, TestEnv};

/// skillctl's collection artifactType and layer media type.
const COLLECTION: &str = "application/vnd.skillimage.collection.v1+yaml";
/// The media type of a remote team file's layer.
const TEAM_TOML: &str = "application/vnd.skillsync.config.v1+toml";

struct World {
    env: TestEnv,
    _registry: Registry,
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
            _registry: registry,
            proxy,
            publisher,
        }
    }

    fn host(&self) -> String {
        self.proxy.host()
    }

    /// Publishes skill `name` at `version` (published) in `examples/NAME`.
    fn publish(&self, name: &str, version: &str) {
        self.publish_as(name, version, Status::Published);
    }

    fn publish_as(&self, name: &str, version: &str, status: Status) {
        let image = SkillImage::new(name, version)
            .status(status)
            .file("docs/version.md", format!("{name} {version}\n"))
            .build();
        self.publisher.push(&image);
    }

    /// Pushes a one-layer artifact as skillctl and `oras push` write one:
    /// an empty config, `artifactType`, the document as the only layer.
    fn push_artifact(
        &self,
        repo: &str,
        tag: &str,
        artifact_type: &str,
        media_type: &str,
        content: &str,
    ) -> String {
        let config = Blob::new("application/vnd.oci.empty.v1+json", b"{}".to_vec());
        let layer = Blob::new(media_type, content.as_bytes().to_vec());
        self.publisher.push_blob(repo, &config);
        self.publisher.push_blob(repo, &layer);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": artifact_type,
            "config": config.descriptor(),
            "layers": [layer.descriptor()],
            "annotations": {"org.opencontainers.image.created": "2025-01-01T00:00:00Z"},
        });
        let bytes = serde_json::to_vec(&manifest).unwrap();
        self.publisher
            .put_manifest(repo, tag, MANIFEST_MEDIA_TYPE, &bytes)
    }

    /// A SkillCollection document listing `skills` (name, tag) from this
    /// registry, through the proxy.
    fn collection_yaml(&self, version: &str, skills: &[(&str, &str)]) -> String {
        let mut text = format!(
            "apiVersion: skillimage.io/v1alpha1\nkind: SkillCollection\nmetadata:\n  name: dev-skills\n  version: {version}\n  description: The team's skills\nskills:\n"
        );
        for (name, tag) in skills {
            text.push_str(&format!(
                "  - name: {name}\n    image: {}/examples/{name}:{tag}\n",
                self.host()
            ));
        }
        text
    }

    /// The registry section every config here starts with.
    fn registry_section(&self) -> String {
        format!(
            "[daemon]\npoll_interval = \"1h\"\n\n[registries.\"{}\"]\ninsecure = true\n\n",
            self.host()
        )
    }

    fn image(&self, name: &str) -> String {
        format!("{}/examples/{name}", self.host())
    }

    fn once(&self) -> Output {
        self.env.once()
    }

    fn ctl(&self, args: &[&str]) -> Output {
        self.env.run_ctl(args)
    }

    fn installed(&self, agent: &str, name: &str) -> Option<String> {
        std::fs::read_to_string(self.env.skill_dir(agent, name).join("docs/version.md")).ok()
    }

    fn config_dir(&self) -> PathBuf {
        self.env.config_path().parent().unwrap().to_path_buf()
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn includes_with_globs_and_a_system_layer_merge_in_order() {
    let w = World::new();
    for name in ["base", "team-a", "from-glob-1", "from-glob-2"] {
        w.publish(name, "1.0.0");
    }
    w.publish_as("team-a", "1.1.0", Status::Testing);
    // The system layer: the registry and one skill for every user.
    write_file(
        &w.env.system_config_path(),
        format!(
            "{}[skills.base]\nimage = \"{}\"\ntargets = [\"cursor\"]\n",
            w.registry_section(),
            w.image("base")
        )
        .as_bytes(),
    );
    let dir = w.config_dir();
    write_file(
        &dir.join("team.toml"),
        format!(
            "[skills.team-a]\nimage = \"{}\"\ntargets = [\"claude\"]\n",
            w.image("team-a")
        )
        .as_bytes(),
    );
    // Sorted: 10 before 20; the .txt is not included.
    write_file(
        &dir.join("skills.d/20-two.toml"),
        format!(
            "[skills.from-glob-2]\nimage = \"{}\"\n",
            w.image("from-glob-2")
        )
        .as_bytes(),
    );
    write_file(
        &dir.join("skills.d/10-one.toml"),
        format!(
            "[skills.from-glob-1]\nimage = \"{}\"\n",
            w.image("from-glob-1")
        )
        .as_bytes(),
    );
    write_file(&dir.join("skills.d/notes.txt"), b"[skills.nope]\n");
    w.env.write_config(
        "include = [\"team.toml\", \"skills.d/*.toml\"]\n\n\
         # The user's own choices, on top.\n[skills.team-a]\nchannel = \"testing\"\n\n\
         [skills.base]\ntargets = [\"claude\", \"cursor\"]\n",
    );

    let out = w.ctl(&["check"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("ok (4 skills, 2 targets)"), "{text}");
    for file in ["team.toml", "skills.d/10-one.toml", "skills.d/20-two.toml"] {
        assert!(
            text.contains(&format!("file {}", dir.join(file).display())),
            "{text}"
        );
    }
    assert!(text.contains(&format!("file {}", w.env.system_config_path().display())));

    assert!(w.once().status.success());
    assert_eq!(
        w.installed("claude", "team-a").as_deref(),
        Some("team-a 1.1.0\n"),
        "the user's channel"
    );
    assert_eq!(
        w.installed("claude", "base").as_deref(),
        Some("base 1.0.0\n")
    );
    assert_eq!(
        w.installed("cursor", "base").as_deref(),
        Some("base 1.0.0\n")
    );
    assert!(w.installed("claude", "from-glob-1").is_some());
    assert!(w.installed("claude", "from-glob-2").is_some());
    assert!(w.installed("cursor", "team-a").is_none());
    assert!(!w.env.skill_dir("claude", "nope").exists());
}

#[test]
fn a_skill_defined_in_two_included_files_is_an_error_naming_both() {
    let w = World::new();
    let dir = w.config_dir();
    write_file(&dir.join("a.toml"), b"[skills.x]\nimage = \"r.io/a/x\"\n");
    write_file(
        &dir.join("b.toml"),
        b"# another team\n[skills.x]\nimage = \"r.io/b/x\"\n",
    );
    w.env.write_config("include = [\"a.toml\", \"b.toml\"]\n");
    let out = w.ctl(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let a = dir.join("a.toml").display().to_string();
    let b = dir.join("b.toml").display().to_string();
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{b}:2:9: skill \"x\" is defined in two files of the same layer: {a}:1:9 and {b}:2:9"
        )),
        "{err}"
    );
    // The daemon refuses it the same way.
    let out = w.once();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&format!("{a}:1:9 and {b}:2:9")));
}

#[test]
fn a_user_overrides_a_team_skill_without_copying_it_and_config_explain_says_where() {
    let w = World::new();
    w.publish("review", "1.0.0");
    w.publish_as("review", "2.0.0-rc.1", Status::Testing);
    w.publish("noisy", "1.0.0");
    let dir = w.config_dir();
    write_file(
        &dir.join("team.toml"),
        format!(
            "{}[skills.review]\nimage = \"{}\"\nchannel = \"published\"\ntargets = [\"claude\"]\n\n\
             [skills.noisy]\nimage = \"{}\"\n",
            w.registry_section(),
            w.image("review"),
            w.image("noisy")
        )
        .as_bytes(),
    );
    let user = w.env.write_config(
        "include = [\"team.toml\"]\n\n[skills.review]\nchannel = \"testing\"\ntargets = [\"cursor\"]\n\n\
         [skills.noisy]\nenabled = false\n",
    );
    assert!(w.once().status.success());
    assert_eq!(
        w.installed("cursor", "review").as_deref(),
        Some("review 2.0.0-rc.1\n")
    );
    assert!(w.installed("claude", "review").is_none());
    assert!(!w.env.skill_dir("claude", "noisy").exists());

    let out = w.ctl(&["config", "explain", "review"]);
    assert!(out.status.success());
    let text = stdout(&out);
    let team = dir.join("team.toml").display().to_string();
    let user = user.display().to_string();
    let line = |key: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{key} =")))
            .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
            .to_string()
    };
    assert!(
        text.starts_with(&format!("review: defined at {team}:7:9\n")),
        "{text}"
    );
    assert!(line("image").ends_with(&format!("{team}:8:9")), "{text}");
    assert!(line("channel").contains("\"testing\""));
    assert!(line("channel").ends_with(&format!("{user}:4:11")), "{text}");
    assert!(line("targets").ends_with(&format!("{user}:5:11")), "{text}");
    // What it is, what it follows, where it goes: in that order.
    let keys: Vec<&str> = text
        .lines()
        .skip(1)
        .filter_map(|l| {
            l.trim_start()
                .split(" = ")
                .nth(1)
                .and(l.split_whitespace().next())
        })
        .collect();
    let at = |k: &str| keys.iter().position(|x| *x == k);
    assert!(
        at("image") < at("channel") && at("channel") < at("targets"),
        "{text}"
    );
    assert!(text.contains("in effect: "), "{text}");
    assert!(text.contains("testing, targets cursor"), "{text}");

    // status --config: the merged result, with where each skill is defined.
    let out = w.ctl(&["status", "--config"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("switched off: noisy"), "{text}");
    assert!(text.contains(&format!("{team}:7:9")), "{text}");
    assert_eq!(w.ctl(&["config", "explain", "nope"]).status.code(), Some(1));
}

#[test]
fn a_collection_installs_its_skills_follows_updates_and_polls_with_one_head() {
    let w = World::new();
    for name in ["alpha", "beta", "gamma"] {
        w.publish(name, "1.0.0");
    }
    w.publish("beta", "1.1.0");
    w.publish_as("gamma", "2.0.0", Status::Testing);
    w.push_artifact(
        "acme/team-skills",
        "published",
        COLLECTION,
        COLLECTION,
        &w.collection_yaml("0.1.0", &[("alpha", "1.0.0"), ("beta", "1.0.0")]),
    );
    w.env.write_config(&format!(
        "{}[collections.team]\nimage = \"{}/acme/team-skills\"\ntag = \"published\"\ntargets = [\"claude\", \"cursor\"]\n",
        w.registry_section(),
        w.host()
    ));
    assert!(w.once().status.success());
    for agent in ["claude", "cursor"] {
        assert_eq!(
            w.installed(agent, "alpha").as_deref(),
            Some("alpha 1.0.0\n")
        );
        assert_eq!(w.installed(agent, "beta").as_deref(), Some("beta 1.0.0\n"));
    }

    // Steady state: one HEAD of the collection's tag, nothing else of it.
    w.proxy.reset();
    assert!(w.once().status.success());
    let counts = w.proxy.counts();
    let of_collection: Vec<_> = counts
        .requests
        .iter()
        .filter(|r| r.path.contains("/acme/team-skills/"))
        .collect();
    assert_eq!(of_collection.len(), 1, "{of_collection:#?}");
    assert_eq!(of_collection[0].kind, RequestKind::ManifestHead);

    // Version 0.2.0 drops alpha, moves beta, adds gamma at a testing tag.
    w.push_artifact(
        "acme/team-skills",
        "published",
        COLLECTION,
        COLLECTION,
        &w.collection_yaml("0.2.0", &[("beta", "1.1.0"), ("gamma", "2.0.0-testing")]),
    );
    assert!(w.once().status.success());
    for agent in ["claude", "cursor"] {
        assert!(
            !w.env.skill_dir(agent, "alpha").exists(),
            "alpha pruned from {agent}"
        );
        assert_eq!(w.installed(agent, "beta").as_deref(), Some("beta 1.1.0\n"));
        assert_eq!(
            w.installed(agent, "gamma").as_deref(),
            Some("gamma 2.0.0\n")
        );
    }

    // A user's own [skills.beta] wins over the collection's entry; a bare
    // `enabled = false` drops gamma.
    let mut text = std::fs::read_to_string(w.env.config_path()).unwrap();
    text.push_str(&format!(
        "\n[skills.beta]\nimage = \"{}\"\ntag = \"1.0.0\"\ntargets = [\"claude\"]\n\n[skills.gamma]\nenabled = false\n",
        w.image("beta")
    ));
    w.env.write_config(&text);
    assert!(w.once().status.success());
    assert_eq!(
        w.installed("claude", "beta").as_deref(),
        Some("beta 1.0.0\n")
    );
    assert!(!w.env.skill_dir("cursor", "beta").exists());
    assert!(!w.env.skill_dir("claude", "gamma").exists());

    let text = stdout(&w.ctl(&["status", "--config"]));
    assert!(text.contains("collection team ("), "{text}");
    assert!(text.contains("dev-skills 0.2.0"), "{text}");
}

#[test]
fn a_broken_collection_is_reported_and_the_rest_keeps_working() {
    let w = World::new();
    w.publish("mine", "1.0.0");
    // Not a collection: a skill layer type.
    w.push_artifact(
        "acme/not-a-collection",
        "published",
        COLLECTION,
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "junk",
    );
    w.env.write_config(&format!(
        "{}[skills.mine]\nimage = \"{}\"\n\n[collections.team]\nimage = \"{}/acme/not-a-collection\"\ntag = \"published\"\n",
        w.registry_section(),
        w.image("mine"),
        w.host()
    ));
    let out = w.once();
    assert!(out.status.success());
    assert!(w.installed("claude", "mine").is_some());
    let text = stdout(&w.ctl(&["check"]));
    assert!(text.contains("collection team"), "{text}");
    assert!(text.contains("layer media type"), "{text}");
}

#[test]
fn a_remote_team_file_installs_a_skill_and_stays_in_force_from_the_cache_while_the_registry_is_down(
) {
    let w = World::new();
    w.publish("shared", "1.0.0");
    w.publish("mine", "1.0.0");
    let digest = w.push_artifact(
        "acme/skills-team",
        "published",
        TEAM_TOML,
        TEAM_TOML,
        &format!(
            "# The team's skills\n[skills.shared]\nimage = \"{}\"\ntargets = [\"claude\", \"cursor\"]\n",
            w.image("shared")
        ),
    );
    let reference = format!("oci://{}/acme/skills-team:published", w.host());
    w.env.write_config(&format!(
        "include = [\"{reference}\"]\n\n{}[skills.mine]\nimage = \"{}\"\n",
        w.registry_section(),
        w.image("mine")
    ));
    assert!(w.once().status.success());
    assert_eq!(
        w.installed("claude", "shared").as_deref(),
        Some("shared 1.0.0\n")
    );
    assert_eq!(
        w.installed("cursor", "shared").as_deref(),
        Some("shared 1.0.0\n")
    );

    let text = stdout(&w.ctl(&["config", "explain", "shared"]));
    assert!(
        text.starts_with(&format!("shared: defined at {reference}:2:9")),
        "{text}"
    );

    // The registry goes down: the cached team file is still in force, so
    // nothing is pruned, and status says which copy is used.
    w.proxy.fail(Match::any(), 503);
    w.proxy.reset();
    let out = w.once();
    // One lookup of the tag,
    // and nothing downloaded.
    let counts = w.proxy.counts();
    let team: Vec<_> = counts
        .requests
        .iter()
        .filter(|r| r.path.contains("/acme/skills-team/"))
        .collect();
    assert_eq!(
        team.iter()
            .filter(|r| r.kind == RequestKind::ManifestHead)
            .count(),
        1,
        "{team:#?}"
    );
    assert!(
        team.iter()
            .all(|r| r.path.ends_with("/manifests/published")),
        "{team:#?}"
    );
    assert_eq!(out.status.code(), Some(1), "the skills cannot be checked");
    let err = stderr(&out);
    assert!(err.contains("using cached copy from"), "{err}");
    assert_eq!(
        w.installed("claude", "shared").as_deref(),
        Some("shared 1.0.0\n")
    );
    assert!(!err.contains("removed"), "{err}");
    let text = stdout(&w.ctl(&["status", "--config"]));
    assert!(
        text.contains(&format!("remote {reference}: copy of {}", &digest[..19])),
        "{text}"
    );
    assert!(text.contains("using cached copy from"), "{text}");
    assert!(text.contains(&format!("{reference}:2:9")), "{text}");
}

#[test]
fn a_remote_file_may_not_set_daemon_registries_or_paths_and_the_rest_keeps_working() {
    let w = World::new();
    w.publish("mine", "1.0.0");
    w.publish("shared", "1.0.0");
    let shared = "[skills.shared]\nimage = \"SHARED\"\n";
    let cases = [
        (
            format!("{shared}\n[daemon]\nstate_dir = \"/tmp/elsewhere\"\n"),
            "not [daemon] settings",
        ),
        (
            format!("{shared}\n[registries.\"evil.example:5000\"]\ninsecure = true\n"),
            "not registry settings",
        ),
        (
            format!("{shared}\n[targets.etc]\npath = \"/etc\"\n"),
            "not targets",
        ),
        (
            format!("{shared}path = \"/etc\"\n"),
            "cannot set a filesystem path: `path`",
        ),
    ];
    for (i, (fragment, expected)) in cases.iter().enumerate() {
        let tag = format!("case{i}");
        let fragment = fragment.replace("SHARED", &w.image("shared"));
        w.push_artifact(
            "acme/skills-team",
            &tag,
            TEAM_TOML,
            "application/toml",
            &fragment,
        );
        let reference = format!("oci://{}/acme/skills-team:{tag}", w.host());
        w.env.write_config(&format!(
            "include = [\"{reference}\"]\n\n{}[skills.mine]\nimage = \"{}\"\n",
            w.registry_section(),
            w.image("mine")
        ));
        let out = w.once();
        assert!(out.status.success(), "case {i}");
        assert!(
            w.installed("claude", "mine").is_some(),
            "case {i}: the rest works"
        );
        assert!(
            !w.env.skill_dir("claude", "shared").exists(),
            "case {i}: nothing of the fragment is used"
        );
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{reference}:")),
            "case {i}: names the file: {err}"
        );
        assert!(err.contains(expected), "case {i}: {expected:?} in {err}");
        let text = stdout(&w.ctl(&["check"]));
        assert!(text.contains(expected), "case {i}: {text}");
    }
}

/// The daemon: an edit of an included file is picked up by the watch, and
/// `skillsyncctl sync` checks the collection first, so a new version of
/// it installs and prunes in one go; status says where each skill is from.
#[test]
fn the_daemon_watches_included_files_and_follows_a_collection() {
    use crate::support::{wait_until, KillOnDrop};
    use std::time::Duration;

    let w = World::new();
    for name in ["alpha", "beta", "gamma", "local"] {
        w.publish(name, "1.0.0");
    }
    w.push_artifact(
        "acme/team-skills",
        "published",
        COLLECTION,
        COLLECTION,
        &w.collection_yaml("0.1.0", &[("alpha", "1.0.0")]),
    );
    let dir = w.config_dir();
    write_file(
        &dir.join("skills.d/local.toml"),
        format!("[skills.local]\nimage = \"{}\"\n", w.image("local")).as_bytes(),
    );
    w.env.write_config(&format!(
        "include = [\"skills.d/*.toml\"]\n\n{}[collections.team]\nimage = \"{}/acme/team-skills\"\ntag = \"published\"\n",
        w.registry_section(),
        w.host()
    ));
    let log = std::fs::File::create(w.env.root().join("daemon.log")).unwrap();
    let mut command = w.env.daemon();
    command.stderr(log);
    let mut daemon = KillOnDrop::spawn(&mut command);
    let status = || -> serde_json::Value {
        let out = w.env.ctl().args(["status", "--json"]).output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    };
    let in_sync = |name: &str| {
        status()["skills"].as_array().is_some_and(|s| {
            s.iter()
                .any(|s| s["name"] == name && s["state"] == "in_sync")
        })
    };
    wait_until(Duration::from_secs(30), "alpha and local in sync", || {
        if let Ok(Some(s)) = daemon.try_wait() {
            panic!("skillsyncd exited with {s}");
        }
        in_sync("alpha") && in_sync("local")
    });
    let s = status();
    let alpha = s["skills"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "alpha")
        .unwrap()
        .clone();
    assert!(
        alpha["origin"]
            .as_str()
            .unwrap()
            .starts_with("collection team ("),
        "{alpha}"
    );
    let sources = s["config_sources"].as_array().unwrap();
    assert!(sources.iter().any(|c| c["kind"] == "collection"), "{s}");
    assert!(sources.iter().any(|c| c["kind"] == "file"), "{s}");

    // A new file in the included directory: the watch reloads.
    write_file(
        &dir.join("skills.d/beta.toml"),
        format!("[skills.beta]\nimage = \"{}\"\n", w.image("beta")).as_bytes(),
    );
    wait_until(Duration::from_secs(30), "beta in sync", || in_sync("beta"));

    // The collection moves on: sync checks it, installs gamma, prunes alpha.
    w.push_artifact(
        "acme/team-skills",
        "published",
        COLLECTION,
        COLLECTION,
        &w.collection_yaml("0.2.0", &[("gamma", "1.0.0")]),
    );
    let out = w.env.ctl().args(["sync", "--wait"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(in_sync("gamma"));
    assert!(w.installed("claude", "gamma").is_some());
    assert!(!w.env.skill_dir("claude", "alpha").exists(), "alpha pruned");
}
