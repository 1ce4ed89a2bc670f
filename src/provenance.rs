//! Provenance in an installed skill's `skill.yaml`, written the way
//! `skillctl install` writes it, so that `skillctl list --installed` and
//! `skillctl upgrade` see the skills skillsyncd installs.
//!
//! # What skillctl does, and what is matched here
//!
//! Matched against the skillimage project (repository `redhat-et/skillimage`):
//! `WriteProvenance` and `NewSkillCardFromRef` in `internal/cli/install.go`
//! (also called by `skillctl upgrade`, `internal/cli/upgrade.go`), the
//! `SkillCard` and `Provenance` types in `pkg/skillcard/skillcard.go`, and the
//! reader, `Scan` in `pkg/installed/installed.go`. After unpacking, skillctl:
//!
//! - parses `<skill dir>/skill.yaml` as a SkillCard, or, when the image has
//!   none, builds a minimal one (`apiVersion: skillimage.io/v1alpha1`,
//!   `kind: SkillCard`, `metadata.name/namespace/version/description`);
//! - sets the top-level `provenance.source` to the image reference exactly as
//!   it was given to it (`quay.io/acme/skill:1.0.0`, tag or digest included)
//!   and `provenance.commit` to the digest that reference resolves to
//!   (`sha256:...`), keeping an existing `provenance.path`;
//! - sets `metadata.version` to the reference's tag when it has one
//!   ("the tag is authoritative"), so a skill installed from
//!   `1.0.0-testing` reads as `1.0.0-testing`, and one from `latest` as
//!   `latest`; a digest reference leaves the version alone;
//! - writes the card back with `gopkg.in/yaml.v3`.
//!
//! `skillctl list --installed` and `skillctl upgrade` read `metadata.name`,
//! `metadata.version`, `provenance.source` and `provenance.commit` from every
//! `<agent dir>/*/skill.yaml`; `upgrade` strips the tag or digest from
//! `source` to find the repository and compares `metadata.version` (strict
//! semver) with its published tags.
//!
//! # Where this differs, deliberately
//!
//! - skillctl re-serialises its Go struct: keys come out in struct order,
//!   fields it does not know make it fail, and empty optional fields vanish.
//!   Here the document is edited as a tree: every other key keeps its value
//!   and its place, `provenance` is added right after `metadata` (where
//!   skillctl puts it) when it was absent, and unknown keys are kept.
//! - Comments, quoting style, flow/block style and anchors of the original
//!   file are **not** kept: the tree is written out anew (as skillctl also
//!   does). Only the data survives.
//! - A minimal card uses the image's annotations where skillctl has nothing
//!   better: `namespace` from `org.opencontainers.image.vendor` (skillctl: the
//!   reference's first path segment), `version` from the tag as skillctl, else
//!   `org.opencontainers.image.version` (skillctl: `unknown`), `description`
//!   from `org.opencontainers.image.description` (skillctl: `Installed from
//!   <reference>`), and `display-name` from `org.opencontainers.image.title`
//!   when it differs from the name. The skillctl fallbacks apply when an
//!   annotation is absent. Its name is the install name, which skillctl takes
//!   from the reference's last path segment.
//!
//! # Hostile input
//!
//! `skill.yaml` comes out of an image, so it is treated as hostile: it is read
//! only if it is a regular file (not through a symlink) of at most
//! [`MAX_SKILL_YAML_BYTES`]; a single document only; nesting is capped by the
//! parser (128 levels); and the document is first walked with a budget of
//! [`MAX_EXPANDED_NODES`] nodes and [`MAX_EXPANDED_BYTES`] bytes of scalar
//! text, counted *after* alias expansion, so a "billion laughs" file or a
//! large anchor aliased many times is refused before any tree is built.
//! (The parser's own guard limits the number of alias jumps, not what they
//! expand to, which still allows quadratic growth.)
//!
//! A `skill.yaml` that is not YAML, or is not a SkillCard-shaped mapping (a
//! mapping with a `metadata` mapping, and a `provenance` that is a mapping or
//! empty), is an error rather than something to leave alone: skillctl refuses
//! to install such an image too (`parsing skill.yaml`), skillctl validates the
//! card when it packs an image (`Pack` in `pkg/oci/pack.go`) so a well-made
//! image never has one, and a copy left without provenance would look
//! installed while `skillctl list --installed` skips it.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeSeed, EnumAccess, MapAccess, SeqAccess};
use serde::de::{VariantAccess, Visitor};
use yaml_serde::{Mapping, Value};

