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
//!
//! This file holds the validated types and re-exports the one [`load`]
//! every caller uses. It does no parsing, checking or I/O itself: the raw
//! mirror is `raw`, the checks `check`, positions and messages
//! `diagnostics`, files and includes [`layers`], collections
//! [`collection`], team documents [`remote`], and loading `load`. The
//! children depend on these types; nothing here names a child's items
//! through `crate::config::` paths.

mod check;
pub mod collection;
mod diagnostics;
pub mod layers;
mod load;
mod raw;
pub mod remote;
pub mod sources;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::channel::Channel;
use crate::reference::{Digest, ImageRef};
use crate::verify::Setting as VerifySetting;

pub use self::diagnostics::{ConfigError, Diagnostic, SourceFile, SourceMap};
pub use self::load::{load, load_config, refresh_team, LoadOptions};

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

/// Longest accepted `[daemon] poll_interval`: a week. A skill checked less
/// often is better pinned; the bound also keeps every deadline computed
/// from the interval far from the clock's limits.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Default `[daemon] max_skill_size`: 64 MiB.
pub const DEFAULT_MAX_SKILL_SIZE: u64 = 64 * 1024 * 1024;

/// Default `[daemon] max_entries`.
pub const DEFAULT_MAX_ENTRIES: u64 = 10_000;
/// `[daemon] request_timeout` when not set.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Shortest accepted `[daemon] request_timeout`.
pub const MIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest accepted `[daemon] request_timeout`: an hour, for one tag list,
/// HEAD or manifest request.
pub const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);
/// `[daemon] jitter` when not set.
pub const DEFAULT_JITTER: f64 = 0.1;
/// `[daemon] generations` when not set.
pub const DEFAULT_GENERATIONS: u32 = 2;

/// Longest accepted skill or target name.
pub const MAX_NAME_LEN: usize = crate::name::MAX_LEN;

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
    pub layers: Layers,
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
    /// How often each skill is re-checked (default 5 minutes, from
    /// [`MIN_POLL_INTERVAL`] to [`MAX_POLL_INTERVAL`]).
    pub poll_interval: Duration,
    /// Cap on a skill's unpacked size in bytes (default 64 MiB).
    pub max_skill_size: u64,
    /// Cap on a skill's number of archive entries, and of files and
    /// directories its unpacking creates (default 10,000).
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
    /// take, headers and body together (default 60 s, from
    /// [`MIN_REQUEST_TIMEOUT`] to [`MAX_REQUEST_TIMEOUT`]).
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
}

/// Where the config came from, for status, `check` and `config explain`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Layers {
    /// Every local file read, system file first.
    pub files: Vec<PathBuf>,
    /// What to watch for a reload: each file read, and each include
    /// pattern (a `*` or `?` in its file name).
    pub watch: Vec<PathBuf>,
    /// Remote includes, in the order named.
    pub remote: Vec<RemoteInclude>,
    /// Collections and what their documents gave.
    pub collections: Vec<CollectionInfo>,
    /// Per skill: where it came from and where each setting was written.
    pub origins: BTreeMap<String, SkillOrigin>,
    /// Skills switched off with `enabled = false`.
    pub disabled: BTreeSet<String>,
    /// `[skills.X]` without an image, overriding a skill that a remote
    /// include or a collection has not defined (yet): X's targets, if set.
    pub pending: BTreeMap<String, Option<Vec<String>>>,
}

/// A remote include and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteInclude {
    /// `oci://HOST/REPO:TAG` (or `@sha256:...`), as written.
    pub reference: String,
    /// The repository.
    pub image: ImageRef,
    /// The tag or digest followed.
    pub selector: Selector,
    /// `file:line:column` of the include.
    pub included_from: String,
    /// The copy used, when there is one.
    pub cached: Option<CachedCopy>,
    /// Why the last refresh failed (the cached copy, if any, is used).
    pub refresh_error: Option<String>,
    /// Why it is not (fully) in force: not fetched yet, or the fragment
    /// (or a skill in it) was rejected.
    pub error: Option<String>,
}

/// A copy of a remote document from the cache.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedCopy {
    /// The manifest digest it came from.
    pub digest: String,
    /// When it was fetched (RFC 3339).
    pub fetched_at: String,
}

/// A collection and what its document gave.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionInfo {
    /// The `[collections.NAME]` key.
    pub name: String,
    /// `HOST/REPO` and what is followed.
    pub image: String,
    /// The copy used, when there is one.
    pub cached: Option<CachedCopy>,
    /// The collection's `metadata.name` and `metadata.version`.
    pub version: Option<String>,
    /// The skills it manages (a user's own `[skills.X]` of the same name
    /// wins, and is not listed).
    pub skills: Vec<String>,
    /// Why the last refresh failed (the cached copy, if any, is used).
    pub refresh_error: Option<String>,
    /// Why it is not (fully) in force: not fetched yet, a broken
    /// document, entries left out.
    pub error: Option<String>,
}

/// Where a skill came from.
#[derive(Debug, Clone, PartialEq)]
pub struct SkillOrigin {
    /// `file:line:column` of its definition, or `collection NAME (...)`.
    pub defined_at: String,
    /// Each setting written for it, with where it was written.
    pub settings: Vec<Setting>,
}

/// One setting of a skill and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// The key (`channel`).
    pub key: String,
    /// The value as written.
    pub value: String,
    /// `file:line:column`.
    pub at: String,
}

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

#[cfg(test)]
mod tests;
