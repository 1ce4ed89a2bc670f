//! Steps 3-5 of a pass: plan every target, fetch the layer once, unpack
//! and swap it into every target that needs it, and record the outcome.
//!
//! Must NOT resolve or check trust (done before it is called), and writes
//! nothing in a dry run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::cache::Fetched;
use crate::channel::Status;
use crate::config::{OnDrift, Skill};
use crate::control::protocol::EventKind;
use crate::error::{blocking, Error, Result};
use crate::install;
use crate::ownership::{self, Marker, MARKER_FILE};
use crate::provenance::{self, Provenance};
use crate::source::Source;
use crate::state::{Backup, Hold, HoldReason, Installed, SkillRecord, TargetRecord, Verification};
use crate::tree::{self, TreeRecord};
use crate::unpack;

use super::plan::{plan_target, TargetPlan};
use super::report::{describe_backups, now_rfc3339, SkillReport, TargetReport};
use super::resolve::Desired;
use super::survey::{check_tree, recognise};
use super::{exists, Engine, SkillState, TargetState};

/// A verified layer ready to be unpacked, and what to record in the
/// installed copy.
#[derive(Debug, Clone)]
struct Staged {
    /// The cached layer blob.
    blob: PathBuf,
    /// The image, for the ownership marker.
    image: String,
    /// Written into the installed `skill.yaml`.
    provenance: Provenance,
    /// The manifest's annotations (for a SkillCard made from scratch).
    annotations: std::collections::BTreeMap<String, String>,
}

