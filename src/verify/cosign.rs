//! cosign's tag-based signatures: simple-signing payloads.
//!
//! `cosign sign --key` pushes, at tag `sha256-<hex of the signed digest>.sig`
//! of the image's repository, an OCI manifest whose layers are each one
//! simple-signing payload (media type
//! `application/vnd.dev.cosign.simplesigning.v1+json`) with its signature
//! in the layer annotation `dev.cosignproject.cosign/signature`: base64 of
//! a DER ECDSA signature over SHA-256 of the payload bytes, exactly as
//! stored (never re-serialised). The payload reads
//!
//! ```json
//! {"critical":{"identity":{"docker-reference":"host/repo"},
//!   "image":{"docker-manifest-digest":"sha256:…"},
//!   "type":"cosign container image signature"},"optional":null}
//! ```

use serde::Deserialize;

use super::keys::{decode_base64, TrustedKey};
use super::{strict_json, Rejection};
use crate::reference::Digest;

/// Media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The layer annotation holding a Fulcio certificate (keyless signing).
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// `critical.type` of an image signature.
pub const COSIGN_TYPE: &str = "cosign container image signature";

/// The tag cosign stores the signatures of `digest` under:
/// `sha256-<hex>.sig`.
pub fn signature_tag(digest: &Digest) -> String {
    format!("{}.sig", digest.to_string().replacen(':', "-", 1))
}

#[derive(Debug, Deserialize)]
struct Payload {
    critical: Critical,
    // `optional` is free-form (cosign writes null or a map of strings);
    // it is never trusted.
    #[serde(default)]
    #[allow(dead_code)]
    optional: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Critical {
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// What a verified simple-signing payload claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `critical.identity.docker-reference`.
    pub docker_reference: String,
    /// `critical.image.docker-manifest-digest`.
    pub digest: String,
}

/// Verifies one simple-signing layer: the signature (annotation value)
/// over the exact `payload` bytes with each of `keys`, then the payload's
/// type and digest. Returns the index of the key that verified it and
/// what the payload claims; the caller checks the identity.
pub fn verify(
    payload: &[u8],
    signature_b64: &str,
    keyless: bool,
    keys: &[TrustedKey],
    digests: &[Digest],
) -> Result<(usize, Claims), Rejection> {
    let signature = decode_base64(signature_b64)
        .ok_or_else(|| Rejection::Malformed("the signature annotation is not base64".into()))?;
    let Some(index) = keys.iter().position(|k| k.verifies(payload, &signature)) else {
        return Err(if keyless {
            Rejection::Keyless
        } else {
            Rejection::UntrustedSignature
        });
    };
    let parsed: Payload = strict_json(payload)
        .map_err(|e| Rejection::Malformed(format!("simple-signing payload: {e}")))?;
    if parsed.critical.kind != COSIGN_TYPE {
        return Err(Rejection::WrongType(parsed.critical.kind));
    }
    let signed = parsed.critical.image.docker_manifest_digest;
    if !digests.iter().any(|d| d.to_string() == signed) {
        return Err(Rejection::OtherDigest { signed });
    }
    Ok((
        index,
        Claims {
            docker_reference: parsed.critical.identity.docker_reference,
            digest: signed,
        },
    ))
}

#[cfg(test)]
mod tests {
    //! The interoperability proof: signatures made by the real cosign tool
    //! (fixtures from containers/image), verified exactly as provided.

    use super::*;

    use crate::verify::fixtures::{key, read};

    fn text(path: &str) -> String {
        String::from_utf8(read(path)).unwrap()
    }

    fn digest_of(path: &str) -> Digest {
        Digest::of(&read(path))
    }

