//! The scheduler: one pass over every skill at start, then each skill
//! re-checked every `poll_interval`, and a clean shutdown.
//!
//! [`run`] takes its shutdown signal from the caller (as mini-redis does):
//! on shutdown no new pass starts, passes under way get a grace period to
//! finish, and whatever is cut off is safe by construction (installs are
//! atomic swaps recorded as `pending` first; see [`crate::install`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{Config, Skill};
use crate::error::Result;
use crate::paths::Paths;
use crate::reconcile::{Engine, SkillReport, SyncState};

/// How many skills are synced at once.
pub const CONCURRENCY: usize = 8;
/// How long passes under way may take to finish after a shutdown request.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// First retry delay after a failed pass; doubles up to the poll interval.
pub const RETRY_MIN: Duration = Duration::from_secs(15);

/// Builds the engine for a config and repairs what a crash left behind.
/// State and cache go where `[daemon]` says, unless the environment
/// overrides it (see [`Paths::with_config`]).
pub fn start_engine(config: Config, paths: &Paths) -> Result<Engine> {
    let paths = paths.clone().with_config(&config.daemon);
    let engine = Engine::new(config, &paths.state_dir, &paths.cache_dir)?;
    for note in engine.recover()? {
        tracing::info!("{note}");
    }
    Ok(engine)
}

/// One pass over every skill, [`CONCURRENCY`] at a time. Reports come back
/// in config order.
pub async fn pass(engine: &Engine) -> Vec<SkillReport> {
    let skills: Vec<&Skill> = engine.config().skills.values().collect();
    let mut reports: Vec<SkillReport> = futures_util::stream::iter(skills)
        .map(|s| engine.sync(s))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    reports.sort_by(|a, b| a.name.cmp(&b.name));
    if let Err(e) = engine.collect_garbage().await {
        tracing::warn!("cache clean-up failed: {e}");
    }
    reports
}

/// Logs a report: each change at info, a failure at warn.
pub fn log_report(r: &SkillReport) {
    for c in &r.changes {
        tracing::info!(skill = %r.name, "{c}");
    }
    match r.state {
        SyncState::InSync => tracing::debug!(
            skill = %r.name,
            version = r.version.as_deref().unwrap_or("-"),
            "in sync"
        ),
        _ => tracing::warn!(
            skill = %r.name,
            state = ?r.state,
            "{}",
            r.error.as_deref().unwrap_or("not in sync")
        ),
    }
}

/// Runs the daemon until `shutdown` completes: a pass over every skill at
/// start, then each skill on its own schedule. One skill's failure never
/// stops the others; a failed skill is retried sooner, backing off.
pub async fn run(engine: Engine, shutdown: impl Future<Output = ()>) -> Result<()> {
    let engine = Arc::new(engine);
    let (stop_tx, stop_rx) = watch::channel(false);
    let limit = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut tasks = JoinSet::new();
    let interval = engine.config().daemon.poll_interval;
    tracing::info!(
        skills = engine.config().skills.len(),
        poll_interval = %humantime::format_duration(interval),
        "skillsyncd started"
    );
    for skill in engine.config().skills.values() {
        let skill = skill.clone();
        let engine = engine.clone();
        let mut stop = stop_rx.clone();
        let limit = limit.clone();
        tasks.spawn(async move {
            let mut failures: u32 = 0;
            loop {
                let report = {
                    let Ok(_permit) = limit.acquire().await else {
                        break;
                    };
                    if *stop.borrow() {
                        break;
                    }
                    engine.sync(&skill).await
                };
                log_report(&report);
                let delay = if report.state == SyncState::Error {
                    failures = failures.saturating_add(1);
                    RETRY_MIN
                        .saturating_mul(1u32 << failures.min(16).saturating_sub(1))
                        .min(interval)
                } else {
                    failures = 0;
                    interval
                };
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => break,
                }
            }
        });
    }
    shutdown.await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "passes still running after {}s; stopping them (installs are atomic, nothing is half-written)",
            SHUTDOWN_GRACE.as_secs()
        );
        tasks.abort_all();
    }
    Ok(())
}
