//! The control protocol's wire types: JSON bodies of the HTTP/1.1 API served
//! on the daemon's Unix socket. Every type that crosses the socket is here
//! and nowhere else.
//!
//! | method and path | body | answer |
//! | --- | --- | --- |
//! | `GET /v1/status` | | [`StatusResponse`] |
//! | `GET /v1/skills/NAME` | | [`SkillStatus`] (404 if unknown) |
//! | `POST /v1/sync[?wait=true]` | | [`SyncResponse`] for every skill |
//! | `POST /v1/skills/NAME/sync[?wait=true]` | | [`SyncResponse`] for one |
//! | `POST /v1/reload` | | [`ReloadResponse`] |
//! | `GET /v1/plan` | | [`PlanResponse`]: what a pass would do, changing nothing |
//! | `GET /v1/events` | | [`EventsResponse`]: the recent events, oldest first |
//! | `POST /v1/skills/NAME/hold` | | [`HoldResponse`]: frozen at its version |
//! | `POST /v1/skills/NAME/rollback` | | [`HoldResponse`]: previous generation, held |
//! | `POST /v1/skills/NAME/resume` | | [`HoldResponse`]: follows the config again |
//!
//! Errors are a 4xx or 5xx status with an [`ErrorBody`].

use serde::{Deserialize, Serialize};

/// The API version prefix.
pub const API_PREFIX: &str = "/v1";

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// The daemon itself.
    pub daemon: DaemonStatus,
    /// Every configured skill, by name.
    pub skills: Vec<SkillStatus>,
    /// Skills installed by skillsyncd that the config no longer names.
    #[serde(default)]
    pub unmanaged: Vec<UnmanagedSkill>,
    /// Where the running config came from besides the main file:
    /// included files, remote includes and collections.
    #[serde(default)]
    pub config_sources: Vec<ConfigSource>,
}

/// One included file, remote include or collection of the running config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigSource {
    /// `file`, `remote` or `collection`.
    pub kind: String,
    /// The path, the `oci://` reference, or `NAME (HOST/REPO:TAG)`.
    pub name: String,
    /// What it gave: `using copy of sha256:… fetched 2026-…`, the skills
    /// a collection lists.
    pub detail: Option<String>,
    /// Why it is not (fully) in force: not fetched yet, the registry is
    /// down (the cached copy is used), the fragment was rejected.
    pub error: Option<String>,
}

/// The daemon's own state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonStatus {
    /// skillsyncd's version.
    pub version: String,
    /// Its process id.
    pub pid: u32,
    /// The config file it runs.
    pub config: String,
    /// Why the last reload was rejected (the last good config keeps
    /// running), as `file:line:column: message` lines.
    pub config_error: Option<String>,
    /// When the daemon started (RFC 3339).
    pub started_at: String,
    /// When the running config was loaded (RFC 3339).
    pub config_loaded_at: String,
    /// The poll interval, in seconds.
    pub poll_interval_secs: u64,
    /// The state directory.
    pub state_dir: String,
    /// The cache directory.
    pub cache_dir: String,
}

/// The overall state of one skill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkillState {
    /// Every target holds the desired version.
    InSync,
    /// A pass is running now.
    Updating,
    /// Not checked yet.
    Pending,
    /// The last pass failed; what was installed stays.
    Error,
    /// A target holds a folder skillsyncd did not install.
    Conflict,
    /// A managed folder was edited or deleted by hand and left so
    /// (`on_drift`).
    Drifted,
}

/// The state of one target of a skill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetState {
    /// Holds the desired version.
    InSync,
    /// Not installed yet.
    Pending,
    /// The install into this target failed.
    Error,
    /// A folder that is not ours is in the way.
    Conflict,
    /// Ours, edited or deleted by hand, left as it is (`on_drift`).
    Drifted,
}

/// One configured skill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkillStatus {
    /// The skill (folder) name.
    pub name: String,
    /// The repository followed.
    pub image: String,
    /// What is followed: `published`, `testing ^1.0`, `tag 1.0.0`,
    /// `digest sha256:…`.
    pub follows: String,
    /// The version installed (or selected).
    pub version: Option<String>,
    /// The manifest digest installed (or selected).
    pub digest: Option<String>,
    /// Its lifecycle status: `draft`, `testing`, `published`, `deprecated`.
    pub status: Option<String>,
    /// Overall state.
    pub state: SkillState,
    /// Why the skill is not in sync, in one line.
    pub error: Option<String>,
    /// When it was last checked (RFC 3339).
    pub last_checked: Option<String>,
    /// When it will be checked next (RFC 3339).
    pub next_check: Option<String>,
    /// Per target.
    pub targets: Vec<TargetStatus>,
    /// Set while the skill is held or rolled back: `held at 1.0.0 since …`.
    #[serde(default)]
    pub held: Option<String>,
    /// Copies kept of folders replaced by an adoption or a restore:
    /// `claude adopted 2026-…: /path`.
    #[serde(default)]
    pub backups: Vec<String>,
    /// The endpoint that answered last: the registry, or one of its mirrors.
    #[serde(default)]
    pub served_by: Option<String>,
    /// The registry is spoken to over plain HTTP (`insecure = true`).
    #[serde(default)]
    pub insecure: bool,
    /// How the version shown was verified (`verified: cosign signature by
    /// /path/key.pub`, `verified: signed as 1.0.0-testing (…)`), or
    /// `unverified` when no key policy applies to it.
    #[serde(default)]
    pub verification: Option<String>,
    /// Where the skill is defined: `file:line:column`, or `collection
    /// NAME (HOST/REPO@sha256:…)`.
    #[serde(default)]
    pub origin: Option<String>,
}

