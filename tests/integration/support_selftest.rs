//! Checks of the support code itself, against skopeo and a real registry:
//! images built here are what skopeo reads from the registry and from OCI
//! layouts, the lifecycle mirrors skillctl's, and the proxy counts and
//! misbehaves exactly as asked.

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;

use crate::support::proxy::{Fault, Match, Proxy, RequestKind};
use crate::support::registry::Registry;
use crate::support::skillimage::{
    self, sha256_digest, write_oci_layout, Blob, BuiltImage, Index, Manifest, Profile, Publisher,
    RawTar, SkillImage, Status, MANIFEST_ACCEPT,
};
use crate::support::{read_tree, skopeo, skopeo_inspect, skopeo_raw_manifest, write_file, TestEnv};

fn sample() -> SkillImage {
    SkillImage::new("sample", "1.0.0")
        .description("A sample skill.")
        .tags(&["a", "b"])
        .file("docs/usage.md", "# Usage\n")
        .file("scripts/run.sh", "echo hi\n")
}

fn untar(tar: &[u8]) -> Vec<(String, tar::EntryType, u32, u64, Vec<u8>)> {
    let mut archive = tar::Archive::new(tar);
    archive
        .entries()
        .expect("read the tar")
        .map(|entry| {
            let mut entry = entry.expect("a tar entry");
            let header = entry.header().clone();
            let path = String::from_utf8(entry.path_bytes().into_owned()).expect("UTF-8 path");
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("read a tar entry");
            (
                path,
                header.entry_type(),
                header.mode().expect("a mode"),
                header.mtime().expect("an mtime"),
                data,
            )
        })
        .collect()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

#[test]
fn builds_the_skillctl_format_reproducibly() {
    let image = sample().build();
    assert_eq!(image, sample().build(), "two builds differ");
    assert_eq!(image.repository, "examples/sample");

    // The layer: gzip without name or time, holding the tar in walk order.
    let gz = &image.layer().bytes;
    assert_eq!(&gz[..4], &[0x1f, 0x8b, 8, 0], "gzip header: no FNAME flag");
    assert_eq!(&gz[4..8], &[0, 0, 0, 0], "gzip mtime is 0");
    assert_eq!(gunzip(gz), image.tar);
    let entries = untar(&image.tar);
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "SKILL.md",
            "docs",
            "docs/usage.md",
            "scripts",
            "scripts/run.sh",
            "skill.yaml"
        ]
    );
    for (name, kind, mode, mtime, _) in &entries {
        assert_eq!(*mtime, skillimage::TAR_MTIME, "{name}");
        if kind.is_dir() {
            assert_eq!(*mode, 0o40755, "{name}");
        } else {
            assert_eq!(*mode, 0o100644, "{name}");
        }
    }
    let skill_md = String::from_utf8(image.files["SKILL.md"].clone()).expect("UTF-8");
    assert!(skill_md.starts_with("---\nname: sample\ndescription: A sample skill.\n---\n"));
    let card = entries
        .iter()
        .find(|(name, ..)| name == "skill.yaml")
        .map(|(.., data)| String::from_utf8(data.clone()).expect("UTF-8"))
        .expect("the layer has skill.yaml");
    for line in [
        "apiVersion: skillimage.io/v1alpha1",
        "kind: SkillCard",
        "  name: sample",
        "  namespace: examples",
        "  version: 1.0.0",
        "  description: \"A sample skill.\"",
    ] {
        assert!(card.contains(line), "skill.yaml lacks {line:?}:\n{card}");
    }
    assert_eq!(
        image.dirs,
        BTreeSet::from(["docs".to_owned(), "scripts".to_owned()])
    );

    // The config: diff_ids is the digest of the uncompressed tar.
    let config: serde_json::Value =
        serde_json::from_slice(&image.config.bytes).expect("config JSON");
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["rootfs"]["type"], "layers");
    assert_eq!(config["rootfs"]["diff_ids"][0], sha256_digest(&image.tar));
    assert_eq!(image.config.media_type, skillimage::CONFIG_MEDIA_TYPE);

    // The manifest.
    let raw: serde_json::Value =
        serde_json::from_slice(&image.manifest_bytes).expect("manifest JSON");
    assert_eq!(raw["schemaVersion"], 2);
    assert_eq!(raw["mediaType"], skillimage::MANIFEST_MEDIA_TYPE);
    assert!(raw.get("artifactType").is_none());
    assert_eq!(raw["layers"].as_array().map(Vec::len), Some(1));
    assert_eq!(raw["layers"][0]["mediaType"], skillimage::LAYER_MEDIA_TYPE);
    assert_eq!(raw["layers"][0]["digest"], image.layer_digest());
    assert_eq!(image.manifest_digest, sha256_digest(&image.manifest_bytes));
    let a = &image.manifest.annotations;
    assert_eq!(a[skillimage::STATUS_ANNOTATION], "published");
    assert_eq!(a[skillimage::VERSION_ANNOTATION], "1.0.0");
    assert_eq!(a[skillimage::TITLE_ANNOTATION], "sample");
    assert_eq!(a[skillimage::DESCRIPTION_ANNOTATION], "A sample skill.");
    assert_eq!(a[skillimage::VENDOR_ANNOTATION], "examples");
    assert_eq!(a[skillimage::CREATED_ANNOTATION], skillimage::CREATED);
    assert_eq!(a[skillimage::TAGS_ANNOTATION], r#"["a","b"]"#);
    assert!(a.contains_key(skillimage::WORDCOUNT_ANNOTATION));
    assert_eq!(image.tags(), ["1.0.0", "latest"]);
}

