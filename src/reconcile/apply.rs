//! Steps 2-5 of a pass, in order ([`Engine::apply`]): survey and plan every
//! target, fetch the layer once, mark the targets pending in one write,
//! unpack and swap into every target that needs it (concurrently), and
//! record the outcome. Fetching, unpacking and swapping live here.
//!
//! Must NOT resolve or check trust (done before it is called), decide a
//! target's plan (plan.rs) or word the record's changes (record.rs); and
//! writes nothing in a dry run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::cache::Fetched;
use crate::config::{Durability, Skill};
use crate::error::{blocking, Error, Result};
use crate::install;
use crate::ownership::{self, Marker, MARKER_FILE};
use crate::provenance::{self, Provenance};
use crate::source::Source;
use crate::state::{Installed, SkillRecord, Verification};
use crate::tree::{self, TreeRecord};
use crate::unpack;

use super::plan::{decide, freeze, needs_layer, Ask, Planned, TargetPlan};
use super::record::{Outcome, PassRecord, Settle};
use super::report::{describe_backups, label, now_rfc3339, SkillReport};
use super::resolve::Desired;
use super::survey::survey;
use super::{exists, Engine};

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

/// One target's unpack and swap, as the blocking pool runs it.
struct Job {
    staged: Staged,
    target_dir: PathBuf,
    name: String,
    limits: unpack::Limits,
    known: Installed,
    /// Every file and directory fsynced as written, or the whole staged
    /// tree made durable at once by a syncfs of its filesystem.
    each_file: bool,
}

impl Engine {
    /// Steps 2-5: plan every target, fetch the layer once if one needs it,
    /// install, record and report.
    pub(super) async fn apply(
        &self,
        source: &impl Source,
        skill: &Skill,
        prev: Option<SkillRecord>,
        desired: Desired,
        verified: Option<Verification>,
        report: &mut SkillReport,
    ) -> Result<()> {
        let known = &desired.known;
        let label = label(&skill.name, known);
        let lifecycle = (desired.kept_deprecated, desired.archived);
        report.note_lifecycle(&label, known, lifecycle, prev.as_ref());
        let mut pass = PassRecord::start(&skill.image.to_string(), prev, desired.archived);
        let plans = self.plan_targets(skill, known, &mut pass, report).await?;
        pass.want(&desired.ref_digest, known);
        let mut outcomes = HashMap::new();
        if !self.dry_run && needs_layer(&plans) {
            let staged = self.fetch_layer(source, skill, &desired, report).await?;
            // Every folder about to be installed marked ours before any
            // appears, in one write: a crash after a swap cannot make it a
            // stranger's.
            pass.mark_pending(&plans, &known.layer_digest);
            self.commit_state(&skill.name, &pass.skill).await?;
            outcomes = self.install_all(&staged, &plans, &skill.name, known).await;
        }
        let settle = Settle {
            skill: &skill.name,
            label: &label,
            known,
            dry_run: self.dry_run,
            keep: self.config.daemon.generations.saturating_sub(1) as usize,
        };
        let first_error = pass.settle(&settle, plans, outcomes, report);
        if let Some(v) = verified {
            pass.verified(v, known);
        }
        self.commit_pass(&skill.name, &pass).await?;
        report.backups = describe_backups(&pass.skill.backups);
        report.conclude(first_error);
        Ok(())
    }

    /// Step 2: every target surveyed (our own folders recognised even
    /// without a record, local edits found), its plan decided and any
    /// backup it needs made; a drifted target kept holds the whole skill.
    async fn plan_targets(
        &self,
        skill: &Skill,
        known: &Installed,
        pass: &mut PassRecord,
        report: &mut SkillReport,
    ) -> Result<Vec<Planned>> {
        let mut plans = Vec::new();
        let mut hold_for_drift: Option<String> = None;
        for tname in &skill.targets {
            let Some(target) = self.config.targets.get(tname) else {
                continue;
            };
            let path = target.path.join(&skill.name);
            let names = (tname.as_str(), target.name.as_str());
            let seen = survey(&skill.name, names, &path, pass, report).await?;
            let ask = Ask {
                skill: &skill.name,
                target: &target.name,
                path: &path,
                on_drift: skill.on_drift,
                adopt: skill.adopt,
                dry_run: self.dry_run,
            };
            let recorded = pass.skill.targets.get(tname).map(|t| &**t);
            let decision = decide(
                &ask,
                &seen,
                recorded,
                &known.manifest_digest,
                &known.layer_digest,
            );
            if let Some(rescue) = &decision.rescue {
                self.rescue(rescue, (&ask, tname), known, pass, report)
                    .await?;
            }
            report.changes.extend(decision.say);
            if let Some(why) = decision.hold {
                hold_for_drift.get_or_insert(why);
            }
            plans.push(Planned {
                target: target.name.clone(),
                dir: target.path.clone(),
                path,
                plan: decision.plan,
            });
        }
        if let Some(why) = hold_for_drift {
            if let Some(hold) = pass.hold_for_drift() {
                report.held = Some(hold.describe());
                report.show(&hold.installed);
                report.changes.push(format!("{} held: {why}", skill.name));
                freeze(&mut plans);
            }
        }
        Ok(plans)
    }

