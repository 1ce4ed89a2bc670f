//! Step 2 of a pass: the signature and policy checks, made before anything
//! is downloaded; and what `skillsyncctl check` can tell of trust offline.
//!
//! Must NOT download a layer, touch a target or write the state: it only
//! says whether (and how) what resolution chose is trusted.

use std::path::{Path, PathBuf};

use crate::channel;
use crate::config::{Config, Selector, Skill};
use crate::error::{Error, Result};
use crate::manifest::{self, Parsed};
use crate::reference::{Digest, ImageRef};
use crate::source::Source;
use crate::state::{SkillRecord, Verification};
use crate::verify::{self, ContainersPolicy, VerifyError};

use super::resolve::Desired;
use super::Engine;

/// Reads the containers policy where podman would (or where
/// `SKILLSYNC_CONTAINERS_POLICY` says).
pub(super) fn load_containers_policy() -> Result<Option<ContainersPolicy>, (PathBuf, String)> {
    let config_dir = directories::BaseDirs::new().map(|b| b.config_dir().to_path_buf());
    let Some(path) = verify::policy::locate_policy(|k| std::env::var_os(k), config_dir.as_deref())
    else {
        return Ok(None);
    };
    ContainersPolicy::load(&path).map_err(|e| (path, e.to_string()))
}

/// What can be told of trust without a registry, for `skillsyncctl
/// check`: every key file `skills.toml` names must load, and the containers
/// policy must parse and, for each skill from a registry, ask for what
/// skillsyncd supports and not reject it. One line per problem, naming the
/// skills it stops; empty when there is none.
pub fn trust_problems(config: &Config) -> Vec<String> {
    trust_problems_with(config, load_containers_policy())
}

fn trust_problems_with(
    config: &Config,
    containers: Result<Option<ContainersPolicy>, (PathBuf, String)>,
) -> Vec<String> {
    let mut problems = Vec::new();
    // Each key file once, with every skill that needs it.
    let mut keys: std::collections::BTreeMap<&Path, Vec<&str>> = Default::default();
    for skill in config.skills.values() {
        if let Some(verify::Setting::Keys(paths)) = &skill.verify {
            for path in paths {
                keys.entry(path).or_default().push(&skill.name);
            }
        }
    }
    for (path, skills) in keys {
        if let Err(e) = verify::TrustedKey::load(path) {
            problems.push(format!("{e} (needed by {})", skills.join(", ")));
        }
    }
    let from_registries: Vec<&Skill> = config
        .skills
        .values()
        .filter(|s| !config.from_layout(&s.image))
        .collect();
    match containers {
        Err((path, reason)) if !from_registries.is_empty() => problems.push(format!(
            "the containers policy {}: {reason} (no skill from a registry can be installed)",
            path.display()
        )),
        Ok(Some(policy)) => {
            for skill in from_registries {
                // Scopes for one digest cannot be told apart offline; the
                // repository's applies.
                let tag = match &skill.selector {
                    Selector::Tag(t) => Some(t.as_str()),
                    _ => None,
                };
                if let Err(e) = policy.key_sets(&skill.image, tag, &[]) {
                    problems.push(format!("skill {}: {e}", skill.name));
                }
            }
        }
        _ => {}
    }
    problems
}

/// How `digest` was verified, from the state file: its record's line, or
/// `unverified`.
pub(super) fn trust_line(prev: Option<&SkillRecord>, digest: &Digest) -> String {
    prev.and_then(|p| p.verified.as_ref())
        .filter(|v| v.manifest_digest == *digest)
        .map(|v| v.by.clone())
        .unwrap_or_else(|| "unverified".into())
}

/// Whether the config itself asks for `offered` although `highest` was
/// installed: a pinned digest, a tag naming that version, or a version
/// requirement that excludes `highest`.
fn pins_lower(selector: &Selector, offered: &semver::Version, highest: &semver::Version) -> bool {
    match selector {
        Selector::Digest(_) => true,
        Selector::Tag(t) => channel::parse_tag(t).is_some_and(|t| &t.version == offered),
        Selector::Channel { version, .. } => version.as_ref().is_some_and(|r| !r.matches(highest)),
    }
}

impl Engine {
    /// The manifest's bytes, from the cache or the source (verified).
    async fn manifest_bytes(
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

    /// Applies the trust policy to what resolution chose: `None` when no
    /// signature is required (installed unverified), the verification when
    /// one is and a trusted signature vouches for it, an error otherwise
    /// (and for a downgrade below the highest version installed). A
    /// digest verified before under the same policy is not verified again.
    pub(super) async fn check_trust(
        &self,
        source: &impl Source,
        skill: &Skill,
        prev: Option<&SkillRecord>,
        desired: &Desired,
    ) -> Result<Option<Verification>> {
        let known = &desired.known;
        let containers = match (&self.containers, self.config.from_layout(&skill.image)) {
            (_, true) => None,
            (Ok(p), false) => p.as_ref(),
            (Err((path, reason)), false) => {
                return Err(VerifyError::Policy {
                    path: path.clone(),
                    reason: reason.clone(),
                }
                .into())
            }
        };
        let digests = [desired.ref_digest.clone(), known.manifest_digest.clone()];
        let reqs = verify::policy::requirements(
            skill.verify.as_ref(),
            containers,
            &skill.image,
            desired.tag.as_deref(),
            &digests,
        )?;
        if !reqs.needs_signature() {
            return Ok(None);
        }
        let version = |v: Option<&str>| v.and_then(|v| semver::Version::parse(v).ok());
        if let (Some(highest), Some(offered)) = (
            version(prev.and_then(|p| p.highest_version.as_deref())),
            version(known.version.as_deref()),
        ) {
            if offered < highest && !pins_lower(&skill.selector, &offered, &highest) {
                return Err(VerifyError::Rollback {
                    skill: skill.name.clone(),
                    offered: offered.to_string(),
                    highest: highest.to_string(),
                }
                .into());
            }
        }
        let policy = reqs.fingerprint();
        if let Some(v) = prev.and_then(|p| p.verified.as_ref()) {
            if v.manifest_digest == known.manifest_digest && v.policy == policy {
                return Ok(Some(v.clone()));
            }
        }
        let bytes = self
            .manifest_bytes(source, &skill.image, &known.manifest_digest)
            .await?;
        let manifest = match manifest::parse(&bytes) {
            Ok(Parsed::Image(m)) => m,
            Ok(Parsed::Index(_)) => {
                return Err(Error::Format {
                    reference: format!("{}@{}", skill.image, known.manifest_digest),
                    reason: manifest::FormatError::NestedIndex.to_string(),
                })
            }
            Err(e) => {
                return Err(Error::Format {
                    reference: format!("{}@{}", skill.image, known.manifest_digest),
                    reason: e.to_string(),
                })
            }
        };
        let subject = verify::Subject {
            image: &skill.image,
            ref_digest: &desired.ref_digest,
            manifest_digest: &known.manifest_digest,
            manifest: &manifest,
            version: known.version.as_deref(),
        };
        let verified = verify::verify(source, &subject, &reqs.sets).await?;
        Ok(Some(Verification {
            manifest_digest: known.manifest_digest.clone(),
            policy,
            by: verified.describe(),
        }))
    }
}

#[cfg(test)]
#[path = "trust/tests.rs"]
mod tests;
