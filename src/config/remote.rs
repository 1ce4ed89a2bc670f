//! Team documents from registries: remote config fragments
//! (`include = ["oci://..."]`) and skill collections, fetched, verified and
//! kept as a last good copy.
//!
//! Each document is an OCI artifact with exactly one layer of an expected
//! media type. [`refresh`] resolves what each one follows (a HEAD for a
//! tag, nothing for a digest, a tag list and HEADs for a channel), and only
//! when the digest moved fetches the manifest and the layer, both verified
//! by sha256 and capped in size. The result is stored in [`TeamCache`]
//! (`<cache dir>/team/`), which config loading reads offline: a registry
//! that is down leaves the last good copy in force, and status says since
//! when.
//!
//! The lowest of the config's loading modules: it knows the validated
//! types but not how files are layered or collections expanded, and it
//! must not depend on [`crate::config::layers`] or
//! [`crate::config::collection`], which depend on it.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::channel::{self, Lookup, VersionTag};
use crate::config::{Config, Selector};
use crate::manifest::MAX_MANIFEST_SIZE;
use crate::reference::{Digest, ImageRef};
use crate::source::{Source, SourceError, Sources};

/// Media types a remote config fragment's layer may have.
pub const CONFIG_MEDIA_TYPES: &[&str] = &[
    "application/toml",
    "application/vnd.skillsync.config.v1+toml",
];
/// A skillctl `SkillCollection`'s artifactType and layer media type.
pub const COLLECTION_MEDIA_TYPE: &str = "application/vnd.skillimage.collection.v1+yaml";
/// The largest document accepted.
pub const MAX_DOCUMENT_SIZE: u64 = 1024 * 1024;
/// The cache's sub-directory.
pub const TEAM_DIR: &str = "team";

/// Why a document could not be fetched or read.
#[derive(Debug, thiserror::Error)]
pub enum TeamError {
    /// The registry failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The artifact is not what was expected.
    #[error("{reference}: {reason}")]
    Format {
        /// The artifact.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// Bytes did not match their digest.
    #[error("{what}: digest mismatch (expected {expected}, got {actual})")]
    DigestMismatch {
        /// What was fetched.
        what: String,
        /// The digest asked for.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// The cache could not be read or written.
    #[error("team cache {path}: {reason}")]
    Cache {
        /// The record.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// The last known state of one document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// What was asked for (`oci://...`, or a collection's key).
    pub reference: String,
    /// The manifest digest of the copy kept.
    pub digest: Option<String>,
    /// The sha256 of `content` (the layer digest).
    pub content_digest: Option<String>,
    /// The document.
    pub content: Option<String>,
    /// When the copy was fetched (RFC 3339).
    pub fetched_at: Option<String>,
    /// Why the last refresh failed (cleared by a good one).
    pub last_error: Option<String>,
}

/// `<cache dir>/team/`: one JSON record per document.
#[derive(Debug, Clone)]
pub struct TeamCache {
    dir: PathBuf,
}

impl TeamCache {
    /// The team cache under `cache_dir`.
    pub fn new(cache_dir: &Path) -> TeamCache {
        TeamCache {
            dir: cache_dir.join(TEAM_DIR),
        }
    }

    fn path(&self, reference: &str) -> PathBuf {
        let digest = Digest::of(reference.as_bytes());
        self.dir.join(format!("{}.json", &digest.hex()[..32]))
    }

    /// The record of `reference`; an empty one when there is none. A copy
    /// whose content does not match its digest is not used.
    pub fn read(&self, reference: &str) -> Result<Record, TeamError> {
        let path = self.path(reference);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Record {
                    reference: reference.to_string(),
                    ..Default::default()
                })
            }
            Err(e) => {
                return Err(TeamError::Cache {
                    path,
                    reason: e.to_string(),
                })
            }
        };
        let record: Record = serde_json::from_slice(&bytes).map_err(|e| TeamError::Cache {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if let (Some(content), Some(digest)) = (&record.content, &record.content_digest) {
            if Digest::of(content.as_bytes()).as_str() != digest {
                return Err(TeamError::Cache {
                    path,
                    reason: "the cached copy does not match its digest".into(),
                });
            }
        }
        Ok(record)
    }

    /// Writes a record atomically.
    pub fn write(&self, record: &Record) -> Result<(), TeamError> {
        let path = self.path(&record.reference);
        let err = |reason: String| TeamError::Cache {
            path: path.clone(),
            reason,
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| err(e.to_string()))?;
        let bytes = serde_json::to_vec_pretty(record).map_err(|e| err(e.to_string()))?;
        crate::fs::write_atomic(&path, &bytes).map_err(|e| err(e.to_string()))
    }
}

/// The cache key of a collection: its image and what it follows.
pub fn collection_key(image: &ImageRef, selector: &Selector) -> String {
    match selector {
        Selector::Tag(t) => format!("collection {image}:{t}"),
        Selector::Digest(d) => format!("collection {image}@{d}"),
        Selector::Channel { channel, version } => match version {
            Some(v) => format!("collection {image} {channel} {v}"),
            None => format!("collection {image} {channel}"),
        },
    }
}

/// `HOST/REPO:TAG` or `HOST/REPO@sha256:...`.
pub fn parse_remote(reference: &str) -> Result<(ImageRef, Selector), String> {
    let hint = "write oci://HOST/REPOSITORY:TAG or oci://HOST/REPOSITORY@sha256:...";
    let (repo, selector) = if let Some((repo, digest)) = reference.split_once('@') {
        let digest = digest
            .parse()
            .map_err(|e| format!("invalid digest ({e}); {hint}"))?;
        (repo, Selector::Digest(digest))
    } else {
        let slash = reference.rfind('/').unwrap_or(0);
        match reference[slash..].rfind(':') {
            Some(colon) => {
                let (repo, tag) = reference.split_at(slash + colon);
                (repo, Selector::Tag(tag[1..].to_string()))
            }
            None => return Err(format!("no tag or digest; {hint}")),
        }
    };
    let image: ImageRef = repo.parse().map_err(|e| format!("{e}; {hint}"))?;
    if image.repository.is_empty()
        || !(image.registry.contains(['.', ':']) || image.registry == "localhost")
    {
        return Err(format!("{repo:?} is not HOST/REPOSITORY; {hint}"));
    }
    if let Selector::Tag(t) = &selector {
        if t.is_empty()
            || t.len() > 128
            || !t
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err(format!("invalid tag {t:?}; {hint}"));
        }
    }
    Ok((image, selector))
}

/// What one refresh did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Refreshed {
    /// Documents whose copy or error changed (a reload shows them).
    pub changed: usize,
    /// Documents with a new copy.
    pub updated: usize,
    /// Documents checked.
    pub checked: usize,
}

