//! Unit tests of config parsing and validation: positions, messages,
//! defaults, every rule.

use super::check::is_tag;
use super::diagnostics::edit_distance;
use super::*;

const FILE: &str = "/etc/sk/skills.toml";
const HOME: &str = "/home/u";

/// A valid skill, appended where a test needs the file to have one.
const OK_SKILL: &str = "[skills.ok]\nimage = \"r.io/ok\"\ntargets = [\"claude\"]\n";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new(FILE), Path::new(HOME))
}

fn parse_ok(text: &str) -> Config {
    match parse(text) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

fn diagnostics(text: &str) -> Vec<Diagnostic> {
    match parse(text) {
        Err(ConfigError::Invalid(d)) => {
            for x in &d {
                assert_eq!(x.path, Path::new(FILE));
                assert!(x
                    .to_string()
                    .starts_with(&format!("{FILE}:{}:{}: ", x.line, x.column)));
            }
            d
        }
        Err(e) => panic!("expected diagnostics, got {e:?}"),
        Ok(c) => panic!("expected diagnostics, got {c:?}"),
    }
}

/// Asserts exactly one problem, at `line`:`column`, whose message
/// contains every one of `parts`.
#[track_caller]
fn assert_one(text: &str, line: usize, column: usize, parts: &[&str]) {
    let d = diagnostics(text);
    assert_eq!(d.len(), 1, "expected one diagnostic, got {d:#?}");
    assert_eq!((d[0].line, d[0].column), (line, column), "{}", d[0]);
    for part in parts {
        assert!(
            d[0].message.contains(part),
            "{:?} does not contain {part:?}",
            d[0].message
        );
    }
}

fn with_ok(text: &str) -> String {
    format!("{text}{OK_SKILL}")
}

fn image(registry: &str, repository: &str) -> ImageRef {
    ImageRef {
        registry: registry.into(),
        repository: repository.into(),
    }
}

const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// ---- valid configs -------------------------------------------------

#[test]
fn full_example_parses_to_expected_values() {
    let text = format!(
        r#"[daemon]
poll_interval = "5m"            # human durations
max_skill_size = "64MiB"
max_entries = 10000
state_dir = "~/state"
cache_dir = "cache"

[defaults]
channel = "published"
targets = ["claude"]

[registries."127.0.0.1:5000"]
insecure = true

[registries.demo]
layout = "demo/layout"

[targets.project-x]
path = "~/src/project-x/.claude/skills"

[skills.hello-world]
image = "127.0.0.1:5000/examples/hello-world"
channel = "published"
version = "^1.0"
targets = ["claude", "cursor", "project-x"]

[skills.pinned-tag]
image = "quay.io/team/pinned"
tag = "1.0.0"

[skills.pinned-digest]
image = "localhost:5000/team/pinned"
digest = "{DIGEST}"
targets = ["windsurf"]

[skills.from-layout]
image = "demo/hello"
channel = "testing"
"#
    );
    let c = parse_ok(&text);
    let expected = Config {
        path: PathBuf::from(FILE),
        daemon: DaemonSettings {
            poll_interval: Duration::from_secs(300),
            max_skill_size: 64 * 1024 * 1024,
            max_entries: 10_000,
            state_dir: Some(PathBuf::from("/home/u/state")),
            cache_dir: Some(PathBuf::from("/etc/sk/cache")),
            socket: None,
            generations: 2,
            prune: true,
            jitter: 0.1,
            request_timeout: Duration::from_secs(60),
            durability: Durability::Fsync,
        },
        registries: BTreeMap::from([
            (
                "127.0.0.1:5000".to_string(),
                RegistrySettings {
                    insecure: true,
                    layout: None,
                    auth_file: None,
                    ca_file: None,
                    mirrors: Vec::new(),
                    verify: None,
                    ..Default::default()
                },
            ),
            (
                "demo".to_string(),
                RegistrySettings {
                    insecure: false,
                    layout: Some(PathBuf::from("/etc/sk/demo/layout")),
                    auth_file: None,
                    ca_file: None,
                    mirrors: Vec::new(),
                    verify: None,
                    ..Default::default()
                },
            ),
        ]),
        targets: BTreeMap::from([
            (
                "claude".to_string(),
                Target {
                    name: "claude".into(),
                    path: PathBuf::from("/home/u/.claude/skills"),
                },
            ),
            (
                "cursor".to_string(),
                Target {
                    name: "cursor".into(),
                    path: PathBuf::from("/home/u/.cursor/skills"),
                },
            ),
            (
                "project-x".to_string(),
                Target {
                    name: "project-x".into(),
                    path: PathBuf::from("/home/u/src/project-x/.claude/skills"),
                },
            ),
            (
                "windsurf".to_string(),
                Target {
                    name: "windsurf".into(),
                    path: PathBuf::from("/home/u/.codeium/windsurf/skills"),
                },
            ),
        ]),
        skills: BTreeMap::from([
            (
                "hello-world".to_string(),
                Skill {
                    name: "hello-world".into(),
                    image: image("127.0.0.1:5000", "examples/hello-world"),
                    selector: Selector::Channel {
                        channel: Channel::Published,
                        version: Some(semver::VersionReq::parse("^1.0").unwrap()),
                    },
                    targets: vec!["claude".into(), "cursor".into(), "project-x".into()],
                    on_drift: OnDrift::Report,
                    on_archived: OnArchived::Keep,
                    adopt: false,
                    verify: None,
                },
            ),
            (
                "pinned-tag".to_string(),
                Skill {
                    name: "pinned-tag".into(),
                    image: image("quay.io", "team/pinned"),
                    selector: Selector::Tag("1.0.0".into()),
                    targets: vec!["claude".into()],
                    on_drift: OnDrift::Report,
                    on_archived: OnArchived::Keep,
                    adopt: false,
                    verify: None,
                },
            ),
            (
                "pinned-digest".to_string(),
                Skill {
                    name: "pinned-digest".into(),
                    image: image("localhost:5000", "team/pinned"),
                    selector: Selector::Digest(DIGEST.parse().unwrap()),
                    targets: vec!["windsurf".into()],
                    on_drift: OnDrift::Report,
                    on_archived: OnArchived::Keep,
                    adopt: false,
                    verify: None,
                },
            ),
            (
                "from-layout".to_string(),
                Skill {
                    name: "from-layout".into(),
                    image: image("demo", "hello"),
                    selector: Selector::Channel {
                        channel: Channel::Testing,
                        version: None,
                    },
                    targets: vec!["claude".into()],
                    on_drift: OnDrift::Report,
                    on_archived: OnArchived::Keep,
                    adopt: false,
                    verify: None,
                },
            ),
        ]),
        repositories: BTreeMap::new(),
        default_verify: None,
        collections: BTreeMap::new(),
        layers: Default::default(),
    };
    assert_eq!(c, expected);
}

#[test]
fn defaults_are_applied() {
    let c = parse_ok("[skills.a]\nimage = \"r.io/a\"\ntargets = [\"claude\"]\n");
    assert_eq!(c.daemon, DaemonSettings::default());
    assert_eq!(c.daemon.poll_interval, Duration::from_secs(300));
    assert_eq!(c.daemon.max_skill_size, 67_108_864);
    assert_eq!(c.daemon.max_entries, 10_000);
    assert_eq!(c.daemon.state_dir, None);
    assert_eq!(c.daemon.cache_dir, None);
    assert!(c.registries.is_empty());
    assert_eq!(
        c.skills["a"].selector,
        Selector::Channel {
            channel: Channel::Published,
            version: None
        }
    );
    assert_eq!(c.skills["a"].targets, ["claude"]);
    assert_eq!(c.targets.keys().collect::<Vec<_>>(), ["claude"]);
}

#[test]
fn defaults_table_supplies_channel_and_targets() {
    let c = parse_ok(
        "[defaults]\nchannel = \"draft\"\ntargets = [\"cursor\", \"opencode\"]\n\
         [skills.a]\nimage = \"r.io/a\"\nversion = \">=2\"\n\
         [skills.b]\nimage = \"r.io/b\"\nchannel = \"testing\"\ntargets = [\"openclaw\"]\n",
    );
    assert_eq!(
        c.skills["a"].selector,
        Selector::Channel {
            channel: Channel::Draft,
            version: Some(semver::VersionReq::parse(">=2").unwrap())
        }
    );
    assert_eq!(c.skills["a"].targets, ["cursor", "opencode"]);
    assert_eq!(
        c.skills["b"].selector,
        Selector::Channel {
            channel: Channel::Testing,
            version: None
        }
    );
    assert_eq!(c.skills["b"].targets, ["openclaw"]);
    assert_eq!(
        c.targets["opencode"].path,
        PathBuf::from("/home/u/.config/opencode/skills")
    );
    assert_eq!(
        c.targets["openclaw"].path,
        PathBuf::from("/home/u/.openclaw/skills")
    );
    assert_eq!(
        c.targets.keys().collect::<Vec<_>>(),
        ["cursor", "openclaw", "opencode"]
    );
}

#[test]
fn defaults_channel_does_not_conflict_with_tag() {
    let c = parse_ok(
        "[defaults]\nchannel = \"testing\"\n[skills.a]\nimage = \"r.io/a\"\ntag = \"v1\"\ntargets = [\"claude\"]\n",
    );
    assert_eq!(c.skills["a"].selector, Selector::Tag("v1".into()));
}

#[test]
fn paths_expand_tilde_and_resolve_against_the_config_dir() {
    let c = parse_ok(&with_ok(
        "[daemon]\nstate_dir = \"~\"\ncache_dir = \"../cache\"\n\
         [registries.abs]\nlayout = \"/srv/layout\"\n\
         [registries.home]\nlayout = \"~/layouts/x\"\n\
         [registries.rel]\nlayout = \"layouts/y\"\n\
         [targets.t-abs]\npath = \"/opt/skills\"\n\
         [targets.t-home]\npath = \"~/skills\"\n\
         [targets.t-rel]\npath = \"proj/skills\"\n\
         [skills.a]\nimage = \"abs\"\ntargets = [\"t-abs\", \"t-home\", \"t-rel\"]\n",
    ));
    assert_eq!(c.daemon.state_dir, Some(PathBuf::from("/home/u")));
    assert_eq!(c.daemon.cache_dir, Some(PathBuf::from("/etc/sk/../cache")));
    assert_eq!(
        c.registries["abs"].layout,
        Some(PathBuf::from("/srv/layout"))
    );
    assert_eq!(
        c.registries["home"].layout,
        Some(PathBuf::from("/home/u/layouts/x"))
    );
    assert_eq!(
        c.registries["rel"].layout,
        Some(PathBuf::from("/etc/sk/layouts/y"))
    );
    assert_eq!(c.targets["t-abs"].path, PathBuf::from("/opt/skills"));
    assert_eq!(c.targets["t-home"].path, PathBuf::from("/home/u/skills"));
    assert_eq!(
        c.targets["t-rel"].path,
        PathBuf::from("/etc/sk/proj/skills")
    );
    assert_eq!(c.skills["a"].image, image("abs", ""));
}

#[test]
fn a_custom_target_overrides_a_builtin() {
    let c = parse_ok(
        "[targets.claude]\npath = \"~/work/.claude/skills\"\n\
         [skills.a]\nimage = \"r.io/a\"\ntargets = [\"claude\"]\n",
    );
    assert_eq!(
        c.targets["claude"],
        Target {
            name: "claude".into(),
            path: PathBuf::from("/home/u/work/.claude/skills"),
        }
    );
}

#[test]
fn only_used_targets_are_listed() {
    let c = parse_ok(
        "[targets.unused]\npath = \"/x\"\n\
         [skills.a]\nimage = \"r.io/a\"\ntargets = [\"cursor\"]\n",
    );
    assert_eq!(c.targets.keys().collect::<Vec<_>>(), ["cursor"]);
}

#[test]
fn builtin_targets_table() {
    let names: Vec<&str> = BUILTIN_TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        ["claude", "cursor", "windsurf", "opencode", "openclaw"]
    );
    for (name, dir) in BUILTIN_TARGETS {
        assert!(crate::name::check(name).is_ok());
        assert!(dir.starts_with("~/") && dir.ends_with("/skills"));
    }
}

