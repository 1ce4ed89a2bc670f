//! Channel semantics: which tags are versions, and which version a skill's
//! channel selects. Pure logic, no I/O: the one lookup that needs the network
//! (a manifest's status annotation) is passed in by the caller.
//!
//! # Tags
//!
//! `skillctl` tags a skill version `V` as `V-draft`, `V-testing` or plain `V`
//! as it moves through its lifecycle (see the format notes). [`parse_tag`]
//! recognises exactly those three shapes, stripping only the trailing
//! `-draft` / `-testing`, so `2.0.0-rc.1-draft` is a draft tag of version
//! `2.0.0-rc.1`. Anything else in a tag list (`latest`, `nightly`,
//! `sha256-<hex>.sig`, `v1.0.0`, …) is ignored.
//!
//! # Selection
//!
//! A channel considers some tag kinds ([`considers`]) and admits some
//! lifecycle statuses ([`admits`]):
//!
//! | channel     | tags considered             | statuses admitted              |
//! | ----------- | --------------------------- | ------------------------------ |
//! | `published` | `V`                         | published                      |
//! | `testing`   | `V`, `V-testing`            | published, testing             |
//! | `draft`     | `V`, `V-testing`, `V-draft` | published, testing, draft      |
//!
//! The status comes from the manifest's `io.skillimage.status` annotation,
//! never from the tag's name: a `1.0.0` tag whose manifest says `draft` is
//! selected only on the draft channel. A `deprecated` version is never newly
//! selected, but when it is the installed version and nothing newer
//! qualifies, it stays installed ([`Selection::kept_deprecated`]).
//! [`select`] walks the candidates best first and looks up only as many
//! manifests as it needs.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::str::FromStr;

use semver::{Version, VersionReq};

use crate::reference::Digest;

/// The manifest annotation holding a skill version's lifecycle status.
pub const STATUS_ANNOTATION: &str = "io.skillimage.status";

/// The manifest annotation holding a skill's version.
pub const VERSION_ANNOTATION: &str = "org.opencontainers.image.version";

/// How many reasons a [`SelectError::NoneQualifies`] lists before summarising.
const MAX_REASONS: usize = 10;

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

/// A channel name that is not `published`, `testing` or `draft`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown channel {0:?}; expected \"published\", \"testing\" or \"draft\"")]
pub struct ChannelError(pub String);

impl FromStr for Channel {
    type Err = ChannelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "published" => Ok(Channel::Published),
            "testing" => Ok(Channel::Testing),
            "draft" => Ok(Channel::Draft),
            _ => Err(ChannelError(s.to_string())),
        }
    }
}

/// Which of the three tag shapes a version tag has.
///
/// Ordered best first: at equal versions a release tag is preferred to a
/// testing tag, and a testing tag to a draft tag.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum TagKind {
    /// `<version>`: the tag of a published (or deprecated) version.
    Release,
    /// `<version>-testing`.
    Testing,
    /// `<version>-draft`.
    Draft,
}

impl fmt::Display for TagKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TagKind::Release => "release",
            TagKind::Testing => "testing",
            TagKind::Draft => "draft",
        })
    }
}

/// A tag that names a skill version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VersionTag {
    /// The tag exactly as the registry lists it.
    pub tag: String,
    /// The skill version it names (the tag without `-draft` / `-testing`).
    pub version: Version,
    /// Which shape the tag has.
    pub kind: TagKind,
}

impl fmt::Display for VersionTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tag)
    }
}

/// Parses a tag as `<semver>`, `<semver>-draft` or `<semver>-testing`.
///
/// Returns `None` for every other tag, which callers ignore: `latest`,
/// `nightly`, signature tags, `v1.0.0`, partial versions like `1.0`, and tags
/// with build metadata (`+` cannot appear in an OCI tag). Only the trailing
/// suffix is stripped: `1.0.0-draft` is the draft tag of `1.0.0` (not a
/// release tag of a version `1.0.0-draft`), and `2.0.0-rc.1-draft` is the draft
/// tag of `2.0.0-rc.1`. A version whose own pre-release ends in `-draft` or
/// `-testing` cannot be told apart from a tag suffix, so such tags
/// (`1.0.0-draft-testing`) are ignored too.
pub fn parse_tag(tag: &str) -> Option<VersionTag> {
    let (base, kind) = if let Some(base) = tag.strip_suffix("-draft") {
        (base, TagKind::Draft)
    } else if let Some(base) = tag.strip_suffix("-testing") {
        (base, TagKind::Testing)
    } else {
        (tag, TagKind::Release)
    };
    if base.ends_with("-draft") || base.ends_with("-testing") {
        return None;
    }
    let version = Version::parse(base).ok()?;
    if !version.build.is_empty() {
        return None;
    }
    Some(VersionTag {
        tag: tag.to_string(),
        version,
        kind,
    })
}

