//! `skillsyncctl`: asks and tells skillsyncd.
//!
//! `skillsyncctl check` validates a config offline and prints every problem
//! as `file:line:column: message` (exit 0 when valid, 2 when not).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use skillsyncd::config::Config;
use skillsyncd::paths::Paths;

/// Control and inspect skillsyncd.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a config file without contacting anything.
    #[command(
        after_help = "Examples:\n  skillsyncctl check\n  skillsyncctl check --config ./skills.toml"
    )]
    Check {
        /// The config file [default: $XDG_CONFIG_HOME/skillsync/skills.toml].
        #[arg(long, short, env = "SKILLSYNC_CONFIG")]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match Args::parse().command {
        Command::Check { config } => check(config),
    }
}

fn check(config: Option<PathBuf>) -> ExitCode {
    let path = match config {
        Some(p) => p,
        None => match Paths::from_env() {
            Ok(p) => p.config_file,
            Err(e) => {
                eprintln!("skillsyncctl: {e}");
                return ExitCode::from(2);
            }
        },
    };
    match Config::load(&path) {
        Ok(c) => {
            println!(
                "{}: ok ({} skills, {} targets)",
                path.display(),
                c.skills.len(),
                c.targets.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
