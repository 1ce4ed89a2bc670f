//! `skillsyncctl status [NAME] [--json] [--events]`: what the daemon
//! reports of every skill (or one), as a table, in detail, or as its JSON.
//!
//! Asks the daemon and renders its answer; changes nothing.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use skillsyncd::control::client::Client;
use skillsyncd::control::protocol::{
    Event, EventKind, SkillState, SkillStatus, StatusResponse, TargetState,
};

use crate::render::{
    dash, is_deprecated, parse_rfc3339, print_out, relative, short_digest, short_duration,
    state_cell, table, target_mark, when, write_problem, Cell, Color, Style,
};

/// `skillsyncctl status [NAME] [--json]`.
pub(crate) async fn status(
    client: &Client,
    name: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let style = Style::detect();
    let text = match (name, json) {
        (None, true) => client.raw_get_status().await?,
        (Some(name), true) => client.raw_get_skill(name).await?,
        (None, false) => render_status(&client.status().await?, SystemTime::now(), &style),
        (Some(name), false) => render_skill(&client.skill(name).await?, SystemTime::now(), &style),
    };
    print_out(&text);
    if !text.ends_with('\n') {
        print_out("\n");
    }
    Ok(ExitCode::SUCCESS)
}

/// `skillsyncctl status [NAME] --events`: status, then the recent events
/// (of NAME only, when given).
pub(crate) async fn status_events(
    client: &Client,
    name: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut events = client.events().await?.events;
    if let Some(n) = name {
        events.retain(|e| e.skill == n);
    }
    if json {
        print_out(&format!("{}\n", serde_json::to_string_pretty(&events)?));
        return Ok(ExitCode::SUCCESS);
    }
    let code = status(client, name, false).await?;
    let style = Style::detect();
    print_out(&render_events(&events, SystemTime::now(), &style));
    Ok(code)
}

/// The recent events, newest last: `2m ago  hello-world  update  claude  message`.
fn render_events(events: &[Event], now: SystemTime, style: &Style) -> String {
    let mut out = String::from("\nRECENT EVENTS\n");
    if events.is_empty() {
        out.push_str("  (none since the daemon started)\n");
        return out;
    }
    for e in events {
        let kind = serde_json::to_value(e.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let color = match e.kind {
            EventKind::Conflict | EventKind::Deprecated => Color::Yellow,
            EventKind::Rollback | EventKind::Prune => Color::Cyan,
            _ => Color::None,
        };
        let _ = writeln!(
            out,
            "  {:<9} {:<16} {:<13} {}",
            when(&e.at, now),
            e.skill,
            style.paint(&kind, color),
            e.message
        );
    }
    out
}

/// The `status` table.
pub(crate) fn render_status(resp: &StatusResponse, now: SystemTime, style: &Style) -> String {
    let mut out = daemon_header(resp, now, style);
    out.push('\n');

    if resp.skills.is_empty() {
        out.push_str("no skills configured\n");
    } else {
        let header = [
            "SKILL", "FOLLOWS", "VERSION", "DIGEST", "STATUS", "STATE", "CHECKED", "NEXT",
            "TARGETS",
        ];
        let rows: Vec<Vec<Cell>> = resp.skills.iter().map(|s| skill_row(s, now)).collect();
        let lines = table(&header, &rows, style);
        let mut lines = lines.into_iter();
        if let Some(head) = lines.next() {
            let _ = writeln!(out, "{head}");
        }
        for (skill, line) in resp.skills.iter().zip(lines) {
            let _ = writeln!(out, "{line}");
            write_problem(&mut out, skill, style);
        }
    }

    let deprecated: Vec<&SkillStatus> = resp.skills.iter().filter(|s| is_deprecated(s)).collect();
    if !deprecated.is_empty() || !resp.unmanaged.is_empty() {
        out.push('\n');
    }
    for s in deprecated {
        let text = format!(
            "warning: {} {} is deprecated; follow another version or channel",
            s.name,
            s.version.as_deref().unwrap_or("(installed version)")
        );
        let _ = writeln!(out, "{}", style.paint(&text, Color::Yellow));
    }
    if !resp.unmanaged.is_empty() {
        let _ = writeln!(
            out,
            "unmanaged (installed by skillsyncd, no longer in the config, left in place):"
        );
        for u in &resp.unmanaged {
            let _ = writeln!(out, "  {}  {}", u.name, u.paths.join(", "));
        }
    }
    out
}

/// The lines above the `status` table: the daemon, its config (and a
/// rejected reload of it), remote includes and collections.
fn daemon_header(resp: &StatusResponse, now: SystemTime, style: &Style) -> String {
    let mut out = String::new();
    let d = &resp.daemon;
    let up = parse_rfc3339(&d.started_at)
        .map(|t| {
            format!(
                ", up {}",
                short_duration(now.duration_since(t).unwrap_or_default())
            )
        })
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{} {} (pid {}{up}), polling every {}",
        style.paint("skillsyncd", Color::Bold),
        d.version,
        d.pid,
        humantime::format_duration(Duration::from_secs(d.poll_interval_secs)),
    );
    let loaded = parse_rfc3339(&d.config_loaded_at)
        .map(|t| format!(" (loaded {})", relative(t, now)))
        .unwrap_or_default();
    let _ = writeln!(out, "config: {}{loaded}", d.config);
    if let Some(err) = &d.config_error {
        let _ = writeln!(
            out,
            "{}",
            style.paint(
                "CONFIG ERROR: the last reload was rejected; the previous config keeps running:",
                Color::Red
            )
        );
        for line in err.lines() {
            let _ = writeln!(out, "  {}", style.paint(line, Color::Red));
        }
    }
    // Included files are listed by `status --config`; remote includes and
    // collections here, with what went wrong.
    for source in resp.config_sources.iter().filter(|s| s.kind != "file") {
        let _ = writeln!(
            out,
            "{} {}{}",
            source.kind,
            source.name,
            source
                .detail
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        );
        for line in source.error.iter().flat_map(|e| e.lines()) {
            let _ = writeln!(out, "  {}", style.paint(line, Color::Yellow));
        }
    }
    out
}

