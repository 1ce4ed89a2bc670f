//! Signature verification against a real registry: keys made in the test,
//! signatures pushed exactly as cosign pushes them, the real `skillsyncd`.
//! Every refusal leaves the installed version in place.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use crate::support::cosign::{
    dsse_bundle, image_payload, payload, push_bundle_referrer, push_signature, sign_image,
    SignatureLayer, Signer,
};
use crate::support::proxy::Proxy;
use crate::support::registry::Registry;
use crate::support::skillimage::{BuiltImage, Publisher, SkillImage, Status};
use crate::support::{wait_until, write_file, KillOnDrop, TestEnv};

/// A registry, a publisher, a sandbox and a trusted key.
struct World {
    env: TestEnv,
    _registry: Registry,
    publisher: Publisher,
    signer: Signer,
}

impl World {
    fn new() -> World {
        let registry = Registry::start();
        let publisher = Publisher::new(registry.host());
        let world = World {
            env: TestEnv::new(),
            _registry: registry,
            publisher,
            signer: Signer::new("trusted publisher"),
        };
        world.signer.write_public(&world.key_path());
        world
    }

    fn key_path(&self) -> PathBuf {
        self.env.home().join("keys/trusted.pub")
    }

    fn policy_json(&self, json: &str) {
        write_file(
            &self.env.config_home().join("containers/policy.json"),
            json.as_bytes(),
        );
    }

    fn host(&self) -> String {
        self.publisher.host().to_owned()
    }

    /// The repository every test publishes to.
    fn repository(&self) -> String {
        hello("1.0.0").build().repository
    }

    /// `host/repository`, as configured and as signed.
    fn reference(&self) -> String {
        format!("{}/{}", self.host(), self.repository())
    }

    /// One skill `hello` following the published channel, with `extra`
    /// lines in its table.
    fn config(&self, extra: &str) {
        self.env.write_config(&format!(
            "[registries.\"{}\"]\ninsecure = true\n\n[skills.hello]\nimage = \"{}\"\n{extra}\n",
            self.host(),
            self.reference()
        ));
    }

    /// The skill with a key policy naming the trusted key.
    fn config_with_key(&self) {
        self.config("verify = { keys = [\"~/keys/trusted.pub\"] }");
    }

    fn publish(&self, image: &BuiltImage) -> String {
        self.publisher.push(image).manifest_digest
    }

    /// Publishes `image` with a DSSE bundle by `signer` attached as a
    /// referrer (the referrers tag scheme; distribution 2.8 has no API).
    fn publish_with_dsse_bundle(&self, image: &BuiltImage, signer: &Signer) {
        let digest = self.publish(image);
        let bundle = dsse_bundle(signer, &digest);
        push_bundle_referrer(
            &self.publisher,
            &self.repository(),
            &digest,
            image.manifest_bytes.len() as u64,
            bundle,
        );
    }

    fn sign(&self, digest: &str) {
        sign_image(&self.publisher, &self.signer, &self.repository(), digest);
    }

