//! `skillsyncctl check`, `config show`, `config explain NAME` and
//! `status --config`: the config, loaded and rendered offline.
//!
//! Reads the config files only: nothing here talks to the daemon or
//! writes a file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use skillsyncd::config::{self, Config, LoadOptions};
use skillsyncd::daemon;
use skillsyncd::paths::Paths;

use crate::render::{plural, print_out, table, Cell, Color, Style};
use crate::{EXIT_CONFIG, EXIT_FAILED};

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
pub(crate) fn check(config: Option<&Path>) -> ExitCode {
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
pub(crate) fn show_config(config: Option<&Path>, explain: Option<&str>) -> ExitCode {
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
