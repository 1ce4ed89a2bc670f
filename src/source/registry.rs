//! A registry speaking the OCI distribution API, through `oci-client`.
//!
//! All of `oci-client`'s quirks stay in this file (see DESIGN.md): it trusts
//! `Docker-Content-Digest` (we only use that to learn which digest a tag
//! names, then pull by digest and verify locally), it does not cap sizes (we
//! cap manifests here and blobs in the cache), and it knows nothing of
//! retries (the daemon's scheduler backs off).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::{BlobStream, Source, SourceError};
use crate::auth::{self, AuthSources, Credential, HelperEnv, Lookup};
use crate::manifest::{ACCEPTED_MANIFEST_TYPES, MAX_MANIFEST_SIZE};
use crate::reference::{Digest, ImageRef};

/// Tags asked for per tag-list request.
const TAG_PAGE: usize = 100;
/// Tag-list pages followed at most (100,000 tags).
const MAX_TAG_PAGES: usize = 1000;

/// Whether a registry asks for authentication, learned from one `GET /v2/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// No challenge: every request may go straight to the API.
    Open,
    /// A `WWW-Authenticate` challenge: oci-client's token flow applies.
    Challenged,
}

/// Registries reached over the network.
pub struct RegistrySource {
    /// Rebuilt when a registry's credentials change: oci-client keeps the
    /// first credentials it sees per registry for the life of a client.
    client: RwLock<Arc<Client>>,
    /// For the one version check per registry.
    http: reqwest::Client,
    insecure: Vec<String>,
    /// PEM certificates from every registry's `ca_file`.
    cas: Vec<Vec<u8>>,
    access: tokio::sync::Mutex<HashMap<String, Access>>,
    /// Where credentials are looked up: the home directory, and
    /// per-registry `auth_file` overrides.
    home: PathBuf,
    auth_files: HashMap<String, PathBuf>,
    /// Per registry: the credentials found, and the fingerprint of the
    /// files they were found in (re-read when it changes).
    creds: tokio::sync::Mutex<HashMap<String, Found>>,
    /// Per registry: at most [`PER_REGISTRY_REQUESTS`] requests at once.
    limits: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
    /// A tag list, HEAD or manifest that takes longer than this, headers
    /// and body together, is given up (a server that trickles bytes is
    /// cut off); also how long a blob may take to start.
    deadline: Duration,
    /// Per registry: mirrors tried, in order, before it.
    mirrors: HashMap<String, Vec<String>>,
    /// Per registry: the endpoint that answered last (itself or a mirror).
    served: std::sync::Mutex<HashMap<String, String>>,
}

/// The outcome of a credentials lookup for one registry.
#[derive(Clone)]
struct Found {
    fingerprint: Vec<(PathBuf, Option<(u64, std::time::SystemTime)>)>,
    credential: Option<(Credential, PathBuf)>,
    searched: Vec<PathBuf>,
}

/// Requests in flight to one registry at most.
pub const PER_REGISTRY_REQUESTS: usize = 4;

/// How long a `docker-credential-*` helper may take.
const HELPER_TIMEOUT: Duration = Duration::from_secs(10);

fn build_client(insecure: &[String], cas: &[Vec<u8>]) -> Result<Client, SourceError> {
    let config = ClientConfig {
        protocol: ClientProtocol::HttpsExcept(insecure.to_vec()),
        extra_root_certificates: cas
            .iter()
            .map(|pem| Certificate {
                encoding: CertificateEncoding::Pem,
                data: pem.clone(),
            })
            .collect(),
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(60)),
        user_agent: concat!("skillsyncd/", env!("CARGO_PKG_VERSION")),
        ..Default::default()
    };
    Client::try_from(config).map_err(|e| SourceError::Setup {
        endpoint: "registry client".into(),
        reason: e.to_string(),
    })
}

