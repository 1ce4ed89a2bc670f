//! `skills.toml`: parsed, then validated into types that cannot be invalid.
//!
//! Parsing is two steps. First the text is deserialized into private raw
//! structs that mirror the file (`deny_unknown_fields` everywhere, every
//! key and value wrapped in [`toml::Spanned`] so its position is known).
//! Then the raw structs are checked as a whole and turned into the public
//! [`Config`]. The first step can only report one problem (a syntax error
//! or an unknown key); the second collects every problem it finds. Each
//! problem is a [`Diagnostic`] naming the file, line and column.
//!
//! ```toml
//! [daemon]
//! poll_interval = "5m"
//! max_skill_size = "64MiB"
//!
//! [defaults]
//! channel = "published"
//! targets = ["claude"]
//!
//! [registries."127.0.0.1:5000"]
//! insecure = true
//!
//! [registries.demo]
//! layout = "demo/layout"
//!
//! [targets.project-x]
//! path = "~/src/project-x/.claude/skills"
//!
//! [skills.hello-world]
//! image = "127.0.0.1:5000/examples/hello-world"
//! version = "^1.0"
//! targets = ["claude", "project-x"]
//! ```
//!
//! Paths (`state_dir`, `cache_dir`, `layout`, target `path`) have a leading
//! `~` expanded and are otherwise taken relative to the config file's
//! directory.

pub mod collection;
pub mod layers;
pub mod remote;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::channel::Channel;
pub use crate::config::layers::SourceMap;
use crate::paths::{expand_tilde, Paths, PathsError};
use crate::reference::{Digest, ImageRef};
use crate::verify::Setting as VerifySetting;

/// Targets of a skill when neither it nor `[defaults]` names any.
pub const DEFAULT_TARGETS: &[&str] = &["claude"];

/// The agents skillsyncd knows without configuration, with their user-scope
/// skills directories (`~` is the home directory). A `[targets.NAME]` table
/// with one of these names replaces its directory.
pub const BUILTIN_TARGETS: &[(&str, &str)] = &[
    ("claude", "~/.claude/skills"),
    ("cursor", "~/.cursor/skills"),
    ("windsurf", "~/.codeium/windsurf/skills"),
    ("opencode", "~/.config/opencode/skills"),
    ("openclaw", "~/.openclaw/skills"),
];

/// Default `[daemon] poll_interval`.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Smallest accepted `[daemon] poll_interval`.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Default `[daemon] max_skill_size`: 64 MiB.
pub const DEFAULT_MAX_SKILL_SIZE: u64 = 64 * 1024 * 1024;

/// Default `[daemon] max_entries`.
pub const DEFAULT_MAX_ENTRIES: u64 = 10_000;
/// `[daemon] request_timeout` when not set.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// `[daemon] jitter` when not set.
pub const DEFAULT_JITTER: f64 = 0.1;
/// `[daemon] generations` when not set.
pub const DEFAULT_GENERATIONS: u32 = 2;

/// Longest accepted skill or target name.
pub const MAX_NAME_LEN: usize = crate::name::MAX_LEN;

/// A configuration error, located in its file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// One or more problems in the file, each with its line and column.
    #[error("{}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
    /// The home directory, which `~` and the built-in targets need, is
    /// unknown.
    #[error("{path}: cannot resolve `~` and the built-in targets")]
    Home {
        /// The config file.
        path: PathBuf,
        /// Why the home directory is unknown.
        #[source]
        source: PathsError,
    },
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The config file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong, and where possible how to fix it.
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// `[daemon]`.
    pub daemon: DaemonSettings,
    /// `[registries."host:port"]` and layout aliases, by key.
    pub registries: BTreeMap<String, RegistrySettings>,
    /// Every target a skill uses (built-in or custom), by name, paths resolved.
    pub targets: BTreeMap<String, Target>,
    /// `[skills.NAME]`, by name, with the skills of every collection
    /// whose document is known (see [`crate::config::layers`]).
    pub skills: BTreeMap<String, Skill>,
    /// `[repositories."HOST/PREFIX"] verify`: the signature policy of
    /// every repository under a prefix, by prefix.
    pub repositories: BTreeMap<String, VerifySetting>,
    /// `[defaults] verify`: the signature policy of images nothing more
    /// specific covers.
    pub default_verify: Option<VerifySetting>,
    /// `[collections.NAME]`, by name.
    pub collections: BTreeMap<String, Collection>,
    /// Where each setting came from: the files read, remote includes,
    /// collections, and per-skill origins.
    pub layers: crate::config::layers::Layers,
}

/// `[collections.NAME]`, validated: a skillctl `SkillCollection` artifact
/// whose every skill is managed.
#[derive(Debug, Clone, PartialEq)]
pub struct Collection {
    /// The key under `[collections]`.
    pub name: String,
    /// The repository of the collection artifact.
    pub image: ImageRef,
    /// Which version of the collection to follow.
    pub selector: Selector,
    /// Where its skills are installed.
    pub targets: Vec<String>,
    /// `on_drift` of its skills (from `[defaults]`).
    pub on_drift: OnDrift,
    /// `on_archived` of its skills (from `[defaults]`).
    pub on_archived: OnArchived,
}

/// `[daemon]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonSettings {
    /// How often each skill is re-checked (default 5 minutes).
    pub poll_interval: Duration,
    /// Cap on a skill's unpacked size in bytes (default 64 MiB).
    pub max_skill_size: u64,
    /// Cap on a skill's number of archive entries (default 10,000).
    pub max_entries: u64,
    /// Overrides the state directory (`~` expanded, relative paths
    /// resolved against the config file's directory).
    pub state_dir: Option<PathBuf>,
    /// Overrides the cache directory (resolved like `state_dir`).
    pub cache_dir: Option<PathBuf>,
    /// Overrides the control socket's path (resolved like `state_dir`).
    pub socket: Option<PathBuf>,
    /// Installed generations kept per skill, the current one included
    /// (default 2: the current and one to roll back to).
    pub generations: u32,
    /// Uninstall skills (and targets) removed from the config, when ours
    /// and unedited (default true); false keeps them as unmanaged.
    pub prune: bool,
    /// Each skill's stable poll offset, as a fraction of the poll interval
    /// (default 0.1, at most 0.5).
    pub jitter: f64,
    /// The most one registry request (a tag list, a HEAD, a manifest) may
    /// take, headers and body together (default 60 s).
    pub request_timeout: Duration,
    /// How a new tree is made durable before it is swapped in.
    pub durability: Durability,
}

