//! Signature verification: only images signed by a trusted key are
//! installed, where a policy asks for it.
//!
//! - [`keys`]: trusted ECDSA P-256 public keys (PEM, as `cosign.pub`).
//! - [`cosign`]: cosign's tag-based signatures (`sha256-<hex>.sig`,
//!   simple-signing payloads).
//! - [`bundle`]: Sigstore bundles attached as OCI referrers (DSSE
//!   envelopes and message signatures), key-based only.
//! - [`policy`]: which keys a skill needs: `verify` in `skills.toml` and
//!   the containers `policy.json`.
//!
//! Verification happens after the manifest is resolved and its digest
//! computed locally, and before any layer is downloaded. Everything read
//! from the registry on the way is bounded: signature manifests, payloads
//! and bundles at [`MAX_SIGNATURE_SIZE`] each, at most [`MAX_SIGNATURES`]
//! signatures examined, JSON with a duplicate key refused.
//!
//! skillctl promotes an image by rewriting its status annotation, so the
//! published manifest is not the one that was signed as `-testing`. When
//! the candidate carries no valid signature, the `<version>-testing` and
//! `<version>-draft` tags of the same repository are looked at: a signed
//! manifest there whose `config` and `layers` descriptors are identical
//! vouches for the content ("signed as 1.0.0-testing"); the status
//! annotation itself stays unsigned metadata.

pub mod bundle;
pub mod cosign;
pub mod keys;
pub mod policy;

use std::collections::HashSet;

use futures_util::StreamExt;
use serde::de::{DeserializeOwned, Error as _, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::manifest::{self, Descriptor, Parsed};
use crate::reference::{Digest, ImageRef};
use crate::source::{Source, SourceError, MAX_SIGNATURE_SIZE};

pub use keys::{KeyError, TrustedKey};
pub use policy::{ContainersPolicy, KeySet, Requirements, Setting};

/// Most signatures (simple-signing layers and bundles together) examined
/// for one digest.
pub const MAX_SIGNATURES: usize = 16;

/// Why one signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No signature at all.
    #[error("unsigned (no cosign signature, no Sigstore bundle)")]
    Unsigned,
    /// No trusted key verifies the signature: another key made it, or the
    /// signed bytes were altered afterwards.
    #[error("signed by an unknown key (no trusted key verifies the signature; or it was altered after signing)")]
    UntrustedSignature,
    /// A valid signature for another manifest.
    #[error("signature covers another digest ({signed})")]
    OtherDigest {
        /// The digest the signature covers.
        signed: String,
    },
    /// A valid signature of another kind (`critical.type`, the DSSE
    /// payload or predicate type).
    #[error("wrong type {0:?} (expected {expected:?})", expected = cosign::COSIGN_TYPE)]
    WrongType(String),
    /// A valid signature made for another repository.
    #[error("wrong docker-reference: signed for {signed}, expected {expected}")]
    WrongReference {
        /// `critical.identity.docker-reference`.
        signed: String,
        /// The repository it should name.
        expected: String,
    },
    /// Fulcio/Rekor (keyless) material.
    #[error("keyless: not supported (sign with a key: cosign sign --key)")]
    Keyless,
    /// Bytes that break the format.
    #[error("malformed signature: {0}")]
    Malformed(String),
    /// Larger than [`MAX_SIGNATURE_SIZE`].
    #[error("{0} is larger than {MAX_SIGNATURE_SIZE} bytes")]
    TooLarge(String),
}

/// A verification that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// No signature satisfies the policy.
    #[error("{image}@{digest} not installed: {reasons}")]
    NotVerified {
        /// The repository.
        image: String,
        /// The manifest (or index) digest offered.
        digest: String,
        /// Why, one reason per signature examined (or "unsigned").
        reasons: String,
    },
    /// A `reject` requirement of the containers policy.
    #[error("{image} not installed: rejected by {origin}")]
    Rejected {
        /// The repository.
        image: String,
        /// Which policy and scope rejected it.
        origin: String,
    },
    /// The containers policy cannot be read, or asks for what is not
    /// supported.
    #[error("containers policy {path}: {reason}")]
    Policy {
        /// The `policy.json`.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A trusted key could not be read.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The registry failed while signatures were looked up.
    #[error("looking up signatures: {0}")]
    Source(#[from] SourceError),
    /// A lower version than one installed before, with a key policy.
    #[error("rollback refused: {skill} {offered} is offered, but {highest} was installed before (pin it with digest = \"...\" or a version requirement to allow it)")]
    Rollback {
        /// The skill.
        skill: String,
        /// The version the registry offers now.
        offered: String,
        /// The highest version installed before.
        highest: String,
    },
}

/// How an image was verified, for status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `cosign signature by /path/key.pub`, one per key set satisfied.
    pub by: Vec<String>,
    /// The tag of the content-equivalent manifest that carried the
    /// signature, when it was not the candidate itself.
    pub signed_as: Option<String>,
}

