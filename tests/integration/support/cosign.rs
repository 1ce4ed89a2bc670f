//! Signatures written exactly as cosign writes them, with keys made here.
//!
//! `cosign sign --key` pushes to tag `sha256-<hex of the signed digest>.sig`
//! an OCI image manifest whose config is a small image config and whose
//! layers are simple-signing payloads, each with its base64 DER ECDSA
//! P-256 signature (over SHA-256 of the payload bytes) in the layer
//! annotation `dev.cosignproject.cosign/signature`. cosign 3's bundles are
//! OCI referrers: a manifest with `artifactType`
//! `application/vnd.dev.sigstore.bundle.v0.3+json`, the bundle as its only
//! layer and the image as its `subject`, listed (on a registry without the
//! referrers API) in an image index at tag `sha256-<hex>`.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::skillimage::{Blob, Publisher, MANIFEST_MEDIA_TYPE};
use super::write_file;

/// The simple-signing payload media type.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The signature annotation.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// A v0.3 Sigstore bundle.
pub const BUNDLE_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// An ECDSA P-256 key pair, as `cosign generate-key-pair` makes.
pub struct Signer {
    key: SigningKey,
}

impl Signer {
    /// A key derived from `label` (the same label, the same key).
    pub fn new(label: &str) -> Signer {
        let seed = Sha256::digest(label.as_bytes());
        Signer {
            key: SigningKey::from_slice(&seed).expect("a valid P-256 scalar"),
        }
    }

    /// The public key as `cosign.pub` holds it.
    pub fn public_pem(&self) -> String {
        self.key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("encode the public key")
    }

    /// Writes the public key to `path`.
    pub fn write_public(&self, path: &Path) {
        write_file(path, self.public_pem().as_bytes());
    }

    /// Base64 of the DER signature over SHA-256(`message`).
    pub fn sign(&self, message: &[u8]) -> String {
        let sig: Signature = self.key.sign(message);
        base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes())
    }

    /// `publicKey.hint`: base64 of SHA-256 of the SPKI DER.
    pub fn hint(&self) -> String {
        let der = self
            .key
            .verifying_key()
            .to_public_key_der()
            .expect("encode the public key");
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(der.as_bytes()))
    }
}

/// A simple-signing payload, byte for byte as cosign writes it.
pub fn payload(docker_reference: &str, digest: &str, kind: &str) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{docker_reference}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"{kind}"}},"optional":null}}"#
    )
    .into_bytes()
}

/// The payload of a valid image signature.
pub fn image_payload(docker_reference: &str, digest: &str) -> Vec<u8> {
    payload(docker_reference, digest, "cosign container image signature")
}

/// One layer of a signature manifest.
pub struct SignatureLayer {
    /// The payload bytes pushed.
    pub payload: Vec<u8>,
    /// The annotations (the signature, and any others).
    pub annotations: BTreeMap<String, String>,
}

impl SignatureLayer {
    /// `payload` signed by `signer`.
    pub fn signed(signer: &Signer, payload: Vec<u8>) -> SignatureLayer {
        SignatureLayer::with_signature(signer.sign(&payload), payload)
    }

    /// `payload` with `signature` as given (made over other bytes, say).
    pub fn with_signature(signature: String, payload: Vec<u8>) -> SignatureLayer {
        SignatureLayer {
            payload,
            annotations: BTreeMap::from([(SIGNATURE_ANNOTATION.to_owned(), signature)]),
        }
    }
}

/// The tag cosign uses for the signatures of `digest`.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

/// The config cosign writes for a signature image.
fn signature_config(payloads: &[Blob]) -> Blob {
    let diff_ids: Vec<&str> = payloads.iter().map(|b| b.digest.as_str()).collect();
    let config = json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {}
    });
    Blob::new(
        "application/vnd.oci.image.config.v1+json",
        serde_json::to_vec(&config).expect("serialize"),
    )
}

fn descriptor(blob: &Blob, annotations: &BTreeMap<String, String>) -> serde_json::Value {
    let mut d = json!({
        "mediaType": blob.media_type,
        "size": blob.size(),
        "digest": blob.digest,
    });
    if !annotations.is_empty() {
        d["annotations"] = json!(annotations);
    }
    d
}

