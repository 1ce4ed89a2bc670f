//! The library's error type.
//!
//! Every variant carries the objects involved (paths, digests, references)
//! so that a message read in `status` or on stderr says what went wrong
//! where, and the underlying cause is kept in `#[source]`.

use std::path::PathBuf;

/// A result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done ("creating directory", "reading", ...).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A layer archive broke one of the hostile-archive rules.
    #[error(transparent)]
    Unpack(#[from] crate::unpack::UnpackError),

    /// The layer's `skill.yaml` could not be given its provenance (it is
    /// not a valid SkillCard).
    #[error("skill.yaml: {0}")]
    Provenance(#[from] crate::provenance::ProvenanceError),

    /// The registry or layout could not be read.
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),

    /// The image is not signed as the trust policy requires, or the
    /// policy itself cannot be applied.
    #[error(transparent)]
    Verify(#[from] crate::verify::VerifyError),

    /// Content did not match its digest or size.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was being verified ("manifest of 127.0.0.1:5000/x", "layer ...").
        what: String,
        /// The digest that was asked for.
        expected: String,
        /// The digest computed locally.
        actual: String,
    },

    /// Content was larger than its descriptor or a configured cap.
    #[error("{what} is larger than the {limit} bytes allowed")]
    TooLarge {
        /// What was being read.
        what: String,
        /// The limit in bytes.
        limit: u64,
    },

    /// The image does not follow the skillimage format.
    #[error("{reference}: {reason}")]
    Format {
        /// The image reference.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },

    /// No version of the image qualifies for the skill's channel.
    #[error("{0}")]
    NoVersion(String),

    /// A hold, rollback or resume that the skill's state does not allow.
    #[error(transparent)]
    Refused(#[from] Refusal),

    /// The control socket could not be set up.
    #[error(transparent)]
    Control(#[from] crate::control::server::ServerError),

    /// A background task died (a bug, reported rather than propagated as a panic).
    #[error("{0}")]
    Task(String),

    /// The state file could not be read or written.
    #[error("state file {path}: {reason}")]
    State {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Why a hold, rollback or resume cannot be done: the skill's state, not
/// a failure. The control socket answers these with 409.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Nothing is installed, so there is nothing to hold or roll back.
    #[error("{name} has not been installed yet; nothing to {action}")]
    NotInstalled {
        /// The skill.
        name: String,
        /// "hold" or "roll back".
        action: &'static str,
    },
    /// The history holds no generation other than the installed one.
    #[error("{name} has no earlier generation to roll back to")]
    NoEarlierGeneration {
        /// The skill.
        name: String,
    },
    /// The earlier generation's layer was collected from the cache.
    #[error("{name}: the earlier generation {version} is no longer in the cache")]
    GenerationEvicted {
        /// The skill.
        name: String,
        /// The generation's version, or its short manifest digest.
        version: String,
    },
}

/// An error and its causes on one line ("error sending request: connection
/// refused"); a cause whose text the line already holds is not repeated.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

/// Runs blocking work (file-system walks, state reads and writes) on
/// tokio's blocking pool. A task that dies (a panic: a bug) becomes
/// [`Error::Task`] naming `what`, as "`what` failed: cause".
pub async fn blocking<T, F>(what: &'static str, work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Task(format!("{what} failed: {e}")))
}

impl Error {
    /// Wraps an I/O error with what was being done and to which path.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

impl From<crate::fs::FsError> for Error {
    fn from(e: crate::fs::FsError) -> Self {
        Error::io(e.action, e.path, e.source)
    }
}

/// Extension to attach a path and an action to `std::io::Result`.
pub trait IoContext<T> {
    /// Converts an I/O error into [`Error::Io`] naming `action` and `path`.
    fn ctx(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(action, path, e))
    }
}
