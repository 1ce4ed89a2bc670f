//! A registry speaking the OCI distribution API.
//!
//! The HTTP exchanges themselves are [`super::http`]'s; this file decides
//! which endpoint is asked (mirrors first, then the registry or the
//! location registries.conf rewrites it to), within which limits (a
//! per-registry cap on requests in flight, an optional requests-per-second
//! budget, a total deadline per request) and with which credentials
//! (looked up as podman and docker do, re-read when their files change).
//! Failures that may pass feed the per-endpoint backoff
//! ([`super::backoff`]): an endpoint that rate-limits or is down is not
//! asked again before its next try.
//!
//! Sources only move bytes: `Docker-Content-Digest` is used to learn which
//! digest a tag names, and everything fetched is verified by the caller.
//! Manifest and tag-list bodies are capped ([`MAX_MANIFEST_SIZE`]) while
//! they stream; blobs are capped at their descriptor's size by the cache.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::Method;
use serde::Deserialize;

use super::backoff::{self, Backoff};
use super::http::{self, Call, Http};
use super::registries_conf::{self, Route};
use super::{BlobStream, Source, SourceError};
use crate::manifest::{ACCEPTED_MANIFEST_TYPES, MAX_MANIFEST_SIZE};
use crate::reference::{Digest, ImageRef};
use crate::source::auth::{self, AuthSources, Credential, HelperEnv, Lookup};

/// Tags asked for per tag-list request.
const TAG_PAGE: usize = 100;
/// Tag-list pages followed at most (100,000 tags).
const MAX_TAG_PAGES: usize = 1000;

/// Requests in flight to one registry at most, unless its
/// `max_requests` says otherwise.
pub const PER_REGISTRY_REQUESTS: usize = 4;

/// How long a `docker-credential-*` helper may take.
const HELPER_TIMEOUT: Duration = Duration::from_secs(10);

/// How a [`RegistrySource`] is set up.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// `host[:port]`s spoken to over plain HTTP.
    pub insecure: Vec<String>,
    /// The home directory credentials are looked up under.
    pub home: PathBuf,
    /// Per registry: the one auth file its credentials come from.
    pub auth_files: HashMap<String, PathBuf>,
    /// PEM certificates of private CAs, trusted besides the system's.
    pub cas: Vec<Vec<u8>>,
    /// Total deadline of a tag list, HEAD or manifest request; also how
    /// long a blob may take to start.
    pub deadline: Duration,
    /// Where each prefix is pulled from: skills.toml's mirrors and
    /// registries.conf's entries, most specific first.
    pub routes: Vec<Route>,
    /// Per registry: requests in flight at most.
    pub max_requests: HashMap<String, usize>,
    /// Per registry: requests started per second at most.
    pub requests_per_second: HashMap<String, f64>,
    /// The poll interval, where the backoff of a failing endpoint starts.
    pub poll_interval: Duration,
}

/// Registries reached over the network.
pub struct RegistrySource {
    http: Http,
    options: RegistryOptions,
    /// Per registry: the credentials found, and the fingerprint of the
    /// files they were found in (re-read when it changes).
    creds: tokio::sync::Mutex<HashMap<String, Found>>,
    /// Per registry: the cap on requests in flight.
    limits: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
    /// Per registry with a budget: when the next request may start.
    pacing: tokio::sync::Mutex<HashMap<String, tokio::time::Instant>>,
    /// Per image registry: the endpoint that answered last.
    served: std::sync::Mutex<HashMap<String, String>>,
    backoff: Backoff,
}

/// The outcome of a credentials lookup for one registry.
#[derive(Clone)]
struct Found {
    fingerprint: Vec<(PathBuf, Option<(u64, SystemTime)>)>,
    credential: Option<(Credential, PathBuf)>,
    searched: Vec<PathBuf>,
}

#[derive(Deserialize)]
struct TagPage {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

impl RegistrySource {
    /// Takes over what `earlier` (the source of the config before a
    /// reload) knows of outages.
    pub fn carry_over(&self, earlier: &RegistrySource) {
        self.backoff.carry_over(&earlier.backoff);
    }

