//! The image service berthd uses: the three stores under one data root (`content/`,
//! `layers/`, `meta/images/`) and the operations across them: pull (every layer at once, each
//! streamed from the registry through its digest check and decompression straight into unpack,
//! the compressed blob kept beside), remove with layer garbage collection, and the layer dirs of
//! an image for overlayfs. A failed pull leaves the stores as they were.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::content::{ContentError, ContentStore, Ingest};
use crate::digest::{Digest, HashingReader};
use crate::images::{ImageError, ImageRecord, ImageStore};
use crate::layers::{LayerError, LayerInfo, LayerStore};
use crate::manifest::{
    self, Descriptor, ImageConfig, MAX_CONFIG, MAX_MANIFEST, Manifest, ManifestError, Parsed,
    Platform,
};
use crate::reference::Reference;
use crate::registry::{RegistryClient, RegistryError};
use crate::unpack::{self, Limits, UnpackError};

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("layer {layer}: {source}")]
    Unpack {
        layer: Digest,
        #[source]
        source: UnpackError,
    },
    #[error(
        "layer {layer}: unpacked content {actual} does not match the image config's {expected}"
    )]
    DiffId {
        layer: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error("downloading {url}: {message}")]
    Fetch { url: String, message: String },
    #[error("reading layer {layer}: {source}")]
    Download {
        layer: Digest,
        #[source]
        source: std::io::Error,
    },
    #[error("layer {0} has no downloadable content (foreign layer)")]
    Foreign(Digest),
}

/// One line of pull progress, in Docker's vocabulary.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// A line without a layer: "Pulling from library/busybox", "Digest: …", "Status: …".
    Status { id: Option<String>, status: String },
    /// A layer's state: "Pulling fs layer", "Downloading", "Download complete", "Pull complete",
    /// "Already exists"; `id` is the layer's short digest.
    Layer {
        id: String,
        status: &'static str,
        current: Option<u64>,
        total: Option<u64>,
    },
}

/// The short id Docker shows for a layer or image.
pub fn short(d: &Digest) -> String {
    d.hex()[..12].to_string()
}

pub struct ImageService {
    pub content: ContentStore,
    pub layers: LayerStore,
    pub images: ImageStore,
    pub limits: Limits,
}

/// Copies everything it reads into `out`.
struct TeeWrite<'a, R> {
    inner: R,
    out: &'a mut Ingest,
}

impl<R: Read> Read for TeeWrite<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Copies everything it reads into the blob being ingested, hashing it and reporting progress.
struct Tee<'a, R> {
    inner: HashingReader<R>,
    ingest: &'a mut Ingest,
    on_read: &'a mut dyn FnMut(u64),
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.ingest.write_all(&buf[..n])?;
        (self.on_read)(self.inner.count());
        Ok(n)
    }
}

impl ImageService {
    pub fn open(data_root: &Path) -> ImageService {
        let s = ImageService {
            content: ContentStore::new(&data_root.join("content")),
            layers: LayerStore::new(&data_root.join("layers")),
            images: ImageStore::new(&data_root.join("meta/images")),
            limits: Limits::default(),
        };
        s.layers.clean_temporaries();
        s.content.clean_ingest();
        // At start no pull, load or push is under way: what no image references was left by
        // one that crashed (an image's record is written last).
        let (blobs, chains) = s.unreferenced();
        s.collect(&chains, &blobs);
        s
    }

    /// Stored blobs and layers no image references: what a pull, load or removal cut short
    /// left behind (or, while one runs, what it has written so far).
    pub fn unreferenced(&self) -> (Vec<Digest>, Vec<Digest>) {
        let (blobs, chains) = self.referenced();
        (
            self.content
                .list()
                .into_iter()
                .filter(|b| !blobs.contains(b))
                .collect(),
            self.layers
                .list()
                .into_iter()
                .filter(|c| !chains.contains(c))
                .collect(),
        )
    }

