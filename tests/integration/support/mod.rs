//! Shared support for the integration tests.
//!
//! - [`registry`]: a real `docker-registry` (distribution 2.8) on a free
//!   loopback port with storage in a temporary directory.
//! - [`skillimage`]: skill images in skillctl's exact format, a publisher
//!   that mirrors skillctl's lifecycle on a registry, and OCI layouts.
//! - [`proxy`]: a counting, fault-injecting proxy in front of the registry.
//! - [`cosign`]: keys made here, and signatures and bundles pushed
//!   exactly as cosign pushes them.
//! - [`demo`]: the skills bundled in `config/demo/layout`.
//! - [`TestEnv`] (here): a sandboxed HOME and XDG directories, the config
//!   file, and commands for the real binaries run inside the sandbox.
//!
//! Not every test uses every item, hence `dead_code` is allowed here.

#![allow(dead_code)]

pub mod cosign;
pub mod demo;
pub mod proxy;
pub mod registry;
pub mod skillimage;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The daemon binary built for these tests.
pub const SKILLSYNCD: &str = env!("CARGO_BIN_EXE_skillsyncd");
/// The control binary built for these tests.
pub const SKILLSYNCCTL: &str = env!("CARGO_BIN_EXE_skillsyncctl");

/// `RUST_LOG` for the binaries when the test run sets none.
const DEFAULT_RUST_LOG: &str = "info,skillsyncd=debug";

/// A sandbox: HOME and every XDG base directory are separate fresh
/// directories under one temporary root (distinct, so a binary that reads
/// `~/.config` instead of `$XDG_CONFIG_HOME` is caught). Removed on drop.
#[derive(Debug)]
pub struct TestEnv {
    root: TempDir,
    home: PathBuf,
    config_home: PathBuf,
    state_home: PathBuf,
    cache_home: PathBuf,
    runtime_dir: PathBuf,
}

