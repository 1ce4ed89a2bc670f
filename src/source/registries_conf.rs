//! The containers `registries.conf` (v2 format): a company's mirror setup
//! for podman and skopeo, honoured by skillsyncd too.
//!
//! # Which files
//!
//! As containers/image reads them: `$XDG_CONFIG_HOME/containers/registries.conf`
//! (`~/.config/...`) when it exists, else `/etc/containers/registries.conf`;
//! then the drop-ins of `registries.conf.d/` beside the file that was used
//! and the user's own, in name order, each `[[registry]]` of a later file
//! replacing the entry of an earlier one with the same prefix.
//! `$SKILLSYNC_REGISTRIES_CONF` names one file to read instead of all of
//! them (empty: none).
//!
//! # What is honoured
//!
//! `[[registry]]` tables with `prefix` (or `location` when there is no
//! prefix), `location`, `insecure`, `blocked`, `mirror-by-digest-only`, and
//! their `[[registry.mirror]]` tables with `location`, `insecure` and
//! `pull-from-mirror` (`all`, `digest-only`, `tag-only`). A prefix is a host
//! or a host and namespace (`quay.io/acme`); wildcard prefixes
//! (`*.example.com`) are not supported and are skipped with a warning.
//! Everything else (`unqualified-search-registries`, `[aliases]`,
//! `short-name-mode`, credential helpers) concerns short names and logins
//! and does not apply to the fully qualified images skills.toml names.
//!
//! A skills.toml `[registries."HOST"] mirrors = [...]` list replaces what
//! registries.conf says about that host.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where pulls of one prefix go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `host[:port]` or `host[:port]/namespace`.
    pub prefix: String,
    /// Where the prefix is pulled from (`host[:port][/namespace]`); the
    /// prefix itself unless rewritten.
    pub location: String,
    /// Tried in order before `location`.
    pub mirrors: Vec<Mirror>,
    /// Pulls of this prefix are refused.
    pub blocked: bool,
    /// `location` is spoken to over plain HTTP.
    pub insecure: bool,
}

/// One mirror of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// `host[:port][/namespace]`.
    pub location: String,
    /// Plain HTTP.
    pub insecure: bool,
    /// Which requests the mirror serves.
    pub pull: PullFrom,
}

/// `pull-from-mirror`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullFrom {
    /// Tag and digest requests.
    #[default]
    All,
    /// Only requests by digest (manifests and blobs).
    DigestOnly,
    /// Only requests by tag (tag lists and HEADs of tags).
    TagOnly,
}

impl PullFrom {
    /// Whether a mirror with this setting serves a request `by_digest`.
    pub fn serves(self, by_digest: bool) -> bool {
        match self {
            PullFrom::All => true,
            PullFrom::DigestOnly => by_digest,
            PullFrom::TagOnly => !by_digest,
        }
    }
}

/// A registries.conf that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct RegistriesConfError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong (with line and column for syntax errors).
    pub reason: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct File {
    #[serde(default)]
    registry: Vec<RawRegistry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawRegistry {
    prefix: Option<String>,
    location: Option<String>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    mirror_by_digest_only: bool,
    #[serde(default)]
    mirror: Vec<RawMirror>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawMirror {
    location: String,
    #[serde(default)]
    insecure: bool,
    pull_from_mirror: Option<String>,
}

/// Parses one file's `[[registry]]` entries.
pub fn parse(text: &str, path: &Path) -> Result<Vec<Route>, RegistriesConfError> {
    let err = |reason: String| RegistriesConfError {
        path: path.to_path_buf(),
        reason,
    };
    let file: File = toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| {
                let before = &text[..s.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!("line {line}, column {col}: ")
            })
            .unwrap_or_default();
        err(format!("{at}{}", e.message()))
    })?;
    let mut out = Vec::new();
    for r in file.registry {
        let Some(prefix) = r.prefix.clone().or_else(|| r.location.clone()) else {
            return Err(err("a [[registry]] has neither prefix nor location".into()));
        };
        let prefix = clean(&prefix);
        if prefix.starts_with("*.") {
            tracing::warn!(file = %path.display(), prefix, "wildcard registry prefixes are not supported; entry skipped");
            continue;
        }
        if prefix.is_empty() || prefix.contains(['@', ' ']) {
            return Err(err(format!(
                "registry prefix {prefix:?} is not a host or host/namespace"
            )));
        }
        let mut mirrors = Vec::new();
        for m in r.mirror {
            let pull = match m.pull_from_mirror.as_deref() {
                None | Some("") | Some("all") => {
                    if r.mirror_by_digest_only {
                        PullFrom::DigestOnly
                    } else {
                        PullFrom::All
                    }
                }
                Some("digest-only") => PullFrom::DigestOnly,
                Some("tag-only") => PullFrom::TagOnly,
                Some(other) => {
                    return Err(err(format!(
                        "mirror {}: pull-from-mirror {other:?} is not all, digest-only or tag-only",
                        m.location
                    )))
                }
            };
            mirrors.push(Mirror {
                location: clean(&m.location),
                insecure: m.insecure,
                pull,
            });
        }
        out.push(Route {
            location: r.location.as_deref().map(clean).unwrap_or(prefix.clone()),
            prefix,
            mirrors,
            blocked: r.blocked,
            insecure: r.insecure,
        });
    }
    Ok(out)
}

