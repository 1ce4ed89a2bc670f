//! The reconcile engine: one pass for one skill makes every target match
//! what the config wants, and the jobs around passes (prune, hold,
//! rollback, resume, recovery, garbage collection).
//!
//! A pass ([`Engine::sync`]) reads top to bottom: load the record, hold?,
//! resolve ([`resolve`]), trust ([`trust`]), apply ([`apply`]). Each step
//! can fail without touching a target; trust is checked before any
//! download, pending marks are saved in one write before any swap, the
//! layer is fetched once per skill, and a dry run writes nothing.
//!
//! This module owns the [`Engine`] (its fields, construction and
//! accessors) and the order of a pass; it must NOT hold a step's logic,
//! which lives in the file named after the step.

mod apply;
mod hold;
mod plan;
mod prune;
mod record;
mod report;
mod resolve;
mod survey;
mod trust;
mod upkeep;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::cache::Cache;
use crate::config::{Config, OnArchived, Skill};
use crate::error::{blocking, Result};
use crate::reference::Digest;
use crate::source::{Source, Sources};
use crate::state::{SkillRecord, State, Store};
use crate::unpack;
use crate::verify::ContainersPolicy;

/// The overall state of a skill after a pass, and of one of its targets:
/// the wire types themselves (`control::protocol`), so the two cannot drift.
pub use crate::control::protocol::{SkillState, TargetState};
pub use plan::{plan_target, TargetPlan};
pub use report::{describe_backups, SkillReport, TargetReport};
pub use trust::trust_problems;

use report::prev_backups;
use trust::{load_containers_policy, trust_line};

/// Everything a pass needs, shared by all skills.
pub struct Engine {
    config: Config,
    sources: Sources,
    cache: Cache,
    limits: unpack::Limits,
    /// The per-skill state records; shared with the engines built from
    /// later configs (see [`Engine::reconfigured`]).
    state: Arc<Store>,
    /// Where the state (and backups) live.
    state_dir: PathBuf,
    /// One read-modify-write of a record outside a skill's pass at a time
    /// (hold, rollback, resume, prune); shared like `state`.
    edits: Arc<Mutex<()>>,
    /// Plan only: resolve and compare, but write nothing anywhere (no
    /// target, no state, no cache); changes are reported as "would ...".
    dry_run: bool,
    /// The containers trust policy (`policy.json`), read with the config;
    /// an unreadable one fails every registry skill's verification.
    containers: Result<Option<ContainersPolicy>, (PathBuf, String)>,
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

impl Engine {
    /// Builds an engine: sources for the config, the cache, the state file.
    pub fn new(config: Config, state_dir: &Path, cache_dir: &Path) -> Result<Engine> {
        let state = Store::open(state_dir)?;
        Self::build(
            config,
            Arc::new(state),
            state_dir.to_path_buf(),
            Arc::default(),
            Cache::new(cache_dir),
        )
    }

    fn build(
        config: Config,
        state: Arc<Store>,
        state_dir: PathBuf,
        edits: Arc<Mutex<()>>,
        cache: Cache,
    ) -> Result<Engine> {
        let sources = Sources::new(&(&config).into())?;
        let limits = unpack::Limits {
            max_bytes: config.daemon.max_skill_size,
            max_entries: config.daemon.max_entries,
            ..Default::default()
        };
        Ok(Engine {
            sources,
            cache,
            limits,
            state,
            state_dir,
            edits,
            config,
            dry_run: false,
            containers: load_containers_policy(),
        })
    }

    /// When every endpoint `image` is served from waits out a failure
    /// (a rate limit or an outage): the earliest time one is asked again.
    pub fn next_try(&self, image: &crate::reference::ImageRef) -> Option<std::time::SystemTime> {
        self.sources.next_try(image)
    }

    /// A dry-run copy: the same config, a private copy of the state, and
    /// nothing written anywhere; each pass reports what it would do.
    pub async fn dry_run(&self) -> Result<Engine> {
        let state = self.state().await?;
        let mut engine = Self::build(
            self.config.clone(),
            Arc::new(Store::memory(state)),
            self.state_dir.clone(),
            Arc::default(),
            self.cache.clone(),
        )?;
        engine.dry_run = true;
        Ok(engine)
    }

