//! Where skill images come from.
//!
//! (Skeleton: implementation pending.)

/// A failure talking to a registry or reading a layout.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Placeholder.
    #[error("{0}")]
    Other(String),
}
