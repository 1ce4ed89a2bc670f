//! One reconcile pass for one skill: resolve what the config wants, compare
//! it with what is installed, and make every target match.
//!
//! The steps, in order, each able to fail without touching a target:
//! 1. **resolve**: the digest to install (a pinned digest; one HEAD for a
//!    followed tag; a tag list plus HEADs, best version first, for a
//!    channel). A digest already known from the state file costs no further
//!    request.
//! 2. **plan** ([`plan_target`], pure): per target, nothing to do, a
//!    state-only update (same layer, new manifest: a promotion), an install,
//!    or a conflict (a folder there that is not ours).
//! 3. **fetch**: the manifest by digest (verified locally), then the layer
//!    into the cache (verified while streaming) — once for every target.
//! 4. **unpack and swap**: per target, into a staging dir beside the skill,
//!    then an atomic swap ([`crate::install`]).
//! 5. **record**: the state file, written atomically.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex};

use serde::Serialize;
use tokio::sync::Mutex;

use crate::cache::{Cache, Fetched};
use crate::channel::{self, Lookup, SelectError, Status, VersionTag};
use crate::config::{Config, OnArchived, OnDrift, Selector, Skill};
use crate::control::protocol::{Event, EventKind};
use crate::error::{Error, Refusal, Result};
use crate::install;
use crate::manifest::{self, Parsed, SkillManifest};
use crate::ownership::{self, Marker, MARKER_FILE};
use crate::provenance::{self, Provenance};
use crate::reference::{Digest, ImageRef};
use crate::source::{Source, SourceError, Sources};
use crate::state::{
    Backup, Hold, HoldReason, Installed, SkillRecord, State, Store, TargetRecord, Verification,
};
use crate::tree::{self, TreeRecord};
use crate::unpack;
use crate::verify::{self, ContainersPolicy, VerifyError};

/// The overall state of a skill after a pass, and of one of its targets:
/// the wire types themselves (`control::protocol`), so the two cannot drift.
pub use crate::control::protocol::{SkillState, TargetState};

/// One target's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    /// The target name.
    pub name: String,
    /// The skill folder in it.
    pub path: PathBuf,
    /// Its state.
    pub state: TargetState,
    /// Why it is not in sync, if it is not.
    pub error: Option<String>,
}

/// One skill's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct SkillReport {
    /// The skill name.
    pub name: String,
    /// The image it follows.
    pub image: String,
    /// The version installed (or selected).
    pub version: Option<String>,
    /// The manifest digest installed (or selected).
    pub digest: Option<Digest>,
    /// The lifecycle status of that manifest.
    pub status: Option<Status>,
    /// Overall state.
    pub state: SkillState,
    /// Why the skill is not in sync, in one line.
    pub error: Option<String>,
    /// Per target.
    pub targets: Vec<TargetReport>,
    /// What this pass changed, one line each, for people.
    pub changes: Vec<String>,
    /// Layer bytes downloaded by this pass.
    pub downloaded: u64,
    /// Set while the skill is held or rolled back (`held at 1.0.0 since …`).
    pub held: Option<String>,
    /// What this pass did, typed (the same as `changes`).
    pub events: Vec<Event>,
    /// The installed version's tag is gone from the registry.
    pub archived: bool,
    /// Copies kept of replaced folders (`claude adopted at …: /path`).
    pub backups: Vec<String>,
    /// The endpoint that answered (a mirror, or the registry itself).
    pub served_by: Option<String>,
    /// How the version shown was verified (`verified: cosign signature by
    /// …`), or `unverified` when no key policy applies.
    pub verification: Option<String>,
}

/// Backups as status lists them.
pub fn describe_backups(backups: &[Backup]) -> Vec<String> {
    backups
        .iter()
        .map(|b| {
            format!(
                "{} {} at {}: {}",
                b.target,
                b.reason,
                b.at,
                b.path.display()
            )
        })
        .collect()
}

impl SkillReport {
    /// Records one thing this pass did, as a line for people and an event.
    fn record(
        &mut self,
        kind: EventKind,
        target: Option<&str>,
        known: &Installed,
        message: String,
    ) {
        self.events.push(Event {
            at: now_rfc3339(),
            skill: self.name.clone(),
            kind,
            target: target.map(str::to_string),
            version: known.version.clone(),
            digest: Some(known.manifest_digest.to_string()),
            message: message.clone(),
        });
        self.changes.push(message);
    }
}

