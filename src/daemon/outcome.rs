//! What status keeps of a skill's last pass and how it shows it: the
//! stored outcome, the skill's status view, what it follows. Does no I/O
//! and starts no pass.

use std::path::Path;
use std::time::SystemTime;

use crate::channel::Status;
use crate::config::{Selector, Skill};
use crate::control::protocol::{SkillStatus, TargetStatus};
use crate::reconcile::{Engine, SkillReport, SkillState, TargetState};
use crate::reference::Digest;

use super::guard::lock;
use super::scheduler::Slot;
use super::Daemon;

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

pub(super) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// What a slot keeps of a report: all that status shows, less what only
/// the pass itself needed (its changes and events) and what the config
/// says (the skill's name and image), in strings and lists sized to fit.
#[derive(Debug)]
pub(super) struct Outcome {
    pub(super) version: Option<Box<str>>,
    pub(super) digest: Option<Digest>,
    pub(super) status: Option<Status>,
    pub(super) archived: bool,
    pub(super) state: SkillState,
    pub(super) error: Option<Box<str>>,
    pub(super) targets: Box<[TargetOutcome]>,
    pub(super) held: Option<Box<str>>,
    pub(super) backups: Box<[Box<str>]>,
    pub(super) served_by: Option<Box<str>>,
    pub(super) verification: Option<Box<str>>,
}

/// One target of an [`Outcome`].
#[derive(Debug)]
pub(super) struct TargetOutcome {
    pub(super) name: Box<str>,
    pub(super) path: Box<Path>,
    pub(super) state: TargetState,
    pub(super) error: Option<Box<str>>,
}

impl Outcome {
    /// Nothing known of the skill yet.
    pub(super) fn nothing() -> Outcome {
        Outcome {
            version: None,
            digest: None,
            status: None,
            archived: false,
            state: SkillState::Pending,
            error: None,
            targets: Box::new([]),
            held: None,
            backups: Box::new([]),
            served_by: None,
            verification: None,
        }
    }
}

impl From<SkillReport> for Outcome {
    fn from(r: SkillReport) -> Self {
        let text = |s: Option<String>| s.map(String::into_boxed_str);
        Outcome {
            version: text(r.version),
            digest: r.digest,
            status: r.status,
            archived: r.archived,
            state: r.state,
            error: text(r.error),
            targets: r
                .targets
                .into_iter()
                .map(|t| TargetOutcome {
                    name: t.name.into_boxed_str(),
                    path: t.path.into_boxed_path(),
                    state: t.state,
                    error: text(t.error),
                })
                .collect(),
            held: text(r.held),
            backups: r.backups.into_iter().map(String::into_boxed_str).collect(),
            served_by: text(r.served_by),
            verification: text(r.verification),
        }
    }
}

impl Daemon {
    /// What status shows of a slot; `engine` is the running one, read
    /// with the slot list locked (so it names every slot's skill).
    pub(super) fn skill_status(engine: &Engine, slot: &Slot) -> Option<SkillStatus> {
        let skill = engine.config().skills.get(&*slot.name)?;
        let view = lock(&slot.view);
        let report = view.report.as_ref();
        let text = |s: &Option<Box<str>>| s.as_deref().map(str::to_string);
        // Running now: updating; never checked (a report from the state
        // file): pending, whatever it recorded.
        let state = match report.map(|r| r.state) {
            _ if view.running => SkillState::Updating,
            Some(SkillState::InSync) if !view.checked => SkillState::Pending,
            Some(state) => state,
            None => SkillState::Pending,
        };
        Some(SkillStatus {
            name: skill.name.clone(),
            image: skill.image.to_string(),
            follows: follows(skill),
            version: report.and_then(|r| text(&r.version)),
            digest: report.and_then(|r| r.digest.as_ref().map(|d| d.to_string())),
            status: report.and_then(|r| {
                if r.archived {
                    Some("archived".to_string())
                } else {
                    r.status.map(|s| s.to_string())
                }
            }),
            state,
            error: report.and_then(|r| text(&r.error)),
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
                            name: t.name.to_string(),
                            path: t.path.display().to_string(),
                            state: t.state,
                            error: text(&t.error),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            held: report.and_then(|r| text(&r.held)),
            backups: report
                .map(|r| r.backups.iter().map(|b| b.to_string()).collect())
                .unwrap_or_default(),
            served_by: report.and_then(|r| text(&r.served_by)),
            insecure: engine
                .config()
                .registries
                .get(&skill.image.registry)
                .is_some_and(|r| r.insecure),
            verification: report.and_then(|r| text(&r.verification)),
            origin: engine
                .config()
                .layers
                .origins
                .get(&skill.name)
                .map(|o| o.defined_at.clone()),
        })
    }
}