/// A skill version's lifecycle status, from its manifest's
/// [`STATUS_ANNOTATION`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Work in progress.
    Draft,
    /// Ready for trying out.
    Testing,
    /// Released.
    Published,
    /// Withdrawn: never newly selected, but kept where installed until
    /// something newer qualifies.
    Deprecated,
}

impl Status {
    /// The annotation value: `draft`, `testing`, `published` or `deprecated`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Testing => "testing",
            Status::Published => "published",
            Status::Deprecated => "deprecated",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a manifest's status annotation cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    /// The manifest has no status annotation.
    #[error("manifest has no io.skillimage.status annotation")]
    Missing,
    /// The annotation holds something other than the four known statuses.
    #[error(
        "manifest's io.skillimage.status annotation is {0:?}, \
         expected draft, testing, published or deprecated"
    )]
    Unknown(String),
}

/// Parses the value of a manifest's [`STATUS_ANNOTATION`] (`None` when the
/// manifest has none). The value must be exactly one of the four statuses.
pub fn parse_status(annotation: Option<&str>) -> Result<Status, StatusError> {
    match annotation {
        None => Err(StatusError::Missing),
        Some("draft") => Ok(Status::Draft),
        Some("testing") => Ok(Status::Testing),
        Some("published") => Ok(Status::Published),
        Some("deprecated") => Ok(Status::Deprecated),
        Some(other) => Err(StatusError::Unknown(other.to_string())),
    }
}

/// Whether `channel` may newly select a version with `status`.
///
/// Deprecated versions are never admitted; see [`select`] for how an
/// installed deprecated version is kept.
pub fn admits(channel: Channel, status: Status) -> bool {
    match status {
        Status::Published => true,
        Status::Testing => matches!(channel, Channel::Testing | Channel::Draft),
        Status::Draft => channel == Channel::Draft,
        Status::Deprecated => false,
    }
}

/// Whether `channel` looks at tags of `kind` at all.
pub fn considers(channel: Channel, kind: TagKind) -> bool {
    match kind {
        TagKind::Release => true,
        TagKind::Testing => matches!(channel, Channel::Testing | Channel::Draft),
        TagKind::Draft => channel == Channel::Draft,
    }
}

/// The tags `channel` may select from, best first.
///
/// Keeps the version tags of the kinds the channel considers whose version
/// matches `req` (standard semver matching: `^1.0` does not match
/// `1.1.0-rc.1`; without a requirement every version, pre-releases
/// included, is eligible). Ordered by version, highest first; at equal
/// versions a release tag comes before a testing tag, and a testing tag
/// before a draft tag. Duplicate tags are listed once.
pub fn candidates<S: AsRef<str>>(
    tags: &[S],
    channel: Channel,
    req: Option<&VersionReq>,
) -> Vec<VersionTag> {
    let mut out: Vec<VersionTag> = tags
        .iter()
        .filter_map(|t| parse_tag(t.as_ref()))
        .filter(|t| considers(channel, t.kind))
        .filter(|t| req.is_none_or(|r| r.matches(&t.version)))
        .collect();
    out.sort_by(|a, b| {
        b.version
            .cmp(&a.version)
            .then(a.kind.cmp(&b.kind))
            .then_with(|| a.tag.cmp(&b.tag))
    });
    out.dedup_by(|a, b| a.tag == b.tag);
    out
}

/// What the resolver learned about one candidate tag (by HEAD/GET of its
/// manifest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The manifest digest the tag points at.
    pub digest: Digest,
    /// The manifest's status annotation, parsed with [`parse_status`].
    pub status: Result<Status, StatusError>,
}

/// The version a channel selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The selected tag.
    pub tag: VersionTag,
    /// The manifest digest it pointed at when looked up; pull by this.
    pub digest: Digest,
    /// The manifest's status.
    pub status: Status,
    /// True when `status` is [`Status::Deprecated`]: the installed version was
    /// deprecated and kept because nothing newer qualifies.
    pub kept_deprecated: bool,
}