impl RegistrySource {
    /// Builds a client; `insecure` lists the `host:port`s spoken to over
    /// plain HTTP; credentials are looked up under `home` as podman and
    /// docker do, or in a registry's own `auth_files` entry.
    pub fn new(
        insecure: Vec<String>,
        home: PathBuf,
        auth_files: HashMap<String, PathBuf>,
        cas: Vec<Vec<u8>>,
        deadline: Duration,
        mirrors: HashMap<String, Vec<String>>,
    ) -> Result<Self, SourceError> {
        // Rustls needs a process-wide crypto provider; installing it twice is
        // harmless (the second call reports the first one is in place).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = build_client(&insecure, &cas)?;
        let mut http = reqwest::Client::builder();
        for pem in &cas {
            let cert = reqwest::Certificate::from_pem(pem).map_err(|e| SourceError::Setup {
                endpoint: "registry client".into(),
                reason: format!("a ca_file is not a PEM certificate: {}", chain(&e)),
            })?;
            http = http.add_root_certificate(cert);
        }
        let http = http
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("skillsyncd/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SourceError::Setup {
                endpoint: "registry client".into(),
                reason: chain(&e),
            })?;
        Ok(RegistrySource {
            client: RwLock::new(Arc::new(client)),
            http,
            insecure,
            cas,
            access: tokio::sync::Mutex::new(HashMap::new()),
            home,
            auth_files,
            creds: tokio::sync::Mutex::new(HashMap::new()),
            limits: std::sync::Mutex::new(HashMap::new()),
            deadline,
            mirrors,
            served: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// A turn at `registry`: waits while [`PER_REGISTRY_REQUESTS`] are in
    /// flight there.
    async fn turn(&self, registry: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let semaphore = self
            .limits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(registry.to_string())
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(PER_REGISTRY_REQUESTS)))
            .clone();
        semaphore.acquire_owned().await.ok()
    }

