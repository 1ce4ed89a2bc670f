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
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn req(s: &str) -> VersionReq {
        VersionReq::parse(s).unwrap()
    }

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn digest(tag: &str) -> Digest {
        Digest::of(tag.as_bytes())
    }

    /// A fake registry: tag → status annotation (None = missing).
    struct Registry {
        statuses: HashMap<String, Option<String>>,
        calls: RefCell<Vec<String>>,
    }

    impl Registry {
        fn new(entries: &[(&str, Option<&str>)]) -> Self {
            Registry {
                statuses: entries
                    .iter()
                    .map(|(t, s)| (t.to_string(), s.map(str::to_string)))
                    .collect(),
                calls: RefCell::new(Vec::new()),
            }
        }

        fn tags(&self) -> Vec<String> {
            let mut t: Vec<String> = self.statuses.keys().cloned().collect();
            t.sort();
            t
        }

        fn calls(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }

        async fn select(
            &self,
            extra_tags: &[&str],
            channel: Channel,
            req: Option<&VersionReq>,
            installed: Option<&Version>,
        ) -> Result<Selection, SelectError<String>> {
            let mut all = self.tags();
            all.extend(extra_tags.iter().map(|s| s.to_string()));
            select(&all, channel, req, installed, |t: &VersionTag| {
                self.calls.borrow_mut().push(t.tag.clone());
                let status = self.statuses.get(&t.tag).cloned();
                let tag = t.tag.clone();
                async move {
                    match status {
                        Some(s) => Ok(Lookup {
                            digest: digest(&tag),
                            status: parse_status(s.as_deref()),
                        }),
                        None => Err(format!("{tag}: not found")),
                    }
                }
            })
            .await
        }
    }

    fn chosen(r: Result<Selection, SelectError<String>>) -> (String, Status, bool) {
        match r {
            Ok(s) => {
                assert_eq!(s.digest, digest(&s.tag.tag));
                (s.tag.tag, s.status, s.kept_deprecated)
            }
            Err(e) => panic!("expected a selection, got: {e}"),
        }
    }

    #[test]
    fn channel_from_str_round_trips() {
        for c in [Channel::Published, Channel::Testing, Channel::Draft] {
            assert_eq!(c.to_string().parse::<Channel>().unwrap(), c);
        }
        let err = "stable".parse::<Channel>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown channel \"stable\"; expected \"published\", \"testing\" or \"draft\""
        );
        assert!("Published".parse::<Channel>().is_err());
        assert!("".parse::<Channel>().is_err());
    }

    #[test]
    fn serde_names_are_lowercase() {
        assert_eq!(
            serde_json::to_string(&Status::Deprecated).unwrap(),
            "\"deprecated\""
        );
        assert_eq!(
            serde_json::from_str::<Status>("\"testing\"").unwrap(),
            Status::Testing
        );
        assert_eq!(
            serde_json::to_string(&Channel::Published).unwrap(),
            "\"published\""
        );
        assert_eq!(serde_json::to_string(&TagKind::Draft).unwrap(), "\"draft\"");
        assert_eq!(Status::Published.to_string(), "published");
    }

    #[test]
    fn parses_release_testing_and_draft_tags() {
        let t = parse_tag("1.2.3").unwrap();
        assert_eq!((t.version, t.kind), (v("1.2.3"), TagKind::Release));
        assert_eq!(t.tag, "1.2.3");
        let t = parse_tag("1.2.3-testing").unwrap();
        assert_eq!((t.version, t.kind), (v("1.2.3"), TagKind::Testing));
        assert_eq!(t.tag, "1.2.3-testing");
        let t = parse_tag("1.2.3-draft").unwrap();
        assert_eq!((t.version, t.kind), (v("1.2.3"), TagKind::Draft));
    }

    #[test]
    fn bare_draft_suffix_is_a_draft_tag_not_a_prerelease() {
        // "1.0.0-draft" parses as semver with pre-release "draft" on its own;
        // it must be the draft tag of 1.0.0.
        let t = parse_tag("1.0.0-draft").unwrap();
        assert_eq!(t.version, v("1.0.0"));
        assert!(t.version.pre.is_empty());
        assert_eq!(t.kind, TagKind::Draft);
        let t = parse_tag("1.0.0-testing").unwrap();
        assert_eq!(t.version, v("1.0.0"));
        assert_eq!(t.kind, TagKind::Testing);
    }

    #[test]
    fn prerelease_versions_strip_only_the_trailing_suffix() {
        let t = parse_tag("2.0.0-rc.1").unwrap();
        assert_eq!((t.version, t.kind), (v("2.0.0-rc.1"), TagKind::Release));
        let t = parse_tag("2.0.0-rc.1-draft").unwrap();
        assert_eq!((t.version, t.kind), (v("2.0.0-rc.1"), TagKind::Draft));
        let t = parse_tag("2.0.0-rc.1-testing").unwrap();
        assert_eq!((t.version, t.kind), (v("2.0.0-rc.1"), TagKind::Testing));
        // A pre-release that merely contains the word is not a suffix.
        let t = parse_tag("1.0.0-rc.draft").unwrap();
        assert_eq!((t.version, t.kind), (v("1.0.0-rc.draft"), TagKind::Release));
        let t = parse_tag("1.0.0-drafting").unwrap();
        assert_eq!((t.version, t.kind), (v("1.0.0-drafting"), TagKind::Release));
    }

    #[test]
    fn junk_tags_are_ignored() {
        for junk in [
            "latest",
            "nightly",
            "stable",
            "v1.0.0",
            "1.0",
            "1",
            "01.0.0",
            "1.0.0.0",
            "1.0.0+abc",
            "1.0.0+abc-draft",
            "1.0.0-draft+abc",
            "sha256-e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.sig",
            "sha256-e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.att",
            "-draft",
            "-testing",
            "draft",
            "1.0.0-",
            "1.0.0--draft",
            "1.0.0-draft-draft",
            "1.0.0-draft-testing",
            "1.0.0-testing-draft",
            " 1.0.0",
            "1.0.0 ",
            "",
        ] {
            assert_eq!(parse_tag(junk), None, "{junk:?} should be ignored");
        }
    }

    #[test]
    fn status_annotation_parsing() {
        assert_eq!(parse_status(Some("draft")), Ok(Status::Draft));
        assert_eq!(parse_status(Some("testing")), Ok(Status::Testing));
        assert_eq!(parse_status(Some("published")), Ok(Status::Published));
        assert_eq!(parse_status(Some("deprecated")), Ok(Status::Deprecated));
        assert_eq!(parse_status(None), Err(StatusError::Missing));
        assert_eq!(
            parse_status(Some("archived")),
            Err(StatusError::Unknown("archived".into()))
        );
        assert_eq!(
            parse_status(Some("Published")),
            Err(StatusError::Unknown("Published".into()))
        );
        assert_eq!(
            parse_status(Some("")),
            Err(StatusError::Unknown(String::new()))
        );
        assert_eq!(
            StatusError::Missing.to_string(),
            "manifest has no io.skillimage.status annotation"
        );
        assert_eq!(
            StatusError::Unknown("gold".into()).to_string(),
            "manifest's io.skillimage.status annotation is \"gold\", \
             expected draft, testing, published or deprecated"
        );
        assert!(StatusError::Missing.to_string().contains(STATUS_ANNOTATION));
    }

    #[test]
    fn channel_admission_table() {
        use Channel as C;
        use Status as S;
        let table = [
            (C::Published, S::Published, true),
            (C::Published, S::Testing, false),
            (C::Published, S::Draft, false),
            (C::Published, S::Deprecated, false),
            (C::Testing, S::Published, true),
            (C::Testing, S::Testing, true),
            (C::Testing, S::Draft, false),
            (C::Testing, S::Deprecated, false),
            (C::Draft, S::Published, true),
            (C::Draft, S::Testing, true),
            (C::Draft, S::Draft, true),
            (C::Draft, S::Deprecated, false),
        ];
        for (c, s, want) in table {
            assert_eq!(admits(c, s), want, "{c} admits {s}");
        }
    }

    #[test]
    fn channel_tag_kind_table() {
        use Channel as C;
        use TagKind as K;
        let table = [
            (C::Published, K::Release, true),
            (C::Published, K::Testing, false),
            (C::Published, K::Draft, false),
            (C::Testing, K::Release, true),
            (C::Testing, K::Testing, true),
            (C::Testing, K::Draft, false),
            (C::Draft, K::Release, true),
            (C::Draft, K::Testing, true),
            (C::Draft, K::Draft, true),
        ];
        for (c, k, want) in table {
            assert_eq!(considers(c, k), want, "{c} considers {k}");
        }
    }

    fn names(c: &[VersionTag]) -> Vec<&str> {
        c.iter().map(|t| t.tag.as_str()).collect()
    }

    #[test]
    fn candidates_are_ordered_best_first() {
        let all = [
            "1.0.0-draft",
            "latest",
            "1.0.0",
            "2.0.0-rc.1-draft",
            "1.0.0-testing",
            "2.0.0-rc.1",
            "1.10.0-testing",
            "1.9.0",
            "sha256-abc.sig",
            "2.0.0-rc.1-testing",
        ];
        assert_eq!(
            names(&candidates(&all, Channel::Draft, None)),
            [
                "2.0.0-rc.1",
                "2.0.0-rc.1-testing",
                "2.0.0-rc.1-draft",
                "1.10.0-testing",
                "1.9.0",
                "1.0.0",
                "1.0.0-testing",
                "1.0.0-draft",
            ]
        );
        assert_eq!(
            names(&candidates(&all, Channel::Testing, None)),
            [
                "2.0.0-rc.1",
                "2.0.0-rc.1-testing",
                "1.10.0-testing",
                "1.9.0",
                "1.0.0",
                "1.0.0-testing",
            ]
        );
        assert_eq!(
            names(&candidates(&all, Channel::Published, None)),
            ["2.0.0-rc.1", "1.9.0", "1.0.0"]
        );
    }

    #[test]
    fn candidates_are_deterministic_and_deduplicated() {
        let a = ["1.0.0", "1.0.0-testing", "1.0.0", "0.9.0"];
        let mut b = a;
        b.reverse();
        let ca = candidates(&a, Channel::Testing, None);
        let cb = candidates(&b, Channel::Testing, None);
        assert_eq!(ca, cb);
        assert_eq!(names(&ca), ["1.0.0", "1.0.0-testing", "0.9.0"]);
        let empty: [&str; 0] = [];
        assert!(candidates(&empty, Channel::Draft, None).is_empty());
    }

    #[test]
    fn release_candidate_sorts_below_its_release() {
        let all = ["2.0.0-rc.1", "2.0.0", "2.0.0-rc.2", "1.9.9"];
        assert_eq!(
            names(&candidates(&all, Channel::Published, None)),
            ["2.0.0", "2.0.0-rc.2", "2.0.0-rc.1", "1.9.9"]
        );
    }

    #[test]
    fn candidates_honour_version_requirements() {
        let all = [
            "0.9.0",
            "1.0.0",
            "1.1.0",
            "1.2.0-rc.1",
            "2.0.0",
            "2.0.0-rc.1",
            "1.1.0-testing",
        ];
        assert_eq!(
            names(&candidates(&all, Channel::Published, Some(&req("^1.0")))),
            ["1.1.0", "1.0.0"]
        );
        assert_eq!(
            names(&candidates(&all, Channel::Testing, Some(&req("^1.0")))),
            ["1.1.0", "1.1.0-testing", "1.0.0"]
        );
        assert_eq!(
            names(&candidates(&all, Channel::Published, Some(&req("=1.0.0")))),
            ["1.0.0"]
        );
        // Pre-releases match only a requirement naming that version's
        // pre-release.
        assert_eq!(
            names(&candidates(
                &all,
                Channel::Published,
                Some(&req(">=1.2.0-rc.1"))
            )),
            ["2.0.0", "1.2.0-rc.1"]
        );
        assert_eq!(
            names(&candidates(&all, Channel::Published, Some(&req("*")))),
            ["2.0.0", "1.1.0", "1.0.0", "0.9.0"]
        );
        assert!(candidates(&all, Channel::Published, Some(&req("^3"))).is_empty());
    }

    #[tokio::test]
    async fn published_picks_highest_published() {
        let reg = Registry::new(&[
            ("1.0.0", Some("published")),
            ("1.1.0", Some("published")),
            ("1.2.0-testing", Some("testing")),
            ("1.3.0-draft", Some("draft")),
            ("latest", Some("published")),
        ]);
        let r = reg.select(&[], Channel::Published, None, None).await;
        assert_eq!(chosen(r), ("1.1.0".into(), Status::Published, false));
        assert_eq!(reg.calls(), ["1.1.0"]);
    }

    #[tokio::test]
    async fn testing_and_draft_channels_reach_further() {
        let reg = Registry::new(&[
            ("1.0.0", Some("published")),
            ("1.1.0", Some("published")),
            ("1.2.0-testing", Some("testing")),
            ("1.3.0-draft", Some("draft")),
        ]);
        let r = reg.select(&[], Channel::Testing, None, None).await;
        assert_eq!(chosen(r), ("1.2.0-testing".into(), Status::Testing, false));
        let r = reg.select(&[], Channel::Draft, None, None).await;
        assert_eq!(chosen(r), ("1.3.0-draft".into(), Status::Draft, false));
    }

    #[tokio::test]
    async fn published_beats_testing_at_equal_version() {
        let reg = Registry::new(&[
            ("1.0.0", Some("published")),
            ("1.0.0-testing", Some("testing")),
            ("1.0.0-draft", Some("draft")),
        ]);
        for channel in [Channel::Published, Channel::Testing, Channel::Draft] {
            let r = reg.select(&[], channel, None, None).await;
            assert_eq!(chosen(r), ("1.0.0".into(), Status::Published, false));
        }
        // Only the first candidate was ever looked up.
        assert_eq!(reg.calls(), ["1.0.0", "1.0.0", "1.0.0"]);
    }

    #[tokio::test]
    async fn testing_beats_draft_at_equal_version() {
        let reg = Registry::new(&[
            ("1.0.0-testing", Some("testing")),
            ("1.0.0-draft", Some("draft")),
        ]);
        let r = reg.select(&[], Channel::Draft, None, None).await;
        assert_eq!(chosen(r), ("1.0.0-testing".into(), Status::Testing, false));
    }

    #[tokio::test]
    async fn stale_latest_is_ignored() {
        // 1.1.0 was deprecated; `latest` still points at a manifest that says
        // published, but `latest` is never a candidate.
        let reg = Registry::new(&[
            ("1.0.0", Some("published")),
            ("1.1.0", Some("deprecated")),
            ("latest", Some("published")),
        ]);
        let r = reg.select(&[], Channel::Published, None, None).await;
        assert_eq!(chosen(r), ("1.0.0".into(), Status::Published, false));
        assert!(!reg.calls().contains(&"latest".to_string()));
    }

    #[tokio::test]
    async fn only_latest_means_no_candidates() {
        let reg = Registry::new(&[("latest", Some("published"))]);
        let err = reg
            .select(&["nightly"], Channel::Published, None, None)
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            SelectError::NoCandidates {
                tags_seen: 2,
                versions_seen: 0,
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "no version tag for channel \"published\" (2 tags, 0 versions)"
        );
        assert!(reg.calls().is_empty());
    }

    #[tokio::test]
    async fn deprecated_is_not_newly_selected() {
        let reg = Registry::new(&[("1.0.0", Some("published")), ("1.1.0", Some("deprecated"))]);
        let r = reg.select(&[], Channel::Published, None, None).await;
        assert_eq!(chosen(r), ("1.0.0".into(), Status::Published, false));
        // Installed something else: still not moved onto the deprecated one.
        let r = reg
            .select(&[], Channel::Published, None, Some(&v("1.0.0")))
            .await;
        assert_eq!(chosen(r), ("1.0.0".into(), Status::Published, false));
    }

    #[tokio::test]
    async fn deprecated_only_version_is_not_selected_when_not_installed() {
        let reg = Registry::new(&[("1.0.0", Some("deprecated"))]);
        let err = reg
            .select(&[], Channel::Draft, None, Some(&v("0.9.0")))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no version qualifies for channel \"draft\": 1.0.0 is deprecated"
        );
    }

    #[tokio::test]
    async fn deprecated_installed_is_kept() {
        let reg = Registry::new(&[("1.0.0", Some("published")), ("1.1.0", Some("deprecated"))]);
        let r = reg
            .select(&[], Channel::Published, None, Some(&v("1.1.0")))
            .await;
        assert_eq!(chosen(r), ("1.1.0".into(), Status::Deprecated, true));
        // Kept rather than downgraded to 1.0.0, which was never looked up.
        assert_eq!(reg.calls(), ["1.1.0"]);
    }

    #[tokio::test]
    async fn deprecated_installed_kept_when_newer_does_not_qualify() {
        let reg = Registry::new(&[
            ("1.1.0", Some("deprecated")),
            ("1.2.0", Some("testing")),
            ("1.3.0", None),
        ]);
        let r = reg
            .select(&[], Channel::Published, None, Some(&v("1.1.0")))
            .await;
        assert_eq!(chosen(r), ("1.1.0".into(), Status::Deprecated, true));
        assert_eq!(reg.calls(), ["1.3.0", "1.2.0", "1.1.0"]);
    }

    #[tokio::test]
    async fn deprecated_installed_but_newer_exists_moves_on() {
        let reg = Registry::new(&[("1.1.0", Some("deprecated")), ("1.2.0", Some("published"))]);
        let r = reg
            .select(&[], Channel::Published, None, Some(&v("1.1.0")))
            .await;
        assert_eq!(chosen(r), ("1.2.0".into(), Status::Published, false));
        assert_eq!(reg.calls(), ["1.2.0"]);
    }

    #[tokio::test]
    async fn deprecated_version_is_not_revived_through_a_stale_testing_tag() {
        // 1.1.0 went testing → published → deprecated; its old testing tag
        // still points at the testing-era manifest.
        let reg = Registry::new(&[
            ("1.0.0", Some("published")),
            ("1.1.0", Some("deprecated")),
            ("1.1.0-testing", Some("testing")),
        ]);
        let r = reg.select(&[], Channel::Testing, None, None).await;
        assert_eq!(chosen(r), ("1.0.0".into(), Status::Published, false));
        assert_eq!(reg.calls(), ["1.1.0", "1.0.0"]);
    }

    #[tokio::test]
    async fn rc_versions() {
        // A published release candidate is the highest published version
        // when there is no requirement...
        let reg = Registry::new(&[
            ("1.0.0", Some("published")),
            ("2.0.0-rc.1", Some("published")),
            ("2.0.0-rc.2-draft", Some("draft")),
            ("2.0.0-rc.2-testing", Some("testing")),
        ]);
        let r = reg.select(&[], Channel::Published, None, None).await;
        assert_eq!(chosen(r), ("2.0.0-rc.1".into(), Status::Published, false));
        let r = reg.select(&[], Channel::Testing, None, None).await;
        assert_eq!(
            chosen(r),
            ("2.0.0-rc.2-testing".into(), Status::Testing, false)
        );
        // ...but a `^1` requirement excludes it, and `^2.0.0-rc.1` admits it.
        let r = reg
            .select(&[], Channel::Draft, Some(&req("^1")), None)
            .await;
        assert_eq!(chosen(r), ("1.0.0".into(), Status::Published, false));
        let r = reg
            .select(&[], Channel::Published, Some(&req("^2.0.0-rc.1")), None)
            .await;
        assert_eq!(chosen(r), ("2.0.0-rc.1".into(), Status::Published, false));
        // The final release outranks its release candidates.
        let reg = Registry::new(&[
            ("2.0.0-rc.1", Some("published")),
            ("2.0.0", Some("published")),
        ]);
        let r = reg.select(&[], Channel::Published, None, None).await;
        assert_eq!(chosen(r), ("2.0.0".into(), Status::Published, false));
    }

    #[tokio::test]
    async fn rc_draft_tags() {
        let reg = Registry::new(&[
            ("2.0.0-rc.1-draft", Some("draft")),
            ("1.0.0", Some("published")),
        ]);
        let r = reg.select(&[], Channel::Draft, None, None).await;
        let s = r.unwrap();
        assert_eq!(s.tag.version, v("2.0.0-rc.1"));
        assert_eq!(s.tag.kind, TagKind::Draft);
        let r = reg.select(&[], Channel::Testing, None, None).await;
        assert_eq!(chosen(r), ("1.0.0".into(), Status::Published, false));
    }

    #[tokio::test]
    async fn junk_tags_never_reach_lookup() {
        let reg = Registry::new(&[("1.0.0", Some("published"))]);
        let junk = [
            "latest",
            "nightly",
            "v9.0.0",
            "9.0",
            "sha256-0123456789abcdef.sig",
            "9.0.0+build",
        ];
        let r = reg.select(&junk, Channel::Draft, None, None).await;
        assert_eq!(chosen(r), ("1.0.0".into(), Status::Published, false));
        assert_eq!(reg.calls(), ["1.0.0"]);
    }

    #[tokio::test]
    async fn version_requirement_filters_first() {
        let reg = Registry::new(&[
            ("1.0.0", Some("published")),
            ("1.4.2", Some("published")),
            ("2.0.0", Some("published")),
        ]);
        let r = reg
            .select(&[], Channel::Published, Some(&req("^1.0")), None)
            .await;
        assert_eq!(chosen(r), ("1.4.2".into(), Status::Published, false));
        let r = reg
            .select(&[], Channel::Published, Some(&req("~1.0")), None)
            .await;
        assert_eq!(chosen(r), ("1.0.0".into(), Status::Published, false));
        assert_eq!(reg.calls(), ["1.4.2", "1.0.0"]);
    }

    #[tokio::test]
    async fn no_candidates_message_names_requirement_and_counts() {
        let reg = Registry::new(&[
            ("1.0.0", Some("published")),
            ("1.0.0-testing", Some("testing")),
            ("1.1.0", Some("published")),
            ("2.0.0-draft", Some("draft")),
            ("latest", Some("published")),
        ]);
        let err = reg
            .select(&[], Channel::Published, Some(&req("^3.0")), None)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no tag of channel \"published\" matches ^3.0 (5 tags, 3 versions)"
        );
        match err {
            SelectError::NoCandidates {
                channel,
                requirement,
                tags_seen,
                versions_seen,
            } => {
                assert_eq!(channel, Channel::Published);
                assert_eq!(requirement.as_deref(), Some("^3.0"));
                assert_eq!((tags_seen, versions_seen), (5, 3));
            }
            other => panic!("unexpected {other:?}"),
        }
        // Only a draft tag exists: the published channel has no candidates.
        let reg = Registry::new(&[("2.0.0-draft", Some("draft"))]);
        let err = reg
            .select(&[], Channel::Published, None, None)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no version tag for channel \"published\" (1 tag, 1 version)"
        );
    }

    #[tokio::test]
    async fn none_qualifies_explains_each_candidate() {
        let reg = Registry::new(&[
            ("1.0.0", None),
            ("1.1.0", Some("testing")),
            ("1.2.0", Some("deprecated")),
            ("0.1.0", Some("archived")),
        ]);
        let err = reg
            .select(&[], Channel::Published, Some(&req("^1.0")), None)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no version qualifies for channel \"published\" (^1.0): 1.2.0 is deprecated; \
             1.1.0 has status \"testing\"; 1.0.0: manifest has no io.skillimage.status annotation"
        );
        let err = reg
            .select(&[], Channel::Published, None, None)
            .await
            .unwrap_err();
        match err {
            SelectError::NoneQualifies {
                reasons,
                requirement,
                ..
            } => {
                assert_eq!(requirement, None);
                assert_eq!(reasons.len(), 4);
                assert_eq!(
                    reasons[3],
                    "0.1.0: manifest's io.skillimage.status annotation is \"archived\", \
                     expected draft, testing, published or deprecated"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn missing_or_unknown_status_is_skipped() {
        let reg = Registry::new(&[
            ("1.3.0", None),
            ("1.2.0", Some("gold")),
            ("1.1.0", Some("published")),
        ]);
        let r = reg.select(&[], Channel::Published, None, None).await;
        assert_eq!(chosen(r), ("1.1.0".into(), Status::Published, false));
        assert_eq!(reg.calls(), ["1.3.0", "1.2.0", "1.1.0"]);
    }

    #[tokio::test]
    async fn annotation_decides_not_the_tag() {
        // A release tag whose manifest says draft.
        let reg = Registry::new(&[("1.0.0", Some("draft")), ("0.9.0", Some("published"))]);
        let r = reg.select(&[], Channel::Published, None, None).await;
        assert_eq!(chosen(r), ("0.9.0".into(), Status::Published, false));
        let r = reg.select(&[], Channel::Testing, None, None).await;
        assert_eq!(chosen(r), ("0.9.0".into(), Status::Published, false));
        let r = reg.select(&[], Channel::Draft, None, None).await;
        assert_eq!(chosen(r), ("1.0.0".into(), Status::Draft, false));

        // A testing tag whose manifest says published is still only a
        // testing-kind tag: the published channel does not look at it.
        let reg = Registry::new(&[
            ("1.0.0-testing", Some("published")),
            ("0.9.0", Some("published")),
        ]);
        let r = reg.select(&[], Channel::Published, None, None).await;
        assert_eq!(chosen(r), ("0.9.0".into(), Status::Published, false));
        let r = reg.select(&[], Channel::Testing, None, None).await;
        assert_eq!(
            chosen(r),
            ("1.0.0-testing".into(), Status::Published, false)
        );

        // A draft tag whose manifest says testing is only seen by draft.
        let reg = Registry::new(&[("1.0.0-draft", Some("testing"))]);
        let err = reg
            .select(&[], Channel::Testing, None, None)
            .await
            .unwrap_err();
        assert!(matches!(err, SelectError::NoCandidates { .. }));
        let r = reg.select(&[], Channel::Draft, None, None).await;
        assert_eq!(chosen(r), ("1.0.0-draft".into(), Status::Testing, false));
    }

    #[tokio::test]
    async fn lookup_is_called_only_as_far_as_needed() {
        let reg = Registry::new(&[
            ("1.5.0-draft", Some("draft")),
            ("1.4.0-testing", Some("testing")),
            ("1.3.0", Some("testing")),
            ("1.2.0", Some("published")),
            ("1.1.0", Some("published")),
            ("1.0.0", Some("published")),
        ]);
        let r = reg.select(&[], Channel::Published, None, None).await;
        assert_eq!(chosen(r), ("1.2.0".into(), Status::Published, false));
        assert_eq!(reg.calls(), ["1.3.0", "1.2.0"]);
    }

    #[tokio::test]
    async fn lookup_errors_propagate_immediately() {
        // "1.1.0" is listed but the fake registry cannot look it up.
        let reg = Registry::new(&[("1.0.0", Some("published"))]);
        let err = reg
            .select(&["1.1.0"], Channel::Published, None, None)
            .await
            .unwrap_err();
        match err {
            SelectError::Lookup(e) => assert_eq!(e, "1.1.0: not found"),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(reg.calls(), ["1.1.0"]);
    }

    #[tokio::test]
    async fn reasons_are_bounded() {
        let entries: Vec<(String, Option<&str>)> = (0..25)
            .map(|i| (format!("1.{i}.0"), Some("testing")))
            .collect();
        let borrowed: Vec<(&str, Option<&str>)> =
            entries.iter().map(|(t, s)| (t.as_str(), *s)).collect();
        let reg = Registry::new(&borrowed);
        let err = reg
            .select(&[], Channel::Published, None, None)
            .await
            .unwrap_err();
        match &err {
            SelectError::NoneQualifies { reasons, .. } => {
                assert_eq!(reasons.len(), 11);
                assert_eq!(reasons[0], "1.24.0 has status \"testing\"");
                assert_eq!(reasons[10], "and 15 more");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().ends_with("; and 15 more"));
        assert_eq!(reg.calls().len(), 25);
    }

    #[test]
    fn select_works_with_a_plain_executor() {
        // `select` needs no runtime of its own: any executor can drive it.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let all = tags(&["1.0.0", "latest"]);
        let r = rt.block_on(select(
            &all,
            Channel::Published,
            None,
            None,
            |t: &VersionTag| {
                let d = digest(&t.tag);
                async move {
                    Ok::<_, std::convert::Infallible>(Lookup {
                        digest: d,
                        status: Ok(Status::Published),
                    })
                }
            },
        ));
        assert_eq!(r.unwrap().tag.tag, "1.0.0");
    }
}
