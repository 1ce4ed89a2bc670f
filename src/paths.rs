//! Where skillsyncd's files live.
//!
//! Defaults follow the XDG base directories (through the `directories`
//! crate), each under a `skillsync` sub-directory:
//!
//! | what | default (Linux) | environment override |
//! | --- | --- | --- |
//! | config file | `$XDG_CONFIG_HOME/skillsync/skills.toml` | `SKILLSYNC_CONFIG` |
//! | state | `$XDG_STATE_HOME/skillsync` | `SKILLSYNC_STATE_DIR` |
//! | cache | `$XDG_CACHE_HOME/skillsync` | `SKILLSYNC_CACHE_DIR` |
//! | runtime (socket) | `$XDG_RUNTIME_DIR/skillsync`, if set | `SKILLSYNC_RUNTIME_DIR` |
//! | containers trust policy | `$XDG_CONFIG_HOME/containers/policy.json`, else `/etc/containers/policy.json` | `SKILLSYNC_CONTAINERS_POLICY` (see [`crate::verify::policy`]) |
//!
//! On macOS, which has no state directory, state falls back to the local data
//! directory (`~/Library/Application Support/skillsync`).
//!
//! The `state_dir` and `cache_dir` settings of `skills.toml` sit between the
//! two: they replace the XDG defaults but not the environment overrides (see
//! [`Paths::with_dirs`]).
//!
//! This module owns the working out of locations only: it creates nothing
//! and depends on no other module of the crate (the config file's settings
//! come in as plain paths).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Name of the sub-directory created under each XDG base directory.
pub const APP_DIR: &str = "skillsync";

/// File name of the config file inside the config directory.
pub const CONFIG_FILE_NAME: &str = "skills.toml";

/// Environment variable overriding the config file's path.
pub const ENV_CONFIG: &str = "SKILLSYNC_CONFIG";

/// Environment variable overriding the state directory.
pub const ENV_STATE_DIR: &str = "SKILLSYNC_STATE_DIR";

/// Environment variable overriding the cache directory.
pub const ENV_CACHE_DIR: &str = "SKILLSYNC_CACHE_DIR";

/// Environment variable overriding the runtime directory.
pub const ENV_RUNTIME_DIR: &str = "SKILLSYNC_RUNTIME_DIR";

/// The locations skillsyncd reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The user's home directory (what `~` expands to).
    pub home: PathBuf,
    /// `skills.toml`.
    pub config_file: PathBuf,
    /// Durable state: what is installed where.
    pub state_dir: PathBuf,
    /// Content-addressed blob and tree cache; safe to delete.
    pub cache_dir: PathBuf,
    /// Per-session files such as the control socket; `None` when the
    /// platform offers no runtime directory and none is configured.
    pub runtime_dir: Option<PathBuf>,
}

/// Why the locations could not be worked out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathsError {
    /// Neither `$HOME` nor the password database names a home directory.
    #[error("no home directory found: set $HOME to an absolute path")]
    NoHome,
}

/// The platform's base directories, before `skillsync` is appended.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BaseLocations {
    home: PathBuf,
    config: PathBuf,
    state: PathBuf,
    cache: PathBuf,
    runtime: Option<PathBuf>,
}

impl BaseLocations {
    /// Reads the platform's base directories from the process environment.
    fn from_platform() -> Result<BaseLocations, PathsError> {
        let base = directories::BaseDirs::new().ok_or(PathsError::NoHome)?;
        Ok(BaseLocations {
            home: base.home_dir().to_path_buf(),
            config: base.config_dir().to_path_buf(),
            state: base
                .state_dir()
                .unwrap_or_else(|| base.data_local_dir())
                .to_path_buf(),
            cache: base.cache_dir().to_path_buf(),
            runtime: base.runtime_dir().map(Path::to_path_buf),
        })
    }
}

