//! Manifests, indexes and image configs: the OCI and Docker schema 2 media types, parsing with
//! size caps, and platform selection from an index or manifest list (linux/amd64 by default,
//! or what `--platform` asks for).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
pub const OCI_NONDIST_LAYER_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";

/// Largest manifest or index accepted (the distribution spec suggests 4 MiB).
pub const MAX_MANIFEST: u64 = 4 << 20;
/// Largest image config accepted.
pub const MAX_CONFIG: u64 = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("unsupported manifest media type {0:?}")]
    MediaType(String),
    #[error("unsupported layer media type {0:?}")]
    LayerType(String),
    #[error("malformed {what}: {source}")]
    Malformed {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("no matching manifest for {0} in the manifest list entries")]
    NoPlatform(String),
    #[error("invalid platform {0:?}: use os[/arch[/variant]]")]
    BadPlatform(String),
    #[error("image config has {diff_ids} layers, the manifest {layers}")]
    LayerCount { diff_ids: usize, layers: usize },
}

/// A platform: `linux/amd64`, `linux/arm64/v8`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

impl Platform {
    /// The platform this daemon runs containers for.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            architecture: arch.into(),
            os: "linux".into(),
            variant: None,
            os_version: None,
        }
    }

    /// Parses `os[/arch[/variant]]` as `--platform` gives it.
    pub fn parse(s: &str) -> Result<Platform, ManifestError> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok =
            |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if parts.is_empty() || parts.len() > 3 || !parts.iter().all(ok) {
            return Err(ManifestError::BadPlatform(s.into()));
        }
        let host = Platform::host();
        Ok(Platform {
            os: parts[0].to_lowercase(),
            architecture: parts
                .get(1)
                .map(|a| normalize_arch(a))
                .unwrap_or(host.architecture),
            variant: parts.get(2).map(|v| v.to_lowercase()),
            os_version: None,
        })
    }

    /// Does an index entry's platform satisfy this one?
    fn accepts(&self, p: &Platform) -> bool {
        if p.os != self.os || normalize_arch(&p.architecture) != self.architecture {
            return false;
        }
        let default_variant = |arch: &str| match arch {
            "arm64" => Some("v8"),
            _ => None,
        };
        let want = self
            .variant
            .as_deref()
            .or(default_variant(&self.architecture));
        let have = p.variant.as_deref().or(default_variant(&self.architecture));
        want.is_none() || want == have
    }
}

fn normalize_arch(a: &str) -> String {
    match a.to_lowercase().as_str() {
        "x86_64" | "x86-64" => "amd64".into(),
        "aarch64" => "arm64".into(),
        other => other.into(),
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
}

/// An image manifest (OCI or Docker schema 2: the same shape).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An index or manifest list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// What a manifest fetch turned out to be.
#[derive(Debug, Clone)]
pub enum Parsed {
    Manifest(Box<Manifest>),
    Index(Index),
}

/// Layer compression by media type, checked before a byte is downloaded.
pub fn check_layer_type(media_type: &str) -> Result<(), ManifestError> {
    match media_type {
        OCI_LAYER
        | OCI_LAYER_GZIP
        | OCI_LAYER_ZSTD
        | DOCKER_LAYER_GZIP
        | DOCKER_FOREIGN_LAYER
        | OCI_NONDIST_LAYER_GZIP => Ok(()),
        other => Err(ManifestError::LayerType(other.into())),
    }
}

/// Parses a manifest or index; the media type is the response's Content-Type, or failing that
/// the document's own `mediaType`.
pub fn parse(content_type: &str, bytes: &[u8]) -> Result<Parsed, ManifestError> {
    let declared = || -> Option<String> {
        serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()?
            .get("mediaType")?
            .as_str()
            .map(str::to_string)
    };
    let ct = content_type.split(';').next().unwrap_or("").trim();
    let mt = match ct {
        "" | "application/json" | "text/plain" | "application/octet-stream" => {
            match declared() {
                Some(m) => m,
                // An OCI document may omit mediaType: tell by shape.
                None => {
                    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|source| {
                        ManifestError::Malformed {
                            what: "manifest",
                            source,
                        }
                    })?;
                    if v.get("manifests").is_some() {
                        OCI_INDEX.to_string()
                    } else {
                        OCI_MANIFEST.to_string()
                    }
                }
            }
        }
        other => other.to_string(),
    };
    match mt.as_str() {
        OCI_INDEX | DOCKER_LIST => {
            serde_json::from_slice(bytes)
                .map(Parsed::Index)
                .map_err(|source| ManifestError::Malformed {
                    what: "manifest list",
                    source,
                })
        }
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let m: Box<Manifest> =
                serde_json::from_slice(bytes).map_err(|source| ManifestError::Malformed {
                    what: "manifest",
                    source,
                })?;
            for l in &m.layers {
                check_layer_type(&l.media_type)?;
            }
            Ok(Parsed::Manifest(m))
        }
        other => Err(ManifestError::MediaType(other.to_string())),
    }
}