    /// `skillsyncctl check`, which must exit 2; returns its stderr.
    fn check_refused(&self) -> String {
        let out = self.env.run_ctl(&["check"]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{err}");
        err
    }

    fn once(&self) -> Output {
        self.env.once()
    }

    /// Runs a pass that must succeed; returns its stdout.
    fn once_ok(&self) -> String {
        let out = self.once();
        assert!(out.status.success(), "skillsyncd --once failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a pass that must fail; returns its stderr.
    fn once_refused(&self) -> String {
        let out = self.once();
        assert_eq!(out.status.code(), Some(1), "the pass should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// The version installed in the claude target.
    fn installed(&self) -> Option<String> {
        let guide = self.env.skill_dir("claude", "hello").join("docs/guide.md");
        let text = std::fs::read_to_string(guide).ok()?;
        text.strip_prefix("# Guide for ")
            .map(|v| v.trim().to_owned())
    }

    fn state(&self) -> Value {
        self.env.recorded_state()
    }

    /// 1.0.0 published, signed and installed with the key policy.
    fn installed_signed_1_0_0(&self) -> String {
        self.config_with_key();
        let digest = self.publish(&hello("1.0.0").build());
        self.sign(&digest);
        self.once_ok();
        assert_eq!(self.installed().as_deref(), Some("1.0.0"));
        digest
    }

    /// After a signed 1.0.0 is installed, publishes 1.1.0, lets `sign`
    /// attach whatever signature the test wants, runs a pass that must be
    /// refused, checks 1.0.0 is still installed, and returns the error.
    fn refused_update(&self, sign: impl FnOnce(&World, &BuiltImage, &str)) -> String {
        let old = self.installed_signed_1_0_0();
        let image = hello("1.1.0").build();
        let digest = self.publish(&image);
        assert_ne!(old, digest);
        sign(self, &image, &digest);
        let err = self.once_refused();
        assert_eq!(
            self.installed().as_deref(),
            Some("1.0.0"),
            "the installed version stays"
        );
        assert!(err.contains("error: hello:"), "{err}");
        err
    }
}

fn hello(version: &str) -> SkillImage {
    SkillImage::new("hello", version)
        .description("Says hello.")
        .file("docs/guide.md", format!("# Guide for {version}\n"))
}

#[test]
fn a_valid_signature_by_a_trusted_key_installs_and_says_so() {
    let w = World::new();
    w.installed_signed_1_0_0();
    // The verification is recorded with the installed digest; the next
    // pass trusts the record and reports the skill up to date.
    let state = w.state();
    let skill = &state["skills"]["hello"];
    let by = skill["verified"]["by"].as_str().unwrap();
    assert!(by.starts_with("verified: cosign signature by "), "{by}");
    assert!(by.ends_with("keys/trusted.pub"), "{by}");
    assert_eq!(skill["highest_version"], "1.0.0");
    let again = w.once_ok();
    assert!(again.contains("hello 1.0.0 is up to date"), "{again}");
    // An update signed the same way goes through.
    let next = w.publish(&hello("1.1.0").build());
    w.sign(&next);
    let out = w.once_ok();
    assert!(out.contains("verified: cosign signature by"), "{out}");
    assert_eq!(w.installed().as_deref(), Some("1.1.0"));
    assert_eq!(w.state()["skills"]["hello"]["highest_version"], "1.1.0");
}

#[test]
fn a_signed_index_vouches_for_its_manifest() {
    let w = World::new();
    w.config_with_key();
    let pushed = w.publisher.push_index(&hello("1.0.0").build());
    w.sign(&pushed.index_digest);
    let out = w.once_ok();
    assert!(out.contains("verified: cosign signature by"), "{out}");
    assert_eq!(w.installed().as_deref(), Some("1.0.0"));
}

#[test]
fn an_unsigned_image_is_never_installed() {
    let w = World::new();
    // Nothing installed yet: nothing is installed.
    w.config_with_key();
    w.publish(&hello("1.0.0").build());
    let err = w.once_refused();
    assert!(err.contains("unsigned"), "{err}");
    assert_eq!(w.installed(), None);
    assert!(!w.env.skill_dir("claude", "hello").exists());
    // And an unsigned update leaves the signed version in place.
    let w = World::new();
    let err = w.refused_update(|_, _, _| {});
    assert!(err.contains("unsigned"), "{err}");
}

#[test]
fn a_signature_by_another_key_is_refused() {
    let w = World::new();
    let err = w.refused_update(|w, _, digest| {
        let intruder = Signer::new("intruder");
        sign_image(&w.publisher, &intruder, &w.repository(), digest);
    });
    assert!(err.contains("signed by an unknown key"), "{err}");
}

#[test]
fn a_signature_over_another_manifest_is_refused() {
    let w = World::new();
    let err = w.refused_update(|w, _, digest| {
        // A valid signature of the 1.0.0 manifest, stored as 1.1.0's.
        let old = w.publisher.head_manifest(&w.repository(), "1.0.0").unwrap();
        let layer = SignatureLayer::signed(&w.signer, image_payload(&w.reference(), &old));
        push_signature(&w.publisher, &w.repository(), digest, &[layer]);
    });
    assert!(err.contains("signature covers another digest"), "{err}");
}

#[test]
fn a_signature_of_another_type_is_refused() {
    let w = World::new();
    let err = w.refused_update(|w, _, digest| {
        let p = payload(&w.reference(), digest, "cosign container image attestation");
        let layer = SignatureLayer::signed(&w.signer, p);
        push_signature(&w.publisher, &w.repository(), digest, &[layer]);
    });
    assert!(err.contains("wrong type"), "{err}");
}

#[test]
fn a_signature_for_another_repository_is_refused() {
    let w = World::new();
    let err = w.refused_update(|w, _, digest| {
        let elsewhere = format!("{}/other/repository", w.host());
        let layer = SignatureLayer::signed(&w.signer, image_payload(&elsewhere, digest));
        push_signature(&w.publisher, &w.repository(), digest, &[layer]);
    });
    assert!(err.contains("wrong docker-reference"), "{err}");
    assert!(err.contains("other/repository"), "{err}");
}

#[test]
fn a_payload_altered_after_signing_is_refused() {
    let w = World::new();
    let err = w.refused_update(|w, _, digest| {
        // Signed for 1.0.0, then the digest inside edited to 1.1.0's.
        let old = w.publisher.head_manifest(&w.repository(), "1.0.0").unwrap();
        let signature = w.signer.sign(&image_payload(&w.reference(), &old));
        let altered = image_payload(&w.reference(), digest);
        let layer = SignatureLayer::with_signature(signature, altered);
        push_signature(&w.publisher, &w.repository(), digest, &[layer]);
    });
    assert!(err.contains("altered after signing"), "{err}");
}

#[test]
fn a_manifest_reannotated_after_signing_needs_a_signed_equivalent() {
    // Without a signed sibling: the new manifest is unsigned, refused.
    let w = World::new();
    let err = w.refused_update(|w, image, digest| {
        w.sign(digest);
        let edited = image.clone();
        let mut manifest = edited.manifest.clone();
        manifest.annotations.insert(
            "org.opencontainers.image.description".into(),
            "Edited.".into(),
        );
        let bytes = manifest.to_bytes();
        w.publisher.put_manifest(
            &w.repository(),
            "1.1.0",
            "application/vnd.oci.image.manifest.v1+json",
            &bytes,
        );
    });
    assert!(err.contains("unsigned"), "{err}");

    // skillctl's promotion: signed as 1.1.0-testing, promoted to 1.1.0
    // (a new manifest, same config and layers): accepted, and says so.
    let w = World::new();
    w.installed_signed_1_0_0();
    let testing = hello("1.1.0").status(Status::Testing).build();
    let testing_digest = w.publish(&testing);
    w.sign(&testing_digest);
    let promoted = w
        .publisher
        .promote(&w.repository(), "1.1.0", Status::Published);
    assert_ne!(promoted.manifest_digest, testing_digest);
    let out = w.once_ok();
    assert!(
        out.contains("verified: signed as 1.1.0-testing (cosign signature by"),
        "{out}"
    );
    assert_eq!(w.installed().as_deref(), Some("1.1.0"));

    // A -testing manifest with other content does not vouch for 1.2.0.
    let w = World::new();
    let err = w.refused_update(|w, _, _| {
        let other = hello("1.1.0")
            .status(Status::Testing)
            .file("extra.md", "other content\n")
            .build();
        let d = w.publish(&other);
        w.sign(&d);
    });
    assert!(err.contains("unsigned"), "{err}");
}

#[test]
fn an_oversized_signature_manifest_is_refused() {
    let w = World::new();
    let err = w.refused_update(|w, _, digest| {
        let mut layer = SignatureLayer::signed(&w.signer, image_payload(&w.reference(), digest));
        layer
            .annotations
            .insert("padding".into(), "x".repeat(70 * 1024));
        push_signature(&w.publisher, &w.repository(), digest, &[layer]);
    });
    assert!(err.contains("larger than 65536 bytes"), "{err}");
}

#[test]
fn a_sigstore_bundle_referrer_by_a_trusted_key_is_accepted() {
    let w = World::new();
    w.installed_signed_1_0_0();
    w.publish_with_dsse_bundle(&hello("1.1.0").build(), &w.signer);
    let out = w.once_ok();
    assert!(out.contains("verified: Sigstore bundle by"), "{out}");
    assert_eq!(w.installed().as_deref(), Some("1.1.0"));
    // One by another key is not.
    w.publish_with_dsse_bundle(&hello("1.2.0").build(), &Signer::new("intruder"));
    let err = w.once_refused();
    assert!(err.contains("signed by an unknown key"), "{err}");
    assert_eq!(w.installed().as_deref(), Some("1.1.0"));
}

#[test]
fn a_containers_policy_with_sigstore_signed_is_honoured() {
    let w = World::new();
    // No verify in skills.toml: policy.json alone asks for the key.
    w.config("");
    w.policy_json(&format!(
        r#"{{"default":[{{"type":"insecureAcceptAnything"}}],
            "transports":{{"docker":{{"{}":[{{"type":"sigstoreSigned","keyPath":"{}","signedIdentity":{{"type":"matchRepository"}}}}]}}}}}}"#,
        w.reference(),
        w.key_path().display()
    ));
    let digest = w.publish(&hello("1.0.0").build());
    w.sign(&digest);
    let out = w.once_ok();
    assert!(out.contains("verified: cosign signature by"), "{out}");
    assert_eq!(w.installed().as_deref(), Some("1.0.0"));
    // An unsigned update is refused by the same policy.
    w.publish(&hello("1.1.0").build());
    let err = w.once_refused();
    assert!(err.contains("unsigned"), "{err}");
    assert_eq!(w.installed().as_deref(), Some("1.0.0"));
}

#[test]
fn a_containers_policy_that_rejects_refuses() {
    let w = World::new();
    w.config("");
    w.publish(&hello("1.0.0").build());
    let out = w.once_ok();
    assert!(!out.contains("verified"), "{out}");
    assert_eq!(w.installed().as_deref(), Some("1.0.0"));
    w.policy_json(&format!(
        r#"{{"default":[{{"type":"insecureAcceptAnything"}}],"transports":{{"docker":{{"{}":[{{"type":"reject"}}]}}}}}}"#,
        w.host()
    ));
    let digest = w.publish(&hello("1.1.0").build());
    w.sign(&digest);
    let err = w.once_refused();
    assert!(err.contains("rejected by"), "{err}");
    assert!(err.contains("(reject)"), "{err}");
    assert_eq!(w.installed().as_deref(), Some("1.0.0"));
    // `skillsyncctl check` says so offline.
    let err = w.check_refused();
    assert!(
        err.contains("skill hello:") && err.contains("(reject)"),
        "{err}"
    );
    // Something it cannot honour in the matching scope is an error too.
    w.policy_json(&format!(
        r#"{{"default":[{{"type":"insecureAcceptAnything"}}],"transports":{{"docker":{{"{}":[{{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k.gpg"}}]}}}}}}"#,
        w.host()
    ));
    let err = w.once_refused();
    assert!(err.contains("signedBy"), "{err}");
    assert_eq!(w.installed().as_deref(), Some("1.0.0"));
    assert!(w.check_refused().contains("signedBy"));
}

#[test]
fn a_containers_policy_scope_for_one_tag_applies_to_that_version_only() {
    let w = World::new();
    w.config("");
    w.policy_json(&format!(
        r#"{{"default":[{{"type":"insecureAcceptAnything"}}],"transports":{{"docker":{{"{}:1.1.0":[{{"type":"reject"}}]}}}}}}"#,
        w.reference()
    ));
    w.publish(&hello("1.0.0").build());
    w.once_ok();
    assert_eq!(w.installed().as_deref(), Some("1.0.0"));
    // The channel picks 1.1.0, through its tag: that scope applies.
    w.publish(&hello("1.1.0").build());
    let err = w.once_refused();
    assert!(
        err.contains(&format!("{}:1.1.0", w.reference())) && err.contains("(reject)"),
        "{err}"
    );
    assert_eq!(w.installed().as_deref(), Some("1.0.0"));
    // A later version is not that tag: the default applies.
    w.publish(&hello("1.2.0").build());
    w.once_ok();
    assert_eq!(w.installed().as_deref(), Some("1.2.0"));
    // A skill pinned to the tag is refused by `check` already.
    w.config("tag = \"1.1.0\"");
    assert!(w.check_refused().contains("(reject)"));
}

#[test]
fn check_names_a_key_file_that_does_not_load() {
    let w = World::new();
    w.config("verify = { keys = [\"~/keys/missing.pub\"] }");
    let err = w.check_refused();
    assert!(
        err.contains("keys/missing.pub") && err.contains("needed by hello"),
        "{err}"
    );
    write_file(&w.env.home().join("keys/missing.pub"), b"not a key");
    assert!(w.check_refused().contains("keys/missing.pub"));
    w.config_with_key();
    let out = w.env.run_ctl(&["check"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_downgrade_below_the_highest_version_installed_is_refused_unless_pinned() {
    let w = World::new();
    let old = w.installed_signed_1_0_0();
    let two = w.publish(&hello("2.0.0").build());
    w.sign(&two);
    w.once_ok();
    assert_eq!(w.installed().as_deref(), Some("2.0.0"));
    // The 2.0.0 tag re-pointed at the (validly signed) 1.0.0 manifest.
    w.publisher.tag(&w.repository(), &old, "2.0.0");
    let err = w.once_refused();
    assert!(err.contains("rollback refused"), "{err}");
    assert!(err.contains("1.0.0 is offered, but 2.0.0"), "{err}");
    assert_eq!(w.installed().as_deref(), Some("2.0.0"));
    // Pinning the older digest explicitly allows it.
    w.config(&format!(
        "verify = {{ keys = [\"~/keys/trusted.pub\"] }}\ndigest = \"{old}\""
    ));
    w.once_ok();
    assert_eq!(w.installed().as_deref(), Some("1.0.0"));
}

#[test]
fn status_shows_how_each_skill_was_verified() {
    let w = World::new();
    let digest = w.publish(&hello("1.0.0").build());
    w.sign(&digest);
    w.env.write_config(&format!(
        "[registries.\"{host}\"]\ninsecure = true\n\n\
         [skills.hello]\nimage = \"{r}\"\nverify = {{ keys = [\"~/keys/trusted.pub\"] }}\n\n\
         [skills.plain]\nimage = \"{r}\"\ntargets = [\"cursor\"]\nverify = \"none\"\n",
        host = w.host(),
        r = w.reference()
    ));
    w.once_ok();
    let log = std::fs::File::create(w.env.root().join("daemon.log")).unwrap();
    let mut command = w.env.daemon();
    command.stderr(log);
    let _daemon = KillOnDrop::spawn(&mut command);
    let status = || -> Option<Value> {
        let out = w.env.ctl().args(["status", "--json"]).output().ok()?;
        serde_json::from_slice(&out.stdout).ok()
    };
    let skill = |s: &Value, name: &str| -> Value {
        s["skills"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == name).cloned())
            .unwrap_or(Value::Null)
    };
    wait_until(Duration::from_secs(30), "both skills checked", || {
        status().is_some_and(|s| {
            ["hello", "plain"]
                .iter()
                .all(|n| skill(&s, n)["state"] == "in_sync")
        })
    });
    let s = status().unwrap();
    let hello = skill(&s, "hello")["verification"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        hello.starts_with("verified: cosign signature by"),
        "{hello}"
    );
    assert_eq!(skill(&s, "plain")["verification"], "unverified");
    let detail = w.env.ctl().args(["status", "plain"]).output().unwrap();
    let text = String::from_utf8_lossy(&detail.stdout);
    assert!(
        text.contains("trust:") && text.contains("unverified"),
        "{text}"
    );
}

/// A registry behind the counting proxy, a key and a sandbox whose skill
/// `hello` is read through the proxy (`image` is the configured
/// repository, `extra` more config).
fn through_proxy(
    image: impl Fn(&Proxy) -> String,
    extra: impl Fn(&Proxy) -> String,
) -> (TestEnv, Registry, Proxy, Publisher, Signer, String) {
    let registry = Registry::start();
    let proxy = Proxy::start(&registry.host());
    let publisher = Publisher::new(registry.host());
    let env = TestEnv::new();
    let signer = Signer::new("trusted publisher");
    signer.write_public(&env.home().join("keys/trusted.pub"));
    let image = image(&proxy);
    env.write_config(&format!(
        "[registries.\"{}\"]\ninsecure = true\n{}\n[skills.hello]\nimage = \"{image}\"\n\
         verify = {{ keys = [\"~/keys/trusted.pub\"] }}\n",
        proxy.host(),
        extra(&proxy)
    ));
    (env, registry, proxy, publisher, signer, image)
}

#[test]
fn polling_a_verified_skill_costs_no_signature_lookup() {
    let (env, _registry, proxy, publisher, signer, image) = through_proxy(
        |p| format!("{}/examples/hello", p.host()),
        |_| String::new(),
    );
    let built = hello("1.0.0").build();
    let digest = publisher.push(&built).manifest_digest;
    let layer = SignatureLayer::signed(&signer, image_payload(&image, &digest));
    push_signature(&publisher, &built.repository, &digest, &[layer]);
    env.once_ok();
    let first = proxy.counts();
    // The .sig tag once (a HEAD); the cosign signature sufficed, so no
    // referrers lookup.
    assert_eq!(first.matching(".sig"), 1, "{}", first.summary());
    assert_eq!(first.matching("sha256-"), 1, "{}", first.summary());
    assert_eq!(first.matching("referrers"), 0, "{}", first.summary());
    proxy.reset();
    env.once_ok();
    let again = proxy.counts();
    let pings = again.for_path("/v2/");
    assert_eq!(again.matching("sha256-"), 0, "{}", again.summary());
    // One tag list and one HEAD, as without a key policy.
    assert_eq!(again.total() - pings, 2, "{}", again.summary());
}

#[test]
fn a_mirror_serves_an_image_signed_for_its_origin() {
    // The origin is down; the mirror (the proxy) serves everything. The
    // signature names the origin repository, as configured.
    let origin = "127.0.0.1:1";
    let (env, _registry, _proxy, publisher, signer, image) = through_proxy(
        |_| format!("{origin}/examples/hello"),
        |p| {
            format!(
                "\n[registries.\"{origin}\"]\ninsecure = true\nmirrors = [\"{}\"]\n",
                p.host()
            )
        },
    );
    let built = hello("1.0.0").build();
    let digest = publisher.push(&built).manifest_digest;
    let layer = SignatureLayer::signed(&signer, image_payload(&image, &digest));
    push_signature(&publisher, &built.repository, &digest, &[layer]);
    env.once_ok();
    assert!(env.skill_dir("claude", "hello").join("SKILL.md").is_file());
}
