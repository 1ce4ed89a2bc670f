//! The demo's OCI image layout (`config/demo/layout`) is committed; these
//! tests keep it equal to what [`crate::support::demo`] builds and readable
//! by skopeo. After changing the demo's definition, regenerate it with
//!
//! ```text
//! cargo test --test integration -- --ignored regenerate_demo_layout
//! ```

use crate::support::demo;
use crate::support::skillimage::{write_oci_layout, BuiltImage};
use crate::support::{read_tree, skopeo_inspect, skopeo_raw_manifest};

fn write_demo(dir: &std::path::Path) {
    let entries = demo::entries();
    let refs: Vec<(&str, &BuiltImage)> =
        entries.iter().map(|(name, image)| (*name, image)).collect();
    write_oci_layout(dir, &refs);
}

#[test]
#[ignore = "rewrites config/demo/layout in the source tree"]
fn regenerate_demo_layout() {
    let dir = demo::layout_dir();
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("remove {}: {e}", dir.display()));
    }
    write_demo(&dir);
}

#[test]
fn committed_demo_layout_is_reproducible() {
    let fresh = tempfile::tempdir().expect("a temporary directory");
    write_demo(fresh.path());
    let expected = read_tree(fresh.path());
    let committed = read_tree(&demo::layout_dir());
    let names = |tree: &std::collections::BTreeMap<String, Vec<u8>>| {
        tree.keys().cloned().collect::<Vec<_>>()
    };
    assert_eq!(
        names(&committed),
        names(&expected),
        "config/demo/layout is stale: run \
         `cargo test --test integration -- --ignored regenerate_demo_layout`"
    );
    for (path, bytes) in &expected {
        assert!(
            committed[path] == *bytes,
            "config/demo/layout/{path} differs from the build (a changed demo definition, \
             or a different gzip backend): run \
             `cargo test --test integration -- --ignored regenerate_demo_layout`"
        );
    }
}

#[test]
fn skopeo_reads_the_demo_layout() {
    let layout = demo::layout_dir();
    let layout = layout.display();
    let hello = demo::hello_world();
    let image = format!("oci:{layout}:examples/hello-world:1.0.0");
    let inspected = skopeo_inspect(&[&image]);
    assert_eq!(inspected["Digest"], hello.manifest_digest);
    assert_eq!(inspected["Layers"][0], hello.layer_digest());
    let manifest = skopeo_raw_manifest(&[&image]);
    assert_eq!(manifest["annotations"]["io.skillimage.status"], "published");
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.version"],
        "1.0.0"
    );
    let latest = skopeo_inspect(&[&format!("oci:{layout}:examples/hello-world:latest")]);
    assert_eq!(latest["Digest"], hello.manifest_digest);
    let testing =
        skopeo_raw_manifest(&[&format!("oci:{layout}:examples/code-review:1.2.0-testing")]);
    assert_eq!(testing["annotations"]["io.skillimage.status"], "testing");
    assert_eq!(
        testing["annotations"]["org.opencontainers.image.version"],
        "1.2.0"
    );
    let published = skopeo_raw_manifest(&[&format!("oci:{layout}:examples/code-review:1.1.0")]);
    assert_eq!(
        published["annotations"]["io.skillimage.status"],
        "published"
    );
    assert!(hello.files.contains_key("docs/next-steps.md"));
}
