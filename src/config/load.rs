//! The one way a config file is loaded: its layers read
//! ([`super::layers`]), the skills of its collections added
//! ([`super::collection`]), and, for the daemon, its remote team documents
//! refreshed first ([`super::remote`]).
//!
//! It checks no rule itself (that is [`super::check`]'s job) and writes
//! nothing but the team cache, and that only through [`refresh_team`].

use std::path::{Path, PathBuf};

use super::layers::{self, ENV_SYSTEM_CONFIG, SYSTEM_CONFIG};
use super::remote::{self, Refreshed, TeamCache};
use super::{collection, Config, ConfigError};
use crate::paths::Paths;
use crate::source::Sources;

/// How to load a config. [`LoadOptions::from_env`] is what the daemon and
/// `skillsyncctl` use; tests name the home, the system file and the cache.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// What `~` and the built-in targets expand to; `None`: the home
    /// directory of the environment ([`Paths::from_env`]).
    pub home: Option<PathBuf>,
    /// The system file read first, if it exists.
    pub system: Option<PathBuf>,
    /// The cache of remote fragments and collection documents; `None`: the
    /// cache directory the config and the environment name, read only when
    /// the config has remote includes or collections.
    pub team_cache: Option<PathBuf>,
}

impl LoadOptions {
    /// The system file from `$SKILLSYNC_SYSTEM_CONFIG` (empty: none),
    /// else [`SYSTEM_CONFIG`]; the home and the cache from the environment.
    pub fn from_env() -> LoadOptions {
        let system = match std::env::var_os(ENV_SYSTEM_CONFIG) {
            Some(v) if v.is_empty() => None,
            Some(v) => Some(PathBuf::from(v)),
            None => Some(PathBuf::from(SYSTEM_CONFIG)),
        };
        LoadOptions {
            system,
            ..LoadOptions::default()
        }
    }
}

/// Reads and validates a config file with the layers around it (see
/// [`super::layers`]): the system file, includes, and the cached copies of
/// remote includes and collections.
///
/// A relative `path` is made absolute against the current directory
/// first, so every path in the result is absolute.
pub fn load(path: &Path, options: &LoadOptions) -> Result<Config, ConfigError> {
    let env = || {
        Paths::from_env().map_err(|source| ConfigError::Home {
            path: path.to_path_buf(),
            source,
        })
    };
    let home = match &options.home {
        Some(home) => home.clone(),
        None => env()?.home,
    };
    let system = options.system.as_deref();
    if let Some(cache) = options.team_cache.as_deref() {
        return read(path, &home, system, Some(cache));
    }
    let config = read(path, &home, system, None)?;
    if config.layers.remote.is_empty() && config.collections.is_empty() {
        return Ok(config);
    }
    // Remote fragments cannot move the cache, so one more read with the
    // cache in place is final.
    let cache = env()?
        .with_dirs(
            config.daemon.state_dir.as_deref(),
            config.daemon.cache_dir.as_deref(),
        )
        .cache_dir;
    read(path, &home, system, Some(&cache))
}

/// The layers, then the skills of the collections whose documents are in
/// `team_cache`.
fn read(
    path: &Path,
    home: &Path,
    system: Option<&Path>,
    team_cache: Option<&Path>,
) -> Result<Config, ConfigError> {
    let mut config = layers::load(path, home, system, team_cache)?;
    collection::expand(&mut config, team_cache);
    Ok(config)
}

/// Loads the config at `path`, first bringing its remote includes and
/// collections up to date in the team cache (unless `refresh` is false:
/// then the cached copies are used as they are). A fragment can add
/// collections, so this goes round until nothing new appears (at most
/// three times).
pub async fn load_config(path: &Path, paths: &Paths, refresh: bool) -> Result<Config, ConfigError> {
    let options = LoadOptions::from_env();
    let mut config = load(path, &options)?;
    if !refresh {
        return Ok(config);
    }
    for _ in 0..3 {
        if config.layers.remote.is_empty() && config.collections.is_empty() {
            break;
        }
        let refreshed = refresh_team(&config, paths, None).await;
        if refreshed.changed > 0 {
            config = load(path, &options)?;
        }
        // Only a new copy can name more documents.
        if refreshed.updated == 0 {
            break;
        }
    }
    Ok(config)
}

/// Checks the remote includes and collections of `config` (through
/// `sources`, or sources built for it), storing what changed in the team
/// cache.
pub async fn refresh_team(config: &Config, paths: &Paths, sources: Option<&Sources>) -> Refreshed {
    if config.layers.remote.is_empty() && config.collections.is_empty() {
        return Refreshed::default();
    }
    let dirs = paths.clone().with_dirs(
        config.daemon.state_dir.as_deref(),
        config.daemon.cache_dir.as_deref(),
    );
    let cache = TeamCache::new(&dirs.cache_dir);
    let built;
    let sources = match sources {
        Some(s) => s,
        None => match Sources::new(&config.into()) {
            Ok(s) => {
                built = s;
                &built
            }
            Err(e) => {
                tracing::warn!("remote includes and collections not checked: {e}");
                return Refreshed::default();
            }
        },
    };
    remote::refresh(config, sources, &cache).await
}
