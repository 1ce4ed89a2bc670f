//! Skill images in the exact format `skillctl` writes (see FORMAT.md), built
//! in memory and published to a registry or an OCI image layout.
//!
//! - [`SkillImage`] builds a [`BuiltImage`]: a deterministic tar+gzip layer
//!   (walk order, fixed mtime/uid/gid/mode, no gzip name or time), the OCI
//!   config whose `rootfs.diff_ids` is the digest of the uncompressed tar,
//!   and the manifest with skillctl's annotations and a fixed `created`
//!   time, so the same builder always yields the same digests.
//! - Escape hatches for negative tests: [`SkillImage::raw_tar`],
//!   [`SkillImage::raw_layer`], [`SkillImage::without_status`],
//!   [`SkillImage::extra_layer`], [`SkillImage::layer_media_type`] and
//!   friends, and [`RawTar`] for archives no well-behaved packer would write.
//! - [`Publisher`] speaks the registry API over plain HTTP and mirrors
//!   skillctl's lifecycle: [`Publisher::push`] tags per status,
//!   [`Publisher::promote`] rewrites only the status annotation.
//! - [`write_oci_layout`] writes an OCI image layout as skillctl's local
//!   store (`ns/name:tag` ref names) or `skopeo copy ... oci:DIR:ref` does.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::thread;

use flate2::{Compression, GzBuilder};
use reqwest::blocking::{Client, Response};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// OCI image manifest media type.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// Layer media type of the standard profile.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Layer media type of the "redhat" profile.
pub const REDHAT_LAYER_MEDIA_TYPE: &str = "application/vnd.redhat.agentskill.layer.v1.tar+gzip";
/// Config media type of the standard profile.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Config media type of the "redhat" profile.
pub const REDHAT_CONFIG_MEDIA_TYPE: &str = "application/vnd.redhat.agentskill.config.v1+json";
/// Every manifest type a client should accept; distribution 2.8 answers a
/// GET or HEAD of an OCI manifest with 404 unless the OCI type is listed.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// The lifecycle status annotation.
pub const STATUS_ANNOTATION: &str = "io.skillimage.status";
/// `org.opencontainers.image.version`.
pub const VERSION_ANNOTATION: &str = "org.opencontainers.image.version";
/// `org.opencontainers.image.title`.
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
/// `org.opencontainers.image.description`.
pub const DESCRIPTION_ANNOTATION: &str = "org.opencontainers.image.description";
/// `org.opencontainers.image.vendor`.
pub const VENDOR_ANNOTATION: &str = "org.opencontainers.image.vendor";
/// `org.opencontainers.image.created`.
pub const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";
/// `org.opencontainers.image.licenses`.
pub const LICENSES_ANNOTATION: &str = "org.opencontainers.image.licenses";
/// `io.skillimage.tags`: a JSON array of strings.
pub const TAGS_ANNOTATION: &str = "io.skillimage.tags";
/// `io.skillimage.compatibility`.
pub const COMPATIBILITY_ANNOTATION: &str = "io.skillimage.compatibility";
/// `io.skillimage.wordcount`: words in SKILL.md after its front matter.
pub const WORDCOUNT_ANNOTATION: &str = "io.skillimage.wordcount";
/// The OCI layout annotation naming a manifest in `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// The `created` annotation of every built image, fixed for reproducibility.
pub const CREATED: &str = "2025-01-01T00:00:00Z";
/// The mtime of every tar entry (2025-01-01T00:00:00Z).
pub const TAR_MTIME: u64 = 1_735_689_600;
/// The namespace used when none is given.
pub const DEFAULT_NAMESPACE: &str = "examples";

/// The `sha256:<hex>` digest of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A skill image's lifecycle state (`io.skillimage.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// `draft`: tagged `<version>-draft`.
    Draft,
    /// `testing`: tagged `<version>-testing`.
    Testing,
    /// `published`: tagged `<version>` and `latest`.
    Published,
    /// `deprecated`: tagged `<version>`; `latest` is not moved.
    Deprecated,
    /// `archived`: untagged, reachable by digest only.
    Archived,
}

impl Status {
    /// The annotation value.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Testing => "testing",
            Status::Published => "published",
            Status::Deprecated => "deprecated",
            Status::Archived => "archived",
        }
    }

    /// Parses an annotation value.
    pub fn parse(value: &str) -> Option<Status> {
        [
            Status::Draft,
            Status::Testing,
            Status::Published,
            Status::Deprecated,
            Status::Archived,
        ]
        .into_iter()
        .find(|s| s.as_str() == value)
    }

    /// The tags skillctl puts on an image of `version` in this state.
    pub fn tags(self, version: &str) -> Vec<String> {
        match self {
            Status::Draft => vec![format!("{version}-draft")],
            Status::Testing => vec![format!("{version}-testing")],
            Status::Published => vec![version.to_owned(), "latest".to_owned()],
            Status::Deprecated => vec![version.to_owned()],
            Status::Archived => Vec::new(),
        }
    }

    /// The state a promotion to `self` starts from (`None` for draft).
    pub fn previous(self) -> Option<Status> {
        match self {
            Status::Draft => None,
            Status::Testing => Some(Status::Draft),
            Status::Published => Some(Status::Testing),
            Status::Deprecated => Some(Status::Published),
            Status::Archived => Some(Status::Deprecated),
        }
    }
}

/// skillctl's media type profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// Plain OCI layer and config media types.
    #[default]
    Standard,
    /// `application/vnd.redhat.agentskill.*` layer and config media types.
    Redhat,
}