#[test]
fn sizes_and_durations_in_every_form() {
    let cases: &[(&str, u64)] = &[
        ("\"64MiB\"", 64 << 20),
        ("\"1 GiB\"", 1 << 30),
        ("\"512KiB\"", 512 << 10),
        ("\"10B\"", 10),
        ("\"3KB\"", 3000),
        ("\"2MB\"", 2_000_000),
        ("\"1GB\"", 1_000_000_000),
        ("\"5mib\"", 5 << 20),
        ("1048576", 1_048_576),
    ];
    for (raw, want) in cases {
        let c = parse_ok(&with_ok(&format!("[daemon]\nmax_skill_size = {raw}\n")));
        assert_eq!(c.daemon.max_skill_size, *want, "{raw}");
    }
    for (raw, want) in [("30s", 30), ("1s", 1), ("1h", 3600), ("1m 30s", 90)] {
        let c = parse_ok(&with_ok(&format!("[daemon]\npoll_interval = \"{raw}\"\n")));
        assert_eq!(c.daemon.poll_interval, Duration::from_secs(want), "{raw}");
    }
    let c = parse_ok(&with_ok("[daemon]\nmax_entries = 1\n"));
    assert_eq!(c.daemon.max_entries, 1);
}

#[test]
fn registry_keys_without_a_dot_are_hosts_when_declared() {
    let c = parse_ok(
        "[registries.myreg]\ninsecure = true\n\
         [skills.a]\nimage = \"myreg/team/a\"\ntargets = [\"claude\"]\n\
         [skills.b]\nimage = \"localhost/b\"\ntargets = [\"claude\"]\n",
    );
    assert_eq!(c.skills["a"].image, image("myreg", "team/a"));
    assert_eq!(c.skills["b"].image, image("localhost", "b"));
    assert_eq!(
        c.registries["myreg"],
        RegistrySettings {
            insecure: true,
            layout: None,
            auth_file: None,
            ca_file: None,
            mirrors: Vec::new(),
            verify: None,
            ..Default::default()
        }
    );
}

