//! Trusted public keys: PEM ECDSA P-256 keys (`-----BEGIN PUBLIC KEY-----`,
//! SPKI), as `cosign generate-key-pair` writes `cosign.pub`.
//!
//! A key is named by where it came from (a file path, or a `keyData` entry
//! of `policy.json`), and identified by the SHA-256 of its SPKI DER, which
//! is also the `publicKey.hint` of a Sigstore bundle.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use sha2::{Digest as _, Sha256};

/// Largest key file read.
const MAX_KEY_FILE: u64 = 16 * 1024;

/// Why a key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read.
    #[error("key {path}: cannot read it")]
    Read {
        /// The key file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The key is not a PEM ECDSA P-256 public key.
    #[error("key {name}: {reason}")]
    Parse {
        /// Where the key came from.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// One trusted ECDSA P-256 public key.
#[derive(Clone)]
pub struct TrustedKey {
    /// Where it came from, for status and errors.
    pub name: String,
    key: VerifyingKey,
    id: [u8; 32],
}

impl std::fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedKey")
            .field("name", &self.name)
            .field("id", &hex::encode(self.id))
            .finish()
    }
}

impl PartialEq for TrustedKey {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl TrustedKey {
    /// Parses a PEM public key; `name` says where it came from.
    pub fn from_pem(name: impl Into<String>, pem: &str) -> Result<TrustedKey, KeyError> {
        let name = name.into();
        let parse_err = |reason: String| KeyError::Parse {
            name: name.clone(),
            reason,
        };
        if !pem.contains("-----BEGIN PUBLIC KEY-----") {
            return Err(parse_err(
                "not a PEM public key (expected -----BEGIN PUBLIC KEY-----, as cosign.pub)".into(),
            ));
        }
        let key = VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| {
            parse_err(format!(
                "not an ECDSA P-256 public key ({e}); only P-256 keys, as cosign generate-key-pair writes them, are supported"
            ))
        })?;
        let der = key
            .to_public_key_der()
            .map_err(|e| parse_err(format!("cannot encode it: {e}")))?;
        let id: [u8; 32] = Sha256::digest(der.as_bytes()).into();
        Ok(TrustedKey { name, key, id })
    }

    /// Reads and parses a PEM public key file.
    pub fn load(path: &Path) -> Result<TrustedKey, KeyError> {
        use std::io::Read as _;
        let read_err = |source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        let mut text = String::new();
        file.take(MAX_KEY_FILE)
            .read_to_string(&mut text)
            .map_err(read_err)?;
        TrustedKey::from_pem(path.display().to_string(), &text)
    }

    /// SHA-256 of the key's SPKI DER: its identity, and a Sigstore bundle's
    /// `publicKey.hint` (base64 of these bytes).
    pub fn id(&self) -> [u8; 32] {
        self.id
    }

    /// Whether `signature` (DER) is this key's ECDSA signature over
    /// SHA-256(`message`).
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        Signature::from_der(signature).is_ok_and(|sig| self.key.verify(message, &sig).is_ok())
    }

    /// Whether `signature` (DER) is this key's ECDSA signature over a
    /// SHA-256 digest computed elsewhere.
    pub fn verifies_prehash(&self, sha256: &[u8], signature: &[u8]) -> bool {
        sha256.len() == 32
            && Signature::from_der(signature)
                .is_ok_and(|sig| self.key.verify_prehash(sha256, &sig).is_ok())
    }
}

/// Decodes standard base64, tolerating the line breaks and spaces some
/// tools put inside it (cosign accepts them too).
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .ok()
}