impl Profile {
    /// The layer media type.
    pub fn layer_media_type(self) -> &'static str {
        match self {
            Profile::Standard => LAYER_MEDIA_TYPE,
            Profile::Redhat => REDHAT_LAYER_MEDIA_TYPE,
        }
    }

    /// The config media type.
    pub fn config_media_type(self) -> &'static str {
        match self {
            Profile::Standard => CONFIG_MEDIA_TYPE,
            Profile::Redhat => REDHAT_CONFIG_MEDIA_TYPE,
        }
    }
}

/// A content-addressed blob and its media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// The media type its descriptor carries.
    pub media_type: String,
    /// `sha256:<hex>` of `bytes`.
    pub digest: String,
    /// The content.
    pub bytes: Vec<u8>,
}

impl Blob {
    /// A blob of `bytes`, its digest computed.
    pub fn new(media_type: impl Into<String>, bytes: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.into(),
            digest: sha256_digest(&bytes),
            bytes,
        }
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Its descriptor.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size(),
            platform: None,
            annotations: BTreeMap::new(),
        }
    }
}

/// An OCI descriptor, fields in the order Go's image-spec marshals them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The referenced content's media type.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Present in an index's entries.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Present in an index's entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// An image index entry's platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// `amd64`.
    pub architecture: String,
    /// `linux`.
    pub os: String,
}

/// An OCI image manifest, fields in the order Go's image-spec marshals them
/// (as skillctl's pack and promote write it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// [`MANIFEST_MEDIA_TYPE`] for skillctl's images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Absent for skillctl's images (they are images, not artifacts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The image config.
    pub config: Descriptor,
    /// The layers; skillctl writes exactly one.
    pub layers: Vec<Descriptor>,
    /// All skill metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Manifest {
    /// Parses manifest JSON, panicking with the text if it is not one.
    pub fn parse(bytes: &[u8]) -> Manifest {
        serde_json::from_slice(bytes).unwrap_or_else(|e| {
            panic!(
                "not an image manifest ({e}): {}",
                String::from_utf8_lossy(bytes)
            )
        })
    }

    /// Compact JSON, as Go's `json.Marshal` writes it.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a manifest serializes")
    }

    /// The status annotation, if any.
    pub fn status(&self) -> Option<&str> {
        self.annotations.get(STATUS_ANNOTATION).map(String::as_str)
    }
}

/// An OCI image index (also a layout's `index.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// [`INDEX_MEDIA_TYPE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests it lists.
    pub manifests: Vec<Descriptor>,
}

impl Index {
    /// An index of `manifests`.
    pub fn new(manifests: Vec<Descriptor>) -> Index {
        Index {
            schema_version: 2,
            media_type: Some(INDEX_MEDIA_TYPE.to_owned()),
            manifests,
        }
    }

    /// Parses index JSON, panicking with the text if it is not one.
    pub fn parse(bytes: &[u8]) -> Index {
        serde_json::from_slice(bytes).unwrap_or_else(|e| {
            panic!(
                "not an image index ({e}): {}",
                String::from_utf8_lossy(bytes)
            )
        })
    }

    /// Compact JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an index serializes")
    }
}

/// The OCI image config skillctl writes: Go marshals the empty `config`
/// struct as `{}` (`omitempty` does not apply to structs).
#[derive(Serialize)]
struct ImageConfig<'a> {
    architecture: &'a str,
    os: &'a str,
    config: serde_json::Map<String, serde_json::Value>,
    rootfs: RootFs<'a>,
}

#[derive(Serialize)]
struct RootFs<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    diff_ids: Vec<String>,
}

/// Builds a skill image. Without overrides, the result is what
/// `skillctl pack` (then `skillctl promote` to the chosen status) produces
/// for a skill directory holding the given files, a generated `SKILL.md`
/// and a generated `skill.yaml`.
#[derive(Debug, Clone)]
pub struct SkillImage {
    name: String,
    namespace: String,
    version: String,
    description: String,
    display_name: Option<String>,
    license: Option<String>,
    compatibility: Option<String>,
    tags: Vec<String>,
    status: Option<Status>,
    profile: Profile,
    created: String,
    /// Keyed by path components, which sorts in `filepath.Walk` order;
    /// `None` is a directory.
    entries: BTreeMap<Vec<String>, Option<Vec<u8>>>,
    raw_tar: Option<Vec<u8>>,
    raw_layer: Option<Vec<u8>>,
    extra_layers: Vec<Blob>,
    layer_media_type: Option<String>,
    config_media_type: Option<String>,
    manifest_media_type: Option<Option<String>>,
    artifact_type: Option<String>,
    set_annotations: BTreeMap<String, String>,
    removed_annotations: BTreeSet<String>,
}

impl SkillImage {
    /// A `published` skill `name` at `version` in namespace
    /// [`DEFAULT_NAMESPACE`], standard profile.
    pub fn new(name: &str, version: &str) -> SkillImage {
        SkillImage {
            name: name.to_owned(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            version: version.to_owned(),
            description: format!("The {name} skill, used in tests."),
            display_name: None,
            license: None,
            compatibility: None,
            tags: Vec::new(),
            status: Some(Status::Published),
            profile: Profile::Standard,
            created: CREATED.to_owned(),
            entries: BTreeMap::new(),
            raw_tar: None,
            raw_layer: None,
            extra_layers: Vec::new(),
            layer_media_type: None,
            config_media_type: None,
            manifest_media_type: None,
            artifact_type: None,
            set_annotations: BTreeMap::new(),
            removed_annotations: BTreeSet::new(),
        }
    }

    /// The SkillCard namespace (the repository is `namespace/name`).
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = namespace.to_owned();
        self
    }

    /// The SkillCard description (also the description annotation,
    /// truncated to 256 bytes).
    pub fn description(mut self, description: &str) -> Self {
        self.description = description.to_owned();
        self
    }

