//! Which keys an image must be signed with: `verify` in `skills.toml`, and
//! the containers trust policy (`policy.json`, as podman and skopeo read it).
//!
//! Both apply, and each must be satisfied: `skills.toml` (per skill, else
//! the longest `[repositories."HOST/PREFIX"]`, else the registry, else
//! `[defaults]`) either names keys or says `"none"`; the containers policy's
//! most specific `docker` scope lists requirements that must all hold.
//!
//! Supported in `policy.json` (anything else in a matching scope is an
//! error, never ignored):
//! - requirement types `insecureAcceptAnything`, `reject`, and
//!   `sigstoreSigned` with exactly one of `keyPath`, `keyPaths`, `keyData`,
//!   `keyDatas` (ECDSA P-256 keys), and `signedIdentity` of type
//!   `matchRepoDigestOrExact` (the default; skillsyncd installs by digest,
//!   so the signed repository must match), `matchRepository` or
//!   `exactRepository`;
//! - `docker` transport scopes: `host[:port]/repo@digest`, `host[:port]/repo:tag`
//!   (the tag the skill was resolved through: its pinned tag, or the version
//!   tag its channel picked), the repository, each parent namespace, the
//!   host, `*.domain` wildcards, then the transport's `""` entry, then
//!   `default`. The first one present wins, as in containers/image.
//!
//! Not supported (an error where they apply): `signedBy` (GPG), `fulcio`,
//! `rekorPublicKey*`, `pki`, `signedIdentity` types `matchExact`,
//! `exactReference` and `remapIdentity`. Images from OCI layout
//! directories are governed by `skills.toml` only.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::keys::{decode_base64, TrustedKey};
use super::{strict_json, VerifyError};
use crate::reference::{Digest, ImageRef};

/// Environment variable naming the containers policy file to read instead
/// of the usual ones (an empty value: the usual search).
pub const ENV_CONTAINERS_POLICY: &str = "SKILLSYNC_CONTAINERS_POLICY";

/// The system-wide containers policy.
pub const SYSTEM_POLICY: &str = "/etc/containers/policy.json";

/// Largest `policy.json` read.
const MAX_POLICY_SIZE: u64 = 1024 * 1024;

/// `verify = ...` in `skills.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setting {
    /// `verify = "none"`: no signature required by `skills.toml`.
    None,
    /// `verify = { keys = [...] }`: a valid signature by one of these
    /// public key files is required.
    Keys(Vec<PathBuf>),
}

/// Keys of which one must have made a valid signature.
#[derive(Debug, Clone)]
pub struct KeySet {
    /// Where the requirement comes from (`skills.toml`,
    /// `/etc/containers/policy.json scope "quay.io/acme"`).
    pub origin: String,
    /// The keys.
    pub keys: Vec<TrustedKey>,
    /// The repository a simple-signing `docker-reference` must name.
    pub repository: String,
}

/// What an image must satisfy.
#[derive(Debug, Clone, Default)]
pub struct Requirements {
    /// Each must be satisfied. Empty: nothing is required (the image is
    /// installed unverified).
    pub sets: Vec<KeySet>,
}

impl Requirements {
    /// Whether a signature is required at all.
    pub fn needs_signature(&self) -> bool {
        !self.sets.is_empty()
    }

    /// Changes whenever the keys or identities required change, so that a
    /// recorded verification is redone.
    pub fn fingerprint(&self) -> String {
        let mut lines: Vec<String> = self
            .sets
            .iter()
            .map(|s| {
                let mut ids: Vec<String> = s.keys.iter().map(|k| hex::encode(k.id())).collect();
                ids.sort();
                format!("{}|{}", s.repository, ids.join(","))
            })
            .collect();
        lines.sort();
        hex::encode(Sha256::digest(lines.join("\n").as_bytes()))
    }
}

/// The requirements for `image` (resolved through `tag`, if any, to
/// `digests`): `setting` from `skills.toml`, and the containers policy when
/// the image comes from a registry.
pub fn requirements(
    setting: Option<&Setting>,
    containers: Option<&ContainersPolicy>,
    image: &ImageRef,
    tag: Option<&str>,
    digests: &[Digest],
) -> Result<Requirements, VerifyError> {
    let mut out = Requirements::default();
    if let Some(Setting::Keys(paths)) = setting {
        let keys = paths
            .iter()
            .map(|p| TrustedKey::load(p))
            .collect::<Result<Vec<_>, _>>()?;
        out.sets.push(KeySet {
            origin: "skills.toml".into(),
            keys,
            repository: image.to_string(),
        });
    }
    if let Some(policy) = containers {
        out.sets.extend(policy.key_sets(image, tag, digests)?);
    }
    Ok(out)
}

