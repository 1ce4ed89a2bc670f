//! `skillsyncctl sync [NAME] [--wait]`: a pass now instead of at the next
//! poll, and, with `--wait`, how each pass ended.
//!
//! The pass is the daemon's: this file asks for it and prints the answer.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::process::ExitCode;

use skillsyncd::control::client::Client;
use skillsyncd::control::protocol::{SkillState, SkillStatus};

use crate::render::{
    dash, is_deprecated, plural, print_out, short_digest, state_cell, table, target_mark,
    write_problem, Cell, Color, Style,
};
use crate::EXIT_FAILED;

/// `skillsyncctl sync [NAME] [--wait]`.
pub(crate) async fn sync(
    client: &Client,
    name: Option<&str>,
    wait: bool,
) -> anyhow::Result<ExitCode> {
    if wait && std::io::stderr().is_terminal() {
        eprintln!("skillsyncctl: syncing; waiting for the result...");
    }
    let resp = client.sync(name, wait).await?;
    let style = Style::detect();
    if !resp.waited {
        let names: Vec<&str> = resp.skills.iter().map(|s| s.name.as_str()).collect();
        print_out(&format!(
            "sync requested for {}: {}\n(see: skillsyncctl status, or sync --wait to wait for it)\n",
            plural(names.len(), "skill"),
            if names.is_empty() { "-".to_string() } else { names.join(", ") }
        ));
        return Ok(ExitCode::SUCCESS);
    }
    print_out(&render_sync(&resp.skills, &style));
    let failed = resp
        .skills
        .iter()
        .filter(|s| matches!(s.state, SkillState::Error | SkillState::Conflict))
        .count();
    if failed > 0 {
        eprintln!(
            "skillsyncctl: {failed} of {} failed",
            plural(resp.skills.len(), "skill")
        );
        return Ok(ExitCode::from(EXIT_FAILED));
    }
    Ok(ExitCode::SUCCESS)
}

/// `sync --wait`: how each pass ended.
pub(crate) fn render_sync(skills: &[SkillStatus], style: &Style) -> String {
    let mut out = String::new();
    if skills.is_empty() {
        out.push_str("no skills configured\n");
        return out;
    }
    let rows: Vec<Vec<Cell>> = skills
        .iter()
        .map(|s| {
            vec![
                (s.name.clone(), Color::Bold),
                state_cell(s.state),
                (dash(s.version.as_deref()), Color::None),
                (
                    s.digest.as_deref().map_or("-".to_string(), short_digest),
                    Color::Dim,
                ),
                (
                    s.targets
                        .iter()
                        .map(target_mark)
                        .collect::<Vec<_>>()
                        .join(" "),
                    Color::None,
                ),
            ]
        })
        .collect();
    let lines = table(
        &["SKILL", "STATE", "VERSION", "DIGEST", "TARGETS"],
        &rows,
        style,
    );
    let mut lines = lines.into_iter();
    if let Some(head) = lines.next() {
        let _ = writeln!(out, "{head}");
    }
    for (s, line) in skills.iter().zip(lines) {
        let _ = writeln!(out, "{line}");
        write_problem(&mut out, s, style);
        if is_deprecated(s) {
            let _ = writeln!(out, "{}", style.paint("  └ deprecated!", Color::Yellow));
        }
    }
    out
}
