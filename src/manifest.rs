//! OCI manifests and indexes, and the skillimage format rules on top of them.
//!
//! Manifests are parsed from bytes whose digest the caller has already
//! verified. A skill image is a single-layer image manifest whose layer is a
//! tar+gzip (standard OCI or the "redhat" profile); all metadata lives in the
//! manifest's annotations (see `FORMAT.md`).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::channel::{self, Status, StatusError};
use crate::reference::Digest;

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Every manifest media type we ask registries for.
pub const ACCEPTED_MANIFEST_TYPES: &[&str] = &[
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];

/// Layer media types a skill image may use.
pub const SKILL_LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.redhat.agentskill.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
];

/// Manifests larger than this are refused (the OCI spec suggests 4 MiB).
pub const MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the referenced content.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Platform, on index entries.
    #[serde(default)]
    pub platform: Option<Platform>,
    /// Annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// The platform of an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Platform {
    /// `amd64`, `arm64`, ...
    #[serde(default)]
    pub architecture: String,
    /// `linux`, ...
    #[serde(default)]
    pub os: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: u32,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// A parsed manifest: an image manifest or an index.
#[derive(Debug, Clone)]
pub enum Parsed {
    /// An image manifest.
    Image(ImageManifest),
    /// An image index (or Docker manifest list).
    Index(Vec<Descriptor>),
}

/// An image manifest.
#[derive(Debug, Clone)]
pub struct ImageManifest {
    /// The config descriptor.
    pub config: Descriptor,
    /// The layer descriptors.
    pub layers: Vec<Descriptor>,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
}

/// A skill image, validated: one tar+gzip layer and its annotations.
#[derive(Debug, Clone)]
pub struct SkillManifest {
    /// The digest of this manifest.
    pub digest: Digest,
    /// The single layer.
    pub layer: Descriptor,
    /// The lifecycle status from `io.skillimage.status`.
    pub status: Result<Status, StatusError>,
    /// `org.opencontainers.image.version`, when present.
    pub version: Option<String>,
    /// All annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Why a manifest is not a usable skill image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Not JSON, or not a manifest.
    #[error("manifest is not valid JSON: {0}")]
    Json(String),
    /// schemaVersion is not 2.
    #[error("manifest schemaVersion is {0}, expected 2")]
    SchemaVersion(u32),
    /// Neither layers nor manifests.
    #[error("document is neither an image manifest nor an index")]
    NotAManifest,
    /// The image has no layers or more than one.
    #[error("a skill image has exactly one layer; this one has {0}")]
    LayerCount(usize),
    /// The layer is not tar+gzip.
    #[error("layer media type {0:?} is not a skill layer (expected tar+gzip)")]
    LayerType(String),
    /// An index without a linux manifest.
    #[error("image index has no linux image manifest")]
    NoLinuxManifest,
    /// An index pointing at an index.
    #[error("nested image indexes are not supported")]
    NestedIndex,
}

/// Parses a manifest or index.
pub fn parse(bytes: &[u8]) -> Result<Parsed, FormatError> {
    let raw: RawManifest =
        serde_json::from_slice(bytes).map_err(|e| FormatError::Json(e.to_string()))?;
    if raw.schema_version != 2 {
        return Err(FormatError::SchemaVersion(raw.schema_version));
    }
    let is_index_type = matches!(
        raw.media_type.as_deref(),
        Some(OCI_INDEX | DOCKER_MANIFEST_LIST)
    );
    match (raw.manifests, raw.layers, raw.config) {
        (Some(manifests), None, _) => Ok(Parsed::Index(manifests)),
        (None, Some(layers), Some(config)) if !is_index_type => Ok(Parsed::Image(ImageManifest {
            config,
            layers,
            annotations: raw.annotations,
        })),
        _ => Err(FormatError::NotAManifest),
    }
}

/// Picks the manifest to use from an index: linux/amd64 first, then any
/// linux entry, then an entry without a platform.
pub fn pick_from_index(entries: &[Descriptor]) -> Result<&Descriptor, FormatError> {
    let is_manifest =
        |d: &&Descriptor| d.media_type == OCI_MANIFEST || d.media_type == DOCKER_MANIFEST;
    let linux = |d: &&Descriptor| d.platform.as_ref().is_some_and(|p| p.os == "linux");
    let amd64 = |d: &&Descriptor| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.architecture == "amd64")
    };
    if entries
        .iter()
        .all(|d| d.media_type == OCI_INDEX || d.media_type == DOCKER_MANIFEST_LIST)
        && !entries.is_empty()
    {
        return Err(FormatError::NestedIndex);
    }
    entries
        .iter()
        .filter(is_manifest)
        .find(|d| linux(d) && amd64(d))
        .or_else(|| entries.iter().filter(is_manifest).find(linux))
        .or_else(|| {
            entries
                .iter()
                .filter(is_manifest)
                .find(|d| d.platform.is_none())
        })
        .ok_or(FormatError::NoLinuxManifest)
}

