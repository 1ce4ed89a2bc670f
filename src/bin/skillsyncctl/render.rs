//! Output shared by the commands: writing to stdout, colours and width
//! ([`Style`]), column tables, and the cells and words every view of a
//! skill uses (states, targets, digests, relative times).
//!
//! Pure text: nothing here talks to the daemon or reads the config; only
//! [`print_out`] and [`Style::detect`] touch the terminal.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::time::{Duration, SystemTime};

use skillsyncd::control::protocol::{SkillState, SkillStatus, TargetState, TargetStatus};

/// Writes to stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn print_out(text: &str) {
    if cfg!(test) {
        // Where the test harness captures it.
        print!("{text}");
    } else {
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    }
}

/// How output is decorated: colours and the width lines are cut to.
pub(crate) struct Style {
    /// Whether to colour (ANSI escapes).
    pub(crate) color: bool,
    /// The width a line is cut to.
    pub(crate) width: usize,
}

impl Style {
    /// Colours when stdout is a terminal and `NO_COLOR` is unset or empty;
    /// the terminal's width, else `$COLUMNS`, else 100.
    pub(crate) fn detect() -> Style {
        let stdout = std::io::stdout();
        let tty = stdout.is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let width = tty
            .then(|| rustix::termios::tcgetwinsize(&stdout).ok())
            .flatten()
            .map(|w| usize::from(w.ws_col))
            .filter(|w| *w > 0)
            .or_else(|| std::env::var("COLUMNS").ok()?.parse().ok())
            .unwrap_or(100);
        Style {
            color: tty && !no_color,
            width: width.max(40),
        }
    }

    /// `text` in `color`, when colours are on.
    pub(crate) fn paint(&self, text: &str, color: Color) -> String {
        if !self.color || text.is_empty() {
            return text.to_string();
        }
        let code = match color {
            Color::Red => "31",
            Color::Yellow => "33",
            Color::Green => "32",
            Color::Cyan => "36",
            Color::Dim => "2",
            Color::Bold => "1",
            Color::None => return text.to_string(),
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

/// A colour (or weight) of output; `None` leaves text as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Color {
    None,
    Red,
    Yellow,
    Green,
    Cyan,
    Dim,
    Bold,
}

/// One table cell: its text and colour.
pub(crate) type Cell = (String, Color);

/// Lays out rows in columns two spaces apart, padding before painting so
/// colours do not upset the widths; the last column is not padded.
pub(crate) fn table(header: &[&str], rows: &[Vec<Cell>], style: &Style) -> Vec<String> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, (text, _)) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(text.chars().count());
            }
        }
    }
    let line = |cells: Vec<Cell>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, (text, color)) in cells.into_iter().enumerate() {
            let pad = widths
                .get(i)
                .copied()
                .unwrap_or(0)
                .saturating_sub(text.chars().count());
            out.push_str(&style.paint(&text, color));
            if i < last {
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out
    };
    let mut lines = vec![line(
        header
            .iter()
            .map(|h| (h.to_string(), Color::Bold))
            .collect(),
    )];
    lines.extend(rows.iter().map(|r| line(r.clone())));
    lines
}

/// `claude ✓`, `cursor ✗conflict`, `windsurf …pending`.
pub(crate) fn target_mark(t: &TargetStatus) -> String {
    match t.state {
        TargetState::InSync => format!("{} ✓", t.name),
        TargetState::Pending => format!("{} …pending", t.name),
        TargetState::Error => format!("{} ✗error", t.name),
        TargetState::Conflict => format!("{} ✗conflict", t.name),
        TargetState::Drifted => format!("{} ✎edited", t.name),
    }
}

/// A skill's state, as a word and its colour.
pub(crate) fn state_cell(state: SkillState) -> Cell {
    match state {
        SkillState::InSync => ("in sync".into(), Color::Green),
        SkillState::Updating => ("updating".into(), Color::Cyan),
        SkillState::Pending => ("pending".into(), Color::Dim),
        SkillState::Error => ("error".into(), Color::Red),
        SkillState::Conflict => ("conflict".into(), Color::Red),
        SkillState::Drifted => ("drifted".into(), Color::Yellow),
    }
}

/// Under a skill's row: why it is not in sync, in one line cut to the
/// width, in red; nothing when it has no problem.
pub(crate) fn write_problem(out: &mut String, s: &SkillStatus, style: &Style) {
    if let Some(problem) = problem_line(s) {
        let text = truncate(&format!("  └ {problem}"), style.width);
        let _ = writeln!(out, "{}", style.paint(&text, Color::Red));
    }
}

/// Why a skill is not in sync, in one line: its error, else its first
/// target's.
fn problem_line(s: &SkillStatus) -> Option<String> {
    let one_line = |e: &str| e.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some(e) = &s.error {
        return Some(one_line(e));
    }
    s.targets.iter().find_map(|t| {
        t.error
            .as_ref()
            .map(|e| format!("{}: {}", t.name, one_line(e)))
    })
}

/// Whether a skill's installed version is marked deprecated.
pub(crate) fn is_deprecated(s: &SkillStatus) -> bool {
    s.status.as_deref() == Some("deprecated")
}

/// The value, or `-` when there is none.
pub(crate) fn dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_string()
}

/// The first 12 hex digits of a digest (`sha256:abc…` → `abc…`).
pub(crate) fn short_digest(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    hex.chars().take(12).collect()
}

/// Cuts `text` to `width` characters, marking the cut with `…`.
pub(crate) fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `1 skill`, `2 skills`.
pub(crate) fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// An RFC 3339 time relative to `now` (`2m ago`, `in 3m`), or the text
/// itself when it does not parse.
pub(crate) fn when(text: &str, now: SystemTime) -> String {
    parse_rfc3339(text).map_or_else(|| text.to_string(), |t| relative(t, now))
}

/// `2m ago`, `in 3m`, `now`.
pub(crate) fn relative(t: SystemTime, now: SystemTime) -> String {
    match t.duration_since(now) {
        Ok(ahead) if ahead >= Duration::from_secs(1) => format!("in {}", short_duration(ahead)),
        Ok(_) => "now".to_string(),
        Err(e) if e.duration() < Duration::from_secs(1) => "now".to_string(),
        Err(e) => format!("{} ago", short_duration(e.duration())),
    }
}

/// A duration in its largest whole unit: `42s`, `3m`, `5h`, `2d`.
pub(crate) fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// An RFC 3339 time in UTC, as the daemon writes them
/// (`2025-01-01T00:00:00Z`, with or without a fraction of a second).
pub(crate) fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(text.trim()).ok()
}
