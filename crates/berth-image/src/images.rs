//! Image records: one JSON file per image (named by its id, the config digest) under
//! `<root>/`, written atomically. Tags and repo digests live in the records; a tag names one
//! image at a time (tagging moves it). Lookups accept what `docker` accepts: a full or short id
//! (with or without `sha256:`), a name with tag, or a name with digest.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::manifest::Descriptor;
use crate::reference::Reference;

/// One image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The config digest.
    pub id: Digest,
    /// Fully qualified tags (`docker.io/library/busybox:latest`).
    pub repo_tags: Vec<String>,
    /// Fully qualified `repo@sha256:…` of the manifests it was pulled or pushed as.
    pub repo_digests: Vec<String>,
    /// The platform manifest, as stored in the content store.
    pub manifest: Option<Descriptor>,
    /// Chain ids of its layers, bottom first.
    pub chain: Vec<Digest>,
    /// Bytes of unpacked content of all its layers.
    pub size: u64,
    /// When the image was built (from its config), RFC 3339.
    pub created: String,
    /// When this daemon stored it, unix seconds.
    pub stored_at: i64,
}

impl ImageRecord {
    /// Tags as `docker images` shows them (`busybox:latest`).
    pub fn familiar_tags(&self) -> Vec<String> {
        self.repo_tags
            .iter()
            .filter_map(|t| Reference::parse(t).ok())
            .map(|r| r.familiar())
            .collect()
    }

    pub fn familiar_digests(&self) -> Vec<String> {
        self.repo_digests
            .iter()
            .filter_map(|t| Reference::parse(t).ok())
            .map(|r| {
                let mut s = r.familiar_repository();
                if let Some(d) = r.digest() {
                    s.push('@');
                    s.push_str(d.as_str());
                }
                s
            })
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("No such image: {0}")]
    NotFound(String),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("image record {0} is corrupt")]
    Corrupt(PathBuf),
}

pub struct ImageStore {
    root: PathBuf,
    /// Serializes read-modify-write of records (tag moves touch two).
    lock: Mutex<()>,
}

impl ImageStore {
    pub fn new(root: &Path) -> ImageStore {
        ImageStore {
            root: root.to_path_buf(),
            lock: Mutex::new(()),
        }
    }

    fn path(&self, id: &Digest) -> PathBuf {
        self.root.join(format!("{}.json", id.hex()))
    }