/// Picks the entry of an index for `want`; attestation entries (`unknown/unknown`) never match.
pub fn select<'a>(index: &'a Index, want: &Platform) -> Result<&'a Descriptor, ManifestError> {
    index
        .manifests
        .iter()
        .filter(|d| matches!(d.media_type.as_str(), OCI_MANIFEST | DOCKER_MANIFEST))
        .find(|d| d.platform.as_ref().is_some_and(|p| want.accepts(p)))
        .ok_or_else(|| ManifestError::NoPlatform(want.to_string()))
}

/// The parts of an image config berthd uses; the whole document is kept as `raw`.
#[derive(Debug, Clone)]
pub struct ImageConfig {
    pub raw: serde_json::Value,
    pub diff_ids: Vec<Digest>,
    pub platform: Platform,
}

impl ImageConfig {
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, ManifestError> {
        #[derive(Deserialize)]
        struct RootFs {
            #[serde(default)]
            diff_ids: Vec<Digest>,
        }
        #[derive(Deserialize)]
        struct Shape {
            #[serde(default)]
            architecture: String,
            #[serde(default)]
            os: String,
            #[serde(default)]
            variant: Option<String>,
            rootfs: RootFs,
        }
        let malformed = |source| ManifestError::Malformed {
            what: "image config",
            source,
        };
        let raw: serde_json::Value = serde_json::from_slice(bytes).map_err(malformed)?;
        let s: Shape = serde_json::from_value(raw.clone()).map_err(malformed)?;
        Ok(ImageConfig {
            raw,
            diff_ids: s.rootfs.diff_ids,
            platform: Platform {
                architecture: s.architecture,
                os: s.os,
                variant: s.variant,
                os_version: None,
            },
        })
    }
}

/// Chain ids of a layer stack: `chain[0] = diff[0]`, `chain[n] = sha256(chain[n-1] + " " + diff[n])`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => Digest::of(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(mt: &str, platform: Option<(&str, &str, Option<&str>)>) -> serde_json::Value {
        let mut v = serde_json::json!({
            "mediaType": mt,
            "digest": Digest::of(mt.as_bytes()).to_string(),
            "size": 1,
        });
        if let Some((os, arch, variant)) = platform {
            v["platform"] = serde_json::json!({"os": os, "architecture": arch, "variant": variant});
        }
        v
    }

    #[test]
    fn selects_the_platform_and_skips_attestations() {
        let idx = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                desc(OCI_MANIFEST, Some(("unknown", "unknown", None))),
                desc(OCI_MANIFEST, Some(("linux", "arm", Some("v7")))),
                desc(OCI_MANIFEST, Some(("linux", "arm64", Some("v8")))),
                desc(OCI_MANIFEST, Some(("linux", "amd64", None))),
            ]
        });
        let bytes = serde_json::to_vec(&idx).unwrap();
        let Parsed::Index(i) = parse(OCI_INDEX, &bytes).unwrap() else {
            panic!("not an index")
        };
        let amd = Platform::parse("linux/amd64").unwrap();
        assert_eq!(
            select(&i, &amd)
                .unwrap()
                .platform
                .as_ref()
                .unwrap()
                .architecture,
            "amd64"
        );
        let arm64 = Platform::parse("linux/arm64").unwrap();
        assert_eq!(
            select(&i, &arm64)
                .unwrap()
                .platform
                .as_ref()
                .unwrap()
                .variant
                .as_deref(),
            Some("v8")
        );
        let e = select(&i, &Platform::parse("linux/s390x").unwrap()).unwrap_err();
        assert!(e.to_string().contains("linux/s390x"), "{e}");
        assert!(Platform::parse("linux//x").is_err());
    }

    #[test]
    fn refuses_unknown_types_and_malformed_documents() {
        assert!(matches!(
            parse("application/vnd.example+json", b"{}"),
            Err(ManifestError::MediaType(_))
        ));
        assert!(matches!(
            parse(DOCKER_MANIFEST, b"{not json"),
            Err(ManifestError::Malformed { .. })
        ));
        let m = serde_json::json!({
            "schemaVersion": 2,
            "config": desc(OCI_CONFIG, None),
            "layers": [desc("application/x-evil", None)],
        });
        let e = parse(OCI_MANIFEST, &serde_json::to_vec(&m).unwrap()).unwrap_err();
        assert!(matches!(e, ManifestError::LayerType(_)), "{e}");
    }

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let chain = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chain[0], a);
        assert_eq!(chain[1], Digest::of(format!("{a} {b}").as_bytes()));
    }
}