#[test]
fn inline_tables_and_dotted_keys_work() {
    let c = parse_ok(
        "[skills]\na = { image = \"r.io/a\", targets = [\"claude\"] }\n\
         b.image = \"r.io/b\"\nb.tag = \"v2\"\nb.targets = [\"cursor\"]\n",
    );
    assert_eq!(c.skills["a"].image, image("r.io", "a"));
    assert_eq!(c.skills["a"].targets, ["claude"]);
    assert_eq!(c.skills["b"].image, image("r.io", "b"));
    assert_eq!(c.skills["b"].selector, Selector::Tag("v2".into()));
    assert_eq!(c.skills["b"].targets, ["cursor"]);
}

// ---- file access ---------------------------------------------------

#[test]
fn load_reads_a_file_and_resolves_against_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("skills.toml");
    std::fs::write(
        &file,
        "[targets.here]\npath = \"skills\"\n[skills.a]\nimage = \"r.io/a\"\ntargets = [\"here\"]\n",
    )
    .unwrap();
    let c = load(
        &file,
        &LoadOptions {
            home: Some(HOME.into()),
            ..LoadOptions::default()
        },
    )
    .unwrap();
    assert_eq!(c.path, file);
    assert_eq!(c.targets["here"].path, dir.path().join("skills"));
}

