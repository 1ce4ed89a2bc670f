//! Step 1 of a pass: what the config wants. The digest to install (a
//! pinned digest; one HEAD for a followed tag; a tag list plus HEADs, best
//! version first, for a channel), its manifest, and what is installed.
//!
//! Must NOT touch a target or the state file; a digest already known from
//! the state record costs no further request.

use std::collections::HashMap;
use std::sync::Mutex as StdMutex;

use crate::channel::{self, Channel, Lookup, SelectError, VersionTag};
use crate::config::{Selector, Skill};
use crate::error::{Error, Result};
use crate::manifest::{self, Parsed, SkillManifest};
use crate::reference::{Digest, ImageRef};
use crate::source::{Source, SourceError};
use crate::state::{Installed, SkillRecord};

use super::report::now_rfc3339;
use super::Engine;

/// What resolution chose.
#[derive(Debug, Clone)]
pub(super) struct Desired {
    /// The tag it was resolved through (a pinned tag, or the version tag
    /// a channel picked); `None` for a pinned digest or an archived one.
    pub(super) tag: Option<String>,
    /// What the tag (or pin) points at: an index or a manifest.
    pub(super) ref_digest: Digest,
    /// The image manifest, when it had to be fetched.
    pub(super) manifest: Option<SkillManifest>,
    /// The image manifest as recorded (known without fetching).
    pub(super) known: Installed,
    /// A deprecated version kept because it is installed and nothing newer
    /// qualifies.
    pub(super) kept_deprecated: bool,
    /// The installed version's tag is gone from the registry (archived);
    /// it stays installed (or is removed, per `on_archived`).
    pub(super) archived: bool,
}

impl Desired {
    /// A version already known from the record: nothing to fetch.
    fn known(ref_digest: Digest, tag: Option<String>, known: Installed) -> Desired {
        Desired {
            tag,
            ref_digest,
            manifest: None,
            known,
            kept_deprecated: false,
            archived: false,
        }
    }

    /// The held version (a hold or rollback): nothing resolved.
    pub(super) fn held(installed: Installed) -> Desired {
        Desired::known(installed.manifest_digest.clone(), None, installed)
    }

    /// The installed version `k`, kept although its tag is gone.
    fn archived(prev: Option<&SkillRecord>, k: Installed) -> Desired {
        Desired {
            archived: true,
            ..Desired::known(
                prev.and_then(|p| p.ref_digest.clone())
                    .unwrap_or_else(|| k.manifest_digest.clone()),
                None,
                k,
            )
        }
    }
}

/// What the record knows `ref_digest` points at, when it is the one it
/// recorded.
fn known_as(prev: Option<&SkillRecord>, ref_digest: &Digest) -> Option<Installed> {
    prev.filter(|p| p.ref_digest.as_ref() == Some(ref_digest))
        .and_then(|p| p.current.clone())
}

/// What is installed now (in some target): kept if its tag is gone.
fn installed_now(prev: Option<&SkillRecord>) -> Option<Installed> {
    let p = prev?;
    let current = p.current.as_ref()?;
    p.targets
        .values()
        .any(|t| {
            t.installed
                .as_ref()
                .is_some_and(|i| i.layer_digest == current.layer_digest)
        })
        .then(|| current.clone())
}

/// What the record (`installed`) shows of a manifest.
pub(super) fn installed_from(m: &SkillManifest) -> Result<Installed> {
    let status = m.status.clone().map_err(|e| Error::Format {
        reference: m.digest.to_string(),
        reason: e.to_string(),
    })?;
    Ok(Installed {
        manifest_digest: m.digest.clone(),
        layer_digest: m.layer.digest.clone(),
        version: m.version.clone(),
        status,
        installed_at: now_rfc3339(),
    })
}