/// Why no version was selected.
#[derive(Debug, thiserror::Error)]
pub enum SelectError<E> {
    /// No tag in the list is a version tag the channel considers that matches
    /// the requirement.
    #[error("{}", no_candidates_message(*channel, requirement.as_deref(), *tags_seen, *versions_seen))]
    NoCandidates {
        /// The channel followed.
        channel: Channel,
        /// The version requirement, if any.
        requirement: Option<String>,
        /// How many tags the registry listed.
        tags_seen: usize,
        /// How many distinct versions those tags name (of any tag kind).
        versions_seen: usize,
    },
    /// Candidates exist, but none has a status the channel admits.
    #[error("{}", none_qualifies_message(*channel, requirement.as_deref(), reasons))]
    NoneQualifies {
        /// The channel followed.
        channel: Channel,
        /// The version requirement, if any.
        requirement: Option<String>,
        /// Why each candidate was passed over, best candidate first, at most
        /// ten of them followed by an `and N more` summary.
        reasons: Vec<String>,
    },
    /// Looking up a candidate's manifest failed; selection stopped there.
    #[error(transparent)]
    Lookup(E),
}

fn no_candidates_message(
    channel: Channel,
    requirement: Option<&str>,
    tags_seen: usize,
    versions_seen: usize,
) -> String {
    let tags = plural(tags_seen, "tag", "tags");
    let versions = plural(versions_seen, "version", "versions");
    match requirement {
        Some(req) => {
            format!("no tag of channel \"{channel}\" matches {req} ({tags}, {versions})")
        }
        None => format!("no version tag for channel \"{channel}\" ({tags}, {versions})"),
    }
}

fn none_qualifies_message(
    channel: Channel,
    requirement: Option<&str>,
    reasons: &[String],
) -> String {
    let req = requirement.map(|r| format!(" ({r})")).unwrap_or_default();
    format!(
        "no version qualifies for channel \"{channel}\"{req}: {}",
        reasons.join("; ")
    )
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Selects the version `channel` should install from a repository's `tags`.
///
/// Walks [`candidates`] best first, calling `lookup` (which fetches the tag's
/// manifest digest and status) only as far as needed, and returns the first
/// candidate whose status the channel [`admits`]. Candidates with a missing or
/// unknown status, or a status the channel does not admit, are passed over
/// and the reason recorded. Once a version's release tag is found
/// deprecated, that version is not selected through its other tags either.
/// A deprecated candidate whose version equals `installed` is kept
/// ([`Selection::kept_deprecated`]) when nothing newer qualified, so a
/// deprecation does not remove or downgrade what is installed.
///
/// A `lookup` error stops the walk and is returned as
/// [`SelectError::Lookup`].
pub async fn select<E, F, Fut>(
    tags: &[String],
    channel: Channel,
    req: Option<&VersionReq>,
    installed: Option<&Version>,
    mut lookup: F,
) -> Result<Selection, SelectError<E>>
where
    F: FnMut(&VersionTag) -> Fut,
    Fut: Future<Output = Result<Lookup, E>>,
{
    let requirement = req.map(|r| r.to_string());
    let cands = candidates(tags, channel, req);
    if cands.is_empty() {
        let versions: BTreeSet<Version> = tags
            .iter()
            .filter_map(|t| parse_tag(t))
            .map(|t| t.version)
            .collect();
        return Err(SelectError::NoCandidates {
            channel,
            requirement,
            tags_seen: tags.len(),
            versions_seen: versions.len(),
        });
    }

    let mut reasons = Vec::new();
    let mut deprecated: BTreeSet<Version> = BTreeSet::new();
    for cand in cands {
        if deprecated.contains(&cand.version) {
            reasons.push(format!("{} is deprecated", cand.tag));
            continue;
        }
        let found = lookup(&cand).await.map_err(SelectError::Lookup)?;
        match found.status {
            Ok(status) if admits(channel, status) => {
                return Ok(Selection {
                    tag: cand,
                    digest: found.digest,
                    status,
                    kept_deprecated: false,
                });
            }
            Ok(Status::Deprecated) => {
                if installed == Some(&cand.version) {
                    return Ok(Selection {
                        tag: cand,
                        digest: found.digest,
                        status: Status::Deprecated,
                        kept_deprecated: true,
                    });
                }
                reasons.push(format!("{} is deprecated", cand.tag));
                deprecated.insert(cand.version);
            }
            Ok(status) => reasons.push(format!("{} has status \"{status}\"", cand.tag)),
            Err(e) => reasons.push(format!("{}: {e}", cand.tag)),
        }
    }

    if reasons.len() > MAX_REASONS {
        let more = reasons.len() - MAX_REASONS;
        reasons.truncate(MAX_REASONS);
        reasons.push(format!("and {more} more"));
    }
    Err(SelectError::NoneQualifies {
        channel,
        requirement,
        reasons,
    })
}

#[cfg(test)]
mod tests;
