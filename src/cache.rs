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

/// Cached manifests not referenced by the state are kept this long after
/// their last use, so a poll that keeps meeting the same manifests (a
/// deprecated newer version, say) does not fetch them again.
pub const MANIFEST_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

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

    fn manifest_dir(&self) -> PathBuf {
        self.root.join("manifests").join("sha256")
    }

    /// A manifest or index verified earlier, if cached. The bytes are checked
    /// against the digest again (they are small), and the file's time is
    /// refreshed so garbage collection keeps manifests still being polled.
    pub fn read_manifest(&self, digest: &Digest) -> Option<Vec<u8>> {
        let path = self.manifest_dir().join(digest.hex());
        let bytes = std::fs::read(&path).ok()?;
        if Digest::of(&bytes) != *digest {
            let _ = std::fs::remove_file(&path);
            return None;
        }
        if let Ok(f) = std::fs::File::options().append(true).open(&path) {
            let _ = f.set_modified(std::time::SystemTime::now());
        }
        Some(bytes)
    }

    /// Keeps a manifest or index whose digest the caller has verified.
    /// Not fsynced: a manifest lost in a crash is fetched again, and one
    /// damaged is caught by the digest check on read.
    pub fn store_manifest(&self, digest: &Digest, bytes: &[u8]) -> Result<()> {
        let path = self.manifest_dir().join(digest.hex());
        crate::fs::write_bytes_atomic(&path, bytes, crate::fs::Options::CACHED)?;
        Ok(())
    }

    /// Removes partial downloads and temporary manifest files left by a
    /// crash.
    pub fn clean_partials(&self) -> Result<usize> {
        remove_temporaries(&self.manifest_dir())?;
        let dir = self.blob_dir();
        let mut removed = 0;
        let Some(entries) = read_dir_if_exists(&dir)? else {
            return Ok(0);
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
        let prefix = format!("{}{PARTIAL}{}-", digest.hex(), std::process::id());
        let partial = crate::error::blocking("creating a partial download", move || {
            crate::fs::temp_in(&dir, &prefix, Some(0o666))
        })
        .await??;
        // A server that trickles bytes is cut off: 5 minutes plus what the
        // blob takes at 128 KiB/s.
        let deadline = std::time::Duration::from_secs(300 + size / (128 * 1024));
        let n = match tokio::time::timeout(
            deadline,
            self.download(source, image, digest, size, partial.path()),
        )
        .await
        {
            Ok(r) => r?,
            Err(_) => {
                return Err(Error::Source(crate::source::SourceError::Network {
                    endpoint: image.registry.clone(),
                    message: format!(
                        "blob {digest} did not finish downloading within {}s",
                        deadline.as_secs()
                    ),
                }))
            }
        };
        // The contents are fsynced before the name appears: a later fetch
        // trusts a blob of the right size.
        crate::error::blocking("moving a blob into the cache", move || {
            crate::fs::persist(partial, &path, crate::fs::Durability::Contents)
        })
        .await??;
        Ok(Fetched::Downloaded(n))
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
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .open(partial)
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
        file.flush().await.ctx("writing", partial)?;
        Ok(read)
    }

    /// Deletes every cached blob not in `keep`, and every cached manifest
    /// not in `keep` that was not read for [`MANIFEST_TTL`]. Returns how many
    /// files were removed.
    pub fn collect_garbage(&self, keep: &HashSet<Digest>) -> Result<usize> {
        let mut removed = Self::sweep(&self.blob_dir(), keep, None)?;
        removed += Self::sweep(&self.manifest_dir(), keep, Some(MANIFEST_TTL))?;
        Ok(removed)
    }

    fn sweep(
        dir: &Path,
        keep: &HashSet<Digest>,
        ttl: Option<std::time::Duration>,
    ) -> Result<usize> {
        let Some(entries) = read_dir_if_exists(dir)? else {
            return Ok(0);
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry.ctx("reading", dir)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Ok(digest) = format!("sha256:{name}").parse::<Digest>() else {
                continue;
            };
            let fresh = ttl.is_some_and(|ttl| {
                entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age < ttl)
            });
            if !keep.contains(&digest) && !fresh {
                std::fs::remove_file(entry.path()).ctx("removing", entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Removes the `.tmp-*` files an atomic write leaves behind when the process
/// dies before its rename. Returns how many were removed.
pub fn remove_temporaries(dir: &Path) -> Result<usize> {
    let Some(entries) = read_dir_if_exists(dir)? else {
        return Ok(0);
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.ctx("reading", dir)?;
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file
            && entry
                .file_name()
                .to_string_lossy()
                .starts_with(crate::fs::TEMP_PREFIX)
        {
            std::fs::remove_file(entry.path()).ctx("removing", entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// A directory's entries, or `None` when it does not exist (yet).
fn read_dir_if_exists(dir: &Path) -> Result<Option<std::fs::ReadDir>> {
    match std::fs::read_dir(dir) {
        Ok(e) => Ok(Some(e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading", dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::layout::LayoutSource;

    /// A layout directory holding `blobs`, and a cache beside it.
    fn setup(blobs: &[&[u8]]) -> (tempfile::TempDir, LayoutSource, Cache, ImageRef) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("layout/blobs/sha256");
        std::fs::create_dir_all(&dir).unwrap();
        for b in blobs {
            std::fs::write(dir.join(Digest::of(b).hex()), b).unwrap();
        }
        let source = LayoutSource::new(tmp.path().join("layout"));
        let cache = Cache::new(tmp.path().join("cache"));
        (tmp, source, cache, "local/x".parse().unwrap())
    }

    fn names(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn downloads_once_then_serves_from_the_cache() {
        let blob = b"layer bytes".as_slice();
        let (_t, source, cache, image) = setup(&[blob]);
        let d = Digest::of(blob);
        let n = blob.len() as u64;
        assert_eq!(
            cache.fetch(&source, &image, &d, n, 1 << 20).await.unwrap(),
            Fetched::Downloaded(n)
        );
        assert_eq!(
            cache.fetch(&source, &image, &d, n, 1 << 20).await.unwrap(),
            Fetched::Cached
        );
        assert_eq!(std::fs::read(cache.blob_path(&d)).unwrap(), blob);
    }

    #[tokio::test]
    async fn rejects_wrong_sizes_and_digests_and_keeps_nothing() {
        let blob = b"layer bytes".as_slice();
        let (_t, source, cache, image) = setup(&[blob]);
        let d = Digest::of(blob);
        let n = blob.len() as u64;
        // The descriptor says fewer bytes than the source sends.
        let err = cache
            .fetch(&source, &image, &d, n - 1, 1 << 20)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::TooLarge { .. }), "{err}");
        // More bytes than sent: a short read.
        let err = cache
            .fetch(&source, &image, &d, n + 1, 1 << 20)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        // Over the cap: refused before any byte is read.
        let err = cache
            .fetch(&source, &image, &d, n, n - 1)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::TooLarge { .. }), "{err}");
        assert!(
            names(&cache.blob_dir()).is_empty(),
            "{:?}",
            names(&cache.blob_dir())
        );
    }

    #[test]
    fn manifests_are_verified_on_read_and_garbage_is_collected() {
        let (_t, _source, cache, _image) = setup(&[]);
        let m = b"{\"schemaVersion\":2}".as_slice();
        let d = Digest::of(m);
        cache.store_manifest(&d, m).unwrap();
        assert_eq!(cache.read_manifest(&d).as_deref(), Some(m));
        std::fs::write(cache.manifest_dir().join(d.hex()), b"tampered").unwrap();
        assert_eq!(
            cache.read_manifest(&d),
            None,
            "a damaged manifest is dropped"
        );

        let dir = cache.blob_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let (keep, drop) = (Digest::of(b"keep"), Digest::of(b"drop"));
        std::fs::write(dir.join(keep.hex()), b"keep").unwrap();
        std::fs::write(dir.join(drop.hex()), b"drop").unwrap();
        std::fs::write(dir.join(format!("{}.partial-1-2", drop.hex())), b"dr").unwrap();
        assert_eq!(cache.clean_partials().unwrap(), 1);
        assert_eq!(
            cache
                .collect_garbage(&HashSet::from([keep.clone()]))
                .unwrap(),
            1
        );
        assert_eq!(names(&dir), vec![keep.hex().to_string()]);
    }
}