    /// Overlayfs lower dirs of an image, top layer first.
    pub fn layer_dirs(&self, rec: &ImageRecord) -> Vec<PathBuf> {
        rec.chain
            .iter()
            .rev()
            .map(|c| self.layers.diff_dir(c))
            .collect()
    }

    /// Every digest and chain id some image record needs.
    fn referenced(&self) -> (HashSet<Digest>, HashSet<Digest>) {
        let mut blobs = HashSet::new();
        let mut chains = HashSet::new();
        let mut manifests = Vec::new();
        for r in self.images.list() {
            blobs.insert(r.id.clone());
            if let Some(m) = &r.manifest {
                blobs.insert(m.digest.clone());
                manifests.push(m.digest.clone());
            }
            for c in &r.chain {
                chains.insert(c.clone());
                if let Some(b) = self.layers.info(c).and_then(|i| i.blob) {
                    blobs.insert(b.digest);
                }
            }
            for d in &r.repo_digests {
                if let Some(d) = Reference::parse(d).ok().and_then(|x| x.digest().cloned()) {
                    blobs.insert(d.clone());
                    manifests.push(d);
                }
            }
        }
        // A stored manifest or index keeps what it names (a pushed image's gzip layers, an
        // index's manifests).
        let mut pending = manifests;
        while let Some(d) = pending.pop() {
            let Ok(bytes) = self.content.read(&d, MAX_MANIFEST) else {
                continue;
            };
            let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                continue;
            };
            let named = doc["config"]["digest"]
                .as_str()
                .into_iter()
                .chain(
                    ["layers", "manifests"]
                        .iter()
                        .flat_map(|k| doc[*k].as_array().into_iter().flatten())
                        .filter_map(|x| x["digest"].as_str()),
                )
                .filter_map(|s| Digest::parse(s).ok());
            let children = doc["manifests"].is_array();
            for n in named {
                // An index's entries are manifests in turn.
                if blobs.insert(n.clone()) && children {
                    pending.push(n);
                }
            }
        }
        (blobs, chains)
    }

    /// Removes layers and blobs in `chains`/`blobs` that no image references any more.
    pub fn collect(&self, chains: &[Digest], blobs: &[Digest]) {
        let (keep_blobs, keep_chains) = self.referenced();
        for c in chains.iter().filter(|c| !keep_chains.contains(*c)) {
            if let Some(b) = self.layers.info(c).and_then(|i| i.blob) {
                if !keep_blobs.contains(&b.digest) {
                    let _ = self.content.delete(&b.digest);
                }
            }
            let _ = self.layers.remove(c);
        }
        for b in blobs.iter().filter(|b| !keep_blobs.contains(*b)) {
            let _ = self.content.delete(b);
        }
    }

    /// Fetches a manifest-ish document into the content store.
    fn fetch_manifest(
        &self,
        client: &RegistryClient,
        r: &Reference,
        reference: &str,
        new_blobs: &Mutex<Vec<Digest>>,
    ) -> Result<(Digest, Parsed, Vec<u8>), PullError> {
        let (ct, digest, bytes) =
            client.get_manifest(r.domain(), r.path(), reference, MAX_MANIFEST)?;
        let parsed = manifest::parse(&ct, &bytes)?;
        if self.content.size(&digest).is_none() {
            self.content.put(&bytes)?;
            new_blobs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(digest.clone());
        }
        Ok((digest, parsed, bytes))
    }

    /// Pulls `r` for `platform`; progress goes to `progress` as it happens.
    pub fn pull(
        &self,
        client: &RegistryClient,
        r: &Reference,
        platform: &Platform,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<ImageRecord, PullError> {
        let new_blobs = Mutex::new(Vec::new());
        let new_layers = Mutex::new(Vec::new());
        let result = self.pull_inner(client, r, platform, progress, &new_blobs, &new_layers);
        if result.is_err() {
            let chains = new_layers.into_inner().unwrap_or_default();
            let blobs = new_blobs.into_inner().unwrap_or_default();
            self.collect(&chains, &blobs);
        }
        result
    }

    fn pull_inner(
        &self,
        client: &RegistryClient,
        r: &Reference,
        platform: &Platform,
        progress: &(dyn Fn(Progress) + Sync),
        new_blobs: &Mutex<Vec<Digest>>,
        new_layers: &Mutex<Vec<Digest>>,
    ) -> Result<ImageRecord, PullError> {
        let (top_digest, parsed, _) =
            self.fetch_manifest(client, r, &r.manifest_reference(), new_blobs)?;
        // Only once the name resolved: a bad name fails before any progress goes out.
        progress(Progress::Status {
            id: Some(
                r.tag()
                    .map_or_else(|| top_digest.to_string(), str::to_string),
            ),
            status: format!("Pulling from {}", r.familiar_repository()),
        });
        let (manifest_desc, m) =
            self.image_manifest(client, r, platform, &top_digest, parsed, new_blobs)?;
        let config = self.fetch_config(client, r, &m, new_blobs)?;
        let chain = manifest::chain_ids(&config.diff_ids);
        self.fetch_layers(client, r, &m, &config, &chain, progress, new_layers)?;
        let size = chain
            .iter()
            .filter_map(|c| self.layers.info(c))
            .map(|i| i.size)
            .sum();
        let existing = self.images.get(&m.config.digest);
        let tag = r.tag().map(|_| r.to_string());
        let up_to_date = existing
            .as_ref()
            .is_some_and(|e| tag.as_ref().is_none_or(|t| e.repo_tags.contains(t)));
        let rec = ImageRecord {
            id: m.config.digest.clone(),
            repo_tags: tag.into_iter().collect(),
            repo_digests: vec![format!("{}@{}", r.repository(), top_digest)],
            manifest: Some(manifest_desc),
            chain,
            size,
            created: config.raw["created"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            stored_at: existing.as_ref().map_or_else(now_secs, |e| e.stored_at),
        };
        berth_failpoint::point("pull.before-record");
        let rec = self.images.put(rec)?;
        progress(Progress::Status {
            id: None,
            status: format!("Digest: {top_digest}"),
        });
        progress(Progress::Status {
            id: None,
            status: if up_to_date {
                format!("Status: Image is up to date for {}", r.familiar())
            } else {
                format!("Status: Downloaded newer image for {}", r.familiar())
            },
        });
        Ok(rec)
    }

    /// The manifest of the image for `platform`: the top one, or the one an index lists for it
    /// (fetched); with the descriptor the record keeps.
    fn image_manifest(
        &self,
        client: &RegistryClient,
        r: &Reference,
        platform: &Platform,
        top_digest: &Digest,
        parsed: Parsed,
        new_blobs: &Mutex<Vec<Digest>>,
    ) -> Result<(Descriptor, Manifest), PullError> {
        match parsed {
            Parsed::Manifest(m) => {
                let size = self.content.size(top_digest).unwrap_or(0);
                let mt = m
                    .media_type
                    .clone()
                    .unwrap_or_else(|| manifest::OCI_MANIFEST.into());
                Ok((descriptor(mt, top_digest.clone(), size), *m))
            }
            Parsed::Index(idx) => {
                let d = manifest::select(&idx, platform)?.clone();
                let (digest, parsed, _) =
                    self.fetch_manifest(client, r, d.digest.as_str(), new_blobs)?;
                let Parsed::Manifest(m) = parsed else {
                    return Err(ManifestError::MediaType("nested index".into()).into());
                };
                Ok((descriptor(d.media_type.clone(), digest, d.size), *m))
            }
        }
    }

    /// The image's config (small): fetched whole and verified unless stored; its diff ids must
    /// match the manifest's layers one to one.
    fn fetch_config(
        &self,
        client: &RegistryClient,
        r: &Reference,
        m: &Manifest,
        new_blobs: &Mutex<Vec<Digest>>,
    ) -> Result<ImageConfig, PullError> {
        if self.content.size(&m.config.digest).is_none() {
            let (_, mut body) = client.get_blob(r.domain(), r.path(), &m.config.digest)?;
            self.content.write_verified(
                &m.config.digest,
                Some(m.config.size),
                MAX_CONFIG,
                &mut body,
            )?;
            new_blobs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(m.config.digest.clone());
        }
        let config = ImageConfig::parse(&self.content.read(&m.config.digest, MAX_CONFIG)?)?;
        if config.diff_ids.len() != m.layers.len() {
            return Err(ManifestError::LayerCount {
                diff_ids: config.diff_ids.len(),
                layers: m.layers.len(),
            }
            .into());
        }
        Ok(config)
    }

    /// Announces every layer, then fetches the missing ones at once, each on its own thread;
    /// `new_layers` gets those this call stored.
    #[allow(clippy::too_many_arguments)]
    fn fetch_layers(
        &self,
        client: &RegistryClient,
        r: &Reference,
        m: &Manifest,
        config: &ImageConfig,
        chain: &[Digest],
        progress: &(dyn Fn(Progress) + Sync),
        new_layers: &Mutex<Vec<Digest>>,
    ) -> Result<(), PullError> {
        for (i, l) in m.layers.iter().enumerate() {
            let exists = self.layers.exists(&chain[i]);
            progress(Progress::Layer {
                id: short(&l.digest),
                status: if exists {
                    "Already exists"
                } else {
                    "Pulling fs layer"
                },
                current: None,
                total: None,
            });
        }
        // Every missing layer at once, each on its own thread.
        let results: Vec<Result<(), PullError>> = std::thread::scope(|s| {
            let handles: Vec<_> = m
                .layers
                .iter()
                .enumerate()
                .filter(|(i, _)| !self.layers.exists(&chain[*i]))
                .map(|(i, l)| {
                    let diff_ids = &config.diff_ids;
                    s.spawn(move || {
                        let parent = i.checked_sub(1).map(|p| chain[p].clone());
                        let made = self.fetch_layer(
                            client,
                            r,
                            l,
                            &chain[i],
                            parent,
                            &diff_ids[i],
                            progress,
                        )?;
                        if made {
                            new_layers
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(chain[i].clone());
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(PullError::Foreign(Digest::of(b"panic"))))
                })
                .collect()
        });
        results.into_iter().collect()
    }

    /// Downloads one layer straight into its unpacked form; true if this call stored it.
    #[allow(clippy::too_many_arguments)]
    fn fetch_layer(
        &self,
        client: &RegistryClient,
        r: &Reference,
        l: &Descriptor,
        chain: &Digest,
        parent: Option<Digest>,
        diff_id: &Digest,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<bool, PullError> {
        manifest::check_layer_type(&l.media_type)?;
        if l.media_type == manifest::DOCKER_FOREIGN_LAYER {
            return Err(PullError::Foreign(l.digest.clone()));
        }
        let id = short(&l.digest);
        let (len, body) = client.get_blob(r.domain(), r.path(), &l.digest)?;
        let total = len.or(Some(l.size));
        let mut ingest = self.content.ingest(&l.digest)?;
        let pending = self.layers.begin(chain)?;
        let mut last = 0u64;
        let mut on_read = |n: u64| {
            // One line per 512 KiB, like Docker's pacing.
            if n >= last + (512 << 10) || Some(n) == total {
                last = n;
                progress(Progress::Layer {
                    id: id.clone(),
                    status: "Downloading",
                    current: Some(n),
                    total,
                });
            }
        };
        let cap = l.size.saturating_add(1);
        let mut tee = Tee {
            inner: HashingReader::new(body.take(cap)),
            ingest: &mut ingest,
            on_read: &mut on_read,
        };
        let unpacked =
            unpack::unpack(&pending.diff_dir(), &mut tee, self.limits).map_err(|source| {
                PullError::Unpack {
                    layer: l.digest.clone(),
                    source,
                }
            })?;
        // The compressed stream may go on past the tar's end (gzip trailer, padding).
        std::io::copy(&mut tee, &mut std::io::sink()).map_err(|source| PullError::Download {
            layer: l.digest.clone(),
            source,
        })?;
        let (actual, n, _) = tee.inner.finish();
        if n != l.size {
            return Err(ContentError::Size {
                digest: l.digest.clone(),
                expected: l.size,
                actual: n,
            }
            .into());
        }
        progress(Progress::Layer {
            id: id.clone(),
            status: "Verifying Checksum",
            current: None,
            total: None,
        });
        if unpacked.diff_id != *diff_id {
            return Err(PullError::DiffId {
                layer: l.digest.clone(),
                expected: diff_id.clone(),
                actual: unpacked.diff_id,
            });
        }
        ingest.commit(&l.digest, &actual)?;
        progress(Progress::Layer {
            id: id.clone(),
            status: "Download complete",
            current: None,
            total: None,
        });
        let made = pending.commit(&LayerInfo {
            chain_id: chain.clone(),
            diff_id: diff_id.clone(),
            parent,
            size: unpacked.size,
            blob: Some(l.clone()),
        })?;
        berth_failpoint::point("pull.after-layer");
        progress(Progress::Layer {
            id,
            status: "Pull complete",
            current: None,
            total: None,
        });
        Ok(made)
    }
}

/// One line of `docker rmi` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    Untagged(String),
    Deleted(Digest),
}

#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(
        "conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories"
    )]
    MultipleRepositories { short: String },
    #[error(
        "conflict: unable to remove repository reference {name:?} (must force) - container {container} is using its referenced image {short}"
    )]
    InUse {
        name: String,
        container: String,
        short: String,
    },
}

