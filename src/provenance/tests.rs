//! Tests of `provenance`: `skill.yaml` written as `skillctl install` writes
//! it, hostile cards refused, and files written atomically.
//!
//! Built for `cargo test` only: no code outside tests may use anything here.

use super::*;
use serde::Deserialize;

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const OLD_DIGEST: &str = "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

/// A card as skillctl users write them: metadata keys not in skillctl's
/// struct order, a folded description, lists, a multi-line example.
const CARD: &str = r#"apiVersion: skillimage.io/v1alpha1
kind: SkillCard
metadata:
  name: release-notes
  namespace: tooling
  version: 2.1.0
  display-name: "Release Notes Writer"
  description: >
    Drafts release notes from merged pull requests,
    grouped by area, with breaking changes first.
  license: Apache-2.0
  tags:
    - writing
    - "1.0"
    - release
  compatibility: claude-sonnet-4
  authors:
    - name: Docs Team
      email: docs@example.com
    - name: Solo Maintainer
  allowed-tools: Read Grep
spec:
  prompt: SKILL.md
  examples:
    - input: "Notes for v3.2"
      output: |
        ## Breaking changes
        - `--foo` is gone: use `--bar`.
  dependencies:
    - name: changelog-parser
      version: ">=1.0.0"
"#;

/// skillctl's `SkillCard` with `KnownFields(true)`: what `skillctl list
/// --installed` can parse.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Card {
    api_version: String,
    kind: String,
    metadata: Metadata,
    provenance: Option<CardProvenance>,
    #[allow(dead_code)]
    spec: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[allow(dead_code)]
struct Metadata {
    name: String,
    display_name: Option<String>,
    namespace: String,
    version: String,
    description: String,
    license: Option<String>,
    compatibility: Option<String>,
    tags: Option<Vec<String>>,
    authors: Option<Vec<Value>>,
    allowed_tools: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CardProvenance {
    source: Option<String>,
    commit: Option<String>,
    path: Option<String>,
}

fn prov(source: &str) -> Provenance {
    Provenance {
        source: source.to_string(),
        commit: DIGEST.to_string(),
    }
}

fn dir_with(card: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(SKILL_YAML), card).unwrap();
    dir
}

fn load(dir: &Path) -> Mapping {
    let text = std::fs::read_to_string(dir.join(SKILL_YAML)).unwrap();
    yaml_serde::from_str(&text).unwrap()
}

fn keys(m: &Mapping) -> Vec<String> {
    m.keys().map(|k| k.as_str().unwrap().to_string()).collect()
}

fn no_annotations() -> BTreeMap<String, String> {
    BTreeMap::new()
}

#[test]
fn adds_provenance_and_keeps_every_other_field_in_order() {
    let dir = dir_with(CARD);
    let before: Mapping = yaml_serde::from_str(CARD).unwrap();
    let source = "quay.io/tooling/release-notes:2.1.0";
    let written = write(
        dir.path(),
        "release-notes",
        &prov(source),
        &no_annotations(),
    )
    .unwrap();
    assert_eq!(written, Written::Updated);
    let after = load(dir.path());

    assert_eq!(
        keys(&after),
        ["apiVersion", "kind", "metadata", "provenance", "spec"]
    );
    for k in ["apiVersion", "kind", "metadata", "spec"] {
        assert_eq!(after.get(k), before.get(k), "{k} changed");
    }
    let md = after.get("metadata").unwrap().as_mapping().unwrap();
    assert_eq!(
        keys(md),
        keys(before.get("metadata").unwrap().as_mapping().unwrap())
    );
    // Strings that look like numbers stay strings.
    assert_eq!(md.get("tags").unwrap()[1], Value::String("1.0".into()));
    let p = after.get("provenance").unwrap().as_mapping().unwrap();
    assert_eq!(keys(p), ["source", "commit"]);
    assert_eq!(p.get("source").unwrap().as_str(), Some(source));
    assert_eq!(p.get("commit").unwrap().as_str(), Some(DIGEST));

    // What skillctl's parser (unknown fields refused) makes of it.
    let text = std::fs::read_to_string(dir.path().join(SKILL_YAML)).unwrap();
    let card: Card = yaml_serde::from_str(&text).unwrap();
    assert_eq!(card.api_version, API_VERSION);
    assert_eq!(card.kind, KIND);
    assert_eq!(card.metadata.name, "release-notes");
    assert_eq!(card.metadata.version, "2.1.0");
    let cp = card.provenance.unwrap();
    assert_eq!(cp.source.as_deref(), Some(source));
    assert_eq!(cp.commit.as_deref(), Some(DIGEST));
    assert_eq!(
        card.metadata.description,
        "Drafts release notes from merged pull requests, grouped by area, with breaking \
         changes first.\n"
    );

    assert_eq!(read(dir.path()).unwrap(), Some(prov(source)));
}

