//! Push: an image's layer blobs (each checked with HEAD first, skipped if the repository has it),
//! its config, then its manifest under the tag — the same manifest bytes it was pulled with, so
//! its digest does not change. An image whose layers came from no blob (`docker import`, a
//! commit) gets gzip blobs made from its layer directories and a Docker schema 2 manifest, kept
//! in the content store so the next push is identical.

use std::io::{Read, Seek, Write};

use crate::content::ContentError;
use crate::digest::{Digest, HashingReader, HashingWriter};
use crate::images::{ImageError, ImageRecord};
use crate::manifest::{self, Descriptor, Manifest};
use crate::reference::Reference;
use crate::registry::{RegistryClient, RegistryError};
use crate::service::{ImageService, Progress, short};

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("making a blob of layer {layer}: {source}")]
    Pack {
        layer: Digest,
        #[source]
        source: std::io::Error,
    },
    #[error("the stored manifest of {0} is unreadable")]
    Manifest(Digest),
    #[error(
        "layer {0} has no stored blob and its directory no longer gives the same tar; re-import or re-pull the image"
    )]
    Unreproducible(Digest),
}

/// What a push reports at the end: `TAG: digest: DIGEST size: SIZE`.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub tag: String,
    pub digest: Digest,
    pub size: u64,
}