use crate::reference::Digest;

/// The SkillCard's file name inside a skill directory.
pub const SKILL_YAML: &str = "skill.yaml";

/// The largest `skill.yaml` read (1 MiB); a SkillCard is a few KiB.
pub const MAX_SKILL_YAML_BYTES: u64 = 1024 * 1024;

/// The most YAML nodes a `skill.yaml` may expand to, aliases included.
pub const MAX_EXPANDED_NODES: usize = 100_000;

/// The most scalar text, in bytes, a `skill.yaml` may expand to, aliases
/// included.
pub const MAX_EXPANDED_BYTES: usize = 2 * 1024 * 1024;

/// The SkillCard `apiVersion` skillctl writes.
pub const API_VERSION: &str = "skillimage.io/v1alpha1";

/// The SkillCard `kind`.
pub const KIND: &str = "SkillCard";

/// Manifest annotation holding the skill's version.
pub const ANNOTATION_VERSION: &str = "org.opencontainers.image.version";
/// Manifest annotation holding the skill's description.
pub const ANNOTATION_DESCRIPTION: &str = "org.opencontainers.image.description";
/// Manifest annotation holding the SkillCard namespace.
pub const ANNOTATION_VENDOR: &str = "org.opencontainers.image.vendor";
/// Manifest annotation holding the display name (or the name).
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";

/// Where an installed skill came from, as `skillctl` records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// The image reference as a user would give it to `skillctl install`:
    /// `host[:port]/repository` with `:tag` or `@sha256:...`. `skillctl
    /// upgrade` only follows references whose first segment is a registry
    /// host (contains `.` or `:`), and takes `metadata.version` from the tag.
    pub source: String,
    /// The digest the reference resolves to (`sha256:...`): for skillctl's
    /// single-manifest images, the manifest digest.
    pub commit: String,
}

/// What [`write`](fn@write) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The image's `skill.yaml` was updated in place.
    Updated,
    /// The image had no `skill.yaml`; a minimal SkillCard was created.
    Created,
}