#[test]
fn load_reports_the_path_of_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nope.toml");
    let err = load(
        &file,
        &LoadOptions {
            home: Some(HOME.into()),
            ..LoadOptions::default()
        },
    )
    .unwrap_err();
    match &err {
        ConfigError::Read { path, source } => {
            assert_eq!(path, &file);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err
        .to_string()
        .starts_with(&format!("{}: ", file.display())));
}

#[test]
fn load_reports_diagnostics_with_the_absolute_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("skills.toml");
    std::fs::write(&file, "[daemon]\n").unwrap();
    let err = load(
        &file,
        &LoadOptions {
            home: Some(HOME.into()),
            ..LoadOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:1:1: no skills configured: add a [skills.NAME] table",
            file.display()
        )
    );
}

// ---- errors from the TOML layer ------------------------------------

#[test]
fn syntax_error() {
    assert_one(
        "[skills.a]\nimage = \n",
        2,
        9,
        &["string values must be quoted"],
    );
    assert_one("\n\n[skills.a\n", 3, 10, &[]);
}

#[test]
fn duplicate_key() {
    assert_one(
        "[skills.a]\nimage = \"r.io/a\"\nimage = \"r.io/b\"\n",
        3,
        1,
        &["duplicate key"],
    );
}

#[test]
fn wrong_type() {
    assert_one(
        "[daemon]\npoll_interval = 5\n",
        2,
        17,
        &["invalid type: integer `5`, expected a string"],
    );
    assert_one(
        "[daemon]\nmax_skill_size = true\n",
        2,
        18,
        &["expected a size such as \"64MiB\""],
    );
    assert_one(
        "[skills.a]\nimage = \"r.io/a\"\ntargets = [\"claude\", 1]\n",
        3,
        22,
        &["invalid type: integer `1`"],
    );
}

#[test]
fn unknown_keys_everywhere() {
    assert_one("bogus = 1\n", 1, 1, &["unknown field `bogus`", "`skills`"]);
    assert_one(
        "[daemon]\npoll_intervall = \"5m\"\n",
        2,
        1,
        &["unknown field `poll_intervall`", "`poll_interval`"],
    );
    assert_one(
        "[defaults]\nchanel = \"draft\"\n",
        2,
        1,
        &["unknown field `chanel`", "`channel`"],
    );
    assert_one(
        "[registries.\"r:1\"]\nsecure = true\n",
        2,
        1,
        &["unknown field `secure`", "`insecure`"],
    );
    assert_one(
        "[targets.x]\ndir = \"/x\"\n",
        2,
        1,
        &["unknown field `dir`", "`path`"],
    );
    assert_one(
        "[skills.a]\nimage = \"r.io/a\"\n  versions = \"1\"\n",
        3,
        3,
        &["unknown field `versions`", "`version`"],
    );
    assert_one(
        "[skills.a]\nimage = \"r.io/a\"\n[bogus]\n",
        3,
        2,
        &["unknown field `bogus`"],
    );
}

// ---- validation errors ---------------------------------------------

#[test]
fn no_skills() {
    let msg = "no skills configured: add a [skills.NAME] table";
    assert_one("", 1, 1, &[msg]);
    assert_one("# nothing\n\n", 1, 1, &[msg]);
    assert_one("[daemon]\npoll_interval = \"1m\"\n", 1, 1, &[msg]);
    assert_one("\n[skills]\n", 1, 1, &[msg]);
}

#[test]
fn unknown_target_in_a_skill() {
    assert_one(
        "[skills.a]\nimage = \"r.io/a\"\ntargets = [\"claude\", \"curser\"]\n",
        3,
        22,
        &[
            "unknown target \"curser\" (did you mean \"cursor\"?)",
            "built-in targets are claude, cursor, windsurf, opencode, openclaw",
            "define custom ones under [targets.NAME]",
        ],
    );
    let d = diagnostics(
        "[targets.mine]\npath = \"/m\"\n[skills.a]\nimage = \"r.io/a\"\ntargets = [\"zzzzzz\"]\n",
    );
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].line, d[0].column), (5, 12));
    assert_eq!(
        d[0].message,
        "unknown target \"zzzzzz\"; built-in targets are claude, cursor, windsurf, \
         opencode, openclaw, custom targets are mine; define custom ones under [targets.NAME]"
    );
}