impl Engine {
    /// Steps 2-5.
    pub(super) async fn apply(
        &self,
        source: &impl Source,
        skill: &Skill,
        prev: Option<SkillRecord>,
        desired: Desired,
        verified: Option<Verification>,
        report: &mut SkillReport,
    ) -> Result<()> {
        let mut skill_state = prev.clone().unwrap_or_else(|| SkillRecord {
            image: skill.image.to_string(),
            ..Default::default()
        });
        skill_state.image = skill.image.to_string();
        let known = &desired.known;
        let label = format!(
            "{} {}",
            skill.name,
            known.version.as_deref().unwrap_or("(no version)")
        );
        if desired.kept_deprecated
            && prev
                .as_ref()
                .and_then(|p| p.current.as_ref())
                .map(|c| c.status)
                != Some(Status::Deprecated)
        {
            report.record(
                EventKind::Deprecated,
                None,
                known,
                format!("{label} is deprecated; kept installed (no newer version qualifies)"),
            );
        }

        if desired.archived && !prev.as_ref().is_some_and(|p| p.archived) {
            report.record(
                EventKind::Archived,
                None,
                known,
                format!("{label} was archived (its tag is gone from the registry); kept installed"),
            );
        }
        let archived_changed = skill_state.archived != desired.archived;
        skill_state.archived = desired.archived;

        // Step 2: plan every target: recognise our own folders (even
        // without a state record), look for local edits, then decide.
        let mut plans = Vec::new();
        let mut recorded_changed = archived_changed;
        // Fresh stamps only (files read again, unchanged): kept in memory
        // and written with the next change or at the end of the pass, not
        // worth a write of the state file per skill.
        let mut restamped = false;
        let mut hold_for_drift: Option<String> = None;
        for tname in &skill.targets {
            let Some(target) = self.config.targets.get(tname) else {
                continue;
            };
            let path = target.path.join(&skill.name);
            let present = exists(&path);
            let mut drift: Option<String> = None;
            if present && !skill_state.targets.contains_key(tname) {
                if let Some((rec, edited)) = recognise(&path, &skill.name).await {
                    report.changes.push(format!(
                        "{} in {} carries skillsyncd's marker: managed again",
                        skill.name, target.name
                    ));
                    if edited {
                        drift = Some("edited since it was installed".into());
                    }
                    skill_state.targets.insert(tname.clone(), Box::new(rec));
                    recorded_changed = true;
                }
            }
            if drift.is_none() {
                if let Some(t) = skill_state.targets.get_mut(tname) {
                    if t.installed.is_some() && t.pending.is_none() {
                        if !present {
                            drift = Some("deleted".into());
                        } else if let Some(tree) = t.tree.as_mut() {
                            let check = check_tree(&path, tree).await?;
                            restamped |= check.restamped > 0;
                            if !check.is_clean() {
                                drift = Some(format!("edited: {}", check.summary()));
                            }
                        }
                    }
                }
            }
            let plan = match drift {
                Some(what) => match skill.on_drift {
                    OnDrift::Restore if self.dry_run => {
                        report.changes.push(format!(
                            "would back up {} in {} ({what}) and restore it",
                            skill.name, target.name
                        ));
                        TargetPlan::Install
                    }
                    OnDrift::Restore => {
                        if present {
                            let backup = self.backup(&skill.name, &target.name, &path).await?;
                            skill_state.backups.push(Backup {
                                target: target.name.clone(),
                                path: backup.clone(),
                                reason: "restored".into(),
                                at: now_rfc3339(),
                            });
                            recorded_changed = true;
                            report.changes.push(format!(
                                "{} in {} was {what}; backed up to {} and restored",
                                skill.name,
                                target.name,
                                backup.display()
                            ));
                        } else {
                            report.changes.push(format!(
                                "{} in {} was deleted; restored",
                                skill.name, target.name
                            ));
                        }
                        TargetPlan::Install
                    }
                    OnDrift::Keep => {
                        hold_for_drift.get_or_insert(format!("{} {what}", target.name));
                        TargetPlan::Drifted(format!(
                            "{} was {what}; kept, and the skill held (skillsyncctl resume {} to update it again)",
                            path.display(),
                            skill.name
                        ))
                    }
                    OnDrift::Report => TargetPlan::Drifted(format!(
                        "{} was {what}; left as it is (skillsyncctl resume {} accepts it; on_drift = \"restore\" puts the installed version back)",
                        path.display(),
                        skill.name
                    )),
                },
                None => plan_target(
                    skill_state.targets.get(tname).map(|t| &**t),
                    present,
                    &known.manifest_digest,
                    &known.layer_digest,
                ),
            };
            let plan = match plan {
                TargetPlan::Conflict if skill.adopt && self.dry_run => {
                    report.changes.push(format!(
                        "would adopt {} in {} (backing up what is there)",
                        path.display(),
                        target.name
                    ));
                    TargetPlan::Install
                }
                TargetPlan::Conflict if skill.adopt => {
                    let backup = self.backup(&skill.name, &target.name, &path).await?;
                    skill_state.backups.push(Backup {
                        target: target.name.clone(),
                        path: backup.clone(),
                        reason: "adopted".into(),
                        at: now_rfc3339(),
                    });
                    // Ours from here on: the install replaces it.
                    skill_state.targets.insert(
                        tname.clone(),
                        Box::new(TargetRecord {
                            path: path.clone(),
                            installed: None,
                            pending: None,
                            tree: None,
                        }),
                    );
                    recorded_changed = true;
                    report.record(
                        EventKind::Adopt,
                        Some(&target.name),
                        known,
                        format!(
                            "adopted {} in {}: what was there is backed up to {}",
                            skill.name,
                            target.name,
                            backup.display()
                        ),
                    );
                    TargetPlan::Install
                }
                other => other,
            };
            plans.push((target.clone(), path, plan));
        }
        if let Some(why) = hold_for_drift {
            if skill_state.hold.is_none() {
                if let Some(installed) = skill_state
                    .targets
                    .values()
                    .find_map(|t| t.installed.clone())
                {
                    let hold = Hold {
                        reason: HoldReason::Drift,
                        installed,
                        since: now_rfc3339(),
                    };
                    report.held = Some(hold.describe());
                    report.version = hold.installed.version.clone();
                    report.digest = Some(hold.installed.manifest_digest.clone());
                    report.status = Some(hold.installed.status);
                    skill_state.hold = Some(hold);
                    report.changes.push(format!("{} held: {why}", skill.name));
                    recorded_changed = true;
                    // Held from now on: no target is updated in this pass
                    // either.
                    for (_, _, plan) in plans.iter_mut() {
                        if matches!(plan, TargetPlan::Install | TargetPlan::RecordOnly) {
                            *plan = TargetPlan::UpToDate;
                        }
                    }
                }
            }
        }
        let mut state_changed = recorded_changed
            || skill_state.ref_digest.as_ref() != Some(&desired.ref_digest)
            || skill_state
                .current
                .as_ref()
                .map(|c| (&c.manifest_digest, c.status))
                != Some((&known.manifest_digest, known.status));
        skill_state.ref_digest = Some(desired.ref_digest.clone());
        skill_state.current = Some(known.clone());

        // Step 3: fetch the layer once, if any target needs it.
        let needs_install =
            !self.dry_run && plans.iter().any(|(_, _, p)| *p == TargetPlan::Install);
        let mut layer_blob = None;
        if needs_install {
            let manifest = match desired.manifest.clone() {
                Some(m) => m,
                None => {
                    self.load_manifest(source, &skill.image, &known.manifest_digest)
                        .await?
                }
            };
            let fetched = self
                .cache
                .fetch(
                    source,
                    &skill.image,
                    &manifest.layer.digest,
                    manifest.layer.size,
                    self.config.daemon.max_skill_size,
                )
                .await?;
            if let Fetched::Downloaded(n) = fetched {
                report.downloaded += n;
            }
            layer_blob = Some(Staged {
                blob: self.cache.blob_path(&manifest.layer.digest),
                image: skill.image.to_string(),
                provenance: Provenance {
                    source: match &known.version {
                        Some(v) => format!("{}:{v}", skill.image),
                        None => format!("{}@{}", skill.image, known.manifest_digest),
                    },
                    commit: known.manifest_digest.to_string(),
                },
                annotations: manifest.annotations.clone(),
            });
        }

        // Mark every folder about to be installed ours before any appears,
        // in one write: a crash after a swap cannot make it a stranger's.
        if layer_blob.is_some() {
            for (target, path, _) in plans.iter().filter(|(_, _, p)| *p == TargetPlan::Install) {
                let entry = Self::target_entry(&mut skill_state, &target.name, path);
                entry.path = path.clone();
                entry.pending = Some(known.layer_digest.clone());
            }
            self.commit_state(&skill.name, &skill_state).await?;
        }

        // Step 4: unpack and swap into every target that needs it, all at
        // once: each is mostly waiting for its files to be synced.
        let mut installs: HashMap<String, Result<TreeRecord>> = HashMap::new();
        if let Some(blob) = &layer_blob {
            let jobs = plans
                .iter()
                .filter(|(_, _, p)| *p == TargetPlan::Install)
                .map(|(target, _, _)| async move {
                    let installed = self
                        .install_one(blob, &target.path, &skill.name, known)
                        .await;
                    (target.name.clone(), installed)
                });
            installs = futures_util::future::join_all(jobs)
                .await
                .into_iter()
                .collect();
        }

        // Step 5: record and report, target by target.
        let mut first_error: Option<String> = None;
        for (target, path, plan) in plans {
            let mut tr = TargetReport {
                name: target.name.clone(),
                path: path.clone(),
                state: TargetState::InSync,
                error: None,
            };
            match plan {
                TargetPlan::UpToDate => {}
                TargetPlan::RecordOnly if self.dry_run => {
                    report.changes.push(format!(
                        "would record {label} ({}) in {}: same content, new manifest (annotation only)",
                        known.status, target.name
                    ));
                }
                TargetPlan::Install if self.dry_run => {
                    let from = skill_state
                        .targets
                        .get(&target.name)
                        .and_then(|t| t.installed.as_ref())
                        .and_then(|i| i.version.clone());
                    report.changes.push(match from {
                        Some(v) => format!(
                            "would update {} {v} -> {} in {}",
                            skill.name,
                            known.version.as_deref().unwrap_or("(no version)"),
                            target.name
                        ),
                        None => format!(
                            "would install {label} into {} ({})",
                            target.name,
                            path.display()
                        ),
                    });
                    tr.state = TargetState::Pending;
                }
                TargetPlan::RecordOnly => {
                    if let Some(t) = skill_state.targets.get_mut(&target.name) {
                        if let Some(i) = t.installed.as_mut() {
                            let was = i.status;
                            i.manifest_digest = known.manifest_digest.clone();
                            i.status = known.status;
                            i.version = known.version.clone();
                            if was != known.status {
                                report.record(
                                    EventKind::StatusChange,
                                    Some(&target.name),
                                    known,
                                    format!(
                                        "{label} in {}: status {was} -> {} (same content, nothing downloaded)",
                                        target.name, known.status
                                    ),
                                );
                            }
                        }
                    }
                    state_changed = true;
                }
                TargetPlan::Conflict => {
                    tr.state = TargetState::Conflict;
                    tr.error = Some(format!(
                        "{} exists and was not installed by skillsyncd; move it away to let skillsyncd manage it",
                        path.display()
                    ));
                }
                TargetPlan::Drifted(why) => {
                    tr.state = TargetState::Drifted;
                    tr.error = Some(why);
                }
                TargetPlan::Install => {
                    let Some(installed) = installs.remove(&target.name) else {
                        continue;
                    };
                    match installed {
                        Ok(tree) => {
                            let entry = Self::target_entry(&mut skill_state, &target.name, &path);
                            entry.pending = None;
                            entry.tree = Some(tree);
                            let replaced = entry.installed.replace(Installed {
                                installed_at: now_rfc3339(),
                                ..known.clone()
                            });
                            let (kind, message) = match &replaced {
                                Some(old) => (
                                    EventKind::Update,
                                    format!(
                                        "updated {} {} -> {} ({} -> {}) in {} ({})",
                                        skill.name,
                                        old.version.as_deref().unwrap_or("?"),
                                        known.version.as_deref().unwrap_or("?"),
                                        old.manifest_digest.short(),
                                        known.manifest_digest.short(),
                                        target.name,
                                        path.display()
                                    ),
                                ),
                                None => (
                                    EventKind::Install,
                                    format!(
                                        "installed {label} ({}) into {} ({})",
                                        known.manifest_digest.short(),
                                        target.name,
                                        path.display()
                                    ),
                                ),
                            };
                            if let Some(old) =
                                replaced.filter(|o| o.layer_digest != known.layer_digest)
                            {
                                let keep =
                                    self.config.daemon.generations.saturating_sub(1) as usize;
                                skill_state.remember(old, keep);
                            }
                            state_changed = true;
                            report.record(kind, Some(&target.name), known, message);
                        }
                        Err(e) => {
                            Self::unmark_pending(&mut skill_state, &target.name, &path);
                            state_changed = true;
                            let msg = e.to_string();
                            tr.state = TargetState::Error;
                            tr.error = Some(msg.clone());
                            first_error.get_or_insert(msg);
                        }
                    }
                }
            }
            report.targets.push(tr);
        }
        if let Some(v) = verified {
            // Under a key policy: the verification, and the highest version
            // installed (rollback protection).
            let installed = skill_state.targets.values().any(|t| {
                t.installed
                    .as_ref()
                    .is_some_and(|i| i.manifest_digest == known.manifest_digest)
            });
            let parse = |v: &str| semver::Version::parse(v).ok();
            if let Some(offered) = known.version.as_deref().and_then(parse) {
                let higher = skill_state
                    .highest_version
                    .as_deref()
                    .and_then(parse)
                    .is_none_or(|h| offered > h);
                if installed && higher {
                    skill_state.highest_version = Some(offered.to_string());
                    state_changed = true;
                }
            }
            if skill_state.verified.as_ref() != Some(&v) {
                skill_state.verified = Some(v);
                state_changed = true;
            }
        }
        if state_changed {
            self.commit_state(&skill.name, &skill_state).await?;
        } else if restamped {
            // Fresh stamps only: worth keeping (the next check need not read
            // those files again), not worth failing the pass over.
            if let Err(e) = self.commit_state(&skill.name, &skill_state).await {
                tracing::warn!(skill = %skill.name, "recording fresh file stamps: {e}");
            }
        }
        report.backups = describe_backups(&skill_state.backups);
        if let Some(c) = report
            .targets
            .iter()
            .find(|t| t.state == TargetState::Conflict)
        {
            report.state = SkillState::Conflict;
            report.error = c.error.clone();
        }
        if let Some(d) = report
            .targets
            .iter()
            .find(|t| t.state == TargetState::Drifted)
        {
            if report.state == SkillState::InSync {
                report.state = SkillState::Drifted;
                report.error = d.error.clone();
            }
        }
        if let Some(e) = first_error {
            report.state = SkillState::Error;
            report.error = Some(e);
        }
        Ok(())
    }