#[test]
fn overwrites_existing_provenance_in_place_and_keeps_path() {
    let card = format!(
        "{CARD}provenance:\n  path: skills/release-notes\n  source: old.example/x:1.0.0\n  \
         commit: {OLD_DIGEST}\n"
    );
    let dir = dir_with(&card);
    let source = "quay.io/tooling/release-notes@".to_string() + DIGEST;
    write(
        dir.path(),
        "release-notes",
        &prov(&source),
        &no_annotations(),
    )
    .unwrap();
    let after = load(dir.path());
    // Where it was: last.
    assert_eq!(
        keys(&after),
        ["apiVersion", "kind", "metadata", "spec", "provenance"]
    );
    let p = after.get("provenance").unwrap().as_mapping().unwrap();
    assert_eq!(keys(p), ["path", "source", "commit"]);
    assert_eq!(
        p.get("path").unwrap().as_str(),
        Some("skills/release-notes")
    );
    assert_eq!(p.get("source").unwrap().as_str(), Some(source.as_str()));
    assert_eq!(p.get("commit").unwrap().as_str(), Some(DIGEST));
    // A digest reference has no tag: the version is left alone.
    let md = after.get("metadata").unwrap();
    assert_eq!(md.get("version").unwrap().as_str(), Some("2.1.0"));
    let text = std::fs::read_to_string(dir.path().join(SKILL_YAML)).unwrap();
    let card: Card = yaml_serde::from_str(&text).unwrap();
    let cp = card.provenance.unwrap();
    assert_eq!(cp.path.as_deref(), Some("skills/release-notes"));
    assert_eq!(cp.commit.as_deref(), Some(DIGEST));
}

#[test]
fn null_provenance_is_replaced() {
    let dir = dir_with(&format!("{CARD}provenance:\n"));
    write(
        dir.path(),
        "x",
        &prov("r.example/a/b:1.0.0"),
        &no_annotations(),
    )
    .unwrap();
    assert_eq!(read(dir.path()).unwrap(), Some(prov("r.example/a/b:1.0.0")));
}

#[test]
fn tag_becomes_the_version_as_skillctl_does() {
    let dir = dir_with(CARD);
    let source = "quay.io/tooling/release-notes:2.1.0-testing";
    write(
        dir.path(),
        "release-notes",
        &prov(source),
        &no_annotations(),
    )
    .unwrap();
    let after = load(dir.path());
    let md = after.get("metadata").unwrap().as_mapping().unwrap();
    assert_eq!(md.get("version").unwrap().as_str(), Some("2.1.0-testing"));
    // Still in its place.
    assert_eq!(keys(md)[2], "version");

    // No version key: it goes after namespace.
    let dir = dir_with(
        "apiVersion: skillimage.io/v1alpha1\nkind: SkillCard\nmetadata:\n  name: a\n  \
         namespace: n\n  description: d\n",
    );
    write(
        dir.path(),
        "a",
        &prov("h.example/n/a:0.3.0"),
        &no_annotations(),
    )
    .unwrap();
    let md = load(dir.path())
        .get("metadata")
        .unwrap()
        .as_mapping()
        .unwrap()
        .clone();
    assert_eq!(keys(&md), ["name", "namespace", "version", "description"]);
    assert_eq!(md.get("version").unwrap().as_str(), Some("0.3.0"));
}

#[test]
fn unknown_keys_are_kept() {
    let card = "kind: SkillCard\nx-extra: [1, 2]\napiVersion: skillimage.io/v1alpha1\n\
                metadata: {name: a, version: 1.0.0, x-note: keep}\n";
    let dir = dir_with(card);
    write(
        dir.path(),
        "a",
        &prov("h.example/a:1.0.0"),
        &no_annotations(),
    )
    .unwrap();
    let after = load(dir.path());
    assert_eq!(
        keys(&after),
        ["kind", "x-extra", "apiVersion", "metadata", "provenance"]
    );
    assert_eq!(
        after
            .get("metadata")
            .unwrap()
            .get("x-note")
            .unwrap()
            .as_str(),
        Some("keep")
    );
}

