//! Unit tests of record.rs: what the state record gets from a pass, and
//! that a dry run records nothing.

use super::*;
use crate::channel::Status;
use crate::config::Skill;
use crate::tree::TreeRecord;

fn installed(version: &str, layer: &[u8]) -> Installed {
    Installed {
        manifest_digest: Digest::of(format!("manifest {version}").as_bytes()),
        layer_digest: Digest::of(layer),
        version: Some(version.into()),
        status: Status::Published,
        installed_at: "2026-01-01T00:00:00Z".into(),
    }
}

fn tree() -> TreeRecord {
    TreeRecord {
        hash: Digest::of(b"tree"),
        entries: Default::default(),
    }
}

/// A record with `old` installed in `claude`.
fn recorded(old: &Installed) -> SkillRecord {
    let mut skill = SkillRecord {
        image: "demo/s".into(),
        ref_digest: Some(old.manifest_digest.clone()),
        current: Some(old.clone()),
        ..Default::default()
    };
    skill.targets.insert(
        "claude".into(),
        Box::new(TargetRecord {
            path: "/t/claude/s".into(),
            installed: Some(old.clone()),
            pending: None,
            tree: None,
        }),
    );
    skill
}

fn planned(target: &str, plan: TargetPlan) -> Planned {
    Planned {
        target: target.into(),
        dir: format!("/t/{target}").into(),
        path: format!("/t/{target}/s").into(),
        plan,
    }
}

fn report() -> SkillReport {
    let config = crate::config::Config::parse(
        "[skills.s]\nimage = \"quay.io/acme/s\"\n",
        Path::new("/c/skills.toml"),
        Path::new("/c"),
    )
    .expect("a config");
    let skill: &Skill = &config.skills["s"];
    SkillReport::new(skill)
}

#[test]
fn only_a_change_is_worth_a_write() {
    let old = installed("1.0.0", b"one");
    let mut pass = PassRecord::start("demo/s", Some(recorded(&old)), false);
    pass.want(&old.manifest_digest, &old);
    assert_eq!(pass.write(), Write::Nothing);
    pass.restamped(true);
    assert_eq!(pass.write(), Write::Stamps);

    let new = installed("1.1.0", b"two");
    pass.want(&new.manifest_digest, &new);
    assert_eq!(pass.write(), Write::Record);
    assert_eq!(pass.skill.current.as_ref(), Some(&new));
    assert_eq!(pass.skill.ref_digest.as_ref(), Some(&new.manifest_digest));

    // Archived (or no longer) is a change of its own.
    let pass = PassRecord::start("demo/s", Some(recorded(&old)), true);
    assert_eq!(pass.write(), Write::Record);
    assert!(pass.skill.archived);
    assert_eq!(
        PassRecord::start("demo/s", None, false).write(),
        Write::Nothing
    );
}

#[test]
fn pending_marks_name_every_target_about_to_be_installed() {
    let old = installed("1.0.0", b"one");
    let layer = Digest::of(b"two");
    let mut pass = PassRecord::start("demo/s", Some(recorded(&old)), false);
    let plans = [
        planned("claude", TargetPlan::Install),
        planned("cursor", TargetPlan::Install),
        planned("codex", TargetPlan::Conflict),
    ];
    pass.mark_pending(&plans, &layer);
    let t = &pass.skill.targets;
    assert_eq!(t["claude"].pending.as_ref(), Some(&layer));
    assert_eq!(
        t["claude"].installed.as_ref(),
        Some(&old),
        "kept until swapped"
    );
    assert_eq!(t["cursor"].pending.as_ref(), Some(&layer));
    assert_eq!(t["cursor"].path, Path::new("/t/cursor/s"));
    assert!(!t.contains_key("codex"));
}

#[test]
fn a_dry_run_records_nothing_and_says_what_it_would_do() {
    let old = installed("1.0.0", b"one");
    let new = installed("1.1.0", b"two");
    let before = recorded(&old);
    let mut pass = PassRecord::start("demo/s", Some(before.clone()), false);
    let settle = Settle {
        skill: "s",
        label: "s 1.1.0",
        known: &new,
        dry_run: true,
        keep: 2,
    };
    let plans = vec![
        planned("claude", TargetPlan::Install),
        planned("cursor", TargetPlan::Install),
        planned("codex", TargetPlan::RecordOnly),
    ];
    let mut report = report();
    let error = pass.settle(&settle, plans, HashMap::new(), &mut report);
    assert_eq!(error, None);
    assert_eq!(pass.skill, before);
    assert_eq!(pass.write(), Write::Nothing);
    assert_eq!(
        report.changes,
        [
            "would update s 1.0.0 -> 1.1.0 in claude",
            "would install s 1.1.0 into cursor (/t/cursor/s)",
            "would record s 1.1.0 (published) in codex: same content, new manifest (annotation only)",
        ]
    );
    assert!(report.events.is_empty());
    let states: Vec<_> = report.targets.iter().map(|t| t.state).collect();
    assert_eq!(
        states,
        [
            TargetState::Pending,
            TargetState::Pending,
            TargetState::InSync
        ]
    );
}