impl ImageService {
    /// `docker rmi NAME`: a tag is removed; the image goes when nothing names it any more (or
    /// when asked for by id with `force`), and with it the layers no other image uses.
    /// `in_use` names a container using the image, which blocks deletion unless forced.
    pub fn remove(
        &self,
        name: &str,
        force: bool,
        in_use: &dyn Fn(&Digest) -> Option<String>,
    ) -> Result<Vec<Removed>, RemoveError> {
        let rec = self.images.resolve(name)?;
        let by_ref = Reference::parse(name).ok().filter(|r| {
            let full = r.to_string();
            rec.repo_tags.contains(&full)
                || r.digest().is_some_and(|_| {
                    rec.repo_digests.iter().any(|d| {
                        Reference::parse(d).is_ok_and(|x| {
                            x.repository() == r.repository() && x.digest() == r.digest()
                        })
                    })
                })
        });
        let mut out = Vec::new();
        let rec = match by_ref {
            Some(r) => {
                let after = self.images.untag(&rec.id, &r)?;
                out.push(Removed::Untagged(r.familiar()));
                if !after.repo_tags.is_empty() {
                    return Ok(out);
                }
                after
            }
            None => {
                if rec.repo_tags.len() > 1 && !force {
                    return Err(RemoveError::MultipleRepositories {
                        short: short(&rec.id),
                    });
                }
                rec
            }
        };
        if let Some(c) = in_use(&rec.id) {
            if !force {
                return Err(RemoveError::InUse {
                    name: name.to_string(),
                    container: c,
                    short: short(&rec.id),
                });
            }
            return Ok(out); // forced: untagged, but the image stays for its container
        }
        for t in rec.familiar_tags() {
            out.push(Removed::Untagged(t));
        }
        for d in rec.familiar_digests() {
            out.push(Removed::Untagged(d));
        }
        self.images.delete(&rec.id)?;
        out.push(Removed::Deleted(rec.id.clone()));
        let (_, keep_chains) = self.referenced();
        for c in rec.chain.iter().rev().filter(|c| !keep_chains.contains(*c)) {
            out.push(Removed::Deleted(c.clone()));
        }
        let mut blobs = vec![rec.id.clone()];
        blobs.extend(rec.manifest.iter().map(|m| m.digest.clone()));
        blobs.extend(
            rec.repo_digests
                .iter()
                .filter_map(|d| Reference::parse(d).ok()?.digest().cloned()),
        );
        self.collect(&rec.chain, &blobs);
        Ok(out)
    }
}

