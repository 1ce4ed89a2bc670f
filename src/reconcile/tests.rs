//! Unit tests of a whole pass over the demo OCI layout bundled in
//! `config/demo/layout`: what a pass installs and records, and that a dry
//! run writes nothing.

use std::path::Path;

use super::*;

/// An engine over `root` with the demo layout as its registry, one target
/// `sandbox`, and skill `hello-world`.
fn demo_engine(root: &Path) -> Engine {
    let layout = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo/layout");
    let text = format!(
        r#"
[registries.demo]
layout = "{layout}"

[targets.sandbox]
path = "{root}/skills"

[defaults]
targets = ["sandbox"]

[skills.hello-world]
image = "demo/examples/hello-world"
"#,
        root = root.display(),
        layout = layout.display(),
    );
    let config = Config::parse(&text, &root.join("skills.toml"), root).unwrap();
    Engine::new(config, &root.join("state"), &root.join("cache")).unwrap()
}

#[tokio::test]
async fn a_dry_run_writes_nothing_and_a_pass_installs_and_records() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let engine = demo_engine(root);
    let skill = engine.config().skills["hello-world"].clone();
    let folder = root.join("skills/hello-world");

    let dry = engine.dry_run().await.unwrap();
    let report = dry.sync(&skill).await;
    assert_eq!(report.error, None);
    assert_eq!(
        report.changes,
        [format!(
            "would install hello-world 1.0.0 into sandbox ({})",
            folder.display()
        )]
    );
    assert_eq!(report.targets[0].state, TargetState::Pending);
    assert_eq!(report.downloaded, 0);
    assert!(!folder.exists());
    assert!(engine.state().await.unwrap().skills.is_empty());

    let report = engine.sync(&skill).await;
    assert_eq!(report.error, None);
    assert_eq!(report.state, SkillState::InSync);
    assert_eq!(report.version.as_deref(), Some("1.0.0"));
    assert!(report.downloaded > 0);
    assert!(folder.join("SKILL.md").is_file());
    let record = engine.read_state("hello-world").unwrap().unwrap();
    let target = &record.targets["sandbox"];
    assert_eq!(target.pending, None);
    assert!(target.tree.is_some());
    let installed = target.installed.as_ref().unwrap();
    assert_eq!(installed.version.as_deref(), Some("1.0.0"));
    assert_eq!(
        record.current.as_ref().map(|c| &c.layer_digest),
        Some(&installed.layer_digest)
    );

    // Up to date: nothing to do, nothing downloaded.
    let again = engine.sync(&skill).await;
    assert_eq!(again.state, SkillState::InSync);
    assert!(again.changes.is_empty(), "{:?}", again.changes);
    assert_eq!(again.downloaded, 0);
}