    /// The SkillCard `display-name` (then the title annotation).
    pub fn display_name(mut self, display_name: &str) -> Self {
        self.display_name = Some(display_name.to_owned());
        self
    }

    /// The SkillCard `license` (then the licenses annotation).
    pub fn license(mut self, license: &str) -> Self {
        self.license = Some(license.to_owned());
        self
    }

    /// The SkillCard `compatibility` (then its annotation).
    pub fn compatibility(mut self, compatibility: &str) -> Self {
        self.compatibility = Some(compatibility.to_owned());
        self
    }

    /// The SkillCard `tags` (then the `io.skillimage.tags` annotation).
    pub fn tags(mut self, tags: &[&str]) -> Self {
        self.tags = tags.iter().map(|t| (*t).to_owned()).collect();
        self
    }

    /// The lifecycle status (default `published`).
    pub fn status(mut self, status: Status) -> Self {
        self.status = Some(status);
        self
    }

    /// The media type profile (default standard).
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = profile;
        self
    }

    /// The `created` annotation (default [`CREATED`]).
    pub fn created(mut self, created: &str) -> Self {
        self.created = created.to_owned();
        self
    }

    /// Adds a file at `path` (relative, `/`-separated, plain components).
    /// Parent directories get their own entries. A `SKILL.md` or
    /// `skill.yaml` given here replaces the generated one.
    pub fn file(mut self, path: &str, contents: impl AsRef<[u8]>) -> Self {
        let components = plain_components(path);
        for depth in 1..components.len() {
            self.entries
                .entry(components[..depth].to_vec())
                .or_insert(None);
        }
        self.entries
            .insert(components, Some(contents.as_ref().to_vec()));
        self
    }

    /// Adds a directory entry (for an empty directory; parents of files get
    /// theirs anyway).
    pub fn dir(mut self, path: &str) -> Self {
        let components = plain_components(path);
        for depth in 1..=components.len() {
            self.entries
                .entry(components[..depth].to_vec())
                .or_insert(None);
        }
        self
    }

    /// Uses `tar` (uncompressed) as the layer's content instead of the
    /// files: gzipped by the builder, its digest the config's diff_id.
    /// [`BuiltImage::files`] is then empty.
    pub fn raw_tar(mut self, tar: Vec<u8>) -> Self {
        self.raw_tar = Some(tar);
        self
    }

    /// Uses `bytes` verbatim as the layer blob (not necessarily gzip); the
    /// diff_id is then the digest of `bytes` too. [`BuiltImage::files`] is
    /// then empty.
    pub fn raw_layer(mut self, bytes: Vec<u8>) -> Self {
        self.raw_layer = Some(bytes);
        self
    }

    /// Appends a second (third, ...) layer after the skill's own.
    pub fn extra_layer(mut self, blob: Blob) -> Self {
        self.extra_layers.push(blob);
        self
    }

    /// Overrides the layer's media type.
    pub fn layer_media_type(mut self, media_type: &str) -> Self {
        self.layer_media_type = Some(media_type.to_owned());
        self
    }

    /// Overrides the config's media type.
    pub fn config_media_type(mut self, media_type: &str) -> Self {
        self.config_media_type = Some(media_type.to_owned());
        self
    }

    /// Overrides the manifest's `mediaType` field (`None` leaves it out).
    /// The registry is still told [`MANIFEST_MEDIA_TYPE`] on push.
    pub fn manifest_media_type(mut self, media_type: Option<&str>) -> Self {
        self.manifest_media_type = Some(media_type.map(str::to_owned));
        self
    }

    /// Sets an `artifactType`, which skillctl never does.
    pub fn artifact_type(mut self, artifact_type: &str) -> Self {
        self.artifact_type = Some(artifact_type.to_owned());
        self
    }

    /// Sets (or overrides) a manifest annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.removed_annotations.remove(key);
        self.set_annotations
            .insert(key.to_owned(), value.to_owned());
        self
    }

    /// Leaves a manifest annotation out.
    pub fn remove_annotation(mut self, key: &str) -> Self {
        self.set_annotations.remove(key);
        self.removed_annotations.insert(key.to_owned());
        self
    }

    /// Leaves the status annotation out (not a skill image to skillctl).
    pub fn without_status(mut self) -> Self {
        self.status = None;
        self
    }

    /// The repository skillctl's store names it by: `namespace/name`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The generated `SKILL.md`: front matter, then a short body naming the
    /// version, so every version installs different bytes.
    pub fn default_skill_md(&self) -> String {
        format!(
            "---\nname: {name}\ndescription: {description}\n---\n\n# {name}\n\n\
             {description}\n\nThis is version {version}.\n",
            name = self.name,
            description = self.description,
            version = self.version,
        )
    }

    /// The generated SkillCard.
    pub fn default_skill_yaml(&self) -> String {
        let mut yaml = format!(
            "apiVersion: skillimage.io/v1alpha1\nkind: SkillCard\nmetadata:\n  \
             name: {}\n  namespace: {}\n  version: {}\n  description: {}\n",
            self.name,
            self.namespace,
            self.version,
            yaml_string(&self.description),
        );
        if let Some(display_name) = &self.display_name {
            yaml.push_str(&format!("  display-name: {}\n", yaml_string(display_name)));
        }
        if let Some(license) = &self.license {
            yaml.push_str(&format!("  license: {}\n", yaml_string(license)));
        }
        if let Some(compatibility) = &self.compatibility {
            yaml.push_str(&format!(
                "  compatibility: {}\n",
                yaml_string(compatibility)
            ));
        }
        if !self.tags.is_empty() {
            yaml.push_str("  tags:\n");
            for tag in &self.tags {
                yaml.push_str(&format!("    - {}\n", yaml_string(tag)));
            }
        }
        yaml
    }

    /// Builds the image.
    pub fn build(&self) -> BuiltImage {
        let mut entries = self.entries.clone();
        entries
            .entry(vec!["SKILL.md".to_owned()])
            .or_insert_with(|| Some(self.default_skill_md().into_bytes()));
        entries
            .entry(vec!["skill.yaml".to_owned()])
            .or_insert_with(|| Some(self.default_skill_yaml().into_bytes()));

        let mut files = BTreeMap::new();
        let mut dirs = BTreeSet::new();
        for (components, contents) in &entries {
            let path = components.join("/");
            match contents {
                Some(bytes) if path == "skill.yaml" => {
                    files.insert(path, super::card_without_provenance(bytes));
                }
                Some(bytes) => {
                    files.insert(path, bytes.clone());
                }
                None => {
                    dirs.insert(path);
                }
            }
        }

        let layer_media_type = self
            .layer_media_type
            .clone()
            .unwrap_or_else(|| self.profile.layer_media_type().to_owned());
        let (tar, layer_bytes) = match (&self.raw_layer, &self.raw_tar) {
            (Some(raw), _) => (raw.clone(), raw.clone()),
            (None, Some(tar)) => (tar.clone(), gzip(tar)),
            (None, None) => {
                let tar = build_tar(&entries);
                let gz = gzip(&tar);
                (tar, gz)
            }
        };
        if self.raw_layer.is_some() || self.raw_tar.is_some() {
            files.clear();
            dirs.clear();
        }
        let layer = Blob::new(layer_media_type, layer_bytes);

        let config_bytes = serde_json::to_vec(&ImageConfig {
            architecture: "amd64",
            os: "linux",
            config: serde_json::Map::new(),
            rootfs: RootFs {
                kind: "layers",
                diff_ids: vec![sha256_digest(&tar)],
            },
        })
        .expect("an image config serializes");
        let config_media_type = self
            .config_media_type
            .clone()
            .unwrap_or_else(|| self.profile.config_media_type().to_owned());
        let config = Blob::new(config_media_type, config_bytes);

        let skill_md = entries
            .get(&vec!["SKILL.md".to_owned()])
            .cloned()
            .flatten()
            .unwrap_or_default();
        let annotations = self.annotations(&String::from_utf8_lossy(&skill_md));

        let mut layers = vec![layer];
        layers.extend(self.extra_layers.iter().cloned());
        let manifest = Manifest {
            schema_version: 2,
            media_type: self
                .manifest_media_type
                .clone()
                .unwrap_or_else(|| Some(MANIFEST_MEDIA_TYPE.to_owned())),
            artifact_type: self.artifact_type.clone(),
            config: config.descriptor(),
            layers: layers.iter().map(Blob::descriptor).collect(),
            annotations,
        };
        BuiltImage::assemble(
            self.repository(),
            self.version.clone(),
            files,
            dirs,
            tar,
            config,
            layers,
            manifest,
        )
    }

    fn annotations(&self, skill_md: &str) -> BTreeMap<String, String> {
        let mut a = BTreeMap::new();
        let title = self.display_name.as_deref().unwrap_or(&self.name);
        a.insert(TITLE_ANNOTATION.to_owned(), title.to_owned());
        a.insert(
            DESCRIPTION_ANNOTATION.to_owned(),
            truncate_at_char_boundary(&self.description, 256).to_owned(),
        );
        a.insert(VERSION_ANNOTATION.to_owned(), self.version.clone());
        if let Some(license) = &self.license {
            a.insert(LICENSES_ANNOTATION.to_owned(), license.clone());
        }
        a.insert(VENDOR_ANNOTATION.to_owned(), self.namespace.clone());
        a.insert(CREATED_ANNOTATION.to_owned(), self.created.clone());
        if let Some(status) = self.status {
            a.insert(STATUS_ANNOTATION.to_owned(), status.as_str().to_owned());
        }
        if !self.tags.is_empty() {
            a.insert(
                TAGS_ANNOTATION.to_owned(),
                serde_json::to_string(&self.tags).expect("tags serialize"),
            );
        }
        if let Some(compatibility) = &self.compatibility {
            a.insert(COMPATIBILITY_ANNOTATION.to_owned(), compatibility.clone());
        }
        let words = strip_front_matter(skill_md).split_whitespace().count();
        if words > 0 {
            a.insert(WORDCOUNT_ANNOTATION.to_owned(), words.to_string());
        }
        for key in &self.removed_annotations {
            a.remove(key);
        }
        a.extend(self.set_annotations.clone());
        a
    }
}