    /// Builds the source. Hosts that registries.conf marks insecure are
    /// spoken to over plain HTTP too.
    pub fn new(options: RegistryOptions) -> Result<Self, SourceError> {
        // Rustls needs a process-wide crypto provider; installing it twice is
        // harmless (the second call reports the first one is in place).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut insecure = options.insecure.clone();
        for route in &options.routes {
            if route.insecure {
                insecure.push(host_of(&route.location));
            }
            insecure.extend(
                route
                    .mirrors
                    .iter()
                    .filter(|m| m.insecure)
                    .map(|m| host_of(&m.location)),
            );
        }
        let http = Http::new(insecure, &options.cas)?;
        Ok(RegistrySource {
            http,
            backoff: Backoff::new(options.poll_interval),
            options,
            creds: tokio::sync::Mutex::new(HashMap::new()),
            limits: std::sync::Mutex::new(HashMap::new()),
            pacing: tokio::sync::Mutex::new(HashMap::new()),
            served: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Where `image` may be asked for, in order: mirrors (those that serve
    /// this kind of request), then the registry or its rewritten location.
    fn endpoints(&self, image: &ImageRef, by_digest: bool) -> Result<Vec<ImageRef>, SourceError> {
        let Some(route) =
            registries_conf::route_for(&self.options.routes, &image.registry, &image.repository)
        else {
            return Ok(vec![image.clone()]);
        };
        if route.blocked {
            return Err(SourceError::Setup {
                endpoint: image.registry.clone(),
                reason: format!("pulls from {} are blocked in registries.conf", route.prefix),
            });
        }
        let at = |location: &str| {
            let (registry, repository) = registries_conf::rewrite(
                &route.prefix,
                location,
                &image.registry,
                &image.repository,
            );
            ImageRef {
                registry,
                repository,
            }
        };
        let mut out: Vec<ImageRef> = route
            .mirrors
            .iter()
            .filter(|m| m.pull.serves(by_digest))
            .map(|m| at(&m.location))
            .collect();
        out.push(at(&route.location));
        Ok(out)
    }

    /// When every endpoint of `image` waits out a failure: the earliest
    /// next try.
    pub fn next_try(&self, image: &ImageRef) -> Option<SystemTime> {
        let endpoints: Vec<String> = self
            .endpoints(image, false)
            .ok()?
            .into_iter()
            .map(|e| e.registry)
            .collect();
        self.backoff
            .all_waiting_until(&endpoints, SystemTime::now())
    }

    /// Runs `request` against `image`'s endpoints in order until one
    /// answers; an endpoint that waits out a failure is skipped without a
    /// request, one that is down, fails, refuses or lacks the content
    /// passes the turn to the next. Returns the last error when none
    /// answered.
    async fn via_endpoints<T, F, Fut>(
        &self,
        image: &ImageRef,
        by_digest: bool,
        request: F,
    ) -> Result<T, SourceError>
    where
        F: Fn(ImageRef) -> Fut,
        Fut: std::future::Future<Output = Result<T, SourceError>>,
    {
        let mut last = None;
        for at in self.endpoints(image, by_digest)? {
            if let Err(waiting) = self.backoff.check(&at.registry, SystemTime::now()) {
                last = Some(waiting);
                continue;
            }
            match request(at.clone()).await {
                Ok(v) => {
                    self.backoff
                        .record(&at.registry, Ok(()), SystemTime::now(), 0.0);
                    self.served
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(image.registry.clone(), at.registry);
                    return Ok(v);
                }
                Err(e) => {
                    self.backoff.record(
                        &at.registry,
                        Err(&e),
                        SystemTime::now(),
                        backoff::random(),
                    );
                    if at.registry != image.registry {
                        tracing::debug!(endpoint = %at.registry, "did not serve {image}: {e}");
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

    /// A turn at `registry`: waits while its cap of requests is in flight,
    /// then for its requests-per-second budget.
    async fn turn(&self, registry: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let semaphore = self
            .limits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(registry.to_string())
            .or_insert_with(|| {
                let n = self
                    .options
                    .max_requests
                    .get(registry)
                    .copied()
                    .unwrap_or(PER_REGISTRY_REQUESTS);
                Arc::new(tokio::sync::Semaphore::new(n))
            })
            .clone();
        let permit = semaphore.acquire_owned().await.ok();
        if let Some(rate) = self.options.requests_per_second.get(registry) {
            let gap = Duration::from_secs_f64(1.0 / rate);
            let start = {
                let mut pacing = self.pacing.lock().await;
                let now = tokio::time::Instant::now();
                let start = pacing.get(registry).copied().unwrap_or(now).max(now);
                pacing.insert(registry.to_string(), start + gap);
                start
            };
            tokio::time::sleep_until(start).await;
        }
        permit
    }

    /// Runs one request within the registry's limits and the deadline.
    async fn bounded<T>(
        &self,
        at: &ImageRef,
        what: &str,
        request: impl std::future::Future<Output = Result<T, SourceError>>,
    ) -> Result<T, SourceError> {
        let _turn = self.turn(&at.registry).await;
        match tokio::time::timeout(self.options.deadline, request).await {
            Ok(result) => result,
            Err(_) => Err(SourceError::Network {
                endpoint: at.registry.clone(),
                message: format!(
                    "{what}: no complete answer within {}s",
                    self.options.deadline.as_secs()
                ),
            }),
        }
    }

    /// The credentials for `at`'s registry, re-read whenever one of the
    /// files they come from changes.
    async fn credentials(&self, at: &ImageRef) -> Result<Option<Credential>, SourceError> {
        let registry = at.registry.clone();
        let sources = match self.options.auth_files.get(&registry) {
            Some(file) => AuthSources::with_override(file),
            None => AuthSources::from_env(&self.options.home, |k| std::env::var_os(k)),
        };
        let fingerprint = sources.fingerprint();
        let mut creds = self.creds.lock().await;
        if let Some(found) = creds.get(&registry) {
            if found.fingerprint == fingerprint {
                return Ok(found.credential.as_ref().map(|(c, _)| c.clone()));
            }
        }
        let searched = sources.files.clone();
        let (reg, repo) = (registry.clone(), at.repository.clone());
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
        if previous.is_some_and(|p| p != credential.as_ref().map(|(c, _)| c)) {
            tracing::info!(registry = %registry, "credentials changed; using the new ones");
            self.http.forget(&registry);
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
    fn explain(&self, at: &ImageRef, err: SourceError) -> SourceError {
        let SourceError::Unauthorized { endpoint, hint } = err else {
            return err;
        };
        if !hint.is_empty() {
            return SourceError::Unauthorized { endpoint, hint };
        }
        let hint = match self
            .creds
            .try_lock()
            .ok()
            .and_then(|c| c.get(&at.registry).cloned())
        {
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

    /// Sends one call to `at` with its credentials; errors explained.
    async fn send(
        &self,
        at: &ImageRef,
        method: Method,
        path: String,
        accept: Option<String>,
        what: String,
    ) -> Result<reqwest::Response, SourceError> {
        let credential = self.credentials(at).await?;
        let repository = http::api_repository(&at.registry, &at.repository);
        let call = Call {
            method,
            registry: &at.registry,
            repository: &repository,
            path,
            accept,
            what,
        };
        self.http
            .send(&call, credential.as_ref())
            .await
            .map_err(|e| self.explain(at, e))
    }
}

/// The host of a `host[:port][/namespace]` location.
fn host_of(location: &str) -> String {
    location.split('/').next().unwrap_or(location).to_string()
}

fn manifest_accept() -> String {
    ACCEPTED_MANIFEST_TYPES.join(", ")
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
        self.via_endpoints(image, false, |at| async move {
            self.bounded(&at, "tag list", self.list_tags_at(&at)).await
        })
        .await
    }

    async fn resolve_tag(&self, image: &ImageRef, tag: &str) -> Result<Digest, SourceError> {
        self.via_endpoints(image, false, |at| async move {
            self.bounded(&at, "HEAD of a tag", self.resolve_tag_at(&at, tag))
                .await
        })
        .await
    }

    async fn fetch_manifest(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<Vec<u8>, SourceError> {
        self.via_endpoints(image, true, |at| async move {
            self.bounded(&at, "manifest", self.fetch_manifest_at(&at, digest))
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
        self.via_endpoints(image, true, |at| async move {
            self.open_blob_at(&at, digest, size).await
        })
        .await
    }

    async fn referrers(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<Option<Vec<u8>>, SourceError> {
        // A registry without the referrers API (distribution 2.8) answers
        // 404: the caller then reads the `sha256-<hex>` tag instead.
        match self
            .via_endpoints(image, true, |at| async move {
                self.bounded(&at, "referrers", self.referrers_at(&at, digest))
                    .await
            })
            .await
        {
            Ok(index) => Ok(Some(index)),
            Err(SourceError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl RegistrySource {
    async fn list_tags_at(&self, at: &ImageRef) -> Result<Vec<String>, SourceError> {
        // Registries may paginate tag lists (the spec's `n`/`last`, with a
        // `Link: <...>; rel="next"` header); a page that adds nothing new
        // ends the walk, so a registry that repeats itself cannot loop.
        let repository = http::api_repository(&at.registry, &at.repository);
        let what = format!("tag list of {}", at.repository);
        let mut path = format!("/v2/{repository}/tags/list?n={TAG_PAGE}");
        let mut tags: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        for _ in 0..MAX_TAG_PAGES {
            let resp = self
                .send(
                    at,
                    Method::GET,
                    path.clone(),
                    Some("application/json".into()),
                    what.clone(),
                )
                .await?;
            let next = http::header_str(resp.headers(), "link").and_then(http::next_link);
            let body = http::read_capped(resp, MAX_MANIFEST_SIZE, &at.registry, &what).await?;
            let page: TagPage =
                serde_json::from_slice(&body).map_err(|e| SourceError::Protocol {
                    endpoint: at.registry.clone(),
                    message: format!("{what}: not a tag list: {e}"),
                })?;
            let before = tags.len();
            for t in page.tags.unwrap_or_default() {
                if seen.insert(t.clone()) {
                    tags.push(t);
                }
            }
            match next {
                Some(link) if tags.len() > before => path = same_origin_path(at, &link)?,
                _ => break,
            }
        }
        Ok(tags)
    }

    async fn resolve_tag_at(&self, at: &ImageRef, tag: &str) -> Result<Digest, SourceError> {
        let repository = http::api_repository(&at.registry, &at.repository);
        let path = format!("/v2/{repository}/manifests/{tag}");
        let what = format!("tag {tag} of {}", at.repository);
        let resp = self
            .send(
                at,
                Method::HEAD,
                path.clone(),
                Some(manifest_accept()),
                what.clone(),
            )
            .await?;
        if let Some(d) = http::header_str(resp.headers(), "docker-content-digest") {
            return d.parse().map_err(|e| SourceError::Protocol {
                endpoint: at.registry.clone(),
                message: format!("{what}: {e}"),
            });
        }
        // No digest header: the manifest itself, hashed here.
        let resp = self
            .send(at, Method::GET, path, Some(manifest_accept()), what.clone())
            .await?;
        let body = http::read_capped(resp, MAX_MANIFEST_SIZE, &at.registry, &what).await?;
        Ok(Digest::of(&body))
    }

    async fn fetch_manifest_at(
        &self,
        at: &ImageRef,
        digest: &Digest,
    ) -> Result<Vec<u8>, SourceError> {
        let repository = http::api_repository(&at.registry, &at.repository);
        let what = format!("manifest {digest}");
        let resp = self
            .send(
                at,
                Method::GET,
                format!("/v2/{repository}/manifests/{digest}"),
                Some(manifest_accept()),
                what.clone(),
            )
            .await?;
        http::read_capped(resp, MAX_MANIFEST_SIZE, &at.registry, &what).await
    }

    async fn referrers_at(&self, at: &ImageRef, digest: &Digest) -> Result<Vec<u8>, SourceError> {
        let repository = http::api_repository(&at.registry, &at.repository);
        let what = format!("referrers of {digest}");
        let resp = self
            .send(
                at,
                Method::GET,
                format!("/v2/{repository}/referrers/{digest}"),
                Some(crate::manifest::OCI_INDEX.to_string()),
                what.clone(),
            )
            .await?;
        // Some registries answer 200 with something else where they have
        // no referrers API; only an image index counts.
        let is_index = http::header_str(resp.headers(), "content-type")
            .is_some_and(|t| t.starts_with(crate::manifest::OCI_INDEX));
        if !is_index {
            return Err(SourceError::NotFound {
                what,
                endpoint: at.registry.clone(),
            });
        }
        http::read_capped(resp, super::MAX_SIGNATURE_SIZE, &at.registry, &what).await
    }

    async fn open_blob_at(
        &self,
        at: &ImageRef,
        digest: &Digest,
        size: u64,
    ) -> Result<BlobStream, SourceError> {
        // The turn is held until the stream is dropped.
        let turn = self.turn(&at.registry).await;
        let repository = http::api_repository(&at.registry, &at.repository);
        let what = format!("blob {digest}");
        let resp = tokio::time::timeout(
            self.options.deadline,
            self.send(
                at,
                Method::GET,
                format!("/v2/{repository}/blobs/{digest}"),
                None,
                what.clone(),
            ),
        )
        .await
        .map_err(|_| SourceError::Network {
            endpoint: at.registry.clone(),
            message: format!(
                "{what}: no answer within {}s",
                self.options.deadline.as_secs()
            ),
        })??;
        if resp.content_length().is_some_and(|len| len > size) {
            return Err(SourceError::Protocol {
                endpoint: at.registry.clone(),
                message: format!("{what} is announced larger than its {size} bytes"),
            });
        }
        use futures_util::StreamExt;
        Ok(http::body_stream(resp)
            .map(move |chunk| {
                let _held = &turn;
                chunk
            })
            .boxed())
    }
}

/// A `Link` target as a path on `at`'s own origin; a link to another
/// host is refused.
fn same_origin_path(at: &ImageRef, link: &str) -> Result<String, SourceError> {
    if link.starts_with('/') && !link.starts_with("//") {
        return Ok(link.to_string());
    }
    let url = reqwest::Url::parse(link).map_err(|e| SourceError::Protocol {
        endpoint: at.registry.clone(),
        message: format!("tag list: bad next link {link:?}: {e}"),
    })?;
    let authority = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    if authority != http::api_host(&at.registry) {
        return Err(SourceError::Protocol {
            endpoint: at.registry.clone(),
            message: format!("tag list: next link points to another host ({authority})"),
        });
    }
    Ok(match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    })
}

#[cfg(test)]
mod tests;
