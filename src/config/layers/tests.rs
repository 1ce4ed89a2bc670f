//! Unit tests of layered loading: merge order, includes, remote
//! fragments, positions across files.

use super::*;
use crate::channel::Channel;
use crate::config::remote::{Record, TeamCache};
use crate::config::{LoadOptions, Selector};

/// [`crate::config::load`] with the home directory given.
fn load(path: &Path, home: &Path, options: &LoadOptions) -> Result<Config, ConfigError> {
    crate::config::load(
        path,
        &LoadOptions {
            home: Some(home.to_path_buf()),
            ..options.clone()
        },
    )
}

struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    fn options(&self) -> LoadOptions {
        LoadOptions {
            home: None,
            system: Some(self.path("etc/skills.toml")),
            team_cache: Some(self.path("cache")),
        }
    }

    fn load(&self) -> Result<Config, ConfigError> {
        load(
            &self.path("user/skills.toml"),
            &self.path("home"),
            &self.options(),
        )
    }

    fn load_ok(&self) -> Config {
        self.load()
            .unwrap_or_else(|e| panic!("expected a valid config:\n{e}"))
    }

    fn diagnostics(&self) -> Vec<Diagnostic> {
        match self.load() {
            Err(ConfigError::Invalid(d)) => d,
            other => panic!("expected diagnostics, got {other:?}"),
        }
    }

    fn cache_remote(&self, reference: &str, text: &str) {
        TeamCache::new(&self.path("cache"))
            .write(&Record {
                reference: reference.into(),
                digest: Some(crate::reference::Digest::of(b"manifest").to_string()),
                content_digest: Some(crate::reference::Digest::of(text.as_bytes()).to_string()),
                content: Some(text.into()),
                fetched_at: Some("2026-01-01T00:00:00Z".into()),
                last_error: None,
            })
            .unwrap();
    }
}

fn channel(c: &Config, skill: &str) -> Selector {
    c.skills[skill].selector.clone()
}

#[test]
fn system_user_includes_and_globs_merge_in_order() {
    let d = Dir::new();
    d.write(
        "etc/skills.toml",
        "[daemon]\npoll_interval = \"1h\"\n[skills.base]\nimage = \"r.io/base\"\ntargets = [\"cursor\"]\n",
    );
    d.write(
        "user/team.toml",
        "[skills.team-a]\nimage = \"r.io/a\"\nchannel = \"published\"\ntargets = [\"claude\", \"cursor\"]\n",
    );
    d.write(
        "user/skills.d/20-b.toml",
        "[skills.b]\nimage = \"r.io/b\"\n",
    );
    d.write(
        "user/skills.d/10-c.toml",
        "[skills.c]\nimage = \"r.io/c\"\n",
    );
    d.write("user/skills.d/notes.txt", "not toml");
    d.write(
        "user/skills.toml",
        "include = [\"team.toml\", \"skills.d/*.toml\"]\n[daemon]\npoll_interval = \"10m\"\n\
         [skills.team-a]\nchannel = \"testing\"\n[skills.base]\ntargets = [\"claude\"]\n",
    );
    let c = d.load_ok();
    assert_eq!(
        c.skills.keys().collect::<Vec<_>>(),
        ["b", "base", "c", "team-a"]
    );
    // The user's file overrides key by key.
    assert_eq!(c.daemon.poll_interval, std::time::Duration::from_secs(600));
    assert_eq!(
        channel(&c, "team-a"),
        Selector::Channel {
            channel: Channel::Testing,
            version: None
        }
    );
    assert_eq!(c.skills["team-a"].targets, ["claude", "cursor"]);
    assert_eq!(c.skills["base"].targets, ["claude"]);
    // Files in order, the glob sorted; the pattern is watched.
    let names: Vec<String> = c
        .layers
        .files
        .iter()
        .map(|p| p.strip_prefix(d.dir.path()).unwrap().display().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "etc/skills.toml",
            "user/skills.toml",
            "user/team.toml",
            "user/skills.d/10-c.toml",
            "user/skills.d/20-b.toml"
        ]
    );
    assert!(c.layers.watch.contains(&d.path("user/skills.d/*.toml")));
    // Where each setting came from.
    let o = &c.layers.origins["team-a"];
    let team = d.path("user/team.toml").display().to_string();
    let user = d.path("user/skills.toml").display().to_string();
    assert_eq!(o.defined_at, format!("{team}:1:9"));
    let at = |k: &str| o.settings.iter().find(|s| s.key == k).unwrap().clone();
    assert_eq!(at("image").at, format!("{team}:2:9"));
    assert_eq!(at("channel").at, format!("{user}:5:11"));
    assert_eq!(at("channel").value, "\"testing\"");
    assert_eq!(at("targets").value, "[\"claude\", \"cursor\"]");
}