/// A built image: every blob, the manifest, and what installing it should
/// produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// `namespace/name`.
    pub repository: String,
    /// The skill's version.
    pub version: String,
    /// The files a correct install produces: path (`/`-separated, relative
    /// to the skill root) → contents. Empty for raw layers.
    pub files: BTreeMap<String, Vec<u8>>,
    /// The directories in the layer. Empty for raw layers.
    pub dirs: BTreeSet<String>,
    /// The uncompressed layer (the raw layer itself for
    /// [`SkillImage::raw_layer`]).
    pub tar: Vec<u8>,
    /// The image config blob.
    pub config: Blob,
    /// The layer blobs; `layers[0]` is the skill.
    pub layers: Vec<Blob>,
    /// The manifest, parsed.
    pub manifest: Manifest,
    /// The manifest bytes, exactly as pushed.
    pub manifest_bytes: Vec<u8>,
    /// `sha256:<hex>` of `manifest_bytes`.
    pub manifest_digest: String,
}

impl BuiltImage {
    #[allow(clippy::too_many_arguments)]
    fn assemble(
        repository: String,
        version: String,
        files: BTreeMap<String, Vec<u8>>,
        dirs: BTreeSet<String>,
        tar: Vec<u8>,
        config: Blob,
        layers: Vec<Blob>,
        manifest: Manifest,
    ) -> BuiltImage {
        let manifest_bytes = manifest.to_bytes();
        BuiltImage {
            repository,
            version,
            files,
            dirs,
            tar,
            config,
            layers,
            manifest_digest: sha256_digest(&manifest_bytes),
            manifest_bytes,
            manifest,
        }
    }