/// What a target needs, decided from the state file and the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPlan {
    /// Already holds this layer and this manifest.
    UpToDate,
    /// Holds this layer under another manifest (e.g. after a promotion):
    /// record the new manifest, touch nothing.
    RecordOnly,
    /// Needs the layer unpacked and swapped in.
    Install,
    /// Something not installed by us is at the skill's path.
    Conflict,
    /// Ours, but edited or deleted since it was installed, and the skill's
    /// `on_drift` says to leave it: nothing is touched.
    Drifted(String),
}

/// Decides what one target needs. Pure apart from the caller's look at the
/// disk (`present`: does `<target>/<name>` exist).
///
/// A target with a `pending` install was interrupted (a crash) somewhere
/// around its swap: the folder may hold the recorded tree or the pending
/// one, so `installed` cannot be trusted and the target is installed again.
pub fn plan_target(
    recorded: Option<&TargetRecord>,
    present: bool,
    manifest: &Digest,
    layer: &Digest,
) -> TargetPlan {
    match recorded {
        Some(t) => match &t.installed {
            Some(i) if present && t.pending.is_none() && i.layer_digest == *layer => {
                if i.manifest_digest == *manifest {
                    TargetPlan::UpToDate
                } else {
                    TargetPlan::RecordOnly
                }
            }
            // Ours (installed or pending) but different or missing: install.
            _ => TargetPlan::Install,
        },
        None if present => TargetPlan::Conflict,
        None => TargetPlan::Install,
    }
}

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

/// What resolution chose.
#[derive(Debug, Clone)]
struct Desired {
    /// The tag it was resolved through (a pinned tag, or the version tag
    /// a channel picked); `None` for a pinned digest or an archived one.
    tag: Option<String>,
    /// What the tag (or pin) points at: an index or a manifest.
    ref_digest: Digest,
    /// The image manifest, when it had to be fetched.
    manifest: Option<SkillManifest>,
    /// The image manifest as recorded (known without fetching).
    known: Installed,
    /// A deprecated version kept because it is installed and nothing newer
    /// qualifies.
    kept_deprecated: bool,
    /// The installed version's tag is gone from the registry (archived);
    /// it stays installed (or is removed, per `on_archived`).
    archived: bool,
}

/// Everything a pass needs, shared by all skills.
pub struct Engine {
    config: Config,
    sources: Sources,
    cache: Cache,
    limits: unpack::Limits,
    /// The per-skill state records; shared with the engines built from
    /// later configs (see [`Engine::reconfigured`]).
    state: Arc<Store>,
    /// Where the state (and backups) live.
    state_dir: PathBuf,
    /// One read-modify-write of a record outside a skill's pass at a time
    /// (hold, rollback, resume, prune); shared like `state`.
    edits: Arc<Mutex<()>>,
    /// Plan only: resolve and compare, but write nothing anywhere (no
    /// target, no state, no cache); changes are reported as "would ...".
    dry_run: bool,
    /// The containers trust policy (`policy.json`), read with the config;
    /// an unreadable one fails every registry skill's verification.
    containers: Result<Option<ContainersPolicy>, (PathBuf, String)>,
}