/// Why provenance could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ProvenanceError {
    /// A filesystem operation failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done ("reading", "renaming into place", ...).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// `skill.yaml` is a symlink, a directory or another non-regular file.
    #[error("{path} is not a regular file")]
    NotAFile {
        /// The offending path.
        path: PathBuf,
    },

    /// `skill.yaml` is larger than [`MAX_SKILL_YAML_BYTES`].
    #[error("{path} is larger than the {limit} bytes allowed")]
    TooLarge {
        /// The offending path.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },

    /// `skill.yaml` is not valid YAML (or not UTF-8, or holds several
    /// documents).
    #[error("{path} is not valid YAML")]
    Parse {
        /// The offending path.
        path: PathBuf,
        /// The parser's error, with line and column.
        #[source]
        source: yaml_serde::Error,
    },

    /// `skill.yaml` expands, through aliases, beyond
    /// [`MAX_EXPANDED_NODES`] nodes or [`MAX_EXPANDED_BYTES`] bytes.
    #[error(
        "{path} expands to more than {MAX_EXPANDED_NODES} YAML nodes or \
         {MAX_EXPANDED_BYTES} bytes of text (anchors and aliases)"
    )]
    TooComplex {
        /// The offending path.
        path: PathBuf,
    },

    /// `skill.yaml` is YAML but not shaped like a SkillCard.
    #[error("{path}: {reason}")]
    NotASkillCard {
        /// The offending path.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The new `skill.yaml` could not be serialised.
    #[error("serialising {path}")]
    Serialize {
        /// The file being written.
        path: PathBuf,
        /// The serialiser's error.
        #[source]
        source: yaml_serde::Error,
    },

    /// The provenance given is unusable.
    #[error("invalid provenance {field} {value:?}: {reason}")]
    InvalidInput {
        /// Which argument (`source`, `commit`, `name`).
        field: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

type Result<T, E = ProvenanceError> = std::result::Result<T, E>;

/// Writes provenance into `skill_dir/skill.yaml`, as `skillctl install` does.
///
/// `skill_dir` is a staging directory the caller owns, before it is swapped
/// into place; anything that hashes the installed tree must run after this.
///
/// - If `skill.yaml` exists, `provenance.source` and `provenance.commit` are
///   set (other `provenance` keys such as `path` stay), `provenance` is added
///   right after `metadata` if absent, and `metadata.version` becomes the tag
///   of `provenance.source` if it has one. Every other key keeps its value
///   and its place. Comments and formatting are not kept.
/// - If it is missing, a minimal SkillCard is written: `apiVersion`, `kind`,
///   `metadata` (`name` = `name`, then `display-name`, `namespace`, `version`,
///   `description` from `annotations` or skillctl's fallbacks) and
///   `provenance`.
///
/// The file is written to a temporary file in `skill_dir`, fsynced, given mode
/// 0644 and renamed over `skill.yaml`; the directory is then fsynced.
///
/// # Errors
///
/// [`ProvenanceError::InvalidInput`] for an empty `source` or one with
/// whitespace or control characters, a
/// `commit` that is not a sha256 digest, or (when a card is created) a `name`
/// that is not a SkillCard name; [`ProvenanceError::Parse`],
/// [`ProvenanceError::TooComplex`], [`ProvenanceError::TooLarge`],
/// [`ProvenanceError::NotAFile`] or [`ProvenanceError::NotASkillCard`] for an
/// image whose `skill.yaml` cannot be trusted (the caller should refuse the
/// install); [`ProvenanceError::Io`] when the file cannot be read or written.
/// On error `skill.yaml` is left as it was.
pub fn write(
    skill_dir: &Path,
    name: &str,
    provenance: &Provenance,
    annotations: &BTreeMap<String, String>,
) -> Result<Written> {
    write_with(skill_dir, name, provenance, annotations, true)
}

/// [`write`]; with `sync` false nothing is fsynced, for a tree whose
/// caller makes it durable as a whole (a staged install).
pub fn write_with(
    skill_dir: &Path,
    name: &str,
    provenance: &Provenance,
    annotations: &BTreeMap<String, String>,
    sync: bool,
) -> Result<Written> {
    validate(provenance)?;
    let path = skill_dir.join(SKILL_YAML);
    let (card, written) = match read_capped(&path)? {
        Some(text) => {
            let mut card = parse_card(&path, &text)?;
            update_card(&path, &mut card, provenance)?;
            (card, Written::Updated)
        }
        None => (
            minimal_card(name, provenance, annotations)?,
            Written::Created,
        ),
    };
    let text = yaml_serde::to_string(&Value::Mapping(card)).map_err(|source| {
        ProvenanceError::Serialize {
            path: path.clone(),
            source,
        }
    })?;
    write_atomic(&path, text.as_bytes(), sync)?;
    Ok(written)
}

/// Reads the provenance back from `skill_dir/skill.yaml`: what
/// `skillctl list --installed` shows as SOURCE, and `skillctl upgrade`
/// follows.
///
/// `Ok(None)` when there is no `skill.yaml` (skillctl does not list the
/// directory), or no `provenance.source` (skillctl shows it as "(local)").
///
/// # Errors
///
/// As [`write`](fn@write) for a `skill.yaml` that cannot be read or trusted, and
/// [`ProvenanceError::NotASkillCard`] when `provenance`, `provenance.source`
/// or `provenance.commit` has the wrong type.
pub fn read(skill_dir: &Path) -> Result<Option<Provenance>> {
    let path = skill_dir.join(SKILL_YAML);
    let Some(text) = read_capped(&path)? else {
        return Ok(None);
    };
    let card = parse_card(&path, &text)?;
    let provenance = match card.get("provenance") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Mapping(p)) => p,
        Some(_) => return Err(not_a_card(&path, "provenance is not a mapping")),
    };
    let field = |key: &str, reason| match provenance.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(not_a_card(&path, reason)),
    };
    let source = field("source", "provenance.source is not a string")?;
    let commit = field("commit", "provenance.commit is not a string")?;
    if source.is_empty() {
        return Ok(None);
    }
    Ok(Some(Provenance { source, commit }))
}