    /// The skill's layer.
    pub fn layer(&self) -> &Blob {
        self.layers.first().expect("an image has a layer")
    }

    /// The skill's layer digest.
    pub fn layer_digest(&self) -> &str {
        &self.layer().digest
    }

    /// The status annotation, if present and known.
    pub fn status(&self) -> Option<Status> {
        self.manifest.status().and_then(Status::parse)
    }

    /// The tags skillctl gives this image (none without a status).
    pub fn tags(&self) -> Vec<String> {
        self.status()
            .map(|s| s.tags(&self.version))
            .unwrap_or_default()
    }

    /// The config and every layer.
    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.config).chain(self.layers.iter())
    }

    /// This image as skillctl's promotion leaves it: only the status
    /// annotation differs, so the layer digest stays and the manifest
    /// digest changes.
    pub fn with_status(&self, status: Status) -> BuiltImage {
        let mut manifest = self.manifest.clone();
        manifest
            .annotations
            .insert(STATUS_ANNOTATION.to_owned(), status.as_str().to_owned());
        BuiltImage::assemble(
            self.repository.clone(),
            self.version.clone(),
            self.files.clone(),
            self.dirs.clone(),
            self.tar.clone(),
            self.config.clone(),
            self.layers.clone(),
            manifest,
        )
    }

    /// An image index holding this manifest for linux/amd64.
    pub fn index(&self) -> Blob {
        let index = Index::new(vec![Descriptor {
            media_type: MANIFEST_MEDIA_TYPE.to_owned(),
            digest: self.manifest_digest.clone(),
            size: self.manifest_bytes.len() as u64,
            annotations: BTreeMap::new(),
            platform: Some(Platform {
                architecture: "amd64".to_owned(),
                os: "linux".to_owned(),
            }),
        }]);
        Blob::new(INDEX_MEDIA_TYPE, index.to_bytes())
    }
}

/// Writes `tar` as gzip the way skillctl's Go `gzip.Writer` does it: no
/// file name, mtime 0, so the bytes depend only on the input.
pub fn gzip(tar: &[u8]) -> Vec<u8> {
    let mut encoder = GzBuilder::new().write(Vec::new(), Compression::default());
    encoder.write_all(tar).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

/// Splits a relative path into plain components, rejecting anything a
/// well-behaved skill directory cannot hold (use [`RawTar`] for those).
fn plain_components(path: &str) -> Vec<String> {
    let components: Vec<String> = path.split('/').map(str::to_owned).collect();
    for component in &components {
        assert!(
            !component.is_empty() && component != "." && component != "..",
            "skill path {path:?} is not relative with plain components; build hostile \
             archives with RawTar"
        );
        assert!(
            !component.starts_with('.'),
            "skill path {path:?} is hidden, and skillctl skips hidden files; build such \
             archives with RawTar"
        );
    }
    components
}

/// The skill directory as skillctl's `createLayer` writes it: entries in
/// `filepath.Walk` order, no root entry, directories without a trailing
/// slash, Go's mode bits (type bits included), uid/gid 0, fixed mtime.
fn build_tar(entries: &BTreeMap<Vec<String>, Option<Vec<u8>>>) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (components, contents) in entries {
        let path = components.join("/");
        let mut header = tar::Header::new_ustar();
        header.set_mtime(TAR_MTIME);
        header.set_uid(0);
        header.set_gid(0);
        let data: &[u8] = match contents {
            Some(bytes) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o100644);
                bytes
            }
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o40755);
                &[]
            }
        };
        header.set_size(data.len() as u64);
        builder
            .append_data(&mut header, &path, data)
            .unwrap_or_else(|e| panic!("add {path:?} to the layer: {e}"));
    }
    builder.into_inner().expect("finish the layer tar")
}

fn strip_front_matter(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("---") else {
        return text;
    };
    match rest.find("\n---") {
        Some(end) => &rest[end + 4..],
        None => text,
    }
}