#[test]
fn profiles_statuses_and_escape_hatches() {
    let redhat = sample().profile(Profile::Redhat).build();
    assert_eq!(
        redhat.layer().media_type,
        skillimage::REDHAT_LAYER_MEDIA_TYPE
    );
    assert_eq!(
        redhat.config.media_type,
        skillimage::REDHAT_CONFIG_MEDIA_TYPE
    );
    assert_eq!(redhat.layer_digest(), sample().build().layer_digest());

    let draft = sample().status(Status::Draft).build();
    assert_eq!(draft.tags(), ["1.0.0-draft"]);
    let promoted = draft.with_status(Status::Testing);
    assert_eq!(promoted.layer_digest(), draft.layer_digest());
    assert_ne!(promoted.manifest_digest, draft.manifest_digest);
    assert_eq!(
        promoted.manifest_digest,
        sample().status(Status::Testing).build().manifest_digest
    );

    let bare = sample().without_status().build();
    assert!(bare.manifest.status().is_none());
    assert!(bare.tags().is_empty());

    let hostile = RawTar::new()
        .file("../escape", b"x")
        .file("/etc/passwd", b"y")
        .symlink("link", "/etc/shadow")
        .hardlink("hard", "../escape")
        .fifo("pipe")
        .file("dup", b"1")
        .file("dup", b"2")
        .build();
    let names: Vec<String> = untar(&hostile).into_iter().map(|e| e.0).collect();
    assert_eq!(
        names,
        [
            "../escape",
            "/etc/passwd",
            "link",
            "hard",
            "pipe",
            "dup",
            "dup"
        ]
    );
    let image = SkillImage::new("hostile", "1.0.0")
        .raw_tar(hostile.clone())
        .build();
    assert_eq!(gunzip(&image.layer().bytes), hostile);
    assert!(image.files.is_empty());

    let raw = SkillImage::new("raw", "1.0.0")
        .raw_layer(b"not gzip".to_vec())
        .build();
    assert_eq!(raw.layer().bytes, b"not gzip");

    let two = sample()
        .extra_layer(Blob::new(
            skillimage::LAYER_MEDIA_TYPE,
            skillimage::gzip(&RawTar::new().build()),
        ))
        .layer_media_type("application/vnd.oci.image.layer.v1.tar")
        .artifact_type("application/vnd.example")
        .build();
    assert_eq!(two.manifest.layers.len(), 2);
    assert_eq!(
        two.manifest.layers[0].media_type,
        "application/vnd.oci.image.layer.v1.tar"
    );
    assert_eq!(
        two.manifest.artifact_type.as_deref(),
        Some("application/vnd.example")
    );
}