impl ImageService {
    /// `docker import URL`: the rootfs tar read from a plain `http://` URL as it downloads.
    pub fn import_url(
        &self,
        url: &str,
        config: serde_json::Value,
        tag: Option<&Reference>,
    ) -> Result<ImageRecord, PullError> {
        let resp = http_get(url)?;
        self.import(resp.into_body().into_reader(), config, tag)
    }

    /// `docker import`: a rootfs tar (plain, gzip or zstd) becomes a one-layer image whose
    /// container config is `config` (Cmd, Entrypoint, Env, WorkingDir...), tagged `tag` if given.
    /// Nothing is left behind when the tar is refused.
    pub fn import(
        &self,
        tar: impl std::io::Read,
        config: serde_json::Value,
        tag: Option<&Reference>,
    ) -> Result<ImageRecord, PullError> {
        self.add_layer(
            tar,
            NewImage {
                parent: None,
                config,
                history: serde_json::json!({"comment": "Imported from tarball"}),
                author: None,
                container: None,
                tag,
            },
        )
    }

    /// A layer tar (plain, gzip or zstd; whiteouts as `.wh.` entries) stored as a new layer on
    /// `new.parent`'s, and the image made of them: the parent's config with `new.config`, the
    /// new layer's diff id and history entry added. Nothing is left behind on failure.
    pub fn add_layer(
        &self,
        tar: impl std::io::Read,
        new: NewImage<'_>,
    ) -> Result<ImageRecord, PullError> {
        let (mut image_config, mut diff_ids) = self.parent_config(new.parent)?;
        let parent_chain = new.parent.and_then(|p| p.chain.last().cloned());
        let placeholder = Digest::of(b"import in progress");
        let pending = self.layers.begin(&placeholder)?;
        // The plain tar is kept as the layer's blob (pushed and saved as it came), written while
        // it is unpacked and hashed.
        let mut ingest = self.content.ingest(&placeholder)?;
        let unpack_err = |source| PullError::Unpack {
            layer: placeholder.clone(),
            source,
        };
        let (_, plain) = unpack::decompress(tar).map_err(|e| unpack_err(UnpackError::Read(e)))?;
        let tee = TeeWrite {
            inner: plain,
            out: &mut ingest,
        };
        let unpacked =
            unpack::unpack_plain(&pending.diff_dir(), tee, self.limits).map_err(unpack_err)?;
        let blob = match self.content.size(&unpacked.diff_id) {
            Some(size) => {
                drop(ingest);
                size
            }
            None => {
                let size = ingest.written();
                ingest.commit_as(&unpacked.diff_id)?;
                size
            }
        };
        diff_ids.push(unpacked.diff_id.clone());
        let chain_ids = manifest::chain_ids(&diff_ids);
        let chain = chain_ids
            .last()
            .cloned()
            .unwrap_or_else(|| unpacked.diff_id.clone());
        let created = berth_clock::rfc3339_now();
        image_config_for(&mut image_config, &new, &diff_ids, &created);
        let bytes = serde_json::to_vec(&image_config).unwrap_or_default();
        let made_layer = if self.layers.exists(&chain) {
            false
        } else {
            let mut p = pending;
            p.retarget(self.layers.dir(&chain));
            p.commit(&LayerInfo {
                chain_id: chain.clone(),
                diff_id: unpacked.diff_id.clone(),
                parent: parent_chain,
                size: unpacked.size,
                blob: Some(descriptor(
                    crate::manifest::OCI_LAYER.to_string(),
                    unpacked.diff_id.clone(),
                    blob,
                )),
            })?
        };
        let stored = (|| {
            let id = self.content.put(&bytes)?;
            let rec = ImageRecord {
                id,
                repo_tags: new.tag.map(|t| t.to_string()).into_iter().collect(),
                repo_digests: Vec::new(),
                manifest: None,
                chain: chain_ids,
                size: new.parent.map_or(0, |p| p.size) + unpacked.size,
                created,
                stored_at: now_secs(),
            };
            Ok::<_, PullError>(self.images.put(rec)?)
        })();
        if stored.is_err() && made_layer {
            self.collect(std::slice::from_ref(&chain), &[]);
        }
        stored
    }
}