/// The signature manifest for `layers`, and its blobs (config first).
pub fn signature_manifest(layers: &[SignatureLayer]) -> (Vec<u8>, Vec<Blob>) {
    let payloads: Vec<Blob> = layers
        .iter()
        .map(|l| Blob::new(SIMPLE_SIGNING, l.payload.clone()))
        .collect();
    let config = signature_config(&payloads);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": descriptor(&config, &BTreeMap::new()),
        "layers": payloads
            .iter()
            .zip(layers)
            .map(|(b, l)| descriptor(b, &l.annotations))
            .collect::<Vec<_>>(),
    });
    let mut blobs = vec![config];
    blobs.extend(payloads);
    (serde_json::to_vec(&manifest).expect("serialize"), blobs)
}

/// Pushes `layers` as the cosign signature of `digest` in `repository`.
pub fn push_signature(
    publisher: &Publisher,
    repository: &str,
    digest: &str,
    layers: &[SignatureLayer],
) {
    let (manifest, blobs) = signature_manifest(layers);
    push_manifest_at(
        publisher,
        repository,
        &signature_tag(digest),
        &manifest,
        &blobs,
    );
}

/// Pushes `blobs`, then `manifest` under `tag`.
pub fn push_manifest_at(
    publisher: &Publisher,
    repository: &str,
    tag: &str,
    manifest: &[u8],
    blobs: &[Blob],
) {
    for b in blobs {
        publisher.push_blob(repository, b);
    }
    publisher.put_manifest(repository, tag, MANIFEST_MEDIA_TYPE, manifest);
}

/// Signs `digest` for `repository` as `cosign sign --key` does.
pub fn sign_image(publisher: &Publisher, signer: &Signer, repository: &str, digest: &str) {
    let reference = format!("{}/{repository}", publisher.host());
    push_signature(
        publisher,
        repository,
        digest,
        &[SignatureLayer::signed(
            signer,
            image_payload(&reference, digest),
        )],
    );
}

/// A cosign 3 key-based bundle for an image: a DSSE envelope over an
/// in-toto statement naming `digest`.
pub fn dsse_bundle(signer: &Signer, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    let statement = format!(
        r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"digest":{{"sha256":"{hex}"}}}}],"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{{}}}}"#
    );
    let payload_type = "application/vnd.in-toto+json";
    let mut pae = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        statement.len()
    )
    .into_bytes();
    pae.extend_from_slice(statement.as_bytes());
    let bundle = json!({
        "mediaType": BUNDLE_TYPE,
        "verificationMaterial": {"publicKey": {"hint": signer.hint()}},
        "dsseEnvelope": {
            "payload": base64::engine::general_purpose::STANDARD.encode(statement.as_bytes()),
            "payloadType": payload_type,
            "signatures": [{"sig": signer.sign(&pae)}]
        }
    });
    serde_json::to_vec(&bundle).expect("serialize")
}

/// Attaches `bundle` to the image `digest` (of `size` bytes) as an OCI
/// referrer, listed in the referrers index at tag `sha256-<hex>`.
pub fn push_bundle_referrer(
    publisher: &Publisher,
    repository: &str,
    digest: &str,
    size: u64,
    bundle: Vec<u8>,
) {
    let layer = Blob::new(BUNDLE_TYPE, bundle);
    let empty = Blob::new("application/vnd.oci.empty.v1+json", b"{}".to_vec());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": BUNDLE_TYPE,
        "config": descriptor(&empty, &BTreeMap::new()),
        "layers": [descriptor(&layer, &BTreeMap::new())],
        "subject": {"mediaType": MANIFEST_MEDIA_TYPE, "digest": digest, "size": size},
    });
    let bytes = serde_json::to_vec(&manifest).expect("serialize");
    let referrer = Blob::new(MANIFEST_MEDIA_TYPE, bytes.clone());
    for b in [&empty, &layer] {
        publisher.push_blob(repository, b);
    }
    publisher.put_manifest(repository, &referrer.digest, MANIFEST_MEDIA_TYPE, &bytes);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": MANIFEST_MEDIA_TYPE,
            "digest": referrer.digest,
            "size": referrer.size(),
            "artifactType": BUNDLE_TYPE,
        }],
    });
    publisher.put_manifest(
        repository,
        &digest.replacen(':', "-", 1),
        "application/vnd.oci.image.index.v1+json",
        &serde_json::to_vec(&index).expect("serialize"),
    );
}
