//! Sigstore bundles (`application/vnd.dev.sigstore.bundle.v0.x+json`), as
//! cosign 3 attaches them to an image as OCI referrers, verified with a
//! public key.
//!
//! Two kinds of content are understood:
//! - a **DSSE envelope** (what `cosign sign --key` writes for an image):
//!   the signature is over the DSSE pre-authentication encoding of the
//!   payload, an in-toto Statement whose `predicateType` is cosign's
//!   `https://sigstore.dev/cosign/sign/v1` and one of whose subjects has
//!   the image's sha256 digest;
//! - a **message signature**: the signature is over the artifact itself,
//!   whose SHA-256 (`messageDigest`) must be one of the digests being
//!   verified (for an image, its manifest).
//!
//! A bundle whose verification material is a certificate (Fulcio, keyless)
//! is refused as "keyless: not supported". Transparency-log entries and
//! timestamps are not checked: a trusted key is what is required.

use serde::Deserialize;

use super::keys::{decode_base64, TrustedKey};
use super::{strict_json, Rejection};
use crate::reference::Digest;

/// Media types of Sigstore bundles start with this.
pub const BUNDLE_MEDIA_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
/// The DSSE payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// cosign's predicate type for an image signature in a bundle.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// in-toto Statement types accepted.
const STATEMENT_TYPES: &[&str] = &[
    "https://in-toto.io/Statement/v1",
    "https://in-toto.io/Statement/v0.1",
];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    media_type: String,
    verification_material: Material,
    #[serde(default)]
    message_signature: Option<MessageSignature>,
    #[serde(default)]
    dsse_envelope: Option<Envelope>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Material {
    #[serde(default)]
    public_key: Option<serde_json::Value>,
    #[serde(default)]
    certificate: Option<serde_json::Value>,
    #[serde(default)]
    x509_certificate_chain: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageSignature {
    #[serde(default)]
    message_digest: Option<MessageDigest>,
    signature: String,
}

#[derive(Debug, Deserialize)]
struct MessageDigest {
    algorithm: String,
    digest: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload: String,
    payload_type: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Deserialize)]
struct EnvelopeSignature {
    sig: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    #[serde(rename = "_type")]
    kind: String,
    subject: Vec<Subject>,
    predicate_type: String,
}

#[derive(Debug, Deserialize)]
struct Subject {
    digest: std::collections::BTreeMap<String, String>,
}

/// DSSE's pre-authentication encoding:
/// `"DSSEv1" SP len(type) SP type SP len(body) SP body`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Verifies one bundle against `keys` for one of `digests`. Returns the
/// index of the key that verified it.
pub fn verify(bytes: &[u8], keys: &[TrustedKey], digests: &[Digest]) -> Result<usize, Rejection> {
    let bundle: Bundle =
        strict_json(bytes).map_err(|e| Rejection::Malformed(format!("Sigstore bundle: {e}")))?;
    if !bundle.media_type.starts_with(BUNDLE_MEDIA_PREFIX) {
        return Err(Rejection::Malformed(format!(
            "not a Sigstore bundle (mediaType {:?})",
            bundle.media_type
        )));
    }
    let material = &bundle.verification_material;
    if material.public_key.is_none()
        && (material.certificate.is_some() || material.x509_certificate_chain.is_some())
    {
        return Err(Rejection::Keyless);
    }
    match (&bundle.message_signature, &bundle.dsse_envelope) {
        (Some(m), None) => verify_message(m, keys, digests),
        (None, Some(e)) => verify_envelope(e, keys, digests),
        _ => Err(Rejection::Malformed(
            "a bundle holds exactly one of messageSignature and dsseEnvelope".into(),
        )),
    }
}

fn verify_message(
    m: &MessageSignature,
    keys: &[TrustedKey],
    digests: &[Digest],
) -> Result<usize, Rejection> {
    let md = m
        .message_digest
        .as_ref()
        .ok_or_else(|| Rejection::Malformed("messageSignature without a messageDigest".into()))?;
    if md.algorithm != "SHA2_256" {
        return Err(Rejection::Malformed(format!(
            "message digest algorithm {:?} is not SHA2_256",
            md.algorithm
        )));
    }
    let digest = decode_base64(&md.digest)
        .filter(|d| d.len() == 32)
        .ok_or_else(|| Rejection::Malformed("messageDigest is not a base64 SHA-256".into()))?;
    let signature = decode_base64(&m.signature)
        .ok_or_else(|| Rejection::Malformed("the signature is not base64".into()))?;
    // Signature first: a claim means nothing until a trusted key made it.
    let index = keys
        .iter()
        .position(|k| k.verifies_prehash(&digest, &signature))
        .ok_or(Rejection::UntrustedSignature)?;
    let hex = hex::encode(&digest);
    if !digests.iter().any(|d| d.hex() == hex) {
        return Err(Rejection::OtherDigest {
            signed: format!("sha256:{hex}"),
        });
    }
    Ok(index)
}