impl ImageManifest {
    /// Checks the skillimage rules and extracts what the daemon needs.
    pub fn into_skill(self, digest: Digest) -> Result<SkillManifest, FormatError> {
        if self.layers.len() != 1 {
            return Err(FormatError::LayerCount(self.layers.len()));
        }
        let layer = self
            .layers
            .into_iter()
            .next()
            .ok_or(FormatError::LayerCount(0))?;
        if !SKILL_LAYER_TYPES.contains(&layer.media_type.as_str()) {
            return Err(FormatError::LayerType(layer.media_type));
        }
        let status = channel::parse_status(
            self.annotations
                .get(channel::STATUS_ANNOTATION)
                .map(String::as_str),
        );
        Ok(SkillManifest {
            digest,
            layer,
            status,
            version: self.annotations.get(channel::VERSION_ANNOTATION).cloned(),
            annotations: self.annotations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn manifest(layers: &str, annotations: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",
            "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{D}","size":2}},
            "layers":[{layers}],"annotations":{{{annotations}}}}}"#
        )
    }

    fn layer(mt: &str) -> String {
        format!(r#"{{"mediaType":"{mt}","digest":"{D}","size":10}}"#)
    }

    #[test]
    fn accepts_a_skill_image() {
        let text = manifest(
            &layer("application/vnd.oci.image.layer.v1.tar+gzip"),
            r#""io.skillimage.status":"published","org.opencontainers.image.version":"1.0.0""#,
        );
        let Parsed::Image(m) = parse(text.as_bytes()).unwrap() else {
            panic!()
        };
        let s = m.into_skill(Digest::of(text.as_bytes())).unwrap();
        assert_eq!(s.status, Ok(Status::Published));
        assert_eq!(s.version.as_deref(), Some("1.0.0"));
        assert_eq!(s.layer.size, 10);
    }

    #[test]
    fn accepts_the_redhat_profile() {
        let text = manifest(
            &layer("application/vnd.redhat.agentskill.layer.v1.tar+gzip"),
            "",
        );
        let Parsed::Image(m) = parse(text.as_bytes()).unwrap() else {
            panic!()
        };
        let s = m.into_skill(Digest::of(b"")).unwrap();
        assert!(
            s.status.is_err(),
            "missing status is reported, not defaulted"
        );
    }

    #[test]
    fn rejects_bad_layers() {
        let two = format!(
            "{},{}",
            layer(SKILL_LAYER_TYPES[0]),
            layer(SKILL_LAYER_TYPES[0])
        );
        let Parsed::Image(m) = parse(manifest(&two, "").as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(
            m.into_skill(Digest::of(b"")).unwrap_err(),
            FormatError::LayerCount(2)
        );
        let Parsed::Image(m) = parse(manifest("", "").as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(
            m.into_skill(Digest::of(b"")).unwrap_err(),
            FormatError::LayerCount(0)
        );
        let zstd = layer("application/vnd.oci.image.layer.v1.tar+zstd");
        let Parsed::Image(m) = parse(manifest(&zstd, "").as_bytes()).unwrap() else {
            panic!()
        };
        assert!(matches!(
            m.into_skill(Digest::of(b"")),
            Err(FormatError::LayerType(_))
        ));
    }

    #[test]
    fn rejects_non_manifests() {
        assert!(matches!(parse(b"not json"), Err(FormatError::Json(_))));
        assert_eq!(
            parse(br#"{"schemaVersion":1}"#).unwrap_err(),
            FormatError::SchemaVersion(1)
        );
        assert_eq!(
            parse(br#"{"schemaVersion":2}"#).unwrap_err(),
            FormatError::NotAManifest
        );
    }

    #[test]
    fn picks_linux_from_an_index() {
        let text = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
              {{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":1,"platform":{{"architecture":"arm64","os":"darwin"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"sha256:{}","size":2,"platform":{{"architecture":"arm64","os":"linux"}}}}]}}"#,
            "1".repeat(64)
        );
        let Parsed::Index(entries) = parse(text.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(pick_from_index(&entries).unwrap().size, 2);
        assert_eq!(
            pick_from_index(&entries[..1]).unwrap_err(),
            FormatError::NoLinuxManifest
        );
    }
}