#[test]
fn unknown_target_in_defaults_is_reported_once() {
    let d = diagnostics(
        "[defaults]\ntargets = [\"nope\"]\n[skills.a]\nimage = \"r.io/a\"\n[skills.b]\nimage = \"r.io/b\"\n",
    );
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!((d[0].line, d[0].column), (2, 12));
    assert_eq!(
        d[0].message,
        "unknown target \"nope\"; built-in targets are claude, cursor, windsurf, \
         opencode, openclaw; define custom ones under [targets.NAME]"
    );
}

#[test]
fn target_listed_twice() {
    assert_one(
        "[skills.a]\nimage = \"r.io/a\"\ntargets = [\"claude\", \"claude\"]\n",
        3,
        22,
        &["target \"claude\" is listed twice"],
    );
}

#[test]
fn two_targets_with_the_same_directory() {
    assert_one(
        "[targets.mine]\npath = \"~/.claude/skills\"\n\
         [skills.a]\nimage = \"r.io/a\"\ntargets = [\"claude\", \"mine\"]\n",
        5,
        22,
        &["targets \"claude\" and \"mine\" are the same directory (/home/u/.claude/skills)"],
    );
}

#[test]
fn bad_skill_names() {
    for (key, col) in [
        ("Hello", 9),
        ("\"hello world\"", 9),
        ("hello_world", 9),
        ("-hello", 9),
        ("hello-", 9),
        ("hello--world", 9),
        ("\"\"", 9),
    ] {
        let text = format!("[skills.{key}]\nimage = \"r.io/a\"\ntargets = [\"claude\"]\n");
        assert_one(
            &text,
            1,
            col,
            &["invalid skill name", "lowercase letters and digits"],
        );
    }
    let long = "a".repeat(65);
    assert_one(
        &format!("\n[skills.{long}]\nimage = \"r.io/a\"\ntargets = [\"claude\"]\n"),
        2,
        9,
        &["it is 65 characters long; the limit is 64"],
    );
    let max = "a".repeat(64);
    let c = parse_ok(&format!(
        "[skills.{max}]\nimage = \"r.io/a\"\ntargets = [\"claude\"]\n"
    ));
    assert!(c.skills.contains_key(&max));
    assert_one(
        "skills.Bad = { image = \"r.io/a\", targets = [\"claude\"] }\n",
        1,
        8,
        &["invalid skill name \"Bad\""],
    );
}

#[test]
fn bad_target_names() {
    assert_one(
        &with_ok("[targets.My_Target]\npath = \"/x\"\n"),
        1,
        10,
        &[
            "invalid target name \"My_Target\"",
            "lowercase letters and digits",
        ],
    );
    let long = "b".repeat(65);
    assert_one(
        &with_ok(&format!("[targets.{long}]\npath = \"/x\"\n")),
        1,
        10,
        &["invalid target name", "the limit is 64"],
    );
}

#[test]
fn target_without_a_path() {
    assert_one(
        &with_ok("[targets.mine]\n"),
        1,
        10,
        &["target \"mine\" has no path: add path = "],
    );
    assert_one(
        &with_ok("[targets.mine]\npath = \"\"\n"),
        2,
        8,
        &["path of target \"mine\" is empty"],
    );
}

#[test]
fn a_skill_on_a_broken_target_is_not_reported_twice() {
    assert_one(
        "[targets.mine]\n[skills.a]\nimage = \"r.io/a\"\ntargets = [\"mine\"]\n",
        1,
        10,
        &["has no path"],
    );
}

#[test]
fn bad_durations() {
    assert_one(
        &with_ok("[daemon]\npoll_interval = \"5 parsecs\"\n"),
        2,
        17,
        &[
            "invalid poll_interval \"5 parsecs\"",
            "use a duration such as \"30s\", \"5m\" or \"1h\"",
        ],
    );
    assert_one(
        &with_ok("[daemon]\npoll_interval = \"\"\n"),
        2,
        17,
        &["invalid poll_interval \"\""],
    );
    assert_one(
        &with_ok("[daemon]\npoll_interval = \"500ms\"\n"),
        2,
        17,
        &["poll_interval \"500ms\" is too short: the minimum is \"1s\""],
    );
}

