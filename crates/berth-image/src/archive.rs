//! `docker save` and `docker load`. Save writes what Docker 25+ writes: an OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/…` with uncompressed layer tars, configs and OCI
//! manifests) plus the docker-archive `manifest.json` pointing into the same blobs, so both
//! old and new `docker load` read it. Load reads that, older docker-archives (`<id>/layer.tar`,
//! symlinked duplicates) and plain OCI layouts: the tar is first unpacked into a private
//! directory (only the names those formats use; nothing else is written), then every image is
//! stored like an import — each layer unpacked and checked against the config's diff ids, its
//! plain tar kept as its blob. A failed load leaves the stores as they were.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::content::ContentError;
use crate::digest::{Digest, HashingWriter};
use crate::images::{ImageError, ImageRecord};
use crate::layers::{LayerError, LayerInfo};
use crate::manifest::{self, Descriptor, ImageConfig, ManifestError};
use crate::reference::Reference;
use crate::service::ImageService;
use crate::unpack::{self, UnpackError};

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("layer {layer}: {source}")]
    Unpack {
        layer: String,
        #[source]
        source: UnpackError,
    },
    #[error("invalid archive: {0}")]
    Invalid(String),
    #[error("layer {0} has no stored blob and its directory no longer gives the same tar")]
    Unreproducible(Digest),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ArchiveError {
    let what = what.into();
    move |source| ArchiveError::Io { what, source }
}

/// Largest JSON document read from an archive.
const MAX_JSON: u64 = 8 << 20;

/// Appends a file entry of `size` bytes read from `data`.
fn append(
    b: &mut tar::Builder<impl Write>,
    name: &str,
    size: u64,
    data: impl Read,
) -> Result<(), ArchiveError> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    b.append_data(&mut h, name, data)
        .map_err(io(format!("writing {name}")))
}

impl ImageService {
    /// The plain tar of a stored layer: a file and its size.
    fn plain_layer(&self, chain: &Digest) -> Result<(std::fs::File, u64), ArchiveError> {
        let info = self
            .layers
            .info(chain)
            .ok_or_else(|| ArchiveError::Invalid(format!("layer {chain} is not stored")))?;
        if let Some(blob) = info.blob.filter(|b| self.content.size(&b.digest).is_some()) {
            let f = self.content.open(&blob.digest)?;
            if blob.digest == info.diff_id {
                return Ok((f, blob.size));
            }
            let (_, mut plain) =
                unpack::decompress(f).map_err(io(format!("decompressing {}", blob.digest)))?;
            let mut tmp = tempfile::tempfile().map_err(io("creating a temp file"))?;
            let n = std::io::copy(&mut plain, &mut tmp)
                .map_err(io(format!("decompressing {}", blob.digest)))?;
            tmp.rewind().map_err(io("rewinding a temp file"))?;
            return Ok((tmp, n));
        }
        let tmp = tempfile::tempfile().map_err(io("creating a temp file"))?;
        let mut hw = HashingWriter::new(tmp);
        crate::layer_tar::write_layer(&self.layers.diff_dir(chain), &mut hw)
            .map_err(io(format!("packing layer {chain}")))?;
        let (digest, mut tmp) = hw.finish();
        if digest != info.diff_id {
            return Err(ArchiveError::Unreproducible(chain.clone()));
        }
        let n = tmp.stream_position().map_err(io("measuring a temp file"))?;
        tmp.rewind().map_err(io("rewinding a temp file"))?;
        Ok((tmp, n))
    }