#[test]
fn a_skill_in_two_files_of_one_layer_is_an_error_naming_both() {
    let d = Dir::new();
    d.write("user/a.toml", "[skills.x]\nimage = \"r.io/x\"\n");
    d.write("user/b.toml", "# b\n\n[skills.x]\nimage = \"r.io/y\"\n");
    d.write("user/skills.toml", "include = [\"a.toml\", \"b.toml\"]\n");
    let diags = d.diagnostics();
    assert_eq!(diags.len(), 1, "{diags:#?}");
    let a = d.path("user/a.toml").display().to_string();
    let b = d.path("user/b.toml").display().to_string();
    assert_eq!(diags[0].path, d.path("user/b.toml"));
    assert_eq!((diags[0].line, diags[0].column), (3, 9));
    assert!(
        diags[0].message.contains(&format!("{a}:1:9 and {b}:3:9")),
        "{}",
        diags[0]
    );
    // A key of [daemon] too.
    d.write(
        "user/a.toml",
        "[daemon]\njitter = 0.1\n[skills.x]\nimage = \"r.io/x\"\n",
    );
    d.write("user/b.toml", "[daemon]\njitter = 0.2\n");
    let diags = d.diagnostics();
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert!(
        diags[0].message.contains("setting \"jitter\""),
        "{}",
        diags[0]
    );
}

#[test]
fn version_keys_override_together_and_enabled_false_switches_off() {
    let d = Dir::new();
    d.write(
        "user/team.toml",
        "[skills.tagged]\nimage = \"r.io/t\"\ntag = \"1.0.0\"\n\
         [skills.chan]\nimage = \"r.io/c\"\nchannel = \"testing\"\nversion = \"^1\"\n\
         [skills.off]\nimage = \"r.io/o\"\n",
    );
    d.write(
        "user/skills.toml",
        "include = [\"team.toml\"]\n[skills.tagged]\nchannel = \"draft\"\n\
         [skills.chan]\ntag = \"2.0.0\"\n[skills.off]\nenabled = false\n",
    );
    let c = d.load_ok();
    assert_eq!(
        channel(&c, "tagged"),
        Selector::Channel {
            channel: Channel::Draft,
            version: None
        }
    );
    assert_eq!(channel(&c, "chan"), Selector::Tag("2.0.0".into()));
    assert!(!c.skills.contains_key("off"));
    assert!(c.layers.disabled.contains("off"));
}

#[test]
fn errors_in_an_included_file_name_it_and_paths_resolve_against_it() {
    let d = Dir::new();
    d.write(
        "user/team/team.toml",
        "[targets.proj]\npath = \"proj-skills\"\n\n[skills.x]\nimage = \"r.io/x\"\ntargets = [\"curser\"]\n",
    );
    d.write("user/skills.toml", "include = [\"team/team.toml\"]\n");
    let diags = d.diagnostics();
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(diags[0].path, d.path("user/team/team.toml"), "{diags:#?}");
    assert_eq!((diags[0].line, diags[0].column), (6, 12));
    assert!(diags[0].message.contains("unknown target \"curser\""));

    d.write(
        "user/team/team.toml",
        "[targets.proj]\npath = \"proj-skills\"\n\n[skills.x]\nimage = \"r.io/x\"\ntargets = [\"proj\"]\n",
    );
    let c = d.load_ok();
    assert_eq!(c.targets["proj"].path, d.path("user/team/proj-skills"));

    // Unknown keys and syntax errors too.
    d.write(
        "user/team/team.toml",
        "[skills.x]\nimage = \"r.io/x\"\nchanel = \"draft\"\n",
    );
    let diags = d.diagnostics();
    assert_eq!(diags[0].path, d.path("user/team/team.toml"), "{diags:#?}");
    assert_eq!(diags[0].line, 3);
    d.write("user/team/team.toml", "[skills.x\n");
    let diags = d.diagnostics();
    assert!(
        diags
            .iter()
            .any(|x| x.path == d.path("user/team/team.toml") && x.line == 1),
        "{diags:#?}"
    );
}

