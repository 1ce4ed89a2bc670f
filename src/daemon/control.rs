//! The control socket's [`Controller`] for the daemon: status, sync,
//! reload, hold/rollback/resume, plan and events. Must not schedule passes
//! itself (it triggers slots) nor write state except through the engine.

use std::time::SystemTime;

use futures_util::StreamExt;

use crate::control::protocol::{
    DaemonStatus, Event, EventKind, EventsResponse, HoldAction, HoldResponse, PlanResponse,
    PlannedSkill, ReloadResponse, SkillStatus, StatusResponse, SyncResponse,
};
use crate::control::{ActionError, Controller};
use crate::error::Error;
use crate::reconcile::SkillReport;

use super::guard::lock;
use super::outcome::rfc3339;
use super::scheduler::{Command, CONCURRENCY};
use super::sources::config_sources;
use super::Daemon;

impl Controller for Daemon {
    fn status(&self) -> StatusResponse {
        let slots = lock(&self.sched.slots);
        let engine = self.engine();
        let skills = slots
            .values()
            .filter_map(|s| Self::skill_status(&engine, s))
            .collect();
        drop(slots);
        let config = lock(&self.config.status);
        StatusResponse {
            daemon: DaemonStatus {
                version: env!("CARGO_PKG_VERSION").to_string(),
                pid: std::process::id(),
                config: self.config.path.display().to_string(),
                config_error: config.error.clone(),
                started_at: self.started_at.clone(),
                config_loaded_at: config.loaded_at.clone(),
                poll_interval_secs: engine.config().daemon.poll_interval.as_secs(),
                state_dir: self.state_dir.display().to_string(),
                cache_dir: self.cache_dir.display().to_string(),
            },
            skills,
            unmanaged: config.unmanaged.clone(),
            config_sources: config_sources(engine.config()),
        }
    }

    fn skill(&self, name: &str) -> Option<SkillStatus> {
        let slots = lock(&self.sched.slots);
        let engine = self.engine();
        slots.get(name).and_then(|s| Self::skill_status(&engine, s))
    }

    async fn sync(&self, name: Option<String>, wait: bool) -> Result<SyncResponse, String> {
        if name.is_none() {
            // Every skill: collections and remote includes first.
            self.refresh_team().await;
        }
        let names: Vec<String> = match &name {
            Some(n) => {
                if !lock(&self.sched.slots).contains_key(n.as_str()) {
                    return Err(format!("no skill named {n:?} is configured"));
                }
                vec![n.clone()]
            }
            None => lock(&self.sched.slots)
                .keys()
                .map(|n| n.to_string())
                .collect(),
        };
        // For each skill: the pass count that proves a pass *started after
        // this request* has finished.
        let mut waits = Vec::new();
        for n in &names {
            let Some(slot) = self.slot(n) else {
                continue;
            };
            let target = {
                let view = lock(&slot.view);
                view.done + if view.running { 2 } else { 1 }
            };
            let _ = self.sched.commands.send(Command::Trigger(slot.clone()));
            waits.push((slot, target));
        }
        if wait {
            for (slot, target) in &waits {
                // A slot stopped by a reload ends the wait once its last
                // pass is over.
                self.wait_view(slot, |view| {
                    view.done >= *target || (view.stopped && !view.running)
                })
                .await;
            }
        }
        let slots = lock(&self.sched.slots);
        let engine = self.engine();
        let skills = names
            .iter()
            .filter_map(|n| slots.get(n.as_str()))
            .filter_map(|s| Self::skill_status(&engine, s))
            .collect();
        Ok(SyncResponse {
            waited: wait,
            skills,
        })
    }

    async fn reload(&self) -> ReloadResponse {
        Daemon::reload(self).await
    }

    async fn hold(&self, name: String, action: HoldAction) -> Result<HoldResponse, ActionError> {
        let Some(slot) = lock(&self.sched.slots).get(name.as_str()).cloned() else {
            return Err(ActionError::NotFound(format!(
                "no skill named {name:?} is configured"
            )));
        };
        let engine = self.engine();
        let record = slot.record.lock().await;
        let message = match action {
            HoldAction::Hold => engine.hold(&name).await,
            HoldAction::Rollback => engine.rollback(&name).await,
            HoldAction::Resume => engine.resume(&name).await.map(|was| {
                if was {
                    format!("{name} resumed: it follows the config again")
                } else {
                    format!("{name} was not held")
                }
            }),
        }
        .map_err(|e| match e {
            Error::Refused(refusal) => ActionError::Refused(refusal.to_string()),
            other => ActionError::Failed(crate::error::chain(&other)),
        })?;
        drop(record);
        tracing::info!(skill = %name, "{message}");
        let kind = match action {
            HoldAction::Hold => EventKind::Hold,
            HoldAction::Rollback => EventKind::Rollback,
            HoldAction::Resume => EventKind::Resume,
        };
        // Apply it now: a rollback reinstalls, a resume re-resolves, and
        // status shows the hold.
        let synced = self
            .sync(Some(name.clone()), true)
            .await
            .map_err(ActionError::NotFound)?;
        let skill = synced.skills.into_iter().next().ok_or_else(|| {
            ActionError::NotFound(format!("no skill named {name:?} is configured"))
        })?;
        self.events.push(vec![Event {
            at: rfc3339(SystemTime::now()),
            skill: name.clone(),
            kind,
            target: None,
            version: skill.version.clone(),
            digest: skill.digest.clone(),
            message: message.clone(),
        }]);
        Ok(HoldResponse { message, skill })
    }

    async fn plan(&self) -> Result<PlanResponse, String> {
        let engine = self.engine().dry_run().await.map_err(|e| e.to_string())?;
        let prune = engine
            .prune()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|e| e.message)
            .collect();
        // Built in a loop, not a closure: a closure over `engine` here trips
        // the compiler's Send check for this trait method.
        let mut passes = Vec::new();
        for skill in engine.config().skills.values() {
            passes.push(engine.sync(skill));
        }
        let mut reports: Vec<SkillReport> = futures_util::stream::iter(passes)
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        reports.sort_by(|a, b| a.name.cmp(&b.name));
        let skills = reports
            .into_iter()
            .map(|r| PlannedSkill {
                name: r.name,
                changes: r.changes,
                error: r.error,
            })
            .collect();
        Ok(PlanResponse { prune, skills })
    }

    fn events(&self) -> EventsResponse {
        EventsResponse {
            events: self.events.recent(),
        }
    }
}