#[test]
fn huge_durations_are_refused_where_they_are_written() {
    // Each would overflow a deadline (`Instant + Duration`) or a status
    // time past year 9999 if accepted.
    let huge = [
        "500000000000y",
        "18446744073709551615s",
        "8000y",
        "7900y",
        "8d",
        "7days 1s",
    ];
    for raw in huge {
        assert_one(
            &with_ok(&format!(
                "[daemon]\nprune = true\npoll_interval = \"{raw}\"\n"
            )),
            3,
            17,
            &[&format!(
                "poll_interval \"{raw}\" is too long: the maximum is \"7d\""
            )],
        );
    }
    let c = parse_ok(&with_ok("[daemon]\npoll_interval = \"7d\"\n"));
    assert_eq!(c.daemon.poll_interval, MAX_POLL_INTERVAL);

    for raw in huge.iter().chain(&["61m", "2h"]) {
        assert_one(
            &with_ok(&format!("[daemon]\n  request_timeout = \"{raw}\"\n")),
            2,
            21,
            &[&format!(
                "request_timeout \"{raw}\" is too long: the maximum is \"1h\""
            )],
        );
    }
    let c = parse_ok(&with_ok("[daemon]\nrequest_timeout = \"1h\"\n"));
    assert_eq!(c.daemon.request_timeout, MAX_REQUEST_TIMEOUT);
    assert_one(
        &with_ok("[daemon]\nrequest_timeout = \"500ms\"\n"),
        2,
        19,
        &["request_timeout \"500ms\" is too short: the minimum is \"1s\""],
    );

    // Both at once: each reported at its own place, in file order.
    let d = diagnostics(&with_ok(
        "[daemon]\nrequest_timeout = \"8000y\"\npoll_interval = \"500000000000y\"\n",
    ));
    let at: Vec<(usize, usize)> = d.iter().map(|d| (d.line, d.column)).collect();
    assert_eq!(at, [(2, 19), (3, 17)], "{d:#?}");
}

#[test]
fn bad_sizes() {
    let cases: &[(&str, &str)] = &[
        ("\"64XB\"", "has an unknown unit \"XB\""),
        ("\"64\"", "has no unit"),
        ("\"MiB\"", "does not start with a number"),
        ("\"1.5GiB\"", "unknown unit \".5GiB\""),
        ("-1", "-1 is negative"),
        ("0", "at least 1 byte"),
        ("\"0MiB\"", "at least 1 byte"),
        ("\"99999999999999GiB\"", "is too large"),
        ("\"99999999999999999999999B\"", "is too large"),
    ];
    for (raw, part) in cases {
        assert_one(
            &with_ok(&format!("[daemon]\nmax_skill_size = {raw}\n")),
            2,
            18,
            &["invalid max_skill_size: ", part],
        );
    }
}

#[test]
fn bad_max_entries() {
    for raw in ["0", "-5"] {
        assert_one(
            &with_ok(&format!("[daemon]\nmax_entries = {raw}\n")),
            2,
            15,
            &[&format!(
                "invalid max_entries {raw}: it must be a positive number"
            )],
        );
    }
}

#[test]
fn durability() {
    assert_eq!(parse_ok(&with_ok("")).daemon.durability, Durability::Fsync);
    for (raw, want) in [("syncfs", Durability::Syncfs), ("fsync", Durability::Fsync)] {
        let c = parse_ok(&with_ok(&format!("[daemon]\ndurability = \"{raw}\"\n")));
        assert_eq!(c.daemon.durability, want);
    }
    assert_one(
        &with_ok("[daemon]\ndurability = \"none\"\n"),
        2,
        14,
        &["invalid durability \"none\": \"syncfs\" or \"fsync\""],
    );
}

#[test]
fn empty_daemon_directories() {
    let d = diagnostics(&with_ok("[daemon]\nstate_dir = \"\"\ncache_dir = \" \"\n"));
    let got: Vec<_> = d
        .iter()
        .map(|d| (d.line, d.column, d.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (2, 13, "state_dir is empty: give a directory"),
            (3, 13, "cache_dir is empty: give a directory"),
        ]
    );
}

#[test]
fn bad_version_requirement() {
    assert_one(
        "[skills.a]\nimage = \"r.io/a\"\nversion = \"one point oh\"\ntargets = [\"claude\"]\n",
        3,
        11,
        &[
            "invalid version requirement \"one point oh\"",
            "use e.g. \"^1.0\"",
        ],
    );
}

#[test]
fn bad_digest() {
    assert_one(
        "[skills.a]\nimage = \"r.io/a\"\ndigest = \"sha256:abc\"\ntargets = [\"claude\"]\n",
        3,
        10,
        &["invalid digest: \"sha256:abc\" is not a sha256 digest"],
    );
}

#[test]
fn bad_tag() {
    assert_one(
        "[skills.a]\nimage = \"r.io/a\"\ntag = \"-bad\"\ntargets = [\"claude\"]\n",
        3,
        7,
        &["invalid tag \"-bad\""],
    );
    assert_one(
        &format!(
            "[skills.a]\nimage = \"r.io/a\"\ntag = \"{}\"\ntargets = [\"claude\"]\n",
            "t".repeat(129)
        ),
        3,
        7,
        &["invalid tag"],
    );
}

#[test]
fn bad_channel() {
    assert_one(
        "[skills.a]\nimage = \"r.io/a\"\nchannel = \"deprecated\"\ntargets = [\"claude\"]\n",
        3,
        11,
        &["unknown channel \"deprecated\": use \"published\", \"testing\" or \"draft\""],
    );
    assert_one(
        &with_ok("[defaults]\nchannel = \"stable\"\n"),
        2,
        11,
        &["unknown channel \"stable\""],
    );
}