    fn write(&self, rec: &ImageRecord) -> Result<(), ImageError> {
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| ImageError::Io {
                action,
                path,
                source,
            }
        };
        std::fs::create_dir_all(&self.root).map_err(io("creating", &self.root))?;
        let path = self.path(&rec.id);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(rec).unwrap_or_default())
            .map_err(io("writing", &tmp))?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io("syncing", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("storing", &path))
    }

    pub fn get(&self, id: &Digest) -> Option<ImageRecord> {
        let bytes = std::fs::read(self.path(id)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn list(&self) -> Vec<ImageRecord> {
        let Ok(rd) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut out: Vec<ImageRecord> = rd
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
            .collect();
        out.sort_by(|a, b| b.stored_at.cmp(&a.stored_at).then(a.id.cmp(&b.id)));
        out
    }

    /// Finds an image the way `docker` does; `NotFound` names what was asked for.
    pub fn resolve(&self, name: &str) -> Result<ImageRecord, ImageError> {
        let not_found = || ImageError::NotFound(name.to_string());
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        let is_hex = !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit());
        let all = self.list();
        if is_hex && hex.len() == 64 {
            if let Some(r) = all.iter().find(|r| r.id.hex() == hex) {
                return Ok(r.clone());
            }
        }
        if let Ok(reference) = Reference::parse(name) {
            let full = reference.to_string();
            let hit = all.iter().find(|r| match reference.digest() {
                Some(_) => r.repo_digests.iter().any(|d| {
                    Reference::parse(d).is_ok_and(|x| {
                        x.repository() == reference.repository() && x.digest() == reference.digest()
                    })
                }),
                None => r.repo_tags.contains(&full),
            });
            if let Some(r) = hit {
                return Ok(r.clone());
            }
        }
        // A short id: a unique prefix of at least one character, as Docker allows.
        if is_hex && hex.len() < 64 {
            let mut hits = all.iter().filter(|r| r.id.hex().starts_with(hex));
            if let (Some(r), None) = (hits.next(), hits.next()) {
                return Ok(r.clone());
            }
        }
        Err(not_found())
    }

    /// Stores a new image record, or merges tags and digests into the existing one; any tag it
    /// carries is moved off other images.
    pub fn put(&self, mut rec: ImageRecord) -> Result<ImageRecord, ImageError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = self.get(&rec.id) {
            for t in old.repo_tags {
                if !rec.repo_tags.contains(&t) {
                    rec.repo_tags.push(t);
                }
            }
            for d in old.repo_digests {
                if !rec.repo_digests.contains(&d) {
                    rec.repo_digests.push(d);
                }
            }
            rec.stored_at = old.stored_at.max(rec.stored_at);
        }
        self.steal_tags(&rec)?;
        self.write(&rec)?;
        Ok(rec)
    }

    fn steal_tags(&self, rec: &ImageRecord) -> Result<(), ImageError> {
        for mut other in self.list() {
            if other.id == rec.id {
                continue;
            }
            let before = other.repo_tags.len();
            other.repo_tags.retain(|t| !rec.repo_tags.contains(t));
            if other.repo_tags.len() != before {
                self.write(&other)?;
            }
        }
        Ok(())
    }

    /// Adds tag `to` to the image `id`.
    pub fn tag(&self, id: &Digest, to: &Reference) -> Result<ImageRecord, ImageError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut rec = self
            .get(id)
            .ok_or_else(|| ImageError::NotFound(id.to_string()))?;
        let t = to.to_string();
        if !rec.repo_tags.contains(&t) {
            rec.repo_tags.push(t);
        }
        self.steal_tags(&rec)?;
        self.write(&rec)?;
        Ok(rec)
    }

    /// Removes one tag or repo digest; returns the record as it is afterwards.
    pub fn untag(&self, id: &Digest, name: &Reference) -> Result<ImageRecord, ImageError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut rec = self
            .get(id)
            .ok_or_else(|| ImageError::NotFound(id.to_string()))?;
        let full = name.to_string();
        rec.repo_tags.retain(|t| *t != full);
        if name.digest().is_some() {
            rec.repo_digests.retain(|d| {
                !Reference::parse(d).is_ok_and(|x| {
                    x.repository() == name.repository() && x.digest() == name.digest()
                })
            });
        }
        self.write(&rec)?;
        Ok(rec)
    }

    /// Removes the record.
    pub fn delete(&self, id: &Digest) -> Result<(), ImageError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ImageError::Io {
                action: "removing",
                path,
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seed: &[u8], tags: &[&str]) -> ImageRecord {
        ImageRecord {
            id: Digest::of(seed),
            repo_tags: tags
                .iter()
                .map(|t| Reference::parse(t).unwrap().to_string())
                .collect(),
            repo_digests: vec![],
            manifest: None,
            chain: vec![],
            size: 0,
            created: String::new(),
            stored_at: 1,
        }
    }

    #[test]
    fn resolves_by_id_prefix_tag_and_moves_tags() {
        let dir = tempfile::tempdir().unwrap();
        let s = ImageStore::new(dir.path());
        let a = s.put(rec(b"a", &["busybox", "busybox:1"])).unwrap();
        let b = s.put(rec(b"b", &["other"])).unwrap();
        assert_eq!(s.resolve("busybox").unwrap().id, a.id);
        assert_eq!(s.resolve("docker.io/library/busybox:1").unwrap().id, a.id);
        assert_eq!(s.resolve(&a.id.hex()[..12]).unwrap().id, a.id);
        assert_eq!(s.resolve(a.id.as_str()).unwrap().id, a.id);
        assert!(matches!(s.resolve("nope"), Err(ImageError::NotFound(_))));
        assert_eq!(a.familiar_tags(), ["busybox:latest", "busybox:1"]);
        // Tagging b as busybox moves the tag.
        s.tag(&b.id, &Reference::parse("busybox").unwrap()).unwrap();
        assert_eq!(s.resolve("busybox").unwrap().id, b.id);
        assert_eq!(s.get(&a.id).unwrap().familiar_tags(), ["busybox:1"]);
        let a2 = s
            .untag(&a.id, &Reference::parse("busybox:1").unwrap())
            .unwrap();
        assert!(a2.repo_tags.is_empty());
        s.delete(&a.id).unwrap();
        assert_eq!(s.list().len(), 1);
    }
}
