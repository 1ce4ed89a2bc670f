//! skillsyncd keeps AI agents' skill folders (`~/.claude/skills/<name>/` and
//! the like) in sync with skill images published as OCI images by
//! `skillctl`.
//!
//! # Layout
//!
//! The flow of one reconcile pass, module by module:
//!
//! - [`paths`]: where the config, state, cache and socket live (XDG dirs,
//!   overridable by environment, then by the config's two directories).
//! - [`config`]: `skills.toml` parsed and validated into types that cannot be
//!   invalid; every error names the file, line and column.
//! - [`name`]: the one rule for skill and target names.
//! - [`config::layers`]: the system file, the user's file and their includes
//!   (local, globbed, or remote `oci://` fragments) merged key by key, each
//!   setting's origin kept.
//! - [`config::collection`]: skillctl's `SkillCollection` documents and the skills
//!   they add.
//! - [`config::remote`]: remote fragments and collection documents fetched, verified
//!   and cached (the last good copy stays in force).
//! - [`config::sources`]: the source settings a configuration gives.
//! - [`reference`](mod@reference): image references (`host[:port]/repository`) and digests.
//! - [`channel`]: pure tag → version selection (published / testing / draft,
//!   semver requirements) and lifecycle status rules.
//! - [`manifest`]: OCI manifest and index parsing and validation of the
//!   skillimage format.
//! - [`source::auth`]: registry credentials from the files podman, skopeo and
//!   docker use (`auth.json`, `config.json`), credential helpers run with a
//!   timeout.
//! - [`source`]: where images come from, behind one trait: a registry
//!   (`source::registry`, speaking the distribution API over
//!   `source::http`, with per-endpoint backoff in `source::backoff` and
//!   registries.conf routes from `source::registries_conf`) or an OCI image
//!   layout directory (`source::layout`), built from `source::SourceSettings`.
//! - [`cache`]: content-addressed blob cache; digests computed while
//!   streaming, sizes capped.
//! - [`unpack`]: hostile-archive rules; a layer unpacked into a staging dir.
//! - [`install`]: the atomic swap of a staged tree into `<target>/<name>`,
//!   and crash recovery.
//! - [`provenance`]: `provenance.source`/`commit` written into the installed
//!   copy's `skill.yaml` as `skillctl install` does, so `skillctl list
//!   --installed` and `skillctl upgrade` see what skillsyncd installed.
//! - [`ownership`]: the marker that makes a folder recognisably ours, even
//!   without the state file.
//! - [`state`]: what is installed where, written atomically.
//! - [`fs`]: the one place files are written atomically (temporary file,
//!   rename, the fsyncs each caller needs), directory fsyncs and unique
//!   temporary names.
//! - [`tree`]: what an installed tree holds (per-file sha256, a tree hash)
//!   and drift detection that reads only files whose size, mtime, ctime or
//!   inode moved.
//! - [`verify`]: signature verification (cosign signatures and Sigstore
//!   bundles, key-based) and the trust policy (`verify` in `skills.toml`,
//!   the containers `policy.json`), before any layer is downloaded.
//! - [`reconcile`]: one pass for one skill: resolve, fetch, unpack, install,
//!   record.
//! - [`control`]: the control socket (HTTP/1.1 + JSON over a Unix socket):
//!   wire types, server and client.
//! - [`daemon`]: the scheduler: each skill on its own schedule, on-demand
//!   passes, live reload, status, clean shutdown.
//! - [`watch`]: the config file watch behind live reload.
//! - [`lock`]: one daemon per state directory (an `flock` on
//!   `<state dir>/skillsyncd.lock` holding the daemon's pid).
//! - [`service`]: readiness, status, watchdog, reload and stop notifications
//!   to systemd (`$NOTIFY_SOCKET`); a no-op elsewhere.
//! - [`logging`]: the `tracing` subscriber: text or JSON on stderr, plain
//!   under the journal, `RUST_LOG` filtering.
//! - [`memory`]: freed heap handed back to the system when the daemon is
//!   idle (glibc keeps it otherwise).
//! - [`error`]: the library's error type.

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
