//! `skillsyncd`: keeps agents' skill folders in sync with skill images.
//!
//! `skillsyncd --once` runs one pass and exits (0 in sync, 1 a skill failed,
//! 2 config error); without `--once` it runs as a daemon with a control
//! socket until SIGTERM or SIGINT, reloading its config on edits and SIGHUP.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use skillsyncd::control::client;
use skillsyncd::daemon::{self, RunOptions};
use skillsyncd::lock::InstanceLock;
use skillsyncd::logging::{self, LogFormat};
use skillsyncd::paths::Paths;
use skillsyncd::reconcile::{Engine, SkillState};

/// Keeps AI agents' skill folders in sync with skill images in OCI registries.
#[derive(Parser)]
#[command(
    version,
    after_help = "Examples:\n  \
    skillsyncd --once                        one pass with ~/.config/skillsync/skills.toml, then exit\n  \
    skillsyncd                               run as a daemon (see systemd/skillsyncd.service)\n  \
    skillsyncd --config team.toml --once     another config\n  \
    RUST_LOG=skillsyncd=debug skillsyncd     more detail\n\n\
    Exit status of --once: 0 every skill in sync, 1 a skill failed, 2 config error."
)]
struct Args {
    /// The config file [default: $XDG_CONFIG_HOME/skillsync/skills.toml].
    #[arg(long, short, env = "SKILLSYNC_CONFIG")]
    config: Option<PathBuf>,
    /// The control socket [default: $XDG_RUNTIME_DIR/skillsyncd.sock, or
    /// [daemon] socket].
    #[arg(long, env = "SKILLSYNC_SOCKET")]
    socket: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Run one reconcile pass over every skill, then exit.
    #[arg(long)]
    once: bool,
    /// With --once: print what the pass would do (install, update,
    /// annotation-only, prune, restore, conflict) and change nothing.
    #[arg(long, requires = "once")]
    dry_run: bool,
}

fn main() -> ExitCode {
    skillsyncd::memory::limit_arenas();
    let args = Args::parse();
    logging::init(args.log_format);
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("skillsyncd: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    let paths = Paths::from_env().context("finding the config, state and cache directories")?;
    let config_path = args.config.unwrap_or_else(|| paths.config_file.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // Remote includes and collections are brought up to date first (a dry
    // run uses the cached copies, writing nothing).
    let config = match runtime.block_on(daemon::load_config(&config_path, &paths, !args.dry_run)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    for source in daemon::config_sources(&config) {
        if let Some(e) = &source.error {
            tracing::warn!("{} {}: {e}", source.kind, source.name);
        }
    }
    let dirs = paths.clone().with_dirs(
        config.daemon.state_dir.as_deref(),
        config.daemon.cache_dir.as_deref(),
    );
    let socket = client::socket_path(
        args.socket.as_deref(),
        config.daemon.socket.as_deref(),
        &dirs,
    );
    if args.dry_run {
        // Reads only: no lock, no crash repair, nothing written.
        return runtime.block_on(async move {
            let engine = Engine::new(config, &dirs.state_dir, &dirs.cache_dir)?
                .dry_run()
                .await?;
            Ok(once(&engine).await)
        });
    }
    // One skillsyncd per state dir, `--once` included: two would clean up
    // each other's installs.
    let _lock = InstanceLock::acquire(&dirs.state_dir)?;
    runtime.block_on(async move {
        let engine = daemon::start_engine(config, &paths)?;
        if args.once {
            return Ok(once(&engine).await);
        }
        let options = RunOptions {
            config_path,
            socket,
        };
        daemon::run(engine, &paths, options, shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

async fn once(engine: &Engine) -> ExitCode {
    match engine.prune().await {
        Ok(events) => {
            for e in events {
                println!("{}", e.message);
            }
        }
        Err(e) => eprintln!("error: removing skills no longer configured: {e}"),
    }
    let reports = daemon::pass(engine).await;
    let mut failed = 0;
    for r in &reports {
        for c in &r.changes {
            println!("{c}");
        }
        if let Some(v) = r
            .verification
            .as_deref()
            .filter(|v| r.state == SkillState::InSync && v.starts_with("verified"))
        {
            println!("{} {} {v}", r.name, r.version.as_deref().unwrap_or(""));
        }
        match r.state {
            SkillState::InSync => {
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
                for t in &r.targets {
                    if let Some(e) = t
                        .error
                        .as_deref()
                        .filter(|e| Some(*e) != r.error.as_deref())
                    {
                        eprintln!("  {}: {e}", t.name);
                    }
                }
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} skills failed", reports.len());
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is
/// called, before the daemon starts answering on its socket, so a signal
/// sent as soon as it answers stops it cleanly instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        match handlers {
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
}
