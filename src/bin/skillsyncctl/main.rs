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
//!
//! Layout: `main.rs` parses the command line, dispatches and maps errors to
//! exit codes; `status`, `sync`, `reload`, `plan`, `hold` and `config_cmd`
//! hold one group of commands each; `render` the output they share. This
//! file renders nothing, and no file here does the daemon's or the
//! library's work: they ask, and print the answers.

mod config_cmd;
mod hold;
mod plan;
mod reload;
mod render;
mod status;
mod sync;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use skillsyncd::config::{self, Config, LoadOptions};
use skillsyncd::control::client::{self, Client, ClientError};
use skillsyncd::control::protocol::HoldAction;
use skillsyncd::paths::Paths;

use config_cmd::{check, show_config};
use hold::hold;
use plan::plan;
use reload::reload;
use render::print_out;
use status::{status, status_events};
use sync::sync;

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
        Some(config) => paths.with_dirs(
            config.daemon.state_dir.as_deref(),
            config.daemon.cache_dir.as_deref(),
        ),
        None => paths,
    };
    Ok(client::socket_path(None, configured.as_deref(), &paths))
}

/// The config's `[daemon] socket`.
fn configured_socket(config: &Config) -> Option<PathBuf> {
    config.daemon.socket.clone()
}

#[cfg(test)]
mod tests;