/// One target of a skill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetStatus {
    /// The target name (`claude`, or a `[targets.NAME]`).
    pub name: String,
    /// The skill's folder in it.
    pub path: String,
    /// Its state.
    pub state: TargetState,
    /// Why it is not in sync, if it is not.
    pub error: Option<String>,
}

/// A skill installed by skillsyncd that the config no longer names; left
/// installed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnmanagedSkill {
    /// The skill name.
    pub name: String,
    /// Where it is installed.
    pub paths: Vec<String>,
}

/// `POST /v1/sync` and `POST /v1/skills/NAME/sync`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// Whether the answer waited for the passes to finish.
    pub waited: bool,
    /// With `wait`: each skill's status after its pass. Without: the skills
    /// whose pass was requested, as they are now.
    pub skills: Vec<SkillStatus>,
}

/// `POST /v1/reload`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadResponse {
    /// Whether the new config was accepted.
    pub ok: bool,
    /// Why it was rejected (`file:line:column: message` lines); the last
    /// good config keeps running.
    pub error: Option<String>,
    /// Skills added.
    pub added: Vec<String>,
    /// Skills removed.
    pub removed: Vec<String>,
    /// Skills whose settings changed.
    pub changed: Vec<String>,
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
}

/// What `POST /v1/skills/NAME/{hold,rollback,resume}` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldAction {
    /// Freeze the skill at the version installed now.
    Hold,
    /// Reinstall the previous generation from the cache and hold it there.
    Rollback,
    /// Lift a hold: follow the config again.
    Resume,
}

impl HoldAction {
    /// The path segment (`hold`, `rollback`, `resume`).
    pub fn as_str(self) -> &'static str {
        match self {
            HoldAction::Hold => "hold",
            HoldAction::Rollback => "rollback",
            HoldAction::Resume => "resume",
        }
    }
}

/// The answer to a hold, rollback or resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldResponse {
    /// What happened, for people.
    pub message: String,
    /// The skill afterwards (after the pass a rollback or resume runs).
    pub skill: SkillStatus,
}

/// What happened to a skill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// First install into a target.
    Install,
    /// Another version replaced the installed one in a target.
    Update,
    /// Same content, new manifest (a promotion): recorded, nothing touched.
    StatusChange,
    /// The installed version was deprecated.
    Deprecated,
    /// A folder skillsyncd did not install is in the way.
    Conflict,
    /// Held at the installed version.
    Hold,
    /// Rolled back to the previous generation.
    Rollback,
    /// A hold was lifted.
    Resume,
    /// A skill or target no longer configured was uninstalled.
    Prune,
    /// A managed folder was found edited or deleted.
    Drift,
    /// The installed version's tag was deleted from the registry.
    Archived,
    /// A folder skillsyncd did not install was taken over (`adopt = true`).
    Adopt,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When (RFC 3339).
    pub at: String,
    /// The skill.
    pub skill: String,
    /// What happened.
    pub kind: EventKind,
    /// The target, when it concerns one.
    pub target: Option<String>,
    /// The version concerned.
    pub version: Option<String>,
    /// Its manifest digest.
    pub digest: Option<String>,
    /// For people.
    pub message: String,
}

/// `GET /v1/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventsResponse {
    /// The most recent events (a bounded list), oldest first.
    pub events: Vec<Event>,
}

/// `GET /v1/plan`: what a pass would do now, with nothing changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanResponse {
    /// Folders the config no longer names that would be removed.
    pub prune: Vec<String>,
    /// Per configured skill.
    pub skills: Vec<PlannedSkill>,
}

/// One skill's plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedSkill {
    /// The skill.
    pub name: String,
    /// What would be done (`would install ...`, `would update ...`,
    /// `would record ...`, `would back up ... and restore it`); empty when
    /// nothing would change.
    pub changes: Vec<String>,
    /// Why it could not be done, if it could not (a conflict, an error).
    pub error: Option<String>,
}