impl ImageService {
    /// The config (raw) and diff ids a new image starts from: its parent's, or none.
    fn parent_config(
        &self,
        parent: Option<&ImageRecord>,
    ) -> Result<(serde_json::Value, Vec<Digest>), PullError> {
        match parent {
            None => Ok((serde_json::json!({}), Vec::new())),
            Some(p) => {
                let c = ImageConfig::parse(&self.content.read(&p.id, MAX_CONFIG)?)?;
                Ok((c.raw, c.diff_ids))
            }
        }
    }

    /// An image of `new.parent`'s layers and one layer this store already has (`diff_id`, on
    /// top of exactly those layers: a build step found in a `--cache-from` image), with a new
    /// config and history entry. Fails when that layer is not here.
    pub fn reuse_layer(
        &self,
        diff_id: &Digest,
        new: NewImage<'_>,
    ) -> Result<ImageRecord, PullError> {
        let (mut image_config, mut diff_ids) = self.parent_config(new.parent)?;
        diff_ids.push(diff_id.clone());
        let chain_ids = manifest::chain_ids(&diff_ids);
        let chain = chain_ids.last().cloned().unwrap_or_else(|| diff_id.clone());
        let info = self.layers.info(&chain).ok_or_else(|| PullError::Fetch {
            url: chain.to_string(),
            message: "the layer to reuse is not in the store".into(),
        })?;
        let created = berth_clock::rfc3339_now();
        image_config_for(&mut image_config, &new, &diff_ids, &created);
        let id = self
            .content
            .put(&serde_json::to_vec(&image_config).unwrap_or_default())?;
        Ok(self.images.put(ImageRecord {
            id,
            repo_tags: new.tag.map(|t| t.to_string()).into_iter().collect(),
            repo_digests: Vec::new(),
            manifest: None,
            chain: chain_ids,
            size: new.parent.map_or(0, |p| p.size) + info.size,
            created,
            stored_at: now_secs(),
        })?)
    }