impl Engine {
    /// The manifest's bytes, from the cache or the source (verified).
    pub(super) async fn manifest_bytes(
        &self,
        source: &impl Source,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<Vec<u8>> {
        if let Some(b) = self.cache.read_manifest(digest) {
            return Ok(b);
        }
        let bytes = source.fetch_manifest(image, digest).await?;
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(Error::DigestMismatch {
                what: format!("manifest of {image}"),
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        if !self.dry_run {
            self.cache.store_manifest(digest, &bytes)?;
        }
        Ok(bytes)
    }

    /// Fetches a manifest by digest, verifies it, follows an index to its
    /// linux manifest, and checks the skillimage rules.
    pub(super) async fn load_manifest(
        &self,
        source: &impl Source,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<SkillManifest> {
        let mut digest = digest.clone();
        for _ in 0..2 {
            let bytes = self.manifest_bytes(source, image, &digest).await?;
            let format_err = |e: manifest::FormatError| Error::Format {
                reference: format!("{image}@{digest}"),
                reason: e.to_string(),
            };
            match manifest::parse(&bytes).map_err(format_err)? {
                Parsed::Image(m) => return m.into_skill(digest.clone()).map_err(format_err),
                Parsed::Index(entries) => {
                    digest = manifest::pick_from_index(&entries)
                        .map_err(format_err)?
                        .digest
                        .clone();
                }
            }
        }
        Err(Error::Format {
            reference: format!("{image}@{digest}"),
            reason: manifest::FormatError::NestedIndex.to_string(),
        })
    }

    /// Step 1: what should be installed.
    pub(super) async fn resolve(
        &self,
        source: &impl Source,
        skill: &Skill,
        prev: Option<&SkillRecord>,
    ) -> Result<Desired> {
        let image = &skill.image;
        match &skill.selector {
            Selector::Digest(d) => {
                self.resolve_digest(source, image, prev, d.clone(), None)
                    .await
            }
            Selector::Tag(t) => match (source.resolve_tag(image, t).await, installed_now(prev)) {
                (Ok(d), _) => {
                    self.resolve_digest(source, image, prev, d, Some(t.clone()))
                        .await
                }
                // The tag was deleted (archived): what is installed stays.
                (Err(SourceError::NotFound { .. }), Some(k)) => Ok(Desired::archived(prev, k)),
                (Err(e), _) => Err(e.into()),
            },
            Selector::Channel { channel, version } => {
                self.resolve_channel(source, image, prev, (*channel, version.as_ref()))
                    .await
            }
        }
    }

    /// What `ref_digest` (reached through `tag`) points at: known from the
    /// record, or its manifest fetched.
    async fn resolve_digest(
        &self,
        source: &impl Source,
        image: &ImageRef,
        prev: Option<&SkillRecord>,
        ref_digest: Digest,
        tag: Option<String>,
    ) -> Result<Desired> {
        let (manifest, known) = self
            .known_or_fetched(source, image, prev, &ref_digest, None)
            .await?;
        Ok(Desired {
            tag,
            ref_digest,
            manifest,
            known,
            kept_deprecated: false,
            archived: false,
        })
    }

    /// A channel: the best version of the tags listed that qualifies (with
    /// the installed version kept when its tags are gone and nothing newer
    /// qualifies).
    async fn resolve_channel(
        &self,
        source: &impl Source,
        image: &ImageRef,
        prev: Option<&SkillRecord>,
        (channel, version): (Channel, Option<&semver::VersionReq>),
    ) -> Result<Desired> {
        let installed = installed_now(prev);
        let tags = source.list_tags(image).await?;
        let installed_version = prev
            .and_then(|p| p.current.as_ref())
            .and_then(|c| c.version.as_deref())
            .and_then(|v| semver::Version::parse(v).ok());
        // The installed version's tags all gone: archived.
        let archived = installed.is_some()
            && installed_version.as_ref().is_some_and(|v| {
                !tags
                    .iter()
                    .filter_map(|t| channel::parse_tag(t))
                    .any(|t| &t.version == v)
            });
        let fetched: StdMutex<HashMap<Digest, SkillManifest>> = StdMutex::new(HashMap::new());
        let fetched_ref = &fetched;
        let lookup = |c: &VersionTag| {
            let tag = c.tag.clone();
            async move {
                let digest = source.resolve_tag(image, &tag).await?;
                if let Some(k) = known_as(prev, &digest) {
                    return Ok::<_, Error>(Lookup {
                        digest,
                        status: Ok(k.status),
                    });
                }
                let m = self.load_manifest(source, image, &digest).await?;
                let status = m.status.clone();
                if let Ok(mut map) = fetched_ref.lock() {
                    map.insert(digest.clone(), m);
                }
                Ok(Lookup { digest, status })
            }
        };
        let sel =
            channel::select(&tags, channel, version, installed_version.as_ref(), lookup).await;
        let sel = match (sel, archived.then_some(installed).flatten()) {
            // Archived and nothing newer: the installed one stays.
            (
                Err(SelectError::NoCandidates { .. } | SelectError::NoneQualifies { .. }),
                Some(k),
            ) => return Ok(Desired::archived(prev, k)),
            (Ok(sel), Some(k))
                if installed_version
                    .as_ref()
                    .is_some_and(|v| &sel.tag.version < v) =>
            {
                return Ok(Desired::archived(prev, k));
            }
            (sel, _) => sel.map_err(|e| match e {
                SelectError::Lookup(e) => e,
                other => Error::NoVersion(format!("{image}: {other}")),
            })?,
        };
        let manifest = fetched.lock().ok().and_then(|mut m| m.remove(&sel.digest));
        let (manifest, known) = self
            .known_or_fetched(source, image, prev, &sel.digest, manifest)
            .await?;
        Ok(Desired {
            tag: Some(sel.tag.tag),
            ref_digest: sel.digest,
            manifest,
            known,
            kept_deprecated: sel.kept_deprecated,
            archived: false,
        })
    }

    /// What `digest` points at: from `fetched` (its manifest, fetched
    /// already), else known from the record, else its manifest fetched now.
    async fn known_or_fetched(
        &self,
        source: &impl Source,
        image: &ImageRef,
        prev: Option<&SkillRecord>,
        digest: &Digest,
        fetched: Option<SkillManifest>,
    ) -> Result<(Option<SkillManifest>, Installed)> {
        match (fetched, known_as(prev, digest)) {
            (Some(m), _) => {
                let k = installed_from(&m)?;
                Ok((Some(m), k))
            }
            (None, Some(k)) => Ok((None, k)),
            (None, None) => {
                let m = self.load_manifest(source, image, digest).await?;
                let k = installed_from(&m)?;
                Ok((Some(m), k))
            }
        }
    }
}
