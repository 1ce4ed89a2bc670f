//! Tests of `verify`: which signatures satisfy a policy, and how many are
//! examined.
//!
//! Built for `cargo test` only: no code outside tests may use anything here.

use super::*;
use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::SigningKey;
use p256::pkcs8::{EncodePublicKey, LineEnding};
use serde_json::json;

use crate::source::BlobStream;

/// A registry in memory that records the tags asked for.
#[derive(Default)]
struct Fake {
    tags: HashMap<String, Digest>,
    manifests: HashMap<Digest, Vec<u8>>,
    blobs: HashMap<Digest, Vec<u8>>,
    asked: Mutex<Vec<String>>,
}

fn not_found(what: &str) -> SourceError {
    SourceError::NotFound {
        what: what.into(),
        endpoint: "fake".into(),
    }
}

impl Source for Fake {
    fn endpoint(&self) -> String {
        "fake".into()
    }
    async fn list_tags(&self, _: &ImageRef) -> Result<Vec<String>, SourceError> {
        Ok(self.tags.keys().cloned().collect())
    }
    async fn resolve_tag(&self, _: &ImageRef, tag: &str) -> Result<Digest, SourceError> {
        self.asked.lock().unwrap().push(tag.to_string());
        self.tags.get(tag).cloned().ok_or_else(|| not_found(tag))
    }
    async fn fetch_manifest(&self, _: &ImageRef, d: &Digest) -> Result<Vec<u8>, SourceError> {
        self.manifests
            .get(d)
            .cloned()
            .ok_or_else(|| not_found("manifest"))
    }
    async fn open_blob(&self, _: &ImageRef, d: &Digest, _: u64) -> Result<BlobStream, SourceError> {
        let bytes = self
            .blobs
            .get(d)
            .cloned()
            .ok_or_else(|| not_found("blob"))?;
        Ok(futures_util::stream::iter(vec![Ok(bytes::Bytes::from(bytes))]).boxed())
    }
}

impl Fake {
    fn manifest(&mut self, tag: Option<&str>, value: serde_json::Value) -> Digest {
        let bytes = serde_json::to_vec(&value).unwrap();
        let d = Digest::of(&bytes);
        self.manifests.insert(d.clone(), bytes);
        if let Some(t) = tag {
            self.tags.insert(t.to_string(), d.clone());
        }
        d
    }

    fn blob(&mut self, bytes: &[u8]) -> serde_json::Value {
        let d = Digest::of(bytes);
        self.blobs.insert(d.clone(), bytes.to_vec());
        json!({"mediaType": cosign::SIMPLE_SIGNING_TYPE, "digest": d.to_string(), "size": bytes.len()})
    }

    /// A skill image manifest with `annotation`, tagged `tag`.
    fn image(&mut self, tag: &str, layer: &str, status: &str) -> Digest {
        let layer = Digest::of(layer.as_bytes()).to_string();
        self.manifest(
            Some(tag),
            json!({"schemaVersion": 2,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of(b"config").to_string(), "size": 6},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": 10}],
                "annotations": {"io.skillimage.status": status}}),
        )
    }

    /// cosign signature layers for `digest`: one per key in `by`.
    fn sign(&mut self, digest: &Digest, by: &[&SigningKey], repeat: usize) {
        let payload = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"{IMAGE}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"{}"}},"optional":null}}"#,
            cosign::COSIGN_TYPE
        );
        let mut layers = Vec::new();
        for key in by.iter().cycle().take(by.len() * repeat) {
            let sig: p256::ecdsa::Signature = key.sign(payload.as_bytes());
            let mut layer = self.blob(payload.as_bytes());
            layer["annotations"] = json!({cosign::SIGNATURE_ANNOTATION:
                base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes())});
            layers.push(layer);
        }
        let config = self.blob(b"{}");
        self.manifest(
            Some(&cosign::signature_tag(digest)),
            json!({"schemaVersion": 2, "config": config, "layers": layers}),
        );
    }

    fn parsed(&self, d: &Digest) -> manifest::ImageManifest {
        match manifest::parse(&self.manifests[d]).unwrap() {
            Parsed::Image(m) => m,
            Parsed::Index(_) => panic!("an image"),
        }
    }
}

const IMAGE: &str = "r.example:5000/acme/hello";

fn signing_key(label: &str) -> SigningKey {
    SigningKey::from_slice(&sha2::Sha256::digest(label.as_bytes())).unwrap()
}

fn trusted(key: &SigningKey, name: &str) -> TrustedKey {
    let pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    TrustedKey::from_pem(name, &pem).unwrap()
}

fn set(keys: &[&SigningKey], origin: &str) -> KeySet {
    KeySet {
        origin: origin.into(),
        keys: keys.iter().map(|k| trusted(k, origin)).collect(),
        repository: IMAGE.into(),
    }
}

