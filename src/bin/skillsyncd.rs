//! `skillsyncd`: keeps agents' skill folders in sync with skill images.
//!
//! `skillsyncd --once` runs one pass and exits (0 in sync, 1 a skill failed,
//! 2 config error); without `--once` it runs as a daemon until SIGTERM or
//! SIGINT.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use skillsyncd::config::Config;
use skillsyncd::daemon;
use skillsyncd::paths::Paths;
use skillsyncd::reconcile::SyncState;

/// Keeps AI agents' skill folders in sync with skill images in OCI registries.
#[derive(Parser)]
#[command(
    version,
    after_help = "Examples:\n  skillsyncd --once                       one pass with ~/.config/skillsync/skills.toml\n  skillsyncd --config team.toml           run as a daemon\n  RUST_LOG=skillsyncd=debug skillsyncd    more detail"
)]
struct Args {
    /// The config file [default: $XDG_CONFIG_HOME/skillsync/skills.toml].
    #[arg(long, short, env = "SKILLSYNC_CONFIG")]
    config: Option<PathBuf>,
    /// Run one reconcile pass over every skill, then exit.
    #[arg(long)]
    once: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("skillsyncd=info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("skillsyncd: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    let paths = Paths::from_env().context("finding the config, state and cache directories")?;
    let config_path = args.config.unwrap_or_else(|| paths.config_file.clone());
    let config = match Config::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let engine = daemon::start_engine(config, &paths)?;
        if args.once {
            let reports = daemon::pass(&engine).await;
            let mut failed = 0;
            for r in &reports {
                for c in &r.changes {
                    println!("{c}");
                }
                match r.state {
                    SyncState::InSync => {
                        if r.changes.is_empty() {
                            println!(
                                "{} {} is up to date",
                                r.name,
                                r.version.as_deref().unwrap_or("")
                            );
                        }
                    }
                    _ => {
                        failed += 1;
                        eprintln!(
                            "error: {}: {}",
                            r.name,
                            r.error.as_deref().unwrap_or("not in sync")
                        );
                    }
                }
            }
            if failed > 0 {
                eprintln!("{failed} of {} skills failed", reports.len());
                return Ok(ExitCode::from(1));
            }
            return Ok(ExitCode::SUCCESS);
        }
        daemon::run(engine, shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