#[test]
fn writing_twice_gives_the_same_bytes() {
    let dir = dir_with(CARD);
    let p = prov("quay.io/tooling/release-notes:2.1.0");
    write(dir.path(), "release-notes", &p, &no_annotations()).unwrap();
    let once = std::fs::read(dir.path().join(SKILL_YAML)).unwrap();
    write(dir.path(), "release-notes", &p, &no_annotations()).unwrap();
    assert_eq!(std::fs::read(dir.path().join(SKILL_YAML)).unwrap(), once);
}

#[test]
fn missing_skill_yaml_gets_a_minimal_card() {
    let dir = tempfile::tempdir().unwrap();
    let annotations: BTreeMap<String, String> = [
        (ANNOTATION_VERSION, "1.4.0"),
        (
            ANNOTATION_DESCRIPTION,
            "Reviews pull requests: style, tests, risk.",
        ),
        (ANNOTATION_VENDOR, "acme/platform"),
        (ANNOTATION_TITLE, "PR Reviewer"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let source = format!("registry.example:5000/acme/pr-reviewer@{DIGEST}");
    let written = write(dir.path(), "pr-reviewer", &prov(&source), &annotations).unwrap();
    assert_eq!(written, Written::Created);

    let text = std::fs::read_to_string(dir.path().join(SKILL_YAML)).unwrap();
    let card: Card = yaml_serde::from_str(&text).unwrap();
    assert_eq!(card.api_version, API_VERSION);
    assert_eq!(card.kind, KIND);
    assert!(crate::name::is_valid(&card.metadata.name));
    assert_eq!(card.metadata.name, "pr-reviewer");
    assert_eq!(card.metadata.display_name.as_deref(), Some("PR Reviewer"));
    assert_eq!(card.metadata.namespace, "acme/platform");
    // A digest reference has no tag: the annotation gives the version.
    assert_eq!(card.metadata.version, "1.4.0");
    assert_eq!(
        card.metadata.description,
        "Reviews pull requests: style, tests, risk."
    );
    let m: Mapping = yaml_serde::from_str(&text).unwrap();
    assert_eq!(keys(&m), ["apiVersion", "kind", "metadata", "provenance"]);
    assert_eq!(read(dir.path()).unwrap(), Some(prov(&source)));
}

#[test]
fn minimal_card_falls_back_as_skillctl_does() {
    let dir = tempfile::tempdir().unwrap();
    let source = "quay.io/skills/summarize:2.1.0";
    write(dir.path(), "summarize", &prov(source), &no_annotations()).unwrap();
    let text = std::fs::read_to_string(dir.path().join(SKILL_YAML)).unwrap();
    let card: Card = yaml_serde::from_str(&text).unwrap();
    assert_eq!(card.metadata.namespace, "quay.io");
    assert_eq!(card.metadata.version, "2.1.0");
    assert_eq!(
        card.metadata.description,
        format!("Installed from {source}")
    );
    assert_eq!(card.metadata.display_name, None);

    let dir = tempfile::tempdir().unwrap();
    let source = format!("quay.io/skills/summarize@{DIGEST}");
    write(dir.path(), "summarize", &prov(&source), &no_annotations()).unwrap();
    let text = std::fs::read_to_string(dir.path().join(SKILL_YAML)).unwrap();
    let card: Card = yaml_serde::from_str(&text).unwrap();
    assert_eq!(card.metadata.version, "unknown");
}

#[test]
fn minimal_card_needs_a_valid_name() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["", "Bad", "a--b", "-a", "a-", "a_b", &"a".repeat(65)] {
        let err = write(
            dir.path(),
            name,
            &prov("h.example/a:1.0.0"),
            &no_annotations(),
        )
        .unwrap_err();
        assert!(
            matches!(err, ProvenanceError::InvalidInput { field: "name", .. }),
            "{name}: {err}"
        );
    }
    assert!(!dir.path().join(SKILL_YAML).exists());
    assert!(crate::name::is_valid("a1-b2-c3"));
    assert!(crate::name::is_valid(&"a".repeat(64)));
}

#[test]
fn bad_arguments_are_refused() {
    let dir = dir_with(CARD);
    let mut p = prov("h.example/a:1.0.0");
    p.commit = "sha256:abc".into();
    let err = write(dir.path(), "a", &p, &no_annotations()).unwrap_err();
    assert!(matches!(
        err,
        ProvenanceError::InvalidInput {
            field: "commit",
            ..
        }
    ));
    for source in ["", "h.example/a:1.0.0\nx: y", "a b"] {
        let err = write(dir.path(), "a", &prov(source), &no_annotations()).unwrap_err();
        assert!(matches!(
            err,
            ProvenanceError::InvalidInput {
                field: "source",
                ..
            }
        ));
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join(SKILL_YAML)).unwrap(),
        CARD
    );
}

