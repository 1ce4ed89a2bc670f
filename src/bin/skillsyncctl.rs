//! `skillsyncctl`: asks and tells skillsyncd, through its control socket.
//!
//! - `status [NAME] [--json]`: what every skill (or one) is doing.
//! - `sync [NAME] [--wait]`: check now instead of at the next poll.
//! - `reload`: re-read the config file.
//! - `check`: validate a config file offline.
//! - `completions SHELL`: a shell completion script.
//!
//! Exit codes: 0 success; 1 a failure (an unknown skill, a sync that ended
//! in error); 2 an invalid config; 3 skillsyncd is not running.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use skillsyncd::config::{self, Config, LoadOptions};
use skillsyncd::control::client::{self, Client, ClientError};
use skillsyncd::control::protocol::{
    Event, EventKind, HoldAction, SkillState, SkillStatus, StatusResponse, TargetState,
    TargetStatus,
};
use skillsyncd::daemon;
use skillsyncd::paths::Paths;

/// Exit code: something failed (unknown skill, a sync ended in error).
const EXIT_FAILED: u8 = 1;
/// Exit code: the config is invalid (or a reload was rejected).
const EXIT_CONFIG: u8 = 2;
/// Exit code: skillsyncd is not running.
const EXIT_NOT_RUNNING: u8 = 3;

const MAIN_HELP: &str = "\
Examples:
  skillsyncctl status                 every skill at a glance
  skillsyncctl status hello-world     one skill in detail
  skillsyncctl sync --wait            check every skill now, wait for the result
  skillsyncctl reload                 re-read skills.toml
  skillsyncctl check                  validate skills.toml offline
  curl --unix-socket \"$XDG_RUNTIME_DIR/skillsyncd.sock\" http://x/v1/status

The socket is, in order: --socket, $SKILLSYNC_SOCKET, [daemon] socket in the
config, $XDG_RUNTIME_DIR/skillsyncd.sock, <state dir>/run/skillsyncd.sock.

Exit codes: 0 ok, 1 failed, 2 invalid config, 3 skillsyncd not running.";

/// Control and inspect skillsyncd.
#[derive(Parser)]
#[command(name = "skillsyncctl", version, after_help = MAIN_HELP)]
struct Args {
    /// The daemon's control socket [default: $XDG_RUNTIME_DIR/skillsyncd.sock;
    /// also $SKILLSYNC_SOCKET].
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,

    /// The config file [default: $XDG_CONFIG_HOME/skillsync/skills.toml].
    /// `status --config` (without PATH) shows the merged config instead.
    #[arg(
        long,
        short,
        global = true,
        env = "SKILLSYNC_CONFIG",
        value_name = "PATH",
        num_args = 0..=1,
        default_missing_value = "-"
    )]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what skillsyncd is doing: every skill, or one in detail.
    #[command(after_help = "\
Examples:
  skillsyncctl status
  skillsyncctl status hello-world
  skillsyncctl status --json | jq '.skills[] | select(.state != \"in_sync\")'
  skillsyncctl status --events               # also what happened lately
  skillsyncctl status hello-world --events   # ... to that skill
  skillsyncctl status --config               # the merged config, offline

Exits 1 when NAME is not configured, 3 when skillsyncd is not running.")]
    Status {
        /// One skill, in detail.
        name: Option<String>,
        /// Print the daemon's JSON unchanged.
        #[arg(long)]
        json: bool,
        /// Also show the recent events: installs, updates, rollbacks,
        /// conflicts... (with --json: the events' JSON).
        #[arg(long)]
        events: bool,
    },

    /// Check every skill (or one) now instead of at the next poll.
    #[command(after_help = "\
Examples:
  skillsyncctl sync
  skillsyncctl sync hello-world --wait

With --wait, exits 1 if any skill ends in error or conflict.")]
    Sync {
        /// Only this skill.
        name: Option<String>,
        /// Wait for the passes to finish and print how they ended.
        #[arg(long)]
        wait: bool,
    },

    /// Re-read the config file; a rejected config leaves the last good one
    /// running.
    #[command(after_help = "\
Examples:
  skillsyncctl reload

