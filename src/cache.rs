//! The content-addressed blob cache.
//!
//! Blobs live at `<cache>/blobs/sha256/<hex>`. A download streams into
//! `<hex>.partial-<unique>` beside it while the sha256 is computed and the
//! bytes are counted; it is renamed into place only when the size and digest
//! both match the descriptor, and deleted otherwise. A blob in the cache was
//! verified when it was written, so one download serves every target and
//! every later pass.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use sha2::Digest as _;
use tokio::io::AsyncWriteExt;

use crate::error::{Error, IoContext, Result};
use crate::reference::{Digest, ImageRef};
use crate::source::Source;

/// Marks partial downloads.
const PARTIAL: &str = ".partial-";

/// The blob cache.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// What a fetch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// The blob was already cached; nothing was downloaded.
    Cached,
    /// The blob was downloaded (this many bytes) and verified.
    Downloaded(u64),
}

impl Cache {
    /// A cache rooted at `root` (the cache directory).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Cache { root: root.into() }
    }

    fn blob_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    /// Where a blob lives once cached.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blob_dir().join(digest.hex())
    }

    /// Removes partial downloads left by a crash.
    pub fn clean_partials(&self) -> Result<usize> {
        let dir = self.blob_dir();
        let mut removed = 0;
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io("reading", dir, e)),
        };
        for entry in entries {
            let entry = entry.ctx("reading", &dir)?;
            if entry.file_name().to_string_lossy().contains(PARTIAL) {
                std::fs::remove_file(entry.path()).ctx("removing", entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Makes sure the blob `digest` of exactly `size` bytes is in the cache,
    /// downloading it from `source` if needed. `cap` bounds `size`.
    pub async fn fetch(
        &self,
        source: &impl Source,
        image: &ImageRef,
        digest: &Digest,
        size: u64,
        cap: u64,
    ) -> Result<Fetched> {
        let path = self.blob_path(digest);
        if let Ok(meta) = tokio::fs::metadata(&path).await {
            if meta.len() == size {
                return Ok(Fetched::Cached);
            }
            // A blob of the wrong size cannot be the verified one: replace it.
            tokio::fs::remove_file(&path).await.ctx("removing", &path)?;
        }
        if size > cap {
            return Err(Error::TooLarge {
                what: format!("layer {digest} of {image} ({size} bytes)"),
                limit: cap,
            });
        }
        let dir = self.blob_dir();
        tokio::fs::create_dir_all(&dir)
            .await
            .ctx("creating directory", &dir)?;
        let partial = dir.join(format!(
            "{}{PARTIAL}{}-{}",
            digest.hex(),
            std::process::id(),
            unique()
        ));
        let result = self.download(source, image, digest, size, &partial).await;
        match result {
            Ok(n) => {
                tokio::fs::rename(&partial, &path)
                    .await
                    .ctx("renaming", &partial)?;
                Ok(Fetched::Downloaded(n))
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                Err(e)
            }
        }
    }

    async fn download(
        &self,
        source: &impl Source,
        image: &ImageRef,
        digest: &Digest,
        size: u64,
        partial: &Path,
    ) -> Result<u64> {
        let mut stream = source.open_blob(image, digest, size).await?;
        let mut file = tokio::fs::File::create(partial)
            .await
            .ctx("creating", partial)?;
        let mut hasher = sha2::Sha256::new();
        let mut read: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| crate::source::SourceError::Network {
                endpoint: image.registry.clone(),
                message: format!("reading blob {digest}: {e}"),
            })?;
            read += chunk.len() as u64;
            if read > size {
                return Err(Error::TooLarge {
                    what: format!("blob {digest} of {image} (descriptor says {size} bytes)"),
                    limit: size,
                });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.ctx("writing", partial)?;
        }
        let actual = Digest::from_hasher(hasher);
        if read != size || actual != *digest {
            return Err(Error::DigestMismatch {
                what: format!("blob of {image} ({read} of {size} bytes)"),
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        file.sync_all().await.ctx("syncing", partial)?;
        Ok(read)
    }

    /// Deletes every cached blob not in `keep`. Returns how many were removed.
    pub fn collect_garbage(&self, keep: &HashSet<Digest>) -> Result<usize> {
        let dir = self.blob_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io("reading", dir, e)),
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry.ctx("reading", &dir)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Ok(digest) = format!("sha256:{name}").parse::<Digest>() else {
                continue;
            };
            if !keep.contains(&digest) {
                std::fs::remove_file(entry.path()).ctx("removing", entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// A per-process unique number for temporary names.
pub(crate) fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    (NEXT.fetch_add(1, Ordering::Relaxed) << 32) ^ nanos
}
