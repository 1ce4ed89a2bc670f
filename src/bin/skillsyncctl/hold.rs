//! `skillsyncctl hold|rollback|resume NAME`: freeze a skill, go back a
//! generation, or follow the config again. The daemon does the work; this
//! prints its answer.

use std::process::ExitCode;

use skillsyncd::control::client::Client;
use skillsyncd::control::protocol::HoldAction;

use crate::render::print_out;

/// `skillsyncctl hold|rollback|resume NAME`.
pub(crate) async fn hold(
    client: &Client,
    name: &str,
    action: HoldAction,
) -> anyhow::Result<ExitCode> {
    let resp = client.hold(name, action).await?;
    let s = &resp.skill;
    print_out(&format!(
        "{}\n{} is now {} ({})\n",
        resp.message,
        s.name,
        s.version.as_deref().unwrap_or("not installed"),
        s.held.as_deref().unwrap_or("following the config"),
    ));
    Ok(ExitCode::SUCCESS)
}