/// Where the containers policy is: [`ENV_CONTAINERS_POLICY`], else
/// `$XDG_CONFIG_HOME/containers/policy.json` when it exists, else
/// [`SYSTEM_POLICY`] when it exists.
pub fn locate_policy(
    env: impl Fn(&str) -> Option<OsString>,
    config_dir: Option<&Path>,
) -> Option<PathBuf> {
    if let Some(p) = env(ENV_CONTAINERS_POLICY).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let user = config_dir.map(|d| d.join("containers/policy.json"));
    user.into_iter()
        .chain(std::iter::once(PathBuf::from(SYSTEM_POLICY)))
        .find(|p| p.is_file())
}

/// A containers trust policy (`policy.json`): its default and its `docker`
/// scopes. Requirements are interpreted only where they apply.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainersPolicy {
    /// The file.
    pub path: PathBuf,
    default: Option<Vec<serde_json::Value>>,
    docker: BTreeMap<String, Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
struct RawPolicy {
    #[serde(default)]
    default: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    transports: BTreeMap<String, BTreeMap<String, Vec<serde_json::Value>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SigstoreSigned {
    #[serde(rename = "type")]
    _type: String,
    key_path: Option<String>,
    key_paths: Option<Vec<String>>,
    key_data: Option<String>,
    key_datas: Option<Vec<String>>,
    fulcio: Option<serde_json::Value>,
    rekor_public_key_path: Option<serde_json::Value>,
    rekor_public_key_paths: Option<serde_json::Value>,
    rekor_public_key_data: Option<serde_json::Value>,
    rekor_public_key_datas: Option<serde_json::Value>,
    pki: Option<serde_json::Value>,
    signed_identity: Option<SignedIdentity>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SignedIdentity {
    #[serde(rename = "type")]
    kind: String,
    docker_repository: Option<String>,
    docker_reference: Option<String>,
    prefix: Option<String>,
    signed_prefix: Option<String>,
}

impl ContainersPolicy {
    /// Reads `path`; a missing file is no policy.
    pub fn load(path: &Path) -> Result<Option<ContainersPolicy>, VerifyError> {
        use std::io::Read as _;
        let err = |reason: String| VerifyError::Policy {
            path: path.to_path_buf(),
            reason,
        };
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err(format!("cannot read it: {e}"))),
        };
        let mut bytes = Vec::new();
        file.take(MAX_POLICY_SIZE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| err(format!("cannot read it: {e}")))?;
        if bytes.len() as u64 > MAX_POLICY_SIZE {
            return Err(err(format!("larger than {MAX_POLICY_SIZE} bytes")));
        }
        ContainersPolicy::parse(path, &bytes).map(Some)
    }