/// Reads the containers policy where podman would (or where
/// `SKILLSYNC_CONTAINERS_POLICY` says).
fn load_containers_policy() -> Result<Option<ContainersPolicy>, (PathBuf, String)> {
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
fn trust_line(prev: Option<&SkillRecord>, digest: &Digest) -> String {
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

/// A folder without a state record, recognised by its marker: the record
/// rebuilt from it, and whether the folder was edited since.
async fn recognise(path: &Path, name: &str) -> Option<(TargetRecord, bool)> {
    let path = path.to_path_buf();
    let name = name.to_string();
    tokio::task::spawn_blocking(move || {
        let marker = Marker::read(&path, &name)?;
        let tree = tree::record(&path, &[MARKER_FILE]).ok()?;
        let edited = tree.hash != marker.tree_hash;
        let state = TargetRecord {
            path: path.clone(),
            installed: Some(Installed {
                manifest_digest: marker.manifest_digest,
                layer_digest: marker.layer_digest,
                version: marker.version,
                status: marker.status,
                installed_at: marker.installed_at,
            }),
            pending: None,
            // An edited tree is not a baseline: restore or resume records
            // a new one.
            tree: (!edited).then_some(tree),
        };
        Some((state, edited))
    })
    .await
    .ok()
    .flatten()
}

fn prev_backups(prev: Option<&SkillRecord>) -> Vec<String> {
    prev.map(|p| describe_backups(&p.backups))
        .unwrap_or_default()
}

/// Whether a managed folder may be removed: `None` when it is ours and
/// unedited, else why it is kept.
async fn removable(name: &str, t: &TargetRecord) -> Result<Option<String>> {
    let mut record = t.tree.clone();
    let path = t.path.clone();
    let skill_name = name.to_string();
    tokio::task::spawn_blocking(move || -> Result<Option<String>> {
        if Marker::read(&path, &skill_name).is_none() && record.is_none() {
            return Ok(Some("it carries no skillsyncd marker".into()));
        }
        match record.as_mut() {
            Some(rec) => {
                let drift = tree::check(&path, rec, &[MARKER_FILE])?;
                Ok((!drift.is_clean()).then(|| format!("it was edited: {}", drift.summary())))
            }
            None => {
                let marker = Marker::read(&path, &skill_name);
                let hash = tree::hash_only(&path, &[MARKER_FILE])?;
                Ok(
                    (marker.map(|m| m.tree_hash) != Some(hash))
                        .then(|| "it was edited".to_string()),
                )
            }
        }
    })
    .await
    .map_err(|e| Error::Task(format!("removal check failed: {e}")))?
}

/// Compares a folder with its recorded tree (re-hashing only what changed).
async fn check_tree(path: &Path, record: &mut TreeRecord) -> Result<tree::Drift> {
    let path = path.to_path_buf();
    let mut rec = record.clone();
    let (drift, rec) = tokio::task::spawn_blocking(move || {
        tree::check(&path, &mut rec, &[MARKER_FILE]).map(|d| (d, rec))
    })
    .await
    .map_err(|e| Error::Task(format!("drift check failed: {e}")))??;
    *record = rec;
    Ok(drift)
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

impl Engine {
    /// Builds an engine: sources for the config, the cache, the state file.
    pub fn new(config: Config, state_dir: &Path, cache_dir: &Path) -> Result<Engine> {
        let state = Store::open(state_dir)?;
        Self::build(
            config,
            Arc::new(state),
            state_dir.to_path_buf(),
            Arc::default(),
            Cache::new(cache_dir),
        )
    }

    fn build(
        config: Config,
        state: Arc<Store>,
        state_dir: PathBuf,
        edits: Arc<Mutex<()>>,
        cache: Cache,
    ) -> Result<Engine> {
        let sources = Sources::new(&(&config).into())?;
        let limits = unpack::Limits {
            max_bytes: config.daemon.max_skill_size,
            max_entries: config.daemon.max_entries,
            ..Default::default()
        };
        Ok(Engine {
            sources,
            cache,
            limits,
            state,
            state_dir,
            edits,
            config,
            dry_run: false,
            containers: load_containers_policy(),
        })
    }

    /// When every endpoint `image` is served from waits out a failure
    /// (a rate limit or an outage): the earliest time one is asked again.
    pub fn next_try(&self, image: &crate::reference::ImageRef) -> Option<std::time::SystemTime> {
        self.sources.next_try(image)
    }

    /// A dry-run copy: the same config, a private copy of the state, and
    /// nothing written anywhere; each pass reports what it would do.
    pub async fn dry_run(&self) -> Result<Engine> {
        let state = self.state().await?;
        let mut engine = Self::build(
            self.config.clone(),
            Arc::new(Store::memory(state)),
            self.state_dir.clone(),
            Arc::default(),
            self.cache.clone(),
        )?;
        engine.dry_run = true;
        Ok(engine)
    }

    /// Whether this engine only plans.
    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    /// An engine for a new config that shares this one's state, state file
    /// and cache (which stay where they were at start).
    pub fn reconfigured(&self, config: Config) -> Result<Engine> {
        let engine = Self::build(
            config,
            self.state.clone(),
            self.state_dir.clone(),
            self.edits.clone(),
            self.cache.clone(),
        )?;
        engine.sources.carry_over(&self.sources);
        Ok(engine)
    }

    /// Calls `f` with each skill's recorded state, one at a time, in name
    /// order (blocking: file reads).
    pub fn visit_state(&self, f: impl FnMut(&str, SkillRecord)) -> Result<()> {
        self.state.visit(f)
    }

    /// Every skill's recorded state, read from the state files.
    pub async fn state(&self) -> Result<State> {
        let store = self.state.clone();
        tokio::task::spawn_blocking(move || store.load_all())
            .await
            .map_err(|e| Error::Task(format!("reading the state failed: {e}")))?
    }

    /// Skill `name`'s recorded state, read now (blocking: a file read).
    pub fn read_state(&self, name: &str) -> Result<Option<SkillRecord>> {
        self.state.load(name)
    }

    /// Skill `name`'s recorded state.
    async fn load_state(&self, name: &str) -> Result<Option<SkillRecord>> {
        let (store, name) = (self.state.clone(), name.to_string());
        tokio::task::spawn_blocking(move || store.load(&name))
            .await
            .map_err(|e| Error::Task(format!("reading the state failed: {e}")))?
    }

    /// The configuration this engine runs.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The sources built for the configuration.
    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// Repairs what a crash left: interrupted swaps and staging dirs in every
    /// target, partial downloads in the cache. Returns lines for the log.
    pub fn recover(&self) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        for target in self.config.targets.values() {
            let r = install::recover(&target.path)?;
            for name in r.completed {
                notes.push(format!(
                    "completed an interrupted install of {name} in {}",
                    target.path.display()
                ));
            }
            if r.removed > 0 {
                notes.push(format!(
                    "removed {} leftover staging dirs in {}",
                    r.removed,
                    target.path.display()
                ));
            }
        }
        crate::cache::remove_temporaries(&self.state_dir)?;
        if let Some(dir) = self.state.dir() {
            crate::cache::remove_temporaries(dir)?;
        }
        let n = self.cache.clean_partials()?;
        if n > 0 {
            notes.push(format!("removed {n} partial downloads from the cache"));
        }
        Ok(notes)
    }

    /// Deletes cached layers no target uses any more.
    pub async fn collect_garbage(&self) -> Result<usize> {
        if self.dry_run {
            return Ok(0);
        }
        let store = self.state.clone();
        let keep = tokio::task::spawn_blocking(move || {
            let mut keep = std::collections::HashSet::new();
            store
                .visit(|_, s| {
                    keep.extend(
                        s.targets
                            .values()
                            .filter_map(|t| t.installed.as_ref())
                            .chain(s.current.as_ref())
                            .chain(s.history.iter())
                            .chain(s.hold.as_ref().map(|h| &h.installed))
                            .flat_map(|i| [i.layer_digest.clone(), i.manifest_digest.clone()])
                            .chain(s.ref_digest.clone()),
                    );
                })
                .map(|()| keep)
        })
        .await
        .map_err(|e| Error::Task(format!("reading the state failed: {e}")))??;
        self.cache.collect_garbage(&keep)
    }

    /// Fetches a manifest by digest, verifies it, follows an index to its
    /// linux manifest, and checks the skillimage rules.
    async fn load_manifest(
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

    fn installed_from(m: &SkillManifest) -> Result<Installed> {
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
    async fn resolve(
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

    /// Uninstalls what the config no longer names: skills removed from it,
    /// and targets removed from a skill (or moved elsewhere). Only folders
    /// that are ours and unedited are removed (renamed out atomically, then
    /// deleted); an edited one is kept and reported, and with
    /// `[daemon] prune = false` everything is kept (shown as unmanaged).
    /// Returns what was done, as events.
    pub async fn prune(&self) -> Result<Vec<Event>> {
        let store = self.state.clone();
        let names = tokio::task::spawn_blocking(move || store.names())
            .await
            .map_err(|e| Error::Task(format!("reading the state failed: {e}")))??;
        self.prune_names(names).await
    }

    /// Whether [`Engine::prune`] has anything to do with skill `name`'s
    /// `record`: a target the config no longer wants it in, or a skill no
    /// longer configured with no target left.
    pub fn needs_prune(&self, name: &str, record: &SkillRecord) -> bool {
        (record.targets.is_empty() && !self.config.skills.contains_key(name))
            || record
                .targets
                .iter()
                .any(|(tname, t)| !self.config.wants(name, tname, &t.path))
    }

    /// [`Engine::prune`] of the skills `names` only (those
    /// [`Engine::needs_prune`] picked out while reading the records).
    pub async fn prune_names(&self, names: Vec<String>) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        let _edits = self.edits.lock().await;
        for name in names {
            let mut changed = false;
            let configured = self.config.skills.get(&name);
            let Some(mut recorded) = self.load_state(&name).await? else {
                continue;
            };
            let skill_state = &mut recorded;
            let stale: Vec<String> = skill_state
                .targets
                .iter()
                .filter(|(tname, t)| !self.config.wants(&name, tname, &t.path))
                .map(|(tname, _)| tname.clone())
                .collect();
            for tname in stale {
                let Some(t) = skill_state.targets.get(&tname).cloned() else {
                    continue;
                };
                if !exists(&t.path) {
                    skill_state.targets.remove(&tname);
                    changed = true;
                    continue;
                }
                if !self.config.daemon.prune {
                    continue;
                }
                let verdict = removable(&name, &t).await?;
                let installed = t.installed.clone();
                let event = |kind: EventKind, message: String| Event {
                    at: now_rfc3339(),
                    skill: name.clone(),
                    kind,
                    target: Some(tname.clone()),
                    version: installed.as_ref().and_then(|i| i.version.clone()),
                    digest: installed.as_ref().map(|i| i.manifest_digest.to_string()),
                    message,
                };
                match verdict {
                    Some(why) => {
                        tracing::warn!(skill = %name, target = %tname, "no longer configured, but kept: {why}");
                    }
                    None if self.dry_run => {
                        events.push(event(
                            EventKind::Prune,
                            format!(
                                "would remove {name} from {tname} ({}): no longer configured",
                                t.path.display()
                            ),
                        ));
                    }
                    None => {
                        let dir = t.path.parent().map(Path::to_path_buf).unwrap_or_default();
                        let folder = name.clone();
                        tokio::task::spawn_blocking(move || install::uninstall(&dir, &folder))
                            .await
                            .map_err(|e| Error::Task(format!("prune failed: {e}")))??;
                        skill_state.targets.remove(&tname);
                        changed = true;
                        let message = format!(
                            "removed {name} from {tname} ({}): no longer configured",
                            t.path.display()
                        );
                        tracing::info!(skill = %name, "{message}");
                        events.push(event(EventKind::Prune, message));
                    }
                }
            }
            if configured.is_none() && skill_state.targets.is_empty() {
                let store = self.state.clone();
                let forget = name.clone();
                tokio::task::spawn_blocking(move || store.remove(&forget))
                    .await
                    .map_err(|e| Error::Task(format!("prune failed: {e}")))??;
            } else if changed {
                self.commit_state(&name, skill_state).await?;
            }
        }
        Ok(events)
    }

    /// `on_archived = "remove"`: uninstalls an archived skill from every
    /// target where it is ours and unedited.
    async fn remove_archived(
        &self,
        skill: &Skill,
        prev: Option<SkillRecord>,
        known: &Installed,
        report: &mut SkillReport,
    ) -> Result<()> {
        let Some(mut skill_state) = prev else {
            return Ok(());
        };
        let label = format!(
            "{} {}",
            skill.name,
            known.version.as_deref().unwrap_or("(no version)")
        );
        let names: Vec<String> = skill_state.targets.keys().cloned().collect();
        for tname in names {
            let Some(t) = skill_state.targets.get(&tname).cloned() else {
                continue;
            };
            if !exists(&t.path) {
                skill_state.targets.remove(&tname);
                continue;
            }
            if let Some(why) = removable(&skill.name, &t).await? {
                report
                    .changes
                    .push(format!("{label} is archived; kept in {tname}: {why}"));
                continue;
            }
            if self.dry_run {
                report
                    .changes
                    .push(format!("would remove {label} from {tname}: archived"));
                continue;
            }
            let dir = t.path.parent().map(Path::to_path_buf).unwrap_or_default();
            let folder = skill.name.clone();
            tokio::task::spawn_blocking(move || install::uninstall(&dir, &folder))
                .await
                .map_err(|e| Error::Task(format!("removal failed: {e}")))??;
            skill_state.targets.remove(&tname);
            report.record(
                EventKind::Prune,
                Some(&tname),
                known,
                format!(
                    "removed {label} from {tname} ({}): archived",
                    t.path.display()
                ),
            );
        }
        skill_state.archived = true;
        self.commit_state(&skill.name, &skill_state).await
    }

    /// Copies an edited skill folder to
    /// `<state dir>/backups/<skill>/<target>-<time>/` before it is replaced.
    pub async fn backup(&self, skill: &str, target: &str, path: &Path) -> Result<PathBuf> {
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            .to_string()
            .replace(':', "");
        let dest = self
            .state_dir
            .join("backups")
            .join(skill)
            .join(format!("{target}-{stamp}"));
        let from = path.to_path_buf();
        let to = dest.clone();
        tokio::task::spawn_blocking(move || install::copy_tree(&from, &to))
            .await
            .map_err(|e| Error::Task(format!("backup failed: {e}")))??;
        Ok(dest)
    }

    /// Freezes a skill at the version installed now: later passes keep it
    /// and resolve nothing until [`Engine::resume`].
    pub async fn hold(&self, name: &str) -> Result<String> {
        let _edits = self.edits.lock().await;
        let mut recorded = self.load_state(name).await?;
        let not_installed = || Refusal::NotInstalled {
            name: name.to_string(),
            action: "hold",
        };
        let skill = recorded.as_mut().ok_or_else(not_installed)?;
        let installed = skill
            .targets
            .values()
            .find_map(|t| t.installed.clone())
            .ok_or_else(not_installed)?;
        let hold = Hold {
            reason: HoldReason::Hold,
            installed,
            since: now_rfc3339(),
        };
        let line = hold.describe();
        skill.hold = Some(hold);
        self.commit_state(name, skill).await?;
        Ok(line)
    }

    /// Holds a skill at its previous generation; the next pass reinstalls
    /// it from the cache, with no network.
    pub async fn rollback(&self, name: &str) -> Result<String> {
        let _edits = self.edits.lock().await;
        let mut recorded = self.load_state(name).await?;
        let skill = recorded.as_mut().ok_or_else(|| Refusal::NotInstalled {
            name: name.to_string(),
            action: "roll back",
        })?;
        let installed_layer = skill
            .targets
            .values()
            .find_map(|t| t.installed.as_ref().map(|i| i.layer_digest.clone()));
        let previous = skill
            .history
            .iter()
            .find(|h| Some(&h.layer_digest) != installed_layer.as_ref())
            .cloned()
            .ok_or_else(|| Refusal::NoEarlierGeneration {
                name: name.to_string(),
            })?;
        if !self.cache.blob_path(&previous.layer_digest).is_file() {
            return Err(Refusal::GenerationEvicted {
                name: name.to_string(),
                version: previous
                    .version
                    .as_deref()
                    .unwrap_or(previous.manifest_digest.short())
                    .to_string(),
            }
            .into());
        }
        let hold = Hold {
            reason: HoldReason::Rollback,
            installed: previous,
            since: now_rfc3339(),
        };
        let line = hold.describe();
        skill.hold = Some(hold);
        self.commit_state(name, skill).await?;
        Ok(line)
    }

    /// Lifts a hold or rollback: the next pass follows the config again.
    /// Local edits are accepted as they are (their trees become the new
    /// baseline, so they no longer count as drift), and a folder deleted by
    /// hand is installed again. Returns whether anything changed.
    pub async fn resume(&self, name: &str) -> Result<bool> {
        let _edits = self.edits.lock().await;
        let Some(mut skill) = self.load_state(name).await? else {
            return Ok(false);
        };
        let mut changed = skill.hold.take().is_some();
        for t in skill.targets.values_mut() {
            if t.installed.is_none() {
                continue;
            }
            let path = t.path.clone();
            let rebased = tokio::task::spawn_blocking(move || {
                if exists(&path) {
                    tree::record(&path, &[MARKER_FILE]).map(Some)
                } else {
                    Ok(None)
                }
            })
            .await
            .map_err(|e| Error::Task(format!("resume failed: {e}")))??;
            match rebased {
                Some(tree) => {
                    if t.tree.as_ref().map(|r| &r.hash) != Some(&tree.hash) {
                        changed = true;
                    }
                    t.tree = Some(tree);
                }
                None => {
                    // Deleted by hand: forget it, so the next pass installs it.
                    t.installed = None;
                    t.tree = None;
                    changed = true;
                }
            }
        }
        self.commit_state(name, &skill).await?;
        Ok(changed)
    }

    /// Runs one pass for one skill. Never panics on bad input; every failure
    /// ends up in the report, and what was installed stays.
    pub async fn sync(&self, skill: &Skill) -> SkillReport {
        let source = self.sources.for_image(&skill.image);
        let mut report = SkillReport {
            name: skill.name.clone(),
            image: skill.image.to_string(),
            version: None,
            digest: None,
            status: None,
            state: SkillState::InSync,
            error: None,
            targets: Vec::new(),
            changes: Vec::new(),
            downloaded: 0,
            held: None,
            events: Vec::new(),
            archived: false,
            backups: prev_backups(None),
            served_by: None,
            verification: None,
        };
        let prev = match self.load_state(&skill.name).await {
            Ok(prev) => prev,
            Err(e) => {
                report.state = SkillState::Error;
                report.error = Some(e.to_string());
                return report;
            }
        };
        report.backups = prev_backups(prev.as_ref());
        if let Some(hold) = prev.as_ref().and_then(|p| p.hold.clone()) {
            // Frozen: no resolution, no network; the held version is kept
            // (and put back from the cache where a target lost it).
            report.held = Some(hold.describe());
            report.version = hold.installed.version.clone();
            report.digest = Some(hold.installed.manifest_digest.clone());
            report.status = Some(hold.installed.status);
            report.verification = Some(trust_line(prev.as_ref(), &hold.installed.manifest_digest));
            let desired = Desired {
                tag: None,
                ref_digest: hold.installed.manifest_digest.clone(),
                manifest: None,
                known: hold.installed,
                kept_deprecated: false,
                archived: false,
            };
            if let Err(e) = self
                .apply(&source, skill, prev, desired, None, &mut report)
                .await
            {
                report.state = SkillState::Error;
                report.error = Some(e.to_string());
            }
            return report;
        }
        if let Some(c) = prev.as_ref().and_then(|p| p.current.as_ref()) {
            report.version = c.version.clone();
            report.digest = Some(c.manifest_digest.clone());
            report.status = Some(c.status);
            report.verification = Some(trust_line(prev.as_ref(), &c.manifest_digest));
        }
        let desired = match self.resolve(&source, skill, prev.as_ref()).await {
            Ok(d) => d,
            Err(e) => {
                report.state = SkillState::Error;
                report.error = Some(e.to_string());
                report.targets = self.target_reports(skill, prev.as_ref(), None);
                return report;
            }
        };
        report.version = desired.known.version.clone();
        report.digest = Some(desired.known.manifest_digest.clone());
        report.status = Some(desired.known.status);
        report.archived = desired.archived;
        report.served_by = source.served_by(&skill.image);
        if desired.archived && skill.on_archived == OnArchived::Remove {
            if let Err(e) = self
                .remove_archived(skill, prev, &desired.known, &mut report)
                .await
            {
                report.state = SkillState::Error;
                report.error = Some(e.to_string());
            }
            return report;
        }
        // Verified before anything is downloaded; what is installed stays
        // when it fails.
        let verified = if desired.archived {
            None
        } else {
            match self
                .check_trust(&source, skill, prev.as_ref(), &desired)
                .await
            {
                Ok(v) => {
                    report.verification =
                        Some(v.as_ref().map_or("unverified".into(), |v| v.by.clone()));
                    v
                }
                Err(e) => {
                    tracing::warn!(skill = %skill.name, "{e}");
                    let current = prev.as_ref().and_then(|p| p.current.as_ref());
                    report.version = current.and_then(|c| c.version.clone());
                    report.digest = current.map(|c| c.manifest_digest.clone());
                    report.status = current.map(|c| c.status);
                    report.verification =
                        current.map(|c| trust_line(prev.as_ref(), &c.manifest_digest));
                    report.state = SkillState::Error;
                    report.error = Some(e.to_string());
                    report.targets = self.target_reports(skill, prev.as_ref(), None);
                    return report;
                }
            }
        };
        if let Err(e) = self
            .apply(&source, skill, prev, desired, verified, &mut report)
            .await
        {
            report.state = SkillState::Error;
            report.error = Some(e.to_string());
        }
        report
    }

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
    async fn check_trust(
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

    fn target_reports(
        &self,
        skill: &Skill,
        prev: Option<&SkillRecord>,
        layer: Option<&Digest>,
    ) -> Vec<TargetReport> {
        skill
            .targets
            .iter()
            .filter_map(|t| self.config.targets.get(t))
            .map(|t| {
                let path = t.path.join(&skill.name);
                let rec = prev.and_then(|p| p.targets.get(&t.name));
                let installed = rec.and_then(|r| r.installed.as_ref());
                let state = match (installed, layer) {
                    (Some(i), Some(l)) if &i.layer_digest == l && exists(&path) => {
                        TargetState::InSync
                    }
                    (Some(_), None) if exists(&path) => TargetState::InSync,
                    (None, _) if rec.is_none() && exists(&path) => TargetState::Conflict,
                    _ => TargetState::Pending,
                };
                TargetReport {
                    name: t.name.clone(),
                    path,
                    state,
                    error: None,
                }
            })
            .collect()
    }

    /// Steps 2-5.
    async fn apply(
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

    /// Target `target`'s record in `skill_state`, made empty (for `path`)
    /// if it has none yet.
    fn target_entry<'a>(
        skill_state: &'a mut SkillRecord,
        target: &str,
        path: &Path,
    ) -> &'a mut TargetRecord {
        skill_state
            .targets
            .entry(target.to_string())
            .or_insert_with(|| {
                Box::new(TargetRecord {
                    path: path.to_path_buf(),
                    installed: None,
                    pending: None,
                    tree: None,
                })
            })
    }

    /// Undoes the `pending` mark of an install that did not happen (the
    /// record goes if nothing was installed there before).
    fn unmark_pending(skill_state: &mut SkillRecord, target: &str, path: &Path) {
        if let Some(entry) = skill_state.targets.get_mut(target) {
            entry.pending = None;
            if entry.installed.is_none() && !exists(path) {
                skill_state.targets.remove(target);
            }
        }
    }

    /// Records `skill_state` as skill `name`'s state, durably (nothing is
    /// written in a dry run: its store is a private copy in memory).
    async fn commit_state(&self, name: &str, skill_state: &SkillRecord) -> Result<()> {
        let (store, name, skill_state) =
            (self.state.clone(), name.to_string(), skill_state.clone());
        tokio::task::spawn_blocking(move || store.save(&name, &skill_state))
            .await
            .map_err(|e| Error::Task(format!("writing the state failed: {e}")))?
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
        tokio::task::spawn_blocking(move || -> Result<TreeRecord> {
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
        .await
        .map_err(|e| Error::Task(format!("install task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_names_missing_keys_and_what_the_containers_policy_refuses() {
        let home = tempfile::tempdir().unwrap();
        let key = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/cosign/legacy-containers-image-valid/cosign.pub");
        let text = format!(
            r#"
[registries."layout.local"]
layout = "{layout}"

[skills.a]
image = "quay.io/acme/a"
verify = {{ keys = ["/no/such/key.pub"] }}

[skills.b]
image = "quay.io/acme/b"
verify = {{ keys = ["/no/such/key.pub", "{key}"] }}

[skills.c]
image = "registry.example/tools/c"
verify = "none"

[skills.d]
image = "layout.local/x/d"
verify = "none"
"#,
            layout = home.path().display(),
            key = key.display(),
        );
        let config = Config::parse(&text, &home.path().join("skills.toml"), home.path()).unwrap();
        let policy = ContainersPolicy::parse(
            Path::new("/etc/containers/policy.json"),
            br#"{"default":[{"type":"insecureAcceptAnything"}],
                 "transports":{"docker":{"registry.example/tools":[{"type":"reject"}]}}}"#,
        )
        .unwrap();
        let problems = trust_problems_with(&config, Ok(Some(policy)));
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(
            problems[0].contains("/no/such/key.pub") && problems[0].contains("needed by a, b"),
            "{problems:#?}"
        );
        assert!(
            problems[1].starts_with("skill c:") && problems[1].contains("reject"),
            "{problems:#?}"
        );

        // An unreadable policy stops every skill from a registry; a config
        // of layout skills only does not care.
        let broken = Err((PathBuf::from("/p.json"), "not JSON".to_string()));
        let problems = trust_problems_with(&config, broken.clone());
        assert!(
            problems.iter().any(|p| p.contains("/p.json: not JSON")),
            "{problems:#?}"
        );
        let layouts_only = Config::parse(
            &format!(
                "[registries.\"layout.local\"]\nlayout = \"{}\"\n[skills.d]\nimage = \"layout.local/x/d\"\n",
                home.path().display()
            ),
            &home.path().join("skills.toml"),
            home.path(),
        )
        .unwrap();
        assert!(trust_problems_with(&layouts_only, broken).is_empty());
        assert!(trust_problems_with(&layouts_only, Ok(None)).is_empty());
    }

    fn target(installed: Option<&Digest>, pending: Option<&Digest>) -> TargetRecord {
        TargetRecord {
            path: "/t/skill".into(),
            installed: installed.map(|layer| Installed {
                manifest_digest: Digest::of(b"manifest"),
                layer_digest: layer.clone(),
                version: Some("1.0.0".into()),
                status: Status::Published,
                installed_at: "2026-01-01T00:00:00Z".into(),
            }),
            pending: pending.cloned(),
            tree: None,
        }
    }

    #[test]
    fn plans_each_target() {
        let (manifest, other_manifest) = (Digest::of(b"manifest"), Digest::of(b"promoted"));
        let (layer, other) = (Digest::of(b"layer"), Digest::of(b"other"));
        let done = target(Some(&layer), None);
        assert_eq!(
            plan_target(Some(&done), true, &manifest, &layer),
            TargetPlan::UpToDate
        );
        assert_eq!(
            plan_target(Some(&done), true, &other_manifest, &layer),
            TargetPlan::RecordOnly
        );
        assert_eq!(
            plan_target(Some(&done), false, &manifest, &layer),
            TargetPlan::Install
        );
        assert_eq!(
            plan_target(Some(&done), true, &manifest, &other),
            TargetPlan::Install
        );
        assert_eq!(
            plan_target(None, true, &manifest, &layer),
            TargetPlan::Conflict
        );
        assert_eq!(
            plan_target(None, false, &manifest, &layer),
            TargetPlan::Install
        );
    }

    #[test]
    fn an_interrupted_install_is_redone_even_back_to_the_recorded_layer() {
        // A crash while `other` was being swapped in over `layer`: the
        // folder may hold either tree, so wanting `layer` again still
        // reinstalls it.
        let manifest = Digest::of(b"manifest");
        let (layer, other) = (Digest::of(b"layer"), Digest::of(b"other"));
        let interrupted = target(Some(&layer), Some(&other));
        assert_eq!(
            plan_target(Some(&interrupted), true, &manifest, &layer),
            TargetPlan::Install
        );
        let first = target(None, Some(&layer));
        assert_eq!(
            plan_target(Some(&first), true, &manifest, &layer),
            TargetPlan::Install
        );
    }
}
