//! Unit tests of plan.rs: what each target needs.

use super::*;
use crate::channel::Status;
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
