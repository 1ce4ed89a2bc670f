//! Layered configuration: a system file, the user's file, the files they
//! include (local, globbed, or published as OCI artifacts), merged key by
//! key before validation.
//!
//! # Layers
//!
//! The system file ([`SYSTEM_CONFIG`], or `$SKILLSYNC_SYSTEM_CONFIG`; an
//! empty value reads none) is the bottom layer, the user's file the top.
//! Each file's `include = [...]` names files beneath it: relative to the
//! including file, `~` expanded, a `*` or `?` in the file name matching
//! sorted, `oci://HOST/REPO:TAG` a remote fragment. A file's includes are
//! one layer (siblings: a skill defined in two of them is an error naming
//! both places); the including file overrides them key by key, as the user's
//! file overrides the system's.
//!
//! Overriding is per key: `[skills.x] targets = [...]` in a later layer
//! replaces that key and keeps the others. The keys that choose a version
//! move together: a layer that sets `tag` or `digest` drops the lower
//! layers' `channel`, `version`, `tag` and `digest`; one that sets `channel`
//! or `version` drops their `tag` and `digest`. `enabled = false` switches
//! a skill (or a collection) off.
//!
//! # Positions
//!
//! Every file is parsed with positions ([`toml::de::DeTable`]); each file
//! gets its own range of offsets in one [`SourceMap`], so the merged
//! document is validated once and every problem still names its file, line
//! and column.
//!
//! # Remote fragments
//!
//! A remote fragment may only add or override `[skills.*]` and
//! `[collections.*]`, without `adopt`; it is read from the last good copy
//! in the cache (see [`crate::config::remote`]). A fragment that breaks the rules,
//! or a skill in it that does not validate, is left out and reported in
//! status; the rest of the config keeps working.
//!
//! It reads files and the team cache but fetches nothing, and checks no
//! rule beyond how files merge: the merged document goes to
//! `Config::check_merged`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::config::remote::{parse_remote, TeamCache};
use crate::config::{Config, ConfigError, Diagnostic, SourceMap};
use crate::paths::expand_tilde;

/// What the layers of a config are recorded as, where they were first
/// defined.
pub use crate::config::{CachedCopy, CollectionInfo, Layers, RemoteInclude, Setting, SkillOrigin};

/// The system-wide config, read before the user's.
pub const SYSTEM_CONFIG: &str = "/etc/skillsync/skills.toml";
/// Environment variable naming another system config (empty: none).
pub const ENV_SYSTEM_CONFIG: &str = "SKILLSYNC_SYSTEM_CONFIG";
/// The scheme of a remote include.
pub const REMOTE_SCHEME: &str = "oci://";
/// How deep includes may nest.
pub const MAX_INCLUDE_DEPTH: usize = 8;
/// Most files one config may read.
pub const MAX_FILES: usize = 256;

/// Keys of `[skills.X]` that choose a version.
const SELECTOR_KEYS: &[&str] = &["channel", "version", "tag", "digest"];
/// Top-level tables a remote fragment may set.
const REMOTE_SECTIONS: &[&str] = &["skills", "collections"];

/// A file and the files it includes.
struct Node {
    /// Index in the source map.
    file: usize,
    /// Its includes, in order (siblings).
    includes: Vec<Node>,
    /// For a remote fragment: its index in [`Layers::remote`].
    remote: Option<usize>,
}

/// Discovery: reads every file, follows includes.
struct Loader<'a> {
    home: &'a Path,
    team_cache: Option<&'a Path>,
    sources: SourceMap,
    diagnostics: Vec<Diagnostic>,
    layers: Layers,
}