    /// Step 3: the manifest (unless resolution fetched it), then the layer
    /// into the cache (verified while streaming), once for every target.
    async fn fetch_layer(
        &self,
        source: &impl Source,
        skill: &Skill,
        desired: &Desired,
        report: &mut SkillReport,
    ) -> Result<Staged> {
        let known = &desired.known;
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
        Ok(Staged {
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
        })
    }

    /// Step 4: unpacks and swaps into every target that needs it, all at
    /// once (each is mostly waiting for its files to be synced).
    async fn install_all(
        &self,
        staged: &Staged,
        plans: &[Planned],
        name: &str,
        known: &Installed,
    ) -> HashMap<String, Outcome> {
        let jobs = plans
            .iter()
            .filter(|p| p.plan == TargetPlan::Install)
            .map(|p| async move {
                let outcome = match self.install_one(staged, &p.dir, name, known).await {
                    Ok(tree) => Outcome::Swapped(tree),
                    Err(e) => Outcome::Failed {
                        error: e.to_string(),
                        present: exists(&p.path),
                    },
                };
                (p.target.clone(), outcome)
            });
        futures_util::future::join_all(jobs)
            .await
            .into_iter()
            .collect()
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
        let job = Job {
            staged: staged.clone(),
            target_dir: target_dir.to_path_buf(),
            name: name.to_string(),
            limits: self.limits.clone(),
            known: known.clone(),
            each_file: !cfg!(target_os = "linux")
                || self.config.daemon.durability == Durability::Fsync,
        };
        blocking("install task", move || stage_and_swap(&job)).await?
    }
}

/// Unpacks into a staging dir and swaps it into place; the staging dir
/// removed on any failure.
fn stage_and_swap(job: &Job) -> Result<TreeRecord> {
    let staging = install::prepare_staging(&job.target_dir, &job.name)?;
    let result = fill_staging(job, &staging).and_then(|tree| {
        install::swap_into_place(&job.target_dir, &job.name, &staging)?;
        Ok(tree)
    });
    if result.is_err() {
        let _ = install::remove_tree(&staging);
    }
    result
}

/// The layer unpacked into `staging` with its provenance and our marker,
/// all of it durable; the tree as it will be installed.
fn fill_staging(job: &Job, staging: &Path) -> Result<TreeRecord> {
    let (name, each_file) = (&job.name, job.each_file);
    let mode = if each_file {
        unpack::SyncMode::EachFile
    } else {
        unpack::SyncMode::Caller
    };
    let blob = &job.staged.blob;
    let file = std::fs::File::open(blob).map_err(|e| Error::io("opening", blob, e))?;
    unpack::unpack_tar_gz_with(std::io::BufReader::new(file), staging, &job.limits, mode)?;
    if !staging.join("SKILL.md").is_file() {
        return Err(Error::Format {
            reference: name.clone(),
            reason: "the layer has no SKILL.md at its root".into(),
        });
    }
    // What `skillctl install` records, so `skillctl list --installed` and
    // `skillctl upgrade` see this copy.
    let staged = &job.staged;
    provenance::write_with(
        staging,
        name,
        &staged.provenance,
        &staged.annotations,
        each_file,
    )?;
    // The tree as it will be installed, and the marker that makes it
    // recognisably ours without the state file.
    let tree = tree::record(staging, &[MARKER_FILE])?;
    let known = &job.known;
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
    .write(staging, each_file)?;
    // All of it durable before the tree is visible (with fsyncs: the
    // marker's entry in the staging root).
    if each_file {
        crate::fs::sync_dir(staging)?;
    } else {
        #[cfg(target_os = "linux")]
        install::sync_filesystem(staging)?;
    }
    Ok(tree)
}