impl Paths {
    /// Works out every location from the XDG base directories and the
    /// `SKILLSYNC_*` environment overrides.
    ///
    /// An override that is empty counts as unset; one that starts with `~`
    /// is expanded; a relative one is taken relative to the current
    /// directory, so the result does not change if the process later
    /// changes directory.
    pub fn from_env() -> Result<Paths, PathsError> {
        let base = BaseLocations::from_platform()?;
        let cwd = std::env::current_dir().ok();
        Ok(resolve(&base, cwd.as_deref(), |key| std::env::var_os(key)))
    }

    /// Applies `skills.toml`'s `[daemon] state_dir` and `cache_dir`, given
    /// as `state_dir` and `cache_dir` (`None` when the file sets none).
    ///
    /// A setting in the config file replaces the XDG default, but an
    /// explicit `SKILLSYNC_STATE_DIR` / `SKILLSYNC_CACHE_DIR` in the
    /// environment still wins, so a one-off run can be redirected without
    /// editing the file.
    pub fn with_dirs(self, state_dir: Option<&Path>, cache_dir: Option<&Path>) -> Paths {
        self.with_dirs_from(state_dir, cache_dir, |key| std::env::var_os(key))
    }

    /// [`Paths::with_dirs`] with the environment supplied by `env`.
    fn with_dirs_from(
        mut self,
        state_dir: Option<&Path>,
        cache_dir: Option<&Path>,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Paths {
        let set = |key: &str| env(key).is_some_and(|v| !v.is_empty());
        if let (Some(dir), false) = (state_dir, set(ENV_STATE_DIR)) {
            self.state_dir = dir.to_path_buf();
        }
        if let (Some(dir), false) = (cache_dir, set(ENV_CACHE_DIR)) {
            self.cache_dir = dir.to_path_buf();
        }
        self
    }
}

/// Combines the platform's base directories with the overrides that `env`
/// returns. Pure: the environment and current directory are parameters.
fn resolve(
    base: &BaseLocations,
    cwd: Option<&Path>,
    env: impl Fn(&str) -> Option<OsString>,
) -> Paths {
    let home = base.home.as_path();
    let over = |key: &str| -> Option<PathBuf> {
        let value = env(key).filter(|v| !v.is_empty())?;
        let path = expand_tilde(Path::new(&value), home);
        Some(match cwd {
            Some(cwd) if path.is_relative() => cwd.join(path),
            _ => path,
        })
    };
    Paths {
        home: base.home.clone(),
        config_file: over(ENV_CONFIG)
            .unwrap_or_else(|| base.config.join(APP_DIR).join(CONFIG_FILE_NAME)),
        state_dir: over(ENV_STATE_DIR).unwrap_or_else(|| base.state.join(APP_DIR)),
        cache_dir: over(ENV_CACHE_DIR).unwrap_or_else(|| base.cache.join(APP_DIR)),
        runtime_dir: over(ENV_RUNTIME_DIR)
            .or_else(|| base.runtime.as_ref().map(|r| r.join(APP_DIR))),
    }
}

/// Expands a leading `~` to `home`: `~` becomes `home` and `~/x` becomes
/// `home/x`. Anything else, including `~user/x`, is returned unchanged.
pub fn expand_tilde(path: &Path, home: &Path) -> PathBuf {
    match path.strip_prefix("~") {
        Ok(rest) if rest.as_os_str().is_empty() => home.to_path_buf(),
        Ok(rest) => home.join(rest),
        Err(_) => path.to_path_buf(),
    }
}

/// An environment lookup over fixed pairs, for tests of code that reads
/// variables through a closure.
#[cfg(test)]
pub(crate) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
    let map: std::collections::HashMap<String, OsString> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), OsString::from(v)))
        .collect();
    move |key| map.get(key).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> BaseLocations {
        BaseLocations {
            home: PathBuf::from("/home/u"),
            config: PathBuf::from("/xdg/config"),
            state: PathBuf::from("/xdg/state"),
            cache: PathBuf::from("/xdg/cache"),
            runtime: Some(PathBuf::from("/run/user/1000")),
        }
    }

    use crate::paths::env_of;

    #[test]
    fn defaults_come_from_the_base_directories() {
        let p = resolve(&base(), Some(Path::new("/cwd")), env_of(&[]));
        assert_eq!(
            p,
            Paths {
                home: PathBuf::from("/home/u"),
                config_file: PathBuf::from("/xdg/config/skillsync/skills.toml"),
                state_dir: PathBuf::from("/xdg/state/skillsync"),
                cache_dir: PathBuf::from("/xdg/cache/skillsync"),
                runtime_dir: Some(PathBuf::from("/run/user/1000/skillsync")),
            }
        );
    }

    #[test]
    fn no_runtime_directory_means_none() {
        let mut b = base();
        b.runtime = None;
        let p = resolve(&b, None, env_of(&[]));
        assert_eq!(p.runtime_dir, None);
    }

    #[test]
    fn environment_overrides_each_location() {
        let env = env_of(&[
            (ENV_CONFIG, "/etc/skills.toml"),
            (ENV_STATE_DIR, "/var/lib/s"),
            (ENV_CACHE_DIR, "/var/cache/s"),
            (ENV_RUNTIME_DIR, "/run/s"),
        ]);
        let mut b = base();
        b.runtime = None;
        let p = resolve(&b, Some(Path::new("/cwd")), env);
        assert_eq!(p.home, PathBuf::from("/home/u"));
        assert_eq!(p.config_file, PathBuf::from("/etc/skills.toml"));
        assert_eq!(p.state_dir, PathBuf::from("/var/lib/s"));
        assert_eq!(p.cache_dir, PathBuf::from("/var/cache/s"));
        assert_eq!(p.runtime_dir, Some(PathBuf::from("/run/s")));
    }

    #[test]
    fn overrides_expand_tilde_and_resolve_against_cwd() {
        let env = env_of(&[
            (ENV_CONFIG, "~/my/skills.toml"),
            (ENV_STATE_DIR, "rel/state"),
            (ENV_CACHE_DIR, "~"),
        ]);
        let p = resolve(&base(), Some(Path::new("/cwd")), env);
        assert_eq!(p.config_file, PathBuf::from("/home/u/my/skills.toml"));
        assert_eq!(p.state_dir, PathBuf::from("/cwd/rel/state"));
        assert_eq!(p.cache_dir, PathBuf::from("/home/u"));
    }

    #[test]
    fn relative_override_without_cwd_stays_relative() {
        let p = resolve(&base(), None, env_of(&[(ENV_STATE_DIR, "rel")]));
        assert_eq!(p.state_dir, PathBuf::from("rel"));
    }

    #[test]
    fn empty_overrides_count_as_unset() {
        let env = env_of(&[(ENV_CONFIG, ""), (ENV_RUNTIME_DIR, "")]);
        let p = resolve(&base(), Some(Path::new("/cwd")), env);
        assert_eq!(
            p.config_file,
            PathBuf::from("/xdg/config/skillsync/skills.toml")
        );
        assert_eq!(
            p.runtime_dir,
            Some(PathBuf::from("/run/user/1000/skillsync"))
        );
    }

    #[test]
    fn config_settings_replace_defaults() {
        let p = resolve(&base(), None, env_of(&[]));
        let p = p.with_dirs_from(
            Some(Path::new("/cfg/state")),
            Some(Path::new("/cfg/cache")),
            env_of(&[]),
        );
        assert_eq!(p.state_dir, PathBuf::from("/cfg/state"));
        assert_eq!(p.cache_dir, PathBuf::from("/cfg/cache"));
    }

    #[test]
    fn config_settings_absent_keep_defaults() {
        let p = resolve(&base(), None, env_of(&[]));
        let p = p.with_dirs_from(None, None, env_of(&[]));
        assert_eq!(p.state_dir, PathBuf::from("/xdg/state/skillsync"));
        assert_eq!(p.cache_dir, PathBuf::from("/xdg/cache/skillsync"));
    }

    #[test]
    fn environment_beats_config_settings() {
        let env = [(ENV_STATE_DIR, "/env/state"), (ENV_CACHE_DIR, "/env/cache")];
        let p = resolve(&base(), None, env_of(&env));
        let p = p.with_dirs_from(
            Some(Path::new("/cfg/state")),
            Some(Path::new("/cfg/cache")),
            env_of(&env),
        );
        assert_eq!(p.state_dir, PathBuf::from("/env/state"));
        assert_eq!(p.cache_dir, PathBuf::from("/env/cache"));
    }

    #[test]
    fn expand_tilde_cases() {
        let home = Path::new("/home/u");
        assert_eq!(expand_tilde(Path::new("~"), home), PathBuf::from("/home/u"));
        assert_eq!(
            expand_tilde(Path::new("~/"), home),
            PathBuf::from("/home/u")
        );
        assert_eq!(
            expand_tilde(Path::new("~/a/b"), home),
            PathBuf::from("/home/u/a/b")
        );
        assert_eq!(
            expand_tilde(Path::new("~other/a"), home),
            PathBuf::from("~other/a")
        );
        assert_eq!(expand_tilde(Path::new("a/~"), home), PathBuf::from("a/~"));
        assert_eq!(expand_tilde(Path::new("/abs"), home), PathBuf::from("/abs"));
        assert_eq!(expand_tilde(Path::new("rel"), home), PathBuf::from("rel"));
    }

    /// Name of the variable that makes [`from_env_in_child`] do its work.
    const CHILD_MARKER: &str = "SKILLSYNC_PATHS_TEST_CHILD";

    /// Prefix of the lines [`from_env_in_child`] reports on.
    const CHILD_OUTPUT: &str = "paths-test: ";

    /// Runs in a child process with a sandboxed environment (see
    /// [`from_env_reads_home_and_xdg`]) and prints what it found; in the
    /// normal test run it does nothing.
    #[test]
    fn from_env_in_child() {
        if std::env::var_os(CHILD_MARKER).is_none() {
            return;
        }
        let p = Paths::from_env().unwrap();
        let runtime = p
            .runtime_dir
            .map_or("none".into(), |r| r.display().to_string());
        println!();
        println!("{CHILD_OUTPUT}home={}", p.home.display());
        println!("{CHILD_OUTPUT}config={}", p.config_file.display());
        println!("{CHILD_OUTPUT}state={}", p.state_dir.display());
        println!("{CHILD_OUTPUT}cache={}", p.cache_dir.display());
        println!("{CHILD_OUTPUT}runtime={runtime}");
    }

    /// Runs [`from_env_in_child`] in a child process so the real
    /// environment can be sandboxed without touching this process's.
    fn run_child(vars: &[(&str, &str)]) -> Vec<String> {
        let exe = std::env::current_exe().unwrap();
        let mut cmd = std::process::Command::new(exe);
        cmd.args([
            "--exact",
            "paths::tests::from_env_in_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_clear()
        .env(CHILD_MARKER, "1");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "child failed: {out:?}");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix(CHILD_OUTPUT))
            .map(str::to_string)
            .collect()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn from_env_reads_home_and_xdg() {
        let got = run_child(&[
            ("HOME", "/sandbox/home"),
            ("XDG_CONFIG_HOME", "/sandbox/config"),
            ("XDG_STATE_HOME", "/sandbox/state"),
            ("XDG_CACHE_HOME", "/sandbox/cache"),
            ("XDG_RUNTIME_DIR", "/sandbox/run"),
        ]);
        assert_eq!(
            got,
            [
                "home=/sandbox/home",
                "config=/sandbox/config/skillsync/skills.toml",
                "state=/sandbox/state/skillsync",
                "cache=/sandbox/cache/skillsync",
                "runtime=/sandbox/run/skillsync",
            ]
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn from_env_falls_back_to_home_and_honours_overrides() {
        let got = run_child(&[
            ("HOME", "/sandbox/home"),
            (ENV_CONFIG, "/elsewhere/skills.toml"),
            (ENV_CACHE_DIR, "~/c"),
        ]);
        assert_eq!(
            got,
            [
                "home=/sandbox/home",
                "config=/elsewhere/skills.toml",
                "state=/sandbox/home/.local/state/skillsync",
                "cache=/sandbox/home/c",
                "runtime=none",
            ]
        );
    }
}
