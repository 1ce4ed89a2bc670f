//! Tests of `channel`: tag parsing, channel admission and the order of
//! candidates.
//!
//! Built for `cargo test` only: no code outside tests may use anything here.

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
