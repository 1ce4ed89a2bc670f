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
use super::{verify_for, Config, ConfigError, DaemonSettings, Layers, Target};
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
            layers: Layers {
                disabled,
                pending,
                ..Default::default()
            },
        }
    }
}
