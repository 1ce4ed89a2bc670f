//! An OCI image layout directory as a source.
//!
//! The layout is the one `skopeo copy ... oci:DIR:REF` and skillctl's local
//! store write: `oci-layout`, `index.json` whose entries carry their name in
//! the `org.opencontainers.image.ref.name` annotation, and
//! `blobs/sha256/<hex>`. In `skills.toml` a layout is a registry alias:
//!
//! ```toml
//! [registries.local]
//! layout = "~/.local/share/skillctl/store"
//! [skills.hello]
//! image = "local/examples/hello-world"
//! ```
//!
//! Index entries named `REPOSITORY:TAG` belong to that repository (skillctl's
//! store, `skopeo copy ... oci:DIR:examples/hello-world:1.0.0`). Entries named
//! by a bare `TAG` belong to the layout as a whole, reached as `image =
//! "local"` with no repository path.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncReadExt;

use super::{BlobStream, Source, SourceError};
use crate::manifest::MAX_MANIFEST_SIZE;
use crate::reference::{Digest, ImageRef};

/// The annotation naming an index entry.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An OCI image layout on disk.
pub struct LayoutSource {
    root: PathBuf,
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    digest: String,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

impl LayoutSource {
    /// A layout rooted at `root`.
    pub fn new(root: PathBuf) -> Self {
        LayoutSource { root }
    }

    fn err(&self, reason: impl Into<String>) -> SourceError {
        SourceError::Layout {
            path: self.root.clone(),
            reason: reason.into(),
        }
    }

    /// Reads `index.json` and returns (tag, digest) for the repository.
    async fn entries(&self, image: &ImageRef) -> Result<Vec<(String, String)>, SourceError> {
        let path = self.root.join("index.json");
        let bytes = read_capped(&path, MAX_MANIFEST_SIZE).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                self.err("not an OCI image layout (index.json is missing)")
            } else {
                self.err(format!("reading index.json: {e}"))
            }
        })?;
        let index: Index = serde_json::from_slice(&bytes)
            .map_err(|e| self.err(format!("index.json is not a valid image index: {e}")))?;
        let mut out = Vec::new();
        for entry in index.manifests {
            let Some(name) = entry.annotations.get(REF_NAME) else {
                continue;
            };
            let tag = if image.repository.is_empty() {
                (!name.contains(':')).then(|| name.clone())
            } else {
                name.strip_prefix(image.repository.as_str())
                    .and_then(|rest| rest.strip_prefix(':'))
                    .map(str::to_string)
            };
            if let Some(tag) = tag {
                out.push((tag, entry.digest));
            }
        }
        Ok(out)
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(digest.hex())
    }
}

async fn read_capped(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    let file = tokio::fs::File::open(path).await?;
    let mut buf = Vec::new();
    file.take(cap + 1).read_to_end(&mut buf).await?;
    if buf.len() as u64 > cap {
        return Err(std::io::Error::other(format!("larger than {cap} bytes")));
    }
    Ok(buf)
}

impl Source for LayoutSource {
    fn endpoint(&self) -> String {
        self.root.display().to_string()
    }

    async fn list_tags(&self, image: &ImageRef) -> Result<Vec<String>, SourceError> {
        let entries = self.entries(image).await?;
        if entries.is_empty() {
            return Err(SourceError::NotFound {
                what: format!("repository {:?}", image.repository),
                endpoint: self.endpoint(),
            });
        }
        Ok(entries.into_iter().map(|(t, _)| t).collect())
    }

    async fn resolve_tag(&self, image: &ImageRef, tag: &str) -> Result<Digest, SourceError> {
        let entries = self.entries(image).await?;
        let (_, digest) =
            entries
                .into_iter()
                .find(|(t, _)| t == tag)
                .ok_or_else(|| SourceError::NotFound {
                    what: format!("tag {tag} of {:?}", image.repository),
                    endpoint: self.endpoint(),
                })?;
        digest
            .parse()
            .map_err(|e| self.err(format!("index.json entry for {tag}: {e}")))
    }

    async fn fetch_manifest(
        &self,
        _image: &ImageRef,
        digest: &Digest,
    ) -> Result<Vec<u8>, SourceError> {
        let path = self.blob_path(digest);
        read_capped(&path, MAX_MANIFEST_SIZE)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => SourceError::NotFound {
                    what: format!("manifest {digest}"),
                    endpoint: self.endpoint(),
                },
                _ => self.err(format!("reading manifest {digest}: {e}")),
            })
    }

    async fn open_blob(
        &self,
        _image: &ImageRef,
        digest: &Digest,
        _size: u64,
    ) -> Result<BlobStream, SourceError> {
        let path = self.blob_path(digest);
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => SourceError::NotFound {
                    what: format!("blob {digest}"),
                    endpoint: self.endpoint(),
                },
                _ => self.err(format!("opening blob {digest}: {e}")),
            })?;
        let stream = futures_util::stream::unfold(file, |mut file| async move {
            let mut buf = vec![0u8; 64 * 1024];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(bytes::Bytes::from(buf)), file))
                }
                Err(e) => Some((Err(e), file)),
            }
        });
        Ok(stream.boxed())
    }
}