impl Loader<'_> {
    fn error_at(&mut self, offset: usize, message: impl Into<String>) {
        let d = self
            .sources
            .diagnostic(offset, message.into(), Path::new(""));
        self.diagnostics.push(d);
    }

    /// Reads a local file and, recursively, its includes.
    fn file(&mut self, path: &Path, stack: &mut Vec<PathBuf>) -> Result<Node, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        self.layers.files.push(path.to_path_buf());
        self.layers.watch.push(path.to_path_buf());
        let index = self.sources.add(
            path.to_path_buf(),
            text,
            path.parent().map(Path::to_path_buf),
            false,
        );
        let base = self.sources.files()[index].base;
        let includes = match DeTable::parse(&self.sources.files()[index].text) {
            Ok(table) => include_list(table.get_ref(), base),
            // Reported when the file is merged.
            Err(_) => Ok(Vec::new()),
        };
        let includes = match includes {
            Ok(list) => list,
            Err(at) => {
                self.error_at(at, "`include` must be an array of strings: include = [\"team.toml\", \"oci://HOST/REPO:TAG\"]");
                Vec::new()
            }
        };
        stack.push(path.to_path_buf());
        let mut children = Vec::new();
        for (item, span) in includes {
            if let Some(reference) = item.strip_prefix(REMOTE_SCHEME) {
                children.extend(self.remote(reference, &item, span.start));
                continue;
            }
            for file in self.expand(&item, index, span.start) {
                if stack.contains(&file) {
                    self.error_at(
                        span.start,
                        format!(
                            "include {item:?} includes {} again (a cycle)",
                            file.display()
                        ),
                    );
                } else if stack.len() >= MAX_INCLUDE_DEPTH {
                    self.error_at(
                        span.start,
                        format!(
                            "include {item:?}: includes nest deeper than {MAX_INCLUDE_DEPTH} files"
                        ),
                    );
                } else if self.sources.files().len() >= MAX_FILES {
                    self.error_at(
                        span.start,
                        format!("include {item:?}: more than {MAX_FILES} files"),
                    );
                } else {
                    match self.file(&file, stack) {
                        Ok(node) => children.push(node),
                        Err(ConfigError::Read { path, source }) => self.error_at(
                            span.start,
                            format!("include {item:?}: cannot read {}: {source}", path.display()),
                        ),
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        stack.pop();
        Ok(Node {
            file: index,
            includes: children,
            remote: None,
        })
    }

    /// The files an include names: one file, or the sorted matches of a
    /// pattern in its file name.
    fn expand(&mut self, item: &str, file: usize, at: usize) -> Vec<PathBuf> {
        let mut path = expand_tilde(Path::new(item), self.home);
        if path.is_relative() {
            if let Some(dir) = &self.sources.files()[file].dir {
                path = dir.join(path);
            }
        }
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
        else {
            self.error_at(at, format!("include {item:?} names no file"));
            return Vec::new();
        };
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if dir.to_string_lossy().contains(['*', '?']) {
            self.error_at(
                at,
                format!(
                    "include {item:?}: only the file name may hold `*` or `?`, not a directory"
                ),
            );
            return Vec::new();
        }
        if !name.contains(['*', '?']) {
            return vec![path];
        }
        self.layers.watch.push(path.clone());
        let mut found: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .filter(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    !n.starts_with('.') && wildcard_match(&name, &n)
                })
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect(),
            // A pattern in a missing directory matches nothing.
            Err(_) => Vec::new(),
        };
        found.sort();
        found
    }

    /// A remote include: its last good copy from the cache.
    fn remote(&mut self, reference: &str, item: &str, at: usize) -> Option<Node> {
        self.sources.open = true;
        let (image, selector) = match parse_remote(reference) {
            Ok(x) => x,
            Err(why) => {
                self.error_at(at, format!("include {item:?}: {why}"));
                return None;
            }
        };
        let index = self.layers.remote.len();
        let mut remote = RemoteInclude {
            reference: item.to_string(),
            image,
            selector,
            included_from: self.sources.describe(at),
            cached: None,
            refresh_error: None,
            error: None,
        };
        let record = self.team_cache.map(|dir| TeamCache::new(dir).read(item));
        let text = match record {
            None => None,
            Some(Ok(r)) => {
                remote.refresh_error = r.last_error.clone();
                match (r.content, r.digest, r.fetched_at) {
                    (Some(content), Some(digest), Some(fetched_at)) => {
                        remote.cached = Some(CachedCopy { digest, fetched_at });
                        Some(content)
                    }
                    _ => None,
                }
            }
            Some(Err(e)) => {
                remote.error = Some(e.to_string());
                None
            }
        };
        let text = match text {
            Some(t) => t,
            None => {
                if remote.error.is_none() && remote.refresh_error.is_none() {
                    remote.error = Some("not fetched yet".into());
                }
                self.layers.remote.push(remote);
                return None;
            }
        };
        self.layers.remote.push(remote);
        let file = self.sources.add(PathBuf::from(item), text, None, true);
        Some(Node {
            file,
            includes: Vec::new(),
            remote: Some(index),
        })
    }
}