#[test]
fn bad_images() {
    assert_one(
        "[skills.a]\nimage = \"r.io/a:1.0\"\ntargets = [\"claude\"]\n",
        2,
        9,
        &["must be a repository without a tag or digest"],
    );
    assert_one(
        "[skills.a]\nimage = \"r.io/Upper\"\ntargets = [\"claude\"]\n",
        2,
        9,
        &["is not a valid repository reference"],
    );
    assert_one(
        "[skills.a]\nimage = \"\"\ntargets = [\"claude\"]\n",
        2,
        9,
        &["is not a valid repository reference (empty)"],
    );
    assert_one(
        "[skills.a]\nimage = \"examples/hello\"\ntargets = [\"claude\"]\n",
        2,
        9,
        &[
            "\"examples\" is neither a registry host",
            "nor a [registries.examples] layout alias",
            "e.g. \"quay.io/examples/hello\"",
        ],
    );
    assert_one(
        "[skills.a]\nimage = \"quay.io\"\ntargets = [\"claude\"]\n",
        2,
        9,
        &["names a registry but no repository"],
    );
}

#[test]
fn skill_without_an_image() {
    assert_one(
        "[skills.a]\ntargets = [\"claude\"]\n",
        1,
        9,
        &["skill \"a\" has no image: add image = "],
    );
}

#[test]
fn tag_and_digest_together() {
    assert_one(
        &format!(
            "[skills.a]\nimage = \"r.io/a\"\ntag = \"1.0\"\ndigest = \"{DIGEST}\"\ntargets = [\"claude\"]\n"
        ),
        4,
        10,
        &["`tag` and `digest` both set"],
    );
}

#[test]
fn version_with_tag_or_digest() {
    assert_one(
        "[skills.a]\nimage = \"r.io/a\"\ntag = \"1.0\"\nversion = \"^1\"\ntargets = [\"claude\"]\n",
        4,
        11,
        &["`version` cannot be combined with `tag`"],
    );
    assert_one(
        &format!(
            "[skills.a]\nimage = \"r.io/a\"\nversion = \"^1\"\ndigest = \"{DIGEST}\"\ntargets = [\"claude\"]\n"
        ),
        3,
        11,
        &["`version` cannot be combined with `digest`"],
    );
}

#[test]
fn channel_with_tag_or_digest() {
    assert_one(
        "[skills.a]\nimage = \"r.io/a\"\ntag = \"1.0\"\nchannel = \"testing\"\ntargets = [\"claude\"]\n",
        4,
        11,
        &["`channel` cannot be combined with `tag`"],
    );
    assert_one(
        &format!(
            "[skills.a]\nimage = \"r.io/a\"\n channel = \"draft\"\ndigest = \"{DIGEST}\"\ntargets = [\"claude\"]\n"
        ),
        3,
        12,
        &["`channel` cannot be combined with `digest`"],
    );
}

#[test]
fn skill_with_empty_targets() {
    assert_one(
        "[skills.a]\nimage = \"r.io/a\"\ntargets = []\n",
        3,
        11,
        &["skill \"a\" has no targets: list at least one"],
    );
    assert_one(
        "[defaults]\ntargets = [\"claude\"]\n[skills.a]\nimage = \"r.io/a\"\ntargets = []\n",
        5,
        11,
        &["skill \"a\" has no targets"],
    );
}

#[test]
fn skill_without_targets_or_defaults() {
    let c = parse("[skills.a]\nimage = \"r.io/a\"\n").unwrap();
    assert_eq!(c.skills["a"].targets, vec!["claude".to_string()]);
    assert_eq!(
        c.targets["claude"].path,
        PathBuf::from("/home/u/.claude/skills")
    );
    assert_one(
        "[defaults]\ntargets = []\n[skills.a]\nimage = \"r.io/a\"\n",
        3,
        9,
        &["skill \"a\" has no targets"],
    );
}

#[test]
fn insecure_with_layout() {
    assert_one(
        &with_ok("[registries.demo]\nlayout = \"l\"\ninsecure = false\n"),
        3,
        12,
        &[
            "registry \"demo\" sets both `insecure` and `layout`",
            "remove `insecure`",
        ],
    );
}

#[test]
fn empty_layout_path() {
    assert_one(
        &with_ok("[registries.demo]\nlayout = \"\"\n"),
        2,
        10,
        &["layout is empty"],
    );
}

#[test]
fn bad_registry_key() {
    assert_one(
        &with_ok("[registries.\"r.io/x\"]\ninsecure = true\n"),
        1,
        13,
        &["invalid registry key \"r.io/x\""],
    );
}

