//! Image references and digests.
//!
//! In `skills.toml` an image is a repository without a tag:
//! `host[:port]/path/to/repo`, or `ALIAS/path` where `ALIAS` names a
//! `[registries.ALIAS]` entry with a `layout` (an OCI image layout directory).
//! Tags and digests are chosen by the skill's channel, tag or digest setting.

use std::fmt;
use std::str::FromStr;

/// A repository: the registry (`host[:port]` or layout alias) and the path in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    /// `host[:port]`, or the name of a `[registries.NAME]` layout alias.
    pub registry: String,
    /// The repository path inside the registry (`examples/hello-world`); may be
    /// empty for a layout alias whose layout holds a single unnamed image.
    pub repository: String,
}

/// Why an image reference is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    /// The reference carries a tag or digest, which belongs in `tag`/`digest`.
    #[error("image {0:?} must be a repository without a tag or digest; use `tag = ...` or `digest = ...`")]
    HasTagOrDigest(String),
    /// The reference is empty or malformed.
    #[error("image {0:?} is not a valid repository reference ({1})")]
    Invalid(String, &'static str),
}

impl FromStr for ImageRef {
    type Err = RefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(RefError::Invalid(s.into(), "empty"));
        }
        if s.contains('@') {
            return Err(RefError::HasTagOrDigest(s.into()));
        }
        let (registry, repository) = match s.split_once('/') {
            Some((r, p)) => (r, p),
            None => (s, ""),
        };
        if repository.contains(':') {
            return Err(RefError::HasTagOrDigest(s.into()));
        }
        if registry.is_empty() {
            return Err(RefError::Invalid(s.into(), "empty registry"));
        }
        if !registry
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']'))
        {
            return Err(RefError::Invalid(s.into(), "bad registry host"));
        }
        for comp in repository.split('/').filter(|_| !repository.is_empty()) {
            let ok = !comp.is_empty()
                && comp.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
                })
                && comp.starts_with(|c: char| c.is_ascii_alphanumeric())
                && comp.ends_with(|c: char| c.is_ascii_alphanumeric());
            if !ok {
                return Err(RefError::Invalid(
                    s.into(),
                    "repository path components are lowercase letters, digits and . _ -",
                ));
            }
        }
        Ok(ImageRef {
            registry: registry.to_string(),
            repository: repository.to_string(),
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.repository.is_empty() {
            f.write_str(&self.registry)
        } else {
            write!(f, "{}/{}", self.registry, self.repository)
        }
    }
}

/// A `sha256:<64 lowercase hex>` content digest. Only sha256 is accepted.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

/// Why a digest string is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a sha256 digest (expected sha256:<64 lowercase hex digits>)")]
pub struct DigestError(pub String);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        Digest(format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(bytes))
        ))
    }

    /// Builds a digest from a finished sha256 hasher.
    pub fn from_hasher(h: sha2::Sha256) -> Self {
        use sha2::Digest as _;
        Digest(format!("sha256:{}", hex::encode(h.finalize())))
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// The first 12 hex digits, for people.
    pub fn short(&self) -> &str {
        &self.hex()[..12]
    }

    /// The full `sha256:...` string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = s.strip_prefix("sha256:").is_some_and(|h| {
            h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if ok {
            Ok(Digest(s.to_string()))
        } else {
            Err(DigestError(s.to_string()))
        }
    }
}

impl TryFrom<String> for Digest {
    type Error = DigestError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_repositories() {
        let r: ImageRef = "127.0.0.1:5000/examples/hello-world".parse().unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "examples/hello-world");
        assert_eq!(r.to_string(), "127.0.0.1:5000/examples/hello-world");
        let r: ImageRef = "demo".parse().unwrap();
        assert_eq!(r.repository, "");
    }

    #[test]
    fn rejects_tags_and_bad_paths() {
        assert!(matches!(
            "r:5000/a:1.0".parse::<ImageRef>(),
            Err(RefError::HasTagOrDigest(_))
        ));
        assert!(matches!(
            "r/a@sha256:00".parse::<ImageRef>(),
            Err(RefError::HasTagOrDigest(_))
        ));
        assert!("r/A".parse::<ImageRef>().is_err());
        assert!("r//a".parse::<ImageRef>().is_err());
        assert!("".parse::<ImageRef>().is_err());
    }

    #[test]
    fn digests() {
        let d = Digest::of(b"");
        assert_eq!(
            d.as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(d.short(), "e3b0c44298fc");
        assert!("sha256:E3B0".parse::<Digest>().is_err());
        assert!("sha512:00".parse::<Digest>().is_err());
        assert!(d.as_str().parse::<Digest>().is_ok());
    }
}