/// One row of the `status` table.
fn skill_row(s: &SkillStatus, now: SystemTime) -> Vec<Cell> {
    let (status, status_color) = match s.status.as_deref() {
        Some("deprecated") => ("deprecated!".to_string(), Color::Yellow),
        Some(other) => (other.to_string(), Color::None),
        None => ("-".to_string(), Color::Dim),
    };
    let targets = s
        .targets
        .iter()
        .map(target_mark)
        .collect::<Vec<_>>()
        .join(" ");
    let targets_color = if s
        .targets
        .iter()
        .any(|t| matches!(t.state, TargetState::Error | TargetState::Conflict))
    {
        Color::Red
    } else {
        Color::None
    };
    vec![
        (s.name.clone(), Color::Bold),
        (s.follows.clone(), Color::None),
        (dash(s.version.as_deref()), Color::None),
        (
            s.digest.as_deref().map_or("-".to_string(), short_digest),
            Color::Dim,
        ),
        (status, status_color),
        match (&s.held, s.state) {
            (Some(_), SkillState::InSync) => ("held".into(), Color::Yellow),
            _ => state_cell(s.state),
        },
        (
            s.last_checked
                .as_deref()
                .map_or("never".to_string(), |t| when(t, now)),
            Color::None,
        ),
        (
            s.next_check
                .as_deref()
                .map_or("-".to_string(), |t| when(t, now)),
            Color::None,
        ),
        (targets, targets_color),
    ]
}

/// `status NAME`: one skill in detail.
pub(crate) fn render_skill(s: &SkillStatus, now: SystemTime, style: &Style) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", style.paint(&s.name, Color::Bold));
    let (state, state_color) = state_cell(s.state);
    let with_time = |t: &Option<String>, none: &str| match t {
        Some(t) => format!("{} ({t})", when(t, now)),
        None => none.to_string(),
    };
    let status = match s.status.as_deref() {
        Some("deprecated") => style.paint(
            "deprecated! follow another version or channel",
            Color::Yellow,
        ),
        other => dash(other),
    };
    let fields = [
        ("image", s.image.clone()),
        ("defined", dash(s.origin.as_deref())),
        ("follows", s.follows.clone()),
        ("version", dash(s.version.as_deref())),
        ("digest", dash(s.digest.as_deref())),
        ("status", status),
        ("state", style.paint(&state, state_color)),
        ("checked", with_time(&s.last_checked, "never")),
        ("next check", with_time(&s.next_check, "-")),
    ];
    for (key, value) in fields {
        let _ = writeln!(out, "  {:<11} {value}", format!("{key}:"));
    }
    if let Some(h) = &s.held {
        let _ = writeln!(
            out,
            "  {:<11} {} (skillsyncctl resume {} to follow the config again)",
            "held:",
            style.paint(h, Color::Yellow),
            s.name
        );
    }
    if let Some(e) = &s.error {
        let _ = writeln!(out, "  {:<11} {}", "error:", style.paint(e, Color::Red));
    }
    if let Some(e) = &s.served_by {
        let _ = writeln!(out, "  {:<11} {e}", "served by:");
    }
    if s.insecure {
        let _ = writeln!(
            out,
            "  {:<11} {}",
            "transport:",
            style.paint("plain HTTP (insecure = true)", Color::Yellow)
        );
    }
    if let Some(v) = &s.verification {
        let color = if v.starts_with("verified") {
            Color::Green
        } else {
            Color::Yellow
        };
        let _ = writeln!(out, "  {:<11} {}", "trust:", style.paint(v, color));
    }
    for b in &s.backups {
        let _ = writeln!(out, "  {:<11} {b}", "backup:");
    }
    let _ = writeln!(out, "  targets:");
    let rows: Vec<Vec<Cell>> = s
        .targets
        .iter()
        .map(|t| {
            let (mark, color) = match t.state {
                TargetState::InSync => ("✓ in sync", Color::Green),
                TargetState::Pending => ("… pending", Color::Dim),
                TargetState::Error => ("✗ error", Color::Red),
                TargetState::Conflict => ("✗ conflict", Color::Red),
                TargetState::Drifted => ("✎ edited", Color::Yellow),
            };
            vec![
                (t.name.clone(), Color::None),
                (mark.to_string(), color),
                (t.path.clone(), Color::None),
            ]
        })
        .collect();
    let lines = table(&["TARGET", "STATE", "PATH"], &rows, style);
    for (i, line) in lines.iter().enumerate() {
        let _ = writeln!(out, "    {line}");
        let error = i
            .checked_sub(1)
            .and_then(|i| s.targets.get(i))
            .and_then(|t| t.error.as_deref());
        if let Some(e) = error {
            let _ = writeln!(out, "      └ {}", style.paint(e, Color::Red));
        }
    }
    out
}