    /// Parses policy JSON read from `path`.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<ContainersPolicy, VerifyError> {
        let raw: RawPolicy = strict_json(bytes).map_err(|reason| VerifyError::Policy {
            path: path.to_path_buf(),
            reason,
        })?;
        let docker = raw
            .transports
            .into_iter()
            .find(|(t, _)| t == "docker")
            .map(|(_, scopes)| scopes)
            .unwrap_or_default();
        Ok(ContainersPolicy {
            path: path.to_path_buf(),
            default: raw.default,
            docker,
        })
    }

    fn error(&self, reason: String) -> VerifyError {
        VerifyError::Policy {
            path: self.path.clone(),
            reason,
        }
    }

    /// The most specific scope present for `image`, resolved through `tag`
    /// (if any) to `digests`, and its requirements.
    fn scope(
        &self,
        image: &ImageRef,
        tag: Option<&str>,
        digests: &[Digest],
    ) -> Result<(String, &Vec<serde_json::Value>), VerifyError> {
        let repo = image.to_string();
        let mut candidates: Vec<String> = digests.iter().map(|d| format!("{repo}@{d}")).collect();
        candidates.extend(tag.map(|t| format!("{repo}:{t}")));
        let mut path = repo.as_str();
        loop {
            candidates.push(path.to_string());
            match path.rfind('/') {
                Some(i) => path = &path[..i],
                None => break,
            }
        }
        let host = image.registry.split(':').next().unwrap_or(&image.registry);
        let labels: Vec<&str> = host.split('.').collect();
        for i in 1..labels.len() {
            candidates.push(format!("*.{}", labels[i..].join(".")));
        }
        candidates.push(String::new());
        for c in candidates {
            if let Some(reqs) = self.docker.get(&c) {
                let name = if c.is_empty() {
                    "the docker transport's default (\"\")".to_string()
                } else {
                    format!("scope {c:?}")
                };
                return Ok((name, reqs));
            }
        }
        match &self.default {
            Some(reqs) => Ok(("default".into(), reqs)),
            None => {
                Err(self.error("no scope matches and there is no \"default\" requirement".into()))
            }
        }
    }

    /// The key sets the scope that applies to `image` (resolved through
    /// `tag`, if any, to `digests`) requires; an error when it rejects the
    /// image or asks for what is not supported.
    pub fn key_sets(
        &self,
        image: &ImageRef,
        tag: Option<&str>,
        digests: &[Digest],
    ) -> Result<Vec<KeySet>, VerifyError> {
        let (scope, reqs) = self.scope(image, tag, digests)?;
        let origin = format!("{} {scope}", self.path.display());
        if reqs.is_empty() {
            return Err(self.error(format!("{scope} has no requirements")));
        }
        let mut sets = Vec::new();
        for req in reqs {
            let kind = req.get("type").and_then(|t| t.as_str()).unwrap_or("");
            match kind {
                "insecureAcceptAnything" => {}
                "reject" => {
                    return Err(VerifyError::Rejected {
                        image: image.to_string(),
                        origin: format!("{origin} (reject)"),
                    })
                }
                "sigstoreSigned" => sets.push(self.sigstore_signed(req, image, &origin)?),
                "signedBy" => {
                    return Err(self.error(format!(
                        "{scope}: \"signedBy\" (GPG) requirements are not supported; use \"sigstoreSigned\" with keyPath"
                    )))
                }
                other => {
                    return Err(
                        self.error(format!("{scope}: unknown requirement type {other:?}"))
                    )
                }
            }
        }
        Ok(sets)
    }

    fn sigstore_signed(
        &self,
        req: &serde_json::Value,
        image: &ImageRef,
        origin: &str,
    ) -> Result<KeySet, VerifyError> {
        let r: SigstoreSigned = serde_json::from_value(req.clone())
            .map_err(|e| self.error(format!("sigstoreSigned: {e}")))?;
        let unsupported = [
            ("fulcio", r.fulcio.is_some()),
            ("rekorPublicKeyPath", r.rekor_public_key_path.is_some()),
            ("rekorPublicKeyPaths", r.rekor_public_key_paths.is_some()),
            ("rekorPublicKeyData", r.rekor_public_key_data.is_some()),
            ("rekorPublicKeyDatas", r.rekor_public_key_datas.is_some()),
            ("pki", r.pki.is_some()),
        ];
        if let Some((field, _)) = unsupported.iter().find(|(_, set)| *set) {
            return Err(self.error(format!(
                "sigstoreSigned with {field:?} is not supported (keyless verification is not; give keyPath)"
            )));
        }
        let given = [
            r.key_path.is_some(),
            r.key_paths.is_some(),
            r.key_data.is_some(),
            r.key_datas.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        if given != 1 {
            return Err(self.error(
                "sigstoreSigned needs exactly one of keyPath, keyPaths, keyData and keyDatas"
                    .into(),
            ));
        }
        let base = self.path.parent().unwrap_or(Path::new("/"));
        let mut keys = Vec::new();
        for p in r.key_path.iter().chain(r.key_paths.iter().flatten()) {
            keys.push(TrustedKey::load(&base.join(p))?);
        }
        for (i, data) in r
            .key_data
            .iter()
            .chain(r.key_datas.iter().flatten())
            .enumerate()
        {
            let name = format!("{} keyData #{}", self.path.display(), i + 1);
            let pem = decode_base64(data)
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| self.error(format!("{name} is not base64 of a PEM key")))?;
            keys.push(TrustedKey::from_pem(name, &pem)?);
        }
        if keys.is_empty() {
            return Err(self.error("sigstoreSigned names no key".into()));
        }
        let repository = match r.signed_identity {
            None => image.to_string(),
            Some(id) => match id.kind.as_str() {
                "matchRepoDigestOrExact" | "matchRepository" => image.to_string(),
                "exactRepository" => id.docker_repository.ok_or_else(|| {
                    self.error("signedIdentity exactRepository without dockerRepository".into())
                })?,
                other => {
                    let _ = (id.docker_reference, id.prefix, id.signed_prefix);
                    return Err(self.error(format!(
                        "signedIdentity {other:?} is not supported (use matchRepoDigestOrExact, matchRepository or exactRepository)"
                    )));
                }
            },
        };
        Ok(KeySet {
            origin: origin.to_string(),
            keys,
            repository,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::env_of;

    const KEY: &str = "tests/fixtures/cosign/legacy-containers-image-valid/cosign.pub";

    fn key_path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(KEY)
    }

    fn image(s: &str) -> ImageRef {
        s.parse().unwrap()
    }

    fn policy(json: &str) -> ContainersPolicy {
        ContainersPolicy::parse(Path::new("/etc/containers/policy.json"), json.as_bytes()).unwrap()
    }

    fn scope_of(p: &ContainersPolicy, img: &str) -> String {
        p.scope(&image(img), None, &[]).unwrap().0
    }

    #[test]
    fn the_most_specific_docker_scope_wins() {
        let p = policy(
            r#"{"default":[{"type":"reject"}],"transports":{"docker":{
                "":[{"type":"insecureAcceptAnything"}],
                "quay.io":[{"type":"reject"}],
                "quay.io/acme":[{"type":"insecureAcceptAnything"}],
                "quay.io/acme/skills/x":[{"type":"reject"}],
                "*.example.com":[{"type":"reject"}]}}}"#,
        );
        assert_eq!(
            scope_of(&p, "quay.io/acme/skills/x"),
            "scope \"quay.io/acme/skills/x\""
        );
        assert_eq!(
            scope_of(&p, "quay.io/acme/skills/y"),
            "scope \"quay.io/acme\""
        );
        assert_eq!(scope_of(&p, "quay.io/acmeco/y"), "scope \"quay.io\"");
        assert_eq!(scope_of(&p, "r.example.com/a"), "scope \"*.example.com\"");
        assert!(scope_of(&p, "127.0.0.1:5000/a").contains("default (\"\")"));
        let bare = policy(r#"{"default":[{"type":"insecureAcceptAnything"}]}"#);
        assert_eq!(scope_of(&bare, "127.0.0.1:5000/a"), "default");
    }

    #[test]
    fn requirements_are_honoured_or_refused() {
        let img = image("127.0.0.1:5000/acme/x");
        let accept = policy(r#"{"default":[{"type":"insecureAcceptAnything"}]}"#);
        assert!(accept.key_sets(&img, None, &[]).unwrap().is_empty());
        let reject = policy(r#"{"default":[{"type":"reject"}]}"#);
        assert!(matches!(
            reject.key_sets(&img, None, &[]),
            Err(VerifyError::Rejected { .. })
        ));
        let signed = policy(&format!(
            r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{"127.0.0.1:5000/acme":[{{"type":"sigstoreSigned","keyPath":"{}","signedIdentity":{{"type":"matchRepository"}}}}]}}}}}}"#,
            key_path().display()
        ));
        let sets = signed.key_sets(&img, None, &[]).unwrap();
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0].repository, "127.0.0.1:5000/acme/x");
        assert_eq!(sets[0].keys.len(), 1);
        let pem = std::fs::read(key_path()).unwrap();
        use base64::Engine as _;
        let data = base64::engine::general_purpose::STANDARD.encode(pem);
        let inline = policy(&format!(
            r#"{{"default":[{{"type":"sigstoreSigned","keyData":"{data}","signedIdentity":{{"type":"exactRepository","dockerRepository":"quay.io/acme/x"}}}}]}}"#
        ));
        let sets = inline.key_sets(&img, None, &[]).unwrap();
        assert_eq!(sets[0].repository, "quay.io/acme/x");
        assert_eq!(
            sets[0].keys[0].id(),
            TrustedKey::load(&key_path()).unwrap().id()
        );
    }

    #[test]
    fn what_is_not_supported_is_an_error_never_ignored() {
        let img = image("127.0.0.1:5000/acme/x");
        let k = key_path().display().to_string();
        for (req, expect) in [
            (
                r#"{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k.gpg"}"#.to_string(),
                "signedBy",
            ),
            (
                r#"{"type":"sigstoreSigned","fulcio":{},"rekorPublicKeyPath":"/r"}"#.to_string(),
                "fulcio",
            ),
            (
                format!(
                    r#"{{"type":"sigstoreSigned","keyPath":"{k}","signedIdentity":{{"type":"matchExact"}}}}"#
                ),
                "matchExact",
            ),
            (
                format!(
                    r#"{{"type":"sigstoreSigned","keyPath":"{k}","signedIdentity":{{"type":"remapIdentity","prefix":"a","signedPrefix":"b"}}}}"#
                ),
                "remapIdentity",
            ),
            (
                format!(r#"{{"type":"sigstoreSigned","keyPath":"{k}","keyData":"eA=="}}"#),
                "exactly one",
            ),
            (
                format!(r#"{{"type":"sigstoreSigned","keyPath":"{k}","surprise":1}}"#),
                "surprise",
            ),
            (r#"{"type":"somethingNew"}"#.to_string(), "somethingNew"),
        ] {
            let p = policy(&format!(r#"{{"default":[{req}]}}"#));
            let err = p.key_sets(&img, None, &[]).unwrap_err().to_string();
            assert!(err.contains(expect), "{req}: {err}");
        }
        // A tag scope applies to the image resolved through that tag only,
        // after a digest scope and before the repository's.
        let p = policy(
            r#"{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{
                "127.0.0.1:5000/acme/x:1.0":[{"type":"reject"}],
                "127.0.0.1:5000/acme/x@sha256:0000000000000000000000000000000000000000000000000000000000000000":[{"type":"insecureAcceptAnything"}]}}}"#,
        );
        assert!(p.key_sets(&img, Some("1.0"), &[]).is_err());
        assert!(p.key_sets(&img, Some("1.1"), &[]).unwrap().is_empty());
        assert!(p.key_sets(&img, None, &[]).unwrap().is_empty());
        let zero: Digest = format!("sha256:{}", "0".repeat(64)).parse().unwrap();
        assert!(p.key_sets(&img, Some("1.0"), &[zero]).unwrap().is_empty());
        // No default and no scope.
        let p = policy(r#"{"transports":{"docker":{"quay.io":[{"type":"reject"}]}}}"#);
        assert!(p.key_sets(&img, None, &[]).is_err());
        // Duplicate keys in the file.
        assert!(ContainersPolicy::parse(
            Path::new("/p.json"),
            br#"{"default":[],"default":[{"type":"reject"}]}"#
        )
        .is_err());
        // Unsupported requirements in scopes that do not apply are not
        // this image's concern.
        let p = policy(
            r#"{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{"quay.io":[{"type":"signedBy"}]}}}"#,
        );
        assert!(p.key_sets(&img, None, &[]).unwrap().is_empty());
    }

    #[test]
    fn the_policy_file_is_found_as_podman_finds_it() {
        let tmp = tempfile::tempdir().unwrap();
        let user = tmp.path().join("containers/policy.json");
        let over = env_of(&[(ENV_CONTAINERS_POLICY, "/custom/policy.json")]);
        assert_eq!(
            locate_policy(over, Some(tmp.path())),
            Some(PathBuf::from("/custom/policy.json"))
        );
        std::fs::create_dir_all(user.parent().unwrap()).unwrap();
        std::fs::write(&user, "{}").unwrap();
        assert_eq!(locate_policy(env_of(&[]), Some(tmp.path())), Some(user));
        assert_eq!(
            ContainersPolicy::load(&tmp.path().join("missing.json")).unwrap(),
            None
        );
    }

    #[test]
    fn skills_toml_keys_and_fingerprints() {
        let img = image("127.0.0.1:5000/acme/x");
        let none = requirements(Some(&Setting::None), None, &img, None, &[]).unwrap();
        assert!(!none.needs_signature());
        let keyed = requirements(
            Some(&Setting::Keys(vec![key_path()])),
            None,
            &img,
            None,
            &[],
        )
        .unwrap();
        assert!(keyed.needs_signature());
        assert_ne!(keyed.fingerprint(), none.fingerprint());
        let missing = requirements(
            Some(&Setting::Keys(vec![PathBuf::from("/no/such.pub")])),
            None,
            &img,
            None,
            &[],
        );
        assert!(matches!(missing, Err(VerifyError::Key(_))));
    }
}