/// `[daemon] durability`: how a staged skill tree is made durable before
/// it replaces the installed one (either way an agent sees the old tree or
/// the new one, also after a crash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `fsync(2)` of every file and directory: waits for nothing but the
    /// tree's own writes. The only mode outside Linux.
    #[default]
    Fsync,
    /// One `syncfs(2)` of the target's filesystem per tree (Linux): one
    /// device flush instead of one per file and directory, but it also
    /// waits for whatever other programs have pending on that filesystem.
    Syncfs,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            poll_interval: DEFAULT_POLL_INTERVAL,
            max_skill_size: DEFAULT_MAX_SKILL_SIZE,
            max_entries: DEFAULT_MAX_ENTRIES,
            state_dir: None,
            cache_dir: None,
            socket: None,
            generations: DEFAULT_GENERATIONS,
            prune: true,
            jitter: DEFAULT_JITTER,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            durability: Durability::default(),
        }
    }
}

/// `[registries.KEY]` settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RegistrySettings {
    /// Plain HTTP to this host:port.
    pub insecure: bool,
    /// When set, KEY is an alias for this OCI image layout directory.
    pub layout: Option<PathBuf>,
    /// Credentials for this registry come from this file only (docker's
    /// `config.json` or podman's `auth.json` format) instead of the usual
    /// search.
    pub auth_file: Option<PathBuf>,
    /// PEM certificates of a private CA (or a self-signed certificate) this
    /// registry's TLS certificate is checked against, besides the system's.
    pub ca_file: Option<PathBuf>,
    /// `host[:port]`s tried, in order, before this registry; content from a
    /// mirror is verified by digest like any other.
    pub mirrors: Vec<String>,
    /// Requests in flight to this registry at most (default 4).
    pub max_requests: Option<usize>,
    /// Requests started per second at most (unlimited by default).
    pub requests_per_second: Option<f64>,
    /// `verify`: the signature policy of this registry's images.
    pub verify: Option<VerifySetting>,
}

/// A place skills are installed into.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// `claude`, `cursor`, ... or a `[targets.NAME]` key.
    pub name: String,
    /// The skills directory (`~` expanded, relative paths resolved against
    /// the config file's directory).
    pub path: PathBuf,
}

/// What version of an image a skill follows.
#[derive(Debug, Clone, PartialEq)]
pub enum Selector {
    /// The highest version admitted by the channel and requirement.
    Channel {
        /// The lifecycle channel.
        channel: Channel,
        /// Optional semver requirement.
        version: Option<semver::VersionReq>,
    },
    /// Whatever manifest this tag points to, whatever its status.
    Tag(String),
    /// Exactly this manifest.
    Digest(Digest),
}

/// `[skills.NAME]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Skill {
    /// The installed folder name (`[a-z0-9]+(-[a-z0-9]+)*`).
    pub name: String,
    /// The repository.
    pub image: ImageRef,
    /// What to follow.
    pub selector: Selector,
    /// Target names, each a key of [`Config::targets`].
    pub targets: Vec<String>,
    /// What to do when an installed copy was edited or deleted.
    pub on_drift: OnDrift,
    /// What to do when the installed version is archived.
    pub on_archived: OnArchived,
    /// Take over a folder of this name that skillsyncd did not install,
    /// after backing it up under the state dir.
    pub adopt: bool,
    /// The signature policy that applies: the skill's own `verify`, else
    /// the longest `[repositories]` prefix's, else the registry's, else
    /// `[defaults]`'s; `None` when none is set.
    pub verify: Option<VerifySetting>,
}

/// `on_archived`: what to do when the installed version's tag is deleted
/// from the registry (skillctl's `archived`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnArchived {
    /// Keep it installed; status says `archived`.
    #[default]
    Keep,
    /// Uninstall it (where ours and unedited).
    Remove,
}

/// `on_drift`: what to do with a managed folder edited (or deleted) since
/// it was installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDrift {
    /// Leave it as it is and say so in status (no updates reach it).
    #[default]
    Report,
    /// Back the edited folder up under the state dir, then reinstall.
    Restore,
    /// Leave it and hold the skill until `skillsyncctl resume NAME`.
    Keep,
}

impl Config {
    /// Whether `image` comes from an OCI layout directory (a
    /// `[registries.X] layout`) rather than from a registry.
    pub fn from_layout(&self, image: &ImageRef) -> bool {
        self.registries
            .get(&image.registry)
            .is_some_and(|r| r.layout.is_some())
    }

    /// Whether the config still wants skill `skill` installed at `path`
    /// through target `target` (false once the skill or the target is
    /// removed, or the target's folder moved).
    pub fn wants(&self, skill: &str, target: &str, path: &Path) -> bool {
        self.skills
            .get(skill)
            .is_some_and(|s| s.targets.iter().any(|t| t == target))
            && self
                .targets
                .get(target)
                .is_some_and(|t| t.path.join(skill) == path)
    }

