//! Where skill images come from, behind one small trait.
//!
//! Two sources implement [`Source`]: a registry speaking the OCI distribution
//! API ([`registry`], over [`http`]), and an OCI image layout
//! directory ([`layout`]). The rest of the daemon never sees which one it
//! talks to. Sources only move bytes: every digest is verified by the caller
//! (the [`crate::cache`] and [`crate::reconcile`] modules), never trusted
//! from the source.
//!
//! Sources are built from [`SourceSettings`], which the caller fills in
//! (from the configuration, see `crate::config::sources`): this module
//! reads no configuration and knows of no module above it.

pub mod auth;
pub mod backoff;
mod http;
pub mod layout;
pub mod registries_conf;
pub mod registry;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::stream::BoxStream;

use crate::reference::{Digest, ImageRef};

/// Largest signature manifest, referrers index, payload or bundle read
/// (signatures are checked by `crate::verify`; the limit is applied while
/// reading).
pub const MAX_SIGNATURE_SIZE: u64 = 64 * 1024;

/// A stream of blob bytes.
pub type BlobStream = BoxStream<'static, Result<bytes::Bytes, std::io::Error>>;

/// A failure talking to a registry or reading a layout.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The tag, manifest, blob or repository does not exist.
    #[error("{what} not found at {endpoint}")]
    NotFound {
        /// What was asked for (`tag 1.0.0 of examples/x`, ...).
        what: String,
        /// The registry host or layout path.
        endpoint: String,
    },
    /// The registry refused our credentials (or wants some).
    #[error("unauthorized at {endpoint}: {hint}")]
    Unauthorized {
        /// The registry host.
        endpoint: String,
        /// Which credentials were refused, or where none were found.
        hint: String,
    },
    /// The registry answered with an error status.
    #[error("{endpoint} answered {status} for {what}: {message}")]
    Status {
        /// The registry host.
        endpoint: String,
        /// What was asked for.
        what: String,
        /// HTTP status code.
        status: u16,
        /// The registry's message, shortened.
        message: String,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<std::time::Duration>,
    },
    /// The endpoint failed recently and is left alone until its next try
    /// (see [`backoff`]); no request was made.
    #[error(
        "registry {endpoint} unavailable since {}, next try at {}: {cause}",
        humantime::format_rfc3339_seconds(*since),
        humantime::format_rfc3339_seconds(*next_try)
    )]
    Unavailable {
        /// The registry or mirror host.
        endpoint: String,
        /// When the outage began.
        since: std::time::SystemTime,
        /// When it is asked again.
        next_try: std::time::SystemTime,
        /// The last failure.
        cause: String,
    },
    /// The registry could not be reached or the connection failed.
    #[error("cannot reach {endpoint}: {message}")]
    Network {
        /// The registry host.
        endpoint: String,
        /// The transport error, with its causes.
        message: String,
    },
    /// The registry broke the protocol.
    #[error("{endpoint}: {message}")]
    Protocol {
        /// The registry host.
        endpoint: String,
        /// What went wrong.
        message: String,
    },
    /// An OCI layout directory is unreadable or malformed.
    #[error("OCI layout {path}: {reason}")]
    Layout {
        /// The layout directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The configuration names a source that cannot be built.
    #[error("registry {endpoint}: {reason}")]
    Setup {
        /// The registry key.
        endpoint: String,
        /// What is wrong.
        reason: String,
    },
}

impl SourceError {
    /// True when retrying later might help (network and server errors).
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Network { .. } | SourceError::Unavailable { .. } => true,
            SourceError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// How long the server asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            SourceError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// What a source can do. Every method is read-only.
pub trait Source: Send + Sync {
    /// Where this source is, for status and errors (`127.0.0.1:5000`,
    /// `/path/to/layout`).
    fn endpoint(&self) -> String;

    /// The endpoint that answered for `image` last (a mirror, or the
    /// registry itself), for status.
    fn served_by(&self, image: &ImageRef) -> Option<String> {
        let _ = image;
        None
    }

    /// Every tag of the repository (in no particular order).
    fn list_tags(
        &self,
        image: &ImageRef,
    ) -> impl Future<Output = Result<Vec<String>, SourceError>> + Send;