impl Verified {
    /// One line: `verified: cosign signature by /k.pub` or
    /// `verified: signed as 1.0.0-testing (cosign signature by /k.pub)`.
    pub fn describe(&self) -> String {
        let by = self.by.join("; ");
        match &self.signed_as {
            Some(tag) => format!("verified: signed as {tag} ({by})"),
            None => format!("verified: {by}"),
        }
    }
}

/// What is being verified.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    /// The repository as configured (the origin, even when a mirror
    /// serves it).
    pub image: &'a ImageRef,
    /// What the tag or pin points at (an index or the manifest).
    pub ref_digest: &'a Digest,
    /// The image manifest's digest (the same unless `ref_digest` is an
    /// index).
    pub manifest_digest: &'a Digest,
    /// The image manifest (for the promotion fallback's comparison).
    pub manifest: &'a manifest::ImageManifest,
    /// The version annotation, used to find `-testing`/`-draft` siblings.
    pub version: Option<&'a str>,
}

/// Parses JSON, first refusing any object with a duplicate key (at any
/// depth).
pub(crate) fn strict_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice::<NoDuplicates>(bytes).map_err(|e| e.to_string())?;
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

/// Any JSON value, refused if an object in it repeats a key.
struct NoDuplicates;

impl<'de> Deserialize<'de> for NoDuplicates {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicatesVisitor)
    }
}

struct NoDuplicatesVisitor;

impl<'de> Visitor<'de> for NoDuplicatesVisitor {
    type Value = NoDuplicates;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_i64<E>(self, _: i64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_u64<E>(self, _: u64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_f64<E>(self, _: f64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_str<E>(self, _: &str) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_unit<E>(self) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_none<E>(self) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<NoDuplicates, D::Error> {
        NoDuplicates::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NoDuplicates, A::Error> {
        while seq.next_element::<NoDuplicates>()?.is_some() {}
        Ok(NoDuplicates)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NoDuplicates, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(A::Error::custom(format!("duplicate key {key:?}")));
            }
            map.next_value::<NoDuplicates>()?;
        }
        Ok(NoDuplicates)
    }
}

/// A signature manifest (cosign's `.sig`, or a bundle referrer).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignatureManifest {
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    subject: Option<Descriptor>,
}

/// A referrers list (an image index).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReferrersIndex {
    #[serde(default)]
    manifests: Vec<Referrer>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Referrer {
    digest: Digest,
    size: u64,
    #[serde(default)]
    artifact_type: Option<String>,
}

/// How a good signature was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Cosign,
    Bundle,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Cosign => "cosign signature",
            Kind::Bundle => "Sigstore bundle",
        }
    }
}

/// A signature that verifies with a trusted key, for a digest examined.
#[derive(Debug, Clone)]
struct Good {
    /// Index into the key list examined with.
    key: usize,
    /// `docker-reference` (simple signing only).
    reference: Option<String>,
    kind: Kind,
}

/// What examining the signatures of some digests found.
#[derive(Debug, Default)]
struct Examined {
    good: Vec<Good>,
    rejected: Vec<Rejection>,
    examined: usize,
}

/// Reads a manifest by digest, bounded and verified.
async fn small_manifest(
    source: &impl Source,
    image: &ImageRef,
    digest: &Digest,
    what: &str,
) -> Result<Result<Vec<u8>, Rejection>, SourceError> {
    let bytes = source.fetch_manifest(image, digest).await?;
    if bytes.len() as u64 > MAX_SIGNATURE_SIZE {
        return Ok(Err(Rejection::TooLarge(format!("{what} {digest}"))));
    }
    if Digest::of(&bytes) != *digest {
        return Ok(Err(Rejection::Malformed(format!(
            "{what} {digest}: the registry served bytes of another digest"
        ))));
    }
    Ok(Ok(bytes))
}