#[test]
fn every_problem_is_reported_in_file_order() {
    let text = "\
[daemon]
poll_interval = \"soon\"
max_skill_size = \"lots\"

[targets.Bad]
path = \"/x\"

[skills.b]
image = \"r.io/b\"
targets = [\"curser\"]

[skills.A]
image = \"r.io/a:latest\"
version = \"~~\"
targets = []
";
    let d = diagnostics(text);
    let got: Vec<(usize, usize)> = d.iter().map(|d| (d.line, d.column)).collect();
    assert_eq!(
        got,
        [
            (2, 17),
            (3, 18),
            (5, 10),
            (10, 12),
            (12, 9),
            (13, 9),
            (14, 11),
            (15, 11)
        ],
        "{d:#?}"
    );
    assert!(d[0].message.starts_with("invalid poll_interval"));
    assert!(d[1].message.starts_with("invalid max_skill_size"));
    assert!(d[2].message.starts_with("invalid target name"));
    assert!(d[3].message.starts_with("unknown target \"curser\""));
    assert!(d[4].message.starts_with("invalid skill name \"A\""));
    assert!(d[5].message.contains("without a tag or digest"));
    assert!(d[6].message.starts_with("invalid version requirement"));
    assert!(d[7].message.starts_with("skill \"A\" has no targets"));
    let shown = ConfigError::Invalid(d).to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 8);
    assert!(lines[0].starts_with("/etc/sk/skills.toml:2:17: invalid poll_interval"));
    assert!(lines[7].starts_with("/etc/sk/skills.toml:15:11: skill \"A\" has no targets"));
}

// ---- helpers -------------------------------------------------------

#[test]
fn non_ascii_columns_in_diagnostics() {
    assert_one(
        "# é\n[skills.a]\nimage = \"r.io/a\" # ü\nchannel = \"ß\"\ntargets = [\"claude\"]\n",
        4,
        11,
        &["unknown channel \"ß\""],
    );
}

#[test]
fn edit_distances() {
    assert_eq!(edit_distance("curser", "cursor"), 1);
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("claude", "claude"), 0);
    assert_eq!(edit_distance("clade", "claude"), 1);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
}

#[test]
fn names_and_tags() {
    assert!(crate::name::check("a").is_ok());
    assert!(crate::name::check("a1-b2-c3").is_ok());
    assert!(crate::name::check("0").is_ok());
    assert!(crate::name::check("").is_err());
    assert!(crate::name::check("a.b").is_err());
    assert!(crate::name::check("é").is_err());
    assert!(is_tag("1.0.0-testing"));
    assert!(is_tag("_x"));
    assert!(is_tag("latest"));
    assert!(!is_tag(""));
    assert!(!is_tag(".x"));
    assert!(!is_tag("a/b"));
    assert!(!is_tag("a:b"));
}

#[test]
fn verify_is_resolved_from_skill_prefix_registry_and_defaults() {
    let c = parse_ok(
        r#"
[defaults]
verify = { keys = ["~/keys/default.pub"] }

[registries."r.example:5000"]
verify = { keys = ["keys/registry.pub", "/abs/second.pub"] }

[repositories."r.example:5000/acme"]
verify = "none"

[repositories."r.example:5000/acme/signed"]
verify = { keys = ["/k/signed.pub"] }

[skills.own]
image = "r.example:5000/acme/x"
verify = { keys = ["/k/own.pub"] }

[skills.prefix]
image = "r.example:5000/acme/x"

[skills.longest]
image = "r.example:5000/acme/signed/y"

[skills.not-a-component]
image = "r.example:5000/acmeco/z"

[skills.elsewhere]
image = "quay.io/other/z"
"#,
    );
    let keys = |paths: &[&str]| {
        Some(VerifySetting::Keys(
            paths.iter().map(PathBuf::from).collect(),
        ))
    };
    let v = |name: &str| c.skills[name].verify.clone();
    assert_eq!(v("own"), keys(&["/k/own.pub"]));
    assert_eq!(v("prefix"), Some(VerifySetting::None));
    assert_eq!(v("longest"), keys(&["/k/signed.pub"]));
    let relative = Path::new(FILE).parent().unwrap().join("keys/registry.pub");
    assert_eq!(
        v("not-a-component"),
        Some(VerifySetting::Keys(vec![
            relative,
            PathBuf::from("/abs/second.pub")
        ]))
    );
    assert_eq!(v("elsewhere"), keys(&["/home/u/keys/default.pub"]));
    assert_eq!(c.repositories.len(), 2);
    let plain = parse_ok("[skills.x]\nimage = \"quay.io/a/b\"\n");
    assert_eq!(plain.skills["x"].verify, None);
}

#[test]
fn bad_verify_settings() {
    assert_one(
        "[skills.x]\nimage = \"quay.io/a/b\"\nverify = \"yes\"\n",
        3,
        10,
        &["invalid verify", "verify = \"none\""],
    );
    assert_one(
        "[skills.x]\nimage = \"quay.io/a/b\"\nverify = { keys = [] }\n",
        3,
        10,
        &["non-empty list"],
    );
    assert_one(
        "[skills.x]\nimage = \"quay.io/a/b\"\nverify = { key = [\"/k.pub\"] }\n",
        3,
        10,
        &["unknown key \"key\""],
    );
    assert_one(
        "[repositories.\"quay.io\"]\nverify = \"none\"\n[skills.x]\nimage = \"quay.io/a/b\"\n",
        1,
        15,
        &["invalid repository prefix"],
    );
}