fn truncate_at_char_boundary(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A YAML scalar: JSON's string syntax is valid YAML.
fn yaml_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

/// A tar archive written entry by entry with names and link targets taken
/// verbatim: `../escape`, `/etc/passwd`, symlinks, hard links, devices,
/// fifos, duplicates. For tests of the unpacker's rules.
#[derive(Debug, Default)]
pub struct RawTar {
    bytes: Vec<u8>,
}

impl RawTar {
    /// An empty archive.
    pub fn new() -> RawTar {
        RawTar::default()
    }

    /// A regular file, mode 0644.
    pub fn file(self, name: &str, contents: &[u8]) -> Self {
        self.entry(name, tar::EntryType::Regular, 0o644, contents, "")
    }

    /// A regular file with the given mode bits (e.g. setuid 0o4755).
    pub fn file_with_mode(self, name: &str, mode: u32, contents: &[u8]) -> Self {
        self.entry(name, tar::EntryType::Regular, mode, contents, "")
    }

    /// A directory, mode 0755.
    pub fn dir(self, name: &str) -> Self {
        self.entry(name, tar::EntryType::Directory, 0o755, &[], "")
    }

    /// A symbolic link to `target`.
    pub fn symlink(self, name: &str, target: &str) -> Self {
        self.entry(name, tar::EntryType::Symlink, 0o777, &[], target)
    }

    /// A hard link to `target`.
    pub fn hardlink(self, name: &str, target: &str) -> Self {
        self.entry(name, tar::EntryType::Link, 0o644, &[], target)
    }

    /// A named pipe.
    pub fn fifo(self, name: &str) -> Self {
        self.entry(name, tar::EntryType::Fifo, 0o644, &[], "")
    }

    /// A character device.
    pub fn char_device(self, name: &str) -> Self {
        self.entry(name, tar::EntryType::Char, 0o644, &[], "")
    }

    /// Any entry. `name` and `link` must fit the 100-byte ustar fields.
    pub fn entry(
        mut self,
        name: &str,
        kind: tar::EntryType,
        mode: u32,
        contents: &[u8],
        link: &str,
    ) -> Self {
        let mut header = tar::Header::new_ustar();
        {
            let old = header.as_old_mut();
            assert!(
                name.len() <= old.name.len(),
                "raw tar name {name:?} too long"
            );
            assert!(
                link.len() <= old.linkname.len(),
                "raw tar link {link:?} too long"
            );
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_mtime(TAR_MTIME);
        header.set_uid(0);
        header.set_gid(0);
        header.set_size(contents.len() as u64);
        header.set_cksum();
        self.bytes.extend_from_slice(header.as_bytes());
        self.bytes.extend_from_slice(contents);
        let padding = (512 - contents.len() % 512) % 512;
        self.bytes.extend(std::iter::repeat_n(0u8, padding));
        self
    }

    /// The archive, with its end-of-archive marker.
    pub fn build(mut self) -> Vec<u8> {
        self.bytes.extend(std::iter::repeat_n(0u8, 1024));
        self.bytes
    }
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The repository pushed to.
    pub repository: String,
    /// The manifest's digest.
    pub manifest_digest: String,
    /// The skill layer's digest.
    pub layer_digest: String,
    /// The config's digest.
    pub config_digest: String,
    /// The tags set.
    pub tags: Vec<String>,
}

/// What a promotion did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promoted {
    /// The state promoted from.
    pub from: Status,
    /// The state promoted to.
    pub to: Status,
    /// The manifest read (the one the previous state's tag pointed at).
    pub old_manifest_digest: String,
    /// The rewritten manifest.
    pub manifest_digest: String,
    /// The layer digest, the same in both.
    pub layer_digest: String,
    /// The tags set to the new manifest.
    pub tags: Vec<String>,
}

/// What pushing an index did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedIndex {
    /// The index's digest (what the tags point at).
    pub index_digest: String,
    /// The platform manifest's digest inside it.
    pub manifest_digest: String,
    /// The skill layer's digest.
    pub layer_digest: String,
    /// The tags set.
    pub tags: Vec<String>,
}

/// A manifest as a registry served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The body.
    pub bytes: Vec<u8>,
    /// `sha256:<hex>` of the body, computed here.
    pub digest: String,
    /// The `Content-Type` it was served with.
    pub media_type: String,
}

/// Publishes images to a registry over plain HTTP, as skillctl (oras-go)
/// does. Every method panics with the registry's answer on failure.
///
/// Usable from plain and async tests alike: inside a tokio runtime each
/// request runs on a scoped thread, because reqwest's blocking client
/// refuses to run on a runtime thread.
#[derive(Debug, Clone)]
pub struct Publisher {
    host: String,
    client: Client,
}

impl Publisher {
    /// A publisher for `host` (`127.0.0.1:PORT`).
    pub fn new(host: impl Into<String>) -> Publisher {
        Self::build(host.into(), None)
    }

    /// A publisher that sends Basic credentials with every request (for a
    /// registry started with [`super::registry::Registry::start_with_htpasswd`]).
    pub fn with_basic(host: impl Into<String>, user: &str, password: &str) -> Publisher {
        Self::build(host.into(), Some((user, password)))
    }