/// A location without a scheme or trailing slash.
fn clean(location: &str) -> String {
    let l = location.trim();
    let l = l
        .strip_prefix("https://")
        .or_else(|| l.strip_prefix("http://"))
        .unwrap_or(l);
    l.trim_end_matches('/').to_string()
}

/// The files read, in order, as described in the [module docs](self).
pub fn files(
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
    home: &Path,
    system_dir: &Path,
) -> Vec<PathBuf> {
    if let Some(one) = env("SKILLSYNC_REGISTRIES_CONF") {
        return if one.is_empty() {
            Vec::new()
        } else {
            vec![PathBuf::from(one)]
        };
    }
    let user_dir = env("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".config"))
        .join("containers");
    let user = user_dir.join("registries.conf");
    let main = if user.is_file() {
        user
    } else {
        system_dir.join("registries.conf")
    };
    let mut out = vec![main];
    let mut dropins = Vec::new();
    for dir in [
        system_dir.join("registries.conf.d"),
        user_dir.join("registries.conf.d"),
    ] {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "conf"))
                .collect();
            files.sort();
            dropins.extend(files);
        }
    }
    out.extend(dropins);
    out
}

/// Reads `files` (missing ones are skipped); a later entry with the same
/// prefix replaces an earlier one.
pub fn load(files: &[PathBuf]) -> Result<Vec<Route>, RegistriesConfError> {
    let mut routes: Vec<Route> = Vec::new();
    for path in files {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(RegistriesConfError {
                    path: path.clone(),
                    reason: e.to_string(),
                })
            }
        };
        for route in parse(&text, path)? {
            routes.retain(|r| r.prefix != route.prefix);
            routes.push(route);
        }
    }
    Ok(routes)
}