    /// Writes `images` (each with the names it is saved under) as one archive to `out`.
    pub fn save(
        &self,
        images: &[(ImageRecord, Vec<Reference>)],
        out: impl Write,
    ) -> Result<(), ArchiveError> {
        let mut b = tar::Builder::new(out);
        let mut written: HashSet<Digest> = HashSet::new();
        let mut index = Vec::new();
        let mut docker_manifest = Vec::new();
        for dir in ["blobs/", "blobs/sha256/"] {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_mtime(0);
            h.set_size(0);
            b.append_data(&mut h, dir, std::io::empty())
                .map_err(io("writing the archive"))?;
        }
        let blob_name = |d: &Digest| format!("blobs/sha256/{}", d.hex());
        for (rec, names) in images {
            let config = self.content.read(&rec.id, manifest::MAX_CONFIG)?;
            let parsed = ImageConfig::parse(&config)?;
            if written.insert(rec.id.clone()) {
                append(
                    &mut b,
                    &blob_name(&rec.id),
                    config.len() as u64,
                    &config[..],
                )?;
            }
            let mut layers = Vec::new();
            for (chain, diff_id) in rec.chain.iter().zip(&parsed.diff_ids) {
                let (file, size) = self.plain_layer(chain)?;
                if written.insert(diff_id.clone()) {
                    append(&mut b, &blob_name(diff_id), size, file)?;
                }
                layers.push(serde_json::json!({
                    "mediaType": manifest::OCI_LAYER, "digest": diff_id, "size": size,
                }));
            }
            let m = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": manifest::OCI_MANIFEST,
                "config": {"mediaType": manifest::OCI_CONFIG, "digest": rec.id, "size": config.len()},
                "layers": layers,
            });
            let mbytes = serde_json::to_vec(&m).unwrap_or_default();
            let mdigest = Digest::of(&mbytes);
            if written.insert(mdigest.clone()) {
                append(
                    &mut b,
                    &blob_name(&mdigest),
                    mbytes.len() as u64,
                    &mbytes[..],
                )?;
            }
            let desc = |ann: serde_json::Value| {
                serde_json::json!({
                    "mediaType": manifest::OCI_MANIFEST, "digest": mdigest,
                    "size": mbytes.len(), "annotations": ann,
                })
            };
            if names.is_empty() {
                index.push(desc(serde_json::json!({})));
            }
            for n in names {
                index.push(desc(serde_json::json!({
                    "io.containerd.image.name": n.to_string(),
                    "org.opencontainers.image.ref.name": n.tag().unwrap_or("latest"),
                })));
            }
            docker_manifest.push(serde_json::json!({
                "Config": blob_name(&rec.id),
                "RepoTags": names.iter().map(|n| n.familiar()).collect::<Vec<_>>(),
                "Layers": parsed.diff_ids.iter().map(blob_name).collect::<Vec<_>>(),
            }));
        }
        let index = serde_json::json!({
            "schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": index,
        });
        for (name, v) in [
            ("index.json", index),
            (
                "oci-layout",
                serde_json::json!({"imageLayoutVersion": "1.0.0"}),
            ),
            ("manifest.json", serde_json::json!(docker_manifest)),
        ] {
            let bytes = serde_json::to_vec(&v).unwrap_or_default();
            append(&mut b, name, bytes.len() as u64, &bytes[..])?;
        }
        b.into_inner()
            .and_then(|mut w| w.flush())
            .map_err(io("finishing the archive"))
    }

    /// Loads every image of an archive; returns Docker's lines (`Loaded image: busybox:latest`
    /// or `Loaded image ID: sha256:…`).
    pub fn load(&self, input: impl Read, scratch: &Path) -> Result<Vec<String>, ArchiveError> {
        let dir = tempfile::Builder::new()
            .prefix("load-")
            .tempdir_in(scratch)
            .map_err(io(format!("creating a directory in {}", scratch.display())))?;
        let files = extract(input, dir.path())?;
        let images = describe(&files, dir.path())?;
        let mut new_chains = Vec::new();
        let mut new_blobs = Vec::new();
        let mut lines = Vec::new();
        let result = (|| {
            for img in &images {
                lines.extend(self.load_one(img, &files, &mut new_chains, &mut new_blobs)?);
            }
            Ok::<_, ArchiveError>(())
        })();
        if let Err(e) = result {
            self.collect(&new_chains, &new_blobs);
            return Err(e);
        }
        Ok(lines)
    }

    fn load_one(
        &self,
        img: &Described,
        files: &HashMap<String, PathBuf>,
        new_chains: &mut Vec<Digest>,
        new_blobs: &mut Vec<Digest>,
    ) -> Result<Vec<String>, ArchiveError> {
        let missing = |n: &str| ArchiveError::Invalid(format!("{n} is not in the archive"));
        let cpath = files.get(&img.config).ok_or_else(|| missing(&img.config))?;
        let config = read_limited(cpath, manifest::MAX_CONFIG)?;
        let parsed = ImageConfig::parse(&config)?;
        if parsed.diff_ids.len() != img.layers.len() {
            return Err(ManifestError::LayerCount {
                diff_ids: parsed.diff_ids.len(),
                layers: img.layers.len(),
            }
            .into());
        }
        let id = Digest::of(&config);
        if self.content.size(&id).is_none() {
            self.content.put(&config)?;
            new_blobs.push(id.clone());
        }
        let chain = manifest::chain_ids(&parsed.diff_ids);
        let mut size = 0;
        for (i, (layer, diff_id)) in img.layers.iter().zip(&parsed.diff_ids).enumerate() {
            if let Some(info) = self.layers.info(&chain[i]) {
                size += info.size;
                continue;
            }
            let path = files.get(layer).ok_or_else(|| missing(layer))?;
            let f = std::fs::File::open(path).map_err(io(format!("opening {layer}")))?;
            let pending = self.layers.begin(&chain[i])?;
            let mut ingest = self.content.ingest(diff_id)?;
            let unpack_err = |source| ArchiveError::Unpack {
                layer: layer.clone(),
                source,
            };
            let (_, plain) = unpack::decompress(f).map_err(|e| unpack_err(UnpackError::Read(e)))?;
            let tee = TeeInto {
                inner: plain,
                out: &mut ingest,
            };
            let unpacked =
                unpack::unpack_plain(&pending.diff_dir(), tee, self.limits).map_err(unpack_err)?;
            if unpacked.diff_id != *diff_id {
                return Err(ArchiveError::Invalid(format!(
                    "layer {layer} is {} but the image config says {diff_id}",
                    unpacked.diff_id
                )));
            }
            let blob_size = ingest.written();
            if self.content.size(diff_id).is_none() {
                ingest.commit_as(diff_id)?;
                new_blobs.push(diff_id.clone());
            }
            pending.commit(&LayerInfo {
                chain_id: chain[i].clone(),
                diff_id: diff_id.clone(),
                parent: i.checked_sub(1).map(|p| chain[p].clone()),
                size: unpacked.size,
                blob: Some(Descriptor {
                    media_type: manifest::OCI_LAYER.to_string(),
                    digest: diff_id.clone(),
                    size: blob_size,
                    platform: None,
                    annotations: None,
                    urls: None,
                }),
            })?;
            new_chains.push(chain[i].clone());
            berth_failpoint::point("load.after-layer");
            size += unpacked.size;
        }
        let tags: Vec<Reference> = img
            .tags
            .iter()
            .map(|t| {
                Reference::parse(t)
                    .map_err(|e| ArchiveError::Invalid(format!("image name {t:?}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let rec = ImageRecord {
            id: id.clone(),
            repo_tags: tags.iter().map(|t| t.to_string()).collect(),
            repo_digests: Vec::new(),
            manifest: None,
            chain,
            size,
            created: parsed.raw["created"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            stored_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
        };
        berth_failpoint::point("load.before-record");
        self.images.put(rec)?;
        Ok(if tags.is_empty() {
            vec![format!("Loaded image ID: {id}")]
        } else {
            tags.iter()
                .map(|t| format!("Loaded image: {}", t.familiar()))
                .collect()
        })
    }
}

/// Copies everything it reads into `out`.
struct TeeInto<'a, R> {
    inner: R,
    out: &'a mut crate::content::Ingest,
}

impl<R: Read> Read for TeeInto<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// One image an archive holds: archive names of its config and layers, and its tags.
struct Described {
    config: String,
    layers: Vec<String>,
    tags: Vec<String>,
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `name` is one the archive formats use (and so may be written).
fn allowed(name: &str) -> bool {
    if matches!(
        name,
        "manifest.json" | "index.json" | "oci-layout" | "repositories"
    ) {
        return true;
    }
    if let Some(h) = name.strip_prefix("blobs/sha256/") {
        return is_hex64(h);
    }
    if let Some(h) = name.strip_suffix(".json") {
        return is_hex64(h);
    }
    match name.split_once('/') {
        Some((h, f)) => is_hex64(h) && matches!(f, "layer.tar" | "json" | "VERSION"),
        None => false,
    }
}

/// Normalises `./a//b` to `a/b`; None for anything with `..` or absolute.
fn clean(name: &str) -> Option<String> {
    let mut parts = Vec::new();
    for p in name.split('/') {
        match p {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p),
        }
    }
    (!name.starts_with('/')).then(|| parts.join("/"))
}

/// Unpacks the names the formats use into `dir` (flat, by a counter); symlinks between such
/// names (older docker save's shared layers) become aliases. Returns name → file.
fn extract(input: impl Read, dir: &Path) -> Result<HashMap<String, PathBuf>, ArchiveError> {
    let bad = |e: std::io::Error| ArchiveError::Invalid(format!("reading the tar: {e}"));
    let mut files = HashMap::new();
    let mut links = Vec::new();
    let mut archive = tar::Archive::new(input);
    for (n, entry) in archive.entries().map_err(bad)?.enumerate() {
        let mut e = entry.map_err(bad)?;
        let raw = e.path().map_err(bad)?.to_string_lossy().into_owned();
        let Some(name) = clean(&raw).filter(|n| allowed(n)) else {
            continue;
        };
        match e.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let path = dir.join(n.to_string());
                let mut f = std::fs::File::create(&path).map_err(io(format!("storing {name}")))?;
                std::io::copy(&mut e, &mut f).map_err(bad)?;
                files.insert(name, path);
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = e
                    .link_name()
                    .map_err(bad)?
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let base = match e.header().entry_type() {
                    tar::EntryType::Symlink => Path::new(&name)
                        .parent()
                        .map(|p| p.join(&target).to_string_lossy().into_owned())
                        .unwrap_or(target),
                    _ => target,
                };
                if let Some(t) = clean(&base).filter(|t| allowed(t)) {
                    links.push((name, t));
                }
            }
            _ => {}
        }
    }
    for (name, target) in links {
        if let Some(p) = files.get(&target).cloned() {
            files.insert(name, p);
        }
    }
    Ok(files)
}

fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, ArchiveError> {
    let mut buf = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut buf))
        .map_err(io(format!("reading {}", path.display())))?;
    if buf.len() as u64 > limit {
        return Err(ArchiveError::Invalid(format!(
            "{} is over {limit} bytes",
            path.display()
        )));
    }
    Ok(buf)
}