    /// The digest a tag points to now (a HEAD on a registry).
    fn resolve_tag(
        &self,
        image: &ImageRef,
        tag: &str,
    ) -> impl Future<Output = Result<Digest, SourceError>> + Send;

    /// The raw bytes of a manifest or index, by digest. At most
    /// [`crate::manifest::MAX_MANIFEST_SIZE`] bytes; the caller verifies
    /// the digest.
    fn fetch_manifest(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> impl Future<Output = Result<Vec<u8>, SourceError>> + Send;

    /// A stream of a blob's bytes, by digest; the caller verifies digest
    /// and size while reading.
    fn open_blob(
        &self,
        image: &ImageRef,
        digest: &Digest,
        size: u64,
    ) -> impl Future<Output = Result<BlobStream, SourceError>> + Send;

    /// The referrers of `digest` (an OCI image index, raw JSON) through the
    /// distribution API's referrers endpoint, or `None` when this source
    /// has none (the caller then reads the `sha256-<hex>` tag).
    fn referrers(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, SourceError>> + Send {
        let _ = (image, digest);
        async { Ok(None) }
    }
}

/// Either kind of source.
pub enum AnySource<'a> {
    /// A registry.
    Registry(&'a registry::RegistrySource),
    /// An OCI image layout.
    Layout(&'a layout::LayoutSource),
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnySource::Registry($s) => $e,
            AnySource::Layout($s) => $e,
        }
    };
}

impl Source for AnySource<'_> {
    fn endpoint(&self) -> String {
        delegate!(self, s => s.endpoint())
    }
    fn served_by(&self, image: &ImageRef) -> Option<String> {
        delegate!(self, s => s.served_by(image))
    }
    async fn list_tags(&self, image: &ImageRef) -> Result<Vec<String>, SourceError> {
        delegate!(self, s => s.list_tags(image).await)
    }
    async fn resolve_tag(&self, image: &ImageRef, tag: &str) -> Result<Digest, SourceError> {
        delegate!(self, s => s.resolve_tag(image, tag).await)
    }
    async fn fetch_manifest(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<Vec<u8>, SourceError> {
        delegate!(self, s => s.fetch_manifest(image, digest).await)
    }
    async fn open_blob(
        &self,
        image: &ImageRef,
        digest: &Digest,
        size: u64,
    ) -> Result<BlobStream, SourceError> {
        delegate!(self, s => s.open_blob(image, digest, size).await)
    }
    async fn referrers(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<Option<Vec<u8>>, SourceError> {
        delegate!(self, s => s.referrers(image, digest).await)
    }
}

/// What the sources are built from: the configuration's registry settings,
/// its timeouts and the home directory credentials are looked up under.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    /// Every registry or layout alias the configuration names, by key
    /// (`host[:port]`, or the alias of a layout).
    pub endpoints: BTreeMap<String, EndpointSettings>,
    /// How long one registry request may take.
    pub request_timeout: Duration,
    /// How often skills are polled (bounds how long a registry's
    /// `Retry-After` is honoured).
    pub poll_interval: Duration,
    /// The user's home directory (for `auth.json`, `config.json` and
    /// `registries.conf`).
    pub home: PathBuf,
}

/// What the sources need to know of one registry or layout alias.
#[derive(Debug, Clone, Default)]
pub struct EndpointSettings {
    /// Plain HTTP to this host:port.
    pub insecure: bool,
    /// When set, the key is an alias for this OCI image layout directory.
    pub layout: Option<PathBuf>,
    /// Credentials come from this file only.
    pub auth_file: Option<PathBuf>,
    /// PEM certificates this registry's TLS certificate is checked against,
    /// besides the system's.
    pub ca_file: Option<PathBuf>,
    /// `host[:port]`s tried, in order, before this registry.
    pub mirrors: Vec<String>,
    /// Requests in flight to this registry at most.
    pub max_requests: Option<usize>,
    /// Requests started per second at most.
    pub requests_per_second: Option<f64>,
}

/// The PEM of every endpoint's `ca_file`.
fn read_cas(endpoints: &BTreeMap<String, EndpointSettings>) -> Result<Vec<Vec<u8>>, SourceError> {
    let mut cas = Vec::new();
    for (key, r) in endpoints {
        if let Some(file) = &r.ca_file {
            let pem = std::fs::read(file).map_err(|e| SourceError::Setup {
                endpoint: key.clone(),
                reason: format!("reading ca_file {}: {e}", file.display()),
            })?;
            cas.push(pem);
        }
    }
    Ok(cas)
}

/// The routes of `registries.conf`, with the mirrors of `endpoints` in
/// place of what it says of the same hosts.
fn routes(
    endpoints: &BTreeMap<String, EndpointSettings>,
    home: &std::path::Path,
) -> Result<Vec<registries_conf::Route>, SourceError> {
    let mut routes = registries_conf::load(&registries_conf::files(
        |k| std::env::var_os(k),
        home,
        std::path::Path::new("/etc/containers"),
    ))
    .map_err(|e| SourceError::Setup {
        endpoint: "registries.conf".into(),
        reason: e.to_string(),
    })?;
    // skills.toml's mirrors replace what registries.conf says of a host.
    for (key, r) in endpoints.iter().filter(|(_, r)| !r.mirrors.is_empty()) {
        routes.retain(|route| route.prefix != *key);
        routes.push(registries_conf::Route {
            prefix: key.clone(),
            location: key.clone(),
            mirrors: r
                .mirrors
                .iter()
                .map(|m| registries_conf::Mirror {
                    location: m.clone(),
                    insecure: false,
                    pull: registries_conf::PullFrom::All,
                })
                .collect(),
            blocked: false,
            insecure: false,
        });
    }
    Ok(routes)
}

/// Every source a configuration names, built once per configuration.
pub struct Sources {
    registry: registry::RegistrySource,
    layouts: BTreeMap<String, layout::LayoutSource>,
}

impl Sources {
    /// Builds the sources that `settings` describe.
    pub fn new(settings: &SourceSettings) -> Result<Sources, SourceError> {
        let endpoints = &settings.endpoints;
        let insecure = endpoints
            .iter()
            .filter(|(_, r)| r.insecure)
            .map(|(k, _)| k.clone())
            .collect();
        // A mirror is an endpoint of its own: `[registries."MIRROR"]` can
        // mark it insecure, give it credentials and a CA.
        let layouts = endpoints
            .iter()
            .filter_map(|(k, r)| {
                r.layout
                    .as_ref()
                    .map(|p| (k.clone(), layout::LayoutSource::new(p.clone())))
            })
            .collect();
        let auth_files = endpoints
            .iter()
            .filter_map(|(k, r)| r.auth_file.clone().map(|f| (k.clone(), f)))
            .collect();
        let options = registry::RegistryOptions {
            insecure,
            home: settings.home.clone(),
            auth_files,
            cas: read_cas(endpoints)?,
            deadline: settings.request_timeout,
            routes: routes(endpoints, &settings.home)?,
            max_requests: endpoints
                .iter()
                .filter_map(|(k, r)| r.max_requests.map(|n| (k.clone(), n)))
                .collect(),
            requests_per_second: endpoints
                .iter()
                .filter_map(|(k, r)| r.requests_per_second.map(|n| (k.clone(), n)))
                .collect(),
            poll_interval: settings.poll_interval,
        };
        Ok(Sources {
            registry: registry::RegistrySource::new(options)?,
            layouts,
        })
    }

    /// Takes over what `earlier` (the sources of the config before a
    /// reload) knows of registries that are down or rate-limit us.
    pub fn carry_over(&self, earlier: &Sources) {
        self.registry.carry_over(&earlier.registry);
    }

    /// When every endpoint of `image` waits out a failure (see
    /// [`backoff`]): the earliest time one is asked again.
    pub fn next_try(&self, image: &ImageRef) -> Option<std::time::SystemTime> {
        match self.for_image(image) {
            AnySource::Registry(r) => r.next_try(image),
            AnySource::Layout(_) => None,
        }
    }

    /// The source that serves an image.
    pub fn for_image(&self, image: &ImageRef) -> AnySource<'_> {
        match self.layouts.get(&image.registry) {
            Some(l) => AnySource::Layout(l),
            None => AnySource::Registry(&self.registry),
        }
    }
}