impl TestEnv {
    /// Creates the sandbox; `XDG_RUNTIME_DIR` is mode 0700, as the spec
    /// requires.
    pub fn new() -> TestEnv {
        let root = tempfile::Builder::new()
            .prefix("skillsync-test-")
            .tempdir()
            .expect("create the sandbox's temporary directory");
        let dir = |name: &str| {
            let path = root.path().join(name);
            std::fs::create_dir(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
            path
        };
        let env = TestEnv {
            home: dir("home"),
            config_home: dir("config"),
            state_home: dir("state"),
            cache_home: dir("cache"),
            runtime_dir: dir("run"),
            root,
        };
        std::fs::set_permissions(&env.runtime_dir, std::fs::Permissions::from_mode(0o700))
            .expect("make XDG_RUNTIME_DIR 0700");
        env
    }

    /// The sandbox's root (holds every other directory).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// `$HOME`.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// `$XDG_CONFIG_HOME`.
    pub fn config_home(&self) -> &Path {
        &self.config_home
    }

    /// `$XDG_STATE_HOME`.
    pub fn state_home(&self) -> &Path {
        &self.state_home
    }

    /// The state as recorded on disk, one file per skill
    /// (`$XDG_STATE_HOME/skillsync/skills/<name>.json`), gathered as
    /// `{"skills": {"<name>": {...}}}`.
    pub fn recorded_state(&self) -> serde_json::Value {
        let dir = self.state_home.join("skillsync/skills");
        let mut skills = serde_json::Map::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let file = entry.file_name().to_string_lossy().into_owned();
                let Some(name) = file.strip_suffix(".json").filter(|n| !n.starts_with('.')) else {
                    continue;
                };
                let bytes = std::fs::read(entry.path())
                    .unwrap_or_else(|e| panic!("read {}: {e}", entry.path().display()));
                let record: serde_json::Value = serde_json::from_slice(&bytes)
                    .unwrap_or_else(|e| panic!("{} is not JSON ({e})", entry.path().display()));
                skills.insert(name.to_string(), record);
            }
        }
        serde_json::json!({ "skills": skills })
    }

    /// `$XDG_CACHE_HOME`.
    pub fn cache_home(&self) -> &Path {
        &self.cache_home
    }

    /// `$XDG_RUNTIME_DIR` (mode 0700).
    pub fn runtime_dir(&self) -> &Path {
        &self.runtime_dir
    }

    /// The default config file: `$XDG_CONFIG_HOME/skillsync/skills.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.config_home.join("skillsync/skills.toml")
    }

    /// The system-wide config the binaries read first (absent unless a
    /// test writes it): `<root>/etc/skillsync/skills.toml`.
    pub fn system_config_path(&self) -> PathBuf {
        self.root.path().join("etc/skillsync/skills.toml")
    }

    /// Writes `toml` to the default config file; returns its path.
    pub fn write_config(&self, toml: &str) -> PathBuf {
        let path = self.config_path();
        write_file(&path, toml.as_bytes());
        path
    }

    /// Writes `toml` to `path` (relative paths are inside the sandbox
    /// root); returns the full path.
    pub fn write_config_at(&self, path: impl AsRef<Path>, toml: &str) -> PathBuf {
        let path = self.root().join(path);
        write_file(&path, toml.as_bytes());
        path
    }

    /// The variables the binaries get: the sandbox's HOME and XDG
    /// directories, the containers policy under its `XDG_CONFIG_HOME`, the caller's `PATH` (`docker-credential-*` programs are
    /// found on it), and `RUST_LOG` (the caller's, else
    /// [`DEFAULT_RUST_LOG`]).
    pub fn envs(&self) -> Vec<(&'static str, OsString)> {
        vec![
            ("HOME", self.home.clone().into()),
            ("XDG_CONFIG_HOME", self.config_home.clone().into()),
            ("XDG_STATE_HOME", self.state_home.clone().into()),
            ("XDG_CACHE_HOME", self.cache_home.clone().into()),
            ("XDG_RUNTIME_DIR", self.runtime_dir.clone().into()),
            // The sandbox's own registries.conf, not the machine's.
            (
                "SKILLSYNC_REGISTRIES_CONF",
                self.config_home.join("containers/registries.conf").into(),
            ),
            // The containers trust policy inside the sandbox (absent unless
            // a test writes it), so the host's own does not decide.
            (
                "SKILLSYNC_CONTAINERS_POLICY",
                self.config_home.join("containers/policy.json").into(),
            ),
            // Never the machine's /etc/skillsync/skills.toml.
            ("SKILLSYNC_SYSTEM_CONFIG", self.system_config_path().into()),
            (
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
            ),
            (
                "RUST_LOG",
                std::env::var_os("RUST_LOG").unwrap_or_else(|| DEFAULT_RUST_LOG.into()),
            ),
        ]
    }

    /// `program` with a cleared environment plus [`TestEnv::envs`],
    /// running in `$HOME`.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .envs(self.envs())
            .current_dir(&self.home);
        command
    }

    /// One skill of `skillsyncctl status --json` (`Null` when the daemon
    /// does not answer or does not know it).
    pub fn skill_status(&self, name: &str) -> serde_json::Value {
        let out = self
            .ctl()
            .args(["status", "--json"])
            .output()
            .expect("run skillsyncctl");
        let status: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        status["skills"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    }

    /// Waits until the daemon reports `name` in sync at `version`.
    pub fn wait_in_sync(&self, name: &str, version: &str) {
        wait_until(
            Duration::from_secs(60),
            &format!("{name} {version} in sync"),
            || {
                let s = self.skill_status(name);
                s["state"] == "in_sync" && s["version"] == version
            },
        );
    }

    /// `skillsyncd` in the sandbox.
    pub fn daemon(&self) -> Command {
        self.command(SKILLSYNCD)
    }

    /// Runs `program ARGS` in the sandbox; its output is echoed to stderr
    /// (shown when a test fails).
    pub fn run(&self, program: &str, args: &[&str]) -> std::process::Output {
        let out = self
            .command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        eprintln!(
            "--- {program} {args:?}: {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs `skillsyncd --once` in the sandbox (see [`TestEnv::run`]).
    pub fn once(&self) -> std::process::Output {
        self.run(SKILLSYNCD, &["--once"])
    }

    /// Runs `skillsyncd --once` in the sandbox and panics, with its output,
    /// unless it exits 0.
    pub fn once_ok(&self) {
        let output = self.once();
        assert!(
            output.status.success(),
            "skillsyncd --once failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `skillsyncctl` in the sandbox.
    pub fn ctl(&self) -> Command {
        self.command(SKILLSYNCCTL)
    }

    /// Runs `skillsyncctl ARGS` in the sandbox (see [`TestEnv::run`]).
    pub fn run_ctl(&self, args: &[&str]) -> std::process::Output {
        self.run(SKILLSYNCCTL, args)
    }

    /// A built-in agent's skills directory inside the sandbox's HOME
    /// (FORMAT.md's table): `claude` → `~/.claude/skills`, ...
    pub fn target_dir(&self, agent: &str) -> PathBuf {
        let relative = match agent {
            "claude" => ".claude/skills",
            "cursor" => ".cursor/skills",
            "windsurf" => ".codeium/windsurf/skills",
            "opencode" => ".config/opencode/skills",
            "openclaw" => ".openclaw/skills",
            other => panic!("{other:?} is not a built-in target"),
        };
        self.home.join(relative)
    }

    /// `<target dir>/<skill>`.
    pub fn skill_dir(&self, agent: &str, skill: &str) -> PathBuf {
        self.target_dir(agent).join(skill)
    }

    /// The files of an installed skill (see [`read_tree`]).
    pub fn read_skill(&self, agent: &str, skill: &str) -> BTreeMap<String, Vec<u8>> {
        read_tree(&self.skill_dir(agent, skill))
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        TestEnv::new()
    }
}

/// Writes `bytes` to `path`, creating parent directories.
pub fn write_file(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
    }
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A `skill.yaml` as the image shipped it: skillsyncd writes provenance
/// into the installed copy (as `skillctl install` does, re-serialising the
/// card), so a tree is compared on the card's data without `provenance`.
/// Bytes that are not a YAML mapping are returned as they are.
pub fn card_without_provenance(bytes: &[u8]) -> Vec<u8> {
    match yaml_serde::from_slice::<yaml_serde::Value>(bytes) {
        Ok(yaml_serde::Value::Mapping(mut card)) => {
            card.remove("provenance");
            yaml_serde::to_string(&card)
                .map(String::into_bytes)
                .unwrap_or_else(|_| bytes.to_vec())
        }
        _ => bytes.to_vec(),
    }
}

/// Every regular file under `dir`: `/`-separated path relative to `dir` →
/// contents. Panics on anything but files and directories (an installed
/// skill holds nothing else) and if `dir` does not exist.
/// `skill.yaml` is compared without provenance ([`card_without_provenance`]).
pub fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
            let path = entry.path();
            let kind = entry
                .file_type()
                .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
            if dir == root && entry.file_name() == ".skillsyncd.json" {
                // skillsyncd's ownership marker, not part of the skill.
                continue;
            }
            if kind.is_dir() {
                walk(root, &path, out);
            } else if kind.is_file() {
                let relative = path
                    .strip_prefix(root)
                    .expect("walked paths are under the root")
                    .to_str()
                    .unwrap_or_else(|| panic!("{} is not UTF-8", path.display()))
                    .to_owned();
                let bytes =
                    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
                let bytes = if relative == "skill.yaml" {
                    card_without_provenance(&bytes)
                } else {
                    bytes
                };
                out.insert(relative, bytes);
            } else {
                panic!(
                    "{} is neither a file nor a directory ({kind:?})",
                    path.display()
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Polls `condition` every 20 ms until it holds; panics with `what` after
/// `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed (and reaped) on drop, so a failing test leaves
/// no daemon behind.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    /// Spawns `command`.
    pub fn spawn(command: &mut Command) -> KillOnDrop {
        KillOnDrop(
            command
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {command:?}: {e}")),
        )
    }
}

impl std::ops::Deref for KillOnDrop {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where skopeo is expected.
pub const SKOPEO: &str = "/usr/bin/skopeo";

/// Runs `skopeo ARGS` with an accept-anything signature policy (so the
/// host's `/etc/containers/policy.json` does not matter) and returns its
/// stdout; panics with its stderr if it fails.
pub fn skopeo(args: &[&str]) -> String {
    assert!(
        Path::new(SKOPEO).exists(),
        "{SKOPEO} not found: install skopeo to run these tests"
    );
    let policy = tempfile::NamedTempFile::new().expect("create a skopeo policy file");
    std::fs::write(
        policy.path(),
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .expect("write the skopeo policy file");
    let output = Command::new(SKOPEO)
        .arg("--policy")
        .arg(policy.path())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {SKOPEO}: {e}"));
    assert!(
        output.status.success(),
        "skopeo {} failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("skopeo prints UTF-8")
}

/// `skopeo inspect --raw ARGS`: the manifest (or index) skopeo reads,
/// parsed. skopeo 1.9's plain `inspect` does not show annotations; read
/// them here.
pub fn skopeo_raw_manifest(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["inspect", "--raw"];
    all.extend_from_slice(args);
    let stdout = skopeo(&all);
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("skopeo inspect --raw printed no JSON ({e}): {stdout}"))
}

/// `skopeo inspect ARGS`, parsed (digest, layers, tags; no annotations in
/// skopeo 1.9).
pub fn skopeo_inspect(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["inspect"];
    all.extend_from_slice(args);
    let stdout = skopeo(&all);
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("skopeo inspect printed no JSON ({e}): {stdout}"))
}