Exits 2 when the new config is rejected, printing each problem as
file:line:column: message.")]
    Reload,

    /// Show what a pass would do now (install, update, annotation-only,
    /// prune, restore, conflict), changing nothing.
    #[command(after_help = "\
Examples:
  skillsyncctl plan
  skillsyncctl plan --json

Registries are asked, as a pass would; no target, state or cache is
written. Offline equivalent: skillsyncd --once --dry-run.")]
    Plan {
        /// Print the daemon's JSON.
        #[arg(long)]
        json: bool,
    },

    /// Freeze a skill at the version installed now (until `resume`).
    #[command(after_help = "\
Examples:
  skillsyncctl hold hello-world
  skillsyncctl resume hello-world")]
    Hold {
        /// The skill.
        name: String,
    },

    /// Reinstall a skill's previous generation from the cache (no network)
    /// and hold it there (until `resume`).
    #[command(after_help = "\
Examples:
  skillsyncctl rollback hello-world
  skillsyncctl status hello-world     # shows `rolled back to ...`
  skillsyncctl resume hello-world     # follow the config again

Exits 1 when there is no earlier generation to go back to.")]
    Rollback {
        /// The skill.
        name: String,
    },

    /// Lift a hold or rollback: the skill follows the config again.
    #[command(after_help = "\
Examples:
  skillsyncctl resume hello-world")]
    Resume {
        /// The skill.
        name: String,
    },

    /// Validate a config file, its key files and the containers policy,
    /// without contacting anything.
    #[command(after_help = "\
Examples:
  skillsyncctl check
  skillsyncctl check --config ./skills.toml

Exits 0 when the config is valid, 2 when not, printing each problem as
file:line:column: message. A config that parses is also checked for trust:
every verify key file must load, and the containers policy (policy.json)
must parse and neither reject a skill from a registry nor ask for what
skillsyncd does not support; each problem names the skills it stops.")]
    Check,

    /// The merged config: every layer, include and collection, and where
    /// each setting of a skill was written.
    #[command(after_help = "\
Examples:
  skillsyncctl config show
  skillsyncctl config explain hello-world

Offline: remote includes and collections are read from the cache.")]
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },

    /// Print a completion script for SHELL.
    #[command(after_help = "\
Examples:
  skillsyncctl completions bash > ~/.local/share/bash-completion/completions/skillsyncctl
  skillsyncctl completions zsh > ~/.zfunc/_skillsyncctl
  skillsyncctl completions fish > ~/.config/fish/completions/skillsyncctl.fish")]
    Completions {
        /// The shell.
        shell: Shell,
    },
}

/// `skillsyncctl config ...`.
#[derive(Subcommand)]
enum ConfigAction {
    /// The merged result: files, remote includes, collections, skills.
    Show,
    /// Which file (and line) set each setting of a skill.
    Explain {
        /// The skill.
        name: String,
    },
}

fn main() -> ExitCode {
    run(Args::parse())
}

/// Runs a parsed command line; errors are printed here, as one line.
fn run(mut args: Args) -> ExitCode {
    // `--config` without a path: the default file (and, for `status`, the
    // merged config).
    let bare_config = args.config.as_deref() == Some(Path::new("-"));
    if bare_config {
        args.config = None;
    }
    let result = match args.command {
        Command::Check => Ok(check(args.config.as_deref())),
        Command::Status { .. } if bare_config => Ok(show_config(None, None)),
        Command::Config { ref action } => Ok(match action {
            ConfigAction::Show => show_config(args.config.as_deref(), None),
            ConfigAction::Explain { name } => show_config(args.config.as_deref(), Some(name)),
        }),
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Args::command(), "skillsyncctl", &mut out);
            print_out(&String::from_utf8_lossy(&out));
            Ok(ExitCode::SUCCESS)
        }
        ref command => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime");
            runtime.and_then(|rt| rt.block_on(talk(&args, command)))
        }
    };
    result.unwrap_or_else(|e| {
        match e.downcast_ref::<ClientError>() {
            // One line: the cause (no such file, connection refused) adds
            // nothing to "not running".
            Some(not_running @ ClientError::NotRunning { .. }) => {
                eprintln!("skillsyncctl: {not_running}");
                ExitCode::from(EXIT_NOT_RUNNING)
            }
            Some(ClientError::Api { message, .. }) => {
                eprintln!("skillsyncctl: {message}");
                ExitCode::from(EXIT_FAILED)
            }
            _ => {
                eprintln!("skillsyncctl: {e:#}");
                ExitCode::from(EXIT_FAILED)
            }
        }
    })
}

