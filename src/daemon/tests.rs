//! Unit tests of the daemon: pruning and unmanaged folders at start, a
//! pass that panics, poll offsets, deadlines and times that cannot
//! overflow.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::guard::lock;
use super::scheduler::{deadline, offset_for, PANIC_IN};
use super::*;
use crate::control::protocol::EventKind;
use crate::control::protocol::HoldAction;
use crate::control::{ActionError, Controller};
use crate::reconcile::SkillState;

/// A daemon over `root` with the demo layout as its registry, one
/// target `sandbox`, and `skills` (TOML tables) besides.
async fn demo_daemon(root: &Path, daemon_settings: &str, skills: &str) -> Arc<Daemon> {
    let layout = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo/layout");
    let text = format!(
        r#"
[daemon]
state_dir = "{root}/state"
cache_dir = "{root}/cache"
{daemon_settings}

[registries.demo]
layout = "{layout}"

[targets.sandbox]
path = "{root}/skills"

[defaults]
targets = ["sandbox"]

{skills}
"#,
        root = root.display(),
        layout = layout.display(),
    );
    let config_path = root.join("skills.toml");
    std::fs::write(&config_path, &text).unwrap();
    let config = Config::parse(&text, &config_path, root).unwrap();
    let paths = Paths {
        home: root.to_path_buf(),
        config_file: config_path.clone(),
        state_dir: root.join("state"),
        cache_dir: root.join("cache"),
        runtime_dir: None,
    };
    let engine = Engine::new(config, &paths.state_dir, &paths.cache_dir).unwrap();
    Daemon::start(engine, config_path, &paths, Arc::new(Notifier::disabled())).await
}

const HELLO: &str = "[skills.hello-world]\nimage = \"demo/examples/hello-world\"\n";
const REVIEW: &str =
    "[skills.code-review]\nimage = \"demo/examples/code-review\"\nchannel = \"testing\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_config_dropped_is_pruned_at_start_or_listed_as_unmanaged() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let both = format!("{HELLO}{REVIEW}");
    let daemon = demo_daemon(root, "", &both).await;
    for name in ["hello-world", "code-review"] {
        let slot = daemon.slot(name).unwrap();
        daemon.wait_view(&slot, |view| view.done >= 1).await;
        let skill = daemon.skill(name).unwrap();
        assert!(
            root.join("skills").join(name).join("SKILL.md").is_file(),
            "{skill:?}"
        );
    }
    daemon.shutdown().await;

    // Restarted without code-review, prune = false: kept, unmanaged;
    // hello-world shows its recorded version before its first pass.
    let daemon = demo_daemon(root, "prune = false", HELLO).await;
    let status = daemon.status();
    assert_eq!(status.unmanaged.len(), 1, "{:?}", status.unmanaged);
    assert_eq!(status.unmanaged[0].name, "code-review");
    assert!(root.join("skills/code-review/SKILL.md").is_file());
    let hello = daemon.skill("hello-world").unwrap();
    assert!(hello.version.is_some(), "{hello:?}");
    daemon.shutdown().await;

    // Restarted with pruning: removed at start, as an event.
    let daemon = demo_daemon(root, "", HELLO).await;
    assert!(daemon.status().unmanaged.is_empty());
    assert!(!root.join("skills/code-review").exists());
    assert!(root.join("skills/hello-world/SKILL.md").is_file());
    let events = daemon.events().events;
    assert!(
        events
            .iter()
            .any(|e| e.kind == EventKind::Prune && e.skill == "code-review"),
        "{events:?}"
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_that_panics_fails_and_is_tried_again() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    *lock(&PANIC_IN) = Some("panicky");
    // A skill of its own: the other tests run alongside.
    let panicky =
        "[skills.panicky]\nimage = \"demo/examples/code-review\"\nchannel = \"testing\"\n";
    let daemon = demo_daemon(root, "", panicky).await;

    // The pass at start fails, and the skill waits for its retry.
    // A regression would hang here: a bounded wait makes it a failure.
    let bound = Duration::from_secs(60);
    let slot = daemon.slot("panicky").unwrap();
    tokio::time::timeout(
        bound,
        daemon.wait_view(&slot, |view| view.done == 1 && !view.running),
    )
    .await
    .expect("the panicked pass ends");
    let skill = daemon.skill("panicky").unwrap();
    assert_eq!(skill.state, SkillState::Error);
    let error = skill.error.as_deref().unwrap_or_default();
    assert!(error.contains("a test's bug in panicky"), "{error}");
    assert!(error.contains("bug in skillsyncd"), "{error}");
    assert!(skill.next_check.is_some(), "tried again later");
    assert!(daemon.summary().contains("1 error"), "{}", daemon.summary());

    // `sync --wait` comes back with the failure, not never.
    let failed = tokio::time::timeout(bound, daemon.sync(Some("panicky".into()), true))
        .await
        .expect("sync --wait returns")
        .unwrap();
    assert_eq!(failed.skills[0].state, SkillState::Error, "{failed:?}");

    // Once the bug is gone, the next pass installs it: the panic let
    // go of the skill's record lock and of its place in the limit.
    *lock(&PANIC_IN) = None;
    let synced = daemon.sync(Some("panicky".into()), true).await.unwrap();
    assert_eq!(synced.skills[0].state, SkillState::InSync, "{synced:?}");
    assert!(root.join("skills/panicky/SKILL.md").is_file());
    assert_eq!(daemon.sched.limit.available_permits(), CONCURRENCY);
    daemon.shutdown().await;
}