#[test]
fn registry_serves_pushed_images_to_skopeo() {
    let registry = Registry::start();
    assert!(registry.host().starts_with("127.0.0.1:"));
    let publisher = Publisher::new(registry.host());
    let image = sample().build();
    let pushed = publisher.push(&image);
    assert_eq!(pushed.manifest_digest, image.manifest_digest);
    assert_eq!(pushed.layer_digest, image.layer_digest());
    assert_eq!(publisher.tags("examples/sample"), ["1.0.0", "latest"]);
    assert_eq!(
        std::fs::read(registry.blob_data_path(image.layer_digest()))
            .expect("the layer's data file"),
        image.layer().bytes
    );

    let remote = format!(
        "docker://{}",
        publisher.reference("examples/sample", "1.0.0")
    );
    let inspected = skopeo_inspect(&["--tls-verify=false", &remote]);
    assert_eq!(inspected["Digest"], image.manifest_digest);
    assert_eq!(inspected["Layers"][0], image.layer_digest());
    // distribution 2.8 lists tags unsorted.
    let mut repo_tags: Vec<&str> = inspected["RepoTags"]
        .as_array()
        .expect("RepoTags")
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    repo_tags.sort_unstable();
    assert_eq!(repo_tags, ["1.0.0", "latest"]);
    let manifest = skopeo_raw_manifest(&["--tls-verify=false", &remote]);
    assert_eq!(manifest["annotations"]["io.skillimage.status"], "published");
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.version"],
        "1.0.0"
    );
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!(
            "docker://{}",
            publisher.reference("examples/sample", "latest")
        ),
    ]);
    assert_eq!(raw.as_bytes(), image.manifest_bytes);

    // skopeo copies it, unchanged, into an OCI layout.
    let out = tempfile::tempdir().expect("a temporary directory");
    let layout = out.path().join("layout");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!(
            "docker://{}",
            publisher.reference("examples/sample", "1.0.0")
        ),
        &format!("oci:{}:examples/sample:1.0.0", layout.display()),
    ]);
    let index = Index::parse(&std::fs::read(layout.join("index.json")).expect("index.json"));
    assert_eq!(index.manifests.len(), 1);
    assert_eq!(index.manifests[0].digest, image.manifest_digest);
    assert_eq!(
        index.manifests[0].annotations[skillimage::REF_NAME_ANNOTATION],
        "examples/sample:1.0.0"
    );
    let hex = image.layer_digest().trim_start_matches("sha256:");
    assert_eq!(
        std::fs::read(layout.join("blobs/sha256").join(hex)).expect("the copied layer"),
        image.layer().bytes
    );
}

#[test]
fn skopeo_reads_written_layouts() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let one = sample().build();
    let two = SkillImage::new("other", "2.0.0-rc.1")
        .status(Status::Draft)
        .build();
    write_oci_layout(
        dir.path(),
        &[
            ("examples/sample:1.0.0", &one),
            ("examples/other:2.0.0-rc.1-draft", &two),
        ],
    );
    let layout = dir.path().display().to_string();
    let first = format!("oci:{layout}:examples/sample:1.0.0");
    assert_eq!(skopeo_inspect(&[&first])["Digest"], one.manifest_digest);
    let manifest = skopeo_raw_manifest(&[&first]);
    assert_eq!(manifest["annotations"]["io.skillimage.status"], "published");
    let second = format!("oci:{layout}:examples/other:2.0.0-rc.1-draft");
    assert_eq!(skopeo_inspect(&[&second])["Digest"], two.manifest_digest);
    let manifest = skopeo_raw_manifest(&[&second]);
    assert_eq!(manifest["annotations"]["io.skillimage.status"], "draft");

    // skopeo copies out of it, unchanged, as a consumer of skillctl's
    // store would read it.
    let copy = dir.path().join("copy");
    skopeo(&["copy", &first, &format!("oci:{}:sample", copy.display())]);
    let index = Index::parse(&std::fs::read(copy.join("index.json")).expect("index.json"));
    assert_eq!(index.manifests[0].digest, one.manifest_digest);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("oci-layout")).expect("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
}