/// The route with the longest prefix matching `registry/repository`.
pub fn route_for<'a>(routes: &'a [Route], registry: &str, repository: &str) -> Option<&'a Route> {
    let name = format!("{registry}/{repository}");
    routes
        .iter()
        .filter(|r| {
            name == r.prefix
                || name
                    .strip_prefix(r.prefix.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|r| r.prefix.len())
}

/// `registry/repository` with `route.prefix` replaced by `location`:
/// the registry and repository to ask there.
pub fn rewrite(prefix: &str, location: &str, registry: &str, repository: &str) -> (String, String) {
    let name = format!("{registry}/{repository}");
    let rest = name.strip_prefix(prefix).unwrap_or(&name);
    let full = format!("{location}{rest}");
    match full.split_once('/') {
        Some((host, repo)) => (host.to_string(), repo.to_string()),
        None => (full, repository.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = r#"
unqualified-search-registries = ["docker.io"]

[[registry]]
prefix = "quay.io"
location = "quay.io"
[[registry.mirror]]
location = "mirror.corp:5000"
insecure = true
[[registry.mirror]]
location = "https://cache.corp/quay"
pull-from-mirror = "digest-only"

[[registry]]
location = "ghcr.io"
mirror-by-digest-only = true
[[registry.mirror]]
location = "ghcr-cache.corp"

[[registry]]
prefix = "quay.io/acme"
location = "internal.corp/acme-skills"
blocked = false

[[registry]]
prefix = "*.example.com"
location = "x.corp"

[aliases]
"fedora" = "registry.fedoraproject.org/fedora"
"#;

    #[test]
    fn parses_the_v2_format() {
        let routes = parse(CONF, Path::new("/etc/containers/registries.conf")).unwrap();
        assert_eq!(routes.len(), 3, "the wildcard entry is skipped");
        assert_eq!(routes[0].prefix, "quay.io");
        assert_eq!(
            routes[0].mirrors,
            vec![
                Mirror {
                    location: "mirror.corp:5000".into(),
                    insecure: true,
                    pull: PullFrom::All
                },
                Mirror {
                    location: "cache.corp/quay".into(),
                    insecure: false,
                    pull: PullFrom::DigestOnly
                },
            ]
        );
        assert_eq!(routes[1].prefix, "ghcr.io");
        assert_eq!(routes[1].mirrors[0].pull, PullFrom::DigestOnly);
        assert_eq!(routes[2].location, "internal.corp/acme-skills");
    }

    #[test]
    fn longest_prefix_wins_and_rewrites() {
        let routes = parse(CONF, Path::new("r.conf")).unwrap();
        let r = route_for(&routes, "quay.io", "acme/review").unwrap();
        assert_eq!(r.prefix, "quay.io/acme");
        assert_eq!(
            rewrite(&r.prefix, &r.location, "quay.io", "acme/review"),
            (
                "internal.corp".to_string(),
                "acme-skills/review".to_string()
            )
        );
        let r = route_for(&routes, "quay.io", "acmex/review").unwrap();
        assert_eq!(r.prefix, "quay.io");
        assert_eq!(
            rewrite(&r.prefix, "cache.corp/quay", "quay.io", "acmex/review"),
            ("cache.corp".to_string(), "quay/acmex/review".to_string())
        );
        assert!(route_for(&routes, "docker.io", "x/y").is_none());
        assert!(route_for(&routes, "quay.io:443", "x/y").is_none());
    }

    #[test]
    fn pull_from_mirror() {
        assert!(PullFrom::All.serves(true) && PullFrom::All.serves(false));
        assert!(PullFrom::DigestOnly.serves(true) && !PullFrom::DigestOnly.serves(false));
        assert!(!PullFrom::TagOnly.serves(true) && PullFrom::TagOnly.serves(false));
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = parse("[[registry]]\nprefix = \n", Path::new("/x/registries.conf")).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("/x/registries.conf: line 2"), "{text}");
        let e = parse(
            "[[registry]]\nlocation = \"a\"\n[[registry.mirror]]\nlocation = \"b\"\npull-from-mirror = \"sometimes\"\n",
            Path::new("r.conf"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("pull-from-mirror"), "{e}");
        let e = parse("[[registry]]\ninsecure = true\n", Path::new("r.conf")).unwrap_err();
        assert!(e.to_string().contains("neither prefix nor location"), "{e}");
    }

    #[test]
    fn user_file_hides_the_system_one_and_dropins_follow() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let system = tmp.path().join("etc");
        std::fs::create_dir_all(system.join("registries.conf.d")).unwrap();
        std::fs::write(system.join("registries.conf"), "").unwrap();
        std::fs::write(system.join("registries.conf.d/b.conf"), "").unwrap();
        std::fs::write(system.join("registries.conf.d/a.conf"), "").unwrap();
        std::fs::write(system.join("registries.conf.d/skip.txt"), "").unwrap();
        let none = |_: &str| None;
        assert_eq!(
            files(none, &home, &system),
            vec![
                system.join("registries.conf"),
                system.join("registries.conf.d/a.conf"),
                system.join("registries.conf.d/b.conf"),
            ]
        );
        let user = home.join(".config/containers");
        std::fs::create_dir_all(&user).unwrap();
        std::fs::write(user.join("registries.conf"), "").unwrap();
        assert_eq!(files(none, &home, &system)[0], user.join("registries.conf"));
        let one = |k: &str| (k == "SKILLSYNC_REGISTRIES_CONF").then(|| "/one.conf".into());
        assert_eq!(files(one, &home, &system), vec![PathBuf::from("/one.conf")]);
    }

    #[test]
    fn later_files_replace_entries_by_prefix() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a.conf");
        let b = tmp.path().join("b.conf");
        std::fs::write(
            &a,
            "[[registry]]\nlocation = \"r\"\n[[registry.mirror]]\nlocation = \"m1\"\n",
        )
        .unwrap();
        std::fs::write(
            &b,
            "[[registry]]\nlocation = \"r\"\n[[registry.mirror]]\nlocation = \"m2\"\n",
        )
        .unwrap();
        let routes = load(&[a, tmp.path().join("missing.conf"), b]).unwrap();
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].mirrors[0].location, "m2");
    }
}
