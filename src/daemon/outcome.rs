//! What status keeps of a skill's last pass and how it shows it: the
//! stored outcome, the skill's status view, what it follows. Does no I/O
//! and starts no pass.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{Selector, Skill};
use crate::control::protocol::{SkillStatus, TargetStatus};
use crate::reconcile::{Engine, SkillReport, SkillState};

/// What a skill follows, for people: `published`, `testing ^1.0`,
/// `tag 1.0.0`, `digest sha256:…`.
pub fn follows(skill: &Skill) -> String {
    match &skill.selector {
        Selector::Channel {
            channel,
            version: Some(v),
        } => format!("{channel} {v}"),
        Selector::Channel {
            channel,
            version: None,
        } => channel.to_string(),
        Selector::Tag(t) => format!("tag {t}"),
        Selector::Digest(d) => format!("digest {}", d.short()),
    }
}

/// The last second `humantime` can show, 9999-12-31T23:59:59Z.
const LAST_SHOWN: Duration = Duration::from_secs(253_402_300_799);

/// `t` in RFC 3339, to the second. A time outside 1970 to 9999 (which
/// `humantime` cannot show: `to_string` would panic) is shown as the
/// nearest of those limits.
pub(super) fn rfc3339(t: SystemTime) -> String {
    let last = UNIX_EPOCH.checked_add(LAST_SHOWN).unwrap_or(UNIX_EPOCH);
    humantime::format_rfc3339_seconds(t.clamp(UNIX_EPOCH, last)).to_string()
}

/// What a slot keeps of a pass's report: all of it but what only the pass
/// itself needed (its changes and events), its lists and texts sized to
/// fit. Status reads the skill's name and image from the config, not
/// from here.
pub(super) fn kept(mut report: SkillReport) -> SkillReport {
    report.changes = Vec::new();
    report.events = Vec::new();
    report.targets.shrink_to_fit();
    report.backups.shrink_to_fit();
    let texts = [
        &mut report.version,
        &mut report.error,
        &mut report.held,
        &mut report.served_by,
        &mut report.verification,
    ];
    for text in texts.into_iter().flatten() {
        text.shrink_to_fit();
    }
    for target in &mut report.targets {
        if let Some(error) = &mut target.error {
            error.shrink_to_fit();
        }
    }
    report
}

/// Nothing known of skill `name` yet: pending.
pub(super) fn nothing(name: &str) -> SkillReport {
    SkillReport::blank(name, String::new(), SkillState::Pending)
}

/// Where a skill is in its schedule, for its status view.
pub(super) struct Progress {
    /// A pass is running.
    pub(super) running: bool,
    /// Its report came from a pass (as opposed to the state file).
    pub(super) checked: bool,
    /// When its last pass ended.
    pub(super) last_checked: Option<SystemTime>,
    /// When its next is due.
    pub(super) next_check: Option<SystemTime>,
}

/// What status shows of `skill` (of `engine`'s config) given its kept
/// `report` and its `progress`.
pub(super) fn skill_status(
    engine: &Engine,
    skill: &Skill,
    report: Option<&SkillReport>,
    view: Progress,
) -> SkillStatus {
    // Running now: updating; never checked (a report from the state
    // file): pending, whatever it recorded.
    let state = match report.map(|r| r.state) {
        _ if view.running => SkillState::Updating,
        Some(SkillState::InSync) if !view.checked => SkillState::Pending,
        Some(state) => state,
        None => SkillState::Pending,
    };
    SkillStatus {
        name: skill.name.clone(),
        image: skill.image.to_string(),
        follows: follows(skill),
        version: report.and_then(|r| r.version.clone()),
        digest: report.and_then(|r| r.digest.as_ref().map(|d| d.to_string())),
        status: report.and_then(|r| {
            if r.archived {
                Some("archived".to_string())
            } else {
                r.status.map(|s| s.to_string())
            }
        }),
        state,
        error: report.and_then(|r| r.error.clone()),
        last_checked: view.last_checked.map(rfc3339),
        next_check: if view.running {
            None
        } else {
            view.next_check.map(rfc3339)
        },
        targets: report
            .map(|r| {
                r.targets
                    .iter()
                    .map(|t| TargetStatus {
                        name: t.name.clone(),
                        path: t.path.display().to_string(),
                        state: t.state,
                        error: t.error.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        held: report.and_then(|r| r.held.clone()),
        backups: report.map(|r| r.backups.clone()).unwrap_or_default(),
        served_by: report.and_then(|r| r.served_by.clone()),
        insecure: engine
            .config()
            .registries
            .get(&skill.image.registry)
            .is_some_and(|r| r.insecure),
        verification: report.and_then(|r| r.verification.clone()),
        origin: engine
            .config()
            .layers
            .origins
            .get(&skill.name)
            .map(|o| o.defined_at.clone()),
    }
}
