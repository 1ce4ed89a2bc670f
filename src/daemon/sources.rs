//! Where the running config came from, for status and `--check`:
//! included files, remote includes and collections. Reads the config's
//! layers only; fetches nothing.

use crate::config::Config;
use crate::control::protocol::ConfigSource;

/// Included files, remote includes and collections, for status.
pub fn config_sources(config: &Config) -> Vec<ConfigSource> {
    let mut out = Vec::new();
    for f in config.layers.files.iter().filter(|f| **f != config.path) {
        out.push(ConfigSource {
            kind: "file".into(),
            name: f.display().to_string(),
            detail: None,
            error: None,
        });
    }
    let copy = |c: &Option<crate::config::layers::CachedCopy>| {
        c.as_ref().map(|c| {
            format!(
                "copy of {} fetched {}",
                c.digest.get(..19).unwrap_or(&c.digest),
                c.fetched_at
            )
        })
    };
    // A failed refresh over a cached copy: that copy is in force.
    let problems = |refresh: &Option<String>,
                    cached: &Option<crate::config::layers::CachedCopy>,
                    other: &Option<String>| {
        let mut parts = Vec::new();
        match (refresh, cached) {
            (Some(e), Some(c)) => parts.push(format!(
                "refresh failed: {e}; using cached copy from {}",
                c.fetched_at
            )),
            (Some(e), None) => parts.push(format!("refresh failed: {e}")),
            _ => {}
        }
        parts.extend(other.clone());
        (!parts.is_empty()).then(|| parts.join("\n"))
    };
    for r in &config.layers.remote {
        out.push(ConfigSource {
            kind: "remote".into(),
            name: r.reference.clone(),
            detail: copy(&r.cached),
            error: problems(&r.refresh_error, &r.cached, &r.error),
        });
    }
    for c in &config.layers.collections {
        let mut detail = Vec::new();
        if let Some(v) = &c.version {
            detail.push(v.clone());
        }
        if let Some(copy) = copy(&c.cached) {
            detail.push(copy);
        }
        if c.cached.is_some() {
            detail.push(format!("skills: {}", c.skills.join(", ")));
        }
        out.push(ConfigSource {
            kind: "collection".into(),
            name: format!("{} ({})", c.name, c.image),
            detail: (!detail.is_empty()).then(|| detail.join("; ")),
            error: problems(&c.refresh_error, &c.cached, &c.error),
        });
    }
    out
}