    /// Whether this engine only plans.
    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    /// An engine for a new config that shares this one's state, state file
    /// and cache (which stay where they were at start).
    pub fn reconfigured(&self, config: Config) -> Result<Engine> {
        let engine = Self::build(
            config,
            self.state.clone(),
            self.state_dir.clone(),
            self.edits.clone(),
            self.cache.clone(),
        )?;
        engine.sources.carry_over(&self.sources);
        Ok(engine)
    }

    /// Calls `f` with each skill's recorded state, one at a time, in name
    /// order (blocking: file reads).
    pub fn visit_state(&self, f: impl FnMut(&str, SkillRecord)) -> Result<()> {
        self.state.visit(f)
    }

    /// Every skill's recorded state, read from the state files.
    pub async fn state(&self) -> Result<State> {
        let store = self.state.clone();
        blocking("reading the state", move || store.load_all()).await?
    }

    /// Skill `name`'s recorded state, read now (blocking: a file read).
    pub fn read_state(&self, name: &str) -> Result<Option<SkillRecord>> {
        self.state.load(name)
    }

    /// Skill `name`'s recorded state.
    pub(super) async fn load_state(&self, name: &str) -> Result<Option<SkillRecord>> {
        let (store, name) = (self.state.clone(), name.to_string());
        blocking("reading the state", move || store.load(&name)).await?
    }

    /// The configuration this engine runs.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The sources built for the configuration.
    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// Runs one pass for one skill. Never panics on bad input; every failure
    /// ends up in the report, and what was installed stays.
    pub async fn sync(&self, skill: &Skill) -> SkillReport {
        let source = self.sources.for_image(&skill.image);
        let mut report = SkillReport::new(skill);
        let prev = match self.load_state(&skill.name).await {
            Ok(prev) => prev,
            Err(e) => {
                report.fail(e);
                return report;
            }
        };
        report.backups = prev_backups(prev.as_ref());
        if let Some(hold) = prev.as_ref().and_then(|p| p.hold.clone()) {
            self.sync_held(&source, skill, prev, hold, &mut report)
                .await;
            return report;
        }
        if let Some(c) = prev.as_ref().and_then(|p| p.current.as_ref()) {
            report.show(c);
            report.verification = Some(trust_line(prev.as_ref(), &c.manifest_digest));
        }
        let desired = match self.resolve(&source, skill, prev.as_ref()).await {
            Ok(d) => d,
            Err(e) => {
                report.fail(e);
                report.targets = self.target_reports(skill, prev.as_ref(), None);
                return report;
            }
        };
        report.show(&desired.known);
        report.archived = desired.archived;
        report.served_by = source.served_by(&skill.image);
        if desired.archived && skill.on_archived == OnArchived::Remove {
            if let Err(e) = self
                .remove_archived(skill, prev, &desired.known, &mut report)
                .await
            {
                report.fail(e);
            }
            return report;
        }
        // Verified before anything is downloaded; what is installed stays
        // when it fails.
        let verified = if desired.archived {
            None
        } else {
            match self
                .check_trust(&source, skill, prev.as_ref(), &desired)
                .await
            {
                Ok(v) => {
                    report.verification =
                        Some(v.as_ref().map_or("unverified".into(), |v| v.by.clone()));
                    v
                }
                Err(e) => {
                    self.untrusted(skill, prev.as_ref(), e, &mut report);
                    return report;
                }
            }
        };
        if let Err(e) = self
            .apply(&source, skill, prev, desired, verified, &mut report)
            .await
        {
            report.fail(e);
        }
        report
    }

    /// Each target's state as the record and the disk show it, for a pass
    /// that stopped before planning.
    fn target_reports(
        &self,
        skill: &Skill,
        prev: Option<&SkillRecord>,
        layer: Option<&Digest>,
    ) -> Vec<TargetReport> {
        skill
            .targets
            .iter()
            .filter_map(|t| self.config.targets.get(t))
            .map(|t| {
                let path = t.path.join(&skill.name);
                let rec = prev.and_then(|p| p.targets.get(&t.name));
                let installed = rec.and_then(|r| r.installed.as_ref());
                let state = match (installed, layer) {
                    (Some(i), Some(l)) if &i.layer_digest == l && exists(&path) => {
                        TargetState::InSync
                    }
                    (Some(_), None) if exists(&path) => TargetState::InSync,
                    (None, _) if rec.is_none() && exists(&path) => TargetState::Conflict,
                    _ => TargetState::Pending,
                };
                TargetReport {
                    name: t.name.clone(),
                    path,
                    state,
                    error: None,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