/// Checks every remote include and collection of `config`, storing new
/// copies (and failures) in `cache`.
pub async fn refresh(config: &Config, sources: &Sources, cache: &TeamCache) -> Refreshed {
    let mut out = Refreshed::default();
    let mut wanted: Vec<(String, ImageRef, Selector, &[&str])> = Vec::new();
    for r in &config.layers.remote {
        wanted.push((
            r.reference.clone(),
            r.image.clone(),
            r.selector.clone(),
            CONFIG_MEDIA_TYPES,
        ));
    }
    for c in config.collections.values() {
        wanted.push((
            collection_key(&c.image, &c.selector),
            c.image.clone(),
            c.selector.clone(),
            &[COLLECTION_MEDIA_TYPE],
        ));
    }
    for (reference, image, selector, types) in wanted {
        out.checked += 1;
        let before = cache.read(&reference).unwrap_or_else(|_| Record {
            reference: reference.clone(),
            ..Default::default()
        });
        let source = sources.for_image(&image);
        let mut after = before.clone();
        match fetch(&source, &image, &selector, before.digest.as_deref(), types).await {
            Ok(None) => after.last_error = None,
            Ok(Some((digest, content))) => {
                after.content_digest = Some(Digest::of(content.as_bytes()).to_string());
                after.digest = Some(digest.to_string());
                after.content = Some(content);
                after.fetched_at = Some(
                    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
                );
                after.last_error = None;
                out.updated += 1;
            }
            Err(e) => {
                tracing::warn!("{reference}: {e}");
                after.last_error = Some(e.to_string());
            }
        }
        if after != before {
            out.changed += 1;
            if let Err(e) = cache.write(&after) {
                tracing::warn!("{e}");
            }
        }
    }
    out
}

