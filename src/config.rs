//! `skills.toml`: parsed, then validated into types that cannot be invalid.
//!
//! (Skeleton: implementation pending.)

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::channel::Channel;
use crate::reference::{Digest, ImageRef};

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
    /// `[skills.NAME]`, by name.
    pub skills: BTreeMap<String, Skill>,
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
    /// Overrides the state directory (relative to the config file).
    pub state_dir: Option<PathBuf>,
    /// Overrides the cache directory (relative to the config file).
    pub cache_dir: Option<PathBuf>,
}

/// `[registries.KEY]` settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RegistrySettings {
    /// Plain HTTP to this host:port.
    pub insecure: bool,
    /// When set, KEY is an alias for this OCI image layout directory.
    pub layout: Option<PathBuf>,
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
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let _ = path;
        todo!()
    }
}