#[test]
fn include_problems() {
    let d = Dir::new();
    d.write("user/a.toml", "include = [\"skills.toml\"]\n");
    d.write(
        "user/skills.toml",
        "include = [\"a.toml\", \"missing.toml\", \"*/x/*.toml\", \"oci://nohost\"]\n[skills.x]\nimage = \"r.io/x\"\n",
    );
    let diags = d.diagnostics();
    let text: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
    assert_eq!(diags.len(), 4, "{text:#?}");
    assert!(text.iter().any(|t| t.contains("a cycle")));
    assert!(text
        .iter()
        .any(|t| t.contains("missing.toml") && t.contains("cannot read")));
    assert!(text.iter().any(|t| t.contains("only the file name")));
    assert!(text.iter().any(|t| t.contains("oci://nohost")));
    // A pattern that matches nothing is fine.
    d.write(
        "user/skills.toml",
        "include = [\"none.d/*.toml\"]\n[skills.x]\nimage = \"r.io/x\"\n",
    );
    assert_eq!(d.load_ok().skills.len(), 1);
}

#[test]
fn a_remote_fragment_adds_skills_and_may_not_set_anything_else() {
    let d = Dir::new();
    let reference = "oci://r.io/acme/team:published";
    d.write(
        "user/skills.toml",
        &format!("include = [\"{reference}\"]\n[skills.mine]\nimage = \"r.io/mine\"\n[skills.shared]\ntargets = [\"cursor\"]\n"),
    );
    // Not fetched yet: the local config works.
    let c = d.load_ok();
    d.write("user/only.toml", &format!("include = [\"{reference}\"]\n"));
    let only = load(&d.path("user/only.toml"), &d.path("home"), &d.options())
        .expect("a config of only a remote include is valid before its first fetch");
    assert!(only.skills.is_empty());
    assert_eq!(c.layers.remote.len(), 1);
    assert_eq!(c.layers.remote[0].error.as_deref(), Some("not fetched yet"));

    d.cache_remote(reference, "[skills.shared]\nimage = \"r.io/shared\"\ntag = \"1.0.0\"\n[skills.team-only]\nimage = \"r.io/t\"\n");
    let c = d.load_ok();
    assert_eq!(
        c.skills.keys().collect::<Vec<_>>(),
        ["mine", "shared", "team-only"]
    );
    assert_eq!(
        c.skills["shared"].targets,
        ["cursor"],
        "the user's override wins"
    );
    assert_eq!(c.layers.remote[0].error, None);
    assert_eq!(
        c.layers.remote[0].cached.as_ref().unwrap().fetched_at,
        "2026-01-01T00:00:00Z"
    );
    assert_eq!(
        c.layers.origins["team-only"].defined_at,
        format!("{reference}:4:9")
    );

    for (fragment, part) in [
        (
            "[daemon]\npoll_interval = \"1s\"\n",
            "not [daemon] settings",
        ),
        (
            "[registries.\"r.io\"]\ninsecure = true\n",
            "not registry settings",
        ),
        ("[targets.evil]\npath = \"/etc\"\n", "not targets"),
        ("[skills.x]\nimage = \"r.io/x\"\nadopt = true\n", "adopt"),
        (
            "[skills.x]\nimage = \"r.io/x\"\nverify = \"none\"\n",
            "signature policy",
        ),
        (
            "[repositories.\"r.io/x\"]\nverify = \"none\"\n",
            "signature policies",
        ),
        ("include = [\"/etc/passwd\"]\n", "cannot include"),
        (
            "[skills.x]\nimage = \"r.io/x\"\npath = \"/tmp\"\n",
            "filesystem path",
        ),
        (
            "[skills.x]\nimage = \"r.io/x\"\nbogus = 1\n",
            "unknown field",
        ),
        ("[skills.x\n", ""),
    ] {
        d.cache_remote(reference, fragment);
        let c = d.load_ok();
        assert_eq!(c.skills.keys().collect::<Vec<_>>(), ["mine"], "{fragment}");
        let e = c.layers.remote[0].error.clone().unwrap();
        assert!(e.starts_with(&format!("{reference}:")), "{e}");
        assert!(e.contains(part), "{e:?} lacks {part:?}");
    }

    // A skill in it that does not validate is left out, with its place.
    d.cache_remote(reference, "[skills.ok]\nimage = \"r.io/ok\"\n[skills.bad]\nimage = \"r.io/b\"\ntargets = [\"nowhere\"]\n");
    let c = d.load_ok();
    assert_eq!(c.skills.keys().collect::<Vec<_>>(), ["mine", "ok"]);
    let e = c.layers.remote[0].error.clone().unwrap();
    assert!(
        e.contains(&format!("{reference}:5:12: unknown target \"nowhere\"")),
        "{e}"
    );
}