#[test]
fn promotion_mirrors_skillctl() {
    let registry = Registry::start();
    let publisher = Publisher::new(registry.host());
    let repo = "examples/sample";
    let draft = sample().status(Status::Draft).build();
    let pushed = publisher.push(&draft);
    assert_eq!(publisher.tags(repo), ["1.0.0-draft"]);

    let testing = publisher.promote(repo, "1.0.0", Status::Testing);
    assert_eq!(testing.old_manifest_digest, pushed.manifest_digest);
    assert_eq!(testing.layer_digest, pushed.layer_digest);
    assert_ne!(testing.manifest_digest, pushed.manifest_digest);
    assert_eq!(
        testing.manifest_digest,
        draft.with_status(Status::Testing).manifest_digest
    );
    assert_eq!(publisher.tags(repo), ["1.0.0-draft", "1.0.0-testing"]);

    let published = publisher.promote(repo, "1.0.0", Status::Published);
    assert_eq!(published.layer_digest, pushed.layer_digest);
    assert_eq!(
        publisher.head_manifest(repo, "latest"),
        Some(published.manifest_digest.clone())
    );
    assert_eq!(
        publisher.head_manifest(repo, "1.0.0"),
        Some(published.manifest_digest.clone())
    );

    let deprecated = publisher.promote(repo, "1.0.0", Status::Deprecated);
    assert_eq!(
        publisher.head_manifest(repo, "1.0.0"),
        Some(deprecated.manifest_digest.clone())
    );
    assert_eq!(
        publisher.head_manifest(repo, "latest"),
        Some(published.manifest_digest.clone()),
        "deprecation does not move latest"
    );
    let fetched = publisher
        .manifest(repo, "1.0.0")
        .expect("the deprecated manifest");
    assert_eq!(Manifest::parse(&fetched.bytes).status(), Some("deprecated"));

    let archived = publisher.promote(repo, "1.0.0", Status::Archived);
    assert_eq!(
        publisher.head_manifest(repo, "1.0.0"),
        None,
        "archiving removes the tag"
    );
    assert_eq!(
        publisher.head_manifest(repo, &archived.manifest_digest),
        Some(archived.manifest_digest.clone())
    );
    assert_eq!(
        publisher.tags(repo),
        ["1.0.0-draft", "1.0.0-testing", "latest"]
    );
    assert_eq!(archived.layer_digest, pushed.layer_digest);
}

#[test]
fn indexes_and_retagging() {
    let registry = Registry::start();
    let publisher = Publisher::new(registry.host());
    let image = sample().build();
    let pushed = publisher.push_index(&image);
    assert_eq!(
        publisher.head_manifest("examples/sample", "1.0.0"),
        Some(pushed.index_digest.clone())
    );
    let fetched = publisher
        .manifest("examples/sample", "latest")
        .expect("the index");
    assert_eq!(fetched.media_type, skillimage::INDEX_MEDIA_TYPE);
    let index = Index::parse(&fetched.bytes);
    assert_eq!(index.manifests[0].digest, image.manifest_digest);
    let platform = index.manifests[0].platform.as_ref().expect("a platform");
    assert_eq!(
        (platform.os.as_str(), platform.architecture.as_str()),
        ("linux", "amd64")
    );
    let inspected = skopeo_inspect(&[
        "--tls-verify=false",
        "--override-os=linux",
        "--override-arch=amd64",
        &format!(
            "docker://{}",
            publisher.reference("examples/sample", "1.0.0")
        ),
    ]);
    assert_eq!(
        inspected["Digest"], pushed.index_digest,
        "skopeo reports the index digest"
    );
    assert_eq!(
        inspected["Layers"][0],
        image.layer_digest(),
        "and the platform image"
    );

    // Tags that are not versions, as real repositories hold.
    publisher.tag("examples/sample", "1.0.0", "nightly");
    let sig = format!("sha256-{}.sig", &image.manifest_digest[7..]);
    publisher.tag("examples/sample", "1.0.0", &sig);
    assert_eq!(
        publisher.tags("examples/sample"),
        ["1.0.0", "latest", "nightly", sig.as_str()]
    );
    assert_eq!(publisher.tags("examples/missing"), Vec::<String>::new());
}

