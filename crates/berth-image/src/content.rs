//! The content-addressed blob store: `<root>/blobs/sha256/<hex>`. Every blob is written to
//! `<root>/ingest/` first, hashed while it streams, synced, and renamed under its digest only
//! if the bytes match it: a half-written or corrupt blob never appears under a digest.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, HashingReader};

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("blob {0} not found")]
    NotFound(Digest),
    #[error("digest mismatch: expected {expected}, got {actual}")]
    Mismatch { expected: Digest, actual: Digest },
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    Size {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("blob {digest} is larger than the {limit}-byte limit")]
    TooLarge { digest: Digest, limit: u64 },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> ContentError + 'a {
    move |source| ContentError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// A blob being written: bytes go to a temp file in `ingest/`; [`Ingest::commit`] checks and
/// renames it. Dropped without commit, it leaves nothing.
pub struct Ingest {
    file: tempfile::NamedTempFile,
    final_path: PathBuf,
}

impl Write for Ingest {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Ingest {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.file.as_file().metadata().map(|m| m.len()).unwrap_or(0)
    }

    /// Commits the blob under `digest`, which its writer hashed while writing it (for blobs
    /// whose digest is known only at the end, such as a layer tar hashed while unpacking).
    pub fn commit_as(mut self, digest: &Digest) -> Result<(), ContentError> {
        self.final_path = self.final_path.with_file_name(digest.hex());
        self.commit(digest, digest)
    }

    /// Syncs and moves the blob under its digest; `actual` is what the writer hashed.
    pub fn commit(self, expected: &Digest, actual: &Digest) -> Result<(), ContentError> {
        if expected != actual {
            return Err(ContentError::Mismatch {
                expected: expected.clone(),
                actual: actual.clone(),
            });
        }
        let tmp = self.file.path().to_path_buf();
        self.file
            .as_file()
            .sync_all()
            .map_err(io("syncing", &tmp))?;
        self.file
            .persist(&self.final_path)
            .map_err(|e| ContentError::Io {
                action: "storing",
                path: self.final_path.clone(),
                source: e.error,
            })?;
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

impl ContentStore {
    pub fn new(root: &Path) -> ContentStore {
        ContentStore {
            root: root.to_path_buf(),
        }
    }

    pub fn path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    /// The blob's size if it is stored.
    pub fn size(&self, d: &Digest) -> Option<u64> {
        std::fs::metadata(self.path(d)).ok().map(|m| m.len())
    }

    /// Every stored blob's digest.
    pub fn list(&self) -> Vec<Digest> {
        std::fs::read_dir(self.root.join("blobs/sha256"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Digest::parse(&format!("sha256:{}", e.file_name().to_str()?)).ok())
            .collect()
    }

    /// Blobs being written when the process stopped (run at daemon start, when no write is
    /// under way): their temp files in `ingest/`.
    pub fn clean_ingest(&self) -> Vec<PathBuf> {
        let mut removed = Vec::new();
        for e in std::fs::read_dir(self.root.join("ingest"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if std::fs::remove_file(e.path()).is_ok() {
                removed.push(e.path());
            }
        }
        removed
    }

    /// Starts writing the blob `d`.
    pub fn ingest(&self, d: &Digest) -> Result<Ingest, ContentError> {
        let dir = self.root.join("ingest");
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let blobs = self.root.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).map_err(io("creating", &blobs))?;
        let file = tempfile::Builder::new()
            .prefix(d.hex())
            .tempfile_in(&dir)
            .map_err(io("creating a temp file in", &dir))?;
        Ok(Ingest {
            file,
            final_path: self.path(d),
        })
    }

    /// Stores what `r` yields as blob `expected`, refusing more than `limit` bytes, a size
    /// other than `size` (when known) and bytes that do not hash to `expected`.
    pub fn write_verified(
        &self,
        expected: &Digest,
        size: Option<u64>,
        limit: u64,
        r: impl Read,
    ) -> Result<u64, ContentError> {
        let mut ingest = self.ingest(expected)?;
        let mut hr = HashingReader::new(r.take(limit.saturating_add(1)));
        let tmp = ingest.file.path().to_path_buf();
        std::io::copy(&mut hr, &mut ingest).map_err(io("writing", &tmp))?;
        let (actual, n, _) = hr.finish();
        if n > limit {
            return Err(ContentError::TooLarge {
                digest: expected.clone(),
                limit,
            });
        }
        if let Some(want) = size.filter(|w| *w != n) {
            return Err(ContentError::Size {
                digest: expected.clone(),
                expected: want,
                actual: n,
            });
        }
        ingest.commit(expected, &actual)?;
        Ok(n)
    }

    /// Stores bytes this daemon made itself (manifests, configs); returns their digest.
    pub fn put(&self, bytes: &[u8]) -> Result<Digest, ContentError> {
        let d = Digest::of(bytes);
        if self.size(&d) != Some(bytes.len() as u64) {
            self.write_verified(&d, Some(bytes.len() as u64), bytes.len() as u64, bytes)?;
        }
        Ok(d)
    }

    pub fn open(&self, d: &Digest) -> Result<File, ContentError> {
        let p = self.path(d);
        File::open(&p).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ContentError::NotFound(d.clone()),
            _ => io("opening", &p)(e),
        })
    }

    /// Reads a whole (small) blob, refusing one over `limit` bytes.
    pub fn read(&self, d: &Digest, limit: u64) -> Result<Vec<u8>, ContentError> {
        let f = self.open(d)?;
        let mut buf = Vec::new();
        let p = self.path(d);
        f.take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(io("reading", &p))?;
        if buf.len() as u64 > limit {
            return Err(ContentError::TooLarge {
                digest: d.clone(),
                limit,
            });
        }
        Ok(buf)
    }

    /// Removes a blob; absent is fine.
    pub fn delete(&self, d: &Digest) -> Result<(), ContentError> {
        let p = self.path(d);
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("removing", &p)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_verified_bytes_land_under_a_digest() {
        let dir = tempfile::tempdir().unwrap();
        let cs = ContentStore::new(dir.path());
        let d = cs.put(b"hello").unwrap();
        assert_eq!(cs.read(&d, 100).unwrap(), b"hello");
        let other = Digest::of(b"other");
        let e = cs.write_verified(&other, None, 100, &b"not other"[..]);
        assert!(matches!(e, Err(ContentError::Mismatch { .. })), "{e:?}");
        assert!(cs.size(&other).is_none());
        let e = cs.write_verified(&other, Some(3), 100, &b"other"[..]);
        assert!(matches!(e, Err(ContentError::Size { .. })), "{e:?}");
        let e = cs.write_verified(&other, None, 2, &b"other"[..]);
        assert!(matches!(e, Err(ContentError::TooLarge { .. })), "{e:?}");
        assert!(matches!(cs.read(&d, 2), Err(ContentError::TooLarge { .. })));
        assert_eq!(
            std::fs::read_dir(dir.path().join("ingest"))
                .unwrap()
                .count(),
            0
        );
        cs.delete(&d).unwrap();
        assert!(matches!(cs.open(&d), Err(ContentError::NotFound(_))));
    }
}