/// The `include` entries of a file (strings with their spans, offsets
/// shifted by `base`), or the offset of a malformed one.
fn include_list(table: &DeTable<'_>, base: usize) -> Result<Vec<(String, Range<usize>)>, usize> {
    let Some(value) = table.get("include") else {
        return Ok(Vec::new());
    };
    let shift = |s: Range<usize>| s.start + base..s.end + base;
    let DeValue::Array(items) = value.get_ref() else {
        return Err(value.span().start + base);
    };
    items
        .iter()
        .map(|i| match i.get_ref() {
            DeValue::String(s) => Ok((s.to_string(), shift(i.span()))),
            _ => Err(i.span().start + base),
        })
        .collect()
}

/// `*` (any run) and `?` (one character) against a file name.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Loads `path` with the layers around it (see the module docs), the
/// system file first when there is one; remote includes are read from
/// `team_cache` (none without it). Collections are left to
/// [`crate::config::collection`].
pub(crate) fn load(
    path: &Path,
    home: &Path,
    system: Option<&Path>,
    team_cache: Option<&Path>,
) -> Result<Config, ConfigError> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut loader = Loader {
        home,
        team_cache,
        sources: SourceMap::default(),
        diagnostics: Vec::new(),
        layers: Layers::default(),
    };
    let mut roots = Vec::new();
    if let Some(system) = system {
        let system = std::path::absolute(system).unwrap_or_else(|_| system.to_path_buf());
        if system != path && system.is_file() {
            roots.push(loader.file(&system, &mut Vec::new())?);
        } else {
            // Created later, it is picked up by a reload.
            loader.layers.watch.push(system);
        }
    }
    roots.push(loader.file(&path, &mut Vec::new())?);
    let Loader {
        sources,
        mut diagnostics,
        mut layers,
        ..
    } = loader;

    let mut merger = Merger {
        sources: &sources,
        diagnostics: &mut diagnostics,
        remote: &mut layers.remote,
    };
    let mut merged = DeTable::new();
    for root in &roots {
        let layer = merger.node(root);
        merged = merger.overlay(merged, layer);
    }
    let explain = explain(&merged, &sources);
    let (config, check_diagnostics) = Config::check_merged(merged, &sources, &path, home);

    // Problems in a remote fragment leave that part out; the rest works.
    for d in check_diagnostics {
        let remote = sources.files().iter().any(|f| f.remote && f.name == d.path);
        match layers
            .remote
            .iter_mut()
            .find(|r| remote && Path::new(&r.reference) == d.path)
        {
            Some(r) => {
                let e = r.error.get_or_insert_with(String::new);
                if !e.is_empty() {
                    e.push('\n');
                }
                e.push_str(&d.to_string());
            }
            None => diagnostics.push(d),
        }
    }
    let mut config = match config {
        Some(c) if diagnostics.is_empty() => c,
        _ => {
            diagnostics
                .sort_by(|a, b| (&a.path, a.line, a.column).cmp(&(&b.path, b.line, b.column)));
            diagnostics.dedup();
            return Err(ConfigError::Invalid(diagnostics));
        }
    };
    layers.disabled = std::mem::take(&mut config.layers.disabled);
    layers.pending = std::mem::take(&mut config.layers.pending);
    layers.origins = explain
        .into_iter()
        .filter(|(name, _)| config.skills.contains_key(name))
        .collect();
    config.layers = layers;
    Ok(config)
}

