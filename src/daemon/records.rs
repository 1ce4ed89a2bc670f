//! What the state records say before the first passes: each skill's
//! recorded outcome and the folders the config no longer manages, read
//! once at start and at each reload, after pruning. Starts no pass.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::config::Skill;
use crate::control::protocol::UnmanagedSkill;
use crate::error::blocking;
use crate::reconcile::{Engine, SkillReport, SkillState, TargetState};
use crate::state::SkillRecord;

use super::outcome::kept;
use super::Daemon;

/// What the state records say before the first passes: what status shows
/// of the skills until then, and the folders no longer managed.
#[derive(Default)]
pub(super) struct Records {
    pub(super) outcomes: HashMap<String, SkillReport>,
    pub(super) unmanaged: Vec<UnmanagedSkill>,
}

impl Records {
    /// Takes in skill `name`'s `record`: its outcome if it is `wanted`
    /// (which it leaves), its folders the config no longer wants.
    pub(super) fn take(
        &mut self,
        engine: &Engine,
        wanted: &mut HashSet<String>,
        name: &str,
        record: &SkillRecord,
    ) {
        if let Some(skill) = wanted
            .take(name)
            .and_then(|_| engine.config().skills.get(name))
        {
            let report = Daemon::recorded_report(engine, skill, Some(record));
            self.outcomes.insert(name.to_string(), kept(report));
        }
        self.unmanaged
            .extend(Daemon::unmanaged_of(engine, name, record));
    }
}

impl Daemon {
    /// A report made from the state file, shown before the first pass.
    pub(super) fn recorded_report(
        engine: &Engine,
        skill: &Skill,
        prev: Option<&SkillRecord>,
    ) -> SkillReport {
        let current = prev.and_then(|p| p.current.as_ref());
        let targets = skill
            .targets
            .iter()
            .filter_map(|t| engine.config().targets.get(t))
            .map(|t| {
                let installed = prev
                    .and_then(|p| p.targets.get(&t.name))
                    .and_then(|r| r.installed.as_ref());
                crate::reconcile::TargetReport {
                    name: t.name.clone(),
                    path: t.path.join(&skill.name),
                    state: match (installed, current) {
                        (Some(i), Some(c)) if i.layer_digest == c.layer_digest => {
                            TargetState::InSync
                        }
                        _ => TargetState::Pending,
                    },
                    error: None,
                }
            })
            .collect();
        SkillReport {
            name: skill.name.clone(),
            image: skill.image.to_string(),
            version: current.and_then(|c| c.version.clone()),
            digest: current.map(|c| c.manifest_digest.clone()),
            status: current.map(|c| c.status),
            state: SkillState::Pending,
            error: None,
            targets,
            changes: Vec::new(),
            downloaded: 0,
            held: prev.and_then(|p| p.hold.as_ref()).map(|h| h.describe()),
            events: Vec::new(),
            archived: prev.is_some_and(|p| p.archived),
            backups: prev
                .map(|p| crate::reconcile::describe_backups(&p.backups))
                .unwrap_or_default(),
            served_by: None,
            verification: current.map(|c| {
                prev.and_then(|p| p.verified.as_ref())
                    .filter(|v| v.manifest_digest == c.manifest_digest)
                    .map_or("unverified".into(), |v| v.by.clone())
            }),
        }
    }

    /// Prunes what the config no longer wants and reads the state records,
    /// each once: what status shows of each skill in `names` until its
    /// first pass, and the unmanaged folders. Only the records prune has
    /// work with are read a second time, as it left them.
    pub(super) async fn prune_and_read(&self, engine: &Arc<Engine>, names: Vec<String>) -> Records {
        let e = engine.clone();
        let read = blocking("reading the state", move || {
            let mut records = Records::default();
            let mut wanted: HashSet<String> = names.into_iter().collect();
            let mut to_prune = Vec::new();
            let visited = e.visit_state(|name, record| {
                if e.needs_prune(name, &record) {
                    to_prune.push(name.to_string());
                } else {
                    records.take(&e, &mut wanted, name, &record);
                }
            });
            if let Err(err) = visited {
                tracing::warn!("reading the state: {err}");
            }
            (records, wanted, to_prune)
        })
        .await;
        let (mut records, mut wanted, to_prune) = read.unwrap_or_else(|err| {
            tracing::warn!("{err}");
            Default::default()
        });
        if !to_prune.is_empty() {
            match engine.prune_names(to_prune.clone()).await {
                Ok(events) => self.events.push(events),
                Err(err) => tracing::warn!("removing skills no longer configured: {err}"),
            }
            let e = engine.clone();
            let again = blocking("reading the state", move || {
                for name in to_prune {
                    match e.read_state(&name) {
                        Ok(Some(record)) => records.take(&e, &mut wanted, &name, &record),
                        Ok(None) => {}
                        Err(err) => tracing::warn!("reading the state: {err}"),
                    }
                }
                (records, wanted)
            })
            .await;
            (records, wanted) = again.unwrap_or_else(|err| {
                tracing::warn!("{err}");
                Default::default()
            });
        }
        // Never recorded: pending.
        for name in wanted {
            if let Some(skill) = engine.config().skills.get(&name) {
                let report = Self::recorded_report(engine, skill, None);
                records.outcomes.insert(name, kept(report));
            }
        }
        records
    }

    /// Installed folders the config no longer names and that were kept
    /// (`prune = false`, or edited by hand).
    /// The folders of skill `name` that the config no longer wants but
    /// that are still there (kept by `prune = false` or because edited).
    pub(super) fn unmanaged_of(
        engine: &Engine,
        name: &str,
        record: &SkillRecord,
    ) -> Option<UnmanagedSkill> {
        let paths: Vec<String> = record
            .targets
            .iter()
            .filter(|(tname, t)| !engine.config().wants(name, tname, &t.path))
            .map(|(_, t)| t)
            .filter(|t| t.installed.is_some() && t.path.exists())
            .map(|t| t.path.display().to_string())
            .collect();
        (!paths.is_empty()).then(|| UnmanagedSkill {
            name: name.to_string(),
            paths,
        })
    }
}