#[tokio::test]
async fn publisher_works_inside_a_runtime() {
    let registry = Registry::start();
    let publisher = Publisher::new(registry.host());
    let pushed = publisher.push(&sample().build());
    assert_eq!(
        publisher.head_manifest("examples/sample", "1.0.0"),
        Some(pushed.manifest_digest)
    );
}

/// A registry, a proxy in front of it, and `sample` pushed.
fn proxied() -> (Registry, Proxy, BuiltImage, Client) {
    let registry = Registry::start();
    let image = sample().build();
    Publisher::new(registry.host()).push(&image);
    let proxy = Proxy::start(&registry.host());
    (registry, proxy, image, Client::new())
}

fn get(client: &Client, proxy: &Proxy, path: &str) -> reqwest::blocking::Response {
    client
        .get(format!("http://{}{path}", proxy.host()))
        .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT)
        .send()
        .expect("a request through the proxy")
}

#[test]
fn proxy_counts_exactly() {
    let (registry, proxy, image, _client) = proxied();
    let publisher = Publisher::new(proxy.host());
    let repo = "examples/sample";
    assert_eq!(
        publisher.head_manifest(repo, "1.0.0"),
        Some(image.manifest_digest.clone())
    );
    assert_eq!(
        publisher.head_manifest(repo, "latest"),
        Some(image.manifest_digest.clone())
    );
    let fetched = publisher.manifest(repo, "1.0.0").expect("the manifest");
    assert_eq!(fetched.bytes, image.manifest_bytes);
    assert_eq!(
        publisher.blob(repo, image.layer_digest()),
        image.layer().bytes
    );
    assert_eq!(publisher.tags(repo), ["1.0.0", "latest"]);

    let counts = proxy.counts();
    assert_eq!(counts.manifest_heads(), 2, "{}", counts.summary());
    assert_eq!(counts.manifest_gets(), 1);
    assert_eq!(counts.blob_gets(), 1);
    assert_eq!(counts.blob_gets_of(image.layer_digest()), 1);
    assert_eq!(counts.tag_lists(), 1);
    assert_eq!(counts.other(), 0);
    assert_eq!(counts.total(), 5);
    assert_eq!(counts.for_path("/v2/examples/sample/manifests/1.0.0"), 2);
    assert!(counts
        .requests
        .iter()
        .all(|r| r.status == 200 && !r.faulted));

    proxy.reset();
    assert_eq!(proxy.counts().total(), 0);

    // Pushing through the proxy works: upload Locations lead back to it.
    let pushed = publisher.push(&SkillImage::new("other", "1.0.0").build());
    let counts = proxy.counts();
    assert_eq!(counts.blob_heads(), 2, "{}", counts.summary());
    assert_eq!(counts.other(), 2 * 2 + 3, "{}", counts.summary());
    assert_eq!(counts.matching("/blobs/uploads/"), 4);
    assert_eq!(
        Publisher::new(registry.host()).head_manifest("examples/other", "latest"),
        Some(pushed.manifest_digest)
    );
}

#[test]
fn proxy_heads_have_no_body_and_keep_headers() {
    let (_registry, proxy, image, client) = proxied();
    for path in [
        "/v2/examples/sample/manifests/1.0.0".to_owned(),
        format!("/v2/examples/sample/blobs/{}", image.layer_digest()),
    ] {
        let response = client
            .head(format!("http://{}{path}", proxy.host()))
            .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT)
            .send()
            .expect("a HEAD through the proxy");
        assert_eq!(response.status(), 200, "{path}");
        let expected_len = if path.contains("/manifests/") {
            image.manifest_bytes.len()
        } else {
            image.layer().bytes.len()
        };
        assert_eq!(
            response.headers()["content-length"],
            expected_len.to_string().as_str(),
            "{path}"
        );
        assert!(
            response.headers().contains_key("docker-content-digest"),
            "{path}"
        );
        assert!(response.bytes().expect("an empty body").is_empty());
    }
    assert_eq!(proxy.counts().manifest_heads(), 1);
    assert_eq!(proxy.counts().blob_heads(), 1);
}