/// Per skill: its definition and every setting's position, from the
/// merged document.
fn explain(merged: &DeTable<'_>, sources: &SourceMap) -> BTreeMap<String, SkillOrigin> {
    let mut out = BTreeMap::new();
    let Some(DeValue::Table(skills)) = merged.get("skills").map(|v| v.get_ref()) else {
        return out;
    };
    for (name, entry) in skills.iter() {
        let DeValue::Table(settings) = entry.get_ref() else {
            continue;
        };
        out.insert(
            name.get_ref().to_string(),
            SkillOrigin {
                defined_at: sources.describe(name.span().start),
                settings: settings
                    .iter()
                    .map(|(k, v)| Setting {
                        key: k.get_ref().to_string(),
                        value: sources.snippet(v.span()),
                        at: sources.describe(v.span().start),
                    })
                    .collect(),
            },
        );
    }
    out
}

/// How a top-level table merges.
#[derive(Clone, Copy, PartialEq)]
enum Section {
    /// `[skills]`, `[collections]`: entries defined once per layer,
    /// overridden key by key, the version keys together.
    Entries,
    /// `[registries]`, `[targets]`: entries whose keys are set once per
    /// layer and overridden one by one.
    Nested,
    /// `[daemon]`, `[defaults]` and anything else: plain keys.
    Plain,
}

fn section(name: &str) -> Section {
    match name {
        "skills" | "collections" => Section::Entries,
        "registries" | "targets" => Section::Nested,
        _ => Section::Plain,
    }
}

/// Merging: parses each file, shifts its offsets, combines the layers.
struct Merger<'s, 'd> {
    sources: &'s SourceMap,
    diagnostics: &'d mut Vec<Diagnostic>,
    remote: &'d mut Vec<RemoteInclude>,
}

