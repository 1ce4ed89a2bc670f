//! `skillsyncctl plan [--json]`: what a pass would do now, as the daemon
//! answers it. Changes nothing.

use std::fmt::Write as _;
use std::process::ExitCode;

use skillsyncd::control::client::Client;

use crate::render::print_out;

/// `skillsyncctl plan`.
pub(crate) async fn plan(client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let plan = client.plan().await?;
    if json {
        print_out(&format!("{}\n", serde_json::to_string_pretty(&plan)?));
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::new();
    for line in &plan.prune {
        let _ = writeln!(out, "{line}");
    }
    let mut quiet = Vec::new();
    for s in &plan.skills {
        if s.changes.is_empty() && s.error.is_none() {
            quiet.push(s.name.as_str());
        }
        for c in &s.changes {
            let _ = writeln!(out, "{c}");
        }
        if let Some(e) = &s.error {
            let _ = writeln!(out, "{}: cannot: {e}", s.name);
        }
    }
    if !quiet.is_empty() {
        let _ = writeln!(out, "nothing to do for {}", quiet.join(", "));
    }
    print_out(&out);
    Ok(ExitCode::SUCCESS)
}