#[test]
fn proxy_tampers_with_blob_bodies() {
    let (_registry, proxy, image, client) = proxied();
    let digest = image.layer_digest().to_owned();
    let original = &image.layer().bytes;
    let path = format!("/v2/examples/sample/blobs/{digest}");

    let id = proxy.corrupt_blob(&digest);
    let corrupted = get(&client, &proxy, &path)
        .bytes()
        .expect("a corrupted body");
    assert_eq!(corrupted.len(), original.len());
    assert_ne!(corrupted.as_ref(), original.as_slice());
    assert_eq!(
        corrupted
            .iter()
            .zip(original)
            .filter(|(a, b)| a != b)
            .count(),
        1,
        "exactly one byte differs"
    );
    proxy.remove(id);
    assert_eq!(
        get(&client, &proxy, &path)
            .bytes()
            .expect("a body")
            .as_ref(),
        original.as_slice()
    );

    let id = proxy.truncate_blob(&digest, 10);
    let response = get(&client, &proxy, &path);
    assert_eq!(response.headers()["content-length"], "10");
    assert_eq!(
        response.bytes().expect("a short body").as_ref(),
        &original[..10]
    );
    proxy.remove(id);

    let id = proxy.replace_blob(&digest, b"something else".to_vec());
    assert_eq!(
        get(&client, &proxy, &path)
            .bytes()
            .expect("a body")
            .as_ref(),
        b"something else"
    );
    proxy.remove(id);

    proxy.cut_blob(&digest, 10);
    let response = get(&client, &proxy, &path);
    assert_eq!(response.status(), 200);
    assert!(response.bytes().is_err(), "a cut body is an error");
    proxy.clear_faults();

    // Manifests are untouched by blob faults.
    proxy.corrupt_blob(&digest);
    let manifest = get(&client, &proxy, "/v2/examples/sample/manifests/1.0.0");
    assert_eq!(
        manifest.bytes().expect("a body").as_ref(),
        image.manifest_bytes.as_slice()
    );

    let counts = proxy.counts();
    assert_eq!(counts.blob_gets_of(&digest), 5, "{}", counts.summary());
    assert_eq!(counts.requests.iter().filter(|r| r.faulted).count(), 4);
}

#[test]
fn proxy_streams_large_blobs() {
    let registry = Registry::start();
    let publisher = Publisher::new(registry.host());
    // 24 MiB of incompressible-ish bytes.
    let mut big = Vec::with_capacity(24 << 20);
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    while big.len() < 24 << 20 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        big.extend_from_slice(&state.to_le_bytes());
    }
    let blob = Blob::new("application/octet-stream", big);
    publisher.push_blob("examples/big", &blob);
    let proxy = Proxy::start(&registry.host());
    let client = Client::new();
    let path = format!("/v2/examples/big/blobs/{}", blob.digest);
    let body = get(&client, &proxy, &path).bytes().expect("the big blob");
    assert_eq!(sha256_digest(&body), blob.digest);

    proxy.corrupt_blob(&blob.digest);
    let body = get(&client, &proxy, &path)
        .bytes()
        .expect("the corrupted big blob");
    assert_eq!(body.len(), blob.bytes.len());
    assert_ne!(sha256_digest(&body), blob.digest);
    let middle = 12 << 20;
    assert_eq!(body[..middle], blob.bytes[..middle]);
    assert_eq!(body[middle], !blob.bytes[middle]);
    assert_eq!(body[middle + 1..], blob.bytes[middle + 1..]);
}