fn assert_refused_and_untouched(card: &str, check: impl Fn(&ProvenanceError) -> bool) {
    let dir = dir_with(card);
    let err = write(
        dir.path(),
        "a",
        &prov("h.example/a:1.0.0"),
        &no_annotations(),
    )
    .unwrap_err();
    assert!(check(&err), "{card:?}: {err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join(SKILL_YAML)).unwrap(),
        card
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn invalid_yaml_is_refused_and_left_untouched() {
    for card in [
        "metadata: [unclosed\n",
        "a: 1\na: 2\nmetadata: {}\n",
        "metadata: {name: a}\n---\nmetadata: {name: b}\n",
        "metadata:\n  name: a\n\tversion: 1\n",
        "*undefined\n",
    ] {
        assert_refused_and_untouched(card, |e| matches!(e, ProvenanceError::Parse { .. }));
    }
    let err = read(dir_with("metadata: [unclosed\n").path()).unwrap_err();
    assert!(matches!(err, ProvenanceError::Parse { .. }));
}

#[test]
fn yaml_that_is_not_a_skillcard_is_refused() {
    for card in [
        "",
        "# only a comment\n",
        "- a\n- b\n",
        "just a string\n",
        "kind: SkillCard\n",
        "metadata: [a]\n",
        "metadata: {name: a}\nprovenance: [x]\n",
        "metadata: {name: a}\nprovenance: text\n",
    ] {
        assert_refused_and_untouched(card, |e| matches!(e, ProvenanceError::NotASkillCard { .. }));
    }
    let dir = dir_with("metadata: {name: a}\nprovenance: {source: 3}\n");
    assert!(matches!(
        read(dir.path()).unwrap_err(),
        ProvenanceError::NotASkillCard { .. }
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(SKILL_YAML), b"metadata: {name: \xff}\n").unwrap();
    assert!(matches!(
        read(dir.path()).unwrap_err(),
        ProvenanceError::NotASkillCard { .. }
    ));
}

#[test]
fn size_is_capped() {
    let cap = usize::try_from(MAX_SKILL_YAML_BYTES).unwrap();
    // Exactly at the cap: read.
    let mut at_cap = String::from("metadata: {name: a}\npad: \"");
    at_cap.push_str(&"x".repeat(cap - at_cap.len() - 2));
    at_cap.push_str("\"\n");
    assert_eq!(at_cap.len(), cap);
    let dir = dir_with(&at_cap);
    assert_eq!(read(dir.path()).unwrap(), None);
    write(
        dir.path(),
        "a",
        &prov("h.example/a:1.0.0"),
        &no_annotations(),
    )
    .unwrap();

    // One byte over: refused.
    let mut over = at_cap.clone();
    over.insert(over.len() - 2, 'x');
    assert_refused_and_untouched(
        &over,
        |e| matches!(e, ProvenanceError::TooLarge { limit, .. } if *limit == MAX_SKILL_YAML_BYTES),
    );
}

#[test]
fn alias_bombs_are_refused() {
    // The classic: nine levels of nine aliases.
    let mut bomb = String::from("metadata: {name: a}\nl0: &l0 [lol]\n");
    for i in 1..10 {
        let prev = format!("*l{}", i - 1);
        bomb.push_str(&format!("l{i}: &l{i} [{}]\n", vec![prev; 9].join(", ")));
    }
    // The parser's limit on alias jumps catches this one first.
    assert_refused_and_untouched(&bomb, |e| {
        matches!(
            e,
            ProvenanceError::TooComplex { .. } | ProvenanceError::Parse { .. }
        )
    });

    // Quadratic: one large anchor aliased many times, which the parser's
    // own limit on alias jumps lets through.
    let mut wide = String::from("metadata: {name: a}\nbig: &big [");
    wide.push_str(&vec!["1"; 20_000].join(","));
    wide.push_str("]\nmany: [");
    wide.push_str(&vec!["*big"; 20_000].join(","));
    wide.push_str("]\n");
    assert!(wide.len() < 1024 * 1024);
    assert_refused_and_untouched(&wide, |e| matches!(e, ProvenanceError::TooComplex { .. }));

    // Text: a long string aliased many times.
    let mut text = String::from("metadata: {name: a}\ns: &s \"");
    text.push_str(&"x".repeat(100_000));
    text.push_str("\"\nmany: [");
    text.push_str(&vec!["*s"; 30].join(","));
    text.push_str("]\n");
    assert_refused_and_untouched(&text, |e| matches!(e, ProvenanceError::TooComplex { .. }));

    // A few ordinary aliases are fine, and written out expanded.
    let card = "metadata: &m {name: a, version: 1.0.0}\ncopy: *m\n";
    let dir = dir_with(card);
    write(dir.path(), "a", &prov("h.example/a"), &no_annotations()).unwrap();
    let after = load(dir.path());
    assert_eq!(after.get("copy"), after.get("metadata"));
}

#[test]
fn deep_nesting_is_refused() {
    let card = format!(
        "metadata: {{name: a}}\ndeep: {}{}\n",
        "[".repeat(500),
        "]".repeat(500)
    );
    assert_refused_and_untouched(&card, |e| matches!(e, ProvenanceError::Parse { .. }));
}

#[test]
fn symlinks_and_non_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside.yaml");
    std::fs::write(&outside, CARD).unwrap();
    let skill = dir.path().join("skill");
    std::fs::create_dir(&skill).unwrap();
    std::os::unix::fs::symlink(&outside, skill.join(SKILL_YAML)).unwrap();
    let err = write(&skill, "a", &prov("h.example/a:1.0.0"), &no_annotations()).unwrap_err();
    assert!(matches!(err, ProvenanceError::NotAFile { .. }), "{err}");
    assert!(matches!(
        read(&skill).unwrap_err(),
        ProvenanceError::NotAFile { .. }
    ));
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), CARD);

    let skill = dir.path().join("skill2");
    std::fs::create_dir_all(skill.join(SKILL_YAML)).unwrap();
    let err = write(&skill, "a", &prov("h.example/a:1.0.0"), &no_annotations()).unwrap_err();
    assert!(matches!(err, ProvenanceError::NotAFile { .. }), "{err}");

    let skill = dir.path().join("skill3");
    std::fs::create_dir(&skill).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        skill.join(SKILL_YAML),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let err = read(&skill).unwrap_err();
    assert!(matches!(err, ProvenanceError::NotAFile { .. }), "{err}");
}