#[test]
fn the_system_file_is_optional_and_overridable() {
    let d = Dir::new();
    d.write("user/skills.toml", "[skills.x]\nimage = \"r.io/x\"\n");
    let c = d.load_ok();
    assert_eq!(c.layers.files, [d.path("user/skills.toml")]);
    assert!(c.layers.watch.contains(&d.path("etc/skills.toml")));
    let c = load(
        &d.path("user/skills.toml"),
        &d.path("home"),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(c.layers.files.len(), 1);
}

#[test]
fn a_tilde_include_is_the_home_directory() {
    let d = Dir::new();
    d.write(
        "home/dotfiles/skills.d/a.toml",
        "[skills.a]\nimage = \"r.io/a\"\n",
    );
    d.write(
        "user/skills.toml",
        "include = [\"~/dotfiles/skills.d/*.toml\"]\n",
    );
    let c = d.load_ok();
    assert_eq!(c.skills.keys().collect::<Vec<_>>(), ["a"]);
    assert!(c
        .layers
        .watch
        .contains(&d.path("home/dotfiles/skills.d/*.toml")));
}

#[test]
fn wildcards_and_remote_references() {
    assert!(wildcard_match("*.toml", "a.toml"));
    assert!(wildcard_match("*.toml", ".toml"));
    assert!(!wildcard_match("*.toml", "a.toml.bak"));
    assert!(wildcard_match("a?c*", "abcdef"));
    assert!(!wildcard_match("a?c", "ac"));
    assert!(wildcard_match("*", "x"));

    let (image, sel) = parse_remote("127.0.0.1:5000/acme/team:published").unwrap();
    assert_eq!(image.to_string(), "127.0.0.1:5000/acme/team");
    assert_eq!(sel, Selector::Tag("published".into()));
    let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let (_, sel) = parse_remote(&format!("r.io/a@{d}")).unwrap();
    assert_eq!(sel, Selector::Digest(d.parse().unwrap()));
    for bad in [
        "r.io/a",
        "team:1",
        "r.io/a:",
        "r.io/a@sha256:00",
        "r.io/A:1",
    ] {
        assert!(parse_remote(bad).is_err(), "{bad}");
    }
}

fn at(text: &str, offset: usize) -> (usize, usize) {
    SourceMap::single(Path::new("f.toml"), text).files()[0].line_column(offset)
}

#[test]
fn line_column_counts_characters() {
    let text = "ab\nçé=x\n";
    assert_eq!(at(text, 0), (1, 1));
    assert_eq!(at(text, 2), (1, 3));
    assert_eq!(at(text, 3), (2, 1));
    // "çé" is four bytes, two characters.
    assert_eq!(at(text, 7), (2, 3));
    // Inside a multi-byte character: the character's own column.
    assert_eq!(at(text, 4), (2, 1));
    // Past the end.
    assert_eq!(at(text, 100), (3, 1));
    assert_eq!(at("", 0), (1, 1));
}
