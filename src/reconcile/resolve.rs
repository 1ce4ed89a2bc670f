//! Step 1 of a pass: what the config wants. The digest to install (a
//! pinned digest; one HEAD for a followed tag; a tag list plus HEADs, best
//! version first, for a channel), its manifest, and what is installed.
//!
//! Must NOT touch a target or the state file; a digest already known from
//! the state record costs no further request.

use std::collections::HashMap;
use std::sync::Mutex as StdMutex;

use crate::channel::{self, Lookup, SelectError, VersionTag};
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

impl Engine {
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
            let bytes = match self.cache.read_manifest(&digest) {
                Some(b) => b,
                None => {
                    let bytes = source.fetch_manifest(image, &digest).await?;
                    let actual = Digest::of(&bytes);
                    if actual != digest {
                        return Err(Error::DigestMismatch {
                            what: format!("manifest of {image}"),
                            expected: digest.to_string(),
                            actual: actual.to_string(),
                        });
                    }
                    if !self.dry_run {
                        self.cache.store_manifest(&digest, &bytes)?;
                    }
                    bytes
                }
            };
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

    /// Step 1: what should be installed.
    pub(super) async fn resolve(
        &self,
        source: &impl Source,
        skill: &Skill,
        prev: Option<&SkillRecord>,
    ) -> Result<Desired> {
        let image = &skill.image;
        let known = |d: &Digest| -> Option<Installed> {
            prev.filter(|p| p.ref_digest.as_ref() == Some(d))
                .and_then(|p| p.current.clone())
        };
        let from_digest = |ref_digest: Digest, tag: Option<String>| async move {
            if let Some(k) = known(&ref_digest) {
                return Ok(Desired {
                    tag,
                    ref_digest,
                    manifest: None,
                    known: k,
                    kept_deprecated: false,
                    archived: false,
                });
            }
            let m = self.load_manifest(source, image, &ref_digest).await?;
            Ok::<_, Error>(Desired {
                tag,
                known: Self::installed_from(&m)?,
                ref_digest,
                manifest: Some(m),
                kept_deprecated: false,
                archived: false,
            })
        };
        // What is installed now (in some target), kept if its tag is gone.
        let installed = prev.and_then(|p| {
            let current = p.current.as_ref()?;
            p.targets
                .values()
                .any(|t| {
                    t.installed
                        .as_ref()
                        .is_some_and(|i| i.layer_digest == current.layer_digest)
                })
                .then(|| current.clone())
        });
        let keep_archived = |k: Installed| Desired {
            tag: None,
            ref_digest: prev
                .and_then(|p| p.ref_digest.clone())
                .unwrap_or_else(|| k.manifest_digest.clone()),
            manifest: None,
            known: k,
            kept_deprecated: false,
            archived: true,
        };
        match &skill.selector {
            Selector::Digest(d) => from_digest(d.clone(), None).await,
            Selector::Tag(t) => match (source.resolve_tag(image, t).await, installed.clone()) {
                (Ok(d), _) => from_digest(d, Some(t.clone())).await,
                // The tag was deleted (archived): what is installed stays.
                (Err(SourceError::NotFound { .. }), Some(k)) => Ok(keep_archived(k)),
                (Err(e), _) => Err(e.into()),
            },
            Selector::Channel { channel, version } => {
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
                let fetched: StdMutex<HashMap<Digest, SkillManifest>> =
                    StdMutex::new(HashMap::new());
                let fetched_ref = &fetched;
                let lookup = |c: &VersionTag| {
                    let tag = c.tag.clone();
                    async move {
                        let digest = source.resolve_tag(image, &tag).await?;
                        if let Some(k) = known(&digest) {
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
                let sel = channel::select(
                    &tags,
                    *channel,
                    version.as_ref(),
                    installed_version.as_ref(),
                    lookup,
                )
                .await;
                let sel = match (sel, archived.then(|| installed.clone()).flatten()) {
                    // Archived and nothing newer: the installed one stays.
                    (
                        Err(SelectError::NoCandidates { .. } | SelectError::NoneQualifies { .. }),
                        Some(k),
                    ) => {
                        return Ok(keep_archived(k));
                    }
                    (Ok(sel), Some(k))
                        if installed_version
                            .as_ref()
                            .is_some_and(|v| &sel.tag.version < v) =>
                    {
                        return Ok(keep_archived(k));
                    }
                    (sel, _) => sel.map_err(|e| match e {
                        SelectError::Lookup(e) => e,
                        other => Error::NoVersion(format!("{image}: {other}")),
                    })?,
                };
                let manifest = fetched.lock().ok().and_then(|mut m| m.remove(&sel.digest));
                let known = match (&manifest, known(&sel.digest)) {
                    (Some(m), _) => Self::installed_from(m)?,
                    (None, Some(k)) => k,
                    (None, None) => {
                        let m = self.load_manifest(source, image, &sel.digest).await?;
                        let k = Self::installed_from(&m)?;
                        return Ok(Desired {
                            tag: Some(sel.tag.tag),
                            ref_digest: sel.digest,
                            manifest: Some(m),
                            known: k,
                            kept_deprecated: sel.kept_deprecated,
                            archived: false,
                        });
                    }
                };
                Ok(Desired {
                    tag: Some(sel.tag.tag),
                    ref_digest: sel.digest,
                    manifest,
                    known,
                    kept_deprecated: sel.kept_deprecated,
                    archived: false,
                })
            }
        }
    }
}