#[test]
fn proxy_injects_statuses_and_delays() {
    let (_registry, proxy, _image, client) = proxied();
    let manifest = "/v2/examples/sample/manifests/1.0.0";

    proxy.fail_times(Match::kind(RequestKind::ManifestGet), 500, 1);
    assert_eq!(get(&client, &proxy, manifest).status(), 500);
    assert_eq!(get(&client, &proxy, manifest).status(), 200, "only once");

    proxy.rate_limit(Match::path("/tags/list"), 7, 2);
    for _ in 0..2 {
        let response = get(&client, &proxy, "/v2/examples/sample/tags/list");
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "7");
    }
    assert_eq!(
        get(&client, &proxy, "/v2/examples/sample/tags/list").status(),
        200
    );

    let id = proxy.fail(Match::path("/manifests/latest"), 404);
    assert_eq!(
        get(&client, &proxy, "/v2/examples/sample/manifests/latest").status(),
        404
    );
    assert_eq!(get(&client, &proxy, manifest).status(), 200);
    let head = client
        .head(format!(
            "http://{}/v2/examples/sample/manifests/latest",
            proxy.host()
        ))
        .send()
        .expect("a HEAD");
    assert_eq!(head.status(), 404);
    assert!(head.bytes().expect("no body").is_empty());
    proxy.remove(id);

    proxy.delay(
        Match::kind(RequestKind::ManifestGet),
        Duration::from_millis(300),
    );
    let started = Instant::now();
    assert_eq!(get(&client, &proxy, manifest).status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    let counts = proxy.counts();
    assert_eq!(counts.manifest_gets(), 5, "{}", counts.summary());
    assert_eq!(counts.manifest_heads(), 1);
    assert_eq!(counts.tag_lists(), 3);
    let statuses: Vec<u16> = counts.requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 200, 429, 429, 200, 404, 200, 404, 200]);
}

#[test]
fn proxy_injected_fault_type_is_plain_data() {
    let fault = Fault::Status {
        status: 503,
        retry_after: None,
    };
    assert_eq!(fault.clone(), fault);
    assert_eq!(
        RequestKind::of(&reqwest::Method::GET, "/v2/a/b/blobs/uploads/x"),
        RequestKind::Other
    );
    assert_eq!(
        RequestKind::of(&reqwest::Method::GET, "/v2/a/manifests/b/manifests/1"),
        RequestKind::ManifestGet
    );
    assert_eq!(
        RequestKind::of(&reqwest::Method::GET, "/v2/"),
        RequestKind::Other
    );
}

#[test]
fn test_env_sandboxes_the_binaries() {
    let env = TestEnv::new();
    let mode = std::fs::metadata(env.runtime_dir())
        .expect("the runtime dir")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    let config = env.write_config("[daemon]\n");
    assert_eq!(config, env.config_home().join("skillsync/skills.toml"));
    assert_eq!(
        std::fs::read_to_string(&config).expect("the config"),
        "[daemon]\n"
    );
    assert!(env.target_dir("claude").ends_with("home/.claude/skills"));

    let output = env.command("/usr/bin/env").output().expect("run env");
    let printed = String::from_utf8(output.stdout).expect("UTF-8");
    let names: BTreeSet<&str> = printed
        .lines()
        .filter_map(|line| line.split_once('=').map(|(name, _)| name))
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "HOME",
            "PATH",
            "RUST_LOG",
            "SKILLSYNC_REGISTRIES_CONF",
            "SKILLSYNC_CONTAINERS_POLICY",
            "SKILLSYNC_SYSTEM_CONFIG",
            "XDG_CACHE_HOME",
            "XDG_CONFIG_HOME",
            "XDG_RUNTIME_DIR",
            "XDG_STATE_HOME"
        ])
    );
    assert!(printed.contains(&format!("HOME={}\n", env.home().display())));
    assert!(printed.contains(&format!(
        "SKILLSYNC_SYSTEM_CONFIG={}\n",
        env.root().join("etc/skillsync/skills.toml").display()
    )));

    let skill = env.skill_dir("claude", "sample");
    for (path, bytes) in &sample().build().files {
        write_file(&skill.join(path), bytes);
    }
    std::fs::create_dir_all(skill.join("empty")).expect("an empty dir");
    assert_eq!(env.read_skill("claude", "sample"), sample().build().files);
    assert_eq!(read_tree(&skill).len(), 4);
}