#[test]
fn written_file_is_0644_and_no_temporary_is_left() {
    let dir = dir_with(CARD);
    std::fs::set_permissions(dir.path().join(SKILL_YAML), Permissions::from_mode(0o600)).unwrap();
    write(
        dir.path(),
        "release-notes",
        &prov("h.example/a:1.0.0"),
        &no_annotations(),
    )
    .unwrap();
    let mode = std::fs::metadata(dir.path().join(SKILL_YAML))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [SKILL_YAML]);
}

#[test]
fn read_without_skill_yaml_or_provenance_is_none() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(read(dir.path()).unwrap(), None);
    let dir = dir_with(CARD);
    assert_eq!(read(dir.path()).unwrap(), None);
    let dir = dir_with(&format!("{CARD}provenance: {{path: x}}\n"));
    assert_eq!(read(dir.path()).unwrap(), None);
}

#[test]
fn tags_are_found_as_skillctl_finds_them() {
    assert_eq!(tag_of("test/hello-world:1.0.0-draft"), Some("1.0.0-draft"));
    assert_eq!(tag_of("quay.io/skills/summarize:2.1.0"), Some("2.1.0"));
    assert_eq!(tag_of("skill:latest"), Some("latest"));
    assert_eq!(tag_of("ns/skill@sha256:abc123"), None);
    assert_eq!(tag_of("localhost:5000/skill"), None);
    assert_eq!(tag_of("localhost:5000/ns/skill:1.0.0"), Some("1.0.0"));
}
