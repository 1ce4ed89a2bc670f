//! A registry speaking the OCI distribution API, through `oci-client`.
//!
//! All of `oci-client`'s quirks stay in this file (see DESIGN.md): it trusts
//! `Docker-Content-Digest` (we only use that to learn which digest a tag
//! names, then pull by digest and verify locally), it does not cap sizes (we
//! cap manifests here and blobs in the cache), and it knows nothing of
//! retries (the daemon's scheduler backs off).

use std::time::Duration;

use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::{BlobStream, Source, SourceError};
use crate::manifest::{ACCEPTED_MANIFEST_TYPES, MAX_MANIFEST_SIZE};
use crate::reference::{Digest, ImageRef};

/// Registries reached over the network.
pub struct RegistrySource {
    client: Client,
}

impl RegistrySource {
    /// Builds a client; `insecure` lists the `host:port`s spoken to over
    /// plain HTTP.
    pub fn new(insecure: Vec<String>) -> Result<Self, SourceError> {
        // Rustls needs a process-wide crypto provider; installing it twice is
        // harmless (the second call reports the first one is in place).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(insecure),
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            user_agent: concat!("skillsyncd/", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        };
        let client = Client::try_from(config).map_err(|e| SourceError::Setup {
            endpoint: "registry client".into(),
            reason: e.to_string(),
        })?;
        Ok(RegistrySource { client })
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
        | OciDistributionError::AuthenticationFailure(_) => SourceError::Unauthorized { endpoint },
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
                SourceError::Unauthorized { endpoint }
            } else {
                SourceError::Protocol {
                    endpoint,
                    message: format!("{what}: {envelope}"),
                }
            }
        }
        OciDistributionError::ServerError { code, message, .. } => match code {
            404 => SourceError::NotFound { what, endpoint },
            401 | 403 => SourceError::Unauthorized { endpoint },
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
            endpoint,
            message: chain(&e),
        },
        other => SourceError::Protocol {
            endpoint,
            message: format!("{what}: {other}"),
        },
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

    async fn list_tags(&self, image: &ImageRef) -> Result<Vec<String>, SourceError> {
        let r = reference(image, "latest");
        let resp = self
            .client
            .list_tags(&r, &RegistryAuth::Anonymous, None, None)
            .await
            .map_err(|e| convert(image, format!("tag list of {}", image.repository), e))?;
        Ok(resp.tags)
    }

    async fn resolve_tag(&self, image: &ImageRef, tag: &str) -> Result<Digest, SourceError> {
        let r = reference(image, tag);
        let digest = self
            .client
            .fetch_manifest_digest(&r, &RegistryAuth::Anonymous)
            .await
            .map_err(|e| convert(image, format!("tag {tag} of {}", image.repository), e))?;
        digest.parse().map_err(|e| SourceError::Protocol {
            endpoint: image.registry.clone(),
            message: format!("tag {tag}: {e}"),
        })
    }

    async fn fetch_manifest(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<Vec<u8>, SourceError> {
        let r = by_digest(image, digest);
        let (bytes, _) = self
            .client
            .pull_manifest_raw(&r, &RegistryAuth::Anonymous, ACCEPTED_MANIFEST_TYPES)
            .await
            .map_err(|e| convert(image, format!("manifest {digest}"), e))?;
        if bytes.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(SourceError::Protocol {
                endpoint: image.registry.clone(),
                message: format!("manifest {digest} is larger than {MAX_MANIFEST_SIZE} bytes"),
            });
        }
        Ok(bytes.to_vec())
    }

    async fn open_blob(
        &self,
        image: &ImageRef,
        digest: &Digest,
        size: u64,
    ) -> Result<BlobStream, SourceError> {
        let r = by_digest(image, digest);
        let desc = OciDescriptor {
            digest: digest.to_string(),
            size: i64::try_from(size).unwrap_or(i64::MAX),
            ..Default::default()
        };
        let stream = self
            .client
            .pull_blob_stream(&r, &desc)
            .await
            .map_err(|e| convert(image, format!("blob {digest}"), e))?;
        Ok(stream.stream.boxed())
    }
}