/// The tag of an image reference, as skillctl's `tagFromRef` finds it: none
/// for a digest reference (`...@sha256:...`), otherwise what follows the last
/// `:` after the last `/`.
pub fn tag_of(reference: &str) -> Option<&str> {
    if reference.contains('@') {
        return None;
    }
    let tail_start = reference.rfind('/').map_or(0, |i| i + 1);
    let tail = &reference[tail_start..];
    tail.rfind(':').map(|i| &tail[i + 1..])
}

fn validate(provenance: &Provenance) -> Result<()> {
    let source = &provenance.source;
    let bad_source = |reason| ProvenanceError::InvalidInput {
        field: "source",
        value: source.clone(),
        reason,
    };
    if source.is_empty() {
        return Err(bad_source("empty"));
    }
    if source.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad_source("contains whitespace or control characters"));
    }
    if provenance.commit.parse::<Digest>().is_err() {
        return Err(ProvenanceError::InvalidInput {
            field: "commit",
            value: provenance.commit.clone(),
            reason: "not a sha256:<64 hex digits> digest",
        });
    }
    Ok(())
}

fn not_a_card(path: &Path, reason: &'static str) -> ProvenanceError {
    ProvenanceError::NotASkillCard {
        path: path.to_path_buf(),
        reason,
    }
}

/// Reads `path` if it exists, refusing symlinks, non-regular files and files
/// over [`MAX_SKILL_YAML_BYTES`]. `Ok(None)` if it does not exist.
fn read_capped(path: &Path) -> Result<Option<String>> {
    let io_err = |action, source| ProvenanceError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    // O_NOFOLLOW: a symlink is refused (ELOOP) rather than followed out of
    // the skill; O_NONBLOCK: opening a FIFO does not hang. Neither changes
    // reads of a regular file.
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(ProvenanceError::NotAFile {
                path: path.to_path_buf(),
            })
        }
        Err(e) => return Err(io_err("opening", e)),
    };
    let meta = file.metadata().map_err(|e| io_err("inspecting", e))?;
    if !meta.is_file() {
        return Err(ProvenanceError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_SKILL_YAML_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_err("reading", e))?;
    if bytes.len() as u64 > MAX_SKILL_YAML_BYTES {
        return Err(ProvenanceError::TooLarge {
            path: path.to_path_buf(),
            limit: MAX_SKILL_YAML_BYTES,
        });
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| ProvenanceError::NotASkillCard {
            path: path.to_path_buf(),
            reason: "not UTF-8 text",
        })
}