    /// Reads and validates a config file, expanding `~` to the home
    /// directory found by [`Paths::from_env`].
    ///
    /// A relative `path` is made absolute against the current directory
    /// first, so every path in the result is absolute.
    ///
    /// The layers around it are read too (see [`crate::config::layers`]): the
    /// system file, includes, and the cached copies of remote includes and
    /// collections (in the cache directory the config and environment
    /// name).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let paths = Paths::from_env().map_err(|source| ConfigError::Home {
            path: path.to_path_buf(),
            source,
        })?;
        let mut options = crate::config::layers::LoadOptions::from_env();
        let config = crate::config::layers::load(path, &paths.home, &options)?;
        if config.layers.remote.is_empty() && config.collections.is_empty() {
            return Ok(config);
        }
        // Remote fragments cannot move the cache, so one more read with
        // the cache in place is final.
        options.team_cache = Some(paths.clone().with_config(&config.daemon).cache_dir);
        crate::config::layers::load(path, &paths.home, &options)
    }

    /// Reads and validates one config file alone (no system file, no
    /// includes), with the home directory given.
    pub fn load_with_home(path: &Path, home: &Path) -> Result<Config, ConfigError> {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Config::parse(&text, &path, home)
    }

    /// Parses and validates `text` as if read from `path`. Pure: `path`
    /// is only used in diagnostics and as the base of relative paths, and
    /// `home` is what `~` expands to.
    ///
    /// On failure every problem found is returned, sorted by position.
    pub fn parse(text: &str, path: &Path, home: &Path) -> Result<Config, ConfigError> {
        let sources = SourceMap::single(path, text);
        let parsed = toml::from_str::<RawConfig>(text);
        let (config, mut diagnostics) = Config::check_parsed(parsed, &sources, path, home);
        match config {
            Some(config) if diagnostics.is_empty() => Ok(config),
            _ => {
                diagnostics.sort_by_key(|d| (d.line, d.column));
                Err(ConfigError::Invalid(diagnostics))
            }
        }
    }

    /// Validates a document merged from several files (see
    /// [`crate::config::layers`]): every span in `table` is an offset into
    /// `sources`, so each problem names the file it is in. Returns the
    /// config (when the document had the right shape) and every problem.
    pub(crate) fn check_merged(
        table: toml::de::DeTable<'_>,
        sources: &SourceMap,
        path: &Path,
        home: &Path,
    ) -> (Option<Config>, Vec<Diagnostic>) {
        let parsed = RawConfig::deserialize(toml::de::Deserializer::from(Spanned::new(
            0..sources.len(),
            table,
        )));
        Config::check_parsed(parsed, sources, path, home)
    }

    /// Whether `table` has the shape of a config file (known keys, right
    /// types); the first problem otherwise.
    pub(crate) fn check_shape(table: toml::de::DeTable<'_>) -> Result<(), toml::de::Error> {
        RawConfig::deserialize(toml::de::Deserializer::from(Spanned::new(0..0, table))).map(|_| ())
    }

    fn check_parsed(
        parsed: Result<RawConfig, toml::de::Error>,
        sources: &SourceMap,
        path: &Path,
        home: &Path,
    ) -> (Option<Config>, Vec<Diagnostic>) {
        let mut cx = Checker {
            sources,
            path,
            base: path.parent().unwrap_or(Path::new("")),
            home,
            diagnostics: Vec::new(),
        };
        match parsed {
            Ok(raw) => {
                let config = cx.check(raw);
                (Some(config), cx.diagnostics)
            }
            Err(e) => {
                let offset = e.span().map_or(0, |s| s.start);
                cx.error(offset..offset, e.message().trim_end().to_string());
                (None, cx.diagnostics)
            }
        }
    }
}

/// A key together with its position in the file.
type Key = Spanned<String>;

/// A list of strings, each with its position, and the list's position.
type SpannedList = Spanned<Vec<Spanned<String>>>;

/// The whole file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    daemon: Option<RawDaemon>,
    defaults: Option<RawDefaults>,
    #[serde(default)]
    registries: BTreeMap<Key, RawRegistry>,
    #[serde(default)]
    targets: BTreeMap<Key, RawTarget>,
    #[serde(default)]
    skills: BTreeMap<Key, RawSkill>,
    #[serde(default)]
    repositories: BTreeMap<Key, RawRepository>,
    #[serde(default)]
    collections: BTreeMap<Key, RawCollection>,
    /// Read by [`crate::config::layers`]; only its shape is checked here.
    #[allow(dead_code)]
    include: Option<SpannedList>,
}

/// `[collections.NAME]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCollection {
    image: Option<Spanned<String>>,
    channel: Option<Spanned<String>>,
    version: Option<Spanned<String>>,
    tag: Option<Spanned<String>>,
    digest: Option<Spanned<String>>,
    targets: Option<SpannedList>,
    enabled: Option<Spanned<bool>>,
}

/// `[repositories."HOST/PREFIX"]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepository {
    verify: Option<Spanned<toml::Value>>,
}

/// `[daemon]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    poll_interval: Option<Spanned<String>>,
    max_skill_size: Option<Spanned<RawSize>>,
    max_entries: Option<Spanned<i64>>,
    state_dir: Option<Spanned<String>>,
    cache_dir: Option<Spanned<String>>,
    socket: Option<Spanned<String>>,
    generations: Option<Spanned<i64>>,
    prune: Option<bool>,
    jitter: Option<Spanned<f64>>,
    request_timeout: Option<Spanned<String>>,
    durability: Option<Spanned<String>>,
}

/// `[defaults]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    channel: Option<Spanned<String>>,
    targets: Option<SpannedList>,
    on_drift: Option<Spanned<String>>,
    on_archived: Option<Spanned<String>>,
    verify: Option<Spanned<toml::Value>>,
}

/// `[registries.KEY]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    insecure: Option<Spanned<bool>>,
    layout: Option<Spanned<String>>,
    auth_file: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
    mirrors: Option<Vec<Spanned<String>>>,
    max_requests: Option<Spanned<i64>>,
    requests_per_second: Option<Spanned<f64>>,
    verify: Option<Spanned<toml::Value>>,
}

/// `[targets.NAME]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    path: Option<Spanned<String>>,
}

/// `[skills.NAME]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSkill {
    image: Option<Spanned<String>>,
    channel: Option<Spanned<String>>,
    version: Option<Spanned<String>>,
    tag: Option<Spanned<String>>,
    digest: Option<Spanned<String>>,
    targets: Option<SpannedList>,
    on_drift: Option<Spanned<String>>,
    on_archived: Option<Spanned<String>>,
    adopt: Option<bool>,
    verify: Option<Spanned<toml::Value>>,
    /// `false` switches off a skill defined in another layer or listed by
    /// a collection.
    enabled: Option<Spanned<bool>>,
}