    /// Runs `request` against the registry's mirrors in order, then the
    /// registry itself, until one answers; an endpoint that is down, fails,
    /// refuses or lacks the content passes the turn to the next. Returns the
    /// last error when none answered.
    async fn via_endpoints<T, F, Fut>(&self, image: &ImageRef, request: F) -> Result<T, SourceError>
    where
        F: Fn(ImageRef) -> Fut,
        Fut: std::future::Future<Output = Result<T, SourceError>>,
    {
        let mut endpoints: Vec<String> = self
            .mirrors
            .get(&image.registry)
            .cloned()
            .unwrap_or_default();
        endpoints.push(image.registry.clone());
        let mut last = None;
        for endpoint in endpoints {
            let at = ImageRef {
                registry: endpoint.clone(),
                repository: image.repository.clone(),
            };
            match request(at).await {
                Ok(v) => {
                    self.served
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(image.registry.clone(), endpoint);
                    return Ok(v);
                }
                Err(e) => {
                    if endpoint != image.registry {
                        tracing::debug!(mirror = %endpoint, "mirror did not serve {image}: {e}");
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| SourceError::Setup {
            endpoint: image.registry.clone(),
            reason: "no endpoint to ask".into(),
        }))
    }

    /// Runs one request within the registry's limit and the deadline.
    async fn bounded<T>(
        &self,
        image: &ImageRef,
        what: &str,
        request: impl std::future::Future<Output = Result<T, SourceError>>,
    ) -> Result<T, SourceError> {
        let _turn = self.turn(&image.registry).await;
        match tokio::time::timeout(self.deadline, request).await {
            Ok(result) => result,
            Err(_) => Err(SourceError::Network {
                endpoint: image.registry.clone(),
                message: format!(
                    "{what}: no complete answer within {}s",
                    self.deadline.as_secs()
                ),
            }),
        }
    }

    fn client(&self) -> Arc<Client> {
        self.client
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// The credentials for `image`'s registry, re-read whenever one of the
    /// files they come from changes (and the client rebuilt when they do).
    async fn credentials(&self, image: &ImageRef) -> Result<Option<Credential>, SourceError> {
        let registry = image.registry.clone();
        let sources = match self.auth_files.get(&registry) {
            Some(file) => AuthSources::with_override(file),
            None => AuthSources::from_env(&self.home, |k| std::env::var_os(k)),
        };
        let fingerprint = sources.fingerprint();
        let mut creds = self.creds.lock().await;
        if let Some(found) = creds.get(&registry) {
            if found.fingerprint == fingerprint {
                return Ok(found.credential.as_ref().map(|(c, _)| c.clone()));
            }
        }
        let searched = sources.files.clone();
        let (reg, repo) = (registry.clone(), image.repository.clone());
        let credential = tokio::task::spawn_blocking(move || {
            let lookup = Lookup {
                registry: &reg,
                repository: &repo,
            };
            auth::find(&sources, &lookup, &HelperEnv::from_process(HELPER_TIMEOUT))
        })
        .await
        .map_err(|e| SourceError::Setup {
            endpoint: registry.clone(),
            reason: format!("credential lookup failed: {e}"),
        })?
        .map_err(|e| SourceError::Setup {
            endpoint: registry.clone(),
            reason: e.to_string(),
        })?;
        let previous = creds
            .get(&registry)
            .map(|f| f.credential.as_ref().map(|(c, _)| c));
        let changed = previous.is_some_and(|p| p != credential.as_ref().map(|(c, _)| c));
        if changed {
            tracing::info!(registry = %registry, "credentials changed; using the new ones");
            let fresh = Arc::new(build_client(&self.insecure, &self.cas)?);
            *self.client.write().unwrap_or_else(|e| e.into_inner()) = fresh;
            self.access.lock().await.remove(&registry);
        }
        let out = credential.as_ref().map(|(c, _)| c.clone());
        creds.insert(
            registry,
            Found {
                fingerprint,
                credential,
                searched,
            },
        );
        Ok(out)
    }

    /// An unauthorized error, told which credentials were refused or where
    /// none were found (never the credentials themselves).
    fn explain(&self, image: &ImageRef, err: SourceError) -> SourceError {
        let SourceError::Unauthorized { endpoint, .. } = err else {
            return err;
        };
        let hint = match self.creds.try_lock().ok().and_then(|c| c.get(&image.registry).cloned()) {
            Some(Found {
                credential: Some((_, file)),
                ..
            }) => format!(
                "the credentials for it in {} were refused; check them (docker login / podman login)",
                file.display()
            ),
            Some(Found { searched, .. }) => format!(
                "no credentials for it in {}; log in with `docker login {endpoint}` or `podman login {endpoint}`",
                searched
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => "check ~/.docker/config.json".to_string(),
        };
        SourceError::Unauthorized { endpoint, hint }
    }

    /// The credentials to hand oci-client for `registry`.
    ///
    /// oci-client asks `GET /v2/` before *every* request to a registry that
    /// sends no auth challenge (it caches tokens, and such a registry gives
    /// none), which would double every poll. So the version check is made
    /// here once per registry: an open registry gets an empty bearer token,
    /// which oci-client uses without asking again and an open registry
    /// ignores; a challenging one gets oci-client's normal token flow.
    async fn auth(&self, image: &ImageRef) -> Result<RegistryAuth, SourceError> {
        match self.credentials(image).await? {
            Some(Credential::Basic { username, password }) => {
                return Ok(RegistryAuth::Basic(username, password))
            }
            Some(Credential::IdentityToken(_)) => {
                return Err(SourceError::Setup {
                    endpoint: image.registry.clone(),
                    reason: "the credentials found are an identity token, which skillsyncd cannot exchange yet; \
                             log in with a username and password or use a credential helper"
                        .into(),
                })
            }
            None => {}
        }
        let mut access = self.access.lock().await;
        let known = match access.get(&image.registry) {
            Some(a) => *a,
            None => {
                let scheme = if self.insecure.contains(&image.registry) {
                    "http"
                } else {
                    "https"
                };
                let url = format!("{scheme}://{}/v2/", image.registry);
                let resp = self
                    .http
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| SourceError::Network {
                        endpoint: image.registry.clone(),
                        message: with_tls_hint(&image.registry, chain(&e)),
                    })?;
                let a = if resp
                    .headers()
                    .contains_key(reqwest::header::WWW_AUTHENTICATE)
                    || !resp.status().is_success()
                {
                    Access::Challenged
                } else {
                    Access::Open
                };
                access.insert(image.registry.clone(), a);
                a
            }
        };
        Ok(match known {
            Access::Open => RegistryAuth::Bearer(String::new()),
            Access::Challenged => RegistryAuth::Anonymous,
        })
    }
}

fn reference(image: &ImageRef, tag: &str) -> Reference {
    Reference::with_tag(
        image.registry.clone(),
        image.repository.clone(),
        tag.to_string(),
    )
}

fn by_digest(image: &ImageRef, digest: &Digest) -> Reference {
    Reference::with_digest(
        image.registry.clone(),
        image.repository.clone(),
        digest.to_string(),
    )
}

/// Turns an oci-client error into ours, naming what was asked for.
fn convert(image: &ImageRef, what: String, err: OciDistributionError) -> SourceError {
    let endpoint = image.registry.clone();
    match err {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => SourceError::Unauthorized {
            endpoint,
            hint: String::new(),
        },
        OciDistributionError::RegistryError { envelope, .. } => {
            let not_found = envelope.errors.iter().any(|e| {
                matches!(
                    e.code,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NotFound
                )
            });
            let denied = envelope
                .errors
                .iter()
                .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied));
            if not_found {
                SourceError::NotFound { what, endpoint }
            } else if denied {
                SourceError::Unauthorized {
                    endpoint,
                    hint: String::new(),
                }
            } else {
                SourceError::Protocol {
                    endpoint,
                    message: format!("{what}: {envelope}"),
                }
            }
        }
        OciDistributionError::ServerError { code, message, .. } => match code {
            404 => SourceError::NotFound { what, endpoint },
            401 | 403 => SourceError::Unauthorized {
                endpoint,
                hint: String::new(),
            },
            _ => SourceError::Status {
                endpoint,
                what,
                status: code,
                message: message.chars().take(200).collect(),
            },
        },
        OciDistributionError::ImageManifestNotFoundError(_) => {
            SourceError::NotFound { what, endpoint }
        }
        OciDistributionError::RequestError(e) => SourceError::Network {
            message: with_tls_hint(&endpoint, chain(&e)),
            endpoint,
        },
        other => SourceError::Protocol {
            endpoint,
            message: format!("{what}: {other}"),
        },
    }
}

/// A certificate the system does not trust gets the option that fixes it.
fn with_tls_hint(endpoint: &str, message: String) -> String {
    let lower = message.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("unknownissuer") {
        format!(
            "{message} (for a private CA or a self-signed certificate, set ca_file = \"/path/to/ca.pem\" under [registries.\"{endpoint}\"])"
        )
    } else {
        message
    }
}

/// An error and its causes on one line ("error sending request: connection refused").
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

impl Source for RegistrySource {
    fn endpoint(&self) -> String {
        "registry".into()
    }