    /// An image with `parent`'s layers and a new config (`docker build`'s ENV, CMD, LABEL...
    /// steps): its history gains `history` (an entry, or an array of entries) as empty
    /// layers; `author` (MAINTAINER) replaces the parent's.
    pub fn with_config(
        &self,
        parent: &ImageRecord,
        config: serde_json::Value,
        history: serde_json::Value,
        author: Option<&str>,
        tag: Option<&Reference>,
    ) -> Result<ImageRecord, PullError> {
        let c = ImageConfig::parse(&self.content.read(&parent.id, MAX_CONFIG)?)?;
        let mut raw = c.raw;
        let created = berth_clock::rfc3339_now();
        raw["created"] = serde_json::json!(created);
        if let Some(a) = author.filter(|a| !a.is_empty()) {
            raw["author"] = serde_json::json!(a);
        }
        raw["config"] = config.clone();
        raw["container_config"] = config;
        // One entry, or several (a builder's config steps, one per instruction).
        let entries = match history {
            serde_json::Value::Array(list) => list,
            one => vec![one],
        };
        let mut hist = raw["history"].as_array().cloned().unwrap_or_default();
        for mut entry in entries {
            if !entry.is_object() {
                entry = serde_json::json!({});
            }
            entry["created"] = serde_json::json!(created);
            entry["empty_layer"] = serde_json::json!(true);
            hist.push(entry);
        }
        raw["history"] = serde_json::json!(hist);
        let id = self
            .content
            .put(&serde_json::to_vec(&raw).unwrap_or_default())?;
        Ok(self.images.put(ImageRecord {
            id,
            repo_tags: tag.map(|t| t.to_string()).into_iter().collect(),
            repo_digests: Vec::new(),
            manifest: None,
            chain: parent.chain.clone(),
            size: parent.size,
            created,
            stored_at: now_secs(),
        })?)
    }
}

