//! Validation: the raw file ([`super::raw`]) checked as a whole and turned
//! into a [`Config`] whose values cannot be invalid, every problem
//! collected as a [`Diagnostic`] at its position.
//!
//! One module per table: [`daemon`], [`registries`] (with
//! `[repositories]` and `verify`), [`targets`], [`skills`] (with
//! `[collections]` and `[defaults]`). It reads no file: paths are only
//! resolved, never opened.

mod daemon;
mod registries;
mod skills;
mod targets;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::diagnostics::{Diagnostic, SourceMap};
use super::raw::RawConfig;
use super::{verify_for, Config, ConfigError, DaemonSettings, Layers, RegistrySettings, Target};
use crate::paths::expand_tilde;
#[cfg(test)]
pub(crate) use skills::is_tag;
use skills::SkillDefaults;

impl Config {
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

/// What every skill and collection is checked against.
struct Scope<'a> {
    /// `[registries]`, checked.
    registries: &'a BTreeMap<String, RegistrySettings>,
    /// Every target a skill may name.
    known: &'a KnownTargets,
    /// What `[defaults]` gives.
    defaults: SkillDefaults,
}

/// The targets used, each with its directory (a broken one, already
/// reported, left out).
fn used_targets(used: BTreeSet<String>, known: &KnownTargets) -> BTreeMap<String, Target> {
    used.into_iter()
        .filter_map(|name| {
            let path = known.get(&name)?.clone()?;
            Some((name.clone(), Target { name, path }))
        })
        .collect()
}

/// Every target a skill may name, with its resolved directory, or `None`
/// when its definition is broken (and already reported).
type KnownTargets = BTreeMap<String, Option<PathBuf>>;

impl Checker<'_> {
    /// Records a problem at the start of `span`.
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let d = self
            .sources
            .diagnostic(span.start, message.into(), self.path);
        self.diagnostics.push(d);
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

    /// The whole file: each table in turn, then the targets its skills
    /// and collections use.
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
        let defaults = self.check_defaults(raw.defaults.as_ref(), &known);

        // A remote include or a collection may bring skills later.
        if raw.skills.is_empty() && raw.collections.is_empty() && !self.sources.open {
            self.error(0..0, "no skills configured: add a [skills.NAME] table");
        }
        let scope = Scope {
            registries: &registries,
            known: &known,
            defaults,
        };
        let open = self.sources.open || !raw.collections.is_empty();
        let mut found = self.check_skills(&raw.skills, open, &scope);
        for skill in found.skills.values_mut() {
            if skill.verify.is_none() {
                skill.verify =
                    verify_for(&skill.image, &repositories, &registries, &default_verify);
            }
        }
        let collections = self.check_collections(&raw.collections, &scope, &mut found.used);
        let targets = used_targets(found.used, &known);

        Config {
            path: self.path.to_path_buf(),
            daemon,
            registries,
            targets,
            skills: found.skills,
            repositories,
            default_verify,
            collections,
            layers: Layers {
                disabled: found.disabled,
                pending: found.pending,
                ..Default::default()
            },
        }
    }
}
