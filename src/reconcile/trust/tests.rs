//! Unit tests of trust.rs: what `skillsyncctl check` reports offline.

use std::path::{Path, PathBuf};

use super::*;
use crate::config::Config;

#[test]
fn check_names_missing_keys_and_what_the_containers_policy_refuses() {
    let home = tempfile::tempdir().unwrap();
    let key = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cosign/legacy-containers-image-valid/cosign.pub");
    let text = format!(
        r#"
[registries."layout.local"]
layout = "{layout}"

[skills.a]
image = "quay.io/acme/a"
verify = {{ keys = ["/no/such/key.pub"] }}

[skills.b]
image = "quay.io/acme/b"
verify = {{ keys = ["/no/such/key.pub", "{key}"] }}

[skills.c]
image = "registry.example/tools/c"
verify = "none"

[skills.d]
image = "layout.local/x/d"
verify = "none"
"#,
        layout = home.path().display(),
        key = key.display(),
    );
    let config = Config::parse(&text, &home.path().join("skills.toml"), home.path()).unwrap();
    let policy = ContainersPolicy::parse(
        Path::new("/etc/containers/policy.json"),
        br#"{"default":[{"type":"insecureAcceptAnything"}],
             "transports":{"docker":{"registry.example/tools":[{"type":"reject"}]}}}"#,
    )
    .unwrap();
    let problems = trust_problems_with(&config, Ok(Some(policy)));
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems[0].contains("/no/such/key.pub") && problems[0].contains("needed by a, b"),
        "{problems:#?}"
    );
    assert!(
        problems[1].starts_with("skill c:") && problems[1].contains("reject"),
        "{problems:#?}"
    );

    // An unreadable policy stops every skill from a registry; a config
    // of layout skills only does not care.
    let broken = Err((PathBuf::from("/p.json"), "not JSON".to_string()));
    let problems = trust_problems_with(&config, broken.clone());
    assert!(
        problems.iter().any(|p| p.contains("/p.json: not JSON")),
        "{problems:#?}"
    );
    let layouts_only = Config::parse(
        &format!(
            "[registries.\"layout.local\"]\nlayout = \"{}\"\n[skills.d]\nimage = \"layout.local/x/d\"\n",
            home.path().display()
        ),
        &home.path().join("skills.toml"),
        home.path(),
    )
    .unwrap();
    assert!(trust_problems_with(&layouts_only, broken).is_empty());
    assert!(trust_problems_with(&layouts_only, Ok(None)).is_empty());
}