/// Runs a subcommand that talks to the daemon.
async fn talk(args: &Args, command: &Command) -> anyhow::Result<ExitCode> {
    let client = Client::new(socket(args)?);
    match command {
        Command::Status { name, json, events } => {
            if *events {
                status_events(&client, name.as_deref(), *json).await
            } else {
                status(&client, name.as_deref(), *json).await
            }
        }
        Command::Sync { name, wait } => sync(&client, name.as_deref(), *wait).await,
        Command::Reload => reload(&client).await,
        Command::Plan { json } => plan(&client, *json).await,
        Command::Hold { name } => hold(&client, name, HoldAction::Hold).await,
        Command::Rollback { name } => hold(&client, name, HoldAction::Rollback).await,
        Command::Resume { name } => hold(&client, name, HoldAction::Resume).await,
        Command::Check | Command::Config { .. } | Command::Completions { .. } => {
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The socket path: `--socket`, `$SKILLSYNC_SOCKET`, the config's
/// `[daemon] socket` (when the config file exists and is valid), then the
/// default.
fn socket(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(flag) = &args.socket {
        return Ok(flag.clone());
    }
    let paths = Paths::from_env()?;
    let config_file = args.config.clone().unwrap_or(paths.config_file.clone());
    let config = config::load(&config_file, &LoadOptions::from_env()).ok();
    let configured = config.as_ref().and_then(configured_socket);
    let paths = match &config {
        Some(config) => paths.with_config(&config.daemon),
        None => paths,
    };
    Ok(client::socket_path(None, configured.as_deref(), &paths))
}

/// The config's `[daemon] socket`.
fn configured_socket(config: &Config) -> Option<PathBuf> {
    config.daemon.socket.clone()
}

/// The config file named, else the default.
fn config_file(config: Option<&Path>) -> Result<PathBuf, ExitCode> {
    match config {
        Some(p) => Ok(p.to_path_buf()),
        None => Paths::from_env().map(|p| p.config_file).map_err(|e| {
            eprintln!("skillsyncctl: {e}");
            ExitCode::from(EXIT_CONFIG)
        }),
    }
}

/// `skillsyncctl check`: the merged config, validated offline.
fn check(config: Option<&Path>) -> ExitCode {
    let path = match config_file(config) {
        Ok(p) => p,
        Err(code) => return code,
    };
    match config::load(&path, &LoadOptions::from_env()) {
        Ok(c) => {
            // Trust is checked offline too: key files, and what the
            // containers policy says of each skill.
            let problems = skillsyncd::reconcile::trust_problems(&c);
            if !problems.is_empty() {
                eprintln!("{}: the config parses, but:", path.display());
                for p in &problems {
                    eprintln!("  {p}");
                }
                return ExitCode::from(EXIT_CONFIG);
            }
            print_out(&format!(
                "{}: ok ({}, {})\n",
                path.display(),
                plural(c.skills.len(), "skill"),
                plural(c.targets.len(), "target")
            ));
            print_out(&render_merged(&c));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// `skillsyncctl config show`, `config explain NAME`, `status --config`.
fn show_config(config: Option<&Path>, explain: Option<&str>) -> ExitCode {
    let path = match config_file(config) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let c = match config::load(&path, &LoadOptions::from_env()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match explain {
        None => {
            print_out(&format!("config: {}\n", path.display()));
            print_out(&render_merged(&c));
            ExitCode::SUCCESS
        }
        Some(name) => match render_explain(&c, name) {
            Some(text) => {
                print_out(&text);
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("skillsyncctl: no skill named {name:?} is configured");
                ExitCode::from(EXIT_FAILED)
            }
        },
    }
}

/// The layers, remote includes, collections and the merged skills.
fn render_merged(c: &Config) -> String {
    let mut out = String::new();
    for source in daemon::config_sources(c) {
        let _ = write!(out, "{} {}", source.kind, source.name);
        if let Some(d) = &source.detail {
            let _ = write!(out, ": {d}");
        }
        out.push('\n');
        if let Some(e) = &source.error {
            for line in e.lines() {
                let _ = writeln!(out, "  ! {line}");
            }
        }
    }
    if !c.layers.disabled.is_empty() {
        let names: Vec<&str> = c.layers.disabled.iter().map(String::as_str).collect();
        let _ = writeln!(out, "switched off: {}", names.join(", "));
    }
    let waiting: Vec<&str> = c
        .layers
        .pending
        .keys()
        .filter(|n| !c.skills.contains_key(*n))
        .map(String::as_str)
        .collect();
    if !waiting.is_empty() {
        let _ = writeln!(
            out,
            "overrides without a skill to override (yet): {}",
            waiting.join(", ")
        );
    }
    let rows: Vec<Vec<Cell>> = c
        .skills
        .values()
        .map(|s| {
            vec![
                (s.name.clone(), Color::None),
                (s.image.to_string(), Color::None),
                (daemon::follows(s), Color::None),
                (s.targets.join(","), Color::None),
                (
                    c.layers
                        .origins
                        .get(&s.name)
                        .map(|o| o.defined_at.clone())
                        .unwrap_or_default(),
                    Color::None,
                ),
            ]
        })
        .collect();
    if !rows.is_empty() {
        out.push('\n');
        for line in table(
            &["SKILL", "IMAGE", "FOLLOWS", "TARGETS", "DEFINED AT"],
            &rows,
            &Style {
                color: false,
                width: usize::MAX / 2,
            },
        ) {
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
}

/// Each setting of a skill and where it was written.
fn render_explain(c: &Config, name: &str) -> Option<String> {
    let skill = c.skills.get(name)?;
    let origin = c.layers.origins.get(name);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{name}: defined at {}",
        origin.map_or("?", |o| o.defined_at.as_str())
    );
    let mut settings: Vec<_> = origin
        .map(|o| o.settings.iter().collect())
        .unwrap_or_default();
    // What it is and what it follows first, then where it goes, then the
    // rest as they come.
    const FIRST: &[&str] = &[
        "image", "channel", "version", "tag", "digest", "targets", "enabled", "verify",
    ];
    settings.sort_by_key(|s| {
        FIRST
            .iter()
            .position(|k| *k == s.key)
            .unwrap_or(FIRST.len())
    });
    let width = settings
        .iter()
        .map(|s| s.key.len() + s.value.len())
        .max()
        .unwrap_or(0)
        + 3;
    for s in settings {
        let kv = format!("{} = {}", s.key, s.value);
        let _ = writeln!(out, "  {kv:<width$}  {}", s.at);
    }
    let _ = writeln!(
        out,
        "  in effect: {} {}, targets {}",
        skill.image,
        daemon::follows(skill),
        skill.targets.join(", ")
    );
    Some(out)
}

/// `skillsyncctl status [NAME] [--json]`.
async fn status(client: &Client, name: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
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
async fn status_events(
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

/// `skillsyncctl sync [NAME] [--wait]`.
async fn sync(client: &Client, name: Option<&str>, wait: bool) -> anyhow::Result<ExitCode> {
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

/// `skillsyncctl reload`.
async fn reload(client: &Client) -> anyhow::Result<ExitCode> {
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

/// `skillsyncctl plan`.
async fn plan(client: &Client, json: bool) -> anyhow::Result<ExitCode> {
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

/// `skillsyncctl hold|rollback|resume NAME`.
async fn hold(client: &Client, name: &str, action: HoldAction) -> anyhow::Result<ExitCode> {
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

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn print_out(text: &str) {
    if cfg!(test) {
        // Where the test harness captures it.
        print!("{text}");
    } else {
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    }
}

/// How output is decorated: colours and the width lines are cut to.
struct Style {
    color: bool,
    width: usize,
}

impl Style {
    /// Colours when stdout is a terminal and `NO_COLOR` is unset or empty;
    /// the terminal's width, else `$COLUMNS`, else 100.
    fn detect() -> Style {
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

    fn paint(&self, text: &str, color: Color) -> String {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Color {
    None,
    Red,
    Yellow,
    Green,
    Cyan,
    Dim,
    Bold,
}

/// One table cell: its text and colour.
type Cell = (String, Color);

/// Lays out rows in columns two spaces apart, padding before painting so
/// colours do not upset the widths; the last column is not padded.
fn table(header: &[&str], rows: &[Vec<Cell>], style: &Style) -> Vec<String> {
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

/// The `status` table.
fn render_status(resp: &StatusResponse, now: SystemTime, style: &Style) -> String {
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
            if let Some(problem) = problem_line(skill) {
                let text = truncate(&format!("  └ {problem}"), style.width);
                let _ = writeln!(out, "{}", style.paint(&text, Color::Red));
            }
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

/// `claude ✓`, `cursor ✗conflict`, `windsurf …pending`.
fn target_mark(t: &TargetStatus) -> String {
    match t.state {
        TargetState::InSync => format!("{} ✓", t.name),
        TargetState::Pending => format!("{} …pending", t.name),
        TargetState::Error => format!("{} ✗error", t.name),
        TargetState::Conflict => format!("{} ✗conflict", t.name),
        TargetState::Drifted => format!("{} ✎edited", t.name),
    }
}

fn state_cell(state: SkillState) -> Cell {
    match state {
        SkillState::InSync => ("in sync".into(), Color::Green),
        SkillState::Updating => ("updating".into(), Color::Cyan),
        SkillState::Pending => ("pending".into(), Color::Dim),
        SkillState::Error => ("error".into(), Color::Red),
        SkillState::Conflict => ("conflict".into(), Color::Red),
        SkillState::Drifted => ("drifted".into(), Color::Yellow),
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

fn is_deprecated(s: &SkillStatus) -> bool {
    s.status.as_deref() == Some("deprecated")
}

/// `status NAME`: one skill in detail.
fn render_skill(s: &SkillStatus, now: SystemTime, style: &Style) -> String {
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

/// `sync --wait`: how each pass ended.
fn render_sync(skills: &[SkillStatus], style: &Style) -> String {
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
        if let Some(problem) = problem_line(s) {
            let text = truncate(&format!("  └ {problem}"), style.width);
            let _ = writeln!(out, "{}", style.paint(&text, Color::Red));
        }
        if is_deprecated(s) {
            let _ = writeln!(out, "{}", style.paint("  └ deprecated!", Color::Yellow));
        }
    }
    out
}

fn dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_string()
}

/// The first 12 hex digits of a digest (`sha256:abc…` → `abc…`).
fn short_digest(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    hex.chars().take(12).collect()
}

/// Cuts `text` to `width` characters, marking the cut with `…`.
fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// An RFC 3339 time relative to `now` (`2m ago`, `in 3m`), or the text
/// itself when it does not parse.
fn when(text: &str, now: SystemTime) -> String {
    parse_rfc3339(text).map_or_else(|| text.to_string(), |t| relative(t, now))
}

/// `2m ago`, `in 3m`, `now`.
fn relative(t: SystemTime, now: SystemTime) -> String {
    match t.duration_since(now) {
        Ok(ahead) if ahead >= Duration::from_secs(1) => format!("in {}", short_duration(ahead)),
        Ok(_) => "now".to_string(),
        Err(e) if e.duration() < Duration::from_secs(1) => "now".to_string(),
        Err(e) => format!("{} ago", short_duration(e.duration())),
    }
}

/// A duration in its largest whole unit: `42s`, `3m`, `5h`, `2d`.
fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (a space may stand for
/// the `T`).
fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let b = text.trim().as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut nanos: u32 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac: String = text.trim()[start..i].chars().take(9).collect();
        nanos = format!("{frac:0<9}").parse().ok()?;
    }
    let offset_secs = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let secs = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *sign == b'+' {
                secs
            } else {
                -secs
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use skillsyncd::control::protocol::{DaemonStatus, UnmanagedSkill};

    fn at(text: &str) -> SystemTime {
        parse_rfc3339(text).unwrap()
    }

    fn plain() -> Style {
        Style {
            color: false,
            width: 100,
        }
    }

    fn skill(name: &str) -> SkillStatus {
        SkillStatus {
            name: name.into(),
            image: format!("127.0.0.1:5000/examples/{name}"),
            follows: "published".into(),
            version: Some("1.2.0".into()),
            digest: Some(format!("sha256:{}", "0123456789abcdef".repeat(4))),
            status: Some("published".into()),
            state: SkillState::InSync,
            error: None,
            last_checked: Some("2025-01-01T00:00:00Z".into()),
            next_check: Some("2025-01-01T00:05:00Z".into()),
            targets: vec![TargetStatus {
                name: "claude".into(),
                path: format!("/home/u/.claude/skills/{name}"),
                state: TargetState::InSync,
                error: None,
            }],
            held: None,
            backups: Vec::new(),
            served_by: None,
            insecure: false,
            verification: None,
            origin: None,
        }
    }

    fn status() -> StatusResponse {
        let mut broken = skill("broken");
        broken.state = SkillState::Conflict;
        broken.status = Some("deprecated".into());
        broken.targets.push(TargetStatus {
            name: "cursor".into(),
            path: "/home/u/.cursor/skills/broken".into(),
            state: TargetState::Conflict,
            error: Some("a folder skillsyncd did not install is in the way".into()),
        });
        let mut failing = skill("failing");
        failing.state = SkillState::Error;
        failing.version = None;
        failing.digest = None;
        failing.last_checked = None;
        failing.error = Some(format!("registry unreachable:\n{}", "x".repeat(300)));
        StatusResponse {
            daemon: DaemonStatus {
                version: "0.1.0".into(),
                pid: 42,
                config: "/home/u/.config/skillsync/skills.toml".into(),
                config_error: Some(
                    "/home/u/.config/skillsync/skills.toml:3:12: unknown target \"curser\"".into(),
                ),
                started_at: "2024-12-31T22:00:00Z".into(),
                config_loaded_at: "2024-12-31T23:58:00Z".into(),
                poll_interval_secs: 300,
                state_dir: "/s".into(),
                cache_dir: "/c".into(),
            },
            skills: vec![skill("hello-world"), broken, failing],
            unmanaged: vec![UnmanagedSkill {
                name: "old".into(),
                paths: vec!["/home/u/.claude/skills/old".into()],
            }],
            config_sources: Vec::new(),
        }
    }

    #[test]
    fn the_status_table_reads_at_a_glance() {
        let now = at("2025-01-01T00:02:00Z");
        let text = render_status(&status(), now, &plain());
        println!("{text}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "skillsyncd 0.1.0 (pid 42, up 2h), polling every 5m"
        );
        assert_eq!(
            lines[1],
            "config: /home/u/.config/skillsync/skills.toml (loaded 4m ago)"
        );
        assert!(lines[2].starts_with("CONFIG ERROR"));
        assert!(lines[3].contains("skills.toml:3:12: unknown target"));
        let header = lines.iter().position(|l| l.starts_with("SKILL")).unwrap();
        let row = lines[header + 1];
        for part in [
            "hello-world",
            "published",
            "1.2.0",
            "0123456789ab",
            "in sync",
            "2m ago",
            "in 3m",
            "claude ✓",
        ] {
            assert!(row.contains(part), "{part:?} in {row:?}");
        }
        assert!(!row.contains("0123456789abc"), "digest cut at 12: {row}");
        let broken = lines[header + 2];
        assert!(broken.contains("deprecated!"), "{broken}");
        assert!(broken.contains("conflict"), "{broken}");
        assert!(broken.contains("claude ✓ cursor ✗conflict"), "{broken}");
        assert!(lines[header + 3].contains("└ cursor: a folder skillsyncd did not install"));
        let failing = lines[header + 4];
        assert!(failing.contains("never"), "{failing}");
        let error = lines[header + 5];
        assert!(
            error.starts_with("  └ registry unreachable: xxx"),
            "{error}"
        );
        assert_eq!(error.chars().count(), 100);
        assert!(error.ends_with('…'));
        assert!(text.contains("warning: broken 1.2.0 is deprecated"));
        assert!(text.contains("unmanaged"));
        assert!(text.contains("  old  /home/u/.claude/skills/old"));
        // Columns line up: every row has its STATE where the header has it.
        let col = lines[header].find("STATE").unwrap();
        assert_eq!(&row[col..col + 7], "in sync");
    }

    #[test]
    fn colours_only_when_asked() {
        let now = at("2025-01-01T00:02:00Z");
        assert!(!render_status(&status(), now, &plain()).contains('\x1b'));
        let coloured = Style {
            color: true,
            width: 100,
        };
        let text = render_status(&status(), now, &coloured);
        assert!(text.contains("\x1b[31m"));
        // Padding is computed on the text, not the escapes.
        let strip = |s: &str| {
            let mut out = String::new();
            let mut in_escape = false;
            for c in s.chars() {
                match (in_escape, c) {
                    (false, '\x1b') => in_escape = true,
                    (true, 'm') => in_escape = false,
                    (true, _) => {}
                    (false, c) => out.push(c),
                }
            }
            out
        };
        assert_eq!(strip(&text), render_status(&status(), now, &plain()));
    }

    #[test]
    fn one_skill_in_detail() {
        let now = at("2025-01-01T00:02:00Z");
        let s = &status().skills[1];
        let text = render_skill(s, now, &plain());
        println!("{text}");
        assert!(text.starts_with("broken\n"));
        assert!(text.contains("  status:     deprecated!"));
        assert!(text.contains("  checked:    2m ago (2025-01-01T00:00:00Z)"));
        assert!(text.contains("cursor  ✗ conflict  /home/u/.cursor/skills/broken"));
        assert!(text.contains("      └ a folder skillsyncd did not install"));
    }

    #[test]
    fn sync_results() {
        let s = status();
        let text = render_sync(&s.skills, &plain());
        println!("{text}");
        assert!(text.lines().next().unwrap().starts_with("SKILL"));
        assert!(text.contains("failing"));
        assert!(text.contains("└ registry unreachable"));
        assert!(text.contains("└ deprecated!"));
    }

    #[test]
    fn rfc3339() {
        let base = UNIX_EPOCH + Duration::from_secs(1_735_689_600); // 2025-01-01T00:00:00Z
        assert_eq!(parse_rfc3339("2025-01-01T00:00:00Z"), Some(base));
        assert_eq!(parse_rfc3339("2025-01-01t00:00:00z"), Some(base));
        assert_eq!(parse_rfc3339("2025-01-01 00:00:00Z"), Some(base));
        assert_eq!(parse_rfc3339("2025-01-01T02:00:00+02:00"), Some(base));
        assert_eq!(parse_rfc3339("2024-12-31T19:00:00-05:00"), Some(base));
        assert_eq!(
            parse_rfc3339("2025-01-01T00:00:00.25Z"),
            Some(base + Duration::from_millis(250))
        );
        assert_eq!(
            parse_rfc3339("2025-01-01T00:00:00.123456789123Z"),
            Some(base + Duration::from_nanos(123_456_789))
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1_709_164_800))
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
        for bad in [
            "",
            "2025-01-01",
            "2025-01-01T00:00:00",
            "2025-13-01T00:00:00Z",
            "2025-01-01T00:00:00.Z",
            "2025-01-01T00:00:00+0200",
            "2025-01-01T0a:00:00Z",
            "ééééééééééééééééééééééé",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn relative_times() {
        let now = at("2025-01-01T12:00:00Z");
        assert_eq!(relative(at("2025-01-01T11:58:00Z"), now), "2m ago");
        assert_eq!(relative(at("2025-01-01T12:03:00Z"), now), "in 3m");
        assert_eq!(relative(at("2025-01-01T12:00:00Z"), now), "now");
        assert_eq!(relative(at("2025-01-01T11:59:15Z"), now), "45s ago");
        assert_eq!(relative(at("2024-12-30T12:00:00Z"), now), "2d ago");
        assert_eq!(relative(at("2025-01-01T17:00:00Z"), now), "in 5h");
        assert_eq!(when("not a time", now), "not a time");
    }

    #[test]
    fn small_helpers() {
        assert_eq!(short_digest("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(short_digest("abc"), "abc");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(plural(1, "skill"), "1 skill");
        assert_eq!(plural(2, "skill"), "2 skills");
    }

    /// A daemon stand-in: `good` is in sync, `bad` ends its pass in error,
    /// reload is rejected.
    struct Fake;

    impl skillsyncd::control::Controller for Fake {
        fn status(&self) -> StatusResponse {
            let mut s = status();
            s.skills = vec![skill("good"), self.skill("bad").unwrap()];
            s
        }

        fn skill(&self, name: &str) -> Option<SkillStatus> {
            match name {
                "good" => Some(skill("good")),
                "bad" => {
                    let mut bad = skill("bad");
                    bad.state = SkillState::Error;
                    bad.error = Some("registry unreachable".into());
                    Some(bad)
                }
                _ => None,
            }
        }

        async fn sync(
            &self,
            name: Option<String>,
            wait: bool,
        ) -> Result<skillsyncd::control::protocol::SyncResponse, String> {
            let skills = match name {
                Some(n) => vec![self.skill(&n).ok_or(format!("no skill named {n:?}"))?],
                None => self.status().skills,
            };
            Ok(skillsyncd::control::protocol::SyncResponse {
                waited: wait,
                skills,
            })
        }

        async fn reload(&self) -> skillsyncd::control::protocol::ReloadResponse {
            skillsyncd::control::protocol::ReloadResponse {
                ok: false,
                error: Some("/c/skills.toml:3:12: unknown target \"curser\"".into()),
                added: vec![],
                removed: vec![],
                changed: vec![],
            }
        }

        fn events(&self) -> skillsyncd::control::protocol::EventsResponse {
            skillsyncd::control::protocol::EventsResponse { events: Vec::new() }
        }

        async fn plan(&self) -> Result<skillsyncd::control::protocol::PlanResponse, String> {
            Err("not in this fake".into())
        }

        async fn hold(
            &self,
            name: String,
            _action: HoldAction,
        ) -> Result<skillsyncd::control::protocol::HoldResponse, skillsyncd::control::ActionError>
        {
            Err(skillsyncd::control::ActionError::Refused(format!(
                "{name} has no earlier generation"
            )))
        }
    }

    /// Runs `skillsyncctl --socket SOCKET <args>` against [`Fake`] and
    /// returns the exit code.
    fn ctl_against_fake(args: &[&str]) -> ExitCode {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("run/skillsyncd.sock");
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let listener = {
            let _runtime = rt.enter();
            skillsyncd::control::server::bind(&socket).unwrap()
        };
        let server = rt.spawn(skillsyncd::control::server::serve(
            listener,
            std::sync::Arc::new(Fake),
            async {
                let _ = stopped.await;
            },
        ));
        let mut argv = vec!["skillsyncctl", "--socket", socket.to_str().unwrap()];
        argv.extend_from_slice(args);
        let code = run(Args::try_parse_from(argv).unwrap());
        let _ = stop.send(());
        rt.block_on(server).unwrap();
        code
    }

    #[test]
    fn exit_codes() {
        assert_eq!(ctl_against_fake(&["status"]), ExitCode::SUCCESS);
        assert_eq!(ctl_against_fake(&["status", "--json"]), ExitCode::SUCCESS);
        assert_eq!(ctl_against_fake(&["status", "good"]), ExitCode::SUCCESS);
        assert_eq!(ctl_against_fake(&["status", "nope"]), ExitCode::from(1));
        assert_eq!(ctl_against_fake(&["sync"]), ExitCode::SUCCESS);
        assert_eq!(
            ctl_against_fake(&["sync", "good", "--wait"]),
            ExitCode::SUCCESS
        );
        assert_eq!(ctl_against_fake(&["sync", "--wait"]), ExitCode::from(1));
        assert_eq!(ctl_against_fake(&["sync", "nope"]), ExitCode::from(1));
        assert_eq!(ctl_against_fake(&["reload"]), ExitCode::from(2));
    }

    #[test]
    fn not_running_is_exit_3() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("skillsyncd.sock");
        for sub in ["status", "sync", "reload"] {
            let args =
                Args::try_parse_from(["skillsyncctl", "--socket", socket.to_str().unwrap(), sub])
                    .unwrap();
            assert_eq!(run(args), ExitCode::from(3), "{sub}");
        }
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Args::command().debug_assert();
        for sub in Args::command().get_subcommands() {
            assert!(
                sub.get_after_help().is_some(),
                "{} has no examples",
                sub.get_name()
            );
        }
    }
}