    fn build(host: String, basic: Option<(&str, &str)>) -> Publisher {
        // reqwest is built with `rustls-no-provider` (as the library uses it) and
        // refuses to build even a plain-HTTP client without a process-wide
        // crypto provider; another test may have installed one already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some((user, password)) = basic {
            use base64::Engine as _;
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            headers.insert(
                reqwest::header::AUTHORIZATION,
                format!("Basic {token}").parse().expect("a header value"),
            );
        }
        let client = off_runtime(|| {
            Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .default_headers(headers)
                .build()
                .expect("build the HTTP client")
        });
        Publisher { host, client }
    }

    /// The registry host this publisher talks to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `HOST/REPO:TAG`, a reference for skopeo (`docker://...`) or the
    /// daemon's config.
    pub fn reference(&self, repository: &str, tag: &str) -> String {
        format!("{}/{repository}:{tag}", self.host)
    }

    /// Pushes `image` to its repository (`namespace/name`) with the tags
    /// its status gets from skillctl.
    pub fn push(&self, image: &BuiltImage) -> Pushed {
        let tags = image.tags();
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        self.push_to(&image.repository, image, &tags)
    }

    /// Pushes `image` to `repository` under exactly `tags` (none: by digest
    /// only).
    pub fn push_to(&self, repository: &str, image: &BuiltImage, tags: &[&str]) -> Pushed {
        for blob in image.blobs() {
            self.push_blob(repository, blob);
        }
        let digest = self.put_manifest(
            repository,
            &image.manifest_digest,
            MANIFEST_MEDIA_TYPE,
            &image.manifest_bytes,
        );
        for tag in tags {
            self.put_manifest(repository, tag, MANIFEST_MEDIA_TYPE, &image.manifest_bytes);
        }
        Pushed {
            repository: repository.to_owned(),
            manifest_digest: digest,
            layer_digest: image.layer_digest().to_owned(),
            config_digest: image.config.digest.clone(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    /// Pushes `image` and an index wrapping it (linux/amd64); the tags its
    /// status gets point at the index.
    pub fn push_index(&self, image: &BuiltImage) -> PushedIndex {
        let repository = &image.repository;
        let pushed = self.push_to(repository, image, &[]);
        let index = image.index();
        let index_digest =
            self.put_manifest(repository, &index.digest, INDEX_MEDIA_TYPE, &index.bytes);
        let tags = image.tags();
        for tag in &tags {
            self.put_manifest(repository, tag, INDEX_MEDIA_TYPE, &index.bytes);
        }
        PushedIndex {
            index_digest,
            manifest_digest: pushed.manifest_digest,
            layer_digest: pushed.layer_digest,
            tags,
        }
    }

    /// Uploads `blob` unless the repository has it: a monolithic upload
    /// (`POST` to open, `PUT ?digest=` with the bytes).
    pub fn push_blob(&self, repository: &str, blob: &Blob) {
        let url = format!("{}/blobs/{}", self.base(repository), blob.digest);
        let head = self.send(|c| c.head(&url));
        if head.status() == StatusCode::OK {
            return;
        }
        let start = self.send(|c| c.post(format!("{}/blobs/uploads/", self.base(repository))));
        let location = expect_status(start, StatusCode::ACCEPTED, "start a blob upload")
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .expect("the upload answer has a Location")
            .to_owned();
        let mut upload = if location.starts_with("http") {
            location
        } else {
            format!("http://{}{location}", self.host)
        };
        upload.push(if upload.contains('?') { '&' } else { '?' });
        upload.push_str("digest=");
        upload.push_str(&blob.digest);
        let bytes = blob.bytes.clone();
        let done = self.send(|c| {
            c.put(&upload)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(bytes)
        });
        expect_status(
            done,
            StatusCode::CREATED,
            &format!("upload blob {}", blob.digest),
        );
    }

    /// Links blob `digest` from repository `from` into `repository` without
    /// uploading it again (a cross-repository mount). Returns false when the
    /// registry did not mount it (it then opened an upload, left unused).
    pub fn mount_blob(&self, repository: &str, digest: &str, from: &str) -> bool {
        let url = format!(
            "{}/blobs/uploads/?mount={digest}&from={from}",
            self.base(repository)
        );
        self.send(|c| c.post(&url)).status() == StatusCode::CREATED
    }

    /// Puts manifest `bytes` under `reference` (a tag or its digest) with
    /// `Content-Type: media_type`; returns the digest the registry reports.
    pub fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let url = format!("{}/manifests/{reference}", self.base(repository));
        let body = bytes.to_vec();
        let response = self.send(|c| {
            c.put(&url)
                .header(reqwest::header::CONTENT_TYPE, media_type)
                .body(body)
        });
        let response = expect_status(
            response,
            StatusCode::CREATED,
            &format!("put manifest {repository}:{reference}"),
        );
        let digest = docker_content_digest(&response).expect("the registry reports the digest");
        assert_eq!(
            digest,
            sha256_digest(bytes),
            "the registry stored a different manifest digest"
        );
        digest
    }

    /// GETs a manifest (with the OCI `Accept` types); `None` on 404.
    pub fn manifest(&self, repository: &str, reference: &str) -> Option<Fetched> {
        let url = format!("{}/manifests/{reference}", self.base(repository));
        let response = self.send(|c| c.get(&url).header(reqwest::header::ACCEPT, MANIFEST_ACCEPT));
        if response.status() == StatusCode::NOT_FOUND {
            return None;
        }
        let response = expect_status(
            response,
            StatusCode::OK,
            &format!("get manifest {repository}:{reference}"),
        );
        let media_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = self
            .read_body(response)
            .unwrap_or_else(|e| panic!("read manifest {repository}:{reference}: {e}"));
        Some(Fetched {
            digest: sha256_digest(&bytes),
            bytes,
            media_type,
        })
    }

    /// HEADs a manifest (with the OCI `Accept` types) and returns its
    /// `Docker-Content-Digest`; `None` on 404.
    pub fn head_manifest(&self, repository: &str, reference: &str) -> Option<String> {
        let url = format!("{}/manifests/{reference}", self.base(repository));
        let response = self.send(|c| {
            c.head(&url)
                .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT)
        });
        if response.status() == StatusCode::NOT_FOUND {
            return None;
        }
        let response = expect_status(
            response,
            StatusCode::OK,
            &format!("head manifest {repository}:{reference}"),
        );
        Some(docker_content_digest(&response).expect("the registry reports the digest"))
    }

    /// GETs a blob's bytes.
    pub fn blob(&self, repository: &str, digest: &str) -> Vec<u8> {
        let url = format!("{}/blobs/{digest}", self.base(repository));
        let response = self.send(|c| c.get(&url));
        let response = expect_status(response, StatusCode::OK, &format!("get blob {digest}"));
        self.read_body(response)
            .unwrap_or_else(|e| panic!("read blob {digest}: {e}"))
    }

    /// The repository's tags, sorted (distribution 2.8 does not sort);
    /// empty if the repository does not exist.
    pub fn tags(&self, repository: &str) -> Vec<String> {
        #[derive(Deserialize)]
        struct TagList {
            tags: Option<Vec<String>>,
        }
        let url = format!("{}/tags/list", self.base(repository));
        let response = self.send(|c| c.get(&url));
        if response.status() == StatusCode::NOT_FOUND {
            return Vec::new();
        }
        let response = expect_status(
            response,
            StatusCode::OK,
            &format!("list tags of {repository}"),
        );
        let body = self
            .read_body(response)
            .unwrap_or_else(|e| panic!("read the tag list of {repository}: {e}"));
        let list: TagList = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "tag list of {repository} ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        });
        let mut tags = list.tags.unwrap_or_default();
        tags.sort();
        tags
    }

    /// Points `new_tag` at what `reference` (a tag or digest) points at,
    /// keeping its media type; returns the digest.
    pub fn tag(&self, repository: &str, reference: &str, new_tag: &str) -> String {
        let fetched = self
            .manifest(repository, reference)
            .unwrap_or_else(|| panic!("{repository}:{reference} does not exist"));
        self.put_manifest(repository, new_tag, &fetched.media_type, &fetched.bytes)
    }

    /// Deletes a manifest by digest; distribution removes every tag
    /// pointing at it.
    pub fn delete_manifest(&self, repository: &str, digest: &str) {
        let url = format!("{}/manifests/{digest}", self.base(repository));
        let response = self.send(|c| c.delete(&url));
        expect_status(
            response,
            StatusCode::ACCEPTED,
            &format!("delete manifest {repository}@{digest}"),
        );
    }

    /// `skillctl promote`: reads the manifest the previous state's tag
    /// points at, rewrites only its status annotation, pushes it and tags
    /// it per the table (`published` also moves `latest`; `deprecated`
    /// leaves `latest`; `archived` deletes the version tag by deleting the
    /// deprecated manifest).
    pub fn promote(&self, repository: &str, version: &str, to: Status) -> Promoted {
        let from = to
            .previous()
            .unwrap_or_else(|| panic!("nothing promotes to {}", to.as_str()));
        let from_tag = from
            .tags(version)
            .into_iter()
            .next()
            .expect("every promotable state has a tag");
        let fetched = self.manifest(repository, &from_tag).unwrap_or_else(|| {
            panic!("cannot promote {repository} {version}: {from_tag} does not exist")
        });
        let mut manifest = Manifest::parse(&fetched.bytes);
        assert_eq!(
            manifest.status(),
            Some(from.as_str()),
            "{repository}:{from_tag} is not {} (skillctl promotes one step at a time)",
            from.as_str()
        );
        manifest
            .annotations
            .insert(STATUS_ANNOTATION.to_owned(), to.as_str().to_owned());
        let bytes = manifest.to_bytes();
        let digest = sha256_digest(&bytes);
        self.put_manifest(repository, &digest, MANIFEST_MEDIA_TYPE, &bytes);
        let tags = to.tags(version);
        for tag in &tags {
            self.put_manifest(repository, tag, MANIFEST_MEDIA_TYPE, &bytes);
        }
        if to == Status::Archived {
            self.delete_manifest(repository, &fetched.digest);
        }
        Promoted {
            from,
            to,
            old_manifest_digest: fetched.digest,
            manifest_digest: digest,
            layer_digest: manifest
                .layers
                .first()
                .map(|l| l.digest.clone())
                .expect("a skill manifest has a layer"),
            tags,
        }
    }

    fn base(&self, repository: &str) -> String {
        format!("http://{}/v2/{repository}", self.host)
    }

    fn send(
        &self,
        build: impl FnOnce(&Client) -> reqwest::blocking::RequestBuilder + Send,
    ) -> Response {
        off_runtime(|| {
            let request = build(&self.client);
            request
                .send()
                .unwrap_or_else(|e| panic!("request to registry {}: {e}", self.host))
        })
    }

    fn read_body(&self, response: Response) -> reqwest::Result<Vec<u8>> {
        off_runtime(|| response.bytes().map(|b| b.to_vec()))
    }
}