fn verify_envelope(
    e: &Envelope,
    keys: &[TrustedKey],
    digests: &[Digest],
) -> Result<usize, Rejection> {
    let payload = decode_base64(&e.payload)
        .ok_or_else(|| Rejection::Malformed("the DSSE payload is not base64".into()))?;
    let message = pae(&e.payload_type, &payload);
    let index = e
        .signatures
        .iter()
        .filter_map(|s| decode_base64(&s.sig))
        .find_map(|sig| keys.iter().position(|k| k.verifies(&message, &sig)))
        .ok_or(Rejection::UntrustedSignature)?;
    if e.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(Rejection::WrongType(e.payload_type.clone()));
    }
    let statement: Statement = strict_json(&payload)
        .map_err(|err| Rejection::Malformed(format!("in-toto statement: {err}")))?;
    if !STATEMENT_TYPES.contains(&statement.kind.as_str()) {
        return Err(Rejection::WrongType(statement.kind));
    }
    if statement.predicate_type != COSIGN_SIGN_PREDICATE {
        return Err(Rejection::WrongType(statement.predicate_type));
    }
    let covered: Vec<&String> = statement
        .subject
        .iter()
        .filter_map(|s| s.digest.get("sha256"))
        .collect();
    if !covered
        .iter()
        .any(|c| digests.iter().any(|d| d.hex() == c.as_str()))
    {
        return Err(Rejection::OtherDigest {
            signed: covered
                .first()
                .map(|c| format!("sha256:{c}"))
                .unwrap_or_else(|| "no sha256 subject".into()),
        });
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    //! Bundles made by real Sigstore clients (cosign 3 for the DSSE one),
    //! verified exactly as provided.

    use super::*;
    use base64::Engine as _;

    use crate::verify::fixtures::{key, read};

    fn dsse_subject() -> Digest {
        String::from_utf8(read("v3-bundle-dsse-cloud-boot/subject-digest.txt"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    #[test]
    fn a_cosign_3_dsse_bundle_verifies() {
        let bundle = read("v3-bundle-dsse-cloud-boot/bundle.json");
        let ours = key("v3-bundle-dsse-cloud-boot/cosign.pub");
        assert_eq!(
            verify(&bundle, std::slice::from_ref(&ours), &[dsse_subject()]),
            Ok(0)
        );
        // The hint is the key's SPKI sha256.
        let hint = base64::engine::general_purpose::STANDARD.encode(ours.id());
        assert!(String::from_utf8(bundle.clone()).unwrap().contains(&hint));
        // Another key, another digest.
        let other = key("legacy-containers-image-valid/cosign.pub");
        assert_eq!(
            verify(&bundle, &[other], &[dsse_subject()]),
            Err(Rejection::UntrustedSignature)
        );
        assert!(matches!(
            verify(&bundle, &[ours], &[Digest::of(b"another manifest")]),
            Err(Rejection::OtherDigest { .. })
        ));
    }

    #[test]
    fn dsse_signs_the_pae_not_the_raw_payload() {
        let bundle: serde_json::Value =
            serde_json::from_slice(&read("v3-bundle-dsse-cloud-boot/bundle.json")).unwrap();
        let env = &bundle["dsseEnvelope"];
        let payload = decode_base64(env["payload"].as_str().unwrap()).unwrap();
        let sig = decode_base64(env["signatures"][0]["sig"].as_str().unwrap()).unwrap();
        let ours = key("v3-bundle-dsse-cloud-boot/cosign.pub");
        assert!(ours.verifies(&pae(IN_TOTO_PAYLOAD_TYPE, &payload), &sig));
        assert!(!ours.verifies(&payload, &sig));
        assert!(!ours.verifies(&pae("application/json", &payload), &sig));
        // The payload type is covered by the signature.
        let mut changed = bundle.clone();
        changed["dsseEnvelope"]["payloadType"] = "application/json".into();
        assert_eq!(
            verify(
                &serde_json::to_vec(&changed).unwrap(),
                &[ours],
                &[dsse_subject()]
            ),
            Err(Rejection::UntrustedSignature)
        );
    }

    #[test]
    fn a_key_based_message_signature_bundle_verifies() {
        let dir = "v3-bundle-messagesig-conformance";
        let bundle = read(&format!("{dir}/bundle.sigstore.json"));
        let artifact = read(&format!("{dir}/artifact.txt"));
        let ours = key(&format!("{dir}/key.pub"));
        assert_eq!(
            verify(
                &bundle,
                std::slice::from_ref(&ours),
                &[Digest::of(&artifact)]
            ),
            Ok(0)
        );
        let mut flipped = artifact.clone();
        flipped[0] ^= 1;
        assert!(matches!(
            verify(
                &bundle,
                std::slice::from_ref(&ours),
                &[Digest::of(&flipped)]
            ),
            Err(Rejection::OtherDigest { .. })
        ));
        assert_eq!(
            verify(&bundle, &[], &[Digest::of(&artifact)]),
            Err(Rejection::UntrustedSignature)
        );
        let corrupted = String::from_utf8(read(&format!("{dir}/key-corrupted.pub"))).unwrap();
        assert!(TrustedKey::from_pem("corrupted", &corrupted).is_err());
        let hint = base64::engine::general_purpose::STANDARD.encode(ours.id());
        assert!(String::from_utf8(bundle).unwrap().contains(&hint));
    }

    #[test]
    fn keyless_bundles_are_refused_as_such() {
        let keyless = br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"certificate":{"rawBytes":"MIIB"}},"messageSignature":{"messageDigest":{"algorithm":"SHA2_256","digest":"AAAA"},"signature":"AAAA"}}"#;
        let ours = key("v3-bundle-dsse-cloud-boot/cosign.pub");
        assert_eq!(
            verify(keyless, &[ours], &[dsse_subject()]),
            Err(Rejection::Keyless)
        );
    }
}