    /// Unpacks the cached layer into a staging dir beside the skill and swaps
    /// it in. On any failure the staging dir is removed and nothing else has
    /// changed.
    async fn install_one(
        &self,
        staged: &Staged,
        target_dir: &Path,
        name: &str,
        known: &Installed,
    ) -> Result<TreeRecord> {
        let staged = staged.clone();
        let target_dir = target_dir.to_path_buf();
        let name = name.to_string();
        let limits = self.limits.clone();
        let known = known.clone();
        // Every file and directory fsynced as written, or the whole staged
        // tree made durable at once by a syncfs of its filesystem.
        let each_file = !cfg!(target_os = "linux")
            || self.config.daemon.durability == crate::config::Durability::Fsync;
        let mode = if each_file {
            unpack::SyncMode::EachFile
        } else {
            unpack::SyncMode::Caller
        };
        blocking("install task", move || -> Result<TreeRecord> {
            let staging = install::prepare_staging(&target_dir, &name)?;
            let result = (|| {
                let blob = &staged.blob;
                let file = std::fs::File::open(blob).map_err(|e| Error::io("opening", blob, e))?;
                unpack::unpack_tar_gz_with(std::io::BufReader::new(file), &staging, &limits, mode)?;
                if !staging.join("SKILL.md").is_file() {
                    return Err(Error::Format {
                        reference: name.clone(),
                        reason: "the layer has no SKILL.md at its root".into(),
                    });
                }
                // What `skillctl install` records, so `skillctl list
                // --installed` and `skillctl upgrade` see this copy.
                provenance::write_with(
                    &staging,
                    &name,
                    &staged.provenance,
                    &staged.annotations,
                    each_file,
                )?;
                // The tree as it will be installed, and the marker that
                // makes it recognisably ours without the state file.
                let tree = tree::record(&staging, &[MARKER_FILE])?;
                Marker {
                    managed_by: ownership::MANAGED_BY.into(),
                    skill: name.clone(),
                    image: staged.image.clone(),
                    manifest_digest: known.manifest_digest.clone(),
                    layer_digest: known.layer_digest.clone(),
                    version: known.version.clone(),
                    status: known.status,
                    tree_hash: tree.hash.clone(),
                    installed_at: now_rfc3339(),
                }
                .write(&staging, each_file)?;
                // All of it durable before the tree is visible (with
                // fsyncs: the marker's entry in the staging root).
                if each_file {
                    install::sync_dir(&staging)?;
                } else {
                    #[cfg(target_os = "linux")]
                    install::sync_filesystem(&staging)?;
                }
                install::swap_into_place(&target_dir, &name, &staging)?;
                Ok(tree)
            })();
            if result.is_err() {
                let _ = install::remove_tree(&staging);
            }
            result
        })
        .await?
    }
}
