//! What a registry says of a reference without pulling it (the Engine API's
//! `GET /distribution/{name}/json`): the descriptor of the manifest or index the reference
//! names, and the platforms it has (an index's entries, or a single manifest's config). Nothing
//! is stored; every byte read is bounded and checked against its digest.

use std::io::Read;

use crate::digest::Digest;
use crate::manifest::{self, Descriptor, ImageConfig, MAX_CONFIG, MAX_MANIFEST, Parsed, Platform};
use crate::reference::Reference;
use crate::registry::{RegistryClient, RegistryError};
use crate::service::PullError;

/// A reference as its registry has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteImage {
    /// The manifest's or index's media type, digest and size (no platform).
    pub descriptor: Descriptor,
    pub platforms: Vec<Platform>,
}

/// Asks the registry of `r` for its manifest or index (and, for a single manifest, its config).
pub fn inspect(client: &RegistryClient, r: &Reference) -> Result<RemoteImage, PullError> {
    let reference = match (r.digest(), r.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => "latest".to_string(),
    };
    let (media_type, digest, bytes) =
        client.get_manifest(r.domain(), r.path(), &reference, MAX_MANIFEST)?;
    let platforms = match manifest::parse(&media_type, &bytes)? {
        Parsed::Index(index) => index
            .manifests
            .iter()
            .filter_map(|m| m.platform.clone())
            .collect(),
        Parsed::Manifest(m) => {
            let config = read_config(client, r, &m.config.digest)?;
            vec![ImageConfig::parse(&config)?.platform]
        }
    };
    Ok(RemoteImage {
        descriptor: Descriptor {
            media_type,
            digest,
            size: bytes.len() as u64,
            platform: None,
            annotations: None,
            urls: None,
        },
        platforms,
    })
}

/// A config blob, at most `MAX_CONFIG` bytes, that must hash to `digest`.
fn read_config(
    client: &RegistryClient,
    r: &Reference,
    digest: &Digest,
) -> Result<Vec<u8>, PullError> {
    let what = format!("image config {digest}");
    let (_, body) = client.get_blob(r.domain(), r.path(), digest)?;
    let mut bytes = Vec::new();
    body.take(MAX_CONFIG + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| PullError::Fetch {
            url: what.clone(),
            message: e.to_string(),
        })?;
    if bytes.len() as u64 > MAX_CONFIG {
        let limit = MAX_CONFIG;
        return Err(RegistryError::TooLarge { what, limit }.into());
    }
    let actual = Digest::of(&bytes);
    if actual != *digest {
        let expected = digest.clone();
        return Err(RegistryError::DigestMismatch {
            what,
            expected,
            actual,
        }
        .into());
    }
    Ok(bytes)
}