/// The document `selector` points at now, unless it is still `known`.
async fn fetch(
    source: &impl Source,
    image: &ImageRef,
    selector: &Selector,
    known: Option<&str>,
    types: &[&str],
) -> Result<Option<(Digest, String)>, TeamError> {
    let digest = match selector {
        Selector::Digest(d) => d.clone(),
        Selector::Tag(t) => source.resolve_tag(image, t).await?,
        Selector::Channel { channel, version } => {
            let tags = source.list_tags(image).await?;
            let lookup = |c: &VersionTag| {
                let tag = c.tag.clone();
                async move {
                    let digest = source.resolve_tag(image, &tag).await?;
                    let m = manifest(source, image, &digest).await?;
                    let status = channel::parse_status(
                        m.annotations
                            .get(channel::STATUS_ANNOTATION)
                            .map(String::as_str),
                    );
                    Ok::<_, TeamError>(Lookup { digest, status })
                }
            };
            match channel::select(&tags, *channel, version.as_ref(), None, lookup).await {
                Ok(s) => s.digest,
                Err(channel::SelectError::Lookup(e)) => return Err(e),
                Err(e) => {
                    return Err(TeamError::Format {
                        reference: image.to_string(),
                        reason: e.to_string(),
                    })
                }
            }
        }
    };
    if known == Some(digest.as_str()) {
        return Ok(None);
    }
    let reference = format!("{image}@{digest}");
    let m = manifest(source, image, &digest).await?;
    let format = |reason: String| TeamError::Format {
        reference: reference.clone(),
        reason,
    };
    if let Some(at) = &m.artifact_type {
        if !types.contains(&at.as_str()) && at != "application/vnd.oci.empty.v1+json" {
            return Err(format(format!(
                "artifactType {at:?} is not {}",
                types.join(" or ")
            )));
        }
    }
    let [layer] = m.layers.as_slice() else {
        return Err(format(format!(
            "expected exactly one layer, found {}",
            m.layers.len()
        )));
    };
    if !types.contains(&layer.media_type.as_str()) {
        return Err(format(format!(
            "layer media type {:?} is not {}",
            layer.media_type,
            types.join(" or ")
        )));
    }
    if layer.size > MAX_DOCUMENT_SIZE {
        return Err(format(format!(
            "the document is {} bytes; the limit is {MAX_DOCUMENT_SIZE}",
            layer.size
        )));
    }
    let mut stream = source.open_blob(image, &layer.digest, layer.size).await?;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| SourceError::Network {
            endpoint: source.endpoint(),
            message: e.to_string(),
        })?;
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > layer.size {
            return Err(format(
                "the layer is larger than its descriptor says".into(),
            ));
        }
    }
    let actual = Digest::of(&bytes);
    if actual != layer.digest || bytes.len() as u64 != layer.size {
        return Err(TeamError::DigestMismatch {
            what: format!("layer of {reference}"),
            expected: layer.digest.to_string(),
            actual: actual.to_string(),
        });
    }
    let text = String::from_utf8(bytes).map_err(|_| format("the document is not UTF-8".into()))?;
    Ok(Some((digest, text)))
}

/// The parts of an artifact manifest a document needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactManifest {
    schema_version: u32,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    layers: Vec<crate::manifest::Descriptor>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

/// Fetches and verifies a manifest.
async fn manifest(
    source: &impl Source,
    image: &ImageRef,
    digest: &Digest,
) -> Result<ArtifactManifest, TeamError> {
    let bytes = source.fetch_manifest(image, digest).await?;
    if bytes.len() as u64 > MAX_MANIFEST_SIZE {
        return Err(TeamError::Format {
            reference: format!("{image}@{digest}"),
            reason: "manifest too large".into(),
        });
    }
    let actual = Digest::of(&bytes);
    if &actual != digest {
        return Err(TeamError::DigestMismatch {
            what: format!("manifest of {image}"),
            expected: digest.to_string(),
            actual: actual.to_string(),
        });
    }
    let m: ArtifactManifest = serde_json::from_slice(&bytes).map_err(|e| TeamError::Format {
        reference: format!("{image}@{digest}"),
        reason: format!("not an OCI manifest: {e}"),
    })?;
    if m.schema_version != 2 {
        return Err(TeamError::Format {
            reference: format!("{image}@{digest}"),
            reason: format!("schemaVersion {} is not 2", m.schema_version),
        });
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_a_corrupt_copy_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TeamCache::new(dir.path());
        let empty = cache.read("oci://r.io/a:1").unwrap();
        assert_eq!(empty.content, None);
        let content = "[skills.a]\nimage = \"r.io/a\"\n".to_string();
        let record = Record {
            reference: "oci://r.io/a:1".into(),
            digest: Some(Digest::of(b"m").to_string()),
            content_digest: Some(Digest::of(content.as_bytes()).to_string()),
            content: Some(content),
            fetched_at: Some("2026-01-01T00:00:00Z".into()),
            last_error: None,
        };
        cache.write(&record).unwrap();
        assert_eq!(cache.read("oci://r.io/a:1").unwrap(), record);
        let mut bad = record.clone();
        bad.content = Some("[daemon]\n".into());
        cache.write(&bad).unwrap();
        assert!(cache.read("oci://r.io/a:1").is_err());
    }
}
