//! Unit tests of plan.rs: what each target needs.

use std::path::Path;

use super::*;
use crate::channel::Status;
use crate::config::OnDrift;
use crate::reference::Digest;
use crate::state::{Installed, TargetRecord};

fn target(installed: Option<&Digest>, pending: Option<&Digest>) -> TargetRecord {
    TargetRecord {
        path: "/t/skill".into(),
        installed: installed.map(|layer| Installed {
            manifest_digest: Digest::of(b"manifest"),
            layer_digest: layer.clone(),
            version: Some("1.0.0".into()),
            status: Status::Published,
            installed_at: "2026-01-01T00:00:00Z".into(),
        }),
        pending: pending.cloned(),
        tree: None,
    }
}

#[test]
fn plans_each_target() {
    let (manifest, other_manifest) = (Digest::of(b"manifest"), Digest::of(b"promoted"));
    let (layer, other) = (Digest::of(b"layer"), Digest::of(b"other"));
    let done = target(Some(&layer), None);
    assert_eq!(
        plan_target(Some(&done), true, &manifest, &layer),
        TargetPlan::UpToDate
    );
    assert_eq!(
        plan_target(Some(&done), true, &other_manifest, &layer),
        TargetPlan::RecordOnly
    );
    assert_eq!(
        plan_target(Some(&done), false, &manifest, &layer),
        TargetPlan::Install
    );
    assert_eq!(
        plan_target(Some(&done), true, &manifest, &other),
        TargetPlan::Install
    );
    assert_eq!(
        plan_target(None, true, &manifest, &layer),
        TargetPlan::Conflict
    );
    assert_eq!(
        plan_target(None, false, &manifest, &layer),
        TargetPlan::Install
    );
}

#[test]
fn an_interrupted_install_is_redone_even_back_to_the_recorded_layer() {
    // A crash while `other` was being swapped in over `layer`: the
    // folder may hold either tree, so wanting `layer` again still
    // reinstalls it.
    let manifest = Digest::of(b"manifest");
    let (layer, other) = (Digest::of(b"layer"), Digest::of(b"other"));
    let interrupted = target(Some(&layer), Some(&other));
    assert_eq!(
        plan_target(Some(&interrupted), true, &manifest, &layer),
        TargetPlan::Install
    );
    let first = target(None, Some(&layer));
    assert_eq!(
        plan_target(Some(&first), true, &manifest, &layer),
        TargetPlan::Install
    );
}

fn ask(on_drift: OnDrift, adopt: bool, dry_run: bool) -> Ask<'static> {
    Ask {
        skill: "s",
        target: "claude",
        path: Path::new("/t/claude/s"),
        on_drift,
        adopt,
        dry_run,
    }
}

fn seen(present: bool, drift: Option<&str>) -> Seen {
    Seen {
        present,
        drift: drift.map(str::to_string),
    }
}

#[test]
fn without_drift_the_record_and_the_disk_decide() {
    let (manifest, layer) = (Digest::of(b"manifest"), Digest::of(b"layer"));
    let done = target(Some(&layer), None);
    let d = decide(
        &ask(OnDrift::Report, false, false),
        &seen(true, None),
        Some(&done),
        &manifest,
        &layer,
    );
    assert_eq!(d, Decision::plan(TargetPlan::UpToDate));
    let d = decide(
        &ask(OnDrift::Report, false, false),
        &seen(false, None),
        None,
        &manifest,
        &layer,
    );
    assert_eq!(d, Decision::plan(TargetPlan::Install));
}

#[test]
fn a_strangers_folder_is_a_conflict_unless_adopted() {
    let (manifest, layer) = (Digest::of(b"manifest"), Digest::of(b"layer"));
    let there = seen(true, None);
    let d = decide(
        &ask(OnDrift::Report, false, false),
        &there,
        None,
        &manifest,
        &layer,
    );
    assert_eq!(d.plan, TargetPlan::Conflict);
    assert_eq!((d.rescue, d.say, d.hold), (None, None, None));

    let d = decide(
        &ask(OnDrift::Report, true, false),
        &there,
        None,
        &manifest,
        &layer,
    );
    assert_eq!(d.plan, TargetPlan::Install);
    assert_eq!(d.rescue, Some(Rescue::Adopt));
    assert_eq!(d.say, None);

    // A dry run backs nothing up; it says what it would do.
    let d = decide(
        &ask(OnDrift::Report, true, true),
        &there,
        None,
        &manifest,
        &layer,
    );
    assert_eq!(d.plan, TargetPlan::Install);
    assert_eq!(d.rescue, None);
    assert_eq!(
        d.say.as_deref(),
        Some("would adopt /t/claude/s in claude (backing up what is there)")
    );
}

#[test]
fn drift_follows_on_drift() {
    let (manifest, layer) = (Digest::of(b"manifest"), Digest::of(b"layer"));
    let done = target(Some(&layer), None);
    let edited = seen(true, Some("edited: 1 changed"));
    let d = |on_drift, dry_run, seen: &Seen| {
        decide(
            &ask(on_drift, false, dry_run),
            seen,
            Some(&done),
            &manifest,
            &layer,
        )
    };

    let restore = d(OnDrift::Restore, false, &edited);
    assert_eq!(restore.plan, TargetPlan::Install);
    assert_eq!(
        restore.rescue,
        Some(Rescue::Restore("edited: 1 changed".into()))
    );
    assert_eq!(restore.hold, None);

    let deleted = d(OnDrift::Restore, false, &seen(false, Some("deleted")));
    assert_eq!(deleted.plan, TargetPlan::Install);
    assert_eq!(deleted.rescue, None, "nothing there to back up");
    assert_eq!(
        deleted.say.as_deref(),
        Some("s in claude was deleted; restored")
    );

    let dry = d(OnDrift::Restore, true, &edited);
    assert_eq!(dry.plan, TargetPlan::Install);
    assert_eq!(dry.rescue, None);
    assert_eq!(
        dry.say.as_deref(),
        Some("would back up s in claude (edited: 1 changed) and restore it")
    );

    let keep = d(OnDrift::Keep, false, &edited);
    assert_eq!(
        keep.plan,
        TargetPlan::Drifted(
            "/t/claude/s was edited: 1 changed; kept, and the skill held (skillsyncctl resume s to update it again)"
                .into()
        )
    );
    assert_eq!(keep.hold.as_deref(), Some("claude edited: 1 changed"));

    let report = d(OnDrift::Report, false, &edited);
    assert!(
        matches!(&report.plan, TargetPlan::Drifted(why) if why.starts_with("/t/claude/s was edited: 1 changed; left as it is")),
        "{report:?}"
    );
    assert_eq!((report.rescue, report.hold), (None, None));
}

#[test]
fn a_drift_hold_stops_every_update_of_the_pass() {
    let planned = |target: &str, plan| Planned {
        target: target.into(),
        dir: "/t".into(),
        path: format!("/t/{target}/s").into(),
        plan,
    };
    let mut plans = vec![
        planned("a", TargetPlan::Install),
        planned("b", TargetPlan::RecordOnly),
        planned("c", TargetPlan::Conflict),
        planned("d", TargetPlan::Drifted("edited".into())),
    ];
    assert!(needs_layer(&plans));
    freeze(&mut plans);
    let after: Vec<_> = plans.iter().map(|p| p.plan.clone()).collect();
    assert_eq!(
        after,
        [
            TargetPlan::UpToDate,
            TargetPlan::UpToDate,
            TargetPlan::Conflict,
            TargetPlan::Drifted("edited".into()),
        ]
    );
    assert!(!needs_layer(&plans));
}