impl ImageService {
    /// The manifest to push (bytes, media type, parsed), made and stored if the image has none.
    fn manifest_for(&self, rec: &ImageRecord) -> Result<(Vec<u8>, String, Manifest), PushError> {
        if let Some(desc) = &rec.manifest {
            let bytes = self.content.read(&desc.digest, manifest::MAX_MANIFEST)?;
            let m: Manifest = serde_json::from_slice(&bytes)
                .map_err(|_| PushError::Manifest(desc.digest.clone()))?;
            if m.layers
                .iter()
                .all(|l| self.content.size(&l.digest).is_some())
            {
                return Ok((bytes, desc.media_type.clone(), m));
            }
        }
        let config_size = self
            .content
            .size(&rec.id)
            .ok_or_else(|| ContentError::NotFound(rec.id.clone()))?;
        let mut layers = Vec::new();
        for chain in &rec.chain {
            let blob = self.layers.info(chain).and_then(|i| i.blob);
            let desc = match blob.filter(|b| self.content.size(&b.digest).is_some()) {
                Some(b) => b,
                None => self.pack_layer(chain)?,
            };
            layers.push(desc);
        }
        // Layers kept as they were imported are OCI media types: the manifest follows them.
        let oci = layers
            .iter()
            .any(|l| l.media_type.starts_with("application/vnd.oci."));
        let (manifest_type, config_type) = if oci {
            (manifest::OCI_MANIFEST, manifest::OCI_CONFIG)
        } else {
            (manifest::DOCKER_MANIFEST, manifest::DOCKER_CONFIG)
        };
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {"mediaType": config_type, "size": config_size, "digest": rec.id},
            "layers": layers.iter().map(|l| serde_json::json!({
                "mediaType": l.media_type, "size": l.size, "digest": l.digest,
            })).collect::<Vec<_>>(),
        });
        let bytes = serde_json::to_vec(&m).unwrap_or_default();
        self.content.put(&bytes)?;
        let parsed: Manifest =
            serde_json::from_slice(&bytes).map_err(|_| PushError::Manifest(Digest::of(&bytes)))?;
        Ok((bytes, manifest_type.to_string(), parsed))
    }

    /// A gzip blob of a stored layer, in the content store.
    fn pack_layer(&self, chain: &Digest) -> Result<Descriptor, PushError> {
        let pack = |source| PushError::Pack {
            layer: chain.clone(),
            source,
        };
        let mut tmp = tempfile::tempfile().map_err(pack)?;
        let diff_id = {
            let gz = flate2::write::GzEncoder::new(&mut tmp, flate2::Compression::fast());
            let mut hw = HashingWriter::new(gz);
            crate::layer_tar::write_layer(&self.layers.diff_dir(chain), &mut hw).map_err(pack)?;
            let (digest, gz) = hw.finish();
            gz.finish().map_err(pack)?.flush().map_err(pack)?;
            digest
        };
        // The image config names the layer by its diff id: a tar that hashes otherwise would
        // make a different image.
        let want = self.layers.info(chain).map(|i| i.diff_id);
        if want.as_ref().is_some_and(|w| *w != diff_id) {
            return Err(PushError::Unreproducible(chain.clone()));
        }
        tmp.rewind().map_err(pack)?;
        let mut hr = HashingReader::new(&mut tmp);
        std::io::copy(&mut hr, &mut std::io::sink()).map_err(pack)?;
        let (digest, size, _) = hr.finish();
        tmp.rewind().map_err(pack)?;
        if self.content.size(&digest) != Some(size) {
            self.content
                .write_verified(&digest, Some(size), size, &mut tmp)?;
        }
        Ok(Descriptor {
            media_type: manifest::DOCKER_LAYER_GZIP.to_string(),
            digest,
            size,
            platform: None,
            annotations: None,
            urls: None,
        })
    }

    /// Pushes `rec` as `target` (a tag), reporting progress in Docker's words.
    pub fn push(
        &self,
        rec: &ImageRecord,
        target: &Reference,
        client: &RegistryClient,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Pushed, PushError> {
        let (domain, repo) = (target.domain(), target.path());
        let tag = target.tag().unwrap_or("latest").to_string();
        progress(Progress::Status {
            id: None,
            status: format!("The push refers to repository [{}]", target.repository()),
        });
        let (bytes, media_type, m) = self.manifest_for(rec)?;
        // Other repositories of the same registry this image came from or went to: a layer
        // there is mounted instead of uploaded again.
        let sources: Vec<String> = rec
            .repo_digests
            .iter()
            .filter_map(|rd| Reference::parse(rd.split('@').next()?).ok())
            .filter(|r| r.domain() == domain && r.path() != repo)
            .map(|r| r.path().to_string())
            .collect();
        for l in m.layers.iter().rev() {
            progress(Progress::Layer {
                id: short(&l.digest),
                status: "Preparing",
                current: None,
                total: None,
            });
        }
        for l in m.layers.iter().rev() {
            let id = short(&l.digest);
            if client.blob_size(domain, repo, &l.digest)?.is_some() {
                progress(Progress::Layer {
                    id,
                    status: "Layer already exists",
                    current: None,
                    total: None,
                });
                continue;
            }
            let mut mounted = None;
            for from in &sources {
                // A failed mount is no failure: the upload follows.
                if client
                    .mount_blob(domain, repo, &l.digest, from)
                    .unwrap_or(false)
                {
                    mounted = Some(from);
                    break;
                }
            }
            if let Some(from) = mounted {
                berth_failpoint::point("push.after-layer");
                progress(Progress::Status {
                    id: Some(id),
                    status: format!("Mounted from {from}"),
                });
                continue;
            }
            let mut f = self.content.open(&l.digest)?;
            let total = l.size;
            client.push_blob(domain, repo, &l.digest, total, &mut f, None, &mut |sent| {
                progress(Progress::Layer {
                    id: id.clone(),
                    status: "Pushing",
                    current: Some(sent),
                    total: Some(total),
                })
            })?;
            berth_failpoint::point("push.after-layer");
            progress(Progress::Layer {
                id,
                status: "Pushed",
                current: None,
                total: None,
            });
        }
        if client.blob_size(domain, repo, &m.config.digest)?.is_none() {
            let mut f = self.content.open(&m.config.digest)?;
            let mut cfg = Vec::new();
            f.read_to_end(&mut cfg).map_err(|source| PushError::Pack {
                layer: m.config.digest.clone(),
                source,
            })?;
            client.push_blob(
                domain,
                repo,
                &m.config.digest,
                cfg.len() as u64,
                &mut &cfg[..],
                None,
                &mut |_| {},
            )?;
        }
        let digest = client.put_manifest(domain, repo, &tag, &media_type, &bytes)?;
        let mut updated = rec.clone();
        let repo_digest = format!("{}@{digest}", target.repository());
        if !updated.repo_digests.contains(&repo_digest) {
            updated.repo_digests.push(repo_digest);
        }
        if updated.manifest.is_none() {
            updated.manifest = Some(Descriptor {
                media_type: media_type.clone(),
                digest: digest.clone(),
                size: bytes.len() as u64,
                platform: None,
                annotations: None,
                urls: None,
            });
        }
        berth_failpoint::point("push.before-record");
        self.images.put(updated)?;
        let size = bytes.len() as u64;
        progress(Progress::Status {
            id: None,
            status: format!("{tag}: digest: {digest} size: {size}"),
        });
        Ok(Pushed { tag, digest, size })
    }
}
