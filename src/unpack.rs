//! Unpacking a skill layer as hostile input.
//!
//! (Skeleton: implementation pending.)

use std::path::PathBuf;

/// Why an archive was rejected.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// Placeholder.
    #[error("archive rejected: {0}")]
    Rejected(String),
    /// I/O failure in the staging dir.
    #[error("unpacking into {path}: {source}")]
    Io {
        /// The path being written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}