    fn served_by(&self, image: &ImageRef) -> Option<String> {
        self.served
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&image.registry)
            .cloned()
    }

    async fn list_tags(&self, image: &ImageRef) -> Result<Vec<String>, SourceError> {
        self.via_endpoints(image, |at| async move {
            self.bounded(&at, "tag list", self.list_tags_inner(&at))
                .await
        })
        .await
    }

    async fn resolve_tag(&self, image: &ImageRef, tag: &str) -> Result<Digest, SourceError> {
        self.via_endpoints(image, |at| async move {
            self.bounded(&at, "HEAD of a tag", self.resolve_tag_inner(&at, tag))
                .await
        })
        .await
    }

    async fn fetch_manifest(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<Vec<u8>, SourceError> {
        self.via_endpoints(image, |at| async move {
            self.bounded(&at, "manifest", self.fetch_manifest_inner(&at, digest))
                .await
        })
        .await
    }

    async fn open_blob(
        &self,
        image: &ImageRef,
        digest: &Digest,
        size: u64,
    ) -> Result<BlobStream, SourceError> {
        self.via_endpoints(image, |at| async move {
            self.open_blob_at(&at, digest, size).await
        })
        .await
    }

    async fn referrers(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<Option<Vec<u8>>, SourceError> {
        self.via_endpoints(image, |at| async move {
            self.bounded(&at, "referrers", self.referrers_inner(&at, digest))
                .await
        })
        .await
        .map(Some)
    }
}

impl RegistrySource {
    async fn open_blob_at(
        &self,
        image: &ImageRef,
        digest: &Digest,
        size: u64,
    ) -> Result<BlobStream, SourceError> {
        // The turn is held until the stream is dropped.
        let turn = self.turn(&image.registry).await;
        let stream = tokio::time::timeout(self.deadline, self.open_blob_inner(image, digest, size))
            .await
            .map_err(|_| SourceError::Network {
                endpoint: image.registry.clone(),
                message: format!(
                    "blob {digest}: no answer within {}s",
                    self.deadline.as_secs()
                ),
            })??;
        Ok(stream
            .map(move |chunk| {
                let _held = &turn;
                chunk
            })
            .boxed())
    }
}

impl RegistrySource {
    async fn list_tags_inner(&self, image: &ImageRef) -> Result<Vec<String>, SourceError> {
        // Registries may paginate tag lists (the spec's `n`/`last`); oci-client
        // drops the `Link` header that says so. Asking for pages of
        // TAG_PAGE and following on while a page comes back full costs one
        // request for any repository with fewer tags. A registry that ignores
        // `n` and `last` (distribution 2.8 does) returns everything at once,
        // and a page that adds nothing new ends the walk.
        let r = reference(image, "latest");
        let auth = self.auth(image).await?;
        let mut tags: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut last: Option<String> = None;
        for _ in 0..MAX_TAG_PAGES {
            let page = self
                .client()
                .list_tags(&r, &auth, Some(TAG_PAGE), last.as_deref())
                .await
                .map_err(|e| {
                    self.explain(
                        image,
                        convert(image, format!("tag list of {}", image.repository), e),
                    )
                })?;
            let full = page.tags.len() >= TAG_PAGE;
            let before = tags.len();
            for t in page.tags {
                if seen.insert(t.clone()) {
                    tags.push(t);
                }
            }
            if !full || tags.len() == before {
                break;
            }
            last = tags.last().cloned();
        }
        Ok(tags)
    }

    async fn resolve_tag_inner(&self, image: &ImageRef, tag: &str) -> Result<Digest, SourceError> {
        let r = reference(image, tag);
        let auth = self.auth(image).await?;
        let digest = self
            .client()
            .fetch_manifest_digest(&r, &auth)
            .await
            .map_err(|e| {
                self.explain(
                    image,
                    convert(image, format!("tag {tag} of {}", image.repository), e),
                )
            })?;
        digest.parse().map_err(|e| SourceError::Protocol {
            endpoint: image.registry.clone(),
            message: format!("tag {tag}: {e}"),
        })
    }

    async fn fetch_manifest_inner(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<Vec<u8>, SourceError> {
        let r = by_digest(image, digest);
        let auth = self.auth(image).await?;
        let (bytes, _) = self
            .client()
            .pull_manifest_raw(&r, &auth, ACCEPTED_MANIFEST_TYPES)
            .await
            .map_err(|e| self.explain(image, convert(image, format!("manifest {digest}"), e)))?;
        if bytes.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(SourceError::Protocol {
                endpoint: image.registry.clone(),
                message: format!("manifest {digest} is larger than {MAX_MANIFEST_SIZE} bytes"),
            });
        }
        Ok(bytes.to_vec())
    }

    /// The referrers index of `digest`: oci-client asks the referrers
    /// endpoint and, where the registry has none (a 404, as distribution
    /// 2.8 answers), reads the `sha256-<hex>` tag instead.
    async fn referrers_inner(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<Vec<u8>, SourceError> {
        let r = by_digest(image, digest);
        let auth = self.auth(image).await?;
        let client = self.client();
        client.store_auth_if_needed(&image.registry, &auth).await;
        let index = client.pull_referrers(&r, None).await.map_err(|e| {
            self.explain(image, convert(image, format!("referrers of {digest}"), e))
        })?;
        serde_json::to_vec(&index).map_err(|e| SourceError::Protocol {
            endpoint: image.registry.clone(),
            message: format!("referrers of {digest}: {e}"),
        })
    }

    async fn open_blob_inner(
        &self,
        image: &ImageRef,
        digest: &Digest,
        size: u64,
    ) -> Result<BlobStream, SourceError> {
        let r = by_digest(image, digest);
        let auth = self.auth(image).await?;
        let client = self.client();
        client.store_auth_if_needed(&image.registry, &auth).await;
        let desc = OciDescriptor {
            digest: digest.to_string(),
            size: i64::try_from(size).unwrap_or(i64::MAX),
            ..Default::default()
        };
        let stream = client
            .pull_blob_stream(&r, &desc)
            .await
            .map_err(|e| self.explain(image, convert(image, format!("blob {digest}"), e)))?;
        // oci-client checks the digest itself and reports a mismatch as a
        // stream error after the last byte. The cache verifies size and
        // digest with the full picture (and a typed error), so that error
        // just ends the stream here; transport errors pass through.
        let stream = stream.stream.take_while(|item| {
            let verification = matches!(item, Err(e) if e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<DigestError>())
                .is_some_and(|d| matches!(d, DigestError::VerificationError { .. })));
            std::future::ready(!verification)
        });
        Ok(stream.boxed())
    }
}