/// Reads a small blob, at most its descriptor's size (itself at most
/// [`MAX_SIGNATURE_SIZE`]), and checks its digest.
async fn small_blob(
    source: &impl Source,
    image: &ImageRef,
    desc: &Descriptor,
    what: &str,
) -> Result<Result<Vec<u8>, Rejection>, SourceError> {
    if desc.size > MAX_SIGNATURE_SIZE {
        return Ok(Err(Rejection::TooLarge(format!("{what} {}", desc.digest))));
    }
    let mut stream = source.open_blob(image, &desc.digest, desc.size).await?;
    let mut bytes = Vec::with_capacity(desc.size as usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| SourceError::Network {
            endpoint: image.registry.clone(),
            message: format!("{what} {}: {e}", desc.digest),
        })?;
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > desc.size {
            break;
        }
    }
    if bytes.len() as u64 != desc.size || Digest::of(&bytes) != desc.digest {
        return Ok(Err(Rejection::Malformed(format!(
            "{what} {}: the registry served {} bytes of another digest",
            desc.digest,
            bytes.len()
        ))));
    }
    Ok(Ok(bytes))
}

/// A tag's digest, or `None` when the tag does not exist.
async fn tag_digest(
    source: &impl Source,
    image: &ImageRef,
    tag: &str,
) -> Result<Option<Digest>, SourceError> {
    match source.resolve_tag(image, tag).await {
        Ok(d) => Ok(Some(d)),
        Err(SourceError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Looks up and checks the signatures of `digests` with `keys`: cosign's
/// `.sig` tags first, then, unless those already satisfy every key set,
/// the Sigstore bundles among the referrers.
async fn examine(
    source: &impl Source,
    image: &ImageRef,
    digests: &[Digest],
    keys: &[TrustedKey],
    sets: &[KeySet],
) -> Result<Examined, SourceError> {
    let mut out = Examined::default();
    let mut budget = MAX_SIGNATURES;
    let record = |out: &mut Examined, result: Result<Good, Rejection>| {
        out.examined += 1;
        match result {
            Ok(g) => out.good.push(g),
            Err(r) => out.rejected.push(r),
        }
    };
    for digest in digests {
        // cosign's tag scheme.
        if let Some(sig_digest) = tag_digest(source, image, &cosign::signature_tag(digest)).await? {
            match small_manifest(source, image, &sig_digest, "signature manifest").await? {
                Err(r) => record(&mut out, Err(r)),
                Ok(bytes) => match strict_json::<SignatureManifest>(&bytes) {
                    Err(e) => record(
                        &mut out,
                        Err(Rejection::Malformed(format!("signature manifest: {e}"))),
                    ),
                    Ok(m) => {
                        for layer in m.layers {
                            if budget == 0 {
                                break;
                            }
                            budget -= 1;
                            let result =
                                check_simple_signing(source, image, &layer, keys, digests).await?;
                            record(&mut out, result);
                        }
                    }
                },
            }
        }
    }
    if evaluate(&out, keys, sets).is_ok() {
        return Ok(out);
    }
    for digest in digests {
        // Sigstore bundles attached as referrers.
        let index = match source.referrers(image, digest).await {
            Ok(Some(bytes)) => Some(bytes),
            Ok(None) => {
                let tag = digest.to_string().replacen(':', "-", 1);
                match tag_digest(source, image, &tag).await? {
                    Some(d) => match small_manifest(source, image, &d, "referrers index").await? {
                        Ok(bytes) => Some(bytes),
                        Err(r) => {
                            record(&mut out, Err(r));
                            None
                        }
                    },
                    None => None,
                }
            }
            Err(SourceError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let Some(index) = index else { continue };
        if index.len() as u64 > MAX_SIGNATURE_SIZE {
            record(&mut out, Err(Rejection::TooLarge("referrers index".into())));
            continue;
        }
        let index: ReferrersIndex = match strict_json(&index) {
            Ok(i) => i,
            Err(e) => {
                record(
                    &mut out,
                    Err(Rejection::Malformed(format!("referrers index: {e}"))),
                );
                continue;
            }
        };
        for referrer in index.manifests {
            let is_bundle = referrer
                .artifact_type
                .as_deref()
                .is_some_and(|t| t.starts_with(bundle::BUNDLE_MEDIA_PREFIX));
            if !is_bundle {
                continue;
            }
            if budget == 0 {
                break;
            }
            budget -= 1;
            let result = check_bundle(source, image, &referrer, digest, keys, digests).await?;
            record(&mut out, result);
        }
    }
    Ok(out)
}

async fn check_simple_signing(
    source: &impl Source,
    image: &ImageRef,
    layer: &Descriptor,
    keys: &[TrustedKey],
    digests: &[Digest],
) -> Result<Result<Good, Rejection>, SourceError> {
    let keyless = layer
        .annotations
        .contains_key(cosign::CERTIFICATE_ANNOTATION);
    if layer.media_type != cosign::SIMPLE_SIGNING_TYPE {
        return Ok(Err(Rejection::Malformed(format!(
            "signature layer of media type {:?}",
            layer.media_type
        ))));
    }
    let Some(signature) = layer.annotations.get(cosign::SIGNATURE_ANNOTATION) else {
        return Ok(Err(if keyless {
            Rejection::Keyless
        } else {
            Rejection::Malformed(format!(
                "signature layer without a {} annotation",
                cosign::SIGNATURE_ANNOTATION
            ))
        }));
    };
    let payload = match small_blob(source, image, layer, "signature payload").await? {
        Ok(p) => p,
        Err(r) => return Ok(Err(r)),
    };
    Ok(
        cosign::verify(&payload, signature, keyless, keys, digests).map(|(key, claims)| Good {
            key,
            reference: Some(claims.docker_reference),
            kind: Kind::Cosign,
        }),
    )
}

async fn check_bundle(
    source: &impl Source,
    image: &ImageRef,
    referrer: &Referrer,
    subject: &Digest,
    keys: &[TrustedKey],
    digests: &[Digest],
) -> Result<Result<Good, Rejection>, SourceError> {
    if referrer.size > MAX_SIGNATURE_SIZE {
        return Ok(Err(Rejection::TooLarge(format!(
            "bundle manifest {}",
            referrer.digest
        ))));
    }
    let bytes = match small_manifest(source, image, &referrer.digest, "bundle manifest").await? {
        Ok(b) => b,
        Err(r) => return Ok(Err(r)),
    };
    let m: SignatureManifest = match strict_json(&bytes) {
        Ok(m) => m,
        Err(e) => return Ok(Err(Rejection::Malformed(format!("bundle manifest: {e}")))),
    };
    if m.subject.as_ref().map(|s| &s.digest) != Some(subject) {
        return Ok(Err(Rejection::OtherDigest {
            signed: m
                .subject
                .map(|s| s.digest.to_string())
                .unwrap_or_else(|| "no subject".into()),
        }));
    }
    let Some(layer) = m
        .layers
        .iter()
        .find(|l| l.media_type.starts_with(bundle::BUNDLE_MEDIA_PREFIX))
    else {
        return Ok(Err(Rejection::Malformed(
            "bundle manifest without a bundle layer".into(),
        )));
    };
    let bytes = match small_blob(source, image, layer, "bundle").await? {
        Ok(b) => b,
        Err(r) => return Ok(Err(r)),
    };
    Ok(bundle::verify(&bytes, keys, digests).map(|key| Good {
        key,
        reference: None,
        kind: Kind::Bundle,
    }))
}

/// The repository a `docker-reference` names (its tag or digest removed).
fn repository_of(reference: &str) -> &str {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    match without_digest.rfind(':') {
        Some(colon) if !without_digest[colon..].contains('/') => &without_digest[..colon],
        _ => without_digest,
    }
}

/// Every key of every set, each once.
fn all_keys(sets: &[KeySet]) -> Vec<TrustedKey> {
    let mut out: Vec<TrustedKey> = Vec::new();
    for k in sets.iter().flat_map(|s| s.keys.iter()) {
        if !out.iter().any(|o| o == k) {
            out.push(k.clone());
        }
    }
    out
}

/// Whether every key set is satisfied by one good signature: the list of
/// what satisfied each, or every reason why not.
fn evaluate(
    examined: &Examined,
    keys: &[TrustedKey],
    sets: &[KeySet],
) -> Result<Vec<String>, Vec<Rejection>> {
    let mut by = Vec::new();
    let mut reasons = examined.rejected.clone();
    let mut all = true;
    for set in sets {
        let mut found = None;
        let mut set_reasons = Vec::new();
        for g in &examined.good {
            let key = &keys[g.key];
            if !set.keys.iter().any(|k| k == key) {
                set_reasons.push(Rejection::UntrustedSignature);
                continue;
            }
            match (&g.reference, &set.repository) {
                (Some(r), expected) if repository_of(r) != expected => {
                    set_reasons.push(Rejection::WrongReference {
                        signed: r.clone(),
                        expected: expected.clone(),
                    });
                }
                _ => {
                    found = Some(format!("{} by {}", g.kind.describe(), key.name));
                    break;
                }
            }
        }
        match found {
            Some(f) => by.push(f),
            None => {
                all = false;
                reasons.extend(set_reasons);
            }
        }
    }
    if all {
        Ok(by)
    } else {
        if examined.examined == 0 {
            reasons.push(Rejection::Unsigned);
        }
        Err(reasons)
    }
}

fn join_reasons(reasons: &[Rejection]) -> String {
    let mut seen = Vec::new();
    for r in reasons {
        let text = r.to_string();
        if !seen.contains(&text) {
            seen.push(text);
        }
    }
    seen.join("; ")
}

/// Verifies `subject` against every key set (each must be satisfied by a
/// valid signature of one of its keys), falling back to a signed,
/// content-equivalent `-testing`/`-draft` sibling. Nothing is downloaded
/// but signature material and, for the fallback, sibling manifests.
pub async fn verify(
    source: &impl Source,
    subject: &Subject<'_>,
    sets: &[KeySet],
) -> Result<Verified, VerifyError> {
    let keys = all_keys(sets);
    let mut digests = vec![subject.ref_digest.clone()];
    if subject.manifest_digest != subject.ref_digest {
        digests.push(subject.manifest_digest.clone());
    }
    let examined = examine(source, subject.image, &digests, &keys, sets).await?;
    let reasons = match evaluate(&examined, &keys, sets) {
        Ok(by) => {
            return Ok(Verified {
                by,
                signed_as: None,
            })
        }
        Err(reasons) => reasons,
    };
    if let Some(version) = subject.version {
        for suffix in ["testing", "draft"] {
            let tag = format!("{version}-{suffix}");
            let Some(sibling) = tag_digest(source, subject.image, &tag).await? else {
                continue;
            };
            if digests.contains(&sibling) {
                continue;
            }
            let Some(sibling_digests) = equivalent(source, subject, &sibling).await? else {
                continue;
            };
            let examined = examine(source, subject.image, &sibling_digests, &keys, sets).await?;
            if let Ok(by) = evaluate(&examined, &keys, sets) {
                return Ok(Verified {
                    by,
                    signed_as: Some(tag),
                });
            }
        }
    }
    Err(VerifyError::NotVerified {
        image: subject.image.to_string(),
        digest: subject.ref_digest.to_string(),
        reasons: join_reasons(&reasons),
    })
}

/// The digests to look up signatures for when the manifest at `sibling`
/// (or the image manifest its index names) carries exactly the
/// candidate's config and layers; `None` when it does not.
async fn equivalent(
    source: &impl Source,
    subject: &Subject<'_>,
    sibling: &Digest,
) -> Result<Option<Vec<Digest>>, SourceError> {
    let mut digests = vec![sibling.clone()];
    let mut digest = sibling.clone();
    for _ in 0..2 {
        let bytes = source.fetch_manifest(subject.image, &digest).await?;
        if Digest::of(&bytes) != digest {
            return Ok(None);
        }
        match manifest::parse(&bytes) {
            Ok(Parsed::Image(m)) => {
                let same =
                    m.config == subject.manifest.config && m.layers == subject.manifest.layers;
                return Ok(same.then_some(digests));
            }
            Ok(Parsed::Index(entries)) => match manifest::pick_from_index(&entries) {
                Ok(d) => {
                    digest = d.digest.clone();
                    digests.push(digest.clone());
                }
                Err(_) => return Ok(None),
            },
            Err(_) => return Ok(None),
        }
    }
    Ok(None)
}

/// The cosign vectors in `tests/fixtures/cosign/` (made by the real cosign
/// tool), for the unit tests of every verifier.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::path::PathBuf;

    use super::keys::TrustedKey;

    /// The fixtures folder.
    pub fn dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cosign")
    }

    /// The exact bytes of a fixture file.
    pub fn read(path: &str) -> Vec<u8> {
        let p = dir().join(path);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// A fixture's public key.
    pub fn key(path: &str) -> TrustedKey {
        TrustedKey::load(&dir().join(path)).unwrap()
    }
}

#[cfg(test)]
mod tests;