fn run(fake: &Fake, digest: &Digest, sets: &[KeySet]) -> Result<Verified, VerifyError> {
    let image: ImageRef = IMAGE.parse().unwrap();
    let manifest = fake.parsed(digest);
    let subject = Subject {
        image: &image,
        ref_digest: digest,
        manifest_digest: digest,
        manifest: &manifest,
        version: Some("1.0.0"),
    };
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(verify(fake, &subject, sets))
}

use sha2::Digest as _;

#[test]
fn every_key_set_must_be_satisfied() {
    let (a, b) = (signing_key("a"), signing_key("b"));
    let mut fake = Fake::default();
    let d = fake.image("1.0.0", "layer", "published");
    fake.sign(&d, &[&a], 1);
    let sets = [set(&[&a], "skills.toml"), set(&[&b], "policy.json")];
    let err = run(&fake, &d, &sets).unwrap_err().to_string();
    assert!(err.contains("signed by an unknown key"), "{err}");
    fake.sign(&d, &[&a, &b], 1);
    fake.asked.lock().unwrap().clear();
    let v = run(&fake, &d, &sets).unwrap();
    assert_eq!(
        v.by,
        vec![
            "cosign signature by skills.toml".to_string(),
            "cosign signature by policy.json".to_string()
        ]
    );
    // Satisfied by the cosign signatures: no referrers lookup.
    assert!(!fake
        .asked
        .lock()
        .unwrap()
        .iter()
        .any(|t| !t.ends_with(".sig")));
}

#[test]
fn at_most_a_fixed_number_of_signatures_is_examined() {
    let (good, bad) = (signing_key("good"), signing_key("bad"));
    let mut fake = Fake::default();
    let d = fake.image("1.0.0", "layer", "published");
    // MAX_SIGNATURES by an unknown key, then the good one: never reached.
    let mut keys: Vec<&SigningKey> = vec![&bad; MAX_SIGNATURES];
    keys.push(&good);
    fake.sign(&d, &keys, 1);
    assert!(run(&fake, &d, &[set(&[&good], "k")]).is_err());
    fake.sign(&d, &[&good], 1);
    assert!(run(&fake, &d, &[set(&[&good], "k")]).is_ok());
}

#[test]
fn a_signed_sibling_vouches_only_for_identical_content() {
    let key = signing_key("k");
    let mut fake = Fake::default();
    let published = fake.image("1.0.0", "layer", "published");
    let testing = fake.image("1.0.0-testing", "layer", "testing");
    fake.sign(&testing, &[&key], 1);
    let v = run(&fake, &published, &[set(&[&key], "k")]).unwrap();
    assert_eq!(v.signed_as.as_deref(), Some("1.0.0-testing"));
    // A draft with other content, signed, does not vouch.
    let mut fake = Fake::default();
    let published = fake.image("1.0.0", "layer", "published");
    let draft = fake.image("1.0.0-draft", "other layer", "draft");
    fake.sign(&draft, &[&key], 1);
    let err = run(&fake, &published, &[set(&[&key], "k")]).unwrap_err();
    assert!(err.to_string().contains("unsigned"), "{err}");
}

#[test]
fn duplicate_keys_are_refused_at_any_depth() {
    #[derive(Deserialize)]
    struct Any {
        #[allow(dead_code)]
        a: serde_json::Value,
    }
    assert!(strict_json::<Any>(br#"{"a":{"b":1,"c":[{"d":1}]}}"#).is_ok());
    let err = strict_json::<Any>(br#"{"a":1,"a":2}"#).err().unwrap();
    assert!(err.contains("duplicate key \"a\""), "{err}");
    assert!(strict_json::<Any>(br#"{"a":{"b":1,"b":1}}"#).is_err());
    assert!(strict_json::<Any>(br#"{"a":[{"x":1,"x":2}]}"#).is_err());
}

#[test]
fn repositories_of_references() {
    assert_eq!(repository_of("h:5000/a/b"), "h:5000/a/b");
    assert_eq!(repository_of("h:5000/a/b:1.0"), "h:5000/a/b");
    assert_eq!(
        repository_of(&format!("h:5000/a/b@sha256:{}", "a".repeat(64))),
        "h:5000/a/b"
    );
    assert_eq!(repository_of("h/a:tag@sha256:x"), "h/a");
}

#[test]
fn a_verified_image_says_by_what() {
    let v = Verified {
        by: vec!["cosign signature by /k.pub".into()],
        signed_as: Some("1.0.0-testing".into()),
    };
    assert_eq!(
        v.describe(),
        "verified: signed as 1.0.0-testing (cosign signature by /k.pub)"
    );
}