fn json_of(
    files: &HashMap<String, PathBuf>,
    name: &str,
) -> Result<serde_json::Value, ArchiveError> {
    let path = files
        .get(name)
        .ok_or_else(|| ArchiveError::Invalid(format!("{name} is not in the archive")))?;
    serde_json::from_slice(&read_limited(path, MAX_JSON)?)
        .map_err(|e| ArchiveError::Invalid(format!("{name}: {e}")))
}

/// The images of an archive: from `manifest.json` (docker-archive), else `index.json` (OCI).
fn describe(files: &HashMap<String, PathBuf>, _dir: &Path) -> Result<Vec<Described>, ArchiveError> {
    let strs = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().and_then(clean))
                    .collect()
            })
            .unwrap_or_default()
    };
    if files.contains_key("manifest.json") {
        let m = json_of(files, "manifest.json")?;
        let list = m
            .as_array()
            .ok_or_else(|| ArchiveError::Invalid("manifest.json is not a list".into()))?;
        return list
            .iter()
            .map(|e| {
                let config = e["Config"].as_str().and_then(clean).ok_or_else(|| {
                    ArchiveError::Invalid("an entry of manifest.json has no Config".into())
                })?;
                Ok(Described {
                    config,
                    layers: strs(&e["Layers"]),
                    tags: strs(&e["RepoTags"]),
                })
            })
            .collect();
    }
    if !files.contains_key("index.json") {
        return Err(ArchiveError::Invalid(
            "neither manifest.json nor index.json found: not a docker-archive or OCI layout".into(),
        ));
    }
    let index = json_of(files, "index.json")?;
    let blob = |d: &serde_json::Value| -> Option<String> {
        let d = Digest::parse(d.as_str()?).ok()?;
        Some(format!("blobs/sha256/{}", d.hex()))
    };
    let mut by_manifest: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in index["manifests"].as_array().into_iter().flatten() {
        let name = blob(&m["digest"]).ok_or_else(|| {
            ArchiveError::Invalid("index.json: a manifest without a digest".into())
        })?;
        let tags = by_manifest.entry(name).or_default();
        let ann = &m["annotations"];
        if let Some(t) = ann["io.containerd.image.name"].as_str() {
            tags.push(t.to_string());
        } else if let Some(t) = ann["org.opencontainers.image.ref.name"]
            .as_str()
            .filter(|t| t.contains(':') || t.contains('/'))
        {
            tags.push(t.to_string());
        }
    }
    by_manifest
        .into_iter()
        .map(|(name, tags)| {
            let m = json_of(files, &name)?;
            let config = blob(&m["config"]["digest"])
                .ok_or_else(|| ArchiveError::Invalid(format!("{name}: no config")))?;
            let layers = m["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|l| {
                    blob(&l["digest"]).ok_or_else(|| {
                        ArchiveError::Invalid(format!("{name}: a layer without a digest"))
                    })
                })
                .collect::<Result<_, _>>()?;
            Ok(Described {
                config,
                layers,
                tags,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_formats_names_are_accepted() {
        let h = "a".repeat(64);
        for ok in [
            "manifest.json",
            "index.json",
            "oci-layout",
            &format!("blobs/sha256/{h}"),
            &format!("{h}/layer.tar"),
            &format!("{h}.json"),
        ] {
            assert!(allowed(ok), "{ok}");
        }
        for bad in [
            "../manifest.json",
            "etc/passwd",
            &format!("blobs/sha256/{h}/x"),
            "blobs/sha256/short",
            &format!("{h}/other"),
        ] {
            assert!(!clean(bad).is_some_and(|c| allowed(&c)), "{bad}");
        }
        assert_eq!(
            clean("./blobs//sha256/x").as_deref(),
            Some("blobs/sha256/x")
        );
        assert_eq!(clean("a/../../b"), None);
    }
}