impl<'s> Merger<'s, '_> {
    fn error_at(&mut self, offset: usize, message: impl Into<String>) {
        let d = self
            .sources
            .diagnostic(offset, message.into(), Path::new(""));
        self.diagnostics.push(d);
    }

    /// A file over its includes.
    fn node(&mut self, node: &Node) -> DeTable<'s> {
        let mut below = DeTable::new();
        for child in &node.includes {
            let layer = self.node(child);
            below = self.siblings(below, layer);
        }
        let own = self.parse(node);
        self.overlay(below, own)
    }

    /// One file, parsed, its offsets shifted into the source map; a
    /// remote fragment checked against what it may set.
    fn parse(&mut self, node: &Node) -> DeTable<'s> {
        let file = &self.sources.files()[node.file];
        let table = match DeTable::parse(&file.text) {
            Ok(t) => shift_table(t.into_inner(), file.base),
            Err(e) => {
                let offset = e.span().map_or(0, |s| s.start) + file.base;
                let message = e.message().trim_end().to_string();
                match node.remote {
                    Some(i) => self.reject(i, offset, &message),
                    None => self.error_at(offset, message),
                }
                return DeTable::new();
            }
        };
        let mut table = table;
        match node.remote {
            Some(i) => match self.check_remote(&table) {
                Ok(()) => table,
                Err((offset, message)) => {
                    self.reject(i, offset, &message);
                    DeTable::new()
                }
            },
            None => {
                table.remove("include");
                table
            }
        }
    }

    /// Records why remote fragment `i` was left out.
    fn reject(&mut self, i: usize, offset: usize, message: &str) {
        let at = self.sources.describe(offset);
        if let Some(r) = self.remote.get_mut(i) {
            r.error = Some(format!(
                "{at}: {message}; the fragment is ignored, the rest of the config is in force"
            ));
        }
    }

    /// What a remote fragment may not do: set anything but skills and
    /// collections, include, adopt local folders; or not have the shape
    /// of a config.
    fn check_remote(&self, table: &DeTable<'s>) -> Result<(), (usize, String)> {
        for (key, value) in table.iter() {
            let name = key.get_ref();
            if name == "include" {
                return Err((
                    key.span().start,
                    "a remote file cannot include other files".into(),
                ));
            }
            if !REMOTE_SECTIONS.contains(&name.as_ref()) {
                let what = match name.as_ref() {
                    "daemon" => "[daemon] settings",
                    "registries" => "registry settings (credentials, insecure, mirrors, CA files, layouts)",
                    "targets" => "targets (a folder path); name built-in targets or ones your own config defines",
                    "defaults" => "[defaults]",
                    "repositories" => "signature policies ([repositories.*])",
                    _ => "this",
                };
                return Err((
                    key.span().start,
                    format!("a remote file may only set [skills.*] and [collections.*], not {what} ([{name}])"),
                ));
            }
            if let DeValue::Table(entries) = value.get_ref() {
                for (_, entry) in entries.iter() {
                    if let DeValue::Table(keys) = entry.get_ref() {
                        for (k, _) in keys.iter() {
                            let why = match k.get_ref().as_ref() {
                                "path" | "auth_file" | "ca_file" | "layout" | "state_dir"
                                | "cache_dir" | "socket" => "a filesystem path",
                                "adopt" => "taking over local folders (`adopt`)",
                                "verify" => "the signature policy (`verify`), which only your own config decides",
                                _ => continue,
                            };
                            return Err((
                                k.span().start,
                                format!("a remote file cannot set {why}: `{}`", k.get_ref()),
                            ));
                        }
                    }
                }
            }
        }
        Config::check_shape(table.clone()).map_err(|e| {
            (
                e.span().map_or(0, |s| s.start),
                e.message().trim_end().to_string(),
            )
        })
    }

    /// Two includes of the same file: each key may be set by one of them.
    fn siblings(&mut self, mut a: DeTable<'s>, b: DeTable<'s>) -> DeTable<'s> {
        for (key, value) in b {
            let kind = section(key.get_ref());
            let Some((old_key, old)) = take(&mut a, &key) else {
                a.insert(key, value);
                continue;
            };
            let span = old.span();
            match (old.into_inner(), value.into_inner()) {
                (DeValue::Table(mut o), DeValue::Table(n)) => {
                    for (name, entry) in n {
                        let Some((old_name, old_entry)) = take(&mut o, &name) else {
                            o.insert(name, entry);
                            continue;
                        };
                        match kind {
                            Section::Entries => {
                                let what = if key.get_ref() == "skills" {
                                    "skill"
                                } else {
                                    "collection"
                                };
                                self.duplicate(&old_name, &name, what);
                                o.insert(old_name, old_entry);
                            }
                            Section::Plain => {
                                self.duplicate(&old_name, &name, "setting");
                                o.insert(old_name, old_entry);
                            }
                            Section::Nested => {
                                let merged = self.nested_siblings(old_entry, entry);
                                o.insert(old_name, merged);
                            }
                        }
                    }
                    a.insert(old_key, Spanned::new(span, DeValue::Table(o)));
                }
                (o, _) => {
                    self.duplicate(&old_key, &key, "setting");
                    a.insert(old_key, Spanned::new(span, o));
                }
            }
        }
        a
    }

    fn nested_siblings(
        &mut self,
        old: Spanned<DeValue<'s>>,
        new: Spanned<DeValue<'s>>,
    ) -> Spanned<DeValue<'s>> {
        let span = old.span();
        match (old.into_inner(), new.into_inner()) {
            (DeValue::Table(mut o), DeValue::Table(n)) => {
                for (k, v) in n {
                    match take(&mut o, &k) {
                        None => {
                            o.insert(k, v);
                        }
                        Some((ok, ov)) => {
                            self.duplicate(&ok, &k, "setting");
                            o.insert(ok, ov);
                        }
                    }
                }
                Spanned::new(span, DeValue::Table(o))
            }
            (o, _) => Spanned::new(span, o),
        }
    }

    fn duplicate(
        &mut self,
        first: &Spanned<std::borrow::Cow<'s, str>>,
        second: &Spanned<std::borrow::Cow<'s, str>>,
        what: &str,
    ) {
        let here = self.sources.describe(first.span().start);
        let there = self.sources.describe(second.span().start);
        self.error_at(
            second.span().start,
            format!(
                "{what} {:?} is defined in two files of the same layer: {here} and {there}; keep one, or override it from the file that includes both",
                first.get_ref()
            ),
        );
    }

    /// `top` over `base`, key by key.
    fn overlay(&mut self, mut base: DeTable<'s>, top: DeTable<'s>) -> DeTable<'s> {
        for (key, value) in top {
            let kind = section(key.get_ref());
            let Some((old_key, old)) = take(&mut base, &key) else {
                base.insert(key, value);
                continue;
            };
            let span = old.span();
            let new_span = value.span();
            match (old.into_inner(), value.into_inner()) {
                (DeValue::Table(mut o), DeValue::Table(n)) => {
                    for (name, entry) in n {
                        match (take(&mut o, &name), kind) {
                            (None, _) | (Some(_), Section::Plain) => {
                                o.insert(name, entry);
                            }
                            (Some((old_name, old_entry)), _) => {
                                let merged =
                                    overlay_entry(old_entry, entry, kind == Section::Entries);
                                o.insert(old_name, merged);
                            }
                        }
                    }
                    base.insert(old_key, Spanned::new(span, DeValue::Table(o)));
                }
                (_, n) => {
                    base.insert(key, Spanned::new(new_span, n));
                }
            }
        }
        base
    }
}