/// Parses `text` as a single YAML document whose root is a mapping, after
/// checking what it expands to.
fn parse_card(path: &Path, text: &str) -> Result<Mapping> {
    let budget = Budget::default();
    let walked = Walk(&budget).deserialize(yaml_serde::Deserializer::from_str(text));
    if let Err(source) = walked {
        return Err(if budget.exhausted.get() {
            ProvenanceError::TooComplex {
                path: path.to_path_buf(),
            }
        } else {
            ProvenanceError::Parse {
                path: path.to_path_buf(),
                source,
            }
        });
    }
    // Within budget, so building the tree is bounded too.
    let value: Value = yaml_serde::from_str(text).map_err(|source| ProvenanceError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    match value {
        Value::Mapping(card) => Ok(card),
        Value::Null => Err(not_a_card(path, "the document is empty")),
        _ => Err(not_a_card(path, "the document is not a mapping")),
    }
}

/// Sets provenance (and the version from the tag) in an existing card.
fn update_card(path: &Path, card: &mut Mapping, provenance: &Provenance) -> Result<()> {
    match card.get_mut("metadata") {
        Some(Value::Mapping(metadata)) => {
            if let Some(tag) = tag_of(&provenance.source) {
                // skillctl's field order: name, display-name, namespace,
                // version, description.
                set_after(
                    metadata,
                    "version",
                    Value::String(tag.to_string()),
                    &["namespace", "display-name", "name"],
                );
            }
        }
        Some(_) => return Err(not_a_card(path, "metadata is not a mapping")),
        None => return Err(not_a_card(path, "metadata is missing")),
    }
    let source = Value::String(provenance.source.clone());
    let commit = Value::String(provenance.commit.clone());
    match card.get_mut("provenance") {
        Some(Value::Mapping(p)) => {
            set_after(p, "source", source, &[]);
            set_after(p, "commit", commit, &["source"]);
        }
        Some(slot @ Value::Null) => *slot = Value::Mapping(provenance_mapping(source, commit)),
        Some(_) => return Err(not_a_card(path, "provenance is not a mapping")),
        None => set_after(
            card,
            "provenance",
            Value::Mapping(provenance_mapping(source, commit)),
            &["metadata"],
        ),
    }
    Ok(())
}

fn provenance_mapping(source: Value, commit: Value) -> Mapping {
    let mut p = Mapping::new();
    p.insert(key("source"), source);
    p.insert(key("commit"), commit);
    p
}

fn key(k: &str) -> Value {
    Value::String(k.to_string())
}

/// Sets `map[k] = v`: in place if `k` is there, otherwise right after the
/// first of `after` present, otherwise at the end.
fn set_after(map: &mut Mapping, k: &str, v: Value, after: &[&str]) {
    if let Some(slot) = map.get_mut(k) {
        *slot = v;
        return;
    }
    let anchor = after
        .iter()
        .find_map(|a| map.keys().position(|existing| existing.as_str() == Some(a)));
    let Some(anchor) = anchor else {
        map.insert(key(k), v);
        return;
    };
    let old = std::mem::take(map);
    let mut pending = Some((key(k), v));
    for (i, (ek, ev)) in old.into_iter().enumerate() {
        map.insert(ek, ev);
        if i == anchor {
            if let Some((nk, nv)) = pending.take() {
                map.insert(nk, nv);
            }
        }
    }
}

/// The card written when the image has no `skill.yaml`.
fn minimal_card(
    name: &str,
    provenance: &Provenance,
    annotations: &BTreeMap<String, String>,
) -> Result<Mapping> {
    if !crate::name::is_valid(name) {
        return Err(ProvenanceError::InvalidInput {
            field: "name",
            value: name.to_string(),
            reason: "a SkillCard name is lowercase letters and digits in dash-separated \
                     words, at most 64 characters",
        });
    }
    let source = &provenance.source;
    let annotation = |k: &str| {
        annotations
            .get(k)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    // skillctl's fallbacks: the reference's first path segment, the tag,
    // "unknown", and "Installed from <reference>".
    let namespace = annotation(ANNOTATION_VENDOR).unwrap_or_else(|| {
        source
            .split_once('/')
            .map_or_else(|| "unknown".to_string(), |(first, _)| first.to_string())
    });
    let version = tag_of(source)
        .map(str::to_string)
        .or_else(|| annotation(ANNOTATION_VERSION))
        .unwrap_or_else(|| "unknown".to_string());
    let description =
        annotation(ANNOTATION_DESCRIPTION).unwrap_or_else(|| format!("Installed from {source}"));

    let mut metadata = Mapping::new();
    metadata.insert(key("name"), key(name));
    if let Some(title) = annotation(ANNOTATION_TITLE).filter(|t| t != name) {
        metadata.insert(key("display-name"), Value::String(title));
    }
    metadata.insert(key("namespace"), Value::String(namespace));
    metadata.insert(key("version"), Value::String(version));
    metadata.insert(key("description"), Value::String(description));

    let mut card = Mapping::new();
    card.insert(key("apiVersion"), key(API_VERSION));
    card.insert(key("kind"), key(KIND));
    card.insert(key("metadata"), Value::Mapping(metadata));
    card.insert(
        key("provenance"),
        Value::Mapping(provenance_mapping(
            Value::String(source.clone()),
            Value::String(provenance.commit.clone()),
        )),
    );
    Ok(card)
}

/// Replaces `path` with `bytes` through [`crate::fs::write_atomic_with`]:
/// a temporary file in `path`'s directory, mode 0644, renamed over `path`
/// (the file and the directory fsynced only with `sync`).
fn write_atomic(path: &Path, bytes: &[u8], sync: bool) -> Result<()> {
    let options = crate::fs::Options {
        durability: if sync {
            crate::fs::Durability::Full
        } else {
            crate::fs::Durability::None
        },
        prefix: ".skill.yaml.",
        mode: Some(0o644),
    };
    crate::fs::write_atomic_with(path, options, |tmp| {
        let io_err = |action, source| ProvenanceError::Io {
            action,
            path: path.to_path_buf(),
            source,
        };
        tmp.write_all(bytes).map_err(|e| io_err("writing", e))?;
        // The umask may have narrowed the mode given at creation.
        tmp.set_permissions(Permissions::from_mode(0o644))
            .map_err(|e| io_err("setting the mode of", e))
    })
}

impl From<crate::fs::FsError> for ProvenanceError {
    fn from(e: crate::fs::FsError) -> Self {
        ProvenanceError::Io {
            action: e.action,
            path: e.path,
            source: e.source,
        }
    }
}

/// What a document may expand to; see [`MAX_EXPANDED_NODES`].
#[derive(Default)]
struct Budget {
    nodes: Cell<usize>,
    bytes: Cell<usize>,
    exhausted: Cell<bool>,
}

impl Budget {
    fn charge<E: de::Error>(&self, text_bytes: usize) -> Result<(), E> {
        let nodes = self.nodes.get().saturating_add(1);
        let bytes = self.bytes.get().saturating_add(text_bytes);
        self.nodes.set(nodes);
        self.bytes.set(bytes);
        if nodes > MAX_EXPANDED_NODES || bytes > MAX_EXPANDED_BYTES {
            self.exhausted.set(true);
            return Err(E::custom("the document expands beyond the allowed size"));
        }
        Ok(())
    }
}

/// Visits every node of a document, aliases expanded, charging a [`Budget`]
/// and keeping nothing.
#[derive(Clone, Copy)]
struct Walk<'a>(&'a Budget);

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.0.charge(0)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.0.charge(0)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.0.charge(0)
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        self.0.charge(0)
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        self.0.charge(0)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.0.charge(0)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.charge(v.len())
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<(), E> {
        self.0.charge(v.len())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.charge(0)
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.0.charge(0)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_newtype_struct<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.charge(0)?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.charge(0)?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }

    /// A tagged node (`!tag value`): the tag, then the value.
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        let ((), value) = data.variant_seed(self)?;
        value.newtype_variant_seed(self)
    }
}

#[cfg(test)]
mod tests;
