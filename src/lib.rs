//! skillsyncd keeps AI agents' skill folders (`~/.claude/skills/<name>/` and
//! the like) in sync with skill images published as OCI images by
//! `skillctl`.
//!
//! # Layout
//!
//! The core is organised by the steps of a pass and the jobs of the daemon,
//! so that a new capability is a new file beside its peers.
//!
//! **Configuration** ([`config`]): the validated types and the one
//! [`config::load`]; `config::raw` (the serde mirror of the file),
//! `config::check` (validation, one file per table), `config::diagnostics`
//! (file:line:col), [`config::layers`] (system and user files and includes,
//! merged key by key), [`config::collection`] (skillctl `SkillCollection`
//! documents), [`config::remote`] (remote `oci://` team files and their
//! cache), [`config::sources`] (the source settings a config gives).
//! [`paths`] says where the config, state, cache and socket live (XDG dirs,
//! overridable by environment); [`name`] is the one rule for skill names.
//!
//! **One pass** ([`reconcile`]): `reconcile/mod.rs` holds the `Engine` and
//! `sync`, which reads load → hold? → resolve → trust → apply. Each step is
//! a file: `resolve` (the digest the config wants), `trust` (signatures and
//! policy, before any download), `survey` (what a target holds now), `plan`
//! (pure: what to do per target), `apply` (fetch the layer once, unpack,
//! swap into every target), `record` (what the state file gets), `report`
//! (what a pass says), and beside the pass `prune`, `hold` (hold, rollback,
//! resume, backups) and `upkeep` (crash recovery, garbage collection).
//!
//! **What a pass uses:**
//! - [`reference`](mod@reference): image references and digests.
//! - [`channel`]: pure tag → version selection and lifecycle status rules.
//! - [`manifest`]: OCI manifest and index parsing, the skillimage format.
//! - [`source`]: where images come from, behind one trait: a registry
//!   (`source::registry` over `source::http`, credentials from
//!   [`source::auth`], per-endpoint backoff in `source::backoff`,
//!   registries.conf routes in `source::registries_conf`) or an OCI image
//!   layout (`source::layout`).
//! - [`verify`]: cosign signatures, Sigstore bundles, the trust policy and
//!   the containers `policy.json`.
//! - [`cache`]: the content-addressed blob cache.
//! - [`unpack`]: hostile-archive rules; a layer unpacked into a staging dir.
//! - [`install`]: the atomic swap into `<target>/<name>`, and its repair.
//! - [`provenance`]: `skill.yaml` given its provenance as `skillctl` writes it.
//! - [`ownership`]: the marker that makes a folder recognisably ours.
//! - [`tree`]: per-file hashes of an installed tree, and drift detection.
//! - [`state`]: one record per skill of what is installed where.
//! - [`fs`]: the one place files are written atomically, directory fsyncs
//!   and unique temporary names.
//! - [`error`]: the library's error type, the blocking-task helper.
//!
//! **The daemon** ([`daemon`]): `daemon/mod.rs` holds `run` and the
//! `Daemon`; `scheduler` (slots, timer queue, passes, poll offsets),
//! `outcome` (a pass's stored result and its status view), `records` (what
//! the state says before the first pass), `events` (the event log),
//! `reload` (config reload keeping the last good config), `control` (the
//! control socket's `Controller`), `sources` (the config's files for
//! status). Around it: [`control`] (the control socket's wire types, server
//! and client), [`watch`] (the config file watch), [`lock`] (one daemon per
//! state directory), [`service`] (systemd notifications), [`logging`] (the
//! `tracing` subscriber) and [`memory`] (freed heap handed back when idle).
//!
//! **Binaries** (`src/bin/`): `skillsyncd` runs the daemon or one pass;
//! `skillsyncctl/` has `main.rs` (arguments, dispatch, exit codes), a file
//! per group of commands and `render.rs` (tables and text).

pub mod cache;
pub mod channel;
pub mod config;
pub mod control;
pub mod daemon;
pub mod error;
pub mod fs;
pub mod install;
pub mod lock;
pub mod logging;
pub mod manifest;
pub mod memory;
pub mod name;
pub mod ownership;
pub mod paths;
pub mod provenance;
pub mod reconcile;
pub mod reference;
pub mod service;
pub mod source;
pub mod state;
pub mod tree;
pub mod unpack;
pub mod verify;
pub mod watch;

pub use error::{Error, Result};