/// What `[defaults]` gives a skill that does not say.
struct SkillDefaults<'a> {
    channel: Option<Channel>,
    targets: Option<&'a [String]>,
    on_drift: OnDrift,
    on_archived: OnArchived,
}

/// A size: an integer number of bytes or a string with a unit.
#[derive(Debug)]
enum RawSize {
    Bytes(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawSize;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a size such as \"64MiB\" or an integer number of bytes")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawSize, E> {
                Ok(RawSize::Bytes(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawSize, E> {
                Ok(RawSize::Bytes(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawSize, E> {
                Ok(RawSize::Text(v.to_string()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Validation state: the text for positions, and the problems found so far.
struct Checker<'a> {
    /// Every file read, for positions and relative paths.
    sources: &'a SourceMap,
    /// The main config file.
    path: &'a Path,
    /// The main config file's directory, base of relative paths.
    base: &'a Path,
    home: &'a Path,
    diagnostics: Vec<Diagnostic>,
}

/// Every target a skill may name, with its resolved directory, or `None`
/// when its definition is broken (and already reported).
type KnownTargets = BTreeMap<String, Option<PathBuf>>;

impl Checker<'_> {
    /// Records a problem at the start of `span`.
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (path, line, column) = match self.sources.locate(span.start) {
            Some((file, line, column)) => (file.name.clone(), line, column),
            None => (self.path.to_path_buf(), 1, 1),
        };
        self.diagnostics.push(Diagnostic {
            path,
            line,
            column,
            message: message.into(),
        });
    }

    /// `~` expansion, then relative to the directory of the file that
    /// holds the setting (at offset `at`).
    fn resolve_path(&self, raw: &str, at: usize) -> PathBuf {
        let p = expand_tilde(Path::new(raw), self.home);
        if p.is_relative() {
            let base = self
                .sources
                .file_at(at)
                .and_then(|f| f.dir.as_deref())
                .unwrap_or(self.base);
            base.join(p)
        } else {
            p
        }
    }

    /// A path setting: must not be empty.
    fn path_setting(&mut self, value: &Spanned<String>, what: &str) -> Option<PathBuf> {
        if value.get_ref().trim().is_empty() {
            self.error(value.span(), format!("{what} is empty: give a directory"));
            return None;
        }
        Some(self.resolve_path(value.get_ref(), value.span().start))
    }

    fn check(&mut self, raw: RawConfig) -> Config {
        let daemon = match raw.daemon {
            Some(d) => self.check_daemon(d),
            None => DaemonSettings::default(),
        };
        let registries = self.check_registries(&raw.registries);
        let known = self.check_targets(&raw.targets);
        let repositories = self.check_repositories(&raw.repositories);
        let default_verify = raw
            .defaults
            .as_ref()
            .and_then(|d| d.verify.as_ref())
            .and_then(|v| self.check_verify(v));

        let defaults = raw.defaults;
        let default_channel = defaults
            .as_ref()
            .and_then(|d| d.channel.as_ref())
            .and_then(|c| self.check_channel(c));
        let default_targets = defaults
            .as_ref()
            .and_then(|d| d.targets.as_ref())
            .map(|list| self.check_target_list(list, &known));
        let default_on_drift = defaults
            .as_ref()
            .and_then(|d| d.on_drift.as_ref())
            .and_then(|v| self.check_on_drift(v))
            .unwrap_or_default();
        let default_on_archived = defaults
            .as_ref()
            .and_then(|d| d.on_archived.as_ref())
            .and_then(|v| self.check_on_archived(v))
            .unwrap_or_default();

        // A remote include or a collection may bring skills later.
        if raw.skills.is_empty() && raw.collections.is_empty() && !self.sources.open {
            self.error(0..0, "no skills configured: add a [skills.NAME] table");
        }
        let mut skills = BTreeMap::new();
        let mut used = BTreeSet::new();
        let mut disabled = BTreeSet::new();
        let mut pending = BTreeMap::new();
        for (key, skill) in &raw.skills {
            if skill.enabled.as_ref().is_some_and(|e| !*e.get_ref()) {
                // Switched off: only the name is checked.
                if let Err(why) = crate::name::check(key.get_ref()) {
                    self.error(
                        key.span(),
                        format!("invalid skill name {:?}: {why}", key.get_ref()),
                    );
                }
                disabled.insert(key.get_ref().clone());
                continue;
            }
            let open = self.sources.open || !raw.collections.is_empty();
            if skill.image.is_none() && open {
                // Overrides a skill from a remote include or a collection
                // that is not known yet, or a collection entry.
                if let Err(why) = crate::name::check(key.get_ref()) {
                    self.error(
                        key.span(),
                        format!("invalid skill name {:?}: {why}", key.get_ref()),
                    );
                }
                let targets = skill
                    .targets
                    .as_ref()
                    .map(|list| self.check_target_list(list, &known));
                used.extend(targets.iter().flatten().cloned());
                pending.insert(key.get_ref().clone(), targets);
                continue;
            }
            let Some(skill) = self.check_skill(
                key,
                skill,
                &registries,
                &known,
                &SkillDefaults {
                    channel: default_channel,
                    targets: default_targets.as_deref(),
                    on_drift: default_on_drift,
                    on_archived: default_on_archived,
                },
            ) else {
                continue;
            };
            let mut skill = skill;
            if skill.verify.is_none() {
                skill.verify =
                    verify_for(&skill.image, &repositories, &registries, &default_verify);
            }
            used.extend(skill.targets.iter().cloned());
            skills.insert(skill.name.clone(), skill);
        }
        let mut collections = BTreeMap::new();
        for (key, raw_collection) in &raw.collections {
            if raw_collection
                .enabled
                .as_ref()
                .is_some_and(|e| !*e.get_ref())
            {
                continue;
            }
            let Some(c) = self.check_collection(
                key,
                raw_collection,
                &registries,
                &known,
                &SkillDefaults {
                    channel: default_channel,
                    targets: default_targets.as_deref(),
                    on_drift: default_on_drift,
                    on_archived: default_on_archived,
                },
            ) else {
                continue;
            };
            used.extend(c.targets.iter().cloned());
            collections.insert(c.name.clone(), c);
        }

        let targets = used
            .into_iter()
            .filter_map(|name| {
                let path = known.get(&name)?.clone()?;
                Some((name.clone(), Target { name, path }))
            })
            .collect();

        Config {
            path: self.path.to_path_buf(),
            daemon,
            registries,
            targets,
            skills,
            repositories,
            default_verify,
            collections,
            layers: crate::config::layers::Layers {
                disabled,
                pending,
                ..Default::default()
            },
        }
    }

    /// `[collections.NAME]`: checked like a skill (image, selector,
    /// targets); its document is read later.
    fn check_collection(
        &mut self,
        key: &Key,
        raw: &RawCollection,
        registries: &BTreeMap<String, RegistrySettings>,
        known: &KnownTargets,
        defaults: &SkillDefaults<'_>,
    ) -> Option<Collection> {
        let as_skill = RawSkill {
            image: raw.image.clone(),
            channel: raw.channel.clone(),
            version: raw.version.clone(),
            tag: raw.tag.clone(),
            digest: raw.digest.clone(),
            targets: raw.targets.clone(),
            on_drift: None,
            on_archived: None,
            adopt: None,
            enabled: None,
            verify: None,
        };
        let name = key.get_ref();
        let before = self.diagnostics.len();
        if raw.image.is_none() {
            self.error(
                key.span(),
                format!(
                    "collection {name:?} has no image: add image = \"host[:port]/repository\" (without a tag)"
                ),
            );
            return None;
        }
        // The skill rules, reported with the collection's name.
        let skill = self.check_skill(key, &as_skill, registries, known, defaults);
        for d in &mut self.diagnostics[before..] {
            d.message = d
                .message
                .replace(&format!("skill {name:?}"), &format!("collection {name:?}"));
            d.message = d.message.replace(
                &format!("[skills.{name}]"),
                &format!("[collections.{name}]"),
            );
        }
        let skill = skill?;
        Some(Collection {
            name: skill.name,
            image: skill.image,
            selector: skill.selector,
            targets: skill.targets,
            on_drift: skill.on_drift,
            on_archived: skill.on_archived,
        })
    }

    fn check_daemon(&mut self, raw: RawDaemon) -> DaemonSettings {
        let mut out = DaemonSettings::default();
        if let Some(v) = &raw.poll_interval {
            let s = v.get_ref();
            match humantime::parse_duration(s) {
                Ok(d) if d < MIN_POLL_INTERVAL => self.error(
                    v.span(),
                    format!("poll_interval {s:?} is too short: the minimum is \"1s\""),
                ),
                Ok(d) => out.poll_interval = d,
                Err(e) => self.error(
                    v.span(),
                    format!(
                        "invalid poll_interval {s:?} ({e}): use a duration such as \"30s\", \"5m\" or \"1h\""
                    ),
                ),
            }
        }
        if let Some(v) = &raw.request_timeout {
            let s = v.get_ref();
            match humantime::parse_duration(s) {
                Ok(d) if d >= Duration::from_secs(1) => out.request_timeout = d,
                Ok(_) => self.error(
                    v.span(),
                    format!("request_timeout {s:?} is too short: the minimum is \"1s\""),
                ),
                Err(e) => self.error(
                    v.span(),
                    format!("invalid request_timeout {s:?} ({e}): use a duration such as \"30s\" or \"2m\""),
                ),
            }
        }
        if let Some(v) = &raw.max_skill_size {
            match parse_size(v.get_ref()) {
                Ok(n) => out.max_skill_size = n,
                Err(msg) => self.error(v.span(), format!("invalid max_skill_size: {msg}")),
            }
        }
        if let Some(v) = &raw.max_entries {
            match u64::try_from(*v.get_ref()) {
                Ok(n) if n >= 1 => out.max_entries = n,
                _ => self.error(
                    v.span(),
                    format!(
                        "invalid max_entries {}: it must be a positive number of archive entries",
                        v.get_ref()
                    ),
                ),
            }
        }
        if let Some(v) = &raw.state_dir {
            out.state_dir = self.path_setting(v, "state_dir");
        }
        if let Some(v) = &raw.cache_dir {
            out.cache_dir = self.path_setting(v, "cache_dir");
        }
        if let Some(v) = &raw.socket {
            out.socket = self.path_setting(v, "socket");
        }
        if let Some(v) = raw.prune {
            out.prune = v;
        }
        if let Some(v) = &raw.durability {
            match v.get_ref().as_str() {
                "syncfs" => out.durability = Durability::Syncfs,
                "fsync" => out.durability = Durability::Fsync,
                other => self.error(
                    v.span(),
                    format!("invalid durability {other:?}: \"syncfs\" or \"fsync\""),
                ),
            }
        }
        if let Some(v) = &raw.jitter {
            let j = *v.get_ref();
            if (0.0..=0.5).contains(&j) {
                out.jitter = j;
            } else {
                self.error(
                    v.span(),
                    format!("invalid jitter {j}: a fraction of the poll interval from 0.0 to 0.5"),
                );
            }
        }
        if let Some(v) = &raw.generations {
            match u32::try_from(*v.get_ref()) {
                Ok(n) if (1..=100).contains(&n) => out.generations = n,
                _ => self.error(
                    v.span(),
                    format!(
                        "invalid generations {}: keep 1 to 100 installed generations per skill",
                        v.get_ref()
                    ),
                ),
            }
        }
        out
    }

    fn check_registries(
        &mut self,
        raw: &BTreeMap<Key, RawRegistry>,
    ) -> BTreeMap<String, RegistrySettings> {
        let mut out = BTreeMap::new();
        for (key, reg) in raw {
            let name = key.get_ref();
            if !is_registry_key(name) {
                self.error(
                    key.span(),
                    format!(
                        "invalid registry key {name:?}: use host[:port] (quoted, e.g. [registries.\"127.0.0.1:5000\"]) or a plain alias name"
                    ),
                );
            }
            let mut settings = RegistrySettings::default();
            if let Some(insecure) = &reg.insecure {
                settings.insecure = *insecure.get_ref();
            }
            if let Some(file) = &reg.auth_file {
                settings.auth_file = self.path_setting(file, "auth_file");
            }
            if let Some(file) = &reg.ca_file {
                settings.ca_file = self.path_setting(file, "ca_file");
            }
            for m in reg.mirrors.iter().flatten() {
                let host = m.get_ref();
                let valid = !host.is_empty()
                    && !host.contains('/')
                    && host
                        .parse::<ImageRef>()
                        .is_ok_and(|r| r.repository.is_empty());
                if valid {
                    settings.mirrors.push(host.clone());
                } else {
                    self.error(
                        m.span(),
                        format!("invalid mirror {host:?}: give a host[:port], e.g. \"mirror.local:5000\""),
                    );
                }
            }
            if let Some(v) = &reg.max_requests {
                match usize::try_from(*v.get_ref()) {
                    Ok(n) if (1..=64).contains(&n) => settings.max_requests = Some(n),
                    _ => self.error(
                        v.span(),
                        format!(
                            "invalid max_requests {}: from 1 to 64 requests in flight at once",
                            v.get_ref()
                        ),
                    ),
                }
            }
            if let Some(v) = &reg.requests_per_second {
                let r = *v.get_ref();
                if r.is_finite() && (0.01..=10_000.0).contains(&r) {
                    settings.requests_per_second = Some(r);
                } else {
                    self.error(
                        v.span(),
                        format!("invalid requests_per_second {r}: from 0.01 to 10000"),
                    );
                }
            }
            if let Some(layout) = &reg.layout {
                settings.layout = self.path_setting(layout, "layout");
                if let Some(insecure) = &reg.insecure {
                    self.error(
                        insecure.span(),
                        format!(
                            "registry {name:?} sets both `insecure` and `layout`: a layout directory is read from disk, so remove `insecure`"
                        ),
                    );
                }
            }
            if let Some(v) = &reg.verify {
                settings.verify = self.check_verify(v);
            }
            out.insert(name.clone(), settings);
        }
        out
    }

    /// Built-in targets, then `[targets.NAME]` (which may replace a
    /// built-in's directory).
    fn check_targets(&mut self, raw: &BTreeMap<Key, RawTarget>) -> KnownTargets {
        let mut known = KnownTargets::new();
        for (name, dir) in BUILTIN_TARGETS {
            let path = expand_tilde(Path::new(dir), self.home);
            known.insert(name.to_string(), Some(path));
        }
        for (key, target) in raw {
            let name = key.get_ref();
            if let Err(why) = crate::name::check(name) {
                self.error(key.span(), format!("invalid target name {name:?}: {why}"));
            }
            let path = match &target.path {
                Some(p) => self.path_setting(p, &format!("path of target {name:?}")),
                None => {
                    self.error(
                        key.span(),
                        format!(
                            "target {name:?} has no path: add path = \"...\" (the agent's skills directory)"
                        ),
                    );
                    None
                }
            };
            known.insert(name.clone(), path);
        }
        known
    }

    /// `verify = "none"` or `verify = { keys = ["path.pub", ...] }`.
    fn check_verify(&mut self, value: &Spanned<toml::Value>) -> Option<VerifySetting> {
        const HINT: &str =
            "use verify = \"none\" or verify = { keys = [\"~/.config/skillsync/keys/acme.pub\"] }";
        match value.get_ref() {
            toml::Value::String(s) if s == "none" => Some(VerifySetting::None),
            toml::Value::Table(t) => {
                if let Some(k) = t.keys().find(|k| k.as_str() != "keys") {
                    self.error(value.span(), format!("unknown key {k:?} in verify; {HINT}"));
                    return None;
                }
                let list = match t.get("keys") {
                    Some(toml::Value::Array(list)) if !list.is_empty() => list,
                    _ => {
                        self.error(
                            value.span(),
                            format!("verify needs a non-empty list of public key files; {HINT}"),
                        );
                        return None;
                    }
                };
                let mut keys = Vec::new();
                for item in list {
                    match item.as_str() {
                        Some(p) if !p.trim().is_empty() => {
                            keys.push(self.resolve_path(p, value.span().start))
                        }
                        _ => {
                            self.error(
                                value.span(),
                                format!("verify keys must be paths of PEM public keys; {HINT}"),
                            );
                            return None;
                        }
                    }
                }
                Some(VerifySetting::Keys(keys))
            }
            other => {
                self.error(value.span(), format!("invalid verify {other:?}; {HINT}"));
                None
            }
        }
    }

    /// `[repositories."HOST/PREFIX"]`: keys must name a repository prefix.
    fn check_repositories(
        &mut self,
        raw: &BTreeMap<Key, RawRepository>,
    ) -> BTreeMap<String, VerifySetting> {
        let mut out = BTreeMap::new();
        for (key, repo) in raw {
            let name = key.get_ref();
            let valid = name
                .parse::<ImageRef>()
                .is_ok_and(|r| !r.repository.is_empty() && r.to_string() == *name);
            if !valid {
                self.error(
                    key.span(),
                    format!(
                        "invalid repository prefix {name:?}: use host[:port]/path, e.g. [repositories.\"quay.io/acme\"]"
                    ),
                );
                continue;
            }
            if let Some(setting) = repo.verify.as_ref().and_then(|v| self.check_verify(v)) {
                out.insert(name.clone(), setting);
            }
        }
        out
    }

    fn check_on_drift(&mut self, value: &Spanned<String>) -> Option<OnDrift> {
        let v = match value.get_ref().as_str() {
            "report" => Some(OnDrift::Report),
            "restore" => Some(OnDrift::Restore),
            "keep" => Some(OnDrift::Keep),
            _ => None,
        };
        if v.is_none() {
            self.error(
                value.span(),
                format!(
                    "unknown on_drift {:?}: use \"report\", \"restore\" or \"keep\"",
                    value.get_ref()
                ),
            );
        }
        v
    }

    fn check_on_archived(&mut self, value: &Spanned<String>) -> Option<OnArchived> {
        let v = match value.get_ref().as_str() {
            "keep" => Some(OnArchived::Keep),
            "remove" => Some(OnArchived::Remove),
            _ => None,
        };
        if v.is_none() {
            self.error(
                value.span(),
                format!(
                    "unknown on_archived {:?}: use \"keep\" or \"remove\"",
                    value.get_ref()
                ),
            );
        }
        v
    }

    fn check_channel(&mut self, value: &Spanned<String>) -> Option<Channel> {
        let channel = parse_channel(value.get_ref());
        if channel.is_none() {
            self.error(
                value.span(),
                format!(
                    "unknown channel {:?}: use \"published\", \"testing\" or \"draft\"",
                    value.get_ref()
                ),
            );
        }
        channel
    }

    /// Checks each name in a `targets` array; returns the names as written
    /// (unknown ones included, so a skill relying on a broken default is
    /// not reported twice).
    fn check_target_list(&mut self, list: &SpannedList, known: &KnownTargets) -> Vec<String> {
        let mut seen: Vec<(&str, Option<&Path>)> = Vec::new();
        for item in list.get_ref() {
            let name = item.get_ref().as_str();
            let Some(target) = known.get(name) else {
                self.error(item.span(), unknown_target_message(name, known));
                continue;
            };
            if seen.iter().any(|(n, _)| *n == name) {
                self.error(item.span(), format!("target {name:?} is listed twice"));
                continue;
            }
            if let Some(path) = target.as_deref() {
                if let Some((other, _)) = seen.iter().find(|(_, p)| *p == Some(path)) {
                    self.error(
                        item.span(),
                        format!(
                            "targets {other:?} and {name:?} are the same directory ({}): list only one",
                            path.display()
                        ),
                    );
                    continue;
                }
            }
            seen.push((name, target.as_deref()));
        }
        list.get_ref().iter().map(|s| s.get_ref().clone()).collect()
    }

    fn check_skill(
        &mut self,
        key: &Key,
        raw: &RawSkill,
        registries: &BTreeMap<String, RegistrySettings>,
        known: &KnownTargets,
        defaults: &SkillDefaults<'_>,
    ) -> Option<Skill> {
        let default_channel = defaults.channel;
        let default_targets = defaults.targets;
        let default_on_drift = defaults.on_drift;
        let name = key.get_ref();
        let before = self.diagnostics.len();
        if let Err(why) = crate::name::check(name) {
            self.error(key.span(), format!("invalid skill name {name:?}: {why}"));
        }

        let image = match &raw.image {
            Some(v) => self.check_image(v, registries),
            None => {
                self.error(
                    key.span(),
                    format!(
                        "skill {name:?} has no image: add image = \"host[:port]/repository\" (without a tag)"
                    ),
                );
                None
            }
        };

        let selector = self.check_selector(raw, default_channel);
        let on_drift = match &raw.on_drift {
            Some(v) => self.check_on_drift(v),
            None => Some(default_on_drift),
        };
        let on_archived = match &raw.on_archived {
            Some(v) => self.check_on_archived(v),
            None => Some(defaults.on_archived),
        };

        let targets = match &raw.targets {
            Some(list) if list.get_ref().is_empty() => {
                self.error(
                    list.span(),
                    format!(
                        "skill {name:?} has no targets: list at least one, e.g. targets = [\"claude\"]"
                    ),
                );
                None
            }
            Some(list) => {
                let names = self.check_target_list(list, known);
                Some(names)
            }
            None => match default_targets {
                Some(d) if !d.is_empty() => Some(d.to_vec()),
                // Neither the skill nor [defaults] names targets: Claude Code,
                // as documented.
                None => Some(DEFAULT_TARGETS.iter().map(|t| t.to_string()).collect()),
                Some(_) => {
                    self.error(
                        key.span(),
                        format!(
                            "skill {name:?} has no targets: add targets = [\"claude\"] to [skills.{name}] or to [defaults]"
                        ),
                    );
                    None
                }
            },
        };

        if self.diagnostics.len() != before {
            return None;
        }
        let targets = targets?;
        // A default list with an unknown name was reported at [defaults].
        if targets
            .iter()
            .any(|t| known.get(t).is_none_or(Option::is_none))
        {
            return None;
        }
        Some(Skill {
            name: name.clone(),
            image: image?,
            selector: selector?,
            targets,
            on_drift: on_drift?,
            on_archived: on_archived?,
            adopt: raw.adopt.unwrap_or(false),
            verify: raw.verify.as_ref().and_then(|v| self.check_verify(v)),
        })
    }

    fn check_image(
        &mut self,
        value: &Spanned<String>,
        registries: &BTreeMap<String, RegistrySettings>,
    ) -> Option<ImageRef> {
        let s = value.get_ref();
        let image = match ImageRef::from_str(s) {
            Ok(image) => image,
            Err(e) => {
                self.error(value.span(), e.to_string());
                return None;
            }
        };
        let registry = registries.get(&image.registry);
        let is_layout = registry.is_some_and(|r| r.layout.is_some());
        if is_layout {
            return Some(image);
        }
        let looks_like_host = image.registry.contains(['.', ':']) || image.registry == "localhost";
        if registry.is_none() && !looks_like_host {
            self.error(
                value.span(),
                format!(
                    "image {s:?}: {:?} is neither a registry host (a host name has a '.' or a ':port', or is localhost) nor a [registries.{}] layout alias; write the registry host first, e.g. \"quay.io/{s}\"",
                    image.registry, image.registry
                ),
            );
            return None;
        }
        if image.repository.is_empty() {
            self.error(
                value.span(),
                format!(
                    "image {s:?} names a registry but no repository: add the repository path, e.g. \"{s}/team/skill\""
                ),
            );
            return None;
        }
        Some(image)
    }

    fn check_selector(
        &mut self,
        raw: &RawSkill,
        default_channel: Option<Channel>,
    ) -> Option<Selector> {
        let before = self.diagnostics.len();
        if let (Some(_), Some(digest)) = (&raw.tag, &raw.digest) {
            self.error(
                digest.span(),
                "`tag` and `digest` both set: follow a tag or pin a digest, not both",
            );
        }
        let fixed = if raw.digest.is_some() {
            Some("digest")
        } else if raw.tag.is_some() {
            Some("tag")
        } else {
            None
        };
        if let (Some(fixed), Some(version)) = (fixed, &raw.version) {
            self.error(
                version.span(),
                format!(
                    "`version` cannot be combined with `{fixed}`: a {fixed} selects one manifest; remove `version` or `{fixed}`"
                ),
            );
        }
        if let (Some(fixed), Some(channel)) = (fixed, &raw.channel) {
            self.error(
                channel.span(),
                format!(
                    "`channel` cannot be combined with `{fixed}`: a {fixed} is followed whatever its status; remove `channel` or `{fixed}`"
                ),
            );
        }

        let channel = match &raw.channel {
            Some(c) => self.check_channel(c),
            None => Some(default_channel.unwrap_or(Channel::Published)),
        };
        let version = match &raw.version {
            Some(v) => match semver::VersionReq::parse(v.get_ref()) {
                Ok(req) => Some(req),
                Err(e) => {
                    self.error(
                        v.span(),
                        format!(
                            "invalid version requirement {:?} ({e}): use e.g. \"^1.0\" or \">=1.2, <2\"",
                            v.get_ref()
                        ),
                    );
                    None
                }
            },
            None => None,
        };
        let digest = match &raw.digest {
            Some(d) => match Digest::from_str(d.get_ref()) {
                Ok(digest) => Some(digest),
                Err(e) => {
                    self.error(d.span(), format!("invalid digest: {e}"));
                    None
                }
            },
            None => None,
        };
        if let Some(tag) = &raw.tag {
            if !is_tag(tag.get_ref()) {
                self.error(
                    tag.span(),
                    format!(
                        "invalid tag {:?}: a tag is 1 to 128 of A-Z a-z 0-9 _ . -, not starting with . or -",
                        tag.get_ref()
                    ),
                );
            }
        }
        if self.diagnostics.len() != before {
            return None;
        }
        Some(match (digest, &raw.tag) {
            (Some(d), _) => Selector::Digest(d),
            (None, Some(tag)) => Selector::Tag(tag.get_ref().clone()),
            (None, None) => Selector::Channel {
                channel: channel?,
                version,
            },
        })
    }
}

/// The 1-based line and column (in characters) of byte `offset`.
/// The signature policy of an image without one of its own: the longest
/// repository prefix that contains it (whole path components), else its
/// registry's, else `[defaults]`'s.
pub(crate) fn verify_for(
    image: &ImageRef,
    repositories: &BTreeMap<String, VerifySetting>,
    registries: &BTreeMap<String, RegistrySettings>,
    default: &Option<VerifySetting>,
) -> Option<VerifySetting> {
    let full = image.to_string();
    repositories
        .iter()
        .filter(|(prefix, _)| {
            full.strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, s)| s.clone())
        .or_else(|| {
            registries
                .get(&image.registry)
                .and_then(|r| r.verify.clone())
        })
        .or_else(|| default.clone())
}

/// A registry key: `host[:port]` or an alias, using the characters an
/// image reference's registry part may use.
fn is_registry_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']'))
}

/// An OCI tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
fn is_tag(tag: &str) -> bool {
    let valid = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
    tag.len() <= 128
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag.bytes().all(valid)
}

/// `published`, `testing` or `draft`.
fn parse_channel(s: &str) -> Option<Channel> {
    match s {
        "published" => Some(Channel::Published),
        "testing" => Some(Channel::Testing),
        "draft" => Some(Channel::Draft),
        _ => None,
    }
}

/// Parses `max_skill_size`: a positive integer of bytes, or a string of
/// digits followed by B, KB, MB, GB, KiB, MiB or GiB (any case, spaces
/// allowed before the unit).
fn parse_size(raw: &RawSize) -> Result<u64, String> {
    const HINT: &str = "use e.g. \"64MiB\", \"500KB\" or an integer number of bytes";
    let n = match raw {
        RawSize::Bytes(n) => u64::try_from(*n).map_err(|_| format!("{n} is negative; {HINT}"))?,
        RawSize::Text(s) => {
            let t = s.trim();
            let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
            let (digits, unit) = t.split_at(digits_end);
            let unit = unit.trim_start();
            if digits.is_empty() {
                return Err(format!("{s:?} does not start with a number; {HINT}"));
            }
            let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
                "b" => 1,
                "kb" => 1000,
                "mb" => 1000 * 1000,
                "gb" => 1000 * 1000 * 1000,
                "kib" => 1 << 10,
                "mib" => 1 << 20,
                "gib" => 1 << 30,
                "" => {
                    return Err(format!(
                        "{s:?} has no unit; add one (B, KB, MB, GB, KiB, MiB, GiB) or write the bytes as an integer without quotes"
                    ))
                }
                _ => {
                    return Err(format!(
                        "{s:?} has an unknown unit {unit:?}; use B, KB, MB, GB, KiB, MiB or GiB"
                    ))
                }
            };
            digits
                .parse::<u64>()
                .ok()
                .and_then(|d| d.checked_mul(multiplier))
                .ok_or_else(|| format!("{s:?} is too large"))?
        }
    };
    if n == 0 {
        return Err(format!("the size must be at least 1 byte; {HINT}"));
    }
    Ok(n)
}

/// "unknown target" with the known names, and a suggestion when one is
/// close.
fn unknown_target_message(name: &str, known: &KnownTargets) -> String {
    let builtins = BUILTIN_TARGETS
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ");
    let custom: Vec<&str> = known
        .keys()
        .map(String::as_str)
        .filter(|k| !BUILTIN_TARGETS.iter().any(|(b, _)| b == k))
        .collect();
    let mut msg = format!("unknown target {name:?}");
    if let Some(best) = known
        .keys()
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, _)| *d <= 2)
        .min()
    {
        msg.push_str(&format!(" (did you mean {:?}?)", best.1));
    }
    msg.push_str(&format!("; built-in targets are {builtins}"));
    if !custom.is_empty() {
        msg.push_str(&format!(", custom targets are {}", custom.join(", ")));
    }
    msg.push_str("; define custom ones under [targets.NAME]");
    msg
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests;
