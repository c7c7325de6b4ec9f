//! Unpacked layers, one directory per chain id: `<root>/<chain hex>/diff/` (an overlayfs lower
//! dir) and `layer.json` ([`LayerInfo`]). A layer is unpacked into a temporary directory beside
//! them and renamed into place whole, so a layer directory is either complete or absent; two
//! pulls racing for the same layer both succeed and one copy is kept. Layers are shared by every
//! image whose chain contains them; what references them is the image records' business.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// What is known of one stored layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    pub chain_id: Digest,
    pub diff_id: Digest,
    pub parent: Option<Digest>,
    /// Bytes of file content unpacked.
    pub size: u64,
    /// The compressed blob it came from, if it came from one (kept in the content store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<crate::manifest::Descriptor>,
}

#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {source}")]
pub struct LayerError {
    action: &'static str,
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

fn err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> LayerError + 'a {
    move |source| LayerError {
        action,
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone)]
pub struct LayerStore {
    root: PathBuf,
}

/// A layer being unpacked; dropped without [`PendingLayer::commit`], it leaves nothing.
pub struct PendingLayer {
    dir: tempfile::TempDir,
    target: PathBuf,
}

impl PendingLayer {
    /// Where to unpack.
    pub fn diff_dir(&self) -> PathBuf {
        self.dir.path().join("diff")
    }

    /// Changes where the layer will be stored (when its chain id is known only after unpacking).
    pub fn retarget(&mut self, target: PathBuf) {
        self.target = target;
    }

    /// Moves the complete layer into place. Returns false if an identical layer got there first
    /// (this copy is then discarded).
    pub fn commit(self, info: &LayerInfo) -> Result<bool, LayerError> {
        let meta = self.dir.path().join("layer.json");
        std::fs::write(&meta, serde_json::to_vec(info).unwrap_or_default())
            .map_err(err("writing", &meta))?;
        let tmp = self.dir.keep();
        match std::fs::rename(&tmp, &self.target) {
            Ok(()) => Ok(true),
            Err(e) if self.target.join("layer.json").exists() => {
                let _ = e;
                let _ = std::fs::remove_dir_all(&tmp);
                Ok(false)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                Err(err("storing", &self.target)(e))
            }
        }
    }
}

impl LayerStore {
    pub fn new(root: &Path) -> LayerStore {
        LayerStore {
            root: root.to_path_buf(),
        }
    }

    pub fn dir(&self, chain: &Digest) -> PathBuf {
        self.root.join(chain.hex())
    }

    /// The overlayfs lower dir of a layer.
    pub fn diff_dir(&self, chain: &Digest) -> PathBuf {
        self.dir(chain).join("diff")
    }

    pub fn info(&self, chain: &Digest) -> Option<LayerInfo> {
        let bytes = std::fs::read(self.dir(chain).join("layer.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn exists(&self, chain: &Digest) -> bool {
        self.info(chain).is_some()
    }

    /// Starts a layer that will be stored as `chain`.
    pub fn begin(&self, chain: &Digest) -> Result<PendingLayer, LayerError> {
        std::fs::create_dir_all(&self.root).map_err(err("creating", &self.root))?;
        let dir = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempdir_in(&self.root)
            .map_err(err("creating a temp dir in", &self.root))?;
        let diff = dir.path().join("diff");
        std::fs::create_dir(&diff).map_err(err("creating", &diff))?;
        Ok(PendingLayer {
            dir,
            target: self.dir(chain),
        })
    }

    /// Every stored layer's chain id.
    pub fn list(&self) -> Vec<Digest> {
        let Ok(rd) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| {
                Digest::parse(&format!("sha256:{}", e.file_name().to_string_lossy())).ok()
            })
            .collect()
    }

    /// Removes a layer (absent is fine).
    pub fn remove(&self, chain: &Digest) -> Result<(), LayerError> {
        let dir = self.dir(chain);
        // Rename first so a half-removed layer never looks complete.
        let doomed = self.root.join(format!(".rm-{}", chain.hex()));
        match std::fs::rename(&dir, &doomed) {
            Ok(()) => std::fs::remove_dir_all(&doomed).map_err(err("removing", &doomed)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(err("removing", &dir)(e)),
        }
    }

    /// Removes leftovers of interrupted unpacks and removals (run at daemon start).
    pub fn clean_temporaries(&self) {
        let Ok(rd) = std::fs::read_dir(&self.root) else {
            return;
        };
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(".tmp-") || n.starts_with(".rm-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_appears_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let ls = LayerStore::new(dir.path());
        let chain = Digest::of(b"x");
        let info = LayerInfo {
            chain_id: chain.clone(),
            diff_id: chain.clone(),
            parent: None,
            size: 1,
            blob: None,
        };
        let p = ls.begin(&chain).unwrap();
        std::fs::write(p.diff_dir().join("f"), b"1").unwrap();
        assert!(!ls.exists(&chain));
        drop(p);
        assert!(ls.list().is_empty(), "an abandoned layer leaves nothing");
        let p = ls.begin(&chain).unwrap();
        let q = ls.begin(&chain).unwrap();
        std::fs::write(p.diff_dir().join("f"), b"1").unwrap();
        assert!(p.commit(&info).unwrap());
        assert!(!q.commit(&info).unwrap(), "the second copy is dropped");
        assert_eq!(ls.list(), std::slice::from_ref(&chain));
        assert_eq!(ls.info(&chain).unwrap(), info);
        assert_eq!(std::fs::read(ls.diff_dir(&chain).join("f")).unwrap(), b"1");
        ls.remove(&chain).unwrap();
        assert!(ls.list().is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