#[test]
fn poll_offsets_are_stable_bounded_and_spread() {
    let hour = Duration::from_secs(3600);
    let a = offset_for("m1", "hello", hour, 0.1);
    assert_eq!(a, offset_for("m1", "hello", hour, 0.1), "stable");
    assert!(a < Duration::from_secs(360), "within 10% of the interval");
    assert_eq!(offset_for("m1", "hello", hour, 0.0), Duration::ZERO);
    // Across 100 machines, offsets spread over the window.
    let offsets: std::collections::BTreeSet<u64> = (0..100)
        .map(|i| offset_for(&format!("m{i}"), "hello", hour, 0.1).as_secs() / 36)
        .collect();
    assert!(offsets.len() >= 8, "spread into most tenths: {offsets:?}");
    assert!(
        offset_for("m1", "x", hour, 0.9) < Duration::from_secs(1800),
        "capped at half"
    );
}

#[test]
fn deadlines_and_shown_times_never_overflow() {
    let now = tokio::time::Instant::now();
    let hour = Duration::from_secs(3600);
    assert_eq!(deadline(now, hour), now + hour);
    // `Instant + Duration::MAX` panics; a deadline is clamped instead.
    let far = deadline(now, Duration::MAX);
    assert!(far > now + Duration::from_secs(365 * 24 * 3600), "{far:?}");

    let epoch = std::time::UNIX_EPOCH;
    assert_eq!(
        super::outcome::rfc3339(epoch + Duration::from_secs(1_735_689_600)),
        "2025-01-01T00:00:00Z"
    );
    // Past year 9999 humantime's Display fails and `to_string` panics.
    let year_10026 = epoch + Duration::from_secs(8056 * 365 * 24 * 3600);
    assert_eq!(super::outcome::rfc3339(year_10026), "9999-12-31T23:59:59Z");
    assert_eq!(
        super::outcome::rfc3339(epoch - Duration::from_secs(1)),
        "1970-01-01T00:00:00Z"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_hold_is_409_and_a_failed_one_500() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Skills of their own: the other tests run alongside.
    let skills = "[skills.held-once]\nimage = \"demo/examples/hello-world\"\n\
                  [skills.never-there]\nimage = \"demo/examples/never-there\"\n";
    let daemon = demo_daemon(root, "", skills).await;
    for name in ["held-once", "never-there"] {
        let slot = daemon.slot(name).unwrap();
        daemon.wait_view(&slot, |view| view.done >= 1).await;
    }
    assert_eq!(daemon.skill("held-once").unwrap().state, SkillState::InSync);

    // Refusals, from the skill's state: nothing installed to hold, no
    // earlier generation to roll back to.
    let refused = daemon.hold("never-there".into(), HoldAction::Hold).await;
    assert!(
        matches!(&refused, Err(ActionError::Refused(m)) if m.contains("not been installed")),
        "{refused:?}"
    );
    let refused = daemon.hold("held-once".into(), HoldAction::Rollback).await;
    assert!(
        matches!(&refused, Err(ActionError::Refused(m)) if m.contains("no earlier generation")),
        "{refused:?}"
    );

    // A record the engine cannot read is a failure, not a refusal.
    let record = root.join("state/skills/held-once.json");
    assert!(record.is_file(), "{}", record.display());
    std::fs::write(&record, b"{").unwrap();
    let failed = daemon.hold("held-once".into(), HoldAction::Hold).await;
    assert!(
        matches!(&failed, Err(ActionError::Failed(m)) if m.contains("held-once.json")),
        "{failed:?}"
    );
    daemon.shutdown().await;
}
