//! The skills bundled in `config/demo/layout`, an OCI image layout in
//! skillctl's store naming (`examples/<name>:<tag>`), defined once here so
//! the committed layout can be regenerated and checked against this
//! definition, and tests know what the demo installs.

use std::path::PathBuf;

use super::skillimage::{BuiltImage, SkillImage, Status};

/// `config/demo/layout` in the source tree.
pub fn layout_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo/layout")
}

/// `examples/hello-world` 1.0.0, published.
pub fn hello_world() -> BuiltImage {
    SkillImage::new("hello-world", "1.0.0")
        .description("A first skill, installed by the skillsyncd demo.")
        .display_name("Hello World")
        .license("Apache-2.0")
        .tags(&["example", "getting-started"])
        .status(Status::Published)
        .file(
            "SKILL.md",
            "---
name: hello-world
description: A first skill, installed by the skillsyncd demo.
---

# Hello, world

If you can read this in your agent's skills folder, skillsyncd works:
it found this skill in the demo's OCI image layout
(`config/demo/layout`, image `examples/hello-world:1.0.0`), checked every
digest, unpacked it into a staging folder and swapped it into place.

When the user says hello, greet them back and mention that this skill was
installed by the skillsyncd demo. See `docs/next-steps.md` for what to try
next.
",
        )
        .file(
            "docs/next-steps.md",
            "# Next steps

- Point `skills.toml` at a real registry: `image = \"quay.io/ORG/SKILL\"`.
- Pick a channel: `published` (the default), `testing` or `draft`.
- Run the daemon: `skillsyncd`, then `skillsyncctl status`.
",
        )
        .build()
}

/// `examples/code-review` 1.1.0, published.
pub fn code_review_published() -> BuiltImage {
    code_review(
        "1.1.0",
        Status::Published,
        "Review a change for correctness first, then clarity.",
    )
}

/// `examples/code-review` 1.2.0, testing.
pub fn code_review_testing() -> BuiltImage {
    code_review(
        "1.2.0",
        Status::Testing,
        "Review a change for correctness first, then clarity, then tests.",
    )
}

fn code_review(version: &str, status: Status, summary: &str) -> BuiltImage {
    SkillImage::new("code-review", version)
        .description("Reviews a code change the way a careful colleague would.")
        .display_name("Code Review")
        .license("Apache-2.0")
        .tags(&["example", "review"])
        .status(status)
        .file(
            "SKILL.md",
            format!(
                "---
name: code-review
description: Reviews a code change the way a careful colleague would.
---

# Code review (version {version})

{summary}

1. Read the whole change before commenting.
2. Name each problem with the line it is on and why it matters.
3. Suggest the smallest fix; say what you are unsure about.
"
            ),
        )
        .build()
}

/// The layout's entries: ref name → image, in `index.json` order.
pub fn entries() -> Vec<(&'static str, BuiltImage)> {
    let hello = hello_world();
    let published = code_review_published();
    vec![
        ("examples/hello-world:1.0.0", hello.clone()),
        ("examples/hello-world:latest", hello),
        ("examples/code-review:1.1.0", published.clone()),
        ("examples/code-review:latest", published),
        ("examples/code-review:1.2.0-testing", code_review_testing()),
    ]
}