/// What a new layer's image takes from its maker (`docker import`, `docker commit`).
#[derive(Debug)]
pub struct NewImage<'a> {
    /// The image the layer goes on (none: a base image).
    pub parent: Option<&'a ImageRecord>,
    /// The image config's `config` (Cmd, Entrypoint, Env, WorkingDir...).
    pub config: serde_json::Value,
    /// The layer's history entry (`created_by`, `comment`); its time and author are set here.
    pub history: serde_json::Value,
    pub author: Option<String>,
    /// The container committed (`docker commit`).
    pub container: Option<String>,
    pub tag: Option<&'a Reference>,
}

/// The image config of a new layer's image: the parent's (`c`) with the new config, time,
/// author, diff ids and one more history entry.
fn image_config_for(
    c: &mut serde_json::Value,
    new: &NewImage<'_>,
    diff_ids: &[Digest],
    created: &str,
) {
    use serde_json::json;
    if !c.is_object() {
        *c = json!({});
    }
    let platform = Platform::host();
    if c.get("architecture").is_none() {
        c["architecture"] = json!(platform.architecture);
        c["os"] = json!("linux");
    }
    c["created"] = json!(created);
    c["config"] = new.config.clone();
    c["container_config"] = new.config.clone();
    match &new.author {
        Some(a) if !a.is_empty() => c["author"] = json!(a),
        _ => {
            if let Some(o) = c.as_object_mut() {
                o.remove("author");
            }
        }
    }
    // The image's own comment and container, as Docker's image config has them (the history
    // entry's comment too).
    let o = c.as_object_mut().expect("an object");
    match new.history["comment"].as_str().filter(|m| !m.is_empty()) {
        Some(m) => o.insert("comment".into(), json!(m)),
        None => o.remove("comment"),
    };
    match &new.container {
        Some(id) => o.insert("container".into(), json!(id)),
        None => o.remove("container"),
    };
    let ids: Vec<String> = diff_ids.iter().map(Digest::to_string).collect();
    c["rootfs"] = json!({"type": "layers", "diff_ids": ids});
    let mut entry = new.history.clone();
    if !entry.is_object() {
        entry = json!({});
    }
    entry["created"] = json!(created);
    if let Some(a) = new.author.as_ref().filter(|a| !a.is_empty()) {
        entry["author"] = json!(a);
    }
    let mut history = c["history"].as_array().cloned().unwrap_or_default();
    history.push(entry);
    c["history"] = json!(history);
}

/// A plain HTTP GET of `url` (`docker import URL`, a build's `ADD URL`).
fn http_get(url: &str) -> Result<ureq::http::Response<ureq::Body>, PullError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(std::time::Duration::from_secs(30)))
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    agent.get(url).call().map_err(|e| PullError::Fetch {
        url: url.to_string(),
        message: e.to_string(),
    })
}

/// Downloads `url` into `out`; the bytes written.
pub fn download(url: &str, out: &mut impl std::io::Write) -> Result<u64, PullError> {
    let resp = http_get(url)?;
    std::io::copy(&mut resp.into_body().into_reader(), out).map_err(|e| PullError::Fetch {
        url: url.to_string(),
        message: e.to_string(),
    })
}

fn descriptor(media_type: String, digest: Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type,
        digest,
        size,
        platform: None,
        annotations: None,
        urls: None,
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
