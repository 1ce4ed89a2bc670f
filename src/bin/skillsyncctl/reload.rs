//! `skillsyncctl reload`: the daemon re-reads its config; a rejected config
//! is printed problem by problem and exits 2.
//!
//! The daemon reads and checks the config; this file does neither.

use std::process::ExitCode;

use skillsyncd::control::client::Client;

use crate::render::print_out;
use crate::EXIT_CONFIG;

/// `skillsyncctl reload`.
pub(crate) async fn reload(client: &Client) -> anyhow::Result<ExitCode> {
    let resp = client.reload().await?;
    if !resp.ok {
        eprintln!("skillsyncctl: config rejected; the last good config keeps running:");
        for line in resp.error.as_deref().unwrap_or("(no reason given)").lines() {
            eprintln!("{line}");
        }
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    let mut parts = Vec::new();
    for (what, names) in [
        ("added", &resp.added),
        ("removed", &resp.removed),
        ("changed", &resp.changed),
    ] {
        if !names.is_empty() {
            parts.push(format!("{what} {}", names.join(", ")));
        }
    }
    if parts.is_empty() {
        print_out("config reloaded: no skill changed\n");
    } else {
        print_out(&format!("config reloaded: {}\n", parts.join("; ")));
    }
    Ok(ExitCode::SUCCESS)
}