#[test]
fn installs_are_recorded_and_failures_undone() {
    let old = installed("1.0.0", b"one");
    let new = installed("1.1.0", b"two");
    let mut pass = PassRecord::start("demo/s", Some(recorded(&old)), false);
    let plans = vec![
        planned("claude", TargetPlan::Install),
        planned("cursor", TargetPlan::Install),
    ];
    pass.mark_pending(&plans, &new.layer_digest);
    let outcomes = HashMap::from([
        ("claude".to_string(), Outcome::Swapped(tree())),
        (
            "cursor".to_string(),
            Outcome::Failed {
                error: "disk full".into(),
                present: false,
            },
        ),
    ]);
    let settle = Settle {
        skill: "s",
        label: "s 1.1.0",
        known: &new,
        dry_run: false,
        keep: 2,
    };
    let mut report = report();
    let error = pass.settle(&settle, plans, outcomes, &mut report);
    assert_eq!(error.as_deref(), Some("disk full"));
    assert_eq!(pass.write(), Write::Record);

    let claude = &pass.skill.targets["claude"];
    assert_eq!(claude.pending, None);
    assert!(claude.tree.is_some());
    let now = claude.installed.as_ref().expect("installed");
    assert_eq!(now.manifest_digest, new.manifest_digest);
    assert_eq!(now.layer_digest, new.layer_digest);
    // The replaced layer is a generation to roll back to.
    assert_eq!(pass.skill.history.first(), Some(&old));
    // Nothing was there before the failed install: no record is left.
    assert!(!pass.skill.targets.contains_key("cursor"));

    assert_eq!(report.events.len(), 1);
    assert_eq!(report.events[0].kind, EventKind::Update);
    assert!(
        report.changes[0].starts_with("updated s 1.0.0 -> 1.1.0 (")
            && report.changes[0].ends_with(") in claude (/t/claude/s)"),
        "{:?}",
        report.changes
    );
    let states: Vec<_> = report.targets.iter().map(|t| t.state).collect();
    assert_eq!(states, [TargetState::InSync, TargetState::Error]);
}

#[test]
fn a_verification_raises_the_highest_version_only_once_installed() {
    let old = installed("1.0.0", b"one");
    let new = installed("1.1.0", b"two");
    let v = |d: &Digest| Verification {
        manifest_digest: d.clone(),
        policy: "p".into(),
        by: "cosign signature by k".into(),
    };
    let mut pass = PassRecord::start("demo/s", Some(recorded(&old)), false);
    pass.verified(v(&new.manifest_digest), &new);
    assert_eq!(pass.skill.highest_version, None, "1.1.0 is not installed");
    assert_eq!(pass.skill.verified, Some(v(&new.manifest_digest)));

    let mut pass = PassRecord::start("demo/s", Some(recorded(&new)), false);
    pass.skill.highest_version = Some("1.2.0".into());
    pass.verified(v(&new.manifest_digest), &new);
    assert_eq!(pass.skill.highest_version.as_deref(), Some("1.2.0"));
    pass.skill.highest_version = Some("1.0.0".into());
    pass.verified(v(&new.manifest_digest), &new);
    assert_eq!(pass.skill.highest_version.as_deref(), Some("1.1.0"));
}

#[test]
fn a_drift_hold_is_made_once_and_only_over_something_installed() {
    let mut pass = PassRecord::start("demo/s", None, false);
    assert!(pass.hold_for_drift().is_none());
    assert_eq!(pass.write(), Write::Nothing);

    let old = installed("1.0.0", b"one");
    let mut pass = PassRecord::start("demo/s", Some(recorded(&old)), false);
    let hold = pass.hold_for_drift().expect("a hold");
    assert_eq!(hold.reason, HoldReason::Drift);
    assert_eq!(hold.installed, old);
    assert_eq!(pass.skill.hold.as_ref(), Some(&hold));
    assert_eq!(pass.write(), Write::Record);
    assert!(pass.hold_for_drift().is_none(), "held already");
}
