//! The control socket: HTTP/1.1 + JSON over a Unix domain socket, so that
//! `skillsyncctl` and `curl --unix-socket PATH http://x/v1/status` can ask
//! the daemon what it is doing and tell it to sync or reload.
//!
//! - [`protocol`]: the wire types (the only place they are defined).
//! - [`server`]: the bounded server (peer uid check, body cap, timeouts,
//!   connection cap), answering through a [`Controller`].
//! - [`client`]: the client `skillsyncctl` uses.

pub mod client;
pub mod protocol;
pub mod server;

use std::future::Future;

use protocol::{
    EventsResponse, HoldAction, HoldResponse, PlanResponse, ReloadResponse, SkillStatus,
    StatusResponse, SyncResponse,
};

/// What the server asks of the daemon. Implemented by the scheduler.
pub trait Controller: Send + Sync + 'static {
    /// Everything.
    fn status(&self) -> StatusResponse;
    /// One skill, if configured.
    fn skill(&self, name: &str) -> Option<SkillStatus>;
    /// The recent events, oldest first.
    fn events(&self) -> EventsResponse;
    /// Requests a pass of one skill (`Some`) or all (`None`); with `wait`,
    /// resolves once every requested pass that started after the request
    /// has finished. `Err` names an unknown skill.
    fn sync(
        &self,
        name: Option<String>,
        wait: bool,
    ) -> impl Future<Output = Result<SyncResponse, String>> + Send;
    /// Reloads the config file.
    fn reload(&self) -> impl Future<Output = ReloadResponse> + Send;
    /// What a pass would do now, changing nothing.
    fn plan(&self) -> impl Future<Output = Result<PlanResponse, String>> + Send;
    /// Holds, rolls back or resumes one skill.
    fn hold(
        &self,
        name: String,
        action: HoldAction,
    ) -> impl Future<Output = Result<HoldResponse, ActionError>> + Send;
}

/// Why a hold, rollback or resume was not done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// No such skill is configured (404).
    #[error("{0}")]
    NotFound(String),
    /// The skill cannot do that now, e.g. nothing to roll back to (409).
    #[error("{0}")]
    Refused(String),
    /// The daemon failed while doing it, e.g. the state could not be
    /// written (500, with the cause).
    #[error("{0}")]
    Failed(String),
}