    #[test]
    fn real_cosign_signatures_verify() {
        for dir in [
            "legacy-containers-image-valid",
            "legacy-containers-image-key-rekor",
        ] {
            let payload = read(&format!("{dir}/payload.json"));
            let manifest = digest_of(&format!("{dir}/image-manifest.json"));
            let keys = [key(&format!("{dir}/cosign.pub"))];
            let (index, claims) = verify(
                &payload,
                &text(&format!("{dir}/signature.b64")),
                false,
                &keys,
                std::slice::from_ref(&manifest),
            )
            .unwrap_or_else(|e| panic!("{dir}: {e}"));
            assert_eq!(index, 0);
            assert_eq!(claims.digest, manifest.to_string(), "{dir}");
            assert!(
                claims
                    .docker_reference
                    .starts_with("192.168.64.2:5000/cosign-signed"),
                "{dir}: {claims:?}"
            );
        }
        let dir = "legacy-containers-image-valid";
        let manifest = digest_of(&format!("{dir}/image-manifest.json"));
        assert_eq!(
            manifest.to_string(),
            "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"
        );
        let (_, claims) = verify(
            &read(&format!("{dir}/payload.json")),
            &text(&format!("{dir}/signature-2.b64")),
            false,
            &[key(&format!("{dir}/cosign.pub"))],
            &[manifest],
        )
        .unwrap();
        assert_eq!(
            claims.docker_reference,
            "192.168.64.2:5000/cosign-signed-single-sample"
        );
    }

    #[test]
    fn other_keys_and_altered_payloads_are_refused() {
        let dir = "legacy-containers-image-valid";
        let payload = read(&format!("{dir}/payload.json"));
        let manifest = digest_of(&format!("{dir}/image-manifest.json"));
        let signed = text(&format!("{dir}/signature.b64"));
        let other = [key(&format!("{dir}/other-key.pub"))];
        let ours = [key(&format!("{dir}/cosign.pub"))];
        let digests = std::slice::from_ref(&manifest);
        assert_eq!(
            verify(&payload, &signed, false, &other, digests).unwrap_err(),
            Rejection::UntrustedSignature
        );
        let unknown = text(&format!("{dir}/signature-unknown-key.b64"));
        for keys in [&ours, &other] {
            assert_eq!(
                verify(&payload, &unknown, false, keys, digests).unwrap_err(),
                Rejection::UntrustedSignature
            );
        }
        // A bit flipped in any byte of the payload breaks the signature.
        for i in 0..payload.len() {
            let mut flipped = payload.clone();
            flipped[i] ^= 1 << (i % 8);
            assert!(
                verify(&flipped, &signed, false, &ours, digests).is_err(),
                "bit {i}"
            );
        }
        // Keyless material without a trusted key: reported as such.
        assert_eq!(
            verify(&payload, &unknown, true, &ours, digests).unwrap_err(),
            Rejection::Keyless
        );
        // A second key in the list still finds the signer.
        let both = [other[0].clone(), ours[0].clone()];
        assert_eq!(
            verify(&payload, &signed, false, &both, digests).unwrap().0,
            1
        );
        let rekor = "legacy-containers-image-key-rekor";
        assert!(verify(
            &read(&format!("{rekor}/payload.json")),
            &text(&format!("{rekor}/signature.b64")),
            false,
            &[key(&format!("{rekor}/other-key.pub"))],
            &[digest_of(&format!("{rekor}/image-manifest.json"))],
        )
        .is_err());
    }

    #[test]
    fn a_signature_over_another_manifest_is_refused() {
        let dir = "legacy-containers-image-valid";
        let modified = digest_of(&format!("{dir}/image-manifest-modified.json"));
        let err = verify(
            &read(&format!("{dir}/payload.json")),
            &text(&format!("{dir}/signature.b64")),
            false,
            &[key(&format!("{dir}/cosign.pub"))],
            &[modified],
        )
        .unwrap_err();
        assert_eq!(
            err,
            Rejection::OtherDigest {
                signed: "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"
                    .into()
            }
        );
    }

    #[test]
    fn the_signature_tag_is_cosigns() {
        let d: Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        assert_eq!(signature_tag(&d), format!("sha256-{}.sig", "ab".repeat(32)));
    }
}