/// Runs `f` on a scoped thread when called from a tokio runtime thread
/// (where reqwest's blocking client panics), else right here.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    thread::scope(|scope| match scope.spawn(f).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

fn expect_status(response: Response, expected: StatusCode, what: &str) -> Response {
    if response.status() == expected {
        return response;
    }
    let status = response.status();
    let body = off_runtime(|| response.text().unwrap_or_default());
    panic!("{what}: expected {expected}, registry answered {status}: {body}");
}

fn docker_content_digest(response: &Response) -> Option<String> {
    response
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Writes an OCI image layout at `dir` holding `entries`, each manifest
/// named by its `org.opencontainers.image.ref.name` (skillctl's store uses
/// `namespace/name:tag`; skopeo's `oci:DIR:REF` uses `REF`). `index.json`
/// lists the entries in the given order; an existing `index.json` is
/// replaced, existing blobs are kept.
pub fn write_oci_layout(dir: &Path, entries: &[(&str, &BuiltImage)]) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap_or_else(|e| panic!("create {}: {e}", blobs.display()));
    let write = |digest: &str, bytes: &[u8]| {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        let path = blobs.join(hex);
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    };
    let mut manifests = Vec::new();
    for (ref_name, image) in entries {
        for blob in image.blobs() {
            write(&blob.digest, &blob.bytes);
        }
        write(&image.manifest_digest, &image.manifest_bytes);
        manifests.push(Descriptor {
            media_type: MANIFEST_MEDIA_TYPE.to_owned(),
            digest: image.manifest_digest.clone(),
            size: image.manifest_bytes.len() as u64,
            annotations: BTreeMap::from([(REF_NAME_ANNOTATION.to_owned(), (*ref_name).to_owned())]),
            platform: None,
        });
    }
    let files = [
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        ("index.json", Index::new(manifests).to_bytes()),
    ];
    for (name, bytes) in files {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}
