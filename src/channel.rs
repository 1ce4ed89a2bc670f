//! Channel semantics: which tags are versions, and which version a skill's
//! channel selects. Pure functions, no I/O.
//!
//! (Skeleton: implementation pending.)

use std::fmt;

/// A lifecycle channel a skill follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Only versions whose manifest says `published`.
    Published,
    /// `published` and `testing` versions.
    Testing,
    /// `published`, `testing` and `draft` versions.
    Draft,
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Channel::Published => "published",
            Channel::Testing => "testing",
            Channel::Draft => "draft",
        })
    }
}