/// One entry of `[skills]` (version keys together) or `[registries]`,
/// `[targets]` over another, key by key.
fn overlay_entry<'s>(
    old: Spanned<DeValue<'s>>,
    new: Spanned<DeValue<'s>>,
    selector_group: bool,
) -> Spanned<DeValue<'s>> {
    let span = old.span();
    match (old.into_inner(), new.into_inner()) {
        (DeValue::Table(mut o), DeValue::Table(n)) => {
            if selector_group {
                let sets = |k: &str| n.contains_key(k);
                let drop: &[&str] = if sets("tag") || sets("digest") {
                    SELECTOR_KEYS
                } else if sets("channel") || sets("version") {
                    &["tag", "digest"]
                } else {
                    &[]
                };
                for k in drop {
                    o.remove(*k);
                }
            }
            for (k, v) in n {
                o.remove(k.get_ref().as_ref());
                o.insert(k, v);
            }
            Spanned::new(span, DeValue::Table(o))
        }
        (_, n) => Spanned::new(span, n),
    }
}

/// Removes and returns the entry of `key` (with the key as stored).
#[allow(clippy::type_complexity)]
fn take<'s>(
    table: &mut DeTable<'s>,
    key: &Spanned<std::borrow::Cow<'s, str>>,
) -> Option<(Spanned<std::borrow::Cow<'s, str>>, Spanned<DeValue<'s>>)> {
    table.remove_entry(key.get_ref().as_ref())
}

fn shift_span(s: Range<usize>, base: usize) -> Range<usize> {
    s.start + base..s.end + base
}

fn shift_table(table: DeTable<'_>, base: usize) -> DeTable<'_> {
    let mut out = DeTable::new();
    for (k, v) in table {
        let key = Spanned::new(shift_span(k.span(), base), k.into_inner());
        out.insert(key, shift_value(v, base));
    }
    out
}

fn shift_value(v: Spanned<DeValue<'_>>, base: usize) -> Spanned<DeValue<'_>> {
    let span = shift_span(v.span(), base);
    let value = match v.into_inner() {
        DeValue::Table(t) => DeValue::Table(shift_table(t, base)),
        DeValue::Array(mut items) => {
            for item in items.iter_mut() {
                let inner = std::mem::replace(item, Spanned::new(0..0, DeValue::Boolean(false)));
                *item = shift_value(inner, base);
            }
            DeValue::Array(items)
        }
        other => other,
    };
    Spanned::new(span, value)
}

#[cfg(test)]
mod tests;
