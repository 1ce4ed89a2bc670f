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

use super::report::SkillReport;
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

/// Refuses a downgrade below the highest version installed under a key
/// policy, unless the config itself asks for the lower version.
fn check_downgrade(skill: &Skill, prev: Option<&SkillRecord>, offered: Option<&str>) -> Result<()> {
    let version = |v: Option<&str>| v.and_then(|v| semver::Version::parse(v).ok());
    if let (Some(highest), Some(offered)) = (
        version(prev.and_then(|p| p.highest_version.as_deref())),
        version(offered),
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
    Ok(())
}

/// An image manifest's bytes parsed, for verification (an index there is
/// a format error).
fn image_manifest(
    image: &ImageRef,
    digest: &Digest,
    bytes: &[u8],
) -> Result<manifest::ImageManifest> {
    let format_err = |reason: String| Error::Format {
        reference: format!("{image}@{digest}"),
        reason,
    };
    match manifest::parse(bytes) {
        Ok(Parsed::Image(m)) => Ok(m),
        Ok(Parsed::Index(_)) => Err(format_err(manifest::FormatError::NestedIndex.to_string())),
        Err(e) => Err(format_err(e.to_string())),
    }
}

impl Engine {
    /// The containers policy that applies to `skill`: none for a layout,
    /// an error when the policy could not be read.
    fn containers_for(&self, skill: &Skill) -> Result<Option<&ContainersPolicy>> {
        match (&self.containers, self.config.from_layout(&skill.image)) {
            (_, true) => Ok(None),
            (Ok(p), false) => Ok(p.as_ref()),
            (Err((path, reason)), false) => Err(VerifyError::Policy {
                path: path.clone(),
                reason: reason.clone(),
            }
            .into()),
        }
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
        let containers = self.containers_for(skill)?;
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
        check_downgrade(skill, prev, known.version.as_deref())?;
        let policy = reqs.fingerprint();
        if let Some(v) = prev.and_then(|p| p.verified.as_ref()) {
            if v.manifest_digest == known.manifest_digest && v.policy == policy {
                return Ok(Some(v.clone()));
            }
        }
        let bytes = self
            .manifest_bytes(source, &skill.image, &known.manifest_digest)
            .await?;
        let manifest = image_manifest(&skill.image, &known.manifest_digest, &bytes)?;
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

    /// Trust refused what resolution chose (`e`): the report shows what is
    /// installed, which stays, and why nothing changes.
    pub(super) fn untrusted(
        &self,
        skill: &Skill,
        prev: Option<&SkillRecord>,
        e: Error,
        report: &mut SkillReport,
    ) {
        tracing::warn!(skill = %skill.name, "{e}");
        let current = prev.and_then(|p| p.current.as_ref());
        report.version = current.and_then(|c| c.version.clone());
        report.digest = current.map(|c| c.manifest_digest.clone());
        report.status = current.map(|c| c.status);
        report.verification = current.map(|c| trust_line(prev, &c.manifest_digest));
        report.fail(e);
        report.targets = self.target_reports(skill, prev, None);
    }
}

#[cfg(test)]
#[path = "trust/tests.rs"]
mod tests;
